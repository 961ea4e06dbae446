/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The back-end channel (BACKEND_REQ): a socketpair whose far end is handed
 * to the back-end with SET_BACKEND_REQ_FD, so the back-end can send its
 * own requests (IOTLB misses, config changes, host notifiers, in-band
 * call/err, shared objects). One per connection, owned by VhostUserState.
 *
 * It is serviced from two places, never concurrently:
 *  - the VMM's event loop (a watch on our end) while no request runs;
 *  - the request path, which polls it next to the main socket while it
 *    waits for a reply (see vhost_user_backend_chan_wait), because the
 *    back-end may need an answer from us before it can reply.
 * A back-end request is only ever answered on the back-end channel from
 * there; follow-up work that needs a front-end request is queued and run
 * later from the loop (vhost_loop_defer). See the file header of
 * vhost-user-backend-chan.c for why.
 *
 * Everything the back-end sends here is untrusted and checked; a bad
 * message drops the whole connection with an error naming the device,
 * the message and the field.
 */
#ifndef HW_VIRTIO_VHOST_USER_BACKEND_CHAN_H
#define HW_VIRTIO_VHOST_USER_BACKEND_CHAN_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/virtio/vhost-user.h"
#include "hw/virtio/vhost-user-backend-ops.h"

typedef struct VhostUserBackendChan VhostUserBackendChan;

/*
 * Installs the VMM's callbacks on u; they stay across reconnects.
 * config_len: bytes of config to re-read on CONFIG_CHANGE_MSG (0: none).
 * loop: where the channel is watched and deferred work runs (NULL: the
 * default loop).
 */
void vhost_user_set_backend_ops(VhostUserState *u, const VhostUserBackendOps *ops,
                                void *opaque, uint32_t config_len,
                                VhostEventLoop *loop);

/*
 * Creates the socketpair, sends one end with SET_BACKEND_REQ_FD (acked
 * with REPLY_ACK) and starts watching the other. Called once per
 * connection after negotiation, when BACKEND_REQ was negotiated.
 */
bool vhost_user_backend_chan_setup(VhostUserState *u, GError **errp);

/*
 * Closes the channel: unmaps every host notifier (telling the VMM first),
 * drops queued work, forgets the connection's shared objects. NULL is ok.
 */
void vhost_user_backend_chan_free(VhostUserBackendChan *chan);

/*
 * The request path's wait: until main_fd is readable (or hung up), handles
 * back-end requests that arrive meanwhile. Waits at most timeout_ms
 * (< 0: forever). Called with u->lock held. False with errp set on a
 * timeout or when a back-end request was malformed (the caller drops the
 * connection).
 */
bool vhost_user_backend_chan_wait(VhostUserBackendChan *chan, int main_fd,
                                  int timeout_ms, GError **errp);

/* Unmaps the host notifiers of rings [first, first + n) (rings stopped). */
void vhost_user_backend_chan_unmap_notifiers(VhostUserBackendChan *chan,
                                             unsigned first, unsigned n);

/* Counters and state for tests and the monitor. */
unsigned vhost_user_backend_chan_mapped_notifiers(const VhostUserBackendChan *chan);
/* The error that closed the channel, or NULL. */
const GError *vhost_user_backend_chan_error(const VhostUserBackendChan *chan);
/* Our end of the socketpair (-1 once closed), for poll() by tests. */
int vhost_user_backend_chan_fd(const VhostUserBackendChan *chan);

/*
 * The vhost_devs over u, so that a ring number from the back-end finds its
 * eventfds and the number of rings is known. Done by user_ops' init and
 * cleanup.
 */
struct vhost_dev;
void vhost_user_register_dev(VhostUserState *u, struct vhost_dev *dev);
void vhost_user_unregister_dev(VhostUserState *u, struct vhost_dev *dev);
/* True when dev holds the highest rings of the device (it starts last). */
bool vhost_user_is_last_dev(VhostUserState *u, const struct vhost_dev *dev);

/* ---- Front-end requests that belong to these features --------------- */

/* IOTLB_MSG update / invalidation (IOMMU_PLATFORM devices). */
bool vhost_user_iotlb_update(VhostUserState *u, uint64_t iova, uint64_t size,
                             uint64_t uaddr, uint8_t perm, GError **errp);
bool vhost_user_iotlb_invalidate(VhostUserState *u, uint64_t iova, uint64_t size,
                                 GError **errp);
/* VRING_KICK: the driver's kick of ring as a message (INBAND_NOTIFICATIONS). */
bool vhost_user_vring_kick(VhostUserState *u, unsigned ring, GError **errp);
/* SET_STATUS / GET_STATUS (STATUS). */
bool vhost_user_set_status(VhostUserState *u, uint8_t status, GError **errp);
bool vhost_user_get_status(VhostUserState *u, uint8_t *status, GError **errp);
/* GET_SHARED_OBJECT: *fd receives the back-end's fd for uuid (caller closes). */
bool vhost_user_get_shared_object(VhostUserState *u, const uint8_t uuid[16],
                                  int *fd, GError **errp);

#endif
