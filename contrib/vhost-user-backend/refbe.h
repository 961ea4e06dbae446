/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user-backend, the reference back-end ("refbe" in its names, so that
 * "vub" is only ever vhost-user-base.c's device): its internal interfaces.
 *
 * One process serves one front-end connection at a time, single-threaded:
 * an epoll loop over the vhost-user socket and the rings' kick eventfds
 * (postcopy adds a thread that watches the socket for a hang-up, and
 * --postcopy-touch=listen one that reads guest pages).
 * Everything the front-end sends and everything in guest memory is
 * untrusted: the socket layer (server.c) checks messages, the ring layer
 * (vring.c) checks descriptors; the device models (net.c, blk.c) only see
 * iovecs that are known to lie inside mapped guest memory.
 */
#ifndef CONTRIB_VHOST_USER_BACKEND_REFBE_H
#define CONTRIB_VHOST_USER_BACKEND_REFBE_H

#include <glib.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/vhost-user-proto.h"
#include "hw/virtio/virtio-ring-defs.h"

/* ---- Options -------------------------------------------------------- */

typedef enum RefBeDevType {
    REFBE_DEV_NET,
    REFBE_DEV_BLK,
} RefBeDevType;

/* Where --crash-at kills the process (tests of inflight recovery). */
typedef enum RefBeCrashStage {
    REFBE_CRASH_NONE,
    REFBE_CRASH_TAKEN,            /* request taken and recorded, not run */
    REFBE_CRASH_EXECUTED,         /* request run, not completed */
    REFBE_CRASH_PUBLISHED,        /* used->idx moved, inflight flags not cleared */
} RefBeCrashStage;

/* Where --postcopy-touch makes us fault on purpose (tests of postcopy). */
typedef enum RefBePostcopyTouch {
    REFBE_PC_TOUCH_NONE,
    REFBE_PC_TOUCH_LISTEN,      /* every page, once the listening table is acked */
    REFBE_PC_TOUCH_REPLY,       /* a ring's pages, before answering a ring request */
    REFBE_PC_TOUCH_END,         /* every page, on POSTCOPY_END before answering */
} RefBePostcopyTouch;

typedef struct RefBeScribble RefBeScribble;

typedef struct RefBeOptions {
    char *socket_path;
    RefBeDevType type;
    unsigned queues;            /* queue pairs (net) or request queues (blk) */
    char *blk_file;             /* NULL: RAM disk */
    uint64_t blk_size;          /* bytes; 0: the file's size */
    bool client;                /* connect instead of listen */
    bool trace;
    bool inflight;              /* blk: offer INFLIGHT_SHMFD */
    unsigned batch;             /* blk: requests completed per round */
    RefBeCrashStage crash_stage;  /* --crash-at */
    uint64_t crash_request;     /* ... of the Nth request taken (1-based) */
    char *state_dump;           /* --state-dump: the device state, as text, at exit */
    bool no_postcopy;           /* --no-postcopy: PAGEFAULT not offered */
    bool mem_slots;             /* --mem-slots: CONFIGURE_MEM_SLOTS offered */
    RefBePostcopyTouch postcopy_touch;
    RefBeScribble *scribble;    /* --x-scribble (scribble.c), or NULL */
} RefBeOptions;

/* net: pairs of rings, and the ring index is 8 bits on the wire. */
#define REFBE_NET_MAX_QUEUES      128
#define REFBE_BLK_MAX_QUEUES      64
#define REFBE_BLK_MAX_BATCH       32

/* ---- Split virtqueue ------------------------------------------------ */

#define REFBE_VRING_MAX_SIZE      32768
/*
 * Most iovecs one descriptor chain may produce. Longer chains are legal
 * in virtio but no driver of ours builds them; refusing keeps every
 * element a fixed-size allocation.
 */
#define REFBE_MAX_IOV             1024

typedef struct RefBeVringAvail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];            /* num entries, then used_event */
} RefBeVringAvail;

typedef struct RefBeVringUsed {
    uint16_t flags;
    uint16_t idx;
    VringUsedElem ring[];    /* num entries, then avail_event */
} RefBeVringUsed;


/* Pops a packed ring remembers, so that unpop can give that many back. */
#define REFBE_PK_HIST             64

