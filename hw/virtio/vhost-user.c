/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * VhostOps for vhost-user: each op only builds a payload and hands it to
 * the request path in vhost-user-conn.c, which owns gating, flags, reply
 * validation (including the table's semantic checks, e.g. GET_CONFIG's
 * range) and error handling. The requests of one concern live in
 * their own files (negotiation, memory table, status, IOTLB, rings,
 * shared objects); this file ties them to the VhostOps table. What is
 * left here are the checks that need the device's state (a split ring's
 * base fits 16 bits).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-inflight.h"
#include "hw/virtio/vhost-packed.h"
#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost-user-backend-chan.h"
#include "hw/virtio/vhost-user-mem.h"
#include "hw/virtio/vhost-user-negotiate.h"
#include "hw/virtio/vhost-user-rings.h"
#include "hw/virtio/vhost-user-status.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"
#include "hw/virtio/virtio.h"

static VhostUserState *to_user(struct vhost_dev *dev)
{
    return dev->opaque;
}

static void msg_prepare(VhostUserMsg *msg, uint32_t request, uint32_t size)
{
    /* Only header and the bytes sent are cleared: no stack garbage on the wire. */
    memset(msg, 0, sizeof(msg->hdr) + size);
    msg->hdr.request = request;
    msg->hdr.size = size;
}

static bool user_send(struct vhost_dev *dev, VhostUserMsg *msg, const int *fds,
                      size_t nfds, unsigned flags, GError **errp)
{
    return vhost_user_send(to_user(dev), dev->vq_index, msg, fds, nfds, flags, errp);
}

static bool user_send_u64(struct vhost_dev *dev, uint32_t request, uint64_t val,
                          unsigned flags, GError **errp)
{
    return vhost_user_send_u64(to_user(dev), dev->vq_index, request, val, flags, errp);
}

static bool user_send_state(struct vhost_dev *dev, uint32_t request, unsigned int index,
                            unsigned int num, unsigned flags, GError **errp)
{
    VhostUserMsg msg;

    msg_prepare(&msg, request, sizeof(VhostUserVringState));
    msg.payload.state.index = index;
    msg.payload.state.num = num;
    return user_send(dev, &msg, NULL, 0, flags, errp);
}

static bool user_send_none(struct vhost_dev *dev, uint32_t request, GError **errp)
{
    VhostUserMsg msg;

    msg_prepare(&msg, request, 0);
    return user_send(dev, &msg, NULL, 0, 0, errp);
}

static bool user_backend_init(struct vhost_dev *dev, void *opaque, GError **errp)
{
    VhostUserState *u = opaque;

    dev->opaque = u;
    vhost_user_register_dev(u, dev);
    vhost_user_mem_note_guest_ram(u, dev->mem);
    if (!u->negotiated && !vhost_user_negotiate(u, errp)) {
        return false;
    }
    /* Once per connection, right after negotiation (a retry if it failed). */
    if (vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_BACKEND_REQ) &&
        !u->backend_chan && !vhost_user_backend_chan_setup(u, errp)) {
        return false;
    }
    return true;
}

static void user_get_negotiated(struct vhost_dev *dev, uint64_t *protocol_features,
                                uint64_t *max_queues)
{
    VhostUserState *u = to_user(dev);

    *protocol_features = vhost_user_protocol_features(u);
    *max_queues = u->queue_num;
}

static void user_backend_cleanup(struct vhost_dev *dev)
{
    /* The state belongs to the device front-end, shared by its vhost_devs. */
    if (dev->opaque) {
        vhost_user_unregister_dev(to_user(dev), dev);
    }
    dev->opaque = NULL;
}

static int user_get_vq_index(struct vhost_dev *dev, int idx)
{
    return (int)dev->vq_index + idx;
}

