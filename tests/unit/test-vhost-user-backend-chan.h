/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fixture of the back-end channel's unit tests, which
 * test-vhost-user-backend-chan.c owns (the fake back-end thread, the
 * VMM's callbacks) and test-vhost-user-backend-chan-idle.c shares: a
 * front-end connected to the fake, with a device of two rings.
 */
#ifndef TESTS_UNIT_TEST_VHOST_USER_BACKEND_CHAN_H
#define TESTS_UNIT_TEST_VHOST_USER_BACKEND_CHAN_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/virtio.h"

#define PF(name) (1ull << VHOST_USER_PROTOCOL_F_##name)
#define F_PROTO (1ull << VHOST_USER_F_PROTOCOL_FEATURES)
#define F_V1 (1ull << VIRTIO_F_VERSION_1)
#define F_IOMMU (1ull << VIRTIO_F_IOMMU_PLATFORM)
#define ALL_PF (PF(MQ) | PF(REPLY_ACK) | PF(CONFIG) | PF(BACKEND_REQ) | \
                PF(BACKEND_SEND_FD) | PF(HOST_NOTIFIER) | PF(STATUS) | \
                PF(INBAND_NOTIFICATIONS) | PF(SHARED_OBJECT) | PF(RESET_DEVICE))
#define RING_NUM 64

/* ---- The fake back-end ------------------------------------------------ */

typedef struct LoggedMsg {
    VhostUserHeader hdr;
    size_t nfds;
    VhostUserPayload pl;
} LoggedMsg;

typedef struct FakeBackend {
    int fd;
    int chan_fd;                /* back-end channel, from SET_BACKEND_REQ_FD */
    GThread *thread;
    GMutex lock;
    GCond cond;
    GArray *log;
    uint64_t features;
    uint64_t protocol_features;
    uint64_t status;

    /* Injection: armed by the test, run by the thread. */
    uint32_t inject_on;
    VhostUserMsg inject;
    VhostUserMsg inject_reply;
    bool inject_replied;
    size_t inject_split;        /* >0: send only this many bytes of inject */

    /*
     * A second fd the back-end needs answered before it replies to
     * side_on (a stand-in for a postcopy fault or the migration return
     * path): it writes a u64 there and waits for the answer; without
     * one it never replies.
     */
    int side_fd;
    uint32_t side_on;
    uint64_t side_answer;
} FakeBackend;

/* ---- Fixture ------------------------------------------------------------ */

typedef struct Fixture {
    char *dir;
    char *path;
    CharSocket *chr;
    VhostUserState *u;
    FakeBackend be;
    RamBlock *rb;
    GuestMemory *mem;
    struct vhost_dev hdev;
} Fixture;

/* What the VMM's callbacks saw. */
typedef struct BcVmmSeen {
    unsigned translations;
    unsigned access_fails;
    unsigned config_changes;
    uint8_t config[4];
    uint32_t config_len;
    void *notifier_addr[4];
    unsigned notifier_events;
    bool translate_ok;
    uint64_t uaddr_base;        /* 0: 0x7f0000000000 */
    unsigned ring_errors;
    unsigned last_err_ring;
} BcVmmSeen;

extern BcVmmSeen bc_vmm;


/* A front-end connected to a fake offering these features; its device set up. */
void bc_fixture_start(Fixture *f, uint64_t features, uint64_t pf);
void bc_fixture_stop(Fixture *f);

void bc_msg_make(VhostUserMsg *m, uint32_t req, uint32_t size, bool need_reply);
/* The test playing the back-end on the channel while the front-end is idle. */
void bc_chan_send(Fixture *f, const VhostUserMsg *m, const int *fds, size_t nfds);
uint64_t bc_chan_reply(Fixture *f, uint32_t req, int *rfd);
void bc_wait_dropped(Fixture *f);

/* test-vhost-user-backend-chan-idle.c: to the "channel" TCase, then "malformed". */
void backend_chan_idle_add_tests(TCase *tc);
void backend_chan_malformed_add_tests(TCase *tc);

#endif
