/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue driver against a minimal device model written here: the
 * device walks avail entries (direct chains and indirect tables), writes a
 * pattern into device-writable buffers and returns them on the used ring.
 */
#include <check.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "guest/virtio-guest.h"
#include "guest/virtqueue.h"
#include "unit-ram.h"

#define RAM_SIZE    (4u << 20)
#define NUM         8
#define DESC_GPA    0x10000
#define AVAIL_GPA   0x11000
#define USED_GPA    0x12000
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

/* The device side: the avail index it has consumed up to. */
typedef struct Dev {
    uint16_t last_avail;
    unsigned walked_desc;       /* descriptors visited, for assertions */
} Dev;

static VringDesc dev_desc(uint64_t gpa)
{
    VringDesc d;
    ck_assert(guest_memory_read(mem, gpa, &d, sizeof(d)));
    return d;
}

/* Completes up to max requests; returns how many. */
static unsigned dev_process(Dev *dev, unsigned max)
{
    uint16_t avail_idx, used_idx;
    unsigned done = 0;

    ck_assert(guest_memory_read(mem, AVAIL_GPA + 2, &avail_idx, 2));
    ck_assert(guest_memory_read(mem, USED_GPA + 2, &used_idx, 2));
    while (dev->last_avail != avail_idx && done < max) {
        uint16_t head;
        uint32_t written = 0;
        ck_assert(guest_memory_read(mem, AVAIL_GPA + 4 + 2 * (dev->last_avail % NUM), &head, 2));
        ck_assert_uint_lt(head, NUM);
        VringDesc d = dev_desc(DESC_GPA + 16ull * head);
        uint64_t table = 0;
        unsigned idx = head, n = 0;
        if (d.flags & VRING_DESC_F_INDIRECT) {
            table = d.addr;
            ck_assert_uint_eq(d.len % 16, 0);
            idx = 0;
            d = dev_desc(table);
        }
        for (;;) {
            dev->walked_desc++;
            ck_assert_uint_lt(++n, 64);
            if (d.flags & VRING_DESC_F_WRITE) {
                g_autofree uint8_t *fill = g_malloc(d.len);
                memset(fill, 0xab, d.len);
                ck_assert(guest_memory_write(mem, d.addr, fill, d.len));
                written += d.len;
            }
            if (!(d.flags & VRING_DESC_F_NEXT)) {
                break;
            }
            idx = d.next;
            d = dev_desc(table ? table + 16ull * idx : DESC_GPA + 16ull * idx);
        }
        VringUsedElem e = { .id = head, .len = written };
        ck_assert(guest_memory_write(mem, USED_GPA + 4 + 8 * (used_idx % NUM), &e, sizeof(e)));
        used_idx++;
        ck_assert(guest_memory_write(mem, USED_GPA + 2, &used_idx, 2));
        dev->last_avail++;
        done++;
    }
    return done;
}

static void vq_setup(GuestVirtqueue *vq, bool indirect, bool event_idx)
{
    ck_assert(guest_vq_init(vq, mem, NUM, DESC_GPA, AVAIL_GPA, USED_GPA,
                            indirect ? IND_GPA : 0, STATE_GPA, event_idx));
    vq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(vq->kick_fd, 0);
}

static uint64_t drain(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        return 0;
    }
    return v;
}

START_TEST(test_single_buffer)
{
    GuestVirtqueue vq;
    Dev dev = { 0 };
    uint64_t token;
    uint32_t len;
    GuestSg in = { BUF_GPA, 512 };

    vq_setup(&vq, false, false);
    ck_assert(!guest_vq_get_used(&vq, &token, &len));
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 42));
    ck_assert_uint_eq(guest_vq_num_free(&vq), NUM - 1);
    ck_assert(guest_vq_kick(&vq));
    ck_assert_uint_eq(drain(vq.kick_fd), 1);
    ck_assert_uint_eq(dev_process(&dev, 100), 1);
    ck_assert(guest_vq_get_used(&vq, &token, &len));
    ck_assert_uint_eq(token, 42);
    ck_assert_uint_eq(len, 512);
    ck_assert_uint_eq(guest_vq_num_free(&vq), NUM);
    ck_assert(!guest_vq_get_used(&vq, &token, &len));
    close(vq.kick_fd);
}
END_TEST

