/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Liveness qtest: a back-end that stalls half-way through a message must
 * not freeze the VMM. The VMM has one event loop; the QMP monitor runs on
 * it, so the latency of query-status while a back-end misbehaves is what
 * a management stack sees.
 *
 *  - reply-stall: the back-end answers the first GET_FEATURES of every
 *    new connection with half a reply header and then nothing, again
 *    after every reconnect. A request blocks the loop until its reply
 *    timeout (reply-timeout-ms for replies the spec says come at once),
 *    so each QMP command waits at most about one timeout, however many
 *    stalls there are, and the stalls come ever further apart (backoff).
 *  - slow-reply-stall: half a GET_VRING_BASE reply (a "slow" reply) holds
 *    QMP stop for slow-reply-timeout-ms, no less and not much more; the
 *    device comes back on the next connection.
 *  - chan-partial: half a back-end channel message, then nothing for a
 *    while: the channel assembles messages on the loop, so QMP never
 *    waits for it; the rest arrives in pieces and the message is served.
 *  - chan-oversized: a channel header whose size is beyond the table's
 *    limit for that message drops the connection with a clear error;
 *    the VMM keeps running and reconnects.
 *  - bad-option: the bounds' options are checked at start-up.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "qmp-client.h"
#include "qtest-harness.h"
#include "test-backend-chan.h"

/* The chardev's bound for prompt replies in these tests. */
#define LV_REPLY_MS         500
/* And for slow replies. */
#define LV_SLOW_REPLY_MS    1500
/* How long QMP is measured while the back-end stalls. */
#define LV_MEASURE_MS       8000u
/* Scheduling slack on a loaded 2-core machine (ASan VMM, other tests). */
#define LV_SLACK_MS         1500
/*
 * No QMP command may take this long while only the channel stalls: below
 * either reply bound (2 s prompt, 10 s slow, the defaults these tests
 * keep), so a read that waited for the rest of a message would fail it,
 * and far above scheduling noise on a loaded machine.
 */
#define LV_CHAN_MAX_MS      1500
/* One QMP command's own bound: far above anything the VMM should take. */
#define LV_QMP_MAX_MS       60000

#define LV_CHAN_PF ((1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) | \
                    (1ull << VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS))

typedef struct LvCtx {
    TestCtx *t;
    QmpClient *qmp;
    char *qmp_path;
    unsigned qmp_id;

    GMutex lock;
    unsigned stall_from;        /* 0: no stall; else connections >= this one */
    uint32_t stall_request;
    GHashTable *stalled;        /* connections already stalled once */
} LvCtx;

typedef struct LvStats {
    unsigned n;
    double max_ms;
    double sum_ms;
} LvStats;

static TbAction lv_hook(TestBackend *tb, unsigned conn, const TbMsg *msg, void *opaque)
{
    LvCtx *l = opaque;
    TbAction act = { TB_FAULT_NONE, 0, 0 };

    g_mutex_lock(&l->lock);
    if (l->stall_from && conn >= l->stall_from && msg->request == l->stall_request &&
        g_hash_table_add(l->stalled, GUINT_TO_POINTER(conn))) {
        act.fault = TB_FAULT_STALL_MID_HEADER;
    }
    g_mutex_unlock(&l->lock);
    return act;
}

/* net0 on a client chardev (reconnect-ms=100 plus extra), QMP; rings up on conn 1. */
static LvCtx *lv_start(const TbConfig *cfg, const char *chardev_extra)
{
    LvCtx *l = g_new0(LvCtx, 1);

    g_mutex_init(&l->lock);
    l->stalled = g_hash_table_new(NULL, NULL);
    l->t = test_setup(cfg, false);
    tb_set_hook(l->t->tb, lv_hook, l);
    l->qmp_path = g_strdup_printf("%s/qmp.sock", l->t->dir);
    add_machine_args(l->t, "memfd");
    add_arg(l->t, "-chardev");
    add_arg(l->t, "socket,id=chr0,path=%s,reconnect-ms=100%s", tb_socket_path(l->t->tb),
            chardev_extra);
    add_net(l->t, 1);
    add_arg(l->t, "-qmp");
    add_arg(l->t, "unix:%s,server=on,wait=off", l->qmp_path);
    l->t->vmm = current_vmm = qtest_vmm_spawnv(l->t->args);
    tb_wait_rings_started(l->t->tb, 1, 2, WAIT_MS);
    l->qmp = qmp_client_connect_log(l->qmp_path, WAIT_MS, qtest_vmm_log_cb, l->t->vmm);
    return l;
}

