/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Negotiation of a fresh connection. See
 * include/hw/virtio/vhost-user-negotiate.h.
 *
 * Untrusted input: the back-end's feature words are only ever masked with
 * ours; its queue count is bounded before use (a bad one drops the
 * connection).
 */
#include <inttypes.h>

#include "hw/virtio/vhost-user-mem.h"
#include "hw/virtio/vhost-user-negotiate.h"
#include "util/vhost-user-error.h"

/* A ring index is 8 bits on the wire, so no back-end can use more rings. */
#define VHOST_USER_MAX_QUEUE_NUM 256

bool vhost_user_negotiate(VhostUserState *u, GError **errp)
{
    uint64_t features, theirs, ours = 0, queue_num = 1;
    VhostUserMsg msg;

    if (u->negotiated) {
        return true;
    }
    if (!vhost_user_call_u64(u, 0, VHOST_USER_GET_FEATURES, &features, errp)) {
        return false;
    }
    /* The gate of the PROTOCOL_FEATURES requests reads the offer. */
    vhost_user_set_features(u, features, 0);

    if (features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
        if (!vhost_user_call_u64(u, 0, VHOST_USER_GET_PROTOCOL_FEATURES, &theirs, errp)) {
            return false;
        }
        ours = u->supported_protocol_features & theirs;
        /*
         * Memory slots need an ack per ADD/REM_MEM_REG to keep the shadow
         * true; without REPLY_ACK we stay with SET_MEM_TABLE.
         */
        if (!(ours & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
            ours &= ~(1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
        }
        /*
         * Sent while the negotiated set is still 0, so it goes without
         * NEED_REPLY: the back-end only learns of REPLY_ACK by processing
         * this very message, and may not ack it.
         */
        if (!vhost_user_send_u64(u, 0, VHOST_USER_SET_PROTOCOL_FEATURES, ours, 0, errp)) {
            return false;
        }
        vhost_user_set_features(u, features, ours);

        if (ours & (1ull << VHOST_USER_PROTOCOL_F_MQ)) {
            if (!vhost_user_call_u64(u, 0, VHOST_USER_GET_QUEUE_NUM, &queue_num, errp)) {
                return false;
            }
            if (queue_num == 0 || queue_num > VHOST_USER_MAX_QUEUE_NUM) {
                return vhost_user_fail(u, errp, "%s: GET_QUEUE_NUM reply: queue count %"
                                       PRIu64 " outside 1..%d", u->name, queue_num,
                                       VHOST_USER_MAX_QUEUE_NUM);
            }
        }
    }
    /* Also when protocol features are off: the old shadow must go. */
    if (!vhost_user_mem_negotiate(u, errp)) {
        return false;
    }
    vhost_user_msg_init(&msg, VHOST_USER_SET_OWNER, 0);
    if (!vhost_user_send(u, 0, &msg, NULL, 0, 0, errp)) {
        return false;
    }
    vhost_user_set_negotiated(u, queue_num);
    return true;
}
