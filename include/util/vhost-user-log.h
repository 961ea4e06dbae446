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
void vhost_user_set_log_handler(VhostUserLogHandler handler, void *opaque);

/* "error", "warning", "info", "trace". */
const char *vhost_user_log_level_name(VhostUserLogLevel level);

/* For library code: formats and hands one line to the handler, if any. */
void vhost_user_log(VhostUserLogLevel level, const char *dev, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

#endif
