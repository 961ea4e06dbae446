/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Data through real back-ends we did not write: DPDK's net_vhost (in
 * dpdk-testpmd, forwarding every packet back) and qemu-storage-daemon's
 * vhost-user-blk export. The VMM runs its guest drivers' workloads
 * against them and must report every packet and every block verified;
 * for blk the image file itself is then checked sector by sector.
 *
 * Our own reference back-end (contrib/vhost-user-backend, REF_BACKEND)
 * runs the same workloads as a second opinion, including the requests
 * the real ones do not offer (DISCARD, WRITE_ZEROES, mergeable RX
 * buffers) and the VMM as the listening side.
 *
 * Every process runs in its own temporary directory, gets SIGKILL if this
 * test dies, and is killed and reaped on every path; every wait is
 * bounded (real-proc.c). A missing program is a failure naming the
 * Debian package that provides it (scripts/install-deps.sh installs them):
 * these tests are the point of the project, they are never skipped.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "guest/virtio-blk-drv.h"
#include "real-proc.h"

#define BLK_IMAGE_SIZE      (64u * 1024 * 1024)

/* ---- DPDK testpmd --------------------------------------------------- */

/*
 * jumbo: host_mtu=9000 (VIRTIO_NET_F_MTU to the driver, NET_SET_MTU to
 * testpmd) and frames up to 9018 bytes, merged over 2 KiB RX buffers.
 */
static void test_dpdk_net(Fixture *f, unsigned queues, bool jumbo)
{
    /* The jumbo mix sums to 19614 bytes per 4 packets. */
    const int64_t jumbo_bytes = 5000ll * (64 + 1518 + 9014 + 9018);
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *q = g_strdup_printf("%u", queues);
    g_autofree char *chardev = NULL;
    g_autofree char *netdev = NULL;
    g_autofree char *out = NULL;
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    Proc *testpmd;
    int code = -1;
    int64_t sent, received;

    testpmd = proc_start_testpmd(f, sock, queues, false, jumbo);
    if (!testpmd) {
        return;
    }

    chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100", sock);
    netdev = g_strdup_printf("vhost-user,id=net0,chardev=c0,queues=%s", q);
    g_ptr_array_add(args, "-m");
    g_ptr_array_add(args, "256M");
    g_ptr_array_add(args, "-chardev");
    g_ptr_array_add(args, chardev);
    g_ptr_array_add(args, "-netdev");
    g_ptr_array_add(args, netdev);
    g_ptr_array_add(args, "-device");
    g_ptr_array_add(args, jumbo ? "virtio-net-pci,netdev=net0,mq=on,host_mtu=9000"
                                : "virtio-net-pci,netdev=net0,mq=on");
    g_ptr_array_add(args, "-workload");
    g_ptr_array_add(args, jumbo ? "net0:count=20000,size=64+1518+9014+9018,drain=2s"
                                : "net0:count=20000,size=64+512+1518,drain=2s");
    g_ptr_array_add(args, "-summary");
    g_ptr_array_add(args, "json");
    out = run_vmm(f, "vmm", args, &code);
    if (!out || code != 0) {
        return;
    }
    sent = json_uint(out, "sent");
    received = json_uint(out, "received");
    if (!json_true(out, "verified") || sent <= 0 || received != sent ||
        sent != 20000 * (int64_t)queues) {
        g_test_fail_printf("net0 over testpmd: expected %u packets sent, all "
                           "received and verified; the VMM said: %s",
                           20000 * queues, out);
        return;
    }
    if (jumbo && json_uint(out, "bytes") != jumbo_bytes * queues) {
        g_test_fail_printf("net0 over testpmd: %" PRId64 " bytes verified, the "
                           "jumbo mix makes %" PRId64 ": %s", json_uint(out, "bytes"),
                           jumbo_bytes * queues, out);
        return;
    }
    if (jumbo) {
        g_autofree char *log = proc_log(testpmd);

        if (!strstr(log, "VHOST_USER_NET_SET_MTU")) {
            g_test_fail_printf("testpmd never got NET_SET_MTU:\n%s", log);
            return;
        }
    }
    /* testpmd still running means it took the whole session without a fault. */
    if (proc_poll(testpmd)) {
        g_autofree char *log = proc_log(testpmd);

        g_test_fail_printf("testpmd exited during the run:\n%s", log);
    }
}

