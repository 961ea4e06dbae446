/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue processing for the reference back-end (packed rings:
 * vring-packed.c, behind the same calls).
 *
 * Security model: the rings and every buffer they point to live in guest
 * memory and are written concurrently by an untrusted driver. Every index
 * is checked against the ring size, every descriptor is copied out before
 * it is checked (so the driver cannot change it between check and use),
 * chains are bounded (loop detection), and every buffer address must lie
 * in a region of the memory table. A violation breaks the ring, never the
 * process.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "refbe.h"

/* ---- Guest memory ---------------------------------------------------- */

/* Region containing addr, matched on GPA (by_uva false) or on UVA. */
static RefBeRegion *find_region(RefBeDev *dev, uint64_t addr, bool by_uva)
{
    for (unsigned i = 0; i < dev->nregions; i++) {
        RefBeRegion *r = &dev->regions[i];
        uint64_t start = by_uva ? r->uva : r->gpa;

        if (addr >= start && addr - start < r->size) {
            return r;
        }
    }
    return NULL;
}

static void *range_to_host(RefBeDev *dev, uint64_t addr, uint64_t len, bool by_uva)
{
    RefBeRegion *r = find_region(dev, addr, by_uva);
    uint64_t off;

    if (!r) {
        return NULL;
    }
    off = addr - (by_uva ? r->uva : r->gpa);
    /* off < size, so size - off cannot wrap. */
    if (len > r->size - off) {
        return NULL;
    }
    return r->host + off;
}

void *refbe_uva_to_host(RefBeDev *dev, uint64_t uva, uint64_t len)
{
    return range_to_host(dev, uva, len, true);
}

void *refbe_gpa_to_host(RefBeDev *dev, uint64_t gpa, uint64_t len)
{
    return range_to_host(dev, gpa, len, false);
}

/*
 * Appends the host iovecs of guest buffer [gpa, gpa + len), which may
 * cross region boundaries. False when part of it is unmapped or the
 * iovec array is full.
 */
bool refbe_map_buffer(RefBeDev *dev, uint64_t gpa, uint32_t len,
                      struct iovec *iov, unsigned *n, const char **why)
{
    uint64_t left = len;

    if (gpa + left < gpa) {
        *why = "wraps around the address space";
        return false;
    }
    while (left) {
        RefBeRegion *r = find_region(dev, gpa, false);
        uint64_t off, chunk;

        if (!r) {
            *why = "is not in guest memory";
            return false;
        }
        if (*n >= REFBE_MAX_IOV) {
            *why = "makes the chain longer than " G_STRINGIFY(REFBE_MAX_IOV) " iovecs";
            return false;
        }
        off = gpa - r->gpa;
        chunk = MIN(left, r->size - off);
        iov[*n].iov_base = r->host + off;
        iov[*n].iov_len = chunk;
        (*n)++;
        gpa += chunk;
        left -= chunk;
    }
    return true;
}

/* ---- Ring state ------------------------------------------------------ */

void refbe_vring_init(RefBeVring *vq, unsigned index)
{
    memset(vq, 0, sizeof(*vq));
    vq->index = index;
    vq->kick_fd = -1;
    vq->call_fd = -1;
    vq->err_fd = -1;
}

void refbe_vring_reset(RefBeVring *vq)
{
    uint64_t completed = vq->completed;
    struct RefBeDev *dev = vq->dev;

    g_free(vq->resubmit);
    g_free(vq->pk_id);
    g_free(vq->pk_slots);
    if (vq->kick_fd >= 0) {
        close(vq->kick_fd);
    }
    if (vq->call_fd >= 0) {
        close(vq->call_fd);
    }
    if (vq->err_fd >= 0) {
        close(vq->err_fd);
    }
    refbe_vring_init(vq, vq->index);
    /* The device's counters outlive the connection's ring state. */
    vq->completed = completed;
    vq->dev = dev;
}

