/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed ring resume points. See include/hw/virtio/vhost-packed.h.
 *
 * Untrusted input: a GET_VRING_BASE reply is the back-end's word, and the
 * descriptor ring in guest RAM is the back-end's (and the guest's) to
 * write: indices are checked against the ring size before use, and a
 * walk of the ring is bounded by its size.
 */
#include "hw/virtio/vhost-packed.h"
#include "hw/virtio/virtio-ring-defs.h"

#include <glib.h>

bool vhost_packed_base_check(uint32_t base, unsigned num, uint32_t *out,
                             const char **why)
{
    uint16_t avail = vhost_packed_base_avail(base);
    uint16_t used = vhost_packed_base_used(base);

    if ((avail & VHOST_PACKED_IDX_MASK) >= num) {
        *why = "its avail index (bits 0-14) is not below the ring size";
        return false;
    }
    if (used == 0) {
        /* The avail half only: the back-end stopped with nothing in flight. */
        used = avail;
    }
    if ((used & VHOST_PACKED_IDX_MASK) >= num) {
        *why = "its used index (bits 16-30) is not below the ring size";
        return false;
    }
    *out = vhost_packed_base_make(avail, used);
    return true;
}

static bool packed_flags(GuestMemory *mem, uint64_t desc_gpa, uint16_t pos, uint16_t *flags)
{
    uint16_t le;

    if (!guest_memory_read(mem, desc_gpa + 16ull * pos + 14, &le, sizeof(le))) {
        return false;
    }
    *flags = GUINT16_FROM_LE(le);
    return true;
}

/* Bit 15 of a base half as 0/1, and a flag as 0/1: compared, not mixed. */
static unsigned flag_bit(uint16_t flags, uint16_t f)
{
    return (flags & f) != 0;
}

uint32_t vhost_packed_base_from_ram(GuestMemory *mem, uint64_t desc_gpa, unsigned num,
                                    uint32_t last, unsigned *outstanding)
{
    uint16_t used = vhost_packed_base_used(last);
    uint16_t pos = used & VHOST_PACKED_IDX_MASK;
    unsigned wrap = (used & VHOST_PACKED_WRAP) != 0;
    unsigned steps = 0, pending = 0;
    uint16_t flags;

    if (outstanding) {
        *outstanding = 0;
    }
    if (num == 0 || num > VHOST_PACKED_WRAP || pos >= num) {
        return last;
    }
    /* Used in this lap: AVAIL and USED both equal the device's counter. */
    while (steps < num && packed_flags(mem, desc_gpa, pos, &flags) &&
           flag_bit(flags, VRING_PACKED_DESC_F_AVAIL) == wrap &&
           flag_bit(flags, VRING_PACKED_DESC_F_USED) == wrap) {
        steps++;
        if (++pos == num) {
            pos = 0;
            wrap ^= 1;
        }
    }
    used = (uint16_t)(pos | (wrap ? VHOST_PACKED_WRAP : 0));
    /* Available in this lap: AVAIL equals the counter, USED does not. */
    for (unsigned k = 0; k < num - steps &&
         packed_flags(mem, desc_gpa, pos, &flags) &&
         flag_bit(flags, VRING_PACKED_DESC_F_AVAIL) == wrap &&
         flag_bit(flags, VRING_PACKED_DESC_F_USED) != wrap; k++) {
        pending++;
        if (++pos == num) {
            pos = 0;
            wrap ^= 1;
        }
    }
    if (outstanding) {
        *outstanding = pending;
    }
    return vhost_packed_base_make(used, used);
}
