/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device layer: brings a set of rings of one back-end device up and
 * down through VhostOps, and keeps the ring state (eventfds, resume
 * points) that must survive a reconnect.
 *
 * Guest RAM is guest-controlled: ring addresses are translated and
 * bounds-checked here before a back-end is told about them.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-packed.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"
#include "util/vhost-user-proto.h"
#include "hw/virtio/virtio-ring-defs.h"

/* Largest split ring the virtio spec allows. */
#define VHOST_MAX_RING_NUM 32768

static void vhost_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void vhost_dev_close_eventfds(struct vhost_dev *hdev)
{
    for (unsigned i = 0; i < hdev->nvqs; i++) {
        vhost_close_fd(&hdev->vqs[i].kick_fd);
        vhost_close_fd(&hdev->vqs[i].call_fd);
        vhost_close_fd(&hdev->vqs[i].err_fd);
    }
}

static bool vhost_new_eventfd(const struct vhost_dev *hdev, unsigned i, const char *what,
                              int *fd, GError **errp)
{
    *fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (*fd < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: ring %u: cannot create %s eventfd: %s",
                    hdev->name, hdev->vq_index + i, what, g_strerror(err));
        return false;
    }
    return true;
}

bool vhost_dev_init(struct vhost_dev *hdev, const char *name, void *opaque,
                    const VhostOps *ops, GuestMemory *mem,
                    unsigned int vq_index, unsigned int nvqs, GError **errp)
{
    memset(hdev, 0, sizeof(*hdev));
    vhost_inflight_init(&hdev->inflight);
    hdev->name = g_strdup(name);
    if (nvqs == 0 || vq_index + nvqs > VHOST_USER_VRING_IDX_MASK + 1u ||
        vq_index + nvqs < vq_index) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: rings %u..%u: need 1 to %u rings numbered below %u",
                    name, vq_index, vq_index + nvqs, VHOST_USER_VRING_IDX_MASK + 1u,
                    VHOST_USER_VRING_IDX_MASK + 1u);
        goto err_name;
    }
    hdev->opaque = opaque;
    hdev->vhost_ops = ops;
    hdev->mem = mem;
    hdev->vq_index = vq_index;
    hdev->nvqs = nvqs;
    hdev->max_queues = 1;
    hdev->vqs = g_new0(struct vhost_virtqueue, nvqs);
    for (unsigned i = 0; i < nvqs; i++) {
        hdev->vqs[i].kick_fd = hdev->vqs[i].call_fd = hdev->vqs[i].err_fd = -1;
        vhost_virtqueue_reset_base(&hdev->vqs[i]);
    }
    for (unsigned i = 0; i < nvqs; i++) {
        struct vhost_virtqueue *vq = &hdev->vqs[i];

        if (!vhost_new_eventfd(hdev, i, "kick", &vq->kick_fd, errp) ||
            !vhost_new_eventfd(hdev, i, "call", &vq->call_fd, errp) ||
            !vhost_new_eventfd(hdev, i, "err", &vq->err_fd, errp)) {
            goto err_eventfds;
        }
    }
    return true;

err_eventfds:
    vhost_dev_close_eventfds(hdev);
    g_free(hdev->vqs);
    hdev->vqs = NULL;
    hdev->nvqs = 0;
err_name:
    g_free(hdev->name);
    hdev->name = NULL;
    return false;
}

void vhost_virtqueue_reset_base(struct vhost_virtqueue *vq)
{
    vq->last_avail_idx = 0;
    vq->packed_base = VHOST_PACKED_BASE_INITIAL;
}

bool vhost_dev_packed(const struct vhost_dev *hdev)
{
    return hdev->acked_features & (1ull << VIRTIO_F_RING_PACKED);
}

void vhost_dev_reset_inflight(struct vhost_dev *hdev)
{
    vhost_inflight_free(&hdev->inflight);
    hdev->inflight_in_use = false;
}

