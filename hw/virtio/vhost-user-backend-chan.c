/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The back-end channel (BACKEND_REQ): the back-end's requests to us.
 *
 * Why the channel is polled from inside the request path
 * ------------------------------------------------------
 * A back-end may send a request on this channel and wait for our answer
 * before it replies to the request we are waiting on: an IOTLB miss while
 * it processes GET_VRING_BASE, a CONFIG_CHANGE_MSG with NEED_REPLY while
 * it processes GET_STATUS. If the request path only waited on the main
 * socket, both sides would wait forever. QEMU 6.0 ran a nested main loop
 * while waiting for a reply and reverted it in 2023: servicing the
 * back-end channel from that loop could send a new front-end request in
 * the middle of another one, and the replies got mis-paired.
 *
 * So the channel registers its fd with the connection as a "wait fd"
 * (vhost_user_add_wait_fd): while a request waits for its reply, the
 * connection poll()s the main socket and this channel. A back-end
 * request that arrives is handled in a mode that never sends anything on
 * the main socket: it only answers on this channel (the NEED_REPLY ack,
 * the LOOKUP fd). Work that needs a front-end request (the IOTLB update
 * after a miss, re-reading the config after CONFIG_CHANGE_MSG) and VMM
 * callbacks that may call back into the library are queued and run later
 * from the event loop (vhost_loop_defer), after the current request has
 * returned and released the connection lock. The same handler serves the
 * loop's watch when no request is running, so there is one code path.
 *
 * Neither path ever waits for the back-end: a message is assembled from
 * whatever bytes have arrived (char_io_read_msg_step), in as many calls
 * as it takes, and handled only once whole. Half a message, sent idle or
 * while a request waits, holds nothing up; the message is finished by
 * whichever path sees the rest. Only our answer is written with a bound
 * (the prompt reply timeout), for a back-end that does not read.
 *
 * Locking: u->lock (the request) is taken before chan->lock (one reader of
 * the channel). The loop's watch takes only chan->lock, with trylock: if
 * a request on another thread is servicing the channel, it steps aside.
 * The channel belongs to the connection: a lifecycle hook
 * (vhost_user_add_conn_hook) frees it when the connection resets.
 *
 * Security model: the back-end is untrusted. Every message goes through
 * the table's validator (size, flags, fd count, NOFD bits), then the
 * checks that need connection state here: the gate was negotiated, fds
 * only with BACKEND_SEND_FD, ring index below the device's rings, host
 * notifier page size, alignment and range inside the fd (fstat, so a
 * short file can never SIGBUS us), UUIDs not nil. A violation closes the
 * channel and drops the connection with an error naming the device, the
 * message and the field; every fd that arrived and was not kept is
 * closed, every mapping is unmapped.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chardev/char-io.h"
#include "chardev/char-socket-int.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-backend-chan.h"
#include "hw/virtio/vhost-user-iotlb.h"
#include "hw/virtio/vhost-user-rings.h"
#include "hw/virtio/vhost-user-shared.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

#define HDR_SIZE sizeof(VhostUserHeader)
#define MAX_RINGS (VHOST_USER_VRING_IDX_MASK + 1)

typedef enum BackendWorkKind {
    WORK_IOTLB_UPDATE,
    WORK_IOTLB_ACCESS_FAIL,
    WORK_CONFIG_CHANGE,
} BackendWorkKind;

typedef struct BackendWork {
    BackendWorkKind kind;
    VhostUserIotlb iotlb;
    uint8_t miss_perm;          /* IOTLB update: what the miss asked for */
} BackendWork;

typedef struct HostNotifier {
    void *addr;
    size_t size;
} HostNotifier;

/*
 * Locking: u and loop never change. Everything else is under lock (taken
 * after u->lock, never before it): the request path's wait fd handler and
 * the loop's watch both read the channel, the loop runs the work, and
 * vhost_user_backend_chan_unmap_notifiers comes from the VMM's thread.
 */
struct VhostUserBackendChan {
    VhostUserState *u;
    VhostEventLoop *loop;
    GMutex lock;                /* one reader of fd at a time; all fields below */
    int fd;                     /* our end; -1 once closed */
    /*
     * The message being assembled: the back-end's bytes are taken as they
     * come, from the loop's watch or while a request waits, and a message
     * is handled only once whole. Half a message costs a buffer, never a
     * wait.
     */
    CharIoMsgReader rd;
    void *watch;
    GQueue work;                /* BackendWork *, run from the loop */
    void *defer;
    bool config_change_queued;  /* coalesce config changes */
    HostNotifier notifiers[MAX_RINGS];
    GError *error;
};

