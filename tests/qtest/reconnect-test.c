/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reconnect qtest: a back-end that crashes (or is upgraded) at any point
 * of the bring-up, during a stop, or during the first negotiation must
 * cost an error message and a reconnect, never the VMM, an fd or a lost
 * reconnect; the next connection gets everything replayed (acked
 * features, protocol features, memory table, ring state).
 *
 * One VMM serves a whole sweep: the back-end drops connection after
 * connection and the VMM (reconnect-ms=10) keeps coming back, so a
 * sweep over ~40 drop points costs ~80 connections, not 40 processes.
 *
 * The harness (qtest-harness.h) runs each test in a forked subprocess with
 * its own temp dir.
 */
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "qtest-harness.h"

#define RC_WAIT_MS          WAIT_MS
#define RC_SETTLE_MS        2000
#define RC_RAM_SIZE         (64ull << 20)
#define RC_SOAK_CYCLES      1000
/* VmRSS may grow by this much over the soak (allocator slack, not leaks). */
#define RC_SOAK_RSS_SLACK_KB (4 * 1024)

/* ---- The device under test ------------------------------------------- */

typedef struct RcDevice {
    const char *id;             /* the VMM's device id in status lines */
    unsigned rings;
} RcDevice;

static const RcDevice rc_net = { "net0", 4 };    /* 2 queue pairs */
static const RcDevice rc_blk = { "blk0", 2 };

typedef struct RcTest {
    TestCtx *ctx;               /* dir, back-end, VMM argv and process */
    const RcDevice *dev;
    unsigned starts;            /* "started N rings" lines expected so far */
    char *started_line;         /* "ID: started N rings" */
    char *error_line;           /* "ID: error:" */

    /* The drop plan, read by the hook in the back-end thread. */
    GMutex plan_lock;
    unsigned plan_conn;         /* 0: no plan */
    unsigned plan_index;        /* 0-based message index on plan_conn, or */
    uint32_t plan_request;      /* ... when non-zero: its plan_index-th (1-based) */
    unsigned plan_seen;         /* plan_request seen since the plan was set */
    TbFault plan_fault;
    bool fail_init;             /* every GET_FEATURES gets a wrong reply */
} RcTest;

static TbAction rc_hook(TestBackend *tb, unsigned conn, const TbMsg *msg, void *opaque)
{
    RcTest *t = opaque;
    TbAction act = { TB_FAULT_NONE, 0, 0 };

    g_mutex_lock(&t->plan_lock);
    if (t->fail_init && msg->request == VHOST_USER_GET_FEATURES) {
        act.fault = TB_FAULT_WRONG_CODE;
    } else if (t->plan_conn != conn) {
        /* not the planned connection */
    } else if (t->plan_request) {
        if (msg->request == t->plan_request && ++t->plan_seen == t->plan_index) {
            act.fault = t->plan_fault;
        }
    } else if (tb_msg_count(tb, conn, 0) == t->plan_index + 1) {
        /* The message is logged before the hook runs: it is the last one. */
        act.fault = t->plan_fault;
    }
    g_mutex_unlock(&t->plan_lock);
    return act;
}

/* Crash on connection conn at its message number index (0-based). */
static void rc_plan(RcTest *t, unsigned conn, unsigned index, TbFault fault)
{
    g_mutex_lock(&t->plan_lock);
    t->plan_conn = conn;
    t->plan_index = index;
    t->plan_request = 0;
    t->plan_fault = fault;
    g_mutex_unlock(&t->plan_lock);
}

/* Crash on connection conn at the nth (1-based) request from now on. */
static void rc_plan_nth(RcTest *t, unsigned conn, uint32_t request, unsigned nth,
                        TbFault fault)
{
    g_mutex_lock(&t->plan_lock);
    t->plan_conn = conn;
    t->plan_index = nth;
    t->plan_request = request;
    t->plan_seen = 0;
    t->plan_fault = fault;
    g_mutex_unlock(&t->plan_lock);
}

