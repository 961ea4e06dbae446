/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the unix-socket chardev, its low-level I/O helpers, the
 * GLib event-loop adapter and the error domain.
 *
 * The peer is a raw socket driven by the test, so every misbehaviour
 * (extra fds, half a message, data while idle, hang-ups) can be staged.
 * Each test runs the chardev on a private GMainContext and every wait has
 * a deadline: a broken chardev fails a test, it never hangs the suite.
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

/* ---- fixture ---------------------------------------------------------- */

typedef struct Rec {
    int opened;
    int closed;
    int events;                 /* total, for "nothing after free" */
    bool free_on_opened;
    bool free_on_closed;
    bool disconnect_on_opened;
} Rec;

static GMainContext *ctx;
static VhostEventLoop *loop;
static char *tmpdir;
static char *sock_path;
static Rec rec;
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
    loop = vhost_event_loop_glib_new(ctx);
    tmpdir = g_dir_make_tmp("test-char-socket-XXXXXX", NULL);
    ck_assert_ptr_nonnull(tmpdir);
    sock_path = g_build_filename(tmpdir, "sock", NULL);
    memset(&rec, 0, sizeof(rec));
    log_messages = 0;
    vhost_user_set_log_handler(count_log, NULL);
}

static void teardown(void)
{
    /* Drain what the chardevs left behind (cancelled sources). */
    while (g_main_context_iteration(ctx, FALSE)) {
    }
    vhost_event_loop_glib_free(loop);
    g_main_context_unref(ctx);
    unlink(sock_path);
    rmdir(tmpdir);
    g_free(sock_path);
    g_free(tmpdir);
}

static int count_fds(void)
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

static void on_event(CharSocket *chr, CharEvent event, void *opaque)
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
static bool run_until(const int *counter, int want, int ms)
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
static void run_for(int ms)
{
    int never = 0;

    run_until(&never, 1, ms);
}

/*
 * A socket bound to path but not listening: the file exists, connects are
 * refused (a back-end between bind() and listen(), or a stale socket).
 */
