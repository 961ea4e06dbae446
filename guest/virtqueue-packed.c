/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueue, driver side. See include/guest/virtqueue-packed.h.
 *
 * The device reads and writes the descriptor ring concurrently: a buffer
 * becomes the device's when its first descriptor's flags say available
 * (AVAIL = our wrap counter, USED = its inverse), so those flags are
 * stored last, after a release barrier; and a used descriptor (AVAIL =
 * USED = the device's wrap counter) is read only after an acquire
 * barrier that follows the load of its flags.
 *
 * Untrusted input: the used descriptors the device writes (the buffer id
 * is checked against the ring and against what is in flight), the device
 * event suppression area, and our own bookkeeping in guest RAM
 * (GuestVqPackedState, token[], ndesc[], next_id[]), which every back-end
 * maps read/write. Each value is checked before it indexes anything; the
 * first bad one stops the queue (vq->corrupt) and the driver fails the
 * device.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "guest/virtqueue-packed.h"

static inline uint16_t pk_read16(const volatile uint16_t *p)
{
    return *p;
}

static inline void pk_write16(volatile uint16_t *p, uint16_t v)
{
    *p = v;
}

/*
 * The fields the two sides race on, as 16-bit words: the ring is 16-byte
 * and the event areas 4-byte aligned (virtio 2.8.10), so these are too.
 */
static volatile uint16_t *pk_flags(GuestVirtqueue *vq, uint16_t slot)
{
    return (volatile uint16_t *)((uint8_t *)&vq->pdesc[slot] + 14);
}

static volatile uint16_t *pk_ev_off(uint16_t *ev)
{
    return ev;
}

static volatile uint16_t *pk_ev_flags(uint16_t *ev)
{
    return ev + 1;
}

/* What a head's flags may hold. */
#define PK_HEAD_FLAGS (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT | \
                       VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED)

/* The flags that make a descriptor available in the lap of wrap. */
static uint16_t pk_avail_flags(bool wrap)
{
    return wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
}

/* Used by the device in the lap of wrap: AVAIL and USED both equal it. */
static bool pk_is_used(uint16_t flags, bool wrap)
{
    return !!(flags & VRING_PACKED_DESC_F_AVAIL) == wrap &&
           !!(flags & VRING_PACKED_DESC_F_USED) == wrap;
}

uint64_t guest_vq_packed_state_size(unsigned num)
{
    return sizeof(GuestVqPackedState) + 8ull * num + 2ull * num + 2ull * num;
}

/* hdr: a checked copy of pst's header (pst is in guest RAM: read it once). */
static bool pk_map(GuestVirtqueue *vq, GuestMemory *mem, GuestVqPackedState *pst,
                   const GuestVqPackedState *hdr)
{
    unsigned num = hdr->num;

    memset(vq, 0, sizeof(*vq));
    vq->packed = true;
    vq->mem = mem;
    vq->pst = pst;
    vq->num = (uint16_t)num;
    vq->token = (uint64_t *)(pst + 1);
    vq->ndesc = (uint16_t *)(vq->token + num);
    vq->next_id = vq->ndesc + num;
    vq->desc_gpa = hdr->desc_gpa;
    vq->avail_gpa = hdr->driver_gpa;
    vq->used_gpa = hdr->device_gpa;
    vq->indirect_gpa = hdr->indirect_gpa;
    vq->pdesc = guest_memory_gpa_to_hva(mem, hdr->desc_gpa, vring_packed_desc_size(num));
    vq->driver_event = guest_memory_gpa_to_hva(mem, hdr->driver_gpa,
                                               vring_packed_event_size());
    vq->device_event = guest_memory_gpa_to_hva(mem, hdr->device_gpa,
                                               vring_packed_event_size());
    if (hdr->indirect_gpa) {
        vq->pindirect = guest_memory_gpa_to_hva(mem, hdr->indirect_gpa,
                                                guest_vq_indirect_size(num));
        if (!vq->pindirect) {
            return false;
        }
    }
    vq->kick_fd = -1;
    vq->call_fd = -1;
    return vq->pdesc && vq->driver_event && vq->device_event;
}

