/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The back-end channel (hw/virtio/vhost-user-backend-chan.c) and the
 * front-end requests of STATUS, IOTLB, INBAND_NOTIFICATIONS and
 * SHARED_OBJECT, against a fake back-end thread.
 *
 * The fake answers the main socket like a well-behaved back-end. A test
 * can arm an injection: when the fake receives a given front-end request
 * it first sends a back-end request on the channel (and waits for our
 * answer when it set NEED_REPLY), then replies to the front-end request:
 * the case where a front-end that only waited on the main socket would
 * deadlock. Idle-time back-end requests are written by the test thread
 * itself on the fake's end of the channel, and answered from the loop.
 * Those idle-time requests, well-formed and malformed, are tested in
 * test-vhost-user-backend-chan-idle.c, on the fixture shared through
 * test-vhost-user-backend-chan.h.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost-user-backend-chan.h"
#include "hw/virtio/vhost-user-rings.h"
#include "hw/virtio/vhost-user-status.h"
#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-shared.h"
#include "hw/virtio/virtio.h"
#include "unit-sock.h"

#include "test-vhost-user-backend-chan.h"

/* ---- The fake back-end ------------------------------------------------ */

/* Reads one u64 reply on the channel; *fd gets an attached fd or -1. */
static bool chan_read_reply(int fd, VhostUserMsg *r, int *rfd)
{
    int fds[16];
    size_t nfds = 0;
    bool ok;

    ok = ut_recv_full(fd, &r->hdr, sizeof(r->hdr), fds, G_N_ELEMENTS(fds), &nfds) &&
         r->hdr.size <= 8 && ut_recv_full(fd, &r->payload, r->hdr.size, fds, G_N_ELEMENTS(fds), &nfds);
    if (rfd) {
        *rfd = nfds ? fds[0] : -1;
    }
    for (size_t i = rfd ? 1 : 0; i < nfds; i++) {
        close(fds[i]);
    }
    return ok;
}