static bool user_get_features(struct vhost_dev *dev, uint64_t *features, GError **errp)
{
    VhostUserState *u = to_user(dev);

    /* Negotiation already asked on this connection; don't ask twice. */
    if (u->negotiated) {
        *features = vhost_user_backend_features(u);
        return true;
    }
    return vhost_user_call_u64(u, dev->vq_index, VHOST_USER_GET_FEATURES, features, errp);
}

#define USER_STATUS_FEATURES_OK (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
                                 VIRTIO_CONFIG_S_FEATURES_OK)

static bool user_set_features(struct vhost_dev *dev, uint64_t features, GError **errp)
{
    VhostUserState *u = to_user(dev);

    /*
     * Behind an IOMMU the back-end learns translations through IOTLB
     * misses on the back-end channel, each of which must be acked.
     */
    if ((features & (1ull << VIRTIO_F_IOMMU_PLATFORM)) &&
        (!vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_REPLY_ACK) ||
         !vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_BACKEND_REQ) ||
         !u->backend_chan)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: SET_FEATURES: VIRTIO_F_IOMMU_PLATFORM (feature bit %d) needs "
                    "protocol features REPLY_ACK and BACKEND_REQ, which the back-end "
                    "does not offer", dev->name, VIRTIO_F_IOMMU_PLATFORM);
        return false;
    }
    if (!user_send_u64(dev, VHOST_USER_SET_FEATURES, features, VHOST_USER_REQ_SYNC, errp)) {
        return false;
    }
    if (vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_STATUS)) {
        return vhost_user_set_status(u, USER_STATUS_FEATURES_OK, errp);
    }
    return true;
}

static bool user_dev_start(struct vhost_dev *dev, bool started, GError **errp)
{
    VhostUserState *u = to_user(dev);
    bool status = vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_STATUS);

    if (started) {
        /* DRIVER_OK once every ring of the device runs: the last vhost_dev. */
        return !status || !vhost_user_is_last_dev(u, dev) ||
               vhost_user_set_status(u, USER_STATUS_FEATURES_OK |
                                     VIRTIO_CONFIG_S_DRIVER_OK, errp);
    }
    /* A stopped ring's doorbell page must not be used any more. */
    vhost_user_backend_chan_unmap_notifiers(u->backend_chan, dev->vq_index, dev->nvqs);
    /*
     * Status 0 resets the device: only once every ring has been stopped
     * and its base read. vhost_dev 0 stops last (devices stop in reverse
     * order: it owns the whole-device state).
     */
    if (status && dev->vq_index == 0 && vhost_user_is_usable(u)) {
        GError *err = NULL;

        if (!vhost_user_set_status(u, 0, &err)) {
            vhost_user_log(VHOST_USER_LOG_WARNING, NULL, "%s", err->message);
            g_error_free(err);
        }
    }
    return true;
}

static bool user_set_owner(struct vhost_dev *dev, GError **errp)
{
    return user_send_none(dev, VHOST_USER_SET_OWNER, errp);
}

static bool user_reset_device(struct vhost_dev *dev, GError **errp)
{
    /* RESET_OWNER is deprecated, but it is all an old back-end knows. */
    if (vhost_user_has_protocol_feature(to_user(dev), VHOST_USER_PROTOCOL_F_RESET_DEVICE)) {
        return user_send_none(dev, VHOST_USER_RESET_DEVICE, errp);
    }
    return user_send_none(dev, VHOST_USER_RESET_OWNER, errp);
}

static bool user_set_mem_table(struct vhost_dev *dev, GuestMemory *mem, GError **errp)
{
    return vhost_user_mem_update(to_user(dev), dev->name, dev->vq_index, mem, errp);
}

static bool user_get_inflight_fd(struct vhost_dev *dev, uint16_t queue_size,
                                 struct vhost_inflight *inflight, GError **errp)
{
    VhostUserState *u = to_user(dev);
    uint16_t num_queues = (uint16_t)dev->nvqs;
    VhostUserMsg msg, reply;
    GError *err = NULL;
    int fd = -1;

