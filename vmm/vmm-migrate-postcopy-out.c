/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The source's side of postcopy. With capability postcopy-ram the stream
 * carries POSTCOPY_ADVISE after RAM_SETUP (vmm-migrate-out.c); when
 * migrate-start-postcopy was asked (seen at the next 4 MiB window of a
 * round) the migration thread switches:
 *
 *   guest stopped, dirty logs and ram_track synced: owed = what the round
 *   had not sent yet + what is dirty now; POSTCOPY_DISCARD with those
 *   ranges; POSTCOPY_LISTEN; every device's state; POSTCOPY_RUN (downtime
 *   ends here, status postcopy-active); then the owed pages in windows of
 *   64, and before each window the pages the destination asked for (those
 *   still owed), so a fault never waits behind the background stream;
 *   once nothing is owed, END, then the destination's acknowledgement.
 *
 * Threads: the migration thread writes the stream. A reader thread (the
 * return path, "migration-rp") reads the destination's requests into a
 * queue and sees the final acknowledgement; it only reads the socket, so
 * a request is taken while the writer sleeps in max-bandwidth. The device
 * model is reached through vmm_loop_call as in precopy: the guest is
 * stopped here, so nothing on our loop waits for a page.
 *
 * Past LISTEN the guest runs on the destination with part of its RAM
 * here: our guest stays stopped whatever happens. Past RUN a broken
 * connection pauses (postcopy-paused, vmm-migrate-postcopy-recover.c)
 * until migrate resume=true connects again; before RUN it fails.
 *
 * Untrusted input: the destination's requests. mig_rp_read (return-path.c)
 * checks each (aligned, 1..256 pages inside one region) before it is
 * queued; only pages still owed are sent for it; the queue is bounded
 * (PC_QUEUE_MAX) and an unknown message ends the migration.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib.h>

#include "hw/virtio/vhost-user-base-postcopy.h"
#include "hw/virtio/vhost-user-base.h"
#include "hw/virtio/virtio.h"
#include "migration/convergence.h"
#include "migration/format.h"
#include "migration/postcopy-ram.h"
#include "migration/ram-stream.h"
#include "migration/return-path.h"
#include "migration/socket.h"
#include "util/vhost-user-error.h"
#include "vmm/vmm-loop.h"
#include "vmm/vmm-machine.h"
#include "vmm/vmm-migrate-out-int.h"

/* Pages per background window: requests wait for at most one. */
#define PC_WINDOW_PAGES         64
/* x-postcopy-auto: rounds of precopy before switching when not converged. */
#define PC_AUTO_ROUNDS          5
/*
 * Requests queued at most: the reader stops reading (the destination's
 * writes then block) until the sender took them, so a destination that
 * floods requests costs a bounded queue, not the source's memory.
 */
#define PC_QUEUE_MAX            4096


bool mig_out_postcopy_check(VmmMigrate *mm, GError **errp)
{
    for (unsigned i = 0; i < vmm_machine_ndevices(mm->m); i++) {
        VhostUserBase *vub = vmm_machine_device(mm->m, i);
        g_autoptr(GError) why = NULL;

        if (!vhost_user_base_postcopy_check(vub, &why)) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "postcopy-ram: migration is blocked by device '%s': %s",
                        vhost_user_base_id(vub), why->message);
            return false;
        }
    }
    return true;
}

bool mig_out_postcopy_wanted(MigOut *o, bool round_end)
{
    VmmMigrate *mm = o->mm;
    bool want;

    if (!o->postcopy_cap || !o->track) {
        return false;
    }
    g_mutex_lock(&mm->lock);
    want = mm->start_postcopy ||
           (round_end && mm->postcopy_auto && mm->round >= PC_AUTO_ROUNDS);
    g_mutex_unlock(&mm->lock);
    return want;
}

/* ---- owed pages: claimed atomically (the reader and the sender) ------------ */

static bool owed_test(const uint64_t *b, uint64_t p)
{
    return __atomic_load_n(&b[p / 64], __ATOMIC_ACQUIRE) & (1ull << (p % 64));
}

