/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The destination's side of postcopy, the work of each postcopy section
 * (called by mig_load_ops on the load thread):
 *
 *   ADVISE   capability postcopy-ram on here too, userfaultfd usable,
 *            every back-end negotiated and offering PAGEFAULT (else an
 *            error naming the device), POSTCOPY_ADVISE to each.
 *   DISCARD  guest RAM under userfaultfd (mig_postcopy_new), the owed
 *            ranges punched out.
 *   LISTEN   our mapping registered, the fault thread running; each
 *            back-end's userfaultfd polled too (its addresses translated
 *            by its device), POSTCOPY_LISTEN to each. Status
 *            postcopy-active. A back-end that goes away and comes back
 *            until END is advised and listens again by its device, which
 *            tells us of the ufd that went and the new one through the
 *            notifier (mig_in_pc_ufd_changed), before its rings start.
 *   RUN      the devices get their state and the guest starts, on the
 *            loop, while this thread goes on placing pages.
 *   END      every page placed, our mapping unregistered, POSTCOPY_END
 *            sent; each back-end's ufd stays served until every back-end
 *            answered (one may fault before it does: a fault read late,
 *            a hole it touches), then dropped; then the acknowledgement.
 *
 * Threads. The guest's workloads and the device model (main loop) block
 * in the kernel when they touch a page not here yet; so does a back-end.
 * What gets them going again never needs the loop: the fault thread
 * (postcopy-fault.c) reads the fault and calls mig_in_pc_request, which
 * writes the request on the return path; the load thread reads the page
 * from the stream and places it. So the load thread never waits for the
 * loop from RUN until END: RUN's device work is posted to the loop, not
 * called, and its outcome is looked at when pages are placed and at END.
 * Return-path writes (requests, the final ack) are serialised by
 * MigReturnPath; only the load thread reads the socket.
 *
 * Untrusted input: the stream (section order and payloads checked by
 * mig_load_ops; discard ranges by mig_postcopy_discard against guest RAM;
 * device states by vhost_user_base_load) and the back-ends' fault
 * addresses (translated by their device; one outside its regions drops
 * that back-end's ufd, reported here, never the guest).
 */
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "hw/virtio/vhost-user-base-postcopy.h"
#include "migration/postcopy-ram.h"
#include "migration/socket.h"
#include "util/vhost-user-error.h"
#include "vmm/vmm-loop.h"
#include "vmm/vmm-migrate-in-int.h"
#include "vmm/vmm-runstate.h"

/* How long the guest's start may take once every page is here. */
#define PC_RUN_TIMEOUT_MS       30000

struct MigInPostcopy {
    MigIn *in;
    MigPostcopy *pc;            /* from DISCARD (or LISTEN) */
    bool advised;               /* POSTCOPY_ADVISE went to every back-end */
    /*
     * The devices' notifiers (loop) add and remove, release (load thread,
     * once the notifiers are gone) empties them; under lock.
     */
    GPtrArray *shared;          /* VhostUserBase whose ufd is polled */
    GArray *shared_fds;         /* their ufds (int), in the same order */
    bool listened;              /* loop: every device listens; later ones are re-advised */
    GMutex lock;                /* below */
    GCond cond;
    bool run_posted;
    bool run_done;
    /*
     * Read-held around each placement (two placers with postcopy-preempt
     * go on side by side), write-held by the populated check while it
     * looks again at the pages it found present, so that none is
     * half-placed then.
     */
    GRWLock place_lock;
    GError *run_err;            /* the guest's start failed */
    bool rp_failed;             /* a request could not be written */
    /*
     * postcopy-preempt (from ADVISE: the source connects right after it,
     * and the thread is warm before the first request): the thread
     * placing the second connection's pages.
     */
    GThread *pre_thread;
    int pre_fd;                 /* under lock: its connection once accepted, else -1 */
    bool pre_stop;              /* under lock: its end is ours, not an error */
    bool pre_done;              /* under lock: it returned */
    bool pre_listening;         /* under lock: LISTEN came; requests may be lost with it */
};

/* ---- on the fault thread ---------------------------------------------------- */

static void mig_in_pc_request(uint64_t gpa, void *opaque)
{
    MigInPostcopy *p = opaque;
    g_autoptr(GError) err = NULL;
    gint64 t;
    bool ok;

    /*
     * The load thread sees the stream end if the source is gone. While
     * postcopy is paused there is no return path: the fault thread keeps
     * the waiter and mig_postcopy_rerequest asks again once resumed.
     */
    g_mutex_lock(&p->in->rp_lock);
    t = mig_pc_trace_enabled() ? g_get_monotonic_time() : 0;
    ok = !p->in->rp || mig_rp_send_request(p->in->rp, gpa, 1, &err);
    g_mutex_unlock(&p->in->rp_lock);
    /* Requests always go back on the main connection's return path. */
    mig_pc_trace_at(t, "request-sent gpa=0x%" PRIx64 " conn=main%s", gpa,
                    ok ? (p->in->rp ? "" : " paused=1") : " failed=1");
    if (!ok) {
        g_mutex_lock(&p->lock);
        if (!p->rp_failed) {
            vmm_status("migration: postcopy: requesting page 0x%" PRIx64 ": %s", gpa,
                       err->message);
        }
        p->rp_failed = true;
        g_mutex_unlock(&p->lock);
    }
}

static bool mig_in_pc_translate(uint64_t addr, uint64_t *gpa, void *opaque)
{
    unsigned region;

    return vhost_user_base_postcopy_translate(opaque, addr, gpa, &region);
}

static void mig_in_pc_shared_error(int ufd, const GError *err, void *opaque)
{
    vmm_status("migration: postcopy: device '%s': %s", vhost_user_base_id(opaque),
               err->message);
}

static gpointer mig_in_pc_preempt_thread(gpointer opaque);
/*
 * Loop, from a device: its back-end's ufd is about to listen (the first
 * LISTEN, or a reconnected back-end advised again): polled from now on; or
 * it went away and its ufd is about to be closed: no longer polled. The
 * fault thread's calls into mig_in_pc_request take p->lock, and removing
 * waits for that thread: neither add nor remove runs under p->lock.
 */
static bool mig_in_pc_ufd_changed(VhostUserBase *vub, int ufd, bool added, void *opaque,
                                  GError **errp)
{
    MigInPostcopy *p = opaque;
    int old = -1;

    g_mutex_lock(&p->lock);
    for (guint i = 0; i < p->shared->len; i++) {
        if (g_ptr_array_index(p->shared, i) == vub) {
            old = g_array_index(p->shared_fds, int, i);
            g_ptr_array_remove_index(p->shared, i);
            g_array_remove_index(p->shared_fds, i);
            break;
        }
    }
    g_mutex_unlock(&p->lock);
    if (old >= 0) {
        mig_postcopy_remove_shared(p->pc, old);
    }
    if (!added || !p->pc) {
        return true;
    }
    if (!mig_postcopy_add_shared(p->pc, ufd, vhost_user_base_id(vub), mig_in_pc_translate,
                                 mig_in_pc_shared_error, vub, errp)) {
        return false;
    }
    g_mutex_lock(&p->lock);
    g_ptr_array_add(p->shared, vub);
    g_array_append_val(p->shared_fds, ufd);
    g_mutex_unlock(&p->lock);
    if (p->listened) {
        g_mutex_lock(&p->in->mm->lock);
        p->in->mm->pc_readvised++;
        g_mutex_unlock(&p->in->mm->lock);
        vmm_status("migration: postcopy: device '%s': the reconnected back-end was "
                   "advised again, its userfaultfd polled", vhost_user_base_id(vub));
    }
    return true;
}

/* Any thread: the devices no longer call mig_in_pc_ufd_changed when it returns. */
static void mig_in_pc_ufd_notify(MigIn *in, bool on)
{
    for (unsigned i = 0; i < vmm_machine_ndevices(in->m); i++) {
        vhost_user_base_postcopy_set_ufd_notify(vmm_machine_device(in->m, i),
                                                on ? mig_in_pc_ufd_changed : NULL,
                                                on ? in->pc : NULL);
    }
}

/* ---- the sections, on the load thread ---------------------------------------- */

static MigInPostcopy *mig_in_pc(MigIn *in)
{
    if (!in->pc) {
        MigInPostcopy *p = g_new0(MigInPostcopy, 1);

        p->in = in;
        p->pre_fd = -1;
        p->shared = g_ptr_array_new();
        p->shared_fds = g_array_new(FALSE, FALSE, sizeof(int));
        g_mutex_init(&p->lock);
        g_rw_lock_init(&p->place_lock);
        g_cond_init(&p->cond);
        in->pc = p;
    }
    return in->pc;
}

typedef bool (*MigInPcDevFn)(VhostUserBase *vub, GError **errp);

/* Loop: fn on every device in turn; an error names the device and step. */
static bool mig_in_pc_each(MigIn *in, MigInPcDevFn fn, const char *step, GError **errp)
{
    for (unsigned i = 0; i < vmm_machine_ndevices(in->m); i++) {
        VhostUserBase *vub = vmm_machine_device(in->m, i);

        if (!fn(vub, errp)) {
            g_prefix_error(errp, "postcopy-ram: device '%s': %s", vhost_user_base_id(vub),
                           step);
            return false;
        }
    }
    return true;
}

/* Loop: every back-end offers PAGEFAULT, then each gets POSTCOPY_ADVISE. */
static bool mig_in_pc_advise_cb(void *opaque, GError **errp)
{
    mig_in_pc_ufd_notify(opaque, true);
    return mig_in_pc_each(opaque, vhost_user_base_postcopy_check, "", errp) &&
           mig_in_pc_each(opaque, vhost_user_base_postcopy_advise, "POSTCOPY_ADVISE: ", errp);
}

static bool mig_in_pc_advise(void *opaque, GError **errp)
{
    MigIn *in = opaque;
    MigInPostcopy *p = mig_in_pc(in);
    bool cap;

    g_mutex_lock(&in->mm->lock);
    cap = in->mm->cap_postcopy;
    g_mutex_unlock(&in->mm->lock);
    if (!cap) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "the source migrates with postcopy-ram, but capability postcopy-ram "
                    "is off on this destination (migrate-set-capabilities before "
                    "migrate-incoming)");
        return false;
    }
    if (!mig_postcopy_supported(vmm_machine_memory(in->m), errp)) {
        g_prefix_error(errp, "postcopy-ram: ");
        return false;
    }
    if (!mig_in_wait_ready(in, errp) || !vmm_loop_call(mig_in_pc_advise_cb, in, errp)) {
        return false;
    }
    p->advised = true;
    if (in->preempt && in->lfd >= 0 && !p->pre_thread) {
        p->pre_thread = g_thread_new("postcopy-preempt", mig_in_pc_preempt_thread, p);
    }
    return true;
}

