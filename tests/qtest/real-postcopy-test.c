/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy live migration through real back-ends with PAGEFAULT, two VMM
 * processes, capability postcopy-ram on both sides, migrate-start-postcopy
 * in the middle of the first round (max-bandwidth keeps it there):
 *   qsd-blk      qemu-storage-daemon on both sides sharing one image, 4
 *                queues of verified randrw: the destination runs the
 *                guest from the switch, its guest and its back-end fault
 *                on missing pages and the requests are served; every
 *                block verifies, the image is consistent (the source does
 *                not send the ring pages ahead, so that qsd faults)
 *   qsd-auto     the same switched by x-postcopy-auto, not asked (the
 *                rounds cannot meet a downtime-limit of 0)
 *   qsd-ram      the same with -S on the destination (nothing writes its
 *                RAM until cont): once completed, both RAMs are equal page
 *                by page, so every owed page arrived and went where it
 *                belongs; then cont, and the workload verifies
 *   dpdk-net     dpdk-testpmd with postcopy-support=1 on both sides,
 *                verified traffic through the switch
 *   dpdk-mlocked the destination's testpmd locks its memory (its default):
 *                its mapping populates every owed page with zeros, so the
 *                destination fails naming that instead of running on
 *                zeros; the source's guest, past the switch, stays stopped
 *   dpdk-mlocked-S the same with -S on the destination: its devices start
 *                at cont, while postcopy still runs; cont fails naming the
 *                populated pages, the guest does not start, the migration
 *                fails on both sides
 *   refused      migrate-start-postcopy without the capability or without
 *                a migration: clear errors; a destination whose back-end
 *                lacks PAGEFAULT (testpmd without postcopy-support) fails
 *                the migration naming the device, the source's guest
 *                keeps running, and the same pair then migrates with
 *                precopy
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "postcopy-harness.h"

#define IMAGE_SIZE          (64ull << 20)
#define SEED                11u
#define MAX_LOST            4096
/* Small RAM, filled (no zero page): the first round takes ~2 s at PC_BW. */
#define RAM_MB              64

/* ---- qemu-storage-daemon ------------------------------------------- */

typedef enum QsdMode {
    QSD_RUNNING,            /* migrate-start-postcopy, the guest runs at once */
    QSD_FROZEN,             /* the same with -S: RAM compared, then cont */
    QSD_AUTO,               /* x-postcopy-auto switches by itself */
} QsdMode;

static void test_qsd(Fixture *f, QsdMode mode)
{
    bool frozen = mode == QSD_FROZEN;

    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *wl = g_strdup_printf("blk0:rw=randrw,bs=4k,iodepth=8,runtime=6s,"
                                          "seed=%u", SEED);
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB, .fill = true, .shm_ram = true };
    MigVmmOpts dopts = { .ram_mb = RAM_MB, .incoming = "defer", .frozen = frozen,
                          .shm_ram = true };
    MigVmm *src = NULL, *dst = NULL;

    if (!mig_qsd_pair(f, img, IMAGE_SIZE, wl, sa, da)) {
        return;
    }
    /*
     * qsd's sure faults are on its rings when its device starts on the
     * destination; the source sends those pages ahead of the switch, and
     * then qsd may not fault at all. qsd-blk wants qsd's faults served, so
     * its source does not; qsd-auto and qsd-ram keep it (qsd-ram then
     * finds the ring pages where they belong, page by page).
     */
    if (mode == QSD_RUNNING) {
        g_setenv("VHOST_USER_VMM_POSTCOPY_RINGS_AHEAD", "0", TRUE);
    }
    src = mig_vmm_start(f, "src", &so, sa);
    g_unsetenv("VHOST_USER_VMM_POSTCOPY_RINGS_AHEAD");
    if (!src ||
        !(dst = mig_vmm_start(f, "dst", &dopts, da)) ||
        !pc_migrate_postcopy(src, dst, "blk0", uri, mode == QSD_AUTO) ||
        !pc_check_dst_figures(dst, mode == QSD_RUNNING, mode == QSD_RUNNING) ||
        !pc_check_src(src, mode == QSD_RUNNING)) {
        goto out;
    }
    mig_postcopy_verify(src, dst, frozen, img, IMAGE_SIZE, SEED);
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

static void test_qsd_blk(Fixture *f, gconstpointer data)
{
    test_qsd(f, QSD_RUNNING);
}

static void test_qsd_auto(Fixture *f, gconstpointer data)
{
    test_qsd(f, QSD_AUTO);
}

static void test_qsd_ram(Fixture *f, gconstpointer data)
{
    test_qsd(f, QSD_FROZEN);
}

/* ---- DPDK testpmd --------------------------------------------------- */

