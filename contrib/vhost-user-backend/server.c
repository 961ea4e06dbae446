/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reference back-end's side of the vhost-user socket: receiving and
 * checking requests, ring state, replies, and the epoll loop that also
 * watches the kick eventfds (guest memory is mem.c's).
 *
 * Security model: the front-end is untrusted. Every message passes the
 * shared validator (sizes, counts, flags, fd numbers) and then the checks
 * here against our state (ring index, ring size, features offered, memory
 * regions that really are backed by their fds). A bad request is logged,
 * NACKed when the front-end asked for an ack, and ends the connection;
 * every fd that came with it is closed on every path.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "util/vhost-user-msg.h"
#include "hw/virtio/virtio.h"
#include "refbe.h"

/* Partial messages must not hang the back-end forever. */
#define REFBE_RECV_TIMEOUT_SEC    10
/* epoll data for the socket; ring kick fds use their ring index. */
#define REFBE_EP_SOCKET           UINT64_MAX

static uint64_t offered_protocol_features(const RefBeDev *dev)
{
    uint64_t f = (1ull << VHOST_USER_PROTOCOL_F_MQ) |
                 (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                 (1ull << VHOST_USER_PROTOCOL_F_STATUS) |
                 (1ull << VHOST_USER_PROTOCOL_F_DEVICE_STATE) |
                 /* dirty.c: live migration's dirty log */
                 (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD);

    if (dev->opts->type == REFBE_DEV_BLK) {
        f |= 1ull << VHOST_USER_PROTOCOL_F_CONFIG;
        if (dev->opts->inflight) {
            f |= 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
        }
    } else {
        f |= 1ull << VHOST_USER_PROTOCOL_F_NET_MTU;
    }
    /* mem.c: one region at a time */
    if (dev->opts->mem_slots) {
        f |= 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS;
    }
    /* postcopy.c: taking part in postcopy migration */
    if (!dev->opts->no_postcopy) {
        f |= 1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT;
    }
    return f;
}

static uint64_t offered_features(const RefBeDev *dev)
{
    uint64_t f = (1ull << VIRTIO_F_VERSION_1) |
                 (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
                 (1ull << VIRTIO_RING_F_EVENT_IDX) |
                 (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
                 (1ull << VIRTIO_F_RING_PACKED) |
                 (1ull << VHOST_F_LOG_ALL);

    if (dev->opts->type == REFBE_DEV_BLK) {
        return f | refbe_blk_features(dev->opts);
    }
    return f | refbe_net_features(dev->opts);
}

/* ---- Device lifetime ------------------------------------------------- */

RefBeDev *refbe_dev_new(const RefBeOptions *opts, GError **errp)
{
    g_autofree RefBeDev *dev = g_new0(RefBeDev, 1);

    dev->opts = opts;
    dev->sock = -1;
    dev->epfd = -1;
    dev->state_fd = -1;
    dev->state_result = 1;
    dev->pc.ufd = -1;
    dev->pc.guard_stop = -1;
    g_mutex_init(&dev->pc.lock);
    dev->name = g_strdup_printf("%s:%s", opts->type == REFBE_DEV_BLK ? "blk" : "net",
                                opts->socket_path);
    if (opts->type == REFBE_DEV_BLK) {
        dev->nvrings = opts->queues;
        dev->blk = refbe_blk_new(opts, errp);
        if (!dev->blk) {
            g_free(dev->name);
            return NULL;
        }
    } else {
        dev->nvrings = 2 * opts->queues;
        dev->net = refbe_net_new();
    }
    dev->vrings = g_new0(RefBeVring, dev->nvrings);
    for (unsigned i = 0; i < dev->nvrings; i++) {
        refbe_vring_init(&dev->vrings[i], i);
        dev->vrings[i].dev = dev;
    }
    return g_steal_pointer(&dev);
}

void refbe_dev_free(RefBeDev *dev)
{
    if (!dev) {
        return;
    }
    g_free(dev->vrings);
    g_mutex_clear(&dev->pc.lock);
    refbe_blk_free(dev->blk);
    refbe_net_free(dev->net);
    g_free(dev->name);
    g_free(dev);
}

/* ---- Connection state ------------------------------------------------- */

static void ring_watch(RefBeDev *dev, RefBeVring *vq, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = vq->index };

    if (vq->kick_fd >= 0) {
        epoll_ctl(dev->epfd, EPOLL_CTL_DEL, vq->kick_fd, NULL);
        close(vq->kick_fd);
    }
    vq->kick_fd = fd;
    if (fd >= 0 && epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        refbe_log("%s: ring %u: cannot watch kick fd: %s", dev->name, vq->index,
                g_strerror(errno));
    }
}

/* Forgets everything a front-end set up; the disk stays. */
static void reset_connection_state(RefBeDev *dev)
{
    for (unsigned i = 0; i < dev->nvrings; i++) {
        ring_watch(dev, &dev->vrings[i], -1);
        refbe_vring_reset(&dev->vrings[i]);
    }
    /* Before the mappings go: nothing of ours may still be reading them. */
    refbe_postcopy_release(dev);
    /* The front-end keeps the area and hands it to the next connection. */
    refbe_inflight_release(dev);
    refbe_dirty_release(dev);
    refbe_mem_release(dev);
    dev->features = 0;
    dev->protocol_features = 0;
    dev->status = 0;
    dev->net_mtu = 0;
    refbe_state_reset(dev);
}

/* Runs the device model on a ring that may have work. */
static void ring_process(RefBeDev *dev, RefBeVring *vq)
{
    if (dev->opts->type == REFBE_DEV_BLK) {
        refbe_blk_kick(dev, vq);
    } else {
        refbe_net_kick(dev, vq);
    }
    refbe_scribble(dev, dev->opts->scribble);
}

/* ---- Requests --------------------------------------------------------- */

static RefBeVring *ring_arg(RefBeDev *dev, const VhostUserMsg *msg, GError **errp)
{
    int idx = vhost_user_msg_ring_index(VHOST_USER_CHANNEL_FRONTEND, msg);

    if (idx < 0 || (unsigned)idx >= dev->nvrings) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: ring index %d out of range (%u rings)", dev->name,
                    vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND,
                                            msg->hdr.request),
                    idx, dev->nvrings);
        return NULL;
    }
    return &dev->vrings[idx];
}

