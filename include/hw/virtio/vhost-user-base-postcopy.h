/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy at the device level (internal, not exported): the protocol
 * step of hw/virtio/vhost-user-postcopy.c on the device's connection.
 * The VMM's postcopy (fault service, page placement) builds on these.
 */
#ifndef HW_VIRTIO_VHOST_USER_BASE_POSTCOPY_H
#define HW_VIRTIO_VHOST_USER_BASE_POSTCOPY_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct VhostUserBase VhostUserBase;

/* POSTCOPY_ADVISE: the back-end's userfaultfd, checked and kept. */
bool vhost_user_base_postcopy_advise(VhostUserBase *vub, GError **errp);
/* POSTCOPY_LISTEN: memory table updates now return the back-end's bases. */
bool vhost_user_base_postcopy_listen(VhostUserBase *vub, GError **errp);
/* POSTCOPY_END: status checked; listening stops; the ufd is closed. */
bool vhost_user_base_postcopy_end(VhostUserBase *vub, GError **errp);
/* The back-end's userfaultfd (owned by the device), or -1. */
int vhost_user_base_postcopy_ufd(VhostUserBase *vub);
/* A back-end fault address to a guest physical address and region index. */
bool vhost_user_base_postcopy_translate(VhostUserBase *vub, uint64_t backend_addr,
                                        uint64_t *gpa, unsigned *region);

#endif
