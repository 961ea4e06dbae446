/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A request costs the main loop nothing: no wakeup of the GLib context
 * (an eventfd write each, which is what adding or removing a watch
 * costs), and a request from another thread while the loop runs still
 * gets its reply rather than the idle watch taking it for unsolicited data.
 *
 * The probe is GLib's own: a custom poll function sees every fd the
 * context polls, including its wakeup fd. After the requests, one
 * non-blocking iteration must find nothing ready; the probe is checked
 * against g_main_context_wakeup() itself, so it cannot pass by seeing
 * nothing at all.
 */
#include <check.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost-user-conn.h"
#include "util/vhost-user-error.h"
#include "unit-sock.h"

/* ---- A back-end that answers what has a reply, and nothing else ------- */

static gpointer echo_thread(gpointer opaque)
{
    int fd = GPOINTER_TO_INT(opaque);

    for (;;) {
        VhostUserMsg msg, r;
        int fds[VHOST_USER_MAX_FDS];
        size_t nfds = 0;

        if (!ut_recv_full(fd, &msg.hdr, sizeof(msg.hdr), fds, G_N_ELEMENTS(fds), &nfds) ||
            msg.hdr.size > sizeof(msg.payload) ||
            (msg.hdr.size && !ut_recv_full(fd, &msg.payload, msg.hdr.size, NULL, 0, NULL))) {
            break;
        }
        for (size_t i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        memset(&r, 0, sizeof(r));
        r.hdr.request = msg.hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
        r.hdr.size = 8;
        if (msg.hdr.request == VHOST_USER_GET_FEATURES) {
            r.payload.u64 = 1ull << 32;
        } else if (msg.hdr.request == VHOST_USER_GET_VRING_BASE) {
            r.payload.state = msg.payload.state;
        } else {
            continue;
        }
        ut_send_fds(fd, &r, sizeof(r.hdr) + r.hdr.size, NULL, 0);
    }
    return NULL;
}

typedef struct Fixture {
    char *dir;
    char *path;
    CharSocket *chr;
    VhostUserState *u;
    int be_fd;
    GThread *be;
} Fixture;

static void fixture_start(Fixture *f)
{
    CharSocketOptions opts = { .id = "chr0", .timeout_ms = 5000 };

    memset(f, 0, sizeof(*f));
    f->chr = ut_chardev_connected(&opts, "test-vuwake-XXXXXX", &f->dir, &f->path, &f->be_fd);
    f->be = g_thread_new("echo-backend", echo_thread, GINT_TO_POINTER(f->be_fd));
    f->u = vhost_user_state_new(f->chr, "net0");
    /* The OPENED event and whatever else the connection queued. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static void fixture_stop(Fixture *f)
{
    vhost_user_state_free(f->u);
    char_socket_disconnect(f->chr, "test done");
    g_thread_join(f->be);
    close(f->be_fd);
    char_socket_free(f->chr);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    unlink(f->path);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

/* One of each kind: a reply, an ack-less set, a set with a barrier. */
static void one_round(Fixture *f, unsigned i)
{
    VhostUserMsg msg, reply;
    GError *err = NULL;

    vhost_user_msg_init(&msg, VHOST_USER_GET_FEATURES, 0);
    ck_assert_msg(vhost_user_call(f->u, 0, &msg, &reply, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(reply.payload.u64, 1ull << 32);
    vhost_user_msg_init(&msg, VHOST_USER_GET_VRING_BASE, sizeof(VhostUserVringState));
    msg.payload.state.index = i % 4;
    msg.payload.state.num = i;
    ck_assert_msg(vhost_user_call(f->u, 0, &msg, &reply, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(reply.payload.state.num, i);
    vhost_user_msg_init(&msg, VHOST_USER_SET_VRING_NUM, sizeof(VhostUserVringState));
    msg.payload.state.index = i % 4;
    msg.payload.state.num = 256;
    ck_assert_msg(vhost_user_send(f->u, 0, &msg, NULL, 0, 0, &err), "%s", err ? err->message : "");
    ck_assert_msg(vhost_user_send(f->u, 0, &msg, NULL, 0, VHOST_USER_REQ_SYNC, &err), "%s",
                  err ? err->message : "");
}

/* ---- The probe: fds the context found ready in its polls ---------------- */

static unsigned probe_ready;

static gint probe_poll(GPollFD *ufds, guint nfds, gint timeout)
{
    gint r = g_poll(ufds, nfds, timeout);

    for (guint i = 0; r > 0 && i < nfds; i++) {
        probe_ready += ufds[i].revents != 0;
    }
    return r;
}

/* How many fds one non-blocking iteration finds ready. */
static unsigned probe_once(void)
{
    probe_ready = 0;
    g_main_context_set_poll_func(NULL, probe_poll);
    g_main_context_iteration(NULL, FALSE);
    g_main_context_set_poll_func(NULL, NULL);
    return probe_ready;
}

START_TEST(test_requests_wake_nothing)
{
    Fixture f;

    fixture_start(&f);
    ck_assert_uint_eq(probe_once(), 0);
    /* The probe sees a wakeup when there is one. */
    g_main_context_wakeup(NULL);
    ck_assert_uint_eq(probe_once(), 1);
    ck_assert_uint_eq(probe_once(), 0);

    /* From the loop's thread, as a VMM runs them from its handlers. */
    for (unsigned i = 0; i < 50; i++) {
        one_round(&f, i);
    }
    ck_assert_uint_eq(probe_once(), 0);
    ck_assert(char_socket_is_connected(f.chr));
    fixture_stop(&f);
}
END_TEST

typedef struct Worker {
    Fixture *f;
    gint done;
} Worker;

static gpointer worker_thread(gpointer opaque)
{
    Worker *w = opaque;

    for (unsigned i = 0; i < 300; i++) {
        one_round(w->f, i);
    }
    g_atomic_int_set(&w->done, 1);
    g_main_context_wakeup(NULL);
    return NULL;
}

static gboolean give_up(gpointer opaque)
{
    *(bool *)opaque = true;
    return G_SOURCE_REMOVE;
}

START_TEST(test_request_from_other_thread_while_loop_runs)
{
    Fixture f;
    Worker w = { .f = &f };
    bool expired = false;
    GThread *t;
    guint timer;

    fixture_start(&f);
    /* The loop polls the socket while the worker's replies arrive on it. */
    t = g_thread_new("worker", worker_thread, &w);
    while (!g_atomic_int_get(&w.done)) {
        g_main_context_iteration(NULL, TRUE);
    }
    g_thread_join(t);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    ck_assert(char_socket_is_connected(f.chr));
    ck_assert(!vhost_user_is_broken(f.u));

    /* The idle watch is back: a hang-up while idle is still noticed. */
    shutdown(f.be_fd, SHUT_RDWR);
    timer = g_timeout_add(5000, give_up, &expired);
    while (char_socket_is_connected(f.chr) && !expired) {
        g_main_context_iteration(NULL, TRUE);
    }
    if (!expired) {
        g_source_remove(timer);
    }
    ck_assert(!char_socket_is_connected(f.chr));
    fixture_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vhost-user-wakeup");
    TCase *tc = tcase_create("wakeup");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_requests_wake_nothing);
    tcase_add_test(tc, test_request_from_other_thread_while_loop_runs);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
