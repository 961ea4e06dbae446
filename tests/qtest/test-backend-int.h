/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The test back-end's state, shared by its files: test-backend.c (the
 * server thread, reading and dispatching requests, fault injection),
 * test-backend-handle.c (what each request does to the state) and
 * test-backend-observe.c (what tests read and wait for). Not for tests.
 *
 * Locking: tb->lock guards every field below; the server thread takes it
 * to change state, test threads to read it, and tb->cond is broadcast
 * after every change a test may wait for.
 */
#ifndef TESTS_QTEST_TEST_BACKEND_INT_H
#define TESTS_QTEST_TEST_BACKEND_INT_H

#include <glib.h>

#include "test-backend.h"
#include "test-backend-mem.h"

typedef struct TbRing {
    uint32_t num;
    uint32_t base;
    VhostUserVringAddr addr;
    bool addr_set;
    int kick_fd;
    int call_fd;
    int err_fd;
    bool enabled;
    bool started;               /* kick received, not stopped since */
    bool stopped;               /* GET_VRING_BASE received */
} TbRing;

typedef struct TbConn {
    TestBackend *tb;
    unsigned id;                /* 1-based */
    int fd;
    GSource *src;
    bool closed;
    GPtrArray *log;             /* TbMsg * */
    TbRegion regions[TB_MAX_MEM_SLOTS]; /* tb_mem_slots() of them in use */
    TbRing rings[TB_MAX_RINGS];
    uint64_t offered_features;  /* last GET_FEATURES answer */
    uint64_t features;
    bool features_set;
    uint64_t protocol_features;
    bool protocol_features_set;
    uint64_t status;
    int backend_req_fd;
    int reply_fd;               /* sent with the next reply (GET_INFLIGHT_FD) */
    uint64_t *log_map;          /* the dirty log of the last SET_LOG_BASE */
    uint64_t log_len;
} TbConn;

typedef struct TbDevState TbDevState;

typedef struct TbRule {
    unsigned conn;
    uint32_t request;
    TbAction action;
} TbRule;

struct TestBackend {
    TbConfig cfg;
    char *path;
    int listen_fd;
    GSource *listen_src;

    GMainContext *ctx;
    GMainLoop *loop;
    GThread *thread;

    GMutex lock;
    GCond cond;
    GPtrArray *conns;           /* TbConn * */
    GArray *rules;              /* TbRule */
    TbHook hook;
    void *hook_opaque;
    int vring_base_reply[TB_MAX_RINGS];     /* -1: use the stored base */
    unsigned violations;
    GPtrArray *violation_msgs;  /* char * */
    TbDevState *ds;             /* DEVICE_STATE (test-backend-state.c), or NULL */
};

/* Caller holds tb->lock. NULL when conn (1-based) does not exist. */
TbConn *tb_conn_get_locked(TestBackend *tb, unsigned conn);
TbMsg *tb_msg_copy(const TbMsg *m);

/* test-backend.c's small helpers, for test-backend-handle.c. */
void tb_close_fd(int *fd);
void tb_close_fds(int *fds, size_t nfds);
void tb_region_unmap(TbRegion *r);
void tb_log_unmap(TbConn *c);
/* Records a front-end spec violation; called with the lock held. */
void G_GNUC_PRINTF(3, 4) tb_violation_locked(TestBackend *tb, TbConn *c,
                                             const char *fmt, ...);

/*
 * test-backend-handle.c: applies one valid request to the connection's
 * state and builds the reply (if any) into *reply / *reply_size. Takes
 * ownership of fds. False when the connection must be dropped.
 */
bool tb_handle(TestBackend *tb, TbConn *c, const VhostUserMsg *msg,
               int *fds, size_t nfds, const TbAction *act,
               VhostUserPayload *reply, uint32_t *reply_size, bool *has_reply);
/* Spec rules the syntax validator cannot know: gating by negotiation. Lock held. */
void tb_check_gate_locked(TestBackend *tb, TbConn *c, const VhostUserMsg *msg,
                          const VhostUserMsgInfo *info);

/*
 * test-backend-state.c: SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE, called
 * with tb->lock held; takes the fd it keeps out of fds. False with
 * *violation set: the front-end broke the spec.
 */
bool tb_handle_device_state(TestBackend *tb, TbConn *c, uint32_t request,
                            const VhostUserPayload *p, int *fds, size_t nfds,
                            const TbAction *act, VhostUserPayload *reply,
                            uint32_t *reply_size, bool *has_reply, char **violation);
/* From tb_free, after the thread stopped. */
void tb_device_state_free(TestBackend *tb);

#endif
