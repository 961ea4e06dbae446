/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy at the device level: the device's connection is the one the
 * protocol step runs on (see vhost-user-base-postcopy.h). Nothing here
 * parses back-end input; vhost-user-postcopy.c does, under its banner.
 */
#include "hw/virtio/vhost-user-base-postcopy.h"
#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-postcopy.h"
#include "util/vhost-user-error.h"

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
    return vhost_user_postcopy_advise(vub->user, errp);
}

bool vhost_user_base_postcopy_listen(VhostUserBase *vub, GError **errp)
{
    return vhost_user_postcopy_listen(vub->user, errp);
}

bool vhost_user_base_postcopy_end(VhostUserBase *vub, GError **errp)
{
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
