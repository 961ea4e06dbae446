/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest driver's side of a split virtqueue (virtio 1.x, 2.7), laid out
 * in guest RAM. The driver's own bookkeeping (free list head, shadow avail
 * index, last seen used index, per-request tokens) lives in guest RAM too,
 * in a GuestVqState block, so migrating RAM migrates the driver: a driver
 * re-attached to the same GPAs on the destination carries on where the
 * source stopped. The host-side GuestVirtqueue only caches pointers.
 *
 * Packed rings (VIRTIO_F_RING_PACKED) sit beside this behind the same
 * calls: guest_vq_init_packed() lays one out, and every call below works
 * on either (include/guest/virtqueue-packed.h, guest/virtqueue-packed.c).
 */
#ifndef GUEST_VIRTQUEUE_H
#define GUEST_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/virtio/virtio-ring-defs.h"
#include "system/memory.h"

/* Entries per indirect table: enough for any request our drivers build. */
#define GUEST_VQ_INDIRECT_MAX   16

/* Guest-RAM resident driver state; see guest_vq_state_size(). */
typedef struct __attribute__((packed)) GuestVqState {
    uint32_t magic;             /* GUEST_VQ_STATE_MAGIC once initialised */
    uint16_t num;
    uint16_t free_head;
    uint16_t num_free;
    uint16_t avail_idx;         /* shadow of avail->idx, what we published */
    uint16_t last_used_idx;     /* next used entry we have not consumed */
    uint16_t flags;             /* GUEST_VQ_F_* */
    uint64_t desc_gpa;
    uint64_t avail_gpa;
    uint64_t used_gpa;
    uint64_t indirect_gpa;      /* num tables of GUEST_VQ_INDIRECT_MAX, or 0 */
    /*
     * VIRTIO_F_IN_ORDER: a device may report a batch of buffers with one
     * used entry naming the last (virtio "In-order use of descriptors").
     * The buffers of that batch not handed out yet, counting the last,
     * and the length the entry gave (the last buffer's; the others' are
     * not written).
     */
    uint16_t batch_left;
    uint16_t reserved;          /* keeps token[] 8-byte aligned */
    uint32_t batch_len;
    /* followed by: uint64_t token[num]; uint16_t ndesc[num]; */
} GuestVqState;

#define GUEST_VQ_STATE_MAGIC    0x71766776u     /* "vgvq" */
#define GUEST_VQ_F_EVENT_IDX    (1u << 0)
#define GUEST_VQ_F_INDIRECT     (1u << 1)
#define GUEST_VQ_F_IN_ORDER     (1u << 2)

/* Bytes to reserve in guest RAM for a GuestVqState of num entries. */
uint64_t guest_vq_state_size(unsigned num);
/* Bytes to reserve for the indirect tables of a ring of num entries. */
uint64_t guest_vq_indirect_size(unsigned num);

typedef struct GuestVirtqueue {
    GuestMemory *mem;
    GuestVqState *st;           /* in guest RAM */
    uint64_t *token;            /* in guest RAM, after st */
    uint16_t *ndesc;            /* in guest RAM, after token */
    VringDesc *desc;
    uint16_t *avail;            /* [0] flags, [1] idx, [2..] ring, [2+num] used_event */
    uint8_t *used;              /* flags, idx, ring[], avail_event */
    VringDesc *indirect;        /* NULL without indirect descriptors */
    /* Where they are, as mapped (st's copies are the back-end's to write). */
    uint64_t desc_gpa, avail_gpa, used_gpa, indirect_gpa;
    uint16_t num;
    int kick_fd;                /* -1 until set; the driver writes it */
    int call_fd;                /* -1 until set; the device writes it */
    /* Avail index at the last kick decision, for EVENT_IDX suppression. */
    uint16_t kicked_avail_idx;
    uint64_t kicks;             /* notifications sent */
    uint64_t kicks_suppressed;  /* ... and the ones EVENT_IDX spared */
    /*
     * guest_vq_disable_cb() called and not yet undone. Kept here, not in
     * guest RAM: with EVENT_IDX it keeps get_used from moving used_event,
     * which would re-arm the device's interrupt on every reaped entry.
     */
    bool cb_disabled;
    /*
     * Guest RAM is the back-end's to write (it maps all of it), so every
     * value read back from it is checked before it indexes anything. The
     * first one out of range names itself here and stops the queue: add
     * and get_used refuse from then on, and the driver fails the device
     * (guest_vq_corruption()).
     */
    const char *corrupt;        /* NULL, or the field: "free_head", ... */
    const char *corrupt_why;    /* NULL: out of range */
    uint64_t corrupt_value;
    /*
     * A packed ring: st, avail, used and desc above are NULL and these
     * are used instead (see virtqueue-packed.h). desc_gpa, avail_gpa and
     * used_gpa then hold the descriptor ring and the driver and device
     * event suppression areas.
     */
    bool packed;
    struct GuestVqPackedState *pst; /* in guest RAM */
    uint16_t *next_id;              /* in guest RAM: free buffer id list */
    struct VringPackedDesc *pdesc;
    uint16_t *driver_event;     /* [0] off_wrap, [1] flags; we write it */
    uint16_t *device_event;     /* the same; the device writes it */
    struct VringPackedDesc *pindirect;      /* NULL without indirect */
    uint16_t added;             /* descriptors made available since the last kick */
} GuestVirtqueue;

