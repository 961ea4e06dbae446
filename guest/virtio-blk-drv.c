/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-blk driver: the driver object (new, attached to a
 * migrated buffer area, freed), the layout of its buffer area, and the
 * generation table and in-flight bitmap the request engine
 * (virtio-blk-run.c) keeps. See include/guest/virtio-blk-drv.h.
 *
 * Untrusted input: the driver's state page is in guest RAM, which every
 * back-end maps read/write. What indexes the generation table and the
 * in-flight bitmap or sizes the pool is the driver's own copy of the
 * layout (VirtioBlkDrv.tracked, .pool_*); an attached driver takes the
 * page only when it is exactly what the area and disk lay out, and the
 * request engine compares the page with that copy once a round.
 */
#include <inttypes.h>
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
    return s < d->tracked && (d->inflight[s / 8] & (1u << (s % 8)));
}

bool blk_range_busy(const VirtioBlkDrv *d, uint64_t sector, uint32_t n)
{
    for (uint64_t s = sector; s < sector + n; s++) {
        if (sector_busy(d, s)) {
            return true;
        }
    }
    return false;
}

void blk_range_mark(VirtioBlkDrv *d, uint64_t sector, uint32_t n, bool busy)
{
    for (uint64_t s = sector; s < sector + n && s < d->tracked; s++) {
        if (busy) {
            d->inflight[s / 8] |= (uint8_t)(1u << (s % 8));
        } else {
            d->inflight[s / 8] &= (uint8_t)~(1u << (s % 8));
        }
    }
}

bool blk_range_known(const VirtioBlkDrv *d, uint64_t sector, uint64_t n)
{
    for (uint64_t s = sector; s < sector + n && s < d->tracked; s++) {
        uint32_t e = d->gen[s];
        if (e != 0 && !(e & GEN_UNKNOWN)) {
            return true;
        }
    }
    return false;
}