static gpointer be_thread(gpointer opaque)
{
    FakeBackend *be = opaque;

    for (;;) {
        VhostUserMsg msg, r;
        int fds[16];
        size_t nfds = 0, rsize = 0;
        LoggedMsg lm;
        bool reply = true, inject = false, side = false;
        int reply_fd = -1;

        if (!ut_recv_full(be->fd, &msg.hdr, sizeof(msg.hdr), fds, G_N_ELEMENTS(fds), &nfds)) {
            break;
        }
        if (msg.hdr.size > sizeof(msg.payload) ||
            (msg.hdr.size && !ut_recv_full(be->fd, &msg.payload, msg.hdr.size, fds, G_N_ELEMENTS(fds), &nfds))) {
            break;
        }
        memset(&r, 0, sizeof(r));
        r.hdr.request = msg.hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;

        g_mutex_lock(&be->lock);
        memset(&lm, 0, sizeof(lm));
        lm.hdr = msg.hdr;
        lm.nfds = nfds;
        memcpy(&lm.pl, &msg.payload, msg.hdr.size);
        g_array_append_val(be->log, lm);
        switch (msg.hdr.request) {
        case VHOST_USER_GET_FEATURES:
            r.payload.u64 = be->features;
            rsize = 8;
            break;
        case VHOST_USER_GET_PROTOCOL_FEATURES:
            r.payload.u64 = be->protocol_features;
            rsize = 8;
            break;
        case VHOST_USER_GET_QUEUE_NUM:
            r.payload.u64 = 1;
            rsize = 8;
            break;
        case VHOST_USER_GET_STATUS:
            r.payload.u64 = be->status;
            rsize = 8;
            break;
        case VHOST_USER_SET_STATUS:
            be->status = msg.payload.u64;
            reply = false;
            break;
        case VHOST_USER_GET_VRING_BASE:
            r.payload.state.index = msg.payload.state.index;
            r.payload.state.num = 42;
            rsize = 8;
            break;
        case VHOST_USER_GET_CONFIG:
            r.payload.config = msg.payload.config;
            for (uint32_t i = 0; i < msg.payload.config.size && i < 256; i++) {
                r.payload.config.region[i] = (uint8_t)(0xa0 + i);
            }
            rsize = msg.hdr.size;
            break;
        case VHOST_USER_GET_SHARED_OBJECT:
            reply_fd = memfd_create("shared", MFD_CLOEXEC);
            rsize = 8;
            break;
        case VHOST_USER_SET_BACKEND_REQ_FD:
            if (nfds == 1) {
                be->chan_fd = fds[0];
                nfds = 0;
            }
            reply = false;
            break;
        default:
            reply = false;
            break;
        }
        if (be->inject_on && be->inject_on == msg.hdr.request) {
            be->inject_on = 0;
            inject = true;
        }
        if (be->side_on && be->side_on == msg.hdr.request) {
            be->side_on = 0;
            side = true;
        }
        if (msg.hdr.flags & VHOST_USER_NEED_REPLY_MASK) {
            reply = true;
            r.payload.u64 = 0;
            rsize = 8;
        }
        g_cond_broadcast(&be->cond);
        g_mutex_unlock(&be->lock);
        for (size_t i = 0; i < nfds; i++) {
            close(fds[i]);
        }

        if (inject) {
            VhostUserMsg ir;

            size_t len = sizeof(be->inject.hdr) + be->inject.hdr.size;

            /* The back-end needs our answer before it replies: the deadlock case. */
            ut_send_fds(be->chan_fd, &be->inject, be->inject_split ? be->inject_split : len,
                        NULL, 0);
            if (!be->inject_split && (be->inject.hdr.flags & VHOST_USER_NEED_REPLY_MASK)) {
                bool got = chan_read_reply(be->chan_fd, &ir, NULL);

                g_mutex_lock(&be->lock);
                if (got) {
                    be->inject_reply = ir;
                    be->inject_replied = true;
                }
                g_mutex_unlock(&be->lock);
            }
        }
        if (side) {
            uint64_t ask = 0x1234, answer = 0;
            struct pollfd pfd = { .fd = be->side_fd, .events = POLLIN };

            if (write(be->side_fd, &ask, sizeof(ask)) != sizeof(ask) ||
                poll(&pfd, 1, 1500) != 1 ||
                read(be->side_fd, &answer, sizeof(answer)) != sizeof(answer)) {
                reply = false;      /* never answered: the front-end waits in vain */
            }
            g_mutex_lock(&be->lock);
            be->side_answer = answer;
            g_mutex_unlock(&be->lock);
        }
        if (reply) {
            r.hdr.size = (uint32_t)rsize;
            ut_send_fds(be->fd, &r, sizeof(r.hdr) + rsize, &reply_fd, reply_fd >= 0);
        }
        if (reply_fd >= 0) {
            close(reply_fd);
        }
    }
    return NULL;
}

/* ---- Fixture ------------------------------------------------------------ */

BcVmmSeen bc_vmm;

static bool vmm_translate(void *opaque, uint64_t iova, uint8_t perm, uint64_t *uaddr,
                          uint64_t *size, uint8_t *out_perm)
{
    bc_vmm.translations++;
    *uaddr = (bc_vmm.uaddr_base ? bc_vmm.uaddr_base : 0x7f0000000000ull) + iova;
    *size = 0x1000;
    *out_perm = perm;
    return bc_vmm.translate_ok;
}

static void vmm_access_fail(void *opaque, uint64_t iova, uint64_t size, uint8_t perm)
{
    bc_vmm.access_fails++;
}

static void vmm_config_changed(void *opaque, const uint8_t *config, uint32_t len)
{
    bc_vmm.config_changes++;
    bc_vmm.config_len = len;
    if (config) {
        memcpy(bc_vmm.config, config, MIN(len, sizeof(bc_vmm.config)));
    }
}

static void vmm_host_notifier(void *opaque, unsigned ring, void *addr, size_t size)
{
    bc_vmm.notifier_events++;
    if (ring < 4) {
        bc_vmm.notifier_addr[ring] = addr;
        if (addr) {
            /* The page must be usable right away. */
            *(volatile uint32_t *)addr = 0x5a5a;
        }
    }
}

static void vmm_vring_error(void *opaque, unsigned ring)
{
    bc_vmm.ring_errors++;
    bc_vmm.last_err_ring = ring;
}

static const VhostUserBackendReqOps vmm_ops = {
    .vring_error = vmm_vring_error,
    .iotlb_translate = vmm_translate,
    .iotlb_access_fail = vmm_access_fail,
    .config_changed = vmm_config_changed,
    .host_notifier = vmm_host_notifier,
};

