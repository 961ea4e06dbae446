/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user connection state and the single request path.
 *
 * Security model: the back-end is untrusted. Nothing it sends is used
 * before the table-driven validators have accepted it: the reply header is
 * checked before a single payload byte is read (so a huge size cannot make
 * us read or allocate anything), then the payload and the fds. Any
 * violation drops the connection and marks the state broken until the next
 * connection; every fd the peer passed that is not handed to the caller is
 * closed on the way out.
 *
 * Locking: u->lock covers a whole request/reply pair (plus the barrier),
 * so two threads can never interleave messages or steal each other's reply.
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "hw/virtio/vhost-user.h"
#include "hw/virtio/vhost-user-backend-chan.h"
#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-mem.h"

#define VHOST_USER_HDR_SIZE sizeof(VhostUserHeader)
/* A ring index is 8 bits on the wire, so no back-end can use more rings. */
#define VHOST_USER_MAX_QUEUE_NUM 256

uint64_t vhost_user_frontend_protocol_features(void)
{
    return (1ull << VHOST_USER_PROTOCOL_F_MQ) |
           (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
           (1ull << VHOST_USER_PROTOCOL_F_NET_MTU) |
           (1ull << VHOST_USER_PROTOCOL_F_RARP) |
           (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
           (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |
           (1ull << VHOST_USER_PROTOCOL_F_CROSS_ENDIAN) |
           /* hw/virtio/vhost-user-mem.c; used only together with REPLY_ACK */
           (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
           /* hw/virtio/vhost-user-backend-chan.c */
           (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) |
           (1ull << VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD) |
           (1ull << VHOST_USER_PROTOCOL_F_HOST_NOTIFIER) |
           (1ull << VHOST_USER_PROTOCOL_F_STATUS) |
           (1ull << VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS) |
           (1ull << VHOST_USER_PROTOCOL_F_SHARED_OBJECT) |
           /* hw/virtio/vhost-inflight.c; used by devices that ask (blk) */
           (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
}

VhostUserState *vhost_user_state_new(CharSocket *chr, const char *name)
{
    VhostUserState *u = g_new0(VhostUserState, 1);

    u->chr = chr;
    u->name = g_strdup(name ? name : char_socket_id(chr));
    g_mutex_init(&u->lock);
    u->supported_protocol_features = vhost_user_frontend_protocol_features();
    u->queue_num = 1;
    return u;
}

void vhost_user_state_free(VhostUserState *u)
{
    if (!u) {
        return;
    }
    vhost_user_backend_chan_free(u->backend_chan);
    if (u->devs) {
        g_ptr_array_free(u->devs, TRUE);
    }
    vhost_user_mem_cleanup(u);
    g_clear_error(&u->async_error);
    g_mutex_clear(&u->lock);
    g_free(u->name);
    g_free(u);
}

void vhost_user_state_reset(VhostUserState *u)
{
    VhostUserBackendChan *chan;

    g_mutex_lock(&u->lock);
    /* The channel belongs to the connection; freed outside the lock below. */
    chan = g_steal_pointer(&u->backend_chan);
    u->negotiated = false;
    u->broken = false;
    u->backend_features = 0;
    u->protocol_features = 0;
    u->queue_num = 1;
    /* Called on both CLOSED and OPENED: count only the connections. */
    if (char_socket_is_connected(u->chr)) {
        u->connection++;
    }
    g_mutex_unlock(&u->lock);
    /* Unmapping host notifiers calls the VMM, which may call us back. */
    vhost_user_backend_chan_free(chan);
}

bool vhost_user_has_protocol_feature(const VhostUserState *u, unsigned int bit)
{
    return bit < 64 && (u->protocol_features & (1ull << bit));
}

static bool vhost_user_error_breaks(const GError *err)
{
    /*
     * Both are detected before a byte is written: the connection is fine,
     * only the caller asked for something it may not.
     */
    return !(err->domain == VHOST_USER_ERROR &&
             (err->code == VHOST_USER_ERROR_FEATURE_MISMATCH ||
              err->code == VHOST_USER_ERROR_INVALID_STATE));
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

/*
 * Prefixes a validator's message with the request name unless it already
 * names it, so every error reads "net0: GET_VRING_BASE reply: ...".
 */
static void prefix_reply_error(GError *err, const char *req)
{
    if (!g_str_has_prefix(err->message, req)) {
        g_prefix_error(&err, "%s reply: ", req);
    }
}

/* The gate of the table row: is this request allowed on this connection? */
static bool vhost_user_check_gate(VhostUserState *u, const VhostUserMsgInfo *info,
                                  unsigned int vq_index, GError **errp)
{
    if (info->gate == VHOST_USER_GATE_PROTO &&
        !(u->backend_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: %s needs protocol feature PROTOCOL_FEATURES "
                    "(feature bit %d), which the back-end does not offer",
                    u->name, info->name, VHOST_USER_F_PROTOCOL_FEATURES);
        return false;
    }
    if (info->gate >= 0 && !vhost_user_has_protocol_feature(u, (unsigned)info->gate)) {
        const char *fname = vhost_user_protocol_feature_name((unsigned)info->gate);

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: %s needs protocol feature %s", u->name, info->name,
                    fname ? fname : "UNKNOWN");
        return false;
    }
    if (info->scope == VHOST_USER_SCOPE_DEVICE && vq_index != 0) {
        /* QEMU silently dropped these; a bug in the caller must be loud. */
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: %s is a device-wide request but was sent by the "
                    "vhost_dev of ring %u (only ring 0's may send it)",
                    u->name, info->name, vq_index);
        return false;
    }
    return true;
}

/*
 * Sends one message and, when expect_reply, reads and validates its reply.
 * Caller holds u->lock. The reply lands in *reply; fds that the caller may
 * keep are returned in rx_fds/n_rx (the caller closes what it does not
 * take, also on failure).
 */
static bool vhost_user_transact_locked(VhostUserState *u, const VhostUserMsgInfo *info,
                                       VhostUserMsg *msg, const int *fds, size_t nfds,
                                       bool expect_reply, bool acked,
                                       VhostUserMsg *reply, int *rx_fds, size_t *n_rx,
                                       GError **errp)
{
    bool trace = vhost_user_trace_enabled();
    size_t nhdr_fds = CHAR_SOCKET_MAX_FDS;
    size_t npl_fds;

    *n_rx = 0;
    if (trace) {
        vhost_user_trace_msg(u->name, true, VHOST_USER_CHANNEL_FRONTEND,
                             VHOST_USER_TRACE_TX, msg, nfds, false);
    }
    if (!char_socket_write_all(u->chr, msg, VHOST_USER_HDR_SIZE + msg->hdr.size,
                               fds, nfds, errp)) {
        g_prefix_error(errp, "%s: %s: ", u->name, info->name);
        return false;
    }
    u->messages_sent++;
    if (!expect_reply) {
        return true;
    }

    /*
     * The back-end may need an answer on the back-end channel before it
     * can reply (an IOTLB miss while it stops a ring): serve that channel
     * while waiting. See vhost-user-backend-chan.c for why not a loop.
     */
    if (u->backend_chan &&
        !vhost_user_backend_chan_wait(u->backend_chan, char_socket_fd(u->chr),
                                      char_socket_timeout_ms(u->chr), errp)) {
        g_prefix_error(errp, "%s: %s reply: ", u->name, info->name);
        return false;
    }
    /* The header first: nothing of the payload is read before it is checked. */
    if (!char_socket_read_all(u->chr, &reply->hdr, VHOST_USER_HDR_SIZE,
                              rx_fds, &nhdr_fds, -1, errp)) {
        g_prefix_error(errp, "%s: %s reply: ", u->name, info->name);
        return false;
    }
    *n_rx = nhdr_fds;
    if (!vhost_user_msg_validate_reply_header(VHOST_USER_CHANNEL_FRONTEND, info->id,
                                              acked, &reply->hdr, errp)) {
        prefix_reply_error(*errp, info->name);
        g_prefix_error(errp, "%s: ", u->name);
        return false;
    }
    /* Belt and braces: the validator bounds size, but never trust one check. */
    if (reply->hdr.size > sizeof(reply->payload)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "%s: %s reply: size %" PRIu32 " exceeds %zu", u->name,
                    info->name, reply->hdr.size, sizeof(reply->payload));
        return false;
    }
    if (reply->hdr.size > 0) {
        /* A peer may attach fds to any byte; collect them so they are counted. */
        npl_fds = CHAR_SOCKET_MAX_FDS - *n_rx;
        if (!char_socket_read_all(u->chr, &reply->payload, reply->hdr.size,
                                  npl_fds ? rx_fds + *n_rx : NULL, &npl_fds, -1, errp)) {
            g_prefix_error(errp, "%s: %s reply: ", u->name, info->name);
            return false;
        }
        *n_rx += npl_fds;
    }
    if (trace) {
        vhost_user_trace_msg(u->name, true, VHOST_USER_CHANNEL_FRONTEND,
                             VHOST_USER_TRACE_RX, reply, *n_rx, true);
    }
    u->replies_received++;
    if (!vhost_user_msg_validate_reply_payload(VHOST_USER_CHANNEL_FRONTEND, info->id,
                                               acked, reply, *n_rx, errp)) {
        prefix_reply_error(*errp, info->name);
        g_prefix_error(errp, "%s: ", u->name);
        return false;
    }
    if (acked && reply->payload.u64 != 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "%s: back-end failed %s (status %" PRIu64 ")",
                    u->name, info->name, reply->payload.u64);
        return false;
    }
    return true;
}

/*
 * Without REPLY_ACK the only way to know the back-end has processed a
 * request is to ask something that has a reply: messages are handled in
 * order, so the GET_FEATURES reply comes after the earlier request is done.
 */
static bool vhost_user_barrier_locked(VhostUserState *u, const VhostUserMsgInfo *req,
                                      GError **errp)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND,
                                                       VHOST_USER_GET_FEATURES);
    VhostUserMsg msg, reply;
    int rx_fds[CHAR_SOCKET_MAX_FDS];
    size_t n_rx = 0;
    bool ok;

    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = VHOST_USER_GET_FEATURES;
    msg.hdr.flags = VHOST_USER_VERSION;
    ok = vhost_user_transact_locked(u, info, &msg, NULL, 0, true, false,
                                    &reply, rx_fds, &n_rx, errp);
    close_fds(rx_fds, n_rx);
    if (!ok) {
        g_prefix_error(errp, "barrier after %s: ", req->name);
        return false;
    }
    if (u->negotiated && reply.payload.u64 != u->backend_features) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: GET_FEATURES barrier after %s returned features 0x%" PRIx64
                    " but the back-end offered 0x%" PRIx64 " on this connection",
                    u->name, req->name, reply.payload.u64, u->backend_features);
        return false;
    }
    return true;
}

