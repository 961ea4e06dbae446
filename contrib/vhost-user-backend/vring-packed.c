/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueue processing for the reference back-end (virtio 2.8),
 * behind the calls of vring.c when VIRTIO_F_RING_PACKED is acked.
 *
 * Untrusted input: the descriptor ring and the driver's event area are
 * guest memory the driver writes concurrently. Each descriptor is copied
 * out (after its flags say it is available, with an acquire barrier)
 * before it is checked; chains are bounded by the ring size, indirect
 * tables by REFBE_VRING_MAX_SIZE; every buffer must lie in the memory
 * table. A violation breaks the ring, never the process.
 *
 * We never suppress the driver's kicks: the device event area stays as
 * the driver zeroed it (ENABLE). Dirty logging of packed rings is not
 * done here (the dirty log helpers walk split rings): SET_VRING_ADDR with
 * the log flag is refused on them (server.c).
 */
#include <string.h>

#include "util/vhost-user-error.h"
#include "refbe.h"

#define PK_WRAP     0x8000u
#define PK_SLOT     0x7fffu

static VringPackedDesc *pk_desc(RefBeVring *vq)
{
    return (VringPackedDesc *)vq->desc;
}

static uint16_t *pk_flags(RefBeVring *vq, uint16_t slot)
{
    return (uint16_t *)(void *)((uint8_t *)&pk_desc(vq)[slot] + 14);
}

/* Available in the lap of pos: AVAIL = its wrap counter, USED = not. */
static bool pk_is_avail(uint16_t flags, uint16_t pos)
{
    bool w = pos & PK_WRAP;

    return !!(flags & VRING_PACKED_DESC_F_AVAIL) == w &&
           !!(flags & VRING_PACKED_DESC_F_USED) != w;
}

bool refbe_vring_packed_map(RefBeDev *dev, RefBeVring *vq, GError **errp)
{
    void *desc = refbe_uva_to_host(dev, vq->desc_uva, 16ull * vq->num);
    void *driver = refbe_uva_to_host(dev, vq->avail_uva, 4);
    void *device = refbe_uva_to_host(dev, vq->used_uva, 4);

    if (!desc || !driver || !device) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: ring %u: SET_VRING_ADDR: packed %s at 0x%" G_GINT64_MODIFIER
                    "x is not inside one memory region", dev->name, vq->index,
                    !desc ? "descriptor ring" : !driver ? "driver event area" :
                    "device event area",
                    !desc ? vq->desc_uva : !driver ? vq->avail_uva : vq->used_uva);
        return false;
    }
    if (((uintptr_t)desc & 15) || ((uintptr_t)driver & 3) || ((uintptr_t)device & 3)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: ring %u: SET_VRING_ADDR: misaligned packed ring", dev->name,
                    vq->index);
        return false;
    }
    if ((vq->pk_avail & PK_SLOT) >= vq->num || (vq->pk_used & PK_SLOT) >= vq->num) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: ring %u: packed base avail 0x%x used 0x%x is past the ring "
                    "(%u)", dev->name, vq->index, vq->pk_avail, vq->pk_used, vq->num);
        return false;
    }
    g_free(vq->pk_id);
    g_free(vq->pk_slots);
    vq->pk_id = g_new0(uint16_t, vq->num);
    vq->pk_slots = g_new0(uint16_t, vq->num);
    vq->pk_hist_top = 0;
    vq->desc = desc;
    vq->avail = driver;
    vq->used = device;
    return true;
}

/* Maps one descriptor's buffer into elem, in order (readable, then writable). */
static bool pk_add_buffer(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem,
                          const VringPackedDesc *d, uint16_t head)
{
    unsigned n = elem->out_num + elem->in_num, before = n;
    const char *why = NULL;

    if (!refbe_map_buffer(dev, d->addr, d->len, elem->iov, &n, &why)) {
        refbe_vring_fault(dev, vq, "slot %u: buffer at GPA 0x%" G_GINT64_MODIFIER
                          "x length %u %s", head, d->addr, d->len, why);
        return false;
    }
    if (d->flags & VRING_DESC_F_WRITE) {
        elem->in_num += n - before;
        elem->in_len += d->len;
    } else {
        if (elem->in_num) {
            refbe_vring_fault(dev, vq, "slot %u: device-readable descriptor after a "
                              "device-writable one", head);
            return false;
        }
        elem->out_num += n - before;
        elem->out_len += d->len;
    }
    return true;
}

static bool pk_read_indirect(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem,
                             const VringPackedDesc *d, uint16_t head)
{
    const VringPackedDesc *table;
    unsigned count;

    if (!refbe_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC) ||
        (d->flags & VRING_DESC_F_NEXT) || d->len == 0 ||
        d->len % sizeof(VringPackedDesc) ||
        d->len / sizeof(VringPackedDesc) > REFBE_VRING_MAX_SIZE) {
        refbe_vring_fault(dev, vq, "slot %u: indirect descriptor (length %u, flags 0x%x) "
                          "without INDIRECT_DESC, chained, or not a whole table",
                          head, d->len, d->flags);
        return false;
    }
    count = d->len / sizeof(VringPackedDesc);
    table = refbe_gpa_to_host(dev, d->addr, d->len);
    if (!table) {
        refbe_vring_fault(dev, vq, "slot %u: indirect table at GPA 0x%" G_GINT64_MODIFIER
                          "x length %u is not inside one memory region", head, d->addr,
                          d->len);
        return false;
    }
    for (unsigned i = 0; i < count; i++) {
        VringPackedDesc e;

        /* In a table only WRITE counts; entries follow each other. */
        memcpy(&e, &table[i], sizeof(e));
        if (e.flags & VRING_DESC_F_INDIRECT) {
            refbe_vring_fault(dev, vq, "slot %u: nested indirect descriptor", head);
            return false;
        }
        if (!pk_add_buffer(dev, vq, elem, &e, head)) {
            return false;
        }
    }
    return true;
}