START_TEST(test_chains_fill_and_wrap)
{
    GuestVirtqueue vq;
    Dev dev = { 0 };
    GuestSg out = { BUF_GPA, 16 }, in[2] = { { BUF_GPA + 4096, 100 }, { BUF_GPA + 8192, 1 } };
    uint64_t seen[64] = { 0 };
    uint64_t next_token = 0;

    vq_setup(&vq, false, false);
    /* 3 descriptors each: two fit in 8, the third does not. */
    ck_assert(guest_vq_add(&vq, &out, 1, in, 2, next_token++));
    ck_assert(guest_vq_add(&vq, &out, 1, in, 2, next_token++));
    ck_assert(!guest_vq_add(&vq, &out, 1, in, 2, 99));
    ck_assert_uint_eq(guest_vq_num_free(&vq), 2);
    ck_assert_uint_eq(guest_vq_in_flight(&vq), 2);
    /* Run many rounds so the indices wrap the ring several times. */
    for (int round = 0; round < 20; round++) {
        uint64_t t;
        uint32_t len;
        guest_vq_kick(&vq);
        dev_process(&dev, 1);
        while (guest_vq_get_used(&vq, &t, &len)) {
            ck_assert_uint_eq(len, 101);
            ck_assert_uint_lt(t, 64);
            seen[t]++;
        }
        while (next_token < 40 && guest_vq_add(&vq, &out, 1, in, 2, next_token)) {
            next_token++;
        }
    }
    guest_vq_kick(&vq);
    dev_process(&dev, 100);
    {
        uint64_t t;
        uint32_t len;
        while (guest_vq_get_used(&vq, &t, &len)) {
            seen[t]++;
        }
    }
    for (uint64_t t = 0; t < next_token; t++) {
        ck_assert_msg(seen[t] == 1, "token %" PRIu64 " completed %" PRIu64 " times", t, seen[t]);
    }
    ck_assert_uint_eq(guest_vq_num_free(&vq), NUM);
    close(vq.kick_fd);
}
END_TEST

START_TEST(test_indirect_uses_one_slot)
{
    GuestVirtqueue vq;
    Dev dev = { 0 };
    GuestSg out = { BUF_GPA, 16 }, in[2] = { { BUF_GPA + 4096, 100 }, { BUF_GPA + 8192, 1 } };
    uint64_t t;
    uint32_t len;

    vq_setup(&vq, true, false);
    for (int i = 0; i < NUM; i++) {
        ck_assert(guest_vq_add(&vq, &out, 1, in, 2, i));
    }
    ck_assert_uint_eq(guest_vq_num_free(&vq), 0);
    ck_assert(!guest_vq_add(&vq, &out, 1, in, 2, 99));
    guest_vq_kick(&vq);
    ck_assert_uint_eq(dev_process(&dev, 100), NUM);
    ck_assert_uint_eq(dev.walked_desc, 3 * NUM);
    for (int i = 0; i < NUM; i++) {
        ck_assert(guest_vq_get_used(&vq, &t, &len));
        ck_assert_uint_eq(t, i);
        ck_assert_uint_eq(len, 101);
    }
    ck_assert_uint_eq(guest_vq_num_free(&vq), NUM);
    close(vq.kick_fd);
}
END_TEST

START_TEST(test_event_idx_suppresses_kicks)
{
    GuestVirtqueue vq;
    GuestSg in = { BUF_GPA, 64 };
    uint16_t ev;

    vq_setup(&vq, false, true);
    /* The device wants to hear when avail idx moves past 2. */
    ev = 2;
    ck_assert(guest_memory_write(mem, USED_GPA + 4 + 8 * NUM, &ev, 2));
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 0));
    ck_assert(!guest_vq_kick(&vq));         /* idx 1: not past 2 */
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 1));
    ck_assert(!guest_vq_kick(&vq));         /* idx 2 */
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 2));
    ck_assert(guest_vq_kick(&vq));          /* idx 3: crossed */
    ck_assert_uint_eq(drain(vq.kick_fd), 1);
    ck_assert_uint_eq(vq.kicks_suppressed, 2);
    close(vq.kick_fd);
}
END_TEST

static uint16_t read_used_event(void)
{
    uint16_t ev;
    ck_assert(guest_memory_read(mem, AVAIL_GPA + 4 + 2 * NUM, &ev, 2));
    return ev;
}

/*
 * EVENT_IDX: used_event stays put while callbacks are off (moving it would
 * re-arm the device's interrupt on every reaped entry), follows the
 * consumer while they are on, and is brought up to date on re-enabling.
 */