bool vhost_dev_connect(struct vhost_dev *hdev, GError **errp)
{
    uint64_t features;

    /* A new back-end: whether it takes the area is learnt at its start. */
    hdev->inflight_in_use = false;
    if (!hdev->vhost_ops->backend_init(hdev, hdev->opaque, errp)) {
        return false;
    }
    if (!hdev->vhost_ops->get_features(hdev, &features, errp)) {
        return false;
    }
    hdev->features = features;
    hdev->protocol_features = 0;
    hdev->max_queues = 1;
    if (hdev->vhost_ops->get_negotiated) {
        hdev->vhost_ops->get_negotiated(hdev, &hdev->protocol_features, &hdev->max_queues);
    }
    hdev->connected = true;
    return true;
}

static bool vhost_proto_offered(const struct vhost_dev *hdev)
{
    return hdev->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

/*
 * Where to resume a ring whose back-end cannot tell us: every request up
 * to the used index has completed, so nothing before it is replayed and
 * nothing after it is skipped.
 */
static void vhost_virtqueue_base_from_ram(struct vhost_dev *hdev, unsigned i)
{
    struct vhost_virtqueue *vq = &hdev->vqs[i];
    uint16_t le_idx;

    if (vhost_dev_packed(hdev)) {
        vq->packed_base = vhost_packed_base_from_ram(hdev->mem, vq->desc_gpa, vq->num,
                                                     vq->packed_base, NULL);
        return;
    }
    if (guest_memory_read(hdev->mem, vq->used_gpa + 2, &le_idx, sizeof(le_idx))) {
        vq->last_avail_idx = GUINT16_FROM_LE(le_idx);
    }
}

/*
 * Keeps what GET_VRING_BASE answered, checked by the transport: a split
 * ring's 16-bit index, or a packed ring's two indices below its size.
 */
static void vhost_virtqueue_take_base(struct vhost_dev *hdev, unsigned i, uint32_t num)
{
    if (vhost_dev_packed(hdev)) {
        hdev->vqs[i].packed_base = num;
    } else {
        hdev->vqs[i].last_avail_idx = (uint16_t)num;
    }
}

/* Stops one started ring and saves its resume point. Never fails. */
static void vhost_virtqueue_stop(struct vhost_dev *hdev, unsigned i)
{
    struct vhost_virtqueue *vq = &hdev->vqs[i];
    struct vhost_vring_state s = {
        .index = (unsigned)hdev->vhost_ops->get_vq_index(hdev, (int)i),
    };
    GError *err = NULL;

    if (!vq->started) {
        return;
    }
    vq->started = false;
    if (hdev->vhost_ops->is_connected(hdev)) {
        if (hdev->vhost_ops->get_vring_base(hdev, &s, &err)) {
            vhost_virtqueue_take_base(hdev, i, s.num);
            return;
        }
        /* The message already names the device. */
        vhost_user_log(VHOST_USER_LOG_INFO, NULL,
                       "%s; resuming ring %u from the used index in guest RAM",
                       err->message, s.index);
        g_clear_error(&err);
    }
    vhost_virtqueue_base_from_ram(hdev, i);
}

/* A ring size the back-end can take: a power of two in 1..VHOST_MAX_RING_NUM. */
static bool vhost_virtqueue_check_num(const struct vhost_dev *hdev, unsigned idx,
                                      unsigned num, GError **errp)
{
    if (num > VHOST_MAX_RING_NUM || (num & (num - 1))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: ring %u: size %u is not a power of two in 1..%u",
                    hdev->name, idx, num, VHOST_MAX_RING_NUM);
        return false;
    }
    return true;
}

/*
 * The ring's addresses as the back-end takes them, with the log flag
 * when logging. The back-end gets our virtual addresses and translates
 * them through the memory table, so each ring part must lie in one
 * region. Behind an IOMMU (VIRTIO_F_IOMMU_PLATFORM acked) the spec has
 * it get I/O virtual addresses instead, which it resolves with IOTLB
 * misses; the VMM's IOMMU is the identity, so the IOVA is the guest
 * physical address, and the ring must still be in RAM for the miss to
 * resolve.
 */
static bool vhost_virtqueue_addr(struct vhost_dev *hdev, unsigned i,
                                 struct vhost_vring_addr *addr, GError **errp)
{
    const struct vhost_virtqueue *vq = &hdev->vqs[i];
    unsigned idx = (unsigned)hdev->vhost_ops->get_vq_index(hdev, (int)i);
    void *desc, *avail, *used;

