/* SPDX-License-Identifier: BSD-3-Clause */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "system/event-loop.h"
#include "unit-sock.h"

bool ut_recv_full(int fd, void *buf, size_t len, int *fds, size_t max_fds, size_t *nfds)
{
    size_t done = 0;

    while (done < len) {
        char cbuf[CMSG_SPACE(sizeof(int) * UT_SOCK_MAX_FDS)];
        struct iovec iov = { (uint8_t *)buf + done, len - done };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
        };
        ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            size_t n;
            int in[UT_SOCK_MAX_FDS];

            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
                continue;
            }
            n = MIN((c->cmsg_len - CMSG_LEN(0)) / sizeof(int), G_N_ELEMENTS(in));
            /* CMSG_DATA need not be aligned for int: copy, never cast. */
            memcpy(in, CMSG_DATA(c), n * sizeof(int));
            for (size_t i = 0; i < n; i++) {
                if (fds && *nfds < max_fds) {
                    fds[(*nfds)++] = in[i];
                } else {
                    close(in[i]);
                }
            }
        }
        done += (size_t)r;
    }
    return true;
}

void ut_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * UT_SOCK_MAX_FDS)] = { 0 };
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    ck_assert_uint_le(nfds, UT_SOCK_MAX_FDS);
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
    (void)!sendmsg(fd, &mh, MSG_NOSIGNAL);
}

unsigned ut_count_fds(void)
{
    GDir *d;
    unsigned n = 0;

    g_main_context_default();
    vhost_event_loop_default();
    d = g_dir_open("/proc/self/fd", 0, NULL);
    ck_assert_ptr_nonnull(d);
    while (g_dir_read_name(d)) {
        n++;
    }
    g_dir_close(d);
    return n;
}

CharSocket *ut_chardev_connected(CharSocketOptions *opts, const char *dir_template,
                                 char **dir, char **path, int *peer)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    GError *err = NULL;
    CharSocket *chr;
    int lfd;

    *dir = g_dir_make_tmp(dir_template, NULL);
    ck_assert_ptr_nonnull(*dir);
    *path = g_build_filename(*dir, "sock", NULL);
    g_strlcpy(sa.sun_path, *path, sizeof(sa.sun_path));
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 1), 0);
    opts->path = *path;
    chr = char_socket_new(opts, NULL, &err);
    ck_assert_msg(chr, "%s", err ? err->message : "?");
    ck_assert_msg(char_socket_open(chr, &err), "%s", err ? err->message : "?");
    *peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(*peer, 0);
    close(lfd);
    return chr;
}

unsigned ut_count_maps(const char *needle)
{
    g_autofree char *text = NULL;
    unsigned n = 0;

    ck_assert(g_file_get_contents("/proc/self/maps", &text, NULL, NULL));
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

int ut_child_run(int (*body)(void *opaque), void *opaque)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int code = body(opaque);

        fflush(stdout);
        _exit(code);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child: status 0x%x, no normal exit", status);
    return WEXITSTATUS(status);
}
