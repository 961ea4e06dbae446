/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-blk driver (virtio 1.x, 5.2). It knows nothing of
 * vhost: it gets guest RAM, the device's virtqueues (initialised by the
 * caller, kick_fd/call_fd set), the negotiated features, the device
 * config, and a guest-RAM area for its buffers and bookkeeping.
 *
 * Verification works per 512-byte sector: every sector written carries
 * pattern_fill(sector, generation, seed), and a generation table in guest
 * RAM (one u32 per sector) says what each sector must hold: never written
 * (not checked), a generation, zeroes (after DISCARD or WRITE_ZEROES), or
 * unknown (a write the device failed). Two requests never touch the same
 * sector at once (an in-flight bitmap, also in guest RAM), so a read's
 * expected content is fixed while it is in flight.
 *
 * The buffer area is laid out as: a state page, a data pool of
 * min(32 MiB, half the area) for request headers and data, then the
 * generation table and the in-flight bitmap for as many sectors as fit
 * (at most the disk). Verified I/O stays inside those tracked sectors.
 *
 * Everything runs in the caller's thread; one thread per driver.
 */
#ifndef GUEST_VIRTIO_BLK_DRV_H
#define GUEST_VIRTIO_BLK_DRV_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "guest/pattern.h"
#include "guest/stats.h"
#include "guest/virtqueue.h"
#include "guest/workload.h"
#include "hw/virtio/virtio-blk-defs.h"

/* What the driver needs of the device's config space. */
typedef struct VirtioBlkDrvConfig {
    uint64_t capacity;          /* in 512-byte sectors */
    uint32_t blk_size;          /* logical block size; 0 = 512 */
    uint32_t seg_max;           /* 0 = no limit given */
    uint16_t num_queues;
} VirtioBlkDrvConfig;

typedef struct VirtioBlkDrv VirtioBlkDrv;

/* Result of a workload run. */
typedef struct VirtioBlkResult {
    WorkloadStats stats;        /* every completed request */
    uint64_t reads, writes, flushes, discards, write_zeroes;
    uint64_t sectors_verified;  /* sectors read and found as expected */
    uint64_t mismatches;        /* sectors read and found otherwise */
    uint64_t io_errors;         /* requests with a non-OK status */
    uint64_t range_sectors;     /* the range the run used */
    unsigned resets;            /* device resets asked for by the device */
    uint64_t resubmitted;       /* requests submitted again after a reset */
    uint64_t sleeps;            /* waits for a completion in poll() (poll=off, adaptive) */
    bool verified;              /* verification on, and nothing wrong */
    char *first_error;          /* first mismatch or failure, or NULL */
    bool migrated;              /* parked and moved to another VMM: ended there */
    bool continued;             /* picked up a run another VMM parked */
    uint64_t ops_before;        /* ... which had completed this many ops */
} VirtioBlkResult;

void virtio_blk_result_clear(VirtioBlkResult *res);

/*
 * vqs[0..nvqs) are the request queues. seed makes the data patterns;
 * pass the workload's seed so an image can be checked afterwards with
 * virtio_blk_expected_sector(). name ("blk0") prefixes every error.
 * Fails on an unusable config or a too small buffer area.
 */
VirtioBlkDrv *virtio_blk_drv_new(const char *name, GuestMemory *mem,
                                 GuestVirtqueue *vqs, unsigned nvqs,
                                 uint64_t features, const VirtioBlkDrvConfig *cfg,
                                 uint64_t buf_gpa, uint64_t buf_size,
                                 uint32_t seed, GError **errp);
void virtio_blk_drv_free(VirtioBlkDrv *d);

/*
 * Buffer area size with which the generation table covers the whole disk
 * of capacity sectors (and the pool is as large as it gets), for a caller
 * deciding how much guest RAM to hand over. Any smaller area >= 132 KiB
 * works too, verifying a smaller range.
 */
uint64_t virtio_blk_drv_area_size(uint64_t capacity);

/* Sectors covered by the generation table (verifiable range). */
uint64_t virtio_blk_drv_tracked_sectors(const VirtioBlkDrv *d);

/*
 * Runs a workload to its end (ops, runtime, ctl->stop or ctl->deadline),
 * then FLUSHes (when offered and wl->flush) and, when verifying, reads
 * back every sector whose content is known. Returns false with errp set
 * on the first failure: a mismatch (naming the sector), an I/O error, a
 * bad completion or a stalled device; res is filled in either way.
 */
bool virtio_blk_drv_run(VirtioBlkDrv *d, const BlkWorkload *wl,
                        const WorkloadCtl *ctl, VirtioBlkResult *res,
                        GError **errp);

/*
 * Live migration. A run parked through ctl->pause/park leaves a record
 * of where it was in the driver's state page, beside the generation
 * table; with nothing in flight that and the rings' own state in guest
 * RAM are the whole driver. attach builds a driver on such an area
 * (after the RAM was copied to another VMM): nothing is reset, every
 * value read back is checked against the layout this buffer area and
 * disk give (guest RAM is the back-end's to write, so it is untrusted),
 * and a bad one is refused naming the field. continue then goes on with
 * the parked run of the same workload (options as at the start):
 * counts carry over, the blocks written before the switchover are
 * verified like the others; the record is consumed.
 */
VirtioBlkDrv *virtio_blk_drv_attach(const char *name, GuestMemory *mem,
                                    GuestVirtqueue *vqs, unsigned nvqs,
                                    uint64_t features, const VirtioBlkDrvConfig *cfg,
                                    uint64_t buf_gpa, uint64_t buf_size, GError **errp);
bool virtio_blk_drv_continue(VirtioBlkDrv *d, const BlkWorkload *wl,
                             const WorkloadCtl *ctl, VirtioBlkResult *res,
                             GError **errp);

/*
 * Single synchronous operations on queue 0. They keep the generation
 * table right, so a later run or read-back still verifies.
 * write_pattern writes the next generation of each sector;
 * read_verify checks each against the table (a never written sector is
 * not checked).
 */
bool virtio_blk_drv_write_pattern(VirtioBlkDrv *d, uint64_t sector,
                                  uint32_t nsectors, GError **errp);
bool virtio_blk_drv_read_verify(VirtioBlkDrv *d, uint64_t sector,
                                uint32_t nsectors, GError **errp);
/* Raw read into buf (nsectors * 512 bytes); no verification. */
bool virtio_blk_drv_read(VirtioBlkDrv *d, uint64_t sector, uint32_t nsectors,
                         void *buf, GError **errp);
bool virtio_blk_drv_flush(VirtioBlkDrv *d, GError **errp);
bool virtio_blk_drv_discard(VirtioBlkDrv *d, uint64_t sector,
                            uint32_t nsectors, GError **errp);
bool virtio_blk_drv_write_zeroes(VirtioBlkDrv *d, uint64_t sector,
                                 uint32_t nsectors, bool unmap, GError **errp);
/* The device's id string, NUL-terminated (at most 20 characters). */
bool virtio_blk_drv_get_id(VirtioBlkDrv *d, char id[VIRTIO_BLK_ID_BYTES + 1],
                           GError **errp);
/* Reads back every sector with known content and checks it. */
bool virtio_blk_drv_verify_all(VirtioBlkDrv *d, GError **errp);

/*
 * What sector N holds after a "fill" run with this seed (generation 1):
 * writes VIRTIO_BLK_SECTOR_SIZE bytes to buf. check compares.
 */
void virtio_blk_expected_sector(void *buf, uint64_t sector, uint32_t seed);
bool virtio_blk_check_sector(const void *buf, uint64_t sector, uint32_t seed,
                             PatternMismatch *mm);

#endif
