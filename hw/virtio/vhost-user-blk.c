/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-blk over vhost-user. See include/hw/virtio/vhost-user-blk.h.
 *
 * The config space comes from the back-end and is untrusted: the request
 * path checks that GET_CONFIG returned exactly the 60 bytes asked for;
 * here num_queues is checked against the configured queue count before
 * any ring is set up, and the driver never sees the back-end's own count.
 *
 * The one writable field, writeback (VIRTIO_BLK_F_CONFIG_WCE), goes to
 * the back-end with SET_CONFIG as soon as the driver writes it, and again
 * before the rings start on every later connection: a restarted back-end
 * must not fall back to its own default cache mode under the driver.
 */
#include <string.h>

#include <glib.h>

#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-blk.h"
#include "util/vhost-user-error.h"

typedef struct VhostUserBlk {
    VhostUserBase parent;       /* first: the base frees the whole object */
    unsigned num_queues;
    VirtioBlkConfig backend_cfg;    /* as GET_CONFIG returned it */
    bool wce_written;               /* the driver chose a cache mode: wce */
    uint8_t wce;
} VhostUserBlk;

#define BLK_SUPPORTED_FEATURES \
    ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
     (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_BLK_F_SIZE_MAX) | \
     (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_GEOMETRY) | \
     (1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_BLK_SIZE) | \
     (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_TOPOLOGY) | \
     (1ull << VIRTIO_BLK_F_CONFIG_WCE) | (1ull << VIRTIO_BLK_F_MQ) | \
     (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES))

static VhostUserBlk *vub_blk(VhostUserBase *vub)
{
    return (VhostUserBlk *)vub;
}

static bool vublk_connected(VhostUserBase *vub, GError **errp)
{
    VhostUserBlk *b = vub_blk(vub);
    struct vhost_dev *hdev = &vub->devs[0];
    VirtioBlkConfig cfg;
    uint64_t backend_queues;
    const char *source;

    if (!vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_CONFIG)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_PROTOCOL_FEATURES: vhost-user-blk needs the CONFIG "
                    "protocol feature, which the back-end does not offer "
                    "(protocol features 0x%" G_GINT64_MODIFIER "x)",
                    vub->vdev.id, hdev->protocol_features);
        return false;
    }
    /* Fetched on every connect: the back-end may have been replaced. */
    memset(&cfg, 0, sizeof(cfg));
    if (!vhost_dev_get_config(hdev, (uint8_t *)&cfg, sizeof(cfg), errp)) {
        return false;
    }

    if (virtio_has_feature(hdev->features, VIRTIO_BLK_F_MQ)) {
        backend_queues = GUINT16_FROM_LE(cfg.num_queues);
        source = "GET_CONFIG num_queues";
        if (backend_queues == 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: GET_CONFIG: num_queues is 0 although VIRTIO_BLK_F_MQ "
                        "is offered", vub->vdev.id);
            return false;
        }
    } else if (vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_MQ)) {
        backend_queues = hdev->max_queues;
        source = "GET_QUEUE_NUM";
    } else {
        backend_queues = 1;
        source = "no MQ feature";
    }
    if (b->num_queues > backend_queues) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: num-queues=%u but the back-end serves %" G_GUINT64_FORMAT
                    " queues (%s)", vub->vdev.id, b->num_queues, backend_queues,
                    source);
        return false;
    }
    if (b->wce_written) {
        cfg.writeback = b->wce;
    }
    b->backend_cfg = cfg;
    return true;
}

static bool vublk_send_wce(VhostUserBase *vub, GError **errp)
{
    VhostUserBlk *b = vub_blk(vub);

    return vhost_dev_set_config(&vub->devs[0], &b->wce,
                                offsetof(VirtioBlkConfig, writeback), 1, errp);
}

static bool vublk_pre_start(VhostUserBase *vub, GError **errp)
{
    VhostUserBlk *b = vub_blk(vub);

    if (!b->wce_written ||
        !virtio_has_feature(vub->vdev.guest_features, VIRTIO_BLK_F_CONFIG_WCE)) {
        return true;
    }
    return vublk_send_wce(vub, errp);
}

