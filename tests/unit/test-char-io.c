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

static Suite *char_io_suite(void)
{
    Suite *s = suite_create("char-io");
    TCase *tc = tcase_create("msg-step");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pieces);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_eof);
    suite_add_tcase(s, tc);
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
