/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-net as the virtio 1.x spec (5.1) defines it on the wire: feature
 * bits, the per-packet header and the leading part of the config space.
 * One copy for the front-end (hw/virtio), the guest driver (guest/) and
 * the reference back-end (contrib/). All little endian.
 */
#ifndef HW_VIRTIO_VIRTIO_NET_DEFS_H
#define HW_VIRTIO_VIRTIO_NET_DEFS_H

#include <stddef.h>
#include <stdint.h>

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM           0
#define VIRTIO_NET_F_GUEST_CSUM     1
#define VIRTIO_NET_F_MTU            3
#define VIRTIO_NET_F_MAC            5
#define VIRTIO_NET_F_MRG_RXBUF      15
#define VIRTIO_NET_F_STATUS         16
#define VIRTIO_NET_F_CTRL_VQ        17
#define VIRTIO_NET_F_MQ             22

#define VIRTIO_NET_S_LINK_UP        1

/* struct virtio_net_hdr_v1 (5.1.6): 12 bytes with VERSION_1. */
typedef struct __attribute__((packed)) VirtioNetHdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;       /* RX with MRG_RXBUF: buffers this packet spans */
} VirtioNetHdr;

_Static_assert(sizeof(VirtioNetHdr) == 12, "virtio_net_hdr_v1");

/* The leading part of struct virtio_net_config (5.1.4), up to mtu. */
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

#endif
