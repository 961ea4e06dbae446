/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Error domain of the front-end library. The codes classify an error by
 * what the VMM can do about it; vhost_user_error_should_reconnect() is the
 * one decision most callers need.
 */
#include "util/vhost-user-error.h"

G_DEFINE_QUARK(vhost-user-error-quark, vhost_user_error)

bool vhost_user_error_should_reconnect(const GError *err)
{
    if (!err || err->domain != VHOST_USER_ERROR) {
        /* Foreign errors say nothing about the back-end: don't guess. */
        return false;
    }

    switch ((VhostUserErrorCode)err->code) {
    case VHOST_USER_ERROR_INVALID_MESSAGE:
    case VHOST_USER_ERROR_PARTIAL_MESSAGE:
    case VHOST_USER_ERROR_OVERSIZED:
    case VHOST_USER_ERROR_WRONG_FDS:
    case VHOST_USER_ERROR_DISCONNECTED:
    case VHOST_USER_ERROR_TIMEOUT:
    case VHOST_USER_ERROR_BACKEND_FAILED:
        /* A restarted or recovered back-end may behave on the next try. */
        return true;
    case VHOST_USER_ERROR_FEATURE_MISMATCH:
    case VHOST_USER_ERROR_INVALID_STATE:
    case VHOST_USER_ERROR_CONFIG:
    case VHOST_USER_ERROR_LOCAL:
        /* The same back-end and the same configuration fail the same way. */
        return false;
    }
    return false;
}

const char *vhost_user_error_code_name(int code)
{
    switch ((VhostUserErrorCode)code) {
    case VHOST_USER_ERROR_INVALID_MESSAGE:
        return "invalid-message";
    case VHOST_USER_ERROR_PARTIAL_MESSAGE:
        return "partial-message";
    case VHOST_USER_ERROR_OVERSIZED:
        return "oversized";
    case VHOST_USER_ERROR_WRONG_FDS:
        return "wrong-fds";
    case VHOST_USER_ERROR_DISCONNECTED:
        return "disconnected";
    case VHOST_USER_ERROR_TIMEOUT:
        return "timeout";
    case VHOST_USER_ERROR_FEATURE_MISMATCH:
        return "feature-mismatch";
    case VHOST_USER_ERROR_BACKEND_FAILED:
        return "backend-failed";
    case VHOST_USER_ERROR_INVALID_STATE:
        return "invalid-state";
    case VHOST_USER_ERROR_LOCAL:
        return "local";
    case VHOST_USER_ERROR_CONFIG:
        return "config";
    }
    return "unknown";
}
