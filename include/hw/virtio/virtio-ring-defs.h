/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The split virtqueue as the virtio 1.x spec (2.7) lays it out in guest
 * memory: descriptor, avail and used rings, their flags and sizes. One
 * copy for the front-end (hw/virtio), the guest driver (guest/) and the
 * reference back-end (contrib/). All little endian.
 */
#ifndef HW_VIRTIO_VIRTIO_RING_DEFS_H
#define HW_VIRTIO_VIRTIO_RING_DEFS_H

#include <stdint.h>

#define VRING_DESC_F_NEXT       1
#define VRING_DESC_F_WRITE      2
#define VRING_DESC_F_INDIRECT   4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY  1

typedef struct __attribute__((packed)) VringDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VringDesc;

typedef struct __attribute__((packed)) VringUsedElem {
    uint32_t id;
    uint32_t len;
} VringUsedElem;

_Static_assert(sizeof(VringDesc) == 16, "virtq_desc is 16 bytes");
_Static_assert(sizeof(VringUsedElem) == 8, "virtq_used_elem is 8 bytes");

/* Bytes of each part for a ring of num entries (event-idx fields included). */
static inline uint64_t vring_desc_size(unsigned num) { return 16ull * num; }
static inline uint64_t vring_avail_size(unsigned num) { return 6ull + 2ull * num; }
static inline uint64_t vring_used_size(unsigned num) { return 6ull + 8ull * num; }

#endif
