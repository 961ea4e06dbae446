/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reference VMM's answers to back-end requests (VhostUserBackendReqOps):
 * IOTLB misses through an identity IOMMU (IOVA = guest physical address),
 * access failures, config changes and host notifier pages, each reported
 * as a status line naming the device.
 */
#ifndef VMM_BACKEND_REQ_H
#define VMM_BACKEND_REQ_H

#include "hw/virtio/vhost-user-base.h"
#include "system/memory.h"

typedef struct VmmBackendReq VmmBackendReq;

/*
 * Installs the callbacks on vub's connection; they stay across reconnects.
 * mem is the guest RAM the IOVAs resolve in. Free after the device.
 */
VmmBackendReq *vmm_backend_req_install(VhostUserBase *vub, GuestMemory *mem);
void vmm_backend_req_free(VmmBackendReq *b);

#endif
