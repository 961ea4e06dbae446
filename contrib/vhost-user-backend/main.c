/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user-backend: the reference vhost-user back-end (net loopback,
 * blk on a RAM disk or a file). Options, the socket (listen or connect),
 * and the accept/reconnect loop; one front-end at a time.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/vhost-user-log.h"
#include "util/vhost-user-msg.h"
#include "refbe.h"

#define REFBE_DEFAULT_BLK_SIZE    (64ull << 20)
#define REFBE_RECONNECT_MS        1000

static volatile int quit;

static const char usage_text[] =
"NAME\n"
"    vhost-user-backend - reference vhost-user back-end (net loopback, blk disk)\n"
"\n"
"SYNOPSIS\n"
"    vhost-user-backend --socket-path=PATH --type=net|blk [--queues=N]\n"
"                       [--blk-file=PATH | --blk-size=SIZE] [--inflight=on|off]\n"
"                       [--server | --client] [--trace]\n"
"                       [--batch=N] [--crash-at=STAGE:N] [--state-dump=FILE]\n"
"                       [--mem-slots] [--no-postcopy] [--postcopy-touch=listen|reply|end]\n"
"                       [--x-scribble=random[,seed=N][,every=N]|field=NAME]\n"
"\n"
"DESCRIPTION\n"
"    Serves the back-end side of the vhost-user protocol on a UNIX socket, for\n"
"    one front-end (VMM) at a time. When the front-end disconnects, all of its\n"
"    state (memory mappings, ring fds) is released and the back-end waits for\n"
"    the next connection, so a front-end can reconnect and resume.\n"
"\n"
"    net  Loopback virtio-net: every frame the driver sends on TX ring 2k+1 is\n"
"         delivered into the next buffer(s) of RX ring 2k of the same queue\n"
"         pair, with a virtio_net_hdr_v1. Offers VERSION_1, EVENT_IDX,\n"
"         INDIRECT_DESC, MAC, MRG_RXBUF, STATUS and MQ. Frames up to 64 KiB\n"
"         (jumbo) span mergeable RX buffers; after NET_SET_MTU, frames over\n"
"         the MTU + 18 are dropped.\n"
"\n"
"    blk  virtio-blk on a RAM disk (default, --blk-size) or a file: IN, OUT,\n"
"         FLUSH, GET_ID, DISCARD and WRITE_ZEROES; the config space (capacity,\n"
"         blk_size 512, seg_max, num_queues, discard and write-zeroes limits)\n"
"         is served with GET_CONFIG. With CONFIG_WCE the driver may turn the\n"
"         write cache off (SET_CONFIG writeback=0): a file disk then syncs\n"
"         every write. The disk keeps its content and cache mode across\n"
"         front-end connections.\n"
"\n"
"    Protocol features offered: MQ, REPLY_ACK, STATUS, DEVICE_STATE,\n"
"    LOG_SHMFD, PAGEFAULT (unless --no-postcopy), CONFIGURE_MEM_SLOTS (with\n"
"    --mem-slots), NET_MTU for net, and CONFIG and INFLIGHT_SHMFD (unless\n"
"    --inflight=off) for blk.\n"
"    Every request is checked; an invalid one is logged and ends the\n"
"    connection. A guest that corrupts a ring breaks only that ring.\n"
"\n"
"    Postcopy migration (PAGEFAULT): POSTCOPY_ADVISE hands the front-end a\n"
"    userfaultfd of ours; after POSTCOPY_LISTEN every memory table is\n"
"    registered on it for missing pages and answered with our own mapping\n"
"    addresses, and the front-end's acknowledgement is awaited before any\n"
"    guest page is touched. A page the destination has not received yet\n"
"    then blocks the back-end until the front-end has placed it and woken\n"
"    the userfaultfd. POSTCOPY_END unregisters and closes it, and so does\n"
"    a hang-up of the front-end (even while we are blocked on a page). The\n"
"    userfaultfd syscall needs root (or vm.unprivileged_userfaultfd=1);\n"
"    /dev/userfaultfd is tried after it.\n"
"\n"
"OPTIONS\n"
"    -s, --socket-path=PATH\n"
"           UNIX socket to listen on (created; a stale socket is replaced)\n"
"           or to connect to with --client. Required.\n"
"    -t, --type=net|blk\n"
"           Device type. Required.\n"
"    -q, --queues=N\n"
"           Queue pairs (net, 1..128) or request queues (blk, 1..64).\n"
"           Default 1. GET_QUEUE_NUM reports N.\n"
"    -f, --blk-file=PATH\n"
"           Back the disk with PATH (created if missing, grown to --blk-size\n"
"           if shorter). Without --blk-size the file's size is the disk size.\n"
"    -S, --blk-size=SIZE\n"
"           Disk size in bytes, with an optional K, M, G or T suffix (powers\n"
"           of 1024); rounded down to 512-byte sectors. Default 64M for the\n"
"           RAM disk.\n"
"        --inflight=on|off\n"
"           blk: offer INFLIGHT_SHMFD (default on). The back-end then records\n"
"           every request it takes from a ring, and finishes, in a shared\n"
"           memory area the front-end keeps (GET_INFLIGHT_FD) and hands back\n"
"           on every connection (SET_INFLIGHT_FD). A back-end started after\n"
"           one that was killed in the middle of requests runs those requests\n"
"           again, oldest first, before new ones, and resumes the avail ring\n"
"           right after them: each request completes exactly once. Use a\n"
"           --blk-file for the data to survive the back-end as well.\n"
"        --server\n"
"           Listen on the socket (default).\n"
"        --client\n"
"           Connect to the socket, retrying every second until it accepts;\n"
"           after a disconnect, connect again.\n"
"        --batch=N\n"
"           blk: take up to N requests (1..32) from a ring, run them, then\n"
"           complete them newest first, the oldest in a used-ring update of\n"
"           its own. The used ring then briefly holds completions out of\n"
"           avail order, as with a back-end doing parallel I/O. Default 1.\n"
"        --crash-at=taken|executed|published:N\n"
"           For tests of inflight recovery: kill the process with SIGKILL\n"
"           when the Nth request taken since it started has been taken\n"
"           (recorded, not run), executed (not completed), or published\n"
"           (in the used ring, the inflight area not yet updated).\n"
"        --state-dump=FILE\n"
"           At exit, write the device state (the one migrated with the\n"
"           DEVICE_STATE protocol feature) to FILE as text: per ring the\n"
"           requests or buffers completed, for blk the write cache mode and\n"
"           the writes it synced.\n"
"        --mem-slots\n"
"           Offer CONFIGURE_MEM_SLOTS: the front-end may then send guest\n"
"           memory one region at a time (ADD_MEM_REG, REM_MEM_REG; at most 8\n"
"           regions, GET_MAX_MEM_SLOTS) instead of whole tables. Off by\n"
"           default, so the front-end uses SET_MEM_TABLE.\n"
"        --no-postcopy\n"
"           Do not offer PAGEFAULT: a front-end cannot migrate this device\n"
"           with postcopy.\n"
"        --postcopy-touch=listen|reply|end\n"
"           For tests of postcopy: fault on purpose. listen: once the\n"
"           front-end has acknowledged a memory table (or a region) sent\n"
"           while postcopy listens, a thread reads one byte (the first) of\n"
"           the last page of the last region, then of every page of every\n"
"           region in table order (a pass still running is stopped first),\n"
"           and logs\n"
"             postcopy-touch listen: done: pages P faults F ms T fnv 0xH\n"
"           where F counts pages that were missing (faulted), T is the\n"
"           time the pass took and H is the 64-bit FNV-1a hash of the bytes\n"
"           read in table order. reply: while postcopy listens, before answering\n"
"           SET_VRING_ADDR, SET_VRING_KICK and GET_VRING_BASE, read every\n"
"           page of that ring (descriptors, available and used rings) and\n"
"           the first and last page of every region, and log\n"
"             postcopy-touch reply: REQUEST ring N: pages P faults F\n"
"             ring-faults R ms T\n"
"           (R: of the F, those on the ring's own pages), so the front-end\n"
"           waits for a reply while we wait for a page.\n"
"           end: on POSTCOPY_END, before answering it, read one byte of\n"
"           every page of every region (pages the destination never\n"
"           populated fault), and log\n"
"             postcopy-touch end: pages P faults F ms T\n"
"           At exit, either way: \"postcopy: advised A times, pages\n"
"           touched P, faults F, blocked U us\".\n"
"        --x-scribble=random[,seed=N][,every=N] | --x-scribble=field=NAME\n"
"           For tests only: a hostile back-end. Writes over the state the\n"
"           reference VMM's guest driver keeps in guest RAM (ring state,\n"
"           request tokens, descriptor links, used rings of this device's\n"
"           rings, the blk or net driver's state page), to show that the\n"
"           VMM fails the device and survives. field=NAME: that field, at\n"
"           DRIVER_OK and after every kick, with a value out of range; NAME\n"
"           is one of vq.num, vq.free_head, vq.num_free, vq.avail_idx,\n"
"           vq.last_used_idx, vq.flags, vq.token, vq.ndesc, desc.next,\n"
"           used.id, used.len, used.idx, blk.seed, blk.tracked,\n"
"           blk.pool_gpa, blk.pool_size, blk.gen_gpa, blk.inflight_gpa,\n"
"           net.run, net.rxbuf, net.nqp, net.rx_gpa, net.work_gpa,\n"
"           net.sent. random: every Nth kick (default 8) one random value\n"
"           at a random place among them (xorshift from seed, default 1).\n"
"           Logs \"scribble: writing WHAT over the driver's guest RAM\" once.\n"
"    -T, --trace\n"
"           Print every vhost-user message received and sent to stderr\n"
"           (also enabled by VHOST_USER_TRACE=1 in the environment).\n"
"    -h, --help\n"
"           Show this text and exit.\n"
"\n"
"SIGNALS\n"
"    SIGINT and SIGTERM end the program after the current request; the\n"
"    listening socket is removed.\n"
"\n"
"EXIT STATUS\n"
"    0 on a signal, 1 on a setup error (socket, disk), 2 on a usage error.\n"
"\n"
"EXAMPLES\n"
"    vhost-user-backend --socket-path=/tmp/net0.sock --type=net --queues=2\n"
"    vhost-user-backend -s /tmp/blk0.sock -t blk --blk-file=disk.img --blk-size=1G\n"
"    vhost-user-backend -s /tmp/blk0.sock -t blk --blk-file=disk.img --inflight=off\n";

