/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scriptable vhost-user back-end for the qtest suite; see test-backend.h.
 *
 * Security model: the front-end under test is as untrusted here as a
 * back-end is to the library. Every size, count, index and fd it sends is
 * checked before use; a malformed request is recorded as a violation and
 * the connection is dropped, with every received fd closed.
 *
 * This file owns the server thread, the wire I/O, the dispatch of each
 * request (fault injection, reply) and the test-facing controls; what a
 * valid request does to a connection's state is test-backend-handle.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "util/vhost-user-msg.h"
#include "test-backend.h"
#include "test-backend-int.h"

#define TB_MAX_VIOLATION_MSGS   16
/* A request that stalls half-way must not wedge the back-end thread. */
#define TB_RECV_TIMEOUT_S       5
#define TB_OVERSIZED_SIZE       0x10000u

void tb_config_default(TbConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->features = (1ull << VIRTIO_F_VERSION_1) |
                    (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
                    (1ull << VIRTIO_RING_F_EVENT_IDX);
    cfg->protocol_features = (1ull << VHOST_USER_PROTOCOL_F_MQ) |
                             (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                             (1ull << VHOST_USER_PROTOCOL_F_CONFIG);
    cfg->queue_num = 1;
    for (unsigned i = 0; i < sizeof(cfg->config); i++) {
        cfg->config[i] = (uint8_t)i;
    }
}

/* ---- Small helpers ---------------------------------------------------- */

void tb_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

void tb_close_fds(int *fds, size_t nfds)
{
    for (size_t i = 0; i < nfds; i++) {
        tb_close_fd(&fds[i]);
    }
}

void tb_msg_free(TbMsg *msg)
{
    if (msg) {
        g_free(msg->payload);
        g_free(msg);
    }
}

TbMsg *tb_msg_copy(const TbMsg *m)
{
    TbMsg *c = g_memdup2(m, sizeof(*m));
    c->payload = g_memdup2(m->payload, m->size);
    return c;
}

TbConn *tb_conn_get_locked(TestBackend *tb, unsigned conn)
{
    if (conn == 0 || conn > tb->conns->len) {
        return NULL;
    }
    return g_ptr_array_index(tb->conns, conn - 1);
}

/* Records a front-end spec violation; called with the lock held. */
void G_GNUC_PRINTF(3, 4)
tb_violation_locked(TestBackend *tb, TbConn *c, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    tb->violations++;
    if (tb->violation_msgs->len < TB_MAX_VIOLATION_MSGS) {
        g_ptr_array_add(tb->violation_msgs,
                        g_strdup_printf("conn %u: %s", c->id, text));
    }
    g_test_message("test-backend: conn %u: front-end violation: %s", c->id, text);
    g_cond_broadcast(&tb->cond);
}

void tb_region_unmap(TbRegion *r)
{
    if (r->map) {
        munmap(r->map, r->map_len);
    }
    memset(r, 0, sizeof(*r));
}

void tb_log_unmap(TbConn *c)
{
    if (c->log_map) {
        munmap(c->log_map, c->log_len);
        c->log_map = NULL;
        c->log_len = 0;
    }
}

/* Tears down everything a connection holds; the log stays. Lock held. */
static void tb_conn_close_locked(TestBackend *tb, TbConn *c)
{
    if (c->closed) {
        return;
    }
    if (c->src) {
        g_source_destroy(c->src);
        g_source_unref(c->src);
        c->src = NULL;
    }
    tb_close_fd(&c->fd);
    for (unsigned i = 0; i < G_N_ELEMENTS(c->regions); i++) {
        tb_region_unmap(&c->regions[i]);
    }
    for (unsigned i = 0; i < TB_MAX_RINGS; i++) {
        tb_close_fd(&c->rings[i].kick_fd);
        tb_close_fd(&c->rings[i].call_fd);
        tb_close_fd(&c->rings[i].err_fd);
        c->rings[i].started = false;
    }
    tb_close_fd(&c->backend_req_fd);
    tb_close_fd(&c->reply_fd);
    tb_log_unmap(c);
    c->closed = true;
    g_cond_broadcast(&tb->cond);
}

static void tb_conn_free(gpointer p)
{
    TbConn *c = p;

    g_ptr_array_unref(c->log);
    g_free(c);
}

/* ---- Wire I/O --------------------------------------------------------- */

int tb_recv_full(int fd, void *buf, size_t len, int *fds, size_t *nfds, char **why)
{
    size_t done = 0;

    while (done < len) {
        union {
            char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
            struct cmsghdr align;
        } control;
        struct iovec iov = { (char *)buf + done, len - done };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == ECONNRESET && done == 0) {
            /* The peer closed with our reply unread: a hang-up, not a fault. */
            return 0;
        }
        if (n < 0) {
            *why = g_strdup_printf("recvmsg: %s", g_strerror(errno));
            return -1;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
                continue;
            }
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *in = (int *)CMSG_DATA(cm);
            for (size_t i = 0; i < k; i++) {
                int f;
                memcpy(&f, &in[i], sizeof(f));
                if (*nfds < VHOST_USER_MAX_FDS) {
                    fds[(*nfds)++] = f;
                } else {
                    close(f);
                    if (!*why) {
                        *why = g_strdup("more than VHOST_USER_MAX_FDS fds");
                    }
                }
            }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            g_free(*why);
            *why = g_strdup("fd list truncated (MSG_CTRUNC)");
            return -1;
        }
        if (*why) {
            return -1;
        }
        if (n == 0) {
            if (done == 0) {
                return 0;
            }
            *why = g_strdup_printf("EOF after %zu of %zu bytes", done, len);
            return -1;
        }
        done += n;
    }
    return 1;
}

