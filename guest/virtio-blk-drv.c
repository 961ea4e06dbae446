/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-blk driver: the request engine and the workload; the
 * synchronous one-shot operations are in virtio-blk-sync.c. See
 * include/guest/virtio-blk-drv.h.
 *
 * The device is untrusted: a completion naming a request we do not have
 * in flight, a status byte that is not one of the three defined values,
 * or a device that stops completing are all reported (naming the device
 * and the request), never followed. Verification failures do not stop a
 * run: they are counted, the first one is reported.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <glib.h>

#include "virtio-blk-drv-int.h"

const char *blk_type_name(uint8_t type)
{
    switch (type) {
    case VIRTIO_BLK_T_IN: return "read";
    case VIRTIO_BLK_T_OUT: return "write";
    case VIRTIO_BLK_T_FLUSH: return "flush";
    case VIRTIO_BLK_T_GET_ID: return "get-id";
    case VIRTIO_BLK_T_DISCARD: return "discard";
    case VIRTIO_BLK_T_WRITE_ZEROES: return "write-zeroes";
    default: return "?";
    }
}

bool blk_has_feature(const VirtioBlkDrv *d, unsigned bit)
{
    return d->features & (1ull << bit);
}

/* ---- generation table and in-flight bitmap ---- */

static bool sector_busy(const VirtioBlkDrv *d, uint64_t s)
{
    return s < d->st->tracked && (d->inflight[s / 8] & (1u << (s % 8)));
}

static bool range_busy(const VirtioBlkDrv *d, uint64_t sector, uint32_t n)
{
    for (uint64_t s = sector; s < sector + n; s++) {
        if (sector_busy(d, s)) {
            return true;
        }
    }
    return false;
}

static void range_mark(VirtioBlkDrv *d, uint64_t sector, uint32_t n, bool busy)
{
    for (uint64_t s = sector; s < sector + n && s < d->st->tracked; s++) {
        if (busy) {
            d->inflight[s / 8] |= (uint8_t)(1u << (s % 8));
        } else {
            d->inflight[s / 8] &= (uint8_t)~(1u << (s % 8));
        }
    }
}

static bool range_known(const VirtioBlkDrv *d, uint64_t sector, uint64_t n)
{
    for (uint64_t s = sector; s < sector + n && s < d->st->tracked; s++) {
        uint32_t e = d->gen[s];
        if (e != 0 && !(e & GEN_UNKNOWN)) {
            return true;
        }
    }
    return false;
}

/* The generation a write of sector s carries. */
static uint32_t next_gen(const VirtioBlkDrv *d, uint64_t s, bool fill)
{
    uint32_t g;

    if (fill || s >= d->st->tracked) {
        return 1;
    }
    g = ((d->gen[s] & GEN_MASK) + 1) & GEN_MASK;
    return g ? g : 1;
}

void virtio_blk_expected_sector(void *buf, uint64_t sector, uint32_t seed)
{
    pattern_fill(buf, VIRTIO_BLK_SECTOR_SIZE, sector, 1, seed);
}

bool virtio_blk_check_sector(const void *buf, uint64_t sector, uint32_t seed,
                             PatternMismatch *mm)
{
    return pattern_check(buf, VIRTIO_BLK_SECTOR_SIZE, sector, 1, seed, mm);
}

void virtio_blk_result_clear(VirtioBlkResult *res)
{
    g_free(res->first_error);
    memset(res, 0, sizeof(*res));
}

/* ---- driver life ---- */