/* One buffer of a request, by guest physical address. */
typedef struct GuestSg {
    uint64_t gpa;
    uint32_t len;
} GuestSg;

/*
 * Lays a fresh ring out at the given GPAs (zeroing it) and its driver
 * state at state_gpa. indirect_gpa 0 disables indirect descriptors.
 * Returns false if any part is not backed by guest RAM.
 */
bool guest_vq_init(GuestVirtqueue *vq, GuestMemory *mem, unsigned num,
                   uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
                   uint64_t indirect_gpa, uint64_t state_gpa, bool event_idx);
/*
 * Re-attaches to a ring whose state is already in guest RAM (after a
 * migration): nothing in guest RAM is written.
 */
bool guest_vq_attach(GuestVirtqueue *vq, GuestMemory *mem, uint64_t state_gpa);

/*
 * VIRTIO_F_IN_ORDER was negotiated: descriptors are then used in ring
 * order (a chain at x continues at x + 1, wrapping to 0; a packed ring's
 * buffer id is the slot of its first descriptor), and a completion is
 * always the oldest request in flight. The device may report a batch
 * with one used entry naming its last request: the requests before it
 * in the batch are then completed with len 0 (the spec has the device
 * write no length for them). A device that writes every entry works as
 * well. Call right after guest_vq_init*(), before the first add; false
 * if a request is already queued.
 */
bool guest_vq_set_in_order(GuestVirtqueue *vq);

/*
 * Queues one request: out[] device-readable then in[] device-writable
 * buffers. Uses one indirect descriptor when there are several buffers and
 * indirect descriptors are on, else a chain. The device sees it at the
 * next guest_vq_kick(), in either ring layout. Returns false when the ring
 * has no room (the caller retries after reaping completions) or its
 * state in guest RAM is corrupted (vq->corrupt says which field).
 */
bool guest_vq_add(GuestVirtqueue *vq, const GuestSg *out, unsigned n_out,
                  const GuestSg *in, unsigned n_in, uint64_t token);
/*
 * About to add n single-descriptor requests: starts fetching the ring
 * lines they will be written to (packed: the descriptors; the device's
 * core wrote them last), so the misses overlap instead of stalling the
 * adds one after another. A hint only: nothing is read or written.
 */
void guest_vq_prefetch_add(GuestVirtqueue *vq, unsigned n);
/*
 * Publishes queued requests and notifies the device unless it asked not
 * to be (VRING_USED_F_NO_NOTIFY, or EVENT_IDX's avail_event). Returns
 * true when a notification was sent.
 */
bool guest_vq_kick(GuestVirtqueue *vq);
/*
 * Next completion, or false when none: *token and *len (bytes written).
 * Also false when the used entry or the ring's state is corrupted
 * (vq->corrupt). *token is what guest RAM holds: check it.
 */
bool guest_vq_get_used(GuestVirtqueue *vq, uint64_t *token, uint32_t *len);

typedef struct GuestVqUsed {
    uint64_t token;             /* as guest RAM holds it: check it */
    uint32_t len;
} GuestVqUsed;

/*
 * Up to max completions into used[], in order, from one read of the used
 * index (and one barrier), not one per entry: the count taken. Stops
 * early at a corrupted entry (vq->corrupt), keeping the ones before it.
 */
unsigned guest_vq_get_used_burst(GuestVirtqueue *vq, GuestVqUsed *used, unsigned max);
/*
 * Something to look at: the used ring has an entry not taken yet, or the
 * queue is corrupt (guest_vq_get_used says why). No fence, no write: for
 * busy-polling.
 */
bool guest_vq_has_used(GuestVirtqueue *vq);
/*
 * Asks the device to interrupt (call) when the next completion arrives and
 * returns true if completions raced in meanwhile (check again before
 * sleeping). disable asks it not to.
 */
bool guest_vq_enable_cb(GuestVirtqueue *vq);
void guest_vq_disable_cb(GuestVirtqueue *vq);
/* Drains the call eventfd (non-blocking); returns the count read. */
uint64_t guest_vq_ack_call(GuestVirtqueue *vq);

unsigned guest_vq_num_free(const GuestVirtqueue *vq);
/*
 * NULL while the queue is sound; else what was found corrupted in guest
 * RAM, as "device state in RAM corrupted: DEV: queue Q: FIELD VALUE ..."
 * (newly allocated).
 */
char *guest_vq_corruption(const GuestVirtqueue *vq, const char *dev, unsigned q);
/* Requests queued and not completed. */
unsigned guest_vq_in_flight(const GuestVirtqueue *vq);

#endif
