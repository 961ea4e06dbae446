/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What every vhost-user device front-end shares: a virtio device model
 * whose rings run in a back-end, one chardev, one VhostUserState, and one
 * or more vhost_devs over it. The base owns the plumbing:
 *
 *   OPENED  -> forget the old negotiation, connect every vhost_dev, check
 *              VERSION_1, let the device check the rest (queues, config),
 *              then either restart the rings (the driver had the device
 *              running: reconnect) or tell the owner the device is ready
 *              to be driven.
 *   CLOSED  -> rings stopped without the back-end (state from guest RAM),
 *              negotiation forgotten, owner told.
 *   DRIVER_OK / reset from the driver -> start / stop the rings.
 *
 * Device specialisations (net, blk, generic) only fill in a class (the
 * features they offer, their config space and their connect-time checks:
 * hw/virtio/vhost-user-base-int.h).
 *
 * The library reports nothing itself: errors from event handlers go to the
 * owner's notify callback, errors from calls go back through GError.
 */
#ifndef HW_VIRTIO_VHOST_USER_BASE_H
#define HW_VIRTIO_VHOST_USER_BASE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost-user-backend-req.h"
#include "hw/virtio/virtio.h"
#include "system/memory.h"
#include "util/vhost-user-api.h"

/*
 * A device front-end, made by vhost_user_{net,blk,device}_new(). Opaque:
 * its vhost_devs and connection state are the library's (see
 * hw/virtio/vhost-user-base-int.h).
 */
typedef struct VhostUserBase VhostUserBase;

typedef enum VhostUserBaseEvent {
    VHOST_USER_BASE_CONNECTED,      /* the chardev is up; negotiation follows */
    VHOST_USER_BASE_READY,          /* negotiated: the driver may bring it up */
    VHOST_USER_BASE_STARTED,        /* every ring runs; nrings = all of them */
    VHOST_USER_BASE_STOPPED,        /* rings stopped cleanly; nrings */
    VHOST_USER_BASE_DISCONNECTED,   /* the connection is gone */
    VHOST_USER_BASE_ERROR,          /* err says what; the connection is dropped */
    /*
     * Reconnected, but the old back-end had taken nrings requests (here a
     * request count, not rings) that it never completed, and nothing
     * tells whether it did them. The rings stay stopped with NEEDS_RESET
     * set: the driver must reset the device and submit those requests
     * again (see vub_count_lost in vhost-user-base.c).
     */
    VHOST_USER_BASE_NEEDS_RESET,
} VhostUserBaseEvent;

/*
 * err is only set for VHOST_USER_BASE_ERROR and only valid during the
 * call. The callback may not free the device.
 */
typedef void (*VhostUserBaseNotify)(VhostUserBase *vub, VhostUserBaseEvent event,
                                    unsigned nrings, const GError *err,
                                    void *opaque);

/*
 * Postcopy on the destination (vhost-user-base-postcopy.h): on the loop,
 * between ADVISE and END. added: the device is about to send
 * POSTCOPY_LISTEN (the first time, or to a reconnected back-end after its
 * new ADVISE), before any memory table or ring: poll ufd from now on; false
 * (errp set) fails that step. !added: the back-end went away; ufd is
 * closed right after the call returns: stop polling it (errp is NULL).
 */
typedef bool (*VhostUserBasePostcopyUfdFn)(VhostUserBase *vub, int ufd, bool added,
                                           void *opaque, GError **errp);

/* Stops (if running), releases the chardev handler, frees vub itself. */
VHOST_USER_API
void vhost_user_base_free(VhostUserBase *vub);

VHOST_USER_API
void vhost_user_base_set_notify(VhostUserBase *vub, VhostUserBaseNotify fn,
                                void *opaque);

/* Stops the rings as a reset by the driver would (at shutdown). */
VHOST_USER_API
void vhost_user_base_stop(VhostUserBase *vub);

