/* SPDX-License-Identifier: BSD-3-Clause */
/* The device status requests (protocol feature STATUS). */
#ifndef HW_VIRTIO_VHOST_USER_STATUS_H
#define HW_VIRTIO_VHOST_USER_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-conn.h"

/* SET_STATUS (synchronous: the device is in the new state on return). */
bool vhost_user_set_status(VhostUserState *u, uint8_t status, GError **errp);
/* GET_STATUS; a status wider than 8 bits drops the connection. */
bool vhost_user_get_status(VhostUserState *u, uint8_t *status, GError **errp);

#endif
