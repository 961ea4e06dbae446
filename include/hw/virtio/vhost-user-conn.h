/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user connection (the wire path): one per back-end connection
 * (chardev), shared by every vhost_dev of that device. It holds what was
 * negotiated on the current connection and runs the single request path:
 *
 *   gate (feature negotiated? device-scope from vq_index 0 only?)
 *   -> validate our own message against the table -> encode + trace
 *   -> write with fds -> wait (servicing the registered wait fds)
 *   -> read header -> validate -> read payload -> validate -> REPLY_ACK
 *
 * Any protocol or I/O error marks the state broken (sticky until the next
 * connection) and drops the connection (vhost_user_drop); the device layer
 * learns of it from the CLOSED event, never from a callback inside the
 * request.
 *
 * This is the lowest vhost-user layer: it knows nothing of negotiation,
 * memory tables, the back-end channel or vhost_devs. Higher layers hook in
 * through two registries: fds to service while a request waits for its
 * reply (vhost_user_add_wait_fd) and connection lifecycle hooks
 * (vhost_user_add_conn_hook).
 */
#ifndef HW_VIRTIO_VHOST_USER_CONN_H
#define HW_VIRTIO_VHOST_USER_CONN_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "chardev/char-socket.h"
#include "util/vhost-user-msg.h"

typedef struct VhostUserState VhostUserState;

/*
 * A registered wait fd became readable (or hung up) while a request waits
 * for its reply (see vhost_user_add_wait_fd). Runs with the request's lock
 * held: it may answer on its own fd but must not send a front-end request
 * (queue that to the loop). False with errp set: the connection is
 * unusable; the waiting request fails with that error and is dropped.
 * While no request runs, the fd is the registrant's to watch on its loop.
 */
typedef bool (*VhostUserWaitFdFn)(VhostUserState *u, int fd, void *opaque,
                                  GError **errp);

typedef enum VhostUserConnEvent {
    /* The connection went (CLOSED) or a new one came (OPENED). */
    VHOST_USER_CONN_RESET,
    /* The state is being freed: release everything. */
    VHOST_USER_CONN_FREE,
} VhostUserConnEvent;

/*
 * A lifecycle hook: per-connection state of a higher layer (the back-end
 * channel, the memory shadow) is dropped here. Called without u->lock
 * held, from the thread that resets or frees the state. A hook may remove
 * itself (and other hooks) while it runs.
 */
typedef void (*VhostUserConnHookFn)(VhostUserState *u, VhostUserConnEvent ev,
                                    void *opaque);

struct VhostUserState {
    CharSocket *chr;
    char *name;                 /* device id, e.g. "net0"; immutable */
    /*
     * Serializes requests: held for a whole request/reply pair (plus the
     * barrier), whichever thread sends it.
     */
    GMutex lock;

    /*
     * Protocol features this front-end implements; a device may clear bits
     * (e.g. blk without CONFIG support) before the first init. Only
     * written before the first connection; read freely.
     */
    uint64_t supported_protocol_features;

    /*
     * The negotiated state of the current connection: the one copy (the
     * vhost_devs take read-only snapshots through VhostOps get_features /
     * get_negotiated). Locking: negotiated, backend_features and queue_num
     * are written under u->lock, only by the VMM's thread (negotiation,
     * vhost_user_state_reset on CLOSED/OPENED); that thread reads them
     * without the lock, any other thread (a request's barrier) under it.
     * protocol_features is also read by the back-end channel's loop watch
     * and by requests from other threads without u->lock: always through
     * __atomic_* (vhost_user_protocol_features()), written under u->lock.
     */
    bool negotiated;
    uint64_t backend_features;  /* GET_FEATURES */
    uint64_t protocol_features; /* atomic (__atomic_*): the negotiated set */
    uint64_t queue_num;         /* GET_QUEUE_NUM, or 1 */
    /*
     * Postcopy is listening on this connection (POSTCOPY_LISTEN sent): the
     * table's POSTCOPY_LISTENING replies come. Written under u->lock by the
     * postcopy code (hw/virtio/vhost-user-postcopy.c); false until then.
     */
    bool postcopy_listening;
    /*
     * The last SET_FEATURES sent on this connection acked RING_PACKED: the
     * trace decodes vring bases as packed ones. Written and read under
     * u->lock (the send and reply paths); false on a new connection.
     */
    bool trace_packed;
    /* Bumps on every new connection; written under u->lock, read atomically. */
    guint connection;
    /*
     * Sticky: no request until reconnected. Atomic (g_atomic_int_*): set
     * by vhost_user_drop from any thread, read without the lock by
     * vhost_user_is_broken().
     */
    gint broken;

    unsigned int messages_sent; /* counters for tests and the monitor; u->lock */
    unsigned int replies_received;

