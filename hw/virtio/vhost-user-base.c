/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Connect / disconnect / reconnect / start / stop plumbing shared by the
 * vhost-user device front-ends. See include/hw/virtio/vhost-user-base.h.
 *
 * Everything the back-end says reaches us already validated by the
 * request path (sizes, fds, flags); what is left here are the semantic
 * checks of a whole device: VERSION_1 on offer, enough queues, the
 * features a reconnect needs still on offer.
 *
 * Events come from the chardev through the loop, never from inside a
 * request, so nothing below is re-entered while it runs; a failure inside
 * a request drops the connection and we learn of it from CLOSED later.
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-socket-int.h"
#include "hw/virtio/vhost-user-backend-chan.h"
#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-packed.h"
#include "hw/virtio/vhost-user-device-state.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

static void vub_notify(VhostUserBase *vub, VhostUserBaseEvent ev, unsigned nrings,
                       const GError *err)
{
    if (vub->notify) {
        vub->notify(vub, ev, nrings, err, vub->notify_opaque);
    }
}

unsigned vhost_user_base_total_rings(const VhostUserBase *vub)
{
    return vub->ndevs * vub->rings_per_dev;
}

/*
 * After a failure: when a new connection may help (the back-end crashed,
 * timed out, sent garbage), drop this one; with reconnect-ms the chardev
 * tries again and the device is brought up from scratch. When it cannot
 * (a feature or queue-count mismatch), dropping would only make a client
 * chardev retry the same failure forever: the connection is left idle
 * instead, and a restarted back-end closes it, which starts a fresh try.
 * The request path has already dropped the connection for protocol errors.
 */
static void vub_drop(VhostUserBase *vub, const GError *err)
{
    if (vhost_user_error_should_reconnect(err)) {
        char_socket_disconnect(vub->chr, err->message);
    }
}

/*
 * Reports an error that happened with nobody to return it to (inside an
 * event). A back-end that misbehaves never takes the VMM down.
 */
static void vub_fail(VhostUserBase *vub, GError *err)
{
    vub_notify(vub, VHOST_USER_BASE_ERROR, 0, err);
    vub_drop(vub, err);
}

void vhost_user_base_report_error(VhostUserBase *vub, GError *err)
{
    vub_fail(vub, err);
}

static bool vub_start(VhostUserBase *vub, GError **errp)
{
    VirtIODevice *vdev = &vub->vdev;
    uint64_t backend = vub->devs[0].features;
    uint64_t acked;
    unsigned i;

    if (vub->started) {
        return true;
    }
    if (!vub->ready) {
        /* No back-end right now: the next OPENED starts the rings. */
        return true;
    }

    for (unsigned q = 0; q < vdev->nvqs; q++) {
        const VirtQueue *vq = &vdev->vq[q];

        if (!vq->num || !vq->desc_gpa || !vq->avail_gpa || !vq->used_gpa) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                        "%s: queue %u was not set up by the driver before "
                        "DRIVER_OK", vdev->id, q);
            return false;
        }
    }

    acked = vub->klass->backend_acked ?
        vub->klass->backend_acked(vub, vdev->guest_features, backend) :
        vdev->guest_features;
    /* Bit 30 is a vhost-user transport bit, never a guest feature. */
    acked &= ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES);

    for (i = 0; i < vub->ndevs; i++) {
        struct vhost_dev *hdev = &vub->devs[i];

        if (!vhost_dev_set_acked_features(hdev, acked, errp)) {
            return false;
        }
        for (unsigned j = 0; j < hdev->nvqs; j++) {
            const VirtQueue *vq = &vdev->vq[hdev->vq_index + j];

            hdev->vqs[j].num = vq->num;
            hdev->vqs[j].desc_gpa = vq->desc_gpa;
            hdev->vqs[j].avail_gpa = vq->avail_gpa;
            hdev->vqs[j].used_gpa = vq->used_gpa;
        }
    }

    if (vub->klass->pre_start && !vub->klass->pre_start(vub, errp)) {
        return false;
    }
    vub->start_attempted = true;

    /* vhost_dev 0 goes first: it sends SET_FEATURES and the memory table. */
    for (i = 0; i < vub->ndevs; i++) {
        if (!vhost_dev_start(&vub->devs[i], errp)) {
            while (i-- > 0) {
                vhost_dev_stop(&vub->devs[i]);
            }
            return false;
        }
    }
    vub->started = true;
    vub_notify(vub, VHOST_USER_BASE_STARTED, vhost_user_base_total_rings(vub), NULL);
    return true;
}