static RcTest *rc_new(const RcDevice *dev)
{
    RcTest *t = g_new0(RcTest, 1);
    TbConfig cfg;

    t->dev = dev;
    t->started_line = g_strdup_printf("%s: started %u rings", dev->id, dev->rings);
    t->error_line = g_strdup_printf("%s: error:", dev->id);
    g_mutex_init(&t->plan_lock);
    tb_config_default(&cfg);
    cfg.queue_num = 2;
    if (dev == &rc_blk) {
        /* A plausible virtio-blk config: 1 MiB, everything else zero. */
        uint64_t capacity = GUINT64_TO_LE(2048);

        memset(cfg.config, 0, sizeof(cfg.config));
        memcpy(cfg.config, &capacity, sizeof(capacity));
    }
    t->ctx = test_setup(&cfg, false);
    tb_set_hook(t->ctx->tb, rc_hook, t);
    return t;
}

/* Small RAM without the fill pattern: a boot sweep spawns ~50 VMMs. */
static void rc_spawn(RcTest *t, unsigned reconnect_ms)
{
    TestCtx *c = t->ctx;

    g_ptr_array_set_size(c->args, 0);
    add_arg(c, "-m");
    add_arg(c, "%uM", (unsigned)(RC_RAM_SIZE >> 20));
    add_arg(c, "-object");
    add_arg(c, "memory-backend-memfd,id=mem,size=%uM,share=on",
            (unsigned)(RC_RAM_SIZE >> 20));
    add_arg(c, "-machine");
    add_arg(c, "memory-backend=mem");
    add_arg(c, "-chardev");
    add_arg(c, "socket,id=chr0,path=%s,reconnect-ms=%u", tb_socket_path(c->tb),
            reconnect_ms);
    if (t->dev == &rc_net) {
        add_net(c, 2);
    } else {
        add_arg(c, "-device");
        add_arg(c, "vhost-user-blk-pci,chardev=chr0,num-queues=2");
    }
    c->vmm = current_vmm = qtest_vmm_spawnv(c->args);
}

/*
 * Connection conn brought the device up: the VMM says so (once more than
 * before) and the back-end has every ring running.
 */
static void rc_wait_up(RcTest *t, unsigned conn)
{
    t->starts++;
    wait_stderr_n(t->ctx, t->started_line, t->starts);
    tb_wait_rings_started(t->ctx->tb, conn, t->dev->rings, RC_WAIT_MS);
    g_assert_cmpuint(tb_rings_enabled(t->ctx->tb, conn), ==, t->dev->rings);
    g_assert_cmpuint(qtest_vmm_count_stderr(t->ctx->vmm, t->started_line), ==, t->starts);
}

/* The VMM holds exactly `want` fds (within RC_SETTLE_MS: a close may lag). */
static void rc_assert_fds(RcTest *t, int want, const char *when)
{
    tb_wait_until(t->ctx->tb, fd_count_at_most, &want, RC_SETTLE_MS);
    if (qtest_vmm_fd_count(t->ctx->vmm) != want) {
        g_error("%s: the VMM holds %d fds, %d at its baseline", when,
                qtest_vmm_fd_count(t->ctx->vmm), want);
    }
}

static int rc_baseline_fds(RcTest *t)
{
    int n;

    /* A connect or eventfd set-up in flight would inflate the count. */
    g_usleep(200 * 1000);
    n = qtest_vmm_fd_count(t->ctx->vmm);
    g_assert_cmpint(n, >, 0);
    return n;
}

static void rc_free(RcTest *t)
{
    /* No violations, no sanitizer report, no fd left in this process. */
    test_teardown(t->ctx);
    g_mutex_clear(&t->plan_lock);
    g_free(t->started_line);
    g_free(t->error_line);
    g_free(t);
}

/* ---- The bring-up sweep ----------------------------------------------- */

/* Request code and ring of every message of conn, in order. */
static GArray *rc_sequence(RcTest *t, unsigned conn)
{
    GArray *seq = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    TbMsg *m;

    for (unsigned i = 0; (m = tb_msg_get(t->ctx->tb, conn, i)); i++) {
        uint64_t v = ((uint64_t)m->request << 32) | (uint32_t)m->ring;

        g_array_append_val(seq, v);
        tb_msg_free(m);
    }
    return seq;
}

static const char *rc_req_name(uint32_t request)
{
    return vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, request);
}

