/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the unix-socket chardev, its low-level I/O helpers, the
 * GLib event-loop adapter and the error domain.
 *
 * The peer is a raw socket driven by the test, so every misbehaviour
 * (extra fds, half a message, data while idle, hang-ups) can be staged.
 * Each test runs the chardev on a private GMainContext and every wait has
 * a deadline: a broken chardev fails a test, it never hangs the suite.
 * Reconnects, backoff and connect cycles are in test-char-socket-reconnect.c,
 * which shares this fixture through test-char-socket.h.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-io.h"
#include "chardev/char-socket-int.h"
#include "chardev/char-socket.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"
#include "system/event-loop.h"

#include "test-char-socket.h"

/* ---- fixture ---------------------------------------------------------- */

static GMainContext *ctx;
VhostEventLoop *cs_loop;
static char *tmpdir;
char *cs_sock_path;
Rec cs_rec;
static int log_messages;        /* lines the library gave its log handler */

/* Counts the library's log lines; prints them only with V=1. */
static void count_log(VhostUserLogLevel level, const char *dev, const char *msg,
                      void *opaque)
{
    log_messages++;
    if (g_getenv("V")) {
        fprintf(stderr, "%s: %s: %s\n", vhost_user_log_level_name(level),
                dev ? dev : "-", msg);
    }
}

static void setup(void)
{
    ctx = g_main_context_new();
    cs_loop = vhost_event_loop_glib_new(ctx);
    tmpdir = g_dir_make_tmp("test-char-socket-XXXXXX", NULL);
    ck_assert_ptr_nonnull(tmpdir);
    cs_sock_path = g_build_filename(tmpdir, "sock", NULL);
    memset(&cs_rec, 0, sizeof(cs_rec));
    log_messages = 0;
    vhost_user_set_log_handler(count_log, NULL);
}

static void teardown(void)
{
    /* Drain what the chardevs left behind (cancelled sources). */
    while (g_main_context_iteration(ctx, FALSE)) {
    }
    vhost_event_loop_glib_free(cs_loop);
    g_main_context_unref(ctx);
    unlink(cs_sock_path);
    rmdir(tmpdir);
    g_free(cs_sock_path);
    g_free(tmpdir);
}

int cs_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1;               /* the DIR's own fd */
}

void cs_on_event(CharSocket *chr, CharEvent event, void *opaque)
{
    Rec *r = opaque;

    r->events++;
    if (event == CHR_EVENT_OPENED) {
        r->opened++;
        if (r->disconnect_on_opened) {
            char_socket_disconnect(chr, "test: from the OPENED handler");
        }
        if (r->free_on_opened) {
            char_socket_free(chr);
        }
    } else {
        r->closed++;
        if (r->free_on_closed) {
            char_socket_free(chr);
        }
    }
}

static gboolean deadline_cb(gpointer opaque)
{
    *(bool *)opaque = true;
    return G_SOURCE_REMOVE;
}

/* Runs the loop until *counter >= want or ms pass; true if reached. */
bool cs_run_until(const int *counter, int want, int ms)
{
    bool expired = false;
    GSource *t = g_timeout_source_new(ms);

    g_source_set_callback(t, deadline_cb, &expired, NULL);
    g_source_attach(t, ctx);
    while (*counter < want && !expired) {
        g_main_context_iteration(ctx, TRUE);
    }
    g_source_destroy(t);
    g_source_unref(t);
    return *counter >= want;
}

/* Runs the loop for ms milliseconds. */
void cs_run_for(int ms)
{
    int never = 0;

    cs_run_until(&never, 1, ms);
}

/*
 * A socket bound to path but not listening: the file exists, connects are
 * refused (a back-end between bind() and listen(), or a stale socket).
 */
