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
 * ---- Live migration ---------------------------------------------------
 *
 * pause: from any thread but the workload's own. Asks the vCPU thread to
 * stop submitting, and waits (at most timeout_ms) until it has no request
 * in flight and is parked; the rings are then quiet, so the device can be
 * stopped and its state saved. A workload that is not running (waiting,
 * finished) counts as paused. On a timeout the thread is resumed and errp
 * names the workload and what is still in flight.
 */
bool vmm_workload_pause(VmmWorkload *w, unsigned timeout_ms, GError **errp);
/* Lets a paused vCPU thread go on (any thread but its own). */
void vmm_workload_resume(VmmWorkload *w);
/*
 * Main loop. The source, after the migration completed: the paused run
 * ends as migrated (its summary says so; it counts as ok).
 */
void vmm_workload_migrated(VmmWorkload *w);
/*
 * Main loop. The destination, once the stream is loaded and the device
 * resumed: the driver picks up its state from guest RAM (untrusted: every
 * value is checked before it indexes or sizes anything) and the run
 * continues where it stopped on the source, verifying what was written
 * there. A failure finishes the workload (failed), as for start.
 */
void vmm_workload_start_incoming(VmmWorkload *w, VirtioGuestDevice *gd);

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