/*
 * Migration: pause stops every ring (GET_VRING_BASE; each base is kept)
 * without a driver reset; the driver's status stays DRIVER_OK and a
 * reconnect meanwhile does not restart the rings. Resume starts them again
 * from the kept bases (when the driver had the device running). The
 * driver should have no request in flight across a pause: a back-end that
 * completes one while stopping is fine, but nothing is resubmitted.
 * Like the driver's status writes, these run on the device's loop thread
 * (or while that loop is not dispatching): a migration thread asks the
 * loop to pause and resume.
 */
VHOST_USER_API
bool vhost_user_base_pause(VhostUserBase *vub, GError **errp);
VHOST_USER_API
bool vhost_user_base_resume(VhostUserBase *vub, GError **errp);
VHOST_USER_API
bool vhost_user_base_is_paused(const VhostUserBase *vub);

/*
 * The device's migratable state as one blob: the features the driver
 * acked, its status, the config space, every ring's size, addresses
 * (GPAs), enable bit and base, and the back-end's own state when
 * DEVICE_STATE is negotiated. Save on the source while paused.
 *
 * Load on the destination into a device the driver has not touched
 * (status 0), with its back-end connected and negotiated: the device
 * model takes the driver's state (features, queues, DRIVER_OK) as if the
 * driver had set it up, the back-end gets its state, and the device stays
 * paused until vhost_user_base_resume() starts the rings from the saved
 * bases. The blob comes from the migration stream and is untrusted: every
 * field is checked against this device (ring count, sizes, config length,
 * features on offer) before anything changes.
 */
VHOST_USER_API
bool vhost_user_base_save(VhostUserBase *vub, GByteArray *out, GError **errp);
VHOST_USER_API
bool vhost_user_base_load(VhostUserBase *vub, const void *data, size_t len,
                          GError **errp);

/* The virtio device model the driver drives; lives as long as vub. */
VHOST_USER_API
VirtIODevice *vhost_user_base_vdev(VhostUserBase *vub);
/* The device id ("blk0") and virtio device type (VIRTIO_ID_*). */
VHOST_USER_API
const char *vhost_user_base_id(const VhostUserBase *vub);
VHOST_USER_API
uint16_t vhost_user_base_virtio_id(const VhostUserBase *vub);

/*
 * How many shared objects (SHARED_OBJECT_ADD) the device's back-end may
 * register at once, 1..VHOST_USER_SHARED_MAX (default 32); further adds
 * are refused with status 1. Call before the device's chardev connects.
 */
VHOST_USER_API
void vhost_user_base_set_shared_objects_max(VhostUserBase *vub, unsigned max);

/*
 * Installs the VMM's answers to back-end requests (BACKEND_REQ); they stay
 * across reconnects. On CONFIG_CHANGE_MSG the whole config space is re-read
 * and passed to config_changed. The channel runs on the chardev's loop.
 * ops NULL removes them.
 */
VHOST_USER_API
void vhost_user_base_set_backend_req_ops(VhostUserBase *vub, const VhostUserBackendReqOps *ops,
                                     void *opaque);

/*
 * Drops the back-end's IOTLB translations of [iova, iova + size) (IOTLB_MSG
 * invalidate), before the VMM takes that memory away. Nothing to do (true)
 * unless rings run with VIRTIO_F_IOMMU_PLATFORM acked. A back-end that
 * fails it is dropped like for any failed request.
 */
VHOST_USER_API
bool vhost_user_base_iotlb_invalidate(VhostUserBase *vub, uint64_t iova, uint64_t size,
                                      GError **errp);

/*
 * Guest RAM hotplug: every back-end maps all guest RAM, so a change goes
 * through every device over mem at once. Adding places [block_offset,
 * block_offset + size) of rb at gpa. First checked against each connected
 * back-end's region limit (a CONFIG error naming the device and the limit;
 * nothing changes), then made in mem, then sent to each running back-end.
 * When an update fails the change stays made, the error (naming the
 * device) is returned, and a back-end that misbehaved is dropped: it gets
 * the whole table when it reconnects.
 */
VHOST_USER_API
bool vhost_user_base_add_ram(VhostUserBase *const *devs, unsigned ndevs, GuestMemory *mem,
                             uint64_t gpa, RamBlock *rb, uint64_t block_offset,
                             uint64_t size, GError **errp);
