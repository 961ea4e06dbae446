/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the parts of the guest's virtio-blk driver share: the driver and
 * its tables (virtio-blk-drv.c), the request engine (virtio-blk-run.c),
 * the workload (virtio-blk-workload.c) and the synchronous one-shot
 * operations (virtio-blk-sync.c) on top of it. Not a public header.
 */
#ifndef GUEST_VIRTIO_BLK_DRV_INT_H
#define GUEST_VIRTIO_BLK_DRV_INT_H

#include <glib.h>

#include "guest/guest-ram-state.h"
#include "guest/virtio-blk-drv.h"

#define BLK_POOL_MAX        (32ull << 20)
#define BLK_META_SIZE       64u             /* hdr 16, segment 16, status 1 */
#define BLK_META_SEG        16u
#define BLK_META_STATUS     32u
#define BLK_PAGE            4096ull
#define BLK_SYNC_SECTORS    256u            /* 128 KiB per synchronous chunk */
#define BLK_DEFAULT_OPS     10000u

/* Generation table entries: low 30 bits count writes; flags on top. */
#define GEN_ZERO            0x80000000u     /* reads as zeroes */
#define GEN_UNKNOWN         0x40000000u     /* a failed write: not checkable */
#define GEN_MASK            0x3fffffffu

#define ALIGN_UP(x, a)      (((x) + (a) - 1) / (a) * (a))

typedef enum BlkPhase {
    BLK_PHASE_MAIN = 1,         /* the workload proper */
    BLK_PHASE_FLUSH,            /* the FLUSH at its end (done again on resume) */
    BLK_PHASE_VERIFY,           /* the read-back */
} BlkPhase;


struct VirtioBlkDrv {
    char *name;
    GuestMemory *mem;
    GuestVirtqueue *vqs;
    unsigned nvqs;
    uint64_t features;
    VirtioBlkDrvConfig cfg;
    /*
     * Cached pointers into guest RAM, and the layout they were made from:
     * guest RAM is the back-end's to write, so what indexes, offsets or
     * sizes anything is the driver's own copy, never st's (which is
     * compared with it: blk_state_corruption()).
     */
    BlkDrvState *st;
    uint32_t seed;
    uint64_t tracked;           /* sectors in the generation table */
    uint64_t pool_gpa;
    uint64_t pool_size;
    uint32_t *gen;
    uint8_t *inflight;
    uint8_t *pool;
    /* A stalled or misbehaving device leaves requests we cannot reclaim. */
    bool broken;
};

typedef struct BlkOp {
    uint8_t type;
    bool fill;                  /* OUT with generation 1 */
    bool verify;                /* IN: check against the table */
    uint64_t sector;
    uint32_t nsect;
    uint32_t flags;             /* WRITE_ZEROES flags */
    void *user_buf;             /* IN/GET_ID: copy the data out here */
} BlkOp;

typedef struct BlkReq {
    bool busy;
    unsigned q;
    BlkOp op;
    uint64_t submit_ns;
    uint64_t meta_gpa;
    uint8_t *meta;
    uint64_t data_gpa;
    uint8_t *data;
} BlkReq;

typedef enum BlkGenResult {
    BLK_GEN_OP,
    BLK_GEN_BLOCKED,            /* nothing issuable until something completes */
    BLK_GEN_DONE,
} BlkGenResult;

typedef struct BlkRun BlkRun;
typedef BlkGenResult (*BlkGenFn)(BlkRun *run, void *opaque, BlkOp *op);

struct BlkRun {
    VirtioBlkDrv *d;
    WorkloadCtl ctl;
    unsigned nq;
    unsigned depth;
    uint32_t slot_bytes;        /* data bytes per request */
    BlkReq *reqs;               /* nq * depth */
    unsigned *free_cnt;         /* per queue */
    unsigned in_flight;
    VirtioBlkResult *res;
    GError *fatal;              /* stops the run */
    uint64_t last_done_ns;
    uint64_t last_progress_ns;
    uint64_t last_progress_ops;
    bool quiet;                 /* flush/read-back: not in the op counts */
    BlkPollMode poll;           /* how completions are waited for */
    uint64_t spin_ns;           /* poll=adaptive: the current spin budget */
    uint64_t paused_ns;         /* time parked so far (not run time) */
    bool migrated;              /* parked, and the run went elsewhere */
    /* Writes the generators' positions into st->run before parking. */
    void (*save)(BlkRun *run, void *opaque);
    void *save_opaque;
};

typedef struct BlkOneGen {
    const BlkOp *ops;
    unsigned n;
    unsigned next;
} BlkOneGen;

/* Reads back, in chunks, every tracked sector whose content is known. */
typedef struct BlkVerifyGen {
    uint64_t cursor;
    uint32_t chunk;
} BlkVerifyGen;

/* ---- the driver and its tables (virtio-blk-drv.c) ---- */

const char *blk_type_name(uint8_t type);
bool blk_has_feature(const VirtioBlkDrv *d, unsigned bit);
/* A sector of [sector, sector + n) has a request in flight. */
bool blk_range_busy(const VirtioBlkDrv *d, uint64_t sector, uint32_t n);
/* A sector of [sector, sector + n) has a known content (written or read back). */
bool blk_range_known(const VirtioBlkDrv *d, uint64_t sector, uint64_t n);
/* Marks the tracked sectors of [sector, sector + n) in flight (busy) or not. */
void blk_range_mark(VirtioBlkDrv *d, uint64_t sector, uint32_t n, bool busy);
/* The generation a write of sector s carries (fill: the first, 1). */
uint32_t blk_next_gen(const VirtioBlkDrv *d, uint64_t s, bool fill);
/* Request queues a run uses: want (0: all) capped by what the device has. */
unsigned blk_queues_used(const VirtioBlkDrv *d, unsigned want);

/* ---- the request engine (virtio-blk-run.c) ---- */

bool blk_run_setup(BlkRun *run, VirtioBlkDrv *d, unsigned nq, unsigned depth,
                   uint32_t slot_bytes, const WorkloadCtl *ctl, VirtioBlkResult *res,
                   GError **errp);
void blk_run_cleanup(BlkRun *run);
/* Issues what gen gives until it is done and nothing is in flight. */
void blk_run_pump(BlkRun *run, BlkGenFn gen, void *opaque);
/* The run's verdict: false with errp set on a fatal error or a mismatch. */
bool blk_run_finish(BlkRun *run, GError **errp);

/* ---- the synchronous operations (virtio-blk-sync.c) ---- */

/* Generators: a fixed list one at a time (BlkOneGen); read back (BlkVerifyGen). */
BlkGenResult blk_list_gen(BlkRun *run, void *opaque, BlkOp *op);
BlkGenResult blk_verify_gen(BlkRun *run, void *opaque, BlkOp *op);

#endif
