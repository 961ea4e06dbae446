/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Back-end requests on the channel while the front-end is idle: each
 * kind answered from the loop (ring call, host notifiers mapped and
 * unmapped, shared objects), and malformed ones, which drop the
 * connection with an error naming the field, idle or during a request.
 *
 * The fixture and the fake back-end are test-vhost-user-backend-chan.c's.
 */
#include <check.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost-user-backend-chan.h"
#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-shared.h"
#include "unit-sock.h"

#include "test-vhost-user-backend-chan.h"

/* Idle-time back-end requests, answered from the loop. */
START_TEST(test_idle_requests)
{
    static const uint8_t uuid[16] = { 0xde, 0xad, 0xbe, 0xef, 1 };
    unsigned fd_base = ut_count_fds();
    Fixture f;
    VhostUserMsg m;
    uint64_t v;
    int memfd, rfd;
    unsigned maps_base;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    maps_base = ut_count_maps("memfd:vubtest");

    bc_msg_make(&m, VHOST_USER_BACKEND_VRING_CALL, sizeof(VhostUserVringState), true);
    m.payload.state.index = 0;
    bc_chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert(read(f.hdev.vqs[0].call_fd, &v, 8) == 8);

    /* Host notifier: a page of a memfd, mapped and handed to the VMM. */
    memfd = memfd_create("vubtest", MFD_CLOEXEC);
    ck_assert_int_eq(ftruncate(memfd, 2 * getpagesize()), 0);
    bc_msg_make(&m, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, sizeof(VhostUserVringArea), true);
    m.payload.area.u64 = 1;
    m.payload.area.size = (uint64_t)getpagesize();
    m.payload.area.offset = (uint64_t)getpagesize();
    bc_chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_ptr_nonnull(bc_vmm.notifier_addr[1]);
    ck_assert_uint_eq(vhost_user_backend_chan_mapped_notifiers(f.u->backend_chan), 1);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base + 1);
    {
        uint32_t seen = 0;

        ck_assert(pread(memfd, &seen, 4, getpagesize()) == 4);
        ck_assert_uint_eq(seen, 0x5a5a);
    }
    /* Withdrawn (NOFD): unmapped, the VMM told first. */
    m.payload.area.u64 = 1 | VHOST_USER_VRING_NOFD_MASK;
    bc_chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_ptr_null(bc_vmm.notifier_addr[1]);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);

    /* Mapped again, then unmapped when the device stops. */
    m.payload.area.u64 = 0;
    bc_chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base + 1);
    ck_assert(vhost_dev_start(&f.hdev, NULL));
    vhost_dev_stop(&f.hdev);
    ck_assert_ptr_null(bc_vmm.notifier_addr[0]);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);

    /* Shared objects: add, duplicate add fails, lookup returns an fd, remove. */
    bc_msg_make(&m, VHOST_USER_BACKEND_SHARED_OBJECT_ADD, sizeof(VhostUserShared), true);
    memcpy(m.payload.object.uuid, uuid, 16);
    bc_chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(vhost_user_shared_count(), 1);
    bc_chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_ne(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP;
    m.hdr.flags = VHOST_USER_VERSION;   /* answered even without NEED_REPLY */
    bc_chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, &rfd), 0);
    ck_assert_int_ge(rfd, 0);
    close(rfd);
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE;
    m.hdr.flags |= VHOST_USER_NEED_REPLY_MASK;
    bc_chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(vhost_user_shared_count(), 0);
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP;
    bc_chan_send(&f, &m, NULL, 0);
    ck_assert_uint_ne(bc_chan_reply(&f, m.hdr.request, &rfd), 0);
    ck_assert_int_lt(rfd, 0);

    /* An object left registered dies with its connection. */
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_ADD;
    bc_chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(vhost_user_shared_count(), 1);
    /* Map a notifier once more: the reset must unmap it. */
    bc_msg_make(&m, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, sizeof(VhostUserVringArea), true);
    m.payload.area.size = (uint64_t)getpagesize();
    bc_chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(bc_chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base + 1);
    vhost_user_state_reset(f.u);
    ck_assert_ptr_null(f.u->backend_chan);
    ck_assert_uint_eq(vhost_user_shared_count(), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);
    ck_assert_ptr_null(bc_vmm.notifier_addr[0]);

    close(memfd);
    bc_fixture_stop(&f);
    ck_assert_uint_eq(ut_count_fds(), fd_base);
}
END_TEST