/* Takes fds[0] for a KICK/CALL/ERR request: -1 with the NOFD bit. */
static int take_vring_fd(const VhostUserMsg *msg, int *fds, size_t nfds)
{
    int fd;

    if ((msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK) || nfds == 0) {
        return -1;
    }
    fd = fds[0];
    fds[0] = -1;
    return fd;
}

static bool reject_if_started(RefBeDev *dev, RefBeVring *vq, const char *req,
                              GError **errp)
{
    if (vq->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: ring %u is running (stop it with GET_VRING_BASE "
                    "first)", dev->name, req, vq->index);
        return false;
    }
    return true;
}

/*
 * Handles one valid request. *reply is filled (and *has_reply set) for
 * requests with a payload reply. False with errp set ends the connection.
 */
static bool handle_request(RefBeDev *dev, const VhostUserMsg *msg, int *fds,
                           size_t nfds, VhostUserMsg *reply, bool *has_reply,
                           int *reply_fd, GError **errp)
{
    const VhostUserMsgInfo *info =
        vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND, msg->hdr.request);
    RefBeVring *vq = NULL;

    if (info->gate >= 0 && !(dev->protocol_features & (1ull << info->gate))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: needs protocol feature %s, not negotiated",
                    dev->name, info->name,
                    vhost_user_protocol_feature_name(info->gate));
        return false;
    }
    if (info->scope == VHOST_USER_SCOPE_RING) {
        vq = ring_arg(dev, msg, errp);
        if (!vq) {
            return false;
        }
    }
    if (info->reply == VHOST_USER_RK_PAYLOAD) {
        vhost_user_msg_init(reply, msg->hdr.request,
                            vhost_user_payload_info(info->reply_payload)->min_size);
        *has_reply = true;
    }

    switch (msg->hdr.request) {
    case VHOST_USER_GET_FEATURES:
        reply->payload.u64 = offered_features(dev);
        return true;
    case VHOST_USER_SET_FEATURES: {
        uint64_t extra = msg->payload.u64 & ~offered_features(dev);

        if (extra) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_FEATURES: 0x%" PRIx64 " has bits 0x%" PRIx64
                        " we never offered", dev->name, msg->payload.u64, extra);
            return false;
        }
        dev->features = msg->payload.u64;
        for (unsigned i = 0; i < dev->nvrings; i++) {
            RefBeVring *r = &dev->vrings[i];
            g_autoptr(GError) err = NULL;

            /* Without PROTOCOL_FEATURES there is no SET_VRING_ENABLE. */
            if (!refbe_has_feature(dev, VHOST_USER_F_PROTOCOL_FEATURES)) {
                r->enabled = true;
            }
            /* EVENT_IDX changes the ring sizes that were checked. */
            if (r->desc && !refbe_vring_map(dev, r, &err)) {
                refbe_vring_fault(dev, r, "after SET_FEATURES: %s", err->message);
            }
        }
        return true;
    }
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        reply->payload.u64 = offered_protocol_features(dev);
        return true;
    case VHOST_USER_SET_PROTOCOL_FEATURES: {
        uint64_t extra = msg->payload.u64 & ~offered_protocol_features(dev);

        if (extra) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_PROTOCOL_FEATURES: 0x%" PRIx64 " has bits 0x%"
                        PRIx64 " we never offered", dev->name, msg->payload.u64,
                        extra);
            return false;
        }
        dev->protocol_features = msg->payload.u64;
        return true;
    }
    case VHOST_USER_SET_OWNER:
        return true;
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
        for (unsigned i = 0; i < dev->nvrings; i++) {
            ring_watch(dev, &dev->vrings[i], -1);
            refbe_vring_reset(&dev->vrings[i]);
        }
        dev->features = 0;
        dev->status = 0;
        return true;
    case VHOST_USER_GET_QUEUE_NUM:
        /* net counts queue pairs, as the front-end compares it with queues=. */
        reply->payload.u64 = dev->opts->queues;
        return true;
    case VHOST_USER_SET_MEM_TABLE:
        return refbe_mem_set_table(dev, msg, fds, reply, has_reply, errp);
    case VHOST_USER_GET_MAX_MEM_SLOTS:
        reply->payload.u64 = VHOST_MEMORY_BASELINE_NREGIONS;
        return true;
    case VHOST_USER_ADD_MEM_REG:
        return refbe_mem_add(dev, msg, nfds ? fds[0] : -1, reply, has_reply, errp);
    case VHOST_USER_REM_MEM_REG:
        return refbe_mem_rem(dev, msg, errp);
    case VHOST_USER_SET_VRING_NUM: {
        uint32_t num = msg->payload.state.num;

        if (!reject_if_started(dev, vq, "SET_VRING_NUM", errp)) {
            return false;
        }
        if (num == 0 || num > REFBE_VRING_MAX_SIZE || (num & (num - 1))) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_VRING_NUM: ring %u: num %" PRIu32 " is not a "
                        "power of two in 1..%d", dev->name, vq->index, num,
                        REFBE_VRING_MAX_SIZE);
            return false;
        }
        vq->num = num;
        vq->desc = NULL;
        return true;
    }
    case VHOST_USER_SET_VRING_ADDR: {
        const VhostUserVringAddr *a = &msg->payload.addr;
        bool log = a->flags & (1u << VHOST_VRING_F_LOG);

        if (a->flags & ~(1u << VHOST_VRING_F_LOG)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_VRING_ADDR: ring %u: unknown flags 0x%" PRIx32,
                        dev->name, vq->index, a->flags);
            return false;
        }
        /*
         * A running ring may only switch logging (the front-end's way to
         * start and stop it): the same addresses, another log flag.
         */
        if (vq->started && (!vq->addr_set || a->desc_user_addr != vq->desc_uva ||
                            a->avail_user_addr != vq->avail_uva ||
                            a->used_user_addr != vq->used_uva)) {
            return reject_if_started(dev, vq, "SET_VRING_ADDR", errp);
        }
        /* The dirty log helpers walk split rings: better refused than silent. */
        if (log && refbe_has_feature(dev, VIRTIO_F_RING_PACKED)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_VRING_ADDR: ring %u: dirty logging of packed rings is "
                        "not implemented", dev->name, vq->index);
            return false;
        }
        vq->log_used = log;
        vq->log_guest_addr = log ? a->log_guest_addr : 0;
        if (vq->started) {
            return true;
        }
        vq->desc_uva = a->desc_user_addr;
        vq->avail_uva = a->avail_user_addr;
        vq->used_uva = a->used_user_addr;
        vq->addr_set = true;
        vq->broken = false;
        /* Checked now so that a bad address is refused where it is sent. */
        if (vq->num && !refbe_vring_map(dev, vq, errp)) {
            return false;
        }
        refbe_postcopy_touch_ring(dev, vq, "SET_VRING_ADDR");
        return true;
    }
    case VHOST_USER_SET_LOG_BASE:
        if (!refbe_dirty_set_base(dev, &msg->payload.log, nfds ? fds[0] : -1, errp)) {
            return false;
        }
        /* The reply libvhost-user sends (a u64 0); only with LOG_SHMFD. */
        if (dev->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD)) {
            vhost_user_msg_init(reply, msg->hdr.request, sizeof(uint64_t));
            reply->payload.u64 = 0;
            *has_reply = true;
        }
        return true;
    case VHOST_USER_SET_VRING_BASE:
        if (!reject_if_started(dev, vq, "SET_VRING_BASE", errp)) {
            return false;
        }
        if (refbe_has_feature(dev, VIRTIO_F_RING_PACKED)) {
            uint32_t num = msg->payload.state.num;

            /*
             * Packed: avail slot and wrap in the low half, used in the high
             * one (zero: the same as avail, what a front-end that only
             * carries the low half means). Checked against the size at map.
             */
            vq->pk_avail = (uint16_t)num;
            vq->pk_used = (num >> 16) ? (uint16_t)(num >> 16) : (uint16_t)num;
            vq->broken = false;
            return true;
        }
        if (msg->payload.state.num > UINT16_MAX) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_VRING_BASE: ring %u: base %" PRIu32 " is not a "
                        "split ring index (0..65535)", dev->name, vq->index,
                        msg->payload.state.num);
            return false;
        }
        vq->last_avail_idx = (uint16_t)msg->payload.state.num;
        vq->broken = false;
        return true;
    case VHOST_USER_GET_VRING_BASE:
        /*
         * Stops the ring; every request we took has been completed, and
         * so must be those a crashed predecessor left (the front-end may
         * clear the inflight area once this is answered).
         */
        if (dev->blk) {
            refbe_blk_finish_resubmits(dev, vq);
        }
        refbe_postcopy_touch_ring(dev, vq, "GET_VRING_BASE");
        ring_watch(dev, vq, -1);
        vq->started = false;
        reply->payload.state.index = vq->index;
        reply->payload.state.num = refbe_has_feature(dev, VIRTIO_F_RING_PACKED) ?
            (uint32_t)vq->pk_avail | (uint32_t)vq->pk_used << 16 : vq->last_avail_idx;
        return true;
    case VHOST_USER_SET_VRING_KICK: {
        int fd = take_vring_fd(msg, fds, nfds);

        ring_watch(dev, vq, fd);
        if (!refbe_vring_map(dev, vq, errp)) {
            return false;
        }
        refbe_postcopy_touch_ring(dev, vq, "SET_VRING_KICK");
        /* Resume where the driver's used ring says we are (packed: the base). */
        if (!refbe_has_feature(dev, VIRTIO_F_RING_PACKED)) {
            vq->used_idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
        }
        vq->signalled_used_valid = false;
        vq->started = true;
        vq->broken = false;
        /* With an inflight area, the heads a dead back-end left go first. */
        if (!refbe_inflight_ring_start(dev, vq, errp)) {
            return false;
        }
        ring_process(dev, vq);
        return true;
    }
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR: {
        int fd = take_vring_fd(msg, fds, nfds);
        int *slot = msg->hdr.request == VHOST_USER_SET_VRING_CALL ? &vq->call_fd
                                                                   : &vq->err_fd;

        if (*slot >= 0) {
            close(*slot);
        }
        *slot = fd;
        vq->signalled_used_valid = false;
        return true;
    }
    case VHOST_USER_SET_VRING_ENABLE:
        if (msg->payload.state.num > 1) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_VRING_ENABLE: ring %u: num %" PRIu32
                        ", expected 0 or 1", dev->name, vq->index,
                        msg->payload.state.num);
            return false;
        }
        vq->enabled = msg->payload.state.num;
        if (vq->enabled) {
            ring_process(dev, vq);
        }
        return true;
    case VHOST_USER_GET_CONFIG: {
        const VhostUserConfig *c = &msg->payload.config;

        if (c->offset > VHOST_USER_MAX_CONFIG_SIZE ||
            c->size > VHOST_USER_MAX_CONFIG_SIZE - c->offset) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: GET_CONFIG: offset %" PRIu32 " size %" PRIu32
                        " reaches past %d bytes", dev->name, c->offset, c->size,
                        VHOST_USER_MAX_CONFIG_SIZE);
            return false;
        }
        vhost_user_msg_init(reply, msg->hdr.request, msg->hdr.size);
        reply->payload.config.offset = c->offset;
        reply->payload.config.size = c->size;
        reply->payload.config.flags = c->flags;
        refbe_blk_get_config(dev, c->offset, c->size, reply->payload.config.region);
        return true;
    }
    case VHOST_USER_SET_CONFIG:
        return refbe_blk_set_config(dev, &msg->payload.config, errp);
    case VHOST_USER_NET_SET_MTU:
        return refbe_net_set_mtu(dev, msg->payload.u64, errp);
    case VHOST_USER_SET_STATUS:
        if (msg->payload.u64 > UINT8_MAX) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: SET_STATUS: 0x%" PRIx64 " is not a status byte",
                        dev->name, msg->payload.u64);
            return false;
        }
        dev->status = (uint8_t)msg->payload.u64;
        if (dev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
            refbe_scribble(dev, dev->opts->scribble);
        }
        return true;
    case VHOST_USER_GET_STATUS:
        reply->payload.u64 = dev->status;
        return true;
    case VHOST_USER_GET_INFLIGHT_FD:
        return refbe_inflight_get_fd(dev, &msg->payload.inflight,
                                   &reply->payload.inflight, reply_fd, errp);
    case VHOST_USER_SET_INFLIGHT_FD:
        return refbe_inflight_set_fd(dev, &msg->payload.inflight,
                                   nfds ? fds[0] : -1, errp);
    case VHOST_USER_SET_DEVICE_STATE_FD: {
        VhostUserTransferDeviceState t = msg->payload.transfer_state;
        uint64_t r = 0;
        bool ok = refbe_state_set_fd(dev, &t, fds, nfds, &r, errp);

        reply->payload.u64 = r;
        return ok;
    }
    case VHOST_USER_CHECK_DEVICE_STATE:
        reply->payload.u64 = refbe_state_check(dev);
        return true;
    case VHOST_USER_POSTCOPY_ADVISE:
        /* The reply is empty; the ufd travels with it. */
        return refbe_postcopy_advise(dev, reply_fd, errp);
    case VHOST_USER_POSTCOPY_LISTEN:
        return refbe_postcopy_listen(dev, errp);
    case VHOST_USER_POSTCOPY_END:
        reply->payload.u64 = refbe_postcopy_end(dev);
        return true;
    default:
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: not supported by this back-end", dev->name,
                    info->name);
        return false;
    }
}

