/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: the bytes are a request as a peer would send it.
 *
 * libFuzzer target: request validation against the message table
 * (vhost_user_msg_validate_request), the ring index of accepted requests,
 * and the decoded trace line of every message, accepted or not (the trace
 * is written before validation on the receive path). Input layout in
 * fuzz-msg.h.
 */
#include <glib.h>

#include "fuzz-msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzMsg fm;
    GError *err = NULL;
    char *line;

    if (!fuzz_msg_build(&fm, data, size)) {
        return 0;
    }
    line = vhost_user_msg_format(fm.ch, fm.msg, fm.nfds, false);
    g_free(line);
    if (vhost_user_msg_validate_request(fm.ch, fm.msg, fm.nfds, &err)) {
        int idx = vhost_user_msg_ring_index(fm.ch, fm.msg);

        /* A ring index is a u8 or a clamped u32, never negative by wrap. */
        if (idx < -1) {
            abort();
        }
    } else {
        /* Every rejection says why, in this project's error domain. */
        if (!err || err->domain != VHOST_USER_ERROR || !err->message[0]) {
            abort();
        }
        g_error_free(err);
    }
    fuzz_msg_free(&fm);
    return 0;
}
