/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live migration between two VMM processes, the core of it: an idle guest
 * with a blk device over our reference back-end on each side, RAM in
 * memory-backend-file files in the test's directory (share=on), the
 * source's filled with -x-fill-pattern. QMP migrate over a unix and a TCP
 * URI; the destination runs with -S, so after the switchover both guests
 * are frozen and the test compares the two RAM files page by page; then
 * cont. Checked: query-migrate's figures, the MIGRATION events in order,
 * STOP on the source, the run states (source postmigrate, destination
 * running after cont), the destination's blk device started from the
 * state the source's back-end handed over. And a blocker: a back-end
 * without LOG_SHMFD makes migrate fail at once, naming the device.
 * Failures and real back-ends under load: the migration tests of
 * helper mtest.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-client.h"
#include "qtest-harness.h"
#include "real-proc.h"
#include "util/vhost-user-msg.h"

#define MIG_RAM_MB          64
#define MIG_WAIT_MS         20000

typedef struct Side {
    Proc *be;
    Proc *vmm;
    QmpClient *qmp;
    char *ram;                  /* the RAM file */
} Side;

/*
 * One VMM with its back-end, RAM file and monitor; extra args after the
 * common ones (-x-fill-pattern, -incoming ..., -S).
 */
static bool start_side(Fixture *f, Side *side, const char *name, const char *const *extra)
{
    const char *bin = vmm_binary();
    g_autofree char *be_name = g_strdup_printf("be-%s", name);
    g_autofree char *sock = g_strdup_printf("%s/%s.sock", f->dir, be_name);
    g_autofree char *qmp_path = g_strdup_printf("%s/%s.qmp", f->dir, name);
    g_autofree char *qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp_path);
    g_autofree char *chr = g_strdup_printf("socket,id=c0,path=%s", sock);
    g_autofree char *obj = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();

    side->ram = g_strdup_printf("%s/%s.ram", f->dir, name);
    obj = g_strdup_printf("memory-backend-file,id=mem,size=%uM,mem-path=%s,share=on",
                          MIG_RAM_MB, side->ram);
    if (!bin) {
        return false;
    }
    side->be = proc_start_ref(f, be_name, "blk", sock, 1, NULL, 0, false);
    if (!side->be) {
        return false;
    }
    g_ptr_array_add(argv, (char *)bin);
    g_ptr_array_add(argv, "-object");
    g_ptr_array_add(argv, obj);
    g_ptr_array_add(argv, "-machine");
    g_ptr_array_add(argv, "memory-backend=mem");
    g_ptr_array_add(argv, "-chardev");
    g_ptr_array_add(argv, chr);
    g_ptr_array_add(argv, "-device");
    g_ptr_array_add(argv, "vhost-user-blk-pci,chardev=c0");
    g_ptr_array_add(argv, "-qmp");
    g_ptr_array_add(argv, qmp_arg);
    g_ptr_array_add(argv, "-trace");
    g_ptr_array_add(argv, "vhost_user");
    for (; *extra; extra++) {
        g_ptr_array_add(argv, (char *)*extra);
    }
    side->vmm = proc_spawn(f, name, argv, false, NULL);
    if (!side->vmm || !wait_socket(side->vmm, qmp_path)) {
        return false;
    }
    side->qmp = qmp_client_connect_log(qmp_path, MIG_WAIT_MS, proc_log_cb, side->vmm);
    return true;
}

static void side_free(Side *side)
{
    if (side->qmp) {
        qmp_client_free(side->qmp);
    }
    g_free(side->ram);
}

/* query-status's "status". */
static char *run_state(QmpClient *qmp)
{
    JsonNode *r = qmp_client_ok(qmp, "{\"execute\":\"query-status\"}");
    char *s = g_strdup(json_object_get_string_member(json_node_get_object(r), "status"));

    json_node_unref(r);
    return s;
}

/* The status of the k-th MIGRATION event (1-based), waiting for it. */
static const char *migration_event(QmpClient *qmp, unsigned k)
{
    qmp_client_wait_event(qmp, "MIGRATION", k);
    g_assert_cmpuint(qmp_client_event_count(qmp, "MIGRATION"), ==, k);
    return json_object_get_string_member(qmp_client_last_event(qmp, "MIGRATION"), "status");
}