static int raw_bind(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    unlink(path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

static int raw_listen(const char *path)
{
    int fd = raw_bind(path);

    ck_assert_int_eq(listen(fd, 4), 0);
    return fd;
}

static int raw_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

/* Accept with a deadline, so a chardev that never connects fails fast. */
static int raw_accept(int lfd)
{
    ck_assert_int_gt(char_io_wait(lfd, POLLIN, char_io_deadline(2000)), 0);
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static CharSocket *new_chr(bool server, int64_t reconnect_ms)
{
    CharSocketOptions opts = {
        .id = "chr0",
        .path = sock_path,
        .server = server,
        .reconnect_ms = reconnect_ms,
    };
    GError *err = NULL;
    CharSocket *chr = char_socket_new(&opts, loop, &err);

    ck_assert_msg(chr, "char_socket_new: %s", err ? err->message : "?");
    char_socket_set_handler(chr, on_event, &rec);
    return chr;
}

/* A connected pair: chardev client <-> raw peer; OPENED delivered. */
static CharSocket *connected_client(int *peer, int *lfd)
{
    CharSocket *chr;
    GError *err = NULL;

    *lfd = raw_listen(sock_path);
    chr = new_chr(false, 0);
    ck_assert_msg(char_socket_open(chr, &err), "open: %s", err ? err->message : "");
    *peer = raw_accept(*lfd);
    ck_assert_int_ge(*peer, 0);
    ck_assert(run_until(&rec.opened, 1, 2000));
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

    lfd = raw_listen(sock_path);
    chr = new_chr(false, 0);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(char_socket_is_connected(chr));
    /* OPENED comes from the loop, never from inside open(). */
    ck_assert_int_eq(rec.opened, 0);
    peer = raw_accept(lfd);
    ck_assert(run_until(&rec.opened, 1, 2000));
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
    ck_assert_str_eq(char_socket_path(chr), sock_path);
    ck_assert_int_eq(char_socket_timeout_ms(chr), 10000);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_server_connect)
{
    CharSocket *chr = new_chr(true, 0);
    int peer;

    ck_assert(char_socket_open(chr, NULL));
    ck_assert(!char_socket_is_connected(chr));
    peer = raw_connect(sock_path);
    ck_assert(run_until(&rec.opened, 1, 2000));
    ck_assert(char_socket_is_connected(chr));
    char_socket_free(chr);
    /* The server removes its socket file. */
    ck_assert_int_ne(access(sock_path, F_OK), 0);
    close(peer);
}
END_TEST

static gpointer late_connect_thread(gpointer opaque)
{
    g_usleep(50 * 1000);
    return GINT_TO_POINTER(raw_connect(opaque));
}

START_TEST(test_server_wait)
{
    CharSocketOptions opts = { .id = "chr0", .path = sock_path,
                               .server = true, .wait = true };
    CharSocket *chr = char_socket_new(&opts, loop, NULL);
    GThread *t;
    int peer;

    char_socket_set_handler(chr, on_event, &rec);
    t = g_thread_new("peer", late_connect_thread, sock_path);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(char_socket_is_connected(chr));
    peer = GPOINTER_TO_INT(g_thread_join(t));
    ck_assert_int_eq(rec.opened, 0);
    ck_assert(run_until(&rec.opened, 1, 2000));
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

    ck_assert_ptr_null(char_socket_new(&opts, loop, &err));
    assert_error(err, VHOST_USER_ERROR_CONFIG);
    g_clear_error(&err);

    opts.path = sock_path;
    opts.server = true;
    opts.reconnect_ms = 10;
    ck_assert_ptr_null(char_socket_new(&opts, loop, &err));
    assert_error(err, VHOST_USER_ERROR_CONFIG);
    g_clear_error(&err);

    /* A client without reconnect fails open() when nobody listens. */
    chr = new_chr(false, 0);
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
    g_autofree char *want = g_strdup_printf("%s: not a socket", sock_path);
    GError *err = NULL;
    CharSocket *chr = new_chr(server, 0);
    struct stat st;

    ck_assert(!char_socket_open(chr, &err));
    ck_assert_msg(err && strstr(err->message, want), "%s: expected \"%s\" in \"%s\"",
                  server ? "server" : "client", want, err ? err->message : "(no error)");
    g_clear_error(&err);
    char_socket_free(chr);
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(!S_ISSOCK(st.st_mode));
}

START_TEST(test_not_a_socket)
{
    ck_assert(g_file_set_contents(sock_path, "data", -1, NULL));
    check_not_a_socket(false);
    check_not_a_socket(true);
    unlink(sock_path);
    ck_assert_int_eq(mkdir(sock_path, 0700), 0);
    check_not_a_socket(false);
    check_not_a_socket(true);
    rmdir(sock_path);
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
    baseline = count_fds();
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
    ck_assert_int_eq(count_fds(), baseline);

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
    baseline = count_fds();
    ck_assert_int_eq(char_io_send(peer, "abcd", 4, p, 2), 4);
    ck_assert_int_eq(char_io_send(peer, "efgh", 4, NULL, 0), 4);
    ck_assert(!char_socket_read_all(chr, buf, 4, NULL, NULL, 1000, &err));
    assert_error(err, VHOST_USER_ERROR_WRONG_FDS);
    g_clear_error(&err);
    ck_assert_int_eq(count_fds(), baseline);
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
    baseline = count_fds();

    /* Three fds where the caller has room for one. */
    ck_assert_int_eq(char_io_send(peer, "abcd", 4, (int[]){ p[0], p[1], p[0] }, 3), 4);
    ck_assert(!char_socket_read_all(chr, buf, 4, got, &ngot, 1000, &err));
    assert_error(err, VHOST_USER_ERROR_WRONG_FDS);
    g_clear_error(&err);
    ck_assert_uint_eq(ngot, 0);
    ck_assert_int_eq(count_fds(), baseline);

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
    ck_assert_int_eq(count_fds(), baseline);

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
    ck_assert_int_eq(rec.closed, 0);    /* not from inside write_all */
    ck_assert(run_until(&rec.closed, 1, 2000));
    run_for(50);
    ck_assert_int_eq(rec.closed, 1);
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
    ck_assert(run_until(&rec.closed, 1, 2000));
    ck_assert(!char_socket_is_connected(chr));
    ck_assert_int_eq(char_socket_fd(chr), -1);
    run_for(100);
    ck_assert_int_eq(rec.closed, 1);
    ck_assert_int_eq(rec.opened, 1);
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
    run_for(50);
    ck_assert(char_socket_is_connected(chr));
    ck_assert(char_socket_read_all(chr, buf, 2, NULL, NULL, 1000, NULL));
    char_socket_set_idle_watch(chr, true);
    run_for(20);
    ck_assert(char_socket_is_connected(chr));

    /* Idle: data nobody asked for drops the connection. */
    ck_assert_int_eq(write(peer, "x", 1), 1);
    ck_assert(run_until(&rec.closed, 1, 2000));
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
    ck_assert_int_eq(rec.closed, 0);
    ck_assert(run_until(&rec.closed, 1, 2000));
    run_for(50);
    ck_assert_int_eq(rec.closed, 1);
    char_socket_disconnect(chr, "test: third");
    run_for(20);
    ck_assert_int_eq(rec.closed, 1);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_disconnect_in_opened)
{
    int lfd, peer;
    CharSocket *chr;

    rec.disconnect_on_opened = true;
    chr = connected_client(&peer, &lfd);
    ck_assert(run_until(&rec.closed, 1, 2000));
    run_for(20);
    ck_assert_int_eq(rec.opened, 1);
    ck_assert_int_eq(rec.closed, 1);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_free_in_closed_handler)
{
    int lfd, peer;
    int baseline = count_fds();

    rec.free_on_closed = true;
    connected_client(&peer, &lfd);
    close(peer);
    ck_assert(run_until(&rec.closed, 1, 2000));
    run_for(50);
    ck_assert_int_eq(rec.events, 2);
    close(lfd);
    ck_assert_int_eq(count_fds(), baseline);
}
END_TEST

START_TEST(test_free_in_opened_handler)
{
    int lfd, peer;
    CharSocket *chr;

    /* A CLOSED is queued behind OPENED; after the free it must not fire. */
    lfd = raw_listen(sock_path);
    chr = new_chr(false, 0);
    rec.free_on_opened = true;
    ck_assert(char_socket_open(chr, NULL));
    char_socket_disconnect(chr, "test: before OPENED was delivered");
    ck_assert(run_until(&rec.opened, 1, 2000));
    run_for(50);
    ck_assert_int_eq(rec.events, 1);
    peer = raw_accept(lfd);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_free_with_pending_events)
{
    int lfd, peer;
    CharSocket *chr;

    lfd = raw_listen(sock_path);
    chr = new_chr(false, 10);
    ck_assert(char_socket_open(chr, NULL));
    char_socket_disconnect(chr, "test: pending");
    char_socket_free(chr);
    run_for(100);
    ck_assert_int_eq(rec.events, 0);
    peer = raw_accept(lfd);
    close(peer);
    close(lfd);
}
END_TEST

/* ---- reconnect --------------------------------------------------------- */

START_TEST(test_reconnect_late_server)
{
    CharSocket *chr = new_chr(false, 10);
    int lfd, peer;
    gint64 t0;

    ck_assert(char_socket_open(chr, NULL));
    ck_assert(!char_socket_is_connected(chr));
    run_for(100);
    ck_assert_int_eq(rec.opened, 0);
    lfd = raw_listen(sock_path);
    t0 = g_get_monotonic_time();
    ck_assert(run_until(&rec.opened, 1, 2000));
    ck_assert_int_le((g_get_monotonic_time() - t0) / 1000, 400);
    peer = raw_accept(lfd);

    /* After a close, a client with reconnect-ms connects again. */
    close(peer);
    ck_assert(run_until(&rec.closed, 1, 2000));
    ck_assert(run_until(&rec.opened, 2, 2000));
    ck_assert_int_eq(char_socket_connect_count(chr), 2);
    peer = raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_reconnect_backoff_capped)
{
    CharSocketOptions opts = { .id = "chr0", .path = sock_path,
                               .reconnect_ms = 10, .reconnect_max_ms = 40 };
    CharSocket *chr = char_socket_new(&opts, loop, NULL);
    int lfd, peer;
    gint64 t0;

    /* The file is there all along: only the timer can find the listener. */
    lfd = raw_bind(sock_path);
    char_socket_set_handler(chr, on_event, &rec);
    ck_assert(char_socket_open(chr, NULL));
    /*
     * Uncapped, attempts would come at 10, 30, 70, 150, 310, 630, 1270 ms:
     * a server listening from 700 ms would wait ~570 ms. Capped at 40 ms it
     * waits 40 ms at most.
     */
    run_for(700);
    ck_assert_int_eq(listen(lfd, 4), 0);
    t0 = g_get_monotonic_time();
    ck_assert(run_until(&rec.opened, 1, 2000));
    ck_assert_int_le((g_get_monotonic_time() - t0) / 1000, 200);
    peer = raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/*
 * A back-end that comes back creates its socket file: the client connects
 * then, not at its next backoff tick. With reconnect-ms=60000 the timer
 * alone would not try again within the test's deadline.
 */
START_TEST(test_reconnect_path_appears)
{
    CharSocketOptions opts = { .id = "chr0", .path = sock_path,
                               .reconnect_ms = 60000, .reconnect_max_ms = 60000 };
    CharSocket *chr = char_socket_new(&opts, loop, NULL);
    int lfd, peer;

    char_socket_set_handler(chr, on_event, &rec);
    ck_assert(char_socket_open(chr, NULL));
    run_for(100);
    ck_assert_int_eq(rec.opened, 0);
    lfd = raw_listen(sock_path);
    ck_assert(run_until(&rec.opened, 1, 5000));
    peer = raw_accept(lfd);

    /* Gone and back again (a new file): found again by its path. */
    close(peer);
    close(lfd);
    unlink(sock_path);
    ck_assert(run_until(&rec.closed, 1, 2000));
    run_for(50);
    lfd = raw_listen(sock_path);
    ck_assert(run_until(&rec.opened, 2, 5000));
    peer = raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_backoff_doubles)
{
    CharSocketOptions opts = { .id = "chr0", .path = sock_path,
                               .reconnect_ms = 100, .reconnect_max_ms = 10000 };
    CharSocket *chr = char_socket_new(&opts, loop, NULL);
    int lfd, peer;
    gint64 t0;

    /* The file is there all along: only the timer can find the listener. */
    lfd = raw_bind(sock_path);
    char_socket_set_handler(chr, on_event, &rec);
    ck_assert(char_socket_open(chr, NULL));
    /* Attempts at 100, 300, 700 ms; then 1500 ms. */
    run_for(750);
    ck_assert_int_eq(listen(lfd, 4), 0);
    t0 = g_get_monotonic_time();
    ck_assert(run_until(&rec.opened, 1, 3000));
    ck_assert_int_ge((g_get_monotonic_time() - t0) / 1000, 500);
    peer = raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/*
 * A peer that accepts and hangs up at once does not restart the backoff:
 * only the owner does, once a connection proved good. Otherwise a
 * back-end failing every bring-up is retried every reconnect_ms forever.
 */
START_TEST(test_backoff_survives_connect)
{
    CharSocketOptions opts = { .id = "chr0", .path = sock_path,
                               .reconnect_ms = 100, .reconnect_max_ms = 10000 };
    CharSocket *chr = char_socket_new(&opts, loop, NULL);
    int lfd = raw_listen(sock_path);
    gint64 delay_ms[4];

    char_socket_set_handler(chr, on_event, &rec);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(run_until(&rec.opened, 1, 2000));
    for (int i = 0; i < 4; i++) {
        gint64 t0;

        if (i == 3) {
            char_socket_reset_backoff(chr);
        }
        close(raw_accept(lfd));
        ck_assert(run_until(&rec.closed, i + 1, 2000));
        t0 = g_get_monotonic_time();
        ck_assert(run_until(&rec.opened, i + 2, 3000));
        delay_ms[i] = (g_get_monotonic_time() - t0) / 1000;
    }
    /* 100, 200, 400 ms; then 100 again after the reset. */
    ck_assert_int_ge(delay_ms[2], 300);
    ck_assert_int_lt(delay_ms[3], 300);
    close(raw_accept(lfd));
    char_socket_free(chr);
    close(lfd);
}
END_TEST

/*
 * Ends the connection (by a stall of stalled_ms, or, with 0, by the peer
 * closing *peer) and returns how long the reconnect took, in ms; *peer is
 * the newly accepted peer then.
 */
static gint64 drop_and_time_reconnect(CharSocket *chr, int lfd, int stalled_ms, int *peer)
{
    int closed = rec.closed, opened = rec.opened;
    gint64 t0;

    if (stalled_ms) {
        char_socket_note_stall(chr, stalled_ms);
        char_socket_disconnect(chr, "stalled");
    }
    close(*peer);
    ck_assert(run_until(&rec.closed, closed + 1, 2000));
    t0 = g_get_monotonic_time();
    ck_assert(run_until(&rec.opened, opened + 1, 3000));
    *peer = raw_accept(lfd);
    return (g_get_monotonic_time() - t0) / 1000;
}

/* A connected client chardev with these bounds (reconnect-ms 20); *peer, *lfd. */
static CharSocket *stall_chr(int timeout_ms, int reply_timeout_ms, int *peer, int *lfd)
{
    CharSocketOptions opts = { .id = "chr0", .path = sock_path, .reconnect_ms = 20,
                               .timeout_ms = timeout_ms,
                               .reply_timeout_ms = reply_timeout_ms };
    CharSocket *chr = char_socket_new(&opts, loop, NULL);

    *lfd = raw_listen(sock_path);
    char_socket_set_handler(chr, on_event, &rec);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(run_until(&rec.opened, 1, 2000));
    *peer = raw_accept(*lfd);
    return chr;
}

/*
 * A connection dropped by a stall (char_socket_note_stall) is retried no
 * sooner than the stall lasted, then twice as late per stall, even when
 * the owner says in between that a bring-up went well; a plain crash in
 * the streak does not cut it short either.
 */
START_TEST(test_stall_backoff)
{
    int peer, lfd;
    CharSocket *chr = stall_chr(3000, 250, &peer, &lfd);
    gint64 d0, d1, d2;

    ck_assert_int_eq(char_socket_reply_timeout_ms(chr, false), 250);
    ck_assert_int_eq(char_socket_reply_timeout_ms(chr, true), 3000);
    char_socket_reset_backoff(chr);
    d0 = drop_and_time_reconnect(chr, lfd, 250, &peer);
    char_socket_reset_backoff(chr);
    d1 = drop_and_time_reconnect(chr, lfd, 250, &peer);
    char_socket_reset_backoff(chr);
    d2 = drop_and_time_reconnect(chr, lfd, 0, &peer);
    /* 250 (the stall), 500 (doubled), 500 (a crash keeps the streak); not 20. */
    ck_assert_int_ge(d0, 230);
    ck_assert_int_lt(d0, 480);
    ck_assert_int_ge(d1, 480);
    ck_assert_int_ge(d2, 480);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/*
 * A connection that stays up 3 x timeout_ms (here 3 x 300 ms) without a
 * stall ends the streak: the next stall is retried after its own length
 * again, not after twice the last delay.
 */
START_TEST(test_stall_streak_ends)
{
    int peer, lfd;
    CharSocket *chr = stall_chr(300, 200, &peer, &lfd);
    gint64 d0, d1;

    d0 = drop_and_time_reconnect(chr, lfd, 200, &peer);
    /* Healthy for longer than 900 ms: the streak is over. */
    run_for(1100);
    d1 = drop_and_time_reconnect(chr, lfd, 200, &peer);
    /* 200, then 200 again (400 if the streak had gone on). */
    ck_assert_int_ge(d0, 180);
    ck_assert_int_ge(d1, 180);
    ck_assert_int_lt(d1, 380);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/* ---- server ------------------------------------------------------------ */

START_TEST(test_server_second_peer)
{
    CharSocket *chr = new_chr(true, 0);
    int p1, p2, p3;
    char c;

    ck_assert(char_socket_open(chr, NULL));
    p1 = raw_connect(sock_path);
    ck_assert(run_until(&rec.opened, 1, 2000));

    /* A second concurrent peer is turned away: it sees EOF. */
    p2 = raw_connect(sock_path);
    run_for(50);
    ck_assert_int_gt(char_io_wait(p2, POLLIN, char_io_deadline(1000)), 0);
    ck_assert_int_eq(read(p2, &c, 1), 0);
    ck_assert_int_eq(rec.opened, 1);
    ck_assert(char_socket_is_connected(chr));

    /* After the first leaves, the next one is accepted. */
    close(p1);
    ck_assert(run_until(&rec.closed, 1, 2000));
    p3 = raw_connect(sock_path);
    ck_assert(run_until(&rec.opened, 2, 2000));
    ck_assert_int_eq(char_socket_connect_count(chr), 2);
    char_socket_free(chr);
    close(p2);
    close(p3);
}
END_TEST

START_TEST(test_cycles_fd_flat)
{
    CharSocket *chr = new_chr(true, 0);
    int baseline = -1;

    ck_assert(char_socket_open(chr, NULL));
    for (int i = 0; i < 200; i++) {
        int peer = raw_connect(sock_path);

        ck_assert(run_until(&rec.opened, i + 1, 2000));
        if (i & 1) {
            close(peer);
        } else {
            char_socket_disconnect(chr, "test: cycle");
            close(peer);
        }
        ck_assert(run_until(&rec.closed, i + 1, 2000));
        if (i == 0) {
            baseline = count_fds();
        }
    }
    ck_assert_int_eq(count_fds(), baseline);
    ck_assert_int_eq(rec.opened, 200);
    ck_assert_int_eq(rec.closed, 200);
    char_socket_free(chr);
}
END_TEST

START_TEST(test_client_cycles_fd_flat)
{
    int lfd = raw_listen(sock_path);
    int baseline = count_fds();

    /* new/open/free with events pending, over and over. */
    for (int i = 0; i < 200; i++) {
        CharSocket *chr = new_chr(false, 10);
        int peer;

        ck_assert(char_socket_open(chr, NULL));
        peer = raw_accept(lfd);
        if (i & 1) {
            ck_assert(run_until(&rec.opened, (i + 1) / 2, 2000));
        }
        char_socket_free(chr);
        close(peer);
    }
    run_for(20);
    ck_assert_int_eq(count_fds(), baseline);
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
    LoopRec t = { .loop = loop }, d = { .loop = loop }, c = { .loop = loop };
    LoopRec w = { .loop = loop }, k = { .loop = loop };
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int efd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t one = 1;
    gint64 t0 = g_get_monotonic_time();
    void *cancelled;

    /* Timer: fires once, not before its time; removing itself is fine. */
    t.handle = vhost_loop_add_timer(loop, 50, self_cancel_cb, &t);
    ck_assert(run_until(&t.fired, 1, 2000));
    ck_assert_int_ge((g_get_monotonic_time() - t0) / 1000, 45);
    run_for(100);
    ck_assert_int_eq(t.fired, 1);

    /* Defer: runs once; a cancelled one never runs. */
    d.handle = vhost_loop_defer(loop, count_cb, &d);
    cancelled = vhost_loop_defer(loop, count_cb, &c);
    vhost_loop_cancel_defer(loop, cancelled);
    ck_assert(run_until(&d.fired, 1, 1000));
    run_for(20);
    ck_assert_int_eq(d.fired, 1);
    ck_assert_int_eq(c.fired, 0);
    vhost_loop_remove_timer(loop, vhost_loop_add_timer(loop, 10, count_cb, &c));
    run_for(40);
    ck_assert_int_eq(c.fired, 0);

    /* Watch removing itself from its callback, then returning false. */
    w.handle = vhost_loop_add_watch(loop, efd, VHOST_WATCH_IN, self_remove_watch_cb, &w);
    ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
    ck_assert(run_until(&w.fired, 1, 1000));
    ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
    run_for(30);
    ck_assert_int_eq(w.fired, 1);

    /* A watch that stays until removed from outside. */
    k.handle = vhost_loop_add_watch(loop, efd2, VHOST_WATCH_IN, keep_watch_cb, &k);
    ck_assert_int_eq(write(efd2, &one, sizeof(one)), sizeof(one));
    ck_assert(run_until(&k.fired, 1, 1000));
    ck_assert_int_eq(write(efd2, &one, sizeof(one)), sizeof(one));
    ck_assert(run_until(&k.fired, 2, 1000));
    vhost_loop_remove_watch(loop, k.handle);
    ck_assert_int_eq(write(efd2, &one, sizeof(one)), sizeof(one));
    run_for(30);
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

static void add(Suite *s, const char *name, const TTest *test)
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

    add(s, "client-connect", test_client_connect);
    add(s, "server-connect", test_server_connect);
    add(s, "server-wait", test_server_wait);
    add(s, "config-errors", test_config_errors);
    add(s, "not-a-socket", test_not_a_socket);
    add(s, "fds-0", test_fds_0);
    add(s, "fds-1", test_fds_1);
    add(s, "fds-3", test_fds_3);
    add(s, "fds-unexpected", test_fds_unexpected);
    add(s, "fds-too-many", test_fds_too_many);
    add(s, "read-timeout", test_read_timeout);
    add(s, "eof-partial", test_eof_partial);
    add(s, "eof-boundary", test_eof_boundary);
    add(s, "write-epipe", test_write_epipe);
    add(s, "idle-peer-close", test_idle_peer_close);
    add(s, "idle-unexpected-data", test_idle_unexpected_data);
    add(s, "disconnect-twice", test_disconnect_twice);
    add(s, "disconnect-in-opened", test_disconnect_in_opened);
    add(s, "free-in-closed-handler", test_free_in_closed_handler);
    add(s, "free-in-opened-handler", test_free_in_opened_handler);
    add(s, "free-with-pending-events", test_free_with_pending_events);
    add(s, "reconnect-late-server", test_reconnect_late_server);
    add(s, "reconnect-backoff-capped", test_reconnect_backoff_capped);
    add(s, "backoff-doubles", test_backoff_doubles);
    add(s, "reconnect-path-appears", test_reconnect_path_appears);
    add(s, "backoff-survives-connect", test_backoff_survives_connect);
    add(s, "stall-backoff", test_stall_backoff);
    add(s, "stall-streak-ends", test_stall_streak_ends);
    add(s, "server-second-peer", test_server_second_peer);
    add(s, "cycles-fd-flat", test_cycles_fd_flat);
    add(s, "client-cycles-fd-flat", test_client_cycles_fd_flat);
    add(s, "loop-adapter", test_loop_adapter);
    add(s, "error-domain", test_error_domain);
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
