/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the guest's virtio-net driver (virtio-net-drv.c: set-up, transmit
 * and the run), its receive side (virtio-net-rx.c) and its parking and
 * continuing for live migration (virtio-net-migrate.c) share. Not a
 * public header.
 */
#ifndef GUEST_VIRTIO_NET_DRV_INT_H
#define GUEST_VIRTIO_NET_DRV_INT_H

#include <glib.h>

#include "guest/guest-ram-state.h"
#include "guest/virtio-net-drv.h"

#define NET_HDR_LEN         ((uint32_t)sizeof(VirtioNetHdr))
/*
 * What an MTU allows on the wire: the ethernet header and one VLAN tag
 * on top (no FCS in virtio). Our frames carry no tag, but a guest must
 * be able to send tagged frames of a full MTU, as Linux does; so with
 * mtu 1500 the classic 1518 is the largest size, with 9000 it is 9018.
 */
#define NET_MTU_OVERHEAD    (VIRTIO_NET_ETH_HLEN + 4u)
#define NET_ASM_MAX         65536u          /* a packet over this is bogus */
#define NET_SEQ_MASK        ((1ull << 48) - 1)
/* A gap between two turns of the run loop over a wait plus this: a stall. */
#define NET_STALL_NS        (200 * 1000000ull)

#define ALIGN_UP(x, a)      (((x) + (a) - 1) / (a) * (a))


/* A packet being put together from mergeable RX buffers. */
typedef struct NetRxAsm {
    uint8_t *buf;
    size_t len;
    unsigned want;              /* buffers it spans; 0: between packets */
    unsigned have;
    bool bad;                   /* already counted as a mismatch */
} NetRxAsm;

struct VirtioNetDrv {
    char *name;
    GuestMemory *mem;
    GuestVirtqueue *vqs;
    unsigned nqp;
    uint64_t features;
    VirtioNetDrvConfig cfg;
    /*
     * Cached pointers into guest RAM, and the layout they were made from:
     * guest RAM is the back-end's to write, so what indexes, offsets or
     * sizes anything is the driver's own copy, never st's (which is
     * compared with it: net_run_corrupted()).
     */
    NetDrvState *st;
    uint32_t rxbuf;             /* bytes per RX buffer; 0 until posted */
    uint64_t rx_gpa;
    uint64_t work_gpa;
    uint32_t gen;               /* this run's number (st->run) */
    uint8_t *area;
    uint64_t buf_gpa;
    uint64_t buf_size;
    bool mrg;
    NetRxAsm asmb[NET_MAX_QP];
    /* The device still holds TX buffers we could not reclaim. */
    bool broken;
};

typedef struct NetRun {
    VirtioNetDrv *d;
    const NetWorkload *wl;
    WorkloadCtl ctl;
    VirtioNetResult *res;
    unsigned nqp;               /* pairs sending */
    unsigned window;
    unsigned ntx;               /* TX slots per pair */
    uint8_t *tx;                /* nqp x ntx slots */
    uint64_t tx_gpa;
    uint32_t slot;              /* bytes per TX slot: header + largest frame */
    bool *tx_busy;
    unsigned tx_in_flight;
    /*
     * Which packets came back, per pair (guest/net-seen.c): a ring of
     * seen_bits received flags and a list of up to window older missing
     * ones, seen_stride bytes, however large count is.
     */
    uint8_t *seen;
    uint64_t seen_stride;
    uint64_t seen_bits;
    uint64_t *got;              /* distinct verified packets per pair */
    uint64_t *ts;               /* send times, tsn per pair */
    unsigned tsn;
    unsigned lat_sample;        /* 1 packet in N gives a latency sample */
    unsigned burst;             /* per queue and loop iteration */
    GuestVqUsed *used;          /* burst completions, taken at once */
    /*
     * The clock, read once per loop iteration: send and receive times,
     * activity and stop checks all use it (clock_gettime was a fifth of
     * the loop's time at ~2 reads per packet). Latencies are therefore
     * in steps of one iteration.
     */
    uint64_t now_ns;
    uint64_t last_activity_ns;
    uint64_t last_progress_ns;
    uint64_t last_progress_ops;
    uint64_t end_ns;            /* runtime= end; 0: none */
    bool sending;
    bool migrated;              /* parked, and the run went elsewhere */
    GError *fatal;
} NetRun;