/* Both RAM files, page by page: the first page that differs fails the test. */
static void assert_same_ram(const char *src, const char *dst)
{
    g_autofree char *a = NULL;
    g_autofree char *b = NULL;
    gsize alen = 0, blen = 0;
    uint64_t fill;

    g_assert_true(g_file_get_contents(src, &a, &alen, NULL));
    g_assert_true(g_file_get_contents(dst, &b, &blen, NULL));
    g_assert_cmpuint(alen, ==, (gsize)MIG_RAM_MB << 20);
    g_assert_cmpuint(blen, ==, alen);
    for (gsize off = 0; off < alen; off += PAGE_SIZE) {
        if (memcmp(a + off, b + off, PAGE_SIZE)) {
            g_error("RAM page at GPA 0x%" PRIx64 " differs between the source and the "
                    "destination", (uint64_t)off);
        }
    }
    /* Not two empty files: the source's fill pattern arrived (page 0 and the last). */
    memcpy(&fill, b, sizeof(fill));
    g_assert_cmphex(GUINT64_FROM_LE(fill), ==, 0 ^ FILL_XOR);
    memcpy(&fill, b + blen - PAGE_SIZE, sizeof(fill));
    g_assert_cmphex(GUINT64_FROM_LE(fill), ==, (blen - PAGE_SIZE) ^ FILL_XOR);
}

/* query-migrate on the source once completed: figures that add up. */
static void assert_source_figures(QmpClient *qmp)
{
    JsonNode *r = qmp_client_ok(qmp, "{\"execute\":\"query-migrate\"}");
    JsonObject *o = json_node_get_object(r);
    JsonObject *ram = json_object_get_object_member(o, "ram");
    gint64 total = json_object_get_int_member(o, "total-time");
    gint64 setup = json_object_get_int_member(o, "setup-time");
    gint64 downtime = json_object_get_int_member(o, "downtime");

    g_assert_cmpstr(json_object_get_string_member(o, "status"), ==, "completed");
    g_assert_false(json_object_has_member(o, "error-desc"));
    g_assert_cmpint(total, >, 0);
    g_assert_cmpint(setup, <=, total);
    g_assert_cmpint(downtime, >=, 0);
    g_assert_cmpint(downtime, <=, total);
    g_assert_cmpint(json_object_get_int_member(ram, "total"), ==, (gint64)MIG_RAM_MB << 20);
    /*
     * Nearly every page holds the pattern and goes as data (the rings the
     * guest zeroed go as zero runs).
     */
    g_assert_cmpint(json_object_get_int_member(ram, "transferred"), >=,
                    ((gint64)MIG_RAM_MB << 20) / 10 * 9);
    g_assert_cmpint(json_object_get_int_member(ram, "remaining"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(ram, "dirty-sync-count"), >=, 1);
    g_assert_cmpfloat(json_object_get_double_member(ram, "mbps"), >, 0);
    json_node_unref(r);
}

static void migrate_idle(Fixture *f, const char *uri_arg)
{
    const char *src_args[] = { "-x-fill-pattern", NULL };
    g_autofree char *uri = NULL;
    g_autofree char *state = NULL;
    g_autofree char *log = NULL;
    const char *dst_args[] = { "-incoming", uri_arg, "-S", NULL };
    Side src = { 0 }, dst = { 0 };
    JsonNode *r;

    if (!start_side(f, &dst, "dst", dst_args) || !start_side(f, &src, "src", src_args) ||
        !wait_log(src.vmm, "blk0: started 1 rings", 1, MIG_WAIT_MS) ||
        !wait_log(dst.vmm, "migration: incoming from ", 1, MIG_WAIT_MS)) {
        goto out;
    }
    /* tcp port 0: the destination says which port it got. */
    log = proc_log(dst.vmm);
    uri = g_strndup(strstr(log, "incoming from ") + strlen("incoming from "),
                    strcspn(strstr(log, "incoming from ") + strlen("incoming from "), "\n"));
    state = run_state(dst.qmp);
    g_assert_cmpstr(state, ==, "inmigrate");
    g_clear_pointer(&state, g_free);

    json_node_unref(qmp_client_ok(src.qmp, "{\"execute\":\"migrate\",\"arguments\":"
                                  "{\"uri\":\"%s\"}}", uri));
    g_assert_cmpstr(migration_event(src.qmp, 1), ==, "setup");
    g_assert_cmpstr(migration_event(src.qmp, 2), ==, "active");
    g_assert_cmpstr(migration_event(src.qmp, 3), ==, "completed");
    g_assert_cmpuint(qmp_client_event_count(src.qmp, "STOP"), ==, 1);
    g_assert_cmpuint(qmp_client_event_count(src.qmp, "RESUME"), ==, 0);
    if (!wait_log(src.vmm, "migration: completed in ", 1, MIG_WAIT_MS) ||
        !wait_log(dst.vmm, "guest paused until cont (-S)", 1, MIG_WAIT_MS)) {
        goto out;
    }
    state = run_state(src.qmp);
    g_assert_cmpstr(state, ==, "postmigrate");
    g_clear_pointer(&state, g_free);
    state = run_state(dst.qmp);
    g_assert_cmpstr(state, ==, "paused");
    g_clear_pointer(&state, g_free);
    /* Both frozen: the destination's RAM is the source's, page by page. */
    assert_same_ram(src.ram, dst.ram);
    assert_source_figures(src.qmp);

    r = qmp_client_ok(dst.qmp, "{\"execute\":\"query-migrate\"}");
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(r), "status"), ==,
                    "completed");
    json_node_unref(r);
    g_assert_cmpstr(json_object_get_string_member(
                        qmp_client_last_event(dst.qmp, "MIGRATION"), "status"), ==,
                    "completed");

    json_node_unref(qmp_client_ok(dst.qmp, "{\"execute\":\"cont\"}"));
    qmp_client_wait_event(dst.qmp, "RESUME", 1);
    if (!wait_log(dst.vmm, "blk0: started 1 rings", 1, MIG_WAIT_MS) ||
        !wait_log(dst.be, "device state loaded", 1, MIG_WAIT_MS)) {
        goto out;
    }
    state = run_state(dst.qmp);
    g_assert_cmpstr(state, ==, "running");
    g_clear_pointer(&state, g_free);
    /* The source stays stopped: its rings never ran again. */
    g_clear_pointer(&log, g_free);
    log = proc_log(src.vmm);
    g_assert_cmpuint(qtest_count(log, "blk0: started 1 rings"), ==, 1);
    g_test_message("source:\n%s", log);
    g_clear_pointer(&log, g_free);
    log = proc_log(dst.vmm);
    g_test_message("destination:\n%s", log);

