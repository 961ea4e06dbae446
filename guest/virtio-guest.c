/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest driver bring-up of a virtio device. See include/guest/virtio-guest.h.
 *
 * Untrusted input: the allocator header lives in guest RAM, which the back-end can map and
 * write: it is validated on every use (magic, bounds inside the RAM
 * region) rather than trusted, and a bad header is an error, never an
 * allocation outside RAM.
 */
#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "guest/virtio-guest.h"
#include "guest/virtqueue-packed.h"
#include "guest/workload.h"
#include "hw/virtio/vhost-user-blk.h"
#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-net.h"
#include "util/vhost-user-proto.h"

/* ---- Bump allocator over guest RAM ---------------------------------- */

static bool guest_alloc_read(const GuestMemory *mem, GuestAllocHeader *h,
                             GError **errp)
{
    const MemoryRegionMap *r = guest_memory_find(mem, GUEST_ALLOC_BASE);

    if (!r || !guest_memory_read(mem, GUEST_ALLOC_BASE, h, sizeof(*h))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "guest allocator: no RAM at 0x%" G_GINT64_MODIFIER "x",
                    GUEST_ALLOC_BASE);
        return false;
    }
    if (h->magic != GUEST_ALLOC_MAGIC || h->start < GUEST_ALLOC_BASE + sizeof(*h) ||
        h->next < h->start || h->limit < h->next ||
        h->limit > r->gpa + r->size) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "guest allocator: header at 0x%" G_GINT64_MODIFIER "x is "
                    "corrupt (magic 0x%" G_GINT64_MODIFIER "x, next 0x%"
                    G_GINT64_MODIFIER "x, limit 0x%" G_GINT64_MODIFIER "x)",
                    GUEST_ALLOC_BASE, h->magic, h->next, h->limit);
        return false;
    }
    return true;
}

bool guest_alloc_init(GuestMemory *mem, GError **errp)
{
    const MemoryRegionMap *r = guest_memory_find(mem, GUEST_ALLOC_BASE);
    GuestAllocHeader h = { .magic = GUEST_ALLOC_MAGIC };
    uint64_t end;

    if (!r) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "guest allocator: RAM does not reach 0x%" G_GINT64_MODIFIER
                    "x", GUEST_ALLOC_BASE);
        return false;
    }
    end = (r->gpa + r->size) & ~(GUEST_PAGE_SIZE - 1);
    /* The header has its page; the last page of RAM is never handed out. */
    h.start = GUEST_ALLOC_BASE + GUEST_PAGE_SIZE;
    h.next = h.start;
    h.limit = end > h.start + GUEST_PAGE_SIZE ? end - GUEST_PAGE_SIZE : h.start;
    if (h.limit - h.start < 4 * GUEST_PAGE_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "guest allocator: RAM ends at 0x%" G_GINT64_MODIFIER "x, too "
                    "little above 0x%" G_GINT64_MODIFIER "x for rings",
                    r->gpa + r->size, GUEST_ALLOC_BASE);
        return false;
    }
    if (!guest_memory_write(mem, GUEST_ALLOC_BASE, &h, sizeof(h)) ||
        !guest_memory_gpa_to_hva(mem, GUEST_DIR_GPA,
                                 GUEST_DIR_MAX * sizeof(GuestDirEntry))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "guest allocator: cannot write the header");
        return false;
    }
    memset(guest_memory_gpa_to_hva(mem, GUEST_DIR_GPA,
                                   GUEST_DIR_MAX * sizeof(GuestDirEntry)),
           0, GUEST_DIR_MAX * sizeof(GuestDirEntry));
    return true;
}