    bool packed = vhost_dev_packed(hdev);

    memset(addr, 0, sizeof(*addr));
    addr->index = idx;
    /* Packed: the descriptor ring, then driver and device event areas. */
    desc = guest_memory_gpa_to_hva(hdev->mem, vq->desc_gpa, vring_desc_size(vq->num));
    avail = guest_memory_gpa_to_hva(hdev->mem, vq->avail_gpa,
                                    packed ? vring_packed_event_size() :
                                    vring_avail_size(vq->num));
    used = guest_memory_gpa_to_hva(hdev->mem, vq->used_gpa,
                                   packed ? vring_packed_event_size() :
                                   vring_used_size(vq->num));
    if (!desc || !avail || !used) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: ring %u: %s ring at gpa 0x%" PRIx64 " is not backed by "
                    "one guest RAM region", hdev->name, idx,
                    !desc ? "descriptor" : !avail ? (packed ? "driver event" : "avail") :
                    (packed ? "device event" : "used"),
                    !desc ? vq->desc_gpa : !avail ? vq->avail_gpa : vq->used_gpa);
        return false;
    }
    if (hdev->acked_features & (1ull << VIRTIO_F_IOMMU_PLATFORM)) {
        addr->desc_user_addr = vq->desc_gpa;
        addr->avail_user_addr = vq->avail_gpa;
        addr->used_user_addr = vq->used_gpa;
    } else {
        addr->desc_user_addr = (uint64_t)(uintptr_t)desc;
        addr->avail_user_addr = (uint64_t)(uintptr_t)avail;
        addr->used_user_addr = (uint64_t)(uintptr_t)used;
    }
    /* The log is by guest-physical address, whatever the other fields hold. */
    if (hdev->log_enabled) {
        addr->flags = 1u << VHOST_VRING_F_LOG;
        /*
         * A packed ring's device writes its used entries into the
         * descriptor ring, and logs them relative to this address.
         */
        addr->log_guest_addr = packed ? vq->desc_gpa : vq->used_gpa;
    }
    return true;
}

static bool vhost_virtqueue_start(struct vhost_dev *hdev, unsigned i, bool send_num,
                                  GError **errp)
{
    struct vhost_virtqueue *vq = &hdev->vqs[i];
    const VhostOps *ops = hdev->vhost_ops;
    unsigned idx = (unsigned)ops->get_vq_index(hdev, (int)i);
    struct vhost_vring_state num = { .index = idx, .num = vq->num };
    struct vhost_vring_state base = {
        .index = idx,
        .num = vhost_dev_packed(hdev) ? vq->packed_base : vq->last_avail_idx,
    };
    struct vhost_vring_file kick = { .index = idx, .fd = vq->kick_fd };
    struct vhost_vring_file call = { .index = idx, .fd = vq->call_fd };
    struct vhost_vring_file err = { .index = idx, .fd = vq->err_fd };
    struct vhost_vring_addr addr;

    if (vq->num == 0) {
        /*
         * The driver never set this queue up (a queue pair it does not
         * use): there is nothing for the back-end to run, so the ring is
         * left stopped rather than failing the whole device.
         */
        return true;
    }
    if (!vhost_virtqueue_check_num(hdev, idx, vq->num, errp) ||
        !vhost_virtqueue_addr(hdev, i, &addr, errp)) {
        return false;
    }

    if ((send_num && !ops->set_vring_num(hdev, &num, errp)) ||
        !ops->set_vring_base(hdev, &base, errp) ||
        !ops->set_vring_addr(hdev, &addr, errp) ||
        /*
         * Before the ring runs: a back-end's ring error then reaches the
         * VMM through the eventfd (watched by the transport), without
         * in-band notifications.
         */
        !ops->set_vring_err(hdev, &err, errp) ||
        !ops->set_vring_kick(hdev, &kick, errp)) {
        return false;
    }
    /* From the kick on the back-end may run the ring: it counts as started. */
    vq->started = true;
    return ops->set_vring_call(hdev, &call, errp);
}

