/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live migration in the middle of verified I/O through real back-ends,
 * one back-end process per side:
 *   qsd-blk        qemu-storage-daemon on both sides exporting one image
 *                  (shared storage, locking=off), 4 queues of randrw; the
 *                  destination's workload goes on and verifies blocks
 *                  written before and after the switchover; then the image
 *                  itself is checked sector by sector, without the VMM
 *   dpdk-net       dpdk-testpmd net_vhost with 2 queue pairs; the RARP
 *                  frame (SEND_RARP after the load) loops back to the
 *                  destination's guest; lost packets bounded and reported
 *   netns-tcp      source and destination in two network namespaces,
 *                  the stream over TCP on a veth pair
 *   ref-loaded-ram our reference back-ends (blk reads and net RX write
 *                  guest memory) under load on the source; at switchover
 *                  (source done, destination held by -S) the two guest
 *                  RAMs are equal page by page; then cont and verify
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "guest/pattern.h"
#include "migrate-harness.h"

#define IMAGE_SIZE          (64ull << 20)
#define SEED                7u
#define MAX_LOST            4096
/* Small, so a first round under load stays short on 2 cores. */
#define RAM_MB              128

/*
 * The source's workload runs for delay_ms, then migrate to uri; the
 * source must end completed. Both VMMs already run.
 */
static bool migrate_midway(MigVmm *src, MigVmm *dst, const char *dev, const char *uri,
                           unsigned delay_ms)
{
    g_autofree char *started = g_strdup_printf("%s: workload started", dev);
    g_autofree char *st = NULL;

    if (!wait_log(src->proc, started, 1, MIG_WAIT_MS) ||
        !wait_log(dst->proc, "migration: incoming from", 1, MIG_WAIT_MS)) {
        return false;
    }
    g_usleep(delay_ms * 1000);
    if (!mig_migrate(src, uri) || !(st = mig_wait_status(src, "completed", MIG_WAIT_MS))) {
        return false;
    }
    if (strcmp(st, "completed") != 0) {
        g_autofree char *log = proc_log(src->proc);
        g_autofree char *dlog = proc_log(dst->proc);

        g_test_fail_printf("migration ended %s; source:\n%s\ndestination:\n%s", st, log,
                           dlog);
        return false;
    }
    return true;
}

/* The source ends 0 once its guest left (its workloads end as migrated). */
static bool source_left(MigVmm *src)
{
    g_autofree char *log = NULL;
    int code = -1;

    if (!mig_vmm_end(src, &code, NULL, &log)) {
        return false;
    }
    if (code != 0) {
        g_test_fail_printf("the source exited %d after a completed migration:\n%s", code,
                           log);
        return false;
    }
    return true;
}

/* ---- qemu-storage-daemon ------------------------------------------- */