/* Removes the region at gpa from mem and from every back-end's table. */
VHOST_USER_API
bool vhost_user_base_remove_ram(VhostUserBase *const *devs, unsigned ndevs,
                                GuestMemory *mem, uint64_t gpa, GError **errp);

/*
 * Back-end device state (protocol feature DEVICE_STATE), for migration:
 * what a back-end keeps beyond the rings and guest RAM. Only with a
 * back-end connected and the rings stopped (the source after the VM
 * stopped, the destination before the driver starts the device); the
 * caller keeps them stopped meanwhile. Both block the calling thread (meant
 * to be the migration thread) until the transfer is done, for at most
 * 30 s; a state above 64 MiB, a back-end that never ends its state, or
 * one whose CHECK_DEVICE_STATE fails gives an error naming the device.
 */
VHOST_USER_API
bool vhost_user_base_has_device_state(const VhostUserBase *vub);
/* Appends the back-end's state to out. */
VHOST_USER_API
bool vhost_user_base_save_state(VhostUserBase *vub, GByteArray *out, GError **errp);
/* Hands len bytes of state (from a save) to the back-end. */
VHOST_USER_API
bool vhost_user_base_load_state(VhostUserBase *vub, const void *data, size_t len,
                                GError **errp);

/*
 * ---- Dirty logging, for live migration --------------------------------
 *
 * While logging, the back-end marks every guest page it writes (buffers
 * and used rings) in a log shared with the device (one memfd per device,
 * protocol feature LOG_SHMFD); a sync collects the marks into the
 * caller's dirty bitmap. Main loop thread only, like the rest.
 *
 * A dirty bitmap is a plain array of uint64_t: bit (gpa >> 12) % 64 of
 * word (gpa >> 12) / 64 stands for the 4 KiB page at gpa. It must cover
 * guest memory (guest_memory_end() >> 12 pages, rounded up).
 */
#define VHOST_USER_DIRTY_PAGE_SHIFT 12

/*
 * Whether the device can take part in a live migration: true, or false
 * with errp saying why, naming the device and what is missing (no
 * back-end connected; protocol feature LOG_SHMFD; VHOST_F_LOG_ALL).
 * Ask before migration starts: a blocker, not a failure half-way.
 */
VHOST_USER_API
bool vhost_user_base_check_migratable(VhostUserBase *vub, GError **errp);

/*
 * Starts logging: a log sized for the highest guest address of every RAM
 * region goes to the back-end (SET_LOG_BASE), then VHOST_F_LOG_ALL and
 * each running ring's VHOST_VRING_F_LOG (with the used ring's GPA) are
 * switched on; rings started later, and a back-end that reconnects, get
 * all of it at their start. Refused (nothing changes) when the device
 * cannot migrate (see above) or already logs. A later
 * vhost_user_base_add_ram grows the log first (a new one handed over,
 * the old freed once the back-end answered, its marks carried over).
 */
VHOST_USER_API
bool vhost_user_base_log_start(VhostUserBase *vub, GError **errp);

/*
 * Collects and clears every page marked since the last sync (one pass
 * over the device's log, whatever its number of rings) into bitmap
 * (npages bits, ORed in); *dirty (may be NULL) gets how many marks were
 * collected. Fails when not logging, when logging broke (a back-end that
 * reconnected without LOG_SHMFD), or when a marked page lies beyond
 * npages (that mark stays in the log). For the last writes of a stopped
 * device, sync after its rings stopped.
 */
VHOST_USER_API
bool vhost_user_base_log_sync(VhostUserBase *vub, uint64_t *bitmap, uint64_t npages,
                              uint64_t *dirty, GError **errp);

/*
 * Stops logging: VHOST_F_LOG_ALL and the rings' log flags off (when the
 * device runs), the log freed. Unsynced marks are lost: sync first.
 */
VHOST_USER_API
void vhost_user_base_log_stop(VhostUserBase *vub);

#endif