static void lv_finish(LvCtx *l)
{
    tb_set_hook(l->t->tb, NULL, NULL);
    qmp_client_free(l->qmp);
    assert_vmm_stops_cleanly(l->t);
    test_teardown(l->t);
    g_hash_table_destroy(l->stalled);
    g_mutex_clear(&l->lock);
    g_free(l->qmp_path);
    g_free(l);
}

/* One query-status; its latency in ms. The VMM must answer, "running" if asked. */
static double lv_query_status_is(LvCtx *l, bool running)
{
    g_autofree char *cmd = g_strdup_printf("{\"execute\": \"query-status\", \"id\": %u}\n",
                                           ++l->qmp_id);
    gint64 t0 = g_get_monotonic_time();

    qmp_client_send_raw(l->qmp, cmd);
    for (;;) {
        g_autofree char *line = qmp_client_read_raw_ms(l->qmp, LV_QMP_MAX_MS);

        if (!line) {
            g_error("query-status %u: no reply within %d ms", l->qmp_id, LV_QMP_MAX_MS);
        }
        if (strstr(line, "\"event\"")) {
            continue;
        }
        g_assert_nonnull(strstr(line, running ? "\"running\"" : "\"return\""));
        return (g_get_monotonic_time() - t0) / 1000.0;
    }
}

static double lv_query_status(LvCtx *l)
{
    return lv_query_status_is(l, true);
}

static double lv_query_status_any(LvCtx *l)
{
    return lv_query_status_is(l, false);
}

/* query-status back to back for ms milliseconds. */
static void lv_measure(LvCtx *l, unsigned ms, LvStats *st)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    memset(st, 0, sizeof(*st));
    while (g_get_monotonic_time() < end) {
        double lat = lv_query_status(l);

        st->n++;
        st->sum_ms += lat;
        st->max_ms = MAX(st->max_ms, lat);
    }
}

static void lv_report(const char *what, const LvStats *st, unsigned stalls)
{
    /* On stderr: the subprocess's stdout is not shown, and these are the figures. */
    g_printerr("# %s: %u query-status in %u ms, max %.0f ms, mean %.1f ms, "
                   "%u stalls\n", what, st->n, LV_MEASURE_MS, st->max_ms,
                   st->n ? st->sum_ms / st->n : 0.0, stalls);
}

/* ---- A reply that stops half-way through its header -------------------- */

static void test_reply_stall(void)
{
    g_autofree char *extra = g_strdup_printf(",reply-timeout-ms=%u", LV_REPLY_MS);
    LvCtx *l = lv_start(NULL, extra);
    LvStats ctl, st;
    unsigned conns, stalls;

    /* Control: a healthy back-end. */
    lv_measure(l, 1000, &ctl);
    g_printerr("# control: %u query-status in 1000 ms, max %.0f ms\n", ctl.n, ctl.max_ms);

    /* From connection 2 on, every connection stalls on its first GET_FEATURES. */
    g_mutex_lock(&l->lock);
    l->stall_from = 2;
    l->stall_request = VHOST_USER_GET_FEATURES;
    g_mutex_unlock(&l->lock);
    conns = tb_conn_count(l->t->tb);
    tb_disconnect(l->t->tb, conns);

    lv_measure(l, LV_MEASURE_MS, &st);
    stalls = tb_conn_count(l->t->tb) - conns;
    lv_report("reply stall", &st, stalls);

    /* Several stalls happened, and each cost the VMM's loop one timeout. */
    g_assert_cmpuint(stalls, >=, 3);
    g_assert_cmpuint(qtest_vmm_count_stderr(l->t->vmm, "GET_FEATURES reply: no whole reply "
                                            "within " G_STRINGIFY(LV_REPLY_MS) " ms"),
                     >=, 2);
    /* Bounded by one reply timeout, whatever the number of stalls. */
    g_assert_cmpfloat(st.max_ms, <, LV_REPLY_MS + LV_SLACK_MS);
    /*
     * The stalls come ever further apart: each waits at least as long as
     * the one before held the loop, doubling. At a steady reconnect-ms
     * (100 ms) plus the 500 ms stall there would be ~13 in 8 s, with the
     * chardev's plain backoff (doubling to 1 s) ~7; this way 4.
     */
    g_assert_cmpuint(stalls, <=, 5);
    /* Most of the time, the loop is free: commands mostly answer at once. */
    g_assert_cmpuint(st.n, >, 4 * stalls);

    /* The back-end behaves again: the device comes back. */
    g_mutex_lock(&l->lock);
    l->stall_from = 0;
    g_mutex_unlock(&l->lock);
    {
        /* The next try comes after the grown delay (at most its cap). */
        unsigned now = tb_conn_count(l->t->tb);

        tb_wait_conn(l->t->tb, now + 1, 40000);
        tb_wait_rings_started(l->t->tb, now + 1, 2, WAIT_MS);
    }
    lv_finish(l);
}

