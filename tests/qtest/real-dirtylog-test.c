/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dirty log against back-ends that really write guest memory: our
 * reference back-end (blk), and two we did not write: qemu-storage-daemon
 * (blk) and DPDK's net_vhost (testpmd). The VMM runs a verifying workload; the test switches
 * logging on through the monitor (x-vhost-log) and syncs while data
 * flows. Every used ring of the device must be marked (the back-end
 * writes used->idx for every completion; its GPA is the log_guest_addr
 * of the SET_VRING_ADDR that switched logging on, read from -trace), and
 * more pages than the used rings (the buffers it wrote: blk reads and
 * status bytes, net RX). With our back-end, once the device's I/O has
 * ended, a sync collects the tail and the next one reports nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-client.h"
#include "real-proc.h"

#define WAIT_MS             20000

/* Waits until p's log holds needle at least n times; false (test failed) if not. */
static bool wait_log_n(Proc *p, const char *needle, unsigned n)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000ll;

    for (;;) {
        g_autofree char *log = proc_log(p);

        if (qtest_count(log, needle) >= n) {
            return true;
        }
        if (proc_poll(p) || g_get_monotonic_time() > end) {
            g_test_fail_printf("%s: waited for \"%s\" x%u:\n%s", p->name, needle, n, log);
            return false;
        }
        g_usleep(20 * 1000);
    }
}

/* The first page of every used ring that dev's SET_VRING_ADDR put under the log. */
static GArray *logged_used_pages(const char *log, const char *dev)
{
    g_autofree char *pattern = g_strdup_printf("%s F>B SET_VRING_ADDR .* idx=(\\d+) "
                                               "flags=0x1 .* log=0x([0-9a-f]+)", dev);
    g_autoptr(GRegex) re = g_regex_new(pattern, 0, 0, NULL);
    g_autoptr(GMatchInfo) mi = NULL;
    GArray *pages = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    g_regex_match(re, log, 0, &mi);
    while (g_match_info_matches(mi)) {
        g_autofree char *gpa = g_match_info_fetch(mi, 2);
        uint64_t page = g_ascii_strtoull(gpa, NULL, 16) >> 12;

        g_array_append_val(pages, page);
        g_match_info_next(mi, NULL);
    }
    return pages;
}

/* x-vhost-log sync of dev: the pages reported (sorted). */
static GArray *log_sync(QmpClient *qmp, const char *dev)
{
    JsonNode *r = qmp_client_ok(qmp, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                                "{\"id\":\"%s\",\"action\":\"sync\"}}", dev);
    JsonArray *a = json_object_get_array_member(json_node_get_object(r), "pages");
    GArray *pages = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    for (guint i = 0; i < json_array_get_length(a); i++) {
        uint64_t p = (uint64_t)json_array_get_int_element(a, i);

        g_array_append_val(pages, p);
    }
    json_node_unref(r);
    return pages;
}

static void log_action(QmpClient *qmp, const char *dev, const char *action)
{
    json_node_unref(qmp_client_ok(qmp, "{\"execute\":\"x-vhost-log\",\"arguments\":"
                                  "{\"id\":\"%s\",\"action\":\"%s\"}}", dev, action));
}

static bool has_page(GArray *pages, uint64_t page)
{
    for (guint i = 0; i < pages->len; i++) {
        if (g_array_index(pages, uint64_t, i) == page) {
            return true;
        }
    }
    return false;
}

/*
 * Logging on for dev while it runs; after a while of I/O, a sync must
 * hold every logged used ring (nrings of them) and more pages besides.
 */
static bool check_logged_io(Proc *vmm, QmpClient *qmp, const char *dev, unsigned nrings)
{
    g_autoptr(GArray) used = NULL;
    g_autoptr(GArray) dirty = NULL;
    g_autofree char *log = NULL;

    log_action(qmp, dev, "start");
    g_usleep(500 * 1000);
    dirty = log_sync(qmp, dev);
    log = proc_log(vmm);
    used = logged_used_pages(log, dev);
    if (used->len != nrings) {
        g_test_fail_printf("%s: %u rings switched to logging, %u expected:\n%s", dev,
                           used->len, nrings, log);
        return false;
    }
    for (guint i = 0; i < used->len; i++) {
        if (!has_page(dirty, g_array_index(used, uint64_t, i))) {
            g_test_fail_printf("%s: ring %u's used ring (page 0x%" PRIx64 ") is not "
                               "marked; %u pages are", dev, i,
                               g_array_index(used, uint64_t, i), dirty->len);
            return false;
        }
    }
    /* Buffers: at least a few pages besides the used rings. */
    if (dirty->len < used->len + 4) {
        g_test_fail_printf("%s: only %u pages marked, %u of them used rings: the "
                           "buffers the back-end wrote are missing", dev, dirty->len,
                           used->len);
        return false;
    }
    g_test_message("%s: %u pages marked in 0.5 s of I/O", dev, dirty->len);
    return true;
}