static void vub_stop(VhostUserBase *vub)
{
    if (!vub->started) {
        return;
    }
    /* Reverse order: vhost_dev 0 owns the device-wide state. */
    for (unsigned i = vub->ndevs; i-- > 0;) {
        vhost_dev_stop(&vub->devs[i]);
    }
    vub->started = false;
    vub_notify(vub, VHOST_USER_BASE_STOPPED, vhost_user_base_total_rings(vub), NULL);
}

/*
 * iommu_platform=on is a promise to the driver that addresses are IOVAs;
 * a back-end that cannot take IOTLB updates (no IOMMU_PLATFORM, or no
 * back-end channel for its misses and no REPLY_ACK for our updates)
 * would read guest memory at the wrong addresses, so it is refused here
 * rather than at SET_FEATURES, where the driver has already been told.
 */
static bool vub_iommu_usable(VhostUserBase *vub, GError **errp)
{
    const struct vhost_dev *hdev = &vub->devs[0];

    if (!virtio_has_feature(hdev->features, VIRTIO_F_IOMMU_PLATFORM)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_FEATURES: iommu_platform=on but the back-end does not "
                    "offer VIRTIO_F_IOMMU_PLATFORM (features 0x%" G_GINT64_MODIFIER
                    "x)", vub->vdev.id, hdev->features);
        return false;
    }
    if (!vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_BACKEND_REQ) ||
        !vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_REPLY_ACK)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_PROTOCOL_FEATURES: iommu_platform=on needs protocol "
                    "features BACKEND_REQ and REPLY_ACK (negotiated 0x%"
                    G_GINT64_MODIFIER "x)", vub->vdev.id, hdev->protocol_features);
        return false;
    }
    return true;
}

static bool vub_log_reconnected(VhostUserBase *vub, GError **errp);

static bool vub_negotiate(VhostUserBase *vub, GError **errp)
{
    uint64_t features;

    /* A new connection: nothing negotiated on the old one still holds. */
    vhost_user_state_reset(vub->user);
    for (unsigned i = 0; i < vub->ndevs; i++) {
        if (!vhost_dev_connect(&vub->devs[i], errp)) {
            return false;
        }
    }

    features = vub->devs[0].features;
    if (!virtio_has_feature(features, VIRTIO_F_VERSION_1)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_FEATURES: back-end does not offer VIRTIO_F_VERSION_1 "
                    "(features 0x%" G_GINT64_MODIFIER "x)", vub->vdev.id, features);
        return false;
    }
    if (vub->iommu_platform && !vub_iommu_usable(vub, errp)) {
        return false;
    }
    if (vub->klass->connected && !vub->klass->connected(vub, errp)) {
        return false;
    }
    return vub_log_reconnected(vub, errp) && vhost_user_base_postcopy_reconnected(vub, errp);
}

/*
 * Which requests a back-end that just went away leaves in doubt. The
 * rings resume from the used index in guest RAM; a split ring without
 * VIRTIO_F_IN_ORDER may complete requests out of order, so between the
 * used index and the avail index the old back-end saw, some requests may
 * be done and others not, and below the used index some may never have
 * been done: resuming would redo some and skip others, and a redone head
 * the driver already reused completes someone else's request. Only an
 * inflight area (the next back-end resubmits exactly what was in flight)
 * or IN_ORDER (everything below the used index is done, nothing above it)
 * makes resuming exact. Otherwise, if any request was outstanding, the
 * driver must reset the device and submit them again. Called right after
 * the connection is gone, when no back-end can take more.
 */
