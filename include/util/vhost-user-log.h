/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where the library's own reports go. The library never writes to stderr
 * or calls g_message(): what it has to say (a ring resumed from the used
 * index, a reconnect attempt failed, a decoded trace line) goes to the
 * handler the VMM installs, with the level and the device or chardev it
 * concerns. Without a handler every report is dropped, so an embedding
 * VMM decides what its user sees, and sees each thing once: errors that
 * a call returns through GError are never also logged.
 */
#ifndef UTIL_VHOST_USER_LOG_H
#define UTIL_VHOST_USER_LOG_H

#include <glib.h>
#include <stdbool.h>

#include "util/vhost-user-api.h"

typedef enum VhostUserLogLevel {
    VHOST_USER_LOG_ERROR,       /* something failed that nobody's GError carries */
    VHOST_USER_LOG_WARNING,     /* degraded but going on (reconnect failed, retrying) */
    VHOST_USER_LOG_INFO,        /* a state change worth a line (disconnected, resumed) */
    VHOST_USER_LOG_TRACE,       /* one decoded message (-trace vhost_user) */
} VhostUserLogLevel;

/*
 * dev: the device id ("blk0") or chardev id the line concerns, or NULL.
 * msg: one line, no trailing newline, not prefixed with dev.
 * May be called from any thread that runs library code (the loop's, or a
 * vCPU thread that issued a request); the handler must be thread-safe.
 */
typedef void (*VhostUserLogHandler)(VhostUserLogLevel level, const char *dev,
                                    const char *msg, void *opaque);

/* Installs the handler (NULL: drop everything). Returns nothing; thread-safe. */
VHOST_USER_API
void vhost_user_set_log_handler(VhostUserLogHandler handler, void *opaque);

/* "error", "warning", "info", "trace". */
VHOST_USER_API
const char *vhost_user_log_level_name(VhostUserLogLevel level);

/*
 * Tracing on? True when VHOST_USER_TRACE is set in the environment (any
 * value but "0") or vhost_user_trace_enable(true) was called. Each message
 * on either channel is then decoded into one VHOST_USER_LOG_TRACE line.
 * (Declared here, not with the message table in util/vhost-user-msg.h:
 * it is the only part of tracing a VMM sees.)
 */
VHOST_USER_API
bool vhost_user_trace_enabled(void);
VHOST_USER_API
void vhost_user_trace_enable(bool on);

/* For library code (not exported): formats and hands one line to the handler. */
void vhost_user_log(VhostUserLogLevel level, const char *dev, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

#endif
