/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared object registry (SHARED_OBJECT): a process-wide map from a
 * 16-byte UUID to the fd of an object (a dma-buf, typically) that one
 * back-end exported with SHARED_OBJECT_ADD, so that any device of the VMM
 * can hand it to its own back-end on SHARED_OBJECT_LOOKUP.
 *
 * Each entry records its owner (the VhostUserState of the connection that
 * added it): only the owner may remove it, and every entry of an owner is
 * dropped when its connection goes away, so a crashed back-end's objects
 * do not outlive it. Thread-safe.
 */
#ifndef HW_VIRTIO_VHOST_USER_SHARED_H
#define HW_VIRTIO_VHOST_USER_SHARED_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-conn.h"

#define VHOST_USER_UUID_LEN 16

/* True for the all-zero UUID, which never names an object. */
bool vhost_user_uuid_is_nil(const uint8_t uuid[VHOST_USER_UUID_LEN]);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into buf (37 bytes). */
void vhost_user_uuid_format(const uint8_t uuid[VHOST_USER_UUID_LEN], char buf[37]);

/*
 * Bounds, so that no back-end can exhaust our fds (each object may hold
 * one): at most VHOST_USER_SHARED_MAX objects in all, and at most a
 * per-connection limit for one owner (VhostUserState.shared_objects_max,
 * VHOST_USER_SHARED_OWNER_DEFAULT unless the VMM sets it), so that one
 * back-end cannot fill the registry and starve the others either.
 */
#define VHOST_USER_SHARED_MAX 1024
#define VHOST_USER_SHARED_OWNER_DEFAULT 32

/*
 * Registers uuid for owner, with fd (-1: the owner exports it and keeps
 * the fd), if owner holds fewer than owner_max objects. On success the
 * registry owns fd; on failure (nil or already registered UUID, owner at
 * its limit, registry full) the caller still owns it.
 */
bool vhost_user_shared_add(const uint8_t uuid[VHOST_USER_UUID_LEN], int fd,
                           const void *owner, unsigned owner_max, GError **errp);
/* Removes uuid; fails when it is unknown or registered by another owner. */
bool vhost_user_shared_remove(const uint8_t uuid[VHOST_USER_UUID_LEN],
                              const void *owner, GError **errp);
/* A dup of the object's fd (the caller closes it), or -1 when unknown. */
int vhost_user_shared_lookup(const uint8_t uuid[VHOST_USER_UUID_LEN]);
/* Drops every object owner registered (its connection is gone). */
void vhost_user_shared_remove_owner(const void *owner);
/* Number of registered objects, for tests and the monitor. */
unsigned vhost_user_shared_count(void);
/* Number of objects owner registered. */
unsigned vhost_user_shared_count_owner(const void *owner);

/*
 * GET_SHARED_OBJECT (front-end request): *fd receives the back-end's fd
 * for uuid (caller closes).
 */
bool vhost_user_get_shared_object(VhostUserState *u, const uint8_t uuid[16],
                                  int *fd, GError **errp);

#endif
