/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A device front-end's migratable state (vhost_user_base_save / _load):
 * what the driver set up in the device model, where each ring stands, and
 * the back-end's own state.
 *
 * UNTRUSTED INPUT: a loaded blob comes from the migration stream, i.e.
 * from another process over a socket. Every count, length, index and size
 * is checked against this device before anything is changed, so a bad
 * blob leaves the device as it was.
 *
 * Layout (little-endian), version 1:
 *   u32 magic "VUBS", u16 version, u16 nvqs,
 *   u64 acked features, u8 status, u8[3] zero, u32 config_len, config,
 *   per ring: u16 num, u16 last_avail_idx, u8 enabled, u8 zero,
 *             u16 used half of a packed ring's base (0 for split rings;
 *             last_avail_idx is then the avail half, see vhost-packed.h),
 *             u64 desc, u64 avail, u64 used,
 *   u32 back-end state length, the back-end state.
 */
#include <string.h>

#include <glib.h>

#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-packed.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

#define VUB_STATE_MAGIC     0x53425556u     /* "VUBS" read as LE bytes */
#define VUB_STATE_VERSION   1
/* What a driver must have written before DRIVER_OK for a running device. */
#define VUB_STATUS_UP       (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
                             VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)

static struct vhost_virtqueue *vub_ring(VhostUserBase *vub, unsigned q)
{
    return &vub->devs[q / vub->rings_per_dev].vqs[q % vub->rings_per_dev];
}

static void put_u16(GByteArray *b, uint16_t v)
{
    v = GUINT16_TO_LE(v);
    g_byte_array_append(b, (const guint8 *)&v, sizeof(v));
}

static void put_u32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    g_byte_array_append(b, (const guint8 *)&v, sizeof(v));
}

static void put_u64(GByteArray *b, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    g_byte_array_append(b, (const guint8 *)&v, sizeof(v));
}

static void put_u8s(GByteArray *b, uint8_t v, unsigned n)
{
    while (n--) {
        g_byte_array_append(b, &v, 1);
    }
}

bool vhost_user_base_save(VhostUserBase *vub, GByteArray *out, GError **errp)
{
    VirtIODevice *vdev = &vub->vdev;
    guint start_len = out->len;
    guint state_len_at;
    uint32_t state_len;

    if (vub->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: device state save: the rings run (pause the device first)",
                    vdev->id);
        return false;
    }
    if (vdev->nvqs != vhost_user_base_total_rings(vub)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: device state save: %u queues but %u rings", vdev->id,
                    vdev->nvqs, vhost_user_base_total_rings(vub));
        return false;
    }
    put_u32(out, VUB_STATE_MAGIC);
    put_u16(out, VUB_STATE_VERSION);
    put_u16(out, (uint16_t)vdev->nvqs);
    put_u64(out, vdev->guest_features);
    put_u8s(out, vdev->status, 1);
    put_u8s(out, 0, 3);
    put_u32(out, vdev->config_len);
    if (vdev->config_len) {
        /* As the driver would read it now. */
        if (vdev->klass->get_config) {
            vdev->klass->get_config(vdev, vdev->config);
        }
        g_byte_array_append(out, vdev->config, vdev->config_len);
    }
    for (unsigned q = 0; q < vdev->nvqs; q++) {
        const VirtQueue *vq = &vdev->vq[q];

        const struct vhost_virtqueue *hvq = vub_ring(vub, q);
        bool packed = virtio_has_feature(vdev->guest_features, VIRTIO_F_RING_PACKED);

        put_u16(out, vq->num);
        put_u16(out, packed ? vhost_packed_base_avail(hvq->packed_base) :
                              hvq->last_avail_idx);
        put_u8s(out, vq->enabled, 1);
        put_u8s(out, 0, 1);
        put_u16(out, packed ? vhost_packed_base_used(hvq->packed_base) : 0);
        put_u64(out, vq->desc_gpa);
        put_u64(out, vq->avail_gpa);
        put_u64(out, vq->used_gpa);
    }
    state_len_at = out->len;
    put_u32(out, 0);
    if ((vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
        vhost_user_base_has_device_state(vub)) {
        if (!vhost_user_base_save_state(vub, out, errp)) {
            g_byte_array_set_size(out, start_len);
            return false;
        }
    }
    state_len = GUINT32_TO_LE(out->len - state_len_at - 4);
    memcpy(out->data + state_len_at, &state_len, sizeof(state_len));
    return true;
}

/* A bounded reader over the blob: a short blob is an error, never an overread. */
typedef struct Cursor {
    const uint8_t *p;
    size_t left;
    const char *id;
} Cursor;