static bool mig_in_pc_new(MigInPostcopy *p, GError **errp)
{
    if (!p->pc) {
        p->pc = mig_postcopy_new(vmm_machine_memory(p->in->m), mig_in_pc_request, p, errp);
        if (p->pc) {
            mig_postcopy_set_sched(p->pc, vmm_mig_fault_sched(p->in->mm));
        }
    }
    return p->pc != NULL;
}

static bool mig_in_pc_discard(uint64_t gpa, uint64_t len, void *opaque, GError **errp)
{
    MigInPostcopy *p = mig_in_pc(opaque);

    return mig_in_pc_new(p, errp) && mig_postcopy_discard(p->pc, gpa, len, errp);
}

/*
 * Loop: POSTCOPY_LISTEN to every back-end (the guest does not run yet);
 * each device has its ufd polled first (mig_in_pc_ufd_changed).
 */
static bool mig_in_pc_listen_cb(void *opaque, GError **errp)
{
    MigIn *in = opaque;

    if (!mig_in_pc_each(in, vhost_user_base_postcopy_listen, "POSTCOPY_LISTEN: ", errp)) {
        return false;
    }
    in->pc->listened = true;
    return true;
}

static bool mig_in_pc_listen(void *opaque, GError **errp)
{
    MigIn *in = opaque;
    MigInPostcopy *p = mig_in_pc(in);

    if (!mig_in_pc_new(p, errp) || !mig_postcopy_listen(p->pc, errp)) {
        return false;
    }
    g_mutex_lock(&in->mm->lock);
    in->mm->pc = p->pc;
    in->mm->in_pc = p;
    in->mm->pc_readvised = 0;
    g_mutex_unlock(&in->mm->lock);
    if (!vmm_loop_call(mig_in_pc_listen_cb, in, errp)) {
        return false;
    }
    g_mutex_lock(&p->lock);
    p->pre_listening = true;
    g_mutex_unlock(&p->lock);
    vmm_mig_set_status(in->mm, VMM_MIG_POSTCOPY_ACTIVE);
    vmm_mig_progress_start(in->mm);
    return true;
}