typedef struct RefBeVring {
    struct RefBeDev *dev;         /* the owner (the log lives there) */
    unsigned index;
    uint16_t num;               /* 0: SET_VRING_NUM not received */
    /* SET_VRING_ADDR, in the front-end's address space */
    bool addr_set;
    uint64_t desc_uva;
    uint64_t avail_uva;
    uint64_t used_uva;
    /* The same, translated; NULL until mapped */
    VringDesc *desc;
    RefBeVringAvail *avail;
    RefBeVringUsed *used;
    uint16_t last_avail_idx;    /* next avail entry we will take */
    uint16_t used_idx;          /* our copy of used->idx */
    uint16_t signalled_used;    /* used_idx at the last call (EVENT_IDX) */
    bool signalled_used_valid;
    bool need_notify;           /* something was pushed since the last call */
    int kick_fd;
    int call_fd;
    int err_fd;
    bool started;               /* SET_VRING_KICK seen, not stopped since */
    bool enabled;               /* SET_VRING_ENABLE 1 (or no PROTOCOL_FEATURES) */
    bool broken;                /* the guest broke the ring; logged once */
    bool pending;               /* budget used up with work left: run again */
    /* INFLIGHT_SHMFD (inflight.c); NULL: requests are not tracked */
    struct RefBeInflightQueue *inflight;
    uint64_t inflight_counter;  /* next DescStateSplit.counter */
    uint16_t *resubmit;         /* heads to run again, in counter order */
    unsigned resubmit_num;
    unsigned resubmit_pos;      /* next one to run */
    /* Chains completed since the process started: device state, kept by reset. */
    uint64_t completed;
    /* SET_VRING_ADDR's VHOST_VRING_F_LOG: used ring writes are logged */
    bool log_used;
    uint64_t log_guest_addr;    /* GPA of the used ring */
    /*
     * Packed rings (VIRTIO_F_RING_PACKED acked; vring-packed.c). Positions
     * are a slot in bits 0-14 and its lap's wrap counter in bit 15, as
     * SET_VRING_BASE carries them. desc then points at VringPackedDesc,
     * avail/used at the driver/device event areas. A popped element's
     * head is the slot of its first descriptor; pk_id/pk_slots (num
     * each) remember the buffer id and slot count found there.
     */
    uint16_t pk_avail;          /* next slot we take */
    uint16_t pk_used;           /* next slot we write a used descriptor to */
    uint16_t pk_fill;           /* where the batch being filled goes next */
    uint16_t pk_signalled;      /* pk_used at the last call */
    uint16_t pk_first_slot;     /* the batch's first used descriptor ... */
    uint16_t pk_first_flags;    /* ... whose flags are written at the flush */
    uint16_t *pk_id;
    uint16_t *pk_slots;
    uint16_t pk_hist[REFBE_PK_HIST];    /* pk_avail before each pop, for unpop */
    unsigned pk_hist_top;
} RefBeVring;

/*
 * Chains one ring handles before the loop looks at the socket and the
 * other rings again, so a busy guest cannot starve them.
 */
#define REFBE_RING_BUDGET         256

/* One popped descriptor chain: out (driver-readable) iovecs, then in. */
typedef struct RefBeElem {
    uint16_t head;
    unsigned out_num;
    unsigned in_num;
    size_t out_len;
    size_t in_len;
    struct iovec iov[REFBE_MAX_IOV];
} RefBeElem;

/* ---- Device --------------------------------------------------------- */

typedef struct RefBeRegion {
    uint64_t gpa;
    uint64_t size;
    uint64_t uva;
    uint8_t *host;              /* where gpa is mapped here */
    void *map_base;             /* what mmap returned */
    size_t map_len;
    bool uffd_registered;       /* on the postcopy ufd (postcopy.c) */
} RefBeRegion;

typedef struct RefBeBlk RefBeBlk;
typedef struct RefBeNet RefBeNet;

