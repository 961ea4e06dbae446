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
 *
 * Liveness: a request holds its caller (in a VMM, often the event loop)
 * until the reply is whole or its bound passes: one deadline for waiting
 * and reading, chosen by the table's wait column (the chardev's prompt or
 * slow reply timeout). A timeout drops the connection and tells the
 * chardev it was a stall, so a back-end that keeps stalling is retried
 * ever more slowly (char_socket_note_stall).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "chardev/char-io.h"
#include "chardev/char-socket-int.h"
#include "hw/virtio/vhost-user-conn.h"
#include "util/vhost-user-error.h"

#define VHOST_USER_HDR_SIZE sizeof(VhostUserHeader)

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
           /* hw/virtio/vhost-user-device-state.c */
           (1ull << VHOST_USER_PROTOCOL_F_DEVICE_STATE) |
           /* hw/virtio/vhost-inflight.c; used by devices that ask (blk) */
           (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |
           /* hw/virtio/vhost-log.c: the dirty log, for live migration */
           (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD) |
           /* hw/virtio/vhost-user-postcopy.c: used only once a VMM advises */
           (1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT);
}

typedef struct VhostUserWaitFd {
    int fd;
    VhostUserWaitFdFn handler;
    void *opaque;
} VhostUserWaitFd;

typedef struct VhostUserConnHook {
    VhostUserConnHookFn fn;
    void *opaque;
} VhostUserConnHook;

VhostUserState *vhost_user_state_new(CharSocket *chr, const char *name)
{
    VhostUserState *u = g_new0(VhostUserState, 1);

    u->chr = chr;
    u->name = g_strdup(name ? name : char_socket_id(chr));
    g_mutex_init(&u->lock);
    g_mutex_init(&u->hook_lock);
    u->wait_fds = g_array_new(FALSE, FALSE, sizeof(VhostUserWaitFd));
    u->conn_hooks = g_array_new(FALSE, FALSE, sizeof(VhostUserConnHook));
    u->pending_acks = g_array_new(FALSE, FALSE, sizeof(VhostUserPendingAck));
    u->supported_protocol_features = vhost_user_frontend_protocol_features();
    u->queue_num = 1;
    return u;
}

/*
 * Runs every hook registered now. A copy is walked, since a hook may
 * remove itself; a hook removed by an earlier one is skipped.
 */
static void vhost_user_run_conn_hooks(VhostUserState *u, VhostUserConnEvent ev)
{
    g_autoptr(GArray) hooks = NULL;

    g_mutex_lock(&u->hook_lock);
    hooks = g_array_copy(u->conn_hooks);
    g_mutex_unlock(&u->hook_lock);
    for (guint i = 0; i < hooks->len; i++) {
        VhostUserConnHook h = g_array_index(hooks, VhostUserConnHook, i);
        bool still = false;

        g_mutex_lock(&u->hook_lock);
        for (guint j = 0; j < u->conn_hooks->len && !still; j++) {
            VhostUserConnHook *c = &g_array_index(u->conn_hooks, VhostUserConnHook, j);

            still = c->fn == h.fn && c->opaque == h.opaque;
        }
        g_mutex_unlock(&u->hook_lock);
        if (still) {
            h.fn(u, ev, h.opaque);
        }
    }
}

void vhost_user_state_free(VhostUserState *u)
{
    if (!u) {
        return;
    }
    vhost_user_run_conn_hooks(u, VHOST_USER_CONN_FREE);
    if (u->devs) {
        g_ptr_array_free(u->devs, TRUE);
    }
    g_array_free(u->wait_fds, TRUE);
    g_array_free(u->conn_hooks, TRUE);
    g_array_free(u->pending_acks, TRUE);
    g_clear_error(&u->batch_error);
    g_clear_error(&u->async_error);
    g_mutex_clear(&u->hook_lock);
    g_mutex_clear(&u->lock);
    g_free(u->name);
    g_free(u);
}

