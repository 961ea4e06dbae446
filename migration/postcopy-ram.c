/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy on the destination: guest RAM under userfaultfd (the design is
 * in include/migration/postcopy-ram.h). This file creates it, places
 * pages, keeps the set of back-ends' userfaultfds and finishes; the fault
 * thread, which reads and serves what the ufds report, is
 * postcopy-fault.c, and what the two share is postcopy-ram-int.h.
 *
 * Untrusted input: what a back-end's userfaultfd reports. A page fault's
 * address goes through the caller's translate callback, and the GPA that
 * comes back must lie in one of our regions; a fault that is neither, a
 * write-protect or minor fault (we never asked for those), a remap, an
 * unknown event, a short read or a read error drop that back-end's ufd
 * from the poll set with an error (err_fn), never the guest. Unmapping
 * events (REMOVE, UNMAP: the back-end unmapped or dropped part of its
 * mapping, e.g. on a new memory table) forget that back-end's waiters in
 * the range and are otherwise fine; a fork's new userfaultfd is closed
 * unserved. Our own ufd only reports faults in the ranges we registered;
 * its addresses are checked all the same.
 *
 * Threads: the fault thread reads every fault; the migration thread (and
 * with postcopy-preempt a second one) calls place; any thread adds and
 * removes shared ufds. The lock guards the requested bitmap, the waiters,
 * the shared set and the statistics, and is held across the wakes in
 * place, so that a shared ufd is never woken after remove_shared
 * returned. UFFDIO_COPY/ZEROPAGE in place run unlocked (the kernel lets
 * one of two racing copies of a page through, the other gets EEXIST); the
 * page is accounted once, when its received bit is set under the lock. The
 * received bitmap is read without the lock (atomically) by
 * mig_postcopy_received.
 */
#include "migration/postcopy-ram.h"
#include "migration/postcopy-ram-int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "migration/postcopy-probe.h"
#include "migration/uffd-compat.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

static void shared_free(gpointer p)
{
    PcShared *sh = p;

    close(sh->fd);
    g_free(sh->name);
    g_free(sh);
}

bool mig_postcopy_supported(const GuestMemory *mem, GError **errp)
{
    int ufd;
    bool ok;

    if (!mig_postcopy_blocks_usable(mem, errp) ||
        (ufd = mig_postcopy_uffd_new(errp)) < 0) {
        return false;
    }
    ok = mig_postcopy_probe_shmem(ufd, errp);
    close(ufd);
    return ok;
}

MigPostcopy *mig_postcopy_new(GuestMemory *mem, MigPostcopyRequestFn request,
                              void *opaque, GError **errp)
{
    MigPostcopy *pc;
    uint64_t words;
    int ufd, efd;

    if (!mig_postcopy_blocks_usable(mem, errp) ||
        (ufd = mig_postcopy_uffd_new(errp)) < 0) {
        return NULL;
    }
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "postcopy: eventfd: %s", g_strerror(errno));
        close(ufd);
        return NULL;
    }
    pc = g_new0(MigPostcopy, 1);
    pc->request = request;
    pc->opaque = opaque;
    pc->ufd = ufd;
    pc->event_fd = efd;
    pc->sched = MIG_PC_SCHED_SLICE;
    pc->st.fault_sched = MIG_PC_SCHED_NORMAL;
    pc->nregions = guest_memory_nregions(mem);
    pc->regions = g_new0(PcRegion, pc->nregions);
    for (unsigned i = 0; i < pc->nregions; i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);

        pc->regions[i] = (PcRegion) {
            .gpa = r->gpa, .size = r->size,
            .host = (uint8_t *)r->block->host + r->block_offset,
            .block = ram_block_ref(r->block),
            .fd_offset = r->block->fd_offset + r->block_offset,
        };
    }
    pc->npages = guest_memory_end(mem) / PC_PAGE;
    words = (pc->npages + 63) / 64;
    pc->received = g_new(uint64_t, words);
    memset(pc->received, 0xff, words * sizeof(uint64_t));
    pc->requested = g_new0(uint64_t, words);
    g_mutex_init(&pc->lock);
    g_cond_init(&pc->cond);
    pc->shared = g_ptr_array_new();
    pc->dead = g_ptr_array_new_with_free_func(shared_free);
    pc->waiters = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                        (GDestroyNotify)g_array_unref);
    return pc;
}