bool refbe_vring_map(RefBeDev *dev, RefBeVring *vq, GError **errp)
{
    uint64_t num = vq->num;
    /* The event fields are read/written only with EVENT_IDX. */
    uint64_t ev = refbe_has_feature(dev, VIRTIO_RING_F_EVENT_IDX) ? 2 : 0;
    void *desc, *avail, *used;

    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
    if (refbe_vring_packed(vq) && vq->addr_set && num) {
        return refbe_vring_packed_map(dev, vq, errp);
    }
    if (!vq->addr_set || !num) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: ring %u: started without %s", dev->name, vq->index,
                    vq->addr_set ? "SET_VRING_NUM" : "SET_VRING_ADDR");
        return false;
    }
    desc = refbe_uva_to_host(dev, vq->desc_uva, 16 * num);
    avail = refbe_uva_to_host(dev, vq->avail_uva, 4 + 2 * num + ev);
    used = refbe_uva_to_host(dev, vq->used_uva, 4 + 8 * num + ev);
    if (!desc || !avail || !used) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: ring %u: SET_VRING_ADDR: %s ring at 0x%" G_GINT64_MODIFIER
                    "x (size %" G_GUINT64_FORMAT ") is not inside one memory region",
                    dev->name, vq->index,
                    !desc ? "descriptor" : !avail ? "available" : "used",
                    !desc ? vq->desc_uva : !avail ? vq->avail_uva : vq->used_uva,
                    num);
        return false;
    }
    /* The ring layouts need natural alignment for the accesses below. */
    if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: ring %u: SET_VRING_ADDR: misaligned ring (desc 0x%"
                    G_GINT64_MODIFIER "x, avail 0x%" G_GINT64_MODIFIER "x, used 0x%"
                    G_GINT64_MODIFIER "x)", dev->name, vq->index, vq->desc_uva,
                    vq->avail_uva, vq->used_uva);
        return false;
    }
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    return true;
}

bool refbe_vring_ready(const RefBeVring *vq)
{
    return vq->started && vq->enabled && !vq->broken && vq->desc;
}

void refbe_vring_fault(RefBeDev *dev, RefBeVring *vq, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    if (vq->broken) {
        return;
    }
    vq->broken = true;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    refbe_log("%s: ring %u: %s; ring stopped until it is set up again",
            dev->name, vq->index, msg);
    if (vq->err_fd >= 0) {
        uint64_t one = 1;
        ssize_t r = write(vq->err_fd, &one, sizeof(one));

        (void)r;    /* a full counter already says "error" */
    }
}

/* ---- Descriptor chains ----------------------------------------------- */

int refbe_vring_read_chain(RefBeDev *dev, RefBeVring *vq, uint16_t head, RefBeElem *elem)
{
    const VringDesc *table = vq->desc;
    unsigned table_size = vq->num;
    unsigned count = 0;
    bool indirect = false;
    uint16_t i;
    unsigned n = 0;
    const char *why = NULL;

    if (head >= vq->num) {
        refbe_vring_fault(dev, vq, "head %u out of range (ring size %u)", head, vq->num);
        return -1;
    }
    elem->head = head;
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    i = head;
    for (;;) {
        VringDesc d;
        unsigned before = n;

        /* A copy, so the driver cannot change what we checked. */
        memcpy(&d, &table[i], sizeof(d));
        if (++count > table_size) {
            refbe_vring_fault(dev, vq, "head %u: descriptor chain loops (more than "
                            "%u descriptors)", head, table_size);
            return -1;
        }
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (!refbe_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC)) {
                refbe_vring_fault(dev, vq, "head %u: indirect descriptor without "
                                "VIRTIO_RING_F_INDIRECT_DESC", head);
                return -1;
            }
            if (indirect) {
                refbe_vring_fault(dev, vq, "head %u: nested indirect descriptor", head);
                return -1;
            }
            if (d.flags & VRING_DESC_F_NEXT) {
                refbe_vring_fault(dev, vq, "head %u: indirect descriptor with NEXT "
                                "set", head);
                return -1;
            }
            if (d.len == 0 || d.len % sizeof(VringDesc) ||
                d.len / sizeof(VringDesc) > REFBE_VRING_MAX_SIZE) {
                refbe_vring_fault(dev, vq, "head %u: indirect table length %u is not "
                                "a multiple of 16 in 16..%u", head, d.len,
                                REFBE_VRING_MAX_SIZE * 16);
                return -1;
            }
            table = refbe_gpa_to_host(dev, d.addr, d.len);
            if (!table) {
                refbe_vring_fault(dev, vq, "head %u: indirect table at GPA 0x%"
                                G_GINT64_MODIFIER "x length %u is not inside one "
                                "memory region", head, d.addr, d.len);
                return -1;
            }
            table_size = d.len / sizeof(VringDesc);
            indirect = true;
            count = 0;
            i = 0;
            continue;
        }
        if (!refbe_map_buffer(dev, d.addr, d.len, elem->iov, &n, &why)) {
            refbe_vring_fault(dev, vq, "head %u: buffer at GPA 0x%" G_GINT64_MODIFIER
                            "x length %u %s", head, d.addr, d.len, why);
            return -1;
        }
        if (d.flags & VRING_DESC_F_WRITE) {
            elem->in_num += n - before;
            elem->in_len += d.len;
        } else {
            if (elem->in_num) {
                refbe_vring_fault(dev, vq, "head %u: device-readable descriptor "
                                "after a device-writable one", head);
                return -1;
            }
            elem->out_num += n - before;
            elem->out_len += d.len;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            break;
        }
        i = d.next;
        if (i >= table_size) {
            refbe_vring_fault(dev, vq, "head %u: next %u out of range (%s size %u)",
                            head, i, indirect ? "indirect table" : "ring",
                            table_size);
            return -1;
        }
    }
    return 1;
}