int cs_raw_bind(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    unlink(path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

int cs_raw_listen(const char *path)
{
    int fd = cs_raw_bind(path);

    ck_assert_int_eq(listen(fd, 4), 0);
    return fd;
}

int cs_raw_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

/* Accept with a deadline, so a chardev that never connects fails fast. */
int cs_raw_accept(int lfd)
{
    ck_assert_int_gt(char_io_wait(lfd, POLLIN, char_io_deadline(2000)), 0);
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

CharSocket *cs_new_chr(bool server, int64_t reconnect_ms)
{
    CharSocketOptions opts = {
        .id = "chr0",
        .path = cs_sock_path,
        .server = server,
        .reconnect_ms = reconnect_ms,
    };
    GError *err = NULL;
    CharSocket *chr = char_socket_new(&opts, cs_loop, &err);

    ck_assert_msg(chr, "char_socket_new: %s", err ? err->message : "?");
    char_socket_set_handler(chr, cs_on_event, &cs_rec);
    return chr;
}

/* A connected pair: chardev client <-> raw peer; OPENED delivered. */
static CharSocket *connected_client(int *peer, int *lfd)
{
    CharSocket *chr;
    GError *err = NULL;

    *lfd = cs_raw_listen(cs_sock_path);
    chr = cs_new_chr(false, 0);
    ck_assert_msg(char_socket_open(chr, &err), "open: %s", err ? err->message : "");
    *peer = cs_raw_accept(*lfd);
    ck_assert_int_ge(*peer, 0);
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    return chr;
}

static void assert_error(GError *err, int code)
{
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(err->domain == VHOST_USER_ERROR && err->code == code,
                  "expected %s, got %s: %s", vhost_user_error_code_name(code),
                  vhost_user_error_code_name(err->code), err->message);
    /* Every chardev error names the chardev. */
    ck_assert_ptr_nonnull(strstr(err->message, "chr0"));
}

/* ---- connect ---------------------------------------------------------- */

START_TEST(test_client_connect)
{
    int lfd, peer;
    CharSocket *chr;

    lfd = cs_raw_listen(cs_sock_path);
    chr = cs_new_chr(false, 0);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(char_socket_is_connected(chr));
    /* OPENED comes from the loop, never from inside open(). */
    ck_assert_int_eq(cs_rec.opened, 0);
    peer = cs_raw_accept(lfd);
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    ck_assert_int_eq(char_socket_connect_count(chr), 1);
    ck_assert_int_ge(char_socket_fd(chr), 0);
    /* Replies are waited for in recvmsg itself: blocking, with a slice. */
    ck_assert_int_eq(fcntl(char_socket_fd(chr), F_GETFL) & O_NONBLOCK, 0);
    {
        struct timeval tv = { 0 };
        socklen_t len = sizeof(tv);

        ck_assert_int_eq(getsockopt(char_socket_fd(chr), SOL_SOCKET, SO_RCVTIMEO, &tv,
                                    &len), 0);
        ck_assert(tv.tv_sec > 0 || tv.tv_usec > 0);
    }
    ck_assert_str_eq(char_socket_id(chr), "chr0");
    ck_assert_str_eq(char_socket_path(chr), cs_sock_path);
    ck_assert_int_eq(char_socket_timeout_ms(chr), 10000);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_server_connect)
{
    CharSocket *chr = cs_new_chr(true, 0);
    int peer;

    ck_assert(char_socket_open(chr, NULL));
    ck_assert(!char_socket_is_connected(chr));
    peer = cs_raw_connect(cs_sock_path);
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    ck_assert(char_socket_is_connected(chr));
    char_socket_free(chr);
    /* The server removes its socket file. */
    ck_assert_int_ne(access(cs_sock_path, F_OK), 0);
    close(peer);
}
END_TEST

static gpointer late_connect_thread(gpointer opaque)
{
    g_usleep(50 * 1000);
    return GINT_TO_POINTER(cs_raw_connect(opaque));
}

START_TEST(test_server_wait)
{
    CharSocketOptions opts = { .id = "chr0", .path = cs_sock_path,
                               .server = true, .wait = true };
    CharSocket *chr = char_socket_new(&opts, cs_loop, NULL);
    GThread *t;
    int peer;

    char_socket_set_handler(chr, cs_on_event, &cs_rec);
    t = g_thread_new("peer", late_connect_thread, cs_sock_path);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(char_socket_is_connected(chr));
    peer = GPOINTER_TO_INT(g_thread_join(t));
    ck_assert_int_eq(cs_rec.opened, 0);
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    char_socket_free(chr);
    close(peer);
}
END_TEST

START_TEST(test_config_errors)
{
    g_autofree char *long_path = g_strnfill(200, 'x');
    CharSocketOptions opts = { .id = "chr0", .path = long_path };
    GError *err = NULL;
    CharSocket *chr;

    ck_assert_ptr_null(char_socket_new(&opts, cs_loop, &err));
    assert_error(err, VHOST_USER_ERROR_CONFIG);
    g_clear_error(&err);

    opts.path = cs_sock_path;
    opts.server = true;
    opts.reconnect_ms = 10;
    ck_assert_ptr_null(char_socket_new(&opts, cs_loop, &err));
    assert_error(err, VHOST_USER_ERROR_CONFIG);
    g_clear_error(&err);

    /* A client without reconnect fails open() when nobody listens. */
    chr = cs_new_chr(false, 0);
    ck_assert(!char_socket_open(chr, &err));
    assert_error(err, VHOST_USER_ERROR_DISCONNECTED);
    g_clear_error(&err);
    ck_assert(!char_socket_write_all(chr, "x", 1, NULL, 0, &err));
    assert_error(err, VHOST_USER_ERROR_DISCONNECTED);
    g_clear_error(&err);
    char_socket_free(chr);
}
END_TEST

/*
 * A path that exists but is no socket: connect() says "Connection
 * refused" for it, which sends the user looking for a dead back-end. The
 * error names the path and what is wrong with it, for a client and a
 * server, and a server never removes what is there.
 */
static void check_not_a_socket(bool server)
{
    g_autofree char *want = g_strdup_printf("%s: not a socket", cs_sock_path);
    GError *err = NULL;
    CharSocket *chr = cs_new_chr(server, 0);
    struct stat st;

    ck_assert(!char_socket_open(chr, &err));
    ck_assert_msg(err && strstr(err->message, want), "%s: expected \"%s\" in \"%s\"",
                  server ? "server" : "client", want, err ? err->message : "(no error)");
    g_clear_error(&err);
    char_socket_free(chr);
    ck_assert_int_eq(lstat(cs_sock_path, &st), 0);
    ck_assert(!S_ISSOCK(st.st_mode));
}

START_TEST(test_not_a_socket)
{
    ck_assert(g_file_set_contents(cs_sock_path, "data", -1, NULL));
    check_not_a_socket(false);
    check_not_a_socket(true);
    unlink(cs_sock_path);
    ck_assert_int_eq(mkdir(cs_sock_path, 0700), 0);
    check_not_a_socket(false);
    check_not_a_socket(true);
    rmdir(cs_sock_path);
}
END_TEST

/* ---- data and fds ----------------------------------------------------- */

static void check_fds_roundtrip(size_t n)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    int pipes[3][2], evs[3];
    int sent[3], got[CHAR_SOCKET_MAX_FDS];
    size_t ngot = CHAR_SOCKET_MAX_FDS, dropped = 0;
    bool ctrunc = false;
    char buf[8] = { 0 };
    int baseline;
    GError *err = NULL;

    /* Back-end -> chardev: pipe write ends, used through the received fds. */
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(pipe2(pipes[i], O_CLOEXEC), 0);
        sent[i] = pipes[i][1];
    }
    ck_assert_int_eq(char_io_send(peer, "hello", 5, sent, n), 5);
    ck_assert_msg(char_socket_read_all(chr, buf, 5, got, &ngot, 1000, &err),
                  "read_all: %s", err ? err->message : "");
    ck_assert_str_eq(buf, "hello");
    ck_assert_uint_eq(ngot, n);
    for (size_t i = 0; i < n; i++) {
        char c = 'a' + i, r = 0;

        ck_assert_int_eq(write(got[i], &c, 1), 1);
        ck_assert_int_eq(read(pipes[i][0], &r, 1), 1);
        ck_assert_int_eq(r, c);
        close(got[i]);
        close(pipes[i][0]);
        close(pipes[i][1]);
    }

    /* Chardev -> back-end: eventfds, signalled through the received fds. */
    baseline = cs_count_fds();
    for (size_t i = 0; i < n; i++) {
        evs[i] = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_ge(evs[i], 0);
    }
    ck_assert(char_socket_write_all(chr, "world", 5, evs, n, NULL));
    memset(buf, 0, sizeof(buf));
    ngot = 0;
    ck_assert_int_gt(char_io_wait(peer, POLLIN, char_io_deadline(1000)), 0);
    ck_assert_int_eq(char_io_recv(peer, buf, 5, got, CHAR_SOCKET_MAX_FDS,
                                  &ngot, &dropped, &ctrunc), 5);
    ck_assert_str_eq(buf, "world");
    ck_assert_uint_eq(ngot, n);
    ck_assert_uint_eq(dropped, 0);
    ck_assert(!ctrunc);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 1;

        ck_assert_int_eq(write(got[i], &v, sizeof(v)), sizeof(v));
        v = 0;
        ck_assert_int_eq(read(evs[i], &v, sizeof(v)), sizeof(v));
        ck_assert_uint_eq(v, 1);
        close(got[i]);
        close(evs[i]);
    }
    ck_assert_int_eq(cs_count_fds(), baseline);

    /* A zero-length read succeeds at once. */
    ngot = 4;
    ck_assert(char_socket_read_all(chr, buf, 0, got, &ngot, 10, NULL));
    ck_assert_uint_eq(ngot, 0);

    char_socket_free(chr);
    close(peer);
    close(lfd);
}