void vhost_user_state_reset(VhostUserState *u)
{
    g_mutex_lock(&u->lock);
    u->negotiated = false;
    u->postcopy_listening = false;
    u->trace_packed = false;
    g_atomic_int_set(&u->broken, 0);
    u->backend_features = 0;
    __atomic_store_n(&u->protocol_features, 0, __ATOMIC_RELEASE);
    u->queue_num = 1;
    /* Acks owed by the old connection never come on a new one. */
    g_array_set_size(u->pending_acks, 0);
    /* Called on both CLOSED and OPENED: count only the connections. */
    if (char_socket_is_connected(u->chr)) {
        g_atomic_int_inc(&u->connection);
    }
    g_mutex_unlock(&u->lock);
    /* Outside the lock: unmapping host notifiers calls the VMM, which may call us. */
    vhost_user_run_conn_hooks(u, VHOST_USER_CONN_RESET);
}

void vhost_user_add_wait_fd(VhostUserState *u, int fd, VhostUserWaitFdFn handler,
                            void *opaque)
{
    VhostUserWaitFd w = { .fd = fd, .handler = handler, .opaque = opaque };

    g_assert(fd >= 0 && handler);
    g_mutex_lock(&u->hook_lock);
    for (guint i = 0; i < u->wait_fds->len; i++) {
        g_assert(g_array_index(u->wait_fds, VhostUserWaitFd, i).fd != fd);
    }
    g_array_append_val(u->wait_fds, w);
    g_mutex_unlock(&u->hook_lock);
}

void vhost_user_remove_wait_fd(VhostUserState *u, int fd)
{
    g_mutex_lock(&u->hook_lock);
    for (guint i = 0; i < u->wait_fds->len; i++) {
        if (g_array_index(u->wait_fds, VhostUserWaitFd, i).fd == fd) {
            g_array_remove_index(u->wait_fds, i);
            break;
        }
    }
    g_mutex_unlock(&u->hook_lock);
}

void vhost_user_add_conn_hook(VhostUserState *u, VhostUserConnHookFn fn, void *opaque)
{
    VhostUserConnHook h = { .fn = fn, .opaque = opaque };

    g_mutex_lock(&u->hook_lock);
    g_array_append_val(u->conn_hooks, h);
    g_mutex_unlock(&u->hook_lock);
}

void vhost_user_remove_conn_hook(VhostUserState *u, VhostUserConnHookFn fn, void *opaque)
{
    g_mutex_lock(&u->hook_lock);
    for (guint i = 0; i < u->conn_hooks->len; i++) {
        VhostUserConnHook *h = &g_array_index(u->conn_hooks, VhostUserConnHook, i);

        if (h->fn == fn && h->opaque == opaque) {
            g_array_remove_index(u->conn_hooks, i);
            break;
        }
    }
    g_mutex_unlock(&u->hook_lock);
}

uint64_t vhost_user_protocol_features(const VhostUserState *u)
{
    return __atomic_load_n(&u->protocol_features, __ATOMIC_ACQUIRE);
}

bool vhost_user_has_protocol_feature(const VhostUserState *u, unsigned int bit)
{
    return bit < 64 && (vhost_user_protocol_features(u) & (1ull << bit));
}

uint64_t vhost_user_backend_features(const VhostUserState *u)
{
    return u->backend_features;
}

void vhost_user_set_features(VhostUserState *u, uint64_t backend_features,
                             uint64_t protocol_features)
{
    g_mutex_lock(&u->lock);
    u->backend_features = backend_features;
    __atomic_store_n(&u->protocol_features, protocol_features, __ATOMIC_RELEASE);
    g_mutex_unlock(&u->lock);
}

void vhost_user_set_negotiated(VhostUserState *u, uint64_t queue_num)
{
    g_mutex_lock(&u->lock);
    u->queue_num = queue_num;
    u->negotiated = true;
    g_mutex_unlock(&u->lock);
}

bool vhost_user_is_broken(const VhostUserState *u)
{
    return g_atomic_int_get(&u->broken) != 0;
}

