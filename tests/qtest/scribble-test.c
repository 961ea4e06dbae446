/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A hostile back-end writes over the guest driver's state in guest RAM
 * (our reference back-end's --x-scribble) while a workload runs, and the
 * VMM survives it: the device with the scribbling back-end fails its
 * workload ("device state in RAM corrupted", naming the device and the
 * field) or completes, while the process stays up, QMP answers, and a
 * second device of the other type (a well-behaved back-end) keeps running.
 * No crash, no sanitizer report. Each field of the driver's bookkeeping
 * that indexes, offsets or sizes anything is aimed at on its own, on blk
 * and on net, then several random seeds.
 *
 * Two of these were crashes (ASan SEGV) before the driver checked what it
 * reads back: blk.tracked set to 2^62 after requests completed (next_gen()
 * read the generation table far out of bounds) and vq.free_head set to
 * 0xffff (guest_vq_add() wrote outside the ring).
 */
#include <string.h>
#include <sys/wait.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-client.h"
#include "real-proc.h"

#define WAIT_MS     60000

typedef struct ScribbleCase {
    const char *type;           /* "blk" or "net": the scribbled device */
    const char *scribble;       /* --x-scribble= */
    const char *expect;         /* in the FAILED line; NULL: any clean end */
} ScribbleCase;

static Proc *start_ref(Fixture *f, const char *type, const char *sock,
                       const char *scribble)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *s = g_strdup_printf("--socket-path=%s", sock);
    g_autofree char *t = g_strdup_printf("--type=%s", type);
    g_autofree char *x = scribble ? g_strdup_printf("--x-scribble=%s", scribble) : NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    Proc *p;

    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return NULL;
    }
    g_ptr_array_add(argv, (char *)be);
    g_ptr_array_add(argv, s);
    g_ptr_array_add(argv, t);
    if (!strcmp(type, "blk")) {
        /*
         * The scribbled disk is larger than the driver can track in 128M
         * of RAM (sparse: only what is written takes memory), so sectors
         * beyond the generation table get written: a tracked count taken
         * from guest RAM would index past it.
         */
        g_ptr_array_add(argv, scribble ? "--blk-size=1T" : "--blk-size=64M");
    }
    if (x) {
        g_ptr_array_add(argv, x);
    }
    p = proc_spawn(f, scribble ? "scribbler" : "companion", argv, false, NULL);
    return p && wait_socket(p, sock) ? p : NULL;
}

static void add_device(GPtrArray *argv, const char *type, const char *chardev_id,
                       const char *sock)
{
    g_ptr_array_add(argv, g_strdup("-chardev"));
    g_ptr_array_add(argv, g_strdup_printf("socket,id=%s,path=%s", chardev_id, sock));
    if (!strcmp(type, "blk")) {
        g_ptr_array_add(argv, g_strdup("-device"));
        g_ptr_array_add(argv, g_strdup_printf("vhost-user-blk-pci,chardev=%s", chardev_id));
    } else {
        g_ptr_array_add(argv, g_strdup("-netdev"));
        g_ptr_array_add(argv, g_strdup_printf("vhost-user,id=net0,chardev=%s", chardev_id));
        g_ptr_array_add(argv, g_strdup("-device"));
        g_ptr_array_add(argv, g_strdup("virtio-net-pci,netdev=net0"));
    }
}

/* The line of the log that holds needle, or NULL (newly allocated). */
static char *log_line(const char *log, const char *needle)
{
    const char *p = strstr(log, needle);
    const char *start, *end;

    if (!p) {
        return NULL;
    }
    for (start = p; start > log && start[-1] != '\n'; start--) {
    }
    end = strchrnul(p, '\n');
    return g_strndup(start, end - start);
}

/* Waits for dev's workload to end either way; false (test failed) if not. */
static bool wait_workload_end(Proc *vmm, const char *dev)
{
    g_autofree char *finished = g_strdup_printf("%s: workload finished (", dev);
    gint64 end = g_get_monotonic_time() + (gint64)WAIT_MS * 1000;

    for (;;) {
        g_autofree char *log = proc_log(vmm);

        if (strstr(log, finished)) {
            return true;
        }
        if (g_get_monotonic_time() >= end || proc_poll(vmm)) {
            g_test_fail_printf("%s's workload did not end within %u ms (%s); VMM log:\n%s",
                               dev, WAIT_MS, vmm->reaped ? "the VMM exited" :
                               "still running", log);
            return false;
        }
        g_usleep(20 * 1000);
    }
}

