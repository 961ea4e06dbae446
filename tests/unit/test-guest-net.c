/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest virtio-net driver against a loopback device model in its own
 * thread, like a back-end would be: every packet taken from TX queue N is
 * written into RX queue N's buffers (merged over several when
 * MRG_RXBUF is on), and dropped when RX has no buffer, as a real switch
 * port does. It reads the rings through GuestMemory, honours interrupt
 * suppression and signals the call eventfds. Faults: a dropped packet, a
 * corrupted one, a duplicated one.
 */
#include <check.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest/pattern.h"
#include "guest/virtio-net-drv.h"
#include "unit-park.h"

#define RAM_SIZE        (32u << 20)
#define RING_GPA        0x100000ull
#define BUF_GPA         (8ull << 20)
#define BUF_SIZE        (16ull << 20)
#define QSIZE           128
#define MAXQP           2
#define HDR             12u

typedef struct NetDev {
    GuestVirtqueue *vqs;
    unsigned nqp;
    bool mrg;
    uint16_t last_avail[2 * MAXQP];
    uint16_t used_idx[2 * MAXQP];
    pthread_t thread;
    int stop_fd;
    uint64_t tx_packets[MAXQP];
    uint64_t dropped;           /* RX had no buffer */
    unsigned max_nbuf;          /* most RX buffers one packet took */
    unsigned tx_max_desc;       /* most descriptors one TX packet took */
    uint64_t tx_indirect;       /* TX packets that came through an indirect table */
    uint64_t payload_touched;   /* TX frames with a non-zero byte after the pattern header */
    uint64_t calls;             /* call eventfd writes (interrupts) */
    bool walked_indirect;       /* the last dev_walk went through a table */
    /* fault injection, on queue pair 0, by TX packet number */
    int64_t drop_nth;
    int64_t corrupt_nth;
    int64_t dup_nth;
    bool paused;                /* read atomically: the device does nothing */
} NetDev;

static RamBlock *rb;
static GuestMemory *mem;
static GuestVirtqueue vqs[2 * MAXQP];
static uint64_t vq_state_gpa[2 * MAXQP];
static NetDev dev;
static const VirtioNetDrvConfig net_cfg = { .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 },
                                         .mtu = 1500, .max_queue_pairs = MAXQP };

static uint64_t alloc_gpa(uint64_t *next, uint64_t size)
{
    uint64_t gpa = *next;

    *next = (gpa + size + 4095) & ~4095ull;
    return gpa;
}

static void net_setup(unsigned nqp, bool mrg, bool indirect, bool event_idx)
{
    GError *err = NULL;
    uint64_t next = RING_GPA;

    rb = ram_block_new_memfd("ram", RAM_SIZE, &err);
    ck_assert_msg(rb, "memfd: %s", err ? err->message : "?");
    mem = guest_memory_new();
    ck_assert(guest_memory_add(mem, 0, rb, 0, RAM_SIZE, &err));
    for (unsigned q = 0; q < 2 * nqp; q++) {
        uint64_t desc = alloc_gpa(&next, vring_desc_size(QSIZE));
        uint64_t avail = alloc_gpa(&next, vring_avail_size(QSIZE));
        uint64_t used = alloc_gpa(&next, vring_used_size(QSIZE));
        uint64_t ind = indirect ? alloc_gpa(&next, guest_vq_indirect_size(QSIZE)) : 0;
        uint64_t st = alloc_gpa(&next, guest_vq_state_size(QSIZE));
        ck_assert(guest_vq_init(&vqs[q], mem, QSIZE, desc, avail, used, ind, st,
                                event_idx));
        vq_state_gpa[q] = st;
        vqs[q].kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        vqs[q].call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        ck_assert(vqs[q].kick_fd >= 0 && vqs[q].call_fd >= 0);
    }
    ck_assert_uint_le(next, BUF_GPA);
    memset(&dev, 0, sizeof(dev));
    dev.vqs = vqs;
    dev.nqp = nqp;
    dev.mrg = mrg;
    dev.drop_nth = dev.corrupt_nth = dev.dup_nth = -1;
    dev.stop_fd = eventfd(0, EFD_CLOEXEC);
}

static void net_teardown(void)
{
    for (unsigned q = 0; q < 2 * dev.nqp; q++) {
        close(vqs[q].kick_fd);
        close(vqs[q].call_fd);
    }
    close(dev.stop_fd);
    guest_memory_free(mem);
    ram_block_unref(rb);
}

/* ---- the device model ---- */

typedef struct DevSg {
    uint64_t addr;
    uint32_t len;
    bool write;
} DevSg;

static bool dev_event_idx(unsigned q)
{
    return dev.vqs[q].st->flags & GUEST_VQ_F_EVENT_IDX;
}