/* ---- Socket I/O -------------------------------------------------------- */

/*
 * Sends a reply (the only thing a back-end sends on this socket), with fd
 * (when >= 0) attached to its first byte.
 */
static bool send_reply(RefBeDev *dev, VhostUserMsg *msg, int fd, GError **errp)
{
    size_t len = sizeof(msg->hdr) + msg->hdr.size;
    size_t done = 0;

    msg->hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;

    if (dev->opts->trace) {
        vhost_user_trace_msg_ring(dev->name, false, VHOST_USER_CHANNEL_FRONTEND,
                                  VHOST_USER_TRACE_TX, msg, fd >= 0, true,
                                  refbe_has_feature(dev, VIRTIO_F_RING_PACKED));
    }
    while (done < len) {
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {
            .iov_base = (uint8_t *)msg + done,
            .iov_len = len - done,
        };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t r;

        if (fd >= 0 && done == 0) {
            struct cmsghdr *c;

            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof(ctl.buf);
            c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        r = sendmsg(dev->sock, &mh, MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                        "%s: sending %s reply: %s", dev->name,
                        vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND,
                                                msg->hdr.request),
                        r < 0 ? g_strerror(errno) : "connection closed");
            return false;
        }
        done += r;
    }
    return true;
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
 * Reads the header (with the fds that travel with it) and the payload.
 * A clean EOF before the first byte is "disconnected" without an error
 * message worth shouting about; *eof tells the caller.
 */
