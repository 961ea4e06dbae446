/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the unit tests' in-process fake back-ends share: whole-message
 * socket I/O with SCM_RIGHTS, and the fd and mapping counts that prove
 * nothing leaked; and a body run in a child process.
 */
#ifndef TESTS_UNIT_UNIT_SOCK_H
#define TESTS_UNIT_UNIT_SOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "chardev/char-socket.h"

/*
 * Control space for this many fds per message: more than the protocol's
 * 8, so a test can send too many and the receiver still sees them all
 * (rather than a truncated control message).
 */
#define UT_SOCK_MAX_FDS 16

/*
 * Reads exactly len bytes from fd. fds that arrive are stored in
 * fds[*nfds..max_fds) and *nfds advanced; any beyond (or all, with fds
 * NULL) are closed. False on EOF or error.
 */
bool ut_recv_full(int fd, void *buf, size_t len, int *fds, size_t max_fds, size_t *nfds);

/*
 * Sends buf with nfds fds (at most UT_SOCK_MAX_FDS) in one sendmsg. The
 * peer may already have hung up on purpose: errors are ignored.
 */
void ut_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds);

/*
 * Open fds of this process. The loops that own an fd for the life of the
 * process (GLib's default context, the library's default event loop) are
 * created first, so they never count as a leak.
 */
unsigned ut_count_fds(void);

/*
 * A client chardev (opts, path filled in here) opened against a listener
 * made in a new directory named after dir_template; *peer is the accepted
 * end. The caller unlinks *path, removes *dir and frees both.
 */
CharSocket *ut_chardev_connected(CharSocketOptions *opts, const char *dir_template,
                                 char **dir, char **path, int *peer);

/* Mappings in /proc/self/maps whose line contains needle. */
unsigned ut_count_maps(const char *needle);

/*
 * body(opaque) run in a forked child, whose exit code (body's return) is
 * returned; a child that did not exit normally fails the test. For what
 * must start from a fresh process: its first thread, its page faults.
 */
int ut_child_run(int (*body)(void *opaque), void *opaque);

#endif
