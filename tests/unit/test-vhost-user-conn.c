/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost-user request path (hw/virtio/vhost-user-conn.c) and the device
 * layer on top of it, against a fake back-end thread written here. The
 * fake answers like a well-behaved back-end unless a test arms one fault
 * for one request: wrong code, missing REPLY flag, oversized or undersized
 * reply, extra fds, a failed ack, or a hang-up. The device layer's tests
 * are in test-vhost-user-conn-dev.c, on the fixture of test-vhost-user-conn.h.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost-user-negotiate.h"
#include "util/vhost-user-error.h"
#include "unit-sock.h"

#include "test-vhost-user-conn.h"

/* ---- The fake back-end ------------------------------------------------ */

static gpointer be_thread(gpointer opaque)
{
    FakeBackend *be = opaque;

    for (;;) {
        VhostUserMsg msg, r;
        int fds[VHOST_USER_MAX_FDS];
        size_t nfds = 0, rsize = 0;
        LoggedMsg lm = { 0 };
        bool reply;
        Fault fault = FAULT_NONE;
        int extra[3];
        bool send_fd = false;

        if (!ut_recv_full(be->fd, &msg.hdr, sizeof(msg.hdr), fds, G_N_ELEMENTS(fds), &nfds)) {
            break;
        }
        if (msg.hdr.size > sizeof(msg.payload) ||
            (msg.hdr.size && !ut_recv_full(be->fd, &msg.payload, msg.hdr.size, NULL, 0, NULL))) {
            break;
        }
        for (size_t i = 0; i < nfds; i++) {
            close(fds[i]);
        }

        memset(&r, 0, sizeof(r));
        r.hdr.request = msg.hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
        reply = true;

        g_mutex_lock(&be->lock);
        lm.hdr = msg.hdr;
        lm.nfds = nfds;
        memcpy(lm.payload, &msg.payload, MIN(msg.hdr.size, sizeof(lm.payload)));
        g_array_append_val(be->log, lm);
        if (be->fault != FAULT_NONE && be->fault_req == msg.hdr.request) {
            fault = be->fault;
            be->fault = FAULT_NONE;
        }
        switch (msg.hdr.request) {
        case VHOST_USER_GET_FEATURES:
            r.payload.u64 = be->features;
            rsize = 8;
            break;
        case VHOST_USER_GET_PROTOCOL_FEATURES:
            r.payload.u64 = be->protocol_features;
            rsize = 8;
            break;
        case VHOST_USER_SET_PROTOCOL_FEATURES:
            be->acked_protocol_features = msg.payload.u64;
            reply = false;
            break;
        case VHOST_USER_GET_QUEUE_NUM:
            r.payload.u64 = be->queue_num;
            rsize = 8;
            break;
        case VHOST_USER_GET_VRING_BASE:
            r.payload.state.index = msg.payload.state.index;
            r.payload.state.num = 42 + msg.payload.state.index;
            rsize = 8;
            break;
        case VHOST_USER_GET_INFLIGHT_FD:
            r.payload.inflight = msg.payload.inflight;
            r.payload.inflight.mmap_size = 4096;
            rsize = sizeof(VhostUserInflight);
            send_fd = true;
            break;
        case VHOST_USER_GET_CONFIG:
            r.payload.config = msg.payload.config;
            for (uint32_t i = 0; i < msg.payload.config.size && i < 256; i++) {
                r.payload.config.region[i] = (uint8_t)(i + 1);
            }
            rsize = msg.hdr.size;
            break;
        default:
            reply = false;
            break;
        }
        if (msg.hdr.flags & VHOST_USER_NEED_REPLY_MASK) {
            reply = true;
            r.payload.u64 = 0;
            rsize = 8;
        }
        g_cond_broadcast(&be->cond);
        g_mutex_unlock(&be->lock);

        switch (fault) {
        case FAULT_NONE:
            break;
        case FAULT_WRONG_CODE:
            r.hdr.request++;
            break;
        case FAULT_NO_REPLY_FLAG:
            r.hdr.flags = VHOST_USER_VERSION;
            break;
        case FAULT_OVERSIZED:
            r.hdr.size = 5000;
            ut_send_fds(be->fd, &r.hdr, sizeof(r.hdr), NULL, 0);
            continue;
        case FAULT_UNDERSIZED:
            rsize = 4;
            break;
        case FAULT_EXTRA_FDS:
            for (int i = 0; i < 3; i++) {
                extra[i] = eventfd(0, EFD_CLOEXEC);
            }
            r.hdr.size = (uint32_t)rsize;
            ut_send_fds(be->fd, &r, sizeof(r.hdr) + rsize, extra, 3);
            for (int i = 0; i < 3; i++) {
                close(extra[i]);
            }
            continue;
        case FAULT_ACK_FAIL:
            r.payload.u64 = 1;
            break;
        case FAULT_HANGUP:
            shutdown(be->fd, SHUT_RDWR);
            goto out;
        case FAULT_CONFIG_SHORT:
            r.payload.config.size--;
            rsize--;
            break;
        case FAULT_WRONG_INDEX:
            r.payload.state.index += 3;
            break;
        case FAULT_SLOW:
            g_usleep(SLOW_REPLY_MS * 1000);
            break;
        case FAULT_HALF_HEADER:
            g_usleep(400 * 1000);
            ut_send_fds(be->fd, &r.hdr, sizeof(r.hdr) / 2, NULL, 0);
            continue;
        }
        if (reply) {
            int efd = send_fd ? eventfd(0, EFD_CLOEXEC) : -1;

            r.hdr.size = (uint32_t)rsize;
            ut_send_fds(be->fd, &r, sizeof(r.hdr) + rsize, &efd, send_fd ? 1 : 0);
            if (efd >= 0) {
                close(efd);
            }
        }
    }
out:
    g_mutex_lock(&be->lock);
    be->exited = true;
    g_cond_broadcast(&be->cond);
    g_mutex_unlock(&be->lock);
    return NULL;
}

