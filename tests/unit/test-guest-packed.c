/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueue driver (guest/virtqueue-packed.c) against a minimal
 * packed device written here: it takes available buffers in ring order
 * (chains and indirect tables), completes them in order or reversed, and
 * writes used descriptors with its own wrap counter. Runs many laps of
 * small rings, a size that is not a power of two among them.
 */
#include <check.h>
#include <inttypes.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "guest/virtqueue-packed.h"
#include "unit-ram.h"

#define RAM_SIZE    (4u << 20)
#define DESC_GPA    0x10000
#define DRIVER_GPA  0x11000
#define DEVICE_GPA  0x12000
#define STATE_GPA   0x13000
#define IND_GPA     0x14000
#define BUF_GPA     0x100000

static RamBlock *rb;
static GuestMemory *mem;

static void setup(void)
{
    unit_ram_setup(RAM_SIZE, &rb, &mem);
}

static void teardown(void)
{
    unit_ram_teardown(rb, mem);
}

typedef struct PDev {
    unsigned num;
    uint16_t avail_pos, used_pos;
    bool avail_wrap, used_wrap;
} PDev;

typedef struct PBuf {
    uint16_t id;
    unsigned slots;
    uint32_t written;
} PBuf;

static VringPackedDesc pdesc_at(uint64_t gpa)
{
    VringPackedDesc d;

    ck_assert(guest_memory_read(mem, gpa, &d, sizeof(d)));
    return d;
}

static void pdev_step(uint16_t *pos, bool *wrap, unsigned n, unsigned num)
{
    *pos += n;
    if (*pos >= num) {
        *pos -= num;
        *wrap = !*wrap;
    }
}

/* Takes the next available buffer, if any; fills its writable part. */
static bool pdev_take(PDev *d, PBuf *b)
{
    VringPackedDesc h = pdesc_at(DESC_GPA + 16ull * d->avail_pos);
    uint16_t pos = d->avail_pos;
    bool wrap = d->avail_wrap;

    if (!!(h.flags & VRING_PACKED_DESC_F_AVAIL) != d->avail_wrap ||
        !!(h.flags & VRING_PACKED_DESC_F_USED) == d->avail_wrap) {
        return false;
    }
    memset(b, 0, sizeof(*b));
    if (h.flags & VRING_DESC_F_INDIRECT) {
        ck_assert_uint_eq(h.len % 16, 0);
        for (unsigned i = 0; i < h.len / 16; i++) {
            VringPackedDesc e = pdesc_at(h.addr + 16ull * i);

            b->written += (e.flags & VRING_DESC_F_WRITE) ? e.len : 0;
        }
        b->id = h.id;
        b->slots = 1;
    } else {
        for (;;) {
            VringPackedDesc e = pdesc_at(DESC_GPA + 16ull * pos);

            /* Every descriptor of the chain is available in the same lap. */
            ck_assert_uint_eq(!!(e.flags & VRING_PACKED_DESC_F_AVAIL), wrap);
            b->written += (e.flags & VRING_DESC_F_WRITE) ? e.len : 0;
            b->slots++;
            b->id = e.id;
            pdev_step(&pos, &wrap, 1, d->num);
            if (!(e.flags & VRING_DESC_F_NEXT)) {
                break;
            }
            ck_assert_uint_le(b->slots, d->num);
        }
    }
    pdev_step(&d->avail_pos, &d->avail_wrap, b->slots, d->num);
    return true;
}

/* Writes a used descriptor for b at the device's used position. */
static void pdev_put(PDev *d, const PBuf *b)
{
    VringPackedDesc u = {
        .id = b->id, .len = b->written,
        .flags = d->used_wrap ? (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED) : 0,
    };

    ck_assert(guest_memory_write(mem, DESC_GPA + 16ull * d->used_pos, &u, sizeof(u)));
    pdev_step(&d->used_pos, &d->used_wrap, b->slots, d->num);
}

static void pvq_setup(GuestVirtqueue *vq, PDev *d, unsigned num, bool indirect,
                      bool event_idx)
{
    ck_assert(guest_vq_init_packed(vq, mem, num, DESC_GPA, DRIVER_GPA, DEVICE_GPA,
                                   indirect ? IND_GPA : 0, STATE_GPA, event_idx));
    vq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(vq->kick_fd, 0);
    *d = (PDev){ .num = num, .avail_wrap = true, .used_wrap = true };
}

