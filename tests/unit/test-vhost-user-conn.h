/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fixture of the request path's unit tests, which
 * test-vhost-user-conn.c owns (the fake back-end thread and the request
 * tests) and test-vhost-user-conn-dev.c shares for the device layer's.
 */
#ifndef TESTS_UNIT_TEST_VHOST_USER_CONN_H
#define TESTS_UNIT_TEST_VHOST_USER_CONN_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost-user-conn.h"

#define PF(name) (1ull << VHOST_USER_PROTOCOL_F_##name)
#define F_PROTO (1ull << VHOST_USER_F_PROTOCOL_FEATURES)
#define F_V1 (1ull << VIRTIO_F_VERSION_1)

typedef enum Fault {
    FAULT_NONE,
    FAULT_WRONG_CODE,       /* reply carries another request code */
    FAULT_NO_REPLY_FLAG,    /* REPLY bit missing */
    FAULT_OVERSIZED,        /* header says 5000 bytes; nothing follows */
    FAULT_UNDERSIZED,       /* 4 bytes where 8 are due */
    FAULT_EXTRA_FDS,        /* three fds ride along */
    FAULT_ACK_FAIL,         /* ack status 1 */
    FAULT_HANGUP,           /* close instead of replying */
    FAULT_CONFIG_SHORT,     /* GET_CONFIG answered with fewer bytes than asked */
    FAULT_WRONG_INDEX,      /* GET_VRING_BASE answered for another ring */
    FAULT_SLOW,             /* answer right, after SLOW_REPLY_MS */
    FAULT_HALF_HEADER,      /* after 400 ms, 6 of the 12 header bytes, then nothing */
} Fault;

#define SLOW_REPLY_MS 700

typedef struct LoggedMsg {
    VhostUserHeader hdr;
    size_t nfds;
    uint8_t payload[64];
} LoggedMsg;

typedef struct FakeBackend {
    int fd;
    GThread *thread;
    GMutex lock;
    GCond cond;
    GArray *log;                /* LoggedMsg */
    uint64_t features;
    uint64_t protocol_features;
    uint64_t acked_protocol_features;
    uint64_t queue_num;
    uint32_t fault_req;
    Fault fault;
    bool exited;
} FakeBackend;

typedef struct Fixture {
    char *dir;
    char *path;
    CharSocket *chr;
    VhostUserState *u;
    FakeBackend be;
} Fixture;

/* Connected to a fake offering these features, which starts right away. */
void vc_fixture_start(Fixture *f, uint64_t features, uint64_t protocol_features);
void vc_fixture_stop(Fixture *f);

/* The i-th message the fake logged. */
const LoggedMsg *vc_be_msg(FakeBackend *be, guint i);
/* Arms one fault for the next req the fake receives. */
void vc_be_arm(FakeBackend *be, uint32_t req, Fault fault);
void vc_assert_broken(Fixture *f);

/* test-vhost-user-conn-dev.c: to the "vhost-dev" TCase. */
void vhost_user_conn_dev_add_tests(TCase *tc);

#endif
