/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: the bytes are a back-end's reply on the main socket,
 * with the fds it attaches, cut off anywhere.
 *
 * libFuzzer target: the request path's reply reading of a real
 * VhostUserState (hw/virtio/vhost-user-conn.c: the wait, the header read
 * and its table check before any payload byte, the payload, the fds, the
 * validators) through a real unix socket. The harness writes the bytes
 * into the peer end before the request is made, then closes its writing
 * side, so every cut is a close at that byte. A reply is accepted whole
 * or the request fails with a VHOST_USER_ERROR GError and the connection
 * is dropped; either way no fd may leak.
 *
 * Input layout:
 *   byte 0     the request made (index into requests[] below); bit 7
 *              REPLY_ACK negotiated (a SYNC request then waits for an ack)
 *   byte 1     bits 0-1 fd count attached (0..3), bits 2-3 fd kind (0
 *              memfd, 1 eventfd, 2 pipe, 3 a unix socket)
 *   byte 2-3   cut: how many of the reply bytes are sent before the close
 *              (little-endian; past the end: all of them)
 *   byte 4-5   where in the reply the fds ride (the sendmsg that starts
 *              at that byte; past the cut: no fds)
 *   bytes 6-   the reply bytes (header and payload, as sent)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost-user-conn.h"
#include "system/event-loop.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"
#include "util/vhost-user-msg.h"
#include "fuzz-lib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The requests a front-end makes that read a reply, in their four shapes. */
typedef enum Shape { CALL_U64, CALL, CALL_FD, SEND_SYNC } Shape;

static const struct {
    uint32_t request;
    Shape shape;
    uint32_t size;              /* request payload */
} requests[] = {
    { VHOST_USER_GET_FEATURES, CALL_U64, 0 },
    { VHOST_USER_GET_PROTOCOL_FEATURES, CALL_U64, 0 },
    { VHOST_USER_GET_QUEUE_NUM, CALL_U64, 0 },
    { VHOST_USER_GET_STATUS, CALL_U64, 0 },
    { VHOST_USER_GET_MAX_MEM_SLOTS, CALL_U64, 0 },
    { VHOST_USER_GET_VRING_BASE, CALL, sizeof(VhostUserVringState) },
    { VHOST_USER_GET_CONFIG, CALL, VHOST_USER_CONFIG_HDR_SIZE + 16 },
    { VHOST_USER_GET_INFLIGHT_FD, CALL_FD, sizeof(VhostUserInflight) },
    { VHOST_USER_GET_SHARED_OBJECT, CALL_FD, sizeof(VhostUserShared) },
    { VHOST_USER_SET_OWNER, SEND_SYNC, 0 },
    { VHOST_USER_SET_VRING_NUM, SEND_SYNC, sizeof(VhostUserVringState) },
};

static char *sock_path;
static int listen_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    listen_fd = fuzz_listen_tmp("fuzz-reply-XXXXXX", &sock_path);
    vhost_user_set_log_handler(fuzz_quiet_log, NULL);
    /* Created once, so the per-input fd count does not see them. */
    g_main_context_default();
    vhost_event_loop_default();
    return 0;
}

/* The fd kinds the input's two bits name. */
static const FuzzFdKind fd_kinds[] = {
    FUZZ_FD_MEMFD_PAGE, FUZZ_FD_EVENTFD, FUZZ_FD_PIPE, FUZZ_FD_SOCKET,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned which, nfds, kind, fds_before;
    size_t len, cut, at;
    int fds[FUZZ_MAX_FDS], extra[FUZZ_MAX_FDS], peer, rfd = -1;
    uint8_t *reply_bytes;
    VhostUserMsg msg, reply;
    CharSocket *chr;
    VhostUserState *u;
    GError *err = NULL;
    uint64_t val = 0;
    bool ok = false;

    if (size < 6) {
        return 0;
    }
    which = (data[0] & 0x7f) % G_N_ELEMENTS(requests);
    nfds = MIN(data[1] & 3, FUZZ_MAX_FDS);
    kind = (data[1] >> 2) & 3;
    len = size - 6;
    cut = MIN((size_t)(data[2] | data[3] << 8), len);
    at = data[4] | data[5] << 8;
    /* Exactly the reply's bytes: reading one more is an ASan error. */
    reply_bytes = g_malloc(len ? len : 1);
    memcpy(reply_bytes, data + 6, len);

    fds_before = fuzz_count_fds();
    chr = fuzz_connect(sock_path, listen_fd, &peer);
    u = fuzz_state_new(chr, data[0] & 0x80);

    /* The reply is there before the request: the peer writes, then closes. */
    if (at >= cut) {
        nfds = 0;
    }
    for (unsigned i = 0; i < nfds; i++) {
        fds[i] = fuzz_make_fd(fd_kinds[kind], &extra[i]);
    }
    fuzz_send_cut(peer, reply_bytes, cut, at, fds, nfds);
    for (unsigned i = 0; i < nfds; i++) {
        close(fds[i]);
        if (extra[i] >= 0) {
            close(extra[i]);
        }
    }

    vhost_user_msg_init(&msg, requests[which].request, requests[which].size);
    if (requests[which].request == VHOST_USER_GET_CONFIG) {
        msg.payload.config.size = 16;
    } else if (requests[which].request == VHOST_USER_GET_SHARED_OBJECT) {
        memset(msg.payload.object.uuid, 0x5a, sizeof(msg.payload.object.uuid));
    } else if (requests[which].request == VHOST_USER_SET_VRING_NUM) {
        msg.payload.state.num = 256;
    }
    switch (requests[which].shape) {
    case CALL_U64:
        ok = vhost_user_call_u64(u, 0, requests[which].request, &val, &err);
        break;
    case CALL:
        ok = vhost_user_call(u, 0, &msg, &reply, &err);
        break;
    case CALL_FD:
        ok = vhost_user_call_fd(u, 0, &msg, NULL, 0, &reply, &rfd, &err);
        if (ok && rfd >= 0) {
            close(rfd);
        }
        break;
    case SEND_SYNC:
        ok = vhost_user_send(u, 0, &msg, NULL, 0, VHOST_USER_REQ_SYNC, &err);
        break;
    }
    if (!ok) {
        fuzz_check_refused(u, err);
    }
    fuzz_teardown(u, chr, peer, fds_before);
    g_free(reply_bytes);
    return 0;
}
