/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost-user message table as data, and the syntax validators built on
 * it.
 *
 * Security model: every VhostUserMsg handed to a validator here came from
 * an untrusted peer. Nothing in it is assumed sensible: the header size,
 * the region and config counts inside the payload, the flag bits, the ring
 * index bits and the number of fds that arrived are all checked against
 * the one table in vhost-user-proto.h before any other code looks at them.
 * Semantic checks that need device state (ring index < number of rings,
 * regions not overlapping) are left to the caller.
 */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "util/vhost-user-error.h"
#include "util/vhost-user-msg.h"

/* ---- Tables --------------------------------------------------------- */

/*
 * Rows are placed at their id so lookup is an index; slot 0 stays empty
 * (id 0 is VHOST_USER_NONE, never valid on the wire).
 */
#define VHOST_USER_MSG_ROW(n, i, pl, fd, rk, rpl, rfd, rc, chk, g, sc, h, w) \
    [i] = {                                                     \
        .name = #n,                                             \
        .id = i,                                                \
        .payload = VHOST_USER_PL_##pl,                          \
        .fds = VHOST_USER_FDS_##fd,                             \
        .reply = VHOST_USER_RK_##rk,                            \
        .reply_payload = VHOST_USER_PL_##rpl,                   \
        .reply_fds = VHOST_USER_FDS_##rfd,                      \
        .reply_cond = VHOST_USER_RC_##rc,                       \
        .reply_check = VHOST_USER_RCHK_##chk,                   \
        .gate = g,                                              \
        .scope = VHOST_USER_SCOPE_##sc,                         \
        .handler = #h,                                          \
        .reply_wait = VHOST_USER_RW_##w,                        \
    },

static const VhostUserMsgInfo frontend_msgs[VHOST_USER_MAX] = {
    VHOST_USER_FRONTEND_MESSAGES(VHOST_USER_MSG_ROW)
};

static const VhostUserMsgInfo backend_msgs[VHOST_USER_BACKEND_MAX] = {
    VHOST_USER_BACKEND_MESSAGES(VHOST_USER_MSG_ROW)
};

#undef VHOST_USER_MSG_ROW

/*
 * One size rule per payload layout. Fixed layouts have min == max; the
 * variable ones (memory table, config space, opaque) give the bounds here
 * and get their exact size from a count inside the payload.
 */
static const VhostUserPayloadInfo payload_info[VHOST_USER_PL__MAX] = {
    [VHOST_USER_PL_NONE] = { "none", 0, 0 },
    [VHOST_USER_PL_U64] = { "u64", 8, 8 },
    /*
     * DPDK answers SET_LOG_BASE with an empty reply, libvhost-user with a
     * u64: both are in the field, so both are accepted.
     */
    [VHOST_USER_PL_U64_OPT] = { "u64?", 0, 8 },
    [VHOST_USER_PL_VRING_STATE] = { "vring_state",
        sizeof(VhostUserVringState), sizeof(VhostUserVringState) },
    [VHOST_USER_PL_VRING_ADDR] = { "vring_addr",
        sizeof(VhostUserVringAddr), sizeof(VhostUserVringAddr) },
    [VHOST_USER_PL_MEM_TABLE] = { "mem_table",
        offsetof(VhostUserMemory, regions) + sizeof(VhostUserMemoryRegion),
        sizeof(VhostUserMemory) },
    [VHOST_USER_PL_MEM_REG] = { "mem_reg",
        sizeof(VhostUserMemRegMsg), sizeof(VhostUserMemRegMsg) },
    [VHOST_USER_PL_LOG] = { "log", sizeof(VhostUserLog), sizeof(VhostUserLog) },
    [VHOST_USER_PL_IOTLB] = { "iotlb", sizeof(VhostUserIotlb), sizeof(VhostUserIotlb) },
    [VHOST_USER_PL_CONFIG] = { "config",
        VHOST_USER_CONFIG_HDR_SIZE, sizeof(VhostUserConfig) },
    [VHOST_USER_PL_VRING_AREA] = { "vring_area",
        sizeof(VhostUserVringArea), sizeof(VhostUserVringArea) },
    [VHOST_USER_PL_INFLIGHT] = { "inflight",
        sizeof(VhostUserInflight), sizeof(VhostUserInflight) },
    [VHOST_USER_PL_UUID] = { "uuid", sizeof(VhostUserShared), sizeof(VhostUserShared) },
    [VHOST_USER_PL_DEVICE_STATE] = { "device_state",
        sizeof(VhostUserTransferDeviceState), sizeof(VhostUserTransferDeviceState) },
    [VHOST_USER_PL_OPAQUE] = { "opaque", 0, VHOST_USER_MAX_PAYLOAD_SIZE },
};