/* ---- Host notifiers --------------------------------------------------- */

static void chan_unmap_notifier(VhostUserBackendChan *chan, unsigned ring)
{
    VhostUserState *u = chan->u;
    HostNotifier *hn = &chan->notifiers[ring];

    if (!hn->addr) {
        return;
    }
    /* The VMM must stop using the page before it goes away. */
    if (u->backend_req_ops && u->backend_req_ops->host_notifier) {
        u->backend_req_ops->host_notifier(u->backend_req_opaque, ring, NULL, hn->size);
    }
    munmap(hn->addr, hn->size);
    hn->addr = NULL;
    hn->size = 0;
}

void vhost_user_backend_chan_unmap_notifiers(VhostUserBackendChan *chan,
                                             unsigned first, unsigned n)
{
    if (!chan) {
        return;
    }
    g_mutex_lock(&chan->lock);
    for (unsigned r = first; r < MAX_RINGS && r - first < n; r++) {
        chan_unmap_notifier(chan, r);
    }
    g_mutex_unlock(&chan->lock);
}

/* ---- Deferred work ---------------------------------------------------- */

static void chan_run_work(void *opaque);

/*
 * Work queued while a request waits is bounded: a back-end that keeps
 * sending IOTLB misses the loop has not answered yet is flooding us.
 */
#define CHAN_MAX_QUEUED_WORK 256

/*
 * Caller holds chan->lock. False when the queue is full: the caller
 * treats it as a protocol violation (name, for the message).
 */
static bool chan_queue_work(VhostUserBackendChan *chan, BackendWorkKind kind,
                            const VhostUserIotlb *iotlb, uint8_t miss_perm,
                            const char *name, GError **errp)
{
    BackendWork *w;

    if (kind == WORK_CONFIG_CHANGE && chan->config_change_queued) {
        return true;
    }
    if (g_queue_get_length(&chan->work) >= CHAN_MAX_QUEUED_WORK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "back-end channel: %s: more than %u requests waiting for an "
                    "answer", name, CHAN_MAX_QUEUED_WORK);
        return false;
    }
    if (kind == WORK_CONFIG_CHANGE) {
        chan->config_change_queued = true;
    }
    w = g_new0(BackendWork, 1);
    w->kind = kind;
    if (iotlb) {
        w->iotlb = *iotlb;
    }
    w->miss_perm = miss_perm;
    g_queue_push_tail(&chan->work, w);
    if (!chan->defer) {
        chan->defer = vhost_loop_defer(chan->loop, chan_run_work, chan);
    }
    return true;
}

static void chan_config_changed(VhostUserState *u)
{
    const VhostUserBackendReqOps *ops = u->backend_req_ops;
    uint32_t len = u->backend_config_len;
    g_autofree uint8_t *buf = NULL;
    struct vhost_dev *dev0 = vhost_user_dev0(u);
    GError *err = NULL;

    if (len && dev0 && dev0->vhost_ops->get_config) {
        buf = g_malloc0(len);
        if (!dev0->vhost_ops->get_config(dev0, buf, 0, len, &err)) {
            vhost_user_log(VHOST_USER_LOG_WARNING, NULL,
                           "re-reading the config after CONFIG_CHANGE_MSG: %s",
                           err->message);
            g_clear_error(&err);
            g_clear_pointer(&buf, g_free);
            len = 0;
        }
    } else {
        len = 0;
    }
    if (ops && ops->config_changed) {
        ops->config_changed(u->backend_req_opaque, buf, len);
    }
}

