/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The memory table of a connection, one owner of it: SET_MEM_TABLE (the
 * whole table, 8 regions at most), or memory slots.
 *
 * Memory slots (protocol feature CONFIGURE_MEM_SLOTS): instead of sending
 * the whole table with SET_MEM_TABLE (8 regions at most), the front-end
 * keeps a shadow of what the back-end has mapped on this connection and
 * sends only the difference: REM_MEM_REG for each region that went away
 * or changed (newest first), then ADD_MEM_REG for each new one, every
 * message acked (REPLY_ACK). Only used when REPLY_ACK is negotiated too:
 * without acks a failed ADD would go unnoticed and the shadow would lie.
 *
 * The shadow belongs to the connection: a new connection starts empty, so
 * every region is added again. What survives a reconnect is the number of
 * regions in use, which a new back-end's slot count is checked against.
 */
#ifndef HW_VIRTIO_VHOST_USER_MEM_H
#define HW_VIRTIO_VHOST_USER_MEM_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hw/virtio/vhost-user-conn.h"
#include "system/memory.h"

/* Largest GET_MAX_MEM_SLOTS we believe; QEMU's back-ends say 509 or 32. */
#define VHOST_USER_MAX_MEM_SLOTS_LIMIT 4096

/*
 * One region as the back-end knows it. The file is identified by device
 * and inode, not by fd number: a freed block's fd number (and even its
 * address) may be reused by a new block, which must not look unchanged.
 */
typedef struct VhostUserMemSlot {
    uint64_t gpa;
    uint64_t size;
    uint64_t uaddr;             /* front-end virtual address */
    uint64_t mmap_offset;       /* within the fd */
    dev_t dev;
    ino_t ino;
    int fd;                     /* borrowed from the RamBlock; never closed here */
} VhostUserMemSlot;

/* The shadow table of one connection. */
typedef struct VhostUserMemShadow VhostUserMemShadow;
/* u->mem: shadow, slot count, regions in use (vhost-user-mem.c only). */
typedef struct VhostUserMemState VhostUserMemState;

VhostUserMemShadow *vhost_user_mem_shadow_new(void);
void vhost_user_mem_shadow_free(VhostUserMemShadow *s);

/*
 * Describes guest region r as a slot. Fails (CONFIG, naming dev_name and
 * the block) for a private mapping, which a back-end could never see the
 * guest's writes to, or when the fd cannot be fstat'ed.
 */
bool vhost_user_mem_slot_from_region(const char *dev_name, const MemoryRegionMap *r,
                                     VhostUserMemSlot *slot, GError **errp);

/* Same GPA, size, address, offset and file. */
bool vhost_user_mem_slot_equal(const VhostUserMemSlot *a, const VhostUserMemSlot *b);

/*
 * The difference between the table the back-end has (old, in the order it
 * was added) and the one wanted (new, sorted by GPA, disjoint): rem gets
 * the indexes into old to remove, newest first; add the indexes into new
 * to add, in GPA order. A region that changed in any field is in both.
 * Arrays of guint, appended to.
 */
void vhost_user_mem_diff(const VhostUserMemSlot *old, unsigned nold,
                         const VhostUserMemSlot *new_slots, unsigned nnew,
                         GArray *rem, GArray *add);

/*
 * True when the memory table goes by ADD/REM_MEM_REG on this connection
 * (CONFIGURE_MEM_SLOTS and REPLY_ACK negotiated).
 */
bool vhost_user_mem_slots_enabled(const VhostUserState *u);

/* Regions the back-end takes: its GET_MAX_MEM_SLOTS, or 8 for SET_MEM_TABLE. */
unsigned vhost_user_mem_max_regions(const VhostUserState *u);

/*
 * Called by vhost_user_negotiate on a new connection, after the protocol
 * features are set: forgets the old connection's shadow, and with
 * CONFIGURE_MEM_SLOTS asks GET_MAX_MEM_SLOTS. A count of 0 or above
 * VHOST_USER_MAX_MEM_SLOTS_LIMIT is a protocol error (dropped); fewer
 * slots than the regions in use before the reconnect is a
 * FEATURE_MISMATCH naming both numbers.
 */
bool vhost_user_mem_negotiate(VhostUserState *u, GError **errp);

/*
 * Brings the back-end's table in line with mem by ADD/REM_MEM_REG (only
 * the difference; see above). dev_name names the requester in errors,
 * vq_index is its first ring (only ring 0's vhost_dev may send these).
 * More regions than the back-end's slots is a CONFIG error naming the
 * limit, found before anything is sent.
 */
bool vhost_user_mem_sync(VhostUserState *u, const char *dev_name, unsigned vq_index,
                         GuestMemory *mem, GError **errp);

/*
 * Sends mem to the back-end: with memory slots only the difference
 * (vhost_user_mem_sync), else the whole table with SET_MEM_TABLE (a
 * CONFIG error beyond 8 regions). Records the regions in use.
 */
bool vhost_user_mem_update(VhostUserState *u, const char *dev_name, unsigned vq_index,
                           GuestMemory *mem, GError **errp);

/* Regions in the last table sent (kept across reconnects). */
unsigned vhost_user_mem_regions_in_use(const VhostUserState *u);

/*
 * Before negotiating a new connection: the regions a new back-end's slot
 * count is checked against become the guest's RAM now.
 */
void vhost_user_mem_note_guest_ram(VhostUserState *u, GuestMemory *mem);

#endif