START_TEST(test_fds_0)
{
    check_fds_roundtrip(0);
}
END_TEST

START_TEST(test_fds_1)
{
    check_fds_roundtrip(1);
}
END_TEST

START_TEST(test_fds_3)
{
    check_fds_roundtrip(3);
}
END_TEST

START_TEST(test_fds_unexpected)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    int p[2];
    char buf[4];
    int baseline;
    GError *err = NULL;

    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    baseline = cs_count_fds();
    ck_assert_int_eq(char_io_send(peer, "abcd", 4, p, 2), 4);
    ck_assert_int_eq(char_io_send(peer, "efgh", 4, NULL, 0), 4);
    ck_assert(!char_socket_read_all(chr, buf, 4, NULL, NULL, 1000, &err));
    assert_error(err, VHOST_USER_ERROR_WRONG_FDS);
    g_clear_error(&err);
    ck_assert_int_eq(cs_count_fds(), baseline);
    /* The bytes were consumed: the next message is read in frame. */
    ck_assert(char_socket_read_all(chr, buf, 4, NULL, NULL, 1000, NULL));
    ck_assert_int_eq(memcmp(buf, "efgh", 4), 0);
    close(p[0]);
    close(p[1]);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_fds_too_many)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    int p[2], got[1] = { -1 }, many[20];
    size_t ngot = 1;
    char buf[4];
    int baseline;
    GError *err = NULL;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(many))];
    } control;
    struct iovec iov = { .iov_base = (void *)"wxyz", .iov_len = 4 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.buf,
                          .msg_controllen = sizeof(control.buf) };
    struct cmsghdr *cmsg;

    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    baseline = cs_count_fds();

    /* Three fds where the caller has room for one. */
    ck_assert_int_eq(char_io_send(peer, "abcd", 4, (int[]){ p[0], p[1], p[0] }, 3), 4);
    ck_assert(!char_socket_read_all(chr, buf, 4, got, &ngot, 1000, &err));
    assert_error(err, VHOST_USER_ERROR_WRONG_FDS);
    g_clear_error(&err);
    ck_assert_uint_eq(ngot, 0);
    ck_assert_int_eq(cs_count_fds(), baseline);

    /* Twenty fds: more than CHAR_SOCKET_MAX_FDS, the kernel truncates. */
    for (int i = 0; i < 20; i++) {
        many[i] = p[i % 2];
    }
    memset(&control, 0, sizeof(control));
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(many));
    memcpy(CMSG_DATA(cmsg), many, sizeof(many));
    ck_assert_int_eq(sendmsg(peer, &msg, MSG_NOSIGNAL), 4);
    ngot = 1;
    ck_assert(!char_socket_read_all(chr, buf, 4, got, &ngot, 1000, &err));
    assert_error(err, VHOST_USER_ERROR_WRONG_FDS);
    g_clear_error(&err);
    ck_assert_int_eq(cs_count_fds(), baseline);

    /* Sending more than the limit is refused locally, connection kept. */
    ck_assert(!char_socket_write_all(chr, "abcd", 4, many, 17, &err));
    ck_assert_int_eq(err->code, VHOST_USER_ERROR_INVALID_STATE);
    g_clear_error(&err);
    ck_assert(char_socket_is_connected(chr));

    close(p[0]);
    close(p[1]);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_read_timeout)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    char buf[8];
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time(), ms;

    ck_assert(!char_socket_read_all(chr, buf, 8, NULL, NULL, 200, &err));
    ms = (g_get_monotonic_time() - t0) / 1000;
    assert_error(err, VHOST_USER_ERROR_TIMEOUT);
    g_clear_error(&err);
    ck_assert_int_ge(ms, 190);
    ck_assert_int_le(ms, 700);

    /* The chardev's own timeout applies with timeout_ms < 0. */
    char_socket_set_timeout_ms(chr, 100);
    ck_assert_int_eq(char_socket_timeout_ms(chr), 100);
    t0 = g_get_monotonic_time();
    ck_assert(!char_socket_read_all(chr, buf, 8, NULL, NULL, -1, &err));
    ms = (g_get_monotonic_time() - t0) / 1000;
    assert_error(err, VHOST_USER_ERROR_TIMEOUT);
    g_clear_error(&err);
    ck_assert_int_ge(ms, 90);
    ck_assert_int_le(ms, 600);
    /* A timeout does not drop the connection: the protocol layer decides. */
    ck_assert(char_socket_is_connected(chr));

    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_eof_partial)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    char buf[8];
    GError *err = NULL;

    ck_assert_int_eq(write(peer, "abc", 3), 3);
    close(peer);
    ck_assert(!char_socket_read_all(chr, buf, 8, NULL, NULL, 1000, &err));
    assert_error(err, VHOST_USER_ERROR_PARTIAL_MESSAGE);
    ck_assert(vhost_user_error_should_reconnect(err));
    g_clear_error(&err);
    char_socket_free(chr);
    close(lfd);
}
END_TEST