static void chan_do_work(VhostUserState *u, const BackendWork *w)
{
    const VhostUserBackendReqOps *ops = u->backend_req_ops;
    GError *err = NULL;

    switch (w->kind) {
    case WORK_IOTLB_UPDATE: {
        uint64_t iova = w->iotlb.iova, uaddr = 0, size = 0;
        uint8_t perm = 0;

        /*
         * Translated again now, not trusted from when the miss arrived:
         * in between the VMM may have removed that RAM (a dimm unplugged,
         * with its range invalidated), and an update sent after the
         * invalidation would hand the back-end a stale translation.
         */
        if (!ops || !ops->iotlb_translate ||
            !ops->iotlb_translate(u->backend_req_opaque, iova, w->miss_perm, &uaddr,
                                  &size, &perm) || size == 0) {
            vhost_user_log(VHOST_USER_LOG_WARNING, u->name, "IOTLB miss at iova 0x%"
                           PRIx64 ": no translation any more, no update sent", iova);
            break;
        }
        if (!vhost_user_iotlb_update(u, iova, size, uaddr, perm, &err)) {
            /* The request path dropped the connection already. */
            vhost_user_log(VHOST_USER_LOG_WARNING, NULL, "IOTLB update after a miss: %s",
                           err->message);
            g_clear_error(&err);
        }
        break;
    }
    case WORK_IOTLB_ACCESS_FAIL:
        if (ops && ops->iotlb_access_fail) {
            ops->iotlb_access_fail(u->backend_req_opaque, w->iotlb.iova, w->iotlb.size,
                                   w->iotlb.perm);
        }
        break;
    case WORK_CONFIG_CHANGE:
        chan_config_changed(u);
        break;
    }
}

static void chan_run_work(void *opaque)
{
    VhostUserBackendChan *chan = opaque;
    VhostUserState *u = chan->u;

    g_mutex_lock(&chan->lock);
    chan->defer = NULL;
    for (;;) {
        BackendWork *w = g_queue_pop_head(&chan->work);

        if (!w) {
            break;
        }
        if (w->kind == WORK_CONFIG_CHANGE) {
            chan->config_change_queued = false;
        }
        /* Work sends requests: never hold the channel lock across one. */
        g_mutex_unlock(&chan->lock);
        chan_do_work(u, w);
        g_free(w);
        if (u->backend_chan != chan) {
            /* A callback reset the connection; chan is gone. */
            return;
        }
        g_mutex_lock(&chan->lock);
    }
    g_mutex_unlock(&chan->lock);
}

/* ---- Channel I/O ------------------------------------------------------ */

static void chan_close_locked(VhostUserBackendChan *chan)
{
    if (chan->watch) {
        vhost_loop_remove_watch(chan->loop, chan->watch);
        chan->watch = NULL;
    }
    if (chan->fd >= 0) {
        /* Before close: the fd number may be reused at once. */
        vhost_user_remove_wait_fd(chan->u, chan->fd);
        close(chan->fd);
        chan->fd = -1;
    }
}

/*
 * The error of a failed read of one back-end request (what: "header" or
 * the request's name; x->done: bytes of that part). False with errp set,
 * or true when the read is good.
 */
static bool chan_read_result(CharIoStatus st, const CharIoXfer *x, bool in_payload,
                             size_t len, const char *what, GError **errp)
{
    switch (st) {
    case CHAR_IO_OK:
        break;
    case CHAR_IO_REFUSED:
        return false;
    case CHAR_IO_EOF:
        if (!in_payload && x->done == 0 && x->nfds == 0) {
            /* Between messages: the back-end went away (or dropped the channel). */
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                        "back-end channel: closed by the back-end");
            return false;
        }
        g_set_error(errp, VHOST_USER_ERROR,
                    x->done ? VHOST_USER_ERROR_PARTIAL_MESSAGE
                            : VHOST_USER_ERROR_DISCONNECTED,
                    "back-end channel: %s: closed after %zu of %zu bytes",
                    what, x->done, len);
        return false;
    case CHAR_IO_TIMEOUT:
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                    "back-end channel: %s: timed out after %zu of %zu bytes", what,
                    x->done, len);
        return false;
    default:
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "back-end channel: %s: %s", what, g_strerror(x->err));
        return false;
    }
    if (x->ndropped || x->ctrunc) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                    "back-end channel: %s: more than %d fds", what, CHAR_IO_MAX_FDS);
        return false;
    }
    return true;
}

/* ---- Handlers --------------------------------------------------------- */

static bool chan_bad(GError **errp, const char *name, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static bool chan_bad(GError **errp, const char *name, const char *fmt, ...)
{
    g_autofree char *why = NULL;
    va_list ap;

    va_start(ap, fmt);
    why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                "back-end channel: %s: %s", name, why);
    return false;
}