static uint64_t rc_u64_of(RcTest *t, unsigned conn, uint32_t request)
{
    TbMsg *m = tb_msg_find(t->ctx->tb, conn, request, -1);
    uint64_t v;

    if (!m) {
        g_error("connection %u: no %s", conn, rc_req_name(request));
    }
    g_assert_cmpuint(m->size, ==, sizeof(v));
    memcpy(&v, m->payload, sizeof(v));
    tb_msg_free(m);
    return v;
}

/*
 * Moves every ring on to idx in guest RAM, through conn's mapping, as if
 * the driver had submitted and the back-end completed idx requests: the
 * avail and the used index both, so nothing is in flight.
 */
static void rc_set_ring_idx(RcTest *t, unsigned conn, uint16_t idx)
{
    uint16_t le = GUINT16_TO_LE(idx);

    for (unsigned r = 0; r < t->dev->rings; r++) {
        TbMsg *m = tb_msg_find(t->ctx->tb, conn, VHOST_USER_SET_VRING_ADDR, (int)r);
        VhostUserVringAddr addr;
        uint64_t avail, used;

        g_assert_nonnull(m);
        g_assert_cmpuint(m->size, ==, sizeof(addr));
        memcpy(&addr, m->payload, sizeof(addr));
        tb_msg_free(m);
        g_assert_true(tb_uva_to_gpa(t->ctx->tb, conn, addr.avail_user_addr, &avail));
        g_assert_true(tb_ring_used_gpa(t->ctx->tb, conn, r, &used));
        /* struct vring_avail / vring_used { le16 flags; le16 idx; ... } */
        g_assert_true(tb_write_gpa(t->ctx->tb, conn, avail + 2, &le, sizeof(le)));
        g_assert_true(tb_write_gpa(t->ctx->tb, conn, used + 2, &le, sizeof(le)));
    }
}

/*
 * conn replayed the whole device: the same messages as the reference
 * connection, the same acked and protocol features, the whole RAM in the
 * table, and every ring resuming at used_idx.
 */
static void rc_assert_replayed(RcTest *t, unsigned conn, unsigned ref,
                               const GArray *ref_seq, uint16_t used_idx)
{
    g_autoptr(GArray) seq = rc_sequence(t, conn);

    if (seq->len != ref_seq->len ||
        memcmp(seq->data, ref_seq->data, seq->len * sizeof(uint64_t))) {
        g_error("connection %u: %u messages, not the %u of the reference bring-up "
                "(connection %u), or in another order", conn, seq->len, ref_seq->len,
                ref);
    }
    g_assert_cmphex(rc_u64_of(t, conn, VHOST_USER_SET_FEATURES), ==,
                    rc_u64_of(t, ref, VHOST_USER_SET_FEATURES));
    g_assert_cmphex(rc_u64_of(t, conn, VHOST_USER_SET_PROTOCOL_FEATURES), ==,
                    rc_u64_of(t, ref, VHOST_USER_SET_PROTOCOL_FEATURES));
    g_assert_cmphex(tb_mem_end(t->ctx->tb, conn), ==, RC_RAM_SIZE);
    for (unsigned r = 0; r < t->dev->rings; r++) {
        TbMsg *m = tb_msg_find(t->ctx->tb, conn, VHOST_USER_SET_VRING_BASE, (int)r);
        VhostUserVringState st;

        g_assert_nonnull(m);
        g_assert_cmpuint(m->size, ==, sizeof(st));
        memcpy(&st, m->payload, sizeof(st));
        if (st.num != used_idx) {
            g_error("connection %u: ring %u resumes at %u, the used index is %u",
                    conn, r, st.num, used_idx);
        }
        tb_msg_free(m);
    }
}

