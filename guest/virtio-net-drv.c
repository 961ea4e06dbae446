/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-net driver; see include/guest/virtio-net-drv.h.
 * Here: set-up, transmit and the run loop; the receive side, with the
 * checks of what the device returns, is virtio-net-rx.c. A TX completion
 * for a buffer we do not have out ends the run.
 *
 * Untrusted input: the driver's state page is in guest RAM, which every
 * back-end maps read/write. RX buffer size and addresses and the run
 * number are the driver's own copies; the page is compared with them once
 * a round, sent[] is bounded by the workload's count, the received record
 * is indexed by masked sequence numbers only (guest/net-seen.c), and a
 * difference fails the device ("device state in RAM
 * corrupted"), as does a queue that found its own state corrupted.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>

#include <glib.h>

#include "guest/pattern.h"
#include "guest/virtio-net-drv.h"

#include "virtio-net-drv-int.h"

void virtio_net_result_clear(VirtioNetResult *res)
{
    g_free(res->first_error);
    memset(res, 0, sizeof(*res));
}

/*
 * A driver on the buffer area: a fresh one (attach false) or one whose
 * state a parked run left in guest RAM (attach true), checked as
 * untrusted against the layout the area gives.
 */
static VirtioNetDrv *net_drv_open(const char *name, GuestMemory *mem,
                                  GuestVirtqueue *vqs, unsigned nvqs,
                                  uint64_t features, const VirtioNetDrvConfig *cfg,
                                  uint64_t buf_gpa, uint64_t buf_size, bool attach,
                                  GError **errp)
{
    VirtioNetDrv *d;
    NetDrvState *st, h;
    uint8_t *area;

    if (nvqs < 2 || nvqs % 2 || nvqs / 2 > NET_MAX_QP) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: %u queues is not 1 to %u RX/TX pairs", name, nvqs, NET_MAX_QP);
        return NULL;
    }
    if (buf_size < NET_STATE_SIZE * 2 || buf_gpa % 4096) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: buffer area 0x%" PRIx64 "+0x%" PRIx64
                    " is unaligned or too small", name, buf_gpa, buf_size);
        return NULL;
    }
    area = guest_memory_gpa_to_hva(mem, buf_gpa, buf_size);
    if (!area) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: buffer area 0x%" PRIx64 "+0x%" PRIx64
                    " is not in one guest RAM region", name, buf_gpa, buf_size);
        return NULL;
    }
    st = (NetDrvState *)area;
    if (attach) {
        uint64_t total = 0, rx_gpa = buf_gpa + NET_STATE_SIZE;
        g_autofree char *bad = NULL;

        /* A back-end may be writing it as we read: check one copy, keep it. */
        memcpy(&h, st, offsetof(NetDrvState, sent));
        for (unsigned p = 0; p < nvqs / 2; p++) {
            total += (uint64_t)vqs[2 * p].num * h.rxbuf;
        }
        if (h.magic != NET_STATE_MAGIC) {
            bad = g_strdup_printf("magic 0x%08" PRIx32 " is not 0x%08x", h.magic,
                                  NET_STATE_MAGIC);
        } else if (h.nqp != nvqs / 2) {
            bad = g_strdup_printf("nqp %" PRIu32 " but the device has %u pairs",
                                  h.nqp, nvqs / 2);
        } else if (h.rxbuf < 64 || h.rxbuf > NET_ASM_MAX) {
            bad = g_strdup_printf("rxbuf %" PRIu32 " is outside [64, %u]",
                                  h.rxbuf, NET_ASM_MAX);
        } else if (h.rx_gpa != rx_gpa || NET_STATE_SIZE + total > buf_size ||
                   h.work_gpa != ALIGN_UP(rx_gpa + total, 4096)) {
            bad = g_strdup_printf("rx_gpa 0x%" PRIx64 " / work_gpa 0x%" PRIx64
                                  " do not match %" PRIu64 " bytes of RX buffers at 0x%"
                                  PRIx64 " in the area", h.rx_gpa, h.work_gpa,
                                  total, rx_gpa);
        }
        if (bad) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG, "%s: driver state: %s",
                        name, bad);
            return NULL;
        }
    }
    d = g_new0(VirtioNetDrv, 1);
    d->name = g_strdup(name);
    d->mem = mem;
    d->vqs = vqs;
    d->nqp = nvqs / 2;
    d->features = features;
    d->cfg = *cfg;
    d->area = area;
    d->buf_gpa = buf_gpa;
    d->buf_size = buf_size;
    d->mrg = features & (1ull << VIRTIO_NET_F_MRG_RXBUF);
    d->st = st;
    if (attach) {
        /* Checked above: from now on the driver's copy is what counts. */
        d->rxbuf = h.rxbuf;
        d->rx_gpa = h.rx_gpa;
        d->work_gpa = h.work_gpa;
    } else {
        memset(d->st, 0, NET_STATE_SIZE);
        d->st->nqp = d->nqp;
        d->st->magic = NET_STATE_MAGIC;
    }
    for (unsigned p = 0; p < d->nqp; p++) {
        d->asmb[p].buf = g_malloc(NET_ASM_MAX);
    }
    return d;
}

