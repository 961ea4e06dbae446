/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue, driver side. See include/guest/virtqueue.h.
 *
 * The device (a vhost-user back-end in another process) reads and writes
 * these rings concurrently, so every access to a field the other side
 * writes goes through a volatile access, and each barrier says which
 * store/load it orders and against what on the device side. The layout is
 * little-endian; like every vhost-user peer we run on a little-endian host.
 *
 * Untrusted input: what the device writes (used ring) is untrusted: an id out of range or
 * naming a slot that holds no request is refused, never followed. So is
 * our own bookkeeping (GuestVqState, token[], ndesc[], the free list
 * linked through desc[].next): it is in guest RAM, which every back-end
 * maps read/write. Each value is compared with the ring size before it
 * indexes anything, once, where it is read (one compare: no copies); the
 * first bad one stops the queue (vq->corrupt) and the driver fails the
 * device.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "guest/virtqueue.h"
#include "guest/virtqueue-packed.h"

#define AVAIL_FLAGS     0
#define AVAIL_IDX       1
#define AVAIL_RING      2

static inline uint16_t vq_read16(const volatile uint16_t *p)
{
    return *p;
}

static inline void vq_write16(volatile uint16_t *p, uint16_t v)
{
    *p = v;
}

static volatile uint16_t *used_flags(GuestVirtqueue *vq)
{
    return (volatile uint16_t *)vq->used;
}

static volatile uint16_t *used_idx(GuestVirtqueue *vq)
{
    return (volatile uint16_t *)(vq->used + 2);
}

static VringUsedElem used_elem(GuestVirtqueue *vq, uint16_t slot)
{
    VringUsedElem e;
    memcpy(&e, vq->used + 4 + 8u * slot, sizeof(e));
    return e;
}

static volatile uint16_t *avail_event(GuestVirtqueue *vq)
{
    return (volatile uint16_t *)(vq->used + 4 + 8u * vq->num);
}

static volatile uint16_t *used_event(GuestVirtqueue *vq)
{
    return (volatile uint16_t *)&vq->avail[AVAIL_RING + vq->num];
}

/* Records the first corrupted value; always false, for return. */
bool guest_vq_note_corrupt(GuestVirtqueue *vq, const char *field, uint64_t value,
                           const char *why)
{
    if (!vq->corrupt) {
        vq->corrupt = field;
        vq->corrupt_why = why;
        vq->corrupt_value = value;
    }
    return false;
}

static bool vq_corrupt(GuestVirtqueue *vq, const char *field, uint64_t value)
{
    return guest_vq_note_corrupt(vq, field, value, NULL);
}

char *guest_vq_corruption(const GuestVirtqueue *vq, const char *dev, unsigned q)
{
    if (!vq->corrupt) {
        return NULL;
    }
    if (vq->corrupt_why) {
        return g_strdup_printf("device state in RAM corrupted: %s: queue %u: %s %" PRIu64
                               " %s", dev, q, vq->corrupt, vq->corrupt_value,
                               vq->corrupt_why);
    }
    return g_strdup_printf("device state in RAM corrupted: %s: queue %u: %s %" PRIu64
                           " is out of range for a ring of %u", dev, q, vq->corrupt,
                           vq->corrupt_value, vq->num);
}

uint64_t guest_vq_state_size(unsigned num)
{
    return sizeof(GuestVqState) + 8ull * num + 2ull * num;
}

uint64_t guest_vq_indirect_size(unsigned num)
{
    return (uint64_t)num * GUEST_VQ_INDIRECT_MAX * sizeof(VringDesc);
}

/* hdr: a checked copy of st's header (st is in guest RAM: read it once). */
static bool vq_map(GuestVirtqueue *vq, GuestMemory *mem, GuestVqState *st,
                   const GuestVqState *hdr)
{
    unsigned num = hdr->num;

    memset(vq, 0, sizeof(*vq));
    vq->mem = mem;
    vq->st = st;
    vq->num = num;
    vq->token = (uint64_t *)(st + 1);
    vq->ndesc = (uint16_t *)(vq->token + num);
    vq->desc_gpa = hdr->desc_gpa;
    vq->avail_gpa = hdr->avail_gpa;
    vq->used_gpa = hdr->used_gpa;
    vq->indirect_gpa = hdr->indirect_gpa;
    vq->desc = guest_memory_gpa_to_hva(mem, hdr->desc_gpa, vring_desc_size(num));
    vq->avail = guest_memory_gpa_to_hva(mem, hdr->avail_gpa, vring_avail_size(num));
    vq->used = guest_memory_gpa_to_hva(mem, hdr->used_gpa, vring_used_size(num));
    if (hdr->indirect_gpa) {
        vq->indirect = guest_memory_gpa_to_hva(mem, hdr->indirect_gpa,
                                               guest_vq_indirect_size(num));
        if (!vq->indirect) {
            return false;
        }
    }
    vq->kick_fd = -1;
    vq->call_fd = -1;
    vq->kicked_avail_idx = hdr->avail_idx;
    return vq->desc && vq->avail && vq->used;
}

