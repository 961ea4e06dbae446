/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Device status, IOTLB and the back-end channel against real back-ends we
 * did not write, each under a verified workload of the real VMM:
 *
 *  - DPDK testpmd's net_vhost offers STATUS: SET_STATUS with DRIVER_OK
 *    must be acked while every packet comes back verified;
 *  - with iommu-support=1 it offers IOMMU_PLATFORM and resolves every
 *    ring and buffer address with IOTLB misses on the back-end channel:
 *    with iommu_platform=on each miss must be answered by our IOTLB_MSG
 *    update (acked), and every packet verified;
 *  - qemu-storage-daemon's vhost-user-blk export offers BACKEND_REQ (with
 *    BACKEND_SEND_FD and HOST_NOTIFIER): SET_BACKEND_REQ_FD must be sent
 *    and acked during a verified blk workload.
 *
 * What was exchanged is read from the VMM's -trace vhost_user lines. A
 * missing program fails the test naming the Debian package that has it:
 * these tests are never skipped. Every process gets SIGKILL if this test
 * dies (PR_SET_PDEATHSIG) and is killed and reaped on every path; files
 * live in a temporary directory removed at the end.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "util/vhost-user-proto.h"
#include "qtest-harness.h"

#define SOCKET_WAIT_MS      20000
#define VMM_RUN_MS          60000
#define NET_PACKETS         20000

typedef struct Fixture {
    char *dir;
    char *dpdk_prefix;          /* testpmd --file-prefix; its run dir goes too */
    QtestVmm *backend;
    QtestVmm *vmm;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    f->dir = g_dir_make_tmp("real-chan-XXXXXX", &err);
    g_assert_no_error(err);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    /* The processes go (killed and reaped) before the files they use. */
    qtest_vmm_free(f->vmm);
    qtest_vmm_free(f->backend);
    qtest_rm_rf(f->dir);
    g_free(f->dir);
    if (f->dpdk_prefix) {
        /* testpmd's runtime files (its config, the mp socket). */
        g_autofree char *run = g_build_filename("/var/run/dpdk", f->dpdk_prefix, NULL);

        qtest_rm_rf(run);
        g_free(f->dpdk_prefix);
    }
}

static bool require_program(const char *prog, const char *package)
{
    g_autofree char *path = g_find_program_in_path(prog);

    if (!path) {
        g_test_fail_printf("%s not found: install the Debian package '%s' "
                           "(scripts/install-deps.sh does)", prog, package);
    }
    return path != NULL;
}

static bool wait_socket(Fixture *f, const char *name, const char *path)
{
    gint64 end = g_get_monotonic_time() + (gint64)SOCKET_WAIT_MS * 1000;
    struct stat st;

    while (g_get_monotonic_time() < end && qtest_vmm_is_alive(f->backend)) {
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            return true;
        }
        g_usleep(20 * 1000);
    }
    {
        g_autofree char *log = qtest_vmm_stderr(f->backend);

        g_test_fail_printf("%s: no socket at %s within %u ms (%s); its stderr:\n%s",
                           name, path, SOCKET_WAIT_MS,
                           qtest_vmm_is_alive(f->backend) ? "still running" : "exited",
                           log);
    }
    return false;
}

static bool start_testpmd(Fixture *f, const char *sock, bool iommu)
{
    g_autofree char *prefix = NULL;
    g_autofree char *vdev = NULL;

    if (!require_program("dpdk-testpmd", "dpdk")) {
        return false;
    }
    f->dpdk_prefix = g_strdup_printf("realchan%d", (int)getpid());
    prefix = g_strdup_printf("--file-prefix=%s", f->dpdk_prefix);
    vdev = g_strdup_printf("net_vhost0,iface=%s,queues=1%s", sock,
                           iommu ? ",iommu-support=1" : "");
    {
        /* One port looping every packet back; a small pool without hugepages. */
        const char *const args[] = {
            "-l", "0,1", "--no-huge", "-m", "512", "--no-pci",
            "--log-level=lib.eal:warning", prefix, "--vdev", vdev, "--",
            "--forward-mode=io", "--port-topology=loop", "--nb-cores=1",
            "--rxq=1", "--txq=1", "--stats-period=0", "--total-num-mbufs=8192",
            NULL,
        };

        /* Its stdin stays open: testpmd quits at EOF. */
        f->backend = qtest_proc_spawn("dpdk-testpmd", args, true);
    }
    return wait_socket(f, "testpmd", sock);
}

/*
 * Runs the VMM with args (NULL-terminated, -trace vhost_user added) to its
 * end; true when it exited 0 (the workload completed and verified).
 */