uint64_t guest_alloc(GuestMemory *mem, uint64_t size, uint64_t align, GError **errp)
{
    GuestAllocHeader h;
    uint64_t gpa;
    void *hva;

    if (!guest_alloc_read(mem, &h, errp)) {
        return 0;
    }
    if (size == 0 || align == 0 || (align & (align - 1)) || align > GUEST_PAGE_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "guest allocator: bad request (size %" G_GUINT64_FORMAT
                    ", align %" G_GUINT64_FORMAT ")", size, align);
        return 0;
    }
    gpa = (h.next + align - 1) & ~(align - 1);
    if (gpa > h.limit || size > h.limit - gpa) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "guest allocator: out of guest RAM (%" G_GUINT64_FORMAT
                    " bytes asked, %" G_GUINT64_FORMAT " free)", size,
                    h.limit - h.next);
        return 0;
    }
    hva = guest_memory_gpa_to_hva(mem, gpa, size);
    if (!hva) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "guest allocator: 0x%" G_GINT64_MODIFIER "x+%" G_GUINT64_FORMAT
                    " is not backed by one RAM region", gpa, size);
        return 0;
    }
    memset(hva, 0, size);
    h.next = gpa + size;
    h.nallocs++;
    guest_memory_write(mem, GUEST_ALLOC_BASE, &h, sizeof(h));
    return gpa;
}

uint64_t guest_alloc_free_bytes(const GuestMemory *mem)
{
    GuestAllocHeader h;

    if (!guest_alloc_read(mem, &h, NULL)) {
        return 0;
    }
    return h.limit - h.next;
}

/* ---- Device bring-up ------------------------------------------------ */

#define F(bit) (1ull << (bit))

uint64_t virtio_guest_driver_features(uint16_t device_id)
{
    /*
     * IOMMU_PLATFORM: the driver's addresses are guest physical ones,
     * which are the IOVAs of the VMM's identity IOMMU.
     */
    uint64_t common = F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) |
                      F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_F_IOMMU_PLATFORM) |
                      F(VIRTIO_F_RING_PACKED) | F(VIRTIO_F_IN_ORDER);

    switch (device_id) {
    case VIRTIO_ID_NET:
        return common | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_MTU) |
               F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_STATUS) |
               F(VIRTIO_NET_F_MRG_RXBUF);
    case VIRTIO_ID_BLOCK:
        return common | F(VIRTIO_BLK_F_SIZE_MAX) | F(VIRTIO_BLK_F_SEG_MAX) |
               F(VIRTIO_BLK_F_GEOMETRY) | F(VIRTIO_BLK_F_RO) |
               F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) |
               F(VIRTIO_BLK_F_TOPOLOGY) | F(VIRTIO_BLK_F_CONFIG_WCE) |
               F(VIRTIO_BLK_F_MQ) | F(VIRTIO_BLK_F_DISCARD) |
               F(VIRTIO_BLK_F_WRITE_ZEROES);
    default:
        /* A device we know nothing of: transport features only. */
        return common;
    }
}

VirtioGuestDevice *virtio_guest_device_new(VirtIODevice *vdev, GuestMemory *mem)
{
    VirtioGuestDevice *gd = g_new0(VirtioGuestDevice, 1);

    gd->vdev = vdev;
    gd->mem = mem;
    gd->driver_features = virtio_guest_driver_features(virtio_get_device_id(vdev));
    gd->nvqs = virtio_get_num_queues(vdev);
    gd->rings = g_new0(VirtioGuestRing, gd->nvqs);
    gd->vqs = g_new0(GuestVirtqueue, gd->nvqs);
    return gd;
}

void virtio_guest_device_free(VirtioGuestDevice *gd)
{
    if (!gd) {
        return;
    }
    g_free(gd->rings);
    g_free(gd->vqs);
    g_free(gd);
}

GuestVirtqueue *virtio_guest_device_vq(VirtioGuestDevice *gd, unsigned n)
{
    return n < gd->nvqs && gd->running ? &gd->vqs[n] : NULL;
}

/*
 * The one place that decides how a queue sits in guest RAM: each part on
 * its own page (more than the 16/2/4-byte alignment virtio 2.7 asks),
 * then the driver's state and, with INDIRECT_DESC, its indirect tables.
 * A packed ring (virtio 2.8) uses the same areas: the descriptor ring
 * where the split one goes, its driver and device event areas (4 bytes
 * each) at the start of the avail and used areas. Everything is sized
 * for either layout, so a re-boot that negotiates the other one reuses
 * the RAM.
 */
