/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * INFLIGHT_SHMFD on the wire, with the scripted test back-end and a
 * vhost-user-blk device of 2 queues: the order back-ends depend on
 * (every SET_VRING_NUM, then SET_INFLIGHT_FD, then the first kick), the
 * area fetched once per device life and handed to every new connection,
 * and the back-end's answer checked before anything is mapped.
 *
 * And the resume rule of a blk device after a disconnect: with an
 * inflight area, or with nothing outstanding, the rings resume; with
 * requests outstanding and no area, the device sets NEEDS_RESET and
 * starts nothing until the driver has reset it.
 */
#include <string.h>

#include <glib.h>

#include "hw/virtio/vhost-inflight.h"
#include "util/vhost-user-msg.h"
#include "qtest-harness.h"

#define BLK_QUEUES      2
#define BLK_RINGS_LINE  "blk0: started 2 rings"

/* A blk back-end: 2 queues, a small valid config, inflight tracking offered. */
static void blk_config(TbConfig *cfg)
{
    uint64_t capacity = 2048;       /* sectors */
    uint32_t seg_max = 126, blk_size = 512;
    uint16_t nq = BLK_QUEUES;

    tb_config_default(cfg);
    cfg->features |= (1ull << 2) |  /* VIRTIO_BLK_F_SEG_MAX */
                     (1ull << 6) |  /* VIRTIO_BLK_F_BLK_SIZE */
                     (1ull << 12);  /* VIRTIO_BLK_F_MQ */
    cfg->protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
    cfg->queue_num = BLK_QUEUES;
    memset(cfg->config, 0, sizeof(cfg->config));
    /* struct virtio_blk_config, little endian on the wire */
    capacity = GUINT64_TO_LE(capacity);
    seg_max = GUINT32_TO_LE(seg_max);
    blk_size = GUINT32_TO_LE(blk_size);
    nq = GUINT16_TO_LE(nq);
    memcpy(cfg->config + 0, &capacity, 8);
    memcpy(cfg->config + 12, &seg_max, 4);
    memcpy(cfg->config + 20, &blk_size, 4);
    memcpy(cfg->config + 34, &nq, 2);
}

static TestCtx *start_blk(void)
{
    TbConfig cfg;
    TestCtx *t;

    blk_config(&cfg);
    t = test_setup(&cfg, false);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_arg(t, "-device");
    add_arg(t, "vhost-user-blk-pci,chardev=chr0,num-queues=%u", BLK_QUEUES);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    return t;
}

/* Position of the first request of that kind on conn (and ring, or -1). */
static int msg_pos(TestCtx *t, unsigned conn, uint32_t request, int ring)
{
    for (unsigned i = 0;; i++) {
        TbMsg *m = tb_msg_get(t->tb, conn, i);
        bool hit;

        if (!m) {
            return -1;
        }
        hit = m->request == request && (ring < 0 || m->ring == ring);
        tb_msg_free(m);
        if (hit) {
            return (int)i;
        }
    }
}

static VhostUserInflight inflight_payload(TestCtx *t, unsigned conn, uint32_t request)
{
    TbMsg *m = tb_msg_find(t->tb, conn, request, -1);
    VhostUserInflight in;

    g_assert_nonnull(m);
    g_assert_cmpuint(m->size, ==, sizeof(in));
    memcpy(&in, m->payload, sizeof(in));
    if (request == VHOST_USER_SET_INFLIGHT_FD) {
        g_assert_cmpuint(m->nfds, ==, 1);
    }
    tb_msg_free(m);
    return in;
}

/* Every SET_VRING_NUM, then SET_INFLIGHT_FD, then the first kick. */
static void assert_inflight_order(TestCtx *t, unsigned conn)
{
    int set = msg_pos(t, conn, VHOST_USER_SET_INFLIGHT_FD, -1);
    int kick = msg_pos(t, conn, VHOST_USER_SET_VRING_KICK, -1);

    g_assert_cmpint(set, >=, 0);
    g_assert_cmpint(kick, >, set);
    for (int ring = 0; ring < BLK_QUEUES; ring++) {
        int num = msg_pos(t, conn, VHOST_USER_SET_VRING_NUM, ring);

        g_assert_cmpint(num, >=, 0);
        g_assert_cmpint(num, <, set);
    }
}

