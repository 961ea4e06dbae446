/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user-vmm: the reference VMM. Parses QEMU-style options, builds the
 * machine, runs the GLib main loop until SIGTERM/SIGINT (or, with
 * -workload, until every workload has finished), then stops the devices
 * and exits. See --help and vmm/vmm-options.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>

#include "util/vhost-user-log.h"
#include "vmm/vmm-announce.h"
#include "vmm/vmm-dirtylog.h"
#include "vmm/vmm-hotplug.h"
#include "vmm/vmm-machine.h"
#include "vmm/vmm-monitor.h"
#include "vmm/vmm-options.h"
#include "vmm/vmm-runstate.h"

static void vmm_print_help(FILE *out)
{
    fputs(
"NAME\n"
"    vhost-user-vmm - reference VMM for the vhost-user front-end library\n"
"\n"
"SYNOPSIS\n"
"    vhost-user-vmm [-m SIZE] [-object ...] [-machine memory-backend=ID]\n"
"                   [-chardev socket,...]... [-netdev vhost-user,...]...\n"
"                   [-device ...]... [-workload DEVID:KEY=VAL,...]...\n"
"                   [-summary human|json] [-x-fill-pattern] [-trace vhost_user]\n"
"                   [-qmp unix:PATH,server=on[,wait=off]]\n"
"\n"
"DESCRIPTION\n"
"    Creates guest RAM, connects each device to its vhost-user back-end and,\n"
"    once a back-end has negotiated, brings the device up with an in-process\n"
"    virtio driver: reset, feature negotiation, split rings in guest RAM from\n"
"    GPA 0x100000 upwards, DRIVER_OK, which starts the back-end's rings.\n"
"    It then runs until SIGTERM or SIGINT, stops every device (GET_VRING_BASE\n"
"    per ring), cleans up and exits. With -workload it instead exits once\n"
"    every workload has finished. Options follow QEMU's names and syntax;\n"
"    a ',,' in a value stands for a literal comma. Options may be spelt with\n"
"    one dash or two.\n"
"\n"
"OPTIONS\n"
"    -h, --help\n"
"        Print this help and exit.\n"
"\n"
"    -m SIZE\n"
"        Guest RAM size. A bare number is in MiB; suffixes K, M, G, T\n"
"        (powers of 1024). Without -machine memory-backend=, a memfd backend\n"
"        \"ram0\" of that size provides RAM at GPA 0. Default: 128M.\n"
"\n"
"    -object memory-backend-memfd,id=ID,size=SIZE[,share=on|off]\n"
"        RAM backed by a memfd (share defaults to on; off maps it private).\n"
"\n"
"    -object memory-backend-file,id=ID,size=SIZE,mem-path=PATH[,share=on|off]\n"
"        RAM backed by PATH, created if missing and extended to SIZE (share\n"
"        defaults to off). vhost-user back-ends need share=on to see guest\n"
"        memory: with any -device, guest RAM (-machine memory-backend=)\n"
"        with share=off is an error naming the device and the backend.\n"
"\n"
"    -machine memory-backend=ID   (also -M)\n"
"        Guest RAM at GPA 0 comes from backend ID. With -m too, the sizes\n"
"        must be equal.\n"
"\n"
"    -chardev socket,id=ID,path=PATH[,server=on|off][,wait=on|off]\n"
"             [,reconnect-ms=N]\n"
"        A unix socket to a back-end. By default the VMM connects as a client\n"
"        to a back-end that listens; a client that cannot connect is fatal\n"
"        unless reconnect-ms is given, in which case it retries after any\n"
"        failure or disconnect: first after N ms, then doubling up to 1 s,\n"
"        and at once when the socket file at PATH is created again (a\n"
"        back-end that restarts is connected as soon as it listens).\n"
"        server=on listens on PATH instead; wait=on (the default for\n"
"        servers) blocks start-up until a back-end connects. A PATH that is\n"
"        a file or a directory gives \"PATH: not a socket\" (a server never\n"
"        replaces it; a stale socket is).\n"
"\n"
"    -netdev vhost-user,id=ID,chardev=CHR[,queues=N]\n"
"        A vhost-user network back-end on chardev CHR with N queue pairs\n"
"        (default 1; 2N rings).\n"
"\n"
"    -device virtio-net-pci,netdev=ID[,id=DEVID][,mq=on|off]\n"
"            [,mac=52:54:00:12:34:56][,host_mtu=N]\n"
"        A virtio-net device on netdev ID: one vhost_dev per queue pair.\n"
"        mq (default on) offers VIRTIO_NET_F_MQ when queues > 1. mac defaults\n"
"        to 52:54:00:12:34:56 (last byte + 1 per further NIC). host_mtu\n"
"        (68..65535) offers VIRTIO_NET_F_MTU and is sent with NET_SET_MTU\n"
"        when the back-end supports it. The device id defaults to the\n"
"        netdev's id.\n"
"\n"
"    -device vhost-user-blk-pci,chardev=CHR[,id=DEVID][,num-queues=N]\n"
"            [,queue-size=N]\n"
"        A virtio-blk device with N request queues (default 1, at most 64)\n"
"        of queue-size entries (a power of two, default 256). The back-end\n"
"        must support the CONFIG protocol feature and serve at least N\n"
"        queues. Ids default to blk0, blk1, ...\n"
"\n"
"    -device vhost-user-device-pci,chardev=CHR,virtio-id=N,num_vqs=N\n"
"            [,vq_size=N][,config_size=N][,id=DEVID]\n"
"        A generic device of virtio type virtio-id with num_vqs rings of\n"
"        vq_size entries (default 64) and config_size bytes (0..256,\n"
"        default 0) of config space fetched with GET_CONFIG. Ids default to\n"
"        vdev0, vdev1, ...\n"
"\n"
"    iommu_platform=on|off   (any -device above; default off)\n"
"        Offers VIRTIO_F_IOMMU_PLATFORM: the device sits behind the VMM's\n"
"        identity IOMMU, so ring and buffer addresses the back-end sees are\n"
"        IOVAs (equal to guest physical addresses) that it resolves with\n"
"        IOTLB misses on the back-end channel; each is answered with an\n"
"        IOTLB_MSG update mapping the rest of its RAM region. The back-end\n"
"        must offer IOMMU_PLATFORM and the BACKEND_REQ and REPLY_ACK\n"
"        protocol features, else the device reports an error on connect.\n"
"\n"
"    -workload DEVID:KEY=VALUE[,KEY=VALUE]...\n"
"        Once device DEVID (a -device id: blk0, net0, ...) has started, a\n"
"        \"vCPU\" thread of its own runs the in-process guest driver's\n"
"        workload on the device's rings, with buffers in guest RAM. One\n"
"        -workload per device; vhost-user-device-pci has no driver. Sizes\n"
"        take k/m/g suffixes (powers of two), times ms/s/m (default s),\n"
"        booleans on/off. Every byte written and every packet sent carries a\n"
"        pattern that is checked when it comes back.\n"
"        virtio-blk keys:\n"
"          rw=randrw|randread|randwrite|read|write|rw|fill   (randrw)\n"
"              rw is sequential mixed; fill writes the whole range once, in\n"
"              order, so the image can be checked afterwards (verify_only)\n"
"          bs=SIZE (4k, multiple of 512)\n"
"          iodepth=N per queue (16, or less when the ring holds less)\n"
"          ops=N or number_ios=N   runtime=TIME   (neither: 10000 ops)\n"
"          verify=on|off (on: reads are checked against what the run\n"
"              wrote; a run that wrote nothing, like rw=read, fails:\n"
"              there was nothing to check)\n"
"          verify_only=on|off (off)   as fio's: no workload; reads the\n"
"              range in order and checks that every sector holds what an\n"
"              earlier rw=fill with the same seed, bs and size wrote; a\n"
"              mismatch fails the run naming the sector\n"
"          rwmixread=PCT (50)   seed=N (1)\n"
"          size=SIZE (whole disk, capped by the buffer area when verifying)\n"
"          queues=N or numjobs=N (all)   discard=PCT (0)   write_zeroes=PCT (0)\n"
"          flush=on|off (on: FLUSH at the end when offered)\n"
"          A value beyond the device (queues, size beyond the disk, iodepth\n"
"          beyond what a ring holds, size beyond what the buffer area can\n"
"          verify) is an error naming the key, value and limit.\n"
"          wce=0|1 write the config's write cache mode first (CONFIG_WCE):\n"
"              0 write-through, 1 write-back (default: leave it)\n"
"        virtio-net keys (needs a back-end that loops packets back):\n"
"          count=N packets per queue pair (1000)   window=N in flight (64)\n"
"          size=N[+N...] frame sizes used in turn, 46..9018 (64+512+1518);\n"
"              with host_mtu, at most host_mtu + 18 (header and a VLAN tag)\n"
"          queues=N pairs (all, at most the device's)   rxbuf=SIZE (2048)\n"
"          drain=TIME (1s)   (window at most the ring size)\n"
"          runtime=TIME   seed=N (1)   max-lost=N packets that may go\n"
"              missing without failing the run (0; a back-end that crashes\n"
"              takes the packets it holds with it)\n"
"        While workloads run, one progress line per second goes to stderr\n"
"        (\"blk0: 12000 ops, 6010 op/s, 23.5 MiB/s\"; rewritten in place on a\n"
"        terminal). At the end each prints its summary: operations, bytes,\n"
"        rates, latency percentiles, and reads/writes/verified blocks (blk)\n"
"        or sent/received/verified/lost packets and Mpps (net). A back-end\n"
"        that disconnects mid-run is waited for (reconnect-ms); requests it\n"
"        never completes fail the run after 30 s without progress.\n"
"\n"
"    -summary human|json\n"
"        With json, each workload's summary is also printed on stdout as one\n"
"        JSON object per line: {\"device\":\"blk0\",\"ops\":..,\"bytes\":..,\n"
"        \"seconds\":..,\"ops_per_sec\":..,\"bytes_per_sec\":..,\"errors\":..,\n"
"        \"latency_us\":{\"min\",\"avg\",\"p50\",\"p90\",\"p99\",\"p999\",\"max\"},\n"
"        \"verified\":BOOL,\"type\":\"virtio-blk\"|\"virtio-net\", then for blk\n"
"        bs, reads, writes, flushes, discards, write_zeroes,\n"
"        sectors_verified, mismatches, io_errors, range_sectors, for net\n"
"        sent, received, packets_verified, mismatched, stale, lost,\n"
"        wrong_queue, announce_frames, mpps; and \"ok\":BOOL,\"error\":STRING|null}.\n"
"        Default: human (stderr only).\n"
"\n"
"    -x-fill-pattern\n"
"        Before the guest boots, write into the first 8 bytes of every 4 KiB\n"
"        page of RAM the little-endian u64 (gpa ^ 0x7175656d75676976). The\n"
"        guest allocates from GPA 0x100000 upwards and never uses the last\n"
"        page, so pages below 1 MiB and the last page keep the pattern.\n"
"\n"
"    -qmp unix:PATH,server=on[,wait=on|off]\n"
"        A QMP monitor (QEMU's protocol) listening on the unix socket PATH,\n"
"        one client at a time. wait=on (the default) blocks start-up until a\n"
"        client connects; the legacy spelling server,nowait is accepted. The\n"
"        VMM sends the greeting {\"QMP\":{\"version\":...,\"capabilities\":[]}};\n"
"        the client answers {\"execute\":\"qmp_capabilities\"}, then sends\n"
"        {\"execute\":CMD,\"arguments\":{...},\"id\":ANY} and gets\n"
"        {\"return\":...} or {\"error\":{\"class\":\"GenericError\",\"desc\":...}},\n"
"        with its id echoed. Commands:\n"
"          object-add qom-type=memory-backend-memfd|memory-backend-file,\n"
"                     id=ID, size=BYTES[, share=BOOL][, mem-path=PATH (file)]\n"
"              creates a RAM block, as -object does (share=false maps it\n"
"              private, and device_add then refuses it); not guest RAM yet\n"
"          object-del id=ID\n"
"              frees a block that no pc-dimm uses\n"
"          device_add driver=pc-dimm, id=ID, memdev=ID[, addr=GPA]\n"
"              plugs the whole block in as guest RAM at addr (page aligned)\n"
"              or, without addr, at the lowest free 2 MiB aligned address\n"
"              above the boot RAM, and tells every back-end at once:\n"
"              ADD_MEM_REG when it negotiated CONFIGURE_MEM_SLOTS (and\n"
"              REPLY_ACK), else a new SET_MEM_TABLE of at most 8 regions.\n"
"              Refused, with nothing changed, when a back-end has no slot\n"
"              left (the error names the device and its limit), when the\n"
"              block is share=off, or when a back-end rejects the update\n"
"              (the RAM is taken out again; that back-end is dropped and,\n"
"              with reconnect-ms, gets the whole table when it is back)\n"
"          device_del id=ID\n"
"              unplugs a pc-dimm (REM_MEM_REG or SET_MEM_TABLE), then emits\n"
"              the DEVICE_DELETED event\n"
"          query-memory-devices   the pc-dimms: id, addr, size, memdev, slot\n"
"          x-vhost-log id=DEV, action=check|start|sync|stop\n"
"              the device's dirty log (experimental, until migration):\n"
"              check {\"migratable\":BOOL,\"reason\":STR}; start switches the\n"
"              back-end's logging on (refused, naming what is missing, without\n"
"              LOG_SHMFD or VHOST_F_LOG_ALL); sync {\"dirty\":N,\"pages\":[gpa >> 12]}\n"
"              returns and clears the pages written since the last sync\n"
"          query-status           {\"status\":\"running\",\"running\":true,...}\n"
"          query-commands         the command names\n"
"          quit                   exits as on SIGTERM (SHUTDOWN event first)\n"
"        Integers are JSON numbers; size and addr also take strings like\n"
"        \"2M\". A back-end that connects later gets the whole table, pc-dimms\n"
"        included; one that reconnects with fewer slots than the regions in\n"
"        use is refused with an error naming both numbers.\n"
"\n"
"    -trace vhost_user\n"
"        Print one decoded line per vhost-user message, both directions, on\n"
"        stderr (same as VHOST_USER_TRACE=1). Messages on the back-end\n"
"        channel (BACKEND_REQ) are tagged \"backend-chan\".\n"
"\n"
"STATUS OUTPUT\n"
"    Lines on stderr, prefixed \"vhost-user-vmm: \":\n"
"        DEVID: connected (PATH)       the back-end's socket is up\n"
"        DEVID: started N rings        all N rings of the device run\n"
"        DEVID: stopped N rings        the rings were stopped cleanly\n"
"        DEVID: disconnected           the connection is gone\n"
"        DEVID: error: MESSAGE         what went wrong (request and field)\n"
"        ready                         options processed, chardevs opened\n"
"        qmp: ID plugged: MEMDEV at GPA (N bytes) | ID unplugged from GPA\n"
"        qmp: object ID added (...) | object ID deleted | quit\n"
"        DEVID: workload started (TYPE)    the vCPU thread runs\n"
"        DEVID: workload finished (ok|failed)\n"
"        DEVID: workload FAILED: REASON    the first problem, by name\n"
"    and for requests the back-end sends on its channel (BACKEND_REQ):\n"
"        DEVID: config changed: capacity N sectors   (blk; others: config\n"
"                                      changed) after CONFIG_CHANGE_MSG\n"
"        DEVID: host notifier of ring N mapped (SIZE bytes) | unmapped\n"
"        DEVID: IOTLB miss at iova X (PERM): not guest RAM\n"
"        DEVID: IOTLB access failed: iova X size Y (PERM)\n"
"        DEVID: ring N: the back-end signalled a ring error   (VRING_ERR)\n"
"    A back-end that misbehaves never stops the VMM: its device reports the\n"
"    error and waits for a reconnect. After a reconnect a running device is\n"
"    restarted with the features acked before and each ring resumes where\n"
"    it stopped (GET_VRING_BASE at a clean stop, else the used index in\n"
"    guest RAM), except where that could lose or repeat a request: a blk\n"
"    device whose back-end died with requests outstanding and kept no\n"
"    inflight area (INFLIGHT_SHMFD) asks its driver for a reset instead,\n"
"    and the driver submits those requests again:\n"
"        DEVID: the back-end left N requests in an unknown state and does\n"
"            not track requests in flight: the device needs a reset ...\n"
"        DEVID: the driver resets the device\n"
"    Net devices report their link going down and up with the back-end:\n"
"        DEVID: link down | DEVID: link up\n"
"\n"
"EXIT STATUS\n"
"    Without -workload: 0 after SIGTERM or SIGINT. With -workload: 0 when\n"
"    every workload completed and verified (with verify=off: completed\n"
"    without errors), 1 otherwise, with the reason on stderr; a first\n"
"    SIGTERM/SIGINT ends the workloads early (exit 1), a second one exits\n"
"    at once. A device that cannot start for a reason a retry cannot fix\n"
"    (a queue-count or feature mismatch) fails its waiting workload at\n"
"    once, and the others are stopped: exit 1. Always 1 on a bad option,\n"
"    a RAM failure, guest RAM with share=off under a vhost-user device, or\n"
"    a client chardev without reconnect-ms that cannot connect.\n"
"\n"
"ENVIRONMENT\n"
"    VHOST_USER_TRACE   any value but 0 enables the message trace.\n"
"\n"
"EXAMPLES\n"
"    vhost-user-vmm -m 256M \\\n"
"        -object memory-backend-memfd,id=mem,size=256M,share=on \\\n"
"        -machine memory-backend=mem \\\n"
"        -chardev socket,id=c0,path=/tmp/vhost-blk.sock,reconnect-ms=100 \\\n"
"        -device vhost-user-blk-pci,chardev=c0,num-queues=2\n"
"\n"
"    vhost-user-vmm -m 512M \\\n"
"        -chardev socket,id=c1,path=/tmp/vhost-net.sock \\\n"
"        -netdev vhost-user,id=net0,chardev=c1,queues=2 \\\n"
"        -device virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01\n"
"\n"
"    vhost-user-vmm -m 256M \\\n"
"        -chardev socket,id=c0,path=/tmp/vhost-blk.sock,reconnect-ms=100 \\\n"
"        -device vhost-user-blk-pci,chardev=c0,num-queues=4 \\\n"
"        -workload blk0:rw=randrw,bs=4k,iodepth=32,runtime=5s -summary json\n"
"\n"
"    vhost-user-vmm -m 256M -qmp unix:/tmp/vmm.qmp,server=on,wait=off \\\n"
"        -chardev socket,id=c0,path=/tmp/vhost-blk.sock,reconnect-ms=100 \\\n"
"        -device vhost-user-blk-pci,chardev=c0\n"
"    and on /tmp/vmm.qmp, after qmp_capabilities:\n"
"        {\"execute\":\"object-add\",\"arguments\":{\"qom-type\":\n"
"            \"memory-backend-memfd\",\"id\":\"mem1\",\"size\":1073741824}}\n"
"        {\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pc-dimm\",\n"
"            \"id\":\"dimm1\",\"memdev\":\"mem1\"}}\n",
        out);
}

