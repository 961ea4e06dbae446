/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream's byte transport: buffered writes with a bandwidth
 * limit, buffered exact reads with errors that say where the stream ended.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/stream.h"
#include "util/vhost-user-error.h"

#define MIG_STREAM_BUF_SIZE (64 * 1024)
/*
 * How far the writer may run ahead of the limit, and how long a pause
 * resets the budget (a sender idle for a while does not earn a burst).
 */
#define MIG_STREAM_BURST_US (10 * 1000)
#define MIG_STREAM_IDLE_US (100 * 1000)

struct MigStream {
    int fd;
    bool not_socket;            /* a file or pipe: write(), not send() */
    GError *write_err;          /* sticky: a broken socket stays broken */

    uint8_t *wbuf;
    size_t wlen;
    uint64_t written;

    uint8_t *rbuf;
    size_t rpos, rlen;
    uint64_t consumed;

    const char *section;
    uint64_t section_start;

    uint64_t max_bandwidth;
    int64_t limit_start_us;     /* baseline of the budget */
    uint64_t limit_bytes;       /* bytes written since limit_start_us */
};

MigStream *mig_stream_new(int fd)
{
    MigStream *s = g_new0(MigStream, 1);
    int type;
    socklen_t len = sizeof(type);

    s->fd = fd;
    s->not_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 &&
                    errno == ENOTSOCK;
    /*
     * Touched now: the first page a postcopy request sends or receives
     * would otherwise pay these pages' faults (tens of us each in a VM).
     */
    s->wbuf = g_malloc(MIG_STREAM_BUF_SIZE);
    s->rbuf = g_malloc(MIG_STREAM_BUF_SIZE);
    memset(s->wbuf, 0, MIG_STREAM_BUF_SIZE);
    memset(s->rbuf, 0, MIG_STREAM_BUF_SIZE);
    s->section = "header";
    return s;
}

void mig_stream_free(MigStream *s)
{
    if (!s) {
        return;
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    g_clear_error(&s->write_err);
    g_free(s->wbuf);
    g_free(s->rbuf);
    g_free(s);
}

void mig_stream_shutdown(MigStream *s)
{
    /* shutdown(), not close(): the fd number stays the owner's until free. */
    shutdown(s->fd, SHUT_RDWR);
}

bool mig_stream_peer_gone(const MigStream *s)
{
    struct pollfd pfd = { .fd = s->fd, .events = POLLIN | POLLRDHUP };

    return poll(&pfd, 1, 0) != 0;
}

void mig_stream_set_max_bandwidth(MigStream *s, uint64_t bytes_per_sec)
{
    s->max_bandwidth = bytes_per_sec;
    s->limit_start_us = g_get_monotonic_time();
    s->limit_bytes = 0;
}

/* Sleeps until putting len more bytes on the fd keeps within the limit. */
static void mig_stream_throttle(MigStream *s, size_t len)
{
    int64_t now, due;

    if (!s->max_bandwidth) {
        return;
    }
    now = g_get_monotonic_time();
    due = s->limit_start_us +
          (int64_t)((s->limit_bytes * (double)G_USEC_PER_SEC) / s->max_bandwidth);
    if (now - due > MIG_STREAM_IDLE_US) {
        s->limit_start_us = now;
        s->limit_bytes = 0;
        due = now;
    }
    if (due - now > MIG_STREAM_BURST_US) {
        g_usleep(due - now);
    }
    s->limit_bytes += len;
}

/*
 * True when a read or write that returned n should be tried again: it was
 * interrupted, or the fd is non-blocking (the VMM's choice) and not ready.
 */
static bool mig_stream_retry(MigStream *s, ssize_t n, short events)
{
    struct pollfd pfd = { .fd = s->fd, .events = events };

    if (n >= 0 || (errno != EINTR && errno != EAGAIN)) {
        return false;
    }
    if (errno == EAGAIN) {
        poll(&pfd, 1, -1);
    }
    return true;
}

static bool mig_stream_write_fd(MigStream *s, const uint8_t *buf, size_t len,
                                GError **errp)
{
    while (len) {
        /* Chunks, so that the limit is kept within one large write too. */
        size_t chunk = MIN(len, MIG_STREAM_BUF_SIZE);
        ssize_t n;

        mig_stream_throttle(s, chunk);
        /* MSG_NOSIGNAL: a destination that hangs up is an error, not SIGPIPE. */
        n = s->not_socket ? write(s->fd, buf, chunk) :
            send(s->fd, buf, chunk, MSG_NOSIGNAL);
        if (mig_stream_retry(s, n, POLLOUT)) {
            continue;
        }
        if (n <= 0) {
            int err = n < 0 ? errno : EPIPE;

            g_set_error(errp, VHOST_USER_ERROR,
                        err == EPIPE || err == ECONNRESET ?
                        VHOST_USER_ERROR_DISCONNECTED : VHOST_USER_ERROR_LOCAL,
                        "migration stream: write failed after %" PRIu64
                        " bytes: %s", s->written, g_strerror(err));
            return false;
        }
        buf += n;
        len -= n;
        s->written += n;
    }
    return true;
}

static bool mig_stream_check_sticky(MigStream *s, GError **errp)
{
    if (s->write_err) {
        g_propagate_error(errp, g_error_copy(s->write_err));
        return false;
    }
    return true;
}

bool mig_stream_flush(MigStream *s, GError **errp)
{
    size_t len = s->wlen;

    if (!mig_stream_check_sticky(s, errp)) {
        return false;
    }
    s->wlen = 0;
    if (!mig_stream_write_fd(s, s->wbuf, len, &s->write_err)) {
        return mig_stream_check_sticky(s, errp);
    }
    return true;
}

bool mig_stream_write(MigStream *s, const void *buf, size_t len, GError **errp)
{
    if (!mig_stream_check_sticky(s, errp)) {
        return false;
    }
    if (s->wlen + len <= MIG_STREAM_BUF_SIZE) {
        memcpy(s->wbuf + s->wlen, buf, len);
        s->wlen += len;
        return true;
    }
    /* Page data goes to the fd straight from guest memory, not via wbuf. */
    if (!mig_stream_flush(s, errp)) {
        return false;
    }
    if (len < MIG_STREAM_BUF_SIZE) {
        memcpy(s->wbuf, buf, len);
        s->wlen = len;
        return true;
    }
    if (!mig_stream_write_fd(s, buf, len, &s->write_err)) {
        return mig_stream_check_sticky(s, errp);
    }
    return true;
}

bool mig_stream_write_u8(MigStream *s, uint8_t v, GError **errp)
{
    return mig_stream_write(s, &v, 1, errp);
}

bool mig_stream_write_be16(MigStream *s, uint16_t v, GError **errp)
{
    v = GUINT16_TO_BE(v);
    return mig_stream_write(s, &v, sizeof(v), errp);
}

bool mig_stream_write_be32(MigStream *s, uint32_t v, GError **errp)
{
    v = GUINT32_TO_BE(v);
    return mig_stream_write(s, &v, sizeof(v), errp);
}

bool mig_stream_write_be64(MigStream *s, uint64_t v, GError **errp)
{
    v = GUINT64_TO_BE(v);
    return mig_stream_write(s, &v, sizeof(v), errp);
}

static void mig_stream_set_eof_error(MigStream *s, int err, GError **errp)
{
    if (err) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "migration stream: read failed in section '%s' after %"
                    PRIu64 " bytes: %s", s->section,
                    mig_stream_section_offset(s), g_strerror(err));
        return;
    }
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_PARTIAL_MESSAGE,
                "migration stream: unexpected end in section '%s' after %"
                PRIu64 " bytes", s->section, mig_stream_section_offset(s));
}