/* Malformed back-end requests: the connection drops, the error names the field. */
typedef struct BadCase {
    const char *name;
    uint32_t req;
    uint32_t size;
    uint64_t u64;
    uint64_t size_field;        /* host notifier size (0: page) */
    uint64_t offset;
    int nfds;                   /* memfds to attach */
    bool partial;               /* close the channel mid-message */
    uint64_t pf_clear;          /* protocol features the back-end lacks */
    int code;
    const char *expect;
} BadCase;

static const BadCase bad_cases[] = {
    { "notifier-index", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24, 2, 0, 0, 1,
      false, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
      "VRING_HOST_NOTIFIER_MSG: ring index 2 but the device has 2 rings" },
    { "notifier-size", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24, 0, 8192, 0, 1,
      false, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
      "VRING_HOST_NOTIFIER_MSG: ring 0: size 8192" },
    { "notifier-offset-range", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24, 1, 0,
      1ull << 20, 1, false, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
      "exceeds the fd's size" },
    { "notifier-offset-align", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24, 1, 0,
      100, 1, false, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "is not page aligned" },
    { "notifier-no-fd", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24, 1, 0, 0, 0,
      false, 0, VHOST_USER_ERROR_WRONG_FDS, "VRING_HOST_NOTIFIER_MSG: 0 fds, expected 1" },
    { "too-many-fds", VHOST_USER_BACKEND_SHARED_OBJECT_ADD, 16, 0, 0, 0, 9,
      false, 0, VHOST_USER_ERROR_WRONG_FDS, "SHARED_OBJECT_ADD: 9 fds" },
    { "call-index", VHOST_USER_BACKEND_VRING_CALL, 8, 7, 0, 0, 0,
      false, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "VRING_CALL: ring index 7" },
    { "call-size", VHOST_USER_BACKEND_VRING_CALL, 4, 0, 0, 0, 0,
      false, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "VRING_CALL: size 4, expected 8" },
    { "nil-uuid", VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE, 16, 0, 0, 0, 0,
      false, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "SHARED_OBJECT_REMOVE: uuid is the nil" },
    { "unknown-id", 99, 0, 0, 0, 0, 0,
      false, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "back-end request 99: unknown" },
    { "oversized", VHOST_USER_BACKEND_IOTLB_MSG, 5000, 0, 0, 0, 0,
      false, 0, VHOST_USER_ERROR_OVERSIZED, "IOTLB_MSG: size 5000" },
    { "iotlb-type", VHOST_USER_BACKEND_IOTLB_MSG, 32, 0, 0, 0, 0,
      false, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "IOTLB_MSG: type 0" },
    { "not-negotiated", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24,
      VHOST_USER_VRING_NOFD_MASK, 0, 0, 0, false, PF(HOST_NOTIFIER),
      VHOST_USER_ERROR_INVALID_MESSAGE, "needs protocol feature HOST_NOTIFIER" },
    { "fd-without-send-fd", VHOST_USER_BACKEND_SHARED_OBJECT_ADD, 16, 0, 0, 0, 1,
      false, PF(BACKEND_SEND_FD), VHOST_USER_ERROR_WRONG_FDS, "BACKEND_SEND_FD" },
    { "closed-mid-message", VHOST_USER_BACKEND_VRING_CALL, 8, 0, 0, 0, 0,
      true, 0, VHOST_USER_ERROR_PARTIAL_MESSAGE, "VRING_CALL: closed after 4 of 8" },
};

static void check_bad_error(Fixture *f, const BadCase *c, const GError *err)
{
    ck_assert_msg(err, "%s: no error", c->name);
    ck_assert_msg(err->domain == VHOST_USER_ERROR && err->code == c->code,
                  "%s: code %d: %s", c->name, err->code, err->message);
    ck_assert_msg(strstr(err->message, c->expect), "%s: '%s' lacks '%s'", c->name,
                  err->message, c->expect);
    ck_assert_msg(strstr(err->message, "net0"), "%s: %s", c->name, err->message);
}