typedef struct VmmMain {
    GMainLoop *loop;
    VmmMachine *machine;
    bool stopping;              /* a signal asked the workloads to end */
} VmmMain;

static gboolean vmm_quit(gpointer opaque)
{
    VmmMain *vm = opaque;

    if (!vm->machine || vmm_machine_workloads_finished(vm->machine)) {
        g_main_loop_quit(vm->loop);
    } else if (!vm->stopping) {
        /*
         * The loop keeps serving the back-ends while the vCPU threads wind
         * down (a blk run still flushes and reads back what it wrote).
         */
        vm->stopping = true;
        vmm_status("signal: stopping the workloads (again to exit at once)");
        vmm_machine_stop_workloads(vm->machine, "interrupted by a signal");
    } else {
        /* Threads may still use guest RAM: nothing can be freed safely. */
        vmm_status("second signal: exiting without cleaning up");
        _exit(EXIT_FAILURE);
    }
    return G_SOURCE_CONTINUE;
}

/* QMP "quit": what a first signal does (workloads wind down first). */
static void vmm_monitor_quit(void *opaque)
{
    vmm_quit(opaque);
}

static void vmm_workloads_done(void *opaque)
{
    VmmMain *vm = opaque;

    g_main_loop_quit(vm->loop);
}

/*
 * Every line the library reports, once, with our prefix and the device or
 * chardev it concerns. Trace lines keep the "vhost-user:" form that
 * -trace documents.
 */
