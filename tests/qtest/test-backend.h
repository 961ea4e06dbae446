/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A scriptable vhost-user back-end for the qtest suite.
 *
 * The test process plays the back-end; the VMM under test is a separate
 * process. The back-end runs in its own thread with its own GMainContext,
 * so a test can block on a condition (rings started, connection closed)
 * while the back-end keeps answering.
 *
 * Every request is checked with the library's own validator
 * (vhost_user_msg_validate_request) plus the gating rules the validator
 * cannot know (protocol features negotiated, NEED_REPLY only with
 * REPLY_ACK). A front-end that breaks the spec is counted as a
 * "violation"; tests assert there are none.
 *
 * Connections are numbered from 1 in the order they were accepted (or
 * made, in client mode); their message logs stay readable after they close.
 *
 * Locking: all state sits under one mutex. Accessors take it; the wait
 * helpers sleep on the matching condition variable with a deadline, and
 * fail the test with a message naming what was awaited on timeout.
 */
#ifndef TESTS_QTEST_TEST_BACKEND_H
#define TESTS_QTEST_TEST_BACKEND_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/vhost-user-proto.h"

#define TB_MAX_RINGS        16
#define TB_DEFAULT_TIMEOUT_MS 10000
/* Most memory regions a connection holds (QEMU's back-ends say 509). */
#define TB_MAX_MEM_SLOTS    512

typedef struct TestBackend TestBackend;

/* One received request, as recorded in a connection's log. */
typedef struct TbMsg {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
    uint8_t *payload;           /* copy of size bytes */
    unsigned nfds;
    int ring;                   /* ring index, or -1 for device scope */
} TbMsg;

/* What the back-end does with one request instead of behaving. */
typedef enum TbFault {
    TB_FAULT_NONE,
    TB_FAULT_DROP,              /* close the connection before replying */
    TB_FAULT_WRONG_CODE,        /* reply with request code + 1 */
    TB_FAULT_NO_REPLY_FLAG,     /* reply without VHOST_USER_REPLY_MASK */
    TB_FAULT_BAD_VERSION,       /* reply with version 2 */
    TB_FAULT_OVERSIZED,         /* header claims 0x10000 payload bytes */
    TB_FAULT_UNDERSIZED,        /* 4-byte payload */
    TB_FAULT_EXTRA_FDS,         /* 2 eventfds ride along with the reply */
    TB_FAULT_DELAY,             /* sleep delay_ms, then behave */
    TB_FAULT_ACK_FAIL,          /* REPLY_ACK status = value (non-zero) */
    TB_FAULT_VALUE,             /* u64 reply (or vring base) = value */
    /* A crash half-way through the reply (a request without one: close after it). */
    TB_FAULT_DROP_MID_HEADER,   /* send 6 of the 12 header bytes, then close */
    TB_FAULT_DROP_MID_REPLY,    /* send the header and half the payload, then close */
    /* A hang half-way through the reply: 6 of the 12 header bytes, then nothing. */
    TB_FAULT_STALL_MID_HEADER,
} TbFault;

typedef struct TbAction {
    TbFault fault;
    uint64_t value;
    unsigned delay_ms;
} TbAction;

/*
 * Script hook, called in the back-end thread (without the lock held) for
 * every valid request before it is handled. conn is the 1-based
 * connection number. Returning TB_FAULT_NONE falls back to the fault
 * rules added with tb_inject.
 */
typedef TbAction (*TbHook)(TestBackend *tb, unsigned conn, const TbMsg *msg,
                           void *opaque);

/* Back-end behaviour; defaults from tb_config_default(). */
typedef struct TbConfig {
    uint64_t features;          /* GET_FEATURES */
    uint64_t protocol_features; /* GET_PROTOCOL_FEATURES */
    uint64_t queue_num;         /* GET_QUEUE_NUM */
    uint8_t config[VHOST_USER_MAX_CONFIG_SIZE]; /* GET_CONFIG bytes */
    /*
     * GET_MAX_MEM_SLOTS answer and the ADD_MEM_REG limit, at most
     * TB_MAX_MEM_SLOTS (test-backend-mem.c); 0: 8.
     */
    unsigned max_mem_slots;
} TbConfig;

