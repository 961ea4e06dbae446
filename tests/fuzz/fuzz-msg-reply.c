/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: the bytes are a reply as a peer would send it.
 *
 * libFuzzer target: the two-step reply validation of the receive path
 * (vhost_user_msg_validate_reply_header on the header alone, then
 * vhost_user_msg_validate_reply_payload), the semantic check against the
 * request (vhost_user_msg_check_reply) of accepted replies, and the decoded
 * trace line. Input layout in fuzz-msg.h; control bit 6 makes the request
 * we "sent" differ from the one the reply names.
 */
#include <glib.h>

#include "fuzz-msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(GError *err)
{
    /* Every rejection says why, in this project's error domain. */
    if (!err || err->domain != VHOST_USER_ERROR || !err->message[0]) {
        abort();
    }
    g_error_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzMsg fm;
    GError *err = NULL;
    VhostUserHeader hdr;
    VhostUserMsg req;
    uint32_t request;
    size_t plen;
    char *line;

    if (!fuzz_msg_build(&fm, data, size)) {
        return 0;
    }
    /* The header alone, as the receive path checks it before the payload. */
    memcpy(&hdr, &fm.msg->hdr, sizeof(hdr));
    request = fm.msg->hdr.request ^ ((data[0] & (1u << 6)) ? 1u : 0u);

    line = vhost_user_msg_format(fm.ch, fm.msg, fm.nfds, true);
    g_free(line);

    if (!vhost_user_msg_validate_reply_header(fm.ch, request, fm.acked, &hdr, &err)) {
        check_error(err);
        goto out;
    }
    if (hdr.size > VHOST_USER_MAX_PAYLOAD_SIZE) {
        /* Only oversized sizes are kept, and the header check must refuse them. */
        abort();
    }
    if (!vhost_user_msg_validate_reply_payload(fm.ch, request, fm.acked, fm.msg,
                                               fm.nfds, &err)) {
        check_error(err);
        goto out;
    }
    if (!fm.acked) {
        /* The request asked for what the reply's payload says, or close to it. */
        plen = fm.msg->hdr.size;
        vhost_user_msg_init(&req, request, 0);
        memcpy(&req.payload, &fm.msg->payload, plen);
        if (plen >= VHOST_USER_CONFIG_HDR_SIZE && (data[0] & (1u << 4))) {
            req.payload.config.offset ^= 1;
        }
        if (!vhost_user_msg_check_reply(fm.ch, &req, fm.msg, &err)) {
            check_error(err);
        }
    }
out:
    fuzz_msg_free(&fm);
    return 0;
}
