/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * QMP stop and cont in the middle of a verifying workload, over our
 * reference back-end (blk, and net, which loops packets back): STOP and
 * RESUME come, query-status says paused then running, nothing moves
 * while paused, and the workload still completes and verifies. The time
 * spent paused is not run time (runtime= still means time running).
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-client.h"
#include "real-proc.h"

#define WAIT_MS     20000

static Proc *start_ref(Fixture *f, const char *type, const char *sock)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *s = g_strdup_printf("--socket-path=%s", sock);
    g_autofree char *t = g_strdup_printf("--type=%s", type);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    Proc *p;

    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return NULL;
    }
    g_ptr_array_add(argv, (char *)be);
    g_ptr_array_add(argv, s);
    g_ptr_array_add(argv, t);
    g_ptr_array_add(argv, "--queues=2");
    p = proc_spawn(f, type, argv, false, NULL);
    return p && wait_socket(p, sock) ? p : NULL;
}

static char *query_status(QmpClient *qmp, bool *running)
{
    JsonNode *r = qmp_client_ok(qmp, "{\"execute\":\"query-status\"}");
    JsonObject *o = json_node_get_object(r);
    char *s = g_strdup(json_object_get_string_member(o, "status"));

    *running = json_object_get_boolean_member(o, "running");
    json_node_unref(r);
    return s;
}

/* The workload's op count on its latest progress line ("blk0: 1200 ops, ..."). */
static uint64_t progress_ops(Proc *vmm, const char *dev)
{
    g_autofree char *log = proc_log(vmm);
    g_autofree char *needle = g_strdup_printf("%s: ", dev);
    uint64_t ops = 0;

    for (char *p = strstr(log, needle); p; p = strstr(p + 1, needle)) {
        char *end;
        uint64_t v = g_ascii_strtoull(p + strlen(needle), &end, 10);

        if (end != p + strlen(needle) &&
            (g_str_has_prefix(end, " ops,") || g_str_has_prefix(end, " packets,"))) {
            ops = v;
        }
    }
    return ops;
}

static void stop_cont_run(Fixture *f, const char *const *dev_args, size_t ndev,
                          const char *dev, const char *workload)
{
    const char *bin = vmm_binary();
    g_autofree char *qmp_path = g_build_filename(f->dir, "qmp.sock", NULL);
    g_autofree char *qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp_path);
    g_autofree char *out_path = g_build_filename(f->dir, "vmm.json", NULL);
    g_autofree char *started = g_strdup_printf("%s: workload started", dev);
    g_autofree char *out = NULL, *log = NULL, *st = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    QmpClient *qmp;
    uint64_t at_stop, after;
    bool running;
    int code = -1;
    Proc *vmm;

    if (!bin) {
        return;
    }
    g_ptr_array_add(argv, (char *)bin);
    g_ptr_array_add(argv, "-m");
    g_ptr_array_add(argv, "256M");
    g_ptr_array_add(argv, "-qmp");
    g_ptr_array_add(argv, qmp_arg);
    g_ptr_array_add(argv, "-summary");
    g_ptr_array_add(argv, "json");
    for (size_t i = 0; i < ndev; i++) {
        g_ptr_array_add(argv, (char *)dev_args[i]);
    }
    g_ptr_array_add(argv, "-workload");
    g_ptr_array_add(argv, (char *)workload);
    vmm = proc_spawn(f, "vmm", argv, false, out_path);
    if (!vmm || !wait_socket(vmm, qmp_path)) {
        return;
    }
    qmp = qmp_client_connect(qmp_path, WAIT_MS);
    if (!wait_log(vmm, started, 1, WAIT_MS)) {
        qmp_client_free(qmp);
        return;
    }
    g_usleep(1200 * 1000);
    json_node_unref(qmp_client_ok(qmp, "{\"execute\":\"stop\"}"));
    qmp_client_wait_event(qmp, "STOP", 1);
    st = query_status(qmp, &running);
    g_assert_cmpstr(st, ==, "paused");
    g_assert_false(running);
    /* A second stop is a no-op, and no second event. */
    json_node_unref(qmp_client_ok(qmp, "{\"execute\":\"stop\"}"));
    at_stop = progress_ops(vmm, dev);
    g_usleep(2500 * 1000);
    after = progress_ops(vmm, dev);
    /* Parked: at most the progress line of the second it stopped in. */
    if (after > at_stop) {
        g_usleep(1500 * 1000);
        g_assert_cmpuint(progress_ops(vmm, dev), ==, after);
    }
    g_assert_cmpuint(qmp_client_event_count(qmp, "STOP"), ==, 1);
    g_assert_true(proc_poll(vmm) == false);
    json_node_unref(qmp_client_ok(qmp, "{\"execute\":\"cont\"}"));
    qmp_client_wait_event(qmp, "RESUME", 1);
    g_free(st);
    st = query_status(qmp, &running);
    g_assert_cmpstr(st, ==, "running");
    g_assert_true(running);
    qmp_client_free(qmp);
    if (!vmm_collect(vmm, out_path, &code, &out, &log)) {
        return;
    }
    if (code != 0 || !out || !json_true(out, "verified") || json_uint(out, "mismatches") > 0 ||
        json_uint(out, "mismatched") > 0 || json_uint(out, "lost") > 0) {
        g_test_fail_printf("%s after stop/cont: exit %d, summary %s", dev, code,
                           out ? out : "");
    }
    /* 4 s paused, runtime=3s: the run's time is the time it ran. */
    {
        const char *sec = out ? strstr(out, "\"seconds\":") : NULL;
        double secs = sec ? g_ascii_strtod(sec + 10, NULL) : -1;

        if (secs < 2.9 || secs > 3.6) {
            g_test_fail_printf("%s: %.3f s of run time for runtime=3s with 4 s paused",
                               dev, secs);
        }
    }
    g_assert_nonnull(strstr(log, "vm stopped (QMP stop)"));
    g_assert_nonnull(strstr(log, "vm running (QMP cont)"));
}

static void test_blk(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s", sock);
    const char *args[] = {
        "-chardev", chardev, "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
    };

    if (start_ref(f, "blk", sock)) {
        stop_cont_run(f, args, G_N_ELEMENTS(args), "blk0",
                      "blk0:rw=randrw,bs=4k,iodepth=16,runtime=3s");
    }
}

static void test_net(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s", sock);
    const char *args[] = {
        "-chardev", chardev, "-netdev", "vhost-user,id=net0,chardev=c0,queues=2",
        "-device", "virtio-net-pci,netdev=net0,mq=on",
    };

    if (start_ref(f, "net", sock)) {
        stop_cont_run(f, args, G_N_ELEMENTS(args), "net0",
                      "net0:count=100000000,size=64+1518,runtime=3s,drain=2s");
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/stopcont/ref-blk", Fixture, NULL, fixture_setup, test_blk,
               fixture_teardown);
    g_test_add("/stopcont/ref-net", Fixture, NULL, fixture_setup, test_net,
               fixture_teardown);
    return g_test_run();
}
