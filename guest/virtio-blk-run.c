/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-blk driver, its request engine: a run's request
 * slots in the buffer pool, submitting what a generator gives round robin
 * over the queues, completing and verifying against the generation table,
 * waiting for the device (sleep or poll), recovering after a device
 * reset, parking for a migration. The workload (virtio-blk-workload.c)
 * and the synchronous operations (virtio-blk-sync.c) are runs of it; the
 * driver object and its tables are in virtio-blk-drv.c.
 *
 * The device is untrusted: a completion naming a request we do not have
 * in flight, a status byte that is not one of the three defined values,
 * or a device that stops completing are all reported (naming the device
 * and the request), never followed. Verification failures do not stop a
 * run: they are counted, the first one is reported.
 *
 * Untrusted input: the driver's state page is in guest RAM, which every
 * back-end maps read/write. It is compared with the driver's own copy of
 * the layout (VirtioBlkDrv.tracked, .pool_*) once a round, and a
 * difference fails the device ("device state in RAM corrupted"), as does
 * a queue that found its own state corrupted.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <glib.h>

#include "virtio-blk-drv-int.h"

/*
 * fatal: stops the run (the device misbehaved). Otherwise a failure that
 * does not stop it (I/O error, mismatch): counted by the caller, the
 * first one kept for the report.
 */
static void run_error(BlkRun *run, bool fatal, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void run_error(BlkRun *run, bool fatal, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (fatal ? run->fatal != NULL : run->res->first_error != NULL) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (fatal) {
        run->fatal = g_error_new(GUEST_ERROR, GUEST_ERROR_DEVICE, "%s: %s",
                                 run->d->name, msg);
    } else {
        run->res->first_error = g_strdup_printf("%s: %s", run->d->name, msg);
    }
    g_free(msg);
}

/*
 * The driver's state page against the driver's own copy of it: a back-end
 * wrote it. A handful of compares, once a round of the pump. NULL when
 * intact, else the message (newly allocated).
 */
static char *blk_state_corruption(const VirtioBlkDrv *d)
{
    const BlkDrvState *st = d->st;
    uint64_t gen_gpa = d->pool_gpa + d->pool_size;
    GuestStateDiff diff = { 0 };

    GUEST_STATE_CHECK(&diff, st, seed, d->seed);
    GUEST_STATE_CHECK(&diff, st, tracked, d->tracked);
    GUEST_STATE_CHECK(&diff, st, pool_gpa, d->pool_gpa);
    GUEST_STATE_CHECK(&diff, st, pool_size, d->pool_size);
    GUEST_STATE_CHECK(&diff, st, gen_gpa, gen_gpa);
    GUEST_STATE_CHECK(&diff, st, inflight_gpa, gen_gpa + d->tracked * 4);
    if (!diff.field) {
        return NULL;
    }
    return g_strdup_printf("device state in RAM corrupted: %s: driver state %s is %"
                           PRIu64 " (0x%" PRIx64 "), the driver set %" PRIu64, d->name,
                           diff.field, diff.found, diff.found, diff.want);
}

/*
 * Something of the driver's in guest RAM (its state page, a queue's
 * state) was found corrupted: the run stops and the device is failed (a
 * driver that cannot trust its own bookkeeping must not touch it again).
 * True when so.
 */
static bool run_corrupted(BlkRun *run)
{
    VirtioBlkDrv *d = run->d;
    char *msg = blk_state_corruption(d);

    for (unsigned q = 0; q < d->nvqs && !msg; q++) {
        msg = guest_vq_corruption(&d->vqs[q], d->name, q);
    }
    if (!msg) {
        return false;
    }
    if (!run->fatal) {
        run->fatal = g_error_new_literal(GUEST_ERROR, GUEST_ERROR_DEVICE, msg);
    }
    d->broken = true;
    g_free(msg);
    return true;
}

bool blk_run_setup(BlkRun *run, VirtioBlkDrv *d, unsigned nq, unsigned depth,
                      uint32_t slot_bytes, const WorkloadCtl *ctl,
                      VirtioBlkResult *res, GError **errp)
{
    unsigned nslots = nq * depth;
    uint64_t meta_bytes = ALIGN_UP((uint64_t)nslots * BLK_META_SIZE, BLK_PAGE);
    uint64_t slot = ALIGN_UP(MAX(slot_bytes, (uint32_t)BLK_PAGE), BLK_PAGE);

    memset(run, 0, sizeof(*run));
    if (d->broken) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_BROKEN,
                    "%s: driver stopped after an earlier device failure", d->name);
        return false;
    }
    if (meta_bytes + slot * nslots > d->pool_size) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_NO_SPACE,
                    "%s: %u queues x iodepth %u x %" PRIu32
                    " bytes do not fit the %" PRIu64 "-byte buffer pool",
                    d->name, nq, depth, slot_bytes, d->pool_size);
        return false;
    }
    run->d = d;
    if (ctl) {
        run->ctl = *ctl;
    }
    if (!run->ctl.poll_ms) {
        run->ctl.poll_ms = 50;
    }
    if (!run->ctl.stall_ms) {
        run->ctl.stall_ms = 30000;
    }
    run->nq = nq;
    run->depth = depth;
    run->slot_bytes = slot_bytes;
    run->res = res;
    run->reqs = g_new0(BlkReq, nslots);
    run->free_cnt = g_new0(unsigned, nq);
    for (unsigned i = 0; i < nslots; i++) {
        BlkReq *r = &run->reqs[i];
        r->q = i / depth;
        r->meta_gpa = d->pool_gpa + (uint64_t)i * BLK_META_SIZE;
        r->meta = d->pool + (uint64_t)i * BLK_META_SIZE;
        r->data_gpa = d->pool_gpa + meta_bytes + slot * i;
        r->data = d->pool + meta_bytes + slot * i;
    }
    for (unsigned q = 0; q < nq; q++) {
        run->free_cnt[q] = depth;
    }
    run->last_done_ns = run->last_progress_ns = wl_now_ns();
    run->poll = BLK_POLL_OFF;
    run->spin_ns = BLK_POLL_ADAPTIVE_MAX_NS / 4;
    return true;
}

