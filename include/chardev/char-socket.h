/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unix-socket character device, the transport under every vhost-user
 * connection: client or server, optional reconnect with backoff, whole
 * message reads and writes with SCM_RIGHTS fds, and OPENED/CLOSED events.
 *
 * Lifetime rules (the ones QEMU and SPDK got wrong at least once):
 *  - Events are delivered from the event loop, never from inside
 *    char_socket_write_all/read_all or char_socket_disconnect. A caller in
 *    the middle of a request therefore never sees its state freed under it.
 *  - char_socket_disconnect() may be called any number of times, from
 *    anywhere, including from an event handler; the CLOSED event is
 *    delivered once per connection.
 *  - char_socket_free() may be called from an event handler; the object is
 *    released after the handler returns, and no event is delivered after it.
 */
#ifndef CHARDEV_CHAR_SOCKET_H
#define CHARDEV_CHAR_SOCKET_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "system/event-loop.h"
#include "util/vhost-user-api.h"

/* Upper bound of fds received with one read; more is a protocol error. */
#define CHAR_SOCKET_MAX_FDS 16

typedef struct CharSocket CharSocket;

typedef enum CharEvent {
    CHR_EVENT_OPENED,   /* a connection is up (connected or accepted) */
    CHR_EVENT_CLOSED,   /* the connection went down; a reconnect may follow */
} CharEvent;

typedef void (*CharEventHandler)(CharSocket *chr, CharEvent event, void *opaque);

typedef struct CharSocketOptions {
    const char *id;             /* -chardev id=, used in every message */
    const char *path;           /* unix socket path */
    bool server;                /* server=on: listen and accept one peer */
    bool wait;                  /* server: block in open until a peer connects */
    int64_t reconnect_ms;       /* client: retry after a failure/close; 0 = never */
    int64_t reconnect_max_ms;   /* backoff cap; 0 = default (1000 ms) */
    /*
     * Read/write timeout per call, and the bound of a reply that may take
     * time (the table's "slow" replies: GET_VRING_BASE, SET_MEM_TABLE, ...);
     * 0 = default (10000).
     */
    int timeout_ms;
    /*
     * Bound of a reply the spec says comes at once (the table's "prompt"
     * replies: GET_FEATURES, acks, ...); 0 = default (2000). Never more
     * than timeout_ms. The VMM's event loop may wait this long for a
     * stalled back-end, once per stall.
     */
    int reply_timeout_ms;
} CharSocketOptions;

/*
 * Creates the chardev. Nothing is connected until char_socket_open().
 * loop NULL means vhost_event_loop_default().
 */
VHOST_USER_API
CharSocket *char_socket_new(const CharSocketOptions *opts, VhostEventLoop *loop,
                            GError **errp);

/*
 * Server: bind+listen (and with wait=on, block until one peer connects).
 * Client: connect once; on failure, with reconnect_ms > 0 a retry is
 * scheduled and true is returned, otherwise false with errp set.
 * The OPENED event is delivered from the loop, also for a connection made
 * synchronously here.
 */
VHOST_USER_API
bool char_socket_open(CharSocket *chr, GError **errp);

VHOST_USER_API
bool char_socket_is_connected(const CharSocket *chr);
VHOST_USER_API
const char *char_socket_id(const CharSocket *chr);
VHOST_USER_API
const char *char_socket_path(const CharSocket *chr);
VHOST_USER_API
int char_socket_timeout_ms(const CharSocket *chr);
VHOST_USER_API
void char_socket_set_timeout_ms(CharSocket *chr, int timeout_ms);

/*
 * Drops the connection (idempotent). The fd is closed at once so no
 * further I/O can happen; CLOSED is delivered later from the loop; then,
 * for a client with reconnect_ms, a reconnect is scheduled. The reason is
 * logged once, with the chardev id.
 */
VHOST_USER_API
void char_socket_disconnect(CharSocket *chr, const char *reason);

/* Counters for tests and the monitor. */
VHOST_USER_API
unsigned char_socket_connect_count(const CharSocket *chr);

VHOST_USER_API
void char_socket_free(CharSocket *chr);

#endif