static void drain_loop(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

void bc_fixture_start(Fixture *f, uint64_t features, uint64_t pf)
{
    CharSocketOptions opts = { .id = "chr0", .timeout_ms = 3000 };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    GError *err = NULL;
    int lfd;

    memset(f, 0, sizeof(*f));
    memset(&bc_vmm, 0, sizeof(bc_vmm));
    bc_vmm.translate_ok = true;
    f->dir = g_dir_make_tmp("test-vubchan-XXXXXX", NULL);
    f->path = g_build_filename(f->dir, "sock", NULL);
    g_strlcpy(sa.sun_path, f->path, sizeof(sa.sun_path));
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 1), 0);
    opts.path = f->path;
    f->chr = char_socket_new(&opts, NULL, &err);
    ck_assert_msg(f->chr && char_socket_open(f->chr, &err), "%s", err ? err->message : "?");
    f->be.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(f->be.fd, 0);
    close(lfd);

    f->be.chan_fd = -1;
    f->be.side_fd = -1;
    g_mutex_init(&f->be.lock);
    g_cond_init(&f->be.cond);
    f->be.log = g_array_new(FALSE, TRUE, sizeof(LoggedMsg));
    f->be.features = features;
    f->be.protocol_features = pf;
    f->be.thread = g_thread_new("fake-backend", be_thread, &f->be);

    f->u = vhost_user_state_new(f->chr, "net0");
    vhost_user_set_backend_req_ops(f->u, &vmm_ops, NULL, 4, NULL);

    f->rb = ram_block_new_memfd("ram0", 1u << 20, &err);
    f->mem = guest_memory_new();
    ck_assert(guest_memory_add(f->mem, 0, f->rb, 0, 1u << 20, &err));
    ck_assert(vhost_dev_init(&f->hdev, "net0", f->u, &user_ops, f->mem, 0, 2, &err));
    ck_assert_msg(vhost_dev_connect(&f->hdev, &err), "%s", err ? err->message : "?");
    for (unsigned i = 0; i < 2; i++) {
        struct vhost_virtqueue *vq = &f->hdev.vqs[i];

        vq->num = RING_NUM;
        vq->desc_gpa = 0x10000 * (i + 1);
        vq->avail_gpa = vq->desc_gpa + 0x1000;
        vq->used_gpa = vq->desc_gpa + 0x2000;
    }
}