VirtioNetDrv *virtio_net_drv_new(const char *name, GuestMemory *mem,
                                 GuestVirtqueue *vqs, unsigned nvqs,
                                 uint64_t features, const VirtioNetDrvConfig *cfg,
                                 uint64_t buf_gpa, uint64_t buf_size,
                                 GError **errp)
{
    return net_drv_open(name, mem, vqs, nvqs, features, cfg, buf_gpa, buf_size,
                        false, errp);
}

VirtioNetDrv *virtio_net_drv_attach(const char *name, GuestMemory *mem,
                                    GuestVirtqueue *vqs, unsigned nvqs,
                                    uint64_t features, const VirtioNetDrvConfig *cfg,
                                    uint64_t buf_gpa, uint64_t buf_size, GError **errp)
{
    return net_drv_open(name, mem, vqs, nvqs, features, cfg, buf_gpa, buf_size,
                        true, errp);
}

void virtio_net_drv_free(VirtioNetDrv *d)
{
    if (!d) {
        return;
    }
    for (unsigned p = 0; p < d->nqp; p++) {
        g_free(d->asmb[p].buf);
    }
    g_free(d->name);
    g_free(d);
}

static uint32_t wl_max_size(const NetWorkload *wl)
{
    uint32_t m = 0;

    for (unsigned i = 0; i < wl->nsizes; i++) {
        m = MAX(m, wl->sizes[i]);
    }
    return m;
}

/* The largest frame the device may exchange with us: its MTU, or ours. */
static uint32_t net_frame_limit(uint64_t features, const VirtioNetDrvConfig *cfg)
{
    if ((features & (1ull << VIRTIO_NET_F_MTU)) && cfg->mtu) {
        return MIN(cfg->mtu + NET_MTU_OVERHEAD, NET_FRAME_MAX);
    }
    return NET_FRAME_MAX;
}

static uint32_t net_tx_slot(const NetWorkload *wl)
{
    return ALIGN_UP(NET_HDR_LEN + wl_max_size(wl), 64);
}

/*
 * Bytes per RX buffer. Without MRG_RXBUF each must hold a whole frame:
 * the largest this workload sends, never less than a classic frame, and
 * with VIRTIO_NET_F_MTU a full-MTU one (virtio 5.1.4.2: the driver must
 * be able to receive mtu-sized packets).
 */
static uint32_t net_rx_buf(uint64_t features, const VirtioNetDrvConfig *cfg,
                           const NetWorkload *wl)
{
    uint32_t frame = MAX(NET_FRAME_CLASSIC, wl_max_size(wl));

    if (features & (1ull << VIRTIO_NET_F_MRG_RXBUF)) {
        return wl->rxbuf;
    }
    if (features & (1ull << VIRTIO_NET_F_MTU)) {
        frame = MAX(frame, net_frame_limit(features, cfg));
    }
    return ALIGN_UP(NET_HDR_LEN + frame, 64);
}