bool guest_vq_init_packed(GuestVirtqueue *vq, GuestMemory *mem, unsigned num,
                          uint64_t desc_gpa, uint64_t driver_gpa, uint64_t device_gpa,
                          uint64_t indirect_gpa, uint64_t state_gpa, bool event_idx)
{
    GuestVqPackedState *pst;

    /* Packed rings take any size up to 32768 (virtio 2.8). */
    if (num == 0 || num > 32768) {
        return false;
    }
    pst = guest_memory_gpa_to_hva(mem, state_gpa, guest_vq_packed_state_size(num));
    if (!pst) {
        return false;
    }
    memset(pst, 0, guest_vq_packed_state_size(num));
    pst->num = (uint16_t)num;
    pst->flags = (event_idx ? GUEST_VQ_F_EVENT_IDX : 0) |
                 (indirect_gpa ? GUEST_VQ_F_INDIRECT : 0);
    pst->num_free = (uint16_t)num;
    /* Both wrap counters start at 1. */
    pst->next_avail = GUEST_VQ_PACKED_WRAP;
    pst->last_used = GUEST_VQ_PACKED_WRAP;
    pst->desc_gpa = desc_gpa;
    pst->driver_gpa = driver_gpa;
    pst->device_gpa = device_gpa;
    pst->indirect_gpa = indirect_gpa;
    if (!pk_map(vq, mem, pst, pst)) {
        return false;
    }
    memset(vq->pdesc, 0, vring_packed_desc_size(num));
    memset(vq->driver_event, 0, vring_packed_event_size());
    memset(vq->device_event, 0, vring_packed_event_size());
    for (unsigned i = 0; i < num; i++) {
        vq->next_id[i] = (uint16_t)(i + 1);
    }
    /* Published last: a half-initialised state is never taken as valid. */
    pst->magic = GUEST_VQ_PACKED_MAGIC;
    return true;
}

bool guest_vq_packed_attach(GuestVirtqueue *vq, GuestMemory *mem, uint64_t state_gpa)
{
    GuestVqPackedState *pst = guest_memory_gpa_to_hva(mem, state_gpa, sizeof(*pst));
    GuestVqPackedState h;

    /* Copied once, checked, then used: the back-end may be writing it. */
    if (!pst) {
        return false;
    }
    memcpy(&h, pst, sizeof(h));
    if (h.magic != GUEST_VQ_PACKED_MAGIC || h.num == 0 || h.num > 32768 ||
        h.num_free > h.num || (h.num_free && h.free_head >= h.num) ||
        (h.next_avail & GUEST_VQ_PACKED_SLOT) >= h.num ||
        (h.last_used & GUEST_VQ_PACKED_SLOT) >= h.num ||
        (h.flags & ~(GUEST_VQ_F_EVENT_IDX | GUEST_VQ_F_INDIRECT | GUEST_VQ_F_IN_ORDER)) ||
        !(h.flags & GUEST_VQ_F_INDIRECT) != !h.indirect_gpa || h.batch_left > h.num ||
        h.pend_slot > h.num || (h.pend_flags & ~PK_HEAD_FLAGS) ||
        !guest_memory_gpa_to_hva(mem, state_gpa, guest_vq_packed_state_size(h.num))) {
        return false;
    }
    if (!pk_map(vq, mem, pst, &h)) {
        return false;
    }
    for (unsigned i = 0; i < vq->num; i++) {
        if (vq->ndesc[i] > vq->num) {
            return false;
        }
    }
    return true;
}

bool guest_vq_packed_set_in_order(GuestVirtqueue *vq)
{
    if (vq->pst->num_free != vq->num) {
        return false;
    }
    vq->pst->flags |= GUEST_VQ_F_IN_ORDER;
    return true;
}