/* Waits (5 s at most) until the back-end has logged n messages. */
static void be_wait_count(FakeBackend *be, guint n)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;

    g_mutex_lock(&be->lock);
    while (be->log->len < n && !be->exited) {
        if (!g_cond_wait_until(&be->cond, &be->lock, deadline)) {
            break;
        }
    }
    g_mutex_unlock(&be->lock);
    ck_assert_uint_ge(be->log->len, n);
}

const LoggedMsg *vc_be_msg(FakeBackend *be, guint i)
{
    ck_assert_uint_lt(i, be->log->len);
    return &g_array_index(be->log, LoggedMsg, i);
}

void vc_be_arm(FakeBackend *be, uint32_t req, Fault fault)
{
    g_mutex_lock(&be->lock);
    be->fault_req = req;
    be->fault = fault;
    g_mutex_unlock(&be->lock);
}

/* ---- Fixture: chardev (client) <-> fake back-end over a unix socket --- */

/* The chardev's reply-timeout-ms for the next fixture (0: its default). */
static int fixture_prompt_ms;

void vc_fixture_start(Fixture *f, uint64_t features, uint64_t protocol_features)
{
    CharSocketOptions opts = { .id = "chr0", .timeout_ms = 3000,
                               .reply_timeout_ms = fixture_prompt_ms };

    memset(f, 0, sizeof(*f));
    f->chr = ut_chardev_connected(&opts, "test-vuconn-XXXXXX", &f->dir, &f->path, &f->be.fd);
    ck_assert(char_socket_is_connected(f->chr));

    g_mutex_init(&f->be.lock);
    g_cond_init(&f->be.cond);
    f->be.log = g_array_new(FALSE, TRUE, sizeof(LoggedMsg));
    f->be.features = features;
    f->be.protocol_features = protocol_features;
    f->be.queue_num = 2;
    f->be.thread = g_thread_new("fake-backend", be_thread, &f->be);

    f->u = vhost_user_state_new(f->chr, "net0");
}

static void fixture_negotiate(Fixture *f)
{
    GError *err = NULL;

    ck_assert_msg(vhost_user_negotiate(f->u, &err), "%s", err ? err->message : "?");
    ck_assert(f->u->negotiated);
}