uint64_t virtio_net_drv_area_size(unsigned nqp, unsigned ring_num, uint64_t features,
                                  const VirtioNetDrvConfig *cfg, const NetWorkload *wl)
{
    uint64_t rxbuf = net_rx_buf(features, cfg, wl);
    uint64_t rx = ALIGN_UP((uint64_t)nqp * ring_num * rxbuf, 4096);

    return NET_STATE_SIZE + rx +
           (uint64_t)nqp * MIN(wl->window, ring_num) * net_tx_slot(wl) +
           (uint64_t)nqp * net_seen_stride(wl->count, MAX(MIN(wl->window, ring_num), 1));
}

/* The run's fatal error, "PREFIXDEV: message" (the first one wins). */
static void run_fail_v(NetRun *run, const char *prefix, const char *fmt, va_list ap)
    G_GNUC_PRINTF(3, 0);

static void run_fail_v(NetRun *run, const char *prefix, const char *fmt, va_list ap)
{
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);

    if (!run->fatal) {
        run->fatal = g_error_new(GUEST_ERROR, GUEST_ERROR_DEVICE, "%s%s: %s", prefix,
                                 run->d->name, msg);
    }
}

void net_run_fail(NetRun *run, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    run_fail_v(run, "", fmt, ap);
    va_end(ap);
}

void net_run_mismatch(NetRun *run, const char *fmt, ...)
{
    va_list ap;

    run->res->mismatched++;
    if (run->res->first_error) {
        return;
    }
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    run->res->first_error = g_strdup_printf("%s: %s", run->d->name, msg);
}

/*
 * Something of the driver's in guest RAM was found corrupted (a back-end
 * wrote it): the run stops and the device is failed.
 */
void net_run_corrupt(NetRun *run, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    run_fail_v(run, "device state in RAM corrupted: ", fmt, ap);
    va_end(ap);
    run->d->broken = true;
}

/*
 * The driver's state page against its own copy, and the queues' verdicts:
 * a handful of compares, once a round. True (run failed) when corrupted.
 */
bool net_run_corrupted(NetRun *run)
{
    VirtioNetDrv *d = run->d;
    const NetDrvState *st = d->st;
    GuestStateDiff diff = { 0 };

    GUEST_STATE_CHECK(&diff, st, nqp, d->nqp);
    GUEST_STATE_CHECK(&diff, st, run, d->gen);
    GUEST_STATE_CHECK(&diff, st, rxbuf, d->rxbuf);
    GUEST_STATE_CHECK(&diff, st, rx_gpa, d->rx_gpa);
    GUEST_STATE_CHECK(&diff, st, work_gpa, d->work_gpa);
    if (diff.field) {
        net_run_corrupt(run, "driver state %s is %" PRIu64 " (0x%" PRIx64 "), the driver "
                        "set %" PRIu64, diff.field, diff.found, diff.found, diff.want);
        return true;
    }
    for (unsigned q = 0; q < 2 * d->nqp; q++) {
        g_autofree char *msg = guest_vq_corruption(&d->vqs[q], d->name, q);

        if (msg) {
            if (!run->fatal) {
                run->fatal = g_error_new_literal(GUEST_ERROR, GUEST_ERROR_DEVICE, msg);
            }
            d->broken = true;
            return true;
        }
    }
    return false;
}

/* ---- transmit ---- */

/* ... and written so: the sender's half of net_payload_ok(). */
static void net_payload_fill(NetVerifyMode mode, uint8_t *p, size_t len, uint64_t id,
                             uint64_t gen, uint32_t seed)
{
    switch (mode) {
    case NET_VERIFY_FULL:
        pattern_fill(p, len, id, gen, seed);
        break;
    case NET_VERIFY_SAMPLE:
        pattern_fill_sample(p, len, id, gen, seed);
        break;
    default:
        pattern_fill_header(p, len, id, gen, seed);
        break;
    }
}

