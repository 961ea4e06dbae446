/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the device front-ends tell the back-end about their configuration,
 * on the wire, with the scripted test back-end:
 *
 * - virtio-net's host_mtu goes out as NET_SET_MTU with the configured
 *   value when NET_MTU is negotiated (before the rings start, on every
 *   connection), and never otherwise;
 * - virtio-blk's write cache mode, written by the guest driver (workload
 *   key wce=, VIRTIO_BLK_F_CONFIG_WCE), goes out as SET_CONFIG of the
 *   writeback byte (offset 32, size 1, FRONTEND), and again to a back-end
 *   that replaces the first one.
 */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include <glib.h>

#include "hw/virtio/virtio-blk-defs.h"
#include "util/vhost-user-msg.h"
#include "qtest-harness.h"

#define NET_RINGS_LINE  "net0: started 2 rings"
#define BLK_RINGS_LINE  "blk0: started 1 rings"

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

/* ---- blk: SET_CONFIG of writeback ---------------------------------------- */

/* One queue, writeback 1, CONFIG_WCE offered or not. */
static TestCtx *start_blk_wce(bool offer_wce, const char *workload)
{
    uint64_t capacity = GUINT64_TO_LE(2048);
    uint32_t blk_size = GUINT32_TO_LE(512);
    TbConfig cfg;
    TestCtx *t;

    tb_config_default(&cfg);
    cfg.features |= (1ull << VIRTIO_BLK_F_BLK_SIZE) |
                    (offer_wce ? 1ull << VIRTIO_BLK_F_CONFIG_WCE : 0);
    cfg.queue_num = 1;
    memset(cfg.config, 0, sizeof(cfg.config));
    memcpy(cfg.config + offsetof(VirtioBlkConfig, capacity), &capacity, 8);
    memcpy(cfg.config + offsetof(VirtioBlkConfig, blk_size), &blk_size, 4);
    cfg.config[offsetof(VirtioBlkConfig, writeback)] = 1;
    t = test_setup(&cfg, false);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_arg(t, "-device");
    add_arg(t, "vhost-user-blk-pci,chardev=chr0,num-queues=1");
    add_arg(t, "-workload");
    add_arg(t, "blk0:%s", workload);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    return t;
}

/* The only SET_CONFIG on conn writes writeback = 0, as the front-end. */
static void assert_set_config_wce0(TestCtx *t, unsigned conn)
{
    TbMsg *m = tb_msg_find(t->tb, conn, VHOST_USER_SET_CONFIG, -1);
    VhostUserConfig c;

    g_assert_nonnull(m);
    g_assert_cmpuint(m->size, ==, VHOST_USER_CONFIG_HDR_SIZE + 1);
    memset(&c, 0xff, sizeof(c));
    memcpy(&c, m->payload, m->size);
    g_assert_cmpuint(c.offset, ==, offsetof(VirtioBlkConfig, writeback));
    g_assert_cmpuint(c.offset, ==, 32);
    g_assert_cmpuint(c.size, ==, 1);
    g_assert_cmpuint(c.flags, ==, VHOST_SET_CONFIG_TYPE_FRONTEND);
    g_assert_cmpuint(c.region[0], ==, 0);
    tb_msg_free(m);
    g_assert_cmpuint(tb_msg_count(t->tb, conn, VHOST_USER_SET_CONFIG), ==, 1);
}

/*
 * The driver writes wce=0 once its rings run; the back-end hears it, and
 * so does the back-end that takes over after a disconnect (before its
 * rings start: it must not run the driver's requests in its own mode).
 * The test back-end completes no request, so the workload never ends:
 * the test stops at what it checks and the teardown kills the VMM.
 */
static void test_blk_set_config_wce(void)
{
    TestCtx *t = start_blk_wce(true, "wce=0,rw=read,ops=1,iodepth=1,verify=off");

    wait_stderr_n(t, BLK_RINGS_LINE, 1);
    wait_stderr_n(t, "blk0: write cache off: write-through (writeback 0, was 1)", 1);
    tb_wait_msg(t->tb, 1, VHOST_USER_SET_CONFIG, 1, WAIT_MS);
    assert_set_config_wce0(t, 1);
    g_assert_cmpint(tb_msg_pos(t->tb, 1, VHOST_USER_SET_CONFIG, -1), >,
                    tb_msg_pos(t->tb, 1, VHOST_USER_SET_VRING_KICK, -1));

    tb_disconnect(t->tb, 1);
    tb_wait_msg(t->tb, 2, VHOST_USER_SET_CONFIG, 1, WAIT_MS);
    tb_wait_msg(t->tb, 2, VHOST_USER_SET_VRING_KICK, 1, WAIT_MS);
    assert_set_config_wce0(t, 2);
    g_assert_cmpint(tb_msg_pos(t->tb, 2, VHOST_USER_SET_CONFIG, -1), <,
                    tb_msg_pos(t->tb, 2, VHOST_USER_SET_VRING_KICK, -1));
    g_assert_true(qtest_vmm_is_alive(t->vmm));
    test_teardown(t);
}

/* No CONFIG_WCE: the workload fails naming device, key and feature. */
static void test_blk_wce_not_offered(void)
{
    TestCtx *t = start_blk_wce(false, "wce=0,rw=read,ops=1");

    wait_stderr_n(t, "blk0: wce=0: the device does not offer "
                     "VIRTIO_BLK_F_CONFIG_WCE", 1);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_CONFIG), ==, 0);
    g_assert_cmpint(qtest_vmm_wait_exit(t->vmm, WAIT_MS), ==, 1);
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
    ADD_VOID_TEST("/device-config/blk/set-config-wce", test_blk_set_config_wce);
    ADD_VOID_TEST("/device-config/blk/wce-not-offered", test_blk_wce_not_offered);

    return g_test_run();
}