/* Postcopy (postcopy.c): the ufd is per connection, the counters are not. */
typedef struct RefBePostcopy {
    int ufd;                    /* ours; the front-end has a copy; -1: none */
    bool listening;             /* POSTCOPY_LISTEN seen, END not yet */
    uint32_t ack_request;       /* a listening table was answered: await its ack */
    GThread *touch_thread;      /* --postcopy-touch=listen's reader, or NULL */
    /*
     * Watches the socket for a hang-up while the ufd is open: a thread of
     * ours blocked on a page would otherwise wait forever for a front-end
     * that is gone. lock: dev->regions' mappings and registrations, while
     * the guard exists (main thread writes, guard reads).
     */
    GThread *guard_thread;
    int guard_stop;             /* eventfd that ends the guard */
    GMutex lock;
    bool touch_stop;            /* atomic: asks it to stop */
    unsigned advised;           /* POSTCOPY_ADVISE answered, since start */
    uint64_t touched;           /* atomic: pages read on purpose */
    uint64_t faults;            /* atomic: of those, pages that were missing */
    uint64_t blocked_us;        /* atomic: time those reads took */
} RefBePostcopy;

typedef struct RefBeDev {
    const RefBeOptions *opts;
    char *name;                 /* "net:/path/to.sock", prefixes every message */
    int sock;                   /* the connection, -1 between connections */
    int epfd;
    uint64_t features;          /* acked by SET_FEATURES */
    uint64_t protocol_features; /* acked by SET_PROTOCOL_FEATURES */
    uint8_t status;             /* SET_STATUS */
    uint16_t net_mtu;           /* NET_SET_MTU; 0: not told */
    unsigned nregions;
    RefBeRegion regions[VHOST_MEMORY_BASELINE_NREGIONS];
    unsigned nvrings;
    RefBeVring *vrings;
    /* The inflight area (GET/SET_INFLIGHT_FD), for this connection only */
    void *inflight_map;
    size_t inflight_map_len;
    uint8_t *inflight_base;     /* queue 0's QueueRegionSplit */
    uint16_t inflight_queues;
    uint16_t inflight_queue_size;
    RefBeBlk *blk;                /* the disk outlives connections */
    RefBeNet *net;
    /* Signal mask while waiting: SIGINT/SIGTERM are blocked otherwise. */
    sigset_t waitmask;
    /* The dirty log of SET_LOG_BASE (dirty.c), for this connection only */
    void *dirty_map;
    size_t dirty_map_len;
    uint64_t *dirty_log;
    uint64_t dirty_words;
    uint64_t requests_taken;    /* for --crash-at */
    bool crash_armed;
    /* DEVICE_STATE (state.c): a load's fd until CHECK, and the result to report */
    int state_fd;
    int state_result;           /* 0 ok, 1 failed, -1 a load is pending */
    RefBePostcopy pc;
} RefBeDev;

static inline bool refbe_has_feature(const RefBeDev *dev, unsigned bit)
{
    return dev->features & (1ull << bit);
}

/* ---- server.c ------------------------------------------------------- */

/* The device (no connection yet); NULL with errp set on a bad disk. */
RefBeDev *refbe_dev_new(const RefBeOptions *opts, GError **errp);
void refbe_dev_free(RefBeDev *dev);
/*
 * Serves the connected socket fd (taken over) until the front-end leaves,
 * sends something invalid, or *quit becomes true. All per-connection
 * state (mappings, fds, ring state) is released before returning.
 */
void refbe_dev_serve(RefBeDev *dev, int fd, volatile int *quit);

/* ---- mem.c -------------------------------------------------------- */

/*
 * SET_MEM_TABLE (fds: one per region, not taken) and ADD_MEM_REG (fd not
 * taken): while postcopy listens, *reply is our answer and the
 * front-end's ack is due after it (dev->pc.ack_request).
 */
bool refbe_mem_set_table(RefBeDev *dev, const VhostUserMsg *msg, int *fds,
                         VhostUserMsg *reply, bool *has_reply, GError **errp);
bool refbe_mem_add(RefBeDev *dev, const VhostUserMsg *msg, int fd, VhostUserMsg *reply,
                   bool *has_reply, GError **errp);
bool refbe_mem_rem(RefBeDev *dev, const VhostUserMsg *msg, GError **errp);
/* Unmaps every region (connection gone). */
void refbe_mem_release(RefBeDev *dev);

/* ---- vring.c -------------------------------------------------------- */

