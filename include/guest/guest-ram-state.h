/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the guest drivers keep in guest RAM besides the rings (whose
 * bookkeeping is GuestVqState, guest/virtqueue.h): the block and net
 * drivers' state pages. Guest RAM is migrated as it is, so this layout is
 * what a continuing driver reads back. Every vhost-user back-end maps all
 * of guest RAM read/write, so it can write these too: the drivers check
 * each value before it indexes, offsets or sizes anything (see "Guest
 * RAM is untrusted" in docs/devel/architecture.rst). The scribbler
 * (vhost-user-backend --x-scribble) uses this layout to aim at them.
 */
#ifndef GUEST_GUEST_RAM_STATE_H
#define GUEST_GUEST_RAM_STATE_H

#include <stdint.h>

/*
 * A state page against the driver's own copy of it: the first field that
 * differs, what it held and what the driver had set. Both drivers check
 * theirs once a round.
 */
typedef struct GuestStateDiff {
    const char *field;          /* NULL: no difference yet */
    uint64_t found, want;
} GuestStateDiff;

static inline void guest_state_diff(GuestStateDiff *diff, const char *field, uint64_t found,
                                    uint64_t want)
{
    if (!diff->field && found != want) {
        diff->field = field;
        diff->found = found;
        diff->want = want;
    }
}

/* Field f of state page st against expect, named as the struct names it. */
#define GUEST_STATE_CHECK(diff, st, f, expect) \
    guest_state_diff((diff), #f, (uint64_t)(st)->f, (uint64_t)(expect))

#define BLK_STATE_MAGIC     0x6b6c6276u     /* "vblk" */
#define BLK_STATE_SIZE      4096u
#define BLK_RUN_MAGIC       0x6e757262u     /* "brun" */

/*
 * A parked run, as the driver left it in guest RAM for whoever continues
 * it (live migration): nothing is in flight then, so the request slots
 * and the in-flight bitmap are rebuilt empty, and this is all that is
 * left of the run outside the generation table. magic is written last
 * and cleared when the run goes on. Untrusted when read back: the
 * workload's shape is compared with the continuing one, every position
 * is bounds-checked (blk_run_record_check()).
 */
typedef struct __attribute__((packed)) BlkRunRecord {
    uint32_t magic;
    uint32_t phase;             /* BlkPhase */
    uint32_t bs;
    uint32_t nq;
    uint32_t depth;
    uint32_t rw;                /* BlkRwMode */
    uint64_t nblocks;
    uint64_t issued;            /* main generator: operations issued */
    uint64_t cursor;            /* ... next block (sequential modes) */
    uint64_t rng;               /* ... xorshift state */
    uint64_t verify_cursor;     /* read-back: next sector */
    uint64_t runtime_left_ns;   /* runtime= left; 0: no limit */
    uint64_t reads, writes, flushes, discards, write_zeroes;
    uint64_t sectors_verified, mismatches, io_errors;
    uint64_t ops, bytes, errors;
} BlkRunRecord;

/* Driver state in guest RAM, at the start of the buffer area. */
typedef struct __attribute__((packed)) BlkDrvState {
    uint32_t magic;
    uint32_t seed;
    uint64_t tracked;           /* sectors in the generation table */
    uint64_t pool_gpa;
    uint64_t pool_size;
    uint64_t gen_gpa;
    uint64_t inflight_gpa;
    uint64_t requests;          /* completed over the driver's life */
    BlkRunRecord run;           /* a parked run, when run.magic says so */
} BlkDrvState;

_Static_assert(sizeof(BlkDrvState) <= BLK_STATE_SIZE, "blk state page");

#define NET_STATE_MAGIC     0x74656e76u     /* "vnet" */
#define NET_STATE_SIZE      4096u
#define NET_MAX_QP          64u
#define NET_RUN_MAGIC       0x6e75726eu     /* "nrun" */

/*
 * A parked run (live migration), as the driver left it with no TX buffer
 * out: with the sent counts, the received records in the work area and
 * the rings' state, all the run is. magic is written last and cleared
 * when the run goes on. Untrusted when read back (net_run_restore()).
 */
typedef struct __attribute__((packed)) NetRunRecord {
    uint32_t magic;
    uint32_t nqp;
    uint32_t window;
    uint32_t ntx;
    uint32_t slot;
    uint32_t sending;
    uint64_t count;
    uint64_t runtime_left_ns;   /* 0: no limit */
    uint64_t received, verified, mismatched, stale, wrong_queue;
} NetRunRecord;

/* Driver state in guest RAM, at the start of the buffer area. */
typedef struct __attribute__((packed)) NetDrvState {
    uint32_t magic;
    uint32_t run;               /* run number: the packets' generation */
    uint32_t rxbuf;             /* bytes per RX buffer; 0 until posted */
    uint32_t nqp;
    uint64_t rx_gpa;            /* RX buffers: nqp x ring size of them */
    uint64_t work_gpa;          /* this run's TX slots and received records */
    uint64_t sent[NET_MAX_QP];  /* packets sent per pair, this run */
    NetRunRecord rec;           /* a parked run, when rec.magic says so */
} NetDrvState;

_Static_assert(sizeof(NetDrvState) <= NET_STATE_SIZE, "net state page");

#endif