static unsigned vub_count_lost(VhostUserBase *vub)
{
    const struct vhost_dev *hdev0 = &vub->devs[0];
    unsigned lost = 0;

    if (!vub->reset_if_lost || hdev0->inflight_in_use ||
        virtio_has_feature(vub->vdev.guest_features, VIRTIO_F_IN_ORDER)) {
        return 0;
    }
    for (unsigned i = 0; i < vub->ndevs; i++) {
        const struct vhost_dev *hdev = &vub->devs[i];

        for (unsigned j = 0; j < hdev->nvqs; j++) {
            const struct vhost_virtqueue *vq = &hdev->vqs[j];
            uint16_t avail, outstanding;

            if (vq->num && vhost_dev_packed(hdev)) {
                unsigned pending;

                /*
                 * packed_base now is where the used descriptors end; what
                 * is still marked available after it is in doubt.
                 */
                vhost_packed_base_from_ram(vub->mem, vq->desc_gpa, vq->num,
                                           vq->packed_base, &pending);
                lost += pending;
                continue;
            }
            if (!vq->num ||
                !guest_memory_read(vub->mem, vq->avail_gpa + 2, &avail, sizeof(avail))) {
                continue;
            }
            /*
             * last_avail_idx now holds the used index (vhost_dev_disconnect),
             * which the back-end wrote: untrusted. A driver never has more
             * than a ring's worth outstanding, so more means a lying used
             * index, and the whole ring is in doubt.
             */
            outstanding = (uint16_t)(GUINT16_FROM_LE(avail) - vq->last_avail_idx);
            lost += MIN(outstanding, vq->num);
        }
    }
    return lost;
}

/*
 * Writes every ring's kick (kick: the back-end's side) or call eventfd
 * (the driver's side), only those of started rings with started_only.
 * After a reconnect the driver may have added requests while nobody was
 * there, and with EVENT_IDX it kicks only when the (old) back-end asked
 * for it: one kick per started ring makes the new back-end look. A
 * spurious kick costs a back-end one look at an empty ring.
 */
static void vub_signal_rings(VhostUserBase *vub, bool kick, bool started_only)
{
    const uint64_t one = 1;

    for (unsigned i = 0; i < vub->ndevs; i++) {
        for (unsigned j = 0; j < vub->devs[i].nvqs; j++) {
            const struct vhost_virtqueue *vq = &vub->devs[i].vqs[j];
            int fd = kick ? vq->kick_fd : vq->call_fd;

            if ((!started_only || vq->started) && fd >= 0 &&
                write(fd, &one, sizeof(one)) < 0) {
                /* An eventfd write only fails on overflow: it is readable. */
            }
        }
    }
}

static void vub_disconnected(VhostUserBase *vub)
{
    bool was_started = vub->started;
    g_autoptr(GError) async_err = NULL;

    if (!vub->connected) {
        return;
    }
    /* A bad back-end request dropped it from the loop: nobody was told yet. */
    g_mutex_lock(&vub->user->lock);
    async_err = g_steal_pointer(&vub->user->async_error);
    g_mutex_unlock(&vub->user->lock);
    if (async_err) {
        vub_notify(vub, VHOST_USER_BASE_ERROR, 0, async_err);
    }
    /*
     * Started rings are stopped without the back-end: their resume point
     * comes from the used ring in guest RAM. The driver's status keeps
     * DRIVER_OK, which is what makes the next OPENED restart them.
     */
    for (unsigned i = 0; i < vub->ndevs; i++) {
        vhost_dev_disconnect(&vub->devs[i]);
    }
    /*
     * Also when a start was under way: a back-end runs a ring from its
     * SET_VRING_KICK, before the device counts as started.
     */
    if (was_started || vub->start_attempted) {
        vub->lost_requests += vub_count_lost(vub);
    }
    vub->start_attempted = false;
    vub->started = false;
    vub->ready = false;
    vub->connected = false;
    vhost_user_base_postcopy_disconnected(vub);
    vhost_user_state_reset(vub->user);
    if (vub->klass->disconnected) {
        vub->klass->disconnected(vub);
    }
    vub_notify(vub, VHOST_USER_BASE_DISCONNECTED, 0, NULL);
}