/* The region holding gpa, by bisection, or NULL. */
const PcRegion *mig_pc_region_of_gpa(const MigPostcopy *pc, uint64_t gpa)
{
    unsigned lo = 0, hi = pc->nregions;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const PcRegion *r = &pc->regions[mid];

        if (gpa < r->gpa) {
            hi = mid;
        } else if (gpa - r->gpa >= r->size) {
            lo = mid + 1;
        } else {
            return r;
        }
    }
    return NULL;
}

uint8_t *mig_pc_gpa_host(const MigPostcopy *pc, uint64_t gpa)
{
    const PcRegion *r = mig_pc_region_of_gpa(pc, gpa);

    return r ? r->host + (gpa - r->gpa) : NULL;
}

bool mig_postcopy_discard(MigPostcopy *pc, uint64_t gpa, uint64_t len, GError **errp)
{
    uint64_t end = gpa + len;

    if (pc->listened) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "postcopy: discard of [0x%" PRIx64 ", +0x%" PRIx64 ") after "
                    "listen", gpa, len);
        return false;
    }
    if ((gpa | len) % PC_PAGE || end < gpa) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "postcopy: discard of [0x%" PRIx64 ", +0x%" PRIx64 "): not "
                    "4 KiB aligned", gpa, len);
        return false;
    }
    /* Checked whole before anything is punched: an error changes nothing. */
    for (uint64_t a = gpa; a < end;) {
        const PcRegion *r = mig_pc_region_of_gpa(pc, a);

        if (!r) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "postcopy: discard of [0x%" PRIx64 ", +0x%" PRIx64 "): "
                        "GPA 0x%" PRIx64 " is outside guest RAM", gpa, len, a);
            return false;
        }
        a = MIN(end, r->gpa + r->size);
    }
    for (uint64_t a = gpa; a < end;) {
        const PcRegion *r = mig_pc_region_of_gpa(pc, a);
        uint64_t seg = MIN(end, r->gpa + r->size) - a;

        /* Unmaps the pages from every mapping of the file, ours included. */
        if (fallocate(r->block->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)(r->fd_offset + (a - r->gpa)), (off_t)seg) < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "postcopy: RAM block '%s': punching 0x%" PRIx64 " bytes "
                        "at GPA 0x%" PRIx64 ": %s", r->block->id, seg, a,
                        g_strerror(errno));
            return false;
        }
        g_mutex_lock(&pc->lock);
        for (uint64_t p = a / PC_PAGE; p < (a + seg) / PC_PAGE; p++) {
            if (bit_test(pc->received, p)) {
                bit_clear(pc->received, p);
                pc->st.pages_missing++;
            }
        }
        g_mutex_unlock(&pc->lock);
        a += seg;
    }
    return true;
}