static unsigned dev_walk(unsigned q, uint16_t head, DevSg *sg, unsigned max)
{
    GuestVirtqueue *vq = &dev.vqs[q];
    VringDesc d;
    uint64_t table = 0;
    unsigned n = 0;

    dev.walked_indirect = false;
    ck_assert(guest_memory_read(mem, vq->st->desc_gpa + 16ull * head, &d, sizeof(d)));
    if (d.flags & VRING_DESC_F_INDIRECT) {
        table = d.addr;
        dev.walked_indirect = true;
        ck_assert(d.len % 16 == 0 && d.len / 16 <= max);
        ck_assert(guest_memory_read(mem, table, &d, sizeof(d)));
    }
    for (;;) {
        ck_assert_uint_lt(n, max);
        sg[n++] = (DevSg){ d.addr, d.len, d.flags & VRING_DESC_F_WRITE };
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return n;
        }
        ck_assert(guest_memory_read(mem, table ? table + 16ull * d.next
                                               : vq->st->desc_gpa + 16ull * d.next,
                                    &d, sizeof(d)));
    }
}

static uint16_t dev_avail_idx(unsigned q)
{
    uint16_t idx;

    ck_assert(guest_memory_read(mem, dev.vqs[q].st->avail_gpa + 2, &idx, 2));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return idx;
}

static uint16_t dev_pop(unsigned q)
{
    uint16_t head;

    ck_assert(guest_memory_read(mem, dev.vqs[q].st->avail_gpa + 4 +
                                2 * (dev.last_avail[q] % QSIZE), &head, 2));
    ck_assert_uint_lt(head, QSIZE);
    dev.last_avail[q]++;
    return head;
}

static void dev_push(unsigned q, uint16_t head, uint32_t len)
{
    VringUsedElem e = { .id = head, .len = len };

    ck_assert(guest_memory_write(mem, dev.vqs[q].st->used_gpa + 4 +
                                 8 * (dev.used_idx[q] % QSIZE), &e, sizeof(e)));
    dev.used_idx[q]++;
}