out:
    side_free(&src);
    side_free(&dst);
}

static void test_unix(Fixture *f, gconstpointer data)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", f->dir);

    migrate_idle(f, uri);
}

static void test_tcp(Fixture *f, gconstpointer data)
{
    migrate_idle(f, "tcp:127.0.0.1:0");
}

/*
 * A back-end without LOG_SHMFD cannot log its writes: migrate is an
 * error at once naming the device and what it lacks; nothing starts,
 * the guest keeps running.
 */
static void test_blocker(void)
{
    TbConfig cfg;
    TestCtx *t;
    g_autofree char *qmp_path = NULL;
    g_autofree char *err = NULL;
    g_autofree char *state = NULL;
    QmpClient *qmp;
    JsonNode *r;

    tb_config_default(&cfg);
    cfg.features |= 1ull << VHOST_F_LOG_ALL;
    cfg.protocol_features &= ~(1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD);
    t = test_setup(&cfg, false);
    qmp_path = g_strdup_printf("%s/qmp.sock", t->dir);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    add_arg(t, "-qmp");
    add_arg(t, "unix:%s,server=on,wait=off", qmp_path);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    wait_stderr_n(t, "net0: started 2 rings", 1);
    qmp = qmp_client_connect_log(qmp_path, WAIT_MS, qtest_vmm_log_cb, t->vmm);

    err = qmp_client_fails(qmp, "GenericError", "{\"execute\":\"migrate\",\"arguments\":"
                           "{\"uri\":\"unix:%s/nobody.sock\"}}", t->dir);
    g_assert_nonnull(strstr(err, "net0"));
    g_assert_nonnull(strstr(err, "LOG_SHMFD"));
    r = qmp_client_ok(qmp, "{\"execute\":\"query-migrate\"}");
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(r), "status"), ==,
                    "none");
    json_node_unref(r);
    g_assert_cmpuint(qmp_client_event_count(qmp, "MIGRATION"), ==, 0);
    state = run_state(qmp);
    g_assert_cmpstr(state, ==, "running");
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_LOG_BASE), ==, 0);
    tb_assert_no_violations(t->tb);
    qmp_client_free(qmp);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);
    g_test_add("/migrate-basic/unix", Fixture, NULL, fixture_setup, test_unix,
               fixture_teardown);
    g_test_add("/migrate-basic/tcp", Fixture, NULL, fixture_setup, test_tcp,
               fixture_teardown);
    ADD_VOID_TEST("/migrate-basic/blocker-no-shmfd", test_blocker);
    return g_test_run();
}