/* UFFDIO_COPY (data) or UFFDIO_ZEROPAGE of our page at host; -errno or 0. */
int mig_pc_uffd_fill(int ufd, uint8_t *host, const void *data)
{
    for (;;) {
        int64_t done;
        int r;

        if (data) {
            struct uffdio_copy c = {
                .dst = (uintptr_t)host, .src = (uintptr_t)data, .len = PC_PAGE,
            };

            r = ioctl(ufd, UFFDIO_COPY, &c);
            done = c.copy;
        } else {
            struct uffdio_zeropage z = {
                .range = { .start = (uintptr_t)host, .len = PC_PAGE },
            };

            r = ioctl(ufd, UFFDIO_ZEROPAGE, &z);
            done = z.zeropage;
        }
        if (r == 0 || done == PC_PAGE) {
            return 0;
        }
        /* EAGAIN: the mapping changed under the call; the page is still ours to fill. */
        if (errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
    }
}

void mig_pc_uffd_wake(int ufd, uint64_t addr)
{
    struct uffdio_range range = { .start = addr, .len = PC_PAGE };

    /* Fails only if the range is no longer registered: nobody to wake. */
    ioctl(ufd, UFFDIO_WAKE, &range);
}

bool mig_postcopy_place(MigPostcopy *pc, uint64_t gpa, const void *data, GError **errp)
{
    return mig_postcopy_place_from(pc, gpa, data, "main", errp);
}

bool mig_postcopy_place_from(MigPostcopy *pc, uint64_t gpa, const void *data,
                             const char *conn, GError **errp)
{
    uint8_t *host = gpa % PC_PAGE ? NULL : mig_pc_gpa_host(pc, gpa);
    uint64_t page = gpa / PC_PAGE;
    GArray *waiters;
    int64_t now, copy_start = 0, copy_end = 0;
    bool traced;

    if (!host) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "postcopy: page at GPA 0x%" PRIx64 " is %s", gpa, gpa % PC_PAGE ?
                    "not 4 KiB aligned" : "outside guest RAM");
        return false;
    }
    traced = mig_pc_trace_enabled() && bit_test(pc->requested, page);
    if (traced) {
        mig_pc_trace("page-recv gpa=0x%" PRIx64 " conn=%s", gpa, conn);
    }
    g_mutex_lock(&pc->lock);
    if (bit_test(pc->received, page)) {
        g_mutex_unlock(&pc->lock);
        return true;
    }
    waiters = g_hash_table_lookup(pc->waiters, GSIZE_TO_POINTER(page));
    if (!pc->registered) {
        /* Before listen: nothing faults yet. A discarded page is a hole, zero. */
        if (data) {
            memcpy(host, data, PC_PAGE);
        }
    } else if (data || waiters) {
        /*
         * A zero page nobody waits for stays a hole, as in precopy: most of
         * them are free guest memory never touched, and a touch is served
         * as a received hole (a zero page then).
         *
         * The copy runs unlocked: the fault thread and another placer (the
         * preempt connection's) must not wait for it, nor for a placer the
         * scheduler took off the CPU in the middle. Two placers of one page
         * race in the kernel: one copies, the other gets EEXIST, and the
         * accounting below happens once, under the lock.
         */
        int r;

        g_mutex_unlock(&pc->lock);
        copy_start = traced ? g_get_monotonic_time() : 0;
        r = mig_pc_uffd_fill(pc->ufd, host, data);
        copy_end = traced ? g_get_monotonic_time() : 0;
        g_mutex_lock(&pc->lock);
        if (r < 0 && r != -EEXIST) {
            g_mutex_unlock(&pc->lock);
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "postcopy: placing the page at GPA 0x%" PRIx64 ": %s",
                        gpa, g_strerror(-r));
            return false;
        }
        if (bit_test(pc->received, page)) {
            g_mutex_unlock(&pc->lock);
            return true;        /* the other placer accounted for it */
        }
        /* Faults read meanwhile added waiters. */
        waiters = g_hash_table_lookup(pc->waiters, GSIZE_TO_POINTER(page));
    }
    if (traced) {
        /*
         * After UFFDIO_COPY returned (it woke our own faulting threads);
         * copy: the ioctl's own us, the rest of the step is locks and waits.
         */
        mig_pc_trace("placed gpa=0x%" PRIx64 " waiting=%u copy=%" PRId64, gpa,
                     waiters ? waiters->len : 0, copy_end - copy_start);
    }
    bit_set(pc->received, page);
    if (!--pc->st.pages_missing) {
        g_cond_broadcast(&pc->cond);    /* mig_postcopy_wait_received */
    }
    pc->st.pages_placed++;
    pc->st.pages_zero += !data;
    now = g_get_monotonic_time();
    for (guint i = 0; waiters && i < waiters->len; i++) {
        const PcWaiter *w = &g_array_index(waiters, PcWaiter, i);
        uint64_t us = now > w->since ? now - w->since : 0;

        if (w->sh) {
            /*
             * Stamped before the ioctl: the woken thread may take this
             * CPU at once, and it runs from the wake, not from our return.
             */
            gint64 t = traced ? g_get_monotonic_time() : 0;

            mig_pc_uffd_wake(w->sh->fd, w->addr);
            if (traced) {
                mig_pc_trace_at(t, "woken who=%s addr=0x%" PRIx64 " gpa=0x%" PRIx64
                                " blocked=%" PRIu64 " by=UFFDIO_WAKE", w->sh->name,
                                w->addr, gpa, us);
            }
            pc->st.blocktime_backend_us += us;
            mig_pc_hist_add(&pc->hist_backend, us);
        } else {
            /* Woken by the copy already. */
            if (traced) {
                mig_pc_trace("woken who=guest addr=0x%" PRIx64 " gpa=0x%" PRIx64 " blocked=%"
                             PRIu64 " by=UFFDIO_COPY", w->addr, gpa, us);
            }
            pc->st.blocktime_guest_us += us;
            mig_pc_hist_add(&pc->hist_guest, us);
        }
    }
    if (waiters) {
        g_hash_table_remove(pc->waiters, GSIZE_TO_POINTER(page));
    }
    g_mutex_unlock(&pc->lock);
    return true;
}

static void thread_kick(MigPostcopy *pc)
{
    eventfd_write(pc->event_fd, 1);
}

