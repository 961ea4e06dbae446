/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The log handler: a pointer pair swapped under a lock. The handler is
 * called with the lock held, so a line never reaches a handler that was
 * already replaced (the VMM may free its opaque right after replacing).
 */
#include <stdarg.h>

#include "util/vhost-user-log.h"

G_LOCK_DEFINE_STATIC(log_handler);
static VhostUserLogHandler log_handler;
static void *log_opaque;

void vhost_user_set_log_handler(VhostUserLogHandler handler, void *opaque)
{
    G_LOCK(log_handler);
    log_handler = handler;
    log_opaque = opaque;
    G_UNLOCK(log_handler);
}

const char *vhost_user_log_level_name(VhostUserLogLevel level)
{
    switch (level) {
    case VHOST_USER_LOG_ERROR:
        return "error";
    case VHOST_USER_LOG_WARNING:
        return "warning";
    case VHOST_USER_LOG_INFO:
        return "info";
    case VHOST_USER_LOG_TRACE:
        return "trace";
    }
    return "unknown";
}

void vhost_user_log(VhostUserLogLevel level, const char *dev, const char *fmt, ...)
{
    g_autofree char *line = NULL;
    va_list ap;

    /* Unlocked peek: formatting is skipped when nobody listens. */
    if (!g_atomic_pointer_get(&log_handler)) {
        return;
    }
    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    G_LOCK(log_handler);
    if (log_handler) {
        log_handler(level, dev, line, log_opaque);
    }
    G_UNLOCK(log_handler);
}
