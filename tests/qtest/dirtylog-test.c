/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dirty log (LOG_SHMFD) through the real VMM: the test plays the
 * back-end (test-backend.c maps every log it is given, and marks pages in
 * it as a back-end writing guest memory would) and drives logging with
 * the monitor's x-vhost-log. What is checked, message by message: the log
 * handed over before logging is switched on and large enough for all of
 * guest RAM; VHOST_F_LOG_ALL and every ring's log flag with its used
 * ring's GPA, on and off; a sync reports exactly the pages marked and
 * clears them; hotplugged RAM gets a bigger log before the back-end
 * hears of the RAM, and no mark of the old log is lost; a reconnected
 * back-end gets the whole logging state again; a back-end that cannot
 * log is a migration blocker, named.
 */
#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "qmp-client.h"
#include "qtest-harness.h"

#define DIMM_SIZE           (256ull << 10)

typedef struct DlCtx {
    TestCtx *t;
    QmpClient *qmp;
} DlCtx;

static TbConfig dl_config(bool shmfd, bool log_all)
{
    TbConfig cfg;

    tb_config_default(&cfg);
    cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS;
    cfg.max_mem_slots = 8;
    if (shmfd) {
        cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD;
    }
    if (log_all) {
        cfg.features |= 1ull << VHOST_F_LOG_ALL;
    }
    return cfg;
}

/* net0 (one queue pair) over the test back-end, a monitor; rings running. */
static DlCtx *dl_start(const TbConfig *cfg)
{
    DlCtx *d = g_new0(DlCtx, 1);
    g_autofree char *qmp_path = NULL;

    d->t = test_setup(cfg, false);
    qmp_path = g_strdup_printf("%s/qmp.sock", d->t->dir);
    add_machine_args(d->t, "memfd");
    add_client_chardev(d->t, true);
    add_net(d->t, 1);
    add_arg(d->t, "-qmp");
    add_arg(d->t, "unix:%s,server=on,wait=off", qmp_path);
    d->t->vmm = current_vmm = qtest_vmm_spawnv(d->t->args);
    wait_stderr_n(d->t, "net0: started 2 rings", 1);
    tb_wait_rings_started(d->t->tb, 1, 2, WAIT_MS);
    d->qmp = qmp_client_connect_log(qmp_path, WAIT_MS, qtest_vmm_log_cb, d->t->vmm);
    return d;
}

static void dl_finish(DlCtx *d)
{
    tb_assert_no_violations(d->t->tb);
    qmp_client_free(d->qmp);
    assert_vmm_stops_cleanly(d->t);
    test_teardown(d->t);
    g_free(d);
}

static void dl_action(DlCtx *d, const char *action)
{
    json_node_unref(qmp_client_ok(d->qmp, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                                  "{\"id\":\"net0\",\"action\":\"%s\"}}", action));
}

/* Sync; the pages reported go to pages (sorted), their count is returned. */
static unsigned dl_sync(DlCtx *d, uint64_t *pages, unsigned max)
{
    JsonNode *r = qmp_client_ok(d->qmp, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                                "{\"id\":\"net0\",\"action\":\"sync\"}}");
    JsonObject *o = json_node_get_object(r);
    JsonArray *a = json_object_get_array_member(o, "pages");
    unsigned n = json_array_get_length(a);

    g_assert_cmpint(json_object_get_int_member(o, "dirty"), ==, n);
    g_assert_cmpuint(n, <=, max);
    for (unsigned i = 0; i < n; i++) {
        pages[i] = (uint64_t)json_array_get_int_element(a, i);
    }
    json_node_unref(r);
    return n;
}

/*
 * Index of the first message `request` on conn at or after from, or -1
 * when none came within 5 s. It waits: without REPLY_ACK the VMM answers
 * the QMP command as soon as the messages are written, before the test
 * back-end's thread has necessarily read them.
 */
static int dl_find_from(TestBackend *tb, unsigned conn, unsigned from, uint32_t request,
                        int ring)
{
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    do {
        unsigned n = tb_msg_count(tb, conn, 0);

        for (unsigned i = from; i < n; i++) {
            TbMsg *m = tb_msg_get(tb, conn, i);
            bool hit = m->request == request && (ring < 0 || m->ring == ring);

            tb_msg_free(m);
            if (hit) {
                return (int)i;
            }
        }
        g_usleep(10 * 1000);
    } while (g_get_monotonic_time() < end);
    return -1;
}

static TbMsg *dl_msg_at(TestBackend *tb, unsigned conn, int pos, const char *what)
{
    if (pos < 0) {
        g_error("no %s on connection %u", what, conn);
    }
    return tb_msg_get(tb, conn, (unsigned)pos);
}