static void unregister_all(MigPostcopy *pc)
{
    for (unsigned i = 0; pc->registered && i < pc->nregions; i++) {
        struct uffdio_range range = {
            .start = (uintptr_t)pc->regions[i].host, .len = pc->regions[i].size,
        };

        /* Wakes any fault still pending: it retries unregistered. */
        ioctl(pc->ufd, UFFDIO_UNREGISTER, &range);
    }
    pc->registered = false;
}

bool mig_postcopy_listen(MigPostcopy *pc, GError **errp)
{
    GError *err = NULL;

    if (pc->listened) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "postcopy: listen twice");
        return false;
    }
    pc->registered = true;
    for (unsigned i = 0; i < pc->nregions; i++) {
        PcRegion *r = &pc->regions[i];

        if (!mig_postcopy_uffd_register(pc->ufd, r->host, r->size, r->block->id,
                                        errp)) {
            g_prefix_error(errp, "postcopy: RAM block ");
            unregister_all(pc);
            return false;
        }
    }
    pc->thread = g_thread_try_new("postcopy-fault", mig_pc_fault_thread, pc, &err);
    if (!pc->thread) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "postcopy: fault thread: %s", err->message);
        g_error_free(err);
        unregister_all(pc);
        return false;
    }
    pc->listened = true;
    return true;
}

bool mig_postcopy_add_shared(MigPostcopy *pc, int ufd, const char *name,
                             MigPostcopyTranslateFn translate,
                             MigPostcopySharedErrorFn err_fn, void *opaque,
                             GError **errp)
{
    PcShared *sh;
    int fl = fcntl(ufd, F_GETFL);
    int dup_fd;

    if (fl < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                    "%s: postcopy: userfaultfd %d: %s", name, ufd, g_strerror(errno));
        return false;
    }
    /*
     * The back-end chose its own flags; a blocking ufd could hang the
     * fault thread in read() if a faulting thread of the back-end is
     * interrupted between our poll and our read. The back-end never reads
     * its ufd itself (that is our job), so making it non-blocking is ours.
     */
    if (!(fl & O_NONBLOCK) && fcntl(ufd, F_SETFL, fl | O_NONBLOCK) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                    "%s: postcopy: userfaultfd %d: O_NONBLOCK: %s", name, ufd,
                    g_strerror(errno));
        return false;
    }
    /*
     * Our own reference: the caller may close its ufd (a back-end's ufd is
     * closed by POSTCOPY_END) while that back-end still faults, until it
     * answered and the caller removes it.
     */
    dup_fd = fcntl(ufd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: postcopy: userfaultfd %d: dup: %s", name, ufd, g_strerror(errno));
        return false;
    }
    g_mutex_lock(&pc->lock);
    for (guint i = 0; i < pc->shared->len; i++) {
        if (((PcShared *)g_ptr_array_index(pc->shared, i))->ufd == ufd) {
            g_mutex_unlock(&pc->lock);
            close(dup_fd);
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                        "%s: postcopy: userfaultfd %d is already polled", name, ufd);
            return false;
        }
    }
    sh = g_new0(PcShared, 1);
    *sh = (PcShared) {
        .ufd = ufd, .fd = dup_fd, .name = g_strdup(name), .translate = translate,
        .err_fn = err_fn, .opaque = opaque,
    };
    g_ptr_array_add(pc->shared, sh);
    pc->gen++;
    g_mutex_unlock(&pc->lock);
    if (pc->thread) {
        thread_kick(pc);
    }
    return true;
}

void mig_postcopy_remove_shared(MigPostcopy *pc, int ufd)
{
    PcShared *sh = NULL;
    uint64_t gen;

    g_mutex_lock(&pc->lock);
    for (guint i = 0; i < pc->shared->len; i++) {
        if (((PcShared *)g_ptr_array_index(pc->shared, i))->ufd == ufd) {
            sh = g_ptr_array_steal_index(pc->shared, i);
            break;
        }
    }
    if (!sh) {
        g_mutex_unlock(&pc->lock);
        return;
    }
    g_atomic_int_set(&sh->removed, 1);
    mig_pc_forget_waiters(pc, sh, 0, G_MAXUINT64);
    gen = ++pc->gen;
    if (pc->thread && g_thread_self() == pc->thread) {
        /* From a callback on the fault thread: it frees sh when done. */
        g_ptr_array_add(pc->dead, sh);
        g_mutex_unlock(&pc->lock);
        return;
    }
    if (pc->thread) {
        thread_kick(pc);
        while (pc->thread_gen < gen) {
            g_cond_wait(&pc->cond, &pc->lock);
        }
    }
    g_mutex_unlock(&pc->lock);
    shared_free(sh);
}