    /*
     * A batch (vhost_user_batch_begin/end), under u->lock: while
     * batch_depth > 0, a request whose only reply is an ack is sent
     * without waiting; its ack is owed (pending_acks, VhostUserPendingAck,
     * in send order) and collected before any other reply is read, when
     * the batch ends, or when VHOST_USER_MAX_PENDING_ACKS are owed.
     * batch_error keeps the first failure met while collecting, for
     * vhost_user_batch_end (another thread's request may have met it).
     * Only batch_owner's requests are deferred: another thread's request
     * in the meantime waits for its own ack as always.
     */
    unsigned int batch_depth;
    GThread *batch_owner;
    GArray *pending_acks;
    GError *batch_error;

    /*
     * Owned by hw/virtio/vhost-user-backend-chan.c: the back-end channel
     * (BACKEND_REQ) of this connection, or NULL. Set and cleared under
     * u->lock.
     */
    struct VhostUserBackendChan *backend_chan;
    /*
     * Why the loop (not a request, which returns its error) dropped the
     * connection: a bad back-end request. The device front-end takes it on
     * CLOSED and reports it, so it is not only a chardev log line.
     * Written under u->lock by vhost_user_drop(from_loop), which runs on
     * the loop's thread; taken on CLOSED on that same thread.
     */
    GError *async_error;
    /*
     * Set by the VMM (vhost_user_set_backend_req_ops) before the connection
     * is opened; kept across reconnects; read-only afterwards.
     */
    const struct VhostUserBackendReqOps *backend_req_ops;
    void *backend_req_opaque;
    uint32_t backend_config_len;
    /*
     * SHARED_OBJECT_ADD: objects this connection's back-end may hold in
     * the registry (vhost-user-shared.h); 0: the registry's default. Set
     * before the connection is opened; read-only afterwards.
     */
    unsigned shared_objects_max;
    VhostEventLoop *loop;       /* NULL: the chardev's loop */
    /*
     * Owned by hw/virtio/vhost-user-rings.c: the vhost_devs over this
     * connection (ring number -> eventfds, err eventfd watches). Changed
     * under u->lock by the VMM's thread; read under u->lock (a request's
     * back-end channel service) or by the VMM's thread (the loop watch).
     */
    GPtrArray *devs;
    /*
     * Owned by hw/virtio/vhost-user-mem.c: the memory table state. Only
     * the VMM's thread touches it (memory table requests come from there).
     */
    struct VhostUserMemState *mem;
    /*
     * Owned by hw/virtio/vhost-user-postcopy.c: the back-end's userfaultfd
     * and region bases. Under that file's own lock, not u->lock (faults
     * are served while a request holds u->lock).
     */
    struct VhostUserPostcopy *postcopy;

    /*
     * The two registries (wait fds, lifecycle hooks), under hook_lock
     * only: a wait fd handler runs with u->lock held and may unregister
     * itself.
     */
    GMutex hook_lock;
    GArray *wait_fds;           /* VhostUserWaitFd */
    GArray *conn_hooks;         /* VhostUserConnHook */
};

VhostUserState *vhost_user_state_new(CharSocket *chr, const char *name);
/* Runs the FREE hooks, then frees u. */
void vhost_user_state_free(VhostUserState *u);
/*
 * Forgets the connection's negotiation (called on CHR_EVENT_CLOSED /
 * OPENED) and runs the RESET hooks.
 */
void vhost_user_state_reset(VhostUserState *u);

/*
 * Services fd while any request on u waits for its reply: handler runs
 * when fd is readable or hung up, before the reply is read, so a back-end
 * that needs an answer (or faults on a page) before it can reply never
 * deadlocks us. Registered fds are served first. A fd is registered at
 * most once; remove it before closing it. Register from the thread that
 * sends u's requests (or from a handler): a request that began its wait
 * with nothing registered waits in the read itself and does not look
 * again.
 */
void vhost_user_add_wait_fd(VhostUserState *u, int fd, VhostUserWaitFdFn handler,
                            void *opaque);
void vhost_user_remove_wait_fd(VhostUserState *u, int fd);

/* Lifecycle hooks; (fn, opaque) identifies the hook for removal. */
void vhost_user_add_conn_hook(VhostUserState *u, VhostUserConnHookFn fn, void *opaque);
void vhost_user_remove_conn_hook(VhostUserState *u, VhostUserConnHookFn fn,
                                 void *opaque);

/* The negotiated protocol features (atomic read; 0 before negotiation). */
uint64_t vhost_user_protocol_features(const VhostUserState *u);
bool vhost_user_has_protocol_feature(const VhostUserState *u, unsigned int bit);
/* The back-end's GET_FEATURES of this connection (valid once negotiated). */
uint64_t vhost_user_backend_features(const VhostUserState *u);
/*
 * For negotiation: records the back-end's features and the protocol
 * features agreed (SET_PROTOCOL_FEATURES sent), then, once everything is
 * done, makes the state "negotiated" for this connection.
 */
void vhost_user_set_features(VhostUserState *u, uint64_t backend_features,
                             uint64_t protocol_features);
void vhost_user_set_negotiated(VhostUserState *u, uint64_t queue_num);

