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

/* One status line on stderr: "vhost-user-vmm: " + the formatted text. */
void vmm_status(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
