/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared input layout of the message fuzz targets.
 *
 *   byte 0     control: bit 0 channel (0 front-end table, 1 back-end
 *              table), bits 1-4 the fd count claimed (0..15, so counts
 *              above VHOST_USER_MAX_FDS are reached too), bit 5 "acked"
 *              (reply targets), bit 7 keep an oversized header size
 *   bytes 1-12 the header (request, flags, size; little-endian host order)
 *   bytes 13-  the payload
 *
 * The message is copied into a heap block of exactly header + payload
 * bytes, so a validator or the trace formatter reading one byte past what
 * the peer sent is an ASan error, not a silent read of stale buffer. The
 * header's size field is set to the payload length actually given, as the
 * transport guarantees; with bit 7 an input whose size exceeds the maximum
 * payload keeps it, which is the case where the transport rejects the
 * header before reading any payload byte.
 */
#ifndef TESTS_FUZZ_FUZZ_MSG_H
#define TESTS_FUZZ_FUZZ_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/vhost-user-error.h"
#include "util/vhost-user-msg.h"

typedef struct FuzzMsg {
    VhostUserMsg *msg;          /* exactly 12 + payload_len bytes */
    VhostUserChannel ch;
    size_t nfds;
    bool acked;
} FuzzMsg;

#define FUZZ_HDR_SIZE offsetof(VhostUserMsg, payload)

/* False when the input is too short or its payload could never be read. */
static inline bool fuzz_msg_build(FuzzMsg *fm, const uint8_t *data, size_t size)
{
    uint8_t ctl;
    size_t len, plen;
    uint32_t given;

    if (size < 1 + FUZZ_HDR_SIZE) {
        return false;
    }
    ctl = data[0];
    len = size - 1;
    plen = len - FUZZ_HDR_SIZE;
    if (plen > VHOST_USER_MAX_PAYLOAD_SIZE) {
        return false;
    }
    fm->ch = (ctl & 1) ? VHOST_USER_CHANNEL_BACKEND : VHOST_USER_CHANNEL_FRONTEND;
    fm->nfds = (ctl >> 1) & 0xf;
    fm->acked = ctl & (1u << 5);
    fm->msg = malloc(len);
    if (!fm->msg) {
        return false;
    }
    memcpy(fm->msg, data + 1, len);
    given = fm->msg->hdr.size;
    if (!((ctl & (1u << 7)) && plen == 0 && given > VHOST_USER_MAX_PAYLOAD_SIZE)) {
        fm->msg->hdr.size = (uint32_t)plen;
    }
    return true;
}

static inline void fuzz_msg_free(FuzzMsg *fm)
{
    free(fm->msg);
    fm->msg = NULL;
}

#endif
