/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-net over vhost-user. See include/hw/virtio/vhost-user-net.h.
 *
 * What the back-end says about queues (GET_QUEUE_NUM) is checked against
 * the configuration before any ring is set up: a back-end that serves
 * fewer queue pairs than configured would otherwise see rings it never
 * allocated.
 */
#include <string.h>

#include <glib.h>

#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-net.h"

typedef struct VhostUserNet {
    VhostUserBase parent;       /* first: the base frees the whole object */
    unsigned queues;
    bool mq;
    uint8_t mac[6];
    uint16_t host_mtu;
    bool link_up;
} VhostUserNet;

/* Features whose work happens in the back-end (rings and packet layout). */
#define NET_BACKEND_FEATURES \
    ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MRG_RXBUF) | \
     (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))

static VhostUserNet *vun_from_base(VhostUserBase *vub)
{
    return (VhostUserNet *)vub;
}

static bool vun_connected(VhostUserBase *vub, GError **errp)
{
    VhostUserNet *n = vun_from_base(vub);
    struct vhost_dev *hdev = &vub->devs[0];
    bool has_mq = vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_MQ);

    if (n->queues > 1 && !has_mq) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_PROTOCOL_FEATURES: %u queue pairs need the MQ "
                    "protocol feature, which the back-end does not offer "
                    "(protocol features 0x%" G_GINT64_MODIFIER "x)",
                    vub->vdev.id, n->queues, hdev->protocol_features);
        return false;
    }
    if (has_mq && n->queues > hdev->max_queues) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_QUEUE_NUM: back-end serves %" G_GUINT64_FORMAT
                    " queue pairs, %u configured (queues=)", vub->vdev.id,
                    hdev->max_queues, n->queues);
        return false;
    }
    n->link_up = true;
    return true;
}

static void vun_disconnected(VhostUserBase *vub)
{
    vun_from_base(vub)->link_up = false;
}

static uint64_t vun_host_features(VhostUserBase *vub, uint64_t backend)
{
    VhostUserNet *n = vun_from_base(vub);
    uint64_t f = backend & NET_BACKEND_FEATURES;

    /* Emulated by the VMM's config space, offered whatever the back-end says. */
    f |= (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS);
    if (n->host_mtu) {
        f |= 1ull << VIRTIO_NET_F_MTU;
    }
    if (n->queues > 1 && n->mq) {
        f |= 1ull << VIRTIO_NET_F_MQ;
    }
    return f;
}

static uint64_t vun_backend_acked(VhostUserBase *vub, uint64_t guest, uint64_t backend)
{
    /*
     * The back-end hears only of bits it offered itself; MAC, STATUS and
     * friends are the VMM's business when it does not know them.
     */
    return guest & backend;
}

static bool vun_pre_start(VhostUserBase *vub, GError **errp)
{
    VhostUserNet *n = vun_from_base(vub);
    struct vhost_dev *hdev = &vub->devs[0];

    if (!n->host_mtu ||
        !virtio_has_feature(vub->vdev.guest_features, VIRTIO_NET_F_MTU) ||
        !vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_NET_MTU) ||
        !hdev->vhost_ops->net_set_mtu) {
        /* Without NET_MTU the back-end just is not told; the guest still is. */
        return true;
    }
    return hdev->vhost_ops->net_set_mtu(hdev, n->host_mtu, errp);
}

static void vun_get_config(VhostUserBase *vub, uint8_t *config)
{
    VhostUserNet *n = vun_from_base(vub);
    VirtioNetConfig cfg = { 0 };

    memcpy(cfg.mac, n->mac, sizeof(cfg.mac));
    cfg.status = GUINT16_TO_LE(n->link_up ? VIRTIO_NET_S_LINK_UP : 0);
    cfg.max_virtqueue_pairs = GUINT16_TO_LE((uint16_t)n->queues);
    cfg.mtu = GUINT16_TO_LE(n->host_mtu);
    memcpy(config, &cfg, sizeof(cfg));
}

/* VERSION_1 net config is read-only for the driver: writes are dropped. */
static void vun_set_config(VhostUserBase *vub, const uint8_t *config,
                           uint32_t offset, uint32_t len)
{
}

static const VhostUserBaseClass vhost_user_net_class = {
    .name = "vhost-user-net",
    .connected = vun_connected,
    .disconnected = vun_disconnected,
    .host_features = vun_host_features,
    .backend_acked = vun_backend_acked,
    .pre_start = vun_pre_start,
    .get_config = vun_get_config,
    .set_config = vun_set_config,
};

VhostUserBase *vhost_user_net_new(const VhostUserNetParams *p, GError **errp)
{
    VhostUserNet *n;
    VhostUserBaseParams bp = {
        .id = p->id,
        .virtio_id = VIRTIO_ID_NET,
        .chr = p->chr,
        .mem = p->mem,
        .ndevs = p->queues,
        .rings_per_dev = 2,
        .queue_size = p->queue_size,
        .config_len = sizeof(VirtioNetConfig),
        /* The VMM emulates the config space: GET_CONFIG is never needed. */
        .protocol_features_clear = 1ull << VHOST_USER_PROTOCOL_F_CONFIG,
        .iommu_platform = p->iommu_platform,
        .packed = p->packed,
        .in_order = p->in_order,
    };

    if (p->queues == 0 || p->queues > VHOST_USER_NET_MAX_QUEUES) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: queues=%u is outside 1..%u", p->id, p->queues,
                    VHOST_USER_NET_MAX_QUEUES);
        return NULL;
    }
    if (p->host_mtu && p->host_mtu < 68) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: host_mtu=%u is below 68", p->id, p->host_mtu);
        return NULL;
    }
    n = g_new0(VhostUserNet, 1);
    n->queues = p->queues;
    n->mq = p->mq;
    memcpy(n->mac, p->mac, sizeof(n->mac));
    n->host_mtu = p->host_mtu;
    if (!vhost_user_base_realize(&n->parent, &vhost_user_net_class, &bp, errp)) {
        g_free(n);
        return NULL;
    }
    return &n->parent;
}

bool vhost_user_net_link_up(VhostUserBase *vub)
{
    if (vub->klass != &vhost_user_net_class) {
        return false;
    }
    return vun_from_base(vub)->link_up;
}

bool vhost_user_net_announce(VhostUserBase *vub, GError **errp)
{
    VhostUserNet *n;
    struct vhost_dev *hdev;

    if (vub->klass != &vhost_user_net_class) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: announce: not a net device", vub->vdev.id);
        return false;
    }
    n = vun_from_base(vub);
    hdev = &vub->devs[0];
    if (!n->link_up) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: announce: no back-end connected and negotiated", vub->vdev.id);
        return false;
    }
    if (!vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_RARP) ||
        !hdev->vhost_ops->send_rarp) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: nothing to announce with: the back-end did not negotiate the "
                    "RARP protocol feature (protocol features 0x%" G_GINT64_MODIFIER
                    "x), and VIRTIO_NET_F_GUEST_ANNOUNCE needs a control virtqueue, "
                    "which this device does not have", vub->vdev.id,
                    hdev->protocol_features);
        return false;
    }
    /* One connection serves every queue pair: one SEND_RARP, as QEMU sends. */
    return hdev->vhost_ops->send_rarp(hdev, n->mac, errp);
}
