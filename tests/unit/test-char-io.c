/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the incremental message reader (char_io_read_msg_step),
 * which the back-end channel uses so that half a message never makes the
 * event loop wait: the peer is the other end of a socketpair, driven by
 * the test one piece at a time.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-io.h"
#include "util/vhost-user-error.h"

static int sv[2];               /* sv[0]: the reader's end (non-blocking) */

static void setup(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(char_io_set_nonblocking(sv[0], true), 0);
}

static void teardown(void)
{
    close(sv[0]);
    if (sv[1] >= 0) {
        close(sv[1]);
    }
}

static void put(const void *buf, size_t len, int fd)
{
    ck_assert_int_eq(char_io_send(sv[1], buf, len, fd >= 0 ? &fd : NULL, fd >= 0),
                     (ssize_t)len);
}

/* Bytes queued on fd, not read yet. */
static int ioctl_pending(int fd, int *n)
{
    return ioctl(fd, FIONREAD, n);
}

static CharIoStatus step(CharIoMsgReader *r, bool *in_payload, GError **errp)
{
    return char_io_read_msg_step(sv[0], r, NULL, NULL, in_payload, errp);
}

/* A message built of the pieces header 5+7, payload 3+5, with an fd on byte 0. */
START_TEST(test_pieces)
{
    VhostUserMsg m = { .hdr = { .request = 4, .flags = 1, .size = 8 } };
    VhostUserHeader next = { .request = 5, .flags = 1, .size = 0 };
    CharIoMsgReader r = { 0 };
    const uint8_t *b = (const uint8_t *)&m;
    bool in_payload;
    int efd = eventfd(0, EFD_CLOEXEC);
    uint64_t v = 1;

    m.payload.u64 = 0x1122334455667788ull;
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_AGAIN);
    put(b, 5, efd);
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_AGAIN);
    ck_assert(!in_payload);
    ck_assert_uint_eq(r.x.nfds, 1);
    put(b + 5, 7, -1);
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_AGAIN);
    ck_assert(in_payload);
    put(b + 12, 3, -1);
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_AGAIN);
    ck_assert_uint_eq(r.x.done, 3);
    /* The rest, and the next message with its own fd, in one go. */
    put(b + 15, 5, -1);
    put(&next, sizeof(next), efd);
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_OK);
    ck_assert_uint_eq(r.msg.hdr.request, 4);
    ck_assert_uint_eq(r.msg.payload.u64, 0x1122334455667788ull);
    /* Only the first message's fd: the next one's rides on a byte not read. */
    ck_assert_uint_eq(r.x.nfds, 1);
    ck_assert_int_eq(write(r.fds[0], &v, sizeof(v)), sizeof(v));
    char_io_msg_reader_reset(&r);
    ck_assert_uint_eq(r.x.nfds, 0);

    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_OK);
    ck_assert_uint_eq(r.msg.hdr.request, 5);
    ck_assert_uint_eq(r.x.nfds, 1);
    char_io_msg_reader_reset(&r);
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_AGAIN);
    close(efd);
}
END_TEST

static bool refuse_above_8(const VhostUserHeader *hdr, void *opaque, GError **errp)
{
    (*(int *)opaque)++;
    if (hdr->size > 8) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED, "size %u", hdr->size);
        return false;
    }
    return true;
}

/* The header is judged once, when whole, before any payload byte is read. */
START_TEST(test_refused)
{
    VhostUserHeader h = { .request = 4, .flags = 1, .size = 64 };
    VhostUserHeader huge = { .request = 4, .flags = 1, .size = 0x10000 };
    CharIoMsgReader r = { 0 };
    uint8_t junk[64] = { 0 };
    GError *err = NULL;
    bool in_payload;
    int calls = 0;
    int pending = 0;

    put(&h, 6, -1);
    ck_assert_int_eq(char_io_read_msg_step(sv[0], &r, refuse_above_8, &calls,
                                           &in_payload, &err), CHAR_IO_AGAIN);
    ck_assert_int_eq(calls, 0);
    put((uint8_t *)&h + 6, 6, -1);
    put(junk, sizeof(junk), -1);
    ck_assert_int_eq(char_io_read_msg_step(sv[0], &r, refuse_above_8, &calls,
                                           &in_payload, &err), CHAR_IO_REFUSED);
    ck_assert_int_eq(calls, 1);
    ck_assert(!in_payload);
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED));
    g_clear_error(&err);
    /* Not a byte of the payload was taken. */
    ck_assert_int_eq(ioctl_pending(sv[0], &pending), 0);
    ck_assert_int_eq(pending, (int)sizeof(junk));
    char_io_msg_reader_reset(&r);

    /* Beyond the protocol's limit, no check is even asked. */
    ck_assert_int_eq(recv(sv[0], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    put(&huge, sizeof(huge), -1);
    ck_assert_int_eq(char_io_read_msg_step(sv[0], &r, refuse_above_8, &calls,
                                           &in_payload, &err), CHAR_IO_REFUSED);
    ck_assert_int_eq(calls, 1);
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED));
    g_clear_error(&err);
    char_io_msg_reader_reset(&r);
}
END_TEST

