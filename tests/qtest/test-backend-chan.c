/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The back-end's side of the back-end channel; see test-backend-chan.h.
 *
 * Replies are read with a deadline (SO_RCVTIMEO): a VMM that never
 * answers fails the waiting test instead of hanging it. Every fd that
 * comes with a reply is either handed to the caller or closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "test-backend-chan.h"

struct TbChan {
    int fd;
    unsigned conn;
};

TbChan *tb_chan_open(TestBackend *tb, unsigned conn, unsigned timeout_ms)
{
    TbChan *ch;
    int fd;

    tb_wait_msg(tb, conn, VHOST_USER_SET_BACKEND_REQ_FD, 1, timeout_ms);
    fd = tb_dup_backend_req_fd(tb, conn);
    if (fd < 0) {
        g_error("conn %u: SET_BACKEND_REQ_FD came without a usable fd", conn);
    }
    ch = g_new0(TbChan, 1);
    ch->fd = fd;
    ch->conn = conn;
    return ch;
}

void tb_chan_free(TbChan *ch)
{
    if (ch) {
        close(ch->fd);
        g_free(ch);
    }
}

bool tb_chan_send(TbChan *ch, uint32_t request, uint32_t flags, const void *payload,
                  uint32_t size, const int *fds, size_t nfds)
{
    VhostUserHeader hdr = { .request = request, .flags = flags, .size = size };

    return tb_send(ch->fd, &hdr, payload, size, fds, nfds);
}

/* Reads len bytes before deadline (monotonic µs); fds are collected. */
static bool chan_read(TbChan *ch, void *buf, size_t len, int *fds, size_t *nfds,
                      gint64 deadline, char **why)
{
    gint64 left = MAX(deadline - g_get_monotonic_time(), 1000);
    struct timeval tv = { .tv_sec = left / G_USEC_PER_SEC,
                          .tv_usec = left % G_USEC_PER_SEC };
    int r;

    /* Our copy shares the socket: the test back-end never reads from it. */
    setsockopt(ch->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    r = tb_recv_full(ch->fd, buf, len, fds, nfds, why);
    if (r == 0) {
        *why = g_strdup("the front-end closed the channel");
    }
    return r == 1;
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        close(fds[i]);
    }
}

bool tb_chan_recv_reply(TbChan *ch, uint32_t request, uint64_t *status, int *reply_fd,
                        unsigned timeout_ms, char **why)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int fds[VHOST_USER_MAX_FDS];
    size_t nfds = 0;
    VhostUserHeader hdr;
    uint64_t u64 = 0;

    if (reply_fd) {
        *reply_fd = -1;
    }
    if (!chan_read(ch, &hdr, sizeof(hdr), fds, &nfds, deadline, why)) {
        close_fds(fds, nfds);
        return false;
    }
    if (hdr.request != request ||
        (hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
        !(hdr.flags & VHOST_USER_REPLY_MASK) || hdr.size != sizeof(u64)) {
        *why = g_strdup_printf("reply header request %u flags 0x%x size %u, expected "
                               "request %u with REPLY and an 8-byte status",
                               hdr.request, hdr.flags, hdr.size, request);
        close_fds(fds, nfds);
        return false;
    }
    if (!chan_read(ch, &u64, sizeof(u64), fds, &nfds, deadline, why)) {
        close_fds(fds, nfds);
        return false;
    }
    if (nfds > (reply_fd ? 1u : 0u)) {
        *why = g_strdup_printf("reply carries %zu fds", nfds);
        close_fds(fds, nfds);
        return false;
    }
    if (nfds) {
        *reply_fd = fds[0];
    }
    *status = u64;
    return true;
}

uint64_t tb_chan_call(TbChan *ch, uint32_t request, const void *payload, uint32_t size,
                      const int *fds, size_t nfds, int *reply_fd, unsigned timeout_ms)
{
    const char *name = vhost_user_request_name(VHOST_USER_CHANNEL_BACKEND, request);
    g_autofree char *why = NULL;
    uint64_t status = 0;

    if (!tb_chan_send(ch, request, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
                      payload, size, fds, nfds)) {
        g_error("conn %u: back-end channel: cannot send %s: %s", ch->conn, name,
                g_strerror(errno));
    }
    if (!tb_chan_recv_reply(ch, request, &status, reply_fd, timeout_ms, &why)) {
        g_error("conn %u: back-end channel: %s with NEED_REPLY: %s", ch->conn, name, why);
    }
    return status;
}

bool tb_chan_wait_closed(TbChan *ch, unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
        gint64 left = deadline - g_get_monotonic_time();
        char c;
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int)((left + 999) / 1000)) == 0) {
            return false;
        }
        n = recv(ch->fd, &c, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            return true;
        }
        /* Stray bytes (a late reply) are not a close: keep draining. */
    }
}

/* ---- Payloads --------------------------------------------------------- */

VhostUserIotlb tb_chan_iotlb(uint8_t type, uint64_t iova, uint64_t size, uint8_t perm)
{
    VhostUserIotlb m = { .iova = iova, .size = size, .perm = perm, .type = type };

    return m;
}

VhostUserVringArea tb_chan_area(unsigned ring, uint64_t size, uint64_t offset, bool nofd)
{
    VhostUserVringArea a = {
        .u64 = (ring & VHOST_USER_VRING_IDX_MASK) | (nofd ? VHOST_USER_VRING_NOFD_MASK : 0),
        .size = size,
        .offset = offset,
    };

    return a;
}

VhostUserVringState tb_chan_vring_state(unsigned ring, unsigned num)
{
    VhostUserVringState s = { .index = ring, .num = num };

    return s;
}

int tb_chan_memfd(const char *name, size_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, (off_t)size), ==, 0);
    return fd;
}

bool tb_iotlb_msg_get(TestBackend *tb, unsigned conn, uint8_t type, unsigned i,
                      VhostUserIotlb *out)
{
    unsigned seen = 0;
    TbMsg *m;

    for (unsigned k = 0; (m = tb_msg_get(tb, conn, k)); k++) {
        bool hit = m->request == VHOST_USER_IOTLB_MSG && m->size == sizeof(*out);

        if (hit) {
            memcpy(out, m->payload, sizeof(*out));
            hit = out->type == type && seen++ == i;
        }
        tb_msg_free(m);
        if (hit) {
            return true;
        }
    }
    return false;
}
