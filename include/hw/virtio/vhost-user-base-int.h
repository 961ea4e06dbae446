/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The inside of a device front-end (hw/virtio/vhost-user-base.h): the
 * state the base keeps, the class a specialisation fills in, and the
 * calls between them. Library-internal: used by vhost-user-base.c and the
 * net, blk and generic devices; never installed.
 */
#ifndef HW_VIRTIO_VHOST_USER_BASE_INT_H
#define HW_VIRTIO_VHOST_USER_BASE_INT_H

#include "hw/virtio/vhost-user-base.h"
#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-log.h"
#include "hw/virtio/virtio-int.h"

typedef enum VhostUserBasePostcopyPhase {
    VHOST_USER_BASE_PC_NONE,
    VHOST_USER_BASE_PC_ADVISED,         /* POSTCOPY_ADVISE sent */
    VHOST_USER_BASE_PC_LISTENING,       /* and POSTCOPY_LISTEN, until END */
} VhostUserBasePostcopyPhase;

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
     * packed=on: VIRTIO_F_RING_PACKED is offered when the back-end offers
     * it; once acked, every ring of the device is a packed ring.
     */
    bool packed;
    /*
     * in_order=on: VIRTIO_F_IN_ORDER is offered when the back-end offers
     * it (default off: a device may then batch used entries).
     */
    bool in_order;
    /*
     * reset_if_lost (blk): requests a disconnected back-end took and did
     * not complete, when nothing (inflight area, IN_ORDER) lets the next
     * one resume them exactly; counted at disconnect, cleared by a reset.
     */
    bool reset_if_lost;
    unsigned lost_requests;
    bool start_attempted;           /* rings were handed over on this connection */
    /*
     * Paused for migration: the rings stay stopped (bases kept) although
     * the driver's status says DRIVER_OK; a reconnect does not restart them.
     */
    bool paused;

    VhostUserBaseNotify notify;
    void *notify_opaque;

    /* Device state transfer limits (vhost-user-device-state.h defaults). */
    size_t state_max_size;
    unsigned state_timeout_ms;
    /*
     * Dirty logging (vhost_user_base_log_start .. _stop): the device's
     * own log, kept across reconnects (a new back-end gets it again),
     * replaced by a bigger one when guest RAM grows. log_err: logging
     * broke (a reconnected back-end that cannot log); the next sync
     * returns it.
     */
    struct VhostLog *log;
    GError *log_err;
    /*
     * Postcopy on the destination (vhost-user-base-postcopy.c): how far
     * the device got between ADVISE and END, so that a reconnected
     * back-end is brought there again; the notifier for its ufds.
     */
    VhostUserBasePostcopyPhase pc_phase;
    unsigned pc_readvised;
    /*
     * The back-end state a postcopy RUN loaded while no back-end was
     * there: handed to the next one that negotiates, kept until one took it.
     */
    GBytes *pc_pending_state;
    VhostUserBasePostcopyUfdFn pc_ufd_fn;
    void *pc_ufd_opaque;
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
    bool packed;                    /* QEMU's packed=on */
    bool in_order;                  /* QEMU's in_order=on */
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
/*
 * For specialisations: reports err through the notify callback and drops
 * the connection (a reconnect, when configured, brings the device back).
 * For errors found where nobody can be returned an error.
 */
void vhost_user_base_report_error(VhostUserBase *vub, GError *err);

/*
 * Postcopy across a reconnect (vhost-user-base-postcopy.c): the old
 * back-end's ufd is announced gone before the connection's state is reset;
 * a new connection, once negotiated, is advised (and listens) again.
 */
void vhost_user_base_postcopy_disconnected(VhostUserBase *vub);
bool vhost_user_base_postcopy_reconnected(VhostUserBase *vub, GError **errp);
bool vhost_user_base_postcopy_take_state(VhostUserBase *vub, GError **errp);

/* All rings of the device. */
unsigned vhost_user_base_total_rings(const VhostUserBase *vub);

/* Starts the rings from their saved bases (vub_start). */
bool vhost_user_base_start_rings(VhostUserBase *vub, GError **errp);

/* For tests: tighter device state limits than the defaults. */
void vhost_user_base_set_state_limits(VhostUserBase *vub, size_t max_size,
                                      unsigned timeout_ms);

#endif