static void test_dpdk_net_1q(Fixture *f, gconstpointer data)
{
    test_dpdk_net(f, 1, false);
}

static void test_dpdk_net_2q(Fixture *f, gconstpointer data)
{
    test_dpdk_net(f, 2, false);
}

static void test_dpdk_net_jumbo(Fixture *f, gconstpointer data)
{
    test_dpdk_net(f, 2, true);
}

/*
 * testpmd killed (-9) during traffic and started again, with the VMM as
 * client (reconnect-ms) and as server (testpmd connects with client=1).
 * The packets the dead testpmd held are gone (at most a window per pair);
 * traffic must resume on the same rings and every packet that arrives
 * must verify: nothing corrupted, duplicated or on the wrong queue.
 */
static void test_dpdk_net_restart(Fixture *f, gconstpointer data)
{
    bool vmm_server = GPOINTER_TO_INT(data);
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *out_path = g_build_filename(f->dir, "vmm.json", NULL);
    g_autofree char *chardev = g_strdup_printf(
        "socket,id=c0,path=%s,%s", sock, vmm_server ? "server=on,wait=off" : "reconnect-ms=10");
    g_autofree char *out = NULL;
    g_autofree char *log = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *vmm_bin = vmm_binary();
    Proc *tp, *vmm;
    int code;

    if (!vmm_bin) {
        return;
    }
    if (!vmm_server && !(tp = proc_start_testpmd(f, sock, 2, false, false))) {
        return;
    }
    g_ptr_array_add(argv, (char *)vmm_bin);
    g_ptr_array_add(argv, "-m");
    g_ptr_array_add(argv, "256M");
    g_ptr_array_add(argv, "-chardev");
    g_ptr_array_add(argv, chardev);
    g_ptr_array_add(argv, "-netdev");
    g_ptr_array_add(argv, "vhost-user,id=net0,chardev=c0,queues=2");
    g_ptr_array_add(argv, "-device");
    g_ptr_array_add(argv, "virtio-net-pci,netdev=net0,mq=on");
    /* Two windows of 64: what one dead testpmd can take with it. */
    g_ptr_array_add(argv, "-workload");
    g_ptr_array_add(argv, "net0:count=100000000,runtime=5s,window=64,drain=6s,max-lost=128");
    g_ptr_array_add(argv, "-summary");
    g_ptr_array_add(argv, "json");
    vmm = proc_spawn(f, "vmm", argv, false, out_path);
    if (!vmm || (vmm_server && (!wait_socket(vmm, sock) ||
                                !(tp = proc_start_testpmd(f, sock, 2, true, false))))) {
        return;
    }
    /*
     * Kill it under traffic, never before the rings first ran (the test
     * counts two starts): on a loaded machine, or under ASan, the first
     * start can take longer than any fixed sleep.
     */
    if (!wait_log(vmm, "net0: started 4 rings", 1, 20000)) {
        return;
    }
    g_usleep(500 * 1000);
    kill(tp->pid, SIGKILL);
    proc_wait(tp, TERM_WAIT_MS);
    if (!vmm_server) {
        /* testpmd does not remove its socket; a stale one stops the next. */
        g_unlink(sock);
    }
    if (!proc_start_testpmd(f, sock, 2, vmm_server, false)) {
        return;
    }
    if (!vmm_collect(vmm, out_path, &code, &out, &log)) {
        return;
    }
    if (code != 0 || !out || json_uint(out, "mismatched") != 0 ||
        json_uint(out, "wrong_queue") != 0 || json_uint(out, "stale") != 0 ||
        json_uint(out, "lost") > 128 ||
        json_uint(out, "packets_verified") != json_uint(out, "received") ||
        qtest_count(log, "net0: started 4 rings") != 2) {
        g_test_fail_printf("testpmd restarted under traffic (VMM %s): exit %d, "
                           "summary %s; stderr:\n%s", vmm_server ? "server" : "client",
                           code, out ? out : "(none)", log);
    }
}

/* ---- qemu-storage-daemon -------------------------------------------- */