/*
 * testpmd with PAGEFAULT on each side (the destination's with its memory
 * locked when asked), and a VMM on each with wl; false (test failed) if
 * any does not come up.
 */
static bool dpdk_vmms(Fixture *f, unsigned queues, bool dst_mlockall, bool frozen,
                      const char *wl, MigVmm **src, MigVmm **dst)
{
    g_autofree char *ss = g_build_filename(f->dir, "net-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "net-dst.sock", NULL);
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB, .fill = true, .shm_ram = true };
    MigVmmOpts dopts = { .ram_mb = RAM_MB, .incoming = "defer", .frozen = frozen,
                         .shm_ram = true };

    if (!mig_start_testpmd_postcopy(f, "testpmd-src", ss, queues, true, false) ||
        !mig_start_testpmd_postcopy(f, "testpmd-dst", ds, queues, true, dst_mlockall)) {
        return false;
    }
    mig_add_net(sa, ss, queues, wl);
    mig_add_net(da, ds, queues, wl);
    return (*src = mig_vmm_start(f, "src", &so, sa)) &&
           (*dst = mig_vmm_start(f, "dst", &dopts, da));
}

static void test_dpdk_net(Fixture *f, gconstpointer data)
{
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *wl = g_strdup_printf("net0:count=100000000,size=64+1518,runtime=6s,"
                                          "drain=1s,max-lost=%u", MAX_LOST);
    g_autofree char *out = NULL;
    g_autofree char *log = NULL;
    MigVmm *src = NULL, *dst = NULL;
    int code = -1;

    if (!dpdk_vmms(f, 2, false, false, wl, &src, &dst) ||
        !pc_migrate_postcopy(src, dst, "net0", uri, false) ||
        !pc_check_dst_figures(dst, true, false) || !pc_check_src(src, true) ||
        !mig_vmm_end(dst, &code, &out, &log)) {
        goto out;
    }
    g_test_message("destination: %" PRId64 " packets lost of %" PRId64 " sent",
                   json_uint(out ? out : "", "lost"), json_uint(out ? out : "", "sent"));
    if (code != 0 || !out || !json_true(out, "verified") ||
        json_uint(out, "lost") > MAX_LOST) {
        g_test_fail_printf("destination: exit %d: %s\n%s", code, out ? out : "", log);
    }
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
    mig_testpmd_cleanup("testpmd-src");
    mig_testpmd_cleanup("testpmd-dst");
}

/*
 * -S destination in postcopy-active, pages still owed: cont starts the
 * devices, the check finds the locked back-end's populated pages and cont
 * fails saying so; the guest stays paused.
 */
static bool cont_refused(MigVmm *dst)
{
    g_autofree char *st = mig_wait_status(dst, "postcopy-active", MIG_WAIT_MS);
    g_autoptr(JsonNode) q = mig_query(dst);
    int64_t missing = pc_figure(json_node_get_object(q), "pages-missing");
    g_autofree char *err = NULL;
    unsigned resumed;

    if (!st || strcmp(st, "postcopy-active") != 0 || missing <= 0) {
        g_test_fail_printf("-S destination before cont: status %s, %" PRId64 " pages missing "
                           "(want postcopy-active, > 0)", st ? st : "?", missing);
        return false;
    }
    /*
     * Whether the guest started: a RESUME event comes before cont's reply.
     * Not query-status: the destination exits as soon as its migration
     * failed, possibly before the question.
     */
    err = mig_qmp_error(dst, "{\"execute\":\"cont\"}");
    resumed = qmp_client_event_count(dst->qmp, "RESUME");
    g_test_message("cont with %" PRId64 " pages missing: %s; RESUME events %u", missing,
                   err ? err : "accepted", resumed);
    if (!err || !strstr(err, "a back-end populated its mapping") || resumed) {
        g_test_fail_printf("cont on a -S destination whose back-end locks its memory: %s, "
                           "RESUME events %u (want refused naming the populated pages, "
                           "not resumed)", err ? err : "accepted", resumed);
        return false;
    }
    return true;
}

