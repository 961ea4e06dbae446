/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-net over vhost-user (-netdev vhost-user + -device virtio-net-pci):
 * `queues` queue pairs, one vhost_dev of two rings (rx, tx) per pair over
 * one connection. The config space (MAC, link status, queue pairs, MTU)
 * is emulated by the VMM, as QEMU does; the back-end only moves packets.
 */
#ifndef HW_VIRTIO_VHOST_USER_NET_H
#define HW_VIRTIO_VHOST_USER_NET_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-base.h"
#include "hw/virtio/virtio-net-defs.h"

/* Most queue pairs a device may have (virtio 5.1.4: 0x8000). */
#define VHOST_USER_NET_MAX_QUEUES   0x8000

typedef struct VhostUserNetParams {
    const char *id;             /* device id ("net0") */
    CharSocket *chr;            /* the netdev's chardev */
    GuestMemory *mem;
    unsigned queues;            /* queue pairs, >= 1 */
    bool mq;                    /* offer VIRTIO_NET_F_MQ when queues > 1 */
    uint8_t mac[6];
    uint16_t host_mtu;          /* 0: no VIRTIO_NET_F_MTU */
    unsigned queue_size;        /* ring size offered to the driver */
    bool iommu_platform;        /* offer VIRTIO_F_IOMMU_PLATFORM */
    bool packed;                /* offer VIRTIO_F_RING_PACKED (QEMU's packed=on) */
    bool in_order;              /* offer VIRTIO_F_IN_ORDER (QEMU's in_order=on) */
} VhostUserNetParams;

/* The device; free with vhost_user_base_free(). */
VHOST_USER_API
VhostUserBase *vhost_user_net_new(const VhostUserNetParams *p, GError **errp);

/* True while a back-end is connected and negotiated (config status bit). */
VHOST_USER_API
bool vhost_user_net_link_up(VhostUserBase *vub);

/*
 * Tells the network where the guest's MAC now lives (after an incoming
 * migration, or on QMP announce-self): SEND_RARP with the device's MAC
 * when the back-end negotiated the RARP protocol feature; the back-end
 * then broadcasts a RARP frame from that MAC (DPDK injects it into the
 * guest's TX stream). The other way, VIRTIO_NET_F_GUEST_ANNOUNCE, needs a
 * control virtqueue for the driver's VIRTIO_NET_CTRL_ANNOUNCE_ACK; this
 * device has none, so it is never offered: without RARP the call fails
 * with "nothing to announce with" and the reason. False also when the
 * device is not a net device, has no negotiated back-end, or the send
 * fails. No frame is built by the VMM itself.
 */
VHOST_USER_API
bool vhost_user_net_announce(VhostUserBase *vub, GError **errp);

#endif