bool guest_vq_init(GuestVirtqueue *vq, GuestMemory *mem, unsigned num,
                   uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
                   uint64_t indirect_gpa, uint64_t state_gpa, bool event_idx)
{
    GuestVqState *st;

    /* Ring sizes are powers of two no larger than 32768 (virtio 2.7). */
    if (num == 0 || num > 32768 || (num & (num - 1))) {
        return false;
    }
    st = guest_memory_gpa_to_hva(mem, state_gpa, guest_vq_state_size(num));
    if (!st) {
        return false;
    }
    memset(st, 0, guest_vq_state_size(num));
    st->num = num;
    st->desc_gpa = desc_gpa;
    st->avail_gpa = avail_gpa;
    st->used_gpa = used_gpa;
    st->indirect_gpa = indirect_gpa;
    st->flags = (event_idx ? GUEST_VQ_F_EVENT_IDX : 0) |
                (indirect_gpa ? GUEST_VQ_F_INDIRECT : 0);
    st->num_free = num;
    st->free_head = 0;
    if (!vq_map(vq, mem, st, st)) {
        return false;
    }
    memset(vq->desc, 0, vring_desc_size(num));
    memset(vq->avail, 0, vring_avail_size(num));
    memset(vq->used, 0, vring_used_size(num));
    for (unsigned i = 0; i < num; i++) {
        vq->desc[i].next = (uint16_t)(i + 1);
    }
    /* Published last: a half-initialised state is never taken as valid. */
    st->magic = GUEST_VQ_STATE_MAGIC;
    return true;
}

bool guest_vq_attach(GuestVirtqueue *vq, GuestMemory *mem, uint64_t state_gpa)
{
    GuestVqState *st = guest_memory_gpa_to_hva(mem, state_gpa, sizeof(*st));
    GuestVqState h;

    /* The layout is the one the state says it is. */
    if (st && st->magic == GUEST_VQ_PACKED_MAGIC) {
        return guest_vq_packed_attach(vq, mem, state_gpa);
    }
    /*
     * Guest RAM came from elsewhere and a back-end may have written it
     * (and may still be writing it): the header is copied once, the copy
     * is checked and used; nothing indexes anything before it is checked.
     */
    if (!st) {
        return false;
    }
    memcpy(&h, st, sizeof(h));
    if (h.magic != GUEST_VQ_STATE_MAGIC || h.num == 0 || h.num > 32768 ||
        (h.num & (h.num - 1)) || h.num_free > h.num ||
        (h.num_free && h.free_head >= h.num) ||
        (h.flags & ~(GUEST_VQ_F_EVENT_IDX | GUEST_VQ_F_INDIRECT | GUEST_VQ_F_IN_ORDER)) ||
        !(h.flags & GUEST_VQ_F_INDIRECT) != !h.indirect_gpa || h.batch_left > h.num ||
        !guest_memory_gpa_to_hva(mem, state_gpa, guest_vq_state_size(h.num))) {
        return false;
    }
    if (!vq_map(vq, mem, st, &h)) {
        return false;
    }
    for (unsigned i = 0; i < vq->num; i++) {
        if (vq->ndesc[i] > vq->num) {
            return false;
        }
    }
    return true;
}

bool guest_vq_set_in_order(GuestVirtqueue *vq)
{
    if (vq->packed) {
        return guest_vq_packed_set_in_order(vq);
    }
    if (vq->st->num_free != vq->num) {
        return false;
    }
    /* Ring order starts at descriptor 0; the free list is not used. */
    vq->st->free_head = 0;
    vq->st->flags |= GUEST_VQ_F_IN_ORDER;
    return true;
}