static bool handle_iotlb(VhostUserBackendChan *chan, const VhostUserIotlb *m,
                         uint64_t *status, GError **errp)
{
    VhostUserState *u = chan->u;
    const VhostUserBackendReqOps *ops = u->backend_req_ops;
    VhostUserIotlb upd;
    uint64_t uaddr = 0, size = 0;
    uint8_t perm = 0;

    if (m->perm & ~VHOST_ACCESS_RW) {
        return chan_bad(errp, "IOTLB_MSG", "perm 0x%x has unknown bits", m->perm);
    }
    switch (m->type) {
    case VHOST_IOTLB_MISS:
        memset(&upd, 0, sizeof(upd));
        upd.type = VHOST_IOTLB_UPDATE;
        if (!ops || !ops->iotlb_translate ||
            !ops->iotlb_translate(u->backend_req_opaque, m->iova, m->perm, &uaddr,
                                  &size, &perm) ||
            size == 0) {
            *status = 1;
            return true;
        }
        upd.uaddr = uaddr;
        upd.size = size;
        upd.perm = perm;
        /* The update describes the translation from iova on. */
        upd.iova = m->iova;
        return chan_queue_work(chan, WORK_IOTLB_UPDATE, &upd, m->perm, "IOTLB_MSG", errp);
    case VHOST_IOTLB_ACCESS_FAIL:
        return chan_queue_work(chan, WORK_IOTLB_ACCESS_FAIL, m, 0, "IOTLB_MSG", errp);
    default:
        return chan_bad(errp, "IOTLB_MSG", "type %u, expected MISS (%d) or "
                        "ACCESS_FAIL (%d)", m->type, VHOST_IOTLB_MISS,
                        VHOST_IOTLB_ACCESS_FAIL);
    }
}

static bool handle_host_notifier(VhostUserBackendChan *chan, const VhostUserVringArea *a,
                                 unsigned ring, int *fds, uint64_t *status, GError **errp)
{
    const char *name = "VRING_HOST_NOTIFIER_MSG";
    VhostUserState *u = chan->u;
    long page = sysconf(_SC_PAGESIZE);
    struct stat st;
    void *addr;

    /* The old page goes first: a replaced or withdrawn notifier is dead. */
    chan_unmap_notifier(chan, ring);
    if (a->u64 & VHOST_USER_VRING_NOFD_MASK) {
        return true;
    }
    if (a->size != (uint64_t)page) {
        return chan_bad(errp, name, "ring %u: size %" PRIu64 ", expected the page "
                        "size %ld", ring, a->size, page);
    }
    if (a->offset % (uint64_t)page) {
        return chan_bad(errp, name, "ring %u: offset 0x%" PRIx64 " is not page "
                        "aligned", ring, a->offset);
    }
    if (fstat(fds[0], &st) < 0) {
        return chan_bad(errp, name, "ring %u: fd: fstat: %s", ring, g_strerror(errno));
    }
    /* Only a regular file (or memfd) has a size that bounds the mapping. */
    if (!S_ISREG(st.st_mode)) {
        return chan_bad(errp, name, "ring %u: fd is not a regular file or memfd", ring);
    }
    if (a->offset > (uint64_t)st.st_size || a->size > (uint64_t)st.st_size - a->offset) {
        return chan_bad(errp, name, "ring %u: offset 0x%" PRIx64 " + size %" PRIu64
                        " exceeds the fd's size %jd", ring, a->offset, a->size,
                        (intmax_t)st.st_size);
    }
    addr = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
                (off_t)a->offset);
    if (addr == MAP_FAILED) {
        /* A local failure, not the back-end's fault: answer it, keep going. */
        vhost_user_log(VHOST_USER_LOG_WARNING, u->name, "%s: ring %u: mmap: %s", name,
                       ring, g_strerror(errno));
        *status = 1;
        return true;
    }
    chan->notifiers[ring].addr = addr;
    chan->notifiers[ring].size = a->size;
    if (u->backend_req_ops && u->backend_req_ops->host_notifier) {
        u->backend_req_ops->host_notifier(u->backend_req_opaque, ring, addr, a->size);
    }
    return true;
}

static bool handle_vring_signal(VhostUserBackendChan *chan, const char *name,
                                unsigned ring, bool err_fd, uint64_t *status)
{
    struct vhost_virtqueue *vq = vhost_user_ring(chan->u, ring);
    int fd = vq ? (err_fd ? vq->err_fd : vq->call_fd) : -1;
    uint64_t one = 1;

    if (fd < 0 || write(fd, &one, sizeof(one)) != sizeof(one)) {
        /* EAGAIN: the counter is saturated, the reader is woken anyway. */
        if (fd < 0 || errno != EAGAIN) {
            *status = 1;
        }
    }
    return true;
}