/* The error line of the drop names the message it hit (or the next one). */
static void rc_assert_error_names(RcTest *t, unsigned nerr_before, const GArray *ref_seq,
                                  unsigned k)
{
    g_autofree char *all = NULL;
    g_auto(GStrv) lines = NULL;
    const char *hit = rc_req_name(g_array_index(ref_seq, uint64_t, k) >> 32);
    const char *next = k + 1 < ref_seq->len ?
        rc_req_name(g_array_index(ref_seq, uint64_t, k + 1) >> 32) : hit;
    unsigned seen = 0;

    wait_stderr_n(t->ctx, t->error_line, nerr_before + 1);
    all = qtest_vmm_stderr(t->ctx->vmm);
    lines = g_strsplit(all, "\n", -1);
    for (unsigned i = 0; lines[i]; i++) {
        if (!strstr(lines[i], t->error_line) || seen++ < nerr_before) {
            continue;
        }
        if (strstr(lines[i], hit) || strstr(lines[i], next)) {
            return;
        }
        g_error("drop at message %u (%s): the error does not name %s or %s: %s",
                k, hit, hit, next, lines[i]);
    }
    g_assert_not_reached();
}

static const struct {
    const char *name;
    TbFault fault;
} rc_drop_kinds[] = {
    { "before-reply", TB_FAULT_DROP },
    { "mid-header", TB_FAULT_DROP_MID_HEADER },
    { "mid-reply", TB_FAULT_DROP_MID_REPLY },
};

/*
 * Learns the reconnect bring-up from a clean reconnect, then for every
 * message k of it and every kind of drop: the back-end crashes at k, the
 * VMM reports it, stays up and brings the device up on the next
 * connection with everything replayed, with exactly its baseline fds.
 */
static void test_drop_everywhere(gconstpointer data)
{
    RcTest *t = rc_new(data);
    g_autoptr(GArray) ref_seq = NULL;
    unsigned conn, ref, cycles = 0;
    uint16_t used_idx = 0;
    int baseline;
    gint64 t0 = g_get_monotonic_time();

    rc_spawn(t, 10);
    rc_wait_up(t, 1);
    /* Connection 1 also booted the driver; a reconnect is what we sweep. */
    tb_disconnect(t->ctx->tb, 1);
    rc_wait_up(t, 2);
    ref = 2;
    ref_seq = rc_sequence(t, ref);
    g_assert_cmpuint(ref_seq->len, >=, 5 * t->dev->rings);
    baseline = rc_baseline_fds(t);
    g_test_message("%s: a reconnect bring-up is %u messages; baseline %d fds",
                   t->dev->id, ref_seq->len, baseline);

    conn = ref;
    for (unsigned d = 0; d < G_N_ELEMENTS(rc_drop_kinds); d++) {
        for (unsigned k = 0; k < ref_seq->len; k++) {
            unsigned nerr = qtest_vmm_count_stderr(t->ctx->vmm, t->error_line);

            used_idx = (uint16_t)(used_idx + 3);
            rc_set_ring_idx(t, conn, used_idx);
            rc_plan(t, conn + 1, k, rc_drop_kinds[d].fault);
            tb_disconnect(t->ctx->tb, conn);

            tb_wait_closed(t->ctx->tb, conn + 1, RC_WAIT_MS);
            rc_assert_error_names(t, nerr, ref_seq, k);
            /* The back-end read nothing after the crash point. */
            g_assert_cmpuint(tb_msg_count(t->ctx->tb, conn + 1, 0), ==, k + 1);
            g_assert_cmpuint(tb_rings_started(t->ctx->tb, conn + 1), <, t->dev->rings);

            rc_wait_up(t, conn + 2);
            rc_assert_replayed(t, conn + 2, ref, ref_seq, used_idx);
            g_assert_true(qtest_vmm_is_alive(t->ctx->vmm));
            rc_assert_fds(t, baseline, rc_drop_kinds[d].name);
            conn += 2;
            cycles++;
        }
    }
    rc_plan(t, 0, 0, TB_FAULT_NONE);
    g_test_message("%s: %u drop cycles in %.1f s", t->dev->id, cycles,
                   (g_get_monotonic_time() - t0) / 1e6);
    assert_vmm_stops_cleanly(t->ctx);
    rc_free(t);
}

/*
 * The first bring-up is another path (negotiation, then the driver boots
 * and sets DRIVER_OK): a crash at each of its messages, one VMM each
 * since a boot happens once per VMM. The next connection must complete
 * the bring-up with the same features and the whole memory table.
 */