bool guest_vq_add(GuestVirtqueue *vq, const GuestSg *out, unsigned n_out,
                  const GuestSg *in, unsigned n_in, uint64_t token)
{
    GuestVqState *st = vq->st;
    unsigned total = n_out + n_in;
    uint16_t head, num_free;
    bool in_order;

    if (vq->packed) {
        return guest_vq_packed_add(vq, out, n_out, in, n_in, token);
    }
    head = st->free_head;
    num_free = st->num_free;
    in_order = st->flags & GUEST_VQ_F_IN_ORDER;
    if (vq->corrupt || total == 0 || num_free == 0) {
        return false;
    }
    if (num_free > vq->num) {
        return vq_corrupt(vq, "num_free", num_free);
    }
    if (head >= vq->num) {
        return vq_corrupt(vq, "free_head", head);
    }
    /* A free descriptor means fewer than num requests are out. */
    if ((uint16_t)(st->avail_idx - st->last_used_idx) >= vq->num) {
        return vq_corrupt(vq, "avail_idx - last_used_idx",
                          (uint16_t)(st->avail_idx - st->last_used_idx));
    }
    if (vq->indirect && total > 1 && total <= GUEST_VQ_INDIRECT_MAX) {
        VringDesc *table = vq->indirect + (size_t)head * GUEST_VQ_INDIRECT_MAX;

        for (unsigned i = 0; i < total; i++) {
            const GuestSg *sg = i < n_out ? &out[i] : &in[i - n_out];
            table[i].addr = sg->gpa;
            table[i].len = sg->len;
            table[i].flags = (i + 1 < total ? VRING_DESC_F_NEXT : 0) |
                             (i >= n_out ? VRING_DESC_F_WRITE : 0);
            table[i].next = (uint16_t)(i + 1);
        }
        st->free_head = in_order ? (head + 1) & (vq->num - 1) : vq->desc[head].next;
        vq->desc[head].addr = st->indirect_gpa +
            (uint64_t)head * GUEST_VQ_INDIRECT_MAX * sizeof(VringDesc);
        vq->desc[head].len = total * sizeof(VringDesc);
        vq->desc[head].flags = VRING_DESC_F_INDIRECT;
        st->num_free = num_free - 1;
        vq->ndesc[head] = 1;
    } else {
        uint16_t i = head, last = head;

        if (num_free < total) {
            return false;
        }
        /* The free list is already chained through .next: only fill in. */
        for (unsigned k = 0; k < total; k++) {
            const GuestSg *sg = k < n_out ? &out[k] : &in[k - n_out];

            if (i >= vq->num) {
                return vq_corrupt(vq, "desc.next", i);
            }
            vq->desc[i].addr = sg->gpa;
            vq->desc[i].len = sg->len;
            vq->desc[i].flags = (k + 1 < total ? VRING_DESC_F_NEXT : 0) |
                                (k >= n_out ? VRING_DESC_F_WRITE : 0);
            last = i;
            if (in_order) {
                /* Ring order: the next descriptor, 0 after the last. */
                vq->desc[i].next = (i + 1) & (vq->num - 1);
            }
            i = vq->desc[i].next;
        }
        st->free_head = vq->desc[last].next;
        st->num_free = (uint16_t)(num_free - total);
        vq->ndesc[head] = (uint16_t)total;
    }
    vq->token[head] = token;
    vq->avail[AVAIL_RING + (st->avail_idx & (vq->num - 1))] = head;
    st->avail_idx++;
    return true;
}

bool guest_vq_kick(GuestVirtqueue *vq)
{
    GuestVqState *st = vq->st;
    uint16_t old, new;
    bool need;

    if (vq->packed) {
        return guest_vq_packed_kick(vq);
    }
    old = vq->kicked_avail_idx;
    new = st->avail_idx;
    if (old == new) {
        return false;
    }
    /*
     * Descriptors and ring entries before the index: pairs with the
     * device's read barrier after it loads avail->idx.
     */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    vq_write16(&vq->avail[AVAIL_IDX], new);
    /*
     * Store avail->idx before loading the device's suppression hints:
     * store-load ordering needs a full barrier. Pairs with the device's
     * barrier between writing avail_event and re-reading avail->idx.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (st->flags & GUEST_VQ_F_EVENT_IDX) {
        uint16_t ev = vq_read16(avail_event(vq));
        /* Did [old, new) cross the index the device asked to hear about? */
        need = (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
    } else {
        need = !(vq_read16(used_flags(vq)) & VRING_USED_F_NO_NOTIFY);
    }
    vq->kicked_avail_idx = new;
    if (!need) {
        vq->kicks_suppressed++;
        return false;
    }
    if (vq->kick_fd >= 0) {
        uint64_t one = 1;
        ssize_t r;
        do {
            r = write(vq->kick_fd, &one, sizeof(one));
        } while (r < 0 && errno == EINTR);
    }
    vq->kicks++;
    return true;
}