/* Loop, posted by RUN: the devices' state, then the guest starts. */
static gboolean mig_in_pc_run_cb(gpointer opaque)
{
    MigInPostcopy *p = opaque;
    GError *err = NULL;
    bool ok = mig_in_load_cb(p->in, &err);

    g_mutex_lock(&p->lock);
    p->run_done = true;
    if (!ok) {
        p->run_err = err;
    }
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
    if (ok) {
        vmm_status("migration: postcopy: guest %s on the destination",
                   vmm_runstate_is_running() ? "running" : "loaded (cont starts it)");
    }
    return G_SOURCE_REMOVE;
}

static bool mig_in_pc_run(void *opaque, GError **errp)
{
    MigInPostcopy *p = mig_in_pc(opaque);

    /* Not vmm_loop_call: the loop may fault on a page only we can place. */
    g_mutex_lock(&p->lock);
    p->run_posted = true;
    g_mutex_unlock(&p->lock);
    g_main_context_invoke_full(NULL, G_PRIORITY_HIGH, mig_in_pc_run_cb, p, NULL);
    return true;
}

/* A failed start fails the load at the next page rather than at END. */
static bool mig_in_pc_run_failed(MigInPostcopy *p, GError **errp)
{
    bool failed;

    g_mutex_lock(&p->lock);
    failed = p->run_err != NULL;
    if (failed) {
        g_propagate_error(errp, g_error_copy(p->run_err));
    }
    g_mutex_unlock(&p->lock);
    return failed;
}

