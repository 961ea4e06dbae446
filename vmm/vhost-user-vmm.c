/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user-vmm: the reference VMM. Parses QEMU-style options, builds the
 * machine, runs the GLib main loop until SIGTERM/SIGINT (or, with
 * -workload, until every workload has finished), then stops the devices
 * and exits. See --help and vmm/vmm-options.c.
 */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
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
#include "vmm/vmm-migrate.h"
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
"                   [-summary human|json] [-vcpu-pin on|off] [-x-fill-pattern]\n"
"                   [-trace vhost_user]\n"
"                   [-qmp unix:PATH,server=on[,wait=off]]\n"
"                   [-incoming tcp:HOST:PORT|unix:PATH|defer [-S]]\n"
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
"             [,reconnect-ms=N][,reply-timeout-ms=N][,slow-reply-timeout-ms=N]\n"
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
"        A request whose reply the spec has come at once (GET_FEATURES,\n"
"        acks, ...) waits at most reply-timeout-ms (default 2000), one that\n"
"        may take time (GET_VRING_BASE, SET_MEM_TABLE, device state, ...)\n"
"        slow-reply-timeout-ms (default 10000; it also bounds socket\n"
"        writes). The event loop, and so the QMP monitor, may wait that long\n"
"        for a stalled back-end. A timeout drops the connection; a back-end\n"
"        that stalls again and again is retried ever more slowly (first after\n"
"        as long as the stall held the VMM, then doubling up to 30 s, until a\n"
"        connection stays up 3 x slow-reply-timeout-ms without a stall).\n"
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
"    packed=on|off           (any -device above; default off)\n"
"        Offers VIRTIO_F_RING_PACKED when the back-end does: the driver then\n"
"        lays every ring out packed (virtio 1.1), and SET_VRING_BASE and\n"
"        GET_VRING_BASE carry both indices with their wrap counters.\n"
"\n"
"    in_order=on|off         (any -device above; default off)\n"
"        Offers VIRTIO_F_IN_ORDER when the back-end does: the driver then\n"
"        uses descriptors in ring order and takes completions oldest\n"
"        first, including batches the device reports with one used entry\n"
"        naming the batch's last buffer (split or packed).\n"
"\n"
"    shared-objects-max=N    (any -device above; 1..1024, default 32)\n"
"        How many shared objects (SHARED_OBJECT_ADD, e.g. dma-bufs) the\n"
"        device's back-end may register at once; each may hold one of the\n"
"        VMM's file descriptors. Further adds are refused (status 1) and\n"
"        logged; the back-end stays connected.\n"
"\n"
"    -workload DEVID:KEY=VALUE[,KEY=VALUE]...\n"
"        Once device DEVID (a -device id: blk0, net0, ...) has started, a\n"
"        \"vCPU\" thread of its own runs the in-process guest driver's\n"
"        workload on the device's rings, with buffers in guest RAM. One\n"
"        -workload per device; vhost-user-device-pci has no driver. Sizes\n"
"        take k/m/g suffixes (powers of two), times ms/s/m (default s),\n"
"        booleans on/off. Every byte written and every packet sent carries a\n"
"        pattern that is checked when it comes back (net: as far as verify=\n"
"        says).\n"
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
"          poll=off|on|adaptive (off) how completions are waited for: off\n"
"              sleeps on the call eventfds; on busy-polls the used rings\n"
"              with the device's calls suppressed (a core spins, no\n"
"              syscall per completion); adaptive busy-polls up to 50 us,\n"
"              then sleeps\n"
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
"          verify=full|sample|seq (full)   what is checked of each packet:\n"
"              full fills and checks every payload byte; seq only the\n"
"              32-byte header (queue, sequence number, run, length: lost,\n"
"              duplicated, misrouted, stale and resized packets are still\n"
"              caught) and never touches the payload, like a forwarder;\n"
"              sample adds 8 payload words, the last byte included.\n"
"              on = full, off = seq\n"
"          poll=off|on|adaptive (off)   off sleeps on the call eventfds\n"
"              when nothing moved; on busy-polls the used rings with the\n"
"              device's interrupts suppressed (no system call per packet\n"
"              unless the back-end asks for kicks); adaptive spins 50 us\n"
"              before sleeping\n"
"          burst=N (32)   packets sent and completions taken per queue\n"
"              and loop iteration: one kick, one used index read each\n"
"          lat-sample=N (1 with verify=full, else 64)   one packet in N\n"
"              gives a latency sample; all are counted\n"
"          What the anchor (DPDK's net_virtio_user in testpmd) does is\n"
"          verify=seq,poll=on (bench/README.md).\n"
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
"        wrong_queue, announce_frames, kicks, sleeps, verify, poll, mpps;\n"
"        and \"ok\":BOOL,\"error\":STRING|null}.\n"
"        Default: human (stderr only).\n"
"\n"
"    -vcpu-pin on|off\n"
"        When the process may run on at least 2 CPUs (sched_getaffinity),\n"
"        each workload's thread (the vCPU) is pinned to a CPU of its own\n"
"        (which one varies with the process id, so that several VMMs on\n"
"        a machine spread out), and the main loop's thread, with the\n"
"        threads it starts later (migration), to the others; at least one\n"
"        stays the main loop's. The status line \"DEVID: vCPU thread on\n"
"        CPU N, main loop on CPUs LIST\" says where. Default: on.\n"
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
"          migrate uri=unix:PATH|tcp:HOST:PORT\n"
"              live migration (precopy) to a VMM started with -incoming.\n"
"              Returns {} at once, or an error when it cannot start: a\n"
"              device whose back-end cannot log its writes to guest RAM (no\n"
"              LOG_SHMFD or VHOST_F_LOG_ALL; the error names the device and\n"
"              what it lacks) or has no back-end connected, a migration\n"
"              already running, a guest that already migrated out. Then, in\n"
"              a thread of its own: the back-ends log their writes and the\n"
"              VMM tracks the guest's (userfaultfd write-protect; without\n"
"              kernel support the guest is stopped for the whole copy, said\n"
"              in one line); all RAM is sent once (zero pages as a flag),\n"
"              then the pages dirtied meanwhile, round after round, until\n"
"              what remains would take at most downtime-limit at the\n"
"              measured bandwidth (or after 30 rounds); then the guest\n"
"              stops (run state finish-migrate, STOP event: the workloads\n"
"              drain, GET_VRING_BASE per ring), the rest of RAM and each\n"
"              device's state (with the back-end's own, DEVICE_STATE) go,\n"
"              and the migration completes once the destination confirms\n"
"              it took over (run state postmigrate; the rings stay stopped;\n"
"              workloads end as migrated). Any failure before that\n"
"              resumes the guest here (RESUME event) and says why.\n"
"              Memory hotplug is refused meanwhile.\n"
"              With capability postcopy-ram, every back-end must also offer\n"
"              PAGEFAULT (else migrate names the device).\n"
"          migrate-set-capabilities capabilities=[{capability,state}]\n"
"              postcopy-ram (default off): postcopy may be started; needed\n"
"              on both sides (a destination sets it before its source\n"
"              connects; -incoming defer helps). Refused while migrating.\n"
"          query-migrate-capabilities   [{\"capability\":\"postcopy-ram\",\n"
"              \"state\":B}]\n"
"          migrate-start-postcopy\n"
"              during a precopy migration with postcopy-ram: at the next\n"
"              4 MiB of the round the guest stops, the pages still owed are\n"
"              listed, each device's state goes, and the guest runs on the\n"
"              destination (status postcopy-active, downtime ends); the\n"
"              owed pages follow in the background (max-bandwidth), those\n"
"              the destination faults on (guest or back-end) first. The\n"
"              source's guest never resumes after that: a failure is\n"
"              'failed', a cut connection pauses both (postcopy-paused).\n"
"              Refused, saying why, when the migration has no write\n"
"              tracking (one stop-and-copy: nothing to switch from).\n"
"          query-migrate   {\"status\":S, \"total-time\":ms, \"setup-time\":ms,\n"
"              \"downtime\":ms (completed), \"expected-downtime\":ms (active),\n"
"              \"ram\":{\"total\",\"transferred\",\"remaining\" (bytes),\n"
"              \"dirty-pages-rate\" (pages/s), \"dirty-sync-count\",\n"
"              \"mbps\" (Mbit/s), \"postcopy-requests\" (with postcopy-ram)},\n"
"              \"error-desc\" (failed)}; S is none, setup, active,\n"
"              postcopy-active, completed, failed, cancelling or cancelled\n"
"              (postcopy-paused is reserved). On a destination the figures\n"
"              are those of the load, and after a postcopy switch\n"
"              \"postcopy\":{\"pages-missing\",\"pages-placed\",\"pages-zero\",\n"
"              \"requests\",\"faults-guest\",\"faults-backend\",\n"
"              \"faults-present\",\"blocktime-guest-us\",\n"
"              \"blocktime-backend-us\", \"guest-p50-us\" .. \"guest-max-us\",\n"
"              \"backend-p50-us\" .. \"backend-max-us\" (p50, p90, p99, max),\n"
"              \"backends-readvised\" (back-ends that reconnected during\n"
"              postcopy and were advised again), \"fault-sched\" (what the\n"
"              fault thread got: fifo, slice or normal)}.\n"
"          migrate-set-parameters [max-bandwidth=BYTES/S][, downtime-limit=MS]\n"
"              [, x-postcopy-auto=BOOL][, x-postcopy-fault-sched=POLICY]\n"
"              max-bandwidth limits the stream (default 0: unlimited);\n"
"              downtime-limit (0..2000000, default 300) is the longest the\n"
"              guest may stay stopped at the switchover. Applied at the next\n"
"              round of a running migration; a bad value is an error naming\n"
"              the parameter and changes nothing. x-postcopy-auto (with\n"
"              postcopy-ram): switch to postcopy by itself after 5 rounds\n"
"              that did not converge. x-postcopy-fault-sched: how the\n"
"              threads every postcopy fault waits for are scheduled (the\n"
"              destination's fault thread and preempt placer, the source's\n"
"              request reader), set before the switch: auto (default:\n"
"              fifo if this process may, else slice), fifo (SCHED_FIFO\n"
"              priority 1: woken, they preempt every ordinary thread;\n"
"              needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 1, else slice and a\n"
"              status line says so), slice (ordinary class, 0.1 ms slice,\n"
"              Linux 6.12+) or normal (untouched).\n"
"          query-migrate-parameters   {\"max-bandwidth\":N,\"downtime-limit\":N,\n"
"              \"x-postcopy-auto\":B,\"x-postcopy-fault-sched\":S}\n"
"          migrate_cancel\n"
"              stops a running migration (status cancelling, then\n"
"              cancelled) and resumes the guest; too late (ignored) once\n"
"              the last section went out, or after the postcopy switch,\n"
"              since the destination may then already run the guest\n"
"          migrate-incoming uri=URI   with -incoming defer: listen now\n"
"          cont\n"
"              with -S: starts the guest the migration loaded (RESUME\n"
"              event); during the load: start it once loaded; on a guest\n"
"              paused here: resume it\n"
"          query-status           {\"status\":\"running\",\"running\":true,...}\n"
"              status: running, paused, inmigrate, finish-migrate or\n"
"              postmigrate\n"
"          query-commands         the command names\n"
"          quit                   exits as on SIGTERM (SHUTDOWN event first)\n"
"        Integers are JSON numbers; size and addr also take strings like\n"
"        \"2M\". A back-end that connects later gets the whole table, pc-dimms\n"
"        included; one that reconnects with fewer slots than the regions in\n"
"        use is refused with an error naming both numbers.\n"
"        Events: MIGRATION {\"status\":S} on every change of the migration's\n"
"        status, STOP and RESUME when the guest stops or runs again,\n"
"        DEVICE_DELETED after device_del, SHUTDOWN before quit.\n"
"\n"
"    -incoming tcp:HOST:PORT | unix:PATH | defer\n"
"        Be the destination of a live migration: the devices connect to\n"
"        their back-ends and negotiate, but the guest does not boot; the VMM\n"
"        listens on the URI (tcp:[IPV6]:PORT too; port 0 picks a free port,\n"
"        printed in the \"incoming from\" line) and waits, in run state\n"
"        inmigrate, for one source. The stream's RAM goes into guest RAM,\n"
"        which must have the same memory backends (ids and sizes) at the same\n"
"        addresses; each device's state goes into the device of the same id\n"
"        once its back-end has negotiated (at most 30 s). Then the guest runs\n"
"        from where it stopped on the source, and the source is told. A\n"
"        failed load ends the VMM with exit status 1. defer waits for QMP\n"
"        migrate-incoming to give the URI (needs -qmp).\n"
"\n"
"    -S\n"
"        With -incoming: once loaded, the guest stays paused (run state\n"
"        paused, devices loaded, rings stopped) until QMP cont. Needs -qmp.\n"
"        The source is told as soon as the load succeeded, so it completes\n"
"        and never resumes: the guest is this VMM's from then on.\n"
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
"    Live migration, on the source:\n"
"        migration: to URI\n"
"        migration: round N, X MiB of Y MiB sent, Z MiB remaining, R MiB/s,\n"
"            expected downtime D ms      each second while active (D is\n"
"                                      \"unknown\" before a round was timed)\n"
"        migration: guest-write tracking unavailable: WHY; migration will\n"
"            stop the guest for the whole copy\n"
"        migration: X MiB still dirty after N rounds: stopping the guest\n"
"            for the rest\n"
"        migration: completed in N ms, downtime N ms (R rounds, X MiB)\n"
"        migration: failed: REASON       the guest runs on here\n"
"        migration: cancelled\n"
"    and on the destination:\n"
"        migration: incoming from URI | migration: incoming deferred ...\n"
"        migration: loaded N MiB in T ms, guest running\n"
"            (with -S: guest paused until cont (-S), then\n"
"        migration: guest running (cont))\n"
"        migration: load failed: REASON   then exit 1\n"
"        migration: postcopy: device 'ID': the reconnected back-end was\n"
"            advised again, its userfaultfd polled   (a back-end that came\n"
"            back during postcopy; one without PAGEFAULT is refused:\n"
"            ID: error: ... does not offer PAGEFAULT ...)\n"
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
"    While postcopy is paused, a first SIGTERM/SIGINT (or quit) exits at\n"
"    once: 0, as on any quit; with -workload 1 (the workloads could not\n"
"    end, so none verified).\n"
"    A source whose migration completed: 0 after SIGTERM/SIGINT; with\n"
"    -workload, 0 once its workloads ended as migrated. A destination: 1\n"
"    when the load failed (or -incoming could not listen), else as above.\n"
"\n"
"ENVIRONMENT\n"
"    VHOST_USER_TRACE   any value but 0 enables the message trace.\n"
"    VHOST_USER_VMM_POSTCOPY_BG  the source's postcopy background sender\n"
"                       with postcopy-preempt: nice (default, nice 10),\n"
"                       idle (SCHED_IDLE) or normal.\n"
"    VHOST_USER_VMM_POSTCOPY_FOLLOW  0: the source's postcopy background\n"
"                       goes on in address order instead of from the\n"
"                       latest requested page (for comparison).\n"
"    VHOST_USER_VMM_POSTCOPY_RINGS_AHEAD  0: at the postcopy switch the\n"
"                       source does not send the devices' ring pages ahead\n"
"                       of the rest (for comparison).\n"
"    VHOST_USER_POSTCOPY_TRACE  any value but 0: each step of a requested\n"
"                       page traced (scripts/postcopy-fault-trace.sh).\n"
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
"            \"id\":\"dimm1\",\"memdev\":\"mem1\"}}\n"
"\n"
"    Live migration: the destination, with RAM and devices like the\n"
"    source's and back-ends of its own,\n"
"    vhost-user-vmm -m 256M -qmp unix:/tmp/dst.qmp,server=on,wait=off \\\n"
"        -chardev socket,id=c0,path=/tmp/vhost-blk-dst.sock \\\n"
"        -device vhost-user-blk-pci,chardev=c0 -incoming tcp:0:4444\n"
"    then on the source's monitor:\n"
"        {\"execute\":\"migrate-set-parameters\",\"arguments\":\n"
"            {\"downtime-limit\":100}}\n"
"        {\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:dst-host:4444\"}}\n"
"        {\"execute\":\"query-migrate\"}\n",
        out);
}