/*
 * Used entries the device published past ours: one load of used->idx,
 * checked, then the acquire fence that lets their contents be read.
 */
static uint16_t vq_used_pending(GuestVirtqueue *vq)
{
    uint16_t n, idx = vq_read16(used_idx(vq));

    if (vq->corrupt) {
        return 0;
    }
    n = (uint16_t)(idx - vq->st->last_used_idx);
    /* The device cannot have completed more than the ring holds. */
    if (n > vq->num) {
        vq_corrupt(vq, "used.idx - last_used_idx", n);
        return 0;
    }
    /* Read the entries only after seeing the index that covers them. */
    if (n) {
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    }
    return n;
}

/*
 * VIRTIO_F_IN_ORDER: hands out the oldest request in flight, ready (>= 1)
 * being how many the used index says are done. Descriptors go in ring
 * order, so the oldest starts num - num_free descriptors behind
 * free_head. Outside a batch the entry at last_used_idx names the last
 * request of the next batch (itself, from a device that writes every
 * entry): the requests up to it are counted, and handed out one a call.
 */
static bool vq_take_in_order(GuestVirtqueue *vq, uint16_t ready, uint64_t *token,
                             uint32_t *len)
{
    GuestVqState *st = vq->st;
    uint16_t mask = vq->num - 1, num_free = st->num_free, left = st->batch_left;
    uint16_t head, n;

    if (num_free >= vq->num) {
        /* Nothing in flight, yet the used index moved. */
        return guest_vq_note_corrupt(vq, "used.idx", vq_read16(used_idx(vq)),
                                     "completes more requests than are in flight");
    }
    if (st->free_head >= vq->num) {
        return vq_corrupt(vq, "free_head", st->free_head);
    }
    if (left > vq->num) {
        return vq_corrupt(vq, "batch_left", left);
    }
    head = (st->free_head + num_free) & mask;
    n = vq->ndesc[head];
    if (n == 0 || n > vq->num - num_free) {
        return vq_corrupt(vq, "ndesc", n);
    }
    if (left == 0) {
        VringUsedElem e = used_elem(vq, st->last_used_idx & mask);
        uint16_t h = head, walked = 0;

        if (e.id >= vq->num) {
            return vq_corrupt(vq, "used.id", e.id);
        }
        /* Count the batch: the requests in flight from the oldest to e.id. */
        for (left = 1; h != e.id; left++) {
            uint16_t hn = vq->ndesc[h];

            if (hn == 0 || hn > vq->num) {
                return vq_corrupt(vq, "ndesc", hn);
            }
            walked += hn;
            if (walked >= vq->num - num_free || left >= ready) {
                return guest_vq_note_corrupt(vq, "used.id", e.id,
                                             left >= ready ?
                                             "ends a batch longer than used.idx moved" :
                                             "names no request in flight");
            }
            h = (h + hn) & mask;
        }
        st->batch_len = e.len;
    }
    *len = left == 1 ? st->batch_len : 0;
    st->batch_left = left - 1;
    st->num_free = num_free + n;
    vq->ndesc[head] = 0;
    *token = vq->token[head];
    return true;
}

/* Without IN_ORDER: the request the entry at last_used_idx names. */
static bool vq_take_named(GuestVirtqueue *vq, uint64_t *token, uint32_t *len)
{
    GuestVqState *st = vq->st;
    VringUsedElem e;
    uint16_t id, n, num_free, last;

    e = used_elem(vq, st->last_used_idx & (vq->num - 1));
    if (e.id >= vq->num) {
        return vq_corrupt(vq, "used.id", e.id);
    }
    id = (uint16_t)e.id;
    n = vq->ndesc[id];
    if (n == 0) {
        /* Not in flight: the device completed it twice, or made it up. */
        return guest_vq_note_corrupt(vq, "used.id", e.id, "names no request in flight");
    }
    if (n > vq->num) {
        return vq_corrupt(vq, "ndesc", n);
    }
    if (vq->desc[id].flags & VRING_DESC_F_INDIRECT) {
        n = 1;
    }
    num_free = st->num_free;
    if (num_free > vq->num - n) {
        return vq_corrupt(vq, "num_free", num_free);
    }
    /* Give the chain back: its .next fields still link it; splice it in. */
    last = id;
    for (uint16_t k = 1; k < n; k++) {
        last = vq->desc[last].next;
        if (last >= vq->num) {
            return vq_corrupt(vq, "desc.next", last);
        }
    }
    vq->desc[last].next = st->free_head;
    st->free_head = id;
    st->num_free = num_free + n;
    vq->ndesc[id] = 0;
    *token = vq->token[id];
    *len = e.len;
    return true;
}