/* Publishes the used index and interrupts unless the driver said not to. */
static void dev_flush(unsigned q, uint16_t old_used)
{
    GuestVirtqueue *vq = &dev.vqs[q];
    uint16_t flags, used_event;
    bool need;

    if (old_used == dev.used_idx[q]) {
        return;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ck_assert(guest_memory_write(mem, vq->st->used_gpa + 2, &dev.used_idx[q], 2));
    if (dev_event_idx(q)) {
        ck_assert(guest_memory_write(mem, vq->st->used_gpa + 4 + 8 * QSIZE,
                                     &dev.last_avail[q], 2));
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    ck_assert(guest_memory_read(mem, vq->st->avail_gpa, &flags, 2));
    ck_assert(guest_memory_read(mem, vq->st->avail_gpa + 4 + 2 * QSIZE, &used_event, 2));
    need = dev_event_idx(q)
        ? (uint16_t)(dev.used_idx[q] - used_event - 1) < (uint16_t)(dev.used_idx[q] - old_used)
        : !(flags & VRING_AVAIL_F_NO_INTERRUPT);
    if (need) {
        uint64_t one = 1;
        ck_assert_int_eq(write(vq->call_fd, &one, 8), 8);
        __atomic_add_fetch(&dev.calls, 1, __ATOMIC_RELAXED);
    }
}

/* Writes one packet (header + frame) into RX buffers; false = dropped. */
static bool dev_receive(unsigned p, const uint8_t *pkt, size_t len)
{
    unsigned rx = 2 * p;
    uint16_t avail = dev_avail_idx(rx), heads[64] = { 0 };
    uint32_t lens[64];
    unsigned nbuf = 0;
    size_t off = 0;

    while (off < len) {
        DevSg sg[4];
        unsigned n;
        size_t k;

        if (dev.last_avail[rx] == avail || nbuf == G_N_ELEMENTS(heads) ||
            (!dev.mrg && nbuf == 1)) {
            /* Out of buffers: give back what we took, unused; drop. */
            dev.last_avail[rx] -= nbuf;
            return false;
        }
        heads[nbuf] = dev_pop(rx);
        n = dev_walk(rx, heads[nbuf], sg, G_N_ELEMENTS(sg));
        ck_assert_uint_eq(n, 1);
        ck_assert(sg[0].write);
        k = MIN(len - off, sg[0].len);
        ck_assert(guest_memory_write(mem, sg[0].addr, pkt + off, k));
        lens[nbuf++] = (uint32_t)k;
        off += k;
    }
    dev.max_nbuf = MAX(dev.max_nbuf, nbuf);
    if (dev.mrg) {
        uint16_t nb = (uint16_t)nbuf;
        DevSg sg[4];
        dev_walk(rx, heads[0], sg, G_N_ELEMENTS(sg));
        ck_assert(guest_memory_write(mem, sg[0].addr + 10, &nb, 2));
    }
    for (unsigned i = 0; i < nbuf; i++) {
        dev_push(rx, heads[i], lens[i]);
    }
    return true;
}

static bool dev_process(unsigned p)
{
    unsigned rx = 2 * p, tx = 2 * p + 1;
    uint16_t old_tx = dev.used_idx[tx], old_rx = dev.used_idx[rx];
    uint16_t avail = dev_avail_idx(tx);
    bool any = false;

    while (dev.last_avail[tx] != avail) {
        uint8_t pkt[HDR + NET_FRAME_MAX];
        size_t len = 0;
        DevSg sg[GUEST_VQ_INDIRECT_MAX];
        uint16_t head = dev_pop(tx);
        unsigned n = dev_walk(tx, head, sg, G_N_ELEMENTS(sg));
        int64_t nth = (int64_t)dev.tx_packets[p]++;
        bool ok;

        dev.tx_max_desc = MAX(dev.tx_max_desc, n);
        dev.tx_indirect += dev.walked_indirect;

        for (unsigned i = 0; i < n; i++) {
            ck_assert(!sg[i].write);
            ck_assert_uint_le(len + sg[i].len, sizeof(pkt));
            ck_assert(guest_memory_read(mem, sg[i].addr, pkt + len, sg[i].len));
            len += sg[i].len;
        }
        dev_push(tx, head, 0);
        any = true;
        for (size_t k = HDR + 14 + sizeof(PatternHeader); k < len; k++) {
            if (pkt[k]) {
                dev.payload_touched++;
                break;
            }
        }
        if (p == 0 && nth == dev.drop_nth) {
            continue;
        }
        if (p == 0 && nth == dev.corrupt_nth) {
            pkt[len - 1] ^= 0x10;
        }
        /* On the wire the header is the receiver's, num_buffers included. */
        memset(pkt, 0, HDR);
        ok = dev_receive(p, pkt, len);
        if (ok && p == 0 && nth == dev.dup_nth) {
            ok = dev_receive(p, pkt, len);
        }
        dev.dropped += !ok;
        if (dev.last_avail[tx] == avail) {
            avail = dev_avail_idx(tx);
        }
    }
    dev_flush(tx, old_tx);
    dev_flush(rx, old_rx);
    return any;
}

static void *dev_thread(void *opaque)
{
    for (;;) {
        struct pollfd pfd[2 * MAXQP + 1];
        unsigned n = 2 * dev.nqp;
        uint64_t v;

        for (unsigned q = 0; q < n; q++) {
            pfd[q] = (struct pollfd){ .fd = dev.vqs[q].kick_fd, .events = POLLIN };
        }
        pfd[n] = (struct pollfd){ .fd = dev.stop_fd, .events = POLLIN };
        poll(pfd, n + 1, 20);
        if (pfd[n].revents) {
            return NULL;
        }
        for (unsigned q = 0; q < n; q++) {
            if (read(dev.vqs[q].kick_fd, &v, 8) < 0) {
                /* nothing pending */
            }
        }
        for (unsigned p = 0; p < dev.nqp && !__atomic_load_n(&dev.paused, __ATOMIC_ACQUIRE);
             p++) {
            while (dev_process(p)) {
            }
        }
    }
}

static void dev_start(void)
{
    ck_assert_int_eq(pthread_create(&dev.thread, NULL, dev_thread, NULL), 0);
}

static void dev_stop(void)
{
    uint64_t one = 1;

    ck_assert_int_eq(write(dev.stop_fd, &one, 8), 8);
    pthread_join(dev.thread, NULL);
}

static VirtioNetDrv *drv_new_cfg(unsigned nqp, bool mrg, const VirtioNetDrvConfig *cfg)
{
    GError *err = NULL;
    uint64_t features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_MTU) |
                        (nqp > 1 ? 1ull << VIRTIO_NET_F_MQ : 0) |
                        (mrg ? 1ull << VIRTIO_NET_F_MRG_RXBUF : 0);
    VirtioNetDrv *d = virtio_net_drv_new("net0", mem, vqs, 2 * nqp, features, cfg,
                                         BUF_GPA, BUF_SIZE, &err);

    ck_assert_msg(d, "%s", err ? err->message : "?");
    return d;
}

static VirtioNetDrv *drv_new(unsigned nqp, bool mrg)
{
    return drv_new_cfg(nqp, mrg, &net_cfg);
}

/*
 * clock_gettime of this executable, counted per thread: the driver runs in
 * the test's thread, the device model in its own. Straight to the system
 * call so that nothing else (libc, a sanitizer) is in the way.
 */
static __thread uint64_t clock_reads;

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    clock_reads++;
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

static void run_ok(VirtioNetDrv *d, const NetWorkload *wl, VirtioNetResult *res)
{
    GError *err = NULL;
    WorkloadCtl ctl = { .name = "net0" };

    ck_assert_msg(virtio_net_drv_run(d, wl, &ctl, res, &err), "%s",
                  err ? err->message : "?");
    ck_assert(res->verified_all);
    ck_assert_uint_eq(res->mismatched, 0);
    ck_assert_uint_eq(res->lost, 0);
    ck_assert_uint_eq(res->verified, res->sent);
}

/* _i: bit 0 mergeable, bit 1 indirect, bit 2 event idx */
START_TEST(test_two_pairs_all_verified)
{
    bool mrg = _i & 1;
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;

    net_setup(2, mrg, _i & 2, _i & 4);
    dev_start();
    d = drv_new(2, mrg);
    net_workload_init(&wl);
    /* 512-byte RX buffers: a 1518-byte frame spans 4 when merged. */
    ck_assert(net_workload_parse(&wl, "net0", "count=3000,size=64+1518+700,window=16,"
                                 "rxbuf=512", &err));
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.sent, 6000);
    ck_assert_uint_eq(res.wrong_queue, 0);
    ck_assert_uint_eq(res.stats.ops, 6000);
    ck_assert_uint_eq(dev.tx_packets[0], 3000);
    ck_assert_uint_eq(dev.tx_packets[1], 3000);
    ck_assert_uint_eq(dev.dropped, 0);
    /* 12 + 1518 bytes in 512-byte buffers: 3 of them. */
    ck_assert_uint_eq(dev.max_nbuf, mrg ? 3 : 1);
    virtio_net_result_clear(&res);
    ck_assert_uint_le(virtio_net_drv_area_size(2, QSIZE, mrg ? 1ull << VIRTIO_NET_F_MRG_RXBUF : 0,
                                               &net_cfg, &wl), BUF_SIZE);
    /* A second run on the same buffers: new generation, same result. */
    wl.count = 500;
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.sent, 1000);
    ck_assert_uint_eq(res.stale, 0);
    virtio_net_result_clear(&res);
    dev_stop();
    virtio_net_drv_free(d);
    net_teardown();
}
END_TEST