bool tb_send(int fd, const VhostUserHeader *hdr, const void *payload,
             size_t len, const int *fds, size_t nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * TB_SEND_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov[2] = {
        { (void *)hdr, sizeof(*hdr) },
        { (void *)payload, len },
    };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
    size_t total = sizeof(*hdr) + len;
    ssize_t n;

    g_assert(nfds <= TB_SEND_MAX_FDS);
    if (nfds) {
        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    do {
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    /* Replies are small: a short send on a blocking socket means trouble. */
    return n == (ssize_t)total;
}

/* ---- Request handling ------------------------------------------------- */

static TbAction tb_pick_action(TestBackend *tb, TbConn *c, const TbMsg *m)
{
    TbAction act = { TB_FAULT_NONE, 0, 0 };
    TbHook hook;
    void *opaque;

    g_mutex_lock(&tb->lock);
    hook = tb->hook;
    opaque = tb->hook_opaque;
    g_mutex_unlock(&tb->lock);
    if (hook) {
        act = hook(tb, c->id, m, opaque);
        if (act.fault != TB_FAULT_NONE) {
            return act;
        }
    }
    g_mutex_lock(&tb->lock);
    for (unsigned i = 0; i < tb->rules->len; i++) {
        const TbRule *r = &g_array_index(tb->rules, TbRule, i);
        if ((r->conn == 0 || r->conn == c->id) &&
            (r->request == 0 || r->request == m->request)) {
            act = r->action;
            break;
        }
    }
    g_mutex_unlock(&tb->lock);
    return act;
}

/* Sends the reply, bent by the fault in act. */
static bool tb_reply(TbConn *c, uint32_t request, const VhostUserPayload *payload,
                     uint32_t size, const TbAction *act)
{
    VhostUserHeader hdr = {
        .request = request,
        .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
        .size = size,
    };
    int efds[2] = { -1, -1 };
    size_t nfds = 0;
    size_t send_len = size;
    bool ok;

    switch (act->fault) {
    case TB_FAULT_WRONG_CODE:
        hdr.request = request + 1 < VHOST_USER_MAX ? request + 1 : request - 1;
        break;
    case TB_FAULT_NO_REPLY_FLAG:
        hdr.flags = VHOST_USER_VERSION;
        break;
    case TB_FAULT_BAD_VERSION:
        hdr.flags = 0x2 | VHOST_USER_REPLY_MASK;
        break;
    case TB_FAULT_OVERSIZED:
        /* Only the real bytes follow: the front-end must reject on the header. */
        hdr.size = TB_OVERSIZED_SIZE;
        break;
    case TB_FAULT_UNDERSIZED:
        hdr.size = 4;
        send_len = MIN(size, 4);
        break;
    case TB_FAULT_EXTRA_FDS:
        for (unsigned i = 0; i < 2; i++) {
            efds[i] = eventfd(0, EFD_CLOEXEC);
            g_assert(efds[i] >= 0);
        }
        nfds = 2;
        break;
    default:
        break;
    }
    if (c->reply_fd >= 0 && nfds == 0) {
        efds[0] = c->reply_fd;
        c->reply_fd = -1;
        nfds = 1;
    }
    if (act->fault == TB_FAULT_DROP_MID_HEADER || act->fault == TB_FAULT_DROP_MID_REPLY) {
        g_autofree uint8_t *buf = g_malloc(sizeof(hdr) + size);
        size_t cut = act->fault == TB_FAULT_DROP_MID_HEADER ? sizeof(hdr) / 2
                                                            : sizeof(hdr) + size / 2;

        memcpy(buf, &hdr, sizeof(hdr));
        memcpy(buf + sizeof(hdr), payload, size);
        (void)send(c->fd, buf, cut, MSG_NOSIGNAL);
        return false;       /* the caller closes: the rest never comes */
    }
    if (act->fault == TB_FAULT_STALL_MID_HEADER) {
        /* The connection stays open: the front-end must give up by itself. */
        return send(c->fd, &hdr, sizeof(hdr) / 2, MSG_NOSIGNAL) == sizeof(hdr) / 2;
    }
    ok = tb_send(c->fd, &hdr, payload, send_len, efds, nfds);
    /* The receiver got its own copies; ours go now, whatever happened. */
    tb_close_fds(efds, 2);
    return ok;
}

static void tb_record(TestBackend *tb, TbConn *c, const VhostUserMsg *msg,
                      size_t nfds, int ring, TbMsg **copy)
{
    TbMsg *m = g_new0(TbMsg, 1);

    m->request = msg->hdr.request;
    m->flags = msg->hdr.flags;
    m->size = msg->hdr.size;
    m->payload = g_memdup2(msg->payload.raw, msg->hdr.size);
    m->nfds = nfds;
    m->ring = ring;
    g_mutex_lock(&tb->lock);
    g_ptr_array_add(c->log, m);
    *copy = tb_msg_copy(m);
    g_cond_broadcast(&tb->cond);
    g_mutex_unlock(&tb->lock);
}

/* Reads and serves one request; false when the connection is to be closed. */
static bool tb_serve_one(TestBackend *tb, TbConn *c)
{
    g_autofree VhostUserMsg *msg = g_new0(VhostUserMsg, 1);
    g_autofree VhostUserPayload *reply = g_new0(VhostUserPayload, 1);
    g_autoptr(GError) err = NULL;
    g_autofree char *why = NULL;
    int fds[VHOST_USER_MAX_FDS];
    size_t nfds = 0;
    const VhostUserMsgInfo *info;
    TbMsg *copy = NULL;
    TbAction act;
    uint32_t reply_size;
    bool has_reply;
    int r;

    r = tb_recv_full(c->fd, &msg->hdr, sizeof(msg->hdr), fds, &nfds, &why);
    if (r == 1 && msg->hdr.size > VHOST_USER_MAX_PAYLOAD_SIZE) {
        why = g_strdup_printf("request %u: size %u above %u", msg->hdr.request,
                              msg->hdr.size, VHOST_USER_MAX_PAYLOAD_SIZE);
        r = -1;
    }
    if (r == 1 && msg->hdr.size) {
        r = tb_recv_full(c->fd, msg->payload.raw, msg->hdr.size, fds, &nfds, &why);
        if (r == 0) {
            why = g_strdup("EOF before the payload");
            r = -1;
        }
    }
    if (r <= 0) {
        tb_close_fds(fds, nfds);
        if (r < 0) {
            g_mutex_lock(&tb->lock);
            tb_violation_locked(tb, c, "reading a request: %s", why);
            g_mutex_unlock(&tb->lock);
        }
        return false;
    }

    if (!vhost_user_msg_validate_request(VHOST_USER_CHANNEL_FRONTEND, msg, nfds, &err)) {
        g_mutex_lock(&tb->lock);
        tb_violation_locked(tb, c, "%s", err->message);
        g_mutex_unlock(&tb->lock);
        tb_close_fds(fds, nfds);
        return false;
    }
    info = vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND, msg->hdr.request);
    g_assert(info);     /* the validator rejects unknown ids */

    tb_record(tb, c, msg, nfds,
              vhost_user_msg_ring_index(VHOST_USER_CHANNEL_FRONTEND, msg), &copy);
    g_mutex_lock(&tb->lock);
    tb_check_gate_locked(tb, c, msg, info);
    g_mutex_unlock(&tb->lock);

    act = tb_pick_action(tb, c, copy);
    tb_msg_free(copy);
    if (act.fault == TB_FAULT_DELAY && act.delay_ms) {
        g_usleep((gulong)act.delay_ms * 1000);
    }
    if (act.fault == TB_FAULT_DROP) {
        g_test_message("test-backend: conn %u: dropping on %s", c->id, info->name);
        tb_close_fds(fds, nfds);
        return false;
    }

    if (!tb_handle(tb, c, msg, fds, nfds, &act, reply, &reply_size, &has_reply)) {
        return false;
    }
    if (!has_reply && ((msg->hdr.flags & VHOST_USER_NEED_REPLY_MASK) ||
                       info->reply == VHOST_USER_RK_ACK)) {
        reply->u64 = act.fault == TB_FAULT_ACK_FAIL ? (act.value ? act.value : 1) : 0;
        reply_size = 8;
        has_reply = true;
    }
    if (has_reply && !tb_reply(c, msg->hdr.request, reply, reply_size, &act)) {
        return false;
    }
    /* Nothing to cut short: the crash comes right after handling. */
    return act.fault != TB_FAULT_DROP_MID_HEADER && act.fault != TB_FAULT_DROP_MID_REPLY;
}

static gboolean tb_conn_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    TbConn *c = opaque;
    TestBackend *tb = c->tb;

    if (tb_serve_one(tb, c)) {
        return G_SOURCE_CONTINUE;
    }
    g_mutex_lock(&tb->lock);
    tb_conn_close_locked(tb, c);
    g_mutex_unlock(&tb->lock);
    return G_SOURCE_REMOVE;
}