static bool recv_msg(RefBeDev *dev, VhostUserMsg *msg, int *fds, size_t *nfds,
                     bool *eof, GError **errp)
{
    union {
        char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    size_t got = 0;

    *nfds = 0;
    *eof = false;
    while (got < sizeof(msg->hdr)) {
        struct iovec iov = {
            .iov_base = (uint8_t *)&msg->hdr + got,
            .iov_len = sizeof(msg->hdr) - got,
        };
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = ctl.buf,
            .msg_controllen = sizeof(ctl.buf),
        };
        ssize_t r = recvmsg(dev->sock, &mh, MSG_CMSG_CLOEXEC);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        /* Collect fds first so that every path below closes them. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); r >= 0 && c;
             c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                for (size_t i = 0; i < n; i++) {
                    int fd;

                    memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    if (*nfds < VHOST_USER_MAX_FDS) {
                        fds[(*nfds)++] = fd;
                    } else {
                        close(fd);
                    }
                }
            }
        }
        if (got == 0 && (r == 0 || (r < 0 && errno == ECONNRESET))) {
            *eof = true;
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                        "%s: front-end closed the connection", dev->name);
            return false;
        }
        if (r <= 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_PARTIAL_MESSAGE,
                        "%s: header cut short after %zu of %zu bytes: %s",
                        dev->name, got, sizeof(msg->hdr),
                        r < 0 ? g_strerror(errno) : "connection closed");
            return false;
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                        "%s: more than %d fds with one message", dev->name,
                        VHOST_USER_MAX_FDS);
            return false;
        }
        got += r;
    }
    /* Before reading a payload byte: the buffer holds at most this much. */
    if (msg->hdr.size > VHOST_USER_MAX_PAYLOAD_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "%s: %s: size %" PRIu32 " exceeds the maximum payload size %d",
                    dev->name,
                    vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND,
                                            msg->hdr.request),
                    msg->hdr.size, VHOST_USER_MAX_PAYLOAD_SIZE);
        return false;
    }
    got = 0;
    while (got < msg->hdr.size) {
        ssize_t r = recv(dev->sock, msg->payload.raw + got, msg->hdr.size - got, 0);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_PARTIAL_MESSAGE,
                        "%s: %s: payload cut short after %zu of %" PRIu32
                        " bytes: %s", dev->name,
                        vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND,
                                                msg->hdr.request),
                        got, msg->hdr.size,
                        r < 0 ? g_strerror(errno) : "connection closed");
            return false;
        }
        got += r;
    }
    return true;
}

