/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The message table as data, and everything derived from it: names,
 * payload size rules, fd rules, validation of a received message, and the
 * one-line decoded trace. Used by the front-end, the test back-end and the
 * reference back-end alike.
 *
 * Security model: a received VhostUserMsg is untrusted. The validators here
 * check syntax (sizes, counts, fd numbers, flags); semantic checks against
 * device state (is this ring index < nvqs?) belong to the caller.
 */
#ifndef UTIL_VHOST_USER_MSG_H
#define UTIL_VHOST_USER_MSG_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/vhost-user-log.h"
#include "util/vhost-user-proto.h"

/* Which channel a message travels on; selects the table. */
typedef enum VhostUserChannel {
    VHOST_USER_CHANNEL_FRONTEND,    /* requests from the front-end */
    VHOST_USER_CHANNEL_BACKEND,     /* requests from the back-end (BACKEND_REQ) */
} VhostUserChannel;

/* Row for id, or NULL when the id is unknown on that channel. */
const VhostUserMsgInfo *vhost_user_msg_info(VhostUserChannel ch, uint32_t id);
/* "SET_VRING_NUM", or "UNKNOWN" for ids outside the table. */
const char *vhost_user_request_name(VhostUserChannel ch, uint32_t id);
/* All rows of a channel's table, in id order; *n set to the count. */
const VhostUserMsgInfo *vhost_user_msg_table(VhostUserChannel ch, size_t *n);
/* "REPLY_ACK" for a protocol feature bit, NULL if unknown. */
const char *vhost_user_protocol_feature_name(unsigned bit);

/* Size rule of a payload kind: fixed size, or min..max for variable ones. */
typedef struct VhostUserPayloadInfo {
    const char *name;
    uint32_t min_size;
    uint32_t max_size;
} VhostUserPayloadInfo;
const VhostUserPayloadInfo *vhost_user_payload_info(VhostUserPayloadKind kind);

/*
 * Validates a request received on channel ch (header already read, payload
 * of hdr.size bytes in msg->payload, nfds fds received): known id, flags
 * version, size rule of the payload kind including the internal counts
 * (nregions, config size), fd rule. On error errp names the message and
 * the field (VHOST_USER_ERROR_INVALID_MESSAGE / OVERSIZED / WRONG_FDS).
 */
bool vhost_user_msg_validate_request(VhostUserChannel ch, const VhostUserMsg *msg,
                                     size_t nfds, GError **errp);

/*
 * Validates a reply to `request` sent on channel ch. `acked` says the
 * request carried NEED_REPLY and the reply is a u64 ack. Checks: request
 * code equal, REPLY flag set, version 1, no unknown flag bits, size rule of
 * the reply payload (exact where the spec fixes it), fd count.
 * Only the header is needed: call it before reading the payload so an
 * oversized size is rejected before any payload byte is read; then call
 * vhost_user_msg_validate_reply_payload for the content rules.
 */
bool vhost_user_msg_validate_reply_header(VhostUserChannel ch, uint32_t request,
                                          bool acked, const VhostUserHeader *hdr,
                                          GError **errp);
bool vhost_user_msg_validate_reply_payload(VhostUserChannel ch, uint32_t request,
                                           bool acked, const VhostUserMsg *reply,
                                           size_t nfds, GError **errp);

/*
 * Whether a conditional reply's condition holds, given the negotiated
 * protocol features and whether postcopy is listening.
 */
bool vhost_user_reply_cond_holds(VhostUserReplyCond cond, uint64_t protocol_features,
                                 bool postcopy_listening);

/*
 * What sending a request of row info means on a connection: need_reply,
 * the request must carry NEED_REPLY (always-answered rows, and with
 * REPLY_ACK every request that has no reply of its own); expect_reply, a
 * reply comes (an ack, the row's payload, or a conditional reply whose
 * condition holds).
 */
void vhost_user_msg_reply_plan(const VhostUserMsgInfo *info, uint64_t protocol_features,
                               bool postcopy_listening, bool *need_reply,
                               bool *expect_reply);

/*
 * The row's semantic check of a (syntactically valid, not acked) reply
 * against the request it answers (column "check"): the ring index of
 * GET_VRING_BASE, the range of GET_CONFIG. INVALID_MESSAGE naming the
 * message and the field.
 */
bool vhost_user_msg_check_reply(VhostUserChannel ch, const VhostUserMsg *req,
                                const VhostUserMsg *reply, GError **errp);

/* The payload kind of a reply (U64 when acked). */
VhostUserPayloadKind vhost_user_reply_payload_kind(VhostUserChannel ch,
                                                   uint32_t request, bool acked);

/*
 * Ring index a ring-scope message refers to, or -1 when the message is
 * device-scope. Reads the u64 low byte (KICK/CALL/ERR, host notifier) or
 * the vring state/address index.
 */
int vhost_user_msg_ring_index(VhostUserChannel ch, const VhostUserMsg *msg);

/* Header + zeroed payload for request id with a payload of the table's size. */
void vhost_user_msg_init(VhostUserMsg *msg, uint32_t request, uint32_t size);

/* ---- Trace ---------------------------------------------------------- */

typedef enum VhostUserTraceDir {
    VHOST_USER_TRACE_TX,        /* we sent it */
    VHOST_USER_TRACE_RX,        /* we received it */
} VhostUserTraceDir;

/*
 * One decoded line, no newline, e.g.
 * "SET_VRING_NUM flags=0x1 size=8 fds=0 idx=0 num=256".
 * The caller prefixes direction and device name.
 */
char *vhost_user_msg_format(VhostUserChannel ch, const VhostUserMsg *msg,
                            size_t nfds, bool is_reply);
/*
 * The same; with packed (RING_PACKED acked on the connection) the num of
 * SET_VRING_BASE and of the GET_VRING_BASE reply is shown in hex and
 * decoded: "num=0x80008000 avail_idx=0 avail_wrap=1 used_idx=0 used_wrap=1".
 */
char *vhost_user_msg_format_ring(VhostUserChannel ch, const VhostUserMsg *msg,
                                 size_t nfds, bool is_reply, bool packed);

/* Tracing on/off: vhost_user_trace_enabled() in util/vhost-user-log.h. */
/*
 * Emits one trace line: to the sink set below as
 * "vhost-user: <dev> F>B|B>F <decoded>", else to the log handler
 * (util/vhost-user-log.h) at VHOST_USER_LOG_TRACE as "F>B|B>F <decoded>"
 * with dev as the line's device.
 * `local_is_frontend` says which side we are, so the arrow reads the same
 * in the front-end's and a back-end's trace.
 */
void vhost_user_trace_msg(const char *dev, bool local_is_frontend,
                          VhostUserChannel ch, VhostUserTraceDir dir,
                          const VhostUserMsg *msg, size_t nfds, bool is_reply);
/* The same, decoding vring bases as packed ones (vhost_user_msg_format_ring). */
void vhost_user_trace_msg_ring(const char *dev, bool local_is_frontend,
                               VhostUserChannel ch, VhostUserTraceDir dir,
                               const VhostUserMsg *msg, size_t nfds, bool is_reply,
                               bool packed);
typedef void (*VhostUserTraceSink)(const char *line, void *opaque);
void vhost_user_trace_set_sink(VhostUserTraceSink sink, void *opaque);

/* ---- Docs ----------------------------------------------------------- */

/* The reStructuredText table of both channels, as in docs/interop/vhost-user.rst. */
char *vhost_user_msg_table_rst(void);

#endif