static Proc *start_ref_blk(Fixture *f, const char *name, const char *sock)
{
    return proc_start_ref(f, name, "blk", sock, 2, NULL, 0, false);
}

/* The VMM with a monitor and -trace; args after those. Returns it and its monitor. */
static Proc *start_vmm(Fixture *f, const char *const *args, size_t nargs, QmpClient **qmp,
                       char **out_path)
{
    const char *bin = vmm_binary();
    g_autofree char *qmp_path = g_build_filename(f->dir, "qmp.sock", NULL);
    g_autofree char *qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp_path);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    Proc *vmm;

    if (!bin) {
        return NULL;
    }
    *out_path = g_build_filename(f->dir, "vmm.json", NULL);
    g_ptr_array_add(argv, (char *)bin);
    g_ptr_array_add(argv, "-m");
    g_ptr_array_add(argv, "256M");
    g_ptr_array_add(argv, "-qmp");
    g_ptr_array_add(argv, qmp_arg);
    g_ptr_array_add(argv, "-trace");
    g_ptr_array_add(argv, "vhost_user");
    g_ptr_array_add(argv, "-summary");
    g_ptr_array_add(argv, "json");
    for (size_t i = 0; i < nargs; i++) {
        g_ptr_array_add(argv, (char *)args[i]);
    }
    vmm = proc_spawn(f, "vmm", argv, false, *out_path);
    if (!vmm || !wait_socket(vmm, qmp_path)) {
        return NULL;
    }
    *qmp = qmp_client_connect(qmp_path, WAIT_MS);
    return vmm;
}

/* The VMM's end: exit 0 and every workload verified. */
static void check_vmm_end(Proc *vmm, const char *out_path, unsigned nworkloads)
{
    g_autofree char *out = NULL;
    g_autofree char *log = NULL;
    int code = -1;

    if (!vmm_collect(vmm, out_path, &code, &out, &log)) {
        return;
    }
    if (code != 0 || !out || qtest_count(out, "\"verified\":true") != nworkloads) {
        g_test_fail_printf("the VMM ended with %d; summary: %s", code, out ? out : "");
    }
}

/*
 * One device (two rings) with one workload: logged while it runs, then
 * logging off and the VMM's verified end.
 */
static void logged_run(Fixture *f, const char *const *args, size_t nargs, const char *dev)
{
    g_autofree char *out_path = NULL;
    g_autofree char *started = g_strdup_printf("%s: workload started", dev);
    QmpClient *qmp = NULL;
    Proc *vmm = start_vmm(f, args, nargs, &qmp, &out_path);

    if (vmm && wait_log_n(vmm, started, 1) && check_logged_io(vmm, qmp, dev, 2)) {
        log_action(qmp, dev, "stop");
        check_vmm_end(vmm, out_path, 1);
    }
    if (qmp) {
        qmp_client_free(qmp);
    }
}

/*
 * Two block devices over two reference back-ends: blk0's workload ends
 * first, while blk1's keeps the VMM running, so blk0's log is seen both
 * during I/O and after it.
 */
