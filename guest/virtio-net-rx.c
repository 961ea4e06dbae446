/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The receive side of the guest's virtio-net driver (virtio-net-drv.c):
 * RX buffers posted, used buffers taken back, mergeable buffers put
 * together, each packet checked against what was sent and recorded.
 *
 * Untrusted input: every used RX buffer is the device's word. A token
 * outside the ring ends the run; a used length over the buffer, a
 * num_buffers of 0 or beyond the ring, a frame too short for our header,
 * a packet naming a queue or sequence never sent, a wrong length or
 * payload, or a duplicate is counted as a mismatch (the first reported)
 * and never followed. Buffer addresses and sizes are the driver's own
 * copies, not those in guest RAM.
 */
#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "guest/pattern.h"
#include "guest/virtio-net-drv.h"

#include "virtio-net-drv-int.h"

/* Whether packet seq gives a latency sample. */
static inline bool net_lat_sampled(const NetRun *run, uint64_t seq)
{
    unsigned n = run->lat_sample;

    return (n & (n - 1)) == 0 ? (seq & (n - 1)) == 0 : seq % n == 0;
}

/*
 * Posts every RX buffer, once: they stay with the device between runs
 * (a late packet of one run lands in the next and is told apart by its
 * generation).
 */
bool net_rx_post_all(VirtioNetDrv *d, uint32_t rxbuf, GError **errp)
{
    uint64_t total = 0;

    for (unsigned p = 0; p < d->nqp; p++) {
        total += (uint64_t)net_rxq(d, p)->num * rxbuf;
    }
    if (NET_STATE_SIZE + total > d->buf_size) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_NO_SPACE,
                    "%s: %" PRIu64 " bytes of RX buffers do not fit the %" PRIu64
                    "-byte buffer area", d->name, total, d->buf_size);
        return false;
    }
    d->rx_gpa = d->buf_gpa + NET_STATE_SIZE;
    d->work_gpa = ALIGN_UP(d->rx_gpa + total, 4096);
    d->rxbuf = rxbuf;
    d->st->rx_gpa = d->rx_gpa;
    d->st->work_gpa = d->work_gpa;
    d->st->rxbuf = rxbuf;
    for (unsigned p = 0; p < d->nqp; p++) {
        GuestVirtqueue *vq = net_rxq(d, p);

        for (unsigned i = 0; i < vq->num; i++) {
            GuestSg sg = { net_rx_buf_gpa(d, p, i), rxbuf };
            if (!guest_vq_add(vq, NULL, 0, &sg, 1, i)) {
                g_autofree char *bad = guest_vq_corruption(vq, d->name, 2 * p);

                if (bad) {
                    d->broken = true;
                    g_set_error_literal(errp, GUEST_ERROR, GUEST_ERROR_DEVICE, bad);
                } else {
                    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                                "%s: rx queue %u has no room for buffer %u of %u",
                                d->name, p, i, vq->num);
                }
                return false;
            }
        }
        guest_vq_kick(vq);
    }
    return true;
}

/* ---- receive ---- */

/* The frame after the ethernet header, checked as far as verify= says. */
static bool net_payload_ok(NetVerifyMode mode, const uint8_t *p, size_t len, uint64_t id,
                           uint64_t gen, uint32_t seed, PatternMismatch *mm)
{
    switch (mode) {
    case NET_VERIFY_FULL:
        return pattern_check(p, len, id, gen, seed, mm);
    case NET_VERIFY_SAMPLE:
        return pattern_check_sample(p, len, id, gen, seed, mm);
    default:
        return pattern_check_header(p, len, id, gen, seed, mm);
    }
}

