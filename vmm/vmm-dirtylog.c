/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * x-vhost-log: see vmm/vmm-dirtylog.h. A thin layer over the library's
 * vhost_user_base_log_* calls.
 */
#include <string.h>

#include <glib.h>

#include "vmm/vmm-dirtylog.h"

static JsonNode *vmm_dirtylog_sync(VhostUserBase *vub, GuestMemory *mem, GError **errp)
{
    uint64_t npages = (guest_memory_end(mem) + (1ull << VHOST_USER_DIRTY_PAGE_SHIFT) - 1) >>
                      VHOST_USER_DIRTY_PAGE_SHIFT;
    uint64_t nwords = (npages + 63) / 64;
    g_autofree uint64_t *bitmap = g_new0(uint64_t, nwords ? nwords : 1);
    uint64_t dirty = 0;
    JsonObject *o;
    JsonArray *pages;

    if (!vhost_user_base_log_sync(vub, bitmap, npages, &dirty, errp)) {
        return NULL;
    }
    pages = json_array_new();
    for (uint64_t w = 0; w < nwords; w++) {
        for (uint64_t b = bitmap[w]; b; b &= b - 1) {
            json_array_add_int_element(pages, (gint64)(w * 64 + (uint64_t)__builtin_ctzll(b)));
        }
    }
    o = json_object_new();
    json_object_set_int_member(o, "dirty", (gint64)dirty);
    json_object_set_array_member(o, "pages", pages);
    return vmm_qmp_object_node(o);
}

static JsonNode *vmm_qmp_x_vhost_log(VmmMonitor *mon, JsonObject *args, void *opaque,
                                     GError **errp)
{
    static const char *const keys[] = { "id", "action", NULL };
    VmmMachine *m = opaque;
    const char *id, *action;
    VhostUserBase *vub;

    if (!vmm_qmp_check_args(args, keys, errp) ||
        !vmm_qmp_arg_str(args, "id", true, &id, errp) ||
        !vmm_qmp_arg_str(args, "action", true, &action, errp)) {
        return NULL;
    }
    vub = vmm_machine_find_device(m, id);
    if (!vub) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_DEVICE_NOT_FOUND,
                    "Device '%s' not found", id);
        return NULL;
    }
    if (!strcmp(action, "check")) {
        g_autoptr(GError) why = NULL;
        JsonObject *o = json_object_new();
        bool ok = vhost_user_base_check_migratable(vub, &why);

        json_object_set_boolean_member(o, "migratable", ok);
        json_object_set_string_member(o, "reason", ok ? "" : why->message);
        return vmm_qmp_object_node(o);
    }
    if (!strcmp(action, "start")) {
        if (vhost_user_base_log_start(vub, errp)) {
            vmm_status("qmp: %s: dirty logging on", id);
        }
        return NULL;
    }
    if (!strcmp(action, "sync")) {
        return vmm_dirtylog_sync(vub, vmm_machine_memory(m), errp);
    }
    if (!strcmp(action, "stop")) {
        vhost_user_base_log_stop(vub);
        vmm_status("qmp: %s: dirty logging off", id);
        return NULL;
    }
    g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                "Parameter 'action' expects check, start, sync or stop, not '%s'", action);
    return NULL;
}

void vmm_dirtylog_register(VmmMachine *m, VmmMonitor *mon)
{
    vmm_monitor_register(mon, "x-vhost-log", vmm_qmp_x_vhost_log, m);
}
