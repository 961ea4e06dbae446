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

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Upper bound of fds received with one read (CHAR_SOCKET_MAX_FDS too). */
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

/* Closes fds[0..n) that are >= 0 and sets them to -1. */
void char_io_close_fds(int *fds, size_t n);

#endif
