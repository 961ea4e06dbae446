/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A RAM-disk virtio-blk device model for the guest driver's unit tests
 * (test-guest-blk.c): it runs in its own thread like a back-end would,
 * sleeps on the kick eventfds, walks the rings through GuestMemory (direct
 * chains and indirect tables), honours interrupt suppression (flags and
 * EVENT_IDX) and signals the call eventfds. Faults are injected through
 * the fields of `dev`.
 */
#ifndef UNIT_BLK_DEV_H
#define UNIT_BLK_DEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest/virtio-blk-drv.h"

#define RAM_SIZE        (32u << 20)
#define RING_GPA        0x100000ull
#define BUF_GPA         (8ull << 20)
#define BUF_SIZE        (16ull << 20)
#define CAPACITY        8192u           /* sectors: 4 MiB */
#define QSIZE           64
#define MAXQ            4
#define DEV_ID          "ramdisk-0123456789ABCDEF"  /* longer than 20 */

typedef struct BlkDev {
    GuestVirtqueue *vqs;
    unsigned nq;
    bool event_idx;
    uint8_t *disk;
    uint16_t last_avail[MAXQ];
    uint16_t used_idx[MAXQ];
    pthread_t thread;
    int stop_fd;
    /* fault injection */
    int64_t corrupt_sector;     /* flip a byte of this sector in reads */
    bool no_call;               /* never signal the call eventfd */
    bool hang;                  /* take requests, never complete them */
    uint64_t requests;
} BlkDev;

#define ALL_FEATURES ((1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_MQ) | \
                      (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES) | \
                      (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_SEG_MAX))

extern RamBlock *rb;
extern GuestMemory *mem;
extern GuestVirtqueue vqs[MAXQ];
extern uint64_t vq_state_gpa[MAXQ];
extern BlkDev dev;

void ring_setup(unsigned nq, bool indirect, bool event_idx);
void dev_start(void);
void dev_stop(void);
void teardown(void);
VirtioBlkDrv *drv_new(unsigned nq, uint64_t features);
void run_ok_ctl(VirtioBlkDrv *d, const BlkWorkload *wl, const WorkloadCtl *ctl,
                       VirtioBlkResult *res);
void run_ok(VirtioBlkDrv *d, const BlkWorkload *wl, VirtioBlkResult *res);
void blk_test(unsigned nq, bool indirect, bool event_idx);

#endif