/* Broken (dropped after an error) and not yet reconnected. */
bool vhost_user_is_broken(const VhostUserState *u);
/* Connected and not broken. */
bool vhost_user_is_usable(const VhostUserState *u);
/* The current connection's number (bumps on every new connection). */
unsigned vhost_user_connection(const VhostUserState *u);

/*
 * The one way to give up on a connection: marks u broken (no request
 * until the next connection) and drops the connection with why. from_loop:
 * the loop (not a request, which returns its error) found the problem;
 * it is kept in async_error for the device front-end to report on CLOSED.
 * Takes u->lock (use vhost_user_drop_locked when holding it).
 */
void vhost_user_drop(VhostUserState *u, const char *why, bool from_loop);
void vhost_user_drop_locked(VhostUserState *u, const char *why, bool from_loop);
/*
 * A reply that passed the table but makes no sense for this request: sets
 * errp (INVALID_MESSAGE, the formatted text), drops the connection and
 * returns false.
 */
bool vhost_user_fail(VhostUserState *u, GError **errp, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Flags for the request functions below. */
typedef enum VhostUserRequestFlags {
    /*
     * Make sure the back-end has processed the request before returning:
     * NEED_REPLY when REPLY_ACK is negotiated, else a GET_FEATURES round
     * trip as a barrier.
     */
    VHOST_USER_REQ_SYNC = 1 << 0,
} VhostUserRequestFlags;

/*
 * The request path, in four typed shapes. msg->hdr.request and .size and
 * the payload are set by the caller (flags are filled in here); fds are
 * sent with it. `vq_index` is the requesting vhost_dev's first ring: a
 * device-scope request from vq_index != 0 is refused as a bug
 * (VHOST_USER_ERROR_INVALID_STATE). Replies are validated (syntax by the
 * table, semantics by the row's validator against msg) before they are
 * returned; anything wrong drops the connection.
 */
/* A request whose reply (if any) is only an ack. */
bool vhost_user_send(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                     const int *fds, size_t nfds, unsigned flags, GError **errp);
/* The same with a u64 payload. */
bool vhost_user_send_u64(VhostUserState *u, unsigned int vq_index, uint32_t request,
                         uint64_t val, unsigned flags, GError **errp);
/* A request without payload whose reply is a u64 (GET_FEATURES & co). */
bool vhost_user_call_u64(VhostUserState *u, unsigned int vq_index, uint32_t request,
                         uint64_t *val, GError **errp);
/* A request with a reply payload (no fds). */
bool vhost_user_call(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                     VhostUserMsg *reply, GError **errp);
/*
 * A request whose reply may carry one fd: *fd gets it (the caller closes
 * it), or -1 when the reply had none.
 */
bool vhost_user_call_fd(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                        const int *fds, size_t nfds, VhostUserMsg *reply, int *fd,
                        GError **errp);

/*
 * Checks the reply that SET_MEM_TABLE / ADD_MEM_REG get while postcopy
 * listens (the back-end's own addresses) against the request msg. Runs
 * with u->lock held; false with errp set drops the connection.
 */
typedef bool (*VhostUserListeningReplyFn)(VhostUserState *u, const VhostUserMsg *msg,
                                          const VhostUserMsg *reply, void *opaque,
                                          GError **errp);
/*
 * A request that may get the postcopy-listening reply: when it comes,
 * check validates it and the u64 acknowledgement the spec requires is
 * sent before the lock is released. Without listening it is
 * vhost_user_send (no SYNC).
 */
bool vhost_user_call_listening(VhostUserState *u, unsigned int vq_index, VhostUserMsg *msg,
                               const int *fds, size_t nfds, VhostUserListeningReplyFn check,
                               void *opaque, GError **errp);

/*
 * Pipelining. Between begin and end, requests whose reply is only an ack
 * (REPLY_ACK negotiated) go out at once and their acks are read later, in
 * send order: before any request that needs its own reply, every
 * VHOST_USER_MAX_PENDING_ACKS acks, and at the latest in batch_end. The
 * spec has the back-end process messages in order and answer each
 * NEED_REPLY with one ack, so the n-th ack read is the n-th owed. A
 * failed or missing ack names the message and its ring and drops the
 * connection. batch_end returns the first such failure of the batch
 * (also one that a request in between met first). Without REPLY_ACK
 * nothing changes: such requests have no reply to wait for anyway.
 * Batches nest; only the outermost end collects. Only the requests of the
 * thread that began the batch are pipelined.
 */
#define VHOST_USER_MAX_PENDING_ACKS 64

typedef struct VhostUserPendingAck {
    uint32_t request;
    int ring;                   /* -1: not a ring message */
} VhostUserPendingAck;

void vhost_user_batch_begin(VhostUserState *u);
bool vhost_user_batch_end(VhostUserState *u, GError **errp);

/* Protocol features the library implements today. */
uint64_t vhost_user_frontend_protocol_features(void);

#endif