/* ---- queues and buffers ---- */

static inline GuestVirtqueue *net_rxq(VirtioNetDrv *d, unsigned p)
{
    return &d->vqs[2 * p];
}

static inline GuestVirtqueue *net_txq(VirtioNetDrv *d, unsigned p)
{
    return &d->vqs[2 * p + 1];
}

/* RX buffer i of pair p: the driver's own layout, never st's. */
static inline uint64_t net_rx_buf_gpa(VirtioNetDrv *d, unsigned p, unsigned i)
{
    return d->rx_gpa + ((uint64_t)p * net_rxq(d, p)->num + i) * d->rxbuf;
}

/*
 * Per-packet arithmetic without a 64-bit division: a DIV is 10-40 cycles,
 * and at 64 bytes the loop did five per packet (a sixth of its time at
 * 5 Mpps). One size and power-of-two sample rates are the common case.
 */
static inline uint32_t net_size_of(const NetWorkload *wl, uint64_t seq)
{
    return wl->nsizes == 1 ? wl->sizes[0] : wl->sizes[seq % wl->nsizes];
}

/* Where packet seq's send time is kept: tsn is a power of two. */
static inline uint64_t *net_ts_slot(const NetRun *run, unsigned p, uint64_t seq)
{
    return &run->ts[(size_t)p * run->tsn + (seq & (run->tsn - 1))];
}

/* ---- the run's failures (virtio-net-drv.c) ---- */

/* The run's fatal error, "DEV: message" (the first one wins). */
void net_run_fail(NetRun *run, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* What the device returned does not match: counted, the first one kept. */
void net_run_mismatch(NetRun *run, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* The driver's own state in guest RAM was found corrupted: device failed. */
void net_run_corrupt(NetRun *run, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* The state page and the queues checked, once a round; true: corrupted. */
bool net_run_corrupted(NetRun *run);

/* ---- receive (virtio-net-rx.c) ---- */

/* Posts every RX buffer, once: they stay with the device between runs. */
bool net_rx_post_all(VirtioNetDrv *d, uint32_t rxbuf, GError **errp);
/* Takes pair p's used RX buffers of a burst, checks and re-posts them. */
unsigned net_rx_reap(NetRun *run, unsigned p);

/* ---- received packets (net-seen.c) ---- */

typedef enum NetSeenResult {
    NET_SEEN_NEW,
    NET_SEEN_DUPLICATE,
    NET_SEEN_CORRUPT,           /* the record in guest RAM is not ours */
} NetSeenResult;

/* Received flags kept per pair for count packets: a power of two. */
uint64_t net_seen_bits(uint64_t count, unsigned window);
/* Bytes of a pair's record, for count packets and at most window out. */
uint64_t net_seen_stride(uint64_t count, unsigned window);
void net_seen_clear(NetRun *run);
/* Before pair p sends seq: its slot's last packet, if missing, is listed. */
NetSeenResult net_seen_send(NetRun *run, unsigned p, uint64_t seq);
/* seq (< sent) came back on pair p: new, or a duplicate. */
NetSeenResult net_seen_mark(NetRun *run, unsigned p, uint64_t seq, uint64_t sent);
/* Pair p's first packet sent and not received; sent when none. */
uint64_t net_seen_first_missing(const NetRun *run, unsigned p, uint64_t sent);
/*
 * Checks pair p's record taken up after a migration (untrusted) against
 * sent and counts the packets received (*got); NULL, or what is wrong.
 */
const char *net_seen_restore(const NetRun *run, unsigned p, uint64_t sent, uint64_t *got);

/* ---- live migration (virtio-net-migrate.c) ---- */

/* A pause was asked for and the run is not being stopped. */
bool net_run_pause_wanted(const NetRun *run);
/* A merged packet is half taken on some RX queue. */
bool net_rx_partial(const VirtioNetDrv *d);
/* Saves the run record and parks; false when the run moved elsewhere. */
bool net_run_park(NetRun *run);
/* Takes up the parked run's record (untrusted) into run. */
bool net_run_restore(NetRun *run, GError **errp);

#endif