/*
 * The clock is read once per loop iteration, not per packet: the loop
 * handles one packet or more per iteration, so reads stay under one a
 * packet (they were over two: send and receive time each).
 */
START_TEST(test_clock_read_per_iteration)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;
    uint64_t before;

    net_setup(1, false, false, true);
    dev_start();
    d = drv_new(1, false);
    net_workload_init(&wl);
    ck_assert(net_workload_parse(&wl, "net0", "count=4000,size=1518,window=64", &err));
    before = clock_reads;
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.stats.ops, 4000);
    ck_assert_uint_gt(clock_reads - before, 0);
    ck_assert_msg(clock_reads - before < res.verified,
                  "%" PRIu64 " clock reads for %" PRIu64 " packets",
                  clock_reads - before, res.verified);
    virtio_net_result_clear(&res);
    dev_stop();
    virtio_net_drv_free(d);
    net_teardown();
}
END_TEST

/* A fresh ring set, the device running, a driver on it; and back. */
static VirtioNetDrv *net_begin(unsigned nqp, bool mrg, bool indirect, bool event_idx)
{
    net_setup(nqp, mrg, indirect, event_idx);
    dev_start();
    return drv_new(nqp, mrg);
}

static void net_end(VirtioNetDrv *d)
{
    dev_stop();
    virtio_net_drv_free(d);
    net_teardown();
}

/*
 * One descriptor per TX packet: header and frame together, no chain and,
 * with INDIRECT_DESC on, no indirect table (a chain of two took one).
 */
START_TEST(test_tx_one_descriptor)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;

    d = net_begin(1, false, true, true);
    net_workload_init(&wl);
    ck_assert(net_workload_parse(&wl, "net0", "count=500,size=64+1518", &err));
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(dev.tx_packets[0], 500);
    ck_assert_uint_eq(dev.tx_max_desc, 1);
    ck_assert_uint_eq(dev.tx_indirect, 0);
    virtio_net_result_clear(&res);
    net_end(d);
}
END_TEST

/*
 * poll=on: the driver never sleeps and the device never has to signal
 * (callbacks stay off: used_event left behind with EVENT_IDX, NO_INTERRUPT
 * without), so the only system calls left are the kicks the device asks
 * for. poll=off sleeps and is woken by calls. _i: bit 0 EVENT_IDX.
 */
