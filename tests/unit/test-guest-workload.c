/* SPDX-License-Identifier: BSD-3-Clause */
/* Data patterns and workload statistics of the guest driver. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guest/pattern.h"
#include "guest/stats.h"

START_TEST(test_pattern_roundtrip)
{
    uint8_t buf[4096];
    PatternMismatch mm;

    for (size_t len = 32; len <= sizeof(buf); len += 333) {
        pattern_fill(buf, len, 7, 3, 99);
        ck_assert(pattern_check(buf, len, 7, 3, 99, &mm));
    }
}
END_TEST

/*
 * Every single-byte corruption, at every offset of lengths around the word
 * and tail boundaries, is named at its exact offset.
 */
START_TEST(test_pattern_first_bad_byte)
{
    static const size_t lens[] = { 32, 33, 39, 40, 41, 47, 64, 67, 200, 1518 };
    uint8_t buf[1518];
    PatternMismatch mm;

    for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
        size_t len = lens[i];
        pattern_fill(buf, len, 5, 2, 11);
        for (size_t off = 32; off < len; off++) {
            buf[off] ^= 0x40;
            ck_assert(!pattern_check(buf, len, 5, 2, 11, &mm));
            ck_assert_uint_eq(mm.offset, off);
            ck_assert(mm.header_ok);
            /* A second bad byte later in the buffer does not move it. */
            buf[len - 1] ^= off + 1 < len ? 0x01 : 0;
            ck_assert(!pattern_check(buf, len, 5, 2, 11, &mm));
            ck_assert_uint_eq(mm.offset, off);
            buf[len - 1] ^= off + 1 < len ? 0x01 : 0;
            buf[off] ^= 0x40;
            ck_assert(pattern_check(buf, len, 5, 2, 11, &mm));
        }
    }
}
END_TEST

/*
 * verify=sample: the header and 8 words of the full pattern, the last one
 * (partial or not) included; nothing else is written, so a frame costs
 * the same at 64 and 1518 bytes. A full fill passes the sample check; a
 * flipped byte in a sampled word, a truncated frame and a foreign one
 * fail it.
 */
START_TEST(test_pattern_sample)
{
    static const size_t lens[] = { 32, 33, 40, 50, 64, 100, 1504, 9004 };
    uint8_t buf[9004], full[9004];
    PatternMismatch mm;

    for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
        size_t len = lens[i], written = 0, sampled = 0;

        memset(buf, 0xa5, sizeof(buf));
        pattern_fill_sample(buf, len, 9, 4, 3);
        pattern_fill(full, len, 9, 4, 3);
        for (size_t off = 0; off < len; off++) {
            if (buf[off] != 0xa5) {
                written++;
                ck_assert_msg(buf[off] == full[off], "len %zu: byte %zu is not the "
                              "full pattern's", len, off);
            }
        }
        for (size_t off = len; off < sizeof(buf); off++) {
            ck_assert_uint_eq(buf[off], 0xa5);
        }
        ck_assert_uint_le(written, 32 + 8 * PATTERN_SAMPLE_WORDS);
        ck_assert(pattern_check_sample(buf, len, 9, 4, 3, &mm));
        ck_assert(pattern_check_sample(full, len, 9, 4, 3, &mm));
        ck_assert(!pattern_check_sample(buf, len, 10, 4, 3, &mm));
        ck_assert(mm.header_ok);
        ck_assert_uint_eq(mm.found_id, 9);
        /* The last byte is always sampled; so is the first after the header. */
        if (len > 32) {
            full[len - 1] ^= 0x08;
            ck_assert(!pattern_check_sample(full, len, 9, 4, 3, &mm));
            ck_assert_uint_eq(mm.offset, len - 1);
            full[len - 1] ^= 0x08;
            full[32] ^= 0x80;
            ck_assert(!pattern_check_sample(full, len, 9, 4, 3, &mm));
            ck_assert_uint_eq(mm.offset, 32);
            full[32] ^= 0x80;
        }
        /* Every byte the sample wrote is checked by it. */
        for (size_t off = 32; off < len; off++) {
            if (buf[off] == 0xa5) {
                continue;
            }
            sampled++;
            buf[off] ^= 0xff;
            ck_assert(!pattern_check_sample(buf, len, 9, 4, 3, &mm));
            ck_assert_uint_eq(mm.offset, off);
            buf[off] ^= 0xff;
        }
        ck_assert_uint_eq(sampled, written - 32);
        /* One byte shorter: the header's length says so. */
        if (len > 32) {
            ck_assert(!pattern_check_sample(buf, len - 1, 9, 4, 3, &mm));
        }
    }
}
END_TEST