void bc_fixture_stop(Fixture *f)
{
    vhost_dev_cleanup(&f->hdev);
    vhost_user_state_free(f->u);
    char_socket_disconnect(f->chr, "test done");
    g_thread_join(f->be.thread);
    close(f->be.fd);
    if (f->be.chan_fd >= 0) {
        close(f->be.chan_fd);
    }
    char_socket_free(f->chr);
    drain_loop();
    guest_memory_free(f->mem);
    ram_block_unref(f->rb);
    g_array_free(f->be.log, TRUE);
    g_cond_clear(&f->be.cond);
    g_mutex_clear(&f->be.lock);
    unlink(f->path);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static const LoggedMsg *be_msg(Fixture *f, guint i)
{
    ck_assert_uint_lt(i, f->be.log->len);
    return &g_array_index(f->be.log, LoggedMsg, i);
}

/* Index of the first logged request `req` at or after `from`, or -1. */
static int be_find(Fixture *f, uint32_t req, guint from)
{
    int found = -1;

    g_mutex_lock(&f->be.lock);
    for (guint i = from; i < f->be.log->len; i++) {
        if (g_array_index(f->be.log, LoggedMsg, i).hdr.request == req) {
            found = (int)i;
            break;
        }
    }
    g_mutex_unlock(&f->be.lock);
    return found;
}

/* Iterates the loop until the fake logged `req` from `from` on (2 s at most). */
static int wait_for_req(Fixture *f, uint32_t req, guint from)
{
    gint64 deadline = g_get_monotonic_time() + 2 * G_TIME_SPAN_SECOND;
    int i;

    while ((i = be_find(f, req, from)) < 0 && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    return i;
}

void bc_msg_make(VhostUserMsg *m, uint32_t req, uint32_t size, bool need_reply)
{
    memset(m, 0, sizeof(*m));
    m->hdr.request = req;
    m->hdr.flags = VHOST_USER_VERSION | (need_reply ? VHOST_USER_NEED_REPLY_MASK : 0);
    m->hdr.size = size;
}

/* The test plays the back-end on the channel while the front-end is idle. */
void bc_chan_send(Fixture *f, const VhostUserMsg *m, const int *fds, size_t nfds)
{
    ut_send_fds(f->be.chan_fd, m, sizeof(m->hdr) + m->hdr.size, fds, nfds);
}

/* Runs the loop until the front-end answered on the channel; returns the status. */
uint64_t bc_chan_reply(Fixture *f, uint32_t req, int *rfd)
{
    gint64 deadline = g_get_monotonic_time() + 2 * G_TIME_SPAN_SECOND;
    struct pollfd pfd = { .fd = f->be.chan_fd, .events = POLLIN };
    VhostUserMsg r;

    while (poll(&pfd, 1, 0) == 0 && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(500);
    }
    ck_assert_msg(chan_read_reply(f->be.chan_fd, &r, rfd), "no reply to %u", req);
    ck_assert_uint_eq(r.hdr.request, req);
    ck_assert_uint_eq(r.hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
    ck_assert_uint_eq(r.hdr.size, 8);
    return r.payload.u64;
}

/* Runs the loop until the connection was dropped (2 s at most). */
void bc_wait_dropped(Fixture *f)
{
    gint64 deadline = g_get_monotonic_time() + 2 * G_TIME_SPAN_SECOND;

    while (char_socket_is_connected(f->chr) && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(500);
    }
    ck_assert(!char_socket_is_connected(f->chr));
    ck_assert(f->u->broken);
}

/* ---- Tests -------------------------------------------------------------- */

START_TEST(test_setup)
{
    Fixture f;
    int i;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    ck_assert_ptr_nonnull(f.u->backend_chan);
    i = be_find(&f, VHOST_USER_SET_BACKEND_REQ_FD, 0);
    ck_assert_int_ge(i, 0);
    ck_assert_uint_eq(be_msg(&f, (guint)i)->nfds, 1);
    /* REPLY_ACK: the back-end confirms it took the channel. */
    ck_assert(be_msg(&f, (guint)i)->hdr.flags & VHOST_USER_NEED_REPLY_MASK);
    ck_assert_int_ge(f.be.chan_fd, 0);
    ck_assert_int_ge(vhost_user_backend_chan_fd(f.u->backend_chan), 0);
    bc_fixture_stop(&f);
}
END_TEST

START_TEST(test_no_backend_req)
{
    Fixture f;

    /* A back-end without BACKEND_REQ sees no channel, as before. */
    bc_fixture_start(&f, F_PROTO | F_V1, PF(MQ) | PF(REPLY_ACK) | PF(CONFIG));
    ck_assert_ptr_null(f.u->backend_chan);
    ck_assert_int_lt(be_find(&f, VHOST_USER_SET_BACKEND_REQ_FD, 0), 0);
    bc_fixture_stop(&f);
}
END_TEST

/* IOTLB miss with NEED_REPLY while the front-end waits for GET_VRING_BASE. */
START_TEST(test_iotlb_miss_during_get_vring_base)
{
    Fixture f;
    GError *err = NULL;
    struct vhost_vring_state s = { .index = 1 };
    const LoggedMsg *m;
    int gi, ii;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_IOTLB_MSG, sizeof(VhostUserIotlb), true);
    f.be.inject.payload.iotlb.iova = 0x5000;
    f.be.inject.payload.iotlb.perm = VHOST_ACCESS_RW;
    f.be.inject.payload.iotlb.type = VHOST_IOTLB_MISS;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;

    ck_assert_msg(user_ops.get_vring_base(&f.hdev, &s, &err), "%s",
                  err ? err->message : "");
    ck_assert_uint_eq(s.num, 42);
    ck_assert(f.be.inject_replied);
    ck_assert_uint_eq(f.be.inject_reply.hdr.request, VHOST_USER_BACKEND_IOTLB_MSG);
    ck_assert_uint_eq(f.be.inject_reply.payload.u64, 0);
    ck_assert_uint_eq(bc_vmm.translations, 1);

    /* No request was sent from inside the other one: the update comes after. */
    gi = be_find(&f, VHOST_USER_GET_VRING_BASE, 0);
    ck_assert_int_lt(be_find(&f, VHOST_USER_IOTLB_MSG, 0), 0);
    ii = wait_for_req(&f, VHOST_USER_IOTLB_MSG, 0);
    ck_assert_int_gt(ii, gi);
    m = be_msg(&f, (guint)ii);
    ck_assert_uint_eq(m->pl.iotlb.type, VHOST_IOTLB_UPDATE);
    ck_assert_uint_eq(m->pl.iotlb.iova, 0x5000);
    ck_assert_uint_eq(m->pl.iotlb.uaddr, 0x7f0000005000ull);
    ck_assert_uint_eq(m->pl.iotlb.size, 0x1000);
    ck_assert_uint_eq(m->pl.iotlb.perm, VHOST_ACCESS_RW);
    ck_assert(m->hdr.flags & VHOST_USER_NEED_REPLY_MASK);
    ck_assert(char_socket_is_connected(f.chr));

    /* A miss the VMM cannot translate is answered with a failure, no update. */
    bc_vmm.translate_ok = false;
    f.be.inject_replied = false;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(user_ops.get_vring_base(&f.hdev, &s, &err));
    ck_assert(f.be.inject_replied);
    ck_assert_uint_ne(f.be.inject_reply.payload.u64, 0);
    drain_loop();
    ck_assert_int_lt(be_find(&f, VHOST_USER_IOTLB_MSG, (guint)ii + 1), 0);
    bc_fixture_stop(&f);
}
END_TEST

/*
 * The update after a miss is translated when it is sent, not when the
 * miss arrived: RAM removed (or moved) in between must not reach the
 * back-end as a stale translation.
 */
START_TEST(test_iotlb_update_retranslated)
{
    Fixture f;
    GError *err = NULL;
    struct vhost_vring_state s = { .index = 1 };
    const LoggedMsg *m;
    int ii;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_IOTLB_MSG, sizeof(VhostUserIotlb), true);
    f.be.inject.payload.iotlb.iova = 0x5000;
    f.be.inject.payload.iotlb.perm = VHOST_ACCESS_RO;
    f.be.inject.payload.iotlb.type = VHOST_IOTLB_MISS;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(user_ops.get_vring_base(&f.hdev, &s, &err));
    /* Moved before the loop sends the update: the new place goes out. */
    bc_vmm.uaddr_base = 0x7e0000000000ull;
    ii = wait_for_req(&f, VHOST_USER_IOTLB_MSG, 0);
    m = be_msg(&f, (guint)ii);
    ck_assert_uint_eq(m->pl.iotlb.uaddr, 0x7e0000005000ull);
    ck_assert_uint_eq(m->pl.iotlb.perm, VHOST_ACCESS_RO);

    /* Gone before the update is sent: nothing goes out. */
    f.be.inject_replied = false;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(user_ops.get_vring_base(&f.hdev, &s, &err));
    ck_assert_uint_eq(f.be.inject_reply.payload.u64, 0);
    bc_vmm.translate_ok = false;
    drain_loop();
    ck_assert_int_lt(be_find(&f, VHOST_USER_IOTLB_MSG, (guint)ii + 1), 0);
    ck_assert(char_socket_is_connected(f.chr));
    bc_vmm.uaddr_base = 0;
    bc_fixture_stop(&f);
}
END_TEST

/* The front-end end of the second fd: answers ask + 1, counts calls. */
static unsigned side_calls;

static bool side_cb(VhostUserState *u, int fd, void *opaque, GError **errp)
{
    uint64_t v;

    side_calls++;
    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL, "side fd: short read");
        return false;
    }
    v++;
    return write(fd, &v, sizeof(v)) == sizeof(v);
}

