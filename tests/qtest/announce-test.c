/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Announcing the guest's MAC (vhost_user_net_announce) through the VMM's
 * announce-self, against the test back-end: SEND_RARP carries the
 * device's MAC in the first six bytes of its u64, is sent once per round
 * on the connection (not once per queue pair), and only to a back-end
 * that negotiated the RARP protocol feature (the test back-end counts a
 * gated message without its feature as a violation). A back-end without
 * RARP gets nothing, and the VMM says why in a status line.
 */
#include <string.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "qmp-client.h"
#include "qtest-harness.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

typedef struct AnCtx {
    TestCtx *t;
    QmpClient *qmp;
} AnCtx;

/* net0 with `queues` pairs and guest_mac over the test back-end; rings running. */
static AnCtx *an_start(bool rarp, unsigned queues)
{
    AnCtx *a = g_new0(AnCtx, 1);
    g_autofree char *qmp_path = NULL;
    TbConfig cfg;

    tb_config_default(&cfg);
    cfg.queue_num = queues;
    if (rarp) {
        cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_RARP;
    }
    a->t = test_setup(&cfg, false);
    qmp_path = g_strdup_printf("%s/qmp.sock", a->t->dir);
    add_machine_args(a->t, "memfd");
    add_client_chardev(a->t, true);
    add_arg(a->t, "-netdev");
    add_arg(a->t, "vhost-user,id=net0,chardev=chr0,queues=%u", queues);
    add_arg(a->t, "-device");
    add_arg(a->t, "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56%s",
            queues > 1 ? ",mq=on" : "");
    add_arg(a->t, "-qmp");
    add_arg(a->t, "unix:%s,server=on,wait=off", qmp_path);
    a->t->vmm = current_vmm = qtest_vmm_spawnv(a->t->args);
    tb_wait_rings_started(a->t->tb, 1, 2 * queues, WAIT_MS);
    a->qmp = qmp_client_connect_log(qmp_path, WAIT_MS, qtest_vmm_log_cb, a->t->vmm);
    return a;
}

static void an_finish(AnCtx *a)
{
    tb_assert_no_violations(a->t->tb);
    qmp_client_free(a->qmp);
    assert_vmm_stops_cleanly(a->t);
    test_teardown(a->t);
    g_free(a);
}

static void assert_rarp_payload(TestBackend *tb, unsigned i)
{
    TbMsg *m = tb_msg_get(tb, 1, i);
    uint8_t want[8] = { 0 };

    memcpy(want, guest_mac, sizeof(guest_mac));
    g_assert_cmpuint(m->request, ==, VHOST_USER_SEND_RARP);
    g_assert_cmpuint(m->size, ==, 8);
    g_assert_cmpmem(m->payload, 8, want, 8);
    tb_msg_free(m);
}

/* Two rounds over 2 queue pairs: two SEND_RARP with the MAC, one per round. */
static void test_rarp(void)
{
    AnCtx *a = an_start(true, 2);
    TestBackend *tb = a->t->tb;
    unsigned n;

    json_node_unref(qmp_client_ok(a->qmp, "{\"execute\":\"announce-self\",\"arguments\":"
                                  "{\"initial\":20,\"max\":20,\"step\":0,\"rounds\":2}}"));
    tb_wait_msg(tb, 1, VHOST_USER_SEND_RARP, 2, WAIT_MS);
    wait_stderr_n(a->t, "announce: net0: SEND_RARP sent", 2);
    /* No third one: the rounds are over. */
    g_usleep(200 * 1000);
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SEND_RARP), ==, 2);
    n = tb_msg_count(tb, 1, 0);
    for (unsigned i = 0; i < n; i++) {
        TbMsg *m = tb_msg_get(tb, 1, i);
        bool hit = m->request == VHOST_USER_SEND_RARP;

        tb_msg_free(m);
        if (hit) {
            assert_rarp_payload(tb, i);
        }
    }
    an_finish(a);
}

/* No RARP: no SEND_RARP, a status line naming why, and the command still succeeds. */
static void test_no_rarp(void)
{
    AnCtx *a = an_start(false, 1);

    json_node_unref(qmp_client_ok(a->qmp, "{\"execute\":\"announce-self\",\"arguments\":"
                                  "{\"rounds\":1,\"interfaces\":[\"net0\"]}}"));
    wait_stderr_n(a->t, "announce: net0: nothing to announce with: the back-end did not "
                  "negotiate the RARP protocol feature", 1);
    g_usleep(200 * 1000);
    g_assert_cmpuint(tb_msg_count(a->t->tb, 1, VHOST_USER_SEND_RARP), ==, 0);
    g_free(qmp_client_fails(a->qmp, "DeviceNotFound", "{\"execute\":\"announce-self\","
                            "\"arguments\":{\"interfaces\":[\"net1\"]}}"));
    an_finish(a);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);
    ADD_VOID_TEST("/announce/rarp", test_rarp);
    ADD_VOID_TEST("/announce/no-rarp", test_no_rarp);
    return g_test_run();
}
