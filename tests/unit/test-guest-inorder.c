/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * VIRTIO_F_IN_ORDER in the guest driver (guest/virtqueue.c,
 * guest/virtqueue-packed.c), split and packed, against a device model
 * written here that checks the driver uses descriptors in ring order and
 * completes buffers in order, either writing every used entry or
 * reporting each batch with one entry naming its last buffer (and leaving
 * misleading values where it wrote nothing).
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
#define AVAIL_GPA   0x11000     /* packed: driver event area */
#define USED_GPA    0x12000     /* packed: device event area */
#define STATE_GPA   0x13000
#define IND_GPA     0x14000
#define BUF_GPA     0x100000
#define NREQ        4000

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

typedef struct IoDev {
    bool packed;
    unsigned num;
    uint16_t avail;             /* split: avail index taken; packed: slot */
    uint16_t used;              /* split: used index; packed: slot */
    bool avail_wrap, used_wrap; /* packed */
    uint16_t next_desc;         /* where ring order says the next buffer starts */
} IoDev;

typedef struct IoBuf {
    uint16_t id;
    unsigned slots;
    uint32_t written;
} IoBuf;

/* Split and packed descriptors share addr and len; flags differ in place. */
static void io_desc(uint64_t gpa, bool packed, uint64_t *addr, uint32_t *len,
                    uint16_t *flags, uint16_t *next_or_id)
{
    uint8_t d[16];

    ck_assert(guest_memory_read(mem, gpa, d, sizeof(d)));
    memcpy(addr, d, 8);
    memcpy(len, d + 8, 4);
    memcpy(packed ? next_or_id : flags, d + 12, 2);
    memcpy(packed ? flags : next_or_id, d + 14, 2);
}

static void io_step(IoDev *d, uint16_t *pos, bool *wrap, unsigned n)
{
    *pos = (uint16_t)(*pos + n);
    if (*pos >= d->num) {
        *pos = (uint16_t)(*pos - d->num);
        *wrap = !*wrap;
    }
}

/* Takes the next available buffer, checking it sits where ring order says. */
static bool io_take(IoDev *d, IoBuf *b)
{
    uint16_t head, pos, flags, nx;
    uint64_t addr;
    uint32_t len;

    memset(b, 0, sizeof(*b));
    if (d->packed) {
        io_desc(DESC_GPA + 16ull * d->avail, true, &addr, &len, &flags, &nx);
        if (!!(flags & VRING_PACKED_DESC_F_AVAIL) != d->avail_wrap ||
            !!(flags & VRING_PACKED_DESC_F_USED) == d->avail_wrap) {
            return false;
        }
        head = d->avail;
        /* IN_ORDER: the buffer id is the slot of its first descriptor. */
        ck_assert_uint_eq(nx, head);
        b->id = nx;
    } else {
        uint16_t avail_idx;

        ck_assert(guest_memory_read(mem, AVAIL_GPA + 2, &avail_idx, 2));
        if (avail_idx == d->avail) {
            return false;
        }
        ck_assert(guest_memory_read(mem, AVAIL_GPA + 4 + 2 * (d->avail % d->num), &head, 2));
        b->id = head;
    }
    ck_assert_uint_eq(head, d->next_desc);
    pos = head;
    for (;;) {
        io_desc(DESC_GPA + 16ull * pos, d->packed, &addr, &len, &flags, &nx);
        b->slots++;
        if (flags & VRING_DESC_F_INDIRECT) {
            for (unsigned i = 0; i < len / 16; i++) {
                uint64_t a;
                uint32_t l;
                uint16_t f, n;

                io_desc(addr + 16ull * i, d->packed, &a, &l, &f, &n);
                b->written += (f & VRING_DESC_F_WRITE) ? l : 0;
            }
            break;
        }
        b->written += (flags & VRING_DESC_F_WRITE) ? len : 0;
        if (!(flags & VRING_DESC_F_NEXT)) {
            break;
        }
        /* Ring order: a split chain's next is x + 1, 0 after the last. */
        if (!d->packed) {
            ck_assert_uint_eq(nx, (pos + 1) % d->num);
        }
        pos = (uint16_t)((pos + 1) % d->num);
        ck_assert_uint_le(b->slots, d->num);
    }
    d->next_desc = (uint16_t)((head + b->slots) % d->num);
    if (d->packed) {
        bool w = d->avail_wrap;

        io_step(d, &d->avail, &w, b->slots);
        d->avail_wrap = w;
    } else {
        d->avail++;
    }
    return true;
}