START_TEST(test_eof_boundary)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    char buf[8];
    GError *err = NULL;

    ck_assert_int_eq(write(peer, "abcdefgh", 8), 8);
    close(peer);
    ck_assert(char_socket_read_all(chr, buf, 8, NULL, NULL, 1000, NULL));
    ck_assert(!char_socket_read_all(chr, buf, 8, NULL, NULL, 1000, &err));
    assert_error(err, VHOST_USER_ERROR_DISCONNECTED);
    g_clear_error(&err);
    char_socket_free(chr);
    close(lfd);
}
END_TEST

START_TEST(test_write_epipe)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    GError *err = NULL;

    char_socket_set_idle_watch(chr, false);
    close(peer);
    /* MSG_NOSIGNAL: no SIGPIPE kills the test, an error comes back. */
    ck_assert(!char_socket_write_all(chr, "abcd", 4, NULL, 0, &err));
    assert_error(err, VHOST_USER_ERROR_DISCONNECTED);
    g_clear_error(&err);
    ck_assert(!char_socket_is_connected(chr));
    ck_assert_int_eq(cs_rec.closed, 0);    /* not from inside write_all */
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    cs_run_for(50);
    ck_assert_int_eq(cs_rec.closed, 1);
    char_socket_free(chr);
    close(lfd);
}
END_TEST