START_TEST(test_poll_suppresses_calls)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;
    uint64_t calls;

    d = net_begin(1, false, false, _i & 1);
    net_workload_init(&wl);
    ck_assert(net_workload_parse(&wl, "net0", "count=4000,size=64,poll=on", &err));
    run_ok(d, &wl, &res);
    calls = __atomic_load_n(&dev.calls, __ATOMIC_RELAXED);
    ck_assert_uint_eq(res.sleeps, 0);
    /* EVENT_IDX: used_event 0 of the fresh ring is passed once per queue. */
    ck_assert_msg(calls <= 2, "%" PRIu64 " calls while polling", calls);
    ck_assert_uint_gt(res.kicks, 0);
    virtio_net_result_clear(&res);

    ck_assert(net_workload_parse(&wl, "net0", "poll=off", &err));
    run_ok(d, &wl, &res);
    ck_assert_uint_gt(res.sleeps, 0);
    ck_assert_uint_gt(__atomic_load_n(&dev.calls, __ATOMIC_RELAXED), calls);
    virtio_net_result_clear(&res);
    net_end(d);
}
END_TEST

/*
 * Progress calls come about once a second, from the driver's thread. The
 * first stops the device with the window in flight; the second stalls
 * the driver with it, as an overloaded host does to both: the driver
 * sleeps past drain_ms, then the device goes on. The device needs a
 * moment to run again (its own poll), so the driver's first turn after
 * the stall sees nothing returned.
 */
static void stall_once(void *opaque, const char *name, uint64_t ops, double rate)
{
    unsigned *calls = opaque;

    if (++*calls == 1) {
        __atomic_store_n(&dev.paused, true, __ATOMIC_RELEASE);
    } else if (*calls == 2) {
        g_usleep(2000 * 1000);      /* past drain=1500ms */
        __atomic_store_n(&dev.paused, false, __ATOMIC_RELEASE);
    }
}

/*
 * Time the driver's own thread was off the CPU is not the device's
 * silence: a stall longer than drain_ms does not end the run with its
 * window "not returned".
 */
START_TEST(test_own_stall_is_not_loss)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    unsigned calls = 0;
    WorkloadCtl ctl = { .name = "net0", .progress = stall_once, .opaque = &calls };
    VirtioNetDrv *d;

    d = net_begin(1, false, false, false);
    net_workload_init(&wl);
    ck_assert(net_workload_parse(&wl, "net0", "count=100000000,size=64,runtime=5s,"
                                 "drain=1500ms", &err));
    ck_assert_msg(virtio_net_drv_run(d, &wl, &ctl, &res, &err), "%s",
                  err ? err->message : "?");
    ck_assert_uint_ge(calls, 2);
    ck_assert(res.verified_all);
    ck_assert_uint_eq(res.lost, 0);
    ck_assert_uint_eq(res.verified, res.sent);
    virtio_net_result_clear(&res);
    net_end(d);
}
END_TEST

/*
 * The modes' verification: the device flips the last byte of one packet.
 * full and sample (the last byte is a sampled one) report it there; seq
 * checks the header only and counts it verified. seq never writes the
 * payload (the device sees zeroes after the pattern header); it checks sequence numbers all the same: a duplicate is caught.
 * lat-sample=8: every packet counted, one in 8 timed.
 * _i: NetVerifyMode.
 */