static unsigned tx_reap(NetRun *run, unsigned p)
{
    GuestVirtqueue *vq = net_txq(run->d, p);
    unsigned got = run->fatal ? 0 : guest_vq_get_used_burst(vq, run->used, run->burst);
    unsigned n = 0;

    for (unsigned i = 0; i < got && !run->fatal; i++) {
        uint64_t token = run->used[i].token;

        if (p < run->nqp && token >= run->ntx) {
            net_run_corrupt(run, "queue %u: token %" PRIu64 " is out of range (%u TX slots)",
                            2 * p + 1, token, run->ntx);
            break;
        }
        if (p >= run->nqp || !run->tx_busy[p * run->ntx + token]) {
            net_run_fail(run, "tx queue %u completed buffer %" PRIu64 " that is not out",
                         p, token);
            break;
        }
        run->tx_busy[p * run->ntx + token] = false;
        run->tx_in_flight--;
        n++;
    }
    if (n) {
        run->last_activity_ns = run->now_ns;
    }
    return n;
}

/*
 * What no packet changes in a TX slot, the virtio-net header (no offloads)
 * and the ethernet addresses and type, written once per run rather than
 * per packet: fewer stores into lines the device's core has just read.
 * Rewriting a slot still in flight after a migration stores the same bytes.
 */
static void tx_slots_init(NetRun *run)
{
    for (size_t i = 0; i < (size_t)run->nqp * run->ntx; i++) {
        uint8_t *slot = run->tx + i * run->slot;

        memset(slot, 0, NET_HDR_LEN);
        memcpy(slot + NET_HDR_LEN, run->d->cfg.mac, 6);
        memcpy(slot + NET_HDR_LEN + 6, run->d->cfg.mac, 6);
        slot[NET_HDR_LEN + 12] = VIRTIO_NET_ETHERTYPE >> 8;
        slot[NET_HDR_LEN + 13] = VIRTIO_NET_ETHERTYPE & 0xff;
    }
}

static unsigned tx_send(NetRun *run, unsigned p, uint64_t count)
{
    VirtioNetDrv *d = run->d;
    const NetWorkload *wl = run->wl;
    uint64_t room = run->window - MIN(run->window, d->st->sent[p] - run->got[p]);
    unsigned n = 0;

    /*
     * The device's core read each free slot last: ask for the lines to
     * write now, for the whole burst, so the ownership transfers overlap
     * instead of filling the store buffer one packet after another.
     */
    for (unsigned i = 0, k = 0; i < run->ntx && k < MIN(room, run->burst); i++) {
        if (!run->tx_busy[p * run->ntx + i]) {
            __builtin_prefetch(run->tx + ((size_t)p * run->ntx + i) * run->slot +
                               NET_HDR_LEN + VIRTIO_NET_ETH_HLEN, 1);
            k++;
        }
    }
    guest_vq_prefetch_add(net_txq(d, p), MIN(room, run->burst));
    for (unsigned i = 0; i < run->ntx && n < run->burst && !run->fatal; i++) {
        uint64_t seq = d->st->sent[p];
        uint8_t *slot = run->tx + ((size_t)p * run->ntx + i) * run->slot;
        uint64_t gpa = run->tx_gpa + ((uint64_t)p * run->ntx + i) * run->slot;
        uint32_t size;
        GuestSg sg;

        if (seq > count) {
            net_run_corrupt(run, "driver state sent[%u] is %" PRIu64 ", over count %" PRIu64,
                            p, seq, count);
            break;
        }
        if (seq == count || seq - run->got[p] >= run->window) {
            break;
        }
        if (run->tx_busy[p * run->ntx + i]) {
            continue;
        }
        if (net_seen_send(run, p, seq) != NET_SEEN_NEW) {
            net_run_corrupt(run, "received record of queue pair %u lists more than the "
                            "window of %u", p, run->window);
            break;
        }
        size = net_size_of(wl, seq);
        net_payload_fill(wl->verify, slot + NET_HDR_LEN + VIRTIO_NET_ETH_HLEN,
                         size - VIRTIO_NET_ETH_HLEN, ((uint64_t)p << 48) | seq, d->gen,
                         wl->seed);
        /*
         * Header and frame in one descriptor (VERSION_1 implies ANY_LAYOUT):
         * no chain, and no indirect table, which a chain of two took.
         */
        sg = (GuestSg){ gpa, NET_HDR_LEN + size };
        if (!guest_vq_add(net_txq(d, p), &sg, 1, NULL, 0, i)) {
            break;
        }
        run->tx_busy[p * run->ntx + i] = true;
        run->tx_in_flight++;
        *net_ts_slot(run, p, seq) = run->now_ns;
        d->st->sent[p] = seq + 1;
        run->res->sent++;
        n++;
    }
    if (n) {
        guest_vq_kick(net_txq(d, p));
        run->last_activity_ns = run->now_ns;
    }
    return n;
}