VirtioBlkDrv *virtio_blk_drv_new(const char *name, GuestMemory *mem,
                                 GuestVirtqueue *vqs, unsigned nvqs,
                                 uint64_t features, const VirtioBlkDrvConfig *cfg,
                                 uint64_t buf_gpa, uint64_t buf_size,
                                 uint32_t seed, GError **errp)
{
    VirtioBlkDrv *d;
    BlkDrvState *st;
    uint64_t pool, rest, tracked;
    uint32_t blk_size = cfg->blk_size ? cfg->blk_size : VIRTIO_BLK_SECTOR_SIZE;

    g_autofree char *bad = NULL;

    if (nvqs == 0 || !vqs) {
        bad = g_strdup("no request queues");
    } else if (cfg->capacity == 0) {
        bad = g_strdup("config capacity is 0 sectors");
    } else if ((features & (1ull << VIRTIO_BLK_F_BLK_SIZE)) &&
               (blk_size < VIRTIO_BLK_SECTOR_SIZE || blk_size > 65536 ||
                (blk_size & (blk_size - 1)))) {
        bad = g_strdup_printf("config blk_size %" PRIu32 " is not a power of two "
                              "in [512, 65536]", blk_size);
    } else if ((features & (1ull << VIRTIO_BLK_F_SEG_MAX)) && cfg->seg_max == 0) {
        bad = g_strdup("config seg_max is 0");
    } else if (buf_size < BLK_STATE_SIZE + 2 * 65536 || (buf_gpa % BLK_PAGE)) {
        /* State page, a pool of at least 64 KiB, and a table of >= 1 page. */
        bad = g_strdup_printf("buffer area 0x%" PRIx64 "+0x%" PRIx64
                              " is unaligned or below 132 KiB", buf_gpa, buf_size);
    }
    if (bad) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG, "%s: %s", name, bad);
        return NULL;
    }
    st = guest_memory_gpa_to_hva(mem, buf_gpa, buf_size);
    if (!st) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: buffer area 0x%" PRIx64 "+0x%" PRIx64
                    " is not in one guest RAM region", name, buf_gpa, buf_size);
        return NULL;
    }
    pool = MIN(BLK_POOL_MAX, (buf_size - BLK_STATE_SIZE) / 2) / BLK_PAGE * BLK_PAGE;
    rest = buf_size - BLK_STATE_SIZE - pool;
    /* 4 bytes of generation plus 1 bit in flight per sector. */
    tracked = MIN(cfg->capacity, rest * 8 / 33);
    while (tracked && tracked * 4 + ALIGN_UP(tracked, 8) / 8 > rest) {
        tracked--;
    }

    d = g_new0(VirtioBlkDrv, 1);
    d->name = g_strdup(name);
    d->mem = mem;
    d->vqs = vqs;
    d->nvqs = nvqs;
    d->features = features;
    d->cfg = *cfg;
    d->cfg.blk_size = blk_size;
    d->st = st;
    memset(st, 0, BLK_STATE_SIZE);
    st->seed = seed;
    st->tracked = tracked;
    st->pool_gpa = buf_gpa + BLK_STATE_SIZE;
    st->pool_size = pool;
    st->gen_gpa = st->pool_gpa + pool;
    st->inflight_gpa = st->gen_gpa + tracked * 4;
    d->pool = (uint8_t *)st + BLK_STATE_SIZE;
    d->gen = (uint32_t *)(d->pool + pool);
    d->inflight = (uint8_t *)(d->gen + tracked);
    memset(d->gen, 0, tracked * 4 + ALIGN_UP(tracked, 8) / 8);
    st->magic = BLK_STATE_MAGIC;
    return d;
}

void virtio_blk_drv_free(VirtioBlkDrv *d)
{
    if (!d) {
        return;
    }
    g_free(d->name);
    g_free(d);
}

uint64_t virtio_blk_drv_area_size(uint64_t capacity)
{
    uint64_t table = ALIGN_UP(capacity * 4 + ALIGN_UP(capacity, 8) / 8 + 64, BLK_PAGE);

    /* Mirrors the split in virtio_blk_drv_new(): the pool takes half, up to 32 MiB. */
    return BLK_STATE_SIZE + MAX(2 * table, table + BLK_POOL_MAX);
}

uint64_t virtio_blk_drv_tracked_sectors(const VirtioBlkDrv *d)
{
    return d->st->tracked;
}