/* True when p was owed: the caller sends it, nobody else will. */
static bool owed_claim(uint64_t *b, uint64_t p)
{
    uint64_t bit = 1ull << (p % 64);

    return __atomic_fetch_and(&b[p / 64], ~bit, __ATOMIC_ACQ_REL) & bit;
}

static uint64_t pc_nowed(MigOutPostcopy *pc)
{
    return __atomic_load_n(&pc->nowed, __ATOMIC_ACQUIRE);
}

static void pc_nowed_sub(MigOutPostcopy *pc, uint64_t n)
{
    __atomic_sub_fetch(&pc->nowed, n, __ATOMIC_ACQ_REL);
}

/* ---- the return path's reader --------------------------------------------- */

/*
 * postcopy-preempt, on the reader: the owed pages of request m claimed
 * and written on the preempt connection at once, where nothing but other
 * requested pages is queued. They count as owed until written, so END
 * cannot overtake them. False: the connection broke; the pages claimed
 * are owed again and the request goes to the main connection.
 */
static bool mig_out_pc_preempt(MigOut *o, const MigRpMsg *m)
{
    MigOutPostcopy *pc = o->pc;
    g_autoptr(GError) err = NULL;
    uint64_t first = m->gpa / MIG_PAGE_SIZE, end = first + m->npages, n = 0;
    uint64_t claimed[MIG_RP_MAX_PAGES / 64] = { 0 }, resent = 0;
    gint64 t;
    bool ok = true;

    G_STATIC_ASSERT(MIG_RP_MAX_PAGES % 64 == 0);
    for (uint64_t p = first; ok && p < end; p++) {
        uint64_t q = p;

        while (q < end && owed_claim(pc->owed, q)) {
            claimed[(q - first) / 64] |= 1ull << ((q - first) % 64);
            q++;
        }
        if (q > p) {
            ok = mig_ram_save_range(pc->pre, o->mem, p * MIG_PAGE_SIZE, q - p, NULL, &err);
            n += q - p;
        }
        p = q;
    }
    if (ok && !n) {
        /*
         * Nothing owed: these pages left already, on the main connection
         * (they will arrive) or on this one, where they may be lost if it
         * broke; a request asked again after such a break is one of those.
         * Sent again here (the destination ignores a page it has): a broken
         * connection then fails the write and the request goes to the main
         * one, where pages no longer owed are served too.
         */
        ok = mig_ram_save_range(pc->pre, o->mem, m->gpa, m->npages, NULL, &err);
        resent = m->npages;
    }
    t = mig_pc_trace_enabled() ? g_get_monotonic_time() : 0;
    if (ok && mig_stream_flush(pc->pre, &err)) {
        mig_pc_trace_at(t, "page-sent gpa=0x%" PRIx64 " conn=preempt npages=%" PRIu64,
                        m->gpa, n);
        pc_nowed_sub(pc, n);
        g_mutex_lock(&pc->lock);
        g_cond_broadcast(&pc->cond);        /* a sender waiting for nowed */
        g_mutex_unlock(&pc->lock);
        g_mutex_lock(&o->mm->lock);
        o->mm->preempt_pages += n + resent;     /* as the destination counts them */
        g_mutex_unlock(&o->mm->lock);
        return true;
    }
    for (uint64_t i = 0; i < m->npages; i++) {
        if (claimed[i / 64] & (1ull << (i % 64))) {
            __atomic_fetch_or(&pc->owed[(first + i) / 64], 1ull << ((first + i) % 64),
                              __ATOMIC_ACQ_REL);
        }
    }
    g_mutex_lock(&pc->lock);
    pc->pre_broken = true;
    g_mutex_unlock(&pc->lock);
    vmm_status("migration: postcopy-preempt connection: %s; requested pages go on the "
               "main connection from now on", err->message);
    return false;
}

