/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio device model. See include/hw/virtio/virtio.h.
 *
 * The driver is in-process and ours, but it is still "the guest": what it
 * writes is checked here the way a transport checks register writes
 * (queue index, ring size, feature subset, status order), so a driver bug
 * shows up as an error naming the device instead of a bad ring at the
 * back-end.
 */
#include <string.h>

#include <glib.h>

#include "util/vhost-user-error.h"
#include "util/vhost-user-proto.h"
#include "hw/virtio/virtio-int.h"

bool virtio_device_init(VirtIODevice *vdev, const char *id, uint16_t device_id,
                        const VirtioDeviceClass *klass, void *opaque,
                        unsigned nvqs, unsigned queue_size, uint32_t config_len,
                        GError **errp)
{
    memset(vdev, 0, sizeof(*vdev));
    if (nvqs == 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: a virtio device needs at least one queue", id);
        return false;
    }
    if (queue_size < 2 || queue_size > VIRTQUEUE_MAX_SIZE ||
        (queue_size & (queue_size - 1))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: queue size %u is not a power of two in 2..%u",
                    id, queue_size, VIRTQUEUE_MAX_SIZE);
        return false;
    }
    if (config_len > VIRTIO_CONFIG_MAX_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: config size %u is above %u", id, config_len,
                    VIRTIO_CONFIG_MAX_SIZE);
        return false;
    }
    vdev->id = g_strdup(id);
    vdev->device_id = device_id;
    vdev->klass = klass;
    vdev->opaque = opaque;
    vdev->nvqs = nvqs;
    vdev->vq = g_new0(VirtQueue, nvqs);
    for (unsigned i = 0; i < nvqs; i++) {
        vdev->vq[i].num_max = (uint16_t)queue_size;   /* <= 32768 checked above */
        vdev->vq[i].kick_fd = -1;
        vdev->vq[i].call_fd = -1;
    }
    vdev->config_len = config_len;
    vdev->config = config_len ? g_malloc0(config_len) : NULL;
    return true;
}

void virtio_device_cleanup(VirtIODevice *vdev)
{
    g_clear_pointer(&vdev->id, g_free);
    g_clear_pointer(&vdev->vq, g_free);
    g_clear_pointer(&vdev->config, g_free);
    vdev->nvqs = 0;
    vdev->config_len = 0;
}

const char *virtio_get_id(const VirtIODevice *vdev)
{
    return vdev->id;
}

uint16_t virtio_get_device_id(const VirtIODevice *vdev)
{
    return vdev->device_id;
}

void virtio_update_host_features(VirtIODevice *vdev)
{
    vdev->host_features = vdev->klass && vdev->klass->get_features ?
        vdev->klass->get_features(vdev) : 0;
}

uint64_t virtio_get_host_features(VirtIODevice *vdev)
{
    return vdev->host_features;
}

bool virtio_set_guest_features(VirtIODevice *vdev, uint64_t features, GError **errp)
{
    /* virtio 2.2: features are frozen once the device accepted them. */
    if (vdev->status & VIRTIO_CONFIG_S_FEATURES_OK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: driver features written after FEATURES_OK "
                    "(features 0x%" G_GINT64_MODIFIER "x)", vdev->id, features);
        return false;
    }
    vdev->guest_features = features;
    return true;
}

uint8_t virtio_get_status(const VirtIODevice *vdev)
{
    /* Atomic: a driver thread polls it for NEEDS_RESET (virtio_needs_reset). */
    return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
}

void virtio_set_needs_reset(VirtIODevice *vdev)
{
    __atomic_or_fetch(&vdev->status, VIRTIO_CONFIG_S_NEEDS_RESET, __ATOMIC_RELEASE);
}

bool virtio_needs_reset(const VirtIODevice *vdev)
{
    return virtio_get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET;
}

static void virtio_queues_reset(VirtIODevice *vdev)
{
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        VirtQueue *vq = &vdev->vq[i];

        vq->num = 0;
        vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
        vq->enabled = false;
    }
}

