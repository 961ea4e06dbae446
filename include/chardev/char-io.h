/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Low-level socket I/O under the chardev: one sendmsg()/recvmsg() with
 * SCM_RIGHTS, and poll() with a deadline on the monotonic clock.
 *
 * These never block (sockets are non-blocking; MSG_DONTWAIT is passed
 * anyway) and never raise SIGPIPE (MSG_NOSIGNAL). They return -errno
 * rather than setting a GError: the chardev turns them into errors that
 * name the chardev.
 */
#ifndef CHARDEV_CHAR_IO_H
#define CHARDEV_CHAR_IO_H

#include <glib.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/vhost-user-proto.h"

/* Fds accepted with one message; more is the peer's error (checked). */
#define CHAR_IO_MAX_FDS 16

/*
 * One sendmsg() of at most len bytes; the nfds (<= CHAR_IO_MAX_FDS) fds
 * ride on the first byte. Returns the number of bytes sent (the fds went
 * with them when > 0), or -errno (-EAGAIN: the socket buffer is full).
 */
ssize_t char_io_send(int fd, const void *buf, size_t len,
                     const int *fds, size_t nfds);

/*
 * One recvmsg() of at most len bytes, with MSG_CMSG_CLOEXEC. Fds received
 * are stored at fds[*nfds] onwards while *nfds < max_fds (fds may be NULL
 * with max_fds 0); every other fd received is closed at once and counted
 * in *ndropped. *ctrunc is set when the kernel truncated the control data
 * (the fds it could not deliver are lost). Returns the number of bytes
 * read, 0 on EOF, or -errno (-EAGAIN: nothing to read yet).
 */
ssize_t char_io_recv(int fd, void *buf, size_t len,
                     int *fds, size_t max_fds, size_t *nfds,
                     size_t *ndropped, bool *ctrunc);

/*
 * Deadline on the monotonic clock (microseconds, g_get_monotonic_time)
 * timeout_ms from now; timeout_ms < 0 gives -1, "no deadline".
 */
int64_t char_io_deadline(int timeout_ms);

/*
 * poll() one fd for events until the deadline (-1: forever), retrying
 * EINTR. Returns the revents (> 0), 0 when the deadline passed, or -errno.
 */
int char_io_wait(int fd, short events, int64_t deadline);

/* Returns 0 or -errno. */
int char_io_set_nonblocking(int fd, bool nonblocking);
/*
 * Puts a connected socket in blocking mode with an SO_RCVTIMEO of
 * slice_ms, for readers that set CharIoXfer.block_ms. Every send and
 * every other read of this file passes MSG_DONTWAIT, so they do not
 * block. Returns 0 or -errno (the fd is then left non-blocking).
 */
int char_io_set_blocking_slice(int fd, int slice_ms);

/* Closes fds[0..n) that are >= 0 and sets them to -1. */
void char_io_close_fds(int *fds, size_t n);

/* ---- Framed I/O ------------------------------------------------------- */

typedef enum CharIoStatus {
    CHAR_IO_OK,
    CHAR_IO_EOF,                /* the peer closed (x->done bytes had come) */
    CHAR_IO_TIMEOUT,            /* the deadline passed (x->done bytes moved) */
    CHAR_IO_FAILED,             /* recv/send/poll failed: errno in x->err */
    CHAR_IO_REFUSED,            /* a message header was refused (errp set) */
    CHAR_IO_AGAIN,              /* incremental read: the rest has not come yet */
} CharIoStatus;

/* What a transfer did, for the caller's error message. */
typedef struct CharIoXfer {
    size_t done;                /* bytes moved by the last call */
    int err;                    /* errno, for CHAR_IO_FAILED */
    /* Reads only, accumulated over calls (zero-initialise the struct): */
    size_t nfds;                /* fds stored in fds[] */
    size_t ndropped;            /* fds beyond max_fds, closed */
    bool ctrunc;                /* control data truncated: fds were lost */
    /*
     * Input, reads only: the fd is in blocking mode with an SO_RCVTIMEO of
     * block_ms (char_io_set_blocking_slice), so a read waits in recvmsg
     * itself, one slice at a time while the deadline is further than a
     * slice, and only the rest with poll. 0: the fd is non-blocking and
     * every wait is a poll. A reply then costs one syscall, not two.
     */
    int block_ms;
} CharIoXfer;

/*
 * Reads exactly len bytes from fd before deadline (-1: none), retrying
 * short reads, EAGAIN (poll) and EINTR. Fds that arrive are appended to
 * fds[x->nfds..] while x->nfds < max_fds; the rest are closed and counted
 * in x->ndropped (the caller decides whether that is an error, after the
 * bytes are consumed so framing is kept).
 */
CharIoStatus char_io_read_full(int fd, void *buf, size_t len, int *fds, size_t max_fds,
                               int64_t deadline, CharIoXfer *x);
/* Writes exactly len bytes; the fds ride on the first byte. */
CharIoStatus char_io_write_full(int fd, const void *buf, size_t len, const int *fds,
                                size_t nfds, int64_t deadline, CharIoXfer *x);

/*
 * Accepts or refuses a message header before any payload byte is read;
 * false with errp set refuses it.
 */
typedef bool (*CharIoHeaderCheck)(const VhostUserHeader *hdr, void *opaque,
                                  GError **errp);

/*
 * Reads one vhost-user message: the header, then, once its size is within
 * VHOST_USER_MAX_PAYLOAD_SIZE (OVERSIZED otherwise) and check (optional)
 * accepts it, hdr.size payload bytes; all before one deadline. Fds that
 * arrive with any byte collect in fds[] as for char_io_read_full.
 * *in_payload tells whether a failure came after the header.
 */
CharIoStatus char_io_read_msg(int fd, VhostUserMsg *msg, int *fds, size_t max_fds,
                              int64_t deadline, CharIoHeaderCheck check, void *opaque,
                              CharIoXfer *x, bool *in_payload, GError **errp);
/*
 * A message assembled from the pieces the peer sends, for a reader that
 * must never wait for the rest (the back-end channel, served from the
 * event loop). Zero-initialise, or char_io_msg_reader_reset.
 */
typedef struct CharIoMsgReader {
    VhostUserMsg msg;
    size_t have;                /* bytes of header + payload so far */
    int fds[CHAR_IO_MAX_FDS];   /* x.nfds of them, from any piece */
    CharIoXfer x;               /* x.done: bytes of the part being read */
} CharIoMsgReader;

/*
 * Reads, without waiting, what has arrived of the message being
 * assembled, and never a byte of the next one (so the fds that ride on
 * its first byte stay with it). The header is accepted as by
 * char_io_read_msg before any payload byte is read. Returns CHAR_IO_OK
 * with the whole message in r->msg and its fds in r->fds (the caller
 * takes them, then resets r); CHAR_IO_AGAIN when more is needed; EOF,
 * FAILED or REFUSED as char_io_read_msg (*in_payload likewise).
 */
CharIoStatus char_io_read_msg_step(int fd, CharIoMsgReader *r, CharIoHeaderCheck check,
                                   void *opaque, bool *in_payload, GError **errp);
/* Closes the fds r holds and starts a new message. */
void char_io_msg_reader_reset(CharIoMsgReader *r);

/* Writes header and hdr.size payload bytes of msg, fds on the first byte. */
CharIoStatus char_io_write_msg(int fd, const VhostUserMsg *msg, const int *fds,
                               size_t nfds, int64_t deadline, CharIoXfer *x);

#endif
