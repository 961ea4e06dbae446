/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The machine's side of live migration: stopping and resuming the guest
 * (workloads, then devices), and on the destination loading each device's
 * state and starting the guest where the source left it. The stream and
 * the rounds are vmm/vmm-migrate.c's. See vmm/vmm-machine.h.
 */
#include <string.h>

#include <glib.h>

#include "hw/virtio/vhost-user-net.h"
#include "util/vhost-user-error.h"
#include "vmm/vmm-loop.h"
#include "vmm/vmm-announce.h"
#include "vmm/vmm-machine-int.h"

/* How long a workload may take to complete what it has in flight. */
#define VMM_PAUSE_TIMEOUT_MS    10000

unsigned vmm_machine_ndevices(const VmmMachine *m)
{
    return m->devices->len;
}

VhostUserBase *vmm_machine_device(VmmMachine *m, unsigned i)
{
    g_assert(i < m->devices->len);
    return ((VmmDevice *)m->devices->pdata[i])->vub;
}

bool vmm_machine_device_ready(VmmMachine *m, unsigned i)
{
    g_assert(i < m->devices->len);
    return ((VmmDevice *)m->devices->pdata[i])->ready;
}

static VmmDevice *vmm_machine_find(VmmMachine *m, const char *id)
{
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (!strcmp(d->id, id)) {
            return d;
        }
    }
    return NULL;
}

static void vmm_machine_resume_workloads(VmmMachine *m, guint upto)
{
    for (guint i = 0; i < upto; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (d->wl) {
            vmm_workload_resume(d->wl);
        }
    }
}

/* Loop thread: resumes devices [0, upto) that vm_stop paused. */
static bool vmm_machine_resume_devices(VmmMachine *m, guint upto, GError **errp)
{
    bool ok = true;

    for (guint i = 0; i < upto; i++) {
        VmmDevice *d = m->devices->pdata[i];
        g_autoptr(GError) err = NULL;

        if (vhost_user_base_is_paused(d->vub) &&
            !vhost_user_base_resume(d->vub, &err)) {
            /* Keep going: every other device must run again. */
            if (ok) {
                g_propagate_prefixed_error(errp, g_steal_pointer(&err), "%s: ", d->id);
            }
            ok = false;
        }
    }
    return ok;
}

static bool vmm_machine_pause_devices_cb(void *opaque, GError **errp)
{
    VmmMachine *m = opaque;

    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (!vhost_user_base_pause(d->vub, errp)) {
            g_prefix_error(errp, "%s: cannot stop the device: ", d->id);
            vmm_machine_resume_devices(m, i, NULL);
            return false;
        }
    }
    return true;
}

static bool vmm_machine_resume_devices_cb(void *opaque, GError **errp)
{
    VmmMachine *m = opaque;

    return vmm_machine_resume_devices(m, m->devices->len, errp);
}

bool vmm_machine_vm_stop(VmmMachine *m, GError **errp)
{
    if (m->vm_stopped) {
        return true;
    }
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (d->wl && !vmm_workload_pause(d->wl, VMM_PAUSE_TIMEOUT_MS, errp)) {
            vmm_machine_resume_workloads(m, i);
            return false;
        }
    }
    if (!vmm_loop_call(vmm_machine_pause_devices_cb, m, errp)) {
        vmm_machine_resume_workloads(m, m->devices->len);
        return false;
    }
    m->vm_stopped = true;
    return true;
}

bool vmm_machine_vm_start(VmmMachine *m, GError **errp)
{
    bool ok;

    if (!m->vm_stopped) {
        return true;
    }
    ok = vmm_loop_call(vmm_machine_resume_devices_cb, m, errp);
    /* Even when a device failed: the others run, their drivers must too. */
    vmm_machine_resume_workloads(m, m->devices->len);
    m->vm_stopped = false;
    return ok;
}

bool vmm_machine_vm_running(const VmmMachine *m)
{
    return !m->vm_stopped && !m->incoming;
}

void vmm_machine_migrated_out(VmmMachine *m)
{
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (d->wl) {
            vmm_workload_migrated(d->wl);
        }
    }
}

void vmm_machine_set_incoming(VmmMachine *m)
{
    m->incoming = true;
}

bool vmm_machine_is_incoming(const VmmMachine *m)
{
    return m->incoming;
}

bool vmm_machine_load_device(VmmMachine *m, const char *id, const void *data,
                             size_t len, GError **errp)
{
    VmmDevice *d = vmm_machine_find(m, id);

    if (!d) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "the stream has state for device '%s', which this VMM does not have",
                    id);
        return false;
    }
    return vhost_user_base_load(d->vub, data, len, errp);
}

bool vmm_machine_incoming_start(VmmMachine *m, GError **errp)
{
    if (!vmm_machine_incoming_start_devices(m, errp)) {
        return false;
    }
    vmm_machine_incoming_start_guest(m);
    return true;
}

bool vmm_machine_incoming_start_devices(VmmMachine *m, GError **errp)
{
    return vmm_machine_resume_devices(m, m->devices->len, errp);
}

void vmm_machine_incoming_start_guest(VmmMachine *m)
{
    m->incoming = false;
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (!d->guest) {
            d->guest = virtio_guest_device_new(vhost_user_base_vdev(d->vub), m->mem);
        }
        if (d->wl) {
            vmm_workload_start_incoming(d->wl, d->guest);
        }
    }
    /* The switch learns the MACs' new port; a device that cannot is a status line. */
    vmm_announce_devices(m, NULL);
}