/* ---- A slow reply that stops half-way ---------------------------------- */

/*
 * QMP stop asks every ring for its base (GET_VRING_BASE, a "slow" reply:
 * the back-end may have to finish requests in flight). A back-end that
 * answers with half a header holds stop for slow-reply-timeout-ms, not
 * for the prompt bound (that would cut short a busy but healthy back-end)
 * and not for ever; the VMM then answers QMP at once again, and the
 * device comes back on the next connection when the guest runs again.
 */
static void test_slow_reply_stall(void)
{
    g_autofree char *extra = g_strdup_printf(",reply-timeout-ms=%u,slow-reply-timeout-ms=%u",
                                             LV_REPLY_MS, LV_SLOW_REPLY_MS);
    LvCtx *l = lv_start(NULL, extra);
    g_autoptr(JsonNode) r = NULL;
    gint64 t0;
    double ms;

    g_mutex_lock(&l->lock);
    l->stall_from = 1;
    l->stall_request = VHOST_USER_GET_VRING_BASE;
    g_mutex_unlock(&l->lock);
    t0 = g_get_monotonic_time();
    r = qmp_client_cmd(l->qmp, "{\"execute\": \"stop\"}");
    ms = (g_get_monotonic_time() - t0) / 1000.0;
    g_printerr("# stop with a stalled GET_VRING_BASE: %.0f ms\n", ms);
    g_assert_cmpfloat(ms, >=, LV_SLOW_REPLY_MS - 50);
    g_assert_cmpfloat(ms, <, LV_SLOW_REPLY_MS + LV_SLACK_MS);
    wait_stderr_both(l->t, "GET_VRING_BASE reply: no whole reply within",
                     G_STRINGIFY(LV_SLOW_REPLY_MS) " ms");
    g_mutex_lock(&l->lock);
    l->stall_from = 0;
    g_mutex_unlock(&l->lock);
    /* The loop is free again. */
    g_assert_cmpfloat(lv_query_status_any(l), <, LV_CHAN_MAX_MS);
    /* The stop itself went through: the rings stopped without the back-end. */
    g_assert_true(json_object_has_member(json_node_get_object(r), "return"));
    /* The guest runs again; the device is back on the next connection. */
    qmp_client_ok(l->qmp, "{\"execute\": \"cont\"}");
    tb_wait_rings_started(l->t->tb, 2, 2, 40000);
    g_assert_cmpfloat(lv_query_status(l), <, LV_CHAN_MAX_MS);
    lv_finish(l);
}

/* ---- Half a back-end channel message ---------------------------------- */

static bool lv_send_bytes(int fd, const void *buf, size_t len)
{
    return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/*
 * The VMM with the back-end channel (in-band calls) on connection 1: *ch
 * reads its answers, the returned fd (caller closes) writes raw bytes.
 */
static int lv_start_chan(LvCtx **l, TbChan **ch)
{
    TbConfig cfg;
    int raw;

    tb_config_default(&cfg);
    cfg.protocol_features |= LV_CHAN_PF;
    *l = lv_start(&cfg, "");
    *ch = tb_chan_open((*l)->t->tb, 1, WAIT_MS);
    raw = tb_dup_backend_req_fd((*l)->t->tb, 1);
    g_assert_cmpint(raw, >=, 0);
    return raw;
}

static void test_chan_partial(void)
{
    LvCtx *l;
    TbChan *ch;
    LvStats st;
    VhostUserHeader hdr = {
        .request = VHOST_USER_BACKEND_VRING_CALL,
        .flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
        .size = sizeof(VhostUserVringState),
    };
    VhostUserVringState call = tb_chan_vring_state(1, 0);
    g_autofree char *why = NULL;
    uint64_t status = 99;
    int raw = lv_start_chan(&l, &ch);

    /* Half the header, then silence: the loop must not wait for the rest. */
    g_assert_true(lv_send_bytes(raw, &hdr, 5));
    lv_measure(l, 3000, &st);
    g_printerr("# half a channel header: %u query-status in 3000 ms, max %.0f ms\n",
                   st.n, st.max_ms);
    g_assert_cmpfloat(st.max_ms, <, LV_CHAN_MAX_MS);
    g_assert_cmpuint(tb_conn_count(l->t->tb), ==, 1);

    /* The rest in pieces: header, half the payload, the other half. */
    g_assert_true(lv_send_bytes(raw, (uint8_t *)&hdr + 5, sizeof(hdr) - 5));
    g_assert_cmpfloat(lv_query_status(l), <, LV_CHAN_MAX_MS);
    g_assert_true(lv_send_bytes(raw, &call, 3));
    g_assert_cmpfloat(lv_query_status(l), <, LV_CHAN_MAX_MS);
    g_assert_true(lv_send_bytes(raw, (uint8_t *)&call + 3, sizeof(call) - 3));

    /* Whole now: served and answered, on the same connection. */
    g_assert_true(tb_chan_recv_reply(ch, VHOST_USER_BACKEND_VRING_CALL, &status, NULL,
                                     WAIT_MS, &why));
    g_assert_cmpuint(status, ==, 0);
    g_assert_cmpuint(tb_conn_count(l->t->tb), ==, 1);
    g_assert_false(tb_conn_closed(l->t->tb, 1));

    /* And the next message right after it is read as a message of its own. */
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_VRING_CALL, &call, sizeof(call),
                                  NULL, 0, NULL, WAIT_MS), ==, 0);
    close(raw);
    tb_chan_free(ch);
    tb_assert_no_violations(l->t->tb);
    lv_finish(l);
}