/*
 * Many laps with requests of 1..3 buffers, completed in order or in
 * reverse by batches: every token comes back once with its length, and
 * the driver's positions and wrap counters follow the device's.
 */
static void run_laps(unsigned num, bool indirect, bool reverse)
{
    GuestVirtqueue vq;
    PDev d;
    GuestSg out = { BUF_GPA, 16 };
    GuestSg in[2] = { { BUF_GPA + 4096, 100 }, { BUF_GPA + 8192, 1 } };
    uint64_t next = 0, done = 0;
    unsigned wraps = 0;
    bool last_wrap = true;

    pvq_setup(&vq, &d, num, indirect, false);
    while (done < 3000) {
        PBuf batch[64];
        unsigned nb = 0;
        uint64_t t;
        uint32_t len;

        /* Request k has 1 + k % 3 buffers: 1 out, then 0..2 in. */
        while (guest_vq_add(&vq, &out, 1, in, next % 3, next)) {
            next++;
        }
        ck_assert_uint_lt(guest_vq_num_free(&vq), 3);
        guest_vq_kick(&vq);
        while (nb < 64 && pdev_take(&d, &batch[nb])) {
            nb++;
        }
        ck_assert_uint_gt(nb, 0);
        for (unsigned i = 0; i < nb; i++) {
            pdev_put(&d, &batch[reverse ? nb - 1 - i : i]);
        }
        while (guest_vq_get_used(&vq, &t, &len)) {
            ck_assert_uint_lt(t, next);
            ck_assert_uint_eq(len, (t % 3 >= 1 ? 100 : 0) + (t % 3 == 2 ? 1 : 0));
            done++;
        }
        ck_assert(!vq.corrupt);
        ck_assert_uint_eq(guest_vq_in_flight(&vq), 0);
        ck_assert_uint_eq(guest_vq_num_free(&vq), num);
        ck_assert_uint_eq(done, next);
        ck_assert_uint_eq(vq.pst->last_used & GUEST_VQ_PACKED_SLOT, d.used_pos);
        ck_assert_uint_eq(!!(vq.pst->last_used & GUEST_VQ_PACKED_WRAP), d.used_wrap);
        ck_assert_uint_eq(vq.pst->next_avail, vq.pst->last_used);
        wraps += d.used_wrap != last_wrap;
        last_wrap = d.used_wrap;
    }
    ck_assert_uint_gt(wraps, 50);
    close(vq.kick_fd);
}

START_TEST(test_laps_chains)
{
    run_laps(8, false, false);
    run_laps(7, false, true);
}
END_TEST

START_TEST(test_laps_indirect)
{
    run_laps(8, true, true);
    run_laps(5, true, false);
}
END_TEST

START_TEST(test_laps_largest_index)
{
    /* A 32768 ring is the largest: its slots use all 15 bits. */
    GuestVirtqueue vq;
    GuestSg out = { BUF_GPA, 16 };
    uint64_t size = vring_packed_desc_size(32768);
    uint64_t state = DESC_GPA + size;

    ck_assert(guest_vq_init_packed(&vq, mem, 32768, DESC_GPA, DESC_GPA + size + 0x80000,
                                   DESC_GPA + size + 0x80004, 0, state, false));
    for (unsigned i = 0; i < 32768; i++) {
        ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, i));
    }
    ck_assert(!guest_vq_add(&vq, &out, 1, NULL, 0, 0));
    ck_assert_uint_eq(vq.pst->next_avail, 0);   /* slot 0, wrap counter 0 */
    ck_assert(!guest_vq_init_packed(&vq, mem, 32769, DESC_GPA, DRIVER_GPA, DEVICE_GPA,
                                    0, STATE_GPA, false));
}
END_TEST