static void test_bring_up_and_reconnect(void)
{
    TestCtx *t = start_blk();
    VhostUserInflight got, set1, set2;

    wait_stderr_n(t, BLK_RINGS_LINE, 1);
    tb_wait_rings_started(t->tb, 1, BLK_QUEUES, WAIT_MS);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_GET_INFLIGHT_FD), ==, 1);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_INFLIGHT_FD), ==, 1);
    got = inflight_payload(t, 1, VHOST_USER_GET_INFLIGHT_FD);
    g_assert_cmpuint(got.num_queues, ==, BLK_QUEUES);
    g_assert_cmpuint(got.queue_size, ==, 256);
    set1 = inflight_payload(t, 1, VHOST_USER_SET_INFLIGHT_FD);
    g_assert_cmpuint(set1.mmap_size, ==, vhost_inflight_min_size(BLK_QUEUES, 256));
    g_assert_cmpuint(set1.num_queues, ==, BLK_QUEUES);
    g_assert_cmpuint(set1.queue_size, ==, 256);
    assert_inflight_order(t, 1);

    /*
     * The back-end "crashes": the new one must get the same area back and
     * must not be asked for a new one (it would replace the old one).
     */
    tb_disconnect(t->tb, 1);
    tb_wait_rings_started(t->tb, 2, BLK_QUEUES, WAIT_MS);
    wait_stderr_n(t, BLK_RINGS_LINE, 2);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_GET_INFLIGHT_FD), ==, 0);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_SET_INFLIGHT_FD), ==, 1);
    set2 = inflight_payload(t, 2, VHOST_USER_SET_INFLIGHT_FD);
    g_assert_cmpmem(&set1, sizeof(set1), &set2, sizeof(set2));
    assert_inflight_order(t, 2);

    tb_assert_no_violations(t->tb);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

typedef struct BadInflight {
    const char *name;
    uint64_t mmap_size;         /* reported by the back-end; its memfd is right */
    const char *error;          /* on the VMM's stderr */
} BadInflight;

static const BadInflight bad_inflight[] = {
    { "too-small", 8, "GET_INFLIGHT_FD reply: mmap_size 8 is outside" },
    { "too-large", 64ull << 20, "GET_INFLIGHT_FD reply: mmap_size 67108864 is outside" },
    /* Within the bounds for 2 x 256 but past the end of the memfd. */
    { "past-end", 16384, "is past the end of the fd" },
};

/*
 * A bad answer drops the connection with an error naming the message and
 * the field, maps nothing, leaks nothing; the next connection is asked
 * again (nothing was kept) and the device comes up.
 */
static void test_bad_reply(gconstpointer data)
{
    const BadInflight *bc = data;
    TestCtx *t = start_blk();
    int baseline;

    tb_inject(t->tb, 1, VHOST_USER_GET_INFLIGHT_FD, TB_FAULT_VALUE, bc->mmap_size);
    wait_stderr_n(t, bc->error, 1);
    tb_wait_closed(t->tb, 1, WAIT_MS);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_INFLIGHT_FD), ==, 0);
    g_assert_cmpint(msg_pos(t, 1, VHOST_USER_SET_VRING_KICK, -1), ==, -1);

    tb_wait_rings_started(t->tb, 2, BLK_QUEUES, WAIT_MS);
    wait_stderr_n(t, BLK_RINGS_LINE, 1);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_GET_INFLIGHT_FD), ==, 1);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_SET_INFLIGHT_FD), ==, 1);

    /* Same fds as a VMM that never saw the bad answer: one more connection. */
    baseline = qtest_vmm_fd_count(t->vmm);
    tb_disconnect(t->tb, 2);
    tb_wait_rings_started(t->tb, 3, BLK_QUEUES, WAIT_MS);
    g_assert_true(tb_wait_until(t->tb, fd_count_at_most, &baseline, WAIT_MS));
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* mmap_size 0: the back-end does not track this device; no SET_INFLIGHT_FD. */
static void test_untracked(void)
{
    TestCtx *t = start_blk();

    tb_inject(t->tb, 1, VHOST_USER_GET_INFLIGHT_FD, TB_FAULT_VALUE, 0);
    tb_wait_rings_started(t->tb, 1, BLK_QUEUES, WAIT_MS);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_GET_INFLIGHT_FD), ==, 1);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_INFLIGHT_FD), ==, 0);
    tb_assert_no_violations(t->tb);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/*
 * Makes ring 0 look as if the driver had put n requests the back-end
 * never completed: avail idx = used idx + n, in guest RAM (the test
 * back-end maps it too).
 */