/*
 * A second registered wait fd next to the channel: the back-end asks on it
 * (and on the channel) while the front-end waits for GET_VRING_BASE, and
 * replies only once both were answered.
 */
START_TEST(test_second_wait_fd)
{
    Fixture f;
    GError *err = NULL;
    struct vhost_vring_state s = { .index = 1 };
    int sp[2];

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    f.be.side_fd = sp[0];
    side_calls = 0;
    vhost_user_add_wait_fd(f.u, sp[1], side_cb, NULL);

    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0, true);
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    f.be.side_on = VHOST_USER_GET_VRING_BASE;
    ck_assert_msg(user_ops.get_vring_base(&f.hdev, &s, &err), "%s",
                  err ? err->message : "");
    ck_assert_uint_eq(s.num, 42);
    ck_assert_uint_eq(side_calls, 1);
    ck_assert_uint_eq(f.be.side_answer, 0x1235);
    ck_assert(f.be.inject_replied);
    ck_assert(char_socket_is_connected(f.chr));

    /* Unregistered, the fd is not served: the back-end never replies. */
    vhost_user_remove_wait_fd(f.u, sp[1]);
    char_socket_set_timeout_ms(f.chr, 300);
    f.be.side_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(!user_ops.get_vring_base(&f.hdev, &s, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT));
    g_clear_error(&err);
    ck_assert_uint_eq(side_calls, 1);
    bc_fixture_stop(&f);
    close(sp[0]);
    close(sp[1]);
}
END_TEST