void refbe_log(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "vhost-user-backend: %s\n", msg);
}

static void on_signal(int sig)
{
    quit = 1;
}

static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    errno = 0;
    if (!g_ascii_isdigit(*s)) {
        return false;
    }
    v = strtoull(s, &end, 10);
    if (errno) {
        return false;
    }
    switch (g_ascii_toupper(*end)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    default:
        return false;
    }
    if (*end && end[1] != '\0') {
        return false;
    }
    if (shift && v > (UINT64_MAX >> shift)) {
        return false;
    }
    *out = (uint64_t)v << shift;
    return true;
}

static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    if (!g_ascii_isdigit(*s)) {
        return false;
    }
    v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static void usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void usage_error(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "vhost-user-backend: %s\n"
            "Try 'vhost-user-backend --help' for more information.\n", msg);
}

enum { OPT_SERVER = 256, OPT_CLIENT, OPT_INFLIGHT, OPT_BATCH, OPT_CRASH_AT,
       OPT_STATE_DUMP, OPT_NO_POSTCOPY, OPT_POSTCOPY_TOUCH, OPT_MEM_SLOTS,
       OPT_X_SCRIBBLE };

/* --crash-at=STAGE:N */
static bool parse_crash_at(const char *s, RefBeOptions *o)
{
    static const char *const names[] = {
        [REFBE_CRASH_TAKEN] = "taken",
        [REFBE_CRASH_EXECUTED] = "executed",
        [REFBE_CRASH_PUBLISHED] = "published",
    };
    const char *colon = strchr(s, ':');
    char *end;

    if (!colon || !g_ascii_isdigit(colon[1])) {
        return false;
    }
    for (unsigned i = REFBE_CRASH_TAKEN; i < G_N_ELEMENTS(names); i++) {
        if (strlen(names[i]) == (size_t)(colon - s) && !strncmp(s, names[i], colon - s)) {
            errno = 0;
            o->crash_request = g_ascii_strtoull(colon + 1, &end, 10);
            o->crash_stage = i;
            return !errno && !*end && o->crash_request > 0;
        }
    }
    return false;
}