/*
 * From message from on: SET_LOG_BASE (if want_base) with one fd and a log
 * covering [0, end), then SET_FEATURES with LOG_ALL set as `on` says,
 * then SET_VRING_ADDR for both rings with the log flag as `on` says and,
 * when on, the used ring's GPA. Returns the position after them.
 */
static unsigned dl_assert_switch(TestBackend *tb, unsigned conn, unsigned from,
                                 bool want_base, uint64_t end, bool on)
{
    int pos = (int)from;
    TbMsg *m;

    if (want_base) {
        VhostUserLog log;

        pos = dl_find_from(tb, conn, from, VHOST_USER_SET_LOG_BASE, -1);
        m = dl_msg_at(tb, conn, pos, "SET_LOG_BASE");
        g_assert_cmpuint(m->nfds, ==, 1);
        g_assert_cmpuint(m->size, ==, sizeof(log));
        memcpy(&log, m->payload, sizeof(log));
        g_assert_cmpuint(log.mmap_offset, ==, 0);
        /* One bit per 4 KiB page up to the highest guest address. */
        g_assert_cmpuint(log.mmap_size * 8 * PAGE_SIZE, >=, end);
        g_assert_cmpuint(tb_log_size(tb, conn), ==, log.mmap_size);
        tb_msg_free(m);
    }
    pos = dl_find_from(tb, conn, (unsigned)pos, VHOST_USER_SET_FEATURES, -1);
    m = dl_msg_at(tb, conn, pos, "SET_FEATURES");
    {
        uint64_t f;

        memcpy(&f, m->payload, sizeof(f));
        g_assert_cmpuint(!!(f & (1ull << VHOST_F_LOG_ALL)), ==, on);
    }
    tb_msg_free(m);
    for (int ring = 0; ring < 2; ring++) {
        int rpos = dl_find_from(tb, conn, (unsigned)pos, VHOST_USER_SET_VRING_ADDR, ring);
        VhostUserVringAddr a;
        uint64_t used_gpa;

        m = dl_msg_at(tb, conn, rpos, "SET_VRING_ADDR");
        memcpy(&a, m->payload, sizeof(a));
        tb_msg_free(m);
        g_assert_cmpuint(a.index, ==, ring);
        g_assert_cmpuint(!!(a.flags & (1u << VHOST_VRING_F_LOG)), ==, on);
        if (on) {
            g_assert_true(tb_uva_to_gpa(tb, conn, a.used_user_addr, &used_gpa));
            g_assert_cmphex(a.log_guest_addr, ==, used_gpa);
        }
        pos = MAX(pos, rpos);
    }
    return (unsigned)pos + 1;
}

static void dl_start_sync_stop(bool reply_ack)
{
    TbConfig cfg = dl_config(true, true);
    DlCtx *d;

    if (!reply_ack) {
        cfg.protocol_features &= ~(1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    }
    d = dl_start(&cfg);
    TestBackend *tb = d->t->tb;
    uint64_t pages[8];
    unsigned from = tb_msg_count(tb, 1, 0), n;

    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_LOG_BASE), ==, 0);
    dl_action(d, "start");
    from = dl_assert_switch(tb, 1, from, true, RAM_SIZE, true);
    /* Nothing written yet: nothing to report. */
    g_assert_cmpuint(dl_sync(d, pages, 8), ==, 0);

    /* The back-end writes three pages, two of them in one log word. */
    g_assert_true(tb_log_mark(tb, 1, 0x123000));
    g_assert_true(tb_log_mark(tb, 1, 0x124fff));
    g_assert_true(tb_log_mark(tb, 1, RAM_SIZE - 1));
    n = dl_sync(d, pages, 8);
    g_assert_cmpuint(n, ==, 3);
    g_assert_cmphex(pages[0], ==, 0x123);
    g_assert_cmphex(pages[1], ==, 0x124);
    g_assert_cmphex(pages[2], ==, (RAM_SIZE - 1) >> 12);
    /* Fetch-and-clear: a second sync without writes reports nothing. */
    g_assert_cmpuint(dl_sync(d, pages, 8), ==, 0);

    dl_action(d, "stop");
    dl_assert_switch(tb, 1, from, false, 0, false);
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_LOG_BASE), ==, 1);
    g_free(qmp_client_fails(d->qmp, NULL, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                            "{\"id\":\"net0\",\"action\":\"sync\"}}"));
    /* And again: logging can start anew, with a fresh log. */
    from = tb_msg_count(tb, 1, 0);
    dl_action(d, "start");
    dl_assert_switch(tb, 1, from, true, RAM_SIZE, true);
    g_assert_cmpuint(tb_conn_count(tb), ==, 1);
    dl_finish(d);
}

