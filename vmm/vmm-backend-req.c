/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reference VMM's VhostUserBackendReqOps. See vmm/vmm-backend-req.h.
 *
 * The VMM has no emulated IOMMU: a device with iommu_platform=on sits
 * behind an identity one, so an IOVA is a guest physical address and a
 * miss is answered with the host mapping of the guest RAM region holding
 * it, from the IOVA to the region's end. One miss then covers every
 * buffer above it: a back-end that misses while the rings run may drop
 * packets until the update arrives (DPDK's net_vhost drops what it cannot
 * place in the guest's RX buffers), so fewer, larger entries are better
 * than an IOMMU's 4 KiB pages. An IOVA outside guest RAM has no
 * translation: the library then answers the miss with a failure.
 *
 * iotlb_translate and host_notifier are "direct" callbacks: they may run
 * inside a request on whichever thread sent it, so they only read guest
 * memory's map and take our own lock; nothing here calls the library.
 */
#include <inttypes.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>

#include "hw/virtio/vhost-user-blk.h"
#include "util/vhost-user-proto.h"
#include "vmm/vmm-backend-req.h"
#include "vmm/vmm-machine.h"

#define VMM_MAX_NOTIFIERS (VHOST_USER_VRING_IDX_MASK + 1)

typedef struct VmmHostNotifier {
    void *addr;                 /* the back-end's doorbell page, or NULL */
    size_t size;
} VmmHostNotifier;

struct VmmBackendReq {
    VhostUserBase *vub;
    char *id;                   /* ours: unmaps are reported while vub goes away */
    GuestMemory *mem;
    GMutex lock;                /* notifiers: set from the request path */
    VmmHostNotifier notifiers[VMM_MAX_NOTIFIERS];
};

static const char *perm_name(uint8_t perm)
{
    switch (perm & VHOST_ACCESS_RW) {
    case VHOST_ACCESS_RO:
        return "read";
    case VHOST_ACCESS_WO:
        return "write";
    case VHOST_ACCESS_RW:
        return "read/write";
    default:
        return "no";
    }
}

static bool vmm_iotlb_translate(void *opaque, uint64_t iova, uint8_t perm,
                                uint64_t *uaddr, uint64_t *size, uint8_t *out_perm)
{
    VmmBackendReq *b = opaque;
    const MemoryRegionMap *r = guest_memory_find(b->mem, iova);

    if (!r || !r->block->host) {
        vmm_status("%s: IOTLB miss at iova 0x%" PRIx64 " (%s): not guest RAM",
                   b->id, iova, perm_name(perm));
        return false;
    }
    *uaddr = (uint64_t)(uintptr_t)r->block->host + r->block_offset + (iova - r->gpa);
    *size = r->size - (iova - r->gpa);
    /* Guest RAM is read/write for the device; the identity IOMMU adds no limit. */
    *out_perm = VHOST_ACCESS_RW;
    return true;
}

static void vmm_iotlb_access_fail(void *opaque, uint64_t iova, uint64_t size,
                                  uint8_t perm)
{
    VmmBackendReq *b = opaque;

    vmm_status("%s: IOTLB access failed: iova 0x%" PRIx64 " size 0x%" PRIx64
               " (%s)", b->id, iova, size, perm_name(perm));
}

static void vmm_config_changed(void *opaque, const uint8_t *config, uint32_t len)
{
    VmmBackendReq *b = opaque;
    const char *id = b->id;
    uint64_t capacity;

    if (vhost_user_blk_config_changed(b->vub, config, len, &capacity)) {
        vmm_status("%s: config changed: capacity %" PRIu64 " sectors", id, capacity);
    } else if (config) {
        vmm_status("%s: config changed (%u bytes re-read)", id, len);
    } else {
        vmm_status("%s: config changed", id);
    }
}

static void vmm_host_notifier(void *opaque, unsigned ring, void *addr, size_t size)
{
    VmmBackendReq *b = opaque;
    const char *id = b->id;

    if (ring >= VMM_MAX_NOTIFIERS) {
        return;     /* the library checked it; a ring byte cannot exceed this */
    }
    g_mutex_lock(&b->lock);
    b->notifiers[ring].addr = addr;
    b->notifiers[ring].size = addr ? size : 0;
    g_mutex_unlock(&b->lock);
    if (addr) {
        vmm_status("%s: host notifier of ring %u mapped (%zu bytes)", id, ring, size);
    } else {
        vmm_status("%s: host notifier of ring %u unmapped", id, ring);
    }
}

/*
 * A ring error, signalled on the ring's err eventfd (by a back-end that was
 * given it with SET_VRING_ERR, or in-band with VRING_ERR): the library
 * watches the eventfds and calls this from the loop.
 */
static void vmm_vring_error(void *opaque, unsigned ring)
{
    VmmBackendReq *b = opaque;

    vmm_status("%s: ring %u: the back-end signalled a ring error", b->id, ring);
}

static const VhostUserBackendReqOps vmm_backend_req_ops = {
    .iotlb_translate = vmm_iotlb_translate,
    .iotlb_access_fail = vmm_iotlb_access_fail,
    .config_changed = vmm_config_changed,
    .host_notifier = vmm_host_notifier,
    .vring_error = vmm_vring_error,
};

VmmBackendReq *vmm_backend_req_install(VhostUserBase *vub, GuestMemory *mem)
{
    VmmBackendReq *b = g_new0(VmmBackendReq, 1);

    b->vub = vub;
    b->id = g_strdup(vhost_user_base_id(vub));
    b->mem = mem;
    g_mutex_init(&b->lock);
    vhost_user_base_set_backend_req_ops(vub, &vmm_backend_req_ops, b);
    return b;
}

void vmm_backend_req_free(VmmBackendReq *b)
{
    if (!b) {
        return;
    }
    g_mutex_clear(&b->lock);
    g_free(b->id);
    g_free(b);
}
