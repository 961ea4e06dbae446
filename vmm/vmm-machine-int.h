/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the machine's own files share (vmm-machine.c, which builds it, and
 * vmm-machine-migrate.c, which stops, resumes and hands over its state).
 * Not for the rest of the VMM: it goes through vmm-machine.h.
 */
#ifndef VMM_MACHINE_INT_H
#define VMM_MACHINE_INT_H

#include "guest/virtio-guest.h"
#include "vmm/vmm-backend-req.h"
#include "vmm/vmm-machine.h"
#include "vmm/vmm-workload.h"

typedef struct VmmDevice {
    VmmMachine *machine;
    char *id;
    char *chr_path;
    VhostUserBase *vub;
    VmmBackendReq *backend_req_ops; /* answers the back-end's requests */
    VirtioGuestDevice *guest;
    VmmWorkload *wl;            /* -workload for this device, or NULL */
    bool ready;                 /* negotiated (READY) and still connected */
} VmmDevice;

struct VmmMachine {
    GuestMemory *mem;
    GPtrArray *blocks;          /* RamBlock, every -object (and ram0) */
    GPtrArray *chardevs;        /* CharSocket */
    GPtrArray *devices;         /* VmmDevice */
    unsigned nworkloads;
    unsigned workloads_done;
    guint progress_timer;
    VmmMachineDoneFn done;
    void *done_opaque;
    /*
     * -incoming: the guest's state comes from a migration stream, so a
     * back-end that becomes ready is not booted by the driver; the device
     * waits for vmm_machine_load_device() and vmm_machine_incoming_start().
     */
    bool incoming;
    bool vm_stopped;            /* vmm_machine_vm_stop() took effect */
};

/* Where a device becomes ready: boots it unless the machine is incoming. */
void vmm_device_boot(VmmDevice *d);

#endif