/* Host address of [uva, uva + len) when it lies in one region, else NULL. */
void *refbe_uva_to_host(RefBeDev *dev, uint64_t uva, uint64_t len);
/* Host address of [gpa, gpa + len) when it lies in one region, else NULL. */
void *refbe_gpa_to_host(RefBeDev *dev, uint64_t gpa, uint64_t len);

void refbe_vring_init(RefBeVring *vq, unsigned index);
/* Closes the ring's fds and forgets its state (not the eventfds' epoll). */
void refbe_vring_reset(RefBeVring *vq);
/* Translates the ring addresses against the current memory table. */
bool refbe_vring_map(RefBeDev *dev, RefBeVring *vq, GError **errp);
/* Started, enabled, mapped and not broken. */
bool refbe_vring_ready(const RefBeVring *vq);
/*
 * Marks the ring broken because of something the guest did, logs it once
 * and signals the error eventfd. The ring is left alone until it is set
 * up again (SET_VRING_BASE / SET_VRING_ADDR / SET_VRING_KICK).
 */
void refbe_vring_fault(RefBeDev *dev, RefBeVring *vq, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* 1: *elem filled; 0: ring empty; -1: ring broken (already logged). */
int refbe_vring_pop(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem);
/*
 * Fills *elem from the chain at head without touching the avail ring
 * (resubmission of a request taken before a crash). 1 or -1 as above.
 */
int refbe_vring_read_chain(RefBeDev *dev, RefBeVring *vq, uint16_t head, RefBeElem *elem);
/* Gives back the last n popped chains (not yet pushed). */
void refbe_vring_unpop(RefBeVring *vq, unsigned n);
/* Writes a used entry `offset` slots ahead; visible after refbe_vring_flush. */
void refbe_vring_fill(RefBeVring *vq, uint16_t head, uint32_t len, unsigned offset);
void refbe_vring_flush(RefBeVring *vq, unsigned count);
void refbe_vring_push(RefBeVring *vq, uint16_t head, uint32_t len);
/* Calls the driver if the ring's notification rules ask for it. */
void refbe_vring_notify(RefBeDev *dev, RefBeVring *vq);
/*
 * Before sleeping on an empty ring: with EVENT_IDX, asks for a kick at the
 * next buffer. True when buffers arrived meanwhile (process again).
 */
bool refbe_vring_rearm(RefBeDev *dev, RefBeVring *vq);

size_t refbe_iov_size(const struct iovec *iov, unsigned n);

/* Packed rings (vring-packed.c); the calls above dispatch here. */
static inline bool refbe_vring_packed(const RefBeVring *vq)
{
    return vq->dev && (vq->dev->features & (1ull << VIRTIO_F_RING_PACKED));
}
bool refbe_vring_packed_map(RefBeDev *dev, RefBeVring *vq, GError **errp);
int refbe_vring_packed_pop(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem);
void refbe_vring_packed_unpop(RefBeVring *vq, unsigned n);
void refbe_vring_packed_fill(RefBeVring *vq, uint16_t head, uint32_t len, unsigned offset);
void refbe_vring_packed_flush(RefBeVring *vq, unsigned count);
/* Whether to call the driver, by its event suppression area. */
bool refbe_vring_packed_want_call(RefBeDev *dev, RefBeVring *vq);
/* The guest buffer [gpa, gpa + len) as host iovecs appended at iov[*n]. */
bool refbe_map_buffer(RefBeDev *dev, uint64_t gpa, uint32_t len,
                      struct iovec *iov, unsigned *n, const char **why);
/* Copies out of / into an iovec starting at offset; returns bytes copied. */
size_t refbe_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset,
                      void *buf, size_t len);
size_t refbe_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                        const void *buf, size_t len);
/* dst = the [offset, offset + len) part of src; returns the iovec count. */
unsigned refbe_iov_slice(const struct iovec *src, unsigned n, size_t offset,
                       size_t len, struct iovec *dst, unsigned max);

/* ---- dirty.c ------------------------------------------------------- */

/* SET_LOG_BASE: maps the log (fd not taken), replacing the previous one. */
bool refbe_dirty_set_base(RefBeDev *dev, const VhostUserLog *l, int fd, GError **errp);
void refbe_dirty_release(RefBeDev *dev);
/* We wrote [offset, offset + len) of vq's used ring: logged when its flag is set. */
void refbe_dirty_used(RefBeDev *dev, const RefBeVring *vq, uint64_t offset, uint64_t len);
/* We complete the chain at head: its device-writable buffers, with LOG_ALL. */
void refbe_dirty_chain(RefBeDev *dev, const RefBeVring *vq, uint16_t head);