START_TEST(test_pattern_tells_mismatches_apart)
{
    uint8_t buf[512];
    PatternMismatch mm;

    pattern_fill(buf, sizeof(buf), 7, 3, 99);
    /* Another block's data: header names the block it came from. */
    ck_assert(!pattern_check(buf, sizeof(buf), 8, 3, 99, &mm));
    ck_assert(mm.header_ok);
    ck_assert_uint_eq(mm.found_id, 7);
    /* A stale generation. */
    ck_assert(!pattern_check(buf, sizeof(buf), 7, 4, 99, &mm));
    ck_assert_uint_eq(mm.found_generation, 3);
    /* One flipped byte in the body is found at its offset. */
    buf[300] ^= 1;
    ck_assert(!pattern_check(buf, sizeof(buf), 7, 3, 99, &mm));
    ck_assert_uint_eq(mm.offset, 300);
    /* Zeroes are no pattern; and are recognised as zeroes. */
    memset(buf, 0, sizeof(buf));
    ck_assert(!pattern_check(buf, sizeof(buf), 7, 3, 99, &mm));
    ck_assert(!mm.header_ok);
    ck_assert(pattern_is_zero(buf, sizeof(buf), NULL));
    buf[17] = 1;
    size_t off = 0;
    ck_assert(!pattern_is_zero(buf, sizeof(buf), &off));
    ck_assert_uint_eq(off, 17);
}
END_TEST

START_TEST(test_stats_percentiles)
{
    WorkloadStats s;

    wl_stats_init(&s);
    /* 1..10000 us: percentiles within the histogram's 1/64 resolution. */
    for (uint64_t i = 1; i <= 10000; i++) {
        wl_stats_record(&s, i * 1000, 4096);
    }
    s.end_ns = s.start_ns + 2000000000ull;
    ck_assert_uint_eq(s.ops, 10000);
    ck_assert_uint_eq(s.bytes, 10000 * 4096ull);
    double p50 = (double)wl_stats_percentile(&s, 50);
    double p99 = (double)wl_stats_percentile(&s, 99);
    ck_assert_double_eq_tol(p50, 5000000.0, 5000000.0 / 50);
    ck_assert_double_eq_tol(p99, 9900000.0, 9900000.0 / 50);
    ck_assert_uint_eq(wl_stats_percentile(&s, 100), 10000000);
    ck_assert_uint_eq(wl_stats_percentile(&s, 0), 1000);
    /* Small values are exact. */
    WorkloadStats t;
    wl_stats_init(&t);
    wl_stats_record(&t, 5, 0);
    wl_stats_record(&t, 7, 0);
    ck_assert_uint_eq(wl_stats_percentile(&t, 50), 5);
    ck_assert_uint_eq(wl_stats_percentile(&t, 100), 7);
    wl_stats_merge(&s, &t);
    ck_assert_uint_eq(s.ops, 10002);
    ck_assert_uint_eq(s.lat_min_ns, 5);
}
END_TEST

START_TEST(test_stats_output)
{
    WorkloadStats s;

    wl_stats_init(&s);
    wl_stats_record(&s, 20000, 4096);
    s.end_ns = s.start_ns + 1000000000ull;
    g_autofree char *json = wl_stats_json(&s, "blk0", true);
    ck_assert_msg(strstr(json, "\"device\":\"blk0\",\"ops\":1,\"bytes\":4096,") != NULL, "%s", json);
    ck_assert(strstr(json, "\"verified\":true}") != NULL);
    ck_assert(strstr(json, "\"p50\":20.000") != NULL);
    ck_assert(strchr(json, '\n') == NULL);
    g_autofree char *txt = wl_stats_summary(&s, "blk0", false);
    ck_assert_msg(strstr(txt, "blk0: 1 ops") == txt, "%s", txt);
    ck_assert(strstr(txt, "NOT verified") != NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guest-workload");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_pattern_roundtrip);
    tcase_add_test(tc, test_pattern_tells_mismatches_apart);
    tcase_add_test(tc, test_pattern_first_bad_byte);
    tcase_add_test(tc, test_pattern_sample);
    tcase_add_test(tc, test_stats_percentiles);
    tcase_add_test(tc, test_stats_output);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