bool guest_vq_packed_add(GuestVirtqueue *vq, const GuestSg *out, unsigned n_out,
                         const GuestSg *in, unsigned n_in, uint64_t token)
{
    GuestVqPackedState *pst = vq->pst;
    unsigned total = n_out + n_in, need;
    uint16_t num_free = pst->num_free, id = pst->free_head, pos = pst->next_avail;
    uint16_t head = pos & GUEST_VQ_PACKED_SLOT, head_flags;
    bool indirect = vq->pindirect && total > 1 && total <= GUEST_VQ_INDIRECT_MAX;
    bool in_order = pst->flags & GUEST_VQ_F_IN_ORDER;

    /*
     * IN_ORDER: a buffer's id is the slot of its first descriptor, so the
     * oldest in flight is always the one at last_used (no free id list).
     */
    if (in_order) {
        if (head >= vq->num) {
            return guest_vq_note_corrupt(vq, "next_avail", pos, NULL);
        }
        id = head;
    }
    if (vq->corrupt || total == 0 || num_free == 0) {
        return false;
    }
    if (num_free > vq->num) {
        return guest_vq_note_corrupt(vq, "num_free", num_free, NULL);
    }
    need = indirect ? 1 : total;
    if (num_free < need) {
        return false;
    }
    /* With a slot free, fewer than num buffers are out: the id is free. */
    if (id >= vq->num) {
        return guest_vq_note_corrupt(vq, "free_head", id, NULL);
    }
    if (vq->ndesc[id]) {
        return guest_vq_note_corrupt(vq, "free_head", id, "names a buffer in flight");
    }
    if (head >= vq->num) {
        return guest_vq_note_corrupt(vq, "next_avail", pos, NULL);
    }
    if (indirect) {
        VringPackedDesc *table = vq->pindirect + (size_t)id * GUEST_VQ_INDIRECT_MAX;

        /* In a table only WRITE means anything; entries follow each other. */
        for (unsigned i = 0; i < total; i++) {
            const GuestSg *sg = i < n_out ? &out[i] : &in[i - n_out];

            table[i].addr = sg->gpa;
            table[i].len = sg->len;
            table[i].id = 0;
            table[i].flags = i >= n_out ? VRING_DESC_F_WRITE : 0;
        }
        vq->pdesc[head].addr = vq->indirect_gpa +
            (uint64_t)id * GUEST_VQ_INDIRECT_MAX * sizeof(VringPackedDesc);
        vq->pdesc[head].len = total * sizeof(VringPackedDesc);
        vq->pdesc[head].id = id;
        head_flags = VRING_DESC_F_INDIRECT | pk_avail_flags(pos & GUEST_VQ_PACKED_WRAP);
        pos = vring_packed_advance(pos, 1, vq->num);
    } else {
        for (unsigned k = 0; k < total; k++) {
            const GuestSg *sg = k < n_out ? &out[k] : &in[k - n_out];
            uint16_t slot = pos & GUEST_VQ_PACKED_SLOT;
            uint16_t flags = (k + 1 < total ? VRING_DESC_F_NEXT : 0) |
                             (k >= n_out ? VRING_DESC_F_WRITE : 0) |
                             pk_avail_flags(pos & GUEST_VQ_PACKED_WRAP);

            vq->pdesc[slot].addr = sg->gpa;
            vq->pdesc[slot].len = sg->len;
            vq->pdesc[slot].id = id;
            /* The rest of a chain may be visible early: the head guards it. */
            if (k == 0) {
                head_flags = flags;
            } else {
                pk_write16(pk_flags(vq, slot), flags);
            }
            pos = vring_packed_advance(pos, 1, vq->num);
        }
    }
    if (!in_order) {
        pst->free_head = vq->next_id[id];
    }
    pst->num_free = (uint16_t)(num_free - need);
    pst->next_avail = pos;
    vq->ndesc[id] = (uint16_t)need;
    vq->token[id] = token;
    vq->added += need;
    /*
     * The first head since the last kick stays hidden until the kick
     * (pk_publish); the ones after it are stored now, since the device
     * reads the ring in order and stops at the hidden one. The device's
     * core polls the next slot's flags: published one by one, each line
     * of four descriptors would go back and forth between the two cores
     * up to four times while we fill it. The split ring likewise hands
     * a burst over with one avail->idx store at the kick.
     */
    if (pst->pend_slot) {
        pk_write16(pk_flags(vq, head), head_flags);
    } else {
        pst->pend_flags = head_flags;
        pst->pend_slot = (uint16_t)(head + 1);
    }
    return true;
}

/* The hidden head's flags (guest_vq_packed_add), so the device sees the burst. */
static bool pk_publish(GuestVirtqueue *vq)
{
    GuestVqPackedState *pst = vq->pst;
    uint16_t slot1 = pst->pend_slot, flags = pst->pend_flags;

    if (!slot1) {
        return true;
    }
    if (slot1 > vq->num) {
        return guest_vq_note_corrupt(vq, "pend_slot", slot1, NULL);
    }
    if (flags & ~PK_HEAD_FLAGS) {
        return guest_vq_note_corrupt(vq, "pend_flags", flags, NULL);
    }
    pst->pend_slot = 0;
    /*
     * Everything the burst wrote before its head's flags hand it over:
     * pairs with the device's read barrier after it sees them.
     */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    pk_write16(pk_flags(vq, slot1 - 1), flags);
    return true;
}

