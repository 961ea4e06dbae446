/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A generic vhost-user device (-device vhost-user-device-pci): the VMM
 * knows nothing of the device type beyond its virtio id, its queue count
 * and size, and how many config bytes to pass through. Features are the
 * back-end's (minus transport bits we do not implement); the config space
 * is fetched with GET_CONFIG on every connect when config_size > 0.
 */
#ifndef HW_VIRTIO_VHOST_USER_DEVICE_H
#define HW_VIRTIO_VHOST_USER_DEVICE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-base.h"

/* Most rings of a generic device. */
#define VHOST_USER_DEVICE_MAX_VQS   64

typedef struct VhostUserDeviceParams {
    const char *id;             /* device id ("vdev0") */
    CharSocket *chr;
    GuestMemory *mem;
    uint16_t virtio_id;         /* non-zero */
    unsigned num_vqs;           /* 1..VHOST_USER_DEVICE_MAX_VQS */
    unsigned vq_size;           /* power of two */
    uint32_t config_size;       /* 0..VIRTIO_CONFIG_MAX_SIZE */
    bool iommu_platform;        /* offer VIRTIO_F_IOMMU_PLATFORM */
    bool packed;                /* offer VIRTIO_F_RING_PACKED (QEMU's packed=on) */
    bool in_order;              /* offer VIRTIO_F_IN_ORDER (QEMU's in_order=on) */
} VhostUserDeviceParams;

/* The device; free with vhost_user_base_free(). */
VHOST_USER_API
VhostUserBase *vhost_user_device_new(const VhostUserDeviceParams *p, GError **errp);

#endif