static const char *const protocol_feature_names[VHOST_USER_PROTOCOL_F_MAX] = {
#define VHOST_USER_PF_NAME(n, bit) [bit] = #n,
    VHOST_USER_PROTOCOL_FEATURES(VHOST_USER_PF_NAME)
#undef VHOST_USER_PF_NAME
};

const VhostUserMsgInfo *vhost_user_msg_table(VhostUserChannel ch, size_t *n)
{
    /* Ids are dense from 1 (checked by the unit test), so skip slot 0. */
    if (ch == VHOST_USER_CHANNEL_BACKEND) {
        *n = VHOST_USER_BACKEND_MAX - 1;
        return &backend_msgs[1];
    }
    *n = VHOST_USER_MAX - 1;
    return &frontend_msgs[1];
}

const VhostUserMsgInfo *vhost_user_msg_info(VhostUserChannel ch, uint32_t id)
{
    const VhostUserMsgInfo *row;

    if (ch == VHOST_USER_CHANNEL_BACKEND) {
        if (id >= VHOST_USER_BACKEND_MAX) {
            return NULL;
        }
        row = &backend_msgs[id];
    } else {
        if (id >= VHOST_USER_MAX) {
            return NULL;
        }
        row = &frontend_msgs[id];
    }
    return row->name ? row : NULL;
}

const char *vhost_user_request_name(VhostUserChannel ch, uint32_t id)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(ch, id);

    return info ? info->name : "UNKNOWN";
}

const char *vhost_user_protocol_feature_name(unsigned bit)
{
    if (bit >= VHOST_USER_PROTOCOL_F_MAX) {
        return NULL;
    }
    return protocol_feature_names[bit];
}

const VhostUserPayloadInfo *vhost_user_payload_info(VhostUserPayloadKind kind)
{
    if ((unsigned)kind >= VHOST_USER_PL__MAX) {
        return NULL;
    }
    return &payload_info[kind];
}

VhostUserPayloadKind vhost_user_reply_payload_kind(VhostUserChannel ch,
                                                   uint32_t request, bool acked)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(ch, request);

    if (acked || !info) {
        /* A REPLY_ACK answer is always the u64 status, whatever the request. */
        return VHOST_USER_PL_U64;
    }
    return info->reply_payload;
}

bool vhost_user_reply_cond_holds(VhostUserReplyCond cond, uint64_t protocol_features,
                                 bool postcopy_listening)
{
    switch (cond) {
    case VHOST_USER_RC_LOG_SHMFD:
        return protocol_features & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD);
    case VHOST_USER_RC_POSTCOPY_LISTENING:
        return postcopy_listening;
    case VHOST_USER_RC_NONE:
    default:
        return false;
    }
}

void vhost_user_msg_reply_plan(const VhostUserMsgInfo *info, uint64_t protocol_features,
                               bool postcopy_listening, bool *need_reply,
                               bool *expect_reply)
{
    bool cond = info->reply == VHOST_USER_RK_COND &&
                vhost_user_reply_cond_holds(info->reply_cond, protocol_features,
                                            postcopy_listening);
    /* A conditional reply whose condition does not hold is no reply at all. */
    bool none = info->reply == VHOST_USER_RK_NONE ||
                (info->reply == VHOST_USER_RK_COND && !cond);

    /*
     * With REPLY_ACK every reply-less request asks for an ack, so a
     * failure is reported against the message that caused it.
     */
    *need_reply = info->reply == VHOST_USER_RK_ACK ||
                  (none && (protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK)));
    *expect_reply = *need_reply || info->reply == VHOST_USER_RK_PAYLOAD || cond;
}

/* ---- Field checks shared by requests and replies -------------------- */

/*
 * A size outside what a layout allows: larger is OVERSIZED (the peer tried
 * to push more than the message may carry), smaller is INVALID_MESSAGE.
 */
static void set_size_error(GError **errp, const char *what, uint32_t size,
                           uint32_t expected, const char *detail)
{
    g_set_error(errp, VHOST_USER_ERROR,
                size > expected ? VHOST_USER_ERROR_OVERSIZED
                                : VHOST_USER_ERROR_INVALID_MESSAGE,
                "%s: size %" PRIu32 ", expected %" PRIu32 "%s",
                what, size, expected, detail);
}

