/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers of the fuzz targets that drive the library over real sockets
 * (fuzz-backend-chan, fuzz-reply-path). tests/unit/unit-sock.c has their
 * like, but asserts with check's ck_assert, which reports to a running
 * check suite and exits the process outside one.
 */
#ifndef TESTS_FUZZ_FUZZ_LIB_H
#define TESTS_FUZZ_FUZZ_LIB_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sys/un.h>

#include <glib.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost-user-conn.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

#define FUZZ_MAX_FDS 3          /* attached to one sendmsg */

/* The library logs every rejection; at tens of thousands a second, nowhere. */
static inline void fuzz_quiet_log(VhostUserLogLevel level, const char *device,
                                  const char *msg, void *opaque)
{
}

/*
 * The process's open fds, from /proc/self/fd read with getdents64 into a
 * buffer on the stack: opendir() would malloc a 32 KiB buffer per call,
 * which under ASan (fresh, quarantined memory each time) was most of an
 * input's time.
 */
static inline unsigned fuzz_count_fds(void)
{
    char buf[8192] __attribute__((aligned(8)));
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    unsigned n = 0;
    long got;

    if (dfd < 0) {
        abort();
    }
    while ((got = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < got;) {
            const struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (const void *)(buf + off);

            /* "." and ".." are no fds; dfd itself counts every time alike. */
            n += d->name[0] != '.';
            off += d->reclen;
        }
    }
    if (got < 0) {
        abort();
    }
    close(dfd);
    return n;
}

/* One sendmsg of buf with nfds (<= FUZZ_MAX_FDS) fds; what sendmsg returns. */
static inline ssize_t fuzz_send_fds(int fd, const void *buf, size_t len, const int *fds,
                                    size_t nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * FUZZ_MAX_FDS)] = { 0 };
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (nfds) {
        struct cmsghdr *c;

        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

typedef enum FuzzFdKind {
    FUZZ_FD_MEMFD_PAGE,         /* a memfd one page long, named "fuzz-memfd" */
    FUZZ_FD_EVENTFD,
    FUZZ_FD_MEMFD_EMPTY,
    FUZZ_FD_PIPE,               /* the read end; *extra the write end */
    FUZZ_FD_SOCKET,             /* one end of a socketpair; *extra the other */
} FuzzFdKind;

/* A fresh fd of the kind (the caller closes it, and *extra when >= 0). */
static inline int fuzz_make_fd(FuzzFdKind kind, int *extra)
{
    int fd = -1, p[2];

    *extra = -1;
    switch (kind) {
    case FUZZ_FD_MEMFD_PAGE:
    case FUZZ_FD_MEMFD_EMPTY:
        fd = memfd_create(kind == FUZZ_FD_MEMFD_PAGE ? "fuzz-memfd" : "fuzz-empty",
                          MFD_CLOEXEC);
        if (fd >= 0 && kind == FUZZ_FD_MEMFD_PAGE &&
            ftruncate(fd, sysconf(_SC_PAGESIZE)) < 0) {
            abort();
        }
        break;
    case FUZZ_FD_EVENTFD:
        fd = eventfd(0, EFD_CLOEXEC);
        break;
    case FUZZ_FD_PIPE:
    case FUZZ_FD_SOCKET:
        if (kind == FUZZ_FD_PIPE ? pipe2(p, O_CLOEXEC) == 0
                                 : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0) {
            fd = p[0];
            *extra = p[1];
        }
        break;
    }
    if (fd < 0) {
        abort();
    }
    return fd;
}

/* A listening unix socket in a new temporary directory; *path its name. */
static inline int fuzz_listen_tmp(const char *tmpl, char **path)
{
    g_autofree char *dir = g_dir_make_tmp(tmpl, NULL);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (!dir) {
        abort();
    }
    *path = g_build_filename(dir, "sock", NULL);
    g_strlcpy(sa.sun_path, *path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        abort();
    }
    return fd;
}

/* A connected chardev (default bounds) to path; *peer the accepted end. */
static inline CharSocket *fuzz_connect(const char *path, int listen_fd, int *peer)
{
    CharSocketOptions opts = { .id = "chr0", .path = path };
    GError *err = NULL;
    CharSocket *chr = char_socket_new(&opts, NULL, &err);

    if (!chr || !char_socket_open(chr, &err)) {
        abort();
    }
    *peer = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (*peer < 0) {
        abort();
    }
    return chr;
}

/*
 * Writes the first cut bytes of buf into peer, the fds riding on the
 * sendmsg that starts at byte at (none when at >= cut), then closes
 * peer's writing side: the reader sees the bytes, then EOF. A few KiB
 * always fit the socket buffer, so nothing here waits for the reader.
 */
static inline void fuzz_send_cut(int peer, const uint8_t *buf, size_t cut, size_t at,
                                 const int *fds, size_t nfds)
{
    size_t first = MIN(at, cut);

    if ((first && fuzz_send_fds(peer, buf, first, NULL, 0) != (ssize_t)first) ||
        (cut > first && fuzz_send_fds(peer, buf + first, cut - first, fds, nfds) !=
                            (ssize_t)(cut - first))) {
        abort();
    }
    shutdown(peer, SHUT_WR);
}

/* Every rejection says why, in this project's error domain. */
static inline void fuzz_check_error(GError *err)
{
    if (!err || err->domain != VHOST_USER_ERROR || !err->message[0]) {
        abort();
    }
    g_error_free(err);
}

/*
 * A connection's state as after negotiation, without the round trips:
 * every gate the library implements open, REPLY_ACK as the input says.
 */
static inline VhostUserState *fuzz_state_new(CharSocket *chr, bool reply_ack)
{
    VhostUserState *u = vhost_user_state_new(chr, "dev0");
    uint64_t pf = vhost_user_frontend_protocol_features();

    if (!reply_ack) {
        pf &= ~(1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    }
    vhost_user_set_features(u, 1ull << VHOST_USER_F_PROTOCOL_FEATURES, pf);
    return u;
}

/* A refused reply says why and drops the connection: nothing may use it after. */
static inline void fuzz_check_refused(VhostUserState *u, GError *err)
{
    fuzz_check_error(err);
    if (vhost_user_is_usable(u)) {
        abort();
    }
}

/*
 * Frees u, its chardev and the peer's end, runs what the loop has left;
 * then every fd that came in was handed over or closed: the count is
 * fds_before again.
 */
static inline void fuzz_teardown(VhostUserState *u, CharSocket *chr, int peer,
                                 unsigned fds_before)
{
    vhost_user_state_free(u);
    char_socket_disconnect(chr, "fuzz input done");
    char_socket_free(chr);
    close(peer);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    if (fuzz_count_fds() != fds_before) {
        abort();
    }
}

#endif
