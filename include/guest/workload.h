/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest workloads: what the reference VMM's guest drivers do once a device
 * is running, as parsed from the command line, and how the caller (a
 * "vCPU" thread of the VMM, or a test) controls and observes a run.
 *
 * Option syntax (one -workload per device):
 *
 *     -workload DEVID:KEY=VALUE[,KEY=VALUE]...
 *
 * DEVID names the device ("blk0", "net0", or the -device id=). VALUEs
 * take fio's units: sizes accept a k/K, m/M, g/G suffix (powers of two,
 * "4k" = 4096; an optional trailing "b"/"iB" is ignored), times accept
 * "ms", "s" (the default unit), "m". Booleans are on/off, true/false,
 * yes/no, 1/0.
 *
 * Block keys (virtio-blk):
 *   rw=read|write|randread|randwrite|randrw|rw|fill  pattern (default randrw);
 *                         "rw" is sequential mixed, "fill" writes the
 *                         whole range once, in order, with generation 1
 *                         (see virtio_blk_expected_sector())
 *   bs=SIZE              block size, a multiple of 512 (default 4k)
 *   iodepth=N            requests in flight per queue (default 16, or
 *                        what a smaller ring holds); more than the ring
 *                        holds is an error
 *   number_ios=N, ops=N  operations to complete (default 0 = until runtime;
 *                        when both are 0 the run does 10000 operations)
 *   runtime=TIME         stop after this long (default 0 = no limit)
 *   verify=on|off        check every read against what was written (on);
 *                        a run that wrote nothing (rw=read) has nothing
 *                        to check against and fails, unless verify=off
 *   verify_only=on|off   fio's verify_only: no workload; read the range in
 *                        order and check that every sector holds what an
 *                        earlier rw=fill with the same seed, bs and size
 *                        wrote (off)
 *   rwmixread=PCT        reads in % of a mixed workload (default 50)
 *   seed=N               seed of the offset generator (default 1)
 *   size=SIZE            bytes of the disk exercised from offset 0
 *                        (default the whole disk, capped by the driver's
 *                        buffer area when verifying); beyond the disk, or
 *                        beyond what the buffer area can verify, is an error
 *   numjobs=N, queues=N  queues used (default 0 = all; more than the
 *                        device has is an error)
 *   discard=PCT          share of operations that are DISCARDs (default 0)
 *   write_zeroes=PCT     share of operations that are WRITE_ZEROES (0)
 *   flush=on|off         FLUSH at the end when offered (default on)
 *   wce=0|1              before the run, write the device's write cache
 *                        mode (config writeback; needs CONFIG_WCE):
 *                        0 write-through, 1 write-back (default: leave it)
 *
 * Net keys (virtio-net):
 *   count=N              packets sent per queue pair (default 1000)
 *   size=N[+N...]        frame sizes without the virtio-net header, used in
 *                        turn (default 64+512+1518; each in [46, 9018]:
 *                        jumbo frames need mergeable RX buffers or big
 *                        enough ones, and at most the device's MTU + 18)
 *   window=N             packets outstanding per queue pair (default 64)
 *   queues=N             queue pairs used (default 0 = all)
 *   rxbuf=SIZE           RX buffer size with mergeable RX buffers
 *                        (default 2048; at least 64)
 *   drain=TIME           how long to wait for the last packets (1s)
 *   runtime=TIME         stop sending after this long (default no limit)
 *   seed=N               pattern seed (default 1)
 *   verify=full|sample|seq  what is checked of each packet that comes back
 *                        (default full): full fills and checks every
 *                        payload byte; seq writes and checks only the
 *                        32-byte pattern header (queue, sequence number,
 *                        run, length: misrouted, lost, duplicated, stale
 *                        and resized packets are still caught) and leaves
 *                        the payload untouched, like a forwarder; sample
 *                        is seq plus 8 words spread over the frame (a
 *                        shifted, torn or foreign payload is caught).
 *                        on = full, off = seq (the header is always checked:
 *                        it is how a packet is counted)
 *   poll=on|off|adaptive how the driver waits for used buffers (default
 *                        off): off sleeps in poll() on the call eventfds
 *                        whenever nothing moved; on busy-polls the used
 *                        rings with the device's calls suppressed (no
 *                        system call unless the device asks for a kick);
 *                        adaptive busy-polls up to 50 us, then sleeps
 *   burst=N              packets sent, and used entries taken, per queue
 *                        and loop iteration (default 32; 1..4096): one
 *                        used index read and at most one kick per burst
 *   lat-sample=N         one packet in N carries a send time and gives a
 *                        latency sample (default 1 with verify=full, 64
 *                        otherwise); every packet is still counted
 *
 * Errors name the key and the value: "net0: size: '12' is outside [46, 9018] ...".
 */