/*
 * The size rule of one payload kind, including the counts inside variable
 * payloads. `what` is "SET_MEM_TABLE" or "GET_CONFIG reply" for messages.
 * On success *nregions holds the memory-table region count (else 0).
 */
static bool check_payload(const char *what, VhostUserPayloadKind kind,
                          const VhostUserMsg *msg, uint32_t *nregions,
                          GError **errp)
{
    const VhostUserPayloadInfo *pi = vhost_user_payload_info(kind);
    uint32_t size = msg->hdr.size;
    uint32_t expected;

    *nregions = 0;
    if (size > VHOST_USER_MAX_PAYLOAD_SIZE) {
        /* Checked first so no count below is read from past the buffer. */
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "%s: size %" PRIu32 " exceeds the maximum payload size %d",
                    what, size, VHOST_USER_MAX_PAYLOAD_SIZE);
        return false;
    }
    g_assert(pi);

    switch (kind) {
    case VHOST_USER_PL_MEM_TABLE: {
        uint32_t n;

        if (size < offsetof(VhostUserMemory, regions)) {
            set_size_error(errp, what, size, pi->min_size,
                           " (at least one region)");
            return false;
        }
        n = msg->payload.memory.nregions;
        if (n == 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: nregions 0, expected 1..%d", what,
                        VHOST_MEMORY_BASELINE_NREGIONS);
            return false;
        }
        if (n > VHOST_MEMORY_BASELINE_NREGIONS) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: nregions %" PRIu32 " exceeds %d", what, n,
                        VHOST_MEMORY_BASELINE_NREGIONS);
            return false;
        }
        expected = offsetof(VhostUserMemory, regions) +
                   n * sizeof(VhostUserMemoryRegion);
        if (size != expected) {
            g_autofree char *detail = g_strdup_printf(" for nregions %" PRIu32, n);

            set_size_error(errp, what, size, expected, detail);
            return false;
        }
        *nregions = n;
        return true;
    }
    case VHOST_USER_PL_CONFIG: {
        uint32_t csize;

        if (size < VHOST_USER_CONFIG_HDR_SIZE) {
            set_size_error(errp, what, size, VHOST_USER_CONFIG_HDR_SIZE,
                           " (config header)");
            return false;
        }
        csize = msg->payload.config.size;
        if (csize > VHOST_USER_MAX_CONFIG_SIZE) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: config.size %" PRIu32 " exceeds %d", what, csize,
                        VHOST_USER_MAX_CONFIG_SIZE);
            return false;
        }
        expected = VHOST_USER_CONFIG_HDR_SIZE + csize;
        if (size != expected) {
            g_autofree char *detail = g_strdup_printf(" for config.size %" PRIu32,
                                                      csize);

            set_size_error(errp, what, size, expected, detail);
            return false;
        }
        return true;
    }
    case VHOST_USER_PL_OPAQUE:
        /* Crypto session blobs: only the global bound applies. */
        return true;
    case VHOST_USER_PL_U64_OPT:
        if (size != 0 && size != 8) {
            set_size_error(errp, what, size, 8, " (or 0)");
            return false;
        }
        return true;
    default:
        if (size != pi->min_size) {
            set_size_error(errp, what, size, pi->min_size, "");
            return false;
        }
        return true;
    }
}

/*
 * The fd rule. Called after check_payload, so for VRING the u64 and for
 * PER_REGION the region count are already known to be inside the payload.
 */
static bool check_fds(const char *what, VhostUserFdRule rule,
                      const VhostUserMsg *msg, uint32_t nregions, size_t nfds,
                      GError **errp)
{
    size_t min, max;

    if (nfds > VHOST_USER_MAX_FDS) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                    "%s: %zu fds, more than the maximum %d", what, nfds,
                    VHOST_USER_MAX_FDS);
        return false;
    }

    switch (rule) {
    case VHOST_USER_FDS_ONE:
        min = max = 1;
        break;
    case VHOST_USER_FDS_VRING: {
        /* The u64 is the first field of both U64 and VRING_AREA payloads. */
        uint64_t v = msg->payload.u64;
        uint64_t bad = v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK |
                                       VHOST_USER_VRING_NOFD_MASK);

        if (bad) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: u64 0x%" PRIx64 " has unknown bits 0x%" PRIx64
                        " (only index 0-7 and NOFD bit 8 are defined)",
                        what, v, bad);
            return false;
        }
        min = max = (v & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
        break;
    }
    case VHOST_USER_FDS_PER_REGION:
        min = max = nregions;
        break;
    case VHOST_USER_FDS_OPTIONAL:
        min = 0;
        max = 1;
        break;
    case VHOST_USER_FDS_NONE:
    default:
        min = max = 0;
        break;
    }

    if (nfds < min || nfds > max) {
        if (min == max) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                        "%s: %zu fds, expected %zu", what, nfds, min);
        } else {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                        "%s: %zu fds, expected %zu..%zu", what, nfds, min, max);
        }
        return false;
    }
    return true;
}