static uint64_t vublk_host_features(VhostUserBase *vub, uint64_t backend)
{
    VhostUserBlk *b = vub_blk(vub);
    uint64_t f = backend & BLK_SUPPORTED_FEATURES;

    /* num_queues in the config is ours, so MQ is ours to offer. */
    if (b->num_queues > 1) {
        f |= 1ull << VIRTIO_BLK_F_MQ;
    }
    return f;
}

static uint64_t vublk_backend_acked(VhostUserBase *vub, uint64_t guest, uint64_t backend)
{
    return guest & backend;
}

static void vublk_get_config(VhostUserBase *vub, uint8_t *config)
{
    VhostUserBlk *b = vub_blk(vub);
    VirtioBlkConfig cfg = b->backend_cfg;

    cfg.num_queues = GUINT16_TO_LE((uint16_t)b->num_queues);
    memcpy(config, &cfg, sizeof(cfg));
}

static void vublk_set_config(VhostUserBase *vub, const uint8_t *config,
                             uint32_t offset, uint32_t len)
{
    VhostUserBlk *b = vub_blk(vub);
    const uint32_t wb = offsetof(VirtioBlkConfig, writeback);
    g_autoptr(GError) err = NULL;

    /*
     * Only the write-back flag is writable (virtio 5.2.4, with
     * CONFIG_WCE); other bytes are read-only and a write is dropped (the
     * next read refreshes them from the back-end's copy).
     */
    if (offset > wb || offset + len <= wb ||
        !virtio_has_feature(vub->vdev.guest_features, VIRTIO_BLK_F_CONFIG_WCE)) {
        return;
    }
    b->wce = config[wb];
    b->wce_written = true;
    b->backend_cfg.writeback = b->wce;
    /* Not connected or not negotiated yet: pre_start sends it. */
    if (!vub->ready) {
        return;
    }
    if (!vublk_send_wce(vub, &err)) {
        vhost_user_base_report_error(vub, err);
    }
}

static const VhostUserBaseClass vhost_user_blk_class = {
    .name = "vhost-user-blk",
    .connected = vublk_connected,
    .host_features = vublk_host_features,
    .backend_acked = vublk_backend_acked,
    .pre_start = vublk_pre_start,
    .get_config = vublk_get_config,
    .set_config = vublk_set_config,
};

VhostUserBase *vhost_user_blk_new(const VhostUserBlkParams *p, GError **errp)
{
    VhostUserBlk *b;
    VhostUserBaseParams bp = {
        .id = p->id,
        .virtio_id = VIRTIO_ID_BLOCK,
        .chr = p->chr,
        .mem = p->mem,
        .ndevs = 1,
        .rings_per_dev = p->num_queues,
        .queue_size = p->queue_size,
        .config_len = sizeof(VirtioBlkConfig),
        .iommu_platform = p->iommu_platform,
        .packed = p->packed,
        .in_order = p->in_order,
        /* A back-end restart must not lose the requests it had taken. */
        .inflight = true,
        /* Lost or doubled block I/O is data loss: never resume blindly. */
        .reset_if_lost = true,
    };

    if (p->num_queues == 0 || p->num_queues > VHOST_USER_BLK_MAX_QUEUES) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: num-queues=%u is outside 1..%u", p->id, p->num_queues,
                    VHOST_USER_BLK_MAX_QUEUES);
        return NULL;
    }
    b = g_new0(VhostUserBlk, 1);
    b->num_queues = p->num_queues;
    if (!vhost_user_base_realize(&b->parent, &vhost_user_blk_class, &bp, errp)) {
        g_free(b);
        return NULL;
    }
    return &b->parent;
}

bool vhost_user_blk_config_changed(VhostUserBase *vub, const uint8_t *config,
                                   uint32_t len, uint64_t *capacity)
{
    VhostUserBlk *b;
    VirtioBlkConfig cfg;

    if (vub->klass != &vhost_user_blk_class || !config || len < sizeof(cfg)) {
        return false;
    }
    b = vub_blk(vub);
    memcpy(&cfg, config, sizeof(cfg));
    /*
     * Only the capacity may change under a running driver (a resize); the
     * limits it negotiated around stay, and num_queues is ours anyway.
     */
    b->backend_cfg.capacity = cfg.capacity;
    *capacity = GUINT64_FROM_LE(cfg.capacity);
    return true;
}