#ifndef GUEST_WORKLOAD_H
#define GUEST_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* Error domain of the guest drivers and workloads. */
#define GUEST_ERROR (guest_error_quark())
GQuark guest_error_quark(void);

typedef enum GuestErrorCode {
    GUEST_ERROR_OPTION,         /* a bad workload option or argument */
    GUEST_ERROR_CONFIG,         /* unusable device config or buffer area */
    GUEST_ERROR_UNSUPPORTED,    /* the device did not offer the feature */
    GUEST_ERROR_NO_SPACE,       /* the buffer area is too small */
    GUEST_ERROR_DEVICE,         /* the device misbehaved or stalled */
    GUEST_ERROR_IO,             /* a request failed (status not OK) */
    GUEST_ERROR_VERIFY,         /* data read or received was wrong, or lost */
    GUEST_ERROR_BROKEN,         /* the driver gave up after a device failure */
} GuestErrorCode;

typedef enum BlkRwMode {
    BLK_RW_READ,
    BLK_RW_WRITE,
    BLK_RW_RANDREAD,
    BLK_RW_RANDWRITE,
    BLK_RW_RANDRW,
    BLK_RW_RW,                  /* sequential, mixed by rwmixread */
    BLK_RW_FILL,                /* whole range, in order, generation 1 */
} BlkRwMode;

#define BLK_DEFAULT_IODEPTH     16

/*
 * How a blk run waits for completions (poll=, the same names as the net
 * workload's): off sleeps in poll() on the call eventfds whenever nothing
 * completed; on busy-polls the used rings with the device's calls
 * suppressed (no syscall per completion, one core spinning); adaptive
 * busy-polls up to BLK_POLL_ADAPTIVE_MAX_NS, longer after a spin that
 * found a completion and shorter after one that did not, then sleeps.
 */
typedef enum BlkPollMode {
    BLK_POLL_OFF,
    BLK_POLL_ON,
    BLK_POLL_ADAPTIVE,
} BlkPollMode;

#define BLK_POLL_ADAPTIVE_MAX_NS    50000u

typedef struct BlkWorkload {
    BlkRwMode rw;
    uint32_t bs;                /* bytes, multiple of 512 */
    unsigned iodepth;           /* per queue */
    uint64_t ops;               /* 0: bounded by runtime only */
    uint64_t runtime_ms;        /* 0: no time limit */
    bool verify;
    unsigned rwmixread;         /* percent */
    uint32_t seed;
    uint64_t size;              /* bytes; 0: whole disk */
    unsigned queues;            /* 0: all */
    unsigned discard_pct;
    unsigned write_zeroes_pct;
    bool flush;
    bool verify_only;           /* check an image rw=fill wrote; no workload */
    int wce;                    /* config writeback to write; -1: none */
    BlkPollMode poll;
} BlkWorkload;

#define NET_WORKLOAD_MAX_SIZES  16
#define NET_FRAME_MIN           46      /* ethernet header + pattern header */
/* A jumbo frame: MTU 9000 + ethernet header + one VLAN tag (no FCS). */
#define NET_FRAME_MAX           9018
/* The classic largest frame: MTU 1500 + 14 + a VLAN tag. */
#define NET_FRAME_CLASSIC       1518
#define NET_DEFAULT_BURST       32
#define NET_MAX_BURST           4096
/* lat-sample default without verify=full: a send time every 64 packets. */
#define NET_DEFAULT_LAT_SAMPLE  64

/* What the net workload checks of a packet that comes back. */
typedef enum NetVerifyMode {
    NET_VERIFY_FULL,            /* every payload byte filled and checked */
    NET_VERIFY_SAMPLE,          /* the header and 8 words spread over the frame */
    NET_VERIFY_SEQ,             /* the header only: queue, sequence, run, length */
} NetVerifyMode;

/* How the net workload waits for the device. */
typedef enum NetPollMode {
    NET_POLL_OFF,               /* sleep on the call eventfds when idle */
    NET_POLL_ON,                /* busy-poll, device calls suppressed */
    NET_POLL_ADAPTIVE,          /* busy-poll a while, then sleep */
} NetPollMode;

