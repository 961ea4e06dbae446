/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unix-socket chardev, its I/O on the connection (char-socket.c owns the
 * connection itself: connect, listen, reconnect, events): whole buffers
 * and whole vhost-user messages with SCM_RIGHTS, over char-io.c's framed
 * transfers, with their failures reported as the chardev's errors.
 * A failed write drops the connection (not for a caller's bad arguments,
 * nor in char_socket_write_all_keep's peer-gone case); a failed read
 * never does: the protocol layer decides.
 *
 * Untrusted input: the back-end chooses how many fds it attaches and how
 * it splits or cuts short its bytes. Every fd received is either handed
 * to the caller or closed here, whatever else goes wrong.
 *
 * Threads: the protocol layer may run these from another thread than the
 * loop's (see char-socket.c); the connection's fd is read under the
 * chardev's lock (char_socket_fd, char_socket_read_fd), never held across
 * the blocking transfer.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "chardev/char-io.h"
#include "chardev/char-socket-int.h"
#include "chardev/char-socket.h"
#include "util/vhost-user-error.h"

/* Fails the current I/O: sets errp and drops the connection. */
static bool char_socket_io_fail(CharSocket *chr, int code, GError **errp,
                                const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static bool char_socket_io_fail(CharSocket *chr, int code, GError **errp,
                                const char *fmt, ...)
{
    g_autofree char *what = NULL;
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    msg = g_strdup_printf("chardev %s: %s", char_socket_id(chr), what);
    char_socket_disconnect(chr, what);
    g_set_error_literal(errp, VHOST_USER_ERROR, code, msg);
    return false;
}

static bool char_socket_write(CharSocket *chr, const void *buf, size_t len,
                              const int *fds, size_t nfds, bool *peer_gone,
                              GError **errp)
{
    CharIoXfer x = { 0 };
    int fd = char_socket_fd(chr);

    if (fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "chardev %s: not connected", char_socket_id(chr));
        return false;
    }
    if (nfds > CHAR_SOCKET_MAX_FDS || (nfds && (!fds || !len))) {
        /* A caller bug, not the peer's fault: keep the connection. */
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "chardev %s: cannot send %zu fds with %zu bytes (at most %d, "
                    "at least one byte)", char_socket_id(chr), nfds, len,
                    CHAR_SOCKET_MAX_FDS);
        return false;
    }
    switch (char_io_write_full(fd, buf, len, fds, nfds,
                               char_io_deadline(char_socket_timeout_ms(chr)), &x)) {
    case CHAR_IO_OK:
        return true;
    case CHAR_IO_TIMEOUT:
        char_socket_note_stall(chr, char_socket_timeout_ms(chr));
        return char_socket_io_fail(chr, VHOST_USER_ERROR_TIMEOUT, errp,
                                   "write timed out after %d ms (%zu of %zu bytes sent)",
                                   char_socket_timeout_ms(chr), x.done, len);
    default:
        break;
    }
    if (peer_gone && (x.err == EPIPE || x.err == ECONNRESET)) {
        /* Left up: what the peer sent before it went is still to be read. */
        *peer_gone = true;
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "chardev %s: write failed: %s", char_socket_id(chr),
                    g_strerror(x.err));
        return false;
    }
    if (x.err == EPIPE || x.err == ECONNRESET || x.err == EBADF || x.err == ENOTCONN) {
        return char_socket_io_fail(chr, VHOST_USER_ERROR_DISCONNECTED, errp,
                                   "write failed: %s", g_strerror(x.err));
    }
    return char_socket_io_fail(chr, VHOST_USER_ERROR_LOCAL, errp,
                               "write failed: %s", g_strerror(x.err));
}

bool char_socket_write_all(CharSocket *chr, const void *buf, size_t len,
                           const int *fds, size_t nfds, GError **errp)
{
    return char_socket_write(chr, buf, len, fds, nfds, NULL, errp);
}

bool char_socket_write_all_keep(CharSocket *chr, const void *buf, size_t len,
                                const int *fds, size_t nfds, bool *peer_gone,
                                GError **errp)
{
    *peer_gone = false;
    return char_socket_write(chr, buf, len, fds, nfds, peer_gone, errp);
}

/*
 * The error of a failed or short read, as read_all and read_msg report
 * it; NULL when the read is good. Closes the fds on failure.
 */