static void test_drop_at_boot(gconstpointer data)
{
    RcTest *t = rc_new(data);
    g_autoptr(GArray) ref_seq = NULL;
    unsigned conn = 1;
    uint64_t features, protocol_features;
    int baseline;

    rc_spawn(t, 10);
    rc_wait_up(t, 1);
    ref_seq = rc_sequence(t, 1);
    features = rc_u64_of(t, 1, VHOST_USER_SET_FEATURES);
    protocol_features = rc_u64_of(t, 1, VHOST_USER_SET_PROTOCOL_FEATURES);
    baseline = rc_baseline_fds(t);
    assert_vmm_stops_cleanly(t->ctx);
    g_test_message("%s: the first bring-up is %u messages; baseline %d fds",
                   t->dev->id, ref_seq->len, baseline);

    for (unsigned k = 0; k < ref_seq->len; k++) {
        unsigned drop = tb_conn_count(t->ctx->tb) + 1;

        qtest_vmm_free(t->ctx->vmm);
        rc_plan(t, drop, k, TB_FAULT_DROP);
        rc_spawn(t, 10);
        t->starts = 0;
        tb_wait_closed(t->ctx->tb, drop, RC_WAIT_MS);
        rc_assert_error_names(t, 0, ref_seq, k);
        g_assert_cmpuint(tb_msg_count(t->ctx->tb, drop, 0), ==, k + 1);

        conn = drop + 1;
        rc_wait_up(t, conn);
        g_assert_cmphex(rc_u64_of(t, conn, VHOST_USER_SET_FEATURES), ==, features);
        g_assert_cmphex(rc_u64_of(t, conn, VHOST_USER_SET_PROTOCOL_FEATURES), ==,
                        protocol_features);
        g_assert_cmphex(tb_mem_end(t->ctx->tb, conn), ==, RC_RAM_SIZE);
        rc_assert_fds(t, baseline, "after a crash during the first bring-up");
        assert_vmm_stops_cleanly(t->ctx);
    }
    rc_plan(t, 0, 0, TB_FAULT_NONE);
    rc_free(t);
}

/* ---- Drops while the VMM stops ---------------------------------------- */

typedef struct RcStopCase {
    const char *name;
    const RcDevice *dev;
    uint32_t request;           /* dropped at its `nth` occurrence during the stop */
    unsigned nth;               /* 1-based */
    TbFault fault;
} RcStopCase;

static const RcStopCase rc_stop_cases[] = {
    { "net/get-vring-base-first", &rc_net, VHOST_USER_GET_VRING_BASE, 1, TB_FAULT_DROP },
    { "net/get-vring-base-last", &rc_net, VHOST_USER_GET_VRING_BASE, 4, TB_FAULT_DROP },
    { "net/get-vring-base-mid-reply", &rc_net, VHOST_USER_GET_VRING_BASE, 2,
      TB_FAULT_DROP_MID_REPLY },
    { "net/vring-disable", &rc_net, VHOST_USER_SET_VRING_ENABLE, 1, TB_FAULT_DROP },
    { "blk/get-vring-base-first", &rc_blk, VHOST_USER_GET_VRING_BASE, 1, TB_FAULT_DROP },
    { "blk/get-vring-base-mid-header", &rc_blk, VHOST_USER_GET_VRING_BASE, 2,
      TB_FAULT_DROP_MID_HEADER },
};

static void test_drop_at_stop(gconstpointer data)
{
    const RcStopCase *sc = data;
    RcTest *t = rc_new(sc->dev);
    g_autofree char *stopped = g_strdup_printf("%s: stopped %u rings", t->dev->id,
                                               t->dev->rings);
    unsigned before;
    TbMsg *last;

    rc_spawn(t, 10);
    rc_wait_up(t, 1);
    before = tb_msg_count(t->ctx->tb, 1, sc->request);
    rc_plan_nth(t, 1, sc->request, sc->nth, sc->fault);
    assert_vmm_stops_cleanly(t->ctx);

    /* The VMM talked no more to the dead back-end and still stopped every ring. */
    tb_wait_closed(t->ctx->tb, 1, RC_WAIT_MS);
    g_assert_cmpuint(tb_msg_count(t->ctx->tb, 1, sc->request), ==, before + sc->nth);
    last = tb_msg_get(t->ctx->tb, 1, tb_msg_count(t->ctx->tb, 1, 0) - 1);
    g_assert_nonnull(last);
    g_assert_cmpstr(rc_req_name(last->request), ==, rc_req_name(sc->request));
    tb_msg_free(last);
    wait_stderr_n(t->ctx, stopped, 1);
    /* One connection: nothing tried to reconnect on the way out. */
    g_assert_cmpuint(tb_conn_count(t->ctx->tb), ==, 1);
    rc_free(t);
}