    msg_prepare(&msg, VHOST_USER_GET_INFLIGHT_FD, sizeof(VhostUserInflight));
    msg.payload.inflight.num_queues = num_queues;
    msg.payload.inflight.queue_size = queue_size;
    if (!vhost_user_call_fd(u, dev->vq_index, &msg, NULL, 0, &reply, &fd, errp)) {
        return false;
    }
    /* A zero size is the back-end saying it does not track this device. */
    if (reply.payload.inflight.mmap_size == 0) {
        if (fd >= 0) {
            close(fd);
        }
        return true;
    }
    if (!vhost_inflight_take(inflight, dev->name, fd, reply.payload.inflight.mmap_size,
                             reply.payload.inflight.mmap_offset, num_queues, queue_size,
                             &err)) {
        vhost_user_fail(u, errp, "%s", err->message);
        g_error_free(err);
        return false;
    }
    return true;
}

static bool user_set_inflight_fd(struct vhost_dev *dev,
                                 const struct vhost_inflight *inflight, GError **errp)
{
    VhostUserMsg msg;

    msg_prepare(&msg, VHOST_USER_SET_INFLIGHT_FD, sizeof(VhostUserInflight));
    msg.payload.inflight.mmap_size = inflight->size;
    msg.payload.inflight.mmap_offset = inflight->offset;
    msg.payload.inflight.num_queues = inflight->num_queues;
    msg.payload.inflight.queue_size = inflight->queue_size;
    return user_send(dev, &msg, &inflight->fd, 1, VHOST_USER_REQ_SYNC, errp);
}

static unsigned user_mem_max_regions(struct vhost_dev *dev)
{
    return vhost_user_mem_max_regions(to_user(dev));
}

static bool user_set_vring_num(struct vhost_dev *dev, const struct vhost_vring_state *s,
                               GError **errp)
{
    return user_send_state(dev, VHOST_USER_SET_VRING_NUM, s->index, s->num, 0, errp);
}

static bool user_set_vring_base(struct vhost_dev *dev, const struct vhost_vring_state *s,
                                GError **errp)
{
    return user_send_state(dev, VHOST_USER_SET_VRING_BASE, s->index, s->num, 0, errp);
}

static bool user_set_vring_addr(struct vhost_dev *dev, const struct vhost_vring_addr *a,
                                GError **errp)
{
    VhostUserMsg msg;
    /* With logging on, the back-end must be logging before we go on. */
    unsigned flags = (a->flags & (1u << VHOST_VRING_F_LOG)) ? VHOST_USER_REQ_SYNC : 0;

    msg_prepare(&msg, VHOST_USER_SET_VRING_ADDR, sizeof(VhostUserVringAddr));
    msg.payload.addr.index = a->index;
    msg.payload.addr.flags = a->flags;
    msg.payload.addr.desc_user_addr = a->desc_user_addr;
    msg.payload.addr.used_user_addr = a->used_user_addr;
    msg.payload.addr.avail_user_addr = a->avail_user_addr;
    msg.payload.addr.log_guest_addr = a->log_guest_addr;
    return user_send(dev, &msg, NULL, 0, flags, errp);
}