gpointer mig_out_rp_thread(gpointer opaque)
{
    MigOut *o = opaque;
    MigOutPostcopy *pc = o->pc;

    /* Each request waits for this thread to wake (postcopy-sched.c). */
    vmm_mig_fault_thread_setup(o->mm, "migration-rp");
    for (;;) {
        GError *err = NULL;
        MigRpMsg msg;

        if (mig_rp_read(o->fd, o->mem, -1, &msg, &err) && msg.tag == MIG_RP_TAG_FAILED) {
            g_set_error(&err, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                        "the destination failed and gave the migration up");
            g_mutex_lock(&pc->lock);
            pc->dest_failed = true;
            g_mutex_unlock(&pc->lock);
        } else if (!err && msg.tag != MIG_RP_TAG_ACK && msg.tag != MIG_RP_TAG_REQUEST) {
            g_set_error(&err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "return path: message 0x%08x outside a recovery handshake", msg.tag);
        }
        if (err) {
            g_mutex_lock(&pc->lock);
            pc->err = err;
            g_cond_broadcast(&pc->cond);
            g_mutex_unlock(&pc->lock);
            return NULL;
        }
        if (msg.tag == MIG_RP_TAG_REQUEST) {
            mig_pc_trace("request-recv gpa=0x%" PRIx64 " conn=main npages=%" PRIu32,
                         msg.gpa, msg.npages);
            __atomic_store_n(&pc->follow_word, 1 + msg.gpa / MIG_PAGE_SIZE / 64,
                             __ATOMIC_RELEASE);
            /* pre_broken is written by this thread only while it runs. */
            if (pc->pre && !pc->pre_broken && mig_out_pc_preempt(o, &msg)) {
                g_mutex_lock(&o->mm->lock);
                o->mm->postcopy_requests++;
                g_mutex_unlock(&o->mm->lock);
                continue;
            }
        }
        g_mutex_lock(&pc->lock);
        if (msg.tag == MIG_RP_TAG_ACK) {
            pc->acked = true;
        } else {
            while (pc->queue->len >= PC_QUEUE_MAX && !pc->stopping) {
                g_cond_wait(&pc->cond, &pc->lock);
            }
            g_array_append_val(pc->queue, msg);
        }
        g_cond_broadcast(&pc->cond);
        g_mutex_unlock(&pc->lock);
        if (msg.tag == MIG_RP_TAG_ACK) {
            return NULL;
        }
        g_mutex_lock(&o->mm->lock);
        o->mm->postcopy_requests++;
        g_mutex_unlock(&o->mm->lock);
    }
}

void mig_out_pc_stop_reader(MigOutPostcopy *pc)
{
    g_mutex_lock(&pc->lock);
    pc->stopping = true;
    g_cond_broadcast(&pc->cond);
    g_mutex_unlock(&pc->lock);
    /* A reader writing a requested page must not block on a stalled peer. */
    if (pc->pre) {
        mig_stream_shutdown(pc->pre);
    }
    if (pc->reader) {
        g_thread_join(pc->reader);
        pc->reader = NULL;
    }
    /*
     * Gone with the reader: what it wrote may be lost, a recovery's
     * lacking ranges say. Requests go on the main connection from here.
     */
    if (pc->pre) {
        mig_stream_free(pc->pre);
        pc->pre = NULL;
        pc->pre_broken = true;
    }
}

void mig_out_postcopy_cleanup(MigOut *o)
{
    MigOutPostcopy *pc = o->pc;

    if (!pc) {
        return;
    }
    /* The caller shut the stream down unless the reader saw the ack. */
    mig_out_pc_stop_reader(pc);
    g_array_unref(pc->queue);
    g_array_unref(pc->rings);
    g_clear_error(&pc->err);
    g_mutex_clear(&pc->lock);
    g_cond_clear(&pc->cond);
    g_free(pc->owed);
    g_free(pc);
    o->pc = NULL;
}

/* ---- owed pages --------------------------------------------------------- */

/*
 * What the destination lacks: the round's rest (from switch_word; all of
 * it in round 1) and what the guest and the back-ends dirtied, limited to
 * guest RAM's pages.
 */
static void mig_out_owed(MigOut *o)
{
    MigOutPostcopy *pc = o->pc;
    g_autofree uint64_t *ram = g_new0(uint64_t, o->nwords ? o->nwords : 1);

    for (unsigned i = 0; i < guest_memory_nregions(o->mem); i++) {
        const MemoryRegionMap *r = guest_memory_region(o->mem, i);

        for (uint64_t p = r->gpa / MIG_PAGE_SIZE; p < (r->gpa + r->size) / MIG_PAGE_SIZE; p++) {
            ram[p / 64] |= 1ull << (p % 64);
        }
    }
    pc->nowed = 0;
    for (uint64_t w = 0; w < o->nwords; w++) {
        uint64_t rest = o->switch_all && w >= o->switch_word ? ~0ull : 0;

        pc->owed[w] = (o->bitmap[w] | rest) & ram[w];
        o->bitmap[w] = 0;
        pc->nowed += (uint64_t)__builtin_popcountll(pc->owed[w]);
    }
}

