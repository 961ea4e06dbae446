/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A -workload of the reference VMM: the guest driver of one device (blk or
 * net) run by a "vCPU" thread of its own once the device's rings first
 * run, with progress figures for the main loop to print and a summary at
 * the end.
 *
 * Threading: every function here is for the main loop thread. The vCPU
 * thread only touches guest RAM, the rings' eventfds and the workload's
 * own progress/result fields; it tells the main loop it has finished
 * through an idle callback, where the thread is joined.
 */
#ifndef VMM_WORKLOAD_H
#define VMM_WORKLOAD_H

#include <glib.h>
#include <stdbool.h>

#include "guest/virtio-guest.h"
#include "vmm/vmm-options.h"

/*
 * With requests in flight and none completing for this long the run
 * fails. Long enough for a back-end to come back after a disconnect
 * (reconnect backoff), short enough that a dead one ends the run.
 */
#define VMM_WORKLOAD_STALL_MS   30000

typedef struct VmmWorkload VmmWorkload;

/* Called in the main loop once the workload has finished (or failed to start). */
typedef void (*VmmWorkloadDoneFn)(VmmWorkload *w, void *opaque);

VmmWorkload *vmm_workload_new(const VmmWorkloadOpts *o, VmmWorkloadDoneFn done,
                              void *opaque);
/* Asks a running thread to stop, joins it, frees everything. NULL is fine. */
void vmm_workload_free(VmmWorkload *w);

const char *vmm_workload_id(const VmmWorkload *w);

/*
 * The device's rings run for the first time: reads the config, takes a
 * buffer area from the guest allocator, builds the driver and starts the
 * vCPU thread. A failure finishes the workload at once (failed), with the
 * done callback called from the loop like any other end.
 */
void vmm_workload_start(VmmWorkload *w, VirtioGuestDevice *gd);
bool vmm_workload_started(const VmmWorkload *w);
bool vmm_workload_finished(const VmmWorkload *w);

/*
 * Ends the run early (a signal). A workload not yet started is finished
 * as "did not run"; either way it counts as failed.
 */
void vmm_workload_stop(VmmWorkload *w, const char *why);

/*
 * The latest progress, "blk0: 12000 ops, 6010 op/s, 23.5 MiB/s", or NULL
 * while there is none (not started, finished, first second not over).
 */
char *vmm_workload_progress(VmmWorkload *w);

/* Completed, and verified when verification was asked for. */
bool vmm_workload_ok(const VmmWorkload *w);

/*
 * Prints the human summary on stderr (status lines) and, with json, one
 * JSON object on one line on stdout.
 */
void vmm_workload_report(VmmWorkload *w, bool json);

#endif
