/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where a packed ring (VIRTIO_F_RING_PACKED) resumes, as SET_VRING_BASE
 * and GET_VRING_BASE carry it (vhost-user.rst, "Vring descriptor indices
 * for packed virtqueues"): one 32-bit value,
 *   bits  0-14  the next descriptor the back-end will take (last avail),
 *   bit     15  the driver ring wrap counter that goes with it,
 *   bits 16-30  where the back-end writes its next used descriptor,
 *   bit     31  the device ring wrap counter that goes with it.
 * Both wrap counters start at 1, so a fresh ring's base is 0x80008000.
 */
#ifndef HW_VIRTIO_VHOST_PACKED_H
#define HW_VIRTIO_VHOST_PACKED_H

#include <stdbool.h>
#include <stdint.h>

#include "system/memory.h"

#define VHOST_PACKED_IDX_MASK       0x7fffu
#define VHOST_PACKED_WRAP           0x8000u
#define VHOST_PACKED_BASE_INITIAL   0x80008000u

/* The two halves: each an index in bits 0-14 and its wrap counter in 15. */
static inline uint16_t vhost_packed_base_avail(uint32_t base)
{
    return (uint16_t)base;
}

static inline uint16_t vhost_packed_base_used(uint32_t base)
{
    return (uint16_t)(base >> 16);
}

static inline uint32_t vhost_packed_base_make(uint16_t avail, uint16_t used)
{
    return avail | (uint32_t)used << 16;
}

/*
 * Checks a GET_VRING_BASE reply for a packed ring of num entries (the
 * back-end's word: untrusted). Both indices must be below num. A reply
 * whose upper half is zero gives the avail half only (DPDK 22.11 fills
 * no more): the used half is then taken equal to it, which is what such
 * a back-end assumes itself when it is given the base back. On success
 * *out is the base to resume from; else false with *why (static text).
 */
bool vhost_packed_base_check(uint32_t base, unsigned num, uint32_t *out,
                             const char **why);

/*
 * Where to resume a packed ring whose back-end is gone and cannot tell:
 * read from the descriptor ring, where the device's used descriptors and
 * the driver's available ones show how far each got in which lap, so
 * however many laps went by since the last base does not matter. Returns
 * avail = used = the first slot the device had not marked used, so the
 * requests it left undone are offered again. Each used descriptor counts
 * for one slot: exact for buffers of one descriptor (direct or indirect),
 * which is what our drivers post with INDIRECT_DESC; the inner slots of a
 * chain are never written by the device, so a ring of chains cannot be
 * read this way (an inflight area is the spec's answer). *outstanding
 * (may be NULL) gets the available descriptors from there on, the
 * requests the lost back-end may or may not have done. A ring not in
 * guest RAM keeps last.
 */
uint32_t vhost_packed_base_from_ram(GuestMemory *mem, uint64_t desc_gpa, unsigned num,
                                    uint32_t last, unsigned *outstanding);

#endif
