/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The class side of the virtio device model (hw/virtio/virtio.h): the
 * model's state and what a device type plugs in. Internal to the library:
 * the device front-ends embed a VirtIODevice and fill in a class; a VMM
 * only drives the model through the public header.
 */
#ifndef HW_VIRTIO_VIRTIO_INT_H
#define HW_VIRTIO_VIRTIO_INT_H

#include "hw/virtio/virtio.h"

typedef struct VirtQueue {
    uint16_t num_max;           /* what the device allows (queue-size=) */
    uint16_t num;               /* what the driver chose; 0 = not set */
    uint64_t desc_gpa;
    uint64_t avail_gpa;
    uint64_t used_gpa;
    bool enabled;
    /* Notifiers the device front-end provides; -1 when it has none. */
    int kick_fd;
    int call_fd;
} VirtQueue;

/*
 * What a device type implements. Every hook is optional. The model calls
 * them; a class never changes the model's status itself.
 */
typedef struct VirtioDeviceClass {
    const char *name;           /* "vhost-user-blk", for messages */
    /* Device features on offer now (they may change across reconnects). */
    uint64_t (*get_features)(VirtIODevice *vdev);
    /* Fill vdev->config (config_len bytes) before the driver reads it. */
    void (*get_config)(VirtIODevice *vdev, uint8_t *config);
    /* The driver wrote [offset, offset + len) of the config space. */
    void (*set_config)(VirtIODevice *vdev, const uint8_t *config,
                       uint32_t offset, uint32_t len);
    /*
     * The status changes from old to new. Called with DRIVER_OK set (the
     * device must start), cleared (stop) or new == 0 (reset, after a stop).
     * A false return refuses nothing: the status is recorded anyway (the
     * driver did write it) and the error goes back to the writer.
     */
    bool (*set_status)(VirtIODevice *vdev, uint8_t old_status,
                       uint8_t new_status, GError **errp);
    /* After a reset: the class forgets per-driver state (ring positions). */
    void (*reset)(VirtIODevice *vdev);
} VirtioDeviceClass;

struct VirtIODevice {
    char *id;                   /* "blk0", used in every message */
    uint16_t device_id;         /* VIRTIO_ID_* */
    const VirtioDeviceClass *klass;
    void *opaque;               /* the class's instance */

    uint64_t host_features;     /* cache of the last get_features */
    uint64_t guest_features;    /* what the driver accepted */
    uint8_t status;

    unsigned nvqs;
    VirtQueue *vq;

    uint32_t config_len;
    uint8_t *config;
};

/*
 * Sets up the model: nvqs queues of at most queue_size entries (a power of
 * two), config_len bytes of config space. No class hook runs here.
 */
bool virtio_device_init(VirtIODevice *vdev, const char *id, uint16_t device_id,
                        const VirtioDeviceClass *klass, void *opaque,
                        unsigned nvqs, unsigned queue_size, uint32_t config_len,
                        GError **errp);
void virtio_device_cleanup(VirtIODevice *vdev);

/* The front-end attaches its notifiers (they outlive reconnects). */
void virtio_queue_set_notifiers(VirtIODevice *vdev, unsigned n, int kick_fd, int call_fd);
/* Asks the class for the current features and caches them. */
void virtio_update_host_features(VirtIODevice *vdev);

/*
 * The device cannot go on without the driver resetting it (virtio 2.1.2):
 * sets NEEDS_RESET in the status, which only a reset clears. For any
 * thread; a driver thread polls virtio_needs_reset().
 */
void virtio_set_needs_reset(VirtIODevice *vdev);

#endif
