/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Telling the network where the guest's MACs live: after an incoming
 * migration (vmm_machine_incoming_start) and through QEMU's QMP command
 *
 *   announce-self  initial, max, rounds, step (ms, ms, count, ms; all
 *                  optional here), interfaces (device ids; default every
 *                  net device), id (accepted, unused)
 *
 * Each round calls vhost_user_net_announce on every chosen net device:
 * SEND_RARP to a back-end that negotiated RARP. A device that cannot
 * announce (no RARP, no back-end) is a status line, never an error: the
 * guest keeps running and the network learns the MAC from its next frame.
 * Round 1 runs at once, round k+1 min(initial + (k-1) * step, max) ms
 * after round k, as QEMU spaces its rounds.
 */
#ifndef VMM_ANNOUNCE_H
#define VMM_ANNOUNCE_H

#include "vmm/vmm-machine.h"
#include "vmm/vmm-monitor.h"

typedef struct VmmAnnounce VmmAnnounce;

/*
 * One round on the net devices named by ids (NULL-terminated; NULL:
 * every net device), one status line each. Returns how many announced.
 */
unsigned vmm_announce_devices(VmmMachine *m, const char *const *ids);

/* Registers announce-self on mon; m and mon outlive the result. */
VmmAnnounce *vmm_announce_new(VmmMachine *m, VmmMonitor *mon);
/* After vmm_monitor_free: rounds still pending are dropped. NULL is fine. */
void vmm_announce_free(VmmAnnounce *a);

#endif
