/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rings of a connection. See include/hw/virtio/vhost-user-rings.h.
 *
 * Locking: u->devs is changed under u->lock (init and cleanup of a
 * vhost_dev run on the VMM's thread, while the back-end channel may look
 * a ring up from a request on another thread).
 */
#include <inttypes.h>

#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-rings.h"
#include "util/vhost-user-error.h"

unsigned vhost_user_nrings(VhostUserState *u)
{
    unsigned n = 0;

    for (guint i = 0; u->devs && i < u->devs->len; i++) {
        struct vhost_dev *d = g_ptr_array_index(u->devs, i);

        n = MAX(n, d->vq_index + d->nvqs);
    }
    return n;
}

struct vhost_virtqueue *vhost_user_ring(VhostUserState *u, unsigned ring)
{
    for (guint i = 0; u->devs && i < u->devs->len; i++) {
        struct vhost_dev *d = g_ptr_array_index(u->devs, i);

        if (ring >= d->vq_index && ring - d->vq_index < d->nvqs && d->vqs) {
            return &d->vqs[ring - d->vq_index];
        }
    }
    return NULL;
}

struct vhost_dev *vhost_user_dev0(VhostUserState *u)
{
    for (guint i = 0; u->devs && i < u->devs->len; i++) {
        struct vhost_dev *d = g_ptr_array_index(u->devs, i);

        if (d->vq_index == 0) {
            return d;
        }
    }
    return NULL;
}

void vhost_user_register_dev(VhostUserState *u, struct vhost_dev *dev)
{
    g_mutex_lock(&u->lock);
    if (!u->devs) {
        u->devs = g_ptr_array_new();
    }
    if (!g_ptr_array_find(u->devs, dev, NULL)) {
        g_ptr_array_add(u->devs, dev);
    }
    g_mutex_unlock(&u->lock);
}

void vhost_user_unregister_dev(VhostUserState *u, struct vhost_dev *dev)
{
    g_mutex_lock(&u->lock);
    if (u->devs) {
        g_ptr_array_remove(u->devs, dev);
    }
    g_mutex_unlock(&u->lock);
}

bool vhost_user_is_last_dev(VhostUserState *u, const struct vhost_dev *dev)
{
    return dev->vq_index + dev->nvqs == vhost_user_nrings(u);
}

bool vhost_user_vring_kick(VhostUserState *u, unsigned ring, GError **errp)
{
    VhostUserMsg msg;
    unsigned n = vhost_user_nrings(u);

    if (ring >= n) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: VRING_KICK: ring %u but the device has %u rings",
                    u->name, ring, n);
        return false;
    }
    vhost_user_msg_init(&msg, VHOST_USER_VRING_KICK, sizeof(VhostUserVringState));
    msg.payload.state.index = ring;
    return vhost_user_send(u, 0, &msg, NULL, 0, 0, errp);
}