int refbe_vring_packed_pop(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem)
{
    uint16_t pos = vq->pk_avail, head = pos & PK_SLOT, id = 0;
    unsigned slots = 0;

    if (!pk_is_avail(__atomic_load_n(pk_flags(vq, head), __ATOMIC_ACQUIRE), pos)) {
        return 0;
    }
    elem->head = head;
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    for (;;) {
        uint16_t slot = pos & PK_SLOT;
        VringPackedDesc d;

        /* Every descriptor of the chain must be available in its lap. */
        if (slots && !pk_is_avail(__atomic_load_n(pk_flags(vq, slot), __ATOMIC_ACQUIRE),
                                  pos)) {
            refbe_vring_fault(dev, vq, "slot %u: chain from slot %u runs into a "
                              "descriptor that is not available", slot, head);
            return -1;
        }
        memcpy(&d, &pk_desc(vq)[slot], sizeof(d));
        if (++slots > vq->num) {
            refbe_vring_fault(dev, vq, "slot %u: chain longer than the ring (%u)", head,
                              vq->num);
            return -1;
        }
        pos = vring_packed_advance(pos, 1, vq->num);
        id = d.id;
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (slots > 1 || !pk_read_indirect(dev, vq, elem, &d, head)) {
                if (slots > 1) {
                    refbe_vring_fault(dev, vq, "slot %u: indirect descriptor inside a "
                                      "chain", head);
                }
                return -1;
            }
            break;
        }
        if (!pk_add_buffer(dev, vq, elem, &d, head)) {
            return -1;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            break;
        }
    }
    vq->pk_id[head] = id;
    vq->pk_slots[head] = (uint16_t)slots;
    vq->pk_hist[vq->pk_hist_top++ % REFBE_PK_HIST] = vq->pk_avail;
    vq->pk_avail = pos;
    return 1;
}

void refbe_vring_packed_unpop(RefBeVring *vq, unsigned n)
{
    /* Callers give back at most what one packet took (< REFBE_PK_HIST). */
    if (n == 0 || n > vq->pk_hist_top || n > REFBE_PK_HIST) {
        return;
    }
    vq->pk_hist_top -= n;
    vq->pk_avail = vq->pk_hist[vq->pk_hist_top % REFBE_PK_HIST];
}

void refbe_vring_packed_fill(RefBeVring *vq, uint16_t head, uint32_t len, unsigned offset)
{
    uint16_t pos, slot, flags;
    VringPackedDesc *u;

    if (offset == 0) {
        vq->pk_fill = vq->pk_used;
    }
    pos = vq->pk_fill;
    slot = pos & PK_SLOT;
    u = &pk_desc(vq)[slot];
    u->id = vq->pk_id[head];
    u->len = len;
    /* Used in this lap: AVAIL and USED both equal its wrap counter. */
    flags = (pos & PK_WRAP) ? (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED) : 0;
    if (offset == 0) {
        /* The batch's first is published last, by the flush. */
        vq->pk_first_slot = slot;
        vq->pk_first_flags = flags;
    } else {
        __atomic_store_n(pk_flags(vq, slot), flags, __ATOMIC_RELEASE);
    }
    vq->pk_fill = vring_packed_advance(pos, vq->pk_slots[head] ? vq->pk_slots[head] : 1,
                                       vq->num);
}

void refbe_vring_packed_flush(RefBeVring *vq, unsigned count)
{
    /* Release: ids and lengths before the flags that hand them over. */
    __atomic_store_n(pk_flags(vq, vq->pk_first_slot), vq->pk_first_flags,
                     __ATOMIC_RELEASE);
    vq->pk_used = vq->pk_fill;
    vq->completed += count;
    vq->need_notify = true;
}

bool refbe_vring_packed_want_call(RefBeDev *dev, RefBeVring *vq)
{
    uint16_t *ev = vq->avail ? (uint16_t *)(void *)vq->avail : NULL;
    uint16_t flags, off_wrap, old = vq->pk_signalled, new = vq->pk_used;
    int dist, back;
    bool valid = vq->signalled_used_valid;

    vq->pk_signalled = new;
    vq->signalled_used_valid = true;
    if (!ev) {
        return false;
    }
    flags = __atomic_load_n(&ev[1], __ATOMIC_RELAXED);
    if (flags == VRING_PACKED_EVENT_FLAG_DISABLE) {
        return false;
    }
    if (flags != VRING_PACKED_EVENT_FLAG_DESC ||
        !refbe_has_feature(dev, VIRTIO_RING_F_EVENT_IDX) || !valid) {
        return true;
    }
    off_wrap = __atomic_load_n(&ev[0], __ATOMIC_RELAXED);
    /* Slots written since the last call, and how far back the event slot is. */
    dist = (int)(new & PK_SLOT) - (int)(old & PK_SLOT) +
           (((new ^ old) & PK_WRAP) ? vq->num : 0);
    back = (int)(new & PK_SLOT) - (int)(off_wrap & PK_SLOT) +
           (((new ^ off_wrap) & PK_WRAP) ? vq->num : 0);
    return back >= 1 && back <= dist;
}