/* ---- inflight.c ----------------------------------------------------- */

/*
 * The split-ring inflight area of the vhost-user spec ("Inflight I/O
 * tracking"): per queue a QueueRegionSplit header and one DescStateSplit
 * per descriptor, in shared memory that outlives the back-end process.
 */
typedef struct RefBeInflightDesc {
    uint8_t inflight;           /* head taken, not yet in the used ring */
    uint8_t padding[5];
    uint16_t next;              /* the last batch of used heads, as a list */
    uint64_t counter;           /* order in which heads were taken */
} RefBeInflightDesc;

typedef struct RefBeInflightQueue {
    uint64_t features;
    uint16_t version;           /* 0: not set up yet */
    uint16_t desc_num;
    uint16_t last_batch_head;
    uint16_t used_idx;          /* used->idx once the last batch is recorded */
    RefBeInflightDesc desc[];
} RefBeInflightQueue;

_Static_assert(sizeof(RefBeInflightDesc) == 16, "DescStateSplit is 16 bytes");
_Static_assert(sizeof(RefBeInflightQueue) == 16, "QueueRegionSplit header is 16 bytes");

/* GET_INFLIGHT_FD: a fresh zeroed area; *fd is ours to send and close. */
bool refbe_inflight_get_fd(RefBeDev *dev, const VhostUserInflight *req,
                         VhostUserInflight *reply, int *fd, GError **errp);
/* SET_INFLIGHT_FD: maps the area the front-end hands back (fd not taken). */
bool refbe_inflight_set_fd(RefBeDev *dev, const VhostUserInflight *req, int fd,
                         GError **errp);
/* Unmaps the area and detaches every ring from it. */
void refbe_inflight_release(RefBeDev *dev);
/*
 * At SET_VRING_KICK, with vq->used_idx read from guest memory: attaches
 * the ring to its part of the area, repairs a half-recorded last batch,
 * queues the heads still in flight for resubmission and sets the avail
 * position after them. False (errp set) on a front-end error; guest or
 * area inconsistencies break only the ring.
 */
bool refbe_inflight_ring_start(RefBeDev *dev, RefBeVring *vq, GError **errp);
/* refbe_vring_pop, but resubmitted heads first and every head recorded. */
int refbe_inflight_pop(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem);
/*
 * refbe_vring_fill and refbe_vring_flush, recorded in the spec's order: the
 * filled heads form the last batch, which a flush publishes at once.
 */
void refbe_inflight_fill(RefBeVring *vq, uint16_t head, uint32_t len, unsigned offset);
void refbe_inflight_flush(RefBeDev *dev, RefBeVring *vq, unsigned count);
/* --crash-at: SIGKILL here when this is the stage asked for. */
void refbe_crash_point(RefBeDev *dev, RefBeCrashStage stage);

/* ---- net.c ---------------------------------------------------------- */

uint64_t refbe_net_features(const RefBeOptions *opts);
RefBeNet *refbe_net_new(void);
void refbe_net_free(RefBeNet *net);
/* Something happened on ring vq (kick, enable, start): move packets. */
void refbe_net_kick(RefBeDev *dev, RefBeVring *vq);
/* NET_SET_MTU: frames over mtu + 18 are dropped from then on. */
bool refbe_net_set_mtu(RefBeDev *dev, uint64_t mtu, GError **errp);

/* ---- blk.c ---------------------------------------------------------- */

uint64_t refbe_blk_features(const RefBeOptions *opts);
RefBeBlk *refbe_blk_new(const RefBeOptions *opts, GError **errp);
void refbe_blk_free(RefBeBlk *blk);
void refbe_blk_kick(RefBeDev *dev, RefBeVring *vq);
/* Runs what is left of the ring's resubmission list, enabled or not. */
void refbe_blk_finish_resubmits(RefBeDev *dev, RefBeVring *vq);
/* GET_CONFIG: config bytes [offset, offset + size), zero past the end. */
void refbe_blk_get_config(RefBeDev *dev, uint32_t offset, uint32_t size,
                        uint8_t *buf);