/* ---- the request engine ---- */

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
    if (meta_bytes + slot * nslots > d->st->pool_size) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_NO_SPACE,
                    "%s: %u queues x iodepth %u x %" PRIu32
                    " bytes do not fit the %" PRIu64 "-byte buffer pool",
                    d->name, nq, depth, slot_bytes, d->st->pool_size);
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
        r->meta_gpa = d->st->pool_gpa + (uint64_t)i * BLK_META_SIZE;
        r->meta = d->pool + (uint64_t)i * BLK_META_SIZE;
        r->data_gpa = d->st->pool_gpa + meta_bytes + slot * i;
        r->data = d->pool + meta_bytes + slot * i;
    }
    for (unsigned q = 0; q < nq; q++) {
        run->free_cnt[q] = depth;
    }
    run->last_done_ns = run->last_progress_ns = wl_now_ns();
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
                     VIRTIO_BLK_SECTOR_SIZE, s, next_gen(d, s, r->op.fill),
                     d->st->seed);
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
        range_mark(d, op->sector, op->nsect, true);
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

        if (s >= d->st->tracked) {
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
                          d->st->seed, &mm)) {
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
             s < r->op.sector + r->op.nsect && s < d->st->tracked; s++) {
            uint32_t g = next_gen(d, s, r->op.fill);
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
             s < r->op.sector + r->op.nsect && s < d->st->tracked; s++) {
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
        range_mark(d, r->op.sector, r->op.nsect, false);
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

            if (token >= (uint64_t)run->nq * run->depth ||
                !run->reqs[token].busy || run->reqs[token].q != q) {
                run_error(run, true, "queue %u completed request %" PRIu64
                          " that is not in flight", q, token);
                return n;
            }
            r = &run->reqs[token];
            run_complete(run, r, len);
            n++;
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
                run_error(run, true, "queue %u: ring full resubmitting after a reset", q);
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

/*
 * Issues what gen gives, round robin over the queues, one kick per queue
 * per batch, until gen is done and nothing is in flight (or a fatal
 * failure). Stop requests end issuing; what is in flight still completes.
 */
void blk_run_pump(BlkRun *run, BlkGenFn gen, void *opaque)
{
    bool done = false;

    while (!run->fatal) {
        if (!done && run_should_stop(run)) {
            done = true;
        }
        for (unsigned q = 0; q < run->nq && !done; q++) {
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
                    run_error(run, true, "queue %u: ring full with %u free requests",
                              q, run->free_cnt[q]);
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
        if (run_reap(run) == 0 && !run->fatal) {
            if (run->in_flight == 0) {
                /* Blocked with nothing in flight cannot happen; be safe. */
                if (!done) {
                    run_error(run, true, "workload blocked with no request in flight");
                }
                break;
            }
            run_wait(run);
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

/* ---- generators ---- */

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
        (g->end_ns && wl_now_ns() >= g->end_ns) ||
        (wl->rw == BLK_RW_FILL && g->cursor >= g->nblocks)) {
        return BLK_GEN_DONE;
    }
    if (random) {
        /* A few tries; a busy block waits for the next round. */
        for (int tries = 0; tries < 8 && !found; tries++) {
            block = rng_next(&g->rng) % g->nblocks;
            found = !range_busy(run->d, block * g->spb, g->spb);
        }
    } else {
        block = g->cursor % g->nblocks;
        found = !range_busy(run->d, block * g->spb, g->spb);
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

BlkGenResult blk_verify_gen(BlkRun *run, void *opaque, BlkOp *op)
{
    BlkVerifyGen *g = opaque;
    uint64_t tracked = run->d->st->tracked;

    while (g->cursor < tracked) {
        uint64_t s = g->cursor;
        uint32_t n = (uint32_t)MIN((uint64_t)g->chunk, tracked - s);

        g->cursor += n;
        if (!range_known(run->d, s, n)) {
            continue;
        }
        memset(op, 0, sizeof(*op));
        op->type = VIRTIO_BLK_T_IN;
        op->verify = true;
        op->sector = s;
        op->nsect = n;
        return BLK_GEN_OP;
    }
    return BLK_GEN_DONE;
}

/* A fixed list, in order, each after the previous completed. */
BlkGenResult blk_list_gen(BlkRun *run, void *opaque, BlkOp *op)
{
    BlkOneGen *g = opaque;

    if (g->next >= g->n) {
        return BLK_GEN_DONE;
    }
    if (run->in_flight) {
        return BLK_GEN_BLOCKED;
    }
    *op = g->ops[g->next++];
    return BLK_GEN_OP;
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

unsigned blk_queues_used(const VirtioBlkDrv *d, unsigned want)
{
    unsigned n = d->nvqs;

    if (!blk_has_feature(d, VIRTIO_BLK_F_MQ)) {
        n = 1;
    }
    return want && want < n ? want : n;
}

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
    if (checked && *range > d->st->tracked) {
        if (wl->size) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: size=%" PRIu64 " but the guest RAM the workload has "
                        "can track %" PRIu64 " bytes for verifying (raise -m%s)",
                        d->name, wl->size, d->st->tracked * VIRTIO_BLK_SECTOR_SIZE,
                        wl->verify_only || wl->rw == BLK_RW_FILL ? "" : ", or verify=off");
            return false;
        }
        *range = d->st->tracked;
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

bool virtio_blk_drv_run(VirtioBlkDrv *d, const BlkWorkload *wl,
                        const WorkloadCtl *ctl, VirtioBlkResult *res,
                        GError **errp)
{
    BlkRun run;
    BlkMainGen g = { .wl = wl };
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
    if (!blk_run_setup(&run, d, nq, depth, wl->bs, ctl, res, errp)) {
        return false;
    }
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
    g.target = wl->ops;
    if (!wl->ops && !wl->runtime_ms && wl->rw != BLK_RW_FILL) {
        g.target = BLK_DEFAULT_OPS;
    }
    g.end_ns = wl->runtime_ms ? wl_now_ns() + wl->runtime_ms * 1000000ull : 0;
    g.rng = ((uint64_t)wl->seed << 32 | 0x9e3779b9u) ^ 0x5bd1e995ull;
    g.verify = wl->verify;
    blk_run_pump(&run, main_gen, &g);
    res->stats.end_ns = wl_now_ns();

    if (!run.fatal && wl->flush && blk_has_feature(d, VIRTIO_BLK_F_FLUSH)) {
        BlkOp fl = { .type = VIRTIO_BLK_T_FLUSH };
        BlkOneGen one = { .ops = &fl, .n = 1 };
        run.ctl.stop = NULL;
        run.ctl.deadline_ns = 0;
        run.quiet = true;
        blk_run_pump(&run, blk_list_gen, &one);
    }
    if (!run.fatal && wl->verify) {
        BlkVerifyGen vg = { .chunk = g.spb };
        /* The read-back always runs to the end: it is the point. */
        run.ctl.stop = NULL;
        run.ctl.deadline_ns = 0;
        run.quiet = true;
        blk_run_pump(&run, blk_verify_gen, &vg);
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