static void rx_deliver(NetRun *run, unsigned rxp, const uint8_t *frame, size_t len)
{
    VirtioNetResult *res = run->res;
    const NetWorkload *wl = run->wl;
    PatternHeader h;
    PatternMismatch mm;
    uint64_t seq, sent_ns;
    NetSeenResult seen;
    unsigned q;
    uint32_t want_len;

    res->received++;
    if (len >= VIRTIO_NET_ETH_HLEN &&
        frame[12] == (VIRTIO_NET_ETHERTYPE_RARP >> 8) &&
        frame[13] == (VIRTIO_NET_ETHERTYPE_RARP & 0xff) &&
        !memcmp(frame + 6, run->d->cfg.mac, 6)) {
        res->announce_frames++;
        return;
    }
    if (len < VIRTIO_NET_ETH_HLEN + sizeof(h)) {
        net_run_mismatch(run, "rx queue %u: frame of %zu bytes is too short", rxp, len);
        return;
    }
    if (frame[12] != (VIRTIO_NET_ETHERTYPE >> 8) ||
        frame[13] != (VIRTIO_NET_ETHERTYPE & 0xff)) {
        net_run_mismatch(run, "rx queue %u: frame of %zu bytes has ethertype 0x%02x%02x, "
                         "not 0x%04x", rxp, len, frame[12], frame[13], VIRTIO_NET_ETHERTYPE);
        return;
    }
    memcpy(&h, frame + VIRTIO_NET_ETH_HLEN, sizeof(h));
    if (h.magic != PATTERN_MAGIC) {
        net_run_mismatch(run, "rx queue %u: frame of %zu bytes has no pattern header",
                         rxp, len);
        return;
    }
    if (h.generation != run->d->gen) {
        /* A straggler of an earlier run: not this run's business. */
        res->stale++;
        return;
    }
    q = (unsigned)(h.id >> 48);
    seq = h.id & NET_SEQ_MASK;
    /* sent[] is in guest RAM: count bounds the sequence, not it. */
    if (q >= run->nqp || seq >= run->wl->count || seq >= run->d->st->sent[q]) {
        net_run_mismatch(run, "rx queue %u: packet names queue pair %u sequence %" PRIu64
                         ", which was not sent", rxp, q, seq);
        return;
    }
    want_len = net_size_of(wl, seq);
    if (len != want_len) {
        net_run_mismatch(run, "rx queue %u: packet %u:%" PRIu64 " is %zu bytes, sent %"
                         PRIu32, rxp, q, seq, len, want_len);
        return;
    }
    if (!net_payload_ok(wl->verify, frame + VIRTIO_NET_ETH_HLEN,
                        len - VIRTIO_NET_ETH_HLEN, h.id, h.generation, wl->seed, &mm)) {
        net_run_mismatch(run, "rx queue %u: packet %u:%" PRIu64 " (%zu bytes) differs at "
                         "frame byte %zu", rxp, q, seq, len,
                         mm.offset + VIRTIO_NET_ETH_HLEN);
        return;
    }
    seen = net_seen_mark(run, q, seq, run->d->st->sent[q]);
    if (seen == NET_SEEN_CORRUPT) {
        net_run_corrupt(run, "received record of queue pair %u lists more than the window "
                        "of %u", q, run->window);
        return;
    }
    if (seen == NET_SEEN_DUPLICATE) {
        net_run_mismatch(run, "rx queue %u: packet %u:%" PRIu64 " received twice",
                         rxp, q, seq);
        return;
    }
    run->got[q]++;
    res->verified++;
    if (q != rxp) {
        res->wrong_queue++;
    }
    sent_ns = *net_ts_slot(run, q, seq);
    /* 0: sent before a migration, by another process's clock. */
    if (sent_ns && net_lat_sampled(run, seq)) {
        wl_stats_record(&res->stats, run->now_ns - sent_ns, len);
    } else if (sent_ns) {
        wl_stats_count(&res->stats, len);
    }
}