/*
 * A RAM change while the back-end runs: it must map new RAM before the
 * guest puts buffers there. Only a started device is told; a start sends
 * the whole table anyway. The error is kept for vhost_dev_add_ram: a
 * listener has nobody to return it to.
 */
static void vhost_dev_mem_changed(GuestMemory *mem, void *opaque)
{
    struct vhost_dev *hdev = opaque;
    GError *err = NULL;

    if (!hdev->started || !hdev->vhost_ops->is_connected(hdev)) {
        return;
    }
    if (!hdev->vhost_ops->set_mem_table(hdev, mem, &err)) {
        g_clear_error(&hdev->mem_err);
        hdev->mem_err = err;
    }
}

static void vhost_dev_mem_unlisten(struct vhost_dev *hdev)
{
    if (hdev->mem_listener) {
        guest_memory_remove_listener(hdev->mem, hdev->mem_listener);
        hdev->mem_listener = 0;
    }
}

/*
 * Packed rings too: the front-end never maps the area (the back-end lays
 * it out, split or packed, and checks it); the size check of the reply
 * allows the packed layout. A back-end that does not track packed rings
 * answers GET_INFLIGHT_FD with size 0.
 */
static bool vhost_dev_use_inflight(const struct vhost_dev *hdev)
{
    return hdev->use_inflight && hdev->vhost_ops->get_inflight_fd &&
           hdev->vhost_ops->set_inflight_fd &&
           vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
}

/*
 * Every ring's SET_VRING_NUM, then the inflight area (fetched once per
 * device life, handed over on every connection), before any ring is
 * kicked: see vhost-inflight.h for why in this order.
 */
static bool vhost_dev_start_inflight(struct vhost_dev *hdev, GError **errp)
{
    const VhostOps *ops = hdev->vhost_ops;
    uint16_t queue_size = 0;

    for (unsigned i = 0; i < hdev->nvqs; i++) {
        const struct vhost_virtqueue *vq = &hdev->vqs[i];
        struct vhost_vring_state num = {
            .index = (unsigned)ops->get_vq_index(hdev, (int)i), .num = vq->num,
        };

        /* A ring the driver did not set up is never started. */
        if (vq->num == 0) {
            continue;
        }
        if (queue_size && vq->num != queue_size) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: inflight tracking needs one ring size, but ring %u has "
                        "%u descriptors and an earlier one %u", hdev->name, num.index,
                        vq->num, queue_size);
            return false;
        }
        /* The area's layout is sized by it: checked before it is sent. */
        if (!vhost_virtqueue_check_num(hdev, num.index, vq->num, errp)) {
            return false;
        }
        queue_size = (uint16_t)vq->num;
        if (!ops->set_vring_num(hdev, &num, errp)) {
            return false;
        }
    }
    /* The driver re-sized its rings (after a reset): the old area is void. */
    if (hdev->inflight.fd >= 0 && (hdev->inflight.queue_size != queue_size ||
                                   hdev->inflight.num_queues != hdev->nvqs)) {
        vhost_inflight_free(&hdev->inflight);
    }
    if (hdev->inflight.fd < 0 &&
        !ops->get_inflight_fd(hdev, queue_size, &hdev->inflight, errp)) {
        return false;
    }
    /* fd still -1: the back-end does not track requests for this device. */
    if (hdev->inflight.fd < 0) {
        return true;
    }
    if (!ops->set_inflight_fd(hdev, &hdev->inflight, errp)) {
        return false;
    }
    hdev->inflight_in_use = true;
    return true;
}

/*
 * Ends the start's batch. A failure met while collecting its acks (a
 * failed ack, a bad reply) is the first of the batch (a later request
 * only saw the connection broken by it), so it replaces the error the
 * caller has. Acks merely lost with a connection that went down tell less
 * than the caller's own error, which names where it was seen.
 */
static bool vhost_dev_batch_end(struct vhost_dev *hdev, bool ok, GError **errp)
{
    GError *batch_err = NULL;

    if (!hdev->vhost_ops->batch_end || hdev->vhost_ops->batch_end(hdev, &batch_err)) {
        return ok;
    }
    if (!ok && g_error_matches(batch_err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED)) {
        g_error_free(batch_err);
        return false;
    }
    if (errp) {
        g_clear_error(errp);
    }
    g_propagate_error(errp, batch_err);
    return false;
}