static void vmm_log_handler(VhostUserLogLevel level, const char *dev,
                            const char *msg, void *opaque)
{
    if (level == VHOST_USER_LOG_TRACE) {
        fprintf(stderr, "vhost-user: %s %s\n", dev ? dev : "-", msg);
    } else if (dev) {
        fprintf(stderr, "vhost-user-vmm: %s: %s\n", dev, msg);
    } else {
        fprintf(stderr, "vhost-user-vmm: %s\n", msg);
    }
}

int main(int argc, char **argv)
{
    g_autoptr(VmmConfig) cfg = vmm_config_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(GMainLoop) loop = NULL;
    VmmMain vm = { 0 };
    VmmMonitor *mon = NULL;
    VmmHotplug *hotplug = NULL;
    VmmAnnounce *announce = NULL;
    VmmMachine *m;
    guint sigterm, sigint;
    int status = EXIT_SUCCESS;

    /* A back-end that vanishes mid-write must be an error, not a death. */
    signal(SIGPIPE, SIG_IGN);
    vhost_user_set_log_handler(vmm_log_handler, NULL);

    if (!vmm_options_parse(cfg, argc, argv, &err)) {
        fprintf(stderr, "vhost-user-vmm: %s\n", err->message);
        return EXIT_FAILURE;
    }
    if (cfg->help) {
        vmm_print_help(stdout);
        return EXIT_SUCCESS;
    }
    if (cfg->trace) {
        vhost_user_trace_enable(true);
    }

    loop = g_main_loop_new(NULL, FALSE);
    m = vmm_machine_new(cfg, &err);
    if (!m) {
        fprintf(stderr, "vhost-user-vmm: %s\n", err->message);
        return EXIT_FAILURE;
    }
    vm.loop = loop;
    vm.machine = m;
    vmm_machine_set_workloads_done(m, vmm_workloads_done, &vm);
    sigterm = g_unix_signal_add(SIGTERM, vmm_quit, &vm);
    sigint = g_unix_signal_add(SIGINT, vmm_quit, &vm);
    if (cfg->qmp_path) {
        mon = vmm_monitor_new(cfg->qmp_path, cfg->qmp_wait, vmm_monitor_quit, &vm, &err);
        if (!mon) {
            fprintf(stderr, "vhost-user-vmm: %s\n", err->message);
            vmm_machine_free(m);
            return EXIT_FAILURE;
        }
        vmm_runstate_register(mon);
        hotplug = vmm_hotplug_new(m, mon);
        vmm_dirtylog_register(m, mon);
        announce = vmm_announce_new(m, mon);
    }
    vmm_status("ready");

    g_main_loop_run(loop);

    g_source_remove(sigterm);
    g_source_remove(sigint);
    /* No command may run once the devices stop. */
    vmm_runstate_unregister();
    vmm_monitor_free(mon);
    vmm_hotplug_free(hotplug);
    vmm_announce_free(announce);
    vmm_machine_shutdown(m);
    /* The summary last, after the devices' "stopped" lines. */
    if (vmm_machine_has_workloads(m) && !vmm_machine_report(m, cfg->summary_json)) {
        status = EXIT_FAILURE;
    }
    vmm_machine_free(m);
    return status;
}