static bool virtio_guest_ring_layout(VirtioGuestDevice *gd, unsigned n,
                                     unsigned num, bool indirect, GError **errp)
{
    VirtioGuestRing *r = &gd->rings[n];

    if (r->num != num) {
        VirtioGuestRing fresh = { .num = num };

        fresh.desc_gpa = guest_alloc(gd->mem, vring_desc_size(num), GUEST_PAGE_SIZE, errp);
        if (!fresh.desc_gpa) {
            return false;
        }
        fresh.avail_gpa = guest_alloc(gd->mem, vring_avail_size(num), GUEST_PAGE_SIZE, errp);
        if (!fresh.avail_gpa) {
            return false;
        }
        fresh.used_gpa = guest_alloc(gd->mem, vring_used_size(num), GUEST_PAGE_SIZE, errp);
        if (!fresh.used_gpa) {
            return false;
        }
        fresh.state_gpa = guest_alloc(gd->mem, MAX(guest_vq_state_size(num),
                                                   guest_vq_packed_state_size(num)),
                                      GUEST_PAGE_SIZE, errp);
        if (!fresh.state_gpa) {
            return false;
        }
        *r = fresh;
    }
    if (indirect && !r->indirect_gpa) {
        g_autoptr(GError) local_err = NULL;

        /*
         * Indirect tables are an optimisation: in a small RAM the ring
         * runs without them rather than not at all.
         */
        r->indirect_gpa = guest_alloc(gd->mem, guest_vq_indirect_size(num),
                                      GUEST_PAGE_SIZE, &local_err);
    }
    return true;
}

static void virtio_guest_fail(VirtioGuestDevice *gd)
{
    g_autoptr(GError) ignored = NULL;

    virtio_set_status(gd->vdev, virtio_get_status(gd->vdev) | VIRTIO_CONFIG_S_FAILED,
                      &ignored);
}

static bool virtio_guest_setup_queue(VirtioGuestDevice *gd, unsigned n, GError **errp)
{
    VirtIODevice *vdev = gd->vdev;
    unsigned num = virtio_queue_get_num_max(vdev, n);
    bool indirect = virtio_has_feature(gd->features, VIRTIO_RING_F_INDIRECT_DESC);
    bool event_idx = virtio_has_feature(gd->features, VIRTIO_RING_F_EVENT_IDX);
    VirtioGuestRing *r = &gd->rings[n];
    GuestVirtqueue *vq = &gd->vqs[n];

    if (!virtio_guest_ring_layout(gd, n, num, indirect, errp)) {
        return false;
    }
    bool packed = virtio_has_feature(gd->features, VIRTIO_F_RING_PACKED);
    bool ok = packed ?
        guest_vq_init_packed(vq, gd->mem, num, r->desc_gpa, r->avail_gpa, r->used_gpa,
                             indirect ? r->indirect_gpa : 0, r->state_gpa, event_idx) :
        guest_vq_init(vq, gd->mem, num, r->desc_gpa, r->avail_gpa, r->used_gpa,
                      indirect ? r->indirect_gpa : 0, r->state_gpa, event_idx);

    if (ok && virtio_has_feature(gd->features, VIRTIO_F_IN_ORDER)) {
        ok = guest_vq_set_in_order(vq);     /* a fresh ring: cannot fail */
    }
    if (!ok) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: queue %u: ring of %u at 0x%" G_GINT64_MODIFIER "x is not "
                    "in guest RAM", virtio_get_id(vdev), n, num, r->desc_gpa);
        return false;
    }
    virtio_queue_get_notifiers(vdev, n, &vq->kick_fd, &vq->call_fd);
    return virtio_queue_set_num(vdev, n, num, errp) &&
           virtio_queue_set_addr(vdev, n, r->desc_gpa, r->avail_gpa, r->used_gpa, errp) &&
           virtio_queue_set_enabled(vdev, n, true, errp);
}