bool vhost_dev_start(struct vhost_dev *hdev, GError **errp)
{
    const VhostOps *ops = hdev->vhost_ops;
    bool inflight;
    unsigned i;

    if (hdev->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: already started", hdev->name);
        return false;
    }
    if (!hdev->connected || !ops->is_connected(hdev)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "%s: cannot start: back-end not connected", hdev->name);
        return false;
    }

    /* Whole-device state is sent once, by the vhost_dev owning ring 0. */
    if (hdev->vq_index == 0) {
        uint64_t features = hdev->acked_features;

        /* Without bit 30 acked, a back-end may ignore SET_VRING_ENABLE. */
        if (vhost_proto_offered(hdev)) {
            features |= 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
        }
        if (hdev->log_enabled) {
            features |= 1ull << VHOST_F_LOG_ALL;
        }
        if (!ops->set_features(hdev, features, errp) ||
            !ops->set_mem_table(hdev, hdev->mem, errp)) {
            return false;
        }
    }

    inflight = vhost_dev_use_inflight(hdev);
    if (inflight && !vhost_dev_start_inflight(hdev, errp)) {
        return false;
    }
    /*
     * The rings' messages are pipelined: with REPLY_ACK their acks are
     * read after the batch is sent, not one round trip per message.
     */
    if (ops->batch_begin) {
        ops->batch_begin(hdev);
    }
    for (i = 0; i < hdev->nvqs; i++) {
        if (!vhost_virtqueue_start(hdev, i, !inflight, errp)) {
            vhost_dev_batch_end(hdev, false, errp);
            goto err_stop_rings;
        }
    }
    if (vhost_proto_offered(hdev) && ops->set_vring_enable) {
        for (i = 0; i < hdev->nvqs; i++) {
            if (hdev->vqs[i].started &&
                !ops->set_vring_enable(hdev, (unsigned)ops->get_vq_index(hdev, (int)i),
                                       true, errp)) {
                vhost_dev_batch_end(hdev, false, errp);
                goto err_disable_rings;
            }
        }
    }
    i = hdev->nvqs;
    if (!vhost_dev_batch_end(hdev, true, errp)) {
        goto err_disable_rings;
    }
    if (ops->dev_start && !ops->dev_start(hdev, true, errp)) {
        goto err_disable_rings;
    }
    hdev->started = true;
    /* The memory table is whole-device state: ring 0's vhost_dev owns it. */
    if (hdev->vq_index == 0 && !hdev->mem_listener) {
        hdev->mem_listener = guest_memory_add_listener(hdev->mem, vhost_dev_mem_changed,
                                                       hdev);
    }
    return true;

err_disable_rings:
    while (i-- > 0) {
        /* Best effort: a failure here already broke the connection. */
        if (hdev->vqs[i].started) {
            ops->set_vring_enable(hdev, (unsigned)ops->get_vq_index(hdev, (int)i),
                                  false, NULL);
        }
    }
err_stop_rings:
    for (i = 0; i < hdev->nvqs; i++) {
        vhost_virtqueue_stop(hdev, i);
    }
    return false;
}

void vhost_dev_stop(struct vhost_dev *hdev)
{
    const VhostOps *ops = hdev->vhost_ops;

    if (!hdev->started) {
        return;
    }
    if (vhost_proto_offered(hdev) && ops->set_vring_enable && ops->is_connected(hdev)) {
        for (unsigned i = 0; i < hdev->nvqs; i++) {
            GError *err = NULL;

            if (!hdev->vqs[i].started) {
                continue;
            }
            if (!ops->set_vring_enable(hdev, (unsigned)ops->get_vq_index(hdev, (int)i),
                                       false, &err)) {
                vhost_user_log(VHOST_USER_LOG_WARNING, NULL, "%s", err->message);
                g_clear_error(&err);
                break;
            }
        }
    }
    /* GET_VRING_BASE both stops the ring and tells where to resume. */
    for (unsigned i = 0; i < hdev->nvqs; i++) {
        vhost_virtqueue_stop(hdev, i);
    }
    /*
     * Still connected: every ring answered GET_VRING_BASE, so nothing is in
     * flight, and what the area holds must not be replayed by a later
     * start. Dropped rather than cleared (we never map it: see
     * vhost-inflight.h); the next start asks for a fresh one.
     */
    if (ops->is_connected(hdev)) {
        vhost_inflight_free(&hdev->inflight);
    }
    hdev->started = false;
    vhost_dev_mem_unlisten(hdev);
    if (ops->dev_start) {
        ops->dev_start(hdev, false, NULL);
    }
}