/* Registers a connected socket as connection N+1 served by the thread. */
static void tb_conn_add(TestBackend *tb, int fd)
{
    TbConn *c = g_new0(TbConn, 1);
    struct timeval tv = { .tv_sec = TB_RECV_TIMEOUT_S };

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->tb = tb;
    c->fd = fd;
    c->log = g_ptr_array_new_with_free_func((GDestroyNotify)tb_msg_free);
    c->backend_req_fd = -1;
    c->reply_fd = -1;
    /* Until GET_FEATURES is answered, judge by what we would offer. */
    c->offered_features = tb->cfg.features;
    for (unsigned i = 0; i < TB_MAX_RINGS; i++) {
        c->rings[i].kick_fd = c->rings[i].call_fd = c->rings[i].err_fd = -1;
    }
    c->src = g_unix_fd_source_new(fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
    g_source_set_callback(c->src, G_SOURCE_FUNC(tb_conn_ready), c, NULL);

    g_mutex_lock(&tb->lock);
    g_ptr_array_add(tb->conns, c);
    c->id = tb->conns->len;
    /* Attached under the lock so tb_free never sees a half-added source. */
    g_source_attach(c->src, tb->ctx);
    g_cond_broadcast(&tb->cond);
    g_mutex_unlock(&tb->lock);
    g_test_message("test-backend: conn %u: connected", c->id);
}

static gboolean tb_listen_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    TestBackend *tb = opaque;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (cfd >= 0) {
        tb_conn_add(tb, cfd);
    } else if (errno != EINTR && errno != EAGAIN) {
        g_test_message("test-backend: accept: %s", g_strerror(errno));
    }
    return G_SOURCE_CONTINUE;
}