/* Takes the next completion; ready >= 1 entries are published. */
static bool vq_take_used(GuestVirtqueue *vq, uint16_t ready, uint64_t *token, uint32_t *len)
{
    GuestVqState *st = vq->st;

    if (!(st->flags & GUEST_VQ_F_IN_ORDER ? vq_take_in_order(vq, ready, token, len) :
          vq_take_named(vq, token, len))) {
        return false;
    }
    st->last_used_idx++;
    if ((st->flags & GUEST_VQ_F_EVENT_IDX) && !vq->cb_disabled) {
        /*
         * Interrupt me once you pass what I have consumed. Not while
         * callbacks are off: the stale value then lets the device signal
         * at most once, where moving it would ask for one per entry.
         */
        vq_write16(used_event(vq), st->last_used_idx);
    }
    return true;
}

bool guest_vq_get_used(GuestVirtqueue *vq, uint64_t *token, uint32_t *len)
{
    uint16_t ready;

    if (vq->packed) {
        return guest_vq_packed_get_used(vq, token, len);
    }
    ready = vq_used_pending(vq);
    return ready && vq_take_used(vq, ready, token, len);
}

void guest_vq_prefetch_add(GuestVirtqueue *vq, unsigned n)
{
    if (vq->packed) {
        guest_vq_packed_prefetch(vq, vq->pst->next_avail, n, true);
    }
}

unsigned guest_vq_get_used_burst(GuestVirtqueue *vq, GuestVqUsed *used, unsigned max)
{
    unsigned ready, n, i;

    if (vq->packed) {
        guest_vq_packed_prefetch(vq, vq->pst->last_used, max, false);
        /* A packed ring has no used index to read once per burst. */
        for (i = 0; i < max &&
             guest_vq_packed_get_used(vq, &used[i].token, &used[i].len); i++) {
        }
        return i;
    }
    ready = vq_used_pending(vq);    /* once: MIN() would read used->idx twice */
    n = MIN(ready, max);

    for (i = 0; i < n && vq_take_used(vq, (uint16_t)(ready - i), &used[i].token,
                                      &used[i].len); i++) {
    }
    return i;
}

bool guest_vq_has_used(GuestVirtqueue *vq)
{
    if (vq->packed) {
        return guest_vq_packed_has_used(vq);
    }
    return vq->corrupt || vq->st->last_used_idx != vq_read16(used_idx(vq));
}

bool guest_vq_enable_cb(GuestVirtqueue *vq)
{
    if (vq->packed) {
        return guest_vq_packed_enable_cb(vq);
    }
    vq->cb_disabled = false;
    if (vq->st->flags & GUEST_VQ_F_EVENT_IDX) {
        vq_write16(used_event(vq), vq->st->last_used_idx);
    } else {
        vq_write16(&vq->avail[AVAIL_FLAGS],
                   vq_read16(&vq->avail[AVAIL_FLAGS]) & ~VRING_AVAIL_F_NO_INTERRUPT);
    }
    /* The hint must be visible before we look for completions that raced. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return vq->st->last_used_idx != vq_read16(used_idx(vq));
}

void guest_vq_disable_cb(GuestVirtqueue *vq)
{
    if (vq->packed) {
        guest_vq_packed_disable_cb(vq);
        return;
    }
    vq->cb_disabled = true;
    if (!(vq->st->flags & GUEST_VQ_F_EVENT_IDX)) {
        vq_write16(&vq->avail[AVAIL_FLAGS],
                   vq_read16(&vq->avail[AVAIL_FLAGS]) | VRING_AVAIL_F_NO_INTERRUPT);
    }
}

uint64_t guest_vq_ack_call(GuestVirtqueue *vq)
{
    uint64_t v = 0;

    if (vq->call_fd < 0 || read(vq->call_fd, &v, sizeof(v)) != sizeof(v)) {
        return 0;
    }
    return v;
}

unsigned guest_vq_num_free(const GuestVirtqueue *vq)
{
    return vq->packed ? vq->pst->num_free : vq->st->num_free;
}

unsigned guest_vq_in_flight(const GuestVirtqueue *vq)
{
    unsigned n = 0;

    for (unsigned i = 0; i < vq->num; i++) {
        n += vq->ndesc[i] != 0;
    }
    return n;
}