/* ---- idle watch and events --------------------------------------------- */

START_TEST(test_idle_peer_close)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);

    close(peer);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    ck_assert(!char_socket_is_connected(chr));
    ck_assert_int_eq(char_socket_fd(chr), -1);
    cs_run_for(100);
    ck_assert_int_eq(cs_rec.closed, 1);
    ck_assert_int_eq(cs_rec.opened, 1);
    char_socket_free(chr);
    close(lfd);
}
END_TEST

START_TEST(test_idle_unexpected_data)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);
    char buf[2];

    /* Suspended: the data waits for the protocol layer. */
    char_socket_set_idle_watch(chr, false);
    ck_assert_int_eq(write(peer, "ab", 2), 2);
    cs_run_for(50);
    ck_assert(char_socket_is_connected(chr));
    ck_assert(char_socket_read_all(chr, buf, 2, NULL, NULL, 1000, NULL));
    char_socket_set_idle_watch(chr, true);
    cs_run_for(20);
    ck_assert(char_socket_is_connected(chr));

    /* Idle: data nobody asked for drops the connection. */
    ck_assert_int_eq(write(peer, "x", 1), 1);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    ck_assert(!char_socket_is_connected(chr));
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_disconnect_twice)
{
    int lfd, peer;
    CharSocket *chr = connected_client(&peer, &lfd);

    char_socket_disconnect(chr, "test: first");
    char_socket_disconnect(chr, "test: second");
    /* One log line per disconnect, not per call. */
    ck_assert_int_eq(log_messages, 1);
    ck_assert(!char_socket_is_connected(chr));
    ck_assert_int_eq(cs_rec.closed, 0);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    cs_run_for(50);
    ck_assert_int_eq(cs_rec.closed, 1);
    char_socket_disconnect(chr, "test: third");
    cs_run_for(20);
    ck_assert_int_eq(cs_rec.closed, 1);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_disconnect_in_opened)
{
    int lfd, peer;
    CharSocket *chr;

    cs_rec.disconnect_on_opened = true;
    chr = connected_client(&peer, &lfd);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    cs_run_for(20);
    ck_assert_int_eq(cs_rec.opened, 1);
    ck_assert_int_eq(cs_rec.closed, 1);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_free_in_closed_handler)
{
    int lfd, peer;
    int baseline = cs_count_fds();

    cs_rec.free_on_closed = true;
    connected_client(&peer, &lfd);
    close(peer);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    cs_run_for(50);
    ck_assert_int_eq(cs_rec.events, 2);
    close(lfd);
    ck_assert_int_eq(cs_count_fds(), baseline);
}
END_TEST

