/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The RAM-disk device model of the guest virtio-blk driver's unit tests.
 * See unit-blk-dev.h.
 */
#include <check.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "unit-blk-dev.h"

RamBlock *rb;
GuestMemory *mem;
GuestVirtqueue vqs[MAXQ];
uint64_t vq_state_gpa[MAXQ];
BlkDev dev;

static uint64_t alloc_gpa(uint64_t *next, uint64_t size)
{
    uint64_t gpa = *next;

    *next = (gpa + size + 4095) & ~4095ull;
    return gpa;
}

void ring_setup(unsigned nq, bool indirect, bool event_idx)
{
    GError *err = NULL;
    uint64_t next = RING_GPA;

    rb = ram_block_new_memfd("ram", RAM_SIZE, &err);
    ck_assert_msg(rb, "memfd: %s", err ? err->message : "?");
    mem = guest_memory_new();
    ck_assert(guest_memory_add(mem, 0, rb, 0, RAM_SIZE, &err));
    for (unsigned q = 0; q < nq; q++) {
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
    dev.nq = nq;
    dev.event_idx = event_idx;
    dev.corrupt_sector = -1;
    dev.disk = g_malloc0((size_t)CAPACITY * 512);
    dev.stop_fd = eventfd(0, EFD_CLOEXEC);
}

/* ---- the device model: reads everything through guest memory ---- */

typedef struct DevSg {
    uint64_t addr;
    uint32_t len;
    bool write;
} DevSg;

static unsigned dev_walk(GuestVirtqueue *vq, uint16_t head, DevSg *sg, unsigned max)
{
    VringDesc d;
    uint64_t table = 0;
    unsigned n = 0, idx = head;

    ck_assert(guest_memory_read(mem, vq->st->desc_gpa + 16ull * head, &d, sizeof(d)));
    if (d.flags & VRING_DESC_F_INDIRECT) {
        table = d.addr;
        ck_assert(d.len % 16 == 0 && d.len / 16 <= max);
        ck_assert(guest_memory_read(mem, table, &d, sizeof(d)));
        idx = 0;
    }
    for (;;) {
        ck_assert_uint_lt(n, max);
        sg[n++] = (DevSg){ d.addr, d.len, d.flags & VRING_DESC_F_WRITE };
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return n;
        }
        idx = d.next;
        ck_assert(guest_memory_read(mem, table ? table + 16ull * idx
                                               : vq->st->desc_gpa + 16ull * idx,
                                    &d, sizeof(d)));
    }
}

/* Scatters host bytes over the device-writable buffers. */
static void dev_scatter(DevSg *sg, unsigned n, const uint8_t *src, size_t len)
{
    for (unsigned i = 0; i < n && len; i++) {
        size_t k;
        if (!sg[i].write) {
            continue;
        }
        k = MIN(len, sg[i].len);
        ck_assert(guest_memory_write(mem, sg[i].addr, src, k));
        src += k;
        len -= k;
    }
}

/* Handles one request; returns the bytes written to device-writable buffers. */
static uint32_t dev_request(DevSg *sg, unsigned n)
{
    uint8_t out[2 * 65536 + 64], status = VIRTIO_BLK_S_OK;
    size_t out_len = 0, in_len = 0, data_len;
    g_autofree uint8_t *in = NULL;
    VirtioBlkOutHdr hdr;

    for (unsigned i = 0; i < n; i++) {
        if (sg[i].write) {
            in_len += sg[i].len;
        } else {
            ck_assert_uint_le(out_len + sg[i].len, sizeof(out));
            ck_assert(guest_memory_read(mem, sg[i].addr, out + out_len, sg[i].len));
            out_len += sg[i].len;
        }
    }
    ck_assert_uint_ge(out_len, sizeof(hdr));
    ck_assert_uint_ge(in_len, 1);
    memcpy(&hdr, out, sizeof(hdr));
    in = g_malloc0(in_len);
    data_len = in_len - 1;
    switch (hdr.type) {
    case VIRTIO_BLK_T_IN:
        if (data_len % 512 || hdr.sector + data_len / 512 > CAPACITY) {
            status = VIRTIO_BLK_S_IOERR;
            break;
        }
        memcpy(in, dev.disk + hdr.sector * 512, data_len);
        if (dev.corrupt_sector >= 0 && (uint64_t)dev.corrupt_sector >= hdr.sector &&
            (uint64_t)dev.corrupt_sector < hdr.sector + data_len / 512) {
            in[(dev.corrupt_sector - hdr.sector) * 512 + 100] ^= 0x40;
        }
        break;
    case VIRTIO_BLK_T_OUT: {
        size_t len = out_len - sizeof(hdr);
        if (len % 512 || hdr.sector + len / 512 > CAPACITY) {
            status = VIRTIO_BLK_S_IOERR;
            break;
        }
        memcpy(dev.disk + hdr.sector * 512, out + sizeof(hdr), len);
        data_len = 0;
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        data_len = 0;
        break;
    case VIRTIO_BLK_T_GET_ID:
        memcpy(in, DEV_ID, MIN(data_len, strlen(DEV_ID)));
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        VirtioBlkDiscardWz seg;
        ck_assert_uint_eq(out_len, sizeof(hdr) + sizeof(seg));
        memcpy(&seg, out + sizeof(hdr), sizeof(seg));
        if (seg.sector + seg.num_sectors > CAPACITY) {
            status = VIRTIO_BLK_S_IOERR;
            break;
        }
        memset(dev.disk + seg.sector * 512, 0, (size_t)seg.num_sectors * 512);
        data_len = 0;
        break;
    }
    default:
        status = VIRTIO_BLK_S_UNSUPP;
        data_len = 0;
        break;
    }
    in[in_len - 1] = status;
    /* Data first, status in the last writable byte. */
    dev_scatter(sg, n, in, in_len);
    return (uint32_t)(data_len + 1);
}

