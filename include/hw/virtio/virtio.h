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
 * instance: a class is a const table of functions. The class side is
 * internal (hw/virtio/virtio-int.h); this header is the driver's side.
 *
 * Threading: all calls from the VMM's main loop thread.
 */
#ifndef HW_VIRTIO_VIRTIO_H
#define HW_VIRTIO_VIRTIO_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/vhost-user-api.h"

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

/* The model is opaque: a VMM reaches it through the calls below. */
typedef struct VirtIODevice VirtIODevice;

/* The device id given at creation ("blk0"), used in every message. */
VHOST_USER_API
const char *virtio_get_id(const VirtIODevice *vdev);
/* The virtio device type (VIRTIO_ID_*). */
VHOST_USER_API
uint16_t virtio_get_device_id(const VirtIODevice *vdev);

/* ---- The driver's side: what a transport's registers would do ------ */

VHOST_USER_API
uint64_t virtio_get_host_features(VirtIODevice *vdev);
/* Refused once FEATURES_OK is set; subsets are checked at FEATURES_OK. */
VHOST_USER_API
bool virtio_set_guest_features(VirtIODevice *vdev, uint64_t features, GError **errp);

VHOST_USER_API
uint8_t virtio_get_status(const VirtIODevice *vdev);
/*
 * NEEDS_RESET is set in the status (virtio 2.1.2): the device cannot go on
 * until the driver resets it. For any thread: a driver thread polls it.
 */
VHOST_USER_API
bool virtio_needs_reset(const VirtIODevice *vdev);
/*
 * Writes the status register. 0 resets the device (stopping it first).
 * FEATURES_OK is not latched when the accepted features are not a subset
 * of those offered (the driver sees that when it re-reads the status) and
 * false is returned. Setting DRIVER_OK starts the device, clearing it
 * stops it; a start failure is returned, with the status still recorded.
 */
VHOST_USER_API
bool virtio_set_status(VirtIODevice *vdev, uint8_t status, GError **errp);
VHOST_USER_API
void virtio_reset(VirtIODevice *vdev);

VHOST_USER_API
unsigned virtio_get_num_queues(const VirtIODevice *vdev);
VHOST_USER_API
unsigned virtio_queue_get_num_max(const VirtIODevice *vdev, unsigned n);
/* num: a power of two <= num_max. Only before DRIVER_OK. */
VHOST_USER_API
bool virtio_queue_set_num(VirtIODevice *vdev, unsigned n, unsigned num, GError **errp);
VHOST_USER_API
bool virtio_queue_set_addr(VirtIODevice *vdev, unsigned n, uint64_t desc_gpa,
                           uint64_t avail_gpa, uint64_t used_gpa, GError **errp);
VHOST_USER_API
bool virtio_queue_set_enabled(VirtIODevice *vdev, unsigned n, bool enabled, GError **errp);
/*
 * The guest RAM queue n's ring lies in, as the driver set it up and the
 * negotiated features lay it out: the descriptor area, the driver area and
 * the device area (split: descriptor table, available ring, used ring,
 * each with its event index; packed: descriptor ring and the two event
 * suppression structures). gpa[i], len[i] for i < the return value; 0
 * when the queue has no size or no address yet. The areas are where a
 * device touches first when it starts (postcopy sends them ahead).
 */
#define VIRTIO_QUEUE_RING_AREAS 3
VHOST_USER_API
unsigned virtio_queue_get_ring_areas(const VirtIODevice *vdev, unsigned n,
                                     uint64_t gpa[VIRTIO_QUEUE_RING_AREAS],
                                     uint64_t len[VIRTIO_QUEUE_RING_AREAS]);
/* Device-provided notifiers of queue n (each -1 when there is none). */
VHOST_USER_API
void virtio_queue_get_notifiers(const VirtIODevice *vdev, unsigned n,
                                int *kick_fd, int *call_fd);

VHOST_USER_API
uint32_t virtio_config_len(const VirtIODevice *vdev);
VHOST_USER_API
bool virtio_config_read(VirtIODevice *vdev, uint32_t offset, void *buf,
                        uint32_t len, GError **errp);
VHOST_USER_API
bool virtio_config_write(VirtIODevice *vdev, uint32_t offset, const void *buf,
                         uint32_t len, GError **errp);

static inline bool virtio_has_feature(uint64_t features, unsigned bit)
{
    return bit < 64 && (features & (1ull << bit));
}

#endif