/* SET_CONFIG: only the writeback byte (CONFIG_WCE) is writable. */
bool refbe_blk_set_config(RefBeDev *dev, const VhostUserConfig *c, GError **errp);

/* Device state of the write cache (state.c): mode and writes synced. */
void refbe_blk_get_state(const RefBeBlk *blk, bool *write_through, uint64_t *synced);
void refbe_blk_set_state(RefBeBlk *blk, bool write_through, uint64_t synced);

/* ---- state.c -------------------------------------------------------- */

/*
 * SET_DEVICE_STATE_FD: takes fds[0]; *reply is the u64 to answer (an
 * error code for a transfer we refuse, never an fd of ours).
 */
bool refbe_state_set_fd(RefBeDev *dev, const VhostUserTransferDeviceState *t, int *fds,
                      size_t nfds, uint64_t *reply, GError **errp);
/* CHECK_DEVICE_STATE: 0 when the last transfer succeeded (a load is read now). */
uint64_t refbe_state_check(RefBeDev *dev);
/* Forgets a transfer (new connection, or done). */
void refbe_state_reset(RefBeDev *dev);
/* --state-dump: writes the state as text lines ("ring 0 completed N"). */
bool refbe_state_dump(RefBeDev *dev, const char *path, GError **errp);

/* ---- postcopy.c ----------------------------------------------------- */

/* POSTCOPY_ADVISE: a fresh userfaultfd; *reply_fd (a copy) is to be sent and closed. */
bool refbe_postcopy_advise(RefBeDev *dev, int *reply_fd, GError **errp);
bool refbe_postcopy_listen(RefBeDev *dev, GError **errp);
bool refbe_postcopy_listening(const RefBeDev *dev);
/* POSTCOPY_END: unregisters, closes the ufd; the u64 to answer. */
uint64_t refbe_postcopy_end(RefBeDev *dev);
/* Connection gone: as END, and a touch blocked on a page is woken. */
void refbe_postcopy_release(RefBeDev *dev);
/* Before the current mappings are replaced: the touch thread is done with them. */
void refbe_postcopy_before_remap(RefBeDev *dev);
/* Held while dev->regions changes (the hang-up guard reads them). */
void refbe_postcopy_lock(RefBeDev *dev);
void refbe_postcopy_unlock(RefBeDev *dev);
/* While listening: registers fresh mappings (not yet in dev) for MISSING faults. */
bool refbe_postcopy_register(RefBeDev *dev, RefBeRegion *regions, unsigned n,
                             GError **errp);
/* The listening SET_MEM_TABLE reply: msg's table with our mapping addresses. */
void refbe_postcopy_mem_reply(RefBeDev *dev, const VhostUserMsg *msg, VhostUserMsg *reply);
/* The front-end acknowledged the listening table: --postcopy-touch=listen starts. */
void refbe_postcopy_table_acked(RefBeDev *dev);
/* --postcopy-touch=reply: reads vq's pages (and a few more) before req's reply. */
void refbe_postcopy_touch_ring(RefBeDev *dev, RefBeVring *vq, const char *req);
/* At exit: pages touched, faults taken, time blocked. */
void refbe_postcopy_report(RefBeDev *dev);

/* ---- main.c --------------------------------------------------------- */

/* Log line to stderr: "vhost-user-backend: <msg>". */
void refbe_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* ---- --x-scribble (scribble.c): writes over the guest driver's state ---- */

/* NULL when arg is not random[,seed=N][,every=N] or field=NAME. */
RefBeScribble *refbe_scribble_parse(const char *arg);
void refbe_scribble_free(RefBeScribble *s);
/* The field names, '|'-separated, for the usage text. */
const char *refbe_scribble_fields(void);
/* At DRIVER_OK and after each kick: one round of writes (s may be NULL). */
void refbe_scribble(RefBeDev *dev, RefBeScribble *s);
/*
 * field=used.id / used.len: the value goes into each used entry as it is
 * published, so the driver is sure to read it (a write over the whole
 * ring at a kick races with our own completions and may be overwritten).
 */
void refbe_scribble_used_elem(RefBeScribble *s, uint32_t *id, uint32_t *len);

#endif