/*
 * Half a back-end request comes while GET_VRING_BASE waits for its reply,
 * the rest only after that request returned: the request is not held up
 * by the half message, the connection stays, and the loop's watch finishes
 * the message the request path started and answers it.
 */
START_TEST(test_partial_during_request)
{
    Fixture f;
    GError *err = NULL;
    struct vhost_vring_state s = { .index = 1 };
    size_t len;
    gint64 t0;
    uint64_t v;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_VRING_CALL, sizeof(VhostUserVringState), true);
    f.be.inject.payload.state.index = 0;
    len = sizeof(f.be.inject.hdr) + f.be.inject.hdr.size;
    f.be.inject_split = 7;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    t0 = g_get_monotonic_time();
    ck_assert_msg(user_ops.get_vring_base(&f.hdev, &s, &err), "%s",
                  err ? err->message : "");
    /* The chardev's bounds are 2 and 3 s: a read waiting for the rest would show. */
    ck_assert_int_lt((g_get_monotonic_time() - t0) / 1000, 1000);
    ck_assert_uint_eq(s.num, 42);
    ck_assert(char_socket_is_connected(f.chr));

    /* The rest of the header and the payload, in two more pieces. */
    ut_send_fds(f.be.chan_fd, (uint8_t *)&f.be.inject + 7, 9, NULL, 0);
    drain_loop();
    ut_send_fds(f.be.chan_fd, (uint8_t *)&f.be.inject + 16, len - 16, NULL, 0);
    ck_assert_uint_eq(bc_chan_reply(&f, VHOST_USER_BACKEND_VRING_CALL, NULL), 0);
    ck_assert(read(f.hdev.vqs[0].call_fd, &v, 8) == 8);
    ck_assert(char_socket_is_connected(f.chr));
    bc_fixture_stop(&f);
}
END_TEST

/* CONFIG_CHANGE_MSG with NEED_REPLY while the front-end waits for GET_STATUS. */
START_TEST(test_config_change_during_get_status)
{
    Fixture f;
    GError *err = NULL;
    uint8_t status = 0;
    int si, ci;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    f.be.status = 0x7;
    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0, true);
    f.be.inject_on = VHOST_USER_GET_STATUS;

    ck_assert_msg(vhost_user_get_status(f.u, &status, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(status, 0x7);
    ck_assert(f.be.inject_replied);
    ck_assert_uint_eq(f.be.inject_reply.payload.u64, 0);
    ck_assert_uint_eq(bc_vmm.config_changes, 0);

    si = be_find(&f, VHOST_USER_GET_STATUS, 0);
    ci = wait_for_req(&f, VHOST_USER_GET_CONFIG, 0);
    ck_assert_int_gt(ci, si);
    drain_loop();
    ck_assert_uint_eq(bc_vmm.config_changes, 1);
    ck_assert_uint_eq(bc_vmm.config_len, 4);
    ck_assert_uint_eq(bc_vmm.config[0], 0xa0);
    ck_assert_uint_eq(bc_vmm.config[3], 0xa3);
    bc_fixture_stop(&f);
}
END_TEST

/* A back-end request during each kind of front-end request: ack, payload, barrier. */
START_TEST(test_backend_req_during_each_kind)
{
    Fixture f;
    GError *err = NULL;
    uint64_t feat;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    /* Acked request (SET_VRING_NUM with REPLY_ACK). */
    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_VRING_CALL, sizeof(VhostUserVringState), true);
    f.be.inject.payload.state.index = 1;
    f.be.inject_on = VHOST_USER_SET_VRING_NUM;
    ck_assert(user_ops.set_vring_num(&f.hdev, &(struct vhost_vring_state){ 0, 64 }, &err));
    ck_assert(f.be.inject_replied);
    ck_assert_uint_eq(f.be.inject_reply.payload.u64, 0);
    ck_assert(read(f.hdev.vqs[1].call_fd, &feat, 8) == 8);

    /* Payload reply (GET_CONFIG) with a request that needs no answer. */
    f.be.inject_replied = false;
    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_VRING_ERR, sizeof(VhostUserVringState), false);
    f.be.inject.payload.state.index = 0;
    f.be.inject_on = VHOST_USER_GET_CONFIG;
    {
        uint8_t cfg[4];

        ck_assert(vhost_dev_get_config(&f.hdev, cfg, sizeof(cfg), &err));
    }
    ck_assert(!f.be.inject_replied);
    /* The library watches the err eventfd and tells the VMM. */
    ck_assert_uint_eq(bc_vmm.ring_errors, 0);
    drain_loop();
    ck_assert_uint_eq(bc_vmm.ring_errors, 1);
    ck_assert_uint_eq(bc_vmm.last_err_ring, 0);

    /* Front-end IOTLB update (always acked) with an access failure inside. */
    bc_msg_make(&f.be.inject, VHOST_USER_BACKEND_IOTLB_MSG, sizeof(VhostUserIotlb), true);
    f.be.inject.payload.iotlb.type = VHOST_IOTLB_ACCESS_FAIL;
    f.be.inject.payload.iotlb.perm = VHOST_ACCESS_WO;
    f.be.inject_on = VHOST_USER_IOTLB_MSG;
    ck_assert(vhost_user_iotlb_invalidate(f.u, 0x1000, 0x1000, &err));
    ck_assert(f.be.inject_replied);
    drain_loop();
    ck_assert_uint_eq(bc_vmm.access_fails, 1);
    (void)feat;
    bc_fixture_stop(&f);
}
END_TEST