bool mig_postcopy_received(MigPostcopy *pc, uint64_t gpa)
{
    uint64_t page = gpa / PC_PAGE;

    return page < pc->npages && bit_test(pc->received, page);
}

uint64_t mig_postcopy_missing(MigPostcopy *pc)
{
    uint64_t n;

    g_mutex_lock(&pc->lock);
    n = pc->st.pages_missing;
    g_mutex_unlock(&pc->lock);
    return n;
}

bool mig_postcopy_wait_received(MigPostcopy *pc, gint64 end_us)
{
    bool done;

    g_mutex_lock(&pc->lock);
    while (pc->st.pages_missing && g_cond_wait_until(&pc->cond, &pc->lock, end_us)) {
    }
    done = !pc->st.pages_missing;
    g_mutex_unlock(&pc->lock);
    return done;
}

void mig_postcopy_rerequest(MigPostcopy *pc)
{
    g_autoptr(GArray) gpas = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    GHashTableIter it;
    gpointer key;

    g_mutex_lock(&pc->lock);
    g_hash_table_iter_init(&it, pc->waiters);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        uint64_t gpa = (uint64_t)GPOINTER_TO_SIZE(key) * PC_PAGE;

        g_array_append_val(gpas, gpa);
    }
    pc->st.requests += gpas->len;
    g_mutex_unlock(&pc->lock);
    /* Outside the lock: the callback writes to a socket. */
    for (guint i = 0; i < gpas->len; i++) {
        pc->request(g_array_index(gpas, uint64_t, i), pc->opaque);
    }
}

void mig_postcopy_set_sched(MigPostcopy *pc, MigPcSched sched)
{
    pc->sched = sched;
}

void mig_postcopy_get_stats(MigPostcopy *pc, MigPostcopyStats *st)
{
    g_mutex_lock(&pc->lock);
    *st = pc->st;
    st->guest_p50_us = mig_pc_hist_percentile(&pc->hist_guest, 50);
    st->guest_p90_us = mig_pc_hist_percentile(&pc->hist_guest, 90);
    st->guest_p99_us = mig_pc_hist_percentile(&pc->hist_guest, 99);
    st->guest_max_us = pc->hist_guest.max;
    st->backend_p50_us = mig_pc_hist_percentile(&pc->hist_backend, 50);
    st->backend_p90_us = mig_pc_hist_percentile(&pc->hist_backend, 90);
    st->backend_p99_us = mig_pc_hist_percentile(&pc->hist_backend, 99);
    st->backend_max_us = pc->hist_backend.max;
    g_mutex_unlock(&pc->lock);
}

static void stop_thread(MigPostcopy *pc)
{
    if (!pc->thread) {
        return;
    }
    g_mutex_lock(&pc->lock);
    pc->stop = true;
    g_mutex_unlock(&pc->lock);
    thread_kick(pc);
    g_thread_join(pc->thread);
    pc->thread = NULL;
    g_ptr_array_set_size(pc->dead, 0);
}

bool mig_postcopy_finish(MigPostcopy *pc, GError **errp)
{
    uint64_t missing = mig_postcopy_missing(pc);

    if (missing) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "postcopy: %" PRIu64 " page%s still missing: the source "
                    "has not sent %s", missing, missing == 1 ? "" : "s",
                    missing == 1 ? "it" : "them");
        return false;
    }
    /*
     * The thread goes on serving the back-ends' ufds (see serve_received
     * in postcopy-fault.c) until they are removed or pc is freed: a
     * back-end that faults before it answers POSTCOPY_END must still be
     * woken.
     */
    unregister_all(pc);
    g_atomic_int_set(&pc->ended, 1);
    return true;
}

void mig_postcopy_free(MigPostcopy *pc)
{
    if (!pc) {
        return;
    }
    stop_thread(pc);
    unregister_all(pc);
    close(pc->ufd);
    close(pc->event_fd);
    g_ptr_array_set_free_func(pc->shared, shared_free);
    g_ptr_array_unref(pc->shared);
    g_ptr_array_unref(pc->dead);
    g_hash_table_unref(pc->waiters);
    for (unsigned i = 0; i < pc->nregions; i++) {
        ram_block_unref(pc->regions[i].block);
    }
    g_free(pc->regions);
    g_free(pc->received);
    g_free(pc->requested);
    g_mutex_clear(&pc->lock);
    g_cond_clear(&pc->cond);
    g_free(pc);
}