/* EOF between messages, mid-header and mid-payload; fds held are closed on reset. */
START_TEST(test_eof)
{
    VhostUserHeader h = { .request = 4, .flags = 1, .size = 8 };
    CharIoMsgReader r = { 0 };
    bool in_payload;
    int efd = eventfd(0, EFD_CLOEXEC);
    int kept;

    put(&h, sizeof(h), efd);
    put("abc", 3, -1);
    close(sv[1]);
    sv[1] = -1;
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_EOF);
    ck_assert(in_payload);
    ck_assert_uint_eq(r.x.done, 3);
    ck_assert_uint_eq(r.x.nfds, 1);
    kept = r.fds[0];
    char_io_msg_reader_reset(&r);
    /* The reader's copy is closed: the fd number is free again. */
    ck_assert_int_eq(fcntl(kept, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(step(&r, &in_payload, NULL), CHAR_IO_EOF);
    ck_assert(!in_payload);
    ck_assert_uint_eq(r.x.done, 0);
    close(efd);
}
END_TEST

/* ---- Waiting in recvmsg (CharIoXfer.block_ms) ------------------------ */

#define SLICE_MS 50

static void setup_blocking(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv),
                     0);
    ck_assert_int_eq(char_io_set_blocking_slice(sv[0], SLICE_MS), 0);
}

/* The fd is blocking with a receive timeout of one slice. */
START_TEST(test_blocking_slice_set)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);

    ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, &len), 0);
    /* The kernel keeps it in jiffies: a few ms more is the same slice. */
    ck_assert_int_ge(tv.tv_sec * 1000 + tv.tv_usec / 1000, SLICE_MS);
    ck_assert_int_le(tv.tv_sec * 1000 + tv.tv_usec / 1000, SLICE_MS + 20);
    ck_assert_int_eq(char_io_set_blocking_slice(sv[0], 0), -EINVAL);
}
END_TEST

static gpointer late_writer(gpointer opaque)
{
    VhostUserMsg *m = opaque;

    g_usleep(3 * SLICE_MS * 1000 / 2);
    put(m, sizeof(m->hdr) + m->hdr.size, -1);
    return NULL;
}

/* A message that comes after more than a slice is read whole. */
START_TEST(test_blocking_late_reply)
{
    VhostUserMsg m = { .hdr = { .request = 1, .flags = 5, .size = 8 } }, got;
    CharIoXfer x = { .block_ms = SLICE_MS };
    GThread *t;
    bool in_payload;

    m.payload.u64 = 0x1122334455667788ull;
    t = g_thread_new("late", late_writer, &m);
    ck_assert_int_eq(char_io_read_msg(sv[0], &got, NULL, 0, char_io_deadline(5000), NULL,
                                      NULL, &x, &in_payload, NULL), CHAR_IO_OK);
    g_thread_join(t);
    ck_assert_uint_eq(got.hdr.size, 8);
    ck_assert_uint_eq(got.payload.u64, m.payload.u64);
}
END_TEST

/*
 * Nothing comes: the deadline holds whether it is longer than a slice
 * (slices, then a poll for the rest) or shorter (a poll only).
 */
START_TEST(test_blocking_deadline)
{
    static const int waits_ms[] = { 3 * SLICE_MS + SLICE_MS / 2, SLICE_MS / 5 };

    for (size_t i = 0; i < G_N_ELEMENTS(waits_ms); i++) {
        CharIoXfer x = { .block_ms = SLICE_MS };
        VhostUserHeader h;
        gint64 t0 = g_get_monotonic_time(), took;

        ck_assert_int_eq(char_io_read_full(sv[0], &h, sizeof(h), NULL, 0,
                                           char_io_deadline(waits_ms[i]), &x),
                         CHAR_IO_TIMEOUT);
        took = (g_get_monotonic_time() - t0) / 1000;
        ck_assert_msg(took >= waits_ms[i] && took < waits_ms[i] + 1000,
                      "deadline %d ms, took %" G_GINT64_FORMAT " ms", waits_ms[i], took);
        ck_assert_uint_eq(x.done, 0);
    }
}
END_TEST

static Suite *char_io_suite(void)
{
    Suite *s = suite_create("char-io");
    TCase *tc = tcase_create("msg-step");
    TCase *tb = tcase_create("blocking-slice");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pieces);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_eof);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(tb, setup_blocking, teardown);
    tcase_add_test(tb, test_blocking_slice_set);
    tcase_add_test(tb, test_blocking_late_reply);
    tcase_add_test(tb, test_blocking_deadline);
    suite_add_tcase(s, tb);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(char_io_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
