/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a request costs. First, nothing of the main loop: no wakeup of the
 * GLib context (an eventfd write each, which is what adding or removing a
 * watch costs), and a request from another thread while the loop runs
 * still gets its reply rather than the idle watch taking it for
 * unsolicited data. The probe is GLib's own: a custom poll function sees
 * every fd the context polls, including its wakeup fd; it is checked
 * against g_main_context_wakeup() itself, so it cannot pass by seeing
 * nothing at all. Second, no round trip per ack inside a batch
 * (vhost_user_batch_begin/end): the acks are owed and read in order, a
 * NACK in the middle names its message and ring, and a close in the
 * middle fails the batch cleanly.
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

typedef struct Seen {
    uint32_t request;
    uint32_t flags;
    int ring;
} Seen;

typedef struct EchoBackend {
    int fd;
    /* Set before the thread starts. */
    unsigned hold;              /* send no reply before this many messages came */
    int nack_at;                /* ack this message (0-based) with status 1; -1: none */
    int close_at;               /* hang up on receiving this message; -1: never */
    GArray *seen;               /* Seen; read once the thread is joined */
} EchoBackend;

static gpointer echo_thread(gpointer opaque)
{
    EchoBackend *be = opaque;
    GByteArray *held = g_byte_array_new();

    for (;;) {
        VhostUserMsg msg, r;
        int fds[VHOST_USER_MAX_FDS];
        size_t nfds = 0;
        Seen seen;

        if (!ut_recv_full(be->fd, &msg.hdr, sizeof(msg.hdr), fds, G_N_ELEMENTS(fds), &nfds) ||
            msg.hdr.size > sizeof(msg.payload) ||
            (msg.hdr.size && !ut_recv_full(be->fd, &msg.payload, msg.hdr.size, NULL, 0, NULL))) {
            break;
        }
        for (size_t i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        seen.request = msg.hdr.request;
        seen.flags = msg.hdr.flags;
        seen.ring = vhost_user_msg_ring_index(VHOST_USER_CHANNEL_FRONTEND, &msg);
        g_array_append_val(be->seen, seen);
        if ((int)be->seen->len - 1 == be->close_at) {
            shutdown(be->fd, SHUT_RDWR);
            break;
        }
        memset(&r, 0, sizeof(r));
        r.hdr.request = msg.hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
        r.hdr.size = 8;
        if (msg.hdr.request == VHOST_USER_GET_FEATURES) {
            r.payload.u64 = 1ull << 32;
        } else if (msg.hdr.request == VHOST_USER_GET_VRING_BASE) {
            r.payload.state = msg.payload.state;
        } else if (msg.hdr.flags & VHOST_USER_NEED_REPLY_MASK) {
            r.payload.u64 = (int)be->seen->len - 1 == be->nack_at;
        } else {
            continue;
        }
        g_byte_array_append(held, (const guint8 *)&r, sizeof(r.hdr) + r.hdr.size);
        if (be->seen->len >= be->hold) {
            ut_send_fds(be->fd, held->data, held->len, NULL, 0);
            g_byte_array_set_size(held, 0);
        }
    }
    g_byte_array_free(held, TRUE);
    return NULL;
}

typedef struct Fixture {
    char *dir;
    char *path;
    CharSocket *chr;
    VhostUserState *u;
    EchoBackend be;
    GThread *be_thread;
} Fixture;

static void fixture_start_be(Fixture *f, const EchoBackend *be)
{
    CharSocketOptions opts = { .id = "chr0", .timeout_ms = 5000 };

    memset(f, 0, sizeof(*f));
    f->be = *be;
    f->be.seen = g_array_new(FALSE, FALSE, sizeof(Seen));
    f->chr = ut_chardev_connected(&opts, "test-vupipe-XXXXXX", &f->dir, &f->path, &f->be.fd);
    f->be_thread = g_thread_new("echo-backend", echo_thread, &f->be);
    f->u = vhost_user_state_new(f->chr, "net0");
    /* The OPENED event and whatever else the connection queued. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static void fixture_start(Fixture *f)
{
    EchoBackend be = { .nack_at = -1, .close_at = -1 };

    fixture_start_be(f, &be);
}

static void fixture_stop(Fixture *f)
{
    vhost_user_state_free(f->u);
    char_socket_disconnect(f->chr, "test done");
    if (f->be_thread) {
        g_thread_join(f->be_thread);
    }
    close(f->be.fd);
    g_array_free(f->be.seen, TRUE);
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
    shutdown(f.be.fd, SHUT_RDWR);
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

/* ---- Pipelined acks ------------------------------------------------------ */

#define PIPE_RINGS 4
#define PIPE_MSGS (3 * PIPE_RINGS)

static bool send_state(Fixture *f, uint32_t request, unsigned ring, unsigned num,
                       unsigned flags, GError **errp)
{
    VhostUserMsg msg;

    vhost_user_msg_init(&msg, request, sizeof(VhostUserVringState));
    msg.payload.state.index = ring;
    msg.payload.state.num = num;
    return vhost_user_send(f->u, 0, &msg, NULL, 0, flags, errp);
}

/* Each ring's NUM, BASE and ENABLE (SYNC, as vhost_dev_start sends it). */
static bool send_rings(Fixture *f, GError **errp)
{
    for (unsigned r = 0; r < PIPE_RINGS; r++) {
        if (!send_state(f, VHOST_USER_SET_VRING_NUM, r, 256, 0, errp) ||
            !send_state(f, VHOST_USER_SET_VRING_BASE, r, r, 0, errp) ||
            !send_state(f, VHOST_USER_SET_VRING_ENABLE, r, 1, VHOST_USER_REQ_SYNC, errp)) {
            return false;
        }
    }
    return true;
}

static void start_acked(Fixture *f, unsigned hold, int nack_at, int close_at)
{
    EchoBackend be = { .hold = hold, .nack_at = nack_at, .close_at = close_at };

    fixture_start_be(f, &be);
    vhost_user_set_features(f->u, 1ull << VHOST_USER_F_PROTOCOL_FEATURES,
                            1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
}

START_TEST(test_batch_acks_collected_in_order)
{
    Fixture f;
    GError *err = NULL;
    uint32_t num;
    VhostUserMsg msg, reply;

    /*
     * The back-end answers nothing before the whole batch came: waiting
     * for an ack per message would stall on the first one.
     */
    start_acked(&f, PIPE_MSGS, -1, -1);
    vhost_user_batch_begin(f.u);
    ck_assert_msg(send_rings(&f, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(f.u->pending_acks->len, PIPE_MSGS);
    ck_assert_msg(vhost_user_batch_end(f.u, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(f.u->pending_acks->len, 0);
    ck_assert_uint_eq(f.u->replies_received, PIPE_MSGS);

    /* A reply that is not an ack collects the owed acks first, then its own. */
    vhost_user_batch_begin(f.u);
    ck_assert(send_state(&f, VHOST_USER_SET_VRING_NUM, 6, 256, 0, &err));
    vhost_user_msg_init(&msg, VHOST_USER_GET_VRING_BASE, sizeof(VhostUserVringState));
    msg.payload.state.index = 5;
    msg.payload.state.num = 77;
    ck_assert_msg(vhost_user_call(f.u, 0, &msg, &reply, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(reply.payload.state.index, 5);
    ck_assert_uint_eq(reply.payload.state.num, 77);
    ck_assert(send_state(&f, VHOST_USER_SET_VRING_BASE, 6, 0, 0, &err));
    ck_assert_msg(vhost_user_batch_end(f.u, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(f.u->replies_received, PIPE_MSGS + 3);

    /* Outside a batch every request waits for its ack again. */
    ck_assert(send_state(&f, VHOST_USER_SET_VRING_NUM, 7, 256, 0, &err));
    ck_assert_uint_eq(f.u->pending_acks->len, 0);
    ck_assert_uint_eq(f.u->replies_received, PIPE_MSGS + 4);
    num = f.u->messages_sent;
    ck_assert_uint_eq(num, PIPE_MSGS + 4);
    ck_assert(probe_once() == 0);
    ck_assert(char_socket_is_connected(f.chr));
    fixture_stop(&f);
}
END_TEST

START_TEST(test_batch_order_on_the_wire)
{
    Fixture f;
    GError *err = NULL;

    start_acked(&f, PIPE_MSGS, -1, -1);
    vhost_user_batch_begin(f.u);
    ck_assert(send_rings(&f, &err));
    ck_assert(vhost_user_batch_end(f.u, &err));
    /* The back-end's log is read once its thread is gone. */
    char_socket_disconnect(f.chr, "test done");
    g_thread_join(f.be_thread);
    f.be_thread = NULL;
    ck_assert_uint_eq(f.be.seen->len, PIPE_MSGS);
    for (unsigned i = 0; i < PIPE_MSGS; i++) {
        const Seen *m = &g_array_index(f.be.seen, Seen, i);
        static const uint32_t order[] = {
            VHOST_USER_SET_VRING_NUM, VHOST_USER_SET_VRING_BASE, VHOST_USER_SET_VRING_ENABLE,
        };

        ck_assert_uint_eq(m->request, order[i % 3]);
        ck_assert_int_eq(m->ring, (int)(i / 3));
        ck_assert_uint_eq(m->flags, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK);
    }
    fixture_stop(&f);
}
END_TEST

START_TEST(test_batch_nack_in_the_middle)
{
    Fixture f;
    GError *err = NULL;

    /* The fifth message is ring 1's SET_VRING_BASE. */
    start_acked(&f, PIPE_MSGS, 4, -1);
    vhost_user_batch_begin(f.u);
    ck_assert_msg(send_rings(&f, &err), "%s", err ? err->message : "");
    ck_assert(!vhost_user_batch_end(f.u, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED));
    ck_assert_str_eq(err->message, "net0: back-end failed SET_VRING_BASE of ring 1 (status 1)");
    g_clear_error(&err);
    ck_assert(vhost_user_is_broken(f.u));
    ck_assert(!char_socket_is_connected(f.chr));
    ck_assert_uint_eq(f.u->pending_acks->len, 0);
    fixture_stop(&f);
}
END_TEST

START_TEST(test_batch_close_in_the_middle)
{
    Fixture f;
    GError *err = NULL, *end_err = NULL;
    gint64 t0 = g_get_monotonic_time();

    /* The back-end hangs up on the sixth message, having acked nothing. */
    start_acked(&f, PIPE_MSGS, -1, 5);
    vhost_user_batch_begin(f.u);
    (void)send_rings(&f, &err);
    ck_assert(!vhost_user_batch_end(f.u, &end_err));
    ck_assert_ptr_nonnull(end_err);
    /* The first owed ack, SET_VRING_NUM of ring 0, is named either way. */
    ck_assert_msg(strstr(end_err->message, "SET_VRING_NUM"), "%s", end_err->message);
    ck_assert_msg(strstr(end_err->message, "net0"), "%s", end_err->message);
    g_clear_error(&end_err);
    g_clear_error(&err);
    ck_assert(!char_socket_is_connected(f.chr));
    ck_assert_uint_eq(f.u->pending_acks->len, 0);
    /* A hang-up is seen at once, not after a reply timeout. */
    ck_assert_int_lt(g_get_monotonic_time() - t0, G_TIME_SPAN_SECOND);
    fixture_stop(&f);
}
END_TEST

static gpointer other_thread_send(gpointer opaque)
{
    Fixture *f = opaque;
    GError *err = NULL;

    ck_assert_msg(send_state(f, VHOST_USER_SET_VRING_ENABLE, 3, 1, VHOST_USER_REQ_SYNC, &err),
                  "%s", err ? err->message : "");
    return NULL;
}

START_TEST(test_batch_is_the_owners_only)
{
    Fixture f;
    GError *err = NULL;

    start_acked(&f, 0, -1, -1);
    vhost_user_batch_begin(f.u);
    ck_assert(send_state(&f, VHOST_USER_SET_VRING_NUM, 0, 256, 0, &err));
    ck_assert_uint_eq(f.u->pending_acks->len, 1);
    /* Another thread's SYNC request returns once its own ack is read. */
    g_thread_join(g_thread_new("other", other_thread_send, &f));
    ck_assert_uint_eq(f.u->pending_acks->len, 0);
    ck_assert_uint_eq(f.u->replies_received, 2);
    ck_assert(vhost_user_batch_end(f.u, &err));
    fixture_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vhost-user-pipeline");
    TCase *tc = tcase_create("wakeup");
    TCase *pipe = tcase_create("pipeline");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_requests_wake_nothing);
    tcase_add_test(tc, test_request_from_other_thread_while_loop_runs);
    suite_add_tcase(s, tc);
    tcase_add_test(pipe, test_batch_acks_collected_in_order);
    tcase_add_test(pipe, test_batch_order_on_the_wire);
    tcase_add_test(pipe, test_batch_nack_in_the_middle);
    tcase_add_test(pipe, test_batch_close_in_the_middle);
    tcase_add_test(pipe, test_batch_is_the_owners_only);
    suite_add_tcase(s, pipe);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