/*
 * Once the devices started (their back-ends mapped guest RAM): a page the
 * source still owes must still be a hole. A back-end that locks or
 * pre-faults its mapping (dpdk-testpmd without --no-mlockall) fills those
 * holes with zeros: no fault would ever come for them and the guest would
 * read zeros. mincore faults nothing in: safe on the loop.
 *
 * The scan runs unlocked: over all of guest RAM it takes about 1 ms per
 * 128 MiB, and placements held off that long are faults held off that
 * long, just when the back-ends start and fault (qsd's first faults took
 * 0.5-1 ms behind it). A page it finds present and not received is either
 * half-placed (copied, not yet marked received) or populated by a
 * back-end; under place_lock, written, no page is half-placed, so such a
 * page that is still not received there is the latter. Pages stay present
 * once present (nothing is discarded after LISTEN).
 */
static bool mig_in_pc_check_populated(MigInPostcopy *p, GError **errp)
{
    GuestMemory *mem = vmm_machine_memory(p->in->m);
    g_autoptr(GArray) suspects = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    uint64_t bad = 0, first = 0;

    for (unsigned i = 0; i < guest_memory_nregions(mem); i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);
        uint64_t npages = r->size / MIG_PAGE_SIZE;
        g_autofree unsigned char *vec = g_malloc(npages ? npages : 1);
        uint8_t *host = (uint8_t *)r->block->host + r->block_offset;

        if (mincore(host, r->size, vec) < 0) {
            continue;           /* not decidable: nothing to say */
        }
        for (uint64_t k = 0; k < npages; k++) {
            uint64_t gpa = r->gpa + k * MIG_PAGE_SIZE;

            if ((vec[k] & 1) && !mig_postcopy_received(p->pc, gpa)) {
                g_array_append_val(suspects, gpa);
            }
        }
    }
    if (suspects->len) {
        g_rw_lock_writer_lock(&p->place_lock);
        for (guint i = 0; i < suspects->len; i++) {
            uint64_t gpa = g_array_index(suspects, uint64_t, i);

            if (!mig_postcopy_received(p->pc, gpa)) {
                first = bad++ ? first : gpa;
            }
        }
        g_rw_lock_writer_unlock(&p->place_lock);
    }
    if (bad) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "postcopy: once the devices started, %" PRIu64 " pages the source "
                    "still owes (the first at GPA 0x%" PRIx64 ") were present in guest "
                    "RAM: a back-end populated its mapping (locked memory? dpdk-testpmd "
                    "needs --no-mlockall), so they would read as zeros", bad, first);
        return false;
    }
    return true;
}

