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

/* One status line on stderr: "vhost-user-vmm: " + the formatted text. */
void vmm_status(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
