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
#include <unistd.h>

#include <glib.h>

#include "util/vhost-user-log.h"

#define FUZZ_MAX_FDS 3          /* attached to one sendmsg */

/* The library logs every rejection; at tens of thousands a second, nowhere. */
static inline void fuzz_quiet_log(VhostUserLogLevel level, const char *device,
                                  const char *msg, void *opaque)
{
}

static inline unsigned fuzz_count_fds(void)
{
    GDir *d = g_dir_open("/proc/self/fd", 0, NULL);
    unsigned n = 0;

    if (!d) {
        abort();
    }
    while (g_dir_read_name(d)) {
        n++;
    }
    g_dir_close(d);
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

#endif