static bool user_get_vring_base(struct vhost_dev *dev, struct vhost_vring_state *s,
                                GError **errp)
{
    VhostUserState *u = to_user(dev);
    VhostUserMsg msg, reply;

    msg_prepare(&msg, VHOST_USER_GET_VRING_BASE, sizeof(VhostUserVringState));
    msg.payload.state.index = s->index;
    if (!vhost_user_call(u, dev->vq_index, &msg, &reply, errp)) {
        return false;
    }
    /* The ring index was checked against the request by the table's check. */
    if (vhost_dev_packed(dev)) {
        unsigned i = s->index - dev->vq_index;
        unsigned num = i < dev->nvqs ? dev->vqs[i].num : 0;
        const char *why = "the ring is not this device's";
        uint32_t base;

        /* Packed: two 15-bit indices with wrap counters, each below the size. */
        if (!vhost_packed_base_check(reply.payload.state.num, num, &base, &why)) {
            return vhost_user_fail(u, errp, "%s: GET_VRING_BASE reply: packed base 0x%08"
                                   PRIx32 " of ring %u (%u entries): %s", u->name,
                                   reply.payload.state.num, s->index, num, why);
        }
        s->num = base;
        return true;
    }
    /* Split rings: the base is a 16-bit ring index; anything more is garbage. */
    if (reply.payload.state.num > UINT16_MAX) {
        return vhost_user_fail(u, errp, "%s: GET_VRING_BASE reply: base %" PRIu32
                               " of ring %u does not fit a split ring's 16-bit index",
                               u->name, reply.payload.state.num, s->index);
    }
    s->num = reply.payload.state.num;
    return true;
}

static bool user_set_vring_file(struct vhost_dev *dev, uint32_t request,
                                const struct vhost_vring_file *f, GError **errp)
{
    VhostUserMsg msg;

    if (f->index > VHOST_USER_VRING_IDX_MASK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: %s: ring %u does not fit the 8-bit ring index",
                    dev->name, vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, request),
                    f->index);
        return false;
    }
    msg_prepare(&msg, request, sizeof(uint64_t));
    msg.payload.u64 = f->index & VHOST_USER_VRING_IDX_MASK;
    if (f->fd < 0) {
        msg.payload.u64 |= VHOST_USER_VRING_NOFD_MASK;
        return user_send(dev, &msg, NULL, 0, 0, errp);
    }
    return user_send(dev, &msg, &f->fd, 1, 0, errp);
}

static bool user_set_vring_kick(struct vhost_dev *dev, const struct vhost_vring_file *f,
                                GError **errp)
{
    return user_set_vring_file(dev, VHOST_USER_SET_VRING_KICK, f, errp);
}

static bool user_set_vring_call(struct vhost_dev *dev, const struct vhost_vring_file *f,
                                GError **errp)
{
    return user_set_vring_file(dev, VHOST_USER_SET_VRING_CALL, f, errp);
}

static bool user_set_vring_err(struct vhost_dev *dev, const struct vhost_vring_file *f,
                               GError **errp)
{
    return user_set_vring_file(dev, VHOST_USER_SET_VRING_ERR, f, errp);
}

static bool user_set_vring_enable(struct vhost_dev *dev, unsigned int idx, bool enable,
                                  GError **errp)
{
    /* The caller relies on the ring being (in)active when this returns. */
    return user_send_state(dev, VHOST_USER_SET_VRING_ENABLE, idx, enable ? 1 : 0,
                           VHOST_USER_REQ_SYNC, errp);
}

static void user_batch_begin(struct vhost_dev *dev)
{
    vhost_user_batch_begin(to_user(dev));
}

static bool user_batch_end(struct vhost_dev *dev, GError **errp)
{
    return vhost_user_batch_end(to_user(dev), errp);
}

static bool user_set_vring_endian(struct vhost_dev *dev, unsigned int idx,
                                  bool big_endian, GError **errp)
{
    return user_send_state(dev, VHOST_USER_SET_VRING_ENDIAN, idx, big_endian ? 1 : 0,
                           0, errp);
}

static bool user_config_check_len(struct vhost_dev *dev, const char *req,
                                  uint32_t offset, uint32_t len, GError **errp)
{
    if (len == 0 || len > VHOST_USER_MAX_CONFIG_SIZE ||
        offset > VHOST_USER_MAX_CONFIG_SIZE - len) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: %s: config range offset %" PRIu32 " size %" PRIu32
                    " outside 1..%d bytes", dev->name, req, offset, len,
                    VHOST_USER_MAX_CONFIG_SIZE);
        return false;
    }
    return true;
}

