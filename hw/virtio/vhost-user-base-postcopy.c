/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy at the device level: the device's connection is the one the
 * protocol step runs on (see vhost-user-base-postcopy.h), and the device
 * remembers how far it got (pc_phase) so that its reconnect path brings a
 * new back-end there again. Nothing here parses back-end input;
 * vhost-user-postcopy.c does, under its banner.
 */
#include "hw/virtio/vhost-user-base-postcopy.h"
#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-postcopy.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

/*
 * Every device's pc_ufd_fn and pc_ufd_opaque, held across a call: the
 * owner (a VMM's migration thread) may remove its notifier while the loop
 * is about to call it, and must know it no longer runs once removed.
 */
static GMutex notify_lock;

void vhost_user_base_postcopy_set_ufd_notify(VhostUserBase *vub,
                                             VhostUserBasePostcopyUfdFn fn, void *opaque)
{
    g_mutex_lock(&notify_lock);
    vub->pc_ufd_fn = fn;
    vub->pc_ufd_opaque = opaque;
    g_mutex_unlock(&notify_lock);
}

unsigned vhost_user_base_postcopy_readvised(VhostUserBase *vub)
{
    return vub->pc_readvised;
}

static bool vub_pc_announce(VhostUserBase *vub, int ufd, bool added, GError **errp)
{
    bool ok = true;

    g_mutex_lock(&notify_lock);
    if (vub->pc_ufd_fn) {
        ok = vub->pc_ufd_fn(vub, ufd, added, vub->pc_ufd_opaque, errp);
    }
    g_mutex_unlock(&notify_lock);
    return ok;
}

/*
 * The ufd is polled before POSTCOPY_LISTEN: from then on the back-end's
 * memory tables register its mappings, and a touch of a page not here yet
 * blocks it until the poller has the page placed.
 */
static bool vub_pc_listen(VhostUserBase *vub, GError **errp)
{
    int ufd = vhost_user_postcopy_ufd(vub->user);

    if (ufd >= 0 && !vub_pc_announce(vub, ufd, true, errp)) {
        return false;
    }
    if (!vhost_user_postcopy_listen(vub->user, errp)) {
        return false;
    }
    vub->pc_phase = VHOST_USER_BASE_PC_LISTENING;
    return true;
}

void vhost_user_base_postcopy_disconnected(VhostUserBase *vub)
{
    int ufd = vhost_user_postcopy_ufd(vub->user);

    if (ufd < 0) {
        return;
    }
    /* Before the connection's reset closes it: the poller must let go first. */
    vub_pc_announce(vub, ufd, false, NULL);
    if (vub->pc_phase != VHOST_USER_BASE_PC_NONE) {
        vhost_user_log(VHOST_USER_LOG_INFO, vub->vdev.id, "postcopy: the back-end went "
                       "away; its userfaultfd is no longer polled, the next one is "
                       "advised again");
    }
}

/*
 * After a new connection negotiated, before its memory table and rings:
 * a back-end that comes while postcopy runs maps guest RAM with pages
 * still missing, so it must be able to fault on them (PAGEFAULT) and its
 * faults must reach the poller.
 */
bool vhost_user_base_postcopy_reconnected(VhostUserBase *vub, GError **errp)
{
    bool listening = vub->pc_phase == VHOST_USER_BASE_PC_LISTENING;

    if (vub->pc_phase == VHOST_USER_BASE_PC_NONE) {
        return true;
    }
    if (!vhost_user_has_protocol_feature(vub->user, VHOST_USER_PROTOCOL_F_PAGEFAULT)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_PROTOCOL_FEATURES: reconnected while postcopy runs, but "
                    "the new back-end does not offer PAGEFAULT (bit %u): it could not "
                    "wait for the guest pages still missing here", vub->vdev.id,
                    VHOST_USER_PROTOCOL_F_PAGEFAULT);
        return false;
    }
    if (!vhost_user_postcopy_advise(vub->user, errp) ||
        (listening && !vub_pc_listen(vub, errp))) {
        g_prefix_error(errp, "%s: reconnected while postcopy runs: ", vub->vdev.id);
        return false;
    }
    vub->pc_readvised++;
    vhost_user_log(VHOST_USER_LOG_INFO, vub->vdev.id, "postcopy: the reconnected back-end "
                   "was advised again%s", listening ? " and listens" : "");
    return true;
}