/* ---- Requests ------------------------------------------------------- */

static const char *channel_label(VhostUserChannel ch)
{
    return ch == VHOST_USER_CHANNEL_BACKEND ? "back-end request" : "request";
}

bool vhost_user_msg_validate_request(VhostUserChannel ch, const VhostUserMsg *msg,
                                     size_t nfds, GError **errp)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(ch, msg->hdr.request);
    uint32_t flags = msg->hdr.flags;
    uint32_t nregions;

    if (!info) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s %" PRIu32 ": unknown message id", channel_label(ch),
                    msg->hdr.request);
        return false;
    }
    if ((flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: flags 0x%" PRIx32 ": version %" PRIu32 ", expected %u",
                    info->name, flags, flags & VHOST_USER_VERSION_MASK,
                    VHOST_USER_VERSION);
        return false;
    }
    if (flags & VHOST_USER_REPLY_MASK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: flags 0x%" PRIx32 ": REPLY set on a request",
                    info->name, flags);
        return false;
    }
    if (flags & ~VHOST_USER_FLAGS_KNOWN_MASK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: flags 0x%" PRIx32 ": unknown bits 0x%" PRIx32,
                    info->name, flags, flags & ~VHOST_USER_FLAGS_KNOWN_MASK);
        return false;
    }
    if (!check_payload(info->name, info->payload, msg, &nregions, errp)) {
        return false;
    }
    return check_fds(info->name, info->fds, msg, nregions, nfds, errp);
}

/* ---- Replies -------------------------------------------------------- */

bool vhost_user_msg_validate_reply_header(VhostUserChannel ch, uint32_t request,
                                          bool acked, const VhostUserHeader *hdr,
                                          GError **errp)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(ch, request);
    const VhostUserPayloadInfo *pi;
    uint32_t flags = hdr->flags;
    g_autofree char *what = NULL;

    if (!info) {
        /* Our own request id: a caller bug, but still never trust the reply. */
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "reply to unknown %s %" PRIu32, channel_label(ch), request);
        return false;
    }
    what = g_strdup_printf("%s reply", info->name);

    if (info->reply == VHOST_USER_RK_NONE && !acked) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s has no reply unless NEED_REPLY is set", what,
                    info->name);
        return false;
    }
    if (hdr->request != request) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: request %" PRIu32 " (%s), expected %" PRIu32,
                    what, hdr->request, vhost_user_request_name(ch, hdr->request),
                    request);
        return false;
    }
    if ((flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: flags 0x%" PRIx32 ": version %" PRIu32 ", expected %u",
                    what, flags, flags & VHOST_USER_VERSION_MASK,
                    VHOST_USER_VERSION);
        return false;
    }
    if (!(flags & VHOST_USER_REPLY_MASK)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: flags 0x%" PRIx32 ": REPLY not set", what, flags);
        return false;
    }
    if (flags & VHOST_USER_NEED_REPLY_MASK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: flags 0x%" PRIx32 ": NEED_REPLY set in a reply",
                    what, flags);
        return false;
    }
    if (flags & ~VHOST_USER_FLAGS_KNOWN_MASK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: flags 0x%" PRIx32 ": unknown bits 0x%" PRIx32,
                    what, flags, flags & ~VHOST_USER_FLAGS_KNOWN_MASK);
        return false;
    }

    /*
     * Only the bounds here: the payload is not read yet. Exact sizes of
     * variable layouts need their counts and are checked afterwards.
     */
    pi = vhost_user_payload_info(vhost_user_reply_payload_kind(ch, request, acked));
    if (hdr->size > VHOST_USER_MAX_PAYLOAD_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "%s: size %" PRIu32 " exceeds the maximum payload size %d",
                    what, hdr->size, VHOST_USER_MAX_PAYLOAD_SIZE);
        return false;
    }
    if (hdr->size < pi->min_size || hdr->size > pi->max_size) {
        if (pi->min_size == pi->max_size) {
            set_size_error(errp, what, hdr->size, pi->min_size, "");
        } else {
            g_autofree char *detail =
                g_strdup_printf(" (%s payload, at most %" PRIu32 ")",
                                pi->name, pi->max_size);

            set_size_error(errp, what, hdr->size,
                           hdr->size < pi->min_size ? pi->min_size : pi->max_size,
                           detail);
        }
        return false;
    }
    return true;
}

