/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy on the destination, the fault thread (postcopy-ram.c has the
 * rest; the design is in include/migration/postcopy-ram.h): it polls our
 * userfaultfd and every back-end's, makes each missing-page fault a
 * waiter and, the first time for its page, a request to the source, and
 * serves at once a fault on a page already received.
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
 * Threads: all of this runs on the fault thread, except
 * mig_pc_forget_waiters (remove_shared calls it too, under the lock).
 * The lock and what it guards are described in postcopy-ram.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "migration/postcopy-ram-int.h"
#include "migration/uffd-compat.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

/*
 * Messages read per read(); a ufd is read at most PC_READ_ROUNDS times a
 * poll round, so one busy back-end cannot starve the others.
 */
#define PC_READ_BATCH       16
#define PC_READ_ROUNDS      8

static bool hva_to_gpa(const MigPostcopy *pc, uint64_t addr, uint64_t *gpa)
{
    for (unsigned i = 0; i < pc->nregions; i++) {
        const PcRegion *r = &pc->regions[i];

        if (addr >= (uintptr_t)r->host && addr - (uintptr_t)r->host < r->size) {
            *gpa = r->gpa + (addr - (uintptr_t)r->host);
            return true;
        }
    }
    return false;
}

/*
 * A fault on a page already received: a hole (never sent because it was
 * zero) gets a zero page; a page that is there (placed after the fault
 * was raised) only needs its faulting party woken.
 *
 * After finish our mapping is no longer registered, but back-ends still
 * fault until they answered POSTCOPY_END (a fault read late, or a hole
 * they touch then): the zero page goes in through the back-end's own ufd
 * at its own address (the same file page, and it wakes the back-end).
 */
static void serve_received(MigPostcopy *pc, PcShared *sh, uint64_t addr, uint64_t gpa)
{
    uint8_t *host = mig_pc_gpa_host(pc, gpa);
    int r;

    if (sh && g_atomic_int_get(&pc->ended)) {
        if (mig_pc_uffd_fill(sh->fd, (uint8_t *)(uintptr_t)addr, NULL) != 0) {
            mig_pc_uffd_wake(sh->fd, addr);        /* present already, or unregistered */
        }
        return;
    }
    r = mig_pc_uffd_fill(pc->ufd, host, NULL);
    if (r != 0 || sh) {
        /* Zeropage woke our own faulting threads, not the back-end's. */
        mig_pc_uffd_wake(sh ? sh->fd : pc->ufd, sh ? addr : (uintptr_t)host);
    }
}

/*
 * The first step of a fault's trace: who faulted where (its own address),
 * the GPA and the RAM block offset that address stands for. The requester
 * traces the request it sends (it knows the connection).
 */
static void trace_fault(const MigPostcopy *pc, const PcShared *sh, uint64_t addr,
                        uint64_t gpa, bool ask)
{
    const PcRegion *r = mig_pc_region_of_gpa(pc, gpa);
    uint64_t off = r ? r->fd_offset - r->block->fd_offset + (gpa - r->gpa) : 0;

    mig_pc_trace("fault who=%s addr=0x%" PRIx64 " gpa=0x%" PRIx64 " block=%s off=0x%"
                 PRIx64 "%s", sh ? sh->name : "guest", addr, gpa,
                 r && r->block->id ? r->block->id : "-", off, ask ? "" : " asked=already");
}

/* A fault, ours (sh NULL, addr our page) or a back-end's (addr its page). */
static void serve_fault(MigPostcopy *pc, PcShared *sh, uint64_t addr, uint64_t gpa)
{
    uint64_t page = gpa / PC_PAGE;
    PcWaiter w = { .sh = sh, .addr = addr, .since = g_get_monotonic_time() };
    GArray *waiters;
    bool ask;

    g_mutex_lock(&pc->lock);
    if (sh) {
        pc->st.faults_backend++;
    } else {
        pc->st.faults_guest++;
    }
    if (bit_test(pc->received, page)) {
        pc->st.faults_present++;
        g_mutex_unlock(&pc->lock);
        serve_received(pc, sh, addr, gpa);
        return;
    }
    if (sh && g_atomic_int_get(&sh->removed)) {
        /* Removed while we read its fault: it is forgotten, not woken. */
        g_mutex_unlock(&pc->lock);
        return;
    }
    waiters = g_hash_table_lookup(pc->waiters, GSIZE_TO_POINTER(page));
    if (!waiters) {
        waiters = g_array_new(FALSE, FALSE, sizeof(PcWaiter));
        g_hash_table_insert(pc->waiters, GSIZE_TO_POINTER(page), waiters);
    }
    g_array_append_val(waiters, w);
    ask = !bit_test(pc->requested, page);
    if (ask) {
        bit_set(pc->requested, page);
        pc->st.requests++;
    }
    g_mutex_unlock(&pc->lock);
    if (mig_pc_trace_enabled()) {
        trace_fault(pc, sh, addr, gpa, ask);
    }
    if (ask) {
        pc->request(gpa, pc->opaque);
    }
}