static bool create_image(Fixture *f, const char *img)
{
    g_autofree char *size = g_strdup_printf("%u", BLK_IMAGE_SIZE);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    Proc *p;

    g_ptr_array_add(argv, "qemu-img");
    g_ptr_array_add(argv, "create");
    g_ptr_array_add(argv, "-q");
    g_ptr_array_add(argv, "-f");
    g_ptr_array_add(argv, "raw");
    g_ptr_array_add(argv, (char *)img);
    g_ptr_array_add(argv, size);
    p = proc_spawn(f, "qemu-img", argv, false, NULL);
    if (!p) {
        return false;
    }
    if (!proc_wait(p, SPAWN_WAIT_MS) || !WIFEXITED(p->wstatus) ||
        WEXITSTATUS(p->wstatus) != 0) {
        g_autofree char *log = proc_log(p);

        g_test_fail_printf("qemu-img create failed:\n%s", log);
        return false;
    }
    return true;
}

/* Every sector of the image holds what a fill with seed left there. */
static void check_image(const char *img, uint32_t seed)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;

    if (!g_file_get_contents(img, &data, &len, &err)) {
        g_test_fail_printf("cannot read back %s: %s", img, err->message);
        return;
    }
    if (len != BLK_IMAGE_SIZE) {
        g_test_fail_printf("%s is %" G_GSIZE_FORMAT " bytes, expected %u", img,
                           len, BLK_IMAGE_SIZE);
        return;
    }
    for (uint64_t s = 0; s < len / VIRTIO_BLK_SECTOR_SIZE; s++) {
        PatternMismatch mm;

        if (!virtio_blk_check_sector(data + s * VIRTIO_BLK_SECTOR_SIZE, s, seed, &mm)) {
            g_test_fail_printf("%s: sector %" PRIu64 " does not hold the fill "
                               "pattern of seed %" PRIu32, img, s, seed);
            return;
        }
    }
    g_test_message("%s: all %" G_GSIZE_FORMAT " sectors verified", img,
                   len / VIRTIO_BLK_SECTOR_SIZE);
}

static char *blk_run(Fixture *f, const char *name, const char *sock, unsigned queues,
                     const char *workload)
{
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100",
                                               sock);
    g_autofree char *device = g_strdup_printf("vhost-user-blk-pci,chardev=c0,"
                                              "num-queues=%u", queues);
    g_autofree char *wl = g_strdup_printf("blk0:%s", workload);
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    char *out;
    int code = -1;

    g_ptr_array_add(args, "-m");
    g_ptr_array_add(args, "256M");
    g_ptr_array_add(args, "-chardev");
    g_ptr_array_add(args, chardev);
    g_ptr_array_add(args, "-device");
    g_ptr_array_add(args, device);
    g_ptr_array_add(args, "-workload");
    g_ptr_array_add(args, wl);
    g_ptr_array_add(args, "-summary");
    g_ptr_array_add(args, "json");
    out = run_vmm(f, name, args, &code);
    if (out && code != 0) {
        g_clear_pointer(&out, g_free);
    }
    if (out && (!json_true(out, "verified") || json_uint(out, "mismatches") != 0 ||
                json_uint(out, "io_errors") != 0 || json_uint(out, "ops") <= 0)) {
        g_test_fail_printf("%s: expected a verified run without errors; the VMM "
                           "said: %s", name, out);
        g_clear_pointer(&out, g_free);
    }
    return out;
}

static void test_qsd_blk(Fixture *f, unsigned queues)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *out1 = NULL;
    g_autofree char *out2 = NULL;
    const uint32_t seed = 0x5eed0000u + queues;
    g_autofree char *fill = g_strdup_printf("rw=fill,bs=64k,iodepth=8,seed=%" PRIu32,
                                            seed);
    Proc *qsd;

    if (!require_program("qemu-storage-daemon", "qemu-system-common") ||
        !require_program("qemu-img", "qemu-utils") ||
        !create_image(f, img)) {
        return;
    }
    qsd = proc_start_qsd(f, img, sock, queues);
    if (!qsd) {
        return;
    }
    out1 = blk_run(f, "vmm-randrw", sock, queues,
                   "rw=randrw,bs=4k,iodepth=16,ops=20000,verify=on");
    if (!out1) {
        return;
    }
    /* A second VMM on the same export: qsd takes a new front-end. */
    out2 = blk_run(f, "vmm-fill", sock, queues, fill);
    if (!out2) {
        return;
    }
    if (json_uint(out2, "range_sectors") != BLK_IMAGE_SIZE / VIRTIO_BLK_SECTOR_SIZE) {
        g_test_fail_printf("the fill covered %" PRId64 " sectors, not the whole "
                           "%u-byte disk: %s", json_uint(out2, "range_sectors"),
                           BLK_IMAGE_SIZE, out2);
        return;
    }
    /* qsd flushes and closes the image at exit: then the file is the truth. */
    proc_stop(qsd);
    if (!WIFEXITED(qsd->wstatus) || WEXITSTATUS(qsd->wstatus) != 0) {
        g_autofree char *log = proc_log(qsd);

        g_test_fail_printf("qemu-storage-daemon did not exit cleanly (status 0x%x):\n%s",
                           qsd->wstatus, log);
        return;
    }
    check_image(img, seed);
}