void blk_run_cleanup(BlkRun *run)
{
    g_free(run->reqs);
    g_free(run->free_cnt);
    if (run->fatal) {
        g_error_free(run->fatal);
    }
}

static BlkReq *run_free_req(BlkRun *run, unsigned q)
{
    for (unsigned i = 0; i < run->depth; i++) {
        BlkReq *r = &run->reqs[q * run->depth + i];
        if (!r->busy) {
            return r;
        }
    }
    return NULL;
}

static void fill_write(BlkRun *run, BlkReq *r)
{
    VirtioBlkDrv *d = run->d;

    for (uint32_t i = 0; i < r->op.nsect; i++) {
        uint64_t s = r->op.sector + i;
        pattern_fill(r->data + (size_t)i * VIRTIO_BLK_SECTOR_SIZE,
                     VIRTIO_BLK_SECTOR_SIZE, s, blk_next_gen(d, s, r->op.fill),
                     d->seed);
    }
}

/*
 * Puts r's chain (header, data, status, all already in guest RAM) on its
 * queue. Its buffers are not touched: a request submitted again after a
 * device reset carries exactly what it carried the first time.
 */
static bool run_add_chain(BlkRun *run, BlkReq *r)
{
    const BlkOp *op = &r->op;
    GuestSg out[2], in[2];
    unsigned n_out = 0, n_in = 0;
    uint32_t bytes = op->nsect * VIRTIO_BLK_SECTOR_SIZE;

    r->meta[BLK_META_STATUS] = 0xff;    /* not a status: catches no write */
    out[n_out++] = (GuestSg){ r->meta_gpa, sizeof(VirtioBlkOutHdr) };
    switch (op->type) {
    case VIRTIO_BLK_T_OUT:
        out[n_out++] = (GuestSg){ r->data_gpa, bytes };
        break;
    case VIRTIO_BLK_T_IN:
        in[n_in++] = (GuestSg){ r->data_gpa, bytes };
        break;
    case VIRTIO_BLK_T_GET_ID:
        in[n_in++] = (GuestSg){ r->data_gpa, VIRTIO_BLK_ID_BYTES };
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        out[n_out++] = (GuestSg){ r->meta_gpa + BLK_META_SEG, sizeof(VirtioBlkDiscardWz) };
        break;
    default:
        break;
    }
    in[n_in++] = (GuestSg){ r->meta_gpa + BLK_META_STATUS, 1 };
    return guest_vq_add(&run->d->vqs[r->q], out, n_out, in, n_in,
                        (uint64_t)(r - run->reqs));
}

