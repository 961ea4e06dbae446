/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-blk as the virtio 1.x spec (5.2) defines it on the wire: feature
 * bits, request types and status, the request header and segment, the
 * config space. One copy for the front-end (hw/virtio), the guest driver
 * (guest/) and the reference back-end (contrib/). All little endian.
 */
#ifndef HW_VIRTIO_VIRTIO_BLK_DEFS_H
#define HW_VIRTIO_VIRTIO_BLK_DEFS_H

#include <stddef.h>
#include <stdint.h>

#define VIRTIO_BLK_SECTOR_SIZE      512

/* Feature bits (5.2.3). */
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

/* Request types and status (5.2.6). */
#define VIRTIO_BLK_T_IN             0
#define VIRTIO_BLK_T_OUT            1
#define VIRTIO_BLK_T_FLUSH          4
#define VIRTIO_BLK_T_GET_ID         8
#define VIRTIO_BLK_T_DISCARD        11
#define VIRTIO_BLK_T_WRITE_ZEROES   13

#define VIRTIO_BLK_S_OK             0
#define VIRTIO_BLK_S_IOERR          1
#define VIRTIO_BLK_S_UNSUPP         2

#define VIRTIO_BLK_ID_BYTES         20
#define VIRTIO_BLK_WRITE_ZEROES_F_UNMAP 1

typedef struct __attribute__((packed)) VirtioBlkOutHdr {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
} VirtioBlkOutHdr;

/* One segment of a DISCARD or WRITE_ZEROES request. */
typedef struct __attribute__((packed)) VirtioBlkDiscardWz {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
} VirtioBlkDiscardWz;

_Static_assert(sizeof(VirtioBlkOutHdr) == 16, "virtio_blk_outhdr");
_Static_assert(sizeof(VirtioBlkDiscardWz) == 16, "virtio_blk_discard_write_zeroes");

/* struct virtio_blk_config (5.2.4). */
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

#endif