static void test_qsd_blk_1q(Fixture *f, gconstpointer data)
{
    test_qsd_blk(f, 1);
}

static void test_qsd_blk_4q(Fixture *f, gconstpointer data)
{
    test_qsd_blk(f, 4);
}

/*
 * The workload's poll modes against a back-end already listening on sock
 * (be, on the image img): a verified randrw in each mode, then a fill
 * with poll=on whose every sector is checked in the file once the
 * back-end has exited. poll=on never sleeps in poll() (its used rings are
 * busy-polled with the calls suppressed); poll=off does, at iodepth 1.
 */
static void blk_poll_modes(Fixture *f, const char *sock, Proc *be, const char *img,
                           uint32_t seed)
{
    const char *const modes[] = { "off", "on", "adaptive" };
    g_autofree char *fill = g_strdup_printf("rw=fill,bs=64k,iodepth=8,poll=on,seed=%" PRIu32,
                                            seed);
    g_autofree char *out = NULL;

    for (unsigned i = 0; i < G_N_ELEMENTS(modes); i++) {
        g_autofree char *name = g_strdup_printf("vmm-poll-%s", modes[i]);
        g_autofree char *wl = g_strdup_printf("rw=randrw,bs=4k,iodepth=%u,ops=4000,"
                                              "verify=on,poll=%s", i ? 16 : 1, modes[i]);
        g_autofree char *r = blk_run(f, name, sock, 1, wl);
        g_autofree char *key = g_strdup_printf("\"poll\":\"%s\"", modes[i]);
        int64_t sleeps;

        if (!r) {
            return;
        }
        sleeps = json_uint(r, "sleeps");
        if (!strstr(r, key) || (i == 0 && sleeps <= 0) || (i == 1 && sleeps != 0)) {
            g_test_fail_printf("poll=%s: expected %s; the VMM said: %s", modes[i],
                               i == 0 ? "sleeps in poll() at iodepth 1" :
                               i == 1 ? "no sleep at all" : "its mode reported", r);
            return;
        }
        g_test_message("poll=%s: %" PRId64 " sleeps", modes[i], sleeps);
    }
    out = blk_run(f, "vmm-poll-fill", sock, 1, fill);
    if (!out) {
        return;
    }
    proc_stop(be);
    if (!WIFEXITED(be->wstatus) || WEXITSTATUS(be->wstatus) != 0) {
        g_autofree char *log = proc_log(be);

        g_test_fail_printf("the back-end did not exit cleanly (status 0x%x):\n%s",
                           be->wstatus, log);
        return;
    }
    check_image(img, seed);
}

static void test_qsd_blk_poll(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    Proc *qsd;

    if (!require_program("qemu-storage-daemon", "qemu-system-common") ||
        !require_program("qemu-img", "qemu-utils") ||
        !create_image(f, img) || !(qsd = proc_start_qsd(f, img, sock, 1))) {
        return;
    }
    blk_poll_modes(f, sock, qsd, img, 0x5eedb011u);
}

/*
 * qemu-storage-daemon has no inflight tracking and completes requests out
 * of order: killed (-9) with requests in flight, the next one cannot
 * resume them exactly. The documented rule: the device asks the driver
 * for a reset (NEEDS_RESET) and the driver submits every outstanding
 * request again, so each completes once and every block still verifies.
 * Three kills and restarts on the same image during one verified run.
 */