bool virtio_guest_device_boot(VirtioGuestDevice *gd, GError **errp)
{
    VirtIODevice *vdev = gd->vdev;
    uint8_t status;
    uint64_t offered;

    gd->running = false;
    gd->boots++;

    /* virtio 3.1.1: reset, then ACKNOWLEDGE, then DRIVER. */
    if (!virtio_set_status(vdev, 0, errp) ||
        !virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE, errp) ||
        !virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                                 VIRTIO_CONFIG_S_DRIVER, errp)) {
        return false;
    }

    offered = virtio_get_host_features(vdev);
    if (!virtio_has_feature(offered, VIRTIO_F_VERSION_1)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: device does not offer VIRTIO_F_VERSION_1 (offered 0x%"
                    G_GINT64_MODIFIER "x)", virtio_get_id(vdev), offered);
        virtio_guest_fail(gd);
        return false;
    }
    gd->features = offered & gd->driver_features;
    if (!virtio_set_guest_features(vdev, gd->features, errp)) {
        virtio_guest_fail(gd);
        return false;
    }

    /* FEATURES_OK, then re-read: the device may have refused it. */
    status = virtio_get_status(vdev) | VIRTIO_CONFIG_S_FEATURES_OK;
    if (!virtio_set_status(vdev, status, errp)) {
        virtio_guest_fail(gd);
        return false;
    }
    if (!(virtio_get_status(vdev) & VIRTIO_CONFIG_S_FEATURES_OK)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: device refused features 0x%" G_GINT64_MODIFIER "x",
                    virtio_get_id(vdev), gd->features);
        virtio_guest_fail(gd);
        return false;
    }

    for (unsigned n = 0; n < gd->nvqs; n++) {
        if (!virtio_guest_setup_queue(gd, n, errp)) {
            virtio_guest_fail(gd);
            return false;
        }
    }

    status = virtio_get_status(vdev) | VIRTIO_CONFIG_S_DRIVER_OK;
    if (!virtio_set_status(vdev, status, errp)) {
        return false;
    }
    gd->running = true;
    return true;
}

/* ---- Live migration: the directory and attaching -------------------- */

_Static_assert(64 + GUEST_DIR_MAX * sizeof(GuestDirEntry) <= GUEST_PAGE_SIZE,
               "the directory shares the allocator's page");
_Static_assert(sizeof(GuestAllocHeader) <= 64, "header before the directory");

static GuestDirEntry *guest_dir(GuestMemory *mem)
{
    return guest_memory_gpa_to_hva(mem, GUEST_DIR_GPA,
                                   GUEST_DIR_MAX * sizeof(GuestDirEntry));
}

bool guest_dir_publish(VirtioGuestDevice *gd, const char *id, uint64_t area_gpa,
                       uint64_t area_size, GError **errp)
{
    GuestDirEntry *dir = guest_dir(gd->mem), *slot = NULL;
    uint64_t vqs_gpa;
    uint64_t *gpas;

    if (!dir || strlen(id) >= GUEST_DIR_ID_LEN || gd->nvqs > UINT16_MAX) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: cannot be recorded in the guest's directory", id);
        return false;
    }
    for (unsigned i = 0; i < GUEST_DIR_MAX && !slot; i++) {
        if (dir[i].magic == GUEST_DIR_MAGIC &&
            !strncmp(dir[i].id, id, GUEST_DIR_ID_LEN)) {
            slot = &dir[i];
        }
    }
    for (unsigned i = 0; i < GUEST_DIR_MAX && !slot; i++) {
        if (dir[i].magic != GUEST_DIR_MAGIC) {
            slot = &dir[i];
        }
    }
    if (!slot) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_NO_SPACE,
                    "%s: the guest's directory is full (%u devices)", id, GUEST_DIR_MAX);
        return false;
    }
    vqs_gpa = guest_alloc(gd->mem, 8ull * MAX(gd->nvqs, 1u), 8, errp);
    if (!vqs_gpa) {
        return false;
    }
    gpas = guest_memory_gpa_to_hva(gd->mem, vqs_gpa, 8ull * MAX(gd->nvqs, 1u));
    for (unsigned n = 0; n < gd->nvqs; n++) {
        gpas[n] = gd->rings[n].state_gpa;
    }
    slot->magic = 0;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    slot->device_id = virtio_get_device_id(gd->vdev);
    slot->nvqs = (uint16_t)gd->nvqs;
    memset(slot->id, 0, sizeof(slot->id));
    memcpy(slot->id, id, strlen(id));
    slot->features = gd->features;
    slot->area_gpa = area_gpa;
    slot->area_size = area_size;
    slot->vqs_gpa = vqs_gpa;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    slot->magic = GUEST_DIR_MAGIC;
    return true;
}