static bool take(Cursor *c, void *dst, size_t n, const char *what, GError **errp)
{
    if (c->left < n) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: device state load: truncated at %s (%zu bytes left, %zu needed)",
                    c->id, what, c->left, n);
        return false;
    }
    if (dst) {
        memcpy(dst, c->p, n);
    }
    c->p += n;
    c->left -= n;
    return true;
}

static bool take_u16(Cursor *c, uint16_t *v, const char *what, GError **errp)
{
    if (!take(c, v, sizeof(*v), what, errp)) {
        return false;
    }
    *v = GUINT16_FROM_LE(*v);
    return true;
}

static bool take_u32(Cursor *c, uint32_t *v, const char *what, GError **errp)
{
    if (!take(c, v, sizeof(*v), what, errp)) {
        return false;
    }
    *v = GUINT32_FROM_LE(*v);
    return true;
}

static bool take_u64(Cursor *c, uint64_t *v, const char *what, GError **errp)
{
    if (!take(c, v, sizeof(*v), what, errp)) {
        return false;
    }
    *v = GUINT64_FROM_LE(*v);
    return true;
}

typedef struct RingState {
    uint16_t num;
    uint16_t base;
    uint16_t used_base;             /* packed rings: the base's upper half */
    bool packed;
    uint8_t enabled;
    uint64_t desc, avail, used;
} RingState;

static bool bad(GError **errp, const char *id, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static bool bad(GError **errp, const char *id, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                "%s: device state load: %s", id, msg);
    return false;
}

/* A ring the source had running must fit this device and lie in guest RAM. */
static bool check_ring(VhostUserBase *vub, unsigned q, const RingState *r, GError **errp)
{
    VirtIODevice *vdev = &vub->vdev;
    const char *id = vdev->id;
    uint16_t max = vdev->vq[q].num_max;

    if (r->enabled > 1) {
        return bad(errp, id, "ring %u: enabled %u is not 0 or 1", q, r->enabled);
    }
    if (r->num == 0) {
        return true;
    }
    if (r->num > max || (r->num & (r->num - 1))) {
        return bad(errp, id, "ring %u: size %u is not a power of two up to %u",
                   q, r->num, max);
    }
    if (r->packed) {
        uint32_t base;
        const char *why;

        if (!vhost_packed_base_check(vhost_packed_base_make(r->base, r->used_base),
                                     r->num, &base, &why)) {
            return bad(errp, id, "ring %u: packed base 0x%04x%04x: %s", q,
                       r->used_base, r->base, why);
        }
    } else if (r->used_base) {
        return bad(errp, id, "ring %u: a used base 0x%x on a split ring", q, r->used_base);
    }
    /* Packed: the descriptor ring and two 4-byte event suppression areas. */
    if (!guest_memory_gpa_to_hva(vub->mem, r->desc, 16ull * r->num) ||
        !guest_memory_gpa_to_hva(vub->mem, r->avail,
                                 r->packed ? 4 : 6ull + 2ull * r->num) ||
        !guest_memory_gpa_to_hva(vub->mem, r->used,
                                 r->packed ? 4 : 6ull + 8ull * r->num)) {
        return bad(errp, id, "ring %u: its areas (desc 0x%" G_GINT64_MODIFIER "x, "
                   "avail 0x%" G_GINT64_MODIFIER "x, used 0x%" G_GINT64_MODIFIER "x) "
                   "are not all in guest RAM", q, r->desc, r->avail, r->used);
    }
    return true;
}