static void io_put_one(IoDev *d, uint16_t id, uint32_t len, unsigned skip)
{
    if (d->packed) {
        VringPackedDesc u = {
            .id = id, .len = len,
            .flags = d->used_wrap ? (VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED) : 0,
        };

        ck_assert(guest_memory_write(mem, DESC_GPA + 16ull * d->used, &u, sizeof(u)));
        io_step(d, &d->used, &d->used_wrap, skip);
    } else {
        VringUsedElem e = { .id = id, .len = len };

        ck_assert(guest_memory_write(mem, USED_GPA + 4 + 8ull * (d->used % d->num), &e,
                                     sizeof(e)));
        d->used = (uint16_t)(d->used + skip);
    }
}

/*
 * Completes b[0..n) in order: one used entry each, or one for the lot
 * naming the last (the device then skips the batch). A batching split
 * device leaves the entries it skips as they were: here they are made to
 * name the batch's first buffer, which a driver that reads them would
 * take for a completion out of order.
 */
static void io_complete(IoDev *d, const IoBuf *b, unsigned n, bool batch)
{
    if (!batch) {
        for (unsigned i = 0; i < n; i++) {
            io_put_one(d, b[i].id, b[i].written, d->packed ? b[i].slots : 1);
        }
    } else {
        unsigned slots = 0;

        for (unsigned i = 0; i < n; i++) {
            slots += b[i].slots;
        }
        if (!d->packed) {
            for (unsigned i = 1; i < n; i++) {
                VringUsedElem junk = { .id = b[0].id, .len = 0xdead };

                ck_assert(guest_memory_write(mem, USED_GPA + 4 +
                                             8ull * ((d->used + i) % d->num),
                                             &junk, sizeof(junk)));
            }
        }
        io_put_one(d, b[n - 1].id, b[n - 1].written, d->packed ? slots : n);
    }
    if (!d->packed) {
        ck_assert(guest_memory_write(mem, USED_GPA + 2, &d->used, 2));
    }
}

static void io_setup(GuestVirtqueue *vq, IoDev *d, bool packed, unsigned num, bool indirect,
                     bool event_idx)
{
    *d = (IoDev){ .packed = packed, .num = num, .avail_wrap = true, .used_wrap = true };
    ck_assert(packed ?
              guest_vq_init_packed(vq, mem, num, DESC_GPA, AVAIL_GPA, USED_GPA,
                                   indirect ? IND_GPA : 0, STATE_GPA, event_idx) :
              guest_vq_init(vq, mem, num, DESC_GPA, AVAIL_GPA, USED_GPA,
                            indirect ? IND_GPA : 0, STATE_GPA, event_idx));
    ck_assert(guest_vq_set_in_order(vq));
    vq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(vq->kick_fd, 0);
}

/* Request t: 1 out buffer and 0..2 in buffers; what the device writes. */
static uint32_t req_written(uint64_t t)
{
    return (t % 3 >= 1 ? 100 : 0) + (t % 3 == 2 ? 7 : 0);
}

/*
 * Many laps of requests of 1..3 buffers, completed by batches of 1..5:
 * every token comes back once, oldest first, with the device's length
 * for the buffer an entry named and 0 for the others of its batch.
 */
