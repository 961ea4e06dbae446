/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The VM's run state. See vmm/vmm-runstate.h.
 */
#include <glib.h>

#include "util/vhost-user-error.h"
#include "vmm/vmm-machine.h"
#include "vmm/vmm-runstate.h"

static GMutex runstate_lock;
static VmmRunState runstate = VMM_RUN_STATE_RUNNING;
static VmmMonitor *runstate_mon;    /* main loop thread only */

const char *vmm_runstate_name(VmmRunState s)
{
    switch (s) {
    case VMM_RUN_STATE_RUNNING:
        return "running";
    case VMM_RUN_STATE_PAUSED:
        return "paused";
    case VMM_RUN_STATE_INMIGRATE:
        return "inmigrate";
    case VMM_RUN_STATE_FINISH_MIGRATE:
        return "finish-migrate";
    case VMM_RUN_STATE_POSTMIGRATE:
        return "postmigrate";
    }
    return "unknown";
}

VmmRunState vmm_runstate_get(void)
{
    VmmRunState s;

    g_mutex_lock(&runstate_lock);
    s = runstate;
    g_mutex_unlock(&runstate_lock);
    return s;
}

bool vmm_runstate_is_running(void)
{
    return vmm_runstate_get() == VMM_RUN_STATE_RUNNING;
}

static gboolean vmm_runstate_event(gpointer opaque)
{
    bool running = GPOINTER_TO_INT(opaque);

    if (runstate_mon) {
        vmm_monitor_event(runstate_mon, running ? "RESUME" : "STOP", NULL);
    }
    return G_SOURCE_REMOVE;
}

void vmm_runstate_set(VmmRunState s)
{
    bool was_running;

    g_mutex_lock(&runstate_lock);
    was_running = runstate == VMM_RUN_STATE_RUNNING;
    runstate = s;
    g_mutex_unlock(&runstate_lock);
    if (was_running != (s == VMM_RUN_STATE_RUNNING)) {
        /* From the loop, in the order the changes were made. */
        g_idle_add_full(G_PRIORITY_HIGH, vmm_runstate_event,
                        GINT_TO_POINTER(s == VMM_RUN_STATE_RUNNING), NULL);
    }
}

static JsonNode *vmm_qmp_query_status(VmmMonitor *mon, JsonObject *args, void *opaque,
                                      GError **errp)
{
    VmmRunState s = vmm_runstate_get();
    JsonObject *o;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    o = json_object_new();
    json_object_set_boolean_member(o, "running", s == VMM_RUN_STATE_RUNNING);
    json_object_set_boolean_member(o, "singlestep", FALSE);
    json_object_set_string_member(o, "status", vmm_runstate_name(s));
    return vmm_qmp_object_node(o);
}

void vmm_runstate_register(VmmMonitor *mon)
{
    runstate_mon = mon;
    vmm_monitor_register(mon, "query-status", vmm_qmp_query_status, NULL);
}

void vmm_runstate_unregister(void)
{
    runstate_mon = NULL;
}

/* ---- stop / cont -------------------------------------------------------- */

static VmmContHook cont_hook;       /* main loop thread only */
static void *cont_hook_opaque;

void vmm_runstate_set_cont_hook(VmmContHook fn, void *opaque)
{
    cont_hook = fn;
    cont_hook_opaque = opaque;
}

static JsonNode *vmm_qmp_stop(VmmMonitor *mon, JsonObject *args, void *opaque,
                              GError **errp)
{
    VmmMachine *m = opaque;
    VmmRunState s = vmm_runstate_get();

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    if (s != VMM_RUN_STATE_RUNNING) {
        /* QEMU: stopping a VM that does not run is fine, and does nothing. */
        return vmm_qmp_object_node(json_object_new());
    }
    if (!vmm_machine_vm_stop(m, errp)) {
        g_prefix_error(errp, "stop: ");
        return NULL;
    }
    vmm_runstate_set(VMM_RUN_STATE_PAUSED);
    vmm_status("vm stopped (QMP stop)");
    return vmm_qmp_object_node(json_object_new());
}

static JsonNode *vmm_qmp_cont(VmmMonitor *mon, JsonObject *args, void *opaque,
                              GError **errp)
{
    VmmMachine *m = opaque;
    VmmRunState s = vmm_runstate_get();

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    if (cont_hook && (s == VMM_RUN_STATE_INMIGRATE || vmm_machine_is_incoming(m))) {
        if (!cont_hook(cont_hook_opaque, errp)) {
            return NULL;
        }
        return vmm_qmp_object_node(json_object_new());
    }
    if (s == VMM_RUN_STATE_RUNNING) {
        return vmm_qmp_object_node(json_object_new());
    }
    if (s != VMM_RUN_STATE_PAUSED) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "cont: the VM is in state '%s' and cannot run here",
                    vmm_runstate_name(s));
        return NULL;
    }
    if (!vmm_machine_vm_start(m, errp)) {
        /* The workloads run again whatever a device said: so does the VM. */
        vmm_runstate_set(VMM_RUN_STATE_RUNNING);
        g_prefix_error(errp, "cont: ");
        return NULL;
    }
    vmm_runstate_set(VMM_RUN_STATE_RUNNING);
    vmm_status("vm running (QMP cont)");
    return vmm_qmp_object_node(json_object_new());
}

void vmm_runstate_register_control(VmmMonitor *mon, VmmMachine *m)
{
    vmm_monitor_register(mon, "stop", vmm_qmp_stop, m);
    vmm_monitor_register(mon, "cont", vmm_qmp_cont, m);
}