bool mig_in_postcopy_devices_started(MigIn *in, GError **errp)
{
    MigInPostcopy *p = in->pc;

    return !p || !p->pc || mig_in_pc_check_populated(p, errp);
}

bool mig_in_postcopy_cont_check(VmmMigrate *mm, GError **errp)
{
    MigInPostcopy *p;
    bool ok = true;

    /* mm->lock keeps p (release clears in_pc under it); place_lock nests inside. */
    g_mutex_lock(&mm->lock);
    p = mm->in_pc;
    if (p) {
        ok = mig_in_pc_check_populated(p, errp);
    }
    if (!ok) {
        g_mutex_lock(&p->lock);
        if (!p->run_err) {
            p->run_err = g_error_copy(*errp);
        }
        g_mutex_unlock(&p->lock);
    }
    g_mutex_unlock(&mm->lock);
    return ok;
}

/* A page read on connection conn ("main", "preempt"): named in the fault trace. */
static bool mig_in_pc_place_from(uint64_t gpa, const void *data, void *opaque,
                                 const char *conn, GError **errp)
{
    MigInPostcopy *p = ((MigIn *)opaque)->pc;
    bool ok;

    if (mig_in_pc_run_failed(p, errp)) {
        return false;
    }
    g_rw_lock_reader_lock(&p->place_lock);
    ok = mig_postcopy_place_from(p->pc, gpa, data, conn, errp);
    g_rw_lock_reader_unlock(&p->place_lock);
    return ok;
}

static bool mig_in_pc_place(uint64_t gpa, const void *data, void *opaque, GError **errp)
{
    return mig_in_pc_place_from(gpa, data, opaque, "main", errp);
}

/* ---- postcopy-preempt: the second connection ------------------------------------ */

/* The preempt thread's placement: counted for query-migrate. */
static bool mig_in_pc_place_preempt(uint64_t gpa, const void *data, void *opaque,
                                    GError **errp)
{
    MigIn *in = opaque;

    if (!mig_in_pc_place_from(gpa, data, opaque, "preempt", errp)) {
        return false;
    }
    g_mutex_lock(&in->mm->lock);
    in->mm->preempt_pages++;
    g_mutex_unlock(&in->mm->lock);
    return true;
}

/*
 * Accepts the source's second connection on the listener kept open and
 * places its pages (requested ones) alongside the load thread. If it
 * breaks, the source serves requests on the main connection: whoever
 * still waits asks again there.
 */
