/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Announcing the guest's MAC through a back-end we did not write: DPDK's
 * net_vhost (testpmd) negotiates RARP; on SEND_RARP it builds a RARP
 * frame from the MAC it was given and slips it into what it dequeues
 * from the guest's TX ring. testpmd in io forwarding, looped, sends it
 * back to the guest, whose driver counts it as an announce frame
 * (ethertype 0x8035, source MAC its own) while its verifying workload
 * runs. QMP announce-self triggers the rounds here; after an incoming
 * migration the VMM makes the same call.
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-client.h"
#include "real-proc.h"

#define WAIT_MS             20000
#define GUEST_MAC           "52:54:00:ab:cd:ef"

static Proc *start_testpmd(Fixture *f, const char *sock)
{
    g_autofree char *vdev = g_strdup_printf("net_vhost0,iface=%s,queues=2", sock);
    g_autofree char *prefix = NULL;
    g_autoptr(GPtrArray) tp = g_ptr_array_new();
    const char *const argv[] = {
        "dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "512", "--no-pci",
        "--log-level=lib.eal:warning", NULL, "--vdev", NULL, "--",
        "--forward-mode=io", "--port-topology=loop", "--nb-cores=1", "--rxq=2",
        "--txq=2", "--stats-period=0", "--total-num-mbufs=8192",
    };
    Proc *p;

    if (!require_program("dpdk-testpmd", "dpdk")) {
        return NULL;
    }
    f->dpdk_prefix = g_strdup_printf("vuannounce%d", (int)getpid());
    prefix = g_strdup_printf("--file-prefix=%s", f->dpdk_prefix);
    for (size_t i = 0; i < G_N_ELEMENTS(argv); i++) {
        g_ptr_array_add(tp, (char *)(i == 8 ? prefix : i == 10 ? vdev : argv[i]));
    }
    p = proc_spawn(f, "testpmd", tp, true, NULL);
    return p && wait_socket(p, sock) ? p : NULL;
}

/*
 * rounds announce-self rounds 50 ms apart while 2 queue pairs of
 * verified traffic flow: each comes back as one RARP frame, and the
 * workload still verifies every packet.
 */
static void test_dpdk_announce(Fixture *f, gconstpointer data)
{
    const unsigned rounds = 3;
    g_autofree char *sock = g_build_filename(f->dir, "net.sock", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s", sock);
    g_autofree char *qmp_path = g_build_filename(f->dir, "qmp.sock", NULL);
    g_autofree char *qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp_path);
    g_autofree char *out_path = g_build_filename(f->dir, "vmm.json", NULL);
    g_autofree char *out = NULL;
    g_autofree char *log = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *const args[] = {
        "-m", "256M", "-qmp", qmp_arg, "-summary", "json",
        "-chardev", chardev, "-netdev", "vhost-user,id=net0,chardev=c0,queues=2",
        "-device", "virtio-net-pci,netdev=net0,mq=on,mac=" GUEST_MAC,
        "-workload", "net0:count=100000000,size=64+1518,runtime=3s,drain=1s",
    };
    const char *bin = vmm_binary();
    QmpClient *qmp;
    Proc *vmm;
    int code = -1;

    if (!bin || !start_testpmd(f, sock)) {
        return;
    }
    g_ptr_array_add(argv, (char *)bin);
    for (size_t i = 0; i < G_N_ELEMENTS(args); i++) {
        g_ptr_array_add(argv, (char *)args[i]);
    }
    vmm = proc_spawn(f, "vmm", argv, false, out_path);
    if (!vmm || !wait_socket(vmm, qmp_path) ||
        !wait_log(vmm, "net0: workload started", 1, WAIT_MS)) {
        return;
    }
    qmp = qmp_client_connect_log(qmp_path, WAIT_MS, proc_log_cb, vmm);
    g_usleep(300 * 1000);
    json_node_unref(qmp_client_ok(qmp, "{\"execute\":\"announce-self\",\"arguments\":"
                                  "{\"initial\":50,\"max\":50,\"step\":0,\"rounds\":%u,"
                                  "\"interfaces\":[\"net0\"]}}", rounds));
    /* A name that is not a net device is refused before any round. */
    g_free(qmp_client_fails(qmp, "DeviceNotFound", "{\"execute\":\"announce-self\","
                            "\"arguments\":{\"interfaces\":[\"nosuch\"]}}"));
    qmp_client_free(qmp);
    if (!vmm_collect(vmm, out_path, &code, &out, &log)) {
        return;
    }
    if (code != 0 || !out || !json_true(out, "verified") ||
        json_uint(out, "mismatched") != 0) {
        g_test_fail_printf("the VMM ended with %d; summary: %s", code, out ? out : "");
        return;
    }
    if (qtest_count(log, "announce: net0: SEND_RARP sent") != rounds) {
        g_test_fail_printf("expected %u SEND_RARP status lines:\n%s", rounds, log);
        return;
    }
    if (json_uint(out, "announce_frames") != rounds) {
        g_test_fail_printf("net0: %" PRId64 " RARP frames from " GUEST_MAC " came back, "
                           "%u announced; summary: %s", json_uint(out, "announce_frames"),
                           rounds, out);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/real-announce/dpdk-net-2q", Fixture, NULL, fixture_setup,
               test_dpdk_announce, fixture_teardown);
    return g_test_run();
}