static bool dev_process(unsigned q)
{
    GuestVirtqueue *vq = &dev.vqs[q];
    uint64_t avail = vq->st->avail_gpa, used = vq->st->used_gpa;
    uint16_t avail_idx, flags, used_event, old_used = dev.used_idx[q];
    bool any = false;

    if (dev.hang) {
        return false;
    }
    ck_assert(guest_memory_read(mem, avail + 2, &avail_idx, 2));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    while (dev.last_avail[q] != avail_idx) {
        DevSg sg[GUEST_VQ_INDIRECT_MAX];
        uint16_t head;
        VringUsedElem e;
        unsigned n;

        ck_assert(guest_memory_read(mem, avail + 4 + 2 * (dev.last_avail[q] % QSIZE),
                                    &head, 2));
        ck_assert_uint_lt(head, QSIZE);
        n = dev_walk(vq, head, sg, G_N_ELEMENTS(sg));
        e.id = head;
        e.len = dev_request(sg, n);
        ck_assert(guest_memory_write(mem, used + 4 + 8 * (dev.used_idx[q] % QSIZE),
                                     &e, sizeof(e)));
        dev.last_avail[q]++;
        dev.used_idx[q]++;
        dev.requests++;
        any = true;
        if (dev.last_avail[q] == avail_idx) {
            /* Tell the driver where we are, then look for more. */
            if (dev.event_idx) {
                ck_assert(guest_memory_write(mem, used + 4 + 8 * QSIZE,
                                             &dev.last_avail[q], 2));
            }
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            ck_assert(guest_memory_read(mem, avail + 2, &avail_idx, 2));
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
        }
    }
    if (!any) {
        return false;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ck_assert(guest_memory_write(mem, used + 2, &dev.used_idx[q], 2));
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    ck_assert(guest_memory_read(mem, avail, &flags, 2));
    ck_assert(guest_memory_read(mem, avail + 4 + 2 * QSIZE, &used_event, 2));
    if (!dev.no_call) {
        bool need = dev.event_idx
            ? (uint16_t)(dev.used_idx[q] - used_event - 1) <
              (uint16_t)(dev.used_idx[q] - old_used)
            : !(flags & VRING_AVAIL_F_NO_INTERRUPT);
        if (need) {
            uint64_t one = 1;
            ck_assert_int_eq(write(vq->call_fd, &one, 8), 8);
        }
    }
    return true;
}

static void *dev_thread(void *opaque)
{
    for (;;) {
        struct pollfd pfd[MAXQ + 1];
        uint64_t v;

        for (unsigned q = 0; q < dev.nq; q++) {
            pfd[q] = (struct pollfd){ .fd = dev.vqs[q].kick_fd, .events = POLLIN };
        }
        pfd[dev.nq] = (struct pollfd){ .fd = dev.stop_fd, .events = POLLIN };
        /* The timeout doubles as a poll of the rings (suppressed kicks). */
        poll(pfd, dev.nq + 1, 20);
        if (pfd[dev.nq].revents) {
            return NULL;
        }
        for (unsigned q = 0; q < dev.nq; q++) {
            if (read(dev.vqs[q].kick_fd, &v, 8) < 0) {
                /* nothing pending */
            }
            while (dev_process(q)) {
            }
        }
    }
}

void dev_start(void)
{
    ck_assert_int_eq(pthread_create(&dev.thread, NULL, dev_thread, NULL), 0);
}

void dev_stop(void)
{
    uint64_t one = 1;

    ck_assert_int_eq(write(dev.stop_fd, &one, 8), 8);
    pthread_join(dev.thread, NULL);
}

void teardown(void)
{
    for (unsigned q = 0; q < dev.nq; q++) {
        close(vqs[q].kick_fd);
        close(vqs[q].call_fd);
    }
    close(dev.stop_fd);
    g_free(dev.disk);
    guest_memory_free(mem);
    ram_block_unref(rb);
}


VirtioBlkDrv *drv_new(unsigned nq, uint64_t features)
{
    VirtioBlkDrvConfig cfg = { .capacity = CAPACITY, .blk_size = 512, .seg_max = 8,
                            .num_queues = (uint16_t)nq };
    GError *err = NULL;
    VirtioBlkDrv *d = virtio_blk_drv_new("blk0", mem, vqs, nq, features, &cfg,
                                         BUF_GPA, BUF_SIZE, 42, &err);

    ck_assert_msg(d, "%s", err ? err->message : "?");
    ck_assert_uint_eq(virtio_blk_drv_tracked_sectors(d), CAPACITY);
    return d;
}

void run_ok_ctl(VirtioBlkDrv *d, const BlkWorkload *wl, const WorkloadCtl *ctl,
                       VirtioBlkResult *res)
{
    GError *err = NULL;

    ck_assert_msg(virtio_blk_drv_run(d, wl, ctl, res, &err), "%s",
                  err ? err->message : "?");
    ck_assert(res->verified == wl->verify);
    ck_assert_uint_eq(res->mismatches, 0);
    ck_assert_uint_eq(res->io_errors, 0);
}

void run_ok(VirtioBlkDrv *d, const BlkWorkload *wl, VirtioBlkResult *res)
{
    WorkloadCtl ctl = { .name = "blk0", .stall_ms = 5000 };

    run_ok_ctl(d, wl, &ctl, res);
}

void blk_test(unsigned nq, bool indirect, bool event_idx)
{
    ring_setup(nq, indirect, event_idx);
    dev_start();
}