void vhost_dev_disconnect(struct vhost_dev *hdev)
{
    if (hdev->started) {
        /* The back-end is gone: every ring resumes from guest RAM. */
        for (unsigned i = 0; i < hdev->nvqs; i++) {
            if (hdev->vqs[i].started) {
                hdev->vqs[i].started = false;
                vhost_virtqueue_base_from_ram(hdev, i);
            }
        }
        hdev->started = false;
        vhost_dev_mem_unlisten(hdev);
        if (hdev->vhost_ops->dev_start) {
            /* Not connected: only local state (host notifiers) is dropped. */
            hdev->vhost_ops->dev_start(hdev, false, NULL);
        }
    }
    hdev->connected = false;
    /* acked_features stay: the driver accepted them and must get them back. */
    hdev->features = 0;
    hdev->protocol_features = 0;
    hdev->max_queues = 1;
}

void vhost_dev_cleanup(struct vhost_dev *hdev)
{
    if (hdev->started) {
        vhost_dev_stop(hdev);
    }
    vhost_dev_mem_unlisten(hdev);
    g_clear_error(&hdev->mem_err);
    vhost_inflight_free(&hdev->inflight);
    if (hdev->vhost_ops && hdev->vhost_ops->backend_cleanup) {
        hdev->vhost_ops->backend_cleanup(hdev);
    }
    if (hdev->vqs) {
        vhost_dev_close_eventfds(hdev);
        g_free(hdev->vqs);
        hdev->vqs = NULL;
    }
    hdev->nvqs = 0;
    g_free(hdev->name);
    hdev->name = NULL;
    hdev->connected = false;
}

bool vhost_dev_set_acked_features(struct vhost_dev *hdev, uint64_t features, GError **errp)
{
    uint64_t missing = features & ~hdev->features;

    if (missing) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: features 0x%" PRIx64 " were acked but the back-end offers "
                    "only 0x%" PRIx64 " (missing 0x%" PRIx64 ")",
                    hdev->name, features, hdev->features, missing);
        return false;
    }
    hdev->acked_features = features;
    return true;
}

bool vhost_dev_has_protocol_feature(const struct vhost_dev *hdev, unsigned int bit)
{
    return bit < 64 && (hdev->protocol_features & (1ull << bit));
}

bool vhost_dev_get_config(struct vhost_dev *hdev, uint8_t *config, uint32_t len,
                          GError **errp)
{
    if (!hdev->vhost_ops->get_config) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: the transport cannot read the device config", hdev->name);
        return false;
    }
    return hdev->vhost_ops->get_config(hdev, config, 0, len, errp);
}

bool vhost_dev_set_config(struct vhost_dev *hdev, const uint8_t *data,
                          uint32_t offset, uint32_t len, GError **errp)
{
    if (!hdev->vhost_ops->set_config) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: the transport cannot write the device config", hdev->name);
        return false;
    }
    return hdev->vhost_ops->set_config(hdev, data, offset, len,
                                       VHOST_SET_CONFIG_TYPE_FRONTEND, errp);
}

bool vhost_dev_check_mem_regions(struct vhost_dev *hdev, unsigned nregions,
                                 GError **errp)
{
    unsigned max;

    if (!hdev->connected || !hdev->vhost_ops->mem_max_regions ||
        !hdev->vhost_ops->is_connected(hdev)) {
        return true;
    }
    max = hdev->vhost_ops->mem_max_regions(hdev);
    if (nregions > max) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: %u memory regions but the back-end holds at most %u",
                    hdev->name, nregions, max);
        return false;
    }
    return true;
}