/* Forgets sh's waiters whose address is in [start, end); under lock. */
void mig_pc_forget_waiters(MigPostcopy *pc, PcShared *sh, uint64_t start, uint64_t end)
{
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, pc->waiters);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        GArray *waiters = value;

        for (guint i = waiters->len; i-- > 0;) {
            const PcWaiter *w = &g_array_index(waiters, PcWaiter, i);

            if (w->sh == sh && w->addr >= start && w->addr < end) {
                g_array_remove_index_fast(waiters, i);
            }
        }
        if (!waiters->len) {
            g_hash_table_iter_remove(&it);
        }
    }
}

/* The faults on our own ufd. */
static void read_ours(MigPostcopy *pc)
{
    struct uffd_msg msg[PC_READ_BATCH];

    for (unsigned round = 0; round < PC_READ_ROUNDS; round++) {
        ssize_t n = read(pc->ufd, msg, sizeof(msg));

        if (n <= 0) {
            return;             /* EAGAIN: all read; nothing else is expected */
        }
        for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
            uint64_t addr = msg[i].arg.pagefault.address & ~(uint64_t)(PC_PAGE - 1);
            uint64_t gpa;

            if (msg[i].event == UFFD_EVENT_PAGEFAULT && hva_to_gpa(pc, addr, &gpa)) {
                serve_fault(pc, NULL, addr, gpa);
            }
        }
    }
}