void virtio_reset(VirtIODevice *vdev)
{
    g_autoptr(GError) err = NULL;

    /*
     * Stop first (rings are saved or abandoned by the class), then forget
     * the driver's state. A stop cannot fail in a way the resetting driver
     * could act on, so an error here is only dropped.
     */
    if ((vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) && vdev->klass &&
        vdev->klass->set_status) {
        vdev->klass->set_status(vdev, vdev->status, 0, &err);
    }
    __atomic_store_n(&vdev->status, 0, __ATOMIC_RELEASE);
    vdev->guest_features = 0;
    virtio_queues_reset(vdev);
    if (vdev->klass && vdev->klass->reset) {
        vdev->klass->reset(vdev);
    }
}

bool virtio_set_status(VirtIODevice *vdev, uint8_t status, GError **errp)
{
    uint8_t old = vdev->status;
    bool ok = true;

    if (status == 0) {
        virtio_reset(vdev);
        return true;
    }

    if ((status & VIRTIO_CONFIG_S_FEATURES_OK) &&
        !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
        uint64_t extra = vdev->guest_features & ~vdev->host_features;

        if (extra) {
            /*
             * Not latching FEATURES_OK is how a device refuses (virtio
             * 3.1.1 step 6): the driver re-reads the status and gives up.
             */
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                        "%s: driver accepted features 0x%" G_GINT64_MODIFIER
                        "x that were not offered (offered 0x%" G_GINT64_MODIFIER
                        "x)", vdev->id, extra, vdev->host_features);
            vdev->status = status & ~(VIRTIO_CONFIG_S_FEATURES_OK |
                                      VIRTIO_CONFIG_S_DRIVER_OK);
            return false;
        }
    }

    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) &&
        !(status & VIRTIO_CONFIG_S_FEATURES_OK)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: DRIVER_OK without FEATURES_OK (status 0x%x)",
                    vdev->id, status);
        return false;
    }

    /* The driver's write keeps a NEEDS_RESET it has not acted on yet. */
    __atomic_store_n(&vdev->status, status | (old & VIRTIO_CONFIG_S_NEEDS_RESET),
                     __ATOMIC_RELEASE);
    if (((old ^ status) & VIRTIO_CONFIG_S_DRIVER_OK) && vdev->klass &&
        vdev->klass->set_status) {
        ok = vdev->klass->set_status(vdev, old, status, errp);
    }
    return ok;
}

unsigned virtio_get_num_queues(const VirtIODevice *vdev)
{
    return vdev->nvqs;
}

static VirtQueue *virtio_queue_check(const VirtIODevice *vdev, unsigned n,
                                     bool need_stopped, GError **errp)
{
    if (n >= vdev->nvqs) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: queue %u does not exist (%u queues)", vdev->id, n,
                    vdev->nvqs);
        return NULL;
    }
    if (need_stopped && (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: queue %u changed while the device runs", vdev->id, n);
        return NULL;
    }
    return &vdev->vq[n];
}

unsigned virtio_queue_get_num_max(const VirtIODevice *vdev, unsigned n)
{
    return n < vdev->nvqs ? vdev->vq[n].num_max : 0;
}

bool virtio_queue_set_num(VirtIODevice *vdev, unsigned n, unsigned num, GError **errp)
{
    VirtQueue *vq = virtio_queue_check(vdev, n, true, errp);

    if (!vq) {
        return false;
    }
    if (num == 0 || num > vq->num_max || (num & (num - 1))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: queue %u: size %u is not a power of two <= %u",
                    vdev->id, n, num, vq->num_max);
        return false;
    }
    vq->num = (uint16_t)num;
    return true;
}

bool virtio_queue_set_addr(VirtIODevice *vdev, unsigned n, uint64_t desc_gpa,
                           uint64_t avail_gpa, uint64_t used_gpa, GError **errp)
{
    VirtQueue *vq = virtio_queue_check(vdev, n, true, errp);

    if (!vq) {
        return false;
    }
    /* The alignments of virtio 2.7 (split rings). */
    if ((desc_gpa & 15) || (avail_gpa & 1) || (used_gpa & 3)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: queue %u: misaligned ring (desc 0x%" G_GINT64_MODIFIER
                    "x avail 0x%" G_GINT64_MODIFIER "x used 0x%" G_GINT64_MODIFIER
                    "x)", vdev->id, n, desc_gpa, avail_gpa, used_gpa);
        return false;
    }
    vq->desc_gpa = desc_gpa;
    vq->avail_gpa = avail_gpa;
    vq->used_gpa = used_gpa;
    return true;
}