bool vhost_user_msg_validate_reply_payload(VhostUserChannel ch, uint32_t request,
                                           bool acked, const VhostUserMsg *reply,
                                           size_t nfds, GError **errp)
{
    const VhostUserMsgInfo *info;
    g_autofree char *what = NULL;
    uint32_t nregions;

    /* Cheap, and makes this function safe to call on its own. */
    if (!vhost_user_msg_validate_reply_header(ch, request, acked, &reply->hdr, errp)) {
        return false;
    }
    info = vhost_user_msg_info(ch, request);
    what = g_strdup_printf("%s reply", info->name);
    if (!check_payload(what, vhost_user_reply_payload_kind(ch, request, acked),
                       reply, &nregions, errp)) {
        return false;
    }
    return check_fds(what, acked ? VHOST_USER_FDS_NONE : info->reply_fds,
                     reply, nregions, nfds, errp);
}

/* ---- Semantic reply checks ------------------------------------------ */

bool vhost_user_msg_check_reply(VhostUserChannel ch, const VhostUserMsg *req,
                                const VhostUserMsg *reply, GError **errp)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(ch, req->hdr.request);

    if (!info) {
        return true;
    }
    switch (info->reply_check) {
    case VHOST_USER_RCHK_VRING_INDEX:
        if (reply->payload.state.index != req->payload.state.index) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s reply: ring index %" PRIu32 " but ring %" PRIu32
                        " was asked for", info->name, reply->payload.state.index,
                        req->payload.state.index);
            return false;
        }
        return true;
    case VHOST_USER_RCHK_CONFIG_RANGE: {
        uint32_t offset = req->payload.config.offset, len = req->payload.config.size;

        /* The layout allows any size up to 256; the request fixes it exactly. */
        if (reply->hdr.size != VHOST_USER_CONFIG_HDR_SIZE + len ||
            reply->payload.config.offset != offset || reply->payload.config.size != len) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s reply: size %" PRIu32 " offset %" PRIu32 " config size %"
                        PRIu32 " but offset %" PRIu32 " size %" PRIu32
                        " (message size %zu) was asked for", info->name,
                        reply->hdr.size, reply->payload.config.offset,
                        reply->payload.config.size, offset, len,
                        (size_t)(VHOST_USER_CONFIG_HDR_SIZE + len));
            return false;
        }
        return true;
    }
    case VHOST_USER_RCHK_NONE:
    default:
        return true;
    }
}

/* ---- Helpers -------------------------------------------------------- */

int vhost_user_msg_ring_index(VhostUserChannel ch, const VhostUserMsg *msg)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(ch, msg->hdr.request);
    uint32_t idx;

    if (!info || info->scope != VHOST_USER_SCOPE_RING) {
        return -1;
    }
    switch (info->payload) {
    case VHOST_USER_PL_U64:
    case VHOST_USER_PL_VRING_AREA:
        return (int)(msg->payload.u64 & VHOST_USER_VRING_IDX_MASK);
    case VHOST_USER_PL_VRING_STATE:
        idx = msg->payload.state.index;
        break;
    case VHOST_USER_PL_VRING_ADDR:
        idx = msg->payload.addr.index;
        break;
    default:
        return -1;
    }
    /*
     * The index is a peer-chosen u32; clamp rather than wrap negative so
     * a huge index still fails the caller's "< nvqs" check instead of
     * looking like a device-scope message.
     */
    return idx > INT_MAX ? INT_MAX : (int)idx;
}

void vhost_user_msg_init(VhostUserMsg *msg, uint32_t request, uint32_t size)
{
    g_assert(size <= VHOST_USER_MAX_PAYLOAD_SIZE);
    /* Zero all of it: padding bytes must never carry stale memory to a peer. */
    memset(msg, 0, sizeof(*msg));
    msg->hdr.request = request;
    msg->hdr.flags = VHOST_USER_VERSION;
    msg->hdr.size = size;
}
