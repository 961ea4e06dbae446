/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Back-end device state transfer (protocol feature DEVICE_STATE): the
 * state a back-end keeps beyond the rings (counters, a write cache mode,
 * a file system's open files) goes through a pipe, framed by
 * SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE:
 *
 *   save: SET_DEVICE_STATE_FD {SAVE, STOPPED} + the pipe's write end;
 *         read until EOF; CHECK_DEVICE_STATE must answer 0.
 *   load: SET_DEVICE_STATE_FD {LOAD, STOPPED} + the pipe's read end;
 *         write it all, close; CHECK_DEVICE_STATE must answer 0.
 *
 * The back-end may answer SET_DEVICE_STATE_FD with an fd of its own,
 * which is then used instead of our pipe. Only with the device stopped
 * (every ring's GET_VRING_BASE done): the spec's only phase.
 *
 * Library-internal (device front-ends use it through
 * vhost_user_base_save_state / _load_state).
 */
#ifndef HW_VIRTIO_VHOST_USER_DEVICE_STATE_H
#define HW_VIRTIO_VHOST_USER_DEVICE_STATE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#include "hw/virtio/vhost.h"

/* Defaults of the limits below (a state this large is a confused back-end). */
#define VHOST_DEVICE_STATE_MAX_SIZE     (64u * 1024 * 1024)
#define VHOST_DEVICE_STATE_TIMEOUT_MS   30000u

/* DEVICE_STATE negotiated on hdev's connection (and the transport has the ops). */
bool vhost_dev_has_device_state(const struct vhost_dev *hdev);

/*
 * Saves the back-end's state into out (appended). Fails, naming the
 * device, when the state exceeds max_size bytes, when no EOF comes within
 * timeout_ms of the request, or when CHECK_DEVICE_STATE is not 0. Blocks
 * the calling thread for at most about timeout_ms (plus the connection's
 * own request timeouts).
 */
bool vhost_dev_save_device_state(struct vhost_dev *hdev, GByteArray *out, size_t max_size,
                                 unsigned timeout_ms, GError **errp);
/* Loads len bytes of state into the back-end; the same rules. */
bool vhost_dev_load_device_state(struct vhost_dev *hdev, const void *data, size_t len,
                                 unsigned timeout_ms, GError **errp);

#endif