static void vub_connected(VhostUserBase *vub)
{
    g_autoptr(GError) err = NULL;

    if (vub->connected) {
        /* Two OPENED without CLOSED: treat the old connection as gone. */
        vub_disconnected(vub);
    }
    vub->connected = true;
    vub_notify(vub, VHOST_USER_BASE_CONNECTED, 0, NULL);

    if (!vub_negotiate(vub, &err)) {
        vub_fail(vub, err);
        return;
    }
    vub->ready = true;
    virtio_update_host_features(&vub->vdev);
    if (!vhost_user_base_postcopy_take_state(vub, &err)) {
        vub_fail(vub, err);
        return;
    }

    if (vub->lost_requests || virtio_needs_reset(&vub->vdev)) {
        /* Nothing is started until the driver has reset the device. */
        virtio_set_needs_reset(&vub->vdev);
        vub_notify(vub, VHOST_USER_BASE_NEEDS_RESET, vub->lost_requests, NULL);
        /* Wakes a driver waiting on the call eventfds: NEEDS_RESET is news. */
        vub_signal_rings(vub, false, false);
        char_socket_reset_backoff(vub->chr);
        return;
    }
    if ((virtio_get_status(&vub->vdev) & VIRTIO_CONFIG_S_DRIVER_OK) && !vub->paused) {
        /*
         * Reconnect: the driver had the device running. Bring it back with
         * the features it acked and the rings it set up; each ring resumes
         * at the state saved when the previous connection ended.
         */
        if (!vub_start(vub, &err)) {
            vub_fail(vub, err);
            return;
        }
        vub_signal_rings(vub, true, true);
        char_socket_reset_backoff(vub->chr);
        return;
    }
    /*
     * Only a bring-up that got this far restarts the chardev's backoff: a
     * back-end failing every one is retried ever more slowly, not every
     * reconnect-ms with one error each time (an endless init loop).
     */
    char_socket_reset_backoff(vub->chr);
    vub_notify(vub, VHOST_USER_BASE_READY, 0, NULL);
}

static void vub_chr_event(CharSocket *chr, CharEvent event, void *opaque)
{
    VhostUserBase *vub = opaque;

    switch (event) {
    case CHR_EVENT_OPENED:
        vub_connected(vub);
        break;
    case CHR_EVENT_CLOSED:
        vub_disconnected(vub);
        break;
    }
}

/* ---- The virtio device class every vhost-user device shares --------- */

