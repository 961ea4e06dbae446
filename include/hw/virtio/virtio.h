/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small virtio device model: the "transport" the in-process guest
 * driver talks to. It plays the part of virtio-pci's common configuration
 * (status, feature words, queue size and addresses, device config space)
 * but as direct function calls instead of register accesses.
 *
 * The model owns the driver-visible state; a device class (the vhost-user
 * front-ends) supplies the features on offer, the config space and what
 * happens when the driver starts or stops the device. All state is per
 * instance: a class is a const table of functions.
 *
 * Threading: all calls from the VMM's main loop thread.
 */
#ifndef HW_VIRTIO_VIRTIO_H
#define HW_VIRTIO_VIRTIO_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Device status bits (virtio 1.x, 2.1). */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE     1
#define VIRTIO_CONFIG_S_DRIVER          2
#define VIRTIO_CONFIG_S_DRIVER_OK       4
#define VIRTIO_CONFIG_S_FEATURES_OK     8
#define VIRTIO_CONFIG_S_NEEDS_RESET     0x40
#define VIRTIO_CONFIG_S_FAILED          0x80

/* Device ids (virtio 1.x, 5). */
#define VIRTIO_ID_NET                   1
#define VIRTIO_ID_BLOCK                 2

/* Largest ring a split virtqueue may have. */
#define VIRTQUEUE_MAX_SIZE              32768

/* Most config space bytes a device model carries (vhost-user's limit). */
#define VIRTIO_CONFIG_MAX_SIZE          256

typedef struct VirtIODevice VirtIODevice;

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

/* ---- The driver's side: what a transport's registers would do ------ */

uint64_t virtio_get_host_features(VirtIODevice *vdev);
/* Refused once FEATURES_OK is set; subsets are checked at FEATURES_OK. */
bool virtio_set_guest_features(VirtIODevice *vdev, uint64_t features, GError **errp);
uint64_t virtio_get_guest_features(const VirtIODevice *vdev);

uint8_t virtio_get_status(const VirtIODevice *vdev);
/*
 * The device cannot go on without the driver resetting it (virtio 2.1.2):
 * sets NEEDS_RESET in the status, which only a reset clears. For any
 * thread; a driver thread polls virtio_needs_reset().
 */
void virtio_set_needs_reset(VirtIODevice *vdev);
bool virtio_needs_reset(const VirtIODevice *vdev);
/*
 * Writes the status register. 0 resets the device (stopping it first).
 * FEATURES_OK is not latched when the accepted features are not a subset
 * of those offered (the driver sees that when it re-reads the status) and
 * false is returned. Setting DRIVER_OK starts the device, clearing it
 * stops it; a start failure is returned, with the status still recorded.
 */
bool virtio_set_status(VirtIODevice *vdev, uint8_t status, GError **errp);
void virtio_reset(VirtIODevice *vdev);

unsigned virtio_get_num_queues(const VirtIODevice *vdev);
unsigned virtio_queue_get_num_max(const VirtIODevice *vdev, unsigned n);
/* num: a power of two <= num_max. Only before DRIVER_OK. */
bool virtio_queue_set_num(VirtIODevice *vdev, unsigned n, unsigned num, GError **errp);
bool virtio_queue_set_addr(VirtIODevice *vdev, unsigned n, uint64_t desc_gpa,
                           uint64_t avail_gpa, uint64_t used_gpa, GError **errp);
bool virtio_queue_set_enabled(VirtIODevice *vdev, unsigned n, bool enabled, GError **errp);
const VirtQueue *virtio_queue(const VirtIODevice *vdev, unsigned n);
/* Device-provided notifiers of queue n (each -1 when there is none). */
void virtio_queue_get_notifiers(const VirtIODevice *vdev, unsigned n,
                                int *kick_fd, int *call_fd);

uint32_t virtio_config_len(const VirtIODevice *vdev);
bool virtio_config_read(VirtIODevice *vdev, uint32_t offset, void *buf,
                        uint32_t len, GError **errp);
bool virtio_config_write(VirtIODevice *vdev, uint32_t offset, const void *buf,
                         uint32_t len, GError **errp);

/* ---- The device's side ---------------------------------------------- */

/* The front-end attaches its notifiers (they outlive reconnects). */
void virtio_queue_set_notifiers(VirtIODevice *vdev, unsigned n, int kick_fd, int call_fd);
/* Asks the class for the current features and caches them. */
void virtio_update_host_features(VirtIODevice *vdev);

static inline bool virtio_has_feature(uint64_t features, unsigned bit)
{
    return bit < 64 && (features & (1ull << bit));
}

#endif