/* Returns -1 to go on, else an exit status. */
static int parse_options(int argc, char **argv, RefBeOptions *o)
{
    static const struct option longopts[] = {
        { "socket-path", required_argument, NULL, 's' },
        { "type", required_argument, NULL, 't' },
        { "queues", required_argument, NULL, 'q' },
        { "blk-file", required_argument, NULL, 'f' },
        { "blk-size", required_argument, NULL, 'S' },
        { "server", no_argument, NULL, OPT_SERVER },
        { "client", no_argument, NULL, OPT_CLIENT },
        { "inflight", required_argument, NULL, OPT_INFLIGHT },
        { "batch", required_argument, NULL, OPT_BATCH },
        { "crash-at", required_argument, NULL, OPT_CRASH_AT },
        { "state-dump", required_argument, NULL, OPT_STATE_DUMP },
        { "no-postcopy", no_argument, NULL, OPT_NO_POSTCOPY },
        { "mem-slots", no_argument, NULL, OPT_MEM_SLOTS },
        { "postcopy-touch", required_argument, NULL, OPT_POSTCOPY_TOUCH },
        { "x-scribble", required_argument, NULL, OPT_X_SCRIBBLE },
        { "trace", no_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool have_type = false, have_inflight = false;
    int c;

    o->queues = 1;
    o->batch = 1;
    while ((c = getopt_long(argc, argv, "s:t:q:f:S:Th", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            g_free(o->socket_path);
            o->socket_path = g_strdup(optarg);
            break;
        case 't':
            if (!strcmp(optarg, "net")) {
                o->type = REFBE_DEV_NET;
            } else if (!strcmp(optarg, "blk")) {
                o->type = REFBE_DEV_BLK;
            } else {
                usage_error("--type: '%s' is not net or blk", optarg);
                return 2;
            }
            have_type = true;
            break;
        case 'q':
            if (!parse_uint(optarg, 1, REFBE_NET_MAX_QUEUES, &o->queues)) {
                usage_error("--queues: '%s' is not a number in 1..%d", optarg,
                            REFBE_NET_MAX_QUEUES);
                return 2;
            }
            break;
        case 'f':
            g_free(o->blk_file);
            o->blk_file = g_strdup(optarg);
            break;
        case 'S':
            if (!parse_size(optarg, &o->blk_size) || o->blk_size < 512) {
                usage_error("--blk-size: '%s' is not a size of at least 512 bytes "
                            "(e.g. 64M)", optarg);
                return 2;
            }
            break;
        case OPT_SERVER:
            o->client = false;
            break;
        case OPT_CLIENT:
            o->client = true;
            break;
        case OPT_INFLIGHT:
            if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
                usage_error("--inflight: '%s' is not on or off", optarg);
                return 2;
            }
            o->inflight = !strcmp(optarg, "on");
            have_inflight = true;
            break;
        case OPT_BATCH:
            if (!parse_uint(optarg, 1, REFBE_BLK_MAX_BATCH, &o->batch)) {
                usage_error("--batch: '%s' is not a number in 1..%d", optarg,
                            REFBE_BLK_MAX_BATCH);
                return 2;
            }
            break;
        case OPT_CRASH_AT:
            if (!parse_crash_at(optarg, o)) {
                usage_error("--crash-at: '%s' is not taken|executed|published:N "
                            "with N >= 1", optarg);
                return 2;
            }
            break;
        case OPT_STATE_DUMP:
            g_free(o->state_dump);
            o->state_dump = g_strdup(optarg);
            break;
        case OPT_MEM_SLOTS:
            o->mem_slots = true;
            break;
        case OPT_NO_POSTCOPY:
            o->no_postcopy = true;
            break;
        case OPT_POSTCOPY_TOUCH:
            if (!strcmp(optarg, "listen")) {
                o->postcopy_touch = REFBE_PC_TOUCH_LISTEN;
            } else if (!strcmp(optarg, "reply")) {
                o->postcopy_touch = REFBE_PC_TOUCH_REPLY;
            } else if (!strcmp(optarg, "end")) {
                o->postcopy_touch = REFBE_PC_TOUCH_END;
            } else {
                usage_error("--postcopy-touch: '%s' is not listen, reply or end", optarg);
                return 2;
            }
            break;
        case OPT_X_SCRIBBLE:
            refbe_scribble_free(o->scribble);
            o->scribble = refbe_scribble_parse(optarg);
            if (!o->scribble) {
                usage_error("--x-scribble: '%s' is not random[,seed=N][,every=N] "
                            "or field=NAME with NAME one of %s", optarg,
                            refbe_scribble_fields());
                return 2;
            }
            break;
        case 'T':
            o->trace = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            usage_error("unknown or incomplete option");
            return 2;
        }
    }
    if (optind < argc) {
        usage_error("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!o->socket_path || !*o->socket_path) {
        usage_error("--socket-path is required");
        return 2;
    }
    if (strlen(o->socket_path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
        usage_error("--socket-path: '%s' is too long for a UNIX socket",
                    o->socket_path);
        return 2;
    }
    if (!have_type) {
        usage_error("--type=net|blk is required");
        return 2;
    }
    if (o->type == REFBE_DEV_BLK && o->queues > REFBE_BLK_MAX_QUEUES) {
        usage_error("--queues: %u is more than %d blk queues", o->queues,
                    REFBE_BLK_MAX_QUEUES);
        return 2;
    }
    if (o->type == REFBE_DEV_NET && (o->blk_file || o->blk_size)) {
        usage_error("--blk-file and --blk-size are for --type=blk");
        return 2;
    }
    if (o->type == REFBE_DEV_BLK && !o->blk_file && !o->blk_size) {
        o->blk_size = REFBE_DEFAULT_BLK_SIZE;
    }
    if (o->type == REFBE_DEV_NET && have_inflight && o->inflight) {
        usage_error("--inflight=on is for --type=blk");
        return 2;
    }
    if (o->type == REFBE_DEV_NET && (o->batch > 1 || o->crash_stage)) {
        usage_error("--batch and --crash-at are for --type=blk");
        return 2;
    }
    if (o->no_postcopy && o->postcopy_touch) {
        usage_error("--postcopy-touch needs postcopy (not --no-postcopy)");
        return 2;
    }
    if (o->type == REFBE_DEV_BLK && !have_inflight) {
        o->inflight = true;
    }
    return -1;
}

static void make_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    g_strlcpy(sa->sun_path, path, sizeof(sa->sun_path));
}

static int listen_socket(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    make_addr(path, &sa);
    /* Replace a socket left by an earlier run, never any other file. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        refbe_log("socket: %s", g_strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        refbe_log("%s: %s", path, g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits for fd to be readable or a signal; false on a signal. */
static bool wait_readable(int fd, const sigset_t *mask)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    while (!quit) {
        int r = ppoll(&p, 1, NULL, mask);

        if (r > 0) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            refbe_log("poll: %s", g_strerror(errno));
            return false;
        }
    }
    return false;
}

static void run_server(RefBeDev *dev, int lfd)
{
    refbe_log("%s: listening", dev->name);
    while (wait_readable(lfd, &dev->waitmask)) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                refbe_log("accept: %s", g_strerror(errno));
            }
            continue;
        }
        refbe_dev_serve(dev, fd, &quit);
    }
}