/*
 * Collects the errors the listeners of devs recorded during one RAM
 * change into one: every failing device is named.
 */
static bool vhost_devs_take_mem_errors(struct vhost_dev *const *devs, unsigned ndevs,
                                       GError **errp)
{
    GError *first = NULL;

    for (unsigned i = 0; i < ndevs; i++) {
        GError *err = g_steal_pointer(&devs[i]->mem_err);

        if (!err) {
            continue;
        }
        if (!first) {
            first = err;
        } else {
            g_prefix_error(&first, "%s; ", err->message);
            g_error_free(err);
        }
    }
    if (first) {
        g_propagate_error(errp, first);
        return false;
    }
    return true;
}

bool vhost_dev_add_ram(struct vhost_dev *const *devs, unsigned ndevs, GuestMemory *mem,
                       uint64_t gpa, RamBlock *rb, uint64_t block_offset,
                       uint64_t size, GError **errp)
{
    unsigned n = guest_memory_nregions(mem) + 1;

    for (unsigned i = 0; i < ndevs; i++) {
        g_clear_error(&devs[i]->mem_err);
        if (!vhost_dev_check_mem_regions(devs[i], n, errp)) {
            g_prefix_error(errp, "cannot add RAM block '%s' at 0x%" PRIx64 ": ",
                           rb->id, gpa);
            return false;
        }
        /* Caught here, before the change, rather than by a listener after it. */
        if (devs[i]->connected && !rb->shared) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: RAM block '%s' is not shared (share=off); a vhost-user "
                        "back-end cannot see the guest's writes to it",
                        devs[i]->name, rb->id);
            return false;
        }
    }
    if (!guest_memory_add(mem, gpa, rb, block_offset, size, errp)) {
        return false;
    }
    return vhost_devs_take_mem_errors(devs, ndevs, errp);
}

bool vhost_dev_remove_ram(struct vhost_dev *const *devs, unsigned ndevs,
                          GuestMemory *mem, uint64_t gpa, GError **errp)
{
    for (unsigned i = 0; i < ndevs; i++) {
        g_clear_error(&devs[i]->mem_err);
    }
    if (!guest_memory_remove(mem, gpa, errp)) {
        return false;
    }
    return vhost_devs_take_mem_errors(devs, ndevs, errp);
}

bool vhost_dev_set_log_base(struct vhost_dev *hdev, int fd, uint64_t size,
                            GError **errp)
{
    if (!hdev->vhost_ops->set_log_base) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: the transport cannot hand over a dirty log", hdev->name);
        return false;
    }
    return hdev->vhost_ops->set_log_base(hdev, fd, size, 0, errp);
}

bool vhost_dev_set_logging(struct vhost_dev *hdev, bool enable, GError **errp)
{
    const VhostOps *ops = hdev->vhost_ops;

    hdev->log_enabled = enable;
    if (!hdev->started || !ops->is_connected(hdev)) {
        return true;
    }
    if (hdev->vq_index == 0) {
        uint64_t features = hdev->acked_features;

        if (!ops->set_log_features) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                        "%s: the transport cannot switch dirty logging", hdev->name);
            return false;
        }
        if (vhost_proto_offered(hdev)) {
            features |= 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
        }
        if (enable) {
            features |= 1ull << VHOST_F_LOG_ALL;
        }
        if (!ops->set_log_features(hdev, features, errp)) {
            return false;
        }
    }
    for (unsigned i = 0; i < hdev->nvqs; i++) {
        struct vhost_vring_addr addr;

        if (!hdev->vqs[i].started) {
            continue;
        }
        if (!vhost_virtqueue_addr(hdev, i, &addr, errp) ||
            !ops->set_vring_addr(hdev, &addr, errp)) {
            return false;
        }
    }
    return true;
}

unsigned int vhost_dev_started_rings(const struct vhost_dev *hdev)
{
    unsigned int n = 0;

    for (unsigned i = 0; i < hdev->nvqs; i++) {
        n += hdev->vqs[i].started;
    }
    return n;
}