/* ---- the run ---- */

/* Sleeps until a call eventfd fires or timeout_ms; callers re-check rings. */
static void run_wait(NetRun *run, unsigned timeout_ms)
{
    VirtioNetDrv *d = run->d;
    struct pollfd pfd[2 * NET_MAX_QP];
    unsigned n = 0;
    bool raced = false;

    for (unsigned i = 0; i < 2 * d->nqp; i++) {
        raced |= guest_vq_enable_cb(&d->vqs[i]);
        if (d->vqs[i].call_fd >= 0) {
            pfd[n++] = (struct pollfd){ .fd = d->vqs[i].call_fd, .events = POLLIN };
        }
    }
    if (!raced) {
        int r;

        run->res->sleeps++;
        do {
            r = poll(pfd, n, (int)timeout_ms);
        } while (r < 0 && errno == EINTR);
    }
    for (unsigned i = 0; i < 2 * d->nqp; i++) {
        guest_vq_disable_cb(&d->vqs[i]);
        guest_vq_ack_call(&d->vqs[i]);
    }
}

/*
 * Whether an idle loop iteration looks at the rings again at once rather
 * than sleeping: always with poll=on, for the first NET_POLL_ADAPTIVE_NS
 * of idleness with poll=adaptive (QEMU's iothreads poll 32 us by default;
 * a round trip through a busy back-end is a few us).
 */
#define NET_POLL_ADAPTIVE_NS    50000ull

static bool net_run_spin(NetPollMode mode, uint64_t idle_ns)
{
    return mode == NET_POLL_ON ||
           (mode == NET_POLL_ADAPTIVE && idle_ns < NET_POLL_ADAPTIVE_NS);
}

static bool run_stop_requested(const NetRun *run, uint64_t end_ns)
{
    uint64_t now = run->now_ns;

    if (run->ctl.stop && __atomic_load_n(run->ctl.stop, __ATOMIC_ACQUIRE)) {
        return true;
    }
    return (run->ctl.deadline_ns && now >= run->ctl.deadline_ns) ||
           (end_ns && now >= end_ns);
}

static void run_progress(NetRun *run)
{
    uint64_t now = run->now_ns;
    uint64_t ops = run->res->verified;

    if (!run->ctl.progress || now - run->last_progress_ns < 1000000000ull) {
        return;
    }
    run->ctl.progress(run->ctl.opaque, run->d->name, ops,
                      (double)(ops - run->last_progress_ops) * 1e9 /
                      (double)(now - run->last_progress_ns));
    run->last_progress_ns = now;
    run->last_progress_ops = ops;
}