bool vhost_user_is_usable(const VhostUserState *u)
{
    return !vhost_user_is_broken(u) && char_socket_is_connected(u->chr);
}

unsigned vhost_user_connection(const VhostUserState *u)
{
    return (unsigned)g_atomic_int_get(&u->connection);
}

void vhost_user_drop_locked(VhostUserState *u, const char *why, bool from_loop)
{
    g_atomic_int_set(&u->broken, 1);
    if (from_loop && !u->async_error) {
        u->async_error = g_error_new_literal(VHOST_USER_ERROR,
                                             VHOST_USER_ERROR_INVALID_MESSAGE, why);
    }
    char_socket_disconnect(u->chr, why);
}

void vhost_user_drop(VhostUserState *u, const char *why, bool from_loop)
{
    g_mutex_lock(&u->lock);
    vhost_user_drop_locked(u, why, from_loop);
    g_mutex_unlock(&u->lock);
}

bool vhost_user_fail(VhostUserState *u, GError **errp, const char *fmt, ...)
{
    g_autofree char *why = NULL;
    va_list ap;

    va_start(ap, fmt);
    why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    vhost_user_drop(u, why, false);
    g_set_error_literal(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE, why);
    return false;
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
 * Waits until the main socket is readable (or hung up), servicing every
 * registered wait fd that becomes readable meanwhile, registered fds
 * first: the reply may depend on our answer there. The registry is read
 * afresh on every round, so a handler may unregister its fd (when it
 * closes it) and a fd registered meanwhile is served from the next round.
 * No nested main loop: only the registered handlers run, inline. Caller
 * holds u->lock.
 */
static bool vhost_user_wait_reply(VhostUserState *u, int64_t deadline, int timeout_ms,
                                  GError **errp)
{
    int main_fd = char_socket_fd(u->chr);

    /*
     * Nothing to serve meanwhile: the reader waits in recvmsg itself
     * (the chardev's blocking slice), one syscall fewer per request.
     */
    g_mutex_lock(&u->hook_lock);
    if (!u->wait_fds->len) {
        g_mutex_unlock(&u->hook_lock);
        return true;
    }
    g_mutex_unlock(&u->hook_lock);
    for (;;) {
        g_autoptr(GArray) waits = NULL;
        g_autofree struct pollfd *pfd = NULL;
        int timeout = -1, r;
        guint n;

        g_mutex_lock(&u->hook_lock);
        waits = g_array_copy(u->wait_fds);
        g_mutex_unlock(&u->hook_lock);
        n = waits->len;
        pfd = g_new0(struct pollfd, n + 1);
        for (guint i = 0; i < n; i++) {
            pfd[i].fd = g_array_index(waits, VhostUserWaitFd, i).fd;
            pfd[i].events = POLLIN;
        }
        pfd[n].fd = main_fd;
        pfd[n].events = POLLIN;

        if (deadline >= 0) {
            int64_t left = deadline - g_get_monotonic_time();

            timeout = left <= 0 ? 0 : (int)MIN((left + 999) / 1000, G_MAXINT);
        }
        r = poll(pfd, n + 1, timeout);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "poll: %s", g_strerror(errno));
            return false;
        }
        if (r == 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                        "no reply within %d ms", timeout_ms);
            return false;
        }
        for (guint i = 0; i < n; i++) {
            VhostUserWaitFd *w = &g_array_index(waits, VhostUserWaitFd, i);

            if (pfd[i].revents && !w->handler(u, w->fd, w->opaque, errp)) {
                return false;
            }
        }
        if (pfd[n].revents) {
            return true;        /* data, EOF or error: the reader tells */
        }
    }
}

typedef struct ReplyHeaderCheck {
    uint32_t request;
    bool acked;
} ReplyHeaderCheck;

