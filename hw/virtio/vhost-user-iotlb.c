/* SPDX-License-Identifier: BSD-3-Clause */
/* IOTLB_MSG from the front-end. See include/hw/virtio/vhost-user-iotlb.h. */
#include <inttypes.h>

#include "hw/virtio/vhost-user-iotlb.h"
#include "util/vhost-user-error.h"

static bool iotlb_send(VhostUserState *u, const VhostUserIotlb *iotlb, GError **errp)
{
    VhostUserMsg msg;

    vhost_user_msg_init(&msg, VHOST_USER_IOTLB_MSG, sizeof(VhostUserIotlb));
    msg.payload.iotlb = *iotlb;
    return vhost_user_send(u, 0, &msg, NULL, 0, 0, errp);
}

bool vhost_user_iotlb_update(VhostUserState *u, uint64_t iova, uint64_t size,
                             uint64_t uaddr, uint8_t perm, GError **errp)
{
    VhostUserIotlb m = {
        .iova = iova, .size = size, .uaddr = uaddr, .perm = perm,
        .type = VHOST_IOTLB_UPDATE,
    };

    if (size == 0 || iova + size - 1 < iova || !perm || (perm & ~VHOST_ACCESS_RW)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: IOTLB_MSG update: iova 0x%" PRIx64 " size 0x%" PRIx64
                    " perm 0x%x is not a valid mapping", u->name, iova, size, perm);
        return false;
    }
    return iotlb_send(u, &m, errp);
}

bool vhost_user_iotlb_invalidate(VhostUserState *u, uint64_t iova, uint64_t size,
                                 GError **errp)
{
    VhostUserIotlb m = { .iova = iova, .size = size, .type = VHOST_IOTLB_INVALIDATE };

    return iotlb_send(u, &m, errp);
}