bool vhost_user_base_load(VhostUserBase *vub, const void *data, size_t len,
                          GError **errp)
{
    VirtIODevice *vdev = &vub->vdev;
    const char *id = vdev->id;
    Cursor c = { .p = data, .left = len, .id = id };
    g_autofree RingState *rings = NULL;
    g_autofree uint8_t *config = NULL;
    uint32_t magic, config_len, state_len;
    uint16_t version, nvqs;
    uint64_t features, offered;
    uint8_t status, pad[3];
    const void *state;
    bool absent;

    if (vdev->status || vub->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: device state load: the device is already driven (status 0x%x)",
                    id, vdev->status);
        return false;
    }
    /*
     * Postcopy may reach RUN while the back-end is away (it went between
     * ADVISE and LISTEN): the model loads now, the back-end's own state
     * waits for the next one (vhost_user_base_postcopy_reconnected).
     */
    absent = !vub->ready && vub->pc_phase == VHOST_USER_BASE_PC_LISTENING;
    if (!vub->ready && !absent) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: device state load: no back-end connected and negotiated", id);
        return false;
    }
    if (!take_u32(&c, &magic, "magic", errp) || !take_u16(&c, &version, "version", errp) ||
        !take_u16(&c, &nvqs, "queue count", errp)) {
        return false;
    }
    if (magic != VUB_STATE_MAGIC) {
        return bad(errp, id, "magic 0x%08x is not 0x%08x", magic, VUB_STATE_MAGIC);
    }
    if (version != VUB_STATE_VERSION) {
        return bad(errp, id, "version %u not supported (this destination reads %u)",
                   version, VUB_STATE_VERSION);
    }
    if (nvqs != vdev->nvqs) {
        return bad(errp, id, "%u queues on the source, %u here", nvqs, vdev->nvqs);
    }
    if (!take_u64(&c, &features, "features", errp) ||
        !take(&c, &status, 1, "status", errp) || !take(&c, pad, 3, "status", errp) ||
        !take_u32(&c, &config_len, "config length", errp)) {
        return false;
    }
    if (status && status != VUB_STATUS_UP) {
        return bad(errp, id, "status 0x%x: only 0 or a running device (0x%x) migrates",
                   status, VUB_STATUS_UP);
    }
    offered = virtio_get_host_features(vdev);
    if (features & ~offered) {
        return bad(errp, id, "features 0x%" G_GINT64_MODIFIER "x acked on the source are "
                   "not offered here (offered 0x%" G_GINT64_MODIFIER "x)",
                   features & ~offered, offered);
    }
    if (config_len != vdev->config_len) {
        return bad(errp, id, "config length %u on the source, %u here",
                   config_len, vdev->config_len);
    }
    config = g_malloc(config_len ? config_len : 1);
    if (!take(&c, config, config_len, "config", errp)) {
        return false;
    }
    rings = g_new0(RingState, nvqs ? nvqs : 1);
    for (unsigned q = 0; q < nvqs; q++) {
        RingState *r = &rings[q];

        if (!take_u16(&c, &r->num, "ring size", errp) ||
            !take_u16(&c, &r->base, "ring base", errp) ||
            !take(&c, &r->enabled, 1, "ring enable", errp) ||
            !take(&c, pad, 1, "ring enable", errp) ||
            !take_u16(&c, &r->used_base, "ring used base", errp) ||
            !take_u64(&c, &r->desc, "ring desc", errp) ||
            !take_u64(&c, &r->avail, "ring avail", errp) ||
            !take_u64(&c, &r->used, "ring used", errp)) {
            return false;
        }
        r->packed = virtio_has_feature(features, VIRTIO_F_RING_PACKED);
        if (!check_ring(vub, q, r, errp)) {
            return false;
        }
    }
    if (status && !rings[0].num && nvqs) {
        return bad(errp, id, "ring 0 is not set up on a running device");
    }
    if (!take_u32(&c, &state_len, "back-end state length", errp)) {
        return false;
    }
    state = c.p;
    if (!take(&c, NULL, state_len, "back-end state", errp)) {
        return false;
    }
    if (c.left) {
        return bad(errp, id, "%zu bytes after the end", c.left);
    }
    if (state_len && absent) {
        g_bytes_unref(vub->pc_pending_state);
        vub->pc_pending_state = g_bytes_new(state, state_len);
        vhost_user_log(VHOST_USER_LOG_INFO, id, "device state load: no back-end right "
                       "now (postcopy listening); its %u bytes of state go to the next "
                       "one", state_len);
        state_len = 0;
    }
    if (state_len && !vhost_user_base_has_device_state(vub)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: device state load: the source's back-end sent %u bytes of "
                    "state but this back-end has no DEVICE_STATE", id, state_len);
        return false;
    }

    /* Checked: the back-end first (it can still refuse), then the model. */
    if (state_len && !vhost_user_base_load_state(vub, state, state_len, errp)) {
        return false;
    }
    if (!status) {
        return true;
    }
    vdev->guest_features = features;
    if (config_len) {
        memcpy(vdev->config, config, config_len);
    }
    for (unsigned q = 0; q < nvqs; q++) {
        VirtQueue *vq = &vdev->vq[q];

        vq->num = rings[q].num;
        vq->desc_gpa = rings[q].desc;
        vq->avail_gpa = rings[q].avail;
        vq->used_gpa = rings[q].used;
        vq->enabled = rings[q].enabled;
        if (rings[q].packed) {
            const char *why;

            /* Checked above (a set-up ring); this fills in a missing used half. */
            vhost_virtqueue_reset_base(vub_ring(vub, q));
            if (rings[q].num) {
                vhost_packed_base_check(vhost_packed_base_make(rings[q].base,
                                                               rings[q].used_base),
                                        rings[q].num, &vub_ring(vub, q)->packed_base,
                                        &why);
            }
        } else {
            vub_ring(vub, q)->last_avail_idx = rings[q].base;
        }
    }
    /* As if the driver had brought it up; the rings wait for the resume. */
    vub->paused = true;
    vdev->status = status;
    return true;
}