void vc_fixture_stop(Fixture *f)
{
    vhost_user_state_free(f->u);
    /* Closing our end lets the back-end thread see EOF and finish. */
    char_socket_disconnect(f->chr, "test done");
    g_thread_join(f->be.thread);
    close(f->be.fd);
    char_socket_free(f->chr);
    /* Let deferred chardev work run and release what it holds. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    g_array_free(f->be.log, TRUE);
    g_cond_clear(&f->be.cond);
    g_mutex_clear(&f->be.lock);
    unlink(f->path);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

/* ---- Request helpers ---------------------------------------------------- */

static bool req_get_vring_base(Fixture *f, unsigned vq_index, uint32_t idx,
                               uint32_t *num, GError **errp)
{
    VhostUserMsg msg, reply;

    vhost_user_msg_init(&msg, VHOST_USER_GET_VRING_BASE, sizeof(VhostUserVringState));
    msg.payload.state.index = idx;
    if (!vhost_user_call(f->u, vq_index, &msg, &reply, errp)) {
        return false;
    }
    *num = reply.payload.state.num;
    return true;
}

static bool req_u64(Fixture *f, unsigned vq_index, uint32_t request, uint64_t val,
                    unsigned flags, GError **errp)
{
    VhostUserMsg msg;

    vhost_user_msg_init(&msg, request, 8);
    msg.payload.u64 = val;
    return vhost_user_send(f->u, vq_index, &msg, NULL, 0, flags, errp);
}

static bool req_get_features(Fixture *f, uint64_t *val, GError **errp)
{
    VhostUserMsg msg, reply;

    vhost_user_msg_init(&msg, VHOST_USER_GET_FEATURES, 0);
    if (!vhost_user_call(f->u, 0, &msg, &reply, errp)) {
        return false;
    }
    *val = reply.payload.u64;
    return true;
}

/* After a protocol error: broken, dropped, and the next request fails fast. */
void vc_assert_broken(Fixture *f)
{
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time();
    uint32_t num;

    ck_assert(f->u->broken);
    ck_assert(!char_socket_is_connected(f->chr));
    ck_assert(!req_get_vring_base(f, 0, 0, &num, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED));
    ck_assert_ptr_nonnull(strstr(err->message, "net0"));
    ck_assert_int_lt(g_get_monotonic_time() - t0, G_TIME_SPAN_SECOND / 10);
    g_error_free(err);
}

/* ---- Tests -------------------------------------------------------------- */

START_TEST(test_negotiate_and_good_replies)
{
    Fixture f;
    GError *err = NULL;
    uint32_t num = 0;
    const LoggedMsg *m;

    /* CRYPTO_SESSION (a crypto device's) is offered but not implemented: not taken. */
    vc_fixture_start(&f, F_PROTO | F_V1, PF(MQ) | PF(REPLY_ACK) | PF(CRYPTO_SESSION) | PF(CONFIG));
    fixture_negotiate(&f);
    ck_assert_uint_eq(f.u->backend_features, F_PROTO | F_V1);
    ck_assert_uint_eq(vhost_user_protocol_features(f.u), PF(MQ) | PF(REPLY_ACK) | PF(CONFIG));
    ck_assert_uint_eq(f.u->queue_num, 2);
    ck_assert(vhost_user_has_protocol_feature(f.u, VHOST_USER_PROTOCOL_F_CONFIG));
    ck_assert(!vhost_user_has_protocol_feature(f.u, VHOST_USER_PROTOCOL_F_CRYPTO_SESSION));
    ck_assert(!vhost_user_has_protocol_feature(f.u, 200));

    /* A second negotiate is a no-op. */
    ck_assert(vhost_user_negotiate(f.u, &err));

    be_wait_count(&f.be, 5);
    ck_assert_uint_eq(f.be.log->len, 5);
    ck_assert_uint_eq(vc_be_msg(&f.be, 0)->hdr.request, VHOST_USER_GET_FEATURES);
    ck_assert_uint_eq(vc_be_msg(&f.be, 1)->hdr.request, VHOST_USER_GET_PROTOCOL_FEATURES);
    m = vc_be_msg(&f.be, 2);
    ck_assert_uint_eq(m->hdr.request, VHOST_USER_SET_PROTOCOL_FEATURES);
    /* The back-end learns of REPLY_ACK from this very message: no NEED_REPLY. */
    ck_assert_uint_eq(m->hdr.flags, VHOST_USER_VERSION);
    ck_assert_uint_eq(f.be.acked_protocol_features, PF(MQ) | PF(REPLY_ACK) | PF(CONFIG));
    ck_assert_uint_eq(vc_be_msg(&f.be, 3)->hdr.request, VHOST_USER_GET_QUEUE_NUM);
    m = vc_be_msg(&f.be, 4);
    ck_assert_uint_eq(m->hdr.request, VHOST_USER_SET_OWNER);
    ck_assert_uint_eq(m->hdr.flags, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK);

    ck_assert_msg(req_get_vring_base(&f, 0, 3, &num, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(num, 45);
    /* A reply with a payload never asks for an ack. */
    ck_assert_uint_eq(vc_be_msg(&f.be, 5)->hdr.flags, VHOST_USER_VERSION);
    ck_assert_uint_eq(f.u->messages_sent, 6);
    ck_assert_uint_eq(f.u->replies_received, 5);
    ck_assert(!f.u->broken);
    vc_fixture_stop(&f);
}
END_TEST

START_TEST(test_no_protocol_features)
{
    Fixture f;
    GError *err = NULL;

    vc_fixture_start(&f, F_V1, PF(REPLY_ACK));
    fixture_negotiate(&f);
    ck_assert_uint_eq(vhost_user_protocol_features(f.u), 0);
    ck_assert_uint_eq(f.u->queue_num, 1);
    ck_assert_uint_eq(f.be.log->len >= 1, 1);

    /* Gated on bit 30: refused before anything is sent, connection kept. */
    ck_assert(!req_u64(&f, 0, VHOST_USER_SET_PROTOCOL_FEATURES, 0, 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH));
    ck_assert_ptr_nonnull(strstr(err->message, "net0: SET_PROTOCOL_FEATURES needs"));
    g_clear_error(&err);
    ck_assert(!f.u->broken);
    ck_assert(char_socket_is_connected(f.chr));
    vc_fixture_stop(&f);
}
END_TEST

START_TEST(test_gate_refused)
{
    Fixture f;
    GError *err = NULL;
    VhostUserMsg msg, reply;
    unsigned sent;

    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK));
    fixture_negotiate(&f);
    sent = f.u->messages_sent;

    vhost_user_msg_init(&msg, VHOST_USER_GET_CONFIG, VHOST_USER_CONFIG_HDR_SIZE + 4);
    msg.payload.config.size = 4;
    ck_assert(!vhost_user_call(f.u, 0, &msg, &reply, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH));
    ck_assert_str_eq(err->message, "net0: GET_CONFIG needs protocol feature CONFIG");
    g_clear_error(&err);
    ck_assert_uint_eq(f.u->messages_sent, sent);
    ck_assert(!f.u->broken);
    vc_fixture_stop(&f);
}
END_TEST

START_TEST(test_device_scope_from_other_vq)
{
    Fixture f;
    GError *err = NULL;
    uint32_t num;

    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK));
    fixture_negotiate(&f);

    ck_assert(!req_u64(&f, 2, VHOST_USER_SET_FEATURES, F_PROTO, 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE));
    ck_assert_ptr_nonnull(strstr(err->message, "SET_FEATURES"));
    g_clear_error(&err);
    ck_assert(!f.u->broken);

    /* Ring-scope requests from another vhost_dev are fine. */
    ck_assert(req_get_vring_base(&f, 2, 2, &num, &err));
    ck_assert_uint_eq(num, 44);
    vc_fixture_stop(&f);
}
END_TEST

