/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dirty log's memory and sync: sized for a GPA end, marks collected
 * into the caller's bitmap and cleared, a mark beyond the bitmap left in
 * the log (reported), and the marks of a replaced log carried over.
 */
#include <check.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "hw/virtio/vhost-log.h"

/* What a back-end does: map the fd and OR bits in. */
static uint64_t *map_fd(const VhostLog *log)
{
    void *p = mmap(NULL, log->size, PROT_READ | PROT_WRITE, MAP_SHARED, log->fd, 0);

    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

static void mark(uint64_t *words, uint64_t gpa)
{
    uint64_t page = gpa >> VHOST_LOG_PAGE_SHIFT;

    __atomic_fetch_or(&words[page / 64], 1ull << (page % 64), __ATOMIC_RELEASE);
}

START_TEST(test_size)
{
    VhostLog *log = vhost_log_new("t", 1, NULL);

    /* One word covers 64 pages: 256 KiB. */
    ck_assert_uint_eq(log->size, 8);
    ck_assert_uint_eq(vhost_log_covers(log), 256 << 10);
    vhost_log_free(log);
    log = vhost_log_new("t", (256ull << 20) + 1, NULL);
    ck_assert_uint_eq(log->size, 8 * 1024 + 8);
    vhost_log_free(log);
    ck_assert_ptr_null(vhost_log_new("t", 0, NULL));
}
END_TEST

START_TEST(test_sync_clears)
{
    VhostLog *log = vhost_log_new("t", 64ull << 20, NULL);
    uint64_t *be = map_fd(log);
    uint64_t npages = (64ull << 20) >> VHOST_LOG_PAGE_SHIFT;
    g_autofree uint64_t *bitmap = g_new0(uint64_t, npages / 64);
    bool overflow;

    mark(be, 0);
    mark(be, 0x3f000);
    mark(be, (64ull << 20) - 1);
    bitmap[1] = 1;              /* the caller's own bits stay */
    ck_assert_uint_eq(vhost_log_sync(log, bitmap, npages, &overflow), 3);
    ck_assert(!overflow);
    ck_assert_uint_eq(bitmap[0], 1ull | (1ull << 63));
    ck_assert_uint_eq(bitmap[1], 1);
    ck_assert_uint_eq(bitmap[npages / 64 - 1], 1ull << 63);
    for (uint64_t i = 0; i < log->nwords; i++) {
        ck_assert_uint_eq(be[i], 0);
    }
    ck_assert_uint_eq(vhost_log_sync(log, bitmap, npages, &overflow), 0);
    munmap(be, log->size);
    vhost_log_free(log);
}
END_TEST

START_TEST(test_sync_overflow_kept)
{
    VhostLog *log = vhost_log_new("t", 1ull << 20, NULL);   /* 256 pages */
    uint64_t *be = map_fd(log);
    uint64_t bitmap[2] = { 0, 0 };
    bool overflow;

    mark(be, 0x1000);
    mark(be, 100 << 12);        /* beyond a 70-page bitmap, in its last word */
    mark(be, 200 << 12);        /* beyond it altogether */
    ck_assert_uint_eq(vhost_log_sync(log, bitmap, 70, &overflow), 1);
    ck_assert(overflow);
    ck_assert_uint_eq(bitmap[0], 2);
    ck_assert_uint_eq(bitmap[1], 0);
    ck_assert_uint_eq(be[1], 1ull << (100 - 64));
    ck_assert_uint_eq(be[3], 1ull << (200 - 192));
    munmap(be, log->size);
    vhost_log_free(log);
}
END_TEST

START_TEST(test_move)
{
    VhostLog *old = vhost_log_new("t", 1ull << 20, NULL);
    VhostLog *log = vhost_log_new("t", 4ull << 20, NULL);
    uint64_t *be = map_fd(old);

    mark(be, 0x5000);
    mark(be, (1ull << 20) - 1);
    log->words[0] = 1;
    vhost_log_move(log, old);
    ck_assert_uint_eq(log->words[0], 1 | (1ull << 5));
    ck_assert_uint_eq(log->words[3], 1ull << 63);
    ck_assert_uint_eq(be[0], 0);
    ck_assert_uint_eq(be[3], 0);
    munmap(be, old->size);
    vhost_log_free(old);
    vhost_log_free(log);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("vhost-log");
    TCase *tc = tcase_create("log");

    tcase_add_test(tc, test_size);
    tcase_add_test(tc, test_sync_clears);
    tcase_add_test(tc, test_sync_overflow_kept);
    tcase_add_test(tc, test_move);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