START_TEST(test_free_in_opened_handler)
{
    int lfd, peer;
    CharSocket *chr;

    /* A CLOSED is queued behind OPENED; after the free it must not fire. */
    lfd = cs_raw_listen(cs_sock_path);
    chr = cs_new_chr(false, 0);
    cs_rec.free_on_opened = true;
    ck_assert(char_socket_open(chr, NULL));
    char_socket_disconnect(chr, "test: before OPENED was delivered");
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    cs_run_for(50);
    ck_assert_int_eq(cs_rec.events, 1);
    peer = cs_raw_accept(lfd);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_free_with_pending_events)
{
    int lfd, peer;
    CharSocket *chr;

    lfd = cs_raw_listen(cs_sock_path);
    chr = cs_new_chr(false, 10);
    ck_assert(char_socket_open(chr, NULL));
    char_socket_disconnect(chr, "test: pending");
    char_socket_free(chr);
    cs_run_for(100);
    ck_assert_int_eq(cs_rec.events, 0);
    peer = cs_raw_accept(lfd);
    close(peer);
    close(lfd);
}
END_TEST

/* ---- event loop adapter ------------------------------------------------ */

typedef struct LoopRec {
    int fired;
    void *handle;
    VhostEventLoop *loop;
} LoopRec;

static void count_cb(void *opaque)
{
    ((LoopRec *)opaque)->fired++;
}