/* The table's check of a reply header, before any payload byte is read. */
static bool reply_header_check(const VhostUserHeader *hdr, void *opaque, GError **errp)
{
    const ReplyHeaderCheck *rc = opaque;

    return vhost_user_msg_validate_reply_header(VHOST_USER_CHANNEL_FRONTEND, rc->request,
                                                rc->acked, hdr, errp);
}

/*
 * Reads and validates the reply to the request info (msg, when given, is
 * the request for the row's semantic check; acked: the reply is an ack,
 * whose status must be 0), within timeout_ms from now: one deadline for the
 * wait and the bytes (a reply that starts and then stops costs no more than
 * one that never comes). ring (or -1) names the ring in errors. Caller
 * holds u->lock. Fds the caller may keep land in rx_fds/n_rx (the caller
 * closes what it does not take, also on failure).
 */
static bool vhost_user_read_reply_locked(VhostUserState *u, const VhostUserMsgInfo *info,
                                         const VhostUserMsg *msg, int ring, bool acked,
                                         int timeout_ms, VhostUserMsg *reply, int *rx_fds,
                                         size_t *n_rx, GError **errp)
{
    ReplyHeaderCheck rc = { .request = info->id, .acked = acked };
    int64_t deadline = char_io_deadline(timeout_ms);
    size_t received = 0;
    g_autofree char *what = ring >= 0 ? g_strdup_printf("%s of ring %d", info->name, ring)
                                      : g_strdup(info->name);

    *n_rx = 0;
    /*
     * The back-end may need an answer on one of the registered fds (the
     * back-end channel, later the postcopy fault fd) before it can reply:
     * serve them while waiting. See vhost_user_wait_reply.
     */
    if (!vhost_user_wait_reply(u, deadline, timeout_ms, errp)) {
        g_prefix_error(errp, "%s: %s reply: ", u->name, what);
        return false;
    }
    /* The header first: nothing of the payload is read before it is checked. */
    *n_rx = CHAR_SOCKET_MAX_FDS;
    if (!char_socket_read_msg_until(u->chr, reply, rx_fds, n_rx, reply_header_check, &rc,
                                    deadline, &received, errp)) {
        if ((*errp)->code == VHOST_USER_ERROR_TIMEOUT && !received) {
            /* Waited in the read rather than in vhost_user_wait_reply: same words. */
            g_clear_error(errp);
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                        "%s: %s reply: no reply within %d ms", u->name, what, timeout_ms);
            return false;
        }
        if ((*errp)->code == VHOST_USER_ERROR_TIMEOUT) {
            g_prefix_error(errp, "no whole reply within %d ms: ", timeout_ms);
        }
        prefix_reply_error(*errp, info->name);
        g_prefix_error(errp, "%s: ", u->name);
        return false;
    }
    if (vhost_user_trace_enabled()) {
        vhost_user_trace_msg_ring(u->name, true, VHOST_USER_CHANNEL_FRONTEND,
                                  VHOST_USER_TRACE_RX, reply, *n_rx, true, u->trace_packed);
    }
    u->replies_received++;
    if (!vhost_user_msg_validate_reply_payload(VHOST_USER_CHANNEL_FRONTEND, info->id,
                                               acked, reply, *n_rx, errp) ||
        (!acked && msg && !vhost_user_msg_check_reply(VHOST_USER_CHANNEL_FRONTEND, msg,
                                                      reply, errp))) {
        prefix_reply_error(*errp, info->name);
        g_prefix_error(errp, "%s: ", u->name);
        return false;
    }
    if (acked && reply->payload.u64 != 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "%s: back-end failed %s (status %" PRIu64 ")",
                    u->name, what, reply->payload.u64);
        return false;
    }
    return true;
}

/*
 * Sends one message; caller holds u->lock. With peer_gone, a peer that
 * has gone leaves the connection up (char_socket_write_all_keep) and the
 * error unprefixed, for the caller to read what it sent first.
 */