/* Device event suppression: DISABLE, ENABLE, and DESC at an offset/wrap. */
START_TEST(test_kick_suppression)
{
    GuestVirtqueue vq;
    PDev d;
    GuestSg out = { BUF_GPA, 16 };
    uint16_t ev[2];
    PBuf b;
    uint64_t t;
    uint32_t len;

    pvq_setup(&vq, &d, 4, false, true);
    ev[0] = 0;
    ev[1] = VRING_PACKED_EVENT_FLAG_DISABLE;
    ck_assert(guest_memory_write(mem, DEVICE_GPA, ev, 4));
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 1));
    ck_assert(!guest_vq_kick(&vq));
    ck_assert_uint_eq(vq.kicks_suppressed, 1);
    ev[1] = VRING_PACKED_EVENT_FLAG_ENABLE;
    ck_assert(guest_memory_write(mem, DEVICE_GPA, ev, 4));
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 2));
    ck_assert(guest_vq_kick(&vq));
    /* Drain: the device is at slot 2 of lap 1. */
    while (pdev_take(&d, &b)) {
        pdev_put(&d, &b);
    }
    while (guest_vq_get_used(&vq, &t, &len)) {
    }
    /* Tell me when slot 1 of the next lap (wrap 0) becomes available. */
    ev[0] = 1;
    ev[1] = VRING_PACKED_EVENT_FLAG_DESC;
    ck_assert(guest_memory_write(mem, DEVICE_GPA, ev, 4));
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 3));      /* slot 2, lap 1 */
    ck_assert(!guest_vq_kick(&vq));
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 4));      /* slot 3, lap 1 */
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 5));      /* slot 0, lap 0 */
    ck_assert(!guest_vq_kick(&vq));
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 6));      /* slot 1, lap 0 */
    ck_assert(guest_vq_kick(&vq));
    ck_assert_uint_eq(vq.kicks, 2);
    close(vq.kick_fd);
}
END_TEST

/* Driver event suppression: what the device reads to decide to interrupt. */
START_TEST(test_driver_event_area)
{
    GuestVirtqueue vq;
    PDev d;
    GuestSg out = { BUF_GPA, 16 };
    uint16_t ev[2];
    PBuf b;
    uint64_t t;
    uint32_t len;

    pvq_setup(&vq, &d, 4, false, true);
    guest_vq_disable_cb(&vq);
    ck_assert(guest_memory_read(mem, DRIVER_GPA, ev, 4));
    ck_assert_uint_eq(ev[1], VRING_PACKED_EVENT_FLAG_DISABLE);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, i));
    }
    guest_vq_kick(&vq);
    ck_assert(pdev_take(&d, &b));
    pdev_put(&d, &b);
    ck_assert(guest_vq_get_used(&vq, &t, &len));
    /* Callbacks off: the offset is not moved per entry. */
    ck_assert(guest_memory_read(mem, DRIVER_GPA, ev, 4));
    ck_assert_uint_eq(ev[0], 0);
    /* On: DESC mode at the next used slot with its wrap; a raced entry shows. */
    ck_assert(pdev_take(&d, &b));
    pdev_put(&d, &b);
    ck_assert(guest_vq_enable_cb(&vq));
    ck_assert(guest_memory_read(mem, DRIVER_GPA, ev, 4));
    ck_assert_uint_eq(ev[1], VRING_PACKED_EVENT_FLAG_DESC);
    ck_assert_uint_eq(ev[0], 1 | GUEST_VQ_PACKED_WRAP);
    ck_assert(guest_vq_get_used(&vq, &t, &len));
    ck_assert(guest_memory_read(mem, DRIVER_GPA, ev, 4));
    ck_assert_uint_eq(ev[0], 2 | GUEST_VQ_PACKED_WRAP);
    ck_assert(!guest_vq_enable_cb(&vq));
    close(vq.kick_fd);
}
END_TEST

START_TEST(test_bad_used_refused)
{
    GuestVirtqueue vq;
    PDev d;
    GuestSg out = { BUF_GPA, 16 };
    PBuf b;
    uint64_t t;
    uint32_t len;
    g_autofree char *msg = NULL;

    pvq_setup(&vq, &d, 8, false, false);
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 7));
    guest_vq_kick(&vq);
    ck_assert(pdev_take(&d, &b));
    b.id = 8;   /* past the ring */
    pdev_put(&d, &b);
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    msg = guest_vq_corruption(&vq, "net0", 0);
    ck_assert_ptr_nonnull(strstr(msg, "used.id 8"));
    ck_assert(!guest_vq_add(&vq, &out, 1, NULL, 0, 8));

    /* An id that names nothing in flight. */
    pvq_setup(&vq, &d, 8, false, false);
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 7));
    guest_vq_kick(&vq);
    ck_assert(pdev_take(&d, &b));
    b.id = 3;
    pdev_put(&d, &b);
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    ck_assert_str_eq(vq.corrupt, "used.id");
    ck_assert_str_eq(vq.corrupt_why, "names no request in flight");
    close(vq.kick_fd);
}
END_TEST

