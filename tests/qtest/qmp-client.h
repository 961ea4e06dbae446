/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A QMP client for tests: connects to the VMM's -qmp socket, checks the
 * greeting, negotiates capabilities, then runs one command at a time and
 * waits (bounded) for the reply with the id it gave the command. Events
 * that arrive meanwhile are kept for the test to count.
 *
 * Every failure to talk (timeout, closed socket, bad JSON, a reply for
 * another id) fails the test with g_error naming the command; an
 * "error" reply is not a failure of the client but an answer.
 */
#ifndef TESTS_QTEST_QMP_CLIENT_H
#define TESTS_QTEST_QMP_CLIENT_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

#define QMP_CLIENT_TIMEOUT_MS   10000

typedef struct QmpClient QmpClient;

/* The VMM's stderr so far (caller frees), or NULL. */
typedef char *(*QmpClientLogFn)(void *opaque);

/* Connects (retrying until timeout_ms while the socket is not there yet). */
QmpClient *qmp_client_connect(const char *path, unsigned timeout_ms);
/*
 * The same, and every fatal error first prints the tail of what log_fn
 * returns (the VMM's stderr): a CI failure says why the VMM went away.
 */
QmpClient *qmp_client_connect_log(const char *path, unsigned timeout_ms,
                                  QmpClientLogFn log_fn, void *log_opaque);
void qmp_client_free(QmpClient *c);

/*
 * Sends the request (a JSON object, printf-style; the client adds "id")
 * and returns the whole reply object (caller unrefs).
 */
JsonNode *qmp_client_cmd(QmpClient *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Same, and fails the test unless it succeeded; returns "return" (caller unrefs). */
JsonNode *qmp_client_ok(QmpClient *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/*
 * The same, but NULL (no failure) if the VMM closed the socket before it
 * replied: for a query to a VMM that may exit by itself at any moment (a
 * source once its migration completed). A timeout still fails.
 */
JsonNode *qmp_client_ok_or_gone(QmpClient *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/*
 * Same, and fails the test unless it failed with class cls (NULL: any);
 * returns the error's desc (caller frees).
 */
char *qmp_client_fails(QmpClient *c, const char *cls, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Waits (bounded, g_error on timeout) until count events named name came. */
void qmp_client_wait_event(QmpClient *c, const char *name, unsigned count);
/* Events named name received so far (after the greeting). */
unsigned qmp_client_event_count(QmpClient *c, const char *name);
/* The data member of the last event named name, or NULL (borrowed). */
JsonObject *qmp_client_last_event(QmpClient *c, const char *name);
/* The data member of the n-th (from 0) event named name, or NULL (borrowed). */
JsonObject *qmp_client_nth_event(QmpClient *c, const char *name, unsigned n);

/* For protocol tests: sends bytes as they are (no id added). */
void qmp_client_send_raw(QmpClient *c, const char *bytes);
/* The next line from the VMM (reply or event; caller frees), NULL on timeout or EOF. */
char *qmp_client_read_raw(QmpClient *c);
/* The same with its own bound, for tests that measure how long a reply takes. */
char *qmp_client_read_raw_ms(QmpClient *c, unsigned timeout_ms);

#endif
