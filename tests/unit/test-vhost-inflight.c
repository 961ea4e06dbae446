/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The checks on a back-end's inflight area before it is kept: bounds on
 * the size for the rings asked about, page-aligned offset, an fd that is
 * a file at least offset + size long; every rejected fd closed, every
 * accepted one kept (never mapped: the back-end could shrink the file
 * under us), and freed without a trace.
 */
#include <check.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "hw/virtio/vhost-inflight.h"
#include "util/vhost-user-error.h"
#include "unit-sock.h"

#define NQ 2
#define QS 256

static int memfd_of(uint64_t size)
{
    int fd = memfd_create("vubtest-inflight", MFD_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

START_TEST(test_bounds)
{
    /* The split layout: 16-byte header and 16 bytes a descriptor, per queue. */
    ck_assert_uint_eq(vhost_inflight_min_size(NQ, QS), NQ * (16 + 16 * QS));
    ck_assert_uint_ge(vhost_inflight_max_size(NQ, QS), NQ * (32 + 32 * QS));
    /* DPDK's and libvhost-user's 64-byte-aligned queue regions fit. */
    ck_assert_uint_ge(vhost_inflight_max_size(NQ, QS),
                      NQ * ((16 + 16 * QS + 63) / 64 * 64));
}
END_TEST

START_TEST(test_map_good)
{
    uint64_t size = vhost_inflight_min_size(NQ, QS);
    long page = sysconf(_SC_PAGESIZE);
    unsigned fds = ut_count_fds();
    unsigned maps = ut_count_maps("memfd:vubtest-inflight");
    struct vhost_inflight in;
    GError *err = NULL;
    int fd = memfd_of((uint64_t)page + size);

    vhost_inflight_init(&in);
    ck_assert_int_eq(in.fd, -1);
    ck_assert(vhost_inflight_take(&in, "blk0", fd, size, (uint64_t)page, NQ, QS, &err));
    ck_assert_ptr_null(err);
    ck_assert_int_eq(in.fd, fd);
    ck_assert_uint_eq(in.size, size);
    ck_assert_uint_eq(in.offset, (uint64_t)page);
    ck_assert_uint_eq(in.num_queues, NQ);
    ck_assert_uint_eq(in.queue_size, QS);
    /* Kept, not mapped: a back-end shrinking it later cannot SIGBUS us. */
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest-inflight"), maps);

    vhost_inflight_free(&in);
    ck_assert_int_eq(in.fd, -1);
    ck_assert(!fd_is_open(fd));
    vhost_inflight_free(&in);   /* twice is fine */
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

typedef struct BadCase {
    const char *what;
    uint64_t file_size;         /* 0: a pipe, not a file */
    uint64_t size;
    uint64_t offset;
    const char *error;
} BadCase;

START_TEST(test_map_bad)
{
    uint64_t min = vhost_inflight_min_size(NQ, QS);
    uint64_t max = vhost_inflight_max_size(NQ, QS);
    long page = sysconf(_SC_PAGESIZE);
    const BadCase cases[] = {
        { "too small", min, min - 1, 0, "is outside" },
        { "too large", max + 1, max + 1, 0, "is outside" },
        { "unaligned offset", 2 * min, min, 8, "not page aligned" },
        { "past the end", min - 16, min, 0, "past the end of the fd" },
        { "offset past the end", min, min, (uint64_t)page * 16, "past the end" },
        { "not a file", 0, min, 0, "not a shared memory file" },
    };
    unsigned fds = ut_count_fds();

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const BadCase *c = &cases[i];
        struct vhost_inflight in;
        GError *err = NULL;
        int pipefd[2] = { -1, -1 };
        int fd;

        if (c->file_size) {
            fd = memfd_of(c->file_size);
        } else {
            ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
            fd = pipefd[0];
        }
        vhost_inflight_init(&in);
        ck_assert_msg(!vhost_inflight_take(&in, "blk0", fd, c->size, c->offset, NQ, QS,
                                           &err), "%s accepted", c->what);
        ck_assert_ptr_nonnull(err);
        ck_assert(g_error_matches(err, VHOST_USER_ERROR,
                                  VHOST_USER_ERROR_INVALID_MESSAGE));
        ck_assert_msg(strstr(err->message, "blk0: GET_INFLIGHT_FD") &&
                      strstr(err->message, c->error), "%s: %s", c->what, err->message);
        /* The fd was the back-end's: rejected means closed, never kept. */
        ck_assert_msg(!fd_is_open(fd), "%s: fd left open", c->what);
        ck_assert_int_eq(in.fd, -1);
        g_error_free(err);
        if (pipefd[1] >= 0) {
            close(pipefd[1]);
        }
    }
    {
        struct vhost_inflight in;
        GError *err = NULL;

        vhost_inflight_init(&in);
        ck_assert(!vhost_inflight_take(&in, "blk0", -1, min, 0, NQ, QS, &err));
        ck_assert_ptr_nonnull(strstr(err->message, "no fd"));
        g_error_free(err);
    }
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

static Suite *inflight_suite(void)
{
    Suite *s = suite_create("vhost-inflight");
    TCase *tc = tcase_create("map");

    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_map_good);
    tcase_add_test(tc, test_map_bad);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(inflight_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