static void send_bad(Fixture *f, const BadCase *c, int *memfds)
{
    VhostUserMsg m;

    bc_msg_make(&m, c->req, c->size, true);
    if (c->req == VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG) {
        m.payload.area.u64 = c->u64;
        m.payload.area.size = c->size_field ? c->size_field : (uint64_t)getpagesize();
        m.payload.area.offset = c->offset;
    } else if (c->req == VHOST_USER_BACKEND_VRING_CALL) {
        m.payload.state.index = (uint32_t)c->u64;
    } else if (c->req == VHOST_USER_BACKEND_SHARED_OBJECT_ADD) {
        m.payload.object.uuid[0] = 1;
    }
    if (c->partial) {
        /* Header and half the payload, then the back-end's end goes away. */
        ut_send_fds(f->be.chan_fd, &m, sizeof(m.hdr) + c->size / 2, NULL, 0);
        close(f->be.chan_fd);
        f->be.chan_fd = -1;
        return;
    }
    if (c->size > sizeof(m.payload)) {
        ut_send_fds(f->be.chan_fd, &m, sizeof(m.hdr), NULL, 0);
        return;
    }
    ut_send_fds(f->be.chan_fd, &m, sizeof(m.hdr) + c->size, memfds, (size_t)c->nfds);
}

START_TEST(test_bad_request_idle)
{
    const BadCase *c = &bad_cases[_i];
    unsigned fd_base = ut_count_fds();
    unsigned maps_base;
    Fixture f;
    int memfds[9];

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF & ~c->pf_clear);
    maps_base = ut_count_maps("memfd:vubtest");
    for (int i = 0; i < c->nfds; i++) {
        memfds[i] = memfd_create("vubtest", MFD_CLOEXEC);
        ck_assert_int_eq(ftruncate(memfds[i], getpagesize()), 0);
    }
    send_bad(&f, c, memfds);
    for (int i = 0; i < c->nfds; i++) {
        close(memfds[i]);
    }
    bc_wait_dropped(&f);
    check_bad_error(&f, c, vhost_user_backend_chan_error(f.u->backend_chan));
    ck_assert_int_lt(vhost_user_backend_chan_fd(f.u->backend_chan), 0);
    ck_assert_uint_eq(vhost_user_backend_chan_mapped_notifiers(f.u->backend_chan), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);
    bc_fixture_stop(&f);
    ck_assert_uint_eq(vhost_user_shared_count(), 0);
    ck_assert_uint_eq(ut_count_fds(), fd_base);
}
END_TEST

/* The same while a request waits: the request fails with the channel's error. */
START_TEST(test_bad_request_during_request)
{
    const BadCase *c = &bad_cases[_i];
    unsigned fd_base = ut_count_fds();
    Fixture f;
    GError *err = NULL;
    struct vhost_vring_state s = { .index = 0 };
    int memfds[9];

    if (c->partial || c->size > sizeof(VhostUserPayload) || c->nfds) {
        /* Covered idle; the injector sends whole messages without fds. */
        return;
    }
    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF & ~c->pf_clear);
    (void)memfds;
    bc_msg_make(&f.be.inject, c->req, c->size, false);
    if (c->req == VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG) {
        f.be.inject.payload.area.u64 = c->u64;
        f.be.inject.payload.area.size = (uint64_t)getpagesize();
    } else if (c->req == VHOST_USER_BACKEND_VRING_CALL) {
        f.be.inject.payload.state.index = (uint32_t)c->u64;
    }
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(!user_ops.get_vring_base(&f.hdev, &s, &err));
    check_bad_error(&f, c, err);
    ck_assert_ptr_nonnull(strstr(err->message, "GET_VRING_BASE reply: back-end channel"));
    g_clear_error(&err);
    ck_assert(f.u->broken);
    ck_assert(!char_socket_is_connected(f.chr));
    bc_fixture_stop(&f);
    ck_assert_uint_eq(ut_count_fds(), fd_base);
}
END_TEST

void backend_chan_idle_add_tests(TCase *tc)
{
    tcase_add_test(tc, test_idle_requests);
}

void backend_chan_malformed_add_tests(TCase *tc)
{
    tcase_add_loop_test(tc, test_bad_request_idle, 0, G_N_ELEMENTS(bad_cases));
    tcase_add_loop_test(tc, test_bad_request_during_request, 0, G_N_ELEMENTS(bad_cases));
}