static bool user_get_config(struct vhost_dev *dev, uint8_t *config, uint32_t offset,
                            uint32_t len, GError **errp)
{
    VhostUserState *u = to_user(dev);
    VhostUserMsg msg, reply;

    if (!user_config_check_len(dev, "GET_CONFIG", offset, len, errp)) {
        return false;
    }
    msg_prepare(&msg, VHOST_USER_GET_CONFIG, VHOST_USER_CONFIG_HDR_SIZE + len);
    msg.payload.config.offset = offset;
    msg.payload.config.size = len;
    if (!vhost_user_call(u, dev->vq_index, &msg, &reply, errp)) {
        return false;
    }
    /* Offset and size were checked against the request by the table's check. */
    memcpy(config, reply.payload.config.region, len);
    return true;
}

static bool user_set_config(struct vhost_dev *dev, const uint8_t *data, uint32_t offset,
                            uint32_t len, uint32_t flags, GError **errp)
{
    VhostUserMsg msg;

    if (!user_config_check_len(dev, "SET_CONFIG", offset, len, errp)) {
        return false;
    }
    msg_prepare(&msg, VHOST_USER_SET_CONFIG, VHOST_USER_CONFIG_HDR_SIZE + len);
    msg.payload.config.offset = offset;
    msg.payload.config.size = len;
    msg.payload.config.flags = flags;
    memcpy(msg.payload.config.region, data, len);
    return user_send(dev, &msg, NULL, 0, 0, errp);
}

static bool user_net_set_mtu(struct vhost_dev *dev, uint16_t mtu, GError **errp)
{
    return user_send_u64(dev, VHOST_USER_NET_SET_MTU, mtu, VHOST_USER_REQ_SYNC, errp);
}

static bool user_send_rarp(struct vhost_dev *dev, const uint8_t mac[6], GError **errp)
{
    uint64_t u64 = 0;

    /* The spec puts the MAC in the first six bytes of the u64's memory. */
    memcpy(&u64, mac, 6);
    return user_send_u64(dev, VHOST_USER_SEND_RARP, u64, 0, errp);
}

/* SET_DEVICE_STATE_FD reply: bits 0..7 an error code, bit 8 "no fd attached". */
#define USER_DEVICE_STATE_ERR_MASK  ((uint64_t)0xff)
#define USER_DEVICE_STATE_NOFD      ((uint64_t)1 << 8)

static bool user_set_device_state_fd(struct vhost_dev *dev, VhostDeviceStateDirection dir,
                                     VhostDeviceStatePhase phase, int fd, int *backend_fd,
                                     GError **errp)
{
    VhostUserState *u = to_user(dev);
    VhostUserMsg msg, reply;
    uint64_t r;
    int their_fd = -1;

    *backend_fd = -1;
    msg_prepare(&msg, VHOST_USER_SET_DEVICE_STATE_FD, sizeof(VhostUserTransferDeviceState));
    msg.payload.transfer_state.direction = dir;
    msg.payload.transfer_state.phase = phase;
    if (!vhost_user_call_fd(u, dev->vq_index, &msg, &fd, 1, &reply, &their_fd, errp)) {
        return false;
    }
    /* Untrusted: the flag and the fd must agree, and no unknown bit may be set. */
    r = reply.payload.u64;
    if (r & ~(USER_DEVICE_STATE_ERR_MASK | USER_DEVICE_STATE_NOFD)) {
        if (their_fd >= 0) {
            close(their_fd);
        }
        return vhost_user_fail(u, errp, "%s: SET_DEVICE_STATE_FD reply: reserved bits set "
                               "(0x%" PRIx64 ")", u->name, r);
    }
    if (!(r & USER_DEVICE_STATE_NOFD) != (their_fd >= 0)) {
        if (their_fd >= 0) {
            close(their_fd);
        }
        return vhost_user_fail(u, errp, "%s: SET_DEVICE_STATE_FD reply: the no-fd flag "
                               "is %s but %s fd came with it", u->name,
                               (r & USER_DEVICE_STATE_NOFD) ? "set" : "clear",
                               their_fd >= 0 ? "an" : "no");
    }
    if (r & USER_DEVICE_STATE_ERR_MASK) {
        if (their_fd >= 0) {
            close(their_fd);
        }
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "%s: SET_DEVICE_STATE_FD: the back-end refused the %s transfer "
                    "(error %" PRIu64 ")", u->name,
                    dir == VHOST_DEVICE_STATE_SAVE ? "save" : "load",
                    r & USER_DEVICE_STATE_ERR_MASK);
        return false;
    }
    *backend_fd = their_fd;
    return true;
}

