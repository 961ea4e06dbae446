/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user qtest: the test process plays the back-end (test-backend.c),
 * the VMM under test (vhost-user-vmm, from $VMM_BINARY) runs as a child.
 *
 * The harness (qtest-harness.c) runs each test in a forked subprocess with
 * its own temp dir, a deadline on every wait and an overall timeout.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "util/vhost-user-msg.h"
#include "qtest-harness.h"

/* ---- read-guest-mem ----------------------------------------------------- */

static void check_fill_pattern_page(TestCtx *t, uint64_t gpa)
{
    uint64_t v;

    if (!tb_read_gpa(t->tb, 1, gpa, &v, sizeof(v))) {
        g_error("GPA 0x%" PRIx64 " is not in the mapped memory table", gpa);
    }
    if (v != (gpa ^ FILL_XOR)) {
        g_error("GPA 0x%" PRIx64 ": read 0x%016" PRIx64 ", fill pattern 0x%016" PRIx64,
                gpa, v, (uint64_t)(gpa ^ FILL_XOR));
    }
}

static void test_read_guest_mem(const char *mem)
{
    TestCtx *t = test_setup(NULL, false);

    add_machine_args(t, mem);
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    g_assert_cmpuint(tb_mem_end(t->tb, 1), ==, RAM_SIZE);
    for (uint64_t gpa = 0; gpa < 0x100000; gpa += PAGE_SIZE) {
        check_fill_pattern_page(t, gpa);
    }
    check_fill_pattern_page(t, RAM_SIZE - PAGE_SIZE);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_read_guest_mem_memfd(void)
{
    test_read_guest_mem("memfd");
}

static void test_read_guest_mem_file(void)
{
    test_read_guest_mem("file");
}

/* ---- multiqueue --------------------------------------------------------- */

static void test_multiqueue(void)
{
    static const uint32_t once[] = {
        VHOST_USER_SET_FEATURES, VHOST_USER_SET_MEM_TABLE, VHOST_USER_SET_OWNER,
        VHOST_USER_GET_QUEUE_NUM, VHOST_USER_SET_PROTOCOL_FEATURES,
    };
    TbConfig cfg;
    TestCtx *t;

    tb_config_default(&cfg);
    cfg.queue_num = 2;
    t = test_start_net_mq(&cfg, 2);

    wait_stderr_n(t, "net0: started 4 rings", 1);
    tb_wait_rings_started(t->tb, 1, 4, WAIT_MS);
    for (unsigned ring = 0; ring < 4; ring++) {
        g_assert_true(tb_ring_started(t->tb, 1, ring));
    }
    g_assert_cmpuint(tb_rings_enabled(t->tb, 1), ==, 4);
    for (unsigned i = 0; i < G_N_ELEMENTS(once); i++) {
        unsigned n = tb_msg_count(t->tb, 1, once[i]);
        if (n != 1) {
            g_error("%s received %u times on the connection, expected once",
                    vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, once[i]), n);
        }
    }

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- connect-fail / flags-mismatch ------------------------------------- */

static void test_connect_fail(void)
{
    TestCtx *t = test_setup(NULL, false);

    tb_inject(t->tb, 1, 0, TB_FAULT_DROP, 0);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    tb_wait_closed(t->tb, 1, WAIT_MS);
    tb_wait_rings_started(t->tb, 2, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 1);
    wait_stderr_n(t, "net0: error:", 1);
    g_assert_cmpuint(tb_rings_started(t->tb, 1), ==, 0);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_flags_mismatch(void)
{
    TestCtx *t = test_setup(NULL, false);

    tb_inject(t->tb, 1, VHOST_USER_SET_FEATURES, TB_FAULT_DROP, 0);
    tb_inject(t->tb, 2, VHOST_USER_GET_FEATURES, TB_FAULT_VALUE, 0);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    tb_wait_closed(t->tb, 1, WAIT_MS);
    tb_wait_msg(t->tb, 2, VHOST_USER_GET_FEATURES, 1, WAIT_MS);
    wait_stderr_both(t, "net0: error:", "VERSION_1");
    /* A back-end lacking VERSION_1 must not take the VMM down. */
    g_usleep(500 * 1000);
    g_assert_true(qtest_vmm_is_alive(t->vmm));
    g_assert_cmpuint(tb_rings_started(t->tb, 2), ==, 0);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_SET_VRING_KICK), ==, 0);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- reconnect ---------------------------------------------------------- */

static void test_reconnect(void)
{
    TestCtx *t = test_start_net(NULL);
    uint64_t used_gpa;
    uint16_t idx = 5;
    TbMsg *base;

    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    if (!tb_ring_used_gpa(t->tb, 1, 0, &used_gpa)) {
        g_error("ring 0's used address is not inside the memory table");
    }
    /* struct vring_used { le16 flags; le16 idx; ... } */
    g_assert_true(tb_write_gpa(t->tb, 1, used_gpa + 2, &idx, sizeof(idx)));

    /* The back-end vanishes: no GET_VRING_BASE can be answered. */
    wait_stderr_n(t, "net0: link up", 1);
    tb_disconnect(t->tb, 1);
    /* The guest sees the link go down with the back-end, and come back. */
    wait_stderr_n(t, "net0: link down", 1);
    tb_wait_rings_started(t->tb, 2, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 2);
    wait_stderr_n(t, "net0: link up", 2);

    base = tb_msg_find(t->tb, 2, VHOST_USER_SET_VRING_BASE, 0);
    g_assert_nonnull(base);
    g_assert_cmpuint(base->size, ==, sizeof(VhostUserVringState));
    {
        VhostUserVringState st;
        memcpy(&st, base->payload, sizeof(st));
        g_assert_cmpuint(st.index, ==, 0);
        g_assert_cmpuint(st.num, ==, 5);
    }
    tb_msg_free(base);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- bad-reply -------------------------------------------------------- */

typedef struct BadReplyCase {
    const char *name;
    uint32_t request;
    TbFault fault;
} BadReplyCase;

static const BadReplyCase bad_reply_cases[] = {
    { "wrong-code", VHOST_USER_GET_FEATURES, TB_FAULT_WRONG_CODE },
    { "no-reply-flag", VHOST_USER_GET_FEATURES, TB_FAULT_NO_REPLY_FLAG },
    { "bad-version", VHOST_USER_GET_FEATURES, TB_FAULT_BAD_VERSION },
    { "oversized", VHOST_USER_GET_FEATURES, TB_FAULT_OVERSIZED },
    { "undersized", VHOST_USER_GET_FEATURES, TB_FAULT_UNDERSIZED },
    { "extra-fds", VHOST_USER_GET_FEATURES, TB_FAULT_EXTRA_FDS },
};

static void test_bad_reply(gconstpointer data)
{
    const BadReplyCase *bc = data;
    const char *req = vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, bc->request);
    TestCtx *t;
    int baseline;

    t = test_start_net(NULL);
    tb_inject(t->tb, 2, bc->request, bc->fault, 0);

    /* Connection 1: healthy; its steady state is the fd baseline. */
    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    /* Let transient fds (connect, eventfd setup) settle before counting. */
    g_usleep(200 * 1000);
    baseline = qtest_vmm_fd_count(t->vmm);
    g_assert_cmpint(baseline, >, 0);

    /* Connection 2: the bad reply. */
    tb_disconnect(t->tb, 1);
    tb_wait_msg(t->tb, 2, bc->request, 1, WAIT_MS);
    wait_stderr_both(t, "net0: error:", req);
    tb_wait_closed(t->tb, 2, WAIT_MS);

    /* Connection 3: healthy again, nothing left behind. */
    tb_wait_rings_started(t->tb, 3, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 2);
    if (!tb_wait_until(t->tb, fd_count_at_most, &baseline, 2000)) {
        g_error("%s: VMM has %d fds after recovery, %d before the bad reply",
                bc->name, qtest_vmm_fd_count(t->vmm), baseline);
    }
    g_assert_true(qtest_vmm_is_alive(t->vmm));

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- reply-ack ---------------------------------------------------------- */

/* Every reply-less request after SET_PROTOCOL_FEATURES carries NEED_REPLY (or none does). */
static void check_need_reply(TestCtx *t, unsigned conn, bool expect)
{
    bool negotiated = false;
    unsigned checked = 0;
    TbMsg *m;

    for (unsigned i = 0; (m = tb_msg_get(t->tb, conn, i)); i++) {
        const VhostUserMsgInfo *info =
            vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND, m->request);
        bool need = m->flags & VHOST_USER_NEED_REPLY_MASK;

        g_assert_nonnull(info);
        if (!expect && need) {
            g_error("%s carries NEED_REPLY without REPLY_ACK", info->name);
        }
        if (expect && negotiated && info->reply == VHOST_USER_RK_NONE && !need) {
            g_error("%s (message %u) has no NEED_REPLY although REPLY_ACK was "
                    "negotiated", info->name, i);
        }
        checked += negotiated && info->reply == VHOST_USER_RK_NONE;
        if (m->request == VHOST_USER_SET_PROTOCOL_FEATURES) {
            negotiated = true;
        }
        tb_msg_free(m);
    }
    if (expect) {
        g_assert_true(negotiated);
        g_assert_cmpuint(checked, >, 0);
    }
}

static void test_reply_ack(bool on)
{
    TbConfig cfg;
    TestCtx *t;

    tb_config_default(&cfg);
    if (!on) {
        cfg.protocol_features &= ~(1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    }
    t = test_start_net(&cfg);
    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    check_need_reply(t, 1, on);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_reply_ack_on(void)
{
    test_reply_ack(true);
}

static void test_reply_ack_off(void)
{
    test_reply_ack(false);
}

static void test_reply_ack_fail(void)
{
    TestCtx *t = test_setup(NULL, false);

    tb_inject(t->tb, 1, VHOST_USER_SET_MEM_TABLE, TB_FAULT_ACK_FAIL, 1);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    tb_wait_msg(t->tb, 1, VHOST_USER_SET_MEM_TABLE, 1, WAIT_MS);
    wait_stderr_n(t, "back-end failed SET_MEM_TABLE", 1);
    /* Give a wrong VMM time to go on starting rings regardless. */
    g_usleep(300 * 1000);
    g_assert_cmpuint(tb_rings_started(t->tb, 1), ==, 0);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_VRING_KICK), ==, 0);
    g_assert_true(qtest_vmm_is_alive(t->vmm));

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- server-mode / clean-stop ----------------------------------------- */

static void test_server_mode(void)
{
    TestCtx *t = test_setup(NULL, true);
    g_autofree char *path = g_build_filename(t->dir, "vmm.sock", NULL);

    add_machine_args(t, "memfd");
    add_arg(t, "-chardev");
    add_arg(t, "socket,id=chr0,path=%s,server=on,wait=off", path);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    wait_stderr_n(t, "vhost-user-vmm: ready", 1);
    tb_connect(t->tb, path, WAIT_MS);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 1);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_clean_stop(void)
{
    TestCtx *t = test_start_net(NULL);

    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);

    assert_vmm_stops_cleanly(t);
    for (unsigned ring = 0; ring < 2; ring++) {
        if (!tb_ring_stopped(t->tb, 1, ring)) {
            g_error("no GET_VRING_BASE for ring %u before the VMM exited", ring);
        }
    }
    /* stderr is drained up to EOF: the line is there or never will be. */
    wait_stderr_n(t, "net0: stopped 2 rings", 1);
    test_teardown(t);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);

    ADD_VOID_TEST("/vhost-user/read-guest-mem/memfd", test_read_guest_mem_memfd);
    ADD_VOID_TEST("/vhost-user/read-guest-mem/file", test_read_guest_mem_file);
    ADD_VOID_TEST("/vhost-user/multiqueue", test_multiqueue);
    ADD_VOID_TEST("/vhost-user/connect-fail", test_connect_fail);
    ADD_VOID_TEST("/vhost-user/flags-mismatch", test_flags_mismatch);
    ADD_VOID_TEST("/vhost-user/reconnect", test_reconnect);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_reply_cases); i++) {
        g_autofree char *path = g_strdup_printf("/vhost-user/bad-reply/%s",
                                                bad_reply_cases[i].name);
        add_test_case(path, NULL, test_bad_reply, &bad_reply_cases[i]);
    }
    ADD_VOID_TEST("/vhost-user/reply-ack/on", test_reply_ack_on);
    ADD_VOID_TEST("/vhost-user/reply-ack/off", test_reply_ack_off);
    ADD_VOID_TEST("/vhost-user/reply-ack/fail", test_reply_ack_fail);
    ADD_VOID_TEST("/vhost-user/server-mode", test_server_mode);
    ADD_VOID_TEST("/vhost-user/clean-stop", test_clean_stop);

    return g_test_run();
}