/*
 * After the listening memory table's reply: the front-end acknowledges it
 * with a u64 0 under the same request code, once it has checked our
 * addresses and can translate our faults. Nothing of ours touches guest
 * RAM before that. A front-end that asked for REPLY_ACK on the table (as
 * QEMU does) then gets the usual ack as well.
 */
static bool await_table_ack(RefBeDev *dev, const VhostUserMsg *req)
{
    g_autofree VhostUserMsg *ack = g_new0(VhostUserMsg, 1);
    g_autoptr(GError) err = NULL;
    uint32_t code = dev->pc.ack_request;
    int fds[VHOST_USER_MAX_FDS];
    size_t nfds = 0;
    bool eof;

    dev->pc.ack_request = 0;
    if (!recv_msg(dev, ack, fds, &nfds, &eof, &err)) {
        close_fds(fds, nfds);
        refbe_log("%s (waiting for the postcopy table ack); dropping the connection",
                  err->message);
        return false;
    }
    close_fds(fds, nfds);
    if (dev->opts->trace) {
        vhost_user_trace_msg(dev->name, false, VHOST_USER_CHANNEL_FRONTEND,
                             VHOST_USER_TRACE_RX, ack, nfds, true);
    }
    if (ack->hdr.request != code || ack->hdr.size != sizeof(uint64_t) ||
        ack->payload.u64 != 0 || nfds) {
        refbe_log("%s: postcopy %s ack: got request %" PRIu32 " size %" PRIu32
                  " value %" PRIu64 " with %zu fds, expected %" PRIu32 ", 8 bytes, 0, "
                  "no fds; dropping the connection", dev->name,
                  vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, code),
                  ack->hdr.request, ack->hdr.size,
                  ack->hdr.size >= sizeof(uint64_t) ? ack->payload.u64 : 0, nfds, code);
        return false;
    }
    if ((req->hdr.flags & VHOST_USER_NEED_REPLY_MASK) &&
        (dev->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
        vhost_user_msg_init(ack, code, sizeof(uint64_t));
        ack->payload.u64 = 0;
        if (!send_reply(dev, ack, -1, &err)) {
            refbe_log("%s", err->message);
            return false;
        }
    }
    refbe_postcopy_table_acked(dev);
    return true;
}