/*
 * Once a new back-end negotiated (ready), before its rings start: the
 * back-end state a RUN without a back-end kept. The new back-end takes
 * it, or is refused (and the state waits for the next one).
 */
bool vhost_user_base_postcopy_take_state(VhostUserBase *vub, GError **errp)
{
    gsize len;
    const void *data;

    if (!vub->pc_pending_state) {
        return true;
    }
    data = g_bytes_get_data(vub->pc_pending_state, &len);
    if (!vhost_user_base_has_device_state(vub)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_PROTOCOL_FEATURES: the migrated back-end state (%zu bytes) "
                    "waits for this back-end, but it does not offer DEVICE_STATE",
                    vub->vdev.id, (size_t)len);
        return false;
    }
    if (!vhost_user_base_load_state(vub, data, len, errp)) {
        return false;
    }
    g_clear_pointer(&vub->pc_pending_state, g_bytes_unref);
    vhost_user_log(VHOST_USER_LOG_INFO, vub->vdev.id, "postcopy: the migrated back-end "
                   "state (%zu bytes) went to the reconnected back-end", (size_t)len);
    return true;
}

bool vhost_user_base_postcopy_check(VhostUserBase *vub, GError **errp)
{
    if (!vub->ready) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "%s: no back-end connected: whether it can take part in postcopy "
                    "(protocol feature PAGEFAULT) is unknown", vub->vdev.id);
        return false;
    }
    if (!vhost_user_has_protocol_feature(vub->user, VHOST_USER_PROTOCOL_F_PAGEFAULT)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: the back-end does not support postcopy (protocol feature "
                    "PAGEFAULT, bit %u, not offered)", vub->vdev.id,
                    VHOST_USER_PROTOCOL_F_PAGEFAULT);
        return false;
    }
    return true;
}

bool vhost_user_base_postcopy_advise(VhostUserBase *vub, GError **errp)
{
    if (!vhost_user_postcopy_advise(vub->user, errp)) {
        return false;
    }
    vub->pc_phase = VHOST_USER_BASE_PC_ADVISED;
    return true;
}

bool vhost_user_base_postcopy_listen(VhostUserBase *vub, GError **errp)
{
    if (!vub->ready) {
        /*
         * The back-end went away after ADVISE: the migration goes on, and
         * the next one is advised and listens before its memory table
         * (vhost_user_base_postcopy_reconnected).
         */
        vub->pc_phase = VHOST_USER_BASE_PC_LISTENING;
        vhost_user_log(VHOST_USER_LOG_INFO, vub->vdev.id, "postcopy: no back-end at "
                       "POSTCOPY_LISTEN; the next one is advised and listens when it "
                       "connects");
        return true;
    }
    return vub_pc_listen(vub, errp);
}

bool vhost_user_base_postcopy_end(VhostUserBase *vub, GError **errp)
{
    vub->pc_phase = VHOST_USER_BASE_PC_NONE;
    if (!vub->ready) {
        /* Gone (or failed to come back): its ufd went with it. */
        return true;
    }
    return vhost_user_postcopy_end(vub->user, errp);
}

int vhost_user_base_postcopy_ufd(VhostUserBase *vub)
{
    return vhost_user_postcopy_ufd(vub->user);
}

bool vhost_user_base_postcopy_translate(VhostUserBase *vub, uint64_t backend_addr,
                                        uint64_t *gpa, unsigned *region)
{
    return vhost_user_postcopy_translate(vub->user, backend_addr, gpa, region);
}
