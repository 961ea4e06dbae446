/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-blk over vhost-user (-device vhost-user-blk-pci): one vhost_dev
 * of num-queues rings. The config space is the back-end's (GET_CONFIG on
 * every connect, so the CONFIG protocol feature is required); the VMM only
 * overrides num_queues with the configured count.
 */
#ifndef HW_VIRTIO_VHOST_USER_BLK_H
#define HW_VIRTIO_VHOST_USER_BLK_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-base.h"
#include "hw/virtio/virtio-blk-defs.h"

/* Most request queues (QEMU's limit for vhost-user-blk). */
#define VHOST_USER_BLK_MAX_QUEUES   64

typedef struct VhostUserBlkParams {
    const char *id;             /* device id ("blk0") */
    CharSocket *chr;
    GuestMemory *mem;
    unsigned num_queues;        /* 1..VHOST_USER_BLK_MAX_QUEUES */
    unsigned queue_size;
    bool iommu_platform;        /* offer VIRTIO_F_IOMMU_PLATFORM */
    bool packed;                /* offer VIRTIO_F_RING_PACKED (QEMU's packed=on) */
    bool in_order;              /* offer VIRTIO_F_IN_ORDER (QEMU's in_order=on) */
} VhostUserBlkParams;

/* The device; free with vhost_user_base_free(). */
VHOST_USER_API
VhostUserBase *vhost_user_blk_new(const VhostUserBlkParams *p, GError **errp);

/*
 * After CONFIG_CHANGE_MSG: takes the new capacity (sectors) from config, the
 * re-read config space of len bytes. False when vub is no blk device or the
 * config is too short.
 */
VHOST_USER_API
bool vhost_user_blk_config_changed(VhostUserBase *vub, const uint8_t *config,
                                   uint32_t len, uint64_t *capacity);

#endif