/* One request, start to end. False: the connection is over. */
static bool serve_one(RefBeDev *dev)
{
    g_autofree VhostUserMsg *msg = g_new0(VhostUserMsg, 1);
    g_autofree VhostUserMsg *reply = g_new0(VhostUserMsg, 1);
    g_autoptr(GError) err = NULL;
    int fds[VHOST_USER_MAX_FDS];
    size_t nfds = 0;
    bool eof = false, has_reply = false, ok;
    int reply_fd = -1;

    if (!recv_msg(dev, msg, fds, &nfds, &eof, &err)) {
        close_fds(fds, nfds);
        refbe_log(eof ? "%s" : "%s; dropping the connection", err->message);
        return false;
    }
    if (dev->opts->trace) {
        vhost_user_trace_msg_ring(dev->name, false, VHOST_USER_CHANNEL_FRONTEND,
                                  VHOST_USER_TRACE_RX, msg, nfds, false,
                                  refbe_has_feature(dev, VIRTIO_F_RING_PACKED));
    }
    if (!vhost_user_msg_validate_request(VHOST_USER_CHANNEL_FRONTEND, msg, nfds,
                                         &err)) {
        close_fds(fds, nfds);
        refbe_log("%s: %s; dropping the connection", dev->name, err->message);
        return false;
    }

    ok = handle_request(dev, msg, fds, nfds, reply, &has_reply, &reply_fd, &err);
    close_fds(fds, nfds);   /* the ones the handler did not keep */

    if (has_reply && ok) {
        bool sent = send_reply(dev, reply, reply_fd, &err);

        /* The receiver has its own copy now (or never will). */
        if (reply_fd >= 0) {
            close(reply_fd);
        }
        if (!sent) {
            refbe_log("%s", err->message);
            return false;
        }
        if (dev->pc.ack_request && !await_table_ack(dev, msg)) {
            return false;
        }
    } else if ((msg->hdr.flags & VHOST_USER_NEED_REPLY_MASK) && !has_reply &&
               (dev->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
        g_autoptr(GError) send_err = NULL;

        vhost_user_msg_init(reply, msg->hdr.request, sizeof(uint64_t));
        reply->payload.u64 = ok ? 0 : 1;
        if (!send_reply(dev, reply, -1, &send_err)) {
            refbe_log("%s", send_err->message);
            ok = false;
        }
    }
    if (!ok && err) {
        refbe_log("%s; dropping the connection", err->message);
    }
    return ok;
}

/* Drains a kick eventfd without blocking (the fd may have been replaced). */
static void drain_kick(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v;

    if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        ssize_t r = read(fd, &v, sizeof(v));

        (void)r;
    }
}

