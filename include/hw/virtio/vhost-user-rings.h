/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rings of a connection: the vhost_devs over one VhostUserState, so
 * that a ring number from the back-end finds its eventfds and the number
 * of rings is known; and the in-band kick (VRING_KICK) of one ring.
 */
#ifndef HW_VIRTIO_VHOST_USER_RINGS_H
#define HW_VIRTIO_VHOST_USER_RINGS_H

#include <stdbool.h>

#include "hw/virtio/vhost-user-conn.h"

struct vhost_dev;
struct vhost_virtqueue;

/* Done by user_ops' init and cleanup. */
void vhost_user_register_dev(VhostUserState *u, struct vhost_dev *dev);
void vhost_user_unregister_dev(VhostUserState *u, struct vhost_dev *dev);
/* True when dev holds the highest rings of the device (it starts last). */
bool vhost_user_is_last_dev(VhostUserState *u, const struct vhost_dev *dev);
/* Number of rings of the registered vhost_devs (highest ring + 1). */
unsigned vhost_user_nrings(VhostUserState *u);
/* Ring's state, or NULL when no registered vhost_dev holds it. */
struct vhost_virtqueue *vhost_user_ring(VhostUserState *u, unsigned ring);
/* The vhost_dev of ring 0 (whole-device requests), or NULL. */
struct vhost_dev *vhost_user_dev0(VhostUserState *u);

/* VRING_KICK: the driver's kick of ring as a message (INBAND_NOTIFICATIONS). */
bool vhost_user_vring_kick(VhostUserState *u, unsigned ring, GError **errp);

#endif