/* The generation a write of sector s carries. */
uint32_t blk_next_gen(const VirtioBlkDrv *d, uint64_t s, bool fill)
{
    uint32_t g;

    if (fill || s >= d->tracked) {
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

/*
 * Where the pool and the tables go in a buffer area of buf_size bytes:
 * the same for a new driver and one attached to a migrated area, so the
 * attached one can check what guest RAM claims against it.
 */
static void blk_layout(uint64_t buf_size, uint64_t capacity, uint64_t *pool,
                       uint64_t *tracked)
{
    uint64_t rest;

    *pool = MIN(BLK_POOL_MAX, (buf_size - BLK_STATE_SIZE) / 2) / BLK_PAGE * BLK_PAGE;
    rest = buf_size - BLK_STATE_SIZE - *pool;
    /* 4 bytes of generation plus 1 bit in flight per sector. */
    *tracked = MIN(capacity, rest * 8 / 33);
    while (*tracked && *tracked * 4 + ALIGN_UP(*tracked, 8) / 8 > rest) {
        (*tracked)--;
    }
}

static VirtioBlkDrv *blk_drv_alloc(const char *name, GuestMemory *mem,
                                   GuestVirtqueue *vqs, unsigned nvqs,
                                   uint64_t features, const VirtioBlkDrvConfig *cfg,
                                   uint32_t blk_size, BlkDrvState *st,
                                   uint64_t buf_gpa, uint64_t pool, uint64_t tracked,
                                   uint32_t seed)
{
    VirtioBlkDrv *d = g_new0(VirtioBlkDrv, 1);

    d->name = g_strdup(name);
    d->mem = mem;
    d->vqs = vqs;
    d->nvqs = nvqs;
    d->features = features;
    d->cfg = *cfg;
    d->cfg.blk_size = blk_size;
    d->st = st;
    d->seed = seed;
    d->tracked = tracked;
    d->pool_gpa = buf_gpa + BLK_STATE_SIZE;
    d->pool_size = pool;
    return d;
}

/*
 * The config and buffer area checks a new driver and an attached one
 * share; NULL when fine, else what is wrong (to free).
 */
static char *blk_check_config(GuestVirtqueue *vqs, unsigned nvqs, uint64_t features,
                              const VirtioBlkDrvConfig *cfg, uint32_t blk_size,
                              uint64_t buf_gpa, uint64_t buf_size)
{
    if (nvqs == 0 || !vqs) {
        return g_strdup("no request queues");
    } else if (cfg->capacity == 0) {
        return g_strdup("config capacity is 0 sectors");
    } else if ((features & (1ull << VIRTIO_BLK_F_BLK_SIZE)) &&
               (blk_size < VIRTIO_BLK_SECTOR_SIZE || blk_size > 65536 ||
                (blk_size & (blk_size - 1)))) {
        return g_strdup_printf("config blk_size %" PRIu32 " is not a power of two "
                               "in [512, 65536]", blk_size);
    } else if ((features & (1ull << VIRTIO_BLK_F_SEG_MAX)) && cfg->seg_max == 0) {
        return g_strdup("config seg_max is 0");
    } else if (buf_size < BLK_STATE_SIZE + 2 * 65536 || (buf_gpa % BLK_PAGE)) {
        /* State page, a pool of at least 64 KiB, and a table of >= 1 page. */
        return g_strdup_printf("buffer area 0x%" PRIx64 "+0x%" PRIx64
                               " is unaligned or below 132 KiB", buf_gpa, buf_size);
    }
    return NULL;
}

VirtioBlkDrv *virtio_blk_drv_new(const char *name, GuestMemory *mem,
                                 GuestVirtqueue *vqs, unsigned nvqs,
                                 uint64_t features, const VirtioBlkDrvConfig *cfg,
                                 uint64_t buf_gpa, uint64_t buf_size,
                                 uint32_t seed, GError **errp)
{
    VirtioBlkDrv *d;
    BlkDrvState *st;
    uint64_t pool, tracked;
    uint32_t blk_size = cfg->blk_size ? cfg->blk_size : VIRTIO_BLK_SECTOR_SIZE;

    g_autofree char *bad = blk_check_config(vqs, nvqs, features, cfg, blk_size,
                                            buf_gpa, buf_size);

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
    blk_layout(buf_size, cfg->capacity, &pool, &tracked);

    d = blk_drv_alloc(name, mem, vqs, nvqs, features, cfg, blk_size, st, buf_gpa,
                      pool, tracked, seed);
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

VirtioBlkDrv *virtio_blk_drv_attach(const char *name, GuestMemory *mem,
                                    GuestVirtqueue *vqs, unsigned nvqs,
                                    uint64_t features, const VirtioBlkDrvConfig *cfg,
                                    uint64_t buf_gpa, uint64_t buf_size, GError **errp)
{
    uint32_t blk_size = cfg->blk_size ? cfg->blk_size : VIRTIO_BLK_SECTOR_SIZE;
    g_autofree char *bad = blk_check_config(vqs, nvqs, features, cfg, blk_size,
                                            buf_gpa, buf_size);
    BlkDrvState *st = bad ? NULL : guest_memory_gpa_to_hva(mem, buf_gpa, buf_size);
    uint64_t pool = 0, tracked = 0, gen_gpa;
    VirtioBlkDrv *d;

    if (!bad && !st) {
        bad = g_strdup_printf("buffer area 0x%" PRIx64 "+0x%" PRIx64
                              " is not in one guest RAM region", buf_gpa, buf_size);
    }
    if (!bad) {
        /*
         * Guest RAM is the back-end's to write too: every value must be
         * exactly what this area and disk lay out, never taken as is.
         */
        blk_layout(buf_size, cfg->capacity, &pool, &tracked);
        gen_gpa = buf_gpa + BLK_STATE_SIZE + pool;
        if (st->magic != BLK_STATE_MAGIC) {
            bad = g_strdup_printf("driver state magic 0x%08" PRIx32 " is not 0x%08x",
                                  st->magic, BLK_STATE_MAGIC);
        } else if (st->tracked != tracked) {
            bad = g_strdup_printf("driver state: tracked %" PRIu64 " sectors, the "
                                  "area and disk hold %" PRIu64, st->tracked, tracked);
        } else if (st->pool_gpa != buf_gpa + BLK_STATE_SIZE || st->pool_size != pool) {
            bad = g_strdup_printf("driver state: pool 0x%" PRIx64 "+0x%" PRIx64
                                  " is not 0x%" PRIx64 "+0x%" PRIx64, st->pool_gpa,
                                  st->pool_size, buf_gpa + BLK_STATE_SIZE, pool);
        } else if (st->gen_gpa != gen_gpa || st->inflight_gpa != gen_gpa + tracked * 4) {
            bad = g_strdup_printf("driver state: generation table at 0x%" PRIx64
                                  " / in-flight bitmap at 0x%" PRIx64 ", not 0x%"
                                  PRIx64 " / 0x%" PRIx64, st->gen_gpa,
                                  st->inflight_gpa, gen_gpa, gen_gpa + tracked * 4);
        }
    }
    if (bad) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG, "%s: %s", name, bad);
        return NULL;
    }
    d = blk_drv_alloc(name, mem, vqs, nvqs, features, cfg, blk_size, st, buf_gpa,
                      pool, tracked, st->seed);
    d->pool = (uint8_t *)st + BLK_STATE_SIZE;
    d->gen = (uint32_t *)(d->pool + pool);
    d->inflight = (uint8_t *)(d->gen + tracked);
    /* Parked means drained: nothing is in flight, whatever the bitmap says. */
    memset(d->inflight, 0, ALIGN_UP(tracked, 8) / 8);
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
    return d->tracked;
}

unsigned blk_queues_used(const VirtioBlkDrv *d, unsigned want)
{
    unsigned n = d->nvqs;

    if (!blk_has_feature(d, VIRTIO_BLK_F_MQ)) {
        n = 1;
    }
    return want && want < n ? want : n;
}