int refbe_vring_pop(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem)
{
    uint16_t avail_idx, pending, head;

    if (!refbe_vring_ready(vq)) {
        return vq->broken ? -1 : 0;
    }
    if (refbe_vring_packed(vq)) {
        return refbe_vring_packed_pop(dev, vq, elem);
    }
    /* Acquire: the ring entries below were written before idx. */
    avail_idx = __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
    pending = (uint16_t)(avail_idx - vq->last_avail_idx);
    if (pending == 0) {
        return 0;
    }
    if (pending > vq->num) {
        refbe_vring_fault(dev, vq, "avail idx %u is %u entries past our position %u "
                        "(ring size %u)", avail_idx, pending, vq->last_avail_idx,
                        vq->num);
        return -1;
    }
    head = __atomic_load_n(&vq->avail->ring[vq->last_avail_idx % vq->num],
                           __ATOMIC_RELAXED);
    if (head >= vq->num) {
        refbe_vring_fault(dev, vq, "avail entry %u: head %u out of range (ring size %u)",
                        vq->last_avail_idx, head, vq->num);
        return -1;
    }
    if (refbe_vring_read_chain(dev, vq, head, elem) < 0) {
        return -1;
    }
    vq->last_avail_idx++;
    return 1;
}

void refbe_vring_unpop(RefBeVring *vq, unsigned n)
{
    if (refbe_vring_packed(vq)) {
        refbe_vring_packed_unpop(vq, n);
        return;
    }
    vq->last_avail_idx -= n;
}

void refbe_vring_fill(RefBeVring *vq, uint16_t head, uint32_t len, unsigned offset)
{
    uint16_t slot = (uint16_t)(vq->used_idx + offset) % vq->num;
    VringUsedElem *e = &vq->used->ring[slot];
    uint32_t id = head;

    if (refbe_vring_packed(vq)) {
        refbe_vring_packed_fill(vq, head, len, offset);
        return;
    }
    /* Logged before the driver can see the entry (flush), so before it can be migrated. */
    refbe_dirty_chain(vq->dev, vq, head);
    refbe_scribble_used_elem(vq->dev->opts->scribble, &id, &len);
    e->id = id;
    e->len = len;
    refbe_dirty_used(vq->dev, vq, offsetof(RefBeVringUsed, ring) + slot * sizeof(*e),
                   sizeof(*e));
}

void refbe_vring_flush(RefBeVring *vq, unsigned count)
{
    if (refbe_vring_packed(vq)) {
        refbe_vring_packed_flush(vq, count);
        return;
    }
    vq->used_idx += count;
    vq->completed += count;
    /* Release: the entries are visible before the driver sees idx move. */
    __atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
    refbe_dirty_used(vq->dev, vq, offsetof(RefBeVringUsed, idx), sizeof(vq->used->idx));
    vq->need_notify = true;
}