static void self_cancel_cb(void *opaque)
{
    LoopRec *r = opaque;

    r->fired++;
    vhost_loop_remove_timer(r->loop, r->handle);
}

static bool self_remove_watch_cb(int fd, unsigned events, void *opaque)
{
    LoopRec *r = opaque;
    uint64_t v;

    r->fired++;
    ck_assert(events & VHOST_WATCH_IN);
    ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
    /* Remove and return false: must not destroy twice. */
    vhost_loop_remove_watch(r->loop, r->handle);
    return false;
}

static bool keep_watch_cb(int fd, unsigned events, void *opaque)
{
    LoopRec *r = opaque;
    uint64_t v;

    r->fired++;
    ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
    return true;
}

START_TEST(test_loop_adapter)
{
    LoopRec t = { .loop = cs_loop }, d = { .loop = cs_loop }, c = { .loop = cs_loop };
    LoopRec w = { .loop = cs_loop }, k = { .loop = cs_loop };
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int efd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t one = 1;
    gint64 t0 = g_get_monotonic_time();
    void *cancelled;

    /* Timer: fires once, not before its time; removing itself is fine. */
    t.handle = vhost_loop_add_timer(cs_loop, 50, self_cancel_cb, &t);
    ck_assert(cs_run_until(&t.fired, 1, 2000));
    ck_assert_int_ge((g_get_monotonic_time() - t0) / 1000, 45);
    cs_run_for(100);
    ck_assert_int_eq(t.fired, 1);

    /* Defer: runs once; a cancelled one never runs. */
    d.handle = vhost_loop_defer(cs_loop, count_cb, &d);
    cancelled = vhost_loop_defer(cs_loop, count_cb, &c);
    vhost_loop_cancel_defer(cs_loop, cancelled);
    ck_assert(cs_run_until(&d.fired, 1, 1000));
    cs_run_for(20);
    ck_assert_int_eq(d.fired, 1);
    ck_assert_int_eq(c.fired, 0);
    vhost_loop_remove_timer(cs_loop, vhost_loop_add_timer(cs_loop, 10, count_cb, &c));
    cs_run_for(40);
    ck_assert_int_eq(c.fired, 0);

    /* Watch removing itself from its callback, then returning false. */
    w.handle = vhost_loop_add_watch(cs_loop, efd, VHOST_WATCH_IN, self_remove_watch_cb, &w);
    ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
    ck_assert(cs_run_until(&w.fired, 1, 1000));
    ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
    cs_run_for(30);
    ck_assert_int_eq(w.fired, 1);

    /* A watch that stays until removed from outside. */
    k.handle = vhost_loop_add_watch(cs_loop, efd2, VHOST_WATCH_IN, keep_watch_cb, &k);
    ck_assert_int_eq(write(efd2, &one, sizeof(one)), sizeof(one));
    ck_assert(cs_run_until(&k.fired, 1, 1000));
    ck_assert_int_eq(write(efd2, &one, sizeof(one)), sizeof(one));
    ck_assert(cs_run_until(&k.fired, 2, 1000));
    vhost_loop_remove_watch(cs_loop, k.handle);
    ck_assert_int_eq(write(efd2, &one, sizeof(one)), sizeof(one));
    cs_run_for(30);
    ck_assert_int_eq(k.fired, 2);

    /* The default loop exists once. */
    ck_assert_ptr_eq(vhost_event_loop_default(), vhost_event_loop_default());
    close(efd);
    close(efd2);
}
END_TEST

