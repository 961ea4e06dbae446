/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rings of a connection. See include/hw/virtio/vhost-user-rings.h.
 *
 * Each ring's err eventfd (given to the back-end with SET_VRING_ERR, and
 * written by the back-end channel for an in-band VRING_ERR) is watched on
 * the connection's loop while its vhost_dev is registered; a signal is
 * reported through VhostUserBackendReqOps.vring_error. The eventfds outlive
 * connections (vhost.c), so the watches do too.
 *
 * Locking: u->devs is changed under u->lock (init and cleanup of a
 * vhost_dev run on the VMM's thread, while the back-end channel may look
 * a ring up from a request on another thread).
 */
#include <inttypes.h>
#include <unistd.h>

#include "chardev/char-socket-int.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-backend-req.h"
#include "hw/virtio/vhost-user-rings.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

/* One element of u->devs: a vhost_dev and the watches of its err eventfds. */
typedef struct RingsDev {
    VhostUserState *u;
    struct vhost_dev *dev;
    VhostEventLoop *loop;
    void **err_watches;         /* [dev->nvqs], NULL where not watched */
} RingsDev;

static VhostEventLoop *rings_loop(VhostUserState *u)
{
    return u->loop ? u->loop : char_socket_loop(u->chr);
}

static bool ring_err_cb(int fd, unsigned events, void *opaque)
{
    RingsDev *rd = opaque;
    VhostUserState *u = rd->u;
    unsigned ring = rd->dev->vq_index;
    uint64_t n;

    for (unsigned i = 0; i < rd->dev->nvqs; i++) {
        if (rd->dev->vqs[i].err_fd == fd) {
            ring += i;
            break;
        }
    }
    /* Non-blocking: a spurious wake-up reads nothing and reports nothing. */
    if (read(fd, &n, sizeof(n)) != sizeof(n)) {
        return true;
    }
    if (u->backend_req_ops && u->backend_req_ops->vring_error) {
        u->backend_req_ops->vring_error(u->backend_req_opaque, ring);
    } else {
        vhost_user_log(VHOST_USER_LOG_WARNING, u->name,
                       "ring %u: the back-end signalled a ring error", ring);
    }
    return true;
}

static RingsDev *rings_dev_new(VhostUserState *u, struct vhost_dev *dev)
{
    RingsDev *rd = g_new0(RingsDev, 1);

    rd->u = u;
    rd->dev = dev;
    rd->loop = rings_loop(u);
    rd->err_watches = g_new0(void *, dev->nvqs ? dev->nvqs : 1);
    for (unsigned i = 0; dev->vqs && i < dev->nvqs; i++) {
        if (dev->vqs[i].err_fd >= 0) {
            rd->err_watches[i] = vhost_loop_add_watch(rd->loop, dev->vqs[i].err_fd,
                                                      VHOST_WATCH_IN, ring_err_cb, rd);
        }
    }
    return rd;
}

static void rings_dev_free(gpointer p)
{
    RingsDev *rd = p;

    for (unsigned i = 0; i < rd->dev->nvqs; i++) {
        if (rd->err_watches[i]) {
            vhost_loop_remove_watch(rd->loop, rd->err_watches[i]);
        }
    }
    g_free(rd->err_watches);
    g_free(rd);
}

static struct vhost_dev *rings_dev(VhostUserState *u, guint i)
{
    return ((RingsDev *)g_ptr_array_index(u->devs, i))->dev;
}

unsigned vhost_user_nrings(VhostUserState *u)
{
    unsigned n = 0;

    for (guint i = 0; u->devs && i < u->devs->len; i++) {
        struct vhost_dev *d = rings_dev(u, i);

        n = MAX(n, d->vq_index + d->nvqs);
    }
    return n;
}

struct vhost_virtqueue *vhost_user_ring(VhostUserState *u, unsigned ring)
{
    for (guint i = 0; u->devs && i < u->devs->len; i++) {
        struct vhost_dev *d = rings_dev(u, i);

        if (ring >= d->vq_index && ring - d->vq_index < d->nvqs && d->vqs) {
            return &d->vqs[ring - d->vq_index];
        }
    }
    return NULL;
}

struct vhost_dev *vhost_user_dev0(VhostUserState *u)
{
    for (guint i = 0; u->devs && i < u->devs->len; i++) {
        struct vhost_dev *d = rings_dev(u, i);

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
        u->devs = g_ptr_array_new_with_free_func(rings_dev_free);
    }
    for (guint i = 0; i < u->devs->len; i++) {
        if (rings_dev(u, i) == dev) {
            g_mutex_unlock(&u->lock);
            return;
        }
    }
    g_ptr_array_add(u->devs, rings_dev_new(u, dev));
    g_mutex_unlock(&u->lock);
}

void vhost_user_unregister_dev(VhostUserState *u, struct vhost_dev *dev)
{
    g_mutex_lock(&u->lock);
    for (guint i = 0; u->devs && i < u->devs->len; i++) {
        if (rings_dev(u, i) == dev) {
            g_ptr_array_remove_index(u->devs, i);
            break;
        }
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