static bool run_submit(BlkRun *run, unsigned q, const BlkOp *op)
{
    VirtioBlkDrv *d = run->d;
    BlkReq *r = run_free_req(run, q);
    VirtioBlkOutHdr hdr = { .type = op->type, .ioprio = 0, .sector = op->sector };

    g_assert(r);
    r->op = *op;
    memcpy(r->meta, &hdr, sizeof(hdr));
    switch (op->type) {
    case VIRTIO_BLK_T_OUT:
        fill_write(run, r);
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        VirtioBlkDiscardWz seg = {
            .sector = op->sector, .num_sectors = op->nsect, .flags = op->flags,
        };
        /* The header's sector is reserved for these: the segment says it. */
        hdr.sector = 0;
        memcpy(r->meta, &hdr, sizeof(hdr));
        memcpy(r->meta + BLK_META_SEG, &seg, sizeof(seg));
        break;
    }
    default:
        break;
    }
    if (!run_add_chain(run, r)) {
        return false;
    }
    r->busy = true;
    r->submit_ns = wl_now_ns();
    run->free_cnt[q]--;
    run->in_flight++;
    if (op->nsect) {
        blk_range_mark(d, op->sector, op->nsect, true);
    }
    return true;
}

/* Checks what a read brought back against the generation table. */
static void verify_read(BlkRun *run, BlkReq *r)
{
    VirtioBlkDrv *d = run->d;

    for (uint32_t i = 0; i < r->op.nsect; i++) {
        uint64_t s = r->op.sector + i;
        const uint8_t *buf = r->data + (size_t)i * VIRTIO_BLK_SECTOR_SIZE;
        uint32_t e;
        PatternMismatch mm;
        size_t off;

        if (s >= d->tracked) {
            break;
        }
        e = d->gen[s];
        if (e == 0 || (e & GEN_UNKNOWN)) {
            continue;
        }
        if (e & GEN_ZERO) {
            if (pattern_is_zero(buf, VIRTIO_BLK_SECTOR_SIZE, &off)) {
                run->res->sectors_verified++;
                continue;
            }
            run->res->mismatches++;
            run_error(run, false, "sector %" PRIu64 " (byte offset %" PRIu64
                      ") should read as zeroes, non-zero at byte %zu",
                      s, s * VIRTIO_BLK_SECTOR_SIZE, off);
            continue;
        }
        if (pattern_check(buf, VIRTIO_BLK_SECTOR_SIZE, s, e & GEN_MASK,
                          d->seed, &mm)) {
            run->res->sectors_verified++;
            continue;
        }
        run->res->mismatches++;
        if (mm.header_ok) {
            bool seed = mm.offset >= offsetof(PatternHeader, seed) &&
                        mm.offset < sizeof(PatternHeader);

            run_error(run, false, "sector %" PRIu64 " (byte offset %" PRIu64
                      ") mismatch at byte %zu: expected sector %" PRIu64
                      " generation %" PRIu32 ", found sector %" PRIu64
                      " generation %" PRIu64 "%s", s, s * VIRTIO_BLK_SECTOR_SIZE,
                      mm.offset, s, e & GEN_MASK, mm.found_id,
                      mm.found_generation, seed ? " of another seed" : "");
        } else {
            run_error(run, false, "sector %" PRIu64 " (byte offset %" PRIu64
                      ") mismatch at byte %zu: expected generation %" PRIu32
                      ", found no pattern header", s,
                      s * VIRTIO_BLK_SECTOR_SIZE, mm.offset, e & GEN_MASK);
        }
    }
}