bool guest_dir_find(GuestMemory *mem, const char *id, GuestDirEntry *out,
                    GError **errp)
{
    GuestDirEntry *dir = guest_dir(mem);

    for (unsigned i = 0; dir && i < GUEST_DIR_MAX; i++) {
        GuestDirEntry e = dir[i];

        if (e.magic != GUEST_DIR_MAGIC || memchr(e.id, 0, sizeof(e.id)) == NULL ||
            strcmp(e.id, id)) {
            continue;
        }
        if (e.nvqs == 0 || !guest_memory_gpa_to_hva(mem, e.vqs_gpa, 8ull * e.nvqs) ||
            !guest_memory_gpa_to_hva(mem, e.area_gpa, e.area_size)) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                        "%s: guest directory record: %u queue states at 0x%" PRIx64
                        " or area 0x%" PRIx64 "+0x%" PRIx64 " outside guest RAM",
                        id, e.nvqs, e.vqs_gpa, e.area_gpa, e.area_size);
            return false;
        }
        *out = e;
        return true;
    }
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                "%s: no record in the guest's directory at 0x%" PRIx64
                " (its driver never ran on the source)", id, GUEST_DIR_GPA);
    return false;
}

bool virtio_guest_device_attach(VirtioGuestDevice *gd, const GuestDirEntry *e,
                                GError **errp)
{
    VirtIODevice *vdev = gd->vdev;
    const char *id = virtio_get_id(vdev);
    uint64_t offered = virtio_get_host_features(vdev);
    const uint64_t *gpas;

    if (e->device_id != virtio_get_device_id(vdev) || e->nvqs != gd->nvqs) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: guest directory record: device type %u with %u queues, the "
                    "device is type %u with %u", id, e->device_id, e->nvqs,
                    virtio_get_device_id(vdev), gd->nvqs);
        return false;
    }
    if ((e->features & ~(offered & gd->driver_features)) ||
        !virtio_has_feature(e->features, VIRTIO_F_VERSION_1)) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: guest directory record: features 0x%" PRIx64 " are not "
                    "within what the device offers and the driver implements (0x%"
                    PRIx64 ")", id, e->features, offered & gd->driver_features);
        return false;
    }
    gpas = guest_memory_gpa_to_hva(gd->mem, e->vqs_gpa, 8ull * e->nvqs);
    if (!gpas) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: guest directory record: queue states at 0x%" PRIx64
                    " outside guest RAM", id, e->vqs_gpa);
        return false;
    }
    for (unsigned n = 0; n < gd->nvqs; n++) {
        GuestVirtqueue *vq = &gd->vqs[n];
        uint64_t st = gpas[n];

        if (!guest_vq_attach(vq, gd->mem, st) ||
            vq->num != virtio_queue_get_num_max(vdev, n)) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                        "%s: queue %u: driver state at 0x%" PRIx64 " is not a valid "
                        "ring state of %u entries in guest RAM", id, n, st,
                        virtio_queue_get_num_max(vdev, n));
            return false;
        }
        gd->rings[n] = (VirtioGuestRing){
            .num = vq->num, .desc_gpa = vq->desc_gpa,
            .avail_gpa = vq->avail_gpa, .used_gpa = vq->used_gpa,
            .state_gpa = st, .indirect_gpa = vq->indirect_gpa,
        };
        virtio_queue_get_notifiers(vdev, n, &vq->kick_fd, &vq->call_fd);
    }
    gd->features = e->features;
    gd->running = true;
    return true;
}
