/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory hotplug through the monitor, with QEMU's commands and argument
 * names:
 *
 *   object-add  qom-type=memory-backend-memfd|memory-backend-file, id, size,
 *               share, mem-path (file)      a RAM block, not yet guest RAM
 *   object-del  id                          only while no pc-dimm uses it
 *   device_add  driver=pc-dimm, id, memdev, addr (optional)
 *                                           the block becomes guest RAM and
 *                                           every back-end is told
 *   device_del  id                          the reverse; DEVICE_DELETED event
 *   query-memory-devices                    the pc-dimms
 *
 * The guest RAM change goes through vmm_machine_plug_ram/unplug_ram, that
 * is vhost_dev_add_ram/remove_ram: ADD_MEM_REG/REM_MEM_REG with memory
 * slots, a whole SET_MEM_TABLE without.
 */
#ifndef VMM_HOTPLUG_H
#define VMM_HOTPLUG_H

#include "vmm/vmm-machine.h"
#include "vmm/vmm-monitor.h"

/* Without addr, a pc-dimm goes to the lowest free GPA this aligned. */
#define VMM_DIMM_ALIGN          (2ull << 20)

typedef struct VmmHotplug VmmHotplug;

/* Registers the commands above on mon; m and mon outlive the result. */
VmmHotplug *vmm_hotplug_new(VmmMachine *m, VmmMonitor *mon);
/*
 * After vmm_monitor_free (the commands point here). Forgets the
 * pc-dimms; their RAM stays in the machine until the machine is freed.
 */
void vmm_hotplug_free(VmmHotplug *hp);

#endif