static void test_start_sync_stop(void)
{
    dl_start_sync_stop(true);
}

/*
 * Without REPLY_ACK nothing else consumes SET_LOG_BASE's reply: it must be
 * read as such (LOG_SHMFD is negotiated), or it would answer the next
 * request and break the connection.
 */
static void test_start_sync_stop_no_ack(void)
{
    dl_start_sync_stop(false);
}

/* A back-end without LOG_SHMFD or without LOG_ALL blocks migration, named. */
static void dl_check_blocker(bool shmfd, bool log_all, const char *missing)
{
    TbConfig cfg = dl_config(shmfd, log_all);
    DlCtx *d = dl_start(&cfg);
    JsonNode *r = qmp_client_ok(d->qmp, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                                "{\"id\":\"net0\",\"action\":\"check\"}}");
    JsonObject *o = json_node_get_object(r);
    const char *reason = json_object_get_string_member(o, "reason");
    g_autofree char *err = NULL;

    g_assert_false(json_object_get_boolean_member(o, "migratable"));
    g_assert_nonnull(strstr(reason, "net0"));
    g_assert_nonnull(strstr(reason, missing));
    json_node_unref(r);
    err = qmp_client_fails(d->qmp, NULL, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                           "{\"id\":\"net0\",\"action\":\"start\"}}");
    g_assert_nonnull(strstr(err, "net0"));
    g_assert_nonnull(strstr(err, missing));
    /* Nothing was sent, so nothing can wait for a reply that never comes. */
    g_assert_cmpuint(tb_msg_count(d->t->tb, 1, VHOST_USER_SET_LOG_BASE), ==, 0);
    json_node_unref(qmp_client_ok(d->qmp, "{\"execute\":\"query-status\"}"));
    g_assert_cmpuint(tb_conn_count(d->t->tb), ==, 1);
    dl_finish(d);
}

static void test_blocker_no_shmfd(void)
{
    dl_check_blocker(false, true, "LOG_SHMFD");
}

static void test_blocker_no_log_all(void)
{
    dl_check_blocker(true, false, "VHOST_F_LOG_ALL");
}

static void test_migratable(void)
{
    TbConfig cfg = dl_config(true, true);
    DlCtx *d = dl_start(&cfg);
    JsonNode *r = qmp_client_ok(d->qmp, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                                "{\"id\":\"net0\",\"action\":\"check\"}}");

    g_assert_true(json_object_get_boolean_member(json_node_get_object(r), "migratable"));
    json_node_unref(r);
    dl_finish(d);
}

/*
 * A pc-dimm past the end of RAM while logging: a bigger log goes over
 * before the back-end learns of the new RAM, and a mark made in the old
 * log just before is still reported.
 */
static void test_hotplug_grows_log(void)
{
    TbConfig cfg = dl_config(true, true);
    DlCtx *d = dl_start(&cfg);
    TestBackend *tb = d->t->tb;
    g_autofree char *path = g_strdup_printf("%s/mem1", d->t->dir);
    uint64_t pages[8], addr, old_size;
    unsigned from;
    int base_pos, add_pos;
    JsonNode *r;
    JsonObject *dimm;
    TbMsg *m;
    VhostUserLog log;

    dl_action(d, "start");
    old_size = tb_log_size(tb, 1);
    g_assert_cmpuint(old_size * 8 * PAGE_SIZE, <, RAM_SIZE + DIMM_SIZE);
    g_assert_true(tb_log_mark(tb, 1, 0x5000));
    from = tb_msg_count(tb, 1, 0);

    json_node_unref(qmp_client_ok(d->qmp,
        "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":\"memory-backend-file\","
        "\"id\":\"mem1\",\"size\":%llu,\"mem-path\":\"%s\",\"share\":true}}",
        (unsigned long long)DIMM_SIZE, path));
    json_node_unref(qmp_client_ok(d->qmp, "{\"execute\":\"device_add\",\"arguments\":"
                                  "{\"driver\":\"pc-dimm\",\"id\":\"dimm1\","
                                  "\"memdev\":\"mem1\"}}"));
    r = qmp_client_ok(d->qmp, "{\"execute\":\"query-memory-devices\"}");
    dimm = json_object_get_object_member(json_array_get_object_element(
                                             json_node_get_array(r), 0), "data");
    addr = (uint64_t)json_object_get_int_member(dimm, "addr");
    json_node_unref(r);
    g_assert_cmphex(addr, >=, RAM_SIZE);

    base_pos = dl_find_from(tb, 1, from, VHOST_USER_SET_LOG_BASE, -1);
    add_pos = dl_find_from(tb, 1, from, VHOST_USER_ADD_MEM_REG, -1);
    g_assert_cmpint(base_pos, >=, 0);
    g_assert_cmpint(add_pos, >, base_pos);
    m = dl_msg_at(tb, 1, base_pos, "SET_LOG_BASE");
    memcpy(&log, m->payload, sizeof(log));
    tb_msg_free(m);
    g_assert_cmpuint(log.mmap_size * 8 * PAGE_SIZE, >=, addr + DIMM_SIZE);

    /* The back-end now writes the last page of the dimm, in the new log. */
    g_assert_true(tb_log_mark(tb, 1, addr + DIMM_SIZE - 1));
    g_assert_cmpuint(dl_sync(d, pages, 8), ==, 2);
    g_assert_cmphex(pages[0], ==, 0x5);
    g_assert_cmphex(pages[1], ==, (addr + DIMM_SIZE - 1) >> 12);
    dl_finish(d);
}