static bool handle_shared(VhostUserBackendChan *chan, const VhostUserMsg *msg, int *fds,
                          size_t nfds, int *reply_fd, uint64_t *status, GError **errp)
{
    const char *name = vhost_user_request_name(VHOST_USER_CHANNEL_BACKEND,
                                               msg->hdr.request);
    const uint8_t *uuid = msg->payload.object.uuid;
    g_autoptr(GError) err = NULL;

    if (vhost_user_uuid_is_nil(uuid)) {
        return chan_bad(errp, name, "uuid is the nil UUID");
    }
    switch (msg->hdr.request) {
    case VHOST_USER_BACKEND_SHARED_OBJECT_ADD:
        /*
         * As the spec has it, the back-end exports the object itself and
         * sends only its UUID; with BACKEND_SEND_FD it may hand over the
         * object's fd, which the registry then holds for lookups.
         */
        if (vhost_user_shared_add(uuid, nfds ? fds[0] : -1, chan->u,
                                  chan->u->shared_objects_max ?
                                  chan->u->shared_objects_max :
                                  VHOST_USER_SHARED_OWNER_DEFAULT, &err)) {
            if (nfds) {
                fds[0] = -1;    /* the registry owns it now */
            }
        } else {
            /* Refused, not fatal: the back-end sees the status and may go on. */
            vhost_user_log(VHOST_USER_LOG_WARNING, chan->u->name, "%s: %s", name,
                           err->message);
            *status = 1;
        }
        break;
    case VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE:
        if (!vhost_user_shared_remove(uuid, chan->u, NULL)) {
            *status = 1;
        }
        break;
    default:
        *reply_fd = vhost_user_shared_lookup(uuid);
        if (*reply_fd < 0) {
            *status = 1;
        }
        break;
    }
    return true;
}

/* ---- The handler table ------------------------------------------------ */

/* One back-end request being handled; the handler fills in the answer. */
typedef struct ChanReq {
    const VhostUserMsgInfo *info;
    VhostUserMsg *msg;
    int ring;                   /* checked < the device's rings, or -1 */
    int *fds;                   /* a handler that keeps fds[i] sets it to -1 */
    size_t nfds;
    int reply_fd;               /* sent with the answer, then closed */
    uint64_t status;            /* the answer's u64: 0 ok, 1 failed */
} ChanReq;

typedef bool (*ChanHandlerFn)(VhostUserBackendChan *chan, ChanReq *r, GError **errp);

static bool chan_handle_iotlb(VhostUserBackendChan *chan, ChanReq *r, GError **errp)
{
    return handle_iotlb(chan, &r->msg->payload.iotlb, &r->status, errp);
}

static bool chan_handle_config_change(VhostUserBackendChan *chan, ChanReq *r,
                                      GError **errp)
{
    return chan_queue_work(chan, WORK_CONFIG_CHANGE, NULL, 0, r->info->name, errp);
}

static bool chan_handle_host_notifier(VhostUserBackendChan *chan, ChanReq *r,
                                      GError **errp)
{
    return handle_host_notifier(chan, &r->msg->payload.area, (unsigned)r->ring, r->fds,
                                &r->status, errp);
}

static bool chan_handle_vring_call(VhostUserBackendChan *chan, ChanReq *r, GError **errp)
{
    return handle_vring_signal(chan, r->info->name, (unsigned)r->ring, false, &r->status);
}

static bool chan_handle_vring_err(VhostUserBackendChan *chan, ChanReq *r, GError **errp)
{
    return handle_vring_signal(chan, r->info->name, (unsigned)r->ring, true, &r->status);
}

static bool chan_handle_shared(VhostUserBackendChan *chan, ChanReq *r, GError **errp)
{
    return handle_shared(chan, r->msg, r->fds, r->nfds, &r->reply_fd, &r->status, errp);
}

#define chan_handle_shared_add chan_handle_shared
#define chan_handle_shared_remove chan_handle_shared
#define chan_handle_shared_lookup chan_handle_shared

/* The table's handler column, expanded here (util must not name our functions). */
#define CHAN_HANDLER_ROW(n, i, pl, fd, rk, rpl, rfd, rc, chk, g, sc, h, w) \
    [i] = chan_handle_##h,
static const ChanHandlerFn chan_handlers[VHOST_USER_BACKEND_MAX] = {
    VHOST_USER_BACKEND_MESSAGES(CHAN_HANDLER_ROW)
};
#undef CHAN_HANDLER_ROW