void refbe_vring_push(RefBeVring *vq, uint16_t head, uint32_t len)
{
    refbe_vring_fill(vq, head, len, 0);
    refbe_vring_flush(vq, 1);
}

/* virtio 2.7.10: has the used index passed the driver's used_event? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

void refbe_vring_notify(RefBeDev *dev, RefBeVring *vq)
{
    uint64_t one = 1;
    ssize_t r;

    if (!vq->need_notify || !vq->used) {
        return;
    }
    vq->need_notify = false;
    /*
     * Full barrier: our used->idx store must be visible before we read the
     * driver's suppression fields, pairing with the driver's barrier
     * between writing used_event/flags and re-reading used->idx.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (refbe_vring_packed(vq)) {
        if (!refbe_vring_packed_want_call(dev, vq)) {
            return;
        }
    } else if (refbe_has_feature(dev, VIRTIO_RING_F_EVENT_IDX)) {
        uint16_t event = __atomic_load_n(&vq->avail->ring[vq->num], __ATOMIC_RELAXED);
        uint16_t old = vq->signalled_used;
        bool valid = vq->signalled_used_valid;

        vq->signalled_used = vq->used_idx;
        vq->signalled_used_valid = true;
        if (valid && !need_event(event, vq->used_idx, old)) {
            return;
        }
    } else if (__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED) &
               VRING_AVAIL_F_NO_INTERRUPT) {
        return;
    }
    if (vq->call_fd < 0) {
        return;
    }
    r = write(vq->call_fd, &one, sizeof(one));
    if (r < 0 && errno != EAGAIN) {
        refbe_log("%s: ring %u: call eventfd: %s", dev->name, vq->index,
                g_strerror(errno));
    }
}

bool refbe_vring_rearm(RefBeDev *dev, RefBeVring *vq)
{
    uint16_t *avail_event;

    if (!refbe_vring_ready(vq) || !refbe_has_feature(dev, VIRTIO_RING_F_EVENT_IDX) ||
        refbe_vring_packed(vq)) {
        /*
         * Without EVENT_IDX we never suppress kicks, so nothing to re-arm;
         * nor on a packed ring, whose device area we leave at ENABLE.
         */
        return false;
    }
    avail_event = (uint16_t *)&vq->used->ring[vq->num];
    __atomic_store_n(avail_event, vq->last_avail_idx, __ATOMIC_RELAXED);
    refbe_dirty_used(dev, vq, offsetof(RefBeVringUsed, ring) + vq->num * sizeof(VringUsedElem),
                   sizeof(*avail_event));
    /*
     * Full barrier: publish avail_event before re-reading avail->idx, so a
     * buffer added meanwhile is either seen here or kicked.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE) != vq->last_avail_idx;
}

/* ---- iovec helpers --------------------------------------------------- */

size_t refbe_iov_size(const struct iovec *iov, unsigned n)
{
    size_t s = 0;

    for (unsigned i = 0; i < n; i++) {
        s += iov[i].iov_len;
    }
    return s;
}

size_t refbe_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset,
                      void *buf, size_t len)
{
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        size_t chunk;

        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        chunk = MIN(len - done, iov[i].iov_len - offset);
        memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t refbe_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                        const void *buf, size_t len)
{
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        size_t chunk;

        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        chunk = MIN(len - done, iov[i].iov_len - offset);
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

unsigned refbe_iov_slice(const struct iovec *src, unsigned n, size_t offset,
                       size_t len, struct iovec *dst, unsigned max)
{
    unsigned out = 0;

    for (unsigned i = 0; i < n && len && out < max; i++) {
        size_t chunk;

        if (offset >= src[i].iov_len) {
            offset -= src[i].iov_len;
            continue;
        }
        chunk = MIN(len, src[i].iov_len - offset);
        dst[out].iov_base = (uint8_t *)src[i].iov_base + offset;
        dst[out].iov_len = chunk;
        out++;
        len -= chunk;
        offset = 0;
    }
    return out;
}
