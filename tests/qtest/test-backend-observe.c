/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The test back-end, as tests see it: what it received, the rings and
 * guest memory as it knows them, and bounded waits on all of these. See
 * test-backend.h; the state is in test-backend-int.h.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "test-backend-int.h"

/* ---- Observation -------------------------------------------------------- */

unsigned tb_conn_count(TestBackend *tb)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);

    return tb->conns->len;
}

bool tb_conn_closed(TestBackend *tb, unsigned conn)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    return c && c->closed;
}

static unsigned tb_msg_count_locked(TestBackend *tb, unsigned conn, uint32_t request)
{
    TbConn *c = tb_conn_get_locked(tb, conn);
    unsigned n = 0;

    for (unsigned i = 0; c && i < c->log->len; i++) {
        const TbMsg *m = g_ptr_array_index(c->log, i);
        n += request == 0 || m->request == request;
    }
    return n;
}

unsigned tb_msg_count(TestBackend *tb, unsigned conn, uint32_t request)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);

    return tb_msg_count_locked(tb, conn, request);
}

TbMsg *tb_msg_get(TestBackend *tb, unsigned conn, unsigned i)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    return c && i < c->log->len ? tb_msg_copy(g_ptr_array_index(c->log, i)) : NULL;
}

static int tb_msg_pos_locked(TestBackend *tb, unsigned conn, uint32_t request, int ring)
{
    TbConn *c = tb_conn_get_locked(tb, conn);

    for (unsigned i = 0; c && i < c->log->len; i++) {
        const TbMsg *m = g_ptr_array_index(c->log, i);
        if (m->request == request && (ring < 0 || m->ring == ring)) {
            return (int)i;
        }
    }
    return -1;
}

TbMsg *tb_msg_find(TestBackend *tb, unsigned conn, uint32_t request, int ring)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    int i = tb_msg_pos_locked(tb, conn, request, ring);

    if (i < 0) {
        return NULL;
    }
    return tb_msg_copy(g_ptr_array_index(tb_conn_get_locked(tb, conn)->log, i));
}

int tb_msg_pos(TestBackend *tb, unsigned conn, uint32_t request, int ring)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);

    return tb_msg_pos_locked(tb, conn, request, ring);
}

static unsigned tb_rings_count_locked(TestBackend *tb, unsigned conn, bool enabled)
{
    TbConn *c = tb_conn_get_locked(tb, conn);
    unsigned n = 0;

    for (unsigned i = 0; c && i < TB_MAX_RINGS; i++) {
        n += enabled ? c->rings[i].enabled : c->rings[i].started;
    }
    return n;
}

unsigned tb_rings_started(TestBackend *tb, unsigned conn)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);

    return tb_rings_count_locked(tb, conn, false);
}

unsigned tb_rings_enabled(TestBackend *tb, unsigned conn)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);

    return tb_rings_count_locked(tb, conn, true);
}

bool tb_ring_started(TestBackend *tb, unsigned conn, unsigned ring)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    g_assert_cmpuint(ring, <, TB_MAX_RINGS);
    return c && c->rings[ring].started;
}

bool tb_ring_stopped(TestBackend *tb, unsigned conn, unsigned ring)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    g_assert_cmpuint(ring, <, TB_MAX_RINGS);
    return c && c->rings[ring].stopped;
}

int tb_dup_backend_req_fd(TestBackend *tb, unsigned conn)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    return c && c->backend_req_fd >= 0 ? fcntl(c->backend_req_fd, F_DUPFD_CLOEXEC, 0) : -1;
}

static int tb_dup_ring_fd(TestBackend *tb, unsigned conn, unsigned ring, bool err)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);
    int fd;

    g_assert_cmpuint(ring, <, TB_MAX_RINGS);
    fd = c ? (err ? c->rings[ring].err_fd : c->rings[ring].call_fd) : -1;
    return fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
}

int tb_dup_call_fd(TestBackend *tb, unsigned conn, unsigned ring)
{
    return tb_dup_ring_fd(tb, conn, ring, false);
}

int tb_dup_err_fd(TestBackend *tb, unsigned conn, unsigned ring)
{
    return tb_dup_ring_fd(tb, conn, ring, true);
}

unsigned tb_violations(TestBackend *tb)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);

    return tb->violations;
}