static gpointer mig_in_pc_preempt_thread(gpointer opaque)
{
    MigInPostcopy *p = opaque;
    MigIn *in = p->in;
    g_autoptr(GError) err = NULL;
    int fd = mig_socket_accept(in->lfd, &err);
    MigStream *s = NULL;
    bool stopping, listening;

    g_mutex_lock(&p->lock);
    if (fd >= 0 && !p->pre_stop) {
        p->pre_fd = fd;
        s = mig_stream_new(fd);
    } else if (fd >= 0) {
        close(fd);
    }
    g_mutex_unlock(&p->lock);
    if (s) {
        /*
         * Each requested page waits for this thread to wake
         * (postcopy-sched.c). Warmed after the stream's buffers took
         * their share of its arena, so what the first page allocates
         * finds touched memory.
         */
        vmm_mig_fault_thread_setup(in->mm, "postcopy-preempt");
        vmm_status("migration: postcopy-preempt: the source's second connection is here");
        mig_load_preempt(s, vmm_machine_memory(in->m), mig_in_pc_place_preempt, in, &err);
        g_mutex_lock(&p->lock);
        p->pre_fd = -1;
        g_mutex_unlock(&p->lock);
        mig_stream_free(s);
    }
    g_mutex_lock(&p->lock);
    stopping = p->pre_stop;
    listening = p->pre_listening;
    p->pre_done = true;
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
    if (!stopping && !listening) {
        /*
         * Before LISTEN nothing was asked yet: a migration that ends in
         * precopy closes it so; a break is said. The source sees the
         * hang-up at its switch (mig_out_pc_preempt_take) and serves the
         * requests on the main connection.
         */
        if (err) {
            vmm_status("migration: postcopy-preempt connection, before postcopy: %s; "
                       "requested pages will come on the main connection", err->message);
        }
    } else if (!stopping) {
        vmm_status("migration: postcopy-preempt connection: %s; requested pages come on "
                   "the main connection", err ? err->message : "closed");
        mig_postcopy_rerequest(p->pc);
    }
    return NULL;
}

/* The preempt thread ended and joined (its connection and the listener shut down). */
static void mig_in_pc_preempt_stop(MigInPostcopy *p)
{
    if (!p->pre_thread) {
        return;
    }
    g_mutex_lock(&p->lock);
    p->pre_stop = true;
    if (p->pre_fd >= 0) {
        shutdown(p->pre_fd, SHUT_RDWR);
    }
    g_mutex_unlock(&p->lock);
    /* Wakes an accept() still waiting. */
    shutdown(p->in->lfd, SHUT_RDWR);
    g_thread_join(p->pre_thread);
    p->pre_thread = NULL;
}

/*
 * END came on the main connection: pages the source wrote on the preempt
 * one before it may still be on their way. Waits for every page, while
 * that connection lives (else END's check names what is missing).
 */
static void mig_in_pc_preempt_drain(MigInPostcopy *p)
{
    gint64 end = g_get_monotonic_time() + PC_RUN_TIMEOUT_MS * 1000ll;

    while (p->pre_thread && g_get_monotonic_time() < end) {
        bool done;

        /* In slices: the preempt thread's end is looked at in between. */
        if (mig_postcopy_wait_received(p->pc, MIN(end, g_get_monotonic_time() + 100000))) {
            break;
        }
        g_mutex_lock(&p->lock);
        done = p->pre_done;
        g_mutex_unlock(&p->lock);
        if (done) {
            break;
        }
    }
    mig_in_pc_preempt_stop(p);
}

void mig_in_postcopy_ops(MigLoadOps *ops)
{
    ops->advise = mig_in_pc_advise;
    ops->discard = mig_in_pc_discard;
    ops->listen = mig_in_pc_listen;
    ops->run = mig_in_pc_run;
    ops->place = mig_in_pc_place;
}

/* ---- the end ------------------------------------------------------------------ */