START_TEST(test_used_event_only_with_callbacks)
{
    GuestVirtqueue vq;
    GuestSg in = { BUF_GPA, 64 };
    Dev dev = { 0 };
    uint16_t ev0 = 0xbeef;
    uint64_t t;
    uint32_t len;

    vq_setup(&vq, false, true);
    ck_assert(guest_memory_write(mem, AVAIL_GPA + 4 + 2 * NUM, &ev0, 2));
    for (unsigned i = 0; i < 4; i++) {
        ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, i));
    }
    guest_vq_kick(&vq);
    ck_assert_uint_eq(dev_process(&dev, 4), 4);

    guest_vq_disable_cb(&vq);
    ck_assert(guest_vq_get_used(&vq, &t, &len));
    ck_assert(guest_vq_get_used(&vq, &t, &len));
    ck_assert_uint_eq(read_used_event(), ev0);

    /* Re-enabling publishes what was consumed, and reports the rest. */
    ck_assert(guest_vq_enable_cb(&vq));
    ck_assert_uint_eq(read_used_event(), 2);
    ck_assert(guest_vq_get_used(&vq, &t, &len));
    ck_assert_uint_eq(read_used_event(), 3);
    ck_assert(guest_vq_get_used(&vq, &t, &len));
    ck_assert_uint_eq(read_used_event(), 4);
    ck_assert(!guest_vq_enable_cb(&vq));
    close(vq.kick_fd);
}
END_TEST

START_TEST(test_no_notify_flag)
{
    GuestVirtqueue vq;
    GuestSg in = { BUF_GPA, 64 };
    uint16_t flags = VRING_USED_F_NO_NOTIFY;

    vq_setup(&vq, false, false);
    ck_assert(guest_memory_write(mem, USED_GPA, &flags, 2));
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 0));
    ck_assert(!guest_vq_kick(&vq));
    flags = 0;
    ck_assert(guest_memory_write(mem, USED_GPA, &flags, 2));
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 1));
    ck_assert(guest_vq_kick(&vq));
    close(vq.kick_fd);
}
END_TEST

START_TEST(test_bad_used_id_refused)
{
    GuestVirtqueue vq;
    GuestSg in = { BUF_GPA, 64 };
    VringUsedElem e = { .id = NUM + 3, .len = 1 };
    uint16_t idx = 1;
    uint64_t t;
    uint32_t len;

    vq_setup(&vq, false, false);
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 7));
    guest_vq_kick(&vq);
    ck_assert(guest_memory_write(mem, USED_GPA + 4, &e, sizeof(e)));
    ck_assert(guest_memory_write(mem, USED_GPA + 2, &idx, 2));
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    /* An id in range that holds no request is refused too. */
    e.id = 5;
    ck_assert(guest_memory_write(mem, USED_GPA + 4, &e, sizeof(e)));
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    ck_assert_uint_eq(guest_vq_num_free(&vq), NUM - 1);
    ck_assert_str_eq(vq.corrupt, "used.id");
    close(vq.kick_fd);
}
END_TEST

/* The message the driver fails the device with names the field. */
/*
 * Completions in bursts: in order, at most max, only what the used index
 * covers, descriptors given back; a bad entry ends the burst after the
 * good ones before it.
 */
START_TEST(test_used_burst)
{
    GuestVirtqueue vq;
    GuestSg in = { BUF_GPA, 64 };
    GuestVqUsed used[8];
    Dev dev = { 0 };
    VringUsedElem bad = { .id = NUM + 1, .len = 1 };
    uint16_t idx;

    vq_setup(&vq, false, true);
    ck_assert_uint_eq(guest_vq_get_used_burst(&vq, used, 8), 0);
    for (unsigned i = 0; i < 6; i++) {
        ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 100 + i));
    }
    guest_vq_kick(&vq);
    ck_assert_uint_eq(dev_process(&dev, 5), 5);
    ck_assert_uint_eq(guest_vq_get_used_burst(&vq, used, 3), 3);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(used[i].token, 100 + i);
        ck_assert_uint_eq(used[i].len, 64);
    }
    ck_assert_uint_eq(guest_vq_num_free(&vq), NUM - 3);
    ck_assert_uint_eq(guest_vq_get_used_burst(&vq, used, 8), 2);
    ck_assert_uint_eq(used[0].token, 103);
    ck_assert_uint_eq(used[1].token, 104);
    ck_assert_uint_eq(guest_vq_get_used_burst(&vq, used, 8), 0);
    ck_assert_uint_eq(guest_vq_num_free(&vq), NUM - 1);

    /* Two good completions, then one naming no descriptor. */
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 106));
    guest_vq_kick(&vq);
    ck_assert_uint_eq(dev_process(&dev, 2), 2);
    ck_assert(guest_memory_read(mem, USED_GPA + 2, &idx, 2));
    ck_assert(guest_memory_write(mem, USED_GPA + 4 + 8 * (idx % NUM), &bad, sizeof(bad)));
    idx++;
    ck_assert(guest_memory_write(mem, USED_GPA + 2, &idx, 2));
    ck_assert_uint_eq(guest_vq_get_used_burst(&vq, used, 8), 2);
    ck_assert_uint_eq(used[0].token, 105);
    ck_assert_uint_eq(used[1].token, 106);
    ck_assert_str_eq(vq.corrupt, "used.id");
    ck_assert_uint_eq(guest_vq_get_used_burst(&vq, used, 8), 0);
    close(vq.kick_fd);
}
END_TEST

