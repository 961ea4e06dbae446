/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-blk driver, synchronous one-shot operations (write a
 * pattern, read and verify, flush, discard, write-zeroes, get-id, verify
 * everything): each is a small run of the request engine in
 * virtio-blk-run.c, to its end. See include/guest/virtio-blk-drv.h.
 */
#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "virtio-blk-drv-int.h"

/*
 * Sectors per synchronous request so that nq requests fit the pool (at
 * least one page of metadata, each data slot page-aligned).
 */
static uint32_t sync_sectors(const VirtioBlkDrv *d, unsigned nq)
{
    uint64_t per = (d->pool_size - BLK_PAGE) / nq / BLK_PAGE * BLK_PAGE;

    return (uint32_t)MIN((uint64_t)BLK_SYNC_SECTORS, per / VIRTIO_BLK_SECTOR_SIZE);
}

/* A run outside a workload: gen on nq queues, depth 1, slots of slot_bytes. */
static bool blk_run_gen(VirtioBlkDrv *d, unsigned nq, uint32_t slot_bytes,
                        BlkGenFn gen, void *opaque, GError **errp)
{
    BlkRun run;
    VirtioBlkResult res = { 0 };
    WorkloadCtl ctl = { .stall_ms = 10000 };
    bool ok;

    wl_stats_init(&res.stats);
    if (!blk_run_setup(&run, d, nq, 1, slot_bytes, &ctl, &res, errp)) {
        return false;
    }
    blk_run_pump(&run, gen, opaque);
    ok = blk_run_finish(&run, errp);
    blk_run_cleanup(&run);
    virtio_blk_result_clear(&res);
    return ok;
}

static bool blk_sync(VirtioBlkDrv *d, const BlkOp *op, GError **errp)
{
    BlkOneGen g = { .ops = op, .n = 1 };

    return blk_run_gen(d, 1, sync_sectors(d, 1) * VIRTIO_BLK_SECTOR_SIZE,
                       blk_list_gen, &g, errp);
}

static bool check_range(VirtioBlkDrv *d, const char *what, uint64_t sector,
                        uint64_t n, GError **errp)
{
    if (n == 0 || sector >= d->cfg.capacity || n > d->cfg.capacity - sector) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: %s of %" PRIu64 " sectors at sector %" PRIu64
                    " is outside the %" PRIu64 "-sector disk",
                    d->name, what, n, sector, d->cfg.capacity);
        return false;
    }
    return true;
}

/* Splits [sector, sector+n) into synchronous chunks of one type. */
static bool blk_sync_chunks(VirtioBlkDrv *d, uint8_t type, bool verify,
                            uint64_t sector, uint32_t nsectors, void *buf,
                            GError **errp)
{
    if (!check_range(d, blk_type_name(type), sector, nsectors, errp)) {
        return false;
    }
    for (uint32_t done = 0; done < nsectors;) {
        uint32_t n = MIN(nsectors - done, sync_sectors(d, 1));
        BlkOp op = {
            .type = type, .verify = verify, .sector = sector + done, .nsect = n,
            .user_buf = buf ? (uint8_t *)buf + (size_t)done * VIRTIO_BLK_SECTOR_SIZE : NULL,
        };
        if (!blk_sync(d, &op, errp)) {
            return false;
        }
        done += n;
    }
    return true;
}

bool virtio_blk_drv_write_pattern(VirtioBlkDrv *d, uint64_t sector,
                                  uint32_t nsectors, GError **errp)
{
    return blk_sync_chunks(d, VIRTIO_BLK_T_OUT, false, sector, nsectors, NULL, errp);
}

bool virtio_blk_drv_read_verify(VirtioBlkDrv *d, uint64_t sector,
                                uint32_t nsectors, GError **errp)
{
    return blk_sync_chunks(d, VIRTIO_BLK_T_IN, true, sector, nsectors, NULL, errp);
}

bool virtio_blk_drv_read(VirtioBlkDrv *d, uint64_t sector, uint32_t nsectors,
                         void *buf, GError **errp)
{
    return blk_sync_chunks(d, VIRTIO_BLK_T_IN, false, sector, nsectors, buf, errp);
}

static bool need_feature(VirtioBlkDrv *d, unsigned bit, const char *what,
                         GError **errp)
{
    if (!blk_has_feature(d, bit)) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_UNSUPPORTED,
                    "%s: %s: feature bit %u was not negotiated", d->name, what, bit);
        return false;
    }
    return true;
}

bool virtio_blk_drv_flush(VirtioBlkDrv *d, GError **errp)
{
    BlkOp op = { .type = VIRTIO_BLK_T_FLUSH };

    return need_feature(d, VIRTIO_BLK_F_FLUSH, "flush", errp) &&
           blk_sync(d, &op, errp);
}

static bool blk_zero_op(VirtioBlkDrv *d, uint8_t type, uint64_t sector,
                        uint32_t nsectors, uint32_t flags, GError **errp)
{
    BlkOp op = { .type = type, .sector = sector, .nsect = nsectors, .flags = flags };

    return check_range(d, blk_type_name(type), sector, nsectors, errp) &&
           blk_sync(d, &op, errp);
}

bool virtio_blk_drv_discard(VirtioBlkDrv *d, uint64_t sector,
                            uint32_t nsectors, GError **errp)
{
    return need_feature(d, VIRTIO_BLK_F_DISCARD, "discard", errp) &&
           blk_zero_op(d, VIRTIO_BLK_T_DISCARD, sector, nsectors, 0, errp);
}

bool virtio_blk_drv_write_zeroes(VirtioBlkDrv *d, uint64_t sector,
                                 uint32_t nsectors, bool unmap, GError **errp)
{
    return need_feature(d, VIRTIO_BLK_F_WRITE_ZEROES, "write-zeroes", errp) &&
           blk_zero_op(d, VIRTIO_BLK_T_WRITE_ZEROES, sector, nsectors,
                       unmap ? VIRTIO_BLK_WRITE_ZEROES_F_UNMAP : 0, errp);
}

bool virtio_blk_drv_get_id(VirtioBlkDrv *d, char id[VIRTIO_BLK_ID_BYTES + 1],
                           GError **errp)
{
    BlkOp op = { .type = VIRTIO_BLK_T_GET_ID, .user_buf = id };

    memset(id, 0, VIRTIO_BLK_ID_BYTES + 1);
    if (!blk_sync(d, &op, errp)) {
        return false;
    }
    /* Device bytes: keep them printable, NUL-terminated. */
    for (unsigned i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++) {
        if (!g_ascii_isprint(id[i])) {
            id[i] = '?';
        }
    }
    id[VIRTIO_BLK_ID_BYTES] = '\0';
    return true;
}

bool virtio_blk_drv_verify_all(VirtioBlkDrv *d, GError **errp)
{
    unsigned nq = blk_queues_used(d, 0);
    BlkVerifyGen vg = { .chunk = sync_sectors(d, nq) };

    return blk_run_gen(d, nq, vg.chunk * VIRTIO_BLK_SECTOR_SIZE, blk_verify_gen, &vg, errp);
}

/* ---- generators (the engine's, used here and by the workload) ---- */

BlkGenResult blk_verify_gen(BlkRun *run, void *opaque, BlkOp *op)
{
    BlkVerifyGen *g = opaque;
    uint64_t tracked = run->d->tracked;

    while (g->cursor < tracked) {
        uint64_t s = g->cursor;
        uint32_t n = (uint32_t)MIN((uint64_t)g->chunk, tracked - s);

        g->cursor += n;
        if (!blk_range_known(run->d, s, n)) {
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
