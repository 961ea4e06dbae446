/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device layer: one struct vhost_dev drives a set of consecutive rings
 * of one back-end device through VhostOps. A multiqueue device is several
 * vhost_devs over one connection (one per queue pair for net, like QEMU's
 * vhost-net); the one with vq_index 0 owns the whole-device requests
 * (features, memory table), so they are sent once.
 *
 * Threading: all calls from the VMM's main loop thread.
 */
#ifndef HW_VIRTIO_VHOST_H
#define HW_VIRTIO_VHOST_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-ops.h"
#include "hw/virtio/vhost-inflight.h"
#include "system/memory.h"

struct vhost_virtqueue {
    /* Set by the device front-end before vhost_dev_start(). */
    unsigned int num;           /* ring size, power of two */
    uint64_t desc_gpa;
    uint64_t avail_gpa;
    uint64_t used_gpa;

    /* eventfds created by vhost_dev_init(), owned by the vhost_dev. */
    int kick_fd;                /* the driver writes it; the back-end polls it */
    int call_fd;                /* the back-end writes it; the driver polls it */
    int err_fd;                 /* the back-end signals ring errors on it */

    /*
     * Where the back-end resumes: sent with SET_VRING_BASE at start, saved
     * from GET_VRING_BASE at stop. When the back-end is gone at stop time,
     * taken from the used ring's idx in guest RAM (every request before it
     * completed; nothing past it is skipped).
     */
    uint16_t last_avail_idx;
    /*
     * The same for a packed ring (VIRTIO_F_RING_PACKED acked), in the
     * 32-bit encoding of SET_VRING_BASE (hw/virtio/vhost-packed.h): avail
     * and used indices with their wrap counters. When the back-end is gone
     * at stop time, found by walking the used descriptors in guest RAM.
     */
    uint32_t packed_base;
    bool started;
};

/* A fresh ring's resume point (driver reset): index 0, wrap counters 1. */
void vhost_virtqueue_reset_base(struct vhost_virtqueue *vq);
/* The ring layout of hdev's rings: packed once VIRTIO_F_RING_PACKED is acked. */
bool vhost_dev_packed(const struct vhost_dev *hdev);

struct vhost_dev {
    char *name;                 /* "net0" or "net0.q1": every error names it */
    const VhostOps *vhost_ops;
    void *opaque;               /* transport state (VhostUserState *) */
    GuestMemory *mem;

    unsigned int vq_index;      /* first ring of this vhost_dev in the device */
    unsigned int nvqs;
    struct vhost_virtqueue *vqs;

    /*
     * What the back-end offered and negotiated on the current connection:
     * read-only snapshots of the transport's state (the one copy, e.g.
     * VhostUserState.backend_features), taken by vhost_dev_connect through
     * VhostOps get_features/get_negotiated and cleared by disconnect.
     */
    uint64_t features;          /* device features the back-end offers */
    uint64_t protocol_features; /* negotiated with the back-end */
    uint64_t max_queues;        /* GET_QUEUE_NUM, 1 without MQ */
    uint64_t acked_features;    /* what the driver accepted; sent at start */

    bool connected;
    bool started;

    /*
     * While started (vhost_dev of ring 0 only): the GuestMemory listener
     * that sends run-time RAM changes to the back-end, and the error of
     * the last such update that failed (see vhost_dev_add_ram).
     */
    unsigned mem_listener;
    GError *mem_err;

    /*
     * Inflight I/O tracking (INFLIGHT_SHMFD), when the device front-end
     * asks for it with use_inflight (a device of one vhost_dev, like
     * blk). The area lives as long as the vhost_dev, across reconnects:
     * see hw/virtio/vhost-inflight.h.
     */
    bool use_inflight;
    struct vhost_inflight inflight;
    /*
     * The back-end of the current (or the just lost) connection took the
     * area with SET_INFLIGHT_FD: it, or its successor, can finish what it
     * had in flight. Cleared by the next connection.
     */
    bool inflight_in_use;

    /*
     * Dirty logging is on (set by the device front-end, kept across
     * reconnects): every start sends VHOST_F_LOG_ALL and each ring's
     * VHOST_VRING_F_LOG with the used ring's GPA.
     */
    bool log_enabled;
};

/*
 * Allocates the rings' state and creates their eventfds; no I/O. The
 * eventfds live as long as the vhost_dev, across reconnects, so the driver
 * side keeps polling the same call fds. nvqs rings starting at vq_index.
 */