/* SIGTERM while the back-end is gone and the VMM keeps retrying. */
static void test_stop_while_reconnecting(void)
{
    RcTest *t = rc_new(&rc_net);

    rc_spawn(t, 1);
    rc_wait_up(t, 1);
    /* Both the socket and its listener go: every retry fails. */
    tb_set_hook(t->ctx->tb, NULL, NULL);
    tb_free(t->ctx->tb);
    t->ctx->tb = NULL;
    wait_stderr_n(t->ctx, "retrying", 1);
    g_usleep(50 * 1000);
    assert_vmm_stops_cleanly(t->ctx);
    wait_stderr_n(t->ctx, "net0: disconnected", 1);
    /* A back-end again, for the teardown: nobody may connect to it now. */
    t->ctx->tb = tb_new(t->ctx->dir, "vhost.sock", NULL);
    g_usleep(50 * 1000);
    g_assert_cmpuint(tb_conn_count(t->ctx->tb), ==, 0);
    rc_free(t);
}

/* ---- A failure during the first negotiation --------------------------- */

typedef struct RcInitCase {
    const char *name;
    const RcDevice *dev;
    TbFault fault;              /* on GET_FEATURES of connection 1 (and 2) */
    uint64_t value;
    bool twice;                 /* connection 2 fails the same way */
    const char *error;          /* in the error line */
} RcInitCase;

static const RcInitCase rc_init_cases[] = {
    { "net/wrong-code", &rc_net, TB_FAULT_WRONG_CODE, 0, false, "GET_FEATURES" },
    { "net/oversized-twice", &rc_net, TB_FAULT_OVERSIZED, 0, true, "GET_FEATURES" },
    { "blk/no-reply-flag", &rc_blk, TB_FAULT_NO_REPLY_FLAG, 0, false, "GET_FEATURES" },
    /* Not worth a reconnect: the back-end must close for the next try. */
    { "net/no-version-1", &rc_net, TB_FAULT_VALUE, 1ull << 30, false, "VERSION_1" },
    { "blk/no-version-1", &rc_blk, TB_FAULT_VALUE, 1ull << 30, false, "VERSION_1" },
};

/*
 * A bad GET_FEATURES reply on the very first connection is reported and
 * is not the end: the VMM connects again, boots the device on the next
 * connection, and later back-end crashes still get a reconnect (QEMU
 * once lost its reconnect for good after an error during init).
 */
static void test_init_failure(gconstpointer data)
{
    const RcInitCase *ic = data;
    RcTest *t = rc_new(ic->dev);
    bool mismatch = ic->fault == TB_FAULT_VALUE;
    unsigned good = ic->twice ? 3 : 2;
    int baseline;

    tb_inject(t->ctx->tb, 1, VHOST_USER_GET_FEATURES, ic->fault, ic->value);
    if (ic->twice) {
        tb_inject(t->ctx->tb, 2, VHOST_USER_GET_FEATURES, ic->fault, ic->value);
    }
    rc_spawn(t, 10);
    for (unsigned c = 1; c < good; c++) {
        g_autofree char *line = NULL;

        tb_wait_msg(t->ctx->tb, c, VHOST_USER_GET_FEATURES, 1, RC_WAIT_MS);
        wait_stderr_n(t->ctx, t->error_line, c);
        line = qtest_vmm_stderr(t->ctx->vmm);
        g_assert_nonnull(strstr(line, ic->error));
        if (mismatch) {
            /*
             * A feature mismatch is not retried against the same back-end
             * (that would spin); it waits for the back-end to go away.
             */
            g_usleep(100 * 1000);
            g_assert_false(tb_conn_closed(t->ctx->tb, c));
            g_assert_cmpuint(tb_conn_count(t->ctx->tb), ==, c);
            tb_disconnect(t->ctx->tb, c);
        } else {
            tb_wait_closed(t->ctx->tb, c, RC_WAIT_MS);
        }
        g_assert_cmpuint(tb_rings_started(t->ctx->tb, c), ==, 0);
    }
    rc_wait_up(t, good);
    baseline = rc_baseline_fds(t);
    /* And the reconnect machinery is alive for the crashes after that. */
    for (unsigned c = good; c < good + 3; c++) {
        tb_disconnect(t->ctx->tb, c);
        rc_wait_up(t, c + 1);
    }
    rc_assert_fds(t, baseline, "after the reconnects");
    g_assert_cmpuint(qtest_vmm_count_stderr(t->ctx->vmm, t->error_line), ==, good - 1);
    assert_vmm_stops_cleanly(t->ctx);
    rc_free(t);
}

