/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * x-vhost-log: the devices' dirty logs through the monitor, until the VMM
 * has a migrate command (experimental, hence the x-):
 *
 *   x-vhost-log  id=DEVICE action=check   {"migratable": bool, "reason": str}
 *                              start      {} (error: why the device cannot log)
 *                              sync       {"dirty": N, "pages": [page numbers]}
 *                              stop       {}
 *
 * A page number is gpa >> 12; sync returns the pages marked since the
 * last sync, sorted.
 */
#ifndef VMM_DIRTYLOG_H
#define VMM_DIRTYLOG_H

#include "vmm/vmm-machine.h"
#include "vmm/vmm-monitor.h"

/* Registers x-vhost-log on mon; m outlives the monitor. */
void vmm_dirtylog_register(VmmMachine *m, VmmMonitor *mon);

#endif