static void test_ref_blk(Fixture *f, gconstpointer data)
{
    g_autofree char *s0 = g_build_filename(f->dir, "blk0.sock", NULL);
    g_autofree char *s1 = g_build_filename(f->dir, "blk1.sock", NULL);
    g_autofree char *c0 = g_strdup_printf("socket,id=c0,path=%s", s0);
    g_autofree char *c1 = g_strdup_printf("socket,id=c1,path=%s", s1);
    g_autofree char *out_path = NULL;
    const char *args[] = {
        "-chardev", c0, "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
        "-chardev", c1, "-device", "vhost-user-blk-pci,chardev=c1,num-queues=2",
        "-workload", "blk0:rw=randrw,bs=4k,iodepth=16,runtime=2s",
        "-workload", "blk1:rw=randrw,bs=4k,iodepth=4,runtime=5s",
    };
    g_autoptr(GArray) tail = NULL;
    g_autoptr(GArray) idle = NULL;
    QmpClient *qmp = NULL;
    Proc *vmm;

    if (!start_ref_blk(f, "blk0", s0) || !start_ref_blk(f, "blk1", s1)) {
        return;
    }
    vmm = start_vmm(f, args, G_N_ELEMENTS(args), &qmp, &out_path);
    if (!vmm || !wait_log_n(vmm, "blk0: workload started", 1) ||
        !check_logged_io(vmm, qmp, "blk0", 2) ||
        !wait_log_n(vmm, "blk0: workload finished (ok)", 1)) {
        goto out;
    }
    /* The last completions, then nothing: blk0 does no more I/O. */
    tail = log_sync(qmp, "blk0");
    idle = log_sync(qmp, "blk0");
    if (idle->len != 0) {
        g_test_fail_printf("blk0: %u pages marked after its I/O ended (first 0x%" PRIx64
                           ")", idle->len, g_array_index(idle, uint64_t, 0));
        goto out;
    }
    log_action(qmp, "blk0", "stop");
    check_vmm_end(vmm, out_path, 2);
out:
    if (qmp) {
        qmp_client_free(qmp);
    }
}

/* qemu-storage-daemon's vhost-user-blk export: read buffers and used rings marked. */
static void test_qsd_blk(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100",
                                               sock);
    const char *args[] = {
        "-chardev", chardev, "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
        "-workload", "blk0:rw=randrw,bs=4k,iodepth=16,runtime=2s",
    };
    FILE *fp;

    if (!require_program("qemu-storage-daemon", "qemu-system-common")) {
        return;
    }
    /* A sparse 64 MiB raw image. */
    fp = fopen(img, "w");
    g_assert_nonnull(fp);
    g_assert_cmpint(ftruncate(fileno(fp), 64 << 20), ==, 0);
    fclose(fp);
    if (!proc_start_qsd(f, img, sock, 2)) {
        return;
    }
    logged_run(f, args, G_N_ELEMENTS(args), "blk0");
}

/* DPDK's net_vhost, looped: RX buffers and used rings marked while packets flow. */
static void test_dpdk_net(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *vdev = g_strdup_printf("net_vhost0,iface=%s,queues=1", sock);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100",
                                               sock);
    g_autoptr(GPtrArray) tp = g_ptr_array_new();
    const char *args[] = {
        "-chardev", chardev, "-netdev", "vhost-user,id=net0,chardev=c0,queues=1",
        "-device", "virtio-net-pci,netdev=net0",
        "-workload", "net0:count=100000000,size=64+1518,runtime=3s,drain=1s",
    };
    Proc *testpmd;

    if (!require_program("dpdk-testpmd", "dpdk")) {
        return;
    }
    f->dpdk_prefix = g_strdup_printf("vudirty%d", (int)getpid());
    g_ptr_array_add(tp, "dpdk-testpmd");
    g_ptr_array_add(tp, "-l");
    g_ptr_array_add(tp, "0,1");
    g_ptr_array_add(tp, "--no-huge");
    g_ptr_array_add(tp, "-m");
    g_ptr_array_add(tp, "512");
    g_ptr_array_add(tp, "--no-pci");
    g_ptr_array_add(tp, "--log-level=lib.eal:warning");
    g_ptr_array_add(tp, g_strdup_printf("--file-prefix=%s", f->dpdk_prefix));
    g_ptr_array_add(tp, "--vdev");
    g_ptr_array_add(tp, vdev);
    g_ptr_array_add(tp, "--");
    g_ptr_array_add(tp, "--forward-mode=io");
    g_ptr_array_add(tp, "--port-topology=loop");
    g_ptr_array_add(tp, "--nb-cores=1");
    g_ptr_array_add(tp, "--stats-period=0");
    g_ptr_array_add(tp, "--total-num-mbufs=8192");
    testpmd = proc_spawn(f, "testpmd", tp, true, NULL);
    g_free(tp->pdata[8]);
    if (!testpmd || !wait_socket(testpmd, sock)) {
        return;
    }
    logged_run(f, args, G_N_ELEMENTS(args), "net0");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/real-dirtylog/ref-blk", Fixture, NULL, fixture_setup, test_ref_blk,
               fixture_teardown);
    g_test_add("/real-dirtylog/qsd-blk", Fixture, NULL, fixture_setup, test_qsd_blk,
               fixture_teardown);
    g_test_add("/real-dirtylog/dpdk-net", Fixture, NULL, fixture_setup, test_dpdk_net,
               fixture_teardown);
    return g_test_run();
}