/* Loop (every page is here now): POSTCOPY_END to every advised back-end. */
static bool mig_in_pc_end_cb(void *opaque, GError **errp)
{
    MigIn *in = opaque;
    bool ok = true;

    for (unsigned i = 0; i < vmm_machine_ndevices(in->m); i++) {
        VhostUserBase *vub = vmm_machine_device(in->m, i);
        g_autoptr(GError) err = NULL;

        if (!vhost_user_base_postcopy_end(vub, &err)) {
            if (ok) {
                g_propagate_prefixed_error(errp, g_steal_pointer(&err),
                                           "postcopy: device '%s': POSTCOPY_END: ",
                                           vhost_user_base_id(vub));
            }
            ok = false;
        }
    }
    return ok;
}

static void mig_in_pc_remove_shared(MigInPostcopy *p)
{
    g_autoptr(GArray) fds = NULL;

    /* No device adds or removes a ufd any more: the arrays are ours. */
    mig_in_pc_ufd_notify(p->in, false);
    g_mutex_lock(&p->lock);
    fds = g_array_copy(p->shared_fds);
    g_array_set_size(p->shared_fds, 0);
    g_ptr_array_set_size(p->shared, 0);
    g_mutex_unlock(&p->lock);
    for (guint i = 0; i < fds->len; i++) {
        mig_postcopy_remove_shared(p->pc, g_array_index(fds, int, i));
    }
}

/* Keeps the final figures for query-migrate, then lets go of pc. */
static void mig_in_pc_release(MigInPostcopy *p)
{
    VmmMigrate *mm = p->in->mm;

    if (!p->pc) {
        return;
    }
    mig_in_pc_remove_shared(p);
    g_mutex_lock(&mm->lock);
    if (mm->pc == p->pc) {
        mig_postcopy_get_stats(p->pc, &mm->pc_stats);
        mm->pc_stats_valid = true;
        mm->pc = NULL;
        mm->in_pc = NULL;
    }
    g_mutex_unlock(&mm->lock);
    mig_postcopy_free(p->pc);
    p->pc = NULL;
}

bool mig_in_postcopy_end(MigIn *in, GError **errp)
{
    MigInPostcopy *p = in->pc;
    gint64 end = g_get_monotonic_time() + PC_RUN_TIMEOUT_MS * 1000ll;
    bool done, ok;

    if (!p || !p->advised) {
        return true;
    }
    if (p->pc) {
        mig_in_pc_preempt_drain(p);
    }
    if (p->pc && !mig_postcopy_finish(p->pc, errp)) {
        g_prefix_error(errp, "postcopy: at the end of the stream: ");
        return false;
    }
    g_mutex_lock(&p->lock);
    while (p->run_posted && !p->run_done) {
        if (!g_cond_wait_until(&p->cond, &p->lock, end)) {
            break;
        }
    }
    done = !p->run_posted || p->run_done;
    g_mutex_unlock(&p->lock);
    if (!done) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                    "postcopy: the guest did not start within %u s of the last page",
                    PC_RUN_TIMEOUT_MS / 1000);
        return false;
    }
    if (mig_in_pc_run_failed(p, errp)) {
        return false;
    }
    /*
     * POSTCOPY_END closes the device's copy of each ufd; the fault thread
     * polls its own, so it wakes a back-end that faults before answering.
     */
    ok = vmm_loop_call(mig_in_pc_end_cb, in, errp);
    mig_in_pc_release(p);
    return ok;
}

bool mig_in_postcopy_recoverable(MigIn *in)
{
    MigInPostcopy *p = in->pc;
    bool ok;

    if (!p || !p->pc) {
        return false;
    }
    g_mutex_lock(&p->lock);
    ok = p->run_posted && !p->run_err;
    g_mutex_unlock(&p->lock);
    return ok;
}

MigPostcopy *mig_in_postcopy_ram(MigIn *in)
{
    return in->pc ? in->pc->pc : NULL;
}

