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

#endif
