/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Low-level socket I/O for the chardev: sendmsg/recvmsg with SCM_RIGHTS,
 * a deadline-based poll, and the framed I/O built on them (whole buffers,
 * whole vhost-user messages: header, then payload, fds, one deadline),
 * written once for the front-end socket and the back-end channel.
 *
 * Untrusted input: the peer chooses how many fds it attaches and how it
 * splits its bytes. Every fd that arrives is either handed to the caller
 * or closed here, whatever else goes wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-io.h"
#include "util/vhost-user-error.h"

/* Room for exactly the fds we accept; more sets MSG_CTRUNC. */
typedef union CharIoCmsgBuf {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * CHAR_IO_MAX_FDS)];
} CharIoCmsgBuf;

ssize_t char_io_send(int fd, const void *buf, size_t len,
                     const int *fds, size_t nfds)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    CharIoCmsgBuf control;
    ssize_t ret;

    if (nfds > CHAR_IO_MAX_FDS || (nfds && !fds)) {
        return -EINVAL;
    }
    if (nfds) {
        struct cmsghdr *cmsg;

        if (!len) {
            /* A stream socket cannot carry fds without a byte. */
            return -EINVAL;
        }
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }

    do {
        ret = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    return ret;
}

static void char_io_take_fds(struct cmsghdr *cmsg, int *fds, size_t max_fds,
                             size_t *nfds, size_t *ndropped)
{
    size_t payload = cmsg->cmsg_len - CMSG_LEN(0);
    size_t n = payload / sizeof(int);
    const unsigned char *data = CMSG_DATA(cmsg);

    for (size_t i = 0; i < n; i++) {
        int rfd;

        /* CMSG_DATA may be unaligned for int: copy, don't cast. */
        memcpy(&rfd, data + i * sizeof(int), sizeof(int));
        if (rfd < 0) {
            continue;
        }
        if (fds && *nfds < max_fds) {
            fds[(*nfds)++] = rfd;
        } else {
            close(rfd);
            (*ndropped)++;
        }
    }
}

/*
 * One recvmsg; block: wait in it (a blocking fd, for up to its
 * SO_RCVTIMEO, after which -EAGAIN), and return -EINTR rather than
 * restart it, so the caller checks its deadline again.
 */
static ssize_t char_io_recv_flags(int fd, void *buf, size_t len, int *fds, size_t max_fds,
                                  size_t *nfds, size_t *ndropped, bool *ctrunc, bool block)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    CharIoCmsgBuf control;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    struct cmsghdr *cmsg;
    ssize_t ret;

    do {
        ret = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
    } while (ret < 0 && errno == EINTR && !block);
    if (ret < 0) {
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }

    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
            cmsg->cmsg_len >= CMSG_LEN(0)) {
            char_io_take_fds(cmsg, fds, max_fds, nfds, ndropped);
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        *ctrunc = true;
    }
    return ret;
}

ssize_t char_io_recv(int fd, void *buf, size_t len,
                     int *fds, size_t max_fds, size_t *nfds,
                     size_t *ndropped, bool *ctrunc)
{
    return char_io_recv_flags(fd, buf, len, fds, max_fds, nfds, ndropped, ctrunc, false);
}

int64_t char_io_deadline(int timeout_ms)
{
    if (timeout_ms < 0) {
        return -1;
    }
    return g_get_monotonic_time() + (int64_t)timeout_ms * G_TIME_SPAN_MILLISECOND;
}

int char_io_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = events };
        int timeout = -1;
        int ret;

        if (deadline >= 0) {
            int64_t left = deadline - g_get_monotonic_time();

            if (left <= 0) {
                timeout = 0;
            } else {
                /* Round up: waking early would spin until the deadline. */
                int64_t ms = (left + G_TIME_SPAN_MILLISECOND - 1) /
                             G_TIME_SPAN_MILLISECOND;
                timeout = ms > INT_MAX ? INT_MAX : (int)ms;
            }
        }
        ret = poll(&pfd, 1, timeout);
        if (ret < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (ret > 0) {
            return pfd.revents;
        }
        if (deadline >= 0 && g_get_monotonic_time() >= deadline) {
            return 0;
        }
    }
}

int char_io_set_nonblocking(int fd, bool nonblocking)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0) {
        return -errno;
    }
    flags = nonblocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (fcntl(fd, F_SETFL, flags) < 0) {
        return -errno;
    }
    return 0;
}

int char_io_set_blocking_slice(int fd, int slice_ms)
{
    struct timeval tv = {
        .tv_sec = slice_ms / 1000,
        .tv_usec = (slice_ms % 1000) * 1000,
    };
    int ret;

    if (slice_ms <= 0) {
        return -EINVAL;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
        return -errno;
    }
    ret = char_io_set_nonblocking(fd, false);
    if (ret < 0) {
        (void)char_io_set_nonblocking(fd, true);
    }
    return ret;
}