typedef struct FaultCase {
    Fault fault;
    int code;
    const char *text;
} FaultCase;

static const FaultCase fault_cases[] = {
    { FAULT_WRONG_CODE, VHOST_USER_ERROR_INVALID_MESSAGE,
      "net0: GET_VRING_BASE reply: request 12" },
    { FAULT_NO_REPLY_FLAG, VHOST_USER_ERROR_INVALID_MESSAGE, "REPLY not set" },
    { FAULT_OVERSIZED, VHOST_USER_ERROR_OVERSIZED, "net0: GET_VRING_BASE reply: size 5000" },
    { FAULT_UNDERSIZED, VHOST_USER_ERROR_INVALID_MESSAGE, "size 4, expected 8" },
    { FAULT_EXTRA_FDS, VHOST_USER_ERROR_WRONG_FDS, "GET_VRING_BASE reply" },
    { FAULT_HANGUP, -1, "net0: GET_VRING_BASE reply" },
    /* The table's semantic check, in the request path for every caller. */
    { FAULT_WRONG_INDEX, VHOST_USER_ERROR_INVALID_MESSAGE,
      "net0: GET_VRING_BASE reply: ring index 3 but ring 0 was asked for" },
};

START_TEST(test_bad_reply)
{
    const FaultCase *fc = &fault_cases[_i];
    unsigned baseline = ut_count_fds();
    gint64 t0;
    Fixture f;
    GError *err = NULL;
    uint32_t num;

    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK));
    fixture_negotiate(&f);
    vc_be_arm(&f.be, VHOST_USER_GET_VRING_BASE, fc->fault);

    t0 = g_get_monotonic_time();
    ck_assert(!req_get_vring_base(&f, 0, 0, &num, &err));
    ck_assert_ptr_nonnull(err);
    /* Fast: nothing waited for payload bytes that never come. */
    ck_assert_int_lt(g_get_monotonic_time() - t0, G_TIME_SPAN_SECOND);
    if (fc->code >= 0) {
        ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, fc->code),
                      "%s: code %d", err->message, err->code);
    } else {
        ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED) ||
                  g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_PARTIAL_MESSAGE));
    }
    ck_assert_msg(strstr(err->message, fc->text), "'%s' lacks '%s'", err->message, fc->text);
    g_clear_error(&err);
    vc_assert_broken(&f);
    vc_fixture_stop(&f);
    /* Every fd the peer passed was closed. */
    ck_assert_uint_eq(ut_count_fds(), baseline);
}
END_TEST