static void rc_set_fail_init(RcTest *t, bool fail)
{
    g_mutex_lock(&t->plan_lock);
    t->fail_init = fail;
    g_mutex_unlock(&t->plan_lock);
}

/*
 * A back-end that accepts and then fails every negotiation: the VMM keeps
 * trying, ever more slowly (reconnect-ms doubling up to its 1 s cap), not
 * every reconnect-ms with one error line each; once the back-end is
 * healthy it comes up within the cap, and after that good connection a
 * crash is recovered at reconnect-ms again.
 */
static void test_init_failure_backoff(void)
{
    RcTest *t = rc_new(&rc_net);
    unsigned tries, errors, conn;
    gint64 t0;

    rc_set_fail_init(t, true);
    rc_spawn(t, 10);
    tb_wait_conn(t->ctx->tb, 1, RC_WAIT_MS);
    g_usleep(2 * G_USEC_PER_SEC);
    tries = tb_conn_count(t->ctx->tb);
    errors = qtest_vmm_count_stderr(t->ctx->vmm, t->error_line);
    g_test_message("failing back-end: %u connections and %u errors in 2 s", tries, errors);
    /*
     * Doubling from 10 ms: tries at about 0, 20, 60, 140, 300, 620, 1260 ms
     * (the first one right away): 7 in 2 s; at a steady 10 ms it is ~180.
     */
    g_assert_cmpuint(tries, >=, 4);
    g_assert_cmpuint(tries, <=, 12);
    g_assert_cmpuint(errors, <=, tries);
    g_assert_cmpuint(tb_rings_started(t->ctx->tb, tries), ==, 0);

    rc_set_fail_init(t, false);
    wait_stderr_n(t->ctx, t->started_line, 1);
    t->starts = 1;
    conn = tb_conn_count(t->ctx->tb);
    g_assert_cmpuint(tb_rings_started(t->ctx->tb, conn), ==, t->dev->rings);

    t0 = g_get_monotonic_time();
    tb_disconnect(t->ctx->tb, conn);
    rc_wait_up(t, conn + 1);
    /* At the cap this would take a second. */
    g_assert_cmpint((g_get_monotonic_time() - t0) / 1000, <, 500);
    assert_vmm_stops_cleanly(t->ctx);
    rc_free(t);
}

/* ---- 1000 connections ------------------------------------------------- */

/* A field of /proc/PID/status in kB, or -1. */
static long rc_status_kb(QtestVmm *vmm, const char *field)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)qtest_vmm_pid(vmm));
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strstr(text, field))) {
        return -1;
    }
    return strtol(p + strlen(field) + 1, NULL, 10);
}

/*
 * ASan holds freed memory back in its quarantine, so an ASan VMM's RSS
 * grows without a leak; without the quarantine the bound holds there too
 * (a no-op for a VMM built without ASan).
 */
static void rc_soak_asan_options(void)
{
    const char *old = g_getenv("ASAN_OPTIONS");
    g_autofree char *opts = g_strdup_printf("%s%squarantine_size_mb=0:"
                                            "thread_local_quarantine_size_kb=0",
                                            old ? old : "", old && *old ? ":" : "");

    g_setenv("ASAN_OPTIONS", opts, TRUE);
}

