/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user transport state: one per back-end connection (chardev),
 * shared by every vhost_dev of that device. It holds what was negotiated
 * on the current connection and runs the single request path:
 *
 *   gate (feature negotiated? device-scope from vq_index 0 only?)
 *   -> encode + trace -> write with fds
 *   -> read header (timeout) -> validate against the table
 *   -> read payload -> validate -> REPLY_ACK status
 *
 * Any protocol or I/O error marks the state broken (sticky until the next
 * connection) and drops the connection; the device layer learns of it
 * from the CLOSED event, never from a callback inside the request.
 */
#ifndef HW_VIRTIO_VHOST_USER_H
#define HW_VIRTIO_VHOST_USER_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "chardev/char-socket.h"
#include "util/vhost-user-msg.h"

struct vhost_dev;

typedef struct VhostUserState {
    CharSocket *chr;
    char *name;                 /* device id, e.g. "net0" */
    GMutex lock;                /* one request at a time, whichever thread */

    /*
     * Protocol features this front-end implements; a device may clear bits
     * (e.g. blk without CONFIG support) before the first init.
     */
    uint64_t supported_protocol_features;

    /* Valid while negotiated is true; reset when the connection drops. */
    bool negotiated;
    bool broken;                /* sticky: no request until reconnected */
    uint64_t backend_features;  /* GET_FEATURES */
    uint64_t protocol_features; /* the negotiated set */
    uint64_t queue_num;         /* GET_QUEUE_NUM, or 1 */
    unsigned int connection;    /* bumps on every new connection */

    unsigned int messages_sent; /* counters for tests and the monitor */
    unsigned int replies_received;

    /* The back-end channel (BACKEND_REQ) of this connection, or NULL. */
    struct VhostUserBackendChan *backend_chan;
    /*
     * Why the loop (not a request, which returns its error) dropped the
     * connection: a bad back-end request. The device front-end takes it on
     * CLOSED and reports it, so it is not only a chardev log line.
     */
    GError *async_error;
    /* Set by the VMM (vhost_user_set_backend_ops); kept across reconnects. */
    const struct VhostUserBackendOps *backend_ops;
    void *backend_opaque;
    uint32_t backend_config_len;
    VhostEventLoop *loop;       /* NULL: the default loop */
    /* The vhost_devs over this connection: ring number -> eventfds. */
    GPtrArray *devs;

    /* Memory slots (hw/virtio/vhost-user-mem.c). */
    uint64_t max_mem_slots;     /* GET_MAX_MEM_SLOTS of this connection, or 0 */
    /* What the back-end has mapped, valid for connection mem_shadow_connection. */
    struct VhostUserMemShadow *mem_shadow;
    unsigned int mem_shadow_connection;
    /* Regions in the last table sent; kept across reconnects. */
    unsigned int mem_regions_in_use;
} VhostUserState;

VhostUserState *vhost_user_state_new(CharSocket *chr, const char *name);
void vhost_user_state_free(VhostUserState *u);
/* Forget the connection's negotiation (called on CHR_EVENT_CLOSED / OPENED). */
void vhost_user_state_reset(VhostUserState *u);

/*
 * Negotiates on a fresh connection, once: GET_FEATURES, then when the
 * back-end offers VHOST_USER_F_PROTOCOL_FEATURES, GET_PROTOCOL_FEATURES,
 * SET_PROTOCOL_FEATURES (ours & theirs), GET_QUEUE_NUM (MQ); then SET_OWNER.
 */
bool vhost_user_negotiate(VhostUserState *u, GError **errp);

bool vhost_user_has_protocol_feature(const VhostUserState *u, unsigned int bit);

/* Flags for vhost_user_request(). */
typedef enum VhostUserRequestFlags {
    /*
     * Make sure the back-end has processed the request before returning:
     * NEED_REPLY when REPLY_ACK is negotiated, else a GET_FEATURES round
     * trip as a barrier.
     */
    VHOST_USER_REQ_SYNC = 1 << 0,
} VhostUserRequestFlags;

/*
 * The request path. msg->hdr.request and .size and the payload are set by
 * the caller (flags are filled in here). fds are sent with it. For
 * requests that have a reply (table), reply receives it, validated, and
 * reply fds go to reply_fds/nreply_fds (both may be NULL when the table
 * says the reply carries none). `vq_index` is the requesting vhost_dev's
 * first ring: a device-scope request from vq_index != 0 is refused as a
 * bug (VHOST_USER_ERROR_INVALID_STATE).
 */
bool vhost_user_request(VhostUserState *u, unsigned int vq_index,
                        VhostUserMsg *msg, const int *fds, size_t nfds,
                        unsigned flags, VhostUserMsg *reply,
                        int *reply_fds, size_t *nreply_fds, GError **errp);

/* Protocol features the library implements today. */
uint64_t vhost_user_frontend_protocol_features(void);

#endif
