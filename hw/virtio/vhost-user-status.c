/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SET_STATUS / GET_STATUS. Untrusted input: the GET_STATUS reply is
 * checked to fit the 8-bit status before use.
 */
#include <inttypes.h>

#include "hw/virtio/vhost-user-status.h"

bool vhost_user_set_status(VhostUserState *u, uint8_t status, GError **errp)
{
    /* The device must be in the new state when we go on (DRIVER_OK). */
    return vhost_user_send_u64(u, 0, VHOST_USER_SET_STATUS, status,
                               VHOST_USER_REQ_SYNC, errp);
}

bool vhost_user_get_status(VhostUserState *u, uint8_t *status, GError **errp)
{
    uint64_t val;

    if (!vhost_user_call_u64(u, 0, VHOST_USER_GET_STATUS, &val, errp)) {
        return false;
    }
    if (val > UINT8_MAX) {
        return vhost_user_fail(u, errp, "%s: GET_STATUS reply: status 0x%" PRIx64
                               " does not fit 8 bits", u->name, val);
    }
    *status = (uint8_t)val;
    return true;
}