START_TEST(test_verify_modes)
{
    static const char *const modes[] = { "full", "sample", "seq" };
    NetVerifyMode mode = (NetVerifyMode)_i;
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    WorkloadCtl ctl = { .name = "net0" };
    VirtioNetDrv *d;
    g_autofree char *opts = g_strdup_printf("count=400,size=64+1518,verify=%s,"
                                            "lat-sample=8", modes[_i]);

    d = net_begin(1, true, false, true);
    net_workload_init(&wl);
    ck_assert(net_workload_parse(&wl, "net0", opts, &err));
    wl.drain_ms = 1000;
    dev.corrupt_nth = 11;
    if (mode == NET_VERIFY_SEQ) {
        run_ok(d, &wl, &res);
        ck_assert_uint_eq(res.verified, 400);
        ck_assert_uint_eq(dev.payload_touched, 0);
    } else {
        ck_assert(!virtio_net_drv_run(d, &wl, &ctl, &res, &err));
        /* 1518-byte frame: its last byte is frame byte 1517. */
        ck_assert_msg(strstr(err->message, "net0: rx queue 0: packet 0:11 (1518 bytes) "
                             "differs at frame byte 1517") == err->message, "%s",
                      err->message);
        ck_assert_uint_eq(res.mismatched, 1);
        ck_assert_uint_eq(res.verified, 399);
        g_clear_error(&err);
        /* sample writes its words too: the payload is not left alone. */
        ck_assert_uint_eq(dev.payload_touched, 400);
    }
    ck_assert_uint_eq(res.stats.ops, res.verified);
    ck_assert_uint_eq(res.stats.lat_samples, 50);
    virtio_net_result_clear(&res);
    dev.corrupt_nth = -1;
    dev.dup_nth = dev.tx_packets[0] + 5;
    ck_assert(!virtio_net_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert_msg(strstr(err->message, "packet 0:5 received twice"), "%s", err->message);
    ck_assert_uint_eq(res.verified, 400);
    g_clear_error(&err);
    virtio_net_result_clear(&res);
    net_end(d);
}
END_TEST

START_TEST(test_dropped_packet_is_lost)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;
    WorkloadCtl ctl = { .name = "net0" };

    net_setup(2, _i, false, false);
    dev_start();
    d = drv_new(2, _i);
    net_workload_init(&wl);
    wl.count = 200;
    wl.drain_ms = 1000;     /* a loaded machine may stall the fake device that long */
    dev.drop_nth = 57;
    ck_assert(!virtio_net_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert(err->code == GUEST_ERROR_VERIFY);
    ck_assert_uint_eq(res.lost, 1);
    ck_assert_uint_eq(res.sent, 400);
    ck_assert_uint_eq(res.verified, 399);
    ck_assert_uint_eq(res.mismatched, 0);
    ck_assert(!res.verified_all);
    ck_assert_msg(strstr(err->message, "net0: 1 of 400 packets lost; first: queue pair 0 "
                         "sequence 57"), "%s", err->message);
    g_clear_error(&err);
    virtio_net_result_clear(&res);
    dev_stop();
    virtio_net_drv_free(d);
    net_teardown();
}
END_TEST

/* The device delivers packet nth of pair 0 twice: caught, nothing lost. */
static void run_expect_duplicate(VirtioNetDrv *d, const NetWorkload *wl, uint64_t nth)
{
    VirtioNetResult res;
    GError *err = NULL;
    WorkloadCtl ctl = { .name = "net0" };
    g_autofree char *want = g_strdup_printf("packet 0:%" PRIu64 " received twice", nth);

    dev.dup_nth = dev.tx_packets[0] + nth;
    ck_assert(!virtio_net_drv_run(d, wl, &ctl, &res, &err));
    ck_assert_msg(strstr(err->message, want), "%s", err->message);
    ck_assert_uint_eq(res.lost, 0);
    ck_assert_uint_eq(res.verified, wl->count);
    g_clear_error(&err);
    virtio_net_result_clear(&res);
    dev.dup_nth = -1;
}

START_TEST(test_corrupt_and_duplicate)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;
    WorkloadCtl ctl = { .name = "net0" };

    net_setup(1, true, true, false);
    dev_start();
    d = drv_new(1, true);
    net_workload_init(&wl);
    wl.count = 100;
    wl.drain_ms = 1000;     /* a loaded machine may stall the fake device that long */
    dev.corrupt_nth = 10;
    ck_assert(!virtio_net_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert_msg(strstr(err->message, "net0: rx queue 0: packet 0:10 (") == err->message,
                  "%s", err->message);
    ck_assert_uint_eq(res.mismatched, 1);
    ck_assert_uint_eq(res.lost, 1);
    g_clear_error(&err);
    virtio_net_result_clear(&res);
    dev.corrupt_nth = -1;
    run_expect_duplicate(d, &wl, 5);
    net_end(d);
}
END_TEST

/*
 * The received record is bounded whatever count is: count=1e9 needs no
 * more room than a short run (it was a bitmap of count bits, 125 MB a
 * pair). A loss older than the record's ring of 4096 (then kept in its
 * list of missing packets) is still named, and a duplicate still caught.
 */
START_TEST(test_huge_count_bounded)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;
    WorkloadCtl ctl = { .name = "net0" };
    uint64_t small;

    net_workload_init(&wl);
    wl.count = 1000;
    small = virtio_net_drv_area_size(2, QSIZE, 0, &net_cfg, &wl);
    wl.count = 1000000000;
    ck_assert_uint_le(virtio_net_drv_area_size(2, QSIZE, 0, &net_cfg, &wl),
                      small + 2 * 512);
    net_setup(1, true, false, false);
    dev_start();
    d = drv_new(1, true);
    wl.count = 5000;        /* past the ring of 4096 after the loss at 57 */
    wl.drain_ms = 1000;     /* a loaded machine may stall the fake device that long */
    dev.drop_nth = 57;
    ck_assert(!virtio_net_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert_msg(strstr(err->message, "net0: 1 of 5000 packets lost; first: queue pair 0 "
                         "sequence 57"), "%s", err->message);
    ck_assert_uint_eq(res.verified, 4999);
    g_clear_error(&err);
    virtio_net_result_clear(&res);
    dev.drop_nth = -1;
    run_expect_duplicate(d, &wl, 4500);
    net_end(d);
}
END_TEST

START_TEST(test_stop_and_bad_options)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;
    bool stop = true;
    WorkloadCtl ctl = { .name = "net0", .stop = &stop };

    net_setup(1, false, false, false);
    dev_start();
    d = drv_new(1, false);
    net_workload_init(&wl);
    /* Stopped before it began: nothing sent, nothing lost. */
    ck_assert(virtio_net_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert_uint_eq(res.sent, 0);
    virtio_net_result_clear(&res);
    /* mtu 1500: 1518 (with a VLAN tag) is the most. */
    wl.sizes[0] = 1519;
    ck_assert(!virtio_net_drv_run(d, &wl, NULL, &res, &err));
    ck_assert_msg(strstr(err->message, "net0: size=1519 is over the limit of 1518 bytes "
                         "(the device's mtu 1500"), "%s", err->message);
    g_clear_error(&err);
    ck_assert_uint_eq(res.sent, 0);
    dev_stop();
    virtio_net_drv_free(d);
    ck_assert(!virtio_net_drv_new("net9", mem, vqs, 3, 0, &net_cfg, BUF_GPA, BUF_SIZE, &err));
    ck_assert_msg(strstr(err->message, "net9: 3 queues"), "%s", err->message);
    g_clear_error(&err);
    net_teardown();
}
END_TEST

/*
 * Jumbo frames with mtu 9000: 9014 (untagged) and 9018 (the VLAN-tagged
 * most) go through, merged over 1 KiB buffers or, without MRG_RXBUF,
 * in RX buffers sized for a whole jumbo frame.
 */
START_TEST(test_jumbo_frames)
{
    static const VirtioNetDrvConfig jumbo_cfg = { .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x57 },
                                                  .mtu = 9000, .max_queue_pairs = 1 };
    bool mrg = _i;
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;

    net_setup(1, mrg, true, true);
    dev_start();
    d = drv_new_cfg(1, mrg, &jumbo_cfg);
    net_workload_init(&wl);
    ck_assert(net_workload_parse(&wl, "net0", "count=600,size=64+9014+1518+9018,"
                                 "rxbuf=1k", &err));
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.sent, 600);
    ck_assert_uint_eq(dev.dropped, 0);
    /* 12 + 9018 bytes: 9 buffers of 1 KiB, or one big one. */
    ck_assert_uint_eq(dev.max_nbuf, mrg ? 9 : 1);
    ck_assert_uint_eq(res.stats.bytes, 150ull * (64 + 9014 + 1518 + 9018));
    virtio_net_result_clear(&res);
    /* One byte more than mtu + 18 is refused before anything is sent. */
    wl.sizes[1] = 9019;
    ck_assert(!virtio_net_drv_run(d, &wl, NULL, &res, &err));
    ck_assert_msg(strstr(err->message, "net0: size=9019 is outside [46, 9018]"), "%s",
                  err->message);
    ck_assert_uint_eq(res.sent, 0);
    g_clear_error(&err);
    dev_stop();
    virtio_net_drv_free(d);
    net_teardown();
}
END_TEST

