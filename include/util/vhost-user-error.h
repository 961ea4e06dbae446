/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Error domain of the front-end library. Codes are chosen by what a VMM
 * can do about them, not by where they were detected: a VMM mostly needs
 * to know whether dropping the connection and reconnecting may help.
 */
#ifndef UTIL_VHOST_USER_ERROR_H
#define UTIL_VHOST_USER_ERROR_H

#include <glib.h>
#include <stdbool.h>

#include "util/vhost-user-api.h"

#define VHOST_USER_ERROR (vhost_user_error_quark())
VHOST_USER_API
GQuark vhost_user_error_quark(void);

typedef enum VhostUserErrorCode {
    /* The peer sent something the protocol forbids (bad code, flags, size, field). */
    VHOST_USER_ERROR_INVALID_MESSAGE,
    /* The connection ended or a read timed out in the middle of a message. */
    VHOST_USER_ERROR_PARTIAL_MESSAGE,
    /* A payload size above what the message allows. */
    VHOST_USER_ERROR_OVERSIZED,
    /* Missing fds, extra fds, or fds on a message that takes none. */
    VHOST_USER_ERROR_WRONG_FDS,
    /* The socket is closed or broken (EPIPE, ECONNRESET, EOF between messages). */
    VHOST_USER_ERROR_DISCONNECTED,
    /* No reply within the configured timeout. */
    VHOST_USER_ERROR_TIMEOUT,
    /* The back-end lacks a feature the device or request needs. */
    VHOST_USER_ERROR_FEATURE_MISMATCH,
    /* The back-end answered a request with a non-zero status (REPLY_ACK). */
    VHOST_USER_ERROR_BACKEND_FAILED,
    /* A request was made that the front-end's own state does not allow (a bug). */
    VHOST_USER_ERROR_INVALID_STATE,
    /* A local resource failed: eventfd, mmap, memfd, socket(). */
    VHOST_USER_ERROR_LOCAL,
    /* Bad configuration given by the VMM user (options, sizes, paths). */
    VHOST_USER_ERROR_CONFIG,
} VhostUserErrorCode;

/*
 * True when dropping the connection and connecting again may succeed:
 * the back-end crashed, restarted, timed out or sent garbage once.
 * False for configuration and feature problems, which a reconnect to the
 * same back-end cannot fix.
 */
VHOST_USER_API
bool vhost_user_error_should_reconnect(const GError *err);

/* Short stable name of a code ("invalid-message"), for traces and tests. */
VHOST_USER_API
const char *vhost_user_error_code_name(int code);

#endif