bool guest_vq_packed_kick(GuestVirtqueue *vq)
{
    GuestVqPackedState *pst = vq->pst;
    uint16_t added = vq->added, flags, off_wrap, pos = pst->next_avail;
    bool need;

    /* Before the added check: a head hidden when the guest migrated counts too. */
    if (!pk_publish(vq) || added == 0) {
        return false;
    }
    vq->added = 0;
    /*
     * The head flags' stores before the load of the device's hint:
     * store-load needs a full barrier. Pairs with the device's barrier
     * between writing its event area and re-reading the ring.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    flags = pk_read16(pk_ev_flags(vq->device_event));
    off_wrap = pk_read16(pk_ev_off(vq->device_event));
    if (flags == VRING_PACKED_EVENT_FLAG_DESC && (pst->flags & GUEST_VQ_F_EVENT_IDX)) {
        uint16_t new = pos & GUEST_VQ_PACKED_SLOT;
        uint16_t ev = off_wrap & GUEST_VQ_PACKED_SLOT;

        /*
         * The event slot in the previous lap sits one ring behind: in
         * that linear count, did [new - added, new) cross it?
         */
        if ((off_wrap ^ pos) & GUEST_VQ_PACKED_WRAP) {
            ev = (uint16_t)(ev - vq->num);
        }
        need = (uint16_t)(new - ev - 1) < added;
    } else {
        /* DESC without EVENT_IDX is not the device's to ask: notify. */
        need = flags != VRING_PACKED_EVENT_FLAG_DISABLE;
    }
    if (!need) {
        vq->kicks_suppressed++;
        return false;
    }
    /* Non-blocking eventfd: a full counter still wakes the device. */
    if (vq->kick_fd >= 0 && write(vq->kick_fd, &(uint64_t){ 1 }, 8) < 0 && errno == EINTR) {
        (void)!write(vq->kick_fd, &(uint64_t){ 1 }, 8);
    }
    vq->kicks++;
    return true;
}

/* Whether the next slot to reap is marked used: a bad state counts as news. */
bool guest_vq_packed_has_used(GuestVirtqueue *vq)
{
    uint16_t lu = vq->pst->last_used, slot = lu & GUEST_VQ_PACKED_SLOT;

    if (vq->corrupt || slot >= vq->num || vq->pst->batch_left) {
        return true;
    }
    return pk_is_used(pk_read16(pk_flags(vq, slot)), lu & GUEST_VQ_PACKED_WRAP);
}

/*
 * IN_ORDER: the id the device wrote names the last buffer of a batch
 * that starts at lu (just lu's, from a device that writes every
 * descriptor): counts the batch into batch_left. Only its first slot is
 * written used; the others keep our available flags.
 */
static bool pk_start_batch(GuestVirtqueue *vq, uint16_t lu, uint16_t id, uint32_t used_len)
{
    GuestVqPackedState *pst = vq->pst;
    uint16_t num_free = pst->num_free, h = lu & GUEST_VQ_PACKED_SLOT, left;
    unsigned in_flight = vq->num - num_free, walked = 0;

    /* A used descriptor with nothing in flight, or a state gone bad. */
    if (num_free >= vq->num) {
        return guest_vq_note_corrupt(vq, "used.id", id, "names no request in flight");
    }
    for (left = 1; h != id; left++) {
        uint16_t n = vq->ndesc[h];

        if (n == 0 || n > vq->num) {
            return guest_vq_note_corrupt(vq, "ndesc", n, NULL);
        }
        walked += n;
        if (walked >= in_flight) {
            return guest_vq_note_corrupt(vq, "used.id", id, "names no request in flight");
        }
        h = (uint16_t)((h + n) % vq->num);
    }
    pst->batch_left = left;
    pst->batch_len = used_len;
    return true;
}

void guest_vq_packed_prefetch(GuestVirtqueue *vq, uint16_t pos, unsigned n, bool write)
{
    /* Four 16-byte descriptors to a 64-byte line. */
    unsigned per_line = 64 / sizeof(VringPackedDesc);
    unsigned slot;

    if (!vq->num) {
        return;
    }
    slot = (pos & GUEST_VQ_PACKED_SLOT) % vq->num;
    n = MIN(n, vq->num);
    for (unsigned k = 0; k < n; k += per_line) {
        const VringPackedDesc *d = &vq->pdesc[(slot + k) % vq->num];

        if (write) {
            __builtin_prefetch(d, 1);
        } else {
            __builtin_prefetch(d, 0);
        }
    }
}