typedef struct VmmMain {
    GMainLoop *loop;
    VmmMachine *machine;
    VmmMigrate *migrate;
    bool stopping;              /* a signal asked the workloads to end */
    bool abandon;               /* quit in postcopy-paused: threads not joined */
    bool failed;                /* an incoming migration failed: exit 1 */
} VmmMain;

static gboolean vmm_quit(gpointer opaque)
{
    VmmMain *vm = opaque;

    if (!vm->machine || vmm_machine_workloads_finished(vm->machine)) {
        g_main_loop_quit(vm->loop);
    } else if (vmm_migrate_postcopy_paused(vm->migrate)) {
        /*
         * The workloads cannot wind down: the source's guest is stopped,
         * the destination's may wait for a page or a request that only
         * the other side has. The migration ends, the devices stop, the
         * summary says so, and the process exits without joining them.
         */
        vmm_status("quit while postcopy is paused: the workloads cannot end, exiting");
        vm->stopping = vm->abandon = true;
        vmm_machine_stop_workloads(vm->machine, "the VMM quit while postcopy was paused");
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

/* The destination could not load the guest: nothing to run, exit 1. */
static void vmm_migration_fatal(void *opaque)
{
    VmmMain *vm = opaque;

    vm->failed = true;
    g_main_loop_quit(vm->loop);
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

/*
 * Every back-end connection holds fds (eventfds per ring, memory regions,
 * inflight and log areas, shared objects, a userfaultfd): with many
 * devices the usual soft limit of 1024 runs out long before the hard one,
 * so raise the soft limit to the hard one, as QEMU does. Best effort.
 */
static void vmm_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            vmm_status("warning: cannot raise the open file limit to %llu: %s",
                       (unsigned long long)rl.rlim_max, g_strerror(errno));
        }
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
    VmmMigrate *migrate;
    VmmAnnounce *announce = NULL;
    VmmMachine *m;
    guint sigterm, sigint;
    int status = EXIT_SUCCESS;

    /* A back-end that vanishes mid-write must be an error, not a death. */
    signal(SIGPIPE, SIG_IGN);
    vhost_user_set_log_handler(vmm_log_handler, NULL);
    vmm_raise_nofile();

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
    migrate = vmm_migrate_new(m, vmm_migration_fatal, &vm);
    vm.migrate = migrate;
    vmm_machine_set_workloads_done(m, vmm_workloads_done, &vm);
    sigterm = g_unix_signal_add(SIGTERM, vmm_quit, &vm);
    sigint = g_unix_signal_add(SIGINT, vmm_quit, &vm);
    if (cfg->qmp_path) {
        mon = vmm_monitor_new(cfg->qmp_path, cfg->qmp_wait, vmm_monitor_quit, &vm, &err);
        if (!mon) {
            fprintf(stderr, "vhost-user-vmm: %s\n", err->message);
            vmm_migrate_free(migrate);
            vmm_machine_free(m);
            return EXIT_FAILURE;
        }
        vmm_runstate_register(mon);
        vmm_runstate_register_control(mon, m);
        hotplug = vmm_hotplug_new(m, mon);
        vmm_dirtylog_register(m, mon);
        vmm_migrate_register(migrate, mon);
        announce = vmm_announce_new(m, mon);
    }
    /* Before the loop runs: no device may boot from an empty guest. */
    if (cfg->incoming &&
        !vmm_migrate_incoming(migrate, cfg->incoming, !cfg->no_autostart, &err)) {
        fprintf(stderr, "vhost-user-vmm: -incoming %s: %s\n", cfg->incoming, err->message);
        vmm_runstate_unregister();
        vmm_migrate_unregister(migrate);
        vmm_monitor_free(mon);
        vmm_hotplug_free(hotplug);
        vmm_announce_free(announce);
        vmm_migrate_free(migrate);
        vmm_machine_free(m);
        return EXIT_FAILURE;
    }
    vmm_status("ready");

    g_main_loop_run(loop);

    g_source_remove(sigterm);
    g_source_remove(sigint);
    vmm_migrate_unregister(migrate);
    /* A migration still running ends first (it may need the loop to unwind). */
    vmm_migrate_free(migrate);
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
    if (vm.failed) {
        status = EXIT_FAILURE;
    }
    if (vm.abandon) {
        /* vCPU threads may still wait on the other side: not joined. */
        fflush(stdout);
        fflush(stderr);
        _exit(status);
    }
    vmm_machine_free(m);
    return status;
}
