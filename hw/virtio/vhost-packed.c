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

/* A slot as the walk sees it: used or available, and in which lap. */
typedef struct PackedSlot {
    bool ok;                    /* read from guest RAM */
    bool used;
    unsigned wrap;
} PackedSlot;

static PackedSlot packed_slot(GuestMemory *mem, uint64_t desc_gpa, uint16_t pos)
{
    PackedSlot st = { 0 };
    uint16_t flags;

    if (packed_flags(mem, desc_gpa, pos, &flags)) {
        unsigned a = (flags & VRING_PACKED_DESC_F_AVAIL) != 0;
        unsigned u = (flags & VRING_PACKED_DESC_F_USED) != 0;

        /* Used: AVAIL = USED = the lap's counter; available: USED = !AVAIL. */
        st.ok = true;
        st.used = a == u;
        st.wrap = a;
    }
    return st;
}

/*
 * From (pos, wrap), steps over the slots that are in state used/avail in
 * their lap, flipping wrap at the end of the ring, at most max of them.
 */
static unsigned packed_walk(GuestMemory *mem, uint64_t desc_gpa, unsigned num,
                            bool used, uint16_t *pos, unsigned *wrap, unsigned max)
{
    unsigned steps = 0;

    while (steps < max) {
        PackedSlot st = packed_slot(mem, desc_gpa, *pos);

        if (!st.ok || st.used != used || st.wrap != *wrap) {
            break;
        }
        steps++;
        if (++*pos == num) {
            *pos = 0;
            *wrap ^= 1;
        }
    }
    return steps;
}

uint32_t vhost_packed_base_from_ram(GuestMemory *mem, uint64_t desc_gpa, unsigned num,
                                    uint32_t last, unsigned *outstanding)
{
    PackedSlot s0;
    uint16_t pos = 0, used;
    unsigned wrap, pending;

    if (outstanding) {
        *outstanding = 0;
    }
    if (num == 0 || num > VHOST_PACKED_WRAP) {
        return last;
    }
    /*
     * How many laps went by since last is unknown, so the ring itself is
     * read. Where the device stands (p, lap w), slot by slot from 0:
     * available in lap !w (the driver has wrapped ahead), used in lap w
     * (done this lap), from p available in lap w (posted, not taken),
     * then used in lap !w (done last lap; a zeroed slot reads so too).
     * Any part may be empty.
     */
    s0 = packed_slot(mem, desc_gpa, 0);
    if (!s0.ok) {
        return last;
    }
    wrap = s0.wrap;
    if (s0.used) {
        /* No wrapped-ahead part: p is the end of slot 0's used run. */
        packed_walk(mem, desc_gpa, num, true, &pos, &wrap, num);
    } else {
        unsigned avail_wrap = s0.wrap;
        PackedSlot sp;

        packed_walk(mem, desc_gpa, num, false, &pos, &wrap, num);
        sp = packed_slot(mem, desc_gpa, pos);
        if (pos == 0 || !sp.used) {
            /*
             * All available, or available in two laps: the device is
             * where the driver's laps change (pos), or at 0 if never.
             */
            if (pos == 0 || sp.wrap == avail_wrap) {
                pos = 0;
                wrap = avail_wrap;
            } else {
                wrap = sp.wrap;
            }
        } else {
            uint16_t end = pos;
            unsigned w = sp.wrap;

            /*
             * Available then used: either the driver wrapped ahead and
             * the device is at the end of this used run, or the device
             * is at 0 and the run is last lap's, reaching the ring's end.
             */
            packed_walk(mem, desc_gpa, num, true, &end, &w, num - pos);
            if (end == 0) {
                pos = 0;
                wrap = avail_wrap;
            } else {
                pos = end;
                wrap = w;
            }
        }
    }
    used = (uint16_t)(pos | (wrap ? VHOST_PACKED_WRAP : 0));
    /* What is posted from there on, in its lap: in doubt. */
    pending = packed_walk(mem, desc_gpa, num, false, &pos, &wrap, num);
    if (outstanding) {
        *outstanding = pending;
    }
    return vhost_packed_base_make(used, used);
}
