/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Generic vhost-user device. See include/hw/virtio/vhost-user-device.h.
 *
 * The back-end's config bytes are untrusted; they are only ever copied
 * into the fixed-size config space the user configured (the request path
 * checked that GET_CONFIG returned exactly that many).
 */
#include <string.h>

#include <glib.h>

#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-device.h"
#include "util/vhost-user-error.h"

typedef struct VhostUserDevice {
    VhostUserBase parent;       /* first: the base frees the whole object */
    uint32_t config_size;
    uint8_t config[VIRTIO_CONFIG_MAX_SIZE];
} VhostUserDevice;

/*
 * Transport features this device does not pass through: dirty logging is
 * the migration code's to ask for. The IOMMU and packed-ring bits are the
 * base's to offer (iommu_platform=on, packed=on).
 */
#define VUDEV_UNSUPPORTED_FEATURES \
    ((1ull << VHOST_F_LOG_ALL) | (1ull << VIRTIO_F_IOMMU_PLATFORM) | \
     (1ull << VIRTIO_F_RING_PACKED) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES))

static VhostUserDevice *vudev(VhostUserBase *vub)
{
    return (VhostUserDevice *)vub;
}

static bool vudev_connected(VhostUserBase *vub, GError **errp)
{
    VhostUserDevice *d = vudev(vub);
    struct vhost_dev *hdev = &vub->devs[0];

    if (!d->config_size) {
        return true;
    }
    if (!vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_CONFIG)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_PROTOCOL_FEATURES: config_size=%u needs the CONFIG "
                    "protocol feature, which the back-end does not offer "
                    "(protocol features 0x%" G_GINT64_MODIFIER "x)",
                    vub->vdev.id, d->config_size, hdev->protocol_features);
        return false;
    }
    return vhost_dev_get_config(hdev, d->config, d->config_size, errp);
}

static uint64_t vudev_host_features(VhostUserBase *vub, uint64_t backend)
{
    return backend & ~VUDEV_UNSUPPORTED_FEATURES;
}

static void vudev_get_config(VhostUserBase *vub, uint8_t *config)
{
    VhostUserDevice *d = vudev(vub);

    memcpy(config, d->config, d->config_size);
}

static void vudev_set_config(VhostUserBase *vub, const uint8_t *config,
                             uint32_t offset, uint32_t len)
{
    VhostUserDevice *d = vudev(vub);
    g_autoptr(GError) err = NULL;

    /* The model checked offset + len against config_size already. */
    memcpy(d->config + offset, config + offset, len);
    if (!vub->ready) {
        return;
    }
    if (!vhost_dev_set_config(&vub->devs[0], config + offset, offset, len, &err)) {
        vhost_user_base_report_error(vub, err);
    }
}

static const VhostUserBaseClass vhost_user_device_class = {
    .name = "vhost-user-device",
    .connected = vudev_connected,
    .host_features = vudev_host_features,
    .get_config = vudev_get_config,
    .set_config = vudev_set_config,
};

VhostUserBase *vhost_user_device_new(const VhostUserDeviceParams *p, GError **errp)
{
    VhostUserDevice *d;
    VhostUserBaseParams bp = {
        .id = p->id,
        .virtio_id = p->virtio_id,
        .chr = p->chr,
        .mem = p->mem,
        .ndevs = 1,
        .rings_per_dev = p->num_vqs,
        .queue_size = p->vq_size,
        .config_len = p->config_size,
        .protocol_features_clear = p->config_size ? 0 :
                                   1ull << VHOST_USER_PROTOCOL_F_CONFIG,
        .iommu_platform = p->iommu_platform,
        .packed = p->packed,
        .in_order = p->in_order,
    };

    if (p->virtio_id == 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: virtio-id must be non-zero", p->id);
        return NULL;
    }
    if (p->num_vqs == 0 || p->num_vqs > VHOST_USER_DEVICE_MAX_VQS) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: num_vqs=%u is outside 1..%u", p->id, p->num_vqs,
                    VHOST_USER_DEVICE_MAX_VQS);
        return NULL;
    }
    if (p->config_size > VIRTIO_CONFIG_MAX_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: config_size=%u is above %u", p->id, p->config_size,
                    VIRTIO_CONFIG_MAX_SIZE);
        return NULL;
    }
    d = g_new0(VhostUserDevice, 1);
    d->config_size = p->config_size;
    if (!vhost_user_base_realize(&d->parent, &vhost_user_device_class, &bp, errp)) {
        g_free(d);
        return NULL;
    }
    return &d->parent;
}