/*
 * Loop, the guest stopped: the pages of every device's rings into
 * o->pc->rings. A device touches its rings first when it starts on the
 * destination (the back-end at SET_VRING_ADDR and the first kick, the
 * guest at its next request), all at once and in the busiest moment of
 * the switch; each missing one would cost a request there.
 */
static bool mig_out_pc_rings_cb(void *opaque, GError **errp)
{
    MigOut *o = opaque;

    for (unsigned i = 0; i < vmm_machine_ndevices(o->m); i++) {
        VirtIODevice *vdev = vhost_user_base_vdev(vmm_machine_device(o->m, i));

        for (unsigned n = 0; vdev && n < virtio_get_num_queues(vdev); n++) {
            uint64_t gpa[VIRTIO_QUEUE_RING_AREAS], len[VIRTIO_QUEUE_RING_AREAS];
            unsigned k = virtio_queue_get_ring_areas(vdev, n, gpa, len);

            for (unsigned a = 0; a < k; a++) {
                for (uint64_t p = gpa[a] / MIG_PAGE_SIZE;
                     len[a] && p <= (gpa[a] + len[a] - 1) / MIG_PAGE_SIZE; p++) {
                    g_array_append_val(o->pc->rings, p);
                }
            }
        }
    }
    return true;
}

/*
 * The rings' owed pages, sent now, ahead of DISCARD (the stream allows
 * pages up to it): in the downtime, a few pages per ring, so that no
 * device's start on the destination waits for a page. Claimed, so
 * DISCARD leaves them out and nothing sends them again.
 */
static bool mig_out_pc_rings_ahead(MigOut *o, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    uint64_t n = 0;

    if (g_strcmp0(g_getenv("VHOST_USER_VMM_POSTCOPY_RINGS_AHEAD"), "0") == 0) {
        return true;
    }
    if (!vmm_loop_call(mig_out_pc_rings_cb, o, errp)) {
        return false;
    }
    for (guint i = 0; i < pc->rings->len; i++) {
        uint64_t p = g_array_index(pc->rings, uint64_t, i);

        /* The guest chose the addresses: only pages of guest RAM are owed. */
        if (p / 64 < o->nwords && owed_claim(pc->owed, p)) {
            if (!mig_ram_save_range(o->s, o->mem, p * MIG_PAGE_SIZE, 1, NULL, errp)) {
                return false;
            }
            n++;
        }
    }
    pc_nowed_sub(pc, n);
    g_mutex_lock(&o->mm->lock);
    o->mm->postcopy_rings_ahead = n;
    g_mutex_unlock(&o->mm->lock);
    return true;
}

/* POSTCOPY_DISCARD sections: the owed runs, each inside one region. */
static bool mig_out_discard(MigOut *o, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    g_autofree uint64_t *ranges = g_new(uint64_t, 2 * MIG_DISCARD_MAX_RANGES);
    unsigned n = 0;

    for (unsigned i = 0; i < guest_memory_nregions(o->mem); i++) {
        const MemoryRegionMap *r = guest_memory_region(o->mem, i);
        uint64_t p = r->gpa / MIG_PAGE_SIZE, end = (r->gpa + r->size) / MIG_PAGE_SIZE;

        while (p < end) {
            uint64_t q;

            if (!owed_test(pc->owed, p)) {
                p++;
                continue;
            }
            for (q = p + 1; q < end && owed_test(pc->owed, q); q++) {
            }
            ranges[2 * n] = p * MIG_PAGE_SIZE;
            ranges[2 * n + 1] = (q - p) * MIG_PAGE_SIZE;
            if (++n == MIG_DISCARD_MAX_RANGES) {
                if (!mig_save_postcopy_discard(o->s, ranges, n, errp)) {
                    return false;
                }
                n = 0;
            }
            p = q;
        }
    }
    return !n || mig_save_postcopy_discard(o->s, ranges, n, errp);
}