static void test_qsd_blk(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *ss = g_build_filename(f->dir, "qsd-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "qsd-dst.sock", NULL);
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *wl = g_strdup_printf("blk0:rw=randrw,bs=4k,iodepth=8,runtime=6s,"
                                          "seed=%u", SEED);
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB }, dopts = { .ram_mb = RAM_MB, .incoming = uri };
    MigVmm *src = NULL, *dst = NULL;


    if (!require_program("qemu-storage-daemon", "qemu-system-common") ||
        !mig_make_image(img, IMAGE_SIZE) ||
        !proc_start_qsd_named(f, "qsd-src", img, ss, 4, true) ||
        !proc_start_qsd_named(f, "qsd-dst", img, ds, 4, true)) {
        return;
    }
    mig_add_blk(sa, ss, 4, wl);
    mig_add_blk(da, ds, 4, wl);
    if ((src = mig_vmm_start(f, "src", &so, sa)) &&
        (dst = mig_vmm_start(f, "dst", &dopts, da)) &&
        migrate_midway(src, dst, "blk0", uri, 2000) && source_left(src) &&
        mig_vmm_verified(dst, 1)) {
        mig_check_image(img, IMAGE_SIZE, SEED);
    }
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

/* ---- DPDK testpmd --------------------------------------------------- */

/* The VMM's monitor offers cmd (query-commands). */
static bool has_command(MigVmm *v, const char *cmd)
{
    g_autoptr(JsonNode) r = qmp_client_ok(v->qmp, "{\"execute\":\"query-commands\"}");
    g_autofree char *s = json_to_string(r, FALSE);
    g_autofree char *needle = g_strdup_printf("\"%s\"", cmd);

    return strstr(s, needle) != NULL;
}

/*
 * drain=5s: the destination's testpmd starts forwarding only after its
 * new-device callback; on a loaded machine that took over a second, and a
 * 1 s drain failed the run with the last TX window still queued (the
 * drain ends as soon as every buffer is back, so it costs nothing else).
 *
 * The RARP check needs the VMM's announce (SEND_RARP after the load,
 * announce_frames in the summary); a VMM without announce-self has neither.
 */
static void test_dpdk_net(Fixture *f, gconstpointer data)
{
    g_autofree char *ss = g_build_filename(f->dir, "net-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "net-dst.sock", NULL);
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *wl = g_strdup_printf("net0:count=100000000,size=64+1518,runtime=8s,"
                                          "drain=5s,max-lost=%u", MAX_LOST);
    g_autofree char *out = NULL;
    g_autofree char *log = NULL;
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB }, dopts = { .ram_mb = RAM_MB, .incoming = uri };
    MigVmm *src = NULL, *dst = NULL;
    bool announces = false;
    int code = -1;


    if (!mig_start_testpmd(f, "testpmd-src", ss, 2) ||
        !mig_start_testpmd(f, "testpmd-dst", ds, 2)) {
        goto out;
    }
    mig_add_net(sa, ss, 2, wl);
    mig_add_net(da, ds, 2, wl);
    if (!(src = mig_vmm_start(f, "src", &so, sa)) ||
        !(dst = mig_vmm_start(f, "dst", &dopts, da))) {
        goto out;
    }
    announces = has_command(dst, "announce-self");
    if (!migrate_midway(src, dst, "net0", uri, 1000) || !source_left(src) ||
        !mig_vmm_end(dst, &code, &out, &log)) {
        goto out;
    }
    g_test_message("destination: %" PRId64 " packets lost of %" PRId64 " sent, %" PRId64
                   " announce frames", json_uint(out ? out : "", "lost"),
                   json_uint(out ? out : "", "sent"),
                   json_uint(out ? out : "", "announce_frames"));
    if (code != 0 || !out || !json_true(out, "verified") ||
        json_uint(out, "lost") > MAX_LOST) {
        g_test_fail_printf("destination: exit %d: %s\n%s", code, out ? out : "", log);
    } else if (!announces) {
        g_test_message("this VMM has no announce-self: the RARP frame is not checked");
    } else if (!strstr(log, "SEND_RARP sent") || json_uint(out, "announce_frames") < 1) {
        g_test_fail_printf("destination: the RARP frame did not come back to the guest "
                           "(announce_frames %" PRId64 "):\n%s",
                           json_uint(out, "announce_frames"), log);
    }
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
    mig_testpmd_cleanup("testpmd-src");
    mig_testpmd_cleanup("testpmd-dst");
}

/* ---- two network namespaces ----------------------------------------- */

static void test_netns_tcp(Fixture *f, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *ss = g_build_filename(f->dir, "blk-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "blk-dst.sock", NULL);
    const char *uri = "tcp:10.77.0.2:4444";
    const char *wl = "blk0:rw=randrw,bs=4k,iodepth=8,runtime=4s";
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigNetns ns = { 0 };
    MigVmmOpts so = { .ram_mb = RAM_MB }, dopts = { .ram_mb = RAM_MB, .incoming = uri };
    MigVmm *src = NULL, *dst = NULL;


    if (!proc_start_ref(f, "blk-src", "blk", ss, 2, disk, IMAGE_SIZE, false) ||
        !proc_start_ref(f, "blk-dst", "blk", ds, 2, disk, IMAGE_SIZE, false) ||
        !mig_netns_setup(&ns, "10.77.0.1", "10.77.0.2")) {
        return;
    }
    so.netns = ns.a;
    dopts.netns = ns.b;
    mig_add_blk(sa, ss, 2, wl);
    mig_add_blk(da, ds, 2, wl);
    if ((src = mig_vmm_start(f, "src", &so, sa)) &&
        (dst = mig_vmm_start(f, "dst", &dopts, da)) &&
        migrate_midway(src, dst, "blk0", uri, 1000) && source_left(src)) {
        mig_vmm_verified(dst, 1);
    }
    mig_vmm_free(src);
    mig_vmm_free(dst);
    /* The VMMs are gone or go with the fixture; the namespaces go now. */
    mig_netns_cleanup(&ns);
}

/* ---- our back-ends writing guest memory ----------------------------- */

static void test_ref_loaded_ram(Fixture *f, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *bs = g_build_filename(f->dir, "blk-src.sock", NULL);
    g_autofree char *bd = g_build_filename(f->dir, "blk-dst.sock", NULL);
    g_autofree char *ns = g_build_filename(f->dir, "net-src.sock", NULL);
    g_autofree char *nd = g_build_filename(f->dir, "net-dst.sock", NULL);
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    const char *bwl = "blk0:rw=randrw,bs=4k,iodepth=8,runtime=8s";
    const char *nwl = "net0:count=100000000,size=64+1518,runtime=8s,drain=5s";
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB };
    MigVmmOpts dopts = { .ram_mb = RAM_MB, .incoming = uri, .frozen = true };
    MigVmm *src = NULL, *dst = NULL;
    int64_t diff;


    if (!proc_start_ref(f, "blk-src", "blk", bs, 2, disk, IMAGE_SIZE, false) ||
        !proc_start_ref(f, "blk-dst", "blk", bd, 2, disk, IMAGE_SIZE, false) ||
        !proc_start_ref(f, "net-src", "net", ns, 1, NULL, 0, false) ||
        !proc_start_ref(f, "net-dst", "net", nd, 1, NULL, 0, false)) {
        return;
    }
    mig_add_blk(sa, bs, 2, bwl);
    mig_add_net(sa, ns, 1, nwl);
    mig_add_blk(da, bd, 2, bwl);
    mig_add_net(da, nd, 1, nwl);
    if (!(src = mig_vmm_start(f, "src", &so, sa)) ||
        !(dst = mig_vmm_start(f, "dst", &dopts, da)) ||
        !wait_log(src->proc, "net0: workload started", 1, MIG_WAIT_MS) ||
        !migrate_midway(src, dst, "blk0", uri, 1000) ||
        !wait_log(dst->proc, "migration: loaded", 1, MIG_WAIT_MS) ||
        !source_left(src)) {
        goto out;
    }
    /* Source done, destination held by -S: nothing writes either RAM now. */
    diff = mig_ram_compare(src, dst);
    if (diff != 0) {
        g_test_fail_printf("%" PRId64 " pages differ between the source's and the "
                           "destination's RAM at switchover", diff);
        goto out;
    }
    json_node_unref(qmp_client_ok(dst->qmp, "{\"execute\":\"cont\"}"));
    mig_vmm_verified(dst, 2);
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/real-migrate/qsd-blk", Fixture, NULL, fixture_setup, test_qsd_blk,
               fixture_teardown);
    g_test_add("/real-migrate/dpdk-net", Fixture, NULL, fixture_setup, test_dpdk_net,
               fixture_teardown);
    g_test_add("/real-migrate/netns-tcp", Fixture, NULL, fixture_setup, test_netns_tcp,
               fixture_teardown);
    g_test_add("/real-migrate/ref-loaded-ram", Fixture, NULL, fixture_setup,
               test_ref_loaded_ram, fixture_teardown);
    return g_test_run();
}