/* False, with the test failed and the VMM's log, when it is gone. */
static bool vmm_alive(Proc *vmm, const char *when)
{
    g_autofree char *log = NULL;

    if (!proc_poll(vmm)) {
        return true;
    }
    log = proc_log(vmm);
    g_test_fail_printf("the VMM exited (status 0x%x) %s; its log:\n%s", vmm->wstatus,
                       when, log);
    return false;
}

static void test_scribble(Fixture *f, gconstpointer data)
{
    const ScribbleCase *c = data;
    bool blk = !strcmp(c->type, "blk");
    const char *other = blk ? "net" : "blk";
    const char *dev = blk ? "blk0" : "net0";
    const char *bin = vmm_binary();
    g_autofree char *sock = g_build_filename(f->dir, "scribbled.sock", NULL);
    g_autofree char *sock2 = g_build_filename(f->dir, "companion.sock", NULL);
    g_autofree char *qmp_path = g_build_filename(f->dir, "qmp.sock", NULL);
    g_autofree char *out_path = g_build_filename(f->dir, "vmm.json", NULL);
    g_autofree char *line = NULL, *log = NULL, *be_log = NULL;
    g_autofree char *companion_started = g_strdup_printf("%s: workload started",
                                                         blk ? "net0" : "blk0");
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    JsonNode *r;
    QmpClient *qmp;
    Proc *be, *vmm;

    if (!bin || !(be = start_ref(f, c->type, sock, c->scribble)) ||
        !start_ref(f, other, sock2, NULL)) {
        return;
    }
    g_ptr_array_add(argv, g_strdup(bin));
    g_ptr_array_add(argv, g_strdup("-m"));
    g_ptr_array_add(argv, g_strdup("128M"));
    g_ptr_array_add(argv, g_strdup("-qmp"));
    g_ptr_array_add(argv, g_strdup_printf("unix:%s,server=on,wait=off", qmp_path));
    add_device(argv, c->type, "c0", sock);
    add_device(argv, other, "c1", sock2);
    g_ptr_array_add(argv, g_strdup("-workload"));
    /*
     * Long enough for several of the scribbler's tries: a search that finds
     * nothing waits 20 ms for the next, and 20000 packets now take less.
     */
    g_ptr_array_add(argv, g_strdup(blk ? "blk0:rw=randwrite,ops=2000,iodepth=4,verify=off"
                                       : "net0:count=200000,size=64+1518"));
    /* The companion runs on until we stop it: the VMM must not be done. */
    g_ptr_array_add(argv, g_strdup("-workload"));
    g_ptr_array_add(argv, g_strdup(blk ? "net0:count=50000000,size=64,runtime=120s,drain=2s"
                                       : "blk0:rw=randrw,bs=4k,iodepth=4,runtime=120s"));
    vmm = proc_spawn(f, "vmm", argv, false, out_path);
    if (!vmm || !wait_socket(vmm, qmp_path)) {
        return;
    }
    qmp = qmp_client_connect(qmp_path, WAIT_MS);
    if (!wait_workload_end(vmm, dev)) {
        qmp_client_free(qmp);
        return;
    }
    /* Survived: alive, QMP answers, the other device still runs. */
    if (!vmm_alive(vmm, "when the scribbled workload ended")) {
        qmp_client_free(qmp);
        return;
    }
    r = qmp_client_ok(qmp, "{\"execute\":\"query-status\"}");
    g_assert_true(json_object_get_boolean_member(json_node_get_object(r), "running"));
    json_node_unref(r);
    qmp_client_free(qmp);
    if (!wait_log(vmm, companion_started, 1, WAIT_MS)) {
        return;
    }
    g_usleep(200 * 1000);
    if (!vmm_alive(vmm, "while the companion ran")) {
        return;
    }
    be_log = proc_log(be);
    g_assert_nonnull(strstr(be_log, "scribble: writing"));
    /* A first SIGTERM ends the companion's workload early: exit 1, not a crash. */
    proc_stop(vmm);
    log = proc_log(vmm);
    if (!WIFEXITED(vmm->wstatus) || strstr(log, "Sanitizer") || strstr(log, "runtime error")) {
        g_test_fail_printf("%s: the VMM did not exit cleanly (status 0x%x); its log:\n%s",
                           c->scribble, vmm->wstatus, log);
        return;
    }
    /* The reason comes with the summary, at exit. */
    {
        g_autofree char *failed = g_strdup_printf("%s: workload FAILED", dev);

        line = log_line(log, failed);
    }
    if (c->expect) {
        g_autofree char *corrupted = g_strdup_printf("device state in RAM corrupted: %s: ",
                                                     dev);

        if (!line || !strstr(line, corrupted) || !strstr(line, c->expect)) {
            g_test_fail_printf("%s: expected a failure naming '%s', got: %s", c->scribble,
                               c->expect, line ? line : "(workload passed)");
        }
    }
    if (g_test_verbose()) {
        g_test_message("%s %s: %s", c->type, c->scribble, line ? line : "workload passed");
    }
}

