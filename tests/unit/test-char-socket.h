/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fixture of the unix-socket chardev's unit tests, which
 * test-char-socket.c owns and test-char-socket-reconnect.c shares: one
 * test executable, one fixture, so both files see the same loop, socket
 * path and event counts.
 */
#ifndef TESTS_UNIT_TEST_CHAR_SOCKET_H
#define TESTS_UNIT_TEST_CHAR_SOCKET_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include "chardev/char-socket.h"
#include "system/event-loop.h"

/* What the chardev's event handler (cs_on_event) saw, and what it does. */
typedef struct Rec {
    int opened;
    int closed;
    int events;                 /* total, for "nothing after free" */
    bool free_on_opened;
    bool free_on_closed;
    bool disconnect_on_opened;
} Rec;

/* Set up afresh for each test by the fixture. */
extern VhostEventLoop *cs_loop;
extern char *cs_sock_path;
extern Rec cs_rec;

int cs_count_fds(void);
void cs_on_event(CharSocket *chr, CharEvent event, void *opaque);

/* Run the test's private loop, with a deadline (see test-char-socket.c). */
bool cs_run_until(const int *counter, int want, int ms);
void cs_run_for(int ms);

/* The raw peer the test drives; every call asserts its own success. */
int cs_raw_bind(const char *path);
int cs_raw_listen(const char *path);
int cs_raw_connect(const char *path);
int cs_raw_accept(int lfd);

/* A chardev "chr0" on cs_sock_path, its events going to cs_rec. */
CharSocket *cs_new_chr(bool server, int64_t reconnect_ms);

/* Adds a test in a TCase of its own, with the fixture and a 30 s timeout. */
void cs_add(Suite *s, const char *name, const TTest *test);

/* test-char-socket-reconnect.c: reconnect, backoff, stalls, connect cycles. */
void char_socket_reconnect_add_tests(Suite *s);

#endif