static void run_in_order(bool packed, unsigned num, bool indirect, bool batch, bool burst)
{
    GuestVirtqueue vq;
    IoDev d;
    GuestSg out = { BUF_GPA, 16 };
    GuestSg in[2] = { { BUF_GPA + 4096, 100 }, { BUF_GPA + 8192, 7 } };
    uint32_t want_len[NREQ + 64];
    uint64_t next = 0, done = 0, round = 0;

    io_setup(&vq, &d, packed, num, indirect, true);
    while (done < NREQ) {
        IoBuf b[64];
        unsigned nb = 0, first = 0;

        while (next < NREQ && guest_vq_add(&vq, &out, 1, in, next % 3, next)) {
            next++;
        }
        guest_vq_kick(&vq);
        while (nb < 64 && io_take(&d, &b[nb])) {
            nb++;
        }
        ck_assert_uint_gt(nb, 0);
        /* Batches of 1..5; the device answers each before the driver looks. */
        while (first < nb) {
            unsigned n = MIN(1 + (round++ % 5), nb - first);

            for (unsigned i = 0; i < n; i++) {
                uint64_t t = done + first + i;

                want_len[t] = !batch || i == n - 1 ? req_written(t) : 0;
            }
            io_complete(&d, &b[first], n, batch);
            first += n;
        }
        if (burst) {
            GuestVqUsed u[64];
            unsigned got;

            /* Bursts of 3 cut batches in the middle. */
            while ((got = guest_vq_get_used_burst(&vq, u, 3)) > 0) {
                for (unsigned i = 0; i < got; i++, done++) {
                    ck_assert_uint_eq(u[i].token, done);
                    ck_assert_uint_eq(u[i].len, want_len[done]);
                }
            }
        } else {
            uint64_t t;
            uint32_t len;

            while (guest_vq_get_used(&vq, &t, &len)) {
                ck_assert_msg(t == done, "token %" PRIu64 " where %" PRIu64 " is oldest",
                              t, done);
                ck_assert_uint_eq(len, want_len[done]);
                done++;
            }
        }
        ck_assert_msg(!vq.corrupt, "corrupt: %s", vq.corrupt ? vq.corrupt : "");
        ck_assert(!guest_vq_has_used(&vq));
        ck_assert_uint_eq(done, next);
        ck_assert_uint_eq(guest_vq_num_free(&vq), num);
        ck_assert_uint_eq(guest_vq_in_flight(&vq), 0);
    }
    close(vq.kick_fd);
}

START_TEST(test_split_batched)
{
    run_in_order(false, 8, false, true, false);
}
END_TEST

START_TEST(test_split_batched_indirect_burst)
{
    run_in_order(false, 16, true, true, true);
}
END_TEST

START_TEST(test_split_every_entry)
{
    run_in_order(false, 8, false, false, false);
}
END_TEST

START_TEST(test_packed_batched)
{
    run_in_order(true, 7, false, true, false);
}
END_TEST

START_TEST(test_packed_batched_indirect_burst)
{
    run_in_order(true, 16, true, true, true);
}
END_TEST

START_TEST(test_packed_every_entry)
{
    run_in_order(true, 7, false, false, false);
}
END_TEST

/*
 * The driver state in guest RAM carries a batch half handed out: a
 * driver attached to it afresh (after a migration) hands out the rest.
 */