void tb_config_default(TbConfig *cfg);

/*
 * Starts the back-end thread and listens on dir/name (a unix socket
 * created now). With name NULL the back-end is a client: nothing is
 * opened until tb_connect(). cfg NULL: tb_config_default().
 */
TestBackend *tb_new(const char *dir, const char *name, const TbConfig *cfg);
/* Stops the thread, closes every fd, unmaps all memory, removes the socket. */
void tb_free(TestBackend *tb);
const char *tb_socket_path(const TestBackend *tb);

/* Client mode: connect to path (retried until timeout_ms) as a new connection. */
void tb_connect(TestBackend *tb, const char *path, unsigned timeout_ms);

/* Fault on request `request` (0 = any) on connection conn (0 = every one). */
void tb_inject(TestBackend *tb, unsigned conn, uint32_t request, TbFault fault,
               uint64_t value);
void tb_inject_delay(TestBackend *tb, unsigned conn, uint32_t request,
                     unsigned delay_ms);
void tb_set_hook(TestBackend *tb, TbHook hook, void *opaque);
/* Scripted GET_VRING_BASE answer for ring on every connection. */
void tb_set_vring_base_reply(TestBackend *tb, unsigned ring, uint16_t base);

/*
 * DEVICE_STATE (offer the protocol feature in the config): how
 * SET_DEVICE_STATE_FD is served. A save sends state (len bytes) through
 * the fd, then closes it; a load's bytes are kept (tb_device_state_loaded).
 * CHECK_DEVICE_STATE answers check_result. TB_FAULT_VALUE on
 * SET_DEVICE_STATE_FD replaces its reply u64 (on CHECK, the result).
 */
typedef enum TbStateMode {
    TB_STATE_PIPE,              /* through the front-end's fd */
    TB_STATE_OWN_FD,            /* through a pipe of ours, sent with the reply */
    TB_STATE_NEVER_CLOSE,       /* save: the state, then no EOF ever */
} TbStateMode;
void tb_set_device_state(TestBackend *tb, TbStateMode mode, const void *state, size_t len,
                         uint64_t check_result);
/* A copy of what the last load delivered (after its CHECK), or NULL. */
GByteArray *tb_device_state_loaded(TestBackend *tb);

/* Closes connection conn from the back-end side (as if it crashed). */
void tb_disconnect(TestBackend *tb, unsigned conn);

/* ---- Observation (all take the lock) ---------------------------------- */

unsigned tb_conn_count(TestBackend *tb);
bool tb_conn_closed(TestBackend *tb, unsigned conn);
/* Messages with this request code received on conn (request 0: all). */
unsigned tb_msg_count(TestBackend *tb, unsigned conn, uint32_t request);
/* Copy of the i-th message of conn (caller frees with tb_msg_free), or NULL. */
TbMsg *tb_msg_get(TestBackend *tb, unsigned conn, unsigned i);
void tb_msg_free(TbMsg *msg);
/* First message with that request code and ring (-1: any) on conn, or NULL. */
TbMsg *tb_msg_find(TestBackend *tb, unsigned conn, uint32_t request, int ring);
/* Its index in conn's log (to compare orders), or -1. */
int tb_msg_pos(TestBackend *tb, unsigned conn, uint32_t request, int ring);
unsigned tb_rings_started(TestBackend *tb, unsigned conn);
unsigned tb_rings_enabled(TestBackend *tb, unsigned conn);
bool tb_ring_started(TestBackend *tb, unsigned conn, unsigned ring);
/* GET_VRING_BASE received for ring on conn (the ring was stopped). */
bool tb_ring_stopped(TestBackend *tb, unsigned conn, unsigned ring);
/*
 * Copies (caller closes) of conn's back-end channel (SET_BACKEND_REQ_FD)
 * and of ring's call eventfd, or -1 when not received (yet). For
 * test-backend-chan.c, which plays the back-end's side of the channel.
 */