static bool vhost_user_send_locked(VhostUserState *u, const VhostUserMsgInfo *info,
                                   VhostUserMsg *msg, const int *fds, size_t nfds,
                                   bool *peer_gone, GError **errp)
{
    size_t len = VHOST_USER_HDR_SIZE + msg->hdr.size;

    if (info->id == VHOST_USER_SET_FEATURES && msg->hdr.size == sizeof(uint64_t)) {
        u->trace_packed = !!(msg->payload.u64 & (1ull << VIRTIO_F_RING_PACKED));
    }
    if (vhost_user_trace_enabled()) {
        vhost_user_trace_msg_ring(u->name, true, VHOST_USER_CHANNEL_FRONTEND,
                                  VHOST_USER_TRACE_TX, msg, nfds, false, u->trace_packed);
    }
    if (peer_gone ? !char_socket_write_all_keep(u->chr, msg, len, fds, nfds, peer_gone, errp)
                  : !char_socket_write_all(u->chr, msg, len, fds, nfds, errp)) {
        if (!peer_gone) {
            g_prefix_error(errp, "%s: %s: ", u->name, info->name);
        }
        return false;
    }
    u->messages_sent++;
    return true;
}

static bool vhost_user_collect_acks_locked(VhostUserState *u, GError **errp);

/*
 * Sends a message whose ack is owed. If the back-end has gone meanwhile,
 * the acks it sent before it went are read first: the first missing one
 * names the message it stopped at, which this one (sent later, since
 * nothing waited) may not be. Caller holds u->lock and drops the
 * connection on failure.
 */
static bool vhost_user_send_deferred_locked(VhostUserState *u, const VhostUserMsgInfo *info,
                                            VhostUserMsg *msg, const int *fds, size_t nfds,
                                            GError **errp)
{
    GError *collect_err = NULL;
    bool peer_gone;

    if (vhost_user_send_locked(u, info, msg, fds, nfds, &peer_gone, errp)) {
        return true;
    }
    if (peer_gone && u->pending_acks->len &&
        !vhost_user_collect_acks_locked(u, &collect_err)) {
        g_clear_error(errp);
        g_propagate_error(errp, collect_err);
        return false;
    }
    g_prefix_error(errp, "%s: %s: ", u->name, info->name);
    return false;
}

/*
 * Sends one message and, when expect_reply, reads and validates its reply
 * (vhost_user_read_reply_locked). Caller holds u->lock.
 */
static bool vhost_user_transact_locked(VhostUserState *u, const VhostUserMsgInfo *info,
                                       VhostUserMsg *msg, const int *fds, size_t nfds,
                                       bool expect_reply, bool acked, int timeout_ms,
                                       VhostUserMsg *reply, int *rx_fds, size_t *n_rx,
                                       GError **errp)
{
    *n_rx = 0;
    if (!vhost_user_send_locked(u, info, msg, fds, nfds, NULL, errp)) {
        return false;
    }
    if (!expect_reply) {
        return true;
    }
    /* The caller knows which ring it asked about: only owed acks name it. */
    return vhost_user_read_reply_locked(u, info, msg, -1, acked, timeout_ms, reply, rx_fds,
                                        n_rx, errp);
}

/*
 * Reads every ack a batch owes, in send order (vhost_user_batch_begin).
 * Each gets its row's bound, counted from when it is waited for. The
 * first failure is also kept for the batch's end. Caller holds u->lock.
 */
static bool vhost_user_collect_acks_locked(VhostUserState *u, GError **errp)
{
    guint n = u->pending_acks->len;

    for (guint i = 0; i < n; i++) {
        VhostUserPendingAck p = g_array_index(u->pending_acks, VhostUserPendingAck, i);
        const VhostUserMsgInfo *info = vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND,
                                                           p.request);
        int timeout_ms = char_socket_reply_timeout_ms(u->chr,
                                                      info->reply_wait == VHOST_USER_RW_SLOW);
        int rx_fds[CHAR_SOCKET_MAX_FDS];
        size_t n_rx = 0;
        VhostUserMsg ack;
        bool ok;

        ok = vhost_user_read_reply_locked(u, info, NULL, p.ring, true, timeout_ms, &ack,
                                          rx_fds, &n_rx, errp);
        close_fds(rx_fds, n_rx);
        if (!ok) {
            /* The caller drops the connection: framing is lost. */
            g_array_set_size(u->pending_acks, 0);
            if (!u->batch_error) {
                u->batch_error = g_error_copy(*errp);
            }
            return false;
        }
    }
    g_array_set_size(u->pending_acks, 0);
    return true;
}