static void test_dpdk_mlocked(Fixture *f, gconstpointer data)
{
    bool frozen = data != NULL;
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *st = NULL;
    g_autofree char *rs = NULL;
    g_autofree char *log = NULL;
    MigVmm *src = NULL, *dst = NULL;
    int code = -1;

    if (!dpdk_vmms(f, 1, true, frozen, "net0:count=100000000,size=64+1518,runtime=6s,drain=1s",
                   &src, &dst) ||
        !pc_switch_midstream(src, dst, "net0", uri, false)) {
        goto out;
    }
    if (frozen && !cont_refused(dst)) {
        goto out;
    }
    if (!(st = mig_wait_status(src, "failed", MIG_WAIT_MS)) || !mig_vmm_end(dst, &code, NULL, &log)) {
        goto out;
    }
    if (strcmp(st, "failed") != 0 || code != 1 ||
        !strstr(log, "a back-end populated its mapping")) {
        g_autofree char *dlog = proc_log(dst->proc);

        g_test_fail_printf("source %s, destination exit %d, expected failed, 1 and the "
                           "populated pages named:\n%s", st, code, dlog);
        goto out;
    }
    /* Past the switch the destination ran the guest: ours must not resume. */
    rs = mig_run_state(src);
    if (!strcmp(rs, "running")) {
        g_test_fail_printf("the source's guest runs again after a failed postcopy");
    }
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
    mig_testpmd_cleanup("testpmd-src");
    mig_testpmd_cleanup("testpmd-dst");
}

/* ---- refusals ------------------------------------------------------- */

/*
 * The source's guest after a failed migration: running, and its workload
 * ends verified (not migrated).
 */
static bool src_kept(MigVmm *src)
{
    g_autofree char *rs = mig_run_state(src);

    if (strcmp(rs, "running") != 0) {
        g_test_fail_printf("source: run state %s after the refused postcopy, not running", rs);
        return false;
    }
    return mig_vmm_verified(src, 1);
}

/* query-migrate-parameters' return, as JSON text. */
static char *params_text(MigVmm *v)
{
    g_autoptr(JsonNode) params = qmp_client_ok(v->qmp,
                                               "{\"execute\":\"query-migrate-parameters\"}");

    return json_to_string(params, FALSE);
}

/* query-migrate-capabilities and -parameters say what was set (postcopy-ram on). */
static bool check_caps_params(MigVmm *v)
{
    g_autoptr(JsonNode) caps = qmp_client_ok(v->qmp, "{\"execute\":\"query-migrate-capabilities\"}");
    g_autofree char *cs = json_to_string(caps, FALSE);
    g_autofree char *ps = NULL;
    g_autofree char *bad = NULL;

    json_node_unref(qmp_client_ok(v->qmp, "{\"execute\":\"migrate-set-parameters\","
                                  "\"arguments\":{\"x-postcopy-auto\":true}}"));
    ps = params_text(v);
    if (!strstr(cs, "{\"capability\":\"postcopy-ram\",\"state\":true}") ||
        !strstr(ps, "\"x-postcopy-auto\":true") ||
        !strstr(ps, "\"x-postcopy-fault-sched\":\"auto\"")) {
        g_test_fail_printf("capabilities %s, parameters %s", cs, ps);
        return false;
    }
    json_node_unref(qmp_client_ok(v->qmp, "{\"execute\":\"migrate-set-parameters\","
                                  "\"arguments\":{\"x-postcopy-auto\":false}}"));
    /* A bad value names the parameter and changes nothing (not even the others). */
    bad = qmp_client_fails(v->qmp, "GenericError",
                           "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
                           "{\"x-postcopy-auto\":true,\"x-postcopy-fault-sched\":\"rt\"}}");
    g_free(ps);
    ps = params_text(v);
    if (!strstr(bad, "'x-postcopy-fault-sched'") || !strstr(bad, "'rt'") ||
        !strstr(ps, "\"x-postcopy-auto\":false") ||
        !strstr(ps, "\"x-postcopy-fault-sched\":\"auto\"")) {
        g_test_fail_printf("bad x-postcopy-fault-sched: error '%s', parameters after %s", bad,
                           ps);
        return false;
    }
    json_node_unref(qmp_client_ok(v->qmp, "{\"execute\":\"migrate-set-parameters\","
                                  "\"arguments\":{\"x-postcopy-fault-sched\":\"slice\"}}"));
    g_free(ps);
    ps = params_text(v);
    json_node_unref(qmp_client_ok(v->qmp, "{\"execute\":\"migrate-set-parameters\","
                                  "\"arguments\":{\"x-postcopy-fault-sched\":\"auto\"}}"));
    if (!strstr(ps, "\"x-postcopy-fault-sched\":\"slice\"")) {
        g_test_fail_printf("x-postcopy-fault-sched slice: parameters %s", ps);
        return false;
    }
    return true;
}