bool mig_stream_read(MigStream *s, void *buf, size_t len, GError **errp)
{
    uint8_t *out = buf;

    while (len) {
        size_t avail = s->rlen - s->rpos;
        ssize_t n;

        if (avail) {
            size_t take = MIN(avail, len);

            memcpy(out, s->rbuf + s->rpos, take);
            s->rpos += take;
            s->consumed += take;
            out += take;
            len -= take;
            continue;
        }
        /* Large reads (page data) skip the buffer. */
        if (len >= MIG_STREAM_BUF_SIZE) {
            n = read(s->fd, out, len);
        } else {
            n = read(s->fd, s->rbuf, MIG_STREAM_BUF_SIZE);
        }
        if (mig_stream_retry(s, n, POLLIN)) {
            continue;
        }
        if (n <= 0) {
            mig_stream_set_eof_error(s, n < 0 ? errno : 0, errp);
            return false;
        }
        if (len >= MIG_STREAM_BUF_SIZE) {
            s->consumed += n;
            out += n;
            len -= n;
        } else {
            s->rpos = 0;
            s->rlen = n;
        }
    }
    return true;
}

bool mig_stream_read_u8(MigStream *s, uint8_t *v, GError **errp)
{
    return mig_stream_read(s, v, 1, errp);
}

bool mig_stream_read_be16(MigStream *s, uint16_t *v, GError **errp)
{
    if (!mig_stream_read(s, v, sizeof(*v), errp)) {
        return false;
    }
    *v = GUINT16_FROM_BE(*v);
    return true;
}

bool mig_stream_read_be32(MigStream *s, uint32_t *v, GError **errp)
{
    if (!mig_stream_read(s, v, sizeof(*v), errp)) {
        return false;
    }
    *v = GUINT32_FROM_BE(*v);
    return true;
}

bool mig_stream_read_be64(MigStream *s, uint64_t *v, GError **errp)
{
    if (!mig_stream_read(s, v, sizeof(*v), errp)) {
        return false;
    }
    *v = GUINT64_FROM_BE(*v);
    return true;
}

void mig_stream_begin_section(MigStream *s, const char *name)
{
    s->section = name;
    s->section_start = s->consumed;
}

const char *mig_stream_section_name(const MigStream *s)
{
    return s->section;
}

uint64_t mig_stream_section_offset(const MigStream *s)
{
    return s->consumed - s->section_start;
}

uint64_t mig_stream_bytes_written(const MigStream *s)
{
    return s->written + s->wlen;
}

uint64_t mig_stream_bytes_read(const MigStream *s)
{
    return s->consumed;
}
