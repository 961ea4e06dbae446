/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-blk over vhost-user (-device vhost-user-blk-pci): one vhost_dev
 * of num-queues rings. The config space is the back-end's (GET_CONFIG on
 * every connect, so the CONFIG protocol feature is required); the VMM only
 * overrides num_queues with the configured count.
 */
#ifndef HW_VIRTIO_VHOST_USER_BLK_H
#define HW_VIRTIO_VHOST_USER_BLK_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-base.h"

/* Feature bits (virtio 1.x, 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX       1
#define VIRTIO_BLK_F_SEG_MAX        2
#define VIRTIO_BLK_F_GEOMETRY       4
#define VIRTIO_BLK_F_RO             5
#define VIRTIO_BLK_F_BLK_SIZE       6
#define VIRTIO_BLK_F_FLUSH          9
#define VIRTIO_BLK_F_TOPOLOGY       10
#define VIRTIO_BLK_F_CONFIG_WCE     11
#define VIRTIO_BLK_F_MQ             12
#define VIRTIO_BLK_F_DISCARD        13
#define VIRTIO_BLK_F_WRITE_ZEROES   14

/* Most request queues (QEMU's limit for vhost-user-blk). */
#define VHOST_USER_BLK_MAX_QUEUES   64

/* struct virtio_blk_config, little-endian, as the back-end sends it. */
typedef struct __attribute__((packed)) VirtioBlkConfig {
    uint64_t capacity;                  /* in 512-byte sectors */
    uint32_t size_max;
    uint32_t seg_max;
    struct __attribute__((packed)) {
        uint16_t cylinders;
        uint8_t heads;
        uint8_t sectors;
    } geometry;
    uint32_t blk_size;
    struct __attribute__((packed)) {
        uint8_t physical_block_exp;
        uint8_t alignment_offset;
        uint16_t min_io_size;
        uint32_t opt_io_size;
    } topology;
    uint8_t writeback;
    uint8_t unused0;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
} VirtioBlkConfig;

_Static_assert(sizeof(VirtioBlkConfig) == 60, "virtio_blk_config is 60 bytes");
_Static_assert(offsetof(VirtioBlkConfig, capacity) == 0, "capacity");
_Static_assert(offsetof(VirtioBlkConfig, size_max) == 8, "size_max");
_Static_assert(offsetof(VirtioBlkConfig, seg_max) == 12, "seg_max");
_Static_assert(offsetof(VirtioBlkConfig, geometry) == 16, "geometry");
_Static_assert(offsetof(VirtioBlkConfig, blk_size) == 20, "blk_size");
_Static_assert(offsetof(VirtioBlkConfig, topology) == 24, "topology");
_Static_assert(offsetof(VirtioBlkConfig, writeback) == 32, "writeback");
_Static_assert(offsetof(VirtioBlkConfig, unused0) == 33, "unused0");
_Static_assert(offsetof(VirtioBlkConfig, num_queues) == 34, "num_queues");
_Static_assert(offsetof(VirtioBlkConfig, max_discard_sectors) == 36, "max_discard_sectors");
_Static_assert(offsetof(VirtioBlkConfig, max_discard_seg) == 40, "max_discard_seg");
_Static_assert(offsetof(VirtioBlkConfig, discard_sector_alignment) == 44,
               "discard_sector_alignment");
_Static_assert(offsetof(VirtioBlkConfig, max_write_zeroes_sectors) == 48,
               "max_write_zeroes_sectors");
_Static_assert(offsetof(VirtioBlkConfig, max_write_zeroes_seg) == 52, "max_write_zeroes_seg");
_Static_assert(offsetof(VirtioBlkConfig, write_zeroes_may_unmap) == 56,
               "write_zeroes_may_unmap");
_Static_assert(offsetof(VirtioBlkConfig, unused1) == 57, "unused1");

typedef struct VhostUserBlkParams {
    const char *id;             /* device id ("blk0") */
    CharSocket *chr;
    GuestMemory *mem;
    unsigned num_queues;        /* 1..VHOST_USER_BLK_MAX_QUEUES */
    unsigned queue_size;
    bool iommu_platform;        /* offer VIRTIO_F_IOMMU_PLATFORM */
} VhostUserBlkParams;

/* The device; free with vhost_user_base_free(). */
VhostUserBase *vhost_user_blk_new(const VhostUserBlkParams *p, GError **errp);

/* The config fetched on the last connect (false when none yet). */
bool vhost_user_blk_get_backend_config(VhostUserBase *vub, VirtioBlkConfig *cfg);
/*
 * After CONFIG_CHANGE_MSG: takes the new capacity (sectors) from config, the
 * re-read config space of len bytes. False when vub is no blk device or the
 * config is too short.
 */
bool vhost_user_blk_config_changed(VhostUserBase *vub, const uint8_t *config,
                                   uint32_t len, uint64_t *capacity);

#endif