static gpointer tb_thread(gpointer opaque)
{
    TestBackend *tb = opaque;

    g_main_context_push_thread_default(tb->ctx);
    g_main_loop_run(tb->loop);
    g_main_context_pop_thread_default(tb->ctx);
    return NULL;
}

static bool tb_sockaddr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        return false;
    }
    strcpy(sa->sun_path, path);
    return true;
}

TestBackend *tb_new(const char *dir, const char *name, const TbConfig *cfg)
{
    TestBackend *tb = g_new0(TestBackend, 1);

    if (cfg) {
        tb->cfg = *cfg;
    } else {
        tb_config_default(&tb->cfg);
    }
    g_mutex_init(&tb->lock);
    g_cond_init(&tb->cond);
    tb->conns = g_ptr_array_new_with_free_func(tb_conn_free);
    tb->rules = g_array_new(FALSE, TRUE, sizeof(TbRule));
    tb->violation_msgs = g_ptr_array_new_with_free_func(g_free);
    for (unsigned i = 0; i < TB_MAX_RINGS; i++) {
        tb->vring_base_reply[i] = -1;
    }
    tb->listen_fd = -1;
    tb->ctx = g_main_context_new();
    tb->loop = g_main_loop_new(tb->ctx, FALSE);

    if (name) {
        struct sockaddr_un sa;

        tb->path = g_build_filename(dir, name, NULL);
        if (!tb_sockaddr(tb->path, &sa)) {
            g_error("test-backend: socket path too long: %s", tb->path);
        }
        tb->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(tb->listen_fd, >=, 0);
        if (bind(tb->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(tb->listen_fd, 4) < 0) {
            g_error("test-backend: listen on %s: %s", tb->path, g_strerror(errno));
        }
        tb->listen_src = g_unix_fd_source_new(tb->listen_fd, G_IO_IN);
        g_source_set_callback(tb->listen_src, G_SOURCE_FUNC(tb_listen_ready), tb, NULL);
        g_source_attach(tb->listen_src, tb->ctx);
    }
    tb->thread = g_thread_new("test-backend", tb_thread, tb);
    return tb;
}

/*
 * Runs fn in the back-end thread. Not g_main_context_invoke(): that calls
 * fn right here when the thread has not acquired the context yet.
 */
static void tb_run_in_thread(TestBackend *tb, GSourceFunc fn, gpointer data,
                             GDestroyNotify notify)
{
    GSource *src = g_idle_source_new();

    g_source_set_callback(src, fn, data, notify);
    g_source_attach(src, tb->ctx);
    g_source_unref(src);
}

static gboolean tb_quit_cb(gpointer opaque)
{
    g_main_loop_quit(opaque);
    return G_SOURCE_REMOVE;
}

void tb_free(TestBackend *tb)
{
    if (!tb) {
        return;
    }
    /*
     * Quit from inside the loop: a quit issued before the thread entered
     * g_main_loop_run would be lost.
     */
    tb_run_in_thread(tb, tb_quit_cb, tb->loop, NULL);
    g_thread_join(tb->thread);

    g_mutex_lock(&tb->lock);
    for (unsigned i = 0; i < tb->conns->len; i++) {
        tb_conn_close_locked(tb, g_ptr_array_index(tb->conns, i));
    }
    tb_device_state_free(tb);
    g_mutex_unlock(&tb->lock);
    if (tb->listen_src) {
        g_source_destroy(tb->listen_src);
        g_source_unref(tb->listen_src);
    }
    tb_close_fd(&tb->listen_fd);
    if (tb->path) {
        g_unlink(tb->path);
    }
    g_main_loop_unref(tb->loop);
    g_main_context_unref(tb->ctx);
    g_ptr_array_unref(tb->conns);
    g_array_unref(tb->rules);
    g_ptr_array_unref(tb->violation_msgs);
    g_mutex_clear(&tb->lock);
    g_cond_clear(&tb->cond);
    g_free(tb->path);
    g_free(tb);
}

const char *tb_socket_path(const TestBackend *tb)
{
    return tb->path;
}

void tb_connect(TestBackend *tb, const char *path, unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    struct sockaddr_un sa;

    if (!tb_sockaddr(path, &sa)) {
        g_error("test-backend: socket path too long: %s", path);
    }
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_assert_cmpint(fd, >=, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            tb_conn_add(tb, fd);
            return;
        }
        close(fd);
        if (g_get_monotonic_time() > deadline) {
            g_error("test-backend: could not connect to %s within %u ms: %s",
                    path, timeout_ms, g_strerror(errno));
        }
        g_usleep(20 * 1000);
    }
}