typedef struct NetWorkload {
    uint64_t count;             /* per queue pair */
    unsigned nsizes;
    uint32_t sizes[NET_WORKLOAD_MAX_SIZES];
    unsigned window;
    bool window_set;            /* given by the user: never shrunk quietly */
    unsigned queues;            /* queue pairs; 0: all */
    uint32_t rxbuf;
    uint64_t drain_ms;
    uint64_t runtime_ms;
    uint32_t seed;
    /*
     * Packets that may go missing without failing the run: a back-end
     * that crashes takes the packets it holds with it (at most a window
     * per queue pair). Every packet that does arrive is still verified.
     */
    uint64_t max_lost;
    NetVerifyMode verify;
    NetPollMode poll;
    unsigned burst;             /* per queue and loop iteration */
    unsigned lat_sample;        /* 1 in N timed; 0: the mode's default */
} NetWorkload;

void blk_workload_init(BlkWorkload *wl);
void net_workload_init(NetWorkload *wl);

/*
 * Splits "DEVID:OPTIONS" (OPTIONS may be empty). *devid and *opts are
 * newly allocated.
 */
bool workload_split(const char *arg, char **devid, char **opts, GError **errp);
/*
 * Parses "key=value,..." over the defaults already in *wl (so several
 * strings can be layered). name prefixes error messages (the device id).
 * On error *wl may be partly updated.
 */
bool blk_workload_parse(BlkWorkload *wl, const char *name, const char *opts,
                        GError **errp);
bool net_workload_parse(NetWorkload *wl, const char *name, const char *opts,
                        GError **errp);
/* The rw= name of a mode ("randrw"). */
const char *blk_workload_rw_name(BlkRwMode rw);
/* The verify= and poll= names of the net modes ("full", "adaptive"). */
const char *net_workload_verify_name(NetVerifyMode v);
const char *net_workload_poll_name(NetPollMode p);
/* lat-sample as the run uses it: the value given, or the mode's default. */
unsigned net_workload_lat_sample(const NetWorkload *wl);
/* The poll= name of a mode ("adaptive"). */
const char *blk_workload_poll_name(BlkPollMode p);
/* The workload as "key=value,..." (parses back to the same values). */
char *blk_workload_format(const BlkWorkload *wl);
char *net_workload_format(const NetWorkload *wl);

/* Called about once per second of a run, from the running thread. */
typedef void (*WorkloadProgressFn)(void *opaque, const char *name,
                                   uint64_t ops, double ops_per_sec);

/* How the caller steers a run. A zeroed struct gets the defaults. */
typedef struct WorkloadCtl {
    const char *name;           /* device id for errors and progress; "dev" */
    bool *stop;                 /* read atomically; true ends the run early */
    uint64_t deadline_ns;       /* wl_now_ns() clock; 0: none */
    WorkloadProgressFn progress;
    void *opaque;
    unsigned poll_ms;           /* wait on call fds at most this long (50) */
    /*
     * With requests in flight and none completing for this long, the run
     * fails (the device is gone or stuck). 0: 30000 ms.
     */
    unsigned stall_ms;
    /*
     * optional, both or neither: the device asks for a reset (NEEDS_RESET,
     * polled from the run loop), and the reset itself: the device is reset
     * and booted again with fresh rings (the same ring memory), after which
     * the driver submits again every request it still has outstanding.
     * reset_device runs the boot where the device model lives (the VMM's
     * main loop) and waits for it; false with errp set ends the run.
     */
    bool (*needs_reset)(void *opaque);
    bool (*reset_device)(void *opaque, GError **errp);
    /*
     * Live migration, optional (pause and park both, or neither). While
     * *pause (read atomically) is true the driver submits nothing new,
     * lets what is in flight complete (net: TX; posted RX buffers stay
     * with the device), writes what it needs to continue into its run
     * record in guest RAM and calls park(), which blocks until the pause
     * is over: true to go on, false when the run has moved to another
     * VMM. The driver then ends at once and returns true with the
     * result's migrated set. Time parked counts neither as a stall nor
     * in the rates, nor against runtime=. in_flight, when set, gets the
     * requests (net: TX buffers) in flight, stored atomically, for a
     * pause that times out to say what it waited for.
     */
    bool *pause;
    bool (*park)(void *opaque);
    unsigned *in_flight;
} WorkloadCtl;

#endif