bool vhost_user_request(VhostUserState *u, unsigned int vq_index,
                        VhostUserMsg *msg, const int *fds, size_t nfds,
                        unsigned flags, VhostUserMsg *reply,
                        int *reply_fds, size_t *nreply_fds, GError **errp)
{
    const VhostUserMsgInfo *info;
    GError *local_err = NULL;
    VhostUserMsg ack;
    VhostUserMsg *rx = reply ? reply : &ack;
    int rx_fds[CHAR_SOCKET_MAX_FDS];
    size_t n_rx = 0, cap;
    bool expect_reply, need_reply = false;
    bool ok = false;

    /*
     * *nreply_fds on entry is the room in reply_fds; 0 is read as 1, since
     * no reply in the table carries more than one fd and a caller that
     * passes an array has room for at least that.
     */
    if (nreply_fds) {
        cap = *nreply_fds ? *nreply_fds : 1;
        *nreply_fds = 0;
    } else {
        cap = 0;
    }

    g_mutex_lock(&u->lock);
    if (u->broken || !char_socket_is_connected(u->chr)) {
        g_set_error(&local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "%s: %s: %s", u->name,
                    vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, msg->hdr.request),
                    u->broken ? "connection is broken after an earlier error"
                              : "back-end not connected");
        /* Already down; nothing to drop. */
        g_propagate_error(errp, local_err);
        g_mutex_unlock(&u->lock);
        return false;
    }

    info = vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND, msg->hdr.request);
    if (!info) {
        g_set_error(&local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: request %" PRIu32 " is not in the message table",
                    u->name, msg->hdr.request);
        goto out;
    }
    if (!vhost_user_check_gate(u, info, vq_index, &local_err)) {
        goto out;
    }
    if (nfds > VHOST_USER_MAX_FDS || msg->hdr.size > sizeof(msg->payload)) {
        g_set_error(&local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: %s with %zu fds and %" PRIu32 " payload bytes exceeds "
                    "the protocol limits", u->name, info->name, nfds, msg->hdr.size);
        goto out;
    }

    /*
     * With REPLY_ACK every reply-less request asks for an ack, so a failure
     * is reported against the message that caused it, not a later one.
     */
    if (info->reply == VHOST_USER_RK_ACK ||
        (info->reply == VHOST_USER_RK_NONE &&
         vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
        need_reply = true;
    }
    expect_reply = need_reply || info->reply == VHOST_USER_RK_PAYLOAD ||
        (info->reply == VHOST_USER_RK_COND &&
         vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_LOG_SHMFD));
    msg->hdr.flags = VHOST_USER_VERSION | (need_reply ? VHOST_USER_NEED_REPLY_MASK : 0);

    /* We read the socket ourselves now; the idle watch must not race us. */
    char_socket_set_idle_watch(u->chr, false);
    ok = vhost_user_transact_locked(u, info, msg, fds, nfds, expect_reply, need_reply,
                                    rx, rx_fds, &n_rx, &local_err);
    if (ok && n_rx > 0) {
        if (!reply_fds || n_rx > cap) {
            g_set_error(&local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                        "%s: %s reply: %zu fds received but at most %zu expected",
                        u->name, info->name, n_rx, reply_fds ? cap : 0);
            ok = false;
        } else {
            memcpy(reply_fds, rx_fds, n_rx * sizeof(int));
            *nreply_fds = n_rx;
            n_rx = 0;
        }
    }
    if (ok && (flags & VHOST_USER_REQ_SYNC) && !expect_reply) {
        ok = vhost_user_barrier_locked(u, info, &local_err);
        if (!ok && reply_fds && nreply_fds) {
            close_fds(reply_fds, *nreply_fds);
            *nreply_fds = 0;
        }
    }
    close_fds(rx_fds, n_rx);
    if (ok || !vhost_user_error_breaks(local_err)) {
        char_socket_set_idle_watch(u->chr, true);
    }