static void shared_fail(MigPostcopy *pc, PcShared *sh, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Stops polling sh and tells its owner why. */
static void shared_fail(MigPostcopy *pc, PcShared *sh, const char *fmt, ...)
{
    g_autofree char *why = NULL;
    GError *err;
    va_list ap;

    va_start(ap, fmt);
    why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    err = g_error_new(VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                      "%s: postcopy: %s; its userfaultfd is no longer served",
                      sh->name, why);
    g_mutex_lock(&pc->lock);
    sh->failed = true;
    pc->gen++;
    g_mutex_unlock(&pc->lock);
    if (sh->err_fn) {
        sh->err_fn(sh->ufd, err, sh->opaque);
    }
    g_error_free(err);
}

/* One message of a back-end's ufd; false when the ufd failed. */
static bool shared_msg(MigPostcopy *pc, PcShared *sh, const struct uffd_msg *m)
{
    uint64_t addr, gpa;

    switch (m->event) {
    case UFFD_EVENT_PAGEFAULT:
        addr = m->arg.pagefault.address & ~(uint64_t)(PC_PAGE - 1);
        if (m->arg.pagefault.flags & (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR)) {
            shared_fail(pc, sh, "a %s fault at 0x%" PRIx64 ", not a missing page",
                        m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP ?
                        "write-protect" : "minor", addr);
            return false;
        }
        if (!sh->translate(addr, &gpa, sh->opaque)) {
            shared_fail(pc, sh, "fault at back-end address 0x%" PRIx64 ", in "
                        "none of the regions it was given", addr);
            return false;
        }
        gpa &= ~(uint64_t)(PC_PAGE - 1);
        if (!mig_pc_region_of_gpa(pc, gpa)) {
            shared_fail(pc, sh, "fault at back-end address 0x%" PRIx64 " "
                        "translates to GPA 0x%" PRIx64 ", outside guest RAM",
                        addr, gpa);
            return false;
        }
        serve_fault(pc, sh, addr, gpa);
        return true;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
        /* Gone from its mapping: nobody there waits for those pages. */
        g_mutex_lock(&pc->lock);
        mig_pc_forget_waiters(pc, sh, m->arg.remove.start, m->arg.remove.end);
        g_mutex_unlock(&pc->lock);
        return true;
    case UFFD_EVENT_FORK:
        /* A child of the back-end: not a party to this migration. */
        close((int)m->arg.fork.ufd);
        return true;
    case UFFD_EVENT_REMAP:
        shared_fail(pc, sh, "guest RAM moved in the back-end's mapping (0x%"
                    PRIx64 " -> 0x%" PRIx64 "): its memory table no longer "
                    "holds", (uint64_t)m->arg.remap.from, (uint64_t)m->arg.remap.to);
        return false;
    default:
        shared_fail(pc, sh, "unexpected userfaultfd event 0x%x", m->event);
        return false;
    }
}

static void read_shared(MigPostcopy *pc, PcShared *sh)
{
    struct uffd_msg msg[PC_READ_BATCH];

    for (unsigned round = 0; round < PC_READ_ROUNDS; round++) {
        ssize_t n = read(sh->fd, msg, sizeof(msg));

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (n <= 0 || n % sizeof(msg[0])) {
            shared_fail(pc, sh, "reading its userfaultfd: %s", n < 0 ?
                        g_strerror(errno) : "a short message");
            return;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
            if (!shared_msg(pc, sh, &msg[i])) {
                return;
            }
            if (g_atomic_int_get(&sh->removed)) {
                return;         /* by a callback of ours */
            }
        }
    }
}

gpointer mig_pc_fault_thread(gpointer opaque)
{
    MigPostcopy *pc = opaque;
    g_autoptr(GArray) pfds = g_array_new(FALSE, FALSE, sizeof(struct pollfd));
    g_autoptr(GPtrArray) polled = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    MigPcSched got;

    mig_pc_thread_prefault();
    if (!mig_pc_thread_set_sched(pc->sched, "fault", &got, &err)) {
        /* Only the latency suffers. */
        vhost_user_log(VHOST_USER_LOG_WARNING, NULL, "%s", err->message);
        g_clear_error(&err);
    }
    g_mutex_lock(&pc->lock);
    pc->st.fault_sched = got;
    g_mutex_unlock(&pc->lock);

    for (;;) {
        struct pollfd base[2] = {
            { .fd = pc->event_fd, .events = POLLIN },
            { .fd = pc->ufd, .events = POLLIN },
        };

        g_mutex_lock(&pc->lock);
        g_ptr_array_set_size(pc->dead, 0);
        if (pc->stop) {
            pc->thread_gen = G_MAXUINT64;
            g_cond_broadcast(&pc->cond);
            g_mutex_unlock(&pc->lock);
            return NULL;
        }
        g_array_set_size(pfds, 0);
        g_array_append_vals(pfds, base, 2);
        g_ptr_array_set_size(polled, 0);
        for (guint i = 0; i < pc->shared->len; i++) {
            PcShared *sh = g_ptr_array_index(pc->shared, i);
            struct pollfd p = { .fd = sh->fd, .events = POLLIN };

            if (!sh->failed) {
                g_array_append_val(pfds, p);
                g_ptr_array_add(polled, sh);
            }
        }
        pc->thread_gen = pc->gen;
        g_cond_broadcast(&pc->cond);
        g_mutex_unlock(&pc->lock);

        if (poll((struct pollfd *)pfds->data, pfds->len, -1) < 0) {
            continue;           /* EINTR */
        }
        if (g_array_index(pfds, struct pollfd, 0).revents) {
            eventfd_t v;

            eventfd_read(pc->event_fd, &v);
        }
        if (g_array_index(pfds, struct pollfd, 1).revents) {
            read_ours(pc);
        }
        for (guint i = 0; i < polled->len; i++) {
            PcShared *sh = g_ptr_array_index(polled, i);
            short rev = g_array_index(pfds, struct pollfd, i + 2).revents;

            if (!rev || g_atomic_int_get(&sh->removed)) {
                continue;
            }
            if (rev & POLLNVAL) {
                shared_fail(pc, sh, "its userfaultfd %d was closed while "
                            "polled", sh->ufd);
                continue;
            }
            read_shared(pc, sh);
        }
    }
}