/*
 * The table's wait class picks the bound: a slow reply (GET_VRING_BASE)
 * may take longer than the prompt bound, a prompt one (GET_FEATURES) may
 * not; and a reply that stops half-way through its header costs one
 * bound, not a wait for it to start plus a full one for its bytes.
 */
START_TEST(test_reply_timeout_class)
{
    Fixture f;
    GError *err = NULL;
    uint64_t v = 0;
    uint32_t num = 0;
    gint64 t0, ms;

    fixture_prompt_ms = 500;
    vc_fixture_start(&f, F_PROTO, 0);
    fixture_prompt_ms = 0;
    fixture_negotiate(&f);
    vc_be_arm(&f.be, VHOST_USER_GET_VRING_BASE, FAULT_SLOW);
    ck_assert_msg(req_get_vring_base(&f, 0, 0, &num, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(num, 42);

    vc_be_arm(&f.be, VHOST_USER_GET_FEATURES, FAULT_SLOW);
    t0 = g_get_monotonic_time();
    ck_assert(!vhost_user_call_u64(f.u, 0, VHOST_USER_GET_FEATURES, &v, &err));
    ms = (g_get_monotonic_time() - t0) / 1000;
    ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT), "%s",
                  err->message);
    ck_assert_msg(strstr(err->message, "GET_FEATURES reply: no reply within 500 ms"), "%s",
                  err->message);
    ck_assert_int_ge(ms, 480);
    ck_assert_int_lt(ms, SLOW_REPLY_MS);
    g_clear_error(&err);
    vc_assert_broken(&f);
    vc_fixture_stop(&f);

    fixture_prompt_ms = 500;
    vc_fixture_start(&f, F_PROTO, 0);
    fixture_prompt_ms = 0;
    fixture_negotiate(&f);
    vc_be_arm(&f.be, VHOST_USER_GET_FEATURES, FAULT_HALF_HEADER);
    t0 = g_get_monotonic_time();
    ck_assert(!vhost_user_call_u64(f.u, 0, VHOST_USER_GET_FEATURES, &v, &err));
    ms = (g_get_monotonic_time() - t0) / 1000;
    ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT), "%s",
                  err->message);
    ck_assert_msg(strstr(err->message, "no whole reply within 500 ms"), "%s", err->message);
    /* One deadline: 400 ms of waiting plus a fresh bound would be 900 ms or more. */
    ck_assert_int_lt(ms, 850);
    g_clear_error(&err);
    vc_assert_broken(&f);
    vc_fixture_stop(&f);
}
END_TEST