static void fake_outstanding(TestCtx *t, unsigned conn, uint16_t n)
{
    TbMsg *m = tb_msg_find(t->tb, conn, VHOST_USER_SET_VRING_ADDR, 0);
    VhostUserVringAddr addr;
    uint64_t avail_gpa, used_gpa;
    uint16_t used, avail;

    g_assert_nonnull(m);
    memcpy(&addr, m->payload, sizeof(addr));
    tb_msg_free(m);
    g_assert_true(tb_uva_to_gpa(t->tb, conn, addr.avail_user_addr, &avail_gpa));
    g_assert_true(tb_ring_used_gpa(t->tb, conn, 0, &used_gpa));
    g_assert_true(tb_read_gpa(t->tb, conn, used_gpa + 2, &used, sizeof(used)));
    avail = GUINT16_TO_LE((uint16_t)(GUINT16_FROM_LE(used) + n));
    g_assert_true(tb_write_gpa(t->tb, conn, avail_gpa + 2, &avail, sizeof(avail)));
}

static TestCtx *start_blk_untracked(void)
{
    TbConfig cfg;
    TestCtx *t;

    blk_config(&cfg);
    cfg.protocol_features &= ~(1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
    t = test_setup(&cfg, false);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_arg(t, "-device");
    add_arg(t, "vhost-user-blk-pci,chardev=chr0,num-queues=%u", BLK_QUEUES);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    return t;
}

/* Requests outstanding, no inflight area: NEEDS_RESET, no ring started. */
static void test_resume_needs_reset(void)
{
    TestCtx *t = start_blk_untracked();

    wait_stderr_n(t, BLK_RINGS_LINE, 1);
    tb_wait_rings_started(t->tb, 1, BLK_QUEUES, WAIT_MS);
    fake_outstanding(t, 1, 3);
    tb_disconnect(t->tb, 1);
    wait_stderr_n(t, "left 3 requests in an unknown state", 1);
    /* Negotiated on conn 2, then nothing: the driver must reset first. */
    tb_wait_msg(t->tb, 2, VHOST_USER_GET_CONFIG, 1, WAIT_MS);
    g_usleep(300 * 1000);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_SET_VRING_KICK), ==, 0);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_SET_MEM_TABLE), ==, 0);
    g_assert_cmpuint(qtest_vmm_count_stderr(t->vmm, BLK_RINGS_LINE), ==, 1);
    tb_assert_no_violations(t->tb);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* Nothing outstanding: resuming is exact, so the rings come back. */
static void test_resume_idle(void)
{
    TestCtx *t = start_blk_untracked();

    wait_stderr_n(t, BLK_RINGS_LINE, 1);
    tb_wait_rings_started(t->tb, 1, BLK_QUEUES, WAIT_MS);
    tb_disconnect(t->tb, 1);
    tb_wait_rings_started(t->tb, 2, BLK_QUEUES, WAIT_MS);
    wait_stderr_n(t, BLK_RINGS_LINE, 2);
    g_assert_cmpuint(qtest_vmm_count_stderr(t->vmm, "unknown state"), ==, 0);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* Requests outstanding with an inflight area: the next back-end resubmits. */
static void test_resume_inflight(void)
{
    TestCtx *t = start_blk();

    wait_stderr_n(t, BLK_RINGS_LINE, 1);
    tb_wait_rings_started(t->tb, 1, BLK_QUEUES, WAIT_MS);
    fake_outstanding(t, 1, 3);
    tb_disconnect(t->tb, 1);
    tb_wait_rings_started(t->tb, 2, BLK_QUEUES, WAIT_MS);
    wait_stderr_n(t, BLK_RINGS_LINE, 2);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_SET_INFLIGHT_FD), ==, 1);
    g_assert_cmpuint(qtest_vmm_count_stderr(t->vmm, "unknown state"), ==, 0);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_main_context_default();
    signal(SIGPIPE, SIG_IGN);

    ADD_VOID_TEST("/vhost-user/inflight/bring-up-and-reconnect",
                  test_bring_up_and_reconnect);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_inflight); i++) {
        g_autofree char *path = g_strdup_printf("/vhost-user/inflight/bad-reply/%s",
                                                bad_inflight[i].name);
        add_test_case(path, NULL, test_bad_reply, &bad_inflight[i]);
    }
    ADD_VOID_TEST("/vhost-user/inflight/untracked", test_untracked);
    ADD_VOID_TEST("/vhost-user/blk-resume/outstanding-needs-reset",
                  test_resume_needs_reset);
    ADD_VOID_TEST("/vhost-user/blk-resume/idle", test_resume_idle);
    ADD_VOID_TEST("/vhost-user/blk-resume/inflight", test_resume_inflight);
    return g_test_run();
}