void vhost_user_batch_begin(VhostUserState *u)
{
    g_mutex_lock(&u->lock);
    if (u->batch_depth++ == 0) {
        g_clear_error(&u->batch_error);
        u->batch_owner = g_thread_self();
    }
    g_mutex_unlock(&u->lock);
}

bool vhost_user_batch_end(VhostUserState *u, GError **errp)
{
    bool ok = true;

    g_mutex_lock(&u->lock);
    g_assert(u->batch_depth > 0);
    if (--u->batch_depth > 0) {
        g_mutex_unlock(&u->lock);
        return true;
    }
    u->batch_owner = NULL;
    if (u->pending_acks->len) {
        GError *local_err = NULL;

        if (!vhost_user_is_usable(u)) {
            /* Acks of a dropped connection never come. */
            if (!u->batch_error) {
                g_set_error(&u->batch_error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                            "%s: %u acks of a batch (the first for %s) lost with the "
                            "connection", u->name, u->pending_acks->len,
                            vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND,
                                g_array_index(u->pending_acks, VhostUserPendingAck,
                                              0).request));
            }
            g_array_set_size(u->pending_acks, 0);
        } else if (vhost_user_collect_acks_locked(u, &local_err)) {
            char_socket_set_idle_watch(u->chr, true);
        } else {
            if (g_error_matches(local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT)) {
                char_socket_note_stall(u->chr, char_socket_reply_timeout_ms(u->chr, false));
            }
            vhost_user_drop_locked(u, local_err->message, false);
            g_error_free(local_err);
        }
    }
    if (u->batch_error) {
        g_propagate_error(errp, u->batch_error);
        u->batch_error = NULL;
        ok = false;
    }
    g_mutex_unlock(&u->lock);
    return ok;
}

/*
 * Without REPLY_ACK the only way to know the back-end has processed a
 * request is to ask something that has a reply: messages are handled in
 * order, so the GET_FEATURES reply comes after the earlier request is done.
 */