/* Our own malformed message is refused by the table before it is sent. */
START_TEST(test_outgoing_validated)
{
    Fixture f;
    GError *err = NULL;
    VhostUserMsg msg;
    unsigned sent;

    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK));
    fixture_negotiate(&f);
    sent = f.u->messages_sent;

    /* Unknown bits in a SET_VRING_CALL u64 (only index and NOFD exist). */
    vhost_user_msg_init(&msg, VHOST_USER_SET_VRING_CALL, 8);
    msg.payload.u64 = VHOST_USER_VRING_NOFD_MASK | (1ull << 20);
    ck_assert(!vhost_user_send(f.u, 0, &msg, NULL, 0, 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE));
    ck_assert_msg(strstr(err->message, "net0: outgoing message refused by the table: "
                         "SET_VRING_CALL: u64"), "%s", err->message);
    g_clear_error(&err);
    /* A SET_VRING_KICK with a fd but the NOFD bit. */
    vhost_user_msg_init(&msg, VHOST_USER_SET_VRING_KICK, 8);
    msg.payload.u64 = VHOST_USER_VRING_NOFD_MASK;
    ck_assert(!vhost_user_send(f.u, 0, &msg, &f.be.fd, 1, 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE));
    g_clear_error(&err);
    /* A caller bug: nothing reached the back-end, the connection stays. */
    ck_assert_uint_eq(f.u->messages_sent, sent);
    ck_assert(!f.u->broken);
    vc_fixture_stop(&f);
}
END_TEST

START_TEST(test_reply_ack_negotiated)
{
    Fixture f;
    GError *err = NULL;
    VhostUserMsg msg;
    guint n;

    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK));
    fixture_negotiate(&f);
    n = f.be.log->len;

    /* Every reply-less request is acked, SYNC or not; no barrier. */
    vhost_user_msg_init(&msg, VHOST_USER_SET_VRING_NUM, sizeof(VhostUserVringState));
    msg.payload.state.num = 256;
    ck_assert_msg(vhost_user_send(f.u, 0, &msg, NULL, 0, 0, &err),
                  "%s", err ? err->message : "");
    ck_assert(req_u64(&f, 0, VHOST_USER_SET_FEATURES, F_PROTO, VHOST_USER_REQ_SYNC, &err));
    ck_assert_uint_eq(f.be.log->len, n + 2);
    ck_assert_uint_eq(vc_be_msg(&f.be, n)->hdr.flags,
                      VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK);
    ck_assert_uint_eq(vc_be_msg(&f.be, n + 1)->hdr.request, VHOST_USER_SET_FEATURES);
    ck_assert_uint_eq(vc_be_msg(&f.be, n + 1)->hdr.flags,
                      VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK);

    /* A failed ack names the request and its status, and drops the peer. */
    vc_be_arm(&f.be, VHOST_USER_SET_VRING_NUM, FAULT_ACK_FAIL);
    ck_assert(!vhost_user_send(f.u, 0, &msg, NULL, 0, 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED));
    ck_assert_str_eq(err->message, "net0: back-end failed SET_VRING_NUM (status 1)");
    g_clear_error(&err);
    vc_assert_broken(&f);
    vc_fixture_stop(&f);
}
END_TEST

START_TEST(test_reply_ack_absent_barrier)
{
    Fixture f;
    GError *err = NULL;
    guint n;

    vc_fixture_start(&f, F_PROTO | F_V1, PF(MQ));
    fixture_negotiate(&f);
    /* SET_OWNER had no ack: wait until the back-end has seen it. */
    be_wait_count(&f.be, 5);
    n = f.be.log->len;

    /* No ack without REPLY_ACK ... */
    ck_assert(req_u64(&f, 0, VHOST_USER_SET_FEATURES, F_V1, 0, &err));
    be_wait_count(&f.be, n + 1);
    ck_assert_uint_eq(vc_be_msg(&f.be, n)->hdr.flags, VHOST_USER_VERSION);

    /* ... so SYNC is followed by a GET_FEATURES round trip. */
    ck_assert_msg(req_u64(&f, 0, VHOST_USER_SET_FEATURES, F_V1, VHOST_USER_REQ_SYNC, &err),
                  "%s", err ? err->message : "");
    ck_assert_uint_eq(f.be.log->len, n + 3);
    ck_assert_uint_eq(vc_be_msg(&f.be, n + 1)->hdr.request, VHOST_USER_SET_FEATURES);
    ck_assert_uint_eq(vc_be_msg(&f.be, n + 1)->hdr.flags, VHOST_USER_VERSION);
    ck_assert_uint_eq(vc_be_msg(&f.be, n + 2)->hdr.request, VHOST_USER_GET_FEATURES);

    /* A barrier answering with other features is a protocol error. */
    g_mutex_lock(&f.be.lock);
    f.be.features = F_V1;
    g_mutex_unlock(&f.be.lock);
    ck_assert(!req_u64(&f, 0, VHOST_USER_SET_FEATURES, F_V1, VHOST_USER_REQ_SYNC, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE));
    ck_assert_ptr_nonnull(strstr(err->message, "barrier"));
    g_clear_error(&err);
    vc_assert_broken(&f);
    vc_fixture_stop(&f);
}
END_TEST