bool vhost_dev_init(struct vhost_dev *hdev, const char *name, void *opaque,
                    const VhostOps *ops, GuestMemory *mem,
                    unsigned int vq_index, unsigned int nvqs, GError **errp);
/*
 * The driver reset the device: the inflight area of the old ring life goes
 * (its requests were abandoned with the rings); the next start asks anew.
 */
void vhost_dev_reset_inflight(struct vhost_dev *hdev);
/*
 * On a (new) connection: lets the transport negotiate (once per connection
 * for all vhost_devs sharing it) and reads the back-end's features and
 * protocol features into hdev.
 */
bool vhost_dev_connect(struct vhost_dev *hdev, GError **errp);
/*
 * After the connection is gone: if started, stops without talking to the
 * back-end (ring state taken from guest RAM) and forgets the negotiation.
 */
void vhost_dev_disconnect(struct vhost_dev *hdev);
void vhost_dev_cleanup(struct vhost_dev *hdev);

/* Records what the driver accepted; refuses bits the back-end lacks. */
bool vhost_dev_set_acked_features(struct vhost_dev *hdev, uint64_t features, GError **errp);
bool vhost_dev_has_protocol_feature(const struct vhost_dev *hdev, unsigned int bit);

/*
 * Starts every ring: (first vhost_dev only) SET_FEATURES and the memory
 * table; then per ring SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR,
 * SET_VRING_KICK, SET_VRING_CALL; then SET_VRING_ENABLE 1 per ring when
 * protocol features were negotiated. With inflight tracking, every ring's
 * SET_VRING_NUM comes first, then GET_INFLIGHT_FD (once per device life)
 * and SET_INFLIGHT_FD, then the rest per ring. On failure, rings already started
 * are stopped again and false is returned.
 */
bool vhost_dev_start(struct vhost_dev *hdev, GError **errp);
/*
 * Stops every ring and saves its state (see last_avail_idx). Never fails:
 * a back-end that is gone or answers badly is dropped and the state is
 * taken from guest RAM.
 */
void vhost_dev_stop(struct vhost_dev *hdev);

bool vhost_dev_get_config(struct vhost_dev *hdev, uint8_t *config, uint32_t len,
                          GError **errp);
bool vhost_dev_set_config(struct vhost_dev *hdev, const uint8_t *data,
                          uint32_t offset, uint32_t len, GError **errp);

/*
 * Run-time RAM changes (memory hotplug), for the VMM. devs are the
 * vhost_devs of every device over mem (any of them; only ring 0's sends
 * the table). First checked against each connected back-end's limit (a
 * CONFIG error naming the device and the limit; nothing changes), then
 * made in mem; the listener of each started device then updates its
 * back-end: with memory slots only the difference (REM_MEM_REG first,
 * then ADD_MEM_REG), else a whole SET_MEM_TABLE. When an update fails
 * the change stays made, the error (naming the device) is returned, and
 * a back-end that misbehaved is dropped: it gets the whole table when it
 * reconnects.
 */
bool vhost_dev_add_ram(struct vhost_dev *const *devs, unsigned ndevs, GuestMemory *mem,
                       uint64_t gpa, RamBlock *rb, uint64_t block_offset,
                       uint64_t size, GError **errp);
bool vhost_dev_remove_ram(struct vhost_dev *const *devs, unsigned ndevs,
                          GuestMemory *mem, uint64_t gpa, GError **errp);
/*
 * Whether hdev's back-end can hold nregions memory regions (CONFIG error
 * naming the limit if not). True when not connected: the limit is not
 * known, and the next start checks again.
 */
bool vhost_dev_check_mem_regions(struct vhost_dev *hdev, unsigned nregions,
                                 GError **errp);

/*
 * Switches dirty logging on or off. A started device is told at once:
 * (ring 0's vhost_dev) SET_FEATURES with or without VHOST_F_LOG_ALL, then
 * SET_VRING_ADDR with or without VHOST_VRING_F_LOG for every started
 * ring. Otherwise only remembered: the next start sends it with the rest.
 * The log itself (SET_LOG_BASE) is the caller's, and must be handed over
 * before logging goes on.
 */
bool vhost_dev_set_logging(struct vhost_dev *hdev, bool enable, GError **errp);
/* SET_LOG_BASE (ring 0's vhost_dev); false with errp without the op. */
bool vhost_dev_set_log_base(struct vhost_dev *hdev, int fd, uint64_t size,
                            GError **errp);

/* Total started rings, for status output and tests. */
unsigned int vhost_dev_started_rings(const struct vhost_dev *hdev);

#endif