static uint64_t vub_get_features(VirtIODevice *vdev)
{
    VhostUserBase *vub = vdev->opaque;
    uint64_t f;

    if (!vub->ready) {
        return vdev->host_features;
    }
    f = vub->klass->host_features ?
        vub->klass->host_features(vub, vub->devs[0].features) :
        vub->devs[0].features;
    /* Offered only on request: it changes what every address means. */
    f &= ~((1ull << VIRTIO_F_IOMMU_PLATFORM) | (1ull << VIRTIO_F_RING_PACKED) |
           (1ull << VIRTIO_F_IN_ORDER));
    if (vub->iommu_platform) {
        f |= vub->devs[0].features & (1ull << VIRTIO_F_IOMMU_PLATFORM);
    }
    /* Default off, as in QEMU: the layout is the driver's choice to make. */
    if (vub->packed) {
        f |= vub->devs[0].features & (1ull << VIRTIO_F_RING_PACKED);
    }
    /* Also QEMU's default: it lets the device batch used entries. */
    if (vub->in_order) {
        f |= vub->devs[0].features & (1ull << VIRTIO_F_IN_ORDER);
    }
    return f & ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

static void vub_get_config(VirtIODevice *vdev, uint8_t *config)
{
    VhostUserBase *vub = vdev->opaque;

    if (vub->klass->get_config) {
        vub->klass->get_config(vub, config);
    }
}

static void vub_set_config(VirtIODevice *vdev, const uint8_t *config,
                           uint32_t offset, uint32_t len)
{
    VhostUserBase *vub = vdev->opaque;

    if (vub->klass->set_config) {
        vub->klass->set_config(vub, config, offset, len);
    }
}

static bool vub_set_status(VirtIODevice *vdev, uint8_t old_status,
                           uint8_t new_status, GError **errp)
{
    VhostUserBase *vub = vdev->opaque;
    GError *local_err = NULL;

    if (!(new_status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        vub_stop(vub);
        return true;
    }
    if (!vub_start(vub, &local_err)) {
        /*
         * The status keeps DRIVER_OK: after a reconnect (with reconnect-ms)
         * the rings start again by themselves.
         */
        vub_drop(vub, local_err);
        g_propagate_error(errp, local_err);
        return false;
    }
    return true;
}

static void vub_reset(VirtIODevice *vdev)
{
    VhostUserBase *vub = vdev->opaque;

    /* A reset driver lays out fresh rings: they start from index 0. */
    vub->lost_requests = 0;
    vub->paused = false;
    for (unsigned i = 0; i < vub->ndevs; i++) {
        /* The abandoned ring life's requests must not be resubmitted. */
        vhost_dev_reset_inflight(&vub->devs[i]);
        for (unsigned j = 0; j < vub->devs[i].nvqs; j++) {
            vhost_virtqueue_reset_base(&vub->devs[i].vqs[j]);
        }
    }
}

static const VirtioDeviceClass vub_virtio_class = {
    .name = "vhost-user",
    .get_features = vub_get_features,
    .get_config = vub_get_config,
    .set_config = vub_set_config,
    .set_status = vub_set_status,
    .reset = vub_reset,
};

bool vhost_user_base_realize(VhostUserBase *vub, const VhostUserBaseClass *klass,
                             const VhostUserBaseParams *p, GError **errp)
{
    unsigned i;

    if (p->ndevs == 0 || p->rings_per_dev == 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: no rings to drive", p->id);
        return false;
    }
    if (!virtio_device_init(&vub->vdev, p->id, p->virtio_id, &vub_virtio_class,
                            vub, p->ndevs * p->rings_per_dev, p->queue_size,
                            p->config_len, errp)) {
        return false;
    }
    vub->klass = klass;
    vub->chr = p->chr;
    vub->mem = p->mem;
    vub->ndevs = p->ndevs;
    vub->rings_per_dev = p->rings_per_dev;
    vub->iommu_platform = p->iommu_platform;
    vub->packed = p->packed;
    vub->in_order = p->in_order;
    vub->state_max_size = VHOST_DEVICE_STATE_MAX_SIZE;
    vub->state_timeout_ms = VHOST_DEVICE_STATE_TIMEOUT_MS;
    vub->user = vhost_user_state_new(p->chr, p->id);
    vub->user->supported_protocol_features &= ~p->protocol_features_clear;
    /* The back-end channel runs on the chardev's loop, whether or not the VMM installs ops. */
    vhost_user_base_set_backend_req_ops(vub, NULL, NULL);
    vub->devs = g_new0(struct vhost_dev, p->ndevs);

    for (i = 0; i < p->ndevs; i++) {
        g_autofree char *name = i == 0 ? g_strdup(p->id) :
                                         g_strdup_printf("%s.q%u", p->id, i);

        if (!vhost_dev_init(&vub->devs[i], name, vub->user, &user_ops, p->mem,
                            i * p->rings_per_dev, p->rings_per_dev, errp)) {
            goto err_devs;
        }
        /* One area covers the device's rings: only a one-vhost_dev device. */
        vub->reset_if_lost = p->reset_if_lost;
        vub->devs[i].use_inflight = p->inflight && p->ndevs == 1;
        for (unsigned j = 0; j < p->rings_per_dev; j++) {
            virtio_queue_set_notifiers(&vub->vdev, i * p->rings_per_dev + j,
                                       vub->devs[i].vqs[j].kick_fd,
                                       vub->devs[i].vqs[j].call_fd);
        }
    }
    char_socket_set_handler(p->chr, vub_chr_event, vub);
    return true;

err_devs:
    while (i-- > 0) {
        vhost_dev_cleanup(&vub->devs[i]);
    }
    g_clear_pointer(&vub->devs, g_free);
    g_clear_pointer(&vub->user, vhost_user_state_free);
    virtio_device_cleanup(&vub->vdev);
    return false;
}

void vhost_user_base_set_notify(VhostUserBase *vub, VhostUserBaseNotify fn,
                                void *opaque)
{
    vub->notify = fn;
    vub->notify_opaque = opaque;
}

void vhost_user_base_stop(VhostUserBase *vub)
{
    if (vub->vdev.status) {
        /* As the driver's reset would: stop, then forget the driver. */
        virtio_reset(&vub->vdev);
    }
}

bool vhost_user_base_pause(VhostUserBase *vub, GError **errp)
{
    if (!vub->connected && vub->started) {
        /* Cannot happen: CLOSED stops the rings; kept as a guard. */
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: cannot pause: rings run without a back-end", vub->vdev.id);
        return false;
    }
    vub->paused = true;
    /* GET_VRING_BASE per ring: each base is kept for the resume. */
    vub_stop(vub);
    return true;
}

bool vhost_user_base_start_rings(VhostUserBase *vub, GError **errp)
{
    GError *local_err = NULL;

    vub->paused = false;
    if (!(virtio_get_status(&vub->vdev) & VIRTIO_CONFIG_S_DRIVER_OK)) {
        return true;
    }
    if (!vub_start(vub, &local_err)) {
        vub_drop(vub, local_err);
        g_propagate_error(errp, local_err);
        return false;
    }
    /* Requests the driver queued while paused are picked up now. */
    vub_signal_rings(vub, true, true);
    return true;
}

bool vhost_user_base_resume(VhostUserBase *vub, GError **errp)
{
    return vhost_user_base_start_rings(vub, errp);
}

bool vhost_user_base_is_paused(const VhostUserBase *vub)
{
    return vub->paused;
}

VirtIODevice *vhost_user_base_vdev(VhostUserBase *vub)
{
    return &vub->vdev;
}

const char *vhost_user_base_id(const VhostUserBase *vub)
{
    return vub->vdev.id;
}

uint16_t vhost_user_base_virtio_id(const VhostUserBase *vub)
{
    return vub->vdev.device_id;
}

void vhost_user_base_set_shared_objects_max(VhostUserBase *vub, unsigned max)
{
    vub->user->shared_objects_max = max;
}

void vhost_user_base_set_backend_req_ops(VhostUserBase *vub, const VhostUserBackendReqOps *ops,
                                     void *opaque)
{
    /*
     * The channel must run on the loop the chardev (and so the rest of the
     * device) runs on: a VMM with a loop of its own would otherwise have
     * back-end requests served from GLib's default context.
     */
    vhost_user_set_backend_req_ops(vub->user, ops, opaque, vub->vdev.config_len,
                               char_socket_loop(vub->chr));
}

bool vhost_user_base_iotlb_invalidate(VhostUserBase *vub, uint64_t iova, uint64_t size,
                                      GError **errp)
{
    for (unsigned i = 0; i < vub->ndevs; i++) {
        const struct vhost_dev *hdev = &vub->devs[i];

        /* The IOTLB is the connection's, not a vhost_dev's: one message. */
        if (hdev->started &&
            virtio_has_feature(hdev->acked_features, VIRTIO_F_IOMMU_PLATFORM)) {
            return vhost_user_iotlb_invalidate(vub->user, iova, size, errp);
        }
    }
    return true;
}

/* Every vhost_dev of every device, in device order. */
static GPtrArray *vub_vhost_devs(VhostUserBase *const *devs, unsigned ndevs)
{
    GPtrArray *hdevs = g_ptr_array_new();

    for (unsigned i = 0; i < ndevs; i++) {
        for (unsigned j = 0; j < devs[i]->ndevs; j++) {
            g_ptr_array_add(hdevs, &devs[i]->devs[j]);
        }
    }
    return hdevs;
}

/* ---- Dirty logging --------------------------------------------------- */

/* What the back-end of the connection being negotiated offers for logging. */
static bool vub_log_capable(VhostUserBase *vub, GError **errp)
{
    const struct vhost_dev *hdev = &vub->devs[0];
    bool shmfd, log_all;

    shmfd = vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_LOG_SHMFD);
    log_all = virtio_has_feature(hdev->features, VHOST_F_LOG_ALL);
    if (!shmfd || !log_all) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: cannot migrate: the back-end cannot log its writes to guest "
                    "memory (missing%s%s)", vub->vdev.id,
                    shmfd ? "" : " protocol feature LOG_SHMFD",
                    log_all ? "" : " feature VHOST_F_LOG_ALL (bit 26)");
        return false;
    }
    return true;
}