/* One used RX buffer: a whole packet, or a piece of a merged one. */
static void rx_buffer(NetRun *run, unsigned p, const uint8_t *buf, uint32_t len)
{
    VirtioNetDrv *d = run->d;
    NetRxAsm *a = &d->asmb[p];

    if (a->want == 0) {
        VirtioNetHdr hdr;

        if (len < NET_HDR_LEN) {
            run->res->received++;
            net_run_mismatch(run, "rx queue %u: %" PRIu32 " bytes, less than the "
                             "virtio-net header", p, len);
            return;
        }
        memcpy(&hdr, buf, sizeof(hdr));
        a->want = d->mrg ? hdr.num_buffers : 1;
        a->have = 0;
        a->len = 0;
        a->bad = false;
        if (a->want == 0 || a->want > net_rxq(d, p)->num) {
            run->res->received++;
            net_run_mismatch(run, "rx queue %u: num_buffers %u is outside [1, %u]",
                             p, hdr.num_buffers, net_rxq(d, p)->num);
            a->want = 0;
            return;
        }
        buf += NET_HDR_LEN;
        len -= NET_HDR_LEN;
    }
    /*
     * A packet in one buffer (no merging, or num_buffers 1) is checked where
     * the device put it: copying it first cost a quarter of the vCPU's time
     * at 1518 bytes. rx_deliver reads each field it acts on once, so a
     * device rewriting the buffer meanwhile can only fail the check.
     */
    if (a->want == 1) {
        a->want = 0;
        rx_deliver(run, p, buf, len);
        return;
    }
    if (!a->bad && a->len + len > NET_ASM_MAX) {
        run->res->received++;
        net_run_mismatch(run, "rx queue %u: merged packet over %u bytes", p, NET_ASM_MAX);
        a->bad = true;
    }
    if (!a->bad) {
        memcpy(a->buf + a->len, buf, len);
        a->len += len;
    }
    if (++a->have == a->want) {
        if (!a->bad) {
            rx_deliver(run, p, a->buf, a->len);
        }
        a->want = 0;
    }
}

/*
 * One burst of used RX buffers (one read of the used index), each handled
 * and posted again at once; one kick decision for the lot.
 */
unsigned net_rx_reap(NetRun *run, unsigned p)
{
    VirtioNetDrv *d = run->d;
    GuestVirtqueue *vq = net_rxq(d, p);
    unsigned got = run->fatal ? 0 : guest_vq_get_used_burst(vq, run->used, run->burst);
    unsigned n = 0;

    /*
     * The device wrote these buffers from its own core: start every
     * header's cache miss of the burst now, so they overlap instead of
     * stalling one packet after another.
     */
    for (unsigned i = 0; i < got; i++) {
        if (run->used[i].token < vq->num) {
            __builtin_prefetch(d->area + (net_rx_buf_gpa(d, p, (unsigned)run->used[i].token) -
                                          d->buf_gpa));
        }
    }
    for (unsigned i = 0; i < got && !run->fatal; i++) {
        uint64_t token = run->used[i].token;
        uint32_t len = run->used[i].len;
        GuestSg sg;

        if (token >= vq->num) {
            net_run_corrupt(run, "queue %u: token %" PRIu64 " is out of range for a ring "
                            "of %u", 2 * p, token, vq->num);
            break;
        }
        if (len > d->rxbuf) {
            run->res->received++;
            net_run_mismatch(run, "rx queue %u: device wrote %" PRIu32 " bytes into a %"
                             PRIu32 "-byte buffer", p, len, d->rxbuf);
            d->asmb[p].want = 0;
        } else {
            rx_buffer(run, p, d->area + (net_rx_buf_gpa(d, p, (unsigned)token) - d->buf_gpa),
                      len);
        }
        /* Back to the device at once: a loopback drops what finds no buffer. */
        sg = (GuestSg){ net_rx_buf_gpa(d, p, (unsigned)token), d->rxbuf };
        if (!guest_vq_add(vq, NULL, 0, &sg, 1, token)) {
            if (!net_run_corrupted(run)) {
                net_run_fail(run, "rx queue %u: no room to re-post buffer %" PRIu64, p, token);
            }
            break;
        }
        n++;
    }
    if (n) {
        guest_vq_kick(vq);
        run->last_activity_ns = run->now_ns;
    }
    return n;
}