static void test_qsd_blk_kill(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *out_path = g_build_filename(f->dir, "vmm.json", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=10",
                                               sock);
    g_autofree char *out = NULL;
    g_autofree char *log = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *vmm_bin = vmm_binary();
    Proc *qsd, *vmm;
    int code;

    if (!vmm_bin || !require_program("qemu-storage-daemon", "qemu-system-common") ||
        !require_program("qemu-img", "qemu-utils") || !create_image(f, img) ||
        !(qsd = proc_start_qsd(f, img, sock, 2))) {
        return;
    }
    g_ptr_array_add(argv, (char *)vmm_bin);
    g_ptr_array_add(argv, "-m");
    g_ptr_array_add(argv, "256M");
    g_ptr_array_add(argv, "-chardev");
    g_ptr_array_add(argv, chardev);
    g_ptr_array_add(argv, "-device");
    g_ptr_array_add(argv, "vhost-user-blk-pci,chardev=c0,num-queues=2");
    g_ptr_array_add(argv, "-workload");
    g_ptr_array_add(argv, "blk0:rw=randrw,bs=4k,iodepth=32,runtime=8s");
    g_ptr_array_add(argv, "-summary");
    g_ptr_array_add(argv, "json");
    vmm = proc_spawn(f, "vmm", argv, false, out_path);
    if (!vmm) {
        return;
    }
    for (unsigned kill_no = 1; kill_no <= 3; kill_no++) {
        g_autofree char *name = g_strdup_printf("qsd%u", kill_no);

        /* I/O in full flight: the progress line comes once a second. */
        g_usleep(1500 * 1000);
        if (proc_poll(vmm)) {
            break;
        }
        kill(qsd->pid, SIGKILL);
        proc_wait(qsd, TERM_WAIT_MS);
        /* qsd does not remove its socket; a stale one would stop the next. */
        g_unlink(sock);
        qsd = proc_start_qsd(f, img, sock, 2);
        if (!qsd) {
            return;
        }
    }
    if (!vmm_collect(vmm, out_path, &code, &out, &log)) {
        return;
    }
    if (code != 0 || !out || !json_true(out, "verified") ||
        json_uint(out, "mismatches") != 0 || json_uint(out, "io_errors") != 0 ||
        json_uint(out, "resets") < 1 || json_uint(out, "resubmitted") < 1 ||
        !strstr(log, "the device needs a reset")) {
        g_test_fail_printf("after 3 kills of qemu-storage-daemon: exit %d, "
                           "summary %s; stderr:\n%s", code, out ? out : "(none)",
                           log);
    }
}

/*
 * One VMM run that sets the write cache (wce=) and must report what the
 * back-end's config said before: GET_CONFIG on connect, so it shows
 * whether the previous run's SET_CONFIG took. was < 0: not checked.
 */
static bool wce_run(Fixture *f, const char *sock, unsigned n, unsigned wce, int was)
{
    g_autofree char *name = g_strdup_printf("vmm-wce%u", n);
    g_autofree char *wl = g_strdup_printf("rw=randwrite,bs=4k,iodepth=4,ops=2000,wce=%u",
                                          wce);
    g_autofree char *want = g_strdup_printf("blk0: write cache %s (writeback %u, was ",
                                            wce ? "on: write-back" : "off: write-through",
                                            wce);
    g_autofree char *log_path = g_strdup_printf("%s/%s.log", f->dir, name);
    g_autofree char *out = blk_run(f, name, sock, 1, wl);
    g_autofree char *log = NULL;
    const char *line;

    if (!out) {
        return false;
    }
    if (!g_file_get_contents(log_path, &log, NULL, NULL) ||
        !(line = strstr(log, want)) ||
        (was >= 0 && line[strlen(want)] != '0' + was) ||
        json_uint(out, "writes") != 2000) {
        g_test_fail_printf("%s (wce=%u): expected \"%s%d)\" and 2000 writes; "
                           "summary %s; stderr:\n%s", name, wce, want, was, out,
                           log ? log : "(none)");
        return false;
    }
    return true;
}

/*
 * qemu-storage-daemon takes SET_CONFIG of wce (blk_set_enable_write_cache)
 * and reports it in GET_CONFIG: three VMMs in turn switch it 1, 0, 1 and
 * each sees the one before it.
 */
static void test_qsd_blk_wce(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);

    if (!require_program("qemu-storage-daemon", "qemu-system-common") ||
        !require_program("qemu-img", "qemu-utils") ||
        !create_image(f, img) || !proc_start_qsd(f, img, sock, 1)) {
        return;
    }
    if (wce_run(f, sock, 1, 1, -1) && wce_run(f, sock, 2, 0, 1)) {
        wce_run(f, sock, 3, 1, 0);
    }
}

/* ---- our reference back-end ----------------------------------------- */