void char_io_close_fds(int *fds, size_t n)
{
    if (!fds) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

/* ---- Framed I/O ------------------------------------------------------- */

CharIoStatus char_io_read_full(int fd, void *buf, size_t len, int *fds, size_t max_fds,
                               int64_t deadline, CharIoXfer *x)
{
    x->done = 0;
    x->err = 0;
    while (x->done < len) {
        /*
         * Wait in recvmsg only while a whole slice fits before the
         * deadline: the last stretch is a poll, so the deadline holds.
         */
        bool block = x->block_ms > 0 &&
                     (deadline < 0 || deadline - g_get_monotonic_time() >
                                      (int64_t)x->block_ms * G_TIME_SPAN_MILLISECOND);
        ssize_t r = char_io_recv_flags(fd, (uint8_t *)buf + x->done, len - x->done, fds,
                                       max_fds, &x->nfds, &x->ndropped, &x->ctrunc, block);

        if (r > 0) {
            x->done += (size_t)r;
            continue;
        }
        if (r == 0) {
            return CHAR_IO_EOF;
        }
        if (block && (r == -EAGAIN || r == -EINTR)) {
            continue;           /* a slice passed, or a signal: check the deadline */
        }
        if (r == -EAGAIN) {
            int rev = char_io_wait(fd, POLLIN, deadline);

            if (rev > 0 && !(rev & POLLNVAL)) {
                continue;       /* data, EOF or an error: recv tells */
            }
            if (rev == 0) {
                return CHAR_IO_TIMEOUT;
            }
            r = rev < 0 ? rev : -EBADF;
        }
        x->err = (int)-r;
        return CHAR_IO_FAILED;
    }
    return CHAR_IO_OK;
}

CharIoStatus char_io_write_full(int fd, const void *buf, size_t len, const int *fds,
                                size_t nfds, int64_t deadline, CharIoXfer *x)
{
    x->done = 0;
    x->err = 0;
    while (x->done < len) {
        /* The fds ride on the first byte only. */
        ssize_t r = char_io_send(fd, (const uint8_t *)buf + x->done, len - x->done,
                                 x->done ? NULL : fds, x->done ? 0 : nfds);

        if (r > 0) {
            x->done += (size_t)r;
            continue;
        }
        if (r == -EAGAIN) {
            int rev = char_io_wait(fd, POLLOUT, deadline);

            if (rev == 0) {
                return CHAR_IO_TIMEOUT;
            }
            if (rev > 0 && !(rev & POLLNVAL)) {
                continue;       /* POLLOUT, or POLLERR/HUP which the next send reports */
            }
            r = rev < 0 ? rev : -EBADF;
        }
        x->err = r < 0 ? (int)-r : EIO;
        return CHAR_IO_FAILED;
    }
    return CHAR_IO_OK;
}

/* The size check every message header passes, then the caller's. */
static bool char_io_accept_header(const VhostUserHeader *hdr, CharIoHeaderCheck check,
                                  void *opaque, GError **errp)
{
    if (hdr->size > VHOST_USER_MAX_PAYLOAD_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "size %" PRIu32 " exceeds the maximum payload size %d",
                    hdr->size, VHOST_USER_MAX_PAYLOAD_SIZE);
        return false;
    }
    return !check || check(hdr, opaque, errp);
}

CharIoStatus char_io_read_msg(int fd, VhostUserMsg *msg, int *fds, size_t max_fds,
                              int64_t deadline, CharIoHeaderCheck check, void *opaque,
                              CharIoXfer *x, bool *in_payload, GError **errp)
{
    CharIoStatus st;

    *in_payload = false;
    st = char_io_read_full(fd, &msg->hdr, sizeof(msg->hdr), fds, max_fds, deadline, x);
    if (st != CHAR_IO_OK) {
        return st;
    }
    /* Nothing of the payload is read before the header is accepted. */
    if (!char_io_accept_header(&msg->hdr, check, opaque, errp)) {
        return CHAR_IO_REFUSED;
    }
    *in_payload = true;
    if (msg->hdr.size == 0) {
        x->done = 0;
        return CHAR_IO_OK;
    }
    return char_io_read_full(fd, &msg->payload, msg->hdr.size, fds, max_fds, deadline, x);
}

CharIoStatus char_io_read_msg_step(int fd, CharIoMsgReader *r, CharIoHeaderCheck check,
                                   void *opaque, bool *in_payload, GError **errp)
{
    const size_t hdr_size = sizeof(r->msg.hdr);

    r->x.err = 0;
    for (;;) {
        size_t want = r->have < hdr_size ? hdr_size : hdr_size + r->msg.hdr.size;
        ssize_t n;

        *in_payload = r->have >= hdr_size;
        r->x.done = *in_payload ? r->have - hdr_size : r->have;
        if (r->have == want) {
            return CHAR_IO_OK;
        }
        n = char_io_recv(fd, (uint8_t *)&r->msg + r->have, want - r->have, r->fds,
                         CHAR_IO_MAX_FDS, &r->x.nfds, &r->x.ndropped, &r->x.ctrunc);
        if (n == -EAGAIN) {
            return CHAR_IO_AGAIN;
        }
        if (n == 0) {
            return CHAR_IO_EOF;
        }
        if (n < 0) {
            r->x.err = (int)-n;
            return CHAR_IO_FAILED;
        }
        r->have += (size_t)n;
        /* Nothing of the payload is read before the header is accepted. */
        if (r->have == hdr_size &&
            !char_io_accept_header(&r->msg.hdr, check, opaque, errp)) {
            *in_payload = false;
            return CHAR_IO_REFUSED;
        }
    }
}

void char_io_msg_reader_reset(CharIoMsgReader *r)
{
    char_io_close_fds(r->fds, r->x.nfds);
    r->have = 0;
    r->x = (CharIoXfer){ 0 };
    memset(&r->msg.hdr, 0, sizeof(r->msg.hdr));
}

CharIoStatus char_io_write_msg(int fd, const VhostUserMsg *msg, const int *fds,
                               size_t nfds, int64_t deadline, CharIoXfer *x)
{
    return char_io_write_full(fd, msg, sizeof(msg->hdr) + msg->hdr.size, fds, nfds,
                              deadline, x);
}
