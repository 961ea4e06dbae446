/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The chardev as the protocol layer sees it (not installed, not exported).
 * A VMM creates, opens, frees and may drop a chardev (char-socket.h); the
 * device that takes it over does all I/O on it and owns its event handler
 * through what is declared here.
 */
#ifndef CHARDEV_CHAR_SOCKET_INT_H
#define CHARDEV_CHAR_SOCKET_INT_H

#include "chardev/char-io.h"
#include "chardev/char-socket.h"

_Static_assert(CHAR_SOCKET_MAX_FDS == CHAR_IO_MAX_FDS,
               "the public fd bound is the framed I/O's");

void char_socket_set_handler(CharSocket *chr, CharEventHandler handler, void *opaque);

/*
 * Writes len bytes; fds (nfds <= CHAR_SOCKET_MAX_FDS) are attached to the
 * first byte. Retries short writes and EINTR; times out after timeout_ms.
 * On any failure the connection is dropped (char_socket_disconnect).
 */
bool char_socket_write_all(CharSocket *chr, const void *buf, size_t len,
                           const int *fds, size_t nfds, GError **errp);
/*
 * The same, except that when the peer has gone (EPIPE, ECONNRESET: a
 * DISCONNECTED error, *peer_gone set) the connection is left up, so the
 * caller can first read what the peer sent before it went; the caller
 * then disconnects.
 */
bool char_socket_write_all_keep(CharSocket *chr, const void *buf, size_t len,
                                const int *fds, size_t nfds, bool *peer_gone,
                                GError **errp);

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
 * The same before deadline (char_io_deadline; -1: none) rather than the
 * chardev's timeout from now: a request that already waited for the reply
 * to start does not get a second full timeout for its bytes. *received
 * (optional): bytes of the message that came, also on failure (0: the
 * reply never started).
 */
bool char_socket_read_msg_until(CharSocket *chr, VhostUserMsg *msg, int *fds,
                                size_t *nfds, CharIoHeaderCheck check, void *opaque,
                                int64_t deadline, size_t *received, GError **errp);

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
 * The bound of one reply: the prompt one (reply_timeout_ms, at most
 * timeout_ms) or, for a reply that may take time, timeout_ms.
 */
int char_socket_reply_timeout_ms(const CharSocket *chr, bool slow);

/*
 * The connection is being dropped because the back-end stalled: a reply
 * or a write did not finish within stalled_ms. Call before the disconnect.
 * A back-end that stalls again and again is then retried ever more slowly:
 * the first retry waits at least as long as the stall held the caller,
 * each further one twice as long as the one before, up to
 * CHAR_SOCKET_STALL_BACKOFF_MAX_MS, whatever the owner says with
 * char_socket_reset_backoff; the streak ends once a connection has stayed
 * up CHAR_SOCKET_STALL_HEALTHY_FACTOR times timeout_ms (the longest any
 * reply may take; 30 s by default) without a stall.
 */
void char_socket_note_stall(CharSocket *chr, int stalled_ms);

#define CHAR_SOCKET_STALL_BACKOFF_MAX_MS 30000
#define CHAR_SOCKET_STALL_HEALTHY_FACTOR 3

/*
 * While connected and idle, the chardev watches the socket: a hang-up or
 * unexpected data drops the connection. The protocol layer suspends the
 * watch while it runs a request of its own (it reads the socket itself).
 * Suspending and resuming cost no main-loop wakeup unless the loop saw
 * the socket become readable meanwhile (a request on another thread).
 */
void char_socket_set_idle_watch(CharSocket *chr, bool enable);

/* The connected socket fd or -1; for poll() by the protocol layer only. */
int char_socket_fd(const CharSocket *chr);

/* The loop the chardev runs on (the default one when none was given). */
VhostEventLoop *char_socket_loop(const CharSocket *chr);

/*
 * For char-socket-io.c only (the protocol layer reads through read_all and
 * read_msg): the fd to read from, or -1 with errp set; *nfds (if any)
 * zeroed, and x->block_ms set for the fd. fd and block_ms are taken
 * together under the chardev's lock.
 */
int char_socket_read_fd(CharSocket *chr, size_t *nfds, CharIoXfer *x, GError **errp);

#endif
