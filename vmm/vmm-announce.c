/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * announce-self and the announce after an incoming migration: see
 * vmm/vmm-announce.h. The library decides how a device announces
 * (vhost_user_net_announce); this file chooses the devices and the times.
 */
#include <glib.h>
#include <json-glib/json-glib.h>

#include "hw/virtio/vhost-user-net.h"
#include "hw/virtio/virtio.h"
#include "vmm/vmm-announce.h"

/* One announce-self still running rounds. */
typedef struct VmmAnnounceRun {
    VmmAnnounce *owner;
    GStrv ids;                  /* NULL: every net device */
    uint64_t initial, max, step;
    uint64_t rounds_left;
    uint64_t done;              /* rounds run so far */
    guint source;
} VmmAnnounceRun;

struct VmmAnnounce {
    VmmMachine *m;
    GPtrArray *runs;            /* VmmAnnounceRun, freed on removal */
};

static bool announce_wanted(VhostUserBase *vub, const char *const *ids)
{
    if (vhost_user_base_virtio_id(vub) != VIRTIO_ID_NET) {
        return false;
    }
    return !ids || g_strv_contains(ids, vhost_user_base_id(vub));
}

unsigned vmm_announce_devices(VmmMachine *m, const char *const *ids)
{
    unsigned n = 0;

    for (unsigned i = 0; i < vmm_machine_ndevices(m); i++) {
        VhostUserBase *vub = vmm_machine_device(m, i);
        g_autoptr(GError) err = NULL;

        if (!announce_wanted(vub, ids)) {
            continue;
        }
        if (vhost_user_net_announce(vub, &err)) {
            vmm_status("announce: %s: SEND_RARP sent", vhost_user_base_id(vub));
            n++;
        } else {
            vmm_status("announce: %s", err->message);
        }
    }
    return n;
}

static void announce_run_free(gpointer p)
{
    VmmAnnounceRun *r = p;

    if (r->source) {
        g_source_remove(r->source);
    }
    g_strfreev(r->ids);
    g_free(r);
}

static gboolean announce_round(gpointer opaque)
{
    VmmAnnounceRun *r = opaque;
    uint64_t delay;

    r->source = 0;
    vmm_announce_devices(r->owner->m, (const char *const *)r->ids);
    r->done++;
    if (--r->rounds_left == 0) {
        g_ptr_array_remove_fast(r->owner->runs, r);
        return G_SOURCE_REMOVE;
    }
    delay = MIN(r->initial + (r->done - 1) * r->step, r->max);
    r->source = g_timeout_add((guint)MIN(delay, G_MAXUINT), announce_round, r);
    return G_SOURCE_REMOVE;
}

/* interfaces: a list of existing net device ids. */
static bool announce_ids(VmmMachine *m, JsonObject *args, GStrv *out, GError **errp)
{
    JsonNode *node = json_object_get_member(args, "interfaces");
    g_autoptr(GStrvBuilder) b = NULL;
    JsonArray *a;

    *out = NULL;
    if (!node) {
        return true;
    }
    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Invalid parameter type for 'interfaces', expected: array");
        return false;
    }
    a = json_node_get_array(node);
    b = g_strv_builder_new();
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *e = json_array_get_element(a, i);
        const char *id;
        VhostUserBase *vub;

        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "Invalid parameter type for 'interfaces[%u]', expected: string", i);
            return false;
        }
        id = json_node_get_string(e);
        vub = vmm_machine_find_device(m, id);
        if (!vub || vhost_user_base_virtio_id(vub) != VIRTIO_ID_NET) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_DEVICE_NOT_FOUND,
                        "Device '%s' not found or not a network device", id);
            return false;
        }
        g_strv_builder_add(b, id);
    }
    *out = g_strv_builder_end(b);
    return true;
}

static JsonNode *vmm_qmp_announce_self(VmmMonitor *mon, JsonObject *args, void *opaque,
                                       GError **errp)
{
    static const char *const keys[] = {
        "initial", "max", "rounds", "step", "interfaces", "id", NULL
    };
    VmmAnnounce *a = opaque;
    VmmAnnounceRun *r = g_new0(VmmAnnounceRun, 1);
    const char *id;

    /* QEMU's defaults (-global migration.announce-*). */
    r->initial = 50;
    r->max = 550;
    r->step = 100;
    r->rounds_left = 5;
    if (!vmm_qmp_check_args(args, keys, errp) ||
        !vmm_qmp_arg_size(args, "initial", false, &r->initial, errp) ||
        !vmm_qmp_arg_size(args, "max", false, &r->max, errp) ||
        !vmm_qmp_arg_size(args, "rounds", false, &r->rounds_left, errp) ||
        !vmm_qmp_arg_size(args, "step", false, &r->step, errp) ||
        !vmm_qmp_arg_str(args, "id", false, &id, errp) ||
        !announce_ids(a->m, args, &r->ids, errp)) {
        announce_run_free(r);
        return NULL;
    }
    if (r->rounds_left == 0) {
        announce_run_free(r);
        return NULL;
    }
    r->owner = a;
    g_ptr_array_add(a->runs, r);
    announce_round(r);
    return NULL;
}

VmmAnnounce *vmm_announce_new(VmmMachine *m, VmmMonitor *mon)
{
    VmmAnnounce *a = g_new0(VmmAnnounce, 1);

    a->m = m;
    a->runs = g_ptr_array_new_with_free_func(announce_run_free);
    vmm_monitor_register(mon, "announce-self", vmm_qmp_announce_self, a);
    return a;
}

void vmm_announce_free(VmmAnnounce *a)
{
    if (!a) {
        return;
    }
    g_ptr_array_free(a->runs, TRUE);
    g_free(a);
}
