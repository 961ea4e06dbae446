/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The split virtqueue as the virtio 1.x spec (2.7) lays it out in guest
 * memory: descriptor, avail and used rings, their flags and sizes; and the
 * packed virtqueue (virtio 1.1+, 2.8): one descriptor ring and two event
 * suppression structures. One
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

/*
 * Packed rings (VIRTIO_F_RING_PACKED). A descriptor is available when its
 * AVAIL flag equals the driver's wrap counter and its USED flag does not;
 * used when both equal the device's wrap counter. Both counters start at
 * 1 and flip each time their index passes the end of the ring.
 */
#define VRING_PACKED_DESC_F_AVAIL   (1u << 7)
#define VRING_PACKED_DESC_F_USED    (1u << 15)
/* Event suppression flags (the structures' flags field). */
#define VRING_PACKED_EVENT_FLAG_ENABLE  0
#define VRING_PACKED_EVENT_FLAG_DISABLE 1
#define VRING_PACKED_EVENT_FLAG_DESC    2   /* only with VIRTIO_RING_F_EVENT_IDX */
/* off_wrap: bits 0-14 a ring offset, bit 15 the wrap counter it belongs to. */
#define VRING_PACKED_EVENT_F_WRAP_CTR   15

typedef struct __attribute__((packed)) VringPackedDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
} VringPackedDesc;

typedef struct __attribute__((packed)) VringPackedEvent {
    uint16_t off_wrap;
    uint16_t flags;
} VringPackedEvent;

_Static_assert(sizeof(VringPackedDesc) == 16, "pvirtq_desc is 16 bytes");
_Static_assert(sizeof(VringPackedEvent) == 4, "pvirtq_event_suppress is 4 bytes");

/*
 * Bytes of each part of a packed ring: the descriptor ring, then the
 * driver and device event suppression areas (passed where a split ring's
 * avail and used rings go: SET_VRING_ADDR's avail and used addresses).
 */
static inline uint64_t vring_packed_desc_size(unsigned num) { return 16ull * num; }
static inline uint64_t vring_packed_event_size(void) { return 4; }

/*
 * A position in a packed ring (slot in bits 0-14, its lap's wrap counter
 * in bit 15) moved on by n slots of a ring of num (n <= num).
 */
static inline uint16_t vring_packed_advance(uint16_t pos, unsigned n, unsigned num)
{
    unsigned slot = (pos & 0x7fffu) + n;
    uint16_t wrap = pos & 0x8000u;

    if (slot >= num) {
        slot -= num;
        wrap ^= 0x8000u;
    }
    return (uint16_t)(slot | wrap);
}

#endif