/* ---- the background stream and the requests ------------------------------ */

static void mig_out_pc_figures(MigOut *o, gint64 t0, uint64_t sent0)
{
    VmmMigrate *mm = o->mm;
    uint64_t now = mig_stream_bytes_written(o->s);

    g_mutex_lock(&mm->lock);
    mm->transferred = o->bytes_prev + now;
    mm->remaining = pc_nowed(o->pc) * MIG_PAGE_SIZE;
    mm->mbps_x1000 = mig_bandwidth(now - sent0, (uint64_t)(g_get_monotonic_time() - t0)) *
                     8 / 1000;
    g_mutex_unlock(&mm->lock);
}

/*
 * Sends the owed pages of [p, p + n) (one region) and claims them; any:
 * the pages no longer owed too (the preempt connection broke: one sent
 * there may be lost; the destination ignores a page it has).
 */
static bool mig_out_serve(MigOut *o, uint64_t p, uint64_t n, bool any, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    uint64_t end = p + n;

    for (; p < end; p++) {
        uint64_t q = p, claimed = 0;

        for (; q < end; q++) {
            bool mine = owed_claim(pc->owed, q);

            if (!mine && !any) {
                break;
            }
            claimed += mine;
        }
        pc_nowed_sub(pc, claimed);
        if (q > p &&
            !mig_ram_save_range(o->s, o->mem, p * MIG_PAGE_SIZE, q - p, NULL, errp)) {
            return false;
        }
        p = q;
    }
    return true;
}

/*
 * The requests queued so far, flushed at once (max-bandwidth is the
 * background's: mig_out_pace). A reader that failed fails the migration.
 */
static bool mig_out_serve_requests(MigOut *o, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    g_autoptr(GArray) q = NULL;
    bool ok = true, any;
    gint64 t;

    g_mutex_lock(&pc->lock);
    any = pc->pre_broken;
    if (pc->err) {
        g_propagate_prefixed_error(errp, g_error_copy(pc->err), "postcopy: ");
        g_mutex_unlock(&pc->lock);
        return false;
    }
    if (pc->queue->len) {
        q = pc->queue;
        pc->queue = g_array_new(FALSE, FALSE, sizeof(MigRpMsg));
        g_cond_broadcast(&pc->cond);    /* a reader waiting for room */
    }
    g_mutex_unlock(&pc->lock);
    if (!q) {
        return true;
    }
    for (guint i = 0; ok && i < q->len; i++) {
        const MigRpMsg *m = &g_array_index(q, MigRpMsg, i);

        /* mig_rp_read checked: aligned, inside one region, bounded. */
        mig_pc_trace("request-taken gpa=0x%" PRIx64 "%s", m->gpa,
                     owed_test(pc->owed, m->gpa / MIG_PAGE_SIZE) ? "" : " owed=0");
        ok = mig_out_serve(o, m->gpa / MIG_PAGE_SIZE, m->npages, any, errp);
    }
    t = mig_pc_trace_enabled() ? g_get_monotonic_time() : 0;
    if (!ok || !mig_stream_flush(o->s, errp)) {
        return false;
    }
    for (guint i = 0; t && i < q->len; i++) {
        mig_pc_trace_at(t, "page-sent gpa=0x%" PRIx64 " conn=main",
                        g_array_index(q, MigRpMsg, i).gpa);
    }
    return true;
}

/*
 * max-bandwidth for the background alone: the stream itself is unlimited
 * from the switch on, so a requested page never waits in a throttled
 * write. Before a window, until its bytes are within the limit since
 * *t0 (restarted when the limit changes), waits for a request instead.
 * False: go and serve one first.
 */