bool vhost_user_base_check_migratable(VhostUserBase *vub, GError **errp)
{
    if (!vub->ready) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "%s: no back-end connected: whether it can log its writes to "
                    "guest memory is unknown", vub->vdev.id);
        return false;
    }
    return vub_log_capable(vub, errp);
}

/* Logging on or off in every vhost_dev: ring 0's first (it sends the features). */
static bool vub_log_switch(VhostUserBase *vub, bool enable, GError **errp)
{
    bool ok = true;

    for (unsigned i = 0; i < vub->ndevs; i++) {
        GError *err = NULL;

        if (!vhost_dev_set_logging(&vub->devs[i], enable, &err)) {
            if (ok) {
                g_propagate_error(errp, err);
            } else {
                g_error_free(err);
            }
            ok = false;
        }
    }
    return ok;
}

static void vub_log_forget(VhostUserBase *vub)
{
    for (unsigned i = 0; i < vub->ndevs; i++) {
        vub->devs[i].log_enabled = false;
    }
    g_clear_pointer(&vub->log, vhost_log_free);
    g_clear_error(&vub->log_err);
}

bool vhost_user_base_log_start(VhostUserBase *vub, GError **errp)
{
    if (vub->log) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: dirty logging is already on", vub->vdev.id);
        return false;
    }
    if (!vhost_user_base_check_migratable(vub, errp)) {
        return false;
    }
    vub->log = vhost_log_new(vub->vdev.id, guest_memory_end(vub->mem), errp);
    if (!vub->log) {
        return false;
    }
    /* The log first: a back-end told to log must have somewhere to. */
    if (!vhost_dev_set_log_base(&vub->devs[0], vub->log->fd, vub->log->size, errp) ||
        !vub_log_switch(vub, true, errp)) {
        vub_log_switch(vub, false, NULL);
        vub_log_forget(vub);
        return false;
    }
    return true;
}