static void run_complete(BlkRun *run, BlkReq *r, uint32_t len)
{
    VirtioBlkDrv *d = run->d;
    VirtioBlkResult *res = run->res;
    uint8_t status = r->meta[BLK_META_STATUS];
    uint64_t now = wl_now_ns();
    uint64_t bytes = 0;
    bool ok = status == VIRTIO_BLK_S_OK;

    /*
     * len is not relied upon: devices have long been lax with it, and
     * the status byte says whether the data is there.
     */
    (void)len;
    if (!ok) {
        res->io_errors++;
        run_error(run, false, "%s of %" PRIu32 " sectors at sector %" PRIu64
                  " failed: status %u (%s)", blk_type_name(r->op.type),
                  r->op.nsect, r->op.sector, status,
                  status == VIRTIO_BLK_S_IOERR ? "I/O error" :
                  status == VIRTIO_BLK_S_UNSUPP ? "unsupported" :
                  "not a status value");
    }
    switch (r->op.type) {
    case VIRTIO_BLK_T_IN:
        res->reads += !run->quiet;
        bytes = (uint64_t)r->op.nsect * VIRTIO_BLK_SECTOR_SIZE;
        if (ok && r->op.verify) {
            verify_read(run, r);
        }
        if (ok && r->op.user_buf) {
            memcpy(r->op.user_buf, r->data, bytes);
        }
        break;
    case VIRTIO_BLK_T_OUT:
        res->writes += !run->quiet;
        bytes = (uint64_t)r->op.nsect * VIRTIO_BLK_SECTOR_SIZE;
        for (uint64_t s = r->op.sector;
             s < r->op.sector + r->op.nsect && s < d->tracked; s++) {
            uint32_t g = blk_next_gen(d, s, r->op.fill);
            /* After a failed write the sector may hold either version. */
            d->gen[s] = ok ? g : (g | GEN_UNKNOWN);
        }
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        if (r->op.type == VIRTIO_BLK_T_DISCARD) {
            res->discards++;
        } else {
            res->write_zeroes++;
        }
        for (uint64_t s = r->op.sector;
             s < r->op.sector + r->op.nsect && s < d->tracked; s++) {
            /* Keep the count so a later write is a new generation. */
            d->gen[s] = (d->gen[s] & GEN_MASK) | (ok ? GEN_ZERO : GEN_UNKNOWN);
        }
        break;
    case VIRTIO_BLK_T_FLUSH:
        res->flushes++;     /* the only flushes are the ones asked for */
        break;
    case VIRTIO_BLK_T_GET_ID:
        if (ok && r->op.user_buf) {
            memcpy(r->op.user_buf, r->data, VIRTIO_BLK_ID_BYTES);
        }
        break;
    default:
        break;
    }
    if (!run->quiet) {
        wl_stats_record(&res->stats, now - r->submit_ns, bytes);
        res->stats.errors += !ok;
    }
    if (r->op.nsect) {
        blk_range_mark(d, r->op.sector, r->op.nsect, false);
    }
    r->busy = false;
    run->free_cnt[r->q]++;
    run->in_flight--;
    run->last_done_ns = now;
    d->st->requests++;
}

/* Takes every completion there is; returns how many. */
static unsigned run_reap(BlkRun *run)
{
    unsigned n = 0;

    for (unsigned q = 0; q < run->nq && !run->fatal; q++) {
        GuestVirtqueue *vq = &run->d->vqs[q];
        uint64_t token;
        uint32_t len;

        while (guest_vq_get_used(vq, &token, &len)) {
            BlkReq *r;

            if (token >= (uint64_t)run->nq * run->depth) {
                g_autofree char *msg = g_strdup_printf(
                    "device state in RAM corrupted: %s: queue %u: token %" PRIu64
                    " is out of range (%u requests)", run->d->name, q, token,
                    run->nq * run->depth);
                if (!run->fatal) {
                    run->fatal = g_error_new_literal(GUEST_ERROR, GUEST_ERROR_DEVICE, msg);
                }
                run->d->broken = true;
                return n;
            }
            if (!run->reqs[token].busy || run->reqs[token].q != q) {
                run_error(run, true, "queue %u completed request %" PRIu64
                          " that is not in flight", q, token);
                return n;
            }
            r = &run->reqs[token];
            run_complete(run, r, len);
            n++;
        }
        if (vq->corrupt) {
            run_corrupted(run);
        }
    }
    return n;
}

/*
 * Sleeps until a call eventfd fires or poll_ms passes. The caller always
 * re-checks the used rings afterwards, so a lost interrupt costs one
 * timeout, never a hang.
 */
static void run_wait(BlkRun *run)
{
    struct pollfd pfd[64];
    unsigned n = 0;
    bool raced = false;

    for (unsigned q = 0; q < run->nq; q++) {
        raced |= guest_vq_enable_cb(&run->d->vqs[q]);
        if (run->d->vqs[q].call_fd >= 0 && n < G_N_ELEMENTS(pfd)) {
            pfd[n].fd = run->d->vqs[q].call_fd;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            n++;
        }
    }
    if (!raced) {
        int r;
        do {
            r = poll(pfd, n, (int)run->ctl.poll_ms);
        } while (r < 0 && errno == EINTR);
    }
    for (unsigned q = 0; q < run->nq; q++) {
        guest_vq_disable_cb(&run->d->vqs[q]);
        guest_vq_ack_call(&run->d->vqs[q]);
    }
}

