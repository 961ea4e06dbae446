/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-blk workload: what a -workload run issues (the main
 * generator: sequential, random, mixed, fill), the checks of its options
 * against the device, verify_only, and the entry point that runs it on
 * the request engine of virtio-blk-run.c. See include/guest/virtio-blk-drv.h.
 *
 * Untrusted input: a parked run's record is read back from guest RAM,
 * which a back-end can write; blk_run_restore() checks every field.
 */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include <glib.h>

#include "virtio-blk-drv-int.h"

/* ---- the main generator ---- */

/* xorshift64: deterministic per seed, so a run can be replayed. */
static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

typedef struct BlkMainGen {
    const BlkWorkload *wl;
    uint32_t spb;               /* sectors per block */
    uint64_t nblocks;
    uint64_t issued;
    uint64_t target;            /* 0: no op limit */
    uint64_t end_ns;            /* 0: no time limit */
    uint64_t cursor;
    uint64_t rng;
    bool verify;
    bool can_discard;
    bool can_wz;
} BlkMainGen;

static uint8_t main_pick_type(BlkMainGen *g)
{
    const BlkWorkload *wl = g->wl;
    unsigned roll;

    switch (wl->rw) {
    case BLK_RW_READ:
    case BLK_RW_RANDREAD:
        return VIRTIO_BLK_T_IN;
    case BLK_RW_WRITE:
    case BLK_RW_RANDWRITE:
    case BLK_RW_FILL:
        break;
    default:
        break;
    }
    roll = (unsigned)(rng_next(&g->rng) % 100);
    if (g->can_discard && roll < wl->discard_pct) {
        return VIRTIO_BLK_T_DISCARD;
    }
    if (g->can_wz && roll < wl->discard_pct + wl->write_zeroes_pct) {
        return VIRTIO_BLK_T_WRITE_ZEROES;
    }
    if (wl->rw == BLK_RW_WRITE || wl->rw == BLK_RW_RANDWRITE || wl->rw == BLK_RW_FILL) {
        return VIRTIO_BLK_T_OUT;
    }
    roll = (unsigned)(rng_next(&g->rng) % 100);
    return roll < wl->rwmixread ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
}

static BlkGenResult main_gen(BlkRun *run, void *opaque, BlkOp *op)
{
    BlkMainGen *g = opaque;
    const BlkWorkload *wl = g->wl;
    bool random = wl->rw == BLK_RW_RANDREAD || wl->rw == BLK_RW_RANDWRITE ||
                  wl->rw == BLK_RW_RANDRW;
    uint64_t block = 0;
    bool found = false;

    if ((g->target && g->issued >= g->target) ||
        (g->end_ns && wl_now_ns() - run->paused_ns >= g->end_ns) ||
        (wl->rw == BLK_RW_FILL && g->cursor >= g->nblocks)) {
        return BLK_GEN_DONE;
    }
    if (random) {
        /* A few tries; a busy block waits for the next round. */
        for (int tries = 0; tries < 8 && !found; tries++) {
            block = rng_next(&g->rng) % g->nblocks;
            found = !blk_range_busy(run->d, block * g->spb, g->spb);
        }
    } else {
        block = g->cursor % g->nblocks;
        found = !blk_range_busy(run->d, block * g->spb, g->spb);
        if (found) {
            g->cursor++;
        }
    }
    if (!found) {
        return BLK_GEN_BLOCKED;
    }
    memset(op, 0, sizeof(*op));
    op->type = wl->rw == BLK_RW_FILL ? VIRTIO_BLK_T_OUT : main_pick_type(g);
    op->fill = wl->rw == BLK_RW_FILL;
    op->verify = g->verify;
    op->sector = block * g->spb;
    op->nsect = g->spb;
    g->issued++;
    return BLK_GEN_OP;
}

/* ---- the run ---- */

/*
 * What the options ask for must fit the device and the driver's buffer
 * area: a value beyond it is an error naming the key, the value and the
 * limit, never quietly cut down (a "queues=5" run on 2 queues would
 * report figures for a run nobody asked for). Only the default iodepth
 * adapts to a small ring. Sets *depth and *range (sectors).
 */
