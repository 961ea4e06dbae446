/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy with a vhost-user back-end (PAGEFAULT), the protocol step:
 * POSTCOPY_ADVISE (the back-end's userfaultfd), POSTCOPY_LISTEN, the
 * memory table replies while listening (the back-end's own addresses per
 * region, kept to translate its faults to guest addresses) and
 * POSTCOPY_END. The fault service itself is built on top of this later.
 * Device-scope requests: sent from vq_index 0.
 */
#ifndef HW_VIRTIO_VHOST_USER_POSTCOPY_H
#define HW_VIRTIO_VHOST_USER_POSTCOPY_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-conn.h"

/*
 * POSTCOPY_ADVISE: keeps the back-end's userfaultfd (checked to be one).
 * Needs PAGEFAULT negotiated.
 */
bool vhost_user_postcopy_advise(VhostUserState *u, GError **errp);
/* POSTCOPY_LISTEN: from now on memory table requests get the listening reply. */
bool vhost_user_postcopy_listen(VhostUserState *u, GError **errp);
/* POSTCOPY_END: the back-end's u64 status; stops listening, closes its ufd. */
bool vhost_user_postcopy_end(VhostUserState *u, GError **errp);
/* The back-end's userfaultfd (owned here), or -1. */
int vhost_user_postcopy_ufd(VhostUserState *u);
/* Listening since POSTCOPY_LISTEN (and not ended or reconnected). */
bool vhost_user_postcopy_listening(VhostUserState *u);
/*
 * A back-end address (as its faults report them) to the guest physical
 * address and the index of the region it lies in; false when no region
 * the back-end reported holds it.
 */
bool vhost_user_postcopy_translate(VhostUserState *u, uint64_t backend_addr,
                                   uint64_t *gpa, unsigned *region);
/*
 * The VhostUserListeningReplyFn for SET_MEM_TABLE and ADD_MEM_REG (see
 * vhost_user_call_listening): checks the back-end's table against what
 * was sent and keeps its bases.
 */
bool vhost_user_postcopy_mem_reply(VhostUserState *u, const VhostUserMsg *msg,
                                   const VhostUserMsg *reply, void *opaque, GError **errp);

/*
 * The back-end's base address of a region (size bytes at mmap_offset of
 * the file behind our mapping at our_uaddr), from the /proc maps of the
 * process at the other end of sock_fd. False when it cannot be told
 * (same process, no access, not mapped exactly once).
 */
bool vhost_user_postcopy_peer_base(int sock_fd, uint64_t our_uaddr, uint64_t mmap_offset,
                                   uint64_t size, uint64_t *base);

#endif