static bool user_check_device_state(struct vhost_dev *dev, GError **errp)
{
    VhostUserState *u = to_user(dev);
    uint64_t result;

    if (!vhost_user_call_u64(u, dev->vq_index, VHOST_USER_CHECK_DEVICE_STATE, &result,
                             errp)) {
        return false;
    }
    /* A failed transfer is the back-end's answer, not a protocol error. */
    if (result != 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "%s: CHECK_DEVICE_STATE: the back-end reports the transfer "
                    "failed (result %" PRIu64 ")", u->name, result);
        return false;
    }
    return true;
}

static bool user_set_log_base(struct vhost_dev *dev, int fd, uint64_t size,
                              uint64_t offset, GError **errp)
{
    VhostUserMsg msg;

    /*
     * The table reads the reply exactly when LOG_SHMFD was negotiated
     * (none comes otherwise: rust-vmm #217); SYNC makes the call wait for
     * it, or for an ack without LOG_SHMFD, so the old log may go after.
     */
    msg_prepare(&msg, VHOST_USER_SET_LOG_BASE, sizeof(VhostUserLog));
    msg.payload.log.mmap_size = size;
    msg.payload.log.mmap_offset = offset;
    return user_send(dev, &msg, &fd, 1, VHOST_USER_REQ_SYNC, errp);
}

static bool user_set_log_features(struct vhost_dev *dev, uint64_t features, GError **errp)
{
    /* The back-end must log before the caller counts on it. */
    return user_send_u64(dev, VHOST_USER_SET_FEATURES, features, VHOST_USER_REQ_SYNC, errp);
}

static bool user_is_connected(struct vhost_dev *dev)
{
    VhostUserState *u = to_user(dev);

    return u && vhost_user_is_usable(u);
}

const VhostOps user_ops = {
    .backend_init = user_backend_init,
    .backend_cleanup = user_backend_cleanup,
    .get_vq_index = user_get_vq_index,
    .get_features = user_get_features,
    .get_negotiated = user_get_negotiated,
    .set_features = user_set_features,
    .set_owner = user_set_owner,
    .reset_device = user_reset_device,
    .set_mem_table = user_set_mem_table,
    .mem_max_regions = user_mem_max_regions,
    .get_inflight_fd = user_get_inflight_fd,
    .set_inflight_fd = user_set_inflight_fd,
    .set_vring_num = user_set_vring_num,
    .set_vring_addr = user_set_vring_addr,
    .set_vring_base = user_set_vring_base,
    .get_vring_base = user_get_vring_base,
    .set_vring_kick = user_set_vring_kick,
    .set_vring_call = user_set_vring_call,
    .set_vring_err = user_set_vring_err,
    .set_vring_enable = user_set_vring_enable,
    .set_vring_endian = user_set_vring_endian,
    .get_config = user_get_config,
    .set_config = user_set_config,
    .net_set_mtu = user_net_set_mtu,
    .send_rarp = user_send_rarp,
    .is_connected = user_is_connected,
    .dev_start = user_dev_start,
    .batch_begin = user_batch_begin,
    .batch_end = user_batch_end,
    .set_device_state_fd = user_set_device_state_fd,
    .check_device_state = user_check_device_state,
    .set_log_base = user_set_log_base,
    .set_log_features = user_set_log_features,
};
