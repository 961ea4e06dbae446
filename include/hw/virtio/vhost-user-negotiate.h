/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Negotiation of a fresh vhost-user connection, above the wire path
 * (vhost-user-conn.h) and the memory table (vhost-user-mem.h).
 */
#ifndef HW_VIRTIO_VHOST_USER_NEGOTIATE_H
#define HW_VIRTIO_VHOST_USER_NEGOTIATE_H

#include <glib.h>
#include <stdbool.h>

#include "hw/virtio/vhost-user-conn.h"

/*
 * Negotiates on a fresh connection, once: GET_FEATURES, then when the
 * back-end offers VHOST_USER_F_PROTOCOL_FEATURES, GET_PROTOCOL_FEATURES,
 * SET_PROTOCOL_FEATURES (ours & theirs), GET_QUEUE_NUM (MQ), the memory
 * slots (GET_MAX_MEM_SLOTS); then SET_OWNER.
 */
bool vhost_user_negotiate(VhostUserState *u, GError **errp);

#endif