void tb_assert_no_violations(TestBackend *tb)
{
    g_autoptr(GString) s = g_string_new(NULL);
    unsigned n;

    g_mutex_lock(&tb->lock);
    n = tb->violations;
    for (unsigned i = 0; i < tb->violation_msgs->len; i++) {
        g_string_append_printf(s, "\n  %s", (char *)g_ptr_array_index(tb->violation_msgs, i));
    }
    g_mutex_unlock(&tb->lock);
    if (n) {
        g_error("test-backend: %u front-end spec violation(s):%s", n, s->str);
    }
}

/* ---- Guest memory ----------------------------------------------------- */

/* Host pointer for [gpa, gpa + len) inside one region of conn; lock held. */
static uint8_t *tb_gpa_ptr_locked(TestBackend *tb, unsigned conn, uint64_t gpa,
                                  size_t len)
{
    TbConn *c = tb_conn_get_locked(tb, conn);

    for (unsigned i = 0; c && i < G_N_ELEMENTS(c->regions); i++) {
        const TbRegion *r = &c->regions[i];
        uint64_t start = r->desc.guest_phys_addr;

        if (r->map && gpa >= start && gpa - start <= r->desc.memory_size &&
            len <= r->desc.memory_size - (gpa - start)) {
            return (uint8_t *)r->map + r->desc.mmap_offset + (gpa - start);
        }
    }
    return NULL;
}

bool tb_read_gpa(TestBackend *tb, unsigned conn, uint64_t gpa, void *buf, size_t len)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    uint8_t *p = tb_gpa_ptr_locked(tb, conn, gpa, len);

    if (p) {
        memcpy(buf, p, len);
    }
    return p != NULL;
}

bool tb_write_gpa(TestBackend *tb, unsigned conn, uint64_t gpa, const void *buf,
                  size_t len)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    uint8_t *p = tb_gpa_ptr_locked(tb, conn, gpa, len);

    if (p) {
        memcpy(p, buf, len);
    }
    return p != NULL;
}

static bool tb_uva_to_gpa_locked(TestBackend *tb, unsigned conn, uint64_t uva,
                                 uint64_t *gpa)
{
    TbConn *c = tb_conn_get_locked(tb, conn);

    for (unsigned i = 0; c && i < G_N_ELEMENTS(c->regions); i++) {
        const TbRegion *r = &c->regions[i];
        if (r->map && uva >= r->desc.userspace_addr &&
            uva - r->desc.userspace_addr < r->desc.memory_size) {
            *gpa = r->desc.guest_phys_addr + (uva - r->desc.userspace_addr);
            return true;
        }
    }
    return false;
}

bool tb_uva_to_gpa(TestBackend *tb, unsigned conn, uint64_t uva, uint64_t *gpa)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);

    return tb_uva_to_gpa_locked(tb, conn, uva, gpa);
}

bool tb_ring_used_gpa(TestBackend *tb, unsigned conn, unsigned ring, uint64_t *gpa)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    g_assert_cmpuint(ring, <, TB_MAX_RINGS);
    return c && c->rings[ring].addr_set &&
           tb_uva_to_gpa_locked(tb, conn, c->rings[ring].addr.used_user_addr, gpa);
}

unsigned tb_mem_regions(TestBackend *tb, unsigned conn, VhostUserMemoryRegion *out,
                        unsigned max)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    return c ? tb_mem_copy_table(c->regions, G_N_ELEMENTS(c->regions), out, max) : 0;
}

uint64_t tb_mem_end(TestBackend *tb, unsigned conn)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);
    uint64_t end = 0;

    for (unsigned i = 0; c && i < G_N_ELEMENTS(c->regions); i++) {
        const TbRegion *r = &c->regions[i];
        if (r->map) {
            end = MAX(end, r->desc.guest_phys_addr + r->desc.memory_size);
        }
    }
    return end;
}

/* ---- Waiting ------------------------------------------------------------ */

typedef bool (*TbLockedPredicate)(TestBackend *tb, const void *arg);

/* Waits with the lock held; pred sees consistent state. */
static bool tb_wait_locked(TestBackend *tb, TbLockedPredicate pred, const void *arg,
                           unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    bool ok;

    g_mutex_lock(&tb->lock);
    while (!(ok = pred(tb, arg))) {
        if (!g_cond_wait_until(&tb->cond, &tb->lock, deadline)) {
            ok = pred(tb, arg);
            break;
        }
    }
    g_mutex_unlock(&tb->lock);
    return ok;
}

typedef struct TbWaitArg {
    unsigned conn;
    uint32_t request;
    unsigned n;
} TbWaitArg;