bool vhost_user_base_log_sync(VhostUserBase *vub, uint64_t *bitmap, uint64_t npages,
                              uint64_t *dirty, GError **errp)
{
    bool overflow;
    uint64_t n;

    if (!vub->log) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: dirty log sync: logging is off", vub->vdev.id);
        return false;
    }
    /* Marks are collected anyway: what the log holds is still true. */
    n = vhost_log_sync(vub->log, bitmap, npages, &overflow);
    if (dirty) {
        *dirty = n;
    }
    if (vub->log_err) {
        g_propagate_error(errp, g_error_copy(vub->log_err));
        return false;
    }
    if (overflow) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: dirty log sync: a page beyond the bitmap's %" PRIu64
                    " pages is marked", vub->vdev.id, npages);
        return false;
    }
    return true;
}

void vhost_user_base_log_stop(VhostUserBase *vub)
{
    GError *err = NULL;

    if (!vub->log) {
        return;
    }
    if (!vub_log_switch(vub, false, &err)) {
        vhost_user_log(VHOST_USER_LOG_WARNING, vub->vdev.id, "%s", err->message);
        g_error_free(err);
    }
    /* The back-end keeps its mapping until the next SET_LOG_BASE; the memfd lives on in it. */
    vub_log_forget(vub);
}

/*
 * A new connection while logging: the back-end gets the log before its
 * rings start (which then carry LOG_ALL and the ring flags). One that
 * cannot log breaks logging (reported by the next sync) but still runs.
 */
static bool vub_log_reconnected(VhostUserBase *vub, GError **errp)
{
    GError *err = NULL;

    if (!vub->log || vub->log_err) {
        return true;
    }
    if (!vub_log_capable(vub, &err)) {
        g_prefix_error(&err, "dirty logging stopped on reconnect: ");
        vub->log_err = err;
        for (unsigned i = 0; i < vub->ndevs; i++) {
            vub->devs[i].log_enabled = false;
        }
        vhost_user_log(VHOST_USER_LOG_WARNING, vub->vdev.id, "%s", vub->log_err->message);
        return true;
    }
    return vhost_dev_set_log_base(&vub->devs[0], vub->log->fd, vub->log->size, errp);
}

/*
 * Guest RAM will reach end: a log too small for it would leave the
 * back-end's writes there unmarked (or have it write past the log). A new
 * log goes over; the old one is emptied into it and freed only once the
 * back-end answered SET_LOG_BASE, i.e. no longer writes it.
 */