/*
 * Starts the reference back-end of type (net or blk) on sock; client:
 * it connects to the VMM's listening socket instead of listening.
 */
static Proc *start_ref(Fixture *f, const char *type, const char *sock,
                       unsigned queues, const char *blk_file, bool client)
{
    return proc_start_ref(f, type, type, sock, queues, blk_file,
                          blk_file ? BLK_IMAGE_SIZE : 0, client);
}

/*
 * jumbo (data non-NULL): host_mtu=9000, which the back-end hears with
 * NET_SET_MTU, and frames up to 9018 bytes spread over 9 buffers of 1 KiB.
 */
static void test_ref_net(Fixture *f, gconstpointer data)
{
    bool jumbo = data != NULL;
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100",
                                               sock);
    g_autofree char *out = NULL;
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    int code = -1;
    Proc *be;

    if (!(be = start_ref(f, "net", sock, 2, NULL, false))) {
        return;
    }
    g_ptr_array_add(args, "-m");
    g_ptr_array_add(args, "256M");
    g_ptr_array_add(args, "-chardev");
    g_ptr_array_add(args, chardev);
    g_ptr_array_add(args, "-netdev");
    g_ptr_array_add(args, "vhost-user,id=net0,chardev=c0,queues=2");
    g_ptr_array_add(args, "-device");
    g_ptr_array_add(args, jumbo ? "virtio-net-pci,netdev=net0,mq=on,host_mtu=9000"
                                : "virtio-net-pci,netdev=net0,mq=on");
    /* Frames into 1024-byte buffers: mergeable RX must chain them. */
    g_ptr_array_add(args, "-workload");
    g_ptr_array_add(args, jumbo ? "net0:count=20000,size=64+9014+1518+9018,rxbuf=1k,drain=2s"
                                : "net0:count=20000,size=64+1518,rxbuf=1k,drain=2s");
    g_ptr_array_add(args, "-summary");
    g_ptr_array_add(args, "json");
    out = run_vmm(f, "vmm", args, &code);
    if (!out || code != 0) {
        return;
    }
    if (!json_true(out, "verified") || json_uint(out, "sent") != 40000 ||
        json_uint(out, "packets_verified") != 40000 || json_uint(out, "lost") != 0) {
        g_test_fail_printf("net0 over the reference back-end: expected 40000 "
                           "packets sent and verified; the VMM said: %s", out);
        return;
    }
    if (jumbo) {
        g_autofree char *log = proc_log(be);

        if (json_uint(out, "bytes") != 10000ll * (64 + 9014 + 1518 + 9018) ||
            !strstr(log, "MTU 9000: frames of up to 9018 bytes")) {
            g_test_fail_printf("jumbo over the reference back-end: the VMM said %s; "
                               "the back-end:\n%s", out, log);
        }
    }
}

/*
 * The like-for-like mode of bench/bench-net.sh (what DPDK's
 * net_virtio_user does): verify=seq (sequence numbers and headers
 * checked, payload untouched), poll=on, bursts of 32. Every packet must
 * come back once, none lost, and the driver must never have slept.
 * Against testpmd, which polls and asks for no kicks, there is not one
 * kick per packet either: no system call per packet.
 */
static void run_like_for_like(Fixture *f, const char *sock, unsigned queues,
                              const char *peer, bool polling_peer)
{
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100",
                                               sock);
    g_autofree char *netdev = g_strdup_printf("vhost-user,id=net0,chardev=c0,queues=%u",
                                              queues);
    g_autofree char *out = NULL;
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    const char *fixed[] = {
        "-m", "256M", "-chardev", chardev, "-netdev", netdev,
        "-device", "virtio-net-pci,netdev=net0,mq=on", "-workload",
        "net0:count=20000,size=64+1518,verify=seq,poll=on,burst=32,drain=2s",
        "-summary", "json",
    };
    int64_t want = 20000ll * queues;
    int code = -1;

    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        g_ptr_array_add(args, (char *)fixed[i]);
    }
    out = run_vmm(f, "vmm", args, &code);
    if (!out || code != 0) {
        return;
    }
    if (!json_true(out, "verified") || json_uint(out, "sent") != want ||
        json_uint(out, "received") != want || json_uint(out, "packets_verified") != want ||
        json_uint(out, "lost") != 0 || json_uint(out, "mismatched") != 0 ||
        !strstr(out, "\"verify\":\"seq\"") || !strstr(out, "\"poll\":\"on\"")) {
        g_test_fail_printf("net0 verify=seq,poll=on over %s: expected %" PRId64 " packets "
                           "sent, received and verified; the VMM said: %s", peer, want, out);
        return;
    }
    if (json_uint(out, "sleeps") != 0) {
        g_test_fail_printf("net0 poll=on over %s slept in poll(): %s", peer, out);
        return;
    }
    if (polling_peer && json_uint(out, "kicks") * 10 > want) {
        g_test_fail_printf("net0 poll=on over %s (a polling back-end) kicked %" PRId64
                           " times for %" PRId64 " packets: %s", peer,
                           json_uint(out, "kicks"), want, out);
    }
}