START_TEST(test_frontend_messages)
{
    static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    Fixture f;
    GError *err = NULL;
    const LoggedMsg *m;
    int fd = -1, i;
    guint n;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    n = f.be.log->len;
    ck_assert(vhost_user_vring_kick(f.u, 1, &err));
    ck_assert(vhost_user_iotlb_update(f.u, 0x2000, 0x1000, 0x7000, VHOST_ACCESS_RO, &err));
    ck_assert(vhost_user_set_status(f.u, 0xf, &err));
    ck_assert(vhost_user_get_shared_object(f.u, uuid, &fd, &err));
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert(user_ops.reset_device(&f.hdev, &err));

    i = be_find(&f, VHOST_USER_VRING_KICK, n);
    ck_assert_int_ge(i, 0);
    ck_assert_uint_eq(be_msg(&f, (guint)i)->pl.state.index, 1);
    m = be_msg(&f, (guint)be_find(&f, VHOST_USER_IOTLB_MSG, n));
    ck_assert_uint_eq(m->pl.iotlb.type, VHOST_IOTLB_UPDATE);
    ck_assert_uint_eq(m->pl.iotlb.uaddr, 0x7000);
    ck_assert_uint_eq(f.be.status, 0xf);
    m = be_msg(&f, (guint)be_find(&f, VHOST_USER_GET_SHARED_OBJECT, n));
    ck_assert_int_eq(memcmp(m->pl.object.uuid, uuid, 16), 0);
    ck_assert_int_ge(be_find(&f, VHOST_USER_RESET_DEVICE, n), 0);

    /* Caller mistakes are refused before anything is sent. */
    ck_assert(!vhost_user_vring_kick(f.u, 2, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE));
    g_clear_error(&err);
    ck_assert(!vhost_user_iotlb_update(f.u, 0x2000, 0, 0x7000, VHOST_ACCESS_RO, &err));
    g_clear_error(&err);
    ck_assert(char_socket_is_connected(f.chr));
    bc_fixture_stop(&f);
}
END_TEST

START_TEST(test_reset_owner_fallback)
{
    Fixture f;
    GError *err = NULL;
    guint n;

    /* Without RESET_DEVICE (and without STATUS) the old RESET_OWNER is used. */
    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF & ~(PF(RESET_DEVICE) | PF(STATUS)));
    n = f.be.log->len;
    ck_assert(user_ops.reset_device(&f.hdev, &err));
    ck_assert_int_ge(be_find(&f, VHOST_USER_RESET_OWNER, n), 0);
    ck_assert_int_lt(be_find(&f, VHOST_USER_RESET_DEVICE, n), 0);
    ck_assert(!vhost_user_set_status(f.u, 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH));
    g_clear_error(&err);
    bc_fixture_stop(&f);
}
END_TEST