static bool blk_check_limits(const VirtioBlkDrv *d, const BlkWorkload *wl,
                             unsigned nq, unsigned *depth, uint64_t *range,
                             GError **errp)
{
    unsigned dev_queues = blk_queues_used(d, 0);
    /* Indirect descriptors take one slot; chains take up to three. */
    unsigned per = d->vqs[0].indirect ? 1 : 3;
    unsigned ring_max = UINT_MAX, ring_num = 0;
    uint64_t disk = d->cfg.capacity * VIRTIO_BLK_SECTOR_SIZE;
    bool checked = wl->verify || wl->verify_only || wl->rw == BLK_RW_FILL;

    if (wl->queues > dev_queues) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: queues=%u but the device has %u request queue%s",
                    d->name, wl->queues, dev_queues, dev_queues == 1 ? "" : "s");
        return false;
    }
    for (unsigned q = 0; q < nq; q++) {
        if (d->vqs[q].num / per < ring_max) {
            ring_max = d->vqs[q].num / per;
            ring_num = d->vqs[q].num;
        }
    }
    *depth = wl->iodepth ? wl->iodepth : 1;
    if (*depth > ring_max) {
        if (wl->iodepth != BLK_DEFAULT_IODEPTH) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: iodepth=%u but a ring of %u entries holds at most %u "
                        "requests (%u descriptor%s each)", d->name, wl->iodepth,
                        ring_num, ring_max, per, per == 1 ? "" : "s");
            return false;
        }
        *depth = ring_max;
    }
    if (wl->size > disk) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: size=%" PRIu64 " but the disk holds %" PRIu64 " bytes "
                    "(%" PRIu64 " sectors)", d->name, wl->size, disk, d->cfg.capacity);
        return false;
    }
    *range = wl->size ? wl->size / VIRTIO_BLK_SECTOR_SIZE : d->cfg.capacity;
    if (checked && *range > d->tracked) {
        if (wl->size) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: size=%" PRIu64 " but the guest RAM the workload has "
                        "can track %" PRIu64 " bytes for verifying (raise -m%s)",
                        d->name, wl->size, d->tracked * VIRTIO_BLK_SECTOR_SIZE,
                        wl->verify_only || wl->rw == BLK_RW_FILL ? "" : ", or verify=off");
            return false;
        }
        *range = d->tracked;
    }
    return true;
}

/*
 * verify_only: every sector of the range should hold generation 1, as
 * rw=fill left it. The read-back generator then reads it all, in order.
 */
static void blk_verify_only(BlkRun *run, const BlkMainGen *g)
{
    VirtioBlkDrv *d = run->d;
    BlkVerifyGen vg = { .chunk = g->spb };

    for (uint64_t s = 0; s < g->nblocks * g->spb; s++) {
        d->gen[s] = 1;
    }
    blk_run_pump(run, blk_verify_gen, &vg);
}

/* ---- parking and continuing (live migration) ---- */

static bool virtio_blk_drv_run_from(VirtioBlkDrv *d, const BlkWorkload *wl,
                                    const WorkloadCtl *ctl, bool resume,
                                    VirtioBlkResult *res, GError **errp);

/* What a run needs to continue elsewhere, where it is. */
typedef struct BlkProgress {
    BlkMainGen *g;
    BlkVerifyGen *vg;
    BlkPhase phase;
} BlkProgress;

/* BlkRun.save: nothing is in flight; the record goes to guest RAM. */
static void blk_run_save(BlkRun *run, void *opaque)
{
    BlkProgress *p = opaque;
    BlkRunRecord *r = &run->d->st->run;
    const VirtioBlkResult *res = run->res;
    uint64_t now = wl_now_ns() - run->paused_ns;

    r->magic = 0;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    r->phase = p->phase;
    r->bs = p->g->spb * VIRTIO_BLK_SECTOR_SIZE;
    r->nq = run->nq;
    r->depth = run->depth;
    r->rw = p->g->wl->rw;
    r->nblocks = p->g->nblocks;
    r->issued = p->g->issued;
    r->cursor = p->g->cursor;
    r->rng = p->g->rng;
    r->verify_cursor = p->vg->cursor;
    r->runtime_left_ns = !p->g->end_ns ? 0 : p->g->end_ns > now ? p->g->end_ns - now : 1;
    r->reads = res->reads;
    r->writes = res->writes;
    r->flushes = res->flushes;
    r->discards = res->discards;
    r->write_zeroes = res->write_zeroes;
    r->sectors_verified = res->sectors_verified;
    r->mismatches = res->mismatches;
    r->io_errors = res->io_errors;
    r->ops = res->ops_before + res->stats.ops;
    r->bytes = res->stats.bytes;
    r->errors = res->stats.errors;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    r->magic = BLK_RUN_MAGIC;
}

/*
 * The record a parked run left, read back as untrusted: it must describe
 * the same workload on the same layout, and every position must lie
 * inside it. Restores the generators and the counts.
 */