/* mtu 1500 on the device: a jumbo size is refused, naming the limit. */
START_TEST(test_jumbo_over_mtu)
{
    VirtioNetResult res;
    NetWorkload wl;
    GError *err = NULL;
    VirtioNetDrv *d;

    net_setup(1, true, false, false);
    dev_start();
    d = drv_new(1, true);
    net_workload_init(&wl);
    ck_assert(net_workload_parse(&wl, "net0", "count=10,size=64+9014", &err));
    ck_assert(!virtio_net_drv_run(d, &wl, NULL, &res, &err));
    ck_assert_int_eq(err->code, GUEST_ERROR_OPTION);
    ck_assert_msg(!strcmp(err->message, "net0: size=9014 is over the limit of 1518 bytes "
                          "(the device's mtu 1500 + 18: ethernet header and a VLAN tag)"),
                  "%s", err->message);
    ck_assert_uint_eq(res.sent, 0);
    ck_assert_uint_eq(dev.tx_packets[0], 0);
    g_clear_error(&err);
    /* The parser knows only the absolute bound. */
    ck_assert(!net_workload_parse(&wl, "net0", "size=9019", &err));
    ck_assert_msg(strstr(err->message, "net0: size: '9019' is outside [46, 9018]"), "%s",
                  err->message);
    g_clear_error(&err);
    dev_stop();
    virtio_net_drv_free(d);
    net_teardown();
}
END_TEST

/* ---- live migration: park, drop the driver, attach from RAM, go on ---- */

typedef struct NetRunArgs {
    VirtioNetDrv *d;
    NetWorkload wl;
    WorkloadCtl ctl;
    VirtioNetResult res;
    GError *err;
    bool ok;
} NetRunArgs;

static gpointer net_run_thread(gpointer opaque)
{
    NetRunArgs *a = opaque;

    a->ok = virtio_net_drv_run(a->d, &a->wl, &a->ctl, &a->res, &a->err);
    return NULL;
}

