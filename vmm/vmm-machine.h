/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reference VMM's machine: guest RAM, chardevs, vhost-user devices and
 * the in-process guest driver that boots each device when its back-end is
 * ready. It prints the status lines of the VMM contract; the library only
 * reports to it.
 */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/virtio/vhost-user-base.h"
#include "system/memory.h"
#include "vmm/vmm-options.h"

#define VMM_FILL_PATTERN_XOR    0x7175656d75676976ull

typedef struct VmmMachine VmmMachine;

/*
 * Builds everything cfg describes and opens the chardevs; devices come up
 * later, from the main loop, as their back-ends connect. Fatal errors
 * (RAM, a client that cannot connect without reconnect-ms) return NULL.
 */
VmmMachine *vmm_machine_new(const VmmConfig *cfg, GError **errp);
/* Stops every running device (GET_VRING_BASE per ring). */
void vmm_machine_shutdown(VmmMachine *m);
void vmm_machine_free(VmmMachine *m);

/* -workload: called in the loop once the last workload has finished. */
typedef void (*VmmMachineDoneFn)(void *opaque);

bool vmm_machine_has_workloads(const VmmMachine *m);
bool vmm_machine_workloads_finished(const VmmMachine *m);
void vmm_machine_set_workloads_done(VmmMachine *m, VmmMachineDoneFn fn, void *opaque);
/* Ends every workload early (why: the reason reported); each then finishes. */
void vmm_machine_stop_workloads(VmmMachine *m, const char *why);
/*
 * Prints every workload's summary (stderr; JSON lines on stdout with
 * json). True when every workload completed and verified.
 */
bool vmm_machine_report(VmmMachine *m, bool json);

/*
 * Run-time RAM, for the monitor (vmm/vmm-hotplug.c). Main loop thread
 * only: GuestMemory is not locked, and the vCPU threads never look it up
 * (their drivers resolved ring and buffer addresses into the boot RAM at
 * start, and boot RAM cannot be unplugged).
 */
GuestMemory *vmm_machine_memory(VmmMachine *m);
/* The device of that id (-device / -netdev id), or NULL. */
VhostUserBase *vmm_machine_find_device(VmmMachine *m, const char *id);
/* Memory backends by id: every -object, ram0, and those added at run time. */
RamBlock *vmm_machine_find_ram_block(VmmMachine *m, const char *id);
/* Takes over rb (its id must be new). */
void vmm_machine_add_ram_block(VmmMachine *m, RamBlock *rb);
/* Drops the machine's reference; the block must not be mapped in guest RAM. */
void vmm_machine_del_ram_block(VmmMachine *m, RamBlock *rb);
/*
 * Places rb (whole) at gpa and tells every device's back-end (see
 * vhost_dev_add_ram: limits are checked first, nothing changes then).
 * Should a back-end then fail the update, the RAM is taken out again so
 * the call has no effect, and the error names the device.
 */
bool vmm_machine_plug_ram(VmmMachine *m, uint64_t gpa, RamBlock *rb, GError **errp);
/*
 * Removes the region at gpa. Always done when it existed; an error then
 * only says which back-end failed the update (it was dropped and gets the
 * whole table when it reconnects).
 */
bool vmm_machine_unplug_ram(VmmMachine *m, uint64_t gpa, GError **errp);

/*
 * ---- Live migration (vmm/vmm-machine-migrate.c) ----------------------
 *
 * vm_stop and vm_start may be called from any thread but a vCPU thread
 * (the migration thread, or the loop for QMP stop/cont): the workloads
 * are paused where the caller runs, the devices on the loop thread
 * (vmm/vmm-loop.h). The others are for the loop thread only.
 */

/* The devices, in -device order, for dirty logging and saving. */
unsigned vmm_machine_ndevices(const VmmMachine *m);
VhostUserBase *vmm_machine_device(VmmMachine *m, unsigned i);
/*
 * Whether device i's back-end is connected and has negotiated (the
 * library's READY, not yet followed by a disconnect): what
 * vmm_machine_load_device needs on the destination.
 */
bool vmm_machine_device_ready(VmmMachine *m, unsigned i);

/*
 * Stops the guest for the final copy, like QEMU's "stop": every running
 * workload stops submitting, waits until its requests in flight have
 * completed and parks its vCPU thread; then every device whose rings run
 * is paused (GET_VRING_BASE per ring). On failure whatever was stopped is
 * resumed and errp names the device or workload. Stopping a stopped
 * machine does nothing.
 */
bool vmm_machine_vm_stop(VmmMachine *m, GError **errp);
/* Undoes vm_stop: devices resume from their bases, then the workloads. */
bool vmm_machine_vm_start(VmmMachine *m, GError **errp);
bool vmm_machine_vm_running(const VmmMachine *m);

/*
 * The source after a completed migration: the guest now runs elsewhere.
 * Each workload ends as migrated (its summary says so and counts as ok),
 * and every device lets its back-end go (the rings stay stopped).
 */
void vmm_machine_migrated_out(VmmMachine *m);

/*
 * The destination (-incoming), before the loop runs: devices connect and
 * negotiate with their back-ends but are not booted by the driver.
 */
void vmm_machine_set_incoming(VmmMachine *m);
bool vmm_machine_is_incoming(const VmmMachine *m);
/*
 * One device's state from the stream (vhost_user_base_save's blob),
 * by device id; untrusted. The device must be connected and negotiated.
 */
bool vmm_machine_load_device(VmmMachine *m, const char *id, const void *data,
                             size_t len, GError **errp);
/*
 * The whole stream is loaded: each device resumes its rings from the
 * saved bases, the guest drivers pick up their state from guest RAM, the
 * workloads continue where they stopped on the source, and net devices
 * announce the guest's MAC (SEND_RARP, or VIRTIO_NET_F_GUEST_ANNOUNCE).
 * The machine is no longer incoming afterwards.
 */
bool vmm_machine_incoming_start(VmmMachine *m, GError **errp);
/*
 * The same in two steps, for a caller that checks something between the
 * devices' start (their back-ends map guest RAM) and the guest's.
 */
bool vmm_machine_incoming_start_devices(VmmMachine *m, GError **errp);
void vmm_machine_incoming_start_guest(VmmMachine *m);

/* One status line on stderr: "vhost-user-vmm: " + the formatted text. */
void vmm_status(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