static bool run_vmm(Fixture *f, const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autofree char *log = NULL;
    int code;

    for (unsigned i = 0; args[i]; i++) {
        g_ptr_array_add(argv, (char *)args[i]);
    }
    g_ptr_array_add(argv, "-trace");
    g_ptr_array_add(argv, "vhost_user");
    g_ptr_array_add(argv, NULL);
    f->vmm = qtest_vmm_spawn((const char *const *)argv->pdata);
    code = qtest_vmm_wait_exit(f->vmm, VMM_RUN_MS);
    qtest_vmm_kill(f->vmm);
    log = qtest_vmm_stderr(f->vmm);
    if (code != 0) {
        g_test_fail_printf("the VMM %s %d; its stderr:\n%s",
                           code < 0 ? "did not finish within the time, status" :
                           "exited with", code, log);
        return false;
    }
    return true;
}

/* Number of trace/status lines holding every one of the NULL-terminated words. */
static unsigned count_lines(Fixture *f, const char *const *words)
{
    g_autofree char *all = qtest_vmm_stderr(f->vmm);
    g_auto(GStrv) lines = g_strsplit(all, "\n", -1);
    unsigned n = 0;

    for (unsigned i = 0; lines[i]; i++) {
        bool hit = true;

        for (unsigned w = 0; words[w] && hit; w++) {
            hit = strstr(lines[i], words[w]) != NULL;
        }
        n += hit;
    }
    return n;
}

#define COUNT_LINES(f, ...) count_lines(f, (const char *const[]){ __VA_ARGS__, NULL })

static bool expect_lines(Fixture *f, const char *what, unsigned n)
{
    if (n == 0) {
        g_autofree char *all = qtest_vmm_stderr(f->vmm);

        g_test_fail_printf("no VMM trace line shows %s; its stderr:\n%s", what, all);
    }
    return n > 0;
}

/* The guest's summary: every packet sent came back verified, none lost. */
static bool expect_net_verified(Fixture *f)
{
    g_autofree char *line = g_strdup_printf("net0: %u sent, %u received, %u verified, "
                                            "0 lost", NET_PACKETS, NET_PACKETS,
                                            NET_PACKETS);

    return expect_lines(f, line, COUNT_LINES(f, line)) &&
           expect_lines(f, "the workload passing", COUNT_LINES(f, "net0: workload passed"));
}

static bool run_net(Fixture *f, const char *sock, const char *device)
{
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100",
                                               sock);
    g_autofree char *workload = g_strdup_printf("net0:count=%u,size=64+512+1518,"
                                                "drain=2s", NET_PACKETS);
    const char *const args[] = {
        "-m", "256M", "-chardev", chardev,
        "-netdev", "vhost-user,id=net0,chardev=c0,queues=1",
        "-device", device, "-workload", workload, NULL,
    };

    return run_vmm(f, args) && expect_net_verified(f);
}

/* ---- DPDK: device status ---------------------------------------------- */

static void test_dpdk_status(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *driver_ok = g_strdup_printf("u64=0x%x", 0xf);

    if (!start_testpmd(f, sock, false) ||
        !run_net(f, sock, "virtio-net-pci,netdev=net0")) {
        return;
    }
    if (!expect_lines(f, "STATUS negotiated",
                      COUNT_LINES(f, "F>B SET_PROTOCOL_FEATURES", "STATUS")) ||
        !expect_lines(f, "SET_STATUS FEATURES_OK sent with NEED_REPLY",
                      COUNT_LINES(f, "F>B SET_STATUS flags=0x9", "u64=0xb")) ||
        !expect_lines(f, "SET_STATUS DRIVER_OK sent with NEED_REPLY",
                      COUNT_LINES(f, "F>B SET_STATUS flags=0x9", driver_ok)) ||
        !expect_lines(f, "SET_STATUS 0 at the stop",
                      COUNT_LINES(f, "F>B SET_STATUS flags=0x9", "u64=0x0"))) {
        return;
    }
    /* Every SET_STATUS was acked with success, none failed. */
    g_assert_cmpuint(COUNT_LINES(f, "B>F SET_STATUS flags=0x5", "u64=0x0"), ==,
                     COUNT_LINES(f, "F>B SET_STATUS"));
    g_assert_cmpuint(COUNT_LINES(f, "error:"), ==, 0);
    g_assert_true(qtest_vmm_is_alive(f->backend));
}

/* ---- DPDK: IOTLB behind iommu_platform=on ----------------------------- */