void mig_in_postcopy_free(MigIn *in)
{
    MigInPostcopy *p = in->pc;

    if (!p) {
        return;
    }
    mig_in_pc_preempt_stop(p);
    mig_in_pc_ufd_notify(in, false);
    mig_in_pc_release(p);
    /*
     * A start still posted to the loop uses p: wait until it ran. The loop
     * cannot stay blocked on a page: with our userfaultfd closed above, a
     * missing page faults in from the RAM file like any other.
     */
    g_mutex_lock(&p->lock);
    while (p->run_posted && !p->run_done) {
        g_cond_wait(&p->cond, &p->lock);
    }
    g_mutex_unlock(&p->lock);
    g_clear_error(&p->run_err);
    g_ptr_array_unref(p->shared);
    g_array_unref(p->shared_fds);
    g_mutex_clear(&p->lock);
    g_rw_lock_clear(&p->place_lock);
    g_cond_clear(&p->cond);
    g_free(p);
    in->pc = NULL;
}

/* ---- figures, on the loop -------------------------------------------------------- */

void vmm_mig_postcopy_stats_json(VmmMigrate *mm, JsonObject *o)
{
    MigPostcopyStats st;
    JsonObject *j;

    /* mm->lock held by query-migrate. */
    if (mm->pc) {
        mig_postcopy_get_stats(mm->pc, &st);
    } else if (mm->pc_stats_valid) {
        st = mm->pc_stats;
    } else {
        return;
    }
    j = json_object_new();
    json_object_set_int_member(j, "pages-missing", (gint64)st.pages_missing);
    json_object_set_int_member(j, "pages-placed", (gint64)st.pages_placed);
    json_object_set_int_member(j, "pages-zero", (gint64)st.pages_zero);
    json_object_set_int_member(j, "requests", (gint64)st.requests);
    json_object_set_int_member(j, "faults-guest", (gint64)st.faults_guest);
    json_object_set_int_member(j, "faults-backend", (gint64)st.faults_backend);
    json_object_set_int_member(j, "faults-present", (gint64)st.faults_present);
    json_object_set_int_member(j, "blocktime-guest-us", (gint64)st.blocktime_guest_us);
    json_object_set_int_member(j, "blocktime-backend-us", (gint64)st.blocktime_backend_us);
    json_object_set_int_member(j, "guest-p50-us", (gint64)st.guest_p50_us);
    json_object_set_int_member(j, "guest-p90-us", (gint64)st.guest_p90_us);
    json_object_set_int_member(j, "guest-p99-us", (gint64)st.guest_p99_us);
    json_object_set_int_member(j, "guest-max-us", (gint64)st.guest_max_us);
    json_object_set_int_member(j, "backend-p50-us", (gint64)st.backend_p50_us);
    json_object_set_int_member(j, "backend-p90-us", (gint64)st.backend_p90_us);
    json_object_set_int_member(j, "backend-p99-us", (gint64)st.backend_p99_us);
    json_object_set_int_member(j, "backend-max-us", (gint64)st.backend_max_us);
    json_object_set_int_member(j, "backends-readvised", (gint64)mm->pc_readvised);
    json_object_set_string_member(j, "fault-sched", mig_pc_sched_name(st.fault_sched));
    json_object_set_object_member(o, "postcopy", j);
}

void vmm_mig_postcopy_progress(VmmMigrate *mm)
{
    MigPostcopyStats st;

    g_mutex_lock(&mm->lock);
    if (!mm->pc) {
        g_mutex_unlock(&mm->lock);
        return;
    }
    mig_postcopy_get_stats(mm->pc, &st);
    g_mutex_unlock(&mm->lock);
    vmm_status("migration: postcopy, %" PRIu64 " pages missing, %" PRIu64 " placed, %"
               PRIu64 " requested; faults guest %" PRIu64 " back-end %" PRIu64
               "; blocktime p50/p99/max guest %" PRIu64 "/%" PRIu64 "/%" PRIu64
               " us, back-end %" PRIu64 "/%" PRIu64 "/%" PRIu64 " us", st.pages_missing,
               st.pages_placed, st.requests, st.faults_guest, st.faults_backend,
               st.guest_p50_us, st.guest_p99_us, st.guest_max_us, st.backend_p50_us,
               st.backend_p99_us, st.backend_max_us);
}