/*
 * poll=on|adaptive: spins on the used rings for up to budget_ns; true as
 * soon as one has an entry. The device's calls stay suppressed (callbacks
 * off), so a completion costs no eventfd write and no wakeup.
 *
 * After BLK_SPIN_YIELD_NS without a completion it yields the CPU once per
 * such period: when the back-end's thread waits for this very CPU (more
 * runnable threads than cores), spinning on would hold it off for the
 * rest of our time slice (milliseconds: measured 4x the latency of
 * sleeping at load 10 on 2 cores). On a free core sched_yield() returns
 * at once, and a completion that comes within the period costs no
 * syscall at all.
 */
#define BLK_SPIN_YIELD_NS   20000u

static bool run_spin(BlkRun *run, uint64_t budget_ns)
{
    uint64_t t0 = wl_now_ns(), last = t0;

    for (unsigned i = 0;; i++) {
        for (unsigned q = 0; q < run->nq; q++) {
            if (guest_vq_has_used(&run->d->vqs[q])) {
                return true;
            }
        }
        /* One clock read per 64 looks: the ring check is the cheap part. */
        if ((i & 63) == 63) {
            uint64_t now = wl_now_ns();

            if (now - t0 >= budget_ns) {
                return false;
            }
            if (now - last >= BLK_SPIN_YIELD_NS) {
                sched_yield();
                last = now;
            }
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

/*
 * Nothing completed: waits as the run's poll mode says. on never sleeps
 * (a 1 ms spin, then back to the loop's checks: stop, pause, reset,
 * stall); adaptive spins for its budget, which doubles after a spin that
 * found a completion and halves after one that did not, then sleeps.
 */
static void run_idle(BlkRun *run)
{
    switch (run->poll) {
    case BLK_POLL_ON:
        run_spin(run, 1000000u);
        return;
    case BLK_POLL_ADAPTIVE:
        if (run_spin(run, run->spin_ns)) {
            run->spin_ns = MIN(run->spin_ns * 2, (uint64_t)BLK_POLL_ADAPTIVE_MAX_NS);
            return;
        }
        run->spin_ns = MAX(run->spin_ns / 2, 1000u);
        break;
    case BLK_POLL_OFF:
        break;
    }
    run->res->sleeps++;
    run_wait(run);
}

static bool run_should_stop(const BlkRun *run)
{
    if (run->ctl.stop && __atomic_load_n(run->ctl.stop, __ATOMIC_ACQUIRE)) {
        return true;
    }
    return run->ctl.deadline_ns && wl_now_ns() >= run->ctl.deadline_ns;
}

static void run_progress(BlkRun *run)
{
    uint64_t now = wl_now_ns();
    uint64_t ops = run->res->stats.ops;

    if (!run->ctl.progress || now - run->last_progress_ns < 1000000000ull) {
        return;
    }
    run->ctl.progress(run->ctl.opaque, run->d->name, ops,
                      (double)(ops - run->last_progress_ops) * 1e9 /
                      (double)(now - run->last_progress_ns));
    run->last_progress_ns = now;
    run->last_progress_ops = ops;
}

/*
 * The device asked for a reset (NEEDS_RESET): its back-end went away with
 * requests of ours in an unknown state, done or not, and could not tell.
 * Reset the device (fresh rings, same memory), then submit every request
 * still outstanding again, in submission slots order, with the buffers
 * it had: writes carry the same data (doing one twice is harmless), reads
 * fill their buffer again. Completions from before the reset can no
 * longer arrive, so each request completes exactly once.
 */
static bool run_recover(BlkRun *run)
{
    g_autoptr(GError) err = NULL;
    unsigned again = 0;

    if (!run->ctl.reset_device(run->ctl.opaque, &err)) {
        run_error(run, true, "device reset failed: %s", err->message);
        return false;
    }
    for (unsigned q = 0; q < run->nq; q++) {
        bool added = false;

        for (unsigned i = 0; i < run->depth; i++) {
            BlkReq *r = &run->reqs[q * run->depth + i];

            if (!r->busy) {
                continue;
            }
            if (!run_add_chain(run, r)) {
                if (!run_corrupted(run)) {
                    run_error(run, true, "queue %u: ring full resubmitting after a reset", q);
                }
                return false;
            }
            added = true;
            again++;
        }
        if (added) {
            guest_vq_kick(&run->d->vqs[q]);
        }
    }
    run->res->resets++;
    run->res->resubmitted += again;
    /* The stall clock restarts: the device only now has the requests again. */
    run->last_done_ns = wl_now_ns();
    return true;
}

static bool run_needs_reset(const BlkRun *run)
{
    return run->ctl.needs_reset && run->ctl.reset_device &&
           run->ctl.needs_reset(run->ctl.opaque);
}

static bool run_pause_wanted(const BlkRun *run)
{
    /* A run being stopped ends rather than parks: nobody would resume it. */
    return run->ctl.pause && run->ctl.park &&
           __atomic_load_n(run->ctl.pause, __ATOMIC_ACQUIRE) &&
           !(run->ctl.stop && __atomic_load_n(run->ctl.stop, __ATOMIC_ACQUIRE));
}

/*
 * Nothing in flight: saves the run into guest RAM and parks. The time
 * parked is taken out of the rates and the stall and runtime clocks.
 * Returns false when the run moved to another VMM.
 */
static bool run_park(BlkRun *run)
{
    uint64_t t0 = wl_now_ns(), parked;
    bool go_on;

    if (run->save) {
        run->save(run, run->save_opaque);
    }
    if (run->ctl.in_flight) {
        __atomic_store_n(run->ctl.in_flight, run->in_flight, __ATOMIC_RELAXED);
    }
    go_on = run->ctl.park(run->ctl.opaque);
    parked = wl_now_ns() - t0;
    run->paused_ns += parked;
    run->res->stats.start_ns += parked;
    run->last_done_ns += parked;
    run->last_progress_ns += parked;
    if (go_on) {
        /* The record is stale from now on: nobody may continue from it. */
        __atomic_store_n(&run->d->st->run.magic, 0, __ATOMIC_RELEASE);
    } else {
        run->migrated = true;
    }
    return go_on;
}

/*
 * Issues what gen gives, round robin over the queues, one kick per queue
 * per batch, until gen is done and nothing is in flight (or a fatal
 * failure). Stop requests end issuing; what is in flight still completes.
 * A pause (ctl.pause) holds issuing back until nothing is in flight,
 * then parks.
 */
void blk_run_pump(BlkRun *run, BlkGenFn gen, void *opaque)
{
    bool done = false;

    while (!run->fatal && !run->migrated && !run_corrupted(run)) {
        bool pausing = run_pause_wanted(run);

        if (run->ctl.in_flight) {
            __atomic_store_n(run->ctl.in_flight, run->in_flight, __ATOMIC_RELAXED);
        }
        if (!done && run_should_stop(run)) {
            done = true;
        }
        for (unsigned q = 0; q < run->nq && !done && !pausing; q++) {
            bool added = false;

            while (run->free_cnt[q] > 0) {
                BlkOp op;
                BlkGenResult g = gen(run, opaque, &op);

                if (g == BLK_GEN_DONE) {
                    done = true;
                }
                if (g != BLK_GEN_OP) {
                    break;
                }
                if (!run_submit(run, q, &op)) {
                    if (!run_corrupted(run)) {
                        run_error(run, true, "queue %u: ring full with %u free requests",
                                  q, run->free_cnt[q]);
                    }
                    break;
                }
                added = true;
            }
            if (added) {
                guest_vq_kick(&run->d->vqs[q]);
            }
        }
        if (run->fatal || (done && run->in_flight == 0)) {
            break;
        }
        if (pausing && run->in_flight == 0) {
            if (!run_park(run)) {
                break;
            }
            continue;
        }
        if (run_reap(run) == 0 && !run->fatal) {
            if (run->in_flight == 0) {
                /* Blocked with nothing in flight cannot happen; be safe. */
                if (!done) {
                    run_error(run, true, "workload blocked with no request in flight");
                }
                break;
            }
            run_idle(run);
            run_reap(run);
            if (run_needs_reset(run) && !run_recover(run)) {
                break;
            }
            if (run->in_flight &&
                wl_now_ns() - run->last_done_ns > run->ctl.stall_ms * 1000000ull) {
                run_error(run, true, "no completion for %u ms with %u requests in flight",
                          run->ctl.stall_ms, run->in_flight);
                break;
            }
        }
        run_progress(run);
    }
    if (run->fatal && run->in_flight) {
        /* Their buffers may still be written by the device: never reuse. */
        run->d->broken = true;
    }
}

/* ---- entry points ---- */

bool blk_run_finish(BlkRun *run, GError **errp)
{
    VirtioBlkResult *res = run->res;

    if (run->fatal) {
        g_propagate_error(errp, run->fatal);
        run->fatal = NULL;
        return false;
    }
    if (res->first_error) {
        g_set_error_literal(errp, GUEST_ERROR,
                            res->mismatches ? GUEST_ERROR_VERIFY : GUEST_ERROR_IO,
                            res->first_error);
        return false;
    }
    return true;
}
