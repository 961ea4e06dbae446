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
static struct {
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
} vmm;

static bool vmm_translate(void *opaque, uint64_t iova, uint8_t perm, uint64_t *uaddr,
                          uint64_t *size, uint8_t *out_perm)
{
    vmm.translations++;
    *uaddr = (vmm.uaddr_base ? vmm.uaddr_base : 0x7f0000000000ull) + iova;
    *size = 0x1000;
    *out_perm = perm;
    return vmm.translate_ok;
}

static void vmm_access_fail(void *opaque, uint64_t iova, uint64_t size, uint8_t perm)
{
    vmm.access_fails++;
}

static void vmm_config_changed(void *opaque, const uint8_t *config, uint32_t len)
{
    vmm.config_changes++;
    vmm.config_len = len;
    if (config) {
        memcpy(vmm.config, config, MIN(len, sizeof(vmm.config)));
    }
}

static void vmm_host_notifier(void *opaque, unsigned ring, void *addr, size_t size)
{
    vmm.notifier_events++;
    if (ring < 4) {
        vmm.notifier_addr[ring] = addr;
        if (addr) {
            /* The page must be usable right away. */
            *(volatile uint32_t *)addr = 0x5a5a;
        }
    }
}

static void vmm_vring_error(void *opaque, unsigned ring)
{
    vmm.ring_errors++;
    vmm.last_err_ring = ring;
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

static void fixture_start(Fixture *f, uint64_t features, uint64_t pf)
{
    CharSocketOptions opts = { .id = "chr0", .timeout_ms = 3000 };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    GError *err = NULL;
    int lfd;

    memset(f, 0, sizeof(*f));
    memset(&vmm, 0, sizeof(vmm));
    vmm.translate_ok = true;
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

static void fixture_stop(Fixture *f)
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

static void msg_make(VhostUserMsg *m, uint32_t req, uint32_t size, bool need_reply)
{
    memset(m, 0, sizeof(*m));
    m->hdr.request = req;
    m->hdr.flags = VHOST_USER_VERSION | (need_reply ? VHOST_USER_NEED_REPLY_MASK : 0);
    m->hdr.size = size;
}

/* The test plays the back-end on the channel while the front-end is idle. */
static void chan_send(Fixture *f, const VhostUserMsg *m, const int *fds, size_t nfds)
{
    ut_send_fds(f->be.chan_fd, m, sizeof(m->hdr) + m->hdr.size, fds, nfds);
}

/* Runs the loop until the front-end answered on the channel; returns the status. */
static uint64_t chan_reply(Fixture *f, uint32_t req, int *rfd)
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
static void wait_dropped(Fixture *f)
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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    ck_assert_ptr_nonnull(f.u->backend_chan);
    i = be_find(&f, VHOST_USER_SET_BACKEND_REQ_FD, 0);
    ck_assert_int_ge(i, 0);
    ck_assert_uint_eq(be_msg(&f, (guint)i)->nfds, 1);
    /* REPLY_ACK: the back-end confirms it took the channel. */
    ck_assert(be_msg(&f, (guint)i)->hdr.flags & VHOST_USER_NEED_REPLY_MASK);
    ck_assert_int_ge(f.be.chan_fd, 0);
    ck_assert_int_ge(vhost_user_backend_chan_fd(f.u->backend_chan), 0);
    fixture_stop(&f);
}
END_TEST

START_TEST(test_no_backend_req)
{
    Fixture f;

    /* A back-end without BACKEND_REQ sees no channel, as before. */
    fixture_start(&f, F_PROTO | F_V1, PF(MQ) | PF(REPLY_ACK) | PF(CONFIG));
    ck_assert_ptr_null(f.u->backend_chan);
    ck_assert_int_lt(be_find(&f, VHOST_USER_SET_BACKEND_REQ_FD, 0), 0);
    fixture_stop(&f);
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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    msg_make(&f.be.inject, VHOST_USER_BACKEND_IOTLB_MSG, sizeof(VhostUserIotlb), true);
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
    ck_assert_uint_eq(vmm.translations, 1);

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
    vmm.translate_ok = false;
    f.be.inject_replied = false;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(user_ops.get_vring_base(&f.hdev, &s, &err));
    ck_assert(f.be.inject_replied);
    ck_assert_uint_ne(f.be.inject_reply.payload.u64, 0);
    drain_loop();
    ck_assert_int_lt(be_find(&f, VHOST_USER_IOTLB_MSG, (guint)ii + 1), 0);
    fixture_stop(&f);
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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    msg_make(&f.be.inject, VHOST_USER_BACKEND_IOTLB_MSG, sizeof(VhostUserIotlb), true);
    f.be.inject.payload.iotlb.iova = 0x5000;
    f.be.inject.payload.iotlb.perm = VHOST_ACCESS_RO;
    f.be.inject.payload.iotlb.type = VHOST_IOTLB_MISS;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(user_ops.get_vring_base(&f.hdev, &s, &err));
    /* Moved before the loop sends the update: the new place goes out. */
    vmm.uaddr_base = 0x7e0000000000ull;
    ii = wait_for_req(&f, VHOST_USER_IOTLB_MSG, 0);
    m = be_msg(&f, (guint)ii);
    ck_assert_uint_eq(m->pl.iotlb.uaddr, 0x7e0000005000ull);
    ck_assert_uint_eq(m->pl.iotlb.perm, VHOST_ACCESS_RO);

    /* Gone before the update is sent: nothing goes out. */
    f.be.inject_replied = false;
    f.be.inject_on = VHOST_USER_GET_VRING_BASE;
    ck_assert(user_ops.get_vring_base(&f.hdev, &s, &err));
    ck_assert_uint_eq(f.be.inject_reply.payload.u64, 0);
    vmm.translate_ok = false;
    drain_loop();
    ck_assert_int_lt(be_find(&f, VHOST_USER_IOTLB_MSG, (guint)ii + 1), 0);
    ck_assert(char_socket_is_connected(f.chr));
    vmm.uaddr_base = 0;
    fixture_stop(&f);
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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    f.be.side_fd = sp[0];
    side_calls = 0;
    vhost_user_add_wait_fd(f.u, sp[1], side_cb, NULL);

    msg_make(&f.be.inject, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0, true);
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
    fixture_stop(&f);
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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    msg_make(&f.be.inject, VHOST_USER_BACKEND_VRING_CALL, sizeof(VhostUserVringState), true);
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
    ck_assert_uint_eq(chan_reply(&f, VHOST_USER_BACKEND_VRING_CALL, NULL), 0);
    ck_assert(read(f.hdev.vqs[0].call_fd, &v, 8) == 8);
    ck_assert(char_socket_is_connected(f.chr));
    fixture_stop(&f);
}
END_TEST

/* CONFIG_CHANGE_MSG with NEED_REPLY while the front-end waits for GET_STATUS. */
START_TEST(test_config_change_during_get_status)
{
    Fixture f;
    GError *err = NULL;
    uint8_t status = 0;
    int si, ci;

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    f.be.status = 0x7;
    msg_make(&f.be.inject, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0, true);
    f.be.inject_on = VHOST_USER_GET_STATUS;

    ck_assert_msg(vhost_user_get_status(f.u, &status, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(status, 0x7);
    ck_assert(f.be.inject_replied);
    ck_assert_uint_eq(f.be.inject_reply.payload.u64, 0);
    ck_assert_uint_eq(vmm.config_changes, 0);

    si = be_find(&f, VHOST_USER_GET_STATUS, 0);
    ci = wait_for_req(&f, VHOST_USER_GET_CONFIG, 0);
    ck_assert_int_gt(ci, si);
    drain_loop();
    ck_assert_uint_eq(vmm.config_changes, 1);
    ck_assert_uint_eq(vmm.config_len, 4);
    ck_assert_uint_eq(vmm.config[0], 0xa0);
    ck_assert_uint_eq(vmm.config[3], 0xa3);
    fixture_stop(&f);
}
END_TEST

/* A back-end request during each kind of front-end request: ack, payload, barrier. */
START_TEST(test_backend_req_during_each_kind)
{
    Fixture f;
    GError *err = NULL;
    uint64_t feat;

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    /* Acked request (SET_VRING_NUM with REPLY_ACK). */
    msg_make(&f.be.inject, VHOST_USER_BACKEND_VRING_CALL, sizeof(VhostUserVringState), true);
    f.be.inject.payload.state.index = 1;
    f.be.inject_on = VHOST_USER_SET_VRING_NUM;
    ck_assert(user_ops.set_vring_num(&f.hdev, &(struct vhost_vring_state){ 0, 64 }, &err));
    ck_assert(f.be.inject_replied);
    ck_assert_uint_eq(f.be.inject_reply.payload.u64, 0);
    ck_assert(read(f.hdev.vqs[1].call_fd, &feat, 8) == 8);

    /* Payload reply (GET_CONFIG) with a request that needs no answer. */
    f.be.inject_replied = false;
    msg_make(&f.be.inject, VHOST_USER_BACKEND_VRING_ERR, sizeof(VhostUserVringState), false);
    f.be.inject.payload.state.index = 0;
    f.be.inject_on = VHOST_USER_GET_CONFIG;
    {
        uint8_t cfg[4];

        ck_assert(vhost_dev_get_config(&f.hdev, cfg, sizeof(cfg), &err));
    }
    ck_assert(!f.be.inject_replied);
    /* The library watches the err eventfd and tells the VMM. */
    ck_assert_uint_eq(vmm.ring_errors, 0);
    drain_loop();
    ck_assert_uint_eq(vmm.ring_errors, 1);
    ck_assert_uint_eq(vmm.last_err_ring, 0);

    /* Front-end IOTLB update (always acked) with an access failure inside. */
    msg_make(&f.be.inject, VHOST_USER_BACKEND_IOTLB_MSG, sizeof(VhostUserIotlb), true);
    f.be.inject.payload.iotlb.type = VHOST_IOTLB_ACCESS_FAIL;
    f.be.inject.payload.iotlb.perm = VHOST_ACCESS_WO;
    f.be.inject_on = VHOST_USER_IOTLB_MSG;
    ck_assert(vhost_user_iotlb_invalidate(f.u, 0x1000, 0x1000, &err));
    ck_assert(f.be.inject_replied);
    drain_loop();
    ck_assert_uint_eq(vmm.access_fails, 1);
    (void)feat;
    fixture_stop(&f);
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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
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
    fixture_stop(&f);
}
END_TEST

START_TEST(test_reset_owner_fallback)
{
    Fixture f;
    GError *err = NULL;
    guint n;

    /* Without RESET_DEVICE (and without STATUS) the old RESET_OWNER is used. */
    fixture_start(&f, F_PROTO | F_V1, ALL_PF & ~(PF(RESET_DEVICE) | PF(STATUS)));
    n = f.be.log->len;
    ck_assert(user_ops.reset_device(&f.hdev, &err));
    ck_assert_int_ge(be_find(&f, VHOST_USER_RESET_OWNER, n), 0);
    ck_assert_int_lt(be_find(&f, VHOST_USER_RESET_DEVICE, n), 0);
    ck_assert(!vhost_user_set_status(f.u, 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH));
    g_clear_error(&err);
    fixture_stop(&f);
}
END_TEST

/* The back-end closing its end between messages drops the connection. */
START_TEST(test_channel_closed_idle)
{
    Fixture f;

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    close(f.be.chan_fd);
    f.be.chan_fd = -1;
    wait_dropped(&f);
    ck_assert_ptr_nonnull(strstr(vhost_user_backend_chan_error(f.u->backend_chan)->message,
                                 "net0: back-end channel: closed by the back-end"));
    fixture_stop(&f);
}
END_TEST

START_TEST(test_status_in_start_stop)
{
    Fixture f;
    GError *err = NULL;
    int sf, st, dok, stop0;

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
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
    fixture_stop(&f);
}
END_TEST

START_TEST(test_iommu_needs_backend_req)
{
    Fixture f;
    GError *err = NULL;

    fixture_start(&f, F_PROTO | F_V1 | F_IOMMU, PF(REPLY_ACK));
    ck_assert(vhost_dev_set_acked_features(&f.hdev, F_V1 | F_IOMMU, &err));
    ck_assert(!vhost_dev_start(&f.hdev, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH));
    ck_assert_ptr_nonnull(strstr(err->message, "net0: SET_FEATURES: VIRTIO_F_IOMMU_PLATFORM"));
    g_clear_error(&err);
    ck_assert(char_socket_is_connected(f.chr));
    fixture_stop(&f);

    fixture_start(&f, F_PROTO | F_V1 | F_IOMMU, ALL_PF);
    ck_assert(vhost_dev_set_acked_features(&f.hdev, F_V1 | F_IOMMU, &err));
    ck_assert_msg(vhost_dev_start(&f.hdev, &err), "%s", err ? err->message : "");
    vhost_dev_stop(&f.hdev);
    fixture_stop(&f);
}
END_TEST

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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF);
    maps_base = ut_count_maps("memfd:vubtest");

    msg_make(&m, VHOST_USER_BACKEND_VRING_CALL, sizeof(VhostUserVringState), true);
    m.payload.state.index = 0;
    chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert(read(f.hdev.vqs[0].call_fd, &v, 8) == 8);

    /* Host notifier: a page of a memfd, mapped and handed to the VMM. */
    memfd = memfd_create("vubtest", MFD_CLOEXEC);
    ck_assert_int_eq(ftruncate(memfd, 2 * getpagesize()), 0);
    msg_make(&m, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, sizeof(VhostUserVringArea), true);
    m.payload.area.u64 = 1;
    m.payload.area.size = (uint64_t)getpagesize();
    m.payload.area.offset = (uint64_t)getpagesize();
    chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_ptr_nonnull(vmm.notifier_addr[1]);
    ck_assert_uint_eq(vhost_user_backend_chan_mapped_notifiers(f.u->backend_chan), 1);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base + 1);
    {
        uint32_t seen = 0;

        ck_assert(pread(memfd, &seen, 4, getpagesize()) == 4);
        ck_assert_uint_eq(seen, 0x5a5a);
    }
    /* Withdrawn (NOFD): unmapped, the VMM told first. */
    m.payload.area.u64 = 1 | VHOST_USER_VRING_NOFD_MASK;
    chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_ptr_null(vmm.notifier_addr[1]);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);

    /* Mapped again, then unmapped when the device stops. */
    m.payload.area.u64 = 0;
    chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base + 1);
    ck_assert(vhost_dev_start(&f.hdev, NULL));
    vhost_dev_stop(&f.hdev);
    ck_assert_ptr_null(vmm.notifier_addr[0]);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);

    /* Shared objects: add, duplicate add fails, lookup returns an fd, remove. */
    msg_make(&m, VHOST_USER_BACKEND_SHARED_OBJECT_ADD, sizeof(VhostUserShared), true);
    memcpy(m.payload.object.uuid, uuid, 16);
    chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(vhost_user_shared_count(), 1);
    chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_ne(chan_reply(&f, m.hdr.request, NULL), 0);
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP;
    m.hdr.flags = VHOST_USER_VERSION;   /* answered even without NEED_REPLY */
    chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, &rfd), 0);
    ck_assert_int_ge(rfd, 0);
    close(rfd);
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE;
    m.hdr.flags |= VHOST_USER_NEED_REPLY_MASK;
    chan_send(&f, &m, NULL, 0);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(vhost_user_shared_count(), 0);
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP;
    chan_send(&f, &m, NULL, 0);
    ck_assert_uint_ne(chan_reply(&f, m.hdr.request, &rfd), 0);
    ck_assert_int_lt(rfd, 0);

    /* An object left registered dies with its connection. */
    m.hdr.request = VHOST_USER_BACKEND_SHARED_OBJECT_ADD;
    chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(vhost_user_shared_count(), 1);
    /* Map a notifier once more: the reset must unmap it. */
    msg_make(&m, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, sizeof(VhostUserVringArea), true);
    m.payload.area.size = (uint64_t)getpagesize();
    chan_send(&f, &m, &memfd, 1);
    ck_assert_uint_eq(chan_reply(&f, m.hdr.request, NULL), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base + 1);
    vhost_user_state_reset(f.u);
    ck_assert_ptr_null(f.u->backend_chan);
    ck_assert_uint_eq(vhost_user_shared_count(), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);
    ck_assert_ptr_null(vmm.notifier_addr[0]);

    close(memfd);
    fixture_stop(&f);
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

    msg_make(&m, c->req, c->size, true);
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

    fixture_start(&f, F_PROTO | F_V1, ALL_PF & ~c->pf_clear);
    maps_base = ut_count_maps("memfd:vubtest");
    for (int i = 0; i < c->nfds; i++) {
        memfds[i] = memfd_create("vubtest", MFD_CLOEXEC);
        ck_assert_int_eq(ftruncate(memfds[i], getpagesize()), 0);
    }
    send_bad(&f, c, memfds);
    for (int i = 0; i < c->nfds; i++) {
        close(memfds[i]);
    }
    wait_dropped(&f);
    check_bad_error(&f, c, vhost_user_backend_chan_error(f.u->backend_chan));
    ck_assert_int_lt(vhost_user_backend_chan_fd(f.u->backend_chan), 0);
    ck_assert_uint_eq(vhost_user_backend_chan_mapped_notifiers(f.u->backend_chan), 0);
    ck_assert_uint_eq(ut_count_maps("memfd:vubtest"), maps_base);
    fixture_stop(&f);
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
    fixture_start(&f, F_PROTO | F_V1, ALL_PF & ~c->pf_clear);
    (void)memfds;
    msg_make(&f.be.inject, c->req, c->size, false);
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
    fixture_stop(&f);
    ck_assert_uint_eq(ut_count_fds(), fd_base);
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
    tcase_add_test(tc, test_idle_requests);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(bad, test_bad_request_idle, 0, G_N_ELEMENTS(bad_cases));
    tcase_add_loop_test(bad, test_bad_request_during_request, 0, G_N_ELEMENTS(bad_cases));
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
