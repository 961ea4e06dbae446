/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The net workload's record of which packets came back, per queue pair,
 * in a size bounded whatever the count (see NetRun.seen).
 *
 * A pair never has more than window packets sent and not received
 * (tx_send() waits), so only the last few sequence numbers are in doubt:
 * a ring of bits holds the received flag of the last seen_bits sent, and
 * a packet whose slot is needed again while it is still missing moves to
 * a sorted list of at most window missing ones. Every sequence number
 * below sent is thus either in the ring (a bit) or, if older, received
 * unless listed: a duplicate and a loss are both still exact.
 *
 * Untrusted input: the record is in guest RAM (so a migration carries
 * it), which a back-end can write: the list's length is checked before
 * each use, and a record taken up after a migration is checked whole.
 */
#include <string.h>

#include <glib.h>

#include "virtio-net-drv-int.h"

/*
 * Ring slots per pair: count's worth if fewer, else 4096 (512 bytes) or
 * four windows, so that only a packet missing for long goes to the list
 * (searched on arrival).
 */
#define NET_SEEN_RING_MIN   4096u

uint64_t net_seen_bits(uint64_t count, unsigned window)
{
    uint64_t bits = 64, cap = MAX(NET_SEEN_RING_MIN, 4ull * window);

    while (bits < count && bits < cap) {
        bits <<= 1;
    }
    return bits;
}

uint64_t net_seen_stride(uint64_t count, unsigned window)
{
    return 8 + 8ull * window + net_seen_bits(count, window) / 8;
}

/* Pair p's record: [nmissing][missing x window][ring]. */
static uint64_t *seen_pair(const NetRun *run, unsigned p)
{
    return (uint64_t *)(run->seen + p * run->seen_stride);
}

static uint64_t *seen_ring(const NetRun *run, unsigned p)
{
    return seen_pair(run, p) + 1 + run->window;
}

void net_seen_clear(NetRun *run)
{
    memset(run->seen, 0, run->nqp * run->seen_stride);
}

NetSeenResult net_seen_send(NetRun *run, unsigned p, uint64_t seq)
{
    uint64_t *rec = seen_pair(run, p), *ring = seen_ring(run, p);
    uint64_t slot = seq & (run->seen_bits - 1), n = rec[0];
    uint64_t bit = 1ull << (slot % 64);

    if (seq >= run->seen_bits && !(ring[slot / 64] & bit)) {
        /* Fewer than window are missing, or tx_send() would not send. */
        if (n >= run->window) {
            return NET_SEEN_CORRUPT;
        }
        rec[1 + n] = seq - run->seen_bits;
        rec[0] = n + 1;
    }
    ring[slot / 64] &= ~bit;
    return NET_SEEN_NEW;
}

NetSeenResult net_seen_mark(NetRun *run, unsigned p, uint64_t seq, uint64_t sent)
{
    uint64_t *rec = seen_pair(run, p), *ring = seen_ring(run, p), n = rec[0];

    if (seq + run->seen_bits >= sent) {
        uint64_t slot = seq & (run->seen_bits - 1), bit = 1ull << (slot % 64);

        if (ring[slot / 64] & bit) {
            return NET_SEEN_DUPLICATE;
        }
        ring[slot / 64] |= bit;
        return NET_SEEN_NEW;
    }
    if (n > run->window) {
        return NET_SEEN_CORRUPT;
    }
    /* Older than the ring: received before, unless still listed missing. */
    for (uint64_t i = 0; i < n; i++) {
        if (rec[1 + i] == seq) {
            memmove(&rec[1 + i], &rec[2 + i], (n - i - 1) * 8);
            rec[0] = n - 1;
            return NET_SEEN_NEW;
        }
    }
    return NET_SEEN_DUPLICATE;
}

uint64_t net_seen_first_missing(const NetRun *run, unsigned p, uint64_t sent)
{
    const uint64_t *rec = seen_pair(run, p), *ring = seen_ring(run, p);

    /* The list is sorted, and older than anything in the ring. */
    if (rec[0] && rec[0] <= run->window) {
        return rec[1];
    }
    for (uint64_t seq = sent > run->seen_bits ? sent - run->seen_bits : 0; seq < sent; seq++) {
        uint64_t slot = seq & (run->seen_bits - 1);

        if (!(ring[slot / 64] & (1ull << (slot % 64)))) {
            return seq;
        }
    }
    return sent;
}

const char *net_seen_restore(const NetRun *run, unsigned p, uint64_t sent, uint64_t *got)
{
    const uint64_t *rec = seen_pair(run, p), *ring = seen_ring(run, p);
    uint64_t n = rec[0], older = sent > run->seen_bits ? sent - run->seen_bits : 0;
    uint64_t received = 0;

    if (n > run->window) {
        return "lists more missing packets than the window";
    }
    for (uint64_t i = 0; i < n; i++) {
        /* Sorted, distinct, and all older than the ring. */
        if (rec[1 + i] >= older || (i && rec[1 + i] <= rec[i])) {
            return "lists a missing packet out of order or not older than the ring";
        }
    }
    for (uint64_t w = 0; w < run->seen_bits / 64; w++) {
        uint64_t bits = ring[w];

        /* Slots no packet has used yet are clear. */
        if (sent < run->seen_bits && w * 64 + 64 > sent) {
            uint64_t keep = sent > w * 64 ? sent - w * 64 : 0;

            if (keep < 64 && (bits >> keep)) {
                return "has packets beyond the ones sent";
            }
        }
        received += (uint64_t)__builtin_popcountll(bits);
    }
    *got = received + (older - n);
    return NULL;
}