static void test_dpdk_net_like_for_like(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    Proc *testpmd = proc_start_testpmd(f, sock, 2, false, false);

    if (!testpmd) {
        return;
    }
    run_like_for_like(f, sock, 2, "testpmd", true);
    if (proc_poll(testpmd)) {
        g_autofree char *log = proc_log(testpmd);

        g_test_fail_printf("testpmd exited during the run:\n%s", log);
    }
}

static void test_ref_net_like_for_like(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);

    if (start_ref(f, "net", sock, 2, NULL, false)) {
        run_like_for_like(f, sock, 2, "the reference back-end", false);
    }
}

/*
 * blk with the VMM listening (server=on) and the back-end connecting:
 * a mixed run with DISCARD and WRITE_ZEROES, then a fill whose every
 * sector is checked in the file once the back-end has exited.
 */
static void test_ref_blk(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,server=on,wait=off",
                                               sock);
    const uint32_t seed = 0x5eedbe00u;
    g_autofree char *fill = g_strdup_printf("blk0:rw=fill,bs=64k,iodepth=8,seed=%" PRIu32,
                                            seed);
    const char *workloads[] = {
        "blk0:rw=randrw,bs=4k,iodepth=16,ops=20000,discard=10,write_zeroes=10",
        fill,
    };
    const char *vmm_bin = vmm_binary();
    Proc *be = NULL;

    if (!vmm_bin) {
        return;
    }
    for (unsigned run = 0; run < G_N_ELEMENTS(workloads); run++) {
        g_autofree char *name = g_strdup_printf("vmm-%u", run);
        g_autofree char *out_path = g_strdup_printf("%s/%s.json", f->dir, name);
        g_autofree char *out = NULL;
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        Proc *vmm;
        int code;

        g_ptr_array_add(argv, (char *)vmm_bin);
        g_ptr_array_add(argv, "-m");
        g_ptr_array_add(argv, "256M");
        g_ptr_array_add(argv, "-chardev");
        g_ptr_array_add(argv, chardev);
        g_ptr_array_add(argv, "-device");
        g_ptr_array_add(argv, "vhost-user-blk-pci,chardev=c0,num-queues=2");
        g_ptr_array_add(argv, "-workload");
        g_ptr_array_add(argv, (char *)workloads[run]);
        g_ptr_array_add(argv, "-summary");
        g_ptr_array_add(argv, "json");
        vmm = proc_spawn(f, name, argv, false, out_path);
        if (!vmm || !wait_socket(vmm, sock)) {
            return;
        }
        /* The back-end reconnects by itself to the second VMM. */
        if (!be && !(be = start_ref(f, "blk", sock, 2, img, true))) {
            return;
        }
        if (!proc_wait(vmm, VMM_RUN_MS)) {
            g_autofree char *log = proc_log(vmm);

            g_test_fail_printf("%s did not finish within %u ms:\n%s", name,
                               VMM_RUN_MS, log);
            return;
        }
        code = WIFEXITED(vmm->wstatus) ? WEXITSTATUS(vmm->wstatus) : -1;
        if (!g_file_get_contents(out_path, &out, NULL, NULL) || code != 0 ||
            !json_true(out, "verified") || json_uint(out, "mismatches") != 0 ||
            json_uint(out, "io_errors") != 0) {
            g_autofree char *log = proc_log(vmm);

            g_test_fail_printf("%s (%s) exited %d, summary %s; stderr:\n%s", name,
                               workloads[run], code, out ? out : "(none)", log);
            return;
        }
        if (run == 0 && (json_uint(out, "discards") <= 0 ||
                         json_uint(out, "write_zeroes") <= 0)) {
            g_test_fail_printf("no DISCARD or WRITE_ZEROES went through: %s", out);
            return;
        }
        g_test_message("%s: %s", name, out);
    }
    proc_stop(be);
    if (!WIFEXITED(be->wstatus) || WEXITSTATUS(be->wstatus) != 0) {
        g_autofree char *log = proc_log(be);

        g_test_fail_printf("the reference back-end did not exit cleanly "
                           "(status 0x%x):\n%s", be->wstatus, log);
        return;
    }
    check_image(img, seed);
}