/* What each field, aimed at alone, must be reported as (NULL: not read, or no index). */
static const ScribbleCase cases[] = {
    { "blk", "field=blk.tracked", "tracked" },
    { "blk", "field=vq.free_head", "free_head" },
    { "blk", "field=vq.num_free", "num_free" },
    { "blk", "field=vq.avail_idx", "avail_idx" },
    { "blk", "field=vq.last_used_idx", "last_used_idx" },
    { "blk", "field=vq.num", NULL },
    { "blk", "field=vq.flags", NULL },
    { "blk", "field=vq.token", "token" },
    { "blk", "field=vq.ndesc", "ndesc" },
    { "blk", "field=desc.next", "queue 0" },
    { "blk", "field=used.id", "used.id" },
    { "blk", "field=used.len", NULL },
    { "blk", "field=used.idx", "used.idx" },
    { "blk", "field=blk.seed", "seed" },
    { "blk", "field=blk.pool_gpa", "pool_gpa" },
    { "blk", "field=blk.pool_size", "pool_size" },
    { "blk", "field=blk.gen_gpa", "gen_gpa" },
    { "blk", "field=blk.inflight_gpa", "inflight_gpa" },
    { "net", "field=vq.free_head", "free_head" },
    { "net", "field=vq.num_free", "num_free" },
    { "net", "field=vq.avail_idx", "avail_idx" },
    { "net", "field=vq.last_used_idx", "last_used_idx" },
    { "net", "field=vq.num", NULL },
    { "net", "field=vq.flags", NULL },
    { "net", "field=vq.token", "token" },
    { "net", "field=vq.ndesc", "ndesc" },
    { "net", "field=desc.next", "queue " },
    { "net", "field=used.id", "used.id" },
    { "net", "field=used.len", NULL },
    { "net", "field=used.idx", "used.idx" },
    { "net", "field=net.run", "run" },
    { "net", "field=net.rxbuf", "rxbuf" },
    { "net", "field=net.nqp", "nqp" },
    { "net", "field=net.rx_gpa", "rx_gpa" },
    { "net", "field=net.work_gpa", "work_gpa" },
    { "net", "field=net.sent", "sent[" },
    { "blk", "random,seed=1,every=4", NULL },
    { "blk", "random,seed=2,every=4", NULL },
    { "blk", "random,seed=3,every=4", NULL },
    { "net", "random,seed=1,every=16", NULL },
    { "net", "random,seed=2,every=16", NULL },
    { "net", "random,seed=3,every=16", NULL },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/scribble/%s/%s", cases[i].type,
                                                cases[i].scribble);

        g_strdelimit(path + strlen("/scribble/"), "=,", '-');
        g_test_add(path, Fixture, &cases[i], fixture_setup, test_scribble,
                   fixture_teardown);
    }
    return g_test_run();
}
