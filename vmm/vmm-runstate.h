/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The VM's run state, as QEMU reports it (query-status): running, paused
 * (QMP stop), inmigrate (-incoming, waiting for the stream),
 * finish-migrate (the source stopped for the final copy), postmigrate
 * (the source after a completed migration). Leaving or entering
 * "running" emits QEMU's RESUME / STOP events on the monitor.
 *
 * One VM per process, so the state is global. Set from any thread: the
 * events are emitted from the main loop.
 */
#ifndef VMM_RUNSTATE_H
#define VMM_RUNSTATE_H

#include <glib.h>
#include <stdbool.h>

#include "vmm/vmm-monitor.h"

typedef enum VmmRunState {
    VMM_RUN_STATE_RUNNING,
    VMM_RUN_STATE_PAUSED,
    VMM_RUN_STATE_INMIGRATE,
    VMM_RUN_STATE_FINISH_MIGRATE,
    VMM_RUN_STATE_POSTMIGRATE,
} VmmRunState;

/* QEMU's name: "running", "paused", "inmigrate", ... */
const char *vmm_runstate_name(VmmRunState s);
VmmRunState vmm_runstate_get(void);
void vmm_runstate_set(VmmRunState s);
bool vmm_runstate_is_running(void);

/* Registers query-status on mon and sends mon the STOP/RESUME events. */
void vmm_runstate_register(VmmMonitor *mon);
/* Before mon is freed. */
void vmm_runstate_unregister(void);

/*
 * QMP stop and cont on mon, for machine m. stop: the workloads drain and
 * park, the devices stop (vmm_machine_vm_stop), state "paused", STOP.
 * cont: the reverse, state "running", RESUME. Both are no-ops in the
 * state they lead to. In inmigrate, or in postmigrate, cont is refused
 * unless a cont hook is set (vmm_runstate_set_cont_hook).
 */
typedef struct VmmMachine VmmMachine;
void vmm_runstate_register_control(VmmMonitor *mon, VmmMachine *m);

/*
 * The incoming side (-incoming ... -S): after the stream was loaded the
 * VM waits in inmigrate (or paused) for cont, which then calls fn instead
 * of starting the machine itself; fn starts the incoming machine and
 * sets the run state. NULL removes it. Main loop thread.
 */
typedef bool (*VmmContHook)(void *opaque, GError **errp);
void vmm_runstate_set_cont_hook(VmmContHook fn, void *opaque);

#endif