START_TEST(test_not_connected)
{
    Fixture f;
    GError *err = NULL;
    uint64_t val;

    vc_fixture_start(&f, F_PROTO, 0);
    char_socket_disconnect(f.chr, "test");
    ck_assert(!req_get_features(&f, &val, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED));
    ck_assert_ptr_nonnull(strstr(err->message, "net0: GET_FEATURES"));
    g_clear_error(&err);
    ck_assert(!vhost_user_negotiate(f.u, &err));
    g_clear_error(&err);
    ck_assert(!f.u->negotiated);
    vc_fixture_stop(&f);
}
END_TEST

/* A reply fd is handed to the caller, and only when it has room for it. */
START_TEST(test_reply_fd_handed_over)
{
    unsigned baseline = ut_count_fds();
    Fixture f;
    GError *err = NULL;
    VhostUserMsg msg, reply;
    int fd = -1;

    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK) | PF(INFLIGHT_SHMFD));
    f.u->supported_protocol_features |= PF(INFLIGHT_SHMFD);
    fixture_negotiate(&f);

    vhost_user_msg_init(&msg, VHOST_USER_GET_INFLIGHT_FD, sizeof(VhostUserInflight));
    msg.payload.inflight.num_queues = 2;
    msg.payload.inflight.queue_size = 8;
    ck_assert_msg(vhost_user_call_fd(f.u, 0, &msg, NULL, 0, &reply, &fd, &err),
                  "%s", err ? err->message : "");

    ck_assert_int_ge(fd, 0);
    ck_assert_uint_eq(reply.payload.inflight.mmap_size, 4096);
    close(fd);

    /* The caller said it takes no fds: the reply's fd is closed, the peer dropped. */
    ck_assert(!vhost_user_call(f.u, 0, &msg, &reply, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS));
    g_clear_error(&err);
    vc_assert_broken(&f);
    vc_fixture_stop(&f);
    ck_assert_uint_eq(ut_count_fds(), baseline);
}
END_TEST

typedef struct Hammer {
    Fixture *f;
    uint32_t idx;
    unsigned errors;
} Hammer;

static gpointer hammer_thread(gpointer opaque)
{
    Hammer *h = opaque;

    for (int i = 0; i < 200; i++) {
        uint32_t num = 0;

        if (!req_get_vring_base(h->f, 0, h->idx, &num, NULL) || num != 42 + h->idx) {
            h->errors++;
        }
    }
    return NULL;
}

/* Two threads: each gets its own reply, never the other's. */
START_TEST(test_threads_serialized)
{
    Fixture f;
    Hammer h[2];
    GThread *t[2];

    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK));
    fixture_negotiate(&f);
    for (int i = 0; i < 2; i++) {
        h[i] = (Hammer){ .f = &f, .idx = (uint32_t)i * 5 };
        t[i] = g_thread_new("hammer", hammer_thread, &h[i]);
    }
    for (int i = 0; i < 2; i++) {
        g_thread_join(t[i]);
        ck_assert_uint_eq(h[i].errors, 0);
    }
    ck_assert(!f.u->broken);
    vc_fixture_stop(&f);
}
END_TEST

static Suite *conn_suite(void)
{
    Suite *s = suite_create("vhost-user-conn");
    TCase *tc = tcase_create("request");
    TCase *dev = tcase_create("vhost-dev");

    tcase_add_test(tc, test_negotiate_and_good_replies);
    tcase_add_test(tc, test_no_protocol_features);
    tcase_add_test(tc, test_gate_refused);
    tcase_add_test(tc, test_device_scope_from_other_vq);
    tcase_add_loop_test(tc, test_bad_reply, 0, G_N_ELEMENTS(fault_cases));
    tcase_add_test(tc, test_reply_timeout_class);
    tcase_add_test(tc, test_reply_ack_negotiated);
    tcase_add_test(tc, test_outgoing_validated);
    tcase_add_test(tc, test_reply_ack_absent_barrier);
    tcase_add_test(tc, test_not_connected);
    tcase_add_test(tc, test_reply_fd_handed_over);
    tcase_add_test(tc, test_threads_serialized);
    suite_add_tcase(s, tc);
    vhost_user_conn_dev_add_tests(dev);
    suite_add_tcase(s, dev);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conn_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