static bool run_check(VirtioNetDrv *d, const NetWorkload *wl, unsigned *nqp,
                      unsigned *window, GError **errp)
{
    uint32_t rxbuf = d->rxbuf ? d->rxbuf : net_rx_buf(d->features, &d->cfg, wl);
    uint32_t limit = net_frame_limit(d->features, &d->cfg);
    unsigned span;

    if (d->broken) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_BROKEN,
                    "%s: driver stopped after an earlier device failure", d->name);
        return false;
    }
    if (wl->nsizes == 0 || wl->count == 0 || wl->count > NET_SEQ_MASK) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: count %" PRIu64 " or sizes (%u given) out of range",
                    d->name, wl->count, wl->nsizes);
        return false;
    }
    for (unsigned i = 0; i < wl->nsizes; i++) {
        uint32_t s = wl->sizes[i];

        if (s < NET_FRAME_MIN || s > NET_FRAME_MAX) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: size=%" PRIu32 " is outside [%d, %d]",
                        d->name, s, NET_FRAME_MIN, NET_FRAME_MAX);
            return false;
        }
        if (s > limit) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: size=%" PRIu32 " is over the limit of %" PRIu32
                        " bytes (the device's mtu %u + %u: ethernet header and "
                        "a VLAN tag)", d->name, s, limit, d->cfg.mtu,
                        NET_MTU_OVERHEAD);
            return false;
        }
        if (!d->mrg && NET_HDR_LEN + s > rxbuf) {
            /* Only after a first run posted smaller buffers. */
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: size=%" PRIu32 " does not fit the %" PRIu32 "-byte RX "
                        "buffers posted (no mergeable RX buffers)", d->name, s, rxbuf);
            return false;
        }
    }
    span = d->mrg ? ALIGN_UP(NET_HDR_LEN + wl_max_size(wl), rxbuf) / rxbuf : 1;
    *nqp = d->nqp;
    if (!(d->features & (1ull << VIRTIO_NET_F_MQ))) {
        *nqp = 1;
    }
    if (wl->queues && wl->queues < *nqp) {
        *nqp = wl->queues;
    }
    /*
     * Never more packets out than the RX ring can hold at once. The
     * default window shrinks to fit; one the user chose is an error.
     */
    *window = wl->window ? wl->window : 1;
    for (unsigned p = 0; p < *nqp; p++) {
        unsigned fit = net_rxq(d, p)->num / span;

        if (wl->window_set && *window > fit && fit > 0) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: window=%u but the rx ring of %u holds %u packets of "
                        "%u buffers of %" PRIu32 " bytes", d->name, *window,
                        net_rxq(d, p)->num, fit, span, rxbuf);
            return false;
        }
        *window = MIN(*window, fit);
    }
    if (*window == 0) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: rx ring of %u cannot hold one packet of %u buffers of %" PRIu32
                    " bytes", d->name, net_rxq(d, 0)->num, span, rxbuf);
        return false;
    }
    if (!d->rxbuf && !net_rx_post_all(d, rxbuf, errp)) {
        return false;
    }
    return true;
}

static bool run_finish(NetRun *run, GError **errp)
{
    VirtioNetResult *res = run->res;
    uint64_t got = 0;

    for (unsigned p = 0; p < run->nqp; p++) {
        got += run->got[p];
    }
    res->lost = res->sent - got;
    res->verified_all = !run->fatal && res->mismatched == 0 &&
                        res->lost <= run->wl->max_lost && res->verified == got;
    if (run->fatal) {
        g_propagate_error(errp, run->fatal);
        run->fatal = NULL;
        return false;
    }
    if (res->mismatched) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_VERIFY, "%s (%" PRIu64
                    " mismatched, %" PRIu64 " lost of %" PRIu64 " sent)",
                    res->first_error, res->mismatched, res->lost, res->sent);
        return false;
    }
    for (unsigned p = 0; p < run->nqp && res->lost > run->wl->max_lost; p++) {
        uint64_t seq;

        if (run->got[p] == run->d->st->sent[p]) {
            continue;
        }
        seq = net_seen_first_missing(run, p, MIN(run->d->st->sent[p], run->wl->count));
        res->first_error = g_strdup_printf("%s: %" PRIu64 " of %" PRIu64
                                           " packets lost; first: queue pair %u "
                                           "sequence %" PRIu64, run->d->name,
                                           res->lost, res->sent, p, seq);
        g_set_error_literal(errp, GUEST_ERROR, GUEST_ERROR_VERIFY, res->first_error);
        return false;
    }
    return true;
}