static bool vub_log_grow(VhostUserBase *vub, uint64_t end, GError **errp)
{
    VhostLog *old = vub->log, *log;
    bool ok = true;

    if (!old || end <= vhost_log_covers(old)) {
        return true;
    }
    log = vhost_log_new(vub->vdev.id, end, errp);
    if (!log) {
        return false;
    }
    if (vub->ready && vub->devs[0].connected && !vub->log_err) {
        ok = vhost_dev_set_log_base(&vub->devs[0], log->fd, log->size, errp);
    }
    /*
     * Even when the back-end failed (it was dropped): a reconnect hands
     * over the new log, and the old one's marks must not be lost.
     */
    vhost_log_move(log, old);
    vhost_log_free(old);
    vub->log = log;
    return ok;
}

bool vhost_user_base_add_ram(VhostUserBase *const *devs, unsigned ndevs, GuestMemory *mem,
                             uint64_t gpa, RamBlock *rb, uint64_t block_offset,
                             uint64_t size, GError **errp)
{
    g_autoptr(GPtrArray) hdevs = vub_vhost_devs(devs, ndevs);
    uint64_t end = MAX(guest_memory_end(mem), gpa + size);

    /* Before the RAM exists for the driver: nothing may be written there unlogged. */
    for (unsigned i = 0; i < ndevs; i++) {
        if (!vub_log_grow(devs[i], end, errp)) {
            g_prefix_error(errp, "cannot add RAM block '%s' at 0x%" PRIx64 ": ",
                           rb->id, gpa);
            return false;
        }
    }

    return vhost_dev_add_ram((struct vhost_dev *const *)hdevs->pdata, hdevs->len, mem,
                             gpa, rb, block_offset, size, errp);
}

bool vhost_user_base_remove_ram(VhostUserBase *const *devs, unsigned ndevs,
                                GuestMemory *mem, uint64_t gpa, GError **errp)
{
    g_autoptr(GPtrArray) hdevs = vub_vhost_devs(devs, ndevs);

    return vhost_dev_remove_ram((struct vhost_dev *const *)hdevs->pdata, hdevs->len,
                                mem, gpa, errp);
}

/* ---- Device state (DEVICE_STATE) -------------------------------------- */

void vhost_user_base_set_state_limits(VhostUserBase *vub, size_t max_size,
                                      unsigned timeout_ms)
{
    vub->state_max_size = max_size;
    vub->state_timeout_ms = timeout_ms;
}

bool vhost_user_base_has_device_state(const VhostUserBase *vub)
{
    return vub->ready && vhost_dev_has_device_state(&vub->devs[0]);
}

/*
 * The state is the whole device's: vhost_dev 0 (ring 0) carries the
 * device-scope requests. Every vhost_dev must be stopped, which the
 * device-level flag says for all of them.
 */
static bool vub_state_usable(VhostUserBase *vub, const char *what, GError **errp)
{
    if (!vub->ready) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "%s: device state %s: no back-end connected and negotiated",
                    vub->vdev.id, what);
        return false;
    }
    if (vub->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: device state %s: the rings are running; the back-end must be "
                    "stopped first", vub->vdev.id, what);
        return false;
    }
    return true;
}

bool vhost_user_base_save_state(VhostUserBase *vub, GByteArray *out, GError **errp)
{
    return vub_state_usable(vub, "save", errp) &&
           vhost_dev_save_device_state(&vub->devs[0], out, vub->state_max_size,
                                       vub->state_timeout_ms, errp);
}

bool vhost_user_base_load_state(VhostUserBase *vub, const void *data, size_t len,
                                GError **errp)
{
    return vub_state_usable(vub, "load", errp) &&
           vhost_dev_load_device_state(&vub->devs[0], data, len, vub->state_timeout_ms,
                                       errp);
}

void vhost_user_base_free(VhostUserBase *vub)
{
    if (!vub) {
        return;
    }
    vhost_user_base_stop(vub);
    vub_log_forget(vub);
    g_clear_pointer(&vub->pc_pending_state, g_bytes_unref);
    /* No event may reach a freed device. */
    char_socket_set_handler(vub->chr, NULL, NULL);
    for (unsigned i = 0; i < vub->ndevs; i++) {
        vhost_dev_cleanup(&vub->devs[i]);
    }
    g_free(vub->devs);
    vhost_user_state_free(vub->user);
    if (vub->klass && vub->klass->finalize) {
        vub->klass->finalize(vub);
    }
    virtio_device_cleanup(&vub->vdev);
    g_free(vub);
}