/*
 * The back-end crashes while logging: its successor gets the log before
 * its rings start, LOG_ALL and the ring flags at their start, and marks
 * of both (one memfd) are reported.
 */
static void test_reconnect_replays(void)
{
    TbConfig cfg = dl_config(true, true);
    DlCtx *d = dl_start(&cfg);
    TestBackend *tb = d->t->tb;
    uint64_t pages[8];

    dl_action(d, "start");
    g_assert_true(tb_log_mark(tb, 1, 0x7000));
    tb_disconnect(tb, 1);
    tb_wait_rings_started(tb, 2, 2, WAIT_MS);
    dl_assert_switch(tb, 2, 0, true, RAM_SIZE, true);
    g_assert_cmpint(dl_find_from(tb, 2, 0, VHOST_USER_SET_LOG_BASE, -1), <,
                    dl_find_from(tb, 2, 0, VHOST_USER_SET_VRING_KICK, -1));
    g_assert_true(tb_log_mark(tb, 2, 0x9000));
    g_assert_cmpuint(dl_sync(d, pages, 8), ==, 2);
    g_assert_cmphex(pages[0], ==, 0x7);
    g_assert_cmphex(pages[1], ==, 0x9);
    dl_finish(d);
}

/*
 * The successor does not offer LOG_SHMFD: it runs, unlogged, and the
 * next sync says logging broke (after handing over the marks it has).
 */
static void test_reconnect_without_log(void)
{
    TbConfig cfg = dl_config(true, true);
    DlCtx *d = dl_start(&cfg);
    TestBackend *tb = d->t->tb;
    g_autofree char *err = NULL;

    dl_action(d, "start");
    tb_inject(tb, 2, VHOST_USER_GET_PROTOCOL_FEATURES, TB_FAULT_VALUE,
              cfg.protocol_features & ~(1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD));
    tb_disconnect(tb, 1);
    tb_wait_rings_started(tb, 2, 2, WAIT_MS);
    g_assert_cmpuint(tb_msg_count(tb, 2, VHOST_USER_SET_LOG_BASE), ==, 0);
    /* Its rings run without the log flag, and LOG_ALL was not sent. */
    dl_assert_switch(tb, 2, 0, false, 0, false);
    err = qmp_client_fails(d->qmp, NULL, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                           "{\"id\":\"net0\",\"action\":\"sync\"}}");
    g_assert_nonnull(strstr(err, "net0"));
    g_assert_nonnull(strstr(err, "LOG_SHMFD"));
    dl_action(d, "stop");
    dl_finish(d);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);
    ADD_VOID_TEST("/dirtylog/start-sync-stop", test_start_sync_stop);
    ADD_VOID_TEST("/dirtylog/start-sync-stop-no-ack", test_start_sync_stop_no_ack);
    ADD_VOID_TEST("/dirtylog/migratable", test_migratable);
    ADD_VOID_TEST("/dirtylog/blocker-no-shmfd", test_blocker_no_shmfd);
    ADD_VOID_TEST("/dirtylog/blocker-no-log-all", test_blocker_no_log_all);
    ADD_VOID_TEST("/dirtylog/hotplug-grows-log", test_hotplug_grows_log);
    ADD_VOID_TEST("/dirtylog/reconnect-replays", test_reconnect_replays);
    ADD_VOID_TEST("/dirtylog/reconnect-without-log", test_reconnect_without_log);
    return g_test_run();
}
