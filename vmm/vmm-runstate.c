/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The VM's run state. See vmm/vmm-runstate.h.
 */
#include <glib.h>

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