static void run_client(RefBeDev *dev)
{
    struct sockaddr_un sa;
    bool warned = false;

    make_addr(dev->opts->socket_path, &sa);
    while (!quit) {
        struct timespec delay = {
            .tv_sec = REFBE_RECONNECT_MS / 1000,
            .tv_nsec = (REFBE_RECONNECT_MS % 1000) * 1000000L,
        };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            refbe_log("socket: %s", g_strerror(errno));
            return;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            warned = false;
            refbe_dev_serve(dev, fd, &quit);
            continue;
        }
        if (!warned) {
            refbe_log("%s: connect: %s; retrying every %d ms", dev->name,
                    g_strerror(errno), REFBE_RECONNECT_MS);
            warned = true;
        }
        close(fd);
        /* Sleep, but wake at once on SIGINT/SIGTERM. */
        ppoll(NULL, 0, &delay, &dev->waitmask);
    }
}

/* The trace lines of the shared table code, as the front-end prints them. */
static void backend_log_handler(VhostUserLogLevel level, const char *dev,
                                const char *msg, void *opaque)
{
    if (level == VHOST_USER_LOG_TRACE) {
        fprintf(stderr, "vhost-user: %s %s\n", dev ? dev : "-", msg);
    } else {
        fprintf(stderr, "vhost-user-backend: %s%s%s\n", dev ? dev : "", dev ? ": " : "", msg);
    }
}