/* ---- error domain ------------------------------------------------------ */

START_TEST(test_error_domain)
{
    static const struct {
        int code;
        const char *name;
        bool reconnect;
    } table[] = {
        { VHOST_USER_ERROR_INVALID_MESSAGE, "invalid-message", true },
        { VHOST_USER_ERROR_PARTIAL_MESSAGE, "partial-message", true },
        { VHOST_USER_ERROR_OVERSIZED, "oversized", true },
        { VHOST_USER_ERROR_WRONG_FDS, "wrong-fds", true },
        { VHOST_USER_ERROR_DISCONNECTED, "disconnected", true },
        { VHOST_USER_ERROR_TIMEOUT, "timeout", true },
        { VHOST_USER_ERROR_FEATURE_MISMATCH, "feature-mismatch", false },
        { VHOST_USER_ERROR_BACKEND_FAILED, "backend-failed", true },
        { VHOST_USER_ERROR_INVALID_STATE, "invalid-state", false },
        { VHOST_USER_ERROR_LOCAL, "local", false },
        { VHOST_USER_ERROR_CONFIG, "config", false },
    };
    GError *foreign = g_error_new(g_quark_from_static_string("test-foreign"),
                                  VHOST_USER_ERROR_DISCONNECTED, "foreign");

    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        GError *err = g_error_new(VHOST_USER_ERROR, table[i].code, "x");

        ck_assert_str_eq(vhost_user_error_code_name(table[i].code), table[i].name);
        ck_assert_int_eq(vhost_user_error_should_reconnect(err), table[i].reconnect);
        g_error_free(err);
    }
    ck_assert_str_eq(vhost_user_error_code_name(999), "unknown");
    ck_assert_str_eq(vhost_user_error_code_name(-1), "unknown");
    ck_assert(!vhost_user_error_should_reconnect(NULL));
    ck_assert(!vhost_user_error_should_reconnect(foreign));
    ck_assert_uint_eq(VHOST_USER_ERROR, vhost_user_error_quark());
    ck_assert_str_eq(g_quark_to_string(VHOST_USER_ERROR), "vhost-user-error-quark");
    g_error_free(foreign);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

void cs_add(Suite *s, const char *name, const TTest *test)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

static Suite *char_socket_suite(void)
{
    Suite *s = suite_create("char-socket");

    cs_add(s, "client-connect", test_client_connect);
    cs_add(s, "server-connect", test_server_connect);
    cs_add(s, "server-wait", test_server_wait);
    cs_add(s, "config-errors", test_config_errors);
    cs_add(s, "not-a-socket", test_not_a_socket);
    cs_add(s, "fds-0", test_fds_0);
    cs_add(s, "fds-1", test_fds_1);
    cs_add(s, "fds-3", test_fds_3);
    cs_add(s, "fds-unexpected", test_fds_unexpected);
    cs_add(s, "fds-too-many", test_fds_too_many);
    cs_add(s, "read-timeout", test_read_timeout);
    cs_add(s, "eof-partial", test_eof_partial);
    cs_add(s, "eof-boundary", test_eof_boundary);
    cs_add(s, "write-epipe", test_write_epipe);
    cs_add(s, "idle-peer-close", test_idle_peer_close);
    cs_add(s, "idle-unexpected-data", test_idle_unexpected_data);
    cs_add(s, "disconnect-twice", test_disconnect_twice);
    cs_add(s, "disconnect-in-opened", test_disconnect_in_opened);
    cs_add(s, "free-in-closed-handler", test_free_in_closed_handler);
    cs_add(s, "free-in-opened-handler", test_free_in_opened_handler);
    cs_add(s, "free-with-pending-events", test_free_with_pending_events);
    char_socket_reconnect_add_tests(s);
    cs_add(s, "loop-adapter", test_loop_adapter);
    cs_add(s, "error-domain", test_error_domain);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(char_socket_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