static void test_soak(gconstpointer data)
{
    RcTest *t = rc_new(data);
    unsigned warmup = 20, conn;
    long rss0, rss1, anon0, anon1;
    int baseline;
    gint64 t0, t1;

    rc_soak_asan_options();
    rc_spawn(t, 1);
    rc_wait_up(t, 1);
    /* Caches, the allocator's arenas and GLib's slices fill during warm-up. */
    for (conn = 1; conn <= warmup; conn++) {
        tb_disconnect(t->ctx->tb, conn);
        rc_wait_up(t, conn + 1);
    }
    baseline = rc_baseline_fds(t);
    rss0 = rc_status_kb(t->ctx->vmm, "VmRSS:");
    anon0 = rc_status_kb(t->ctx->vmm, "RssAnon:");
    g_assert_cmpint(rss0, >, 0);

    t0 = g_get_monotonic_time();
    for (unsigned i = 0; i < RC_SOAK_CYCLES; i++, conn++) {
        tb_disconnect(t->ctx->tb, conn);
        /*
         * The back-end's view only (the last SET_VRING_ENABLE of the bring-up):
         * scanning the VMM's growing stderr every cycle would be O(n^2).
         */
        tb_wait_msg(t->ctx->tb, conn + 1, VHOST_USER_SET_VRING_ENABLE, t->dev->rings,
                    RC_WAIT_MS);
    }
    t1 = g_get_monotonic_time();
    t->starts += RC_SOAK_CYCLES;
    wait_stderr_n(t->ctx, t->started_line, t->starts);
    g_assert_cmpuint(tb_conn_count(t->ctx->tb), ==, conn);
    g_assert_cmpuint(tb_rings_started(t->ctx->tb, conn), ==, t->dev->rings);
    rc_assert_fds(t, baseline, "after the soak");
    rss1 = rc_status_kb(t->ctx->vmm, "VmRSS:");
    anon1 = rc_status_kb(t->ctx->vmm, "RssAnon:");
    g_test_message("%s: %u reconnects in %.2f s (%.2f ms each); fds %d -> %d; "
                   "VmRSS %ld -> %ld kB, RssAnon %ld -> %ld kB", t->dev->id,
                   RC_SOAK_CYCLES, (t1 - t0) / 1e6, (t1 - t0) / 1e3 / RC_SOAK_CYCLES,
                   baseline, qtest_vmm_fd_count(t->ctx->vmm), rss0, rss1, anon0, anon1);
    if (rss1 - rss0 > RC_SOAK_RSS_SLACK_KB) {
        g_error("VmRSS grew by %ld kB over %u reconnects (bound %d kB)", rss1 - rss0,
                RC_SOAK_CYCLES, RC_SOAK_RSS_SLACK_KB);
    }
    g_assert_cmpuint(qtest_vmm_count_stderr(t->ctx->vmm, t->error_line), ==, 0);
    assert_vmm_stops_cleanly(t->ctx);
    rc_free(t);
}

/* Registers every case of a table as PREFIX/NAME. */
#define RC_ADD_CASES(prefix, cases, fn)                                             \
    for (unsigned i_ = 0; i_ < G_N_ELEMENTS(cases); i_++) {                         \
        g_autofree char *path_ = g_strdup_printf(prefix "/%s", (cases)[i_].name);   \
        add_test_case(path_, NULL, fn, &(cases)[i_]);                               \
    }

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);

    add_test_case("/reconnect/drop-everywhere/net", NULL, test_drop_everywhere, &rc_net);
    add_test_case("/reconnect/drop-everywhere/blk", NULL, test_drop_everywhere, &rc_blk);
    add_test_case("/reconnect/drop-at-boot/net", NULL, test_drop_at_boot, &rc_net);
    add_test_case("/reconnect/drop-at-boot/blk", NULL, test_drop_at_boot, &rc_blk);
    RC_ADD_CASES("/reconnect/drop-at-stop", rc_stop_cases, test_drop_at_stop);
    ADD_VOID_TEST("/reconnect/stop-while-reconnecting", test_stop_while_reconnecting);
    RC_ADD_CASES("/reconnect/init-failure", rc_init_cases, test_init_failure);
    ADD_VOID_TEST("/reconnect/init-failure/backoff", test_init_failure_backoff);
    add_test_case("/reconnect/soak/net", NULL, test_soak, &rc_net);
    return g_test_run();
}
