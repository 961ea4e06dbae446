/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The back-end channel (BACKEND_REQ): a socketpair whose far end is handed
 * to the back-end with SET_BACKEND_REQ_FD, so the back-end can send its
 * own requests (IOTLB misses, config changes, host notifiers, in-band
 * call/err, shared objects). One per connection, owned by VhostUserState.
 *
 * It is serviced from two places, never concurrently:
 *  - the VMM's event loop (a watch on our end, on the loop given to
 *    vhost_user_set_backend_req_ops or else the chardev's) while no request
 *    runs;
 *  - the request path, which polls it next to the main socket while it
 *    waits for a reply (the channel registers its fd with
 *    vhost_user_add_wait_fd), because the back-end may need an answer
 *    from us before it can reply.
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

#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost-user-backend-req.h"
/* The IOTLB requests answer this channel's misses; VMMs use both. */
#include "hw/virtio/vhost-user-iotlb.h"

typedef struct VhostUserBackendChan VhostUserBackendChan;

/*
 * Installs the VMM's callbacks on u; they stay across reconnects.
 * config_len: bytes of config to re-read on CONFIG_CHANGE_MSG (0: none).
 * loop: where the channel and the rings' err eventfds are watched and
 * deferred work runs (NULL: the chardev's loop).
 */
void vhost_user_set_backend_req_ops(VhostUserState *u, const VhostUserBackendReqOps *ops,
                                void *opaque, uint32_t config_len,
                                VhostEventLoop *loop);

/*
 * Creates the socketpair, sends one end with SET_BACKEND_REQ_FD (acked
 * with REPLY_ACK) and starts watching the other. Called once per
 * connection after negotiation, when BACKEND_REQ was negotiated.
 */
bool vhost_user_backend_chan_setup(VhostUserState *u, GError **errp);

/* Unmaps the host notifiers of rings [first, first + n) (rings stopped). */
void vhost_user_backend_chan_unmap_notifiers(VhostUserBackendChan *chan,
                                             unsigned first, unsigned n);

/* Counters and state for tests and the monitor. */
unsigned vhost_user_backend_chan_mapped_notifiers(const VhostUserBackendChan *chan);
/* The error that closed the channel, or NULL. */
const GError *vhost_user_backend_chan_error(const VhostUserBackendChan *chan);
/* Our end of the socketpair (-1 once closed), for poll() by tests. */
int vhost_user_backend_chan_fd(const VhostUserBackendChan *chan);

#endif
