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

/* Feature bits (virtio 1.x, 5.1.3) this front-end knows about. */
#define VIRTIO_NET_F_CSUM           0
#define VIRTIO_NET_F_GUEST_CSUM     1
#define VIRTIO_NET_F_MTU            3
#define VIRTIO_NET_F_MAC            5
#define VIRTIO_NET_F_MRG_RXBUF      15
#define VIRTIO_NET_F_STATUS         16
#define VIRTIO_NET_F_CTRL_VQ        17
#define VIRTIO_NET_F_MQ             22

#define VIRTIO_NET_S_LINK_UP        1

/* Most queue pairs a device may have (virtio 5.1.4: 0x8000). */
#define VHOST_USER_NET_MAX_QUEUES   0x8000

/* The leading part of struct virtio_net_config that we emulate. */
typedef struct __attribute__((packed)) VirtioNetConfig {
    uint8_t mac[6];
    uint16_t status;
    uint16_t max_virtqueue_pairs;
    uint16_t mtu;
} VirtioNetConfig;

_Static_assert(sizeof(VirtioNetConfig) == 12, "virtio_net_config up to mtu");
_Static_assert(offsetof(VirtioNetConfig, status) == 6, "net config status");
_Static_assert(offsetof(VirtioNetConfig, max_virtqueue_pairs) == 8, "net config pairs");
_Static_assert(offsetof(VirtioNetConfig, mtu) == 10, "net config mtu");

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
} VhostUserNetParams;

/* The device; free with vhost_user_base_free(). */
VhostUserBase *vhost_user_net_new(const VhostUserNetParams *p, GError **errp);

/* True while a back-end is connected and negotiated (config status bit). */
bool vhost_user_net_link_up(VhostUserBase *vub);

#endif