static bool blk_run_restore(VirtioBlkDrv *d, const BlkWorkload *wl, unsigned nq,
                            unsigned depth, BlkProgress *p, VirtioBlkResult *res,
                            GError **errp)
{
    BlkRunRecord r = d->st->run;
    BlkMainGen *g = p->g;
    const char *field = NULL;
    uint64_t value = 0, limit = 0;

    if (r.magic != BLK_RUN_MAGIC) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: run record: magic 0x%08" PRIx32 ", no parked run to continue",
                    d->name, r.magic);
        return false;
    }
    if (r.bs != wl->bs || r.nq != nq || r.depth != depth || r.rw != wl->rw ||
        r.nblocks != g->nblocks) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: run record: bs %" PRIu32 ", %" PRIu32 " queues, depth %" PRIu32
                    ", rw %" PRIu32 ", %" PRIu64 " blocks; this workload has bs %" PRIu32
                    ", %u queues, depth %u, rw %u, %" PRIu64 " blocks (the same "
                    "-workload must continue)", d->name, r.bs, r.nq, r.depth, r.rw,
                    r.nblocks, wl->bs, nq, depth, wl->rw, g->nblocks);
        return false;
    }
#define RECORD_CHECK(f, bad, lim) \
    if (!field && (bad)) { field = #f; value = r.f; limit = (lim); }
    RECORD_CHECK(phase, r.phase < BLK_PHASE_MAIN || r.phase > BLK_PHASE_VERIFY,
                 BLK_PHASE_VERIFY);
    RECORD_CHECK(issued, g->target && r.issued > g->target, g->target);
    RECORD_CHECK(cursor, r.cursor > r.issued, r.issued);
    RECORD_CHECK(rng, r.rng == 0, 1);
    RECORD_CHECK(verify_cursor, r.verify_cursor > d->tracked, d->tracked);
    RECORD_CHECK(ops, r.ops < r.reads || r.ops < r.writes, r.reads + r.writes);
#undef RECORD_CHECK
    if (field) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: run record: %s %" PRIu64 " is out of range (limit %" PRIu64 ")",
                    d->name, field, value, limit);
        return false;
    }
    p->phase = r.phase;
    g->issued = r.issued;
    g->cursor = r.cursor;
    g->rng = r.rng;
    g->end_ns = r.runtime_left_ns ? wl_now_ns() + r.runtime_left_ns : 0;
    p->vg->cursor = r.verify_cursor;
    res->reads = r.reads;
    res->writes = r.writes;
    res->flushes = r.flushes;
    res->discards = r.discards;
    res->write_zeroes = r.write_zeroes;
    res->sectors_verified = r.sectors_verified;
    res->mismatches = r.mismatches;
    res->io_errors = r.io_errors;
    res->ops_before = r.ops;
    res->continued = true;
    if (r.mismatches || r.io_errors) {
        res->first_error = g_strdup_printf("%s: %" PRIu64 " mismatching sectors and %"
                                           PRIu64 " I/O errors before the migration",
                                           d->name, r.mismatches, r.io_errors);
    }
    /* Consumed: a second continuation from the same RAM would replay it. */
    d->st->run.magic = 0;
    return true;
}

bool virtio_blk_drv_run(VirtioBlkDrv *d, const BlkWorkload *wl,
                        const WorkloadCtl *ctl, VirtioBlkResult *res,
                        GError **errp)
{
    return virtio_blk_drv_run_from(d, wl, ctl, false, res, errp);
}

bool virtio_blk_drv_continue(VirtioBlkDrv *d, const BlkWorkload *wl,
                             const WorkloadCtl *ctl, VirtioBlkResult *res,
                             GError **errp)
{
    return virtio_blk_drv_run_from(d, wl, ctl, true, res, errp);
}