static bool net_run_from(VirtioNetDrv *d, const NetWorkload *wl,
                         const WorkloadCtl *ctl, bool resume, VirtioNetResult *res,
                         GError **errp);

bool virtio_net_drv_run(VirtioNetDrv *d, const NetWorkload *wl,
                        const WorkloadCtl *ctl, VirtioNetResult *res,
                        GError **errp)
{
    return net_run_from(d, wl, ctl, false, res, errp);
}

bool virtio_net_drv_continue(VirtioNetDrv *d, const NetWorkload *wl,
                             const WorkloadCtl *ctl, VirtioNetResult *res,
                             GError **errp)
{
    return net_run_from(d, wl, ctl, true, res, errp);
}

static bool net_run_from(VirtioNetDrv *d, const NetWorkload *wl,
                         const WorkloadCtl *ctl, bool resume, VirtioNetResult *res,
                         GError **errp)
{
    NetRun run = { .d = d, .wl = wl, .res = res, .sending = true };
    unsigned tsn = 1;
    uint64_t kicks0 = 0;
    uint64_t prev_turn_ns = 0;      /* the loop's previous turn */
    uint64_t work, count = wl->count;
    bool ok;

    memset(res, 0, sizeof(*res));
    wl_stats_init(&res->stats);
    if (resume && !d->rxbuf) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: driver state: no RX buffers were posted, no run to continue",
                    d->name);
        return false;
    }
    if (!run_check(d, wl, &run.nqp, &run.window, errp)) {
        return false;
    }
    if (ctl) {
        run.ctl = *ctl;
    }
    run.ctl.poll_ms = run.ctl.poll_ms ? run.ctl.poll_ms : 50;
    run.ntx = run.window;
    for (unsigned p = 0; p < run.nqp; p++) {
        run.ntx = MIN(run.ntx, net_txq(d, p)->num);
    }
    run.seen_stride = net_seen_stride(count, run.window);
    run.seen_bits = net_seen_bits(count, run.window);
    run.slot = net_tx_slot(wl);
    work = (uint64_t)run.nqp * run.ntx * run.slot + run.nqp * run.seen_stride;
    if (run.ntx == 0 || d->work_gpa + work > d->buf_gpa + d->buf_size) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_NO_SPACE,
                    "%s: %u TX slots and %" PRIu64 " packets per pair do not fit "
                    "the buffer area", d->name, run.ntx, count);
        return false;
    }
    run.tx_gpa = d->work_gpa;
    run.tx = d->area + (run.tx_gpa - d->buf_gpa);
    run.seen = run.tx + (size_t)run.nqp * run.ntx * run.slot;
    tx_slots_init(&run);
    while (tsn < run.window) {
        tsn <<= 1;
    }
    run.tsn = tsn;
    run.lat_sample = net_workload_lat_sample(wl);
    run.burst = wl->burst ? wl->burst : NET_DEFAULT_BURST;
    run.used = g_new(GuestVqUsed, run.burst);
    run.ts = g_new0(uint64_t, (size_t)run.nqp * tsn);
    run.got = g_new0(uint64_t, run.nqp);
    run.tx_busy = g_new0(bool, (size_t)run.nqp * run.ntx);
    if (resume) {
        d->gen = d->st->run;
        if (!net_run_restore(&run, errp)) {
            g_free(run.used);
            g_free(run.ts);
            g_free(run.got);
            g_free(run.tx_busy);
            return false;
        }
    } else {
        d->gen = d->st->run + 1;
        d->st->run = d->gen;
        memset(d->st->sent, 0, sizeof(d->st->sent));
        net_seen_clear(&run);
    }
    /*
     * Callbacks off while there is work: the device signals nothing until
     * run_wait() asks, and with poll=on never (EVENT_IDX: used_event stays
     * behind; else NO_INTERRUPT).
     */
    for (unsigned q = 0; q < 2 * d->nqp; q++) {
        guest_vq_disable_cb(&d->vqs[q]);
        kicks0 += d->vqs[q].kicks;
    }
    /* Time starts now: the set-up (the received records' clearing) is not the rate's. */
    run.last_activity_ns = run.last_progress_ns = res->stats.start_ns = wl_now_ns();
    run.end_ns = wl->runtime_ms ? res->stats.start_ns + wl->runtime_ms * 1000000ull : 0;
    /* A continued run's rate starts from the source's count, not from 0. */
    run.last_progress_ops = run.res->verified;

    while (!run.fatal && !net_run_corrupted(&run)) {
        unsigned progress = 0;
        uint64_t got = 0, now = run.now_ns = wl_now_ns();
        bool pausing = net_run_pause_wanted(&run);

        /*
         * Two turns further apart than a wait lasts: this thread was off
         * the CPU (an overloaded host). The device, often on the same
         * host, may have been too, so that time is not its silence: it
         * does not count towards drain_ms. Seen in guest-net under ASan
         * beside other tests: a full window "not returned" after a stall.
         */
        if (prev_turn_ns &&
            now - prev_turn_ns > run.ctl.poll_ms * 1000000ull + NET_STALL_NS) {
            run.last_activity_ns += now - prev_turn_ns;
        }
        prev_turn_ns = now;

        if (run.ctl.in_flight) {
            __atomic_store_n(run.ctl.in_flight, run.tx_in_flight, __ATOMIC_RELAXED);
        }
        if (run.sending && run_stop_requested(&run, run.end_ns)) {
            run.sending = false;
        }
        for (unsigned p = 0; p < d->nqp; p++) {
            progress += net_rx_reap(&run, p);
            if (p < run.nqp) {
                progress += tx_reap(&run, p);
                if (run.sending && !pausing) {
                    progress += tx_send(&run, p, count);
                }
            }
        }
        for (unsigned p = 0; p < run.nqp; p++) {
            got += run.got[p];
        }
        if (run.sending && res->sent == count * run.nqp) {
            run.sending = false;
        }
        if (!run.sending && got == res->sent && run.tx_in_flight == 0) {
            break;
        }
        if (pausing && !run.fatal && run.tx_in_flight == 0 && !net_rx_partial(d)) {
            if (!net_run_park(&run)) {
                break;
            }
            continue;
        }
        /*
         * Nothing moved for drain_ms: the rest is lost (a full window of
         * lost packets ends the sending too). Not while a pause drains:
         * that has its own limit.
         */
        if (!pausing && !progress &&
            now - run.last_activity_ns >= wl->drain_ms * 1000000ull) {
            break;
        }
        if (!progress && net_run_spin(wl->poll, now - run.last_activity_ns)) {
            /* Busy-polling: look at the rings again, no system call. */
        } else if (!progress) {
            uint64_t idle = now - run.last_activity_ns;
            uint64_t left = idle < wl->drain_ms * 1000000ull ?
                            wl->drain_ms * 1000000ull - idle : 0;
            run_wait(&run, (unsigned)MIN((uint64_t)run.ctl.poll_ms, left / 1000000 + 1));
        }
        run_progress(&run);
    }
    res->stats.end_ns = wl_now_ns();
    for (unsigned q = 0; q < 2 * d->nqp; q++) {
        res->kicks += d->vqs[q].kicks;
    }
    res->kicks -= kicks0;
    if (run.migrated) {
        /* Ended here, goes on there: nothing to judge yet. */
        res->migrated = true;
        ok = true;
        goto out;
    }
    if (run.tx_in_flight && !run.fatal) {
        net_run_fail(&run, "%u TX buffers not returned by the device", run.tx_in_flight);
    }
    if (run.tx_in_flight) {
        /* The device may still read them: never reuse the area. */
        d->broken = true;
    }
    ok = run_finish(&run, errp);
out:
    g_free(run.used);
    g_free(run.ts);
    g_free(run.got);
    g_free(run.tx_busy);
    if (run.fatal) {
        g_error_free(run.fatal);
    }
    return ok;
}