/*
 * The table's size limit of the request, checked on its header before any
 * payload byte is read: a back-end cannot make us take (or wait for) more
 * than the row's layout can hold. Unknown ids are left to the validator.
 */
static bool chan_header_check(const VhostUserHeader *hdr, void *opaque, GError **errp)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(VHOST_USER_CHANNEL_BACKEND,
                                                       hdr->request);
    const VhostUserPayloadInfo *pl = info ? vhost_user_payload_info(info->payload) : NULL;

    if (pl && hdr->size > pl->max_size) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "size %" PRIu32 " exceeds %" PRIu32 ", the most its %s payload "
                    "may hold", hdr->size, pl->max_size, pl->name);
        return false;
    }
    return true;
}

/*
 * Checks and handles one whole back-end request (fds: the nfds that came
 * with it; closed here, unless a handler kept them). Caller holds
 * chan->lock. False: the channel is unusable (errp set).
 */
static bool chan_handle_msg(VhostUserBackendChan *chan, VhostUserMsg *msg, int *fds,
                            size_t nfds, GError **errp)
{
    VhostUserState *u = chan->u;
    const VhostUserMsgInfo *info;
    /* Our answer is written at once; the back-end must take 20 bytes promptly. */
    int64_t deadline = char_io_deadline(char_socket_reply_timeout_ms(u->chr, false));
    ChanReq req = { .reply_fd = -1 };
    CharIoXfer x = { 0 };
    int reply_fd = -1;
    bool ok = false, need_reply;
    int ring = -1;

    if (vhost_user_trace_enabled()) {
        vhost_user_trace_msg(u->name, true, VHOST_USER_CHANNEL_BACKEND,
                             VHOST_USER_TRACE_RX, msg, nfds, false);
    }
    if (!vhost_user_msg_validate_request(VHOST_USER_CHANNEL_BACKEND, msg, nfds, errp)) {
        g_prefix_error(errp, "back-end channel: ");
        goto out;
    }
    info = vhost_user_msg_info(VHOST_USER_CHANNEL_BACKEND, msg->hdr.request);
    if (info->gate >= 0 && !vhost_user_has_protocol_feature(u, (unsigned)info->gate)) {
        chan_bad(errp, info->name, "needs protocol feature %s, which was not "
                 "negotiated", vhost_user_protocol_feature_name((unsigned)info->gate));
        goto out;
    }
    if (nfds && !vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                    "back-end channel: %s: %zu fds but BACKEND_SEND_FD was not "
                    "negotiated", info->name, nfds);
        goto out;
    }
    ring = vhost_user_msg_ring_index(VHOST_USER_CHANNEL_BACKEND, msg);
    if (ring >= 0 && (unsigned)ring >= vhost_user_nrings(u)) {
        chan_bad(errp, info->name, "ring index %d but the device has %u rings",
                 ring, vhost_user_nrings(u));
        goto out;
    }

    req.info = info;
    req.msg = msg;
    req.ring = ring;
    req.fds = fds;
    req.nfds = nfds;
    ok = chan_handlers[info->id](chan, &req, errp);
    reply_fd = req.reply_fd;
    if (!ok) {
        goto out;
    }

    /* Answered when asked to, and always where the table says so (LOOKUP). */
    need_reply = (msg->hdr.flags & VHOST_USER_NEED_REPLY_MASK) ||
                 info->reply == VHOST_USER_RK_ACK;
    if (need_reply) {
        VhostUserMsg r;
        size_t nrfd = reply_fd >= 0 ? 1 : 0;
        CharIoStatus st;

        memset(&r, 0, HDR_SIZE + sizeof(uint64_t));
        r.hdr.request = msg->hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
        r.hdr.size = sizeof(uint64_t);
        r.payload.u64 = req.status;
        /* Our answer passes the same validator a back-end would apply. */
        if (!vhost_user_msg_validate_reply_payload(VHOST_USER_CHANNEL_BACKEND,
                                                   msg->hdr.request,
                                                   info->reply != VHOST_USER_RK_ACK,
                                                   &r, nrfd, errp)) {
            g_prefix_error(errp, "back-end channel: our answer refused by the table: ");
            ok = false;
            goto out;
        }
        if (vhost_user_trace_enabled()) {
            vhost_user_trace_msg(u->name, true, VHOST_USER_CHANNEL_BACKEND,
                                 VHOST_USER_TRACE_TX, &r, nrfd, true);
        }
        st = char_io_write_msg(chan->fd, &r, &reply_fd, nrfd, deadline, &x);
        ok = st == CHAR_IO_OK;
        if (!ok) {
            g_set_error(errp, VHOST_USER_ERROR,
                        st == CHAR_IO_TIMEOUT ? VHOST_USER_ERROR_TIMEOUT
                                              : VHOST_USER_ERROR_DISCONNECTED,
                        "back-end channel: %s reply: %s", info->name,
                        st == CHAR_IO_TIMEOUT ? "the back-end does not read it"
                        : x.err ? g_strerror(x.err) : "cannot write");
        }
    }

