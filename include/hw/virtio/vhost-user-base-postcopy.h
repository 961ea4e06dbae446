/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy at the device level: the protocol step of
 * hw/virtio/vhost-user-postcopy.c on the device's connection. A VMM's
 * postcopy (migration/postcopy-ram.h: fault service, page placement)
 * drives these on the destination: ADVISE once the back-end negotiated,
 * LISTEN before the device starts (its memory table then comes back with
 * the back-end's own addresses), END once every page has arrived.
 *
 * A back-end that goes away between ADVISE and END (crash, kill -9) and
 * comes back (chardev reconnect) is brought to the same point by the
 * device's reconnect path itself: it must offer PAGEFAULT again (else the
 * device fails with an error naming it), gets POSTCOPY_ADVISE (a new
 * userfaultfd) and, once listening, POSTCOPY_LISTEN before its memory
 * table and rings, so its faults on pages not here yet are served. Whoever
 * polls the back-ends' userfaultfds learns of each one that goes and
 * comes through the ufd notifier.
 */
#ifndef HW_VIRTIO_VHOST_USER_BASE_POSTCOPY_H
#define HW_VIRTIO_VHOST_USER_BASE_POSTCOPY_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-base.h"
#include "util/vhost-user-api.h"

/*
 * Whether the device can take part in postcopy: its back-end is connected
 * and negotiated protocol feature PAGEFAULT. False with errp naming the
 * device and what is missing (a migration blocker, asked on both sides).
 */
VHOST_USER_API
bool vhost_user_base_postcopy_check(VhostUserBase *vub, GError **errp);
/* POSTCOPY_ADVISE: the back-end's userfaultfd, checked and kept. */
VHOST_USER_API
bool vhost_user_base_postcopy_advise(VhostUserBase *vub, GError **errp);
/* POSTCOPY_LISTEN: memory table updates now return the back-end's bases. */
VHOST_USER_API
bool vhost_user_base_postcopy_listen(VhostUserBase *vub, GError **errp);
/*
 * POSTCOPY_END: status checked; listening stops; the ufd is closed. A
 * device without a back-end right now has nothing to end (the next one
 * comes up the normal way).
 */
VHOST_USER_API
bool vhost_user_base_postcopy_end(VhostUserBase *vub, GError **errp);
/* The back-end's userfaultfd (owned by the device), or -1. */
VHOST_USER_API
int vhost_user_base_postcopy_ufd(VhostUserBase *vub);
/*
 * The notifier for the back-end's userfaultfds (VhostUserBasePostcopyUfdFn,
 * vhost-user-base.h). Any thread; fn NULL removes it. When it returns, a call to the previous
 * notifier no longer runs.
 */
VHOST_USER_API
void vhost_user_base_postcopy_set_ufd_notify(VhostUserBase *vub,
                                             VhostUserBasePostcopyUfdFn fn, void *opaque);
/* How many reconnected back-ends were advised again (this device's life). */
VHOST_USER_API
unsigned vhost_user_base_postcopy_readvised(VhostUserBase *vub);
/* A back-end fault address to a guest physical address and region index. */
VHOST_USER_API
bool vhost_user_base_postcopy_translate(VhostUserBase *vub, uint64_t backend_addr,
                                        uint64_t *gpa, unsigned *region);

#endif