START_TEST(test_attach_continues)
{
    GuestVirtqueue vq, vq2;
    PDev d;
    GuestSg out = { BUF_GPA, 16 };
    PBuf b;
    uint64_t t;
    uint32_t len;

    pvq_setup(&vq, &d, 4, true, true);
    for (unsigned i = 0; i < 6; i++) {
        ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, i));
        guest_vq_kick(&vq);
        ck_assert(pdev_take(&d, &b));
        pdev_put(&d, &b);
        ck_assert(guest_vq_get_used(&vq, &t, &len));
    }
    /*
     * Added, not kicked: its head is still hidden when the driver moves
     * (a migration). The state in RAM says so, and the attached queue's
     * first kick hands it over.
     */
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 100));
    /* Attached from RAM (as after a migration): packed, same positions. */
    ck_assert(guest_vq_attach(&vq2, mem, STATE_GPA));
    ck_assert(vq2.packed);
    ck_assert_uint_eq(vq2.desc_gpa, DESC_GPA);
    ck_assert_uint_eq(vq2.avail_gpa, DRIVER_GPA);
    ck_assert_uint_eq(vq2.used_gpa, DEVICE_GPA);
    ck_assert_uint_eq(guest_vq_in_flight(&vq2), 1);
    ck_assert(!pdev_take(&d, &b));
    guest_vq_kick(&vq2);
    ck_assert(pdev_take(&d, &b));
    pdev_put(&d, &b);
    ck_assert(guest_vq_get_used(&vq2, &t, &len));
    ck_assert_uint_eq(t, 100);
    /* A state whose position lies past the ring is refused. */
    vq2.pst->next_avail = 9;
    ck_assert(!guest_vq_attach(&vq2, mem, STATE_GPA));
    close(vq.kick_fd);
}
END_TEST

/*
 * A burst is the device's all at once, at the kick: until then its first
 * head's flags do not say available, so the device, reading in order,
 * sees none of it; the heads behind it may. A hidden head that the state
 * in RAM names wrongly (a back-end scribbled it) stops the queue.
 */
START_TEST(test_burst_handed_over_at_kick)
{
    GuestVirtqueue vq;
    PDev d;
    GuestSg out = { BUF_GPA, 16 };
    PBuf b;

    pvq_setup(&vq, &d, 8, false, false);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, i));
    }
    ck_assert(!pdev_take(&d, &b));
    ck_assert(pdesc_at(DESC_GPA + 16).flags & VRING_PACKED_DESC_F_AVAIL);
    guest_vq_kick(&vq);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert(pdev_take(&d, &b));
        ck_assert_uint_eq(b.id, i);
    }
    ck_assert(!pdev_take(&d, &b));
    ck_assert_uint_eq(vq.pst->pend_slot, 0);

    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 3));
    ck_assert_uint_eq(vq.pst->pend_slot, 4);
    vq.pst->pend_slot = 9;      /* past the ring of 8 */
    ck_assert(!guest_vq_kick(&vq));
    ck_assert_str_eq(vq.corrupt, "pend_slot");
    ck_assert(!pdev_take(&d, &b));
    close(vq.kick_fd);

    pvq_setup(&vq, &d, 8, false, false);
    ck_assert(guest_vq_add(&vq, &out, 1, NULL, 0, 0));
    vq.pst->pend_flags = 0x0100;    /* not a descriptor flag */
    ck_assert(!guest_vq_kick(&vq));
    ck_assert_str_eq(vq.corrupt, "pend_flags");
    /* Nor is such a state attached. */
    ck_assert(!guest_vq_attach(&vq, mem, STATE_GPA));
    close(vq.kick_fd);
}
END_TEST

static Suite *packed_suite(void)
{
    Suite *s = suite_create("guest-packed");
    TCase *tc = tcase_create("ring");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_laps_chains);
    tcase_add_test(tc, test_laps_indirect);
    tcase_add_test(tc, test_laps_largest_index);
    tcase_add_test(tc, test_kick_suppression);
    tcase_add_test(tc, test_driver_event_area);
    tcase_add_test(tc, test_bad_used_refused);
    tcase_add_test(tc, test_attach_continues);
    tcase_add_test(tc, test_burst_handed_over_at_kick);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(packed_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