static void assert_corrupt(GuestVirtqueue *vq, const char *field)
{
    g_autofree char *msg = guest_vq_corruption(vq, "dev0", 0);
    g_autofree char *want = g_strdup_printf("device state in RAM corrupted: dev0: queue 0: "
                                            "%s ", field);

    ck_assert_msg(vq->corrupt && !strcmp(vq->corrupt, field), "corrupt: %s, want %s",
                  vq->corrupt ? vq->corrupt : "(none)", field);
    ck_assert_msg(msg && g_str_has_prefix(msg, want), "%s", msg ? msg : "(none)");
    close(vq->kick_fd);
}

/*
 * The ring's bookkeeping in guest RAM, as a back-end may rewrite it: each
 * value is refused before it indexes anything, and the queue stays stopped.
 */
START_TEST(test_corrupt_state_refused)
{
    GuestVirtqueue vq;
    Dev dev = { 0 };
    GuestSg three[3] = { { BUF_GPA, 16 }, { BUF_GPA + 64, 64 }, { BUF_GPA + 256, 1 } };
    uint16_t idx;
    uint64_t t;
    uint32_t len;

    vq_setup(&vq, false, false);
    ck_assert_ptr_null(guest_vq_corruption(&vq, "dev0", 0));
    vq.st->free_head = 0xffff;
    ck_assert(!guest_vq_add(&vq, three, 1, NULL, 0, 1));
    /* Stopped: a sound value later does not bring it back. */
    vq.st->free_head = 0;
    ck_assert(!guest_vq_add(&vq, three, 1, NULL, 0, 1));
    assert_corrupt(&vq, "free_head");

    vq_setup(&vq, false, false);
    vq.st->num_free = 0xffff;
    ck_assert(!guest_vq_add(&vq, three, 1, NULL, 0, 1));
    assert_corrupt(&vq, "num_free");

    vq_setup(&vq, false, false);
    vq.st->avail_idx += 100;
    ck_assert(!guest_vq_add(&vq, three, 1, NULL, 0, 1));
    assert_corrupt(&vq, "avail_idx - last_used_idx");

    /* The free list, linked through the descriptors, walked by a chain. */
    vq_setup(&vq, false, false);
    vq.desc[1].next = 0xffff;
    ck_assert(!guest_vq_add(&vq, three, 2, &three[2], 1, 1));
    assert_corrupt(&vq, "desc.next");

    /* A completed chain whose links were rewritten while it was out. */
    vq_setup(&vq, false, false);
    memset(&dev, 0, sizeof(dev));
    ck_assert(guest_vq_add(&vq, three, 2, &three[2], 1, 1));
    guest_vq_kick(&vq);
    ck_assert_uint_eq(dev_process(&dev, 1), 1);
    vq.desc[0].next = 0x8000;
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    assert_corrupt(&vq, "desc.next");

    vq_setup(&vq, false, false);
    memset(&dev, 0, sizeof(dev));
    ck_assert(guest_vq_add(&vq, three, 2, &three[2], 1, 1));
    guest_vq_kick(&vq);
    ck_assert_uint_eq(dev_process(&dev, 1), 1);
    vq.ndesc[0] = 0xffff;
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    assert_corrupt(&vq, "ndesc");

    vq_setup(&vq, false, false);
    memset(&dev, 0, sizeof(dev));
    ck_assert(guest_vq_add(&vq, three, 1, NULL, 0, 1));
    guest_vq_kick(&vq);
    ck_assert_uint_eq(dev_process(&dev, 1), 1);
    vq.st->num_free = NUM;
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    assert_corrupt(&vq, "num_free");

    /* The device's index more than a ring ahead of what we consumed. */
    vq_setup(&vq, false, false);
    ck_assert(guest_vq_add(&vq, three, 1, NULL, 0, 1));
    guest_vq_kick(&vq);
    idx = NUM + 1;
    ck_assert(guest_memory_write(mem, USED_GPA + 2, &idx, 2));
    ck_assert(!guest_vq_get_used(&vq, &t, &len));
    assert_corrupt(&vq, "used.idx - last_used_idx");
}
END_TEST