out:
    char_io_close_fds(fds, nfds);
    if (reply_fd >= 0) {
        close(reply_fd);
    }
    return ok;
}

/* Whole messages handled per call at most: a flood must not starve the loop. */
#define CHAN_MAX_MSGS_PER_CALL 64

/*
 * Takes what the back-end has sent, without waiting for anything, and
 * handles every message that is whole. Caller holds chan->lock. False:
 * the channel is unusable (errp set).
 */
static bool chan_service(VhostUserBackendChan *chan, GError **errp)
{
    CharIoMsgReader *rd = &chan->rd;

    for (unsigned i = 0; i < CHAN_MAX_MSGS_PER_CALL && chan->fd >= 0; i++) {
        bool in_payload;
        CharIoStatus st = char_io_read_msg_step(chan->fd, rd, chan_header_check, NULL,
                                                &in_payload, errp);
        const char *name = vhost_user_request_name(VHOST_USER_CHANNEL_BACKEND,
                                                   rd->msg.hdr.request);
        bool ok;

        if (st == CHAR_IO_AGAIN) {
            return true;
        }
        if (st == CHAR_IO_REFUSED) {
            g_prefix_error(errp, "back-end channel: %s: ", name);
        }
        if (!chan_read_result(st, &rd->x, in_payload,
                              in_payload ? rd->msg.hdr.size : HDR_SIZE,
                              in_payload ? name : "header", errp)) {
            char_io_msg_reader_reset(rd);
            return false;
        }
        /* The fds are the handler's now; the reader starts the next message. */
        ok = chan_handle_msg(chan, &rd->msg, rd->fds, rd->x.nfds, errp);
        rd->x.nfds = 0;
        char_io_msg_reader_reset(rd);
        if (!ok) {
            return false;
        }
    }
    return true;
}

/*
 * Records why the channel died and closes it. Caller holds chan->lock;
 * dropping the connection is left to the caller, who knows whether it
 * holds u->lock.
 */
static void chan_fail_locked(VhostUserBackendChan *chan, const GError *err)
{
    if (!chan->error) {
        chan->error = g_error_copy(err);
    }
    chan_close_locked(chan);
}

static bool chan_watch_cb(int fd, unsigned events, void *opaque)
{
    VhostUserBackendChan *chan = opaque;
    VhostUserState *u = chan->u;
    GError *err = NULL;
    g_autofree char *why = NULL;

    if (!g_mutex_trylock(&chan->lock)) {
        /* A request on another thread is servicing the channel right now. */
        return true;
    }
    if (chan->fd != fd) {
        g_mutex_unlock(&chan->lock);
        return false;
    }
    if (chan_service(chan, &err)) {
        g_mutex_unlock(&chan->lock);
        return true;
    }
    g_prefix_error(&err, "%s: ", u->name);
    /* chan_close_locked removes the watch; returning false must not double it. */
    chan->watch = NULL;
    chan_fail_locked(chan, err);
    g_mutex_unlock(&chan->lock);

    /* u->lock is taken before chan->lock, never after it. */
    why = g_strdup(err->message);
    if (g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT)) {
        /* Our answer sat unread: the back-end held the loop, as a stalled reply does. */
        char_socket_note_stall(u->chr, char_socket_reply_timeout_ms(u->chr, false));
    }
    g_error_free(err);
    vhost_user_drop(u, why, true);
    return false;
}

/*
 * The connection's wait fd handler: a request waits for its reply and the
 * back-end sent us something meanwhile. Called with u->lock held.
 */
static bool chan_wait_fd_cb(VhostUserState *u, int fd, void *opaque, GError **errp)
{
    VhostUserBackendChan *chan = opaque;
    GError *err = NULL;
    bool ok = true;

    g_mutex_lock(&chan->lock);
    if (chan->fd == fd && !chan_service(chan, &err)) {
        chan_fail_locked(chan, err);
        g_propagate_error(errp, err);
        ok = false;
    }
    g_mutex_unlock(&chan->lock);
    return ok;
}