bool guest_vq_packed_get_used(GuestVirtqueue *vq, uint64_t *token, uint32_t *len)
{
    GuestVqPackedState *pst = vq->pst;
    uint16_t lu = pst->last_used, slot = lu & GUEST_VQ_PACKED_SLOT;
    uint16_t flags, id, n, num_free, left = 0;
    uint32_t used_len;
    bool in_order = pst->flags & GUEST_VQ_F_IN_ORDER;

    if (vq->corrupt) {
        return false;
    }
    if (slot >= vq->num) {
        return guest_vq_note_corrupt(vq, "last_used", lu, NULL);
    }
    if (in_order) {
        left = pst->batch_left;
        if (left > vq->num) {
            return guest_vq_note_corrupt(vq, "batch_left", left, NULL);
        }
    }
    if (left) {
        /* Inside a batch: the oldest buffer in flight, no descriptor to read. */
        id = slot;
        used_len = left == 1 ? pst->batch_len : 0;
    } else {
        flags = pk_read16(pk_flags(vq, slot));
        if (!pk_is_used(flags, lu & GUEST_VQ_PACKED_WRAP)) {
            return false;
        }
        /* The id and length only after the flags that say they are written. */
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        id = vq->pdesc[slot].id;
        used_len = vq->pdesc[slot].len;
    }
    if (id >= vq->num) {
        return guest_vq_note_corrupt(vq, "used.id", id, NULL);
    }
    if (in_order && !left) {
        if (!pk_start_batch(vq, lu, id, used_len)) {
            return false;
        }
        left = pst->batch_left;
        id = slot;
        used_len = left == 1 ? used_len : 0;
    }
    n = vq->ndesc[id];
    if (n == 0) {
        return guest_vq_note_corrupt(vq, "used.id", id, "names no request in flight");
    }
    if (n > vq->num) {
        return guest_vq_note_corrupt(vq, "ndesc", n, NULL);
    }
    num_free = pst->num_free;
    if (num_free > vq->num - n) {
        return guest_vq_note_corrupt(vq, "num_free", num_free, NULL);
    }
    /* The device skips the slots of the whole buffer (virtio 2.8.6). */
    pst->last_used = vring_packed_advance(lu, n, vq->num);
    if (in_order) {
        pst->batch_left = left - 1;
    } else {
        vq->next_id[id] = pst->free_head;
        pst->free_head = id;
    }
    pst->num_free = num_free + n;
    vq->ndesc[id] = 0;
    *token = vq->token[id];
    *len = used_len;
    if ((pst->flags & GUEST_VQ_F_EVENT_IDX) && !vq->cb_disabled) {
        /* Interrupt me once you write past what I have consumed. */
        pk_write16(pk_ev_off(vq->driver_event), pst->last_used);
    }
    return true;
}

bool guest_vq_packed_enable_cb(GuestVirtqueue *vq)
{
    GuestVqPackedState *pst = vq->pst;
    uint16_t lu = pst->last_used, slot = lu & GUEST_VQ_PACKED_SLOT;

    vq->cb_disabled = false;
    if (pst->flags & GUEST_VQ_F_EVENT_IDX) {
        pk_write16(pk_ev_off(vq->driver_event), lu);
        /* The offset before the mode that makes the device read it. */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        pk_write16(pk_ev_flags(vq->driver_event), VRING_PACKED_EVENT_FLAG_DESC);
    } else {
        pk_write16(pk_ev_flags(vq->driver_event), VRING_PACKED_EVENT_FLAG_ENABLE);
    }
    /* The hint must be visible before we look for completions that raced. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return pst->batch_left || (slot < vq->num &&
           pk_is_used(pk_read16(pk_flags(vq, slot)), lu & GUEST_VQ_PACKED_WRAP));
}

void guest_vq_packed_disable_cb(GuestVirtqueue *vq)
{
    vq->cb_disabled = true;
    pk_write16(pk_ev_flags(vq->driver_event), VRING_PACKED_EVENT_FLAG_DISABLE);
}