/* ---- A channel header claiming more than the table allows -------------- */

static void test_chan_oversized(void)
{
    LvCtx *l;
    TbChan *ch;
    /* VRING_CALL's payload is a vring state (8 bytes); 64 is not. */
    VhostUserHeader hdr = {
        .request = VHOST_USER_BACKEND_VRING_CALL,
        .flags = VHOST_USER_VERSION,
        .size = 64,
    };
    int raw = lv_start_chan(&l, &ch);

    /* Only the header: the size alone must be enough to refuse it. */
    g_assert_true(lv_send_bytes(raw, &hdr, sizeof(hdr)));
    wait_stderr_both(l->t, "back-end channel: VRING_CALL", "size 64");
    g_assert_true(tb_chan_wait_closed(ch, WAIT_MS));
    tb_wait_closed(l->t->tb, 1, WAIT_MS);
    tb_wait_rings_started(l->t->tb, 2, 2, WAIT_MS);
    g_assert_cmpfloat(lv_query_status(l), <, LV_CHAN_MAX_MS);
    close(raw);
    tb_chan_free(ch);
    lv_finish(l);
}

/* ---- The options ------------------------------------------------------ */

typedef struct LvOptCase {
    const char *name;
    const char *opts;           /* appended to -chardev socket,id=chr0,path=... */
    const char *want;           /* in the VMM's stderr */
} LvOptCase;

static const LvOptCase lv_opt_cases[] = {
    { "prompt-above-slow", ",reply-timeout-ms=3000,slow-reply-timeout-ms=1000",
      "reply-timeout-ms (3000) must not exceed slow-reply-timeout-ms (1000)" },
    { "zero", ",reply-timeout-ms=0", "'reply-timeout-ms' expects a number in 1..3600000" },
    { "not-a-number", ",slow-reply-timeout-ms=soon",
      "'slow-reply-timeout-ms' expects a number in 1..3600000, got 'soon'" },
};

/* A bad bound is refused at start-up, naming the option. */
static void test_bad_option(gconstpointer data)
{
    const LvOptCase *c = data;
    TestCtx *t = test_setup(NULL, false);
    g_autofree char *err = NULL;

    add_machine_args(t, "memfd");
    add_arg(t, "-chardev");
    add_arg(t, "socket,id=chr0,path=%s%s", tb_socket_path(t->tb), c->opts);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    g_assert_cmpint(qtest_vmm_wait_exit(t->vmm, WAIT_MS), ==, 1);
    err = qtest_vmm_stderr(t->vmm);
    if (!strstr(err, c->want)) {
        g_error("%s: \"%s\" not in the VMM's stderr:\n%s", c->name, c->want, err);
    }
    g_assert_cmpuint(tb_conn_count(t->tb), ==, 0);
    test_teardown(t);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);
    ADD_VOID_TEST("/liveness/reply-stall", test_reply_stall);
    ADD_VOID_TEST("/liveness/slow-reply-stall", test_slow_reply_stall);
    ADD_VOID_TEST("/liveness/chan-partial", test_chan_partial);
    ADD_VOID_TEST("/liveness/chan-oversized", test_chan_oversized);
    for (size_t i = 0; i < G_N_ELEMENTS(lv_opt_cases); i++) {
        g_autofree char *path = g_strdup_printf("/liveness/bad-option/%s",
                                                lv_opt_cases[i].name);

        add_test_case(path, NULL, test_bad_option, &lv_opt_cases[i]);
    }
    return g_test_run();
}