bool virtio_queue_set_enabled(VirtIODevice *vdev, unsigned n, bool enabled, GError **errp)
{
    VirtQueue *vq = virtio_queue_check(vdev, n, true, errp);

    if (!vq) {
        return false;
    }
    if (enabled && vq->num == 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: queue %u enabled before its size was set", vdev->id, n);
        return false;
    }
    vq->enabled = enabled;
    return true;
}

unsigned virtio_queue_get_ring_areas(const VirtIODevice *vdev, unsigned n,
                                     uint64_t gpa[VIRTIO_QUEUE_RING_AREAS],
                                     uint64_t len[VIRTIO_QUEUE_RING_AREAS])
{
    const VirtQueue *vq = n < vdev->nvqs ? &vdev->vq[n] : NULL;
    uint64_t num;

    if (!vq || !vq->num || !vq->desc_gpa) {
        return 0;
    }
    num = vq->num;
    gpa[0] = vq->desc_gpa;
    gpa[1] = vq->avail_gpa;
    gpa[2] = vq->used_gpa;
    len[0] = 16 * num;
    if (vdev->guest_features & (1ull << VIRTIO_F_RING_PACKED)) {
        /* Event suppression: u16 offset/wrap, u16 flags (virtio 2.8.10). */
        len[1] = len[2] = 4;
    } else {
        /* flags, idx, ring[num], used_event / avail_event (virtio 2.7.6, 2.7.8). */
        len[1] = 2 + 2 + 2 * num + 2;
        len[2] = 2 + 2 + 8 * num + 2;
    }
    return VIRTIO_QUEUE_RING_AREAS;
}

void virtio_queue_get_notifiers(const VirtIODevice *vdev, unsigned n,
                                int *kick_fd, int *call_fd)
{
    *kick_fd = n < vdev->nvqs ? vdev->vq[n].kick_fd : -1;
    *call_fd = n < vdev->nvqs ? vdev->vq[n].call_fd : -1;
}

void virtio_queue_set_notifiers(VirtIODevice *vdev, unsigned n, int kick_fd, int call_fd)
{
    if (n < vdev->nvqs) {
        vdev->vq[n].kick_fd = kick_fd;
        vdev->vq[n].call_fd = call_fd;
    }
}

uint32_t virtio_config_len(const VirtIODevice *vdev)
{
    return vdev->config_len;
}

static bool virtio_config_range_ok(const VirtIODevice *vdev, uint32_t offset,
                                   uint32_t len, const char *what, GError **errp)
{
    if (offset > vdev->config_len || len > vdev->config_len - offset) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: config %s of %u bytes at offset %u is outside the "
                    "%u-byte config space", vdev->id, what, len, offset,
                    vdev->config_len);
        return false;
    }
    return true;
}

bool virtio_config_read(VirtIODevice *vdev, uint32_t offset, void *buf,
                        uint32_t len, GError **errp)
{
    if (!virtio_config_range_ok(vdev, offset, len, "read", errp)) {
        return false;
    }
    if (len == 0) {
        return true;
    }
    if (vdev->klass && vdev->klass->get_config) {
        vdev->klass->get_config(vdev, vdev->config);
    }
    memcpy(buf, vdev->config + offset, len);
    return true;
}

bool virtio_config_write(VirtIODevice *vdev, uint32_t offset, const void *buf,
                         uint32_t len, GError **errp)
{
    if (!virtio_config_range_ok(vdev, offset, len, "write", errp)) {
        return false;
    }
    if (len == 0) {
        return true;
    }
    memcpy(vdev->config + offset, buf, len);
    if (vdev->klass && vdev->klass->set_config) {
        vdev->klass->set_config(vdev, vdev->config, offset, len);
    }
    return true;
}
