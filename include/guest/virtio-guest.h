/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The in-process guest driver's bring-up of a virtio device, through the
 * virtio.h model the way a guest kernel would go through virtio-pci:
 * reset, ACKNOWLEDGE | DRIVER, feature negotiation, rings in guest RAM,
 * DRIVER_OK.
 *
 * Guest RAM is handed out by a bump allocator whose state is a small
 * header in guest RAM itself (at GUEST_ALLOC_BASE), so that migrating RAM
 * migrates the allocator with everything it handed out. Allocations never
 * touch RAM below GUEST_ALLOC_BASE nor the last page of RAM.
 */
#ifndef GUEST_VIRTIO_GUEST_H
#define GUEST_VIRTIO_GUEST_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest/virtqueue.h"
#include "hw/virtio/virtio.h"
#include "system/memory.h"

#define GUEST_PAGE_SIZE         UINT64_C(4096)
#define GUEST_ALLOC_BASE        UINT64_C(0x100000)
#define GUEST_ALLOC_MAGIC       UINT64_C(0x636f6c6c61677576)   /* "vugalloc" */

/* The allocator's state, at GUEST_ALLOC_BASE in guest RAM. */
typedef struct __attribute__((packed)) GuestAllocHeader {
    uint64_t magic;
    uint64_t start;             /* first GPA handed out */
    uint64_t next;              /* bump pointer */
    uint64_t limit;             /* first GPA that is never handed out */
    uint64_t nallocs;
} GuestAllocHeader;

/*
 * Fresh boot: writes the header. RAM must cover GUEST_ALLOC_BASE and at
 * least a few pages above it, in one region.
 */
bool guest_alloc_init(GuestMemory *mem, GError **errp);
/*
 * Hands out size bytes aligned to align (a power of two), zeroed.
 * Returns the GPA, or 0 with errp set when RAM is exhausted or the header
 * is not a valid allocator state.
 */
uint64_t guest_alloc(GuestMemory *mem, uint64_t size, uint64_t align, GError **errp);
/* Bytes still free; 0 when the header is invalid. */
uint64_t guest_alloc_free_bytes(const GuestMemory *mem);

/* Where one queue lives in guest RAM. */
typedef struct VirtioGuestRing {
    unsigned num;               /* 0: not laid out yet */
    uint64_t desc_gpa;
    uint64_t avail_gpa;
    uint64_t used_gpa;
    uint64_t state_gpa;         /* the driver's GuestVqState */
    uint64_t indirect_gpa;      /* 0: no indirect tables */
} VirtioGuestRing;

typedef struct VirtioGuestDevice {
    VirtIODevice *vdev;
    GuestMemory *mem;
    uint64_t driver_features;   /* what this driver implements */
    uint64_t features;          /* negotiated at the last boot */
    unsigned nvqs;
    VirtioGuestRing *rings;
    GuestVirtqueue *vqs;
    bool running;               /* DRIVER_OK accepted */
    unsigned boots;
} VirtioGuestDevice;

/* Feature bits the driver implements for a device type (VIRTIO_ID_*). */
uint64_t virtio_guest_driver_features(uint16_t device_id);

VirtioGuestDevice *virtio_guest_device_new(VirtIODevice *vdev, GuestMemory *mem);
void virtio_guest_device_free(VirtioGuestDevice *gd);

/*
 * Brings the device up from reset to DRIVER_OK. Rings of an earlier boot
 * of the same device are reused (same size), so re-booting after a
 * failed attempt does not consume guest RAM. A VERSION_1-less device or
 * a refused FEATURES_OK sets FAILED and returns false; a DRIVER_OK the
 * device could not act on returns its error (the device keeps DRIVER_OK
 * and retries on its own after a reconnect).
 */
bool virtio_guest_device_boot(VirtioGuestDevice *gd, GError **errp);

GuestVirtqueue *virtio_guest_device_vq(VirtioGuestDevice *gd, unsigned n);

/*
 * ---- Live migration --------------------------------------------------
 *
 * The guest's directory: in the allocator's page, after its header, one
 * record per device whose driver runs, so that a VMM that got this RAM
 * finds each driver's state with nothing but the device id. A record
 * gives the negotiated features, the driver's buffer area and where
 * each queue's GuestVqState is (an array of nvqs GPAs, allocated from
 * guest RAM). Everything in it is untrusted when read back.
 */
#define GUEST_DIR_GPA           (GUEST_ALLOC_BASE + 64)
#define GUEST_DIR_MAX           32
#define GUEST_DIR_MAGIC         0x72696467u     /* "gdir" */
#define GUEST_DIR_ID_LEN        32

typedef struct __attribute__((packed)) GuestDirEntry {
    uint32_t magic;
    uint16_t device_id;         /* VIRTIO_ID_* */
    uint16_t nvqs;
    char id[GUEST_DIR_ID_LEN];  /* NUL-terminated device id */
    uint64_t features;
    uint64_t area_gpa;          /* the driver's buffer area */
    uint64_t area_size;
    uint64_t vqs_gpa;           /* nvqs x u64: each queue's GuestVqState */
} GuestDirEntry;

/* Records gd (booted) and its driver's area under id; replaces an older one. */
bool guest_dir_publish(VirtioGuestDevice *gd, const char *id, uint64_t area_gpa,
                       uint64_t area_size, GError **errp);
/* The record of id, checked: a magic, counts and a NUL within bounds. */
bool guest_dir_find(GuestMemory *mem, const char *id, GuestDirEntry *out,
                    GError **errp);

/*
 * The destination: gd is a fresh device whose model was loaded with the
 * source's device state (rings' addresses, bases, features, status), and
 * guest RAM is the source's. Takes up the driver's view from the record
 * without resetting or renegotiating anything: each queue's state from
 * RAM (checked: in RAM, the device's ring size, addresses inside RAM),
 * the features (checked against what the device offers and the driver
 * implements), the notifiers from the device. Errors name the device and
 * the field.
 */
bool virtio_guest_device_attach(VirtioGuestDevice *gd, const GuestDirEntry *e,
                                GError **errp);

#endif
