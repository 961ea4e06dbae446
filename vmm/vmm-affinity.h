/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Keeping the vCPU (workload) threads and the main loop off each other's
 * CPU (-vcpu-pin on): when the process may run on at least 2 CPUs, each
 * workload thread gets one CPU of its own and the main loop (with every
 * thread it starts later: migration, ...) keeps the others.
 */
#ifndef VMM_AFFINITY_H
#define VMM_AFFINITY_H

#include <glib.h>

/*
 * From the main loop, right before it starts a vCPU thread: picks the
 * CPU the thread is to run on and moves the calling thread there for the
 * moment, so that the new thread is born on it (no window where it runs
 * elsewhere). -1, nothing changed, with fewer than 2 CPUs allowed.
 */
int vmm_affinity_take_vcpu(void);
/*
 * Right after starting it: the main loop's thread moves to the CPUs no
 * vCPU thread has. Returns what was done, for a status line (newly
 * allocated).
 */
char *vmm_affinity_main_rest(int cpu);

#endif