int tb_dup_backend_req_fd(TestBackend *tb, unsigned conn);
/*
 * Sends header + payload (+ fds) on fd in one sendmsg; false on failure.
 * Up to TB_SEND_MAX_FDS fds: more than a peer may send, for tests of that.
 */
#define TB_SEND_MAX_FDS     16
bool tb_send(int fd, const VhostUserHeader *hdr, const void *payload, size_t len,
             const int *fds, size_t nfds);
/*
 * Reads exactly len bytes from fd (within its SO_RCVTIMEO), collecting up
 * to VHOST_USER_MAX_FDS fds into fds[*nfds..]. Returns 1 on success, 0 on
 * EOF before the first byte, -1 on error (*why set; EOF mid-message, a
 * truncated fd list, too many fds).
 */
int tb_recv_full(int fd, void *buf, size_t len, int *fds, size_t *nfds, char **why);
int tb_dup_call_fd(TestBackend *tb, unsigned conn, unsigned ring);
/* The same for ring's err eventfd (SET_VRING_ERR). */
int tb_dup_err_fd(TestBackend *tb, unsigned conn, unsigned ring);

/* Spec violations by the front-end, all connections; the first few are kept. */
unsigned tb_violations(TestBackend *tb);
/* Asserts zero violations, printing the recorded ones otherwise. */
void tb_assert_no_violations(TestBackend *tb);

/* ---- Guest memory through the mapped table of connection conn -------- */

bool tb_read_gpa(TestBackend *tb, unsigned conn, uint64_t gpa, void *buf, size_t len);
bool tb_write_gpa(TestBackend *tb, unsigned conn, uint64_t gpa, const void *buf,
                  size_t len);
/* Translates a front-end virtual address through the table's userspace_addr. */
bool tb_uva_to_gpa(TestBackend *tb, unsigned conn, uint64_t uva, uint64_t *gpa);
/* GPA of ring's used ring, from SET_VRING_ADDR. */
bool tb_ring_used_gpa(TestBackend *tb, unsigned conn, unsigned ring, uint64_t *gpa);
/* Highest gpa + size over the regions of conn's table (0 when none). */
uint64_t tb_mem_end(TestBackend *tb, unsigned conn);
/*
 * Copies conn's mapped regions as the front-end described them, sorted by
 * gpa, into out; returns how many were copied (at most max).
 */
unsigned tb_mem_regions(TestBackend *tb, unsigned conn, VhostUserMemoryRegion *out,
                        unsigned max);

/*
 * The dirty log of conn's last SET_LOG_BASE (mapped as a back-end does):
 * marks the page of gpa with an atomic OR, as a back-end writing it
 * would; false when there is no log or it does not cover gpa.
 */
bool tb_log_mark(TestBackend *tb, unsigned conn, uint64_t gpa);
/* Its size in bytes (0: none). */
uint64_t tb_log_size(TestBackend *tb, unsigned conn);

/* ---- Waiting (each fails the test with `what` on timeout) ------------ */

void tb_wait_conn(TestBackend *tb, unsigned conn, unsigned timeout_ms);
void tb_wait_closed(TestBackend *tb, unsigned conn, unsigned timeout_ms);
void tb_wait_rings_started(TestBackend *tb, unsigned conn, unsigned n,
                           unsigned timeout_ms);
void tb_wait_msg(TestBackend *tb, unsigned conn, uint32_t request, unsigned count,
                 unsigned timeout_ms);
void tb_wait_ring_stopped(TestBackend *tb, unsigned conn, unsigned ring,
                          unsigned timeout_ms);

/*
 * Generic: waits until pred(tb, opaque) is true. pred runs in the calling
 * thread without the lock (so it may use the accessors above) each time
 * the back-end's state changes, and at least every 50 ms. Returns false on
 * timeout instead of failing, so callers can word their own failure.
 */
typedef bool (*TbPredicate)(TestBackend *tb, void *opaque);
bool tb_wait_until(TestBackend *tb, TbPredicate pred, void *opaque,
                   unsigned timeout_ms);

#endif