/* _i: 0 parks and continues from RAM, 1 a corrupted driver state is refused. */
START_TEST(test_park_and_continue_from_ram)
{
    NetRunArgs a = { 0 };
    UnitPark park;
    GThread *t;
    GError *err = NULL;
    VirtioNetResult res = { 0 };
    WorkloadCtl ctl = { .name = "net0" };
    uint64_t features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_MTU) |
                        (1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_MRG_RXBUF);
    uint64_t v;
    VirtioNetDrv *d2;

    net_setup(2, true, true, true);
    dev_start();
    a.d = drv_new(2, true);
    net_workload_init(&a.wl);
    ck_assert(net_workload_parse(&a.wl, "net0", "count=20000,window=32", &err));
    a.ctl = (WorkloadCtl){ .name = "net0" };
    unit_park_init(&park, &a.ctl);
    t = g_thread_new("net-run", net_run_thread, &a);
    g_usleep(20000);
    ck_assert(unit_park_pause(&park));
    unit_park_release(&park, true);
    g_usleep(20000);
    /* Park for good only once packets went out (a slow ASan run may not have yet). */
    for (unsigned w = 0; w < 500 && !__atomic_load_n(&a.res.sent, __ATOMIC_RELAXED); w++) {
        g_usleep(10000);
    }
    ck_assert(unit_park_pause(&park));
    /* Parked: no TX buffer out; RX buffers stay posted. */
    ck_assert_uint_eq(__atomic_load_n(&park.in_flight, __ATOMIC_RELAXED), 0);
    for (unsigned p = 0; p < 2; p++) {
        ck_assert_uint_eq(guest_vq_in_flight(&vqs[2 * p + 1]), 0);
        ck_assert_uint_gt(guest_vq_in_flight(&vqs[2 * p]), 0);
    }
    unit_park_release(&park, false);
    g_thread_join(t);
    ck_assert_msg(a.ok, "%s", a.err ? a.err->message : "?");
    ck_assert(a.res.migrated);
    ck_assert_uint_gt(a.res.sent, 0);
    ck_assert_uint_lt(a.res.sent, 40000);

    /* Only guest RAM is left: the driver and the rings' host views go. */
    dev_stop();
    ck_assert_int_eq(read(dev.stop_fd, &v, 8), 8);
    virtio_net_drv_free(a.d);
    for (unsigned q = 0; q < 4; q++) {
        int kick = vqs[q].kick_fd, call = vqs[q].call_fd;

        memset(&vqs[q], 0xa5, sizeof(vqs[q]));
        ck_assert(guest_vq_attach(&vqs[q], mem, vq_state_gpa[q]));
        vqs[q].kick_fd = kick;
        vqs[q].call_fd = call;
    }
    if (_i == 1) {
        /* NetDrvState.rxbuf, at offset 8: a back-end made the buffers huge. */
        *(uint32_t *)((uint8_t *)guest_memory_gpa_to_hva(mem, BUF_GPA, 16) + 8) = 1u << 20;
    }
    d2 = virtio_net_drv_attach("net0", mem, vqs, 4, features, &net_cfg, BUF_GPA,
                               BUF_SIZE, &err);
    if (_i == 1) {
        ck_assert(!d2);
        ck_assert_msg(strstr(err->message, "net0: driver state: rxbuf"), "%s",
                      err->message);
        g_clear_error(&err);
    } else {
        ck_assert_msg(d2, "%s", err ? err->message : "?");
        dev_start();
        ck_assert_msg(virtio_net_drv_continue(d2, &a.wl, &ctl, &res, &err), "%s",
                      err ? err->message : "?");
        ck_assert(res.continued && res.verified_all);
        ck_assert_uint_eq(res.sent, 40000);
        ck_assert_uint_eq(res.verified, 40000);
        ck_assert_uint_eq(res.lost, 0);
        ck_assert_uint_eq(res.mismatched, 0);
        ck_assert_uint_eq(res.ops_before, a.res.verified);
        dev_stop();
    }
    virtio_net_result_clear(&res);
    virtio_net_result_clear(&a.res);
    virtio_net_drv_free(d2);
    unit_park_clear(&park);
    net_teardown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guest-net");
    TCase *tc = tcase_create("net");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_two_pairs_all_verified, 0, 8);
    tcase_add_loop_test(tc, test_dropped_packet_is_lost, 0, 2);
    tcase_add_test(tc, test_corrupt_and_duplicate);
    tcase_add_test(tc, test_huge_count_bounded);
    tcase_add_test(tc, test_clock_read_per_iteration);
    tcase_add_test(tc, test_tx_one_descriptor);
    tcase_add_loop_test(tc, test_poll_suppresses_calls, 0, 2);
    tcase_add_test(tc, test_own_stall_is_not_loss);
    tcase_add_loop_test(tc, test_verify_modes, 0, 3);
    tcase_add_test(tc, test_stop_and_bad_options);
    tcase_add_loop_test(tc, test_jumbo_frames, 0, 2);
    tcase_add_test(tc, test_jumbo_over_mtu);
    tcase_add_loop_test(tc, test_park_and_continue_from_ram, 0, 2);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