static void test_refused(Fixture *f, gconstpointer data)
{
    g_autofree char *ss = g_build_filename(f->dir, "net-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "net-dst.sock", NULL);
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *uri2 = mig_unix_uri(f, "mig2.sock");
    g_autofree char *wl = g_strdup_printf("net0:count=100000000,size=64+1518,runtime=3s,"
                                          "drain=1s,max-lost=%u", MAX_LOST);
    g_autofree char *log = NULL;
    g_autofree char *st = NULL;
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) sa2 = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    g_autoptr(GPtrArray) da2 = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB, .shm_ram = true };
    MigVmmOpts dopts = { .ram_mb = RAM_MB, .incoming = "defer", .shm_ram = true };
    MigVmmOpts dopts2 = { .ram_mb = RAM_MB, .incoming = uri2, .shm_ram = true };
    MigVmm *src = NULL, *dst = NULL, *src2 = NULL, *dst2 = NULL;
    int code = -1;

    /* The source's back-end can do postcopy, the destination's cannot. */
    if (!mig_start_testpmd_postcopy(f, "testpmd-src", ss, 1, true, false) ||
        !mig_start_testpmd(f, "testpmd-dst", ds, 1)) {
        goto out;
    }
    mig_add_net(sa, ss, 1, wl);
    mig_add_net(sa2, ss, 1, wl);
    mig_add_net(da, ds, 1, wl);
    mig_add_net(da2, ds, 1, wl);
    if (!(src = mig_vmm_start(f, "src", &so, sa)) ||
        !wait_log(src->proc, "net0: workload started", 1, MIG_WAIT_MS) ||
        !mig_expect_error(src, "{\"execute\":\"migrate-start-postcopy\"}", "postcopy-ram") ||
        !mig_expect_error(src, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
                          "{\"capabilities\":[{\"capability\":\"x-colo\",\"state\":true}]}}",
                          "does not accept value 'x-colo'") ||
        !mig_set_postcopy(src, true) || !check_caps_params(src) ||
        !mig_expect_error(src, "{\"execute\":\"migrate-start-postcopy\"}",
                          "after migration has been started")) {
        goto out;
    }
    if (!(dst = mig_vmm_start(f, "dst", &dopts, da)) || !mig_set_postcopy(dst, true) ||
        !mig_incoming(dst, uri) || !mig_migrate(src, uri) ||
        !(st = mig_wait_status(src, "failed", MIG_WAIT_MS))) {
        goto out;
    }
    if (strcmp(st, "failed") != 0) {
        g_test_fail_printf("the source's migration ended %s, not failed", st);
        goto out;
    }
    /* The destination names the device and what it lacks, and exits 1. */
    if (!mig_vmm_end(dst, &code, NULL, &log)) {
        goto out;
    }
    if (code != 1 || !strstr(log, "'net0'") || !strstr(log, "PAGEFAULT") ||
        !strstr(log, "does not support postcopy")) {
        g_test_fail_printf("destination: exit %d, expected 1 and an error naming net0 and "
                           "PAGEFAULT:\n%s", code, log);
        goto out;
    }
    if (!src_kept(src)) {
        goto out;
    }
    /*
     * The same pair of back-ends with precopy (a new source VMM: testpmd
     * 22.11 drops a front-end that starts dirty logging a second time).
     */
    g_clear_pointer(&st, g_free);
    if (!(src2 = mig_vmm_start(f, "src2", &so, sa2)) ||
        !(dst2 = mig_vmm_start(f, "dst2", &dopts2, da2)) ||
        !wait_log(src2->proc, "net0: workload started", 1, MIG_WAIT_MS) ||
        !wait_log(dst2->proc, "migration: incoming from", 1, MIG_WAIT_MS) ||
        !mig_migrate(src2, uri2)) {
        goto out;
    }
    mig_completed_verified(src2, dst2, "precopy with the same back-ends");
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
    mig_vmm_free(src2);
    mig_vmm_free(dst2);
    mig_testpmd_cleanup("testpmd-src");
    mig_testpmd_cleanup("testpmd-dst");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/real-postcopy/qsd-blk", Fixture, NULL, fixture_setup, test_qsd_blk,
               fixture_teardown);
    g_test_add("/real-postcopy/qsd-ram", Fixture, NULL, fixture_setup, test_qsd_ram,
               fixture_teardown);
    g_test_add("/real-postcopy/qsd-auto", Fixture, NULL, fixture_setup, test_qsd_auto,
               fixture_teardown);
    g_test_add("/real-postcopy/dpdk-net", Fixture, NULL, fixture_setup, test_dpdk_net,
               fixture_teardown);
    g_test_add("/real-postcopy/dpdk-mlocked-S", Fixture, "S", fixture_setup, test_dpdk_mlocked,
               fixture_teardown);
    g_test_add("/real-postcopy/dpdk-mlocked", Fixture, NULL, fixture_setup, test_dpdk_mlocked,
               fixture_teardown);
    g_test_add("/real-postcopy/refused", Fixture, NULL, fixture_setup, test_refused,
               fixture_teardown);
    return g_test_run();
}