START_TEST(test_attach_continues_from_ram)
{
    GuestVirtqueue vq, vq2;
    Dev dev = { 0 };
    GuestSg in = { BUF_GPA, 64 };
    uint64_t t;
    uint32_t len;

    vq_setup(&vq, true, true);
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 11));
    ck_assert(guest_vq_add(&vq, NULL, 0, &in, 1, 12));
    guest_vq_kick(&vq);
    close(vq.kick_fd);
    /* A new driver instance finds everything it needs in guest RAM. */
    ck_assert(guest_vq_attach(&vq2, mem, STATE_GPA));
    ck_assert_uint_eq(guest_vq_in_flight(&vq2), 2);
    dev_process(&dev, 100);
    ck_assert(guest_vq_get_used(&vq2, &t, &len));
    ck_assert_uint_eq(t, 11);
    ck_assert(guest_vq_get_used(&vq2, &t, &len));
    ck_assert_uint_eq(t, 12);
    ck_assert_uint_eq(guest_vq_num_free(&vq2), NUM);
    /* Garbage where the state should be is refused. */
    ck_assert(!guest_vq_attach(&vq2, mem, STATE_GPA + 4096));
}
END_TEST

/* The guest's directory, as a back-end may have rewritten it, is checked. */
START_TEST(test_directory_record_checked)
{
    GError *err = NULL;
    GuestDirEntry e = { .magic = GUEST_DIR_MAGIC, .device_id = 2, .nvqs = 2,
                        .id = "blk0", .features = 1ull << 32,
                        .area_gpa = 0x200000, .area_size = 0x100000,
                        .vqs_gpa = 0x180000 };
    GuestDirEntry out;
    GuestDirEntry *dir;

    ck_assert(guest_alloc_init(mem, &err));
    dir = guest_memory_gpa_to_hva(mem, GUEST_DIR_GPA, sizeof(*dir) * GUEST_DIR_MAX);
    ck_assert(!guest_dir_find(mem, "blk0", &out, &err));
    ck_assert_msg(strstr(err->message, "blk0: no record"), "%s", err->message);
    g_clear_error(&err);
    dir[3] = e;
    ck_assert(guest_dir_find(mem, "blk0", &out, &err));
    ck_assert_uint_eq(out.area_gpa, 0x200000);
    /* Queue states or the area outside RAM, an id without its NUL. */
    dir[3].vqs_gpa = RAM_SIZE - 8;
    ck_assert(!guest_dir_find(mem, "blk0", &out, &err));
    ck_assert_msg(strstr(err->message, "blk0: guest directory record: 2 queue states"),
                  "%s", err->message);
    g_clear_error(&err);
    dir[3] = e;
    dir[3].area_size = UINT64_MAX - 0x1000;
    ck_assert(!guest_dir_find(mem, "blk0", &out, &err));
    ck_assert_msg(strstr(err->message, "outside guest RAM"), "%s", err->message);
    g_clear_error(&err);
    dir[3] = e;
    memset(dir[3].id, 'x', sizeof(dir[3].id));
    ck_assert(!guest_dir_find(mem, "blk0", &out, &err));
    g_clear_error(&err);
}
END_TEST

static Suite *virtqueue_suite(void)
{
    Suite *s = suite_create("guest-virtqueue");
    TCase *tc = tcase_create("split");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_single_buffer);
    tcase_add_test(tc, test_chains_fill_and_wrap);
    tcase_add_test(tc, test_indirect_uses_one_slot);
    tcase_add_test(tc, test_event_idx_suppresses_kicks);
    tcase_add_test(tc, test_used_event_only_with_callbacks);
    tcase_add_test(tc, test_no_notify_flag);
    tcase_add_test(tc, test_bad_used_id_refused);
    tcase_add_test(tc, test_used_burst);
    tcase_add_test(tc, test_corrupt_state_refused);
    tcase_add_test(tc, test_attach_continues_from_ram);
    tcase_add_test(tc, test_directory_record_checked);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(virtqueue_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