static bool mig_out_pace(MigOut *o, gint64 *t0, uint64_t *bytes, uint64_t *bw_now)
{
    MigOutPostcopy *pc = o->pc;
    uint64_t bw;
    gint64 due;

    g_mutex_lock(&o->mm->lock);
    bw = o->mm->max_bandwidth;
    g_mutex_unlock(&o->mm->lock);
    if (bw != *bw_now) {
        *bw_now = bw;
        *t0 = g_get_monotonic_time();
        *bytes = 0;
    }
    if (!bw) {
        return true;
    }
    due = *t0 + (gint64)((double)*bytes * G_USEC_PER_SEC / (double)bw);
    g_mutex_lock(&pc->lock);
    while (!pc->queue->len && !pc->err && g_get_monotonic_time() < due) {
        g_cond_wait_until(&pc->cond, &pc->lock, due);
    }
    g_mutex_unlock(&pc->lock);
    return g_get_monotonic_time() >= due;
}

/*
 * Nothing owed is left unclaimed, but pages claimed by the reader for the
 * preempt connection are still being written: wait for them (or a
 * request, or the reader's end). Bounded: the loop looks again.
 */
static void mig_out_pc_wait_preempt(MigOutPostcopy *pc)
{
    gint64 end = g_get_monotonic_time() + 100 * 1000;

    g_mutex_lock(&pc->lock);
    while (!pc->queue->len && !pc->err && pc_nowed(pc) &&
           g_cond_wait_until(&pc->cond, &pc->lock, end)) {
    }
    g_mutex_unlock(&pc->lock);
}

/*
 * With postcopy-preempt the requested pages leave from the reader thread:
 * the background stream (this thread) only competes with it for a CPU.
 * On a loaded machine the reader then waits behind it to be scheduled,
 * and a fault with it. So the background runs at a lower priority while
 * the preempt connection serves requests (back to normal when it breaks:
 * then this thread serves them). VHOST_USER_VMM_POSTCOPY_BG: "nice" (the
 * default: nice 10), "idle" (SCHED_IDLE) or "normal".
 */
static bool mig_out_background_run(MigOut *o, bool *low, GError **errp);

typedef enum PcBgPrio {
    PC_BG_NORMAL,
    PC_BG_NICE,
    PC_BG_IDLE,
} PcBgPrio;

#define PC_BG_NICE_VALUE    10

static PcBgPrio mig_out_pc_bg_prio(void)
{
    const char *e = g_getenv("VHOST_USER_VMM_POSTCOPY_BG");

    return !e || !strcmp(e, "nice") ? PC_BG_NICE : !strcmp(e, "idle") ? PC_BG_IDLE :
           PC_BG_NORMAL;
}

/* This thread's scheduling: low (as prio says) or back to normal. */
static void mig_out_pc_bg_set(PcBgPrio prio, bool low)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    struct sched_param sp = { 0 };
    int r = 0;

    if (prio == PC_BG_IDLE) {
        r = sched_setscheduler(tid, low ? SCHED_IDLE : SCHED_OTHER, &sp);
    } else if (prio == PC_BG_NICE) {
        r = setpriority(PRIO_PROCESS, (id_t)tid, low ? PC_BG_NICE_VALUE : 0);
    }
    if (r < 0) {
        /* Only the latency suffers: say so once per change, go on. */
        vmm_status("migration: postcopy: background priority %s: %s",
                   low ? "lower" : "normal", g_strerror(errno));
    }
}

/* The owed pages, requests first, until none is left. */
static bool mig_out_background(MigOut *o, GError **errp)
{
    PcBgPrio prio = o->pc->pre ? mig_out_pc_bg_prio() : PC_BG_NORMAL;
    bool low = prio != PC_BG_NORMAL, ok;

    if (low) {
        mig_out_pc_bg_set(prio, true);
    }
    ok = mig_out_background_run(o, &low, errp);
    if (low) {
        mig_out_pc_bg_set(prio, false);
    }
    return ok;
}