static void test_dpdk_iotlb(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *all = NULL;
    g_auto(GStrv) lines = NULL;
    unsigned misses = 0, answered = 0;

    if (!start_testpmd(f, sock, true) ||
        !run_net(f, sock, "virtio-net-pci,netdev=net0,iommu_platform=on")) {
        return;
    }
    if (!expect_lines(f, "IOMMU_PLATFORM acked",
                      COUNT_LINES(f, "F>B SET_FEATURES", "IOMMU_PLATFORM"))) {
        return;
    }
    /* Each miss DPDK sent is answered by an update for its iova, acked with 0. */
    all = qtest_vmm_stderr(f->vmm);
    lines = g_strsplit(all, "\n", -1);
    for (unsigned i = 0; lines[i]; i++) {
        const char *iova;
        g_autofree char *want = NULL;
        bool found = false;

        if (!strstr(lines[i], "B>F backend-chan IOTLB_MSG") ||
            !strstr(lines[i], "type=MISS") || !(iova = strstr(lines[i], " iova="))) {
            continue;
        }
        misses++;
        /* " iova=0x101000 ": the whole token, so no other iova matches it. */
        want = g_strdup_printf("%.*s ", (int)strcspn(iova + 1, " ") + 1, iova);
        for (unsigned j = i + 1; lines[j] && !found; j++) {
            if (!strstr(lines[j], "F>B IOTLB_MSG") || !strstr(lines[j], want) ||
                !strstr(lines[j], "type=UPDATE")) {
                continue;
            }
            /* Requests are serialized: the next main-socket ack is this one's. */
            for (unsigned k = j + 1; lines[k]; k++) {
                if (strstr(lines[k], "B>F IOTLB_MSG flags=0x5")) {
                    found = strstr(lines[k], "u64=0x0") != NULL;
                    break;
                }
            }
        }
        if (!found) {
            g_test_fail_printf("DPDK's IOTLB miss at%s got no acked IOTLB_MSG update "
                               "from the VMM; its stderr:\n%s", want, all);
            return;
        }
        answered++;
    }
    if (misses == 0) {
        g_test_fail_printf("DPDK sent no IOTLB miss: the rings were not behind the "
                           "IOMMU; the VMM's stderr:\n%s", all);
        return;
    }
    g_test_message("DPDK sent %u IOTLB misses, all answered", misses);
    g_assert_cmpuint(answered, ==, misses);
    g_assert_cmpuint(COUNT_LINES(f, "error:"), ==, 0);
    g_assert_true(qtest_vmm_is_alive(f->backend));
}

/* ---- qemu-storage-daemon: the back-end channel ------------------------ */

static void test_qsd_backend_req(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "blk.sock", NULL);
    g_autofree char *blockdev = g_strdup_printf(
        "driver=file,node-name=f,filename=%s,cache.direct=off", img);
    g_autofree char *export = g_strdup_printf(
        "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=%s,"
        "writable=on,num-queues=1", sock);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100",
                                               sock);
    const char *const qsd_args[] = { "--blockdev", blockdev, "--export", export, NULL };
    const char *const vmm_args[] = {
        "-m", "256M", "-chardev", chardev, "-device", "vhost-user-blk-pci,chardev=c0",
        "-workload", "blk0:rw=randrw,bs=4k,iodepth=16,ops=5000,verify=on", NULL,
    };
    g_autoptr(GError) err = NULL;

    if (!require_program("qemu-storage-daemon", "qemu-system-common")) {
        return;
    }
    /* A sparse raw image is all qsd's file driver needs. */
    if (!g_file_set_contents(img, "", 0, &err) || truncate(img, 64 << 20) != 0) {
        g_test_fail_printf("cannot create %s: %s", img, err ? err->message : "truncate");
        return;
    }
    f->backend = qtest_proc_spawn("qemu-storage-daemon", qsd_args, false);
    if (!wait_socket(f, "qemu-storage-daemon", sock) || !run_vmm(f, vmm_args)) {
        return;
    }
    if (!expect_lines(f, "BACKEND_REQ, BACKEND_SEND_FD and HOST_NOTIFIER negotiated",
                      COUNT_LINES(f, "F>B SET_PROTOCOL_FEATURES", "|BACKEND_REQ|",
                                  "BACKEND_SEND_FD", "HOST_NOTIFIER")) ||
        !expect_lines(f, "SET_BACKEND_REQ_FD sent with its fd and NEED_REPLY",
                      COUNT_LINES(f, "F>B SET_BACKEND_REQ_FD flags=0x9", "fds=1")) ||
        !expect_lines(f, "SET_BACKEND_REQ_FD acked with 0",
                      COUNT_LINES(f, "B>F SET_BACKEND_REQ_FD flags=0x5", "u64=0x0")) ||
        !expect_lines(f, "every block verified",
                      COUNT_LINES(f, "blk0:", "0 mismatching sectors, 0 I/O errors")) ||
        !expect_lines(f, "the workload passing",
                      COUNT_LINES(f, "blk0: workload passed"))) {
        return;
    }
    g_assert_cmpuint(COUNT_LINES(f, "error:"), ==, 0);
    g_assert_true(qtest_vmm_is_alive(f->backend));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_test_add("/real-chan/dpdk/status", Fixture, NULL, fixture_setup,
               test_dpdk_status, fixture_teardown);
    g_test_add("/real-chan/dpdk/iotlb", Fixture, NULL, fixture_setup,
               test_dpdk_iotlb, fixture_teardown);
    g_test_add("/real-chan/qsd/backend-req", Fixture, NULL, fixture_setup,
               test_qsd_backend_req, fixture_teardown);
    return g_test_run();
}
