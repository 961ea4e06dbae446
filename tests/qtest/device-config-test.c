/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the device front-ends tell the back-end about their configuration,
 * on the wire, with the scripted test back-end:
 *
 * - virtio-net's host_mtu goes out as NET_SET_MTU with the configured
 *   value when NET_MTU is negotiated (before the rings start, on every
 *   connection), and never otherwise.
 */
#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "qtest-harness.h"

#define NET_RINGS_LINE  "net0: started 2 rings"

/* ---- net: NET_SET_MTU ------------------------------------------------- */

static TestCtx *start_net_mtu(bool offer_net_mtu, const char *devopts)
{
    TbConfig cfg;
    TestCtx *t;

    tb_config_default(&cfg);
    if (offer_net_mtu) {
        cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_NET_MTU;
    }
    t = test_setup(&cfg, false);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_arg(t, "-netdev");
    add_arg(t, "vhost-user,id=net0,chardev=chr0,queues=1");
    add_arg(t, "-device");
    add_arg(t, "virtio-net-pci,netdev=net0%s", devopts);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    return t;
}

/* NET_SET_MTU on conn: exactly once, 9000, before the first ring kick. */
static void assert_set_mtu(TestCtx *t, unsigned conn)
{
    TbMsg *m = tb_msg_find(t->tb, conn, VHOST_USER_NET_SET_MTU, -1);
    uint64_t mtu;

    g_assert_nonnull(m);
    g_assert_cmpuint(m->size, ==, sizeof(mtu));
    memcpy(&mtu, m->payload, sizeof(mtu));
    g_assert_cmpuint(mtu, ==, 9000);
    tb_msg_free(m);
    g_assert_cmpuint(tb_msg_count(t->tb, conn, VHOST_USER_NET_SET_MTU), ==, 1);
    g_assert_cmpint(tb_msg_pos(t->tb, conn, VHOST_USER_NET_SET_MTU, -1), <,
                    tb_msg_pos(t->tb, conn, VHOST_USER_SET_VRING_KICK, -1));
}

static void test_net_set_mtu(void)
{
    TestCtx *t = start_net_mtu(true, ",host_mtu=9000");

    wait_stderr_n(t, NET_RINGS_LINE, 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    assert_set_mtu(t, 1);

    /* A new back-end hears it too. */
    tb_disconnect(t->tb, 1);
    tb_wait_rings_started(t->tb, 2, 2, WAIT_MS);
    wait_stderr_n(t, NET_RINGS_LINE, 2);
    assert_set_mtu(t, 2);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/*
 * Without NET_MTU the back-end is not told (the test back-end would count
 * an ungated request as a violation); without host_mtu nobody is.
 */
static void test_net_set_mtu_not_sent(gconstpointer data)
{
    bool offer = GPOINTER_TO_INT(data);
    TestCtx *t = start_net_mtu(offer, offer ? "" : ",host_mtu=9000");

    wait_stderr_n(t, NET_RINGS_LINE, 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_NET_SET_MTU), ==, 0);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);

    ADD_VOID_TEST("/device-config/net/set-mtu", test_net_set_mtu);
    add_test_case("/device-config/net/set-mtu-not-negotiated", NULL,
                  test_net_set_mtu_not_sent, GINT_TO_POINTER(0));
    add_test_case("/device-config/net/no-host-mtu", NULL,
                  test_net_set_mtu_not_sent, GINT_TO_POINTER(1));

    return g_test_run();
}
