/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed ring resume points (hw/virtio/vhost-packed.c): the 32-bit
 * SET_VRING_BASE / GET_VRING_BASE encoding with wrap counters, the check
 * of a back-end's reply, and the walk of used descriptors in guest RAM
 * that finds where a lost back-end stopped, across wraps.
 */
#include <check.h>
#include <string.h>

#include "hw/virtio/vhost-packed.h"
#include "hw/virtio/virtio-ring-defs.h"
#include "unit-ram.h"

#define RAM_SIZE    (1u << 20)
#define DESC_GPA    0x1000
#define NUM         8

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

START_TEST(test_encoding)
{
    uint32_t b = vhost_packed_base_make(5 | VHOST_PACKED_WRAP, 3);

    ck_assert_uint_eq(b, 0x00038005u);
    ck_assert_uint_eq(vhost_packed_base_avail(b), 0x8005);
    ck_assert_uint_eq(vhost_packed_base_used(b), 3);
    /* A fresh ring: both indices 0, both wrap counters 1. */
    ck_assert_uint_eq(VHOST_PACKED_BASE_INITIAL,
                      vhost_packed_base_make(VHOST_PACKED_WRAP, VHOST_PACKED_WRAP));
}
END_TEST

START_TEST(test_check)
{
    const char *why = NULL;
    uint32_t out = 0;

    ck_assert(vhost_packed_base_check(0x80038005u, NUM, &out, &why));
    ck_assert_uint_eq(out, 0x80038005u);
    /* The avail half only (DPDK 22.11): the used half is taken equal. */
    ck_assert(vhost_packed_base_check(0x00000006u, NUM, &out, &why));
    ck_assert_uint_eq(out, 0x00060006u);
    ck_assert(vhost_packed_base_check(0x00008007u, NUM, &out, &why));
    ck_assert_uint_eq(out, 0x80078007u);
    /* Indices at or past the ring size are refused, whichever half. */
    ck_assert(!vhost_packed_base_check(0x80008008u, NUM, &out, &why));
    ck_assert_ptr_nonnull(strstr(why, "avail index"));
    ck_assert(!vhost_packed_base_check(0x80088001u, NUM, &out, &why));
    ck_assert_ptr_nonnull(strstr(why, "used index"));
    ck_assert(!vhost_packed_base_check(0x7fff7fffu, NUM, &out, &why));
    /* The largest ring takes the largest index. */
    ck_assert(vhost_packed_base_check(0xffffffffu, 32768, &out, &why));
    ck_assert_uint_eq(out, 0xffffffffu);
}
END_TEST

/* Writes slot pos's flags as the driver (avail) or the device (used) would. */
static void put_flags(unsigned pos, unsigned wrap, bool used)
{
    /* Available: AVAIL = wrap, USED = !wrap. Used: both = wrap. */
    uint16_t f = wrap ? VRING_PACKED_DESC_F_AVAIL : 0;

    if (used ? wrap : !wrap) {
        f |= VRING_PACKED_DESC_F_USED;
    }
    ck_assert(guest_memory_write(mem, DESC_GPA + 16ull * pos + 14, &f, 2));
}

START_TEST(test_from_ram_fresh)
{
    unsigned pending = 99;
    uint32_t b;

    /* Zeroed ring: nothing available, nothing used in lap 1. */
    b = vhost_packed_base_from_ram(mem, DESC_GPA, NUM, VHOST_PACKED_BASE_INITIAL, &pending);
    ck_assert_uint_eq(b, VHOST_PACKED_BASE_INITIAL);
    ck_assert_uint_eq(pending, 0);
}
END_TEST

START_TEST(test_from_ram_laps)
{
    unsigned pending;
    uint32_t last = VHOST_PACKED_BASE_INITIAL;
    /* Driver and device positions as free-running counts of slots. */
    unsigned avail = 0, used = 0;

    /*
     * Many laps: each round the driver posts k buffers, the device uses
     * j <= k of them; the walk must land on the device's position with
     * the right wrap counter, and count what is still posted.
     */
    for (unsigned round = 0; round < 200; round++) {
        unsigned k = 1 + round % NUM, j;
        uint32_t b;

        /* Only what fits: the driver never has more than NUM out. */
        while (avail - used + k > NUM) {
            k--;
        }
        for (unsigned i = 0; i < k; i++, avail++) {
            put_flags(avail % NUM, !((avail / NUM) & 1), false);
        }
        j = (round * 7) % (avail - used + 1);
        for (unsigned i = 0; i < j; i++, used++) {
            put_flags(used % NUM, !((used / NUM) & 1), true);
        }
        /* Any number of laps since the last known base: the ring tells. */
        b = vhost_packed_base_from_ram(mem, DESC_GPA, NUM,
                                       round % 2 ? last : VHOST_PACKED_BASE_INITIAL,
                                       &pending);
        ck_assert_uint_eq(vhost_packed_base_used(b) & VHOST_PACKED_IDX_MASK, used % NUM);
        ck_assert_uint_eq(!!(vhost_packed_base_used(b) & VHOST_PACKED_WRAP),
                          !((used / NUM) & 1));
        ck_assert_uint_eq(vhost_packed_base_avail(b), vhost_packed_base_used(b));
        ck_assert_uint_eq(pending, avail - used);
        last = b;
    }
    ck_assert_uint_gt(used / NUM, 10);
}
END_TEST

START_TEST(test_from_ram_bad)
{
    unsigned pending;

    /* A ring outside RAM: the base is kept as it was. */
    ck_assert_uint_eq(vhost_packed_base_from_ram(mem, RAM_SIZE, NUM, 0x80018001u,
                                                 &pending), 0x80018001u);
    /* Every slot marked used in the current lap: the walk stops after one lap. */
    for (unsigned i = 0; i < NUM; i++) {
        put_flags(i, 1, true);
    }
    ck_assert_uint_eq(vhost_packed_base_from_ram(mem, DESC_GPA, NUM,
                                                 VHOST_PACKED_BASE_INITIAL, &pending),
                      0u);
    ck_assert_uint_eq(pending, 0);
}
END_TEST

static Suite *packed_suite(void)
{
    Suite *s = suite_create("vhost-packed");
    TCase *tc = tcase_create("base");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_encoding);
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_from_ram_fresh);
    tcase_add_test(tc, test_from_ram_laps);
    tcase_add_test(tc, test_from_ram_bad);
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