int main(int argc, char **argv)
{
    RefBeOptions opts = { 0 };
    struct sigaction sa = { .sa_handler = on_signal };
    sigset_t block;
    g_autoptr(GError) err = NULL;
    RefBeDev *dev;
    int status = 0;
    int lfd = -1;

    status = parse_options(argc, argv, &opts);
    if (status >= 0) {
        g_free(opts.socket_path);
        g_free(opts.blk_file);
        g_free(opts.state_dump);
        refbe_scribble_free(opts.scribble);
        return status;
    }
    status = 0;
    vhost_user_set_log_handler(backend_log_handler, NULL);
    if (opts.trace) {
        vhost_user_trace_enable(true);
    } else if (vhost_user_trace_enabled()) {
        opts.trace = true;
    }

    /*
     * SIGINT/SIGTERM stay blocked except while we wait (ppoll/epoll_pwait),
     * so a signal cannot slip in between the quit check and the wait.
     */
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);

    dev = refbe_dev_new(&opts, &err);
    if (!dev) {
        refbe_log("%s", err->message);
        status = 1;
        goto out;
    }
    sigprocmask(SIG_BLOCK, &block, &dev->waitmask);
    sigdelset(&dev->waitmask, SIGINT);
    sigdelset(&dev->waitmask, SIGTERM);

    if (opts.client) {
        run_client(dev);
    } else {
        lfd = listen_socket(opts.socket_path);
        if (lfd < 0) {
            status = 1;
        } else {
            run_server(dev, lfd);
            close(lfd);
            unlink(opts.socket_path);
        }
    }
    refbe_log("%s: exiting", dev->name);
    refbe_postcopy_report(dev);
    if (opts.state_dump && !refbe_state_dump(dev, opts.state_dump, &err)) {
        refbe_log("--state-dump: %s", err->message);
        status = 1;
    }
    refbe_dev_free(dev);
out:
    g_free(opts.socket_path);
    g_free(opts.blk_file);
    g_free(opts.state_dump);
    refbe_scribble_free(opts.scribble);
    return status;
}
