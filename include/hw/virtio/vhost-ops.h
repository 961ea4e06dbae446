/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * VhostOps: what the device layer (vhost.c) asks of a back-end transport.
 * vhost-user is the one implementation today (hw/virtio/vhost-user.c); the
 * table keeps vhost.c free of wire details, and lets a test or another
 * transport slot in.
 *
 * Every op returns true on success, or false with *errp set; none reports
 * to the user itself. Ops that a transport does not implement are NULL;
 * vhost.c checks before calling the optional ones (marked "optional").
 */
#ifndef HW_VIRTIO_VHOST_OPS_H
#define HW_VIRTIO_VHOST_OPS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct vhost_dev;
struct vhost_inflight;
typedef struct GuestMemory GuestMemory;

struct vhost_vring_state {
    unsigned int index;
    unsigned int num;
};

struct vhost_vring_file {
    unsigned int index;
    int fd;                     /* -1: no fd (sent with the NOFD flag) */
};

struct vhost_vring_addr {
    unsigned int index;
    unsigned int flags;         /* 1 << VHOST_VRING_F_LOG */
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
};

/* SET_DEVICE_STATE_FD's direction and phase, as on the wire. */
typedef enum VhostDeviceStateDirection {
    VHOST_DEVICE_STATE_SAVE = 0,    /* back-end -> front-end */
    VHOST_DEVICE_STATE_LOAD = 1,    /* front-end -> back-end */
} VhostDeviceStateDirection;

typedef enum VhostDeviceStatePhase {
    VHOST_DEVICE_STATE_STOPPED = 0, /* the device and all its rings are stopped */
} VhostDeviceStatePhase;

typedef struct VhostOps {
    /* Connects dev to its transport state (opaque) and negotiates if needed. */
    bool (*backend_init)(struct vhost_dev *dev, void *opaque, GError **errp);
    void (*backend_cleanup)(struct vhost_dev *dev);
    /* Absolute ring index (dev->vq_index + idx) as the back-end numbers it. */
    int (*get_vq_index)(struct vhost_dev *dev, int idx);

    /* The back-end's device features (the transport asks once per connection). */
    bool (*get_features)(struct vhost_dev *dev, uint64_t *features, GError **errp);
    /*
     * optional: the rest of what was negotiated on dev's connection, which
     * the transport owns (one copy: VhostUserState for vhost-user).
     * vhost_dev_connect takes its read-only snapshot in the vhost_dev from
     * here; without it, no protocol features and one queue.
     */
    void (*get_negotiated)(struct vhost_dev *dev, uint64_t *protocol_features,
                           uint64_t *max_queues);
    bool (*set_features)(struct vhost_dev *dev, uint64_t features, GError **errp);
    bool (*set_owner)(struct vhost_dev *dev, GError **errp);
    bool (*reset_device)(struct vhost_dev *dev, GError **errp);
    bool (*set_mem_table)(struct vhost_dev *dev, GuestMemory *mem, GError **errp);

    bool (*set_vring_num)(struct vhost_dev *dev, const struct vhost_vring_state *s, GError **errp);
    bool (*set_vring_addr)(struct vhost_dev *dev, const struct vhost_vring_addr *a, GError **errp);
    bool (*set_vring_base)(struct vhost_dev *dev, const struct vhost_vring_state *s, GError **errp);
    bool (*get_vring_base)(struct vhost_dev *dev, struct vhost_vring_state *s, GError **errp);
    bool (*set_vring_kick)(struct vhost_dev *dev, const struct vhost_vring_file *f, GError **errp);
    bool (*set_vring_call)(struct vhost_dev *dev, const struct vhost_vring_file *f, GError **errp);
    bool (*set_vring_err)(struct vhost_dev *dev, const struct vhost_vring_file *f, GError **errp);
    /* optional: only with protocol features; without them rings run once kicked */
    bool (*set_vring_enable)(struct vhost_dev *dev, unsigned int idx, bool enable, GError **errp);
    /* optional */
    bool (*set_vring_endian)(struct vhost_dev *dev, unsigned int idx, bool big_endian, GError **errp);

    /* optional (CONFIG) */
    bool (*get_config)(struct vhost_dev *dev, uint8_t *config, uint32_t offset,
                       uint32_t len, GError **errp);
    bool (*set_config)(struct vhost_dev *dev, const uint8_t *data, uint32_t offset,
                       uint32_t len, uint32_t flags, GError **errp);

    /* optional, net only */
    bool (*net_set_mtu)(struct vhost_dev *dev, uint16_t mtu, GError **errp);
    bool (*send_rarp)(struct vhost_dev *dev, const uint8_t mac[6], GError **errp);

    /* True when the transport's connection is up. */
    bool (*is_connected)(struct vhost_dev *dev);

    /*
     * optional: called at the end of vhost_dev_start (started true; a
     * failure unwinds the start) and of vhost_dev_stop/disconnect (started
     * false; never fails, errp NULL). vhost-user sends the device status
     * and unmaps the rings' host notifiers here.
     */
    bool (*dev_start)(struct vhost_dev *dev, bool started, GError **errp);

    /*
     * optional: the requests between begin and end may be pipelined
     * (vhost-user: acks collected in order, at the latest in end, whose
     * error is the first the batch met). Every begin is ended.
     */
    void (*batch_begin)(struct vhost_dev *dev);
    bool (*batch_end)(struct vhost_dev *dev, GError **errp);

    /*
     * optional: how many memory regions the connected back-end takes
     * (vhost-user: its GET_MAX_MEM_SLOTS, or 8 for SET_MEM_TABLE).
     */
    unsigned (*mem_max_regions)(struct vhost_dev *dev);

    /*
     * optional (INFLIGHT_SHMFD): fetch the back-end's inflight area for
     * dev's rings of queue_size descriptors (inflight->fd stays -1 when
     * the back-end does not track them), and hand it over on a connection.
     */
    bool (*get_inflight_fd)(struct vhost_dev *dev, uint16_t queue_size,
                            struct vhost_inflight *inflight, GError **errp);
    bool (*set_inflight_fd)(struct vhost_dev *dev, const struct vhost_inflight *inflight,
                            GError **errp);

    /*
     * optional (DEVICE_STATE): hands fd (our end of the transfer pipe) to
     * the back-end; *backend_fd gets the fd the back-end would rather use
     * (the caller closes it), or -1. Then, once the state went through,
     * asks the back-end whether the transfer succeeded.
     */
    bool (*set_device_state_fd)(struct vhost_dev *dev, VhostDeviceStateDirection dir,
                                VhostDeviceStatePhase phase, int fd, int *backend_fd,
                                GError **errp);
    bool (*check_device_state)(struct vhost_dev *dev, GError **errp);
    /*
     * optional (dirty log, LOG_SHMFD): hands the log over (SET_LOG_BASE);
     * returns once the back-end took it (its reply, which comes exactly
     * when LOG_SHMFD was negotiated). Whole-device: ring 0's vhost_dev.
     */
    bool (*set_log_base)(struct vhost_dev *dev, int fd, uint64_t size, uint64_t offset,
                         GError **errp);
    /*
     * optional: features of a running device that differ only in
     * VHOST_F_LOG_ALL (SET_FEATURES alone: the device status stays).
     */
    bool (*set_log_features)(struct vhost_dev *dev, uint64_t features, GError **errp);
} VhostOps;

extern const VhostOps user_ops;

#endif