void refbe_dev_serve(RefBeDev *dev, int fd, volatile int *quit)
{
    struct timeval tv = { .tv_sec = REFBE_RECV_TIMEOUT_SEC };
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = REFBE_EP_SOCKET };
    bool running = true;

    dev->sock = fd;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    dev->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (dev->epfd < 0 || epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        refbe_log("%s: epoll: %s", dev->name, g_strerror(errno));
        running = false;
    }
    refbe_log("%s: front-end connected", dev->name);

    while (running && !*quit) {
        struct epoll_event events[16];
        bool pending = false;
        int n;

        for (unsigned i = 0; i < dev->nvrings; i++) {
            pending |= dev->vrings[i].pending;
        }
        /* With rings over budget, only peek at the fds before going on. */
        n = epoll_pwait(dev->epfd, events, G_N_ELEMENTS(events),
                        pending ? 0 : -1, &dev->waitmask);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            refbe_log("%s: epoll_wait: %s", dev->name, g_strerror(errno));
            break;
        }
        for (int i = 0; i < n && running; i++) {
            uint64_t tag = events[i].data.u64;

            if (tag == REFBE_EP_SOCKET) {
                running = serve_one(dev);
            } else if (tag < dev->nvrings) {
                RefBeVring *vq = &dev->vrings[tag];

                if (vq->kick_fd >= 0) {
                    drain_kick(vq->kick_fd);
                    vq->pending = false;
                    ring_process(dev, vq);
                }
            }
        }
        for (unsigned i = 0; running && i < dev->nvrings; i++) {
            RefBeVring *vq = &dev->vrings[i];

            if (vq->pending) {
                vq->pending = false;
                ring_process(dev, vq);
            }
        }
    }

    reset_connection_state(dev);
    if (dev->epfd >= 0) {
        close(dev->epfd);
    }
    dev->epfd = -1;
    close(dev->sock);
    dev->sock = -1;
    refbe_log("%s: front-end gone; connection state released", dev->name);
}