static void chan_free(VhostUserBackendChan *chan);

static void chan_conn_hook(VhostUserState *u, VhostUserConnEvent ev, void *opaque)
{
    VhostUserBackendChan *chan = opaque;

    /* The channel belongs to the connection: it goes on either event. */
    g_mutex_lock(&u->lock);
    if (u->backend_chan == chan) {
        u->backend_chan = NULL;
    }
    g_mutex_unlock(&u->lock);
    chan_free(chan);
}

/* ---- Setup and teardown ----------------------------------------------- */

void vhost_user_set_backend_req_ops(VhostUserState *u, const VhostUserBackendReqOps *ops,
                                void *opaque, uint32_t config_len, VhostEventLoop *loop)
{
    u->backend_req_ops = ops;
    u->backend_req_opaque = opaque;
    u->backend_config_len = MIN(config_len, VHOST_USER_MAX_CONFIG_SIZE);
    u->loop = loop;
}

bool vhost_user_backend_chan_setup(VhostUserState *u, GError **errp)
{
    VhostUserBackendChan *chan;
    VhostUserMsg msg;
    int sv[2];
    bool ok;

    if (u->backend_chan) {
        return true;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: back-end channel: socketpair: %s", u->name, g_strerror(errno));
        return false;
    }
    if (char_io_set_nonblocking(sv[0], true) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: back-end channel: O_NONBLOCK: %s", u->name, g_strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    vhost_user_msg_init(&msg, VHOST_USER_SET_BACKEND_REQ_FD, 0);
    /* SYNC: with REPLY_ACK the back-end confirms it took the channel. */
    ok = vhost_user_send(u, 0, &msg, &sv[1], 1, VHOST_USER_REQ_SYNC, errp);
    close(sv[1]);
    if (!ok) {
        close(sv[0]);
        return false;
    }

    chan = g_new0(VhostUserBackendChan, 1);
    chan->u = u;
    /* The VMM's loop: the one it gave us, else the chardev's. */
    chan->loop = u->loop ? u->loop : char_socket_loop(u->chr);
    g_mutex_init(&chan->lock);
    g_queue_init(&chan->work);
    chan->fd = sv[0];
    chan->watch = vhost_loop_add_watch(chan->loop, chan->fd, VHOST_WATCH_IN,
                                       chan_watch_cb, chan);
    vhost_user_add_wait_fd(u, chan->fd, chan_wait_fd_cb, chan);
    vhost_user_add_conn_hook(u, chan_conn_hook, chan);
    g_mutex_lock(&u->lock);
    u->backend_chan = chan;
    g_mutex_unlock(&u->lock);
    return true;
}

/*
 * Closes the channel: unmaps every host notifier (telling the VMM first),
 * drops queued work, forgets the connection's shared objects.
 */
static void chan_free(VhostUserBackendChan *chan)
{
    if (!chan) {
        return;
    }
    vhost_user_remove_conn_hook(chan->u, chan_conn_hook, chan);
    g_mutex_lock(&chan->lock);
    chan_close_locked(chan);
    char_io_msg_reader_reset(&chan->rd);
    if (chan->defer) {
        vhost_loop_cancel_defer(chan->loop, chan->defer);
        chan->defer = NULL;
    }
    g_queue_clear_full(&chan->work, g_free);
    for (unsigned r = 0; r < MAX_RINGS; r++) {
        chan_unmap_notifier(chan, r);
    }
    g_mutex_unlock(&chan->lock);
    /* The connection's objects die with it; other devices may not use them. */
    vhost_user_shared_remove_owner(chan->u);
    g_clear_error(&chan->error);
    g_mutex_clear(&chan->lock);
    g_free(chan);
}

unsigned vhost_user_backend_chan_mapped_notifiers(const VhostUserBackendChan *chan)
{
    unsigned n = 0;

    for (unsigned r = 0; chan && r < MAX_RINGS; r++) {
        n += chan->notifiers[r].addr != NULL;
    }
    return n;
}

const GError *vhost_user_backend_chan_error(const VhostUserBackendChan *chan)
{
    return chan ? chan->error : NULL;
}

int vhost_user_backend_chan_fd(const VhostUserBackendChan *chan)
{
    return chan ? chan->fd : -1;
}