static void test_ref_blk_poll(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    Proc *be = start_ref(f, "blk", sock, 1, img, false);

    if (be) {
        blk_poll_modes(f, sock, be, img, 0x5eedbe11u);
    }
}

/*
 * Our back-end honours the write cache mode: write-through (wce=0) syncs
 * every one of the 2000 writes of the run before completing it, which it
 * counts; the next VMM sees writeback 0 in GET_CONFIG and turns it back.
 */
static void test_ref_blk_wce(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *log = NULL;
    Proc *be;

    if (!(be = start_ref(f, "blk", sock, 1, img, false)) ||
        !wce_run(f, sock, 1, 0, 1) || !wce_run(f, sock, 2, 1, 0)) {
        return;
    }
    log = proc_log(be);
    if (!strstr(log, "write cache off: write-through (writeback=0; 0 writes synced") ||
        !strstr(log, "write cache on: write-back (writeback=1; 2000 writes synced")) {
        g_test_fail_printf("the back-end did not sync the 2000 writes of the "
                           "write-through run:\n%s", log);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Children must die with us, and our own SIGPIPE must not kill us. */
    signal(SIGPIPE, SIG_IGN);

    g_test_add("/real/dpdk/net-1q", Fixture, NULL, fixture_setup, test_dpdk_net_1q,
               fixture_teardown);
    g_test_add("/real/dpdk/net-2q", Fixture, NULL, fixture_setup, test_dpdk_net_2q,
               fixture_teardown);
    g_test_add("/real/dpdk/net-jumbo-2q", Fixture, NULL, fixture_setup, test_dpdk_net_jumbo,
               fixture_teardown);
    g_test_add("/real/dpdk/net-seq-poll-2q", Fixture, NULL, fixture_setup,
               test_dpdk_net_like_for_like, fixture_teardown);
    g_test_add("/real/dpdk/net-restart-vmm-client", Fixture, GINT_TO_POINTER(0),
               fixture_setup, test_dpdk_net_restart, fixture_teardown);
    g_test_add("/real/dpdk/net-restart-vmm-server", Fixture, GINT_TO_POINTER(1),
               fixture_setup, test_dpdk_net_restart, fixture_teardown);
    g_test_add("/real/qsd/blk-1q", Fixture, NULL, fixture_setup, test_qsd_blk_1q,
               fixture_teardown);
    g_test_add("/real/qsd/blk-4q", Fixture, NULL, fixture_setup, test_qsd_blk_4q,
               fixture_teardown);
    g_test_add("/real/qsd/blk-poll", Fixture, NULL, fixture_setup, test_qsd_blk_poll,
               fixture_teardown);
    g_test_add("/real/ref/blk-poll", Fixture, NULL, fixture_setup, test_ref_blk_poll,
               fixture_teardown);
    g_test_add("/real/qsd/blk-wce", Fixture, NULL, fixture_setup, test_qsd_blk_wce,
               fixture_teardown);
    g_test_add("/real/qsd/blk-kill-restart", Fixture, NULL, fixture_setup,
               test_qsd_blk_kill, fixture_teardown);
    g_test_add("/real/ref/net-2q", Fixture, NULL, fixture_setup, test_ref_net,
               fixture_teardown);
    g_test_add("/real/ref/net-jumbo-2q", Fixture, "jumbo", fixture_setup, test_ref_net,
               fixture_teardown);
    g_test_add("/real/ref/net-seq-poll-2q", Fixture, NULL, fixture_setup,
               test_ref_net_like_for_like, fixture_teardown);
    g_test_add("/real/ref/blk-2q-server", Fixture, NULL, fixture_setup, test_ref_blk,
               fixture_teardown);
    g_test_add("/real/ref/blk-wce", Fixture, NULL, fixture_setup, test_ref_blk_wce,
               fixture_teardown);
    return g_test_run();
}