static bool vhost_user_barrier_locked(VhostUserState *u, const VhostUserMsgInfo *req,
                                      int timeout_ms, GError **errp)
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
    /* Its answer comes once req is processed: req's bound applies. */
    ok = vhost_user_transact_locked(u, info, &msg, NULL, 0, true, false, timeout_ms,
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

/*
 * The one request path behind the typed wrappers below. For requests
 * that have a reply (table), reply receives it, validated, and reply fds
 * go to reply_fds/nreply_fds (both may be NULL when the table says the
 * reply carries none).
 */
static bool vhost_user_request_checked(VhostUserState *u, unsigned int vq_index,
                                       VhostUserMsg *msg, const int *fds, size_t nfds,
                                       unsigned flags, VhostUserMsg *reply,
                                       int *reply_fds, size_t *nreply_fds,
                                       VhostUserListeningReplyFn listening_check,
                                       void *listening_opaque, GError **errp);

static bool vhost_user_request(VhostUserState *u, unsigned int vq_index,
                               VhostUserMsg *msg, const int *fds, size_t nfds,
                               unsigned flags, VhostUserMsg *reply,
                               int *reply_fds, size_t *nreply_fds, GError **errp)
{
    return vhost_user_request_checked(u, vq_index, msg, fds, nfds, flags, reply,
                                      reply_fds, nreply_fds, NULL, NULL, errp);
}

/*
 * The postcopy-listening reply (SET_MEM_TABLE / ADD_MEM_REG answered with
 * the back-end's own addresses) is checked, then acknowledged with a u64
 * of the same request code, all under u->lock: the back-end waits for
 * that ack before it reads anything else, so no other request may slip in.
 */
static bool vhost_user_listening_ack_locked(VhostUserState *u, const VhostUserMsgInfo *info,
                                            const VhostUserMsg *msg, const VhostUserMsg *reply,
                                            VhostUserListeningReplyFn check, void *opaque,
                                            GError **errp)
{
    VhostUserMsg ack;

    if (!check(u, msg, reply, opaque, errp)) {
        return false;
    }
    memset(&ack, 0, sizeof(ack.hdr) + sizeof(uint64_t));
    ack.hdr.request = info->id;
    ack.hdr.flags = VHOST_USER_VERSION;
    ack.hdr.size = sizeof(uint64_t);
    if (!char_socket_write_all(u->chr, &ack, VHOST_USER_HDR_SIZE + ack.hdr.size,
                               NULL, 0, errp)) {
        g_prefix_error(errp, "%s: %s acknowledgement: ", u->name, info->name);
        return false;
    }
    u->messages_sent++;
    return true;
}

static bool vhost_user_request_checked(VhostUserState *u, unsigned int vq_index,
                                       VhostUserMsg *msg, const int *fds, size_t nfds,
                                       unsigned flags, VhostUserMsg *reply,
                                       int *reply_fds, size_t *nreply_fds,
                                       VhostUserListeningReplyFn listening_check,
                                       void *listening_opaque, GError **errp)
{
    bool listening_reply = false;
    const VhostUserMsgInfo *info;
    GError *local_err = NULL;
    VhostUserMsg ack;
    VhostUserMsg *rx = reply ? reply : &ack;
    int rx_fds[CHAR_SOCKET_MAX_FDS];
    size_t n_rx = 0, cap;
    bool expect_reply, need_reply = false, deferred = false;
    bool ok = false;
    int timeout_ms = 0;

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
    if (!vhost_user_is_usable(u)) {
        g_set_error(&local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "%s: %s: %s", u->name,
                    vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, msg->hdr.request),
                    vhost_user_is_broken(u) ? "connection is broken after an earlier error"
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

    /* The table says whether to ask for an ack and whether a reply comes. */
    vhost_user_msg_reply_plan(info, vhost_user_protocol_features(u),
                              u->postcopy_listening, &need_reply, &expect_reply);
    msg->hdr.flags = VHOST_USER_VERSION | (need_reply ? VHOST_USER_NEED_REPLY_MASK : 0);
    listening_reply = expect_reply && !need_reply && info->reply == VHOST_USER_RK_COND &&
                      info->reply_cond == VHOST_USER_RC_POSTCOPY_LISTENING;
    if (listening_reply && !listening_check) {
        g_set_error(&local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: %s while postcopy listens needs the postcopy reply check",
                    u->name, info->name);
        goto out;
    }
    /*
     * Our own message passes the same validator as the back-end's: a
     * front-end bug fails loudly here, before the back-end sees it.
     */
    if (!vhost_user_msg_validate_request(VHOST_USER_CHANNEL_FRONTEND, msg, nfds,
                                         &local_err)) {
        local_err->code = VHOST_USER_ERROR_INVALID_STATE;
        g_prefix_error(&local_err, "%s: outgoing message refused by the table: ", u->name);
        goto out;
    }

    /* The table says how long the answer may take. */
    timeout_ms = char_socket_reply_timeout_ms(u->chr,
                                              info->reply_wait == VHOST_USER_RW_SLOW);
    /* We read the socket ourselves now; the idle watch must not race us. */
    char_socket_set_idle_watch(u->chr, false);
    /* In a batch, an ack-only reply is owed rather than waited for. */
    deferred = u->batch_depth > 0 && u->batch_owner == g_thread_self() && need_reply &&
               !reply && !listening_reply;
    /* Owed acks come first: they are ahead of any reply to this message. */
    if (u->pending_acks->len &&
        (!deferred || u->pending_acks->len >= VHOST_USER_MAX_PENDING_ACKS) &&
        !vhost_user_collect_acks_locked(u, &local_err)) {
        goto out;
    }
    if (deferred) {
        ok = vhost_user_send_deferred_locked(u, info, msg, fds, nfds, &local_err);
        if (ok) {
            VhostUserPendingAck p = {
                .request = info->id,
                .ring = vhost_user_msg_ring_index(VHOST_USER_CHANNEL_FRONTEND, msg),
            };

            g_array_append_val(u->pending_acks, p);
        }
        goto out;
    }
    ok = vhost_user_transact_locked(u, info, msg, fds, nfds, expect_reply, need_reply,
                                    timeout_ms, rx, rx_fds, &n_rx, &local_err);
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
    if (ok && listening_reply) {
        ok = vhost_user_listening_ack_locked(u, info, msg, rx, listening_check,
                                             listening_opaque, &local_err);
    }
    if (ok && (flags & VHOST_USER_REQ_SYNC) && !expect_reply) {
        ok = vhost_user_barrier_locked(u, info, timeout_ms, &local_err);
        if (!ok && reply_fds && nreply_fds) {
            close_fds(reply_fds, *nreply_fds);
            *nreply_fds = 0;
        }
    }
    close_fds(rx_fds, n_rx);
    if ((ok || !vhost_user_error_breaks(local_err)) && !u->pending_acks->len) {
        char_socket_set_idle_watch(u->chr, true);
    }

out:
    if (!ok) {
        g_assert(local_err);
        if (vhost_user_error_breaks(local_err)) {
            if (g_error_matches(local_err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT)) {
                /* It held us (and the VMM's loop): its next tries come slower. */
                char_socket_note_stall(u->chr, timeout_ms);
            }
            /* Framing is lost or the peer misbehaves: never talk to it again. */
            vhost_user_drop_locked(u, local_err->message, false);
        }
        g_propagate_error(errp, local_err);
    }
    g_mutex_unlock(&u->lock);
    return ok;
}

bool vhost_user_send(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                     const int *fds, size_t nfds, unsigned flags, GError **errp)
{
    return vhost_user_request(u, vq_index, msg, fds, nfds, flags, NULL, NULL, NULL, errp);
}

bool vhost_user_send_u64(VhostUserState *u, unsigned int vq_index, uint32_t request,
                         uint64_t val, unsigned flags, GError **errp)
{
    VhostUserMsg msg;

    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = request;
    msg.hdr.size = sizeof(uint64_t);
    msg.payload.u64 = val;
    return vhost_user_send(u, vq_index, &msg, NULL, 0, flags, errp);
}

bool vhost_user_call_u64(VhostUserState *u, unsigned int vq_index, uint32_t request,
                         uint64_t *val, GError **errp)
{
    VhostUserMsg msg, reply;

    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = request;
    if (!vhost_user_call(u, vq_index, &msg, &reply, errp)) {
        return false;
    }
    *val = reply.payload.u64;
    return true;
}

bool vhost_user_call(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                     VhostUserMsg *reply, GError **errp)
{
    return vhost_user_request(u, vq_index, msg, NULL, 0, 0, reply, NULL, NULL, errp);
}

bool vhost_user_call_fd(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                        const int *fds, size_t nfds, VhostUserMsg *reply, int *fd,
                        GError **errp)
{
    size_t n = 1;

    *fd = -1;
    if (!vhost_user_request(u, vq_index, msg, fds, nfds, 0, reply, fd, &n, errp)) {
        return false;
    }
    if (n == 0) {
        *fd = -1;
    }
    return true;
}

bool vhost_user_call_listening(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                               const int *fds, size_t nfds, VhostUserListeningReplyFn check,
                               void *opaque, GError **errp)
{
    VhostUserMsg reply;

    return vhost_user_request_checked(u, vq_index, msg, fds, nfds, 0, &reply, NULL, NULL,
                                      check, opaque, errp);
}