static bool tb_pred_conn(TestBackend *tb, const void *arg)
{
    const TbWaitArg *a = arg;
    return tb->conns->len >= a->conn;
}

static bool tb_pred_closed(TestBackend *tb, const void *arg)
{
    const TbWaitArg *a = arg;
    TbConn *c = tb_conn_get_locked(tb, a->conn);
    return c && c->closed;
}

static bool tb_pred_rings(TestBackend *tb, const void *arg)
{
    const TbWaitArg *a = arg;
    return tb_rings_count_locked(tb, a->conn, false) >= a->n;
}

static bool tb_pred_msg(TestBackend *tb, const void *arg)
{
    const TbWaitArg *a = arg;
    return tb_msg_count_locked(tb, a->conn, a->request) >= a->n;
}

static bool tb_pred_stopped(TestBackend *tb, const void *arg)
{
    const TbWaitArg *a = arg;
    TbConn *c = tb_conn_get_locked(tb, a->conn);
    return c && c->rings[a->n].stopped;
}

void tb_wait_conn(TestBackend *tb, unsigned conn, unsigned timeout_ms)
{
    TbWaitArg a = { .conn = conn };

    if (!tb_wait_locked(tb, tb_pred_conn, &a, timeout_ms)) {
        g_error("test-backend: timed out after %u ms waiting for connection %u "
                "(have %u)", timeout_ms, conn, tb_conn_count(tb));
    }
}

void tb_wait_closed(TestBackend *tb, unsigned conn, unsigned timeout_ms)
{
    TbWaitArg a = { .conn = conn };

    if (!tb_wait_locked(tb, tb_pred_closed, &a, timeout_ms)) {
        g_error("test-backend: timed out after %u ms waiting for connection %u "
                "to close", timeout_ms, conn);
    }
}

void tb_wait_rings_started(TestBackend *tb, unsigned conn, unsigned n,
                           unsigned timeout_ms)
{
    TbWaitArg a = { .conn = conn, .n = n };

    if (!tb_wait_locked(tb, tb_pred_rings, &a, timeout_ms)) {
        g_error("test-backend: timed out after %u ms waiting for %u rings started "
                "on connection %u (have %u)", timeout_ms, n, conn,
                tb_rings_started(tb, conn));
    }
}

void tb_wait_msg(TestBackend *tb, unsigned conn, uint32_t request, unsigned count,
                 unsigned timeout_ms)
{
    TbWaitArg a = { .conn = conn, .request = request, .n = count };

    if (!tb_wait_locked(tb, tb_pred_msg, &a, timeout_ms)) {
        g_error("test-backend: timed out after %u ms waiting for %u x %s on "
                "connection %u (have %u)", timeout_ms, count,
                vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, request),
                conn, tb_msg_count(tb, conn, request));
    }
}

void tb_wait_ring_stopped(TestBackend *tb, unsigned conn, unsigned ring,
                          unsigned timeout_ms)
{
    TbWaitArg a = { .conn = conn, .n = ring };

    g_assert_cmpuint(ring, <, TB_MAX_RINGS);
    if (!tb_wait_locked(tb, tb_pred_stopped, &a, timeout_ms)) {
        g_error("test-backend: timed out after %u ms waiting for GET_VRING_BASE "
                "of ring %u on connection %u", timeout_ms, ring, conn);
    }
}

bool tb_wait_until(TestBackend *tb, TbPredicate pred, void *opaque,
                   unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        gint64 now;

        if (pred(tb, opaque)) {
            return true;
        }
        now = g_get_monotonic_time();
        if (now >= deadline) {
            return pred(tb, opaque);
        }
        /* Any state change wakes us; 50 ms bounds changes made elsewhere. */
        g_mutex_lock(&tb->lock);
        g_cond_wait_until(&tb->cond, &tb->lock, MIN(deadline, now + 50 * 1000));
        g_mutex_unlock(&tb->lock);
    }
}

bool tb_log_mark(TestBackend *tb, unsigned conn, uint64_t gpa)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);
    uint64_t page = gpa / 4096;

    if (!c || !c->log_map || page / 64 >= c->log_len / 8) {
        return false;
    }
    __atomic_fetch_or(&c->log_map[page / 64], 1ull << (page % 64), __ATOMIC_RELEASE);
    return true;
}

uint64_t tb_log_size(TestBackend *tb, unsigned conn)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&tb->lock);
    TbConn *c = tb_conn_get_locked(tb, conn);

    return c ? c->log_len : 0;
}
