/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The front-end's IOTLB requests (IOMMU_PLATFORM devices): an update
 * answers a miss the back-end reported on its channel; an invalidation
 * follows a mapping the VMM removed.
 */
#ifndef HW_VIRTIO_VHOST_USER_IOTLB_H
#define HW_VIRTIO_VHOST_USER_IOTLB_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-conn.h"

/* IOTLB_MSG update / invalidation (always acked, see the table). */
bool vhost_user_iotlb_update(VhostUserState *u, uint64_t iova, uint64_t size,
                             uint64_t uaddr, uint8_t perm, GError **errp);
bool vhost_user_iotlb_invalidate(VhostUserState *u, uint64_t iova, uint64_t size,
                                 GError **errp);

#endif