static bool virtio_blk_drv_run_from(VirtioBlkDrv *d, const BlkWorkload *wl,
                                    const WorkloadCtl *ctl, bool resume,
                                    VirtioBlkResult *res, GError **errp)
{
    BlkRun run;
    BlkMainGen g = { .wl = wl };
    BlkVerifyGen vg = { 0 };
    BlkProgress prog = { .g = &g, .vg = &vg, .phase = BLK_PHASE_MAIN };
    uint64_t range;
    unsigned nq = blk_queues_used(d, wl->queues);
    unsigned depth;
    bool ok;

    memset(res, 0, sizeof(*res));
    wl_stats_init(&res->stats);
    if (wl->bs == 0 || wl->bs % VIRTIO_BLK_SECTOR_SIZE || wl->bs % d->cfg.blk_size) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: bs %" PRIu32 " is not a multiple of the block size %" PRIu32,
                    d->name, wl->bs, d->cfg.blk_size);
        return false;
    }
    g.can_discard = blk_has_feature(d, VIRTIO_BLK_F_DISCARD);
    g.can_wz = blk_has_feature(d, VIRTIO_BLK_F_WRITE_ZEROES);
    if ((wl->discard_pct && !g.can_discard) || (wl->write_zeroes_pct && !g.can_wz)) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_UNSUPPORTED,
                    "%s: %s requested but the device does not offer it", d->name,
                    wl->discard_pct && !g.can_discard ? "discard" : "write_zeroes");
        return false;
    }
    if (blk_has_feature(d, VIRTIO_BLK_F_RO) && !wl->verify_only &&
        wl->rw != BLK_RW_READ && wl->rw != BLK_RW_RANDREAD) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_UNSUPPORTED,
                    "%s: the workload writes but the device is read-only "
                    "(feature bit %u)", d->name, VIRTIO_BLK_F_RO);
        return false;
    }
    if (!blk_check_limits(d, wl, nq, &depth, &range, errp)) {
        return false;
    }
    g.spb = wl->bs / VIRTIO_BLK_SECTOR_SIZE;
    g.nblocks = range / g.spb;
    if (g.nblocks == 0) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: range of %" PRIu64 " sectors holds no %" PRIu32 "-byte block",
                    d->name, range, wl->bs);
        return false;
    }
    res->range_sectors = g.nblocks * g.spb;
    vg.chunk = g.spb;
    g.target = wl->ops;
    if (!wl->ops && !wl->runtime_ms && wl->rw != BLK_RW_FILL) {
        g.target = BLK_DEFAULT_OPS;
    }
    g.end_ns = wl->runtime_ms ? wl_now_ns() + wl->runtime_ms * 1000000ull : 0;
    g.rng = ((uint64_t)wl->seed << 32 | 0x9e3779b9u) ^ 0x5bd1e995ull;
    g.verify = wl->verify;
    if (resume && (wl->verify_only ||
                   !blk_run_restore(d, wl, nq, depth, &prog, res, errp))) {
        if (wl->verify_only) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: a verify_only run is not continued after a migration",
                        d->name);
        }
        return false;
    }
    if (!blk_run_setup(&run, d, nq, depth, wl->bs, ctl, res, errp)) {
        return false;
    }
    /* A continued run's rate starts from the source's count, not from 0. */
    run.last_progress_ops = res->stats.ops;
    run.poll = wl->poll;
    if (run.poll != BLK_POLL_OFF) {
        /* Polling: the device's calls would only cost it an eventfd write. */
        for (unsigned q = 0; q < nq; q++) {
            guest_vq_disable_cb(&d->vqs[q]);
        }
    }
    run.save = blk_run_save;
    run.save_opaque = &prog;
    if (wl->verify_only) {
        blk_verify_only(&run, &g);
        res->stats.end_ns = wl_now_ns();
        ok = blk_run_finish(&run, errp);
        /* Every sector of the range, or it is not verified. */
        res->verified = ok && res->sectors_verified == res->range_sectors;
        if (ok && !res->verified) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_VERIFY,
                        "%s: verify_only checked %" PRIu64 " of %" PRIu64
                        " sectors (the run was stopped)", d->name,
                        res->sectors_verified, res->range_sectors);
            ok = false;
        }
        blk_run_cleanup(&run);
        return ok;
    }
    if (prog.phase == BLK_PHASE_MAIN) {
        blk_run_pump(&run, main_gen, &g);
    }
    res->stats.end_ns = wl_now_ns();

    if (!run.fatal && !run.migrated && prog.phase <= BLK_PHASE_FLUSH &&
        wl->flush && blk_has_feature(d, VIRTIO_BLK_F_FLUSH)) {
        BlkOp fl = { .type = VIRTIO_BLK_T_FLUSH };
        BlkOneGen one = { .ops = &fl, .n = 1 };
        prog.phase = BLK_PHASE_FLUSH;
        run.ctl.stop = NULL;
        run.ctl.deadline_ns = 0;
        run.quiet = true;
        blk_run_pump(&run, blk_list_gen, &one);
    }
    if (!run.fatal && !run.migrated && wl->verify) {
        /* The read-back always runs to the end: it is the point. */
        prog.phase = BLK_PHASE_VERIFY;
        run.ctl.stop = NULL;
        run.ctl.deadline_ns = 0;
        run.quiet = true;
        blk_run_pump(&run, blk_verify_gen, &vg);
    }
    if (run.migrated) {
        /* Ended here, goes on there: nothing to judge yet. */
        res->migrated = true;
        res->stats.end_ns = wl_now_ns();
        blk_run_cleanup(&run);
        return true;
    }
    ok = blk_run_finish(&run, errp);
    /*
     * A run that wrote nothing (rw=read on an image of unknown content)
     * checked nothing: saying "verified" would be a lie. A stopped run
     * says why it stopped instead.
     */
    if (ok && wl->verify && res->sectors_verified == 0 &&
        !(ctl && ctl->stop && __atomic_load_n(ctl->stop, __ATOMIC_ACQUIRE))) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_VERIFY,
                    "%s: nothing was verified: the run wrote no data to check "
                    "reads against (rw=%s); verify_only=on checks an image an "
                    "earlier rw=fill wrote, verify=off reads without checking",
                    d->name, blk_workload_rw_name(wl->rw));
        ok = false;
    }
    res->verified = wl->verify && ok;
    blk_run_cleanup(&run);
    return ok;
}