/* mig_out_background; *low: at a lower priority, cleared once the preempt connection broke. */
static bool mig_out_background_run(MigOut *o, bool *low, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    gint64 t0 = g_get_monotonic_time();
    uint64_t sent0 = mig_stream_bytes_written(o->s);
    /*
     * From where the round stopped, as precopy would have gone on: what the
     * guest touched lately (dirty, anywhere) comes by request.
     */
    uint64_t w = o->switch_word < o->nwords ? o->switch_word : 0, scanned = 0;
    uint64_t bg_bytes = 0, bw_now = 0;
    gint64 bg_t0 = t0;

    mig_stream_set_max_bandwidth(o->s, 0);
    o->bw_applied = 0;
    while (pc_nowed(pc)) {
        uint64_t bits, f, n = 0;

        if (!mig_out_serve_requests(o, errp)) {
            return false;
        }
        if (*low) {
            bool broken;

            g_mutex_lock(&pc->lock);
            broken = pc->pre_broken;
            g_mutex_unlock(&pc->lock);
            if (broken) {
                /* Requests come through this thread now: no longer behind anyone. */
                mig_out_pc_bg_set(mig_out_pc_bg_prio(), false);
                *low = false;
            }
        }
        if (!pc_nowed(pc)) {
            break;
        }
        if (!mig_out_pace(o, &bg_t0, &bg_bytes, &bw_now)) {
            continue;
        }
        /*
         * Where the guest or a back-end faulted last, its neighbours are
         * likely next (a buffer, a ring, a stack): go on from there, as
         * QEMU's scan does, rather than from where the stream was. The
         * requested page itself left by request.
         */
        f = __atomic_exchange_n(&pc->follow_word, 0, __ATOMIC_ACQ_REL);
        if (pc->follow && f && f - 1 < o->nwords) {
            w = f - 1;
            g_mutex_lock(&o->mm->lock);
            o->mm->postcopy_followed++;
            g_mutex_unlock(&o->mm->lock);
        }
        /* The next word with owed pages, in address order, wrapping around. */
        while (!__atomic_load_n(&pc->owed[w], __ATOMIC_ACQUIRE) && scanned < o->nwords) {
            w = (w + 1) % o->nwords;
            scanned++;
        }
        if (scanned == o->nwords) {
            /* The rest is being written on the preempt connection. */
            mig_out_pc_wait_preempt(pc);
            scanned = 0;
            continue;
        }
        scanned = 0;
        G_STATIC_ASSERT(PC_WINDOW_PAGES == 64);     /* one bitmap word */
        bits = __atomic_exchange_n(&pc->owed[w], 0, __ATOMIC_ACQ_REL);
        if (!bits) {
            continue;           /* the reader claimed them meanwhile */
        }
        o->window[w] = bits;
        pc_nowed_sub(pc, (uint64_t)__builtin_popcountll(bits));
        if (!mig_ram_save_dirty(o->s, o->mem, o->window, o->nwords * 64, &n, errp)) {
            return false;
        }
        o->window[w] = 0;
        bg_bytes += n;
        mig_out_pc_figures(o, t0, sent0);
    }
    mig_out_pc_figures(o, t0, sent0);
    return true;
}

/* After END: the destination's "VUOK", seen by the reader. */
static bool mig_out_pc_wait_ack(MigOut *o, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    gint64 end = g_get_monotonic_time() + VMM_MIGRATE_ACK_TIMEOUT_MS * 1000ll;
    bool ok = false;

    g_mutex_lock(&pc->lock);
    while (!pc->acked && !pc->err) {
        if (!g_cond_wait_until(&pc->cond, &pc->lock, end)) {
            break;
        }
    }
    if (pc->acked) {
        ok = true;
    } else if (pc->err) {
        g_propagate_prefixed_error(errp, g_error_copy(pc->err), "postcopy: ");
    } else {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                    "postcopy: the destination did not confirm within %u s that it has "
                    "every page", VMM_MIGRATE_ACK_TIMEOUT_MS / 1000);
    }
    g_mutex_unlock(&pc->lock);
    return ok;
}

/* ---- the switch ------------------------------------------------------------ */

void mig_out_pc_preempt_connect(MigOut *o)
{
    g_autoptr(GError) err = NULL;
    int fd = mig_socket_connect(o->uri, &err);
    MigStream *s;

    if (fd >= 0) {
        s = mig_stream_new(fd);
        if (mig_save_header(s, &err) &&
            mig_save_postcopy_section(s, MIG_SECTION_POSTCOPY_PREEMPT, &err)) {
            o->pre = s;
            return;
        }
        mig_stream_free(s);
    }
    vmm_status("migration: postcopy-preempt: no second connection (%s); requested pages "
               "go on the main connection", err->message);
}

/*
 * The second connection made after ADVISE, if it still stands. Looked at
 * here rather than learnt from a write: over TCP a write to a peer that
 * closed may still succeed once, and the page in it would be lost.
 */