static void run_attach_mid_batch(bool packed)
{
    GuestVirtqueue vq, vq2;
    IoDev d;
    GuestSg in = { BUF_GPA, 64 };
    IoBuf b[4];
    uint64_t t;
    uint32_t len;

    io_setup(&vq, &d, packed, 8, false, false);
    for (unsigned i = 0; i < 4; i++) {
        ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 10 + i));
    }
    guest_vq_kick(&vq);
    for (unsigned i = 0; i < 4; i++) {
        ck_assert(io_take(&d, &b[i]));
    }
    io_complete(&d, b, 4, true);
    ck_assert(guest_vq_get_used(&vq, &t, &len));
    ck_assert_uint_eq(t, 10);
    ck_assert(guest_vq_attach(&vq2, mem, STATE_GPA));
    for (unsigned i = 1; i < 4; i++) {
        ck_assert(guest_vq_has_used(&vq2));
        ck_assert(guest_vq_get_used(&vq2, &t, &len));
        ck_assert_uint_eq(t, 10 + i);
        ck_assert_uint_eq(len, i == 3 ? 64 : 0);
    }
    ck_assert(!guest_vq_get_used(&vq2, &t, &len));
    ck_assert(!vq2.corrupt);
    ck_assert_uint_eq(guest_vq_num_free(&vq2), 8);
    close(vq.kick_fd);
}

START_TEST(test_split_attach_mid_batch)
{
    run_attach_mid_batch(false);
}
END_TEST

START_TEST(test_packed_attach_mid_batch)
{
    run_attach_mid_batch(true);
}
END_TEST

/*
 * A used entry naming a buffer not in flight, or (split) a batch longer
 * than the used index moved, stops the queue: nothing is handed out.
 */
static void run_bad_batch(bool packed, bool short_idx)
{
    GuestVirtqueue vq;
    IoDev d;
    GuestSg in = { BUF_GPA, 64 };
    IoBuf b[3];
    uint64_t t;
    uint32_t len;

    io_setup(&vq, &d, packed, 8, false, false);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, i));
        guest_vq_kick(&vq);
        ck_assert(io_take(&d, &b[i]));
    }
    if (short_idx) {
        /* Names the third buffer, but moves the used index by two. */
        io_complete(&d, b, 2, true);
        VringUsedElem e = { .id = b[2].id, .len = 64 };
        ck_assert(guest_memory_write(mem, USED_GPA + 4, &e, sizeof(e)));
    } else {
        /* Names a descriptor past the ones in flight. */
        b[0].id = 5;
        io_complete(&d, b, 1, true);
    }
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    ck_assert_str_eq(vq.corrupt, "used.id");
    ck_assert(!guest_vq_add(&vq, NULL, 0, &in, 1, 9));
    close(vq.kick_fd);
}

START_TEST(test_split_bad_batch)
{
    run_bad_batch(false, false);
    teardown();
    setup();
    run_bad_batch(false, true);
}
END_TEST

START_TEST(test_packed_bad_batch)
{
    run_bad_batch(true, false);
}
END_TEST

/* Once a request is queued the ring order is set: too late to switch. */
START_TEST(test_set_in_order_only_when_idle)
{
    GuestVirtqueue vq;
    GuestSg in = { BUF_GPA, 64 };

    ck_assert(guest_vq_init(&vq, mem, 8, DESC_GPA, AVAIL_GPA, USED_GPA, 0, STATE_GPA, false));
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 1));
    ck_assert(!guest_vq_set_in_order(&vq));
    ck_assert(guest_vq_init_packed(&vq, mem, 8, DESC_GPA, AVAIL_GPA, USED_GPA, 0, STATE_GPA,
                                   false));
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 1));
    ck_assert(!guest_vq_set_in_order(&vq));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guest-inorder");
    TCase *tc = tcase_create("in-order");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_split_batched);
    tcase_add_test(tc, test_split_batched_indirect_burst);
    tcase_add_test(tc, test_split_every_entry);
    tcase_add_test(tc, test_packed_batched);
    tcase_add_test(tc, test_packed_batched_indirect_burst);
    tcase_add_test(tc, test_packed_every_entry);
    tcase_add_test(tc, test_split_attach_mid_batch);
    tcase_add_test(tc, test_packed_attach_mid_batch);
    tcase_add_test(tc, test_split_bad_batch);
    tcase_add_test(tc, test_packed_bad_batch);
    tcase_add_test(tc, test_set_in_order_only_when_idle);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