static char *char_socket_read_error(CharSocket *chr, CharIoStatus st, const CharIoXfer *x,
                                    size_t len, size_t max_fds, int timeout_ms,
                                    int *code)
{
    switch (st) {
    case CHAR_IO_OK:
        break;
    case CHAR_IO_EOF:
        if (x->done) {
            *code = VHOST_USER_ERROR_PARTIAL_MESSAGE;
            return g_strdup_printf("back-end closed the connection after %zu of %zu "
                                   "bytes", x->done, len);
        }
        *code = VHOST_USER_ERROR_DISCONNECTED;
        return g_strdup("back-end closed the connection");
    case CHAR_IO_TIMEOUT:
        *code = VHOST_USER_ERROR_TIMEOUT;
        return g_strdup_printf("read timed out after %d ms (%zu of %zu bytes received)",
                               timeout_ms, x->done, len);
    default:
        *code = (x->err == ECONNRESET || x->err == EBADF || x->err == ENOTCONN)
                ? VHOST_USER_ERROR_DISCONNECTED : VHOST_USER_ERROR_LOCAL;
        return g_strdup_printf("read failed after %zu of %zu bytes: %s", x->done, len,
                               g_strerror(x->err));
    }
    if (x->ctrunc || x->ndropped) {
        *code = VHOST_USER_ERROR_WRONG_FDS;
        return g_strdup_printf("more than %d fds received with one message",
                               CHAR_SOCKET_MAX_FDS);
    }
    if (x->nfds > max_fds) {
        *code = VHOST_USER_ERROR_WRONG_FDS;
        return g_strdup_printf("%zu fds received, %zu expected at most", x->nfds, max_fds);
    }
    return NULL;
}

/*
 * Ends a read: hands the fds received to the caller (room for *nfds,
 * at most CHAR_SOCKET_MAX_FDS), or on any failure closes them all and
 * sets errp.
 */
static bool char_socket_read_done(CharSocket *chr, CharIoStatus st, const CharIoXfer *x,
                                  size_t len, int timeout_ms, int *got_fds, int *fds,
                                  size_t max_fds, size_t *nfds, GError **errp)
{
    g_autofree char *why = NULL;
    int code = -1;

    if (st != CHAR_IO_REFUSED) {
        why = char_socket_read_error(chr, st, x, len, max_fds, timeout_ms, &code);
    }
    if (st == CHAR_IO_REFUSED || why) {
        /* The caller owns nothing after a failure. */
        char_io_close_fds(got_fds, x->nfds);
        if (why) {
            g_set_error(errp, VHOST_USER_ERROR, code, "chardev %s: %s",
                        char_socket_id(chr), why);
        }
        return false;
    }
    if (x->nfds) {
        memcpy(fds, got_fds, x->nfds * sizeof(int));
    }
    if (nfds) {
        *nfds = x->nfds;
    }
    return true;
}

bool char_socket_read_all(CharSocket *chr, void *buf, size_t len,
                          int *fds, size_t *nfds, int timeout_ms, GError **errp)
{
    int got_fds[CHAR_SOCKET_MAX_FDS];
    size_t max_fds = fds && nfds ? MIN(*nfds, (size_t)CHAR_SOCKET_MAX_FDS) : 0;
    CharIoXfer x = { 0 };
    CharIoStatus st;
    int fd = char_socket_read_fd(chr, nfds, &x, errp);

    if (fd < 0) {
        return false;
    }
    if (timeout_ms < 0) {
        timeout_ms = char_socket_timeout_ms(chr);
    }
    /*
     * Take up to CHAR_SOCKET_MAX_FDS whatever the caller's room: the
     * excess is detected and closed, after the bytes are consumed.
     */
    st = char_io_read_full(fd, buf, len, got_fds, CHAR_SOCKET_MAX_FDS,
                           char_io_deadline(timeout_ms), &x);
    return char_socket_read_done(chr, st, &x, len, timeout_ms, got_fds, fds, max_fds,
                                 nfds, errp);
}

bool char_socket_read_msg(CharSocket *chr, VhostUserMsg *msg, int *fds, size_t *nfds,
                          CharIoHeaderCheck check, void *opaque, GError **errp)
{
    return char_socket_read_msg_until(chr, msg, fds, nfds, check, opaque,
                                      char_io_deadline(char_socket_timeout_ms(chr)), NULL,
                                      errp);
}

bool char_socket_read_msg_until(CharSocket *chr, VhostUserMsg *msg, int *fds,
                                size_t *nfds, CharIoHeaderCheck check, void *opaque,
                                int64_t deadline, size_t *received, GError **errp)
{
    int got_fds[CHAR_SOCKET_MAX_FDS];
    size_t max_fds = fds && nfds ? MIN(*nfds, (size_t)CHAR_SOCKET_MAX_FDS) : 0;
    CharIoXfer x = { 0 };
    CharIoStatus st;
    bool in_payload;
    int64_t start = g_get_monotonic_time();
    int waited_ms;
    int fd = char_socket_read_fd(chr, nfds, &x, errp);

    if (fd < 0) {
        return false;
    }
    st = char_io_read_msg(fd, msg, got_fds, CHAR_SOCKET_MAX_FDS, deadline, check, opaque,
                          &x, &in_payload, errp);
    waited_ms = (int)MIN((g_get_monotonic_time() - start) / G_TIME_SPAN_MILLISECOND,
                         (int64_t)G_MAXINT);
    if (received) {
        *received = in_payload ? sizeof(msg->hdr) + x.done : x.done;
    }
    return char_socket_read_done(chr, st, &x,
                                 in_payload ? msg->hdr.size : sizeof(msg->hdr),
                                 waited_ms, got_fds, fds, max_fds, nfds, errp);
}
