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

#include "chardev/char-io.h"
#include "system/event-loop.h"

/* Upper bound of fds received with one read; more is a protocol error. */
#define CHAR_SOCKET_MAX_FDS CHAR_IO_MAX_FDS

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
    int timeout_ms;             /* read/write timeout per call; 0 = default (10000) */
} CharSocketOptions;

/*
 * Creates the chardev. Nothing is connected until char_socket_open().
 * loop NULL means vhost_event_loop_default().
 */
CharSocket *char_socket_new(const CharSocketOptions *opts, VhostEventLoop *loop,
                            GError **errp);

/*
 * Server: bind+listen (and with wait=on, block until one peer connects).
 * Client: connect once; on failure, with reconnect_ms > 0 a retry is
 * scheduled and true is returned, otherwise false with errp set.
 * The OPENED event is delivered from the loop, also for a connection made
 * synchronously here.
 */
bool char_socket_open(CharSocket *chr, GError **errp);

void char_socket_set_handler(CharSocket *chr, CharEventHandler handler, void *opaque);

bool char_socket_is_connected(const CharSocket *chr);
const char *char_socket_id(const CharSocket *chr);
const char *char_socket_path(const CharSocket *chr);
int char_socket_timeout_ms(const CharSocket *chr);
/* The loop the chardev runs on (what it was created with, or the default). */
VhostEventLoop *char_socket_loop(const CharSocket *chr);
void char_socket_set_timeout_ms(CharSocket *chr, int timeout_ms);

/*
 * Writes len bytes; fds (nfds <= CHAR_SOCKET_MAX_FDS) are attached to the
 * first byte. Retries short writes and EINTR; times out after timeout_ms.
 * On any failure the connection is dropped (char_socket_disconnect).
 */
bool char_socket_write_all(CharSocket *chr, const void *buf, size_t len,
                           const int *fds, size_t nfds, GError **errp);

/*
 * Reads exactly len bytes, waiting at most timeout_ms (< 0: the chardev's
 * timeout) for the whole read. fds that arrive with these bytes are
 * appended to fds[] up to *nfds entries; *nfds is set to the number
 * received. With fds == NULL, or when more arrive than fit, the extra fds
 * are closed and the read fails with VHOST_USER_ERROR_WRONG_FDS (after
 * consuming the bytes, so framing is kept). MSG_CTRUNC is an error too.
 * EOF before len bytes: VHOST_USER_ERROR_DISCONNECTED if nothing was read,
 * else VHOST_USER_ERROR_PARTIAL_MESSAGE. Timeout: VHOST_USER_ERROR_TIMEOUT.
 * On failure the caller owns nothing: any fds received are closed.
 * Does not drop the connection by itself; the protocol layer decides.
 */
bool char_socket_read_all(CharSocket *chr, void *buf, size_t len,
                          int *fds, size_t *nfds, int timeout_ms, GError **errp);

/*
 * Reads one vhost-user message (header; check accepts it; payload) within
 * the chardev's timeout, with read_all's rules for fds and errors (fds:
 * room for *nfds, set to the number received). A refused header (check
 * false, or a size above VHOST_USER_MAX_PAYLOAD_SIZE) returns check's
 * error; no payload byte has been read then.
 */
bool char_socket_read_msg(CharSocket *chr, VhostUserMsg *msg, int *fds, size_t *nfds,
                          CharIoHeaderCheck check, void *opaque, GError **errp);

/*
 * Drops the connection (idempotent). The fd is closed at once so no
 * further I/O can happen; CLOSED is delivered later from the loop; then,
 * for a client with reconnect_ms, a reconnect is scheduled. The reason is
 * logged once, with the chardev id.
 */
void char_socket_disconnect(CharSocket *chr, const char *reason);

/*
 * Client with reconnect_ms: the current connection is good (the device
 * came up on it), so the next reconnect after it closes comes after
 * reconnect_ms again. Until an owner says so, every retry waits twice as
 * long as the previous one, up to the cap, even when connect() itself
 * succeeded: a back-end that accepts and then fails each bring-up is not
 * retried at full speed forever.
 */
void char_socket_reset_backoff(CharSocket *chr);

/*
 * While connected and idle, the chardev watches the socket: a hang-up or
 * unexpected data drops the connection. The protocol layer suspends the
 * watch while it runs a request of its own (it reads the socket itself).
 */
void char_socket_set_idle_watch(CharSocket *chr, bool enable);

/* The connected socket fd or -1; for poll() by the protocol layer only. */
int char_socket_fd(const CharSocket *chr);

/* Counters for tests and the monitor. */
unsigned char_socket_connect_count(const CharSocket *chr);

void char_socket_free(CharSocket *chr);

#endif
