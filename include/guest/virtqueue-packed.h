/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest driver's side of a packed virtqueue (virtio 1.1+, 2.8): one
 * descriptor ring the driver and the device both write, and two event
 * suppression structures. Like the split ring, the driver's bookkeeping
 * lives in guest RAM (GuestVqPackedState) so that migrating RAM migrates
 * the driver. The calls of guest/virtqueue.h dispatch here for a ring
 * laid out by guest_vq_init_packed().
 *
 * Positions are kept as the spec's off_wrap: bits 0-14 a slot of the
 * ring, bit 15 the wrap counter of that lap (both start at 1).
 */
#ifndef GUEST_VIRTQUEUE_PACKED_H
#define GUEST_VIRTQUEUE_PACKED_H

#include "guest/virtqueue.h"

typedef struct __attribute__((packed)) GuestVqPackedState {
    uint32_t magic;             /* GUEST_VQ_PACKED_MAGIC once initialised */
    uint16_t num;
    uint16_t flags;             /* GUEST_VQ_F_* */
    uint16_t free_head;         /* first free buffer id (list through next_id[]) */
    uint16_t num_free;          /* free descriptor slots */
    uint16_t next_avail;        /* next slot we fill, with our wrap counter */
    uint16_t last_used;         /* next slot the device writes used, with its counter */
    uint64_t desc_gpa;
    uint64_t driver_gpa;        /* driver event suppression (we write) */
    uint64_t device_gpa;        /* device event suppression (the device writes) */
    uint64_t indirect_gpa;      /* num tables of GUEST_VQ_INDIRECT_MAX, or 0 */
    /* VIRTIO_F_IN_ORDER batches, as in GuestVqState */
    uint16_t batch_left;
    uint16_t pend_flags;        /* the hidden head's flags, while pend_slot */
    uint32_t batch_len;
    /*
     * 1 + the slot of the first head added since the last kick, whose
     * flags wait for the kick (0: none): the device stops at it, so the
     * buffers behind it are handed over all at once.
     */
    uint16_t pend_slot;
    uint16_t reserved[3];
    /* followed by: uint64_t token[num]; uint16_t ndesc[num]; uint16_t next_id[num]; */
} GuestVqPackedState;

#define GUEST_VQ_PACKED_MAGIC   0x70717667u     /* "gvqp" */
#define GUEST_VQ_PACKED_WRAP    0x8000u
#define GUEST_VQ_PACKED_SLOT    0x7fffu

/* Bytes to reserve in guest RAM for a GuestVqPackedState of num entries. */
uint64_t guest_vq_packed_state_size(unsigned num);

/*
 * Lays a fresh packed ring out: the descriptor ring at desc_gpa (16 bytes
 * a slot), the driver and device event areas (4 bytes each), the state
 * at state_gpa. Any num from 1 to 32768 (packed rings need no power of
 * two). indirect_gpa 0 disables indirect descriptors. Returns false if
 * any part is not backed by guest RAM.
 */
bool guest_vq_init_packed(GuestVirtqueue *vq, GuestMemory *mem, unsigned num,
                          uint64_t desc_gpa, uint64_t driver_gpa, uint64_t device_gpa,
                          uint64_t indirect_gpa, uint64_t state_gpa, bool event_idx);

/* The calls of virtqueue.h for a packed ring; same contracts. */
bool guest_vq_packed_attach(GuestVirtqueue *vq, GuestMemory *mem, uint64_t state_gpa);
bool guest_vq_packed_set_in_order(GuestVirtqueue *vq);
bool guest_vq_packed_add(GuestVirtqueue *vq, const GuestSg *out, unsigned n_out,
                         const GuestSg *in, unsigned n_in, uint64_t token);
bool guest_vq_packed_kick(GuestVirtqueue *vq);
bool guest_vq_packed_has_used(GuestVirtqueue *vq);
bool guest_vq_packed_get_used(GuestVirtqueue *vq, uint64_t *token, uint32_t *len);
/*
 * Prefetches the descriptors of n slots from position pos (read or for
 * writing). pos comes from guest RAM: it is reduced into the ring, and a
 * prefetch reads nothing anyway.
 */
void guest_vq_packed_prefetch(GuestVirtqueue *vq, uint16_t pos, unsigned n, bool write);
bool guest_vq_packed_enable_cb(GuestVirtqueue *vq);
void guest_vq_packed_disable_cb(GuestVirtqueue *vq);

/*
 * Records the first corrupted value found in guest RAM (vq->corrupt);
 * why NULL means out of range. Always false, for return. Shared by both
 * layouts (guest/virtqueue.c).
 */
bool guest_vq_note_corrupt(GuestVirtqueue *vq, const char *field, uint64_t value,
                           const char *why);

#endif