/* The back-end closing its end between messages drops the connection. */
START_TEST(test_channel_closed_idle)
{
    Fixture f;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    close(f.be.chan_fd);
    f.be.chan_fd = -1;
    bc_wait_dropped(&f);
    ck_assert_ptr_nonnull(strstr(vhost_user_backend_chan_error(f.u->backend_chan)->message,
                                 "net0: back-end channel: closed by the back-end"));
    bc_fixture_stop(&f);
}
END_TEST

START_TEST(test_status_in_start_stop)
{
    Fixture f;
    GError *err = NULL;
    int sf, st, dok, stop0;

    bc_fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    ck_assert(vhost_dev_set_acked_features(&f.hdev, F_V1, &err));
    ck_assert_msg(vhost_dev_start(&f.hdev, &err), "%s", err ? err->message : "");
    sf = be_find(&f, VHOST_USER_SET_FEATURES, 0);
    st = be_find(&f, VHOST_USER_SET_STATUS, 0);
    ck_assert_int_eq(st, sf + 1);
    ck_assert_uint_eq(be_msg(&f, (guint)st)->pl.u64,
                      VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                      VIRTIO_CONFIG_S_FEATURES_OK);
    dok = be_find(&f, VHOST_USER_SET_STATUS, (guint)st + 1);
    ck_assert_int_eq(dok, (int)f.be.log->len - 1);
    ck_assert(be_msg(&f, (guint)dok)->pl.u64 & VIRTIO_CONFIG_S_DRIVER_OK);

    vhost_dev_stop(&f.hdev);
    stop0 = be_find(&f, VHOST_USER_SET_STATUS, (guint)dok + 1);
    ck_assert_int_eq(stop0, (int)f.be.log->len - 1);
    ck_assert_uint_eq(be_msg(&f, (guint)stop0)->pl.u64, 0);
    ck_assert_uint_eq(f.be.status, 0);
    bc_fixture_stop(&f);
}
END_TEST

START_TEST(test_iommu_needs_backend_req)
{
    Fixture f;
    GError *err = NULL;

    bc_fixture_start(&f, F_PROTO | F_V1 | F_IOMMU, PF(REPLY_ACK));
    ck_assert(vhost_dev_set_acked_features(&f.hdev, F_V1 | F_IOMMU, &err));
    ck_assert(!vhost_dev_start(&f.hdev, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH));
    ck_assert_ptr_nonnull(strstr(err->message, "net0: SET_FEATURES: VIRTIO_F_IOMMU_PLATFORM"));
    g_clear_error(&err);
    ck_assert(char_socket_is_connected(f.chr));
    bc_fixture_stop(&f);

    bc_fixture_start(&f, F_PROTO | F_V1 | F_IOMMU, ALL_PF);
    ck_assert(vhost_dev_set_acked_features(&f.hdev, F_V1 | F_IOMMU, &err));
    ck_assert_msg(vhost_dev_start(&f.hdev, &err), "%s", err ? err->message : "");
    vhost_dev_stop(&f.hdev);
    bc_fixture_stop(&f);
}
END_TEST

static Suite *chan_suite(void)
{
    Suite *s = suite_create("vhost-user-backend-chan");
    TCase *tc = tcase_create("channel");
    TCase *bad = tcase_create("malformed");

    tcase_add_test(tc, test_setup);
    tcase_add_test(tc, test_no_backend_req);
    tcase_add_test(tc, test_iotlb_miss_during_get_vring_base);
    tcase_add_test(tc, test_iotlb_update_retranslated);
    tcase_add_test(tc, test_second_wait_fd);
    tcase_add_test(tc, test_partial_during_request);
    tcase_add_test(tc, test_config_change_during_get_status);
    tcase_add_test(tc, test_backend_req_during_each_kind);
    tcase_add_test(tc, test_frontend_messages);
    tcase_add_test(tc, test_reset_owner_fallback);
    tcase_add_test(tc, test_channel_closed_idle);
    tcase_add_test(tc, test_status_in_start_stop);
    tcase_add_test(tc, test_iommu_needs_backend_req);
    backend_chan_idle_add_tests(tc);
    suite_add_tcase(s, tc);
    backend_chan_malformed_add_tests(bad);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chan_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
