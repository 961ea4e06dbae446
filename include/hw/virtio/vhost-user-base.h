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
 * Device specialisations (net, blk, generic) only fill in a
 * VhostUserBaseClass: the features they offer, their config space and
 * their connect-time checks.
 *
 * The library reports nothing itself: errors from event handlers go to the
 * owner's notify callback, errors from calls go back through GError.
 */
#ifndef HW_VIRTIO_VHOST_USER_BASE_H
#define HW_VIRTIO_VHOST_USER_BASE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user.h"
#include "hw/virtio/virtio.h"
#include "system/memory.h"

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

typedef struct VhostUserBaseClass {
    const char *name;               /* "vhost-user-net" */
    /*
     * After every vhost_dev connected and VERSION_1 was found: device
     * checks (queue counts, protocol features) and config fetch.
     */
    bool (*connected)(VhostUserBase *vub, GError **errp);
    /* The connection went away (link down). */
    void (*disconnected)(VhostUserBase *vub);
    /* Device features offered to the driver, from what the back-end offers. */
    uint64_t (*host_features)(VhostUserBase *vub, uint64_t backend_features);
    /*
     * Of what the driver accepted, what is sent to the back-end (features
     * the VMM emulates, like net's MAC, stay out). NULL: all of it.
     */
    uint64_t (*backend_acked)(VhostUserBase *vub, uint64_t guest_features,
                              uint64_t backend_features);
    /* Right before the rings start (net's MTU). */
    bool (*pre_start)(VhostUserBase *vub, GError **errp);
    void (*get_config)(VhostUserBase *vub, uint8_t *config);
    void (*set_config)(VhostUserBase *vub, const uint8_t *config,
                       uint32_t offset, uint32_t len);
    /* Frees what the specialisation added; the base frees the rest. */
    void (*finalize)(VhostUserBase *vub);
} VhostUserBaseClass;

/*
 * Embedded first in every specialisation, so a VhostUserBase * is also the
 * pointer to the whole object.
 */
struct VhostUserBase {
    VirtIODevice vdev;
    const VhostUserBaseClass *klass;
    CharSocket *chr;                /* the owner's; outlives the device */
    VhostUserState *user;
    GuestMemory *mem;

    unsigned ndevs;
    unsigned rings_per_dev;
    struct vhost_dev *devs;         /* dev i drives rings i*rings_per_dev.. */

    bool connected;                 /* the chardev is up (OPENED seen) */
    bool ready;                     /* negotiated and checked on this connection */
    bool started;                   /* every ring runs */
    /*
     * iommu_platform=on: VIRTIO_F_IOMMU_PLATFORM is offered (the back-end
     * must offer it too) and, once acked, the back-end sees IOVAs.
     */
    bool iommu_platform;
    /*
     * reset_if_lost (blk): requests a disconnected back-end took and did
     * not complete, when nothing (inflight area, IN_ORDER) lets the next
     * one resume them exactly; counted at disconnect, cleared by a reset.
     */
    bool reset_if_lost;
    unsigned lost_requests;
    bool start_attempted;           /* rings were handed over on this connection */

    VhostUserBaseNotify notify;
    void *notify_opaque;
};

typedef struct VhostUserBaseParams {
    const char *id;                 /* device id, "blk0" */
    uint16_t virtio_id;
    CharSocket *chr;
    GuestMemory *mem;
    unsigned ndevs;                 /* vhost_devs over the connection */
    unsigned rings_per_dev;
    unsigned queue_size;            /* max ring size offered to the driver */
    uint32_t config_len;
    /* Protocol features to leave out (e.g. CONFIG for emulated config). */
    uint64_t protocol_features_clear;
    bool iommu_platform;            /* QEMU's iommu_platform=on */
    /* Inflight tracking when the back-end offers it (one vhost_dev only). */
    bool inflight;
    /*
     * Requests must never be lost nor done twice unnoticed (blk): after a
     * disconnect that left some in an unknown state, ask the driver for a
     * reset instead of resuming (VHOST_USER_BASE_NEEDS_RESET). Without
     * it (net) rings resume from the used index.
     */
    bool reset_if_lost;
} VhostUserBaseParams;

/*
 * Sets up vub (embedded in a zeroed specialisation): the model, the
 * transport state, every vhost_dev (eventfds, no I/O), and takes over the
 * chardev's event handler. The chardev is opened by the owner afterwards.
 */
bool vhost_user_base_realize(VhostUserBase *vub, const VhostUserBaseClass *klass,
                             const VhostUserBaseParams *p, GError **errp);
/* Stops (if running), releases the chardev handler, frees vub itself. */
void vhost_user_base_free(VhostUserBase *vub);

void vhost_user_base_set_notify(VhostUserBase *vub, VhostUserBaseNotify fn,
                                void *opaque);

/*
 * For specialisations: reports err through the notify callback and drops
 * the connection (a reconnect, when configured, brings the device back).
 * For errors found where nobody can be returned an error.
 */
void vhost_user_base_report_error(VhostUserBase *vub, GError *err);

/* Stops the rings as a reset by the driver would (at shutdown). */
void vhost_user_base_stop(VhostUserBase *vub);

static inline VirtIODevice *vhost_user_base_vdev(VhostUserBase *vub)
{
    return &vub->vdev;
}

static inline const char *vhost_user_base_id(const VhostUserBase *vub)
{
    return vub->vdev.id;
}

/* All rings of the device. */
unsigned vhost_user_base_total_rings(const VhostUserBase *vub);
/* Rings running now. */
unsigned vhost_user_base_started_rings(const VhostUserBase *vub);
/* The features the back-end offers on this connection (0 when not ready). */
uint64_t vhost_user_base_backend_features(const VhostUserBase *vub);

#endif