out:
    if (!ok) {
        g_assert(local_err);
        if (vhost_user_error_breaks(local_err)) {
            /* Framing is lost or the peer misbehaves: never talk to it again. */
            u->broken = true;
            char_socket_disconnect(u->chr, local_err->message);
        }
        g_propagate_error(errp, local_err);
    }
    g_mutex_unlock(&u->lock);
    return ok;
}

/* A request with no payload whose reply is a u64 (GET_FEATURES & co). */
static bool vhost_user_get_u64(VhostUserState *u, uint32_t request, uint64_t *val,
                               GError **errp)
{
    VhostUserMsg msg, reply;

    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = request;
    if (!vhost_user_request(u, 0, &msg, NULL, 0, 0, &reply, NULL, NULL, errp)) {
        return false;
    }
    *val = reply.payload.u64;
    return true;
}

static bool vhost_user_send_u64(VhostUserState *u, uint32_t request, uint64_t val,
                                GError **errp)
{
    VhostUserMsg msg;

    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = request;
    msg.hdr.size = sizeof(uint64_t);
    msg.payload.u64 = val;
    return vhost_user_request(u, 0, &msg, NULL, 0, 0, NULL, NULL, NULL, errp);
}

bool vhost_user_negotiate(VhostUserState *u, GError **errp)
{
    VhostUserMsg msg;
    uint64_t features, theirs, ours;

    if (u->negotiated) {
        return true;
    }
    if (!vhost_user_get_u64(u, VHOST_USER_GET_FEATURES, &features, errp)) {
        return false;
    }
    u->backend_features = features;
    u->protocol_features = 0;
    u->queue_num = 1;

    if (features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
        if (!vhost_user_get_u64(u, VHOST_USER_GET_PROTOCOL_FEATURES, &theirs, errp)) {
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
         * Sent while protocol_features is still 0, so it goes without
         * NEED_REPLY: the back-end only learns of REPLY_ACK by processing
         * this very message, and may not ack it.
         */
        if (!vhost_user_send_u64(u, VHOST_USER_SET_PROTOCOL_FEATURES, ours, errp)) {
            return false;
        }
        g_mutex_lock(&u->lock);
        u->protocol_features = ours;
        g_mutex_unlock(&u->lock);

        if (vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_MQ)) {
            uint64_t qn;

            if (!vhost_user_get_u64(u, VHOST_USER_GET_QUEUE_NUM, &qn, errp)) {
                return false;
            }
            if (qn == 0 || qn > VHOST_USER_MAX_QUEUE_NUM) {
                g_autofree char *why = g_strdup_printf(
                    "%s: GET_QUEUE_NUM reply: queue count %" PRIu64
                    " outside 1..%d", u->name, qn, VHOST_USER_MAX_QUEUE_NUM);

                g_set_error_literal(errp, VHOST_USER_ERROR,
                                    VHOST_USER_ERROR_INVALID_MESSAGE, why);
                g_mutex_lock(&u->lock);
                u->broken = true;
                char_socket_disconnect(u->chr, why);
                g_mutex_unlock(&u->lock);
                return false;
            }
            u->queue_num = qn;
        }
    }
    /* Also when protocol features are off: the old shadow must go. */
    if (!vhost_user_mem_negotiate(u, errp)) {
        return false;
    }

    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = VHOST_USER_SET_OWNER;
    if (!vhost_user_request(u, 0, &msg, NULL, 0, 0, NULL, NULL, NULL, errp)) {
        return false;
    }
    u->negotiated = true;
    return true;
}