static MigStream *mig_out_pc_preempt_take(MigOut *o)
{
    if (!o->pre) {
        return NULL;
    }
    if (!mig_stream_peer_gone(o->pre)) {
        return g_steal_pointer(&o->pre);
    }
    vmm_status("migration: postcopy-preempt: the second connection ended before the switch; "
               "requested pages go on the main connection");
    mig_stream_free(g_steal_pointer(&o->pre));
    return NULL;
}

bool mig_out_postcopy(MigOut *o, GError **errp)
{
    VmmMigrate *mm = o->mm;
    MigOutPostcopy *pc;
    uint64_t dirty = 0;
    gint64 t_stop;

    vmm_status("migration: switching to postcopy");
    vmm_runstate_set(VMM_RUN_STATE_FINISH_MIGRATE);
    t_stop = g_get_monotonic_time();
    if (!vmm_machine_vm_stop(o->m, errp)) {
        return false;
    }
    o->stopped = o->was_running;
    /* The rings are stopped: the back-ends' last writes are in their logs. */
    if (!mig_out_sync(o, &dirty, errp)) {
        return false;
    }
    pc = o->pc = g_new0(MigOutPostcopy, 1);
    g_mutex_init(&pc->lock);
    g_cond_init(&pc->cond);
    pc->queue = g_array_new(FALSE, FALSE, sizeof(MigRpMsg));
    pc->rings = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    pc->owed = g_new0(uint64_t, o->nwords ? o->nwords : 1);
    pc->follow = g_strcmp0(g_getenv("VHOST_USER_VMM_POSTCOPY_FOLLOW"), "0") != 0;
    mig_out_owed(o);
    if (!vmm_loop_call(mig_out_save_cb, o, errp)) {
        return false;
    }
    if (!mig_out_no_return(o, &mm->postcopy, errp)) {
        return false;
    }
    pc->pre = mig_out_pc_preempt_take(o);
    /* Requests may come as soon as the destination listens. */
    pc->reader = g_thread_new("migration-rp", mig_out_rp_thread, o);
    if (!mig_out_pc_rings_ahead(o, errp) || !mig_out_discard(o, errp)) {
        return false;
    }
    o->postcopy_switched = true;
    if (!mig_save_postcopy_section(o->s, MIG_SECTION_POSTCOPY_LISTEN, errp) ||
        !mig_out_send_devices(o, errp) ||
        !mig_save_postcopy_section(o->s, MIG_SECTION_POSTCOPY_RUN, errp)) {
        return false;
    }
    g_mutex_lock(&mm->lock);
    mm->downtime_ms = (gint64)vmm_mig_ms_since(t_stop);
    mm->remaining = pc->nowed * MIG_PAGE_SIZE;
    g_mutex_unlock(&mm->lock);
    vmm_mig_set_status(mm, VMM_MIG_POSTCOPY_ACTIVE);
    vmm_status("migration: postcopy: the guest runs on the destination, %" PRIu64
               " MiB still to send (%" PRIu64 " ring pages sent ahead)",
               (pc->nowed * MIG_PAGE_SIZE) >> 20, mm->postcopy_rings_ahead);

    for (;;) {
        g_autoptr(GError) err = NULL;
        bool ended = false;

        if (mig_out_background(o, &err) && mig_out_no_return(o, &mm->end_sent, &err) &&
            mig_save_end(o->s, &err) && (ended = true) && mig_out_pc_wait_ack(o, &err)) {
            break;
        }
        if (ended) {
            /* The destination may have completed, or lack the last pages: resume tells. */
            g_prefix_error(&err, "after END, without the destination's acknowledgement "
                           "(if it completed, migrate-recover there and resume here "
                           "confirm it): ");
        }
        /* postcopy-paused until migrate resume=true reconnects (or the VMM exits). */
        if (!mig_out_pc_recover(o, g_steal_pointer(&err), errp)) {
            return false;
        }
    }
    g_mutex_lock(&mm->lock);
    mm->transferred = o->bytes_prev + mig_stream_bytes_written(o->s);
    mm->remaining = 0;
    g_mutex_unlock(&mm->lock);
    return true;
}