void tb_inject(TestBackend *tb, unsigned conn, uint32_t request, TbFault fault,
               uint64_t value)
{
    TbRule r = { conn, request, { fault, value, 0 } };

    g_mutex_lock(&tb->lock);
    g_array_append_val(tb->rules, r);
    g_mutex_unlock(&tb->lock);
}

void tb_inject_delay(TestBackend *tb, unsigned conn, uint32_t request,
                     unsigned delay_ms)
{
    TbRule r = { conn, request, { TB_FAULT_DELAY, 0, delay_ms } };

    g_mutex_lock(&tb->lock);
    g_array_append_val(tb->rules, r);
    g_mutex_unlock(&tb->lock);
}

void tb_set_hook(TestBackend *tb, TbHook hook, void *opaque)
{
    g_mutex_lock(&tb->lock);
    tb->hook = hook;
    tb->hook_opaque = opaque;
    g_mutex_unlock(&tb->lock);
}

void tb_set_vring_base_reply(TestBackend *tb, unsigned ring, uint16_t base)
{
    g_assert_cmpuint(ring, <, TB_MAX_RINGS);
    g_mutex_lock(&tb->lock);
    tb->vring_base_reply[ring] = base;
    g_mutex_unlock(&tb->lock);
}

typedef struct TbDisconnect {
    TestBackend *tb;
    unsigned conn;
} TbDisconnect;

static gboolean tb_disconnect_cb(gpointer opaque)
{
    TbDisconnect *d = opaque;
    TbConn *c;

    g_mutex_lock(&d->tb->lock);
    c = tb_conn_get_locked(d->tb, d->conn);
    if (c) {
        tb_conn_close_locked(d->tb, c);
    }
    g_mutex_unlock(&d->tb->lock);
    return G_SOURCE_REMOVE;
}

void tb_disconnect(TestBackend *tb, unsigned conn)
{
    /* In the back-end thread, so no request is being served mid-close. */
    tb_run_in_thread(tb, tb_disconnect_cb,
                     g_memdup2(&(TbDisconnect){ tb, conn }, sizeof(TbDisconnect)),
                     g_free);
    tb_wait_closed(tb, conn, TB_DEFAULT_TIMEOUT_MS);
}
