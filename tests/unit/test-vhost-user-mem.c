/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory slots (hw/virtio/vhost-user-mem.c) and run-time RAM changes
 * (vhost_dev_add_ram / vhost_dev_remove_ram) against a fake back-end
 * thread that really maps what it is sent: every ADD_MEM_REG fd is
 * mmap'ed, the byte pattern the test wrote at the region's start is
 * checked, and after every change the back-end re-checks its whole map.
 * It counts protocol violations (REM_MEM_REG with an fd, a duplicate or
 * overlapping add, more regions than its slots, a REM of something it
 * does not have) instead of trusting the front-end.
 */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-conn.h"
#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-mem.h"
#include "hw/virtio/vhost-user-negotiate.h"
#include "unit-sock.h"

#define PF(name) (1ull << VHOST_USER_PROTOCOL_F_##name)
#define F_PROTO (1ull << VHOST_USER_F_PROTOCOL_FEATURES)
#define F_V1 (1ull << VIRTIO_F_VERSION_1)
#define SLOTS_PF (PF(REPLY_ACK) | PF(CONFIGURE_MEM_SLOTS))

/* Extra regions live from here up, one MiB apart. */
#define HOTPLUG_BASE 0x10000000ull
#define RAM0_SIZE (1u << 20)

static uint64_t pattern(uint64_t gpa)
{
    return (gpa * 0x9E3779B97F4A7C15ull) ^ 0x5a5a5a5a12345678ull;
}

/* ---- The fake back-end ------------------------------------------------ */

typedef struct BeRegion {
    VhostUserMemoryRegion desc;
    void *map;
} BeRegion;

typedef struct LoggedMsg {
    uint32_t request;
    uint32_t flags;
    size_t nfds;
    VhostUserMemoryRegion region;   /* ADD/REM_MEM_REG */
    uint32_t nregions;              /* SET_MEM_TABLE */
} LoggedMsg;

typedef struct FakeBackend {
    int fd;
    GThread *thread;
    GMutex lock;
    GArray *log;                /* LoggedMsg */
    GArray *regions;            /* BeRegion */
    uint64_t features;
    uint64_t protocol_features;
    uint64_t acked_protocol_features;
    uint64_t max_slots;
    unsigned violations;
    char *last_violation;
    uint32_t fail_req;          /* ack this request once with status 1 */
} FakeBackend;

static void be_violation(FakeBackend *be, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void be_violation(FakeBackend *be, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_free(be->last_violation);
    be->last_violation = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    be->violations++;
}

static void be_unmap(BeRegion *r)
{
    munmap(r->map, r->desc.memory_size);
    r->map = NULL;
}

static void be_unmap_all(FakeBackend *be)
{
    for (guint i = 0; i < be->regions->len; i++) {
        be_unmap(&g_array_index(be->regions, BeRegion, i));
    }
    g_array_set_size(be->regions, 0);
}

/* Maps one region like a back-end would, and checks what the guest wrote. */
static bool be_map(FakeBackend *be, const VhostUserMemoryRegion *d, int fd)
{
    BeRegion r = { .desc = *d };

    for (guint i = 0; i < be->regions->len; i++) {
        const VhostUserMemoryRegion *o = &g_array_index(be->regions, BeRegion, i).desc;

        if (d->guest_phys_addr < o->guest_phys_addr + o->memory_size &&
            o->guest_phys_addr < d->guest_phys_addr + d->memory_size) {
            be_violation(be, "add of 0x%" G_GINT64_MODIFIER "x overlaps a mapped region "
                         "(duplicate add)", (uint64_t)d->guest_phys_addr);
            return false;
        }
    }
    r.map = mmap(NULL, d->memory_size, PROT_READ, MAP_SHARED, fd, (off_t)d->mmap_offset);
    if (r.map == MAP_FAILED) {
        be_violation(be, "mmap of region 0x%" G_GINT64_MODIFIER "x failed",
                     (uint64_t)d->guest_phys_addr);
        return false;
    }
    g_array_append_val(be->regions, r);
    return true;
}

/* The back-end's own check of its whole map, after every change. */
static void be_check_map(FakeBackend *be)
{
    for (guint i = 0; i < be->regions->len; i++) {
        const BeRegion *r = &g_array_index(be->regions, BeRegion, i);
        uint64_t v;

        memcpy(&v, r->map, sizeof(v));
        if (v != pattern(r->desc.guest_phys_addr)) {
            be_violation(be, "region 0x%" G_GINT64_MODIFIER "x: pattern mismatch",
                         (uint64_t)r->desc.guest_phys_addr);
        }
    }
}

static bool be_handle_mem(FakeBackend *be, const VhostUserMsg *msg, int *fds, size_t nfds)
{
    const VhostUserMemoryRegion *d = &msg->payload.mem_reg.region;
    bool ok = true;

    switch (msg->hdr.request) {
    case VHOST_USER_SET_MEM_TABLE:
        be_unmap_all(be);
        for (uint32_t i = 0; i < msg->payload.memory.nregions && i < nfds; i++) {
            ok = be_map(be, &msg->payload.memory.regions[i], fds[i]) && ok;
        }
        break;
    case VHOST_USER_ADD_MEM_REG:
        if (nfds != 1) {
            be_violation(be, "ADD_MEM_REG with %zu fds", nfds);
            ok = false;
        } else if (be->regions->len >= be->max_slots) {
            be_violation(be, "ADD_MEM_REG beyond %" G_GINT64_MODIFIER "u slots",
                         be->max_slots);
            ok = false;
        } else {
            ok = be_map(be, d, fds[0]);
        }
        break;
    case VHOST_USER_REM_MEM_REG:
        if (nfds != 0) {
            be_violation(be, "REM_MEM_REG carries %zu fds", nfds);
        }
        ok = false;
        for (guint i = 0; i < be->regions->len; i++) {
            BeRegion *r = &g_array_index(be->regions, BeRegion, i);

            if (!memcmp(&r->desc, d, sizeof(*d))) {
                be_unmap(r);
                g_array_remove_index(be->regions, i);
                ok = true;
                break;
            }
        }
        if (!ok) {
            be_violation(be, "REM_MEM_REG of unknown region 0x%" G_GINT64_MODIFIER "x",
                         (uint64_t)d->guest_phys_addr);
        }
        break;
    }
    be_check_map(be);
    return ok;
}

static gpointer be_thread(gpointer opaque)
{
    FakeBackend *be = opaque;

    for (;;) {
        VhostUserMsg msg, r;
        int fds[VHOST_USER_MAX_FDS];
        size_t nfds = 0, rsize = 0;
        LoggedMsg lm = { 0 };
        bool reply = true, ok = true;

        if (!ut_recv_full(be->fd, &msg.hdr, sizeof(msg.hdr), fds, G_N_ELEMENTS(fds), &nfds)) {
            break;
        }
        if (msg.hdr.size > sizeof(msg.payload) ||
            (msg.hdr.size && !ut_recv_full(be->fd, &msg.payload, msg.hdr.size, NULL, 0, NULL))) {
            for (size_t i = 0; i < nfds; i++) {
                close(fds[i]);
            }
            break;
        }
        memset(&r, 0, sizeof(r));
        r.hdr.request = msg.hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;

        g_mutex_lock(&be->lock);
        lm.request = msg.hdr.request;
        lm.flags = msg.hdr.flags;
        lm.nfds = nfds;
        if (msg.hdr.request == VHOST_USER_ADD_MEM_REG ||
            msg.hdr.request == VHOST_USER_REM_MEM_REG) {
            lm.region = msg.payload.mem_reg.region;
        }
        if (msg.hdr.request == VHOST_USER_SET_MEM_TABLE) {
            lm.nregions = msg.payload.memory.nregions;
        }
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
        case VHOST_USER_SET_PROTOCOL_FEATURES:
            be->acked_protocol_features = msg.payload.u64;
            reply = false;
            break;
        case VHOST_USER_GET_QUEUE_NUM:
            r.payload.u64 = 1;
            rsize = 8;
            break;
        case VHOST_USER_GET_MAX_MEM_SLOTS:
            r.payload.u64 = be->max_slots;
            rsize = 8;
            break;
        case VHOST_USER_GET_VRING_BASE:
            r.payload.state.index = msg.payload.state.index;
            rsize = 8;
            break;
        case VHOST_USER_SET_MEM_TABLE:
        case VHOST_USER_ADD_MEM_REG:
        case VHOST_USER_REM_MEM_REG:
            ok = be_handle_mem(be, &msg, fds, nfds);
            reply = false;
            break;
        default:
            reply = false;
            break;
        }
        if (msg.hdr.flags & VHOST_USER_NEED_REPLY_MASK) {
            reply = true;
            r.payload.u64 = ok ? 0 : 1;
            if (be->fail_req == msg.hdr.request) {
                be->fail_req = 0;
                r.payload.u64 = 1;
            }
            rsize = 8;
        }
        g_mutex_unlock(&be->lock);
        /* A mapping keeps the file alive; the fds themselves are not kept. */
        for (size_t i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        if (reply) {
            r.hdr.size = (uint32_t)rsize;
            (void)!send(be->fd, &r, sizeof(r.hdr) + rsize, MSG_NOSIGNAL);
        }
    }
    g_mutex_lock(&be->lock);
    be_unmap_all(be);
    g_mutex_unlock(&be->lock);
    return NULL;
}

/* ---- Fixture: chardev (client) <-> fake back-end, reconnectable -------- */

typedef struct Fixture {
    char *dir;
    char *path;
    int lfd;
    CharSocket *chr;
    VhostUserState *u;
    FakeBackend be;
} Fixture;

static void be_start(Fixture *f, uint64_t protocol_features, uint64_t max_slots)
{
    f->be.fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(f->be.fd, 0);
    g_array_set_size(f->be.log, 0);
    f->be.protocol_features = protocol_features;
    f->be.max_slots = max_slots;
    f->be.thread = g_thread_new("fake-backend", be_thread, &f->be);
}

static void be_stop(Fixture *f)
{
    /* Closing our end lets the back-end thread see EOF and finish. */
    char_socket_disconnect(f->chr, "test: back-end goes away");
    g_thread_join(f->be.thread);
    close(f->be.fd);
    f->be.fd = -1;
}

static void fixture_start(Fixture *f, uint64_t protocol_features, uint64_t max_slots)
{
    CharSocketOptions opts = { .id = "chr0", .timeout_ms = 3000 };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    GError *err = NULL;

    memset(f, 0, sizeof(*f));
    f->dir = g_dir_make_tmp("test-vumem-XXXXXX", NULL);
    ck_assert_ptr_nonnull(f->dir);
    f->path = g_build_filename(f->dir, "sock", NULL);
    g_strlcpy(sa.sun_path, f->path, sizeof(sa.sun_path));
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(f->lfd, 0);
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(f->lfd, 1), 0);

    g_mutex_init(&f->be.lock);
    f->be.log = g_array_new(FALSE, TRUE, sizeof(LoggedMsg));
    f->be.regions = g_array_new(FALSE, TRUE, sizeof(BeRegion));
    f->be.features = F_PROTO | F_V1;

    opts.path = f->path;
    f->chr = char_socket_new(&opts, NULL, &err);
    ck_assert_msg(f->chr, "%s", err ? err->message : "?");
    ck_assert_msg(char_socket_open(f->chr, &err), "%s", err ? err->message : "?");
    be_start(f, protocol_features, max_slots);
    f->u = vhost_user_state_new(f->chr, "net0");
}

/* The back-end restarts: a new connection on the same state, as vhost-user-base does. */
static void fixture_reconnect(Fixture *f, uint64_t protocol_features, uint64_t max_slots)
{
    GError *err = NULL;

    be_stop(f);
    vhost_user_state_reset(f->u);
    ck_assert_msg(char_socket_open(f->chr, &err), "%s", err ? err->message : "?");
    be_start(f, protocol_features, max_slots);
    ck_assert(char_socket_is_connected(f->chr));
    vhost_user_state_reset(f->u);
}

static void fixture_stop(Fixture *f)
{
    vhost_user_state_free(f->u);
    be_stop(f);
    char_socket_free(f->chr);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    close(f->lfd);
    g_array_free(f->be.log, TRUE);
    g_array_free(f->be.regions, TRUE);
    g_free(f->be.last_violation);
    g_mutex_clear(&f->be.lock);
    unlink(f->path);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static void assert_no_violations(Fixture *f)
{
    g_mutex_lock(&f->be.lock);
    ck_assert_msg(f->be.violations == 0, "%u back-end violations, last: %s",
                  f->be.violations, f->be.last_violation);
    g_mutex_unlock(&f->be.lock);
}

/* The back-end maps exactly the guest's regions, at the same addresses. */
static void assert_backend_map(Fixture *f, GuestMemory *mem)
{
    unsigned n = guest_memory_nregions(mem);

    g_mutex_lock(&f->be.lock);
    ck_assert_uint_eq(f->be.regions->len, n);
    for (unsigned i = 0; i < n; i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);
        bool found = false;

        for (guint j = 0; j < f->be.regions->len && !found; j++) {
            const VhostUserMemoryRegion *d = &g_array_index(f->be.regions, BeRegion, j).desc;

            found = d->guest_phys_addr == r->gpa && d->memory_size == r->size &&
                    d->userspace_addr == (uintptr_t)r->block->host + r->block_offset;
        }
        ck_assert_msg(found, "region 0x%" G_GINT64_MODIFIER "x not mapped by the back-end",
                      r->gpa);
    }
    g_mutex_unlock(&f->be.lock);
}

static guint log_len(Fixture *f)
{
    guint n;

    g_mutex_lock(&f->be.lock);
    n = f->be.log->len;
    g_mutex_unlock(&f->be.lock);
    return n;
}

static LoggedMsg log_at(Fixture *f, guint i)
{
    LoggedMsg m;

    g_mutex_lock(&f->be.lock);
    ck_assert_uint_lt(i, f->be.log->len);
    m = g_array_index(f->be.log, LoggedMsg, i);
    g_mutex_unlock(&f->be.lock);
    return m;
}

/* Messages of one kind logged from index `from` on. */
static unsigned log_count(Fixture *f, guint from, uint32_t request)
{
    unsigned n = 0;

    for (guint i = from; i < log_len(f); i++) {
        n += log_at(f, i).request == request;
    }
    return n;
}

/* ---- Guest RAM helpers -------------------------------------------------- */

static uint64_t page_size(void)
{
    return (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A region of rb at gpa, with the pattern at its start written first. */
static void place_pattern(RamBlock *rb, uint64_t block_offset, uint64_t gpa)
{
    uint64_t v = pattern(gpa);

    memcpy((uint8_t *)rb->host + block_offset, &v, sizeof(v));
}

typedef struct Machine {
    GuestMemory *mem;
    RamBlock *ram0;
    struct vhost_dev hdev;
} Machine;

/* ram0 at 0 holds the one ring; the device is connected and started. */
static void machine_start(Machine *m, Fixture *f)
{
    GError *err = NULL;
    struct vhost_virtqueue *vq;

    m->mem = guest_memory_new();
    m->ram0 = ram_block_new_memfd("ram0", RAM0_SIZE, &err);
    ck_assert_ptr_nonnull(m->ram0);
    place_pattern(m->ram0, 0, 0);
    ck_assert(guest_memory_add(m->mem, 0, m->ram0, 0, RAM0_SIZE, &err));
    ck_assert(vhost_dev_init(&m->hdev, "net0", f->u, &user_ops, m->mem, 0, 1, &err));
    ck_assert_msg(vhost_dev_connect(&m->hdev, &err), "%s", err ? err->message : "");
    ck_assert(vhost_dev_set_acked_features(&m->hdev, F_V1, &err));
    vq = &m->hdev.vqs[0];
    vq->num = 8;
    vq->desc_gpa = 0x1000;
    vq->avail_gpa = 0x2000;
    vq->used_gpa = 0x3000;
    ck_assert_msg(vhost_dev_start(&m->hdev, &err), "%s", err ? err->message : "");
}

static void machine_stop(Machine *m)
{
    vhost_dev_cleanup(&m->hdev);
    guest_memory_free(m->mem);
    ram_block_unref(m->ram0);
}

static struct vhost_dev *devs_of(Machine *m)
{
    return &m->hdev;
}

static bool add_ram(Machine *m, RamBlock *rb, uint64_t block_offset, uint64_t gpa,
                    uint64_t size, GError **errp)
{
    struct vhost_dev *devs[] = { devs_of(m) };

    place_pattern(rb, block_offset, gpa);
    return vhost_dev_add_ram(devs, 1, m->mem, gpa, rb, block_offset, size, errp);
}

static bool remove_ram(Machine *m, uint64_t gpa, GError **errp)
{
    struct vhost_dev *devs[] = { devs_of(m) };

    return vhost_dev_remove_ram(devs, 1, m->mem, gpa, errp);
}

/* ---- Tests -------------------------------------------------------------- */

/* The diff alone: unchanged kept, changed removed and re-added, removals newest first. */
START_TEST(test_diff)
{
    VhostUserMemSlot old[4] = {
        { .gpa = 0x3000, .size = 0x1000, .uaddr = 0xa000, .ino = 1 },
        { .gpa = 0x1000, .size = 0x1000, .uaddr = 0xb000, .ino = 1 },
        { .gpa = 0x5000, .size = 0x1000, .uaddr = 0xc000, .ino = 1 },
        { .gpa = 0x7000, .size = 0x1000, .uaddr = 0xd000, .ino = 1 },
    };
    VhostUserMemSlot want[4] = {
        old[1],                                                     /* kept */
        old[0],                                                     /* kept */
        { .gpa = 0x5000, .size = 0x1000, .uaddr = 0xc000, .ino = 2 }, /* other file */
        { .gpa = 0x9000, .size = 0x1000, .uaddr = 0xe000, .ino = 1 }, /* new */
    };
    g_autoptr(GArray) rem = g_array_new(FALSE, FALSE, sizeof(guint));
    g_autoptr(GArray) add = g_array_new(FALSE, FALSE, sizeof(guint));

    /* want must be sorted by gpa: 0x1000, 0x3000, 0x5000, 0x9000. */
    vhost_user_mem_diff(old, 4, want, 4, rem, add);
    ck_assert_uint_eq(rem->len, 2);
    ck_assert_uint_eq(g_array_index(rem, guint, 0), 3);    /* newest first */
    ck_assert_uint_eq(g_array_index(rem, guint, 1), 2);
    ck_assert_uint_eq(add->len, 2);
    ck_assert_uint_eq(g_array_index(add, guint, 0), 2);
    ck_assert_uint_eq(g_array_index(add, guint, 1), 3);

    /* Same table: nothing to do. Empty new table: everything goes. */
    g_array_set_size(rem, 0);
    g_array_set_size(add, 0);
    vhost_user_mem_diff(want, 4, want, 4, rem, add);
    ck_assert_uint_eq(rem->len + add->len, 0);
    vhost_user_mem_diff(old, 4, NULL, 0, rem, add);
    ck_assert_uint_eq(rem->len, 4);
    ck_assert_uint_eq(add->len, 0);
}
END_TEST

START_TEST(test_negotiate_max_slots)
{
    Fixture f;
    GError *err = NULL;
    LoggedMsg m;

    fixture_start(&f, SLOTS_PF | PF(MQ), 509);
    ck_assert_msg(vhost_user_negotiate(f.u, &err), "%s", err ? err->message : "");
    ck_assert(f.be.acked_protocol_features & PF(CONFIGURE_MEM_SLOTS));
        ck_assert(vhost_user_mem_slots_enabled(f.u));
    ck_assert_uint_eq(vhost_user_mem_max_regions(f.u), 509);
    /* Asked once, right after the protocol features (and queue count). */
    ck_assert_uint_eq(log_count(&f, 0, VHOST_USER_GET_MAX_MEM_SLOTS), 1);
    m = log_at(&f, 4);
    ck_assert_uint_eq(m.request, VHOST_USER_GET_MAX_MEM_SLOTS);
    fixture_stop(&f);
}
END_TEST

static const uint64_t bad_slot_counts[] = { 0, 4097, UINT64_MAX };

START_TEST(test_negotiate_bad_slot_count)
{
    Fixture f;
    GError *err = NULL;

    fixture_start(&f, SLOTS_PF, bad_slot_counts[_i]);
    ck_assert(!vhost_user_negotiate(f.u, &err));
    ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE),
                  "%s", err->message);
    ck_assert_ptr_nonnull(strstr(err->message, "net0: GET_MAX_MEM_SLOTS reply: slot count"));
    ck_assert_ptr_nonnull(strstr(err->message, "outside 1..4096"));
    g_clear_error(&err);
    ck_assert(f.u->broken);
    ck_assert(!char_socket_is_connected(f.chr));
    ck_assert(!f.u->negotiated);
    fixture_stop(&f);
}
END_TEST

/*
 * 300 regions added one at a time while the device runs, then removed one
 * at a time (odd ones first): after every step the back-end's own map is
 * the guest's, and every ADD carries one fd, every REM none.
 */
START_TEST(test_300_regions)
{
    const unsigned nr = 300;
    uint64_t ps = page_size();
    Fixture f;
    Machine m;
    GError *err = NULL;
    RamBlock *rb;
    guint from;

    fixture_start(&f, SLOTS_PF, 509);
    machine_start(&m, &f);
    assert_backend_map(&f, m.mem);
    ck_assert_uint_eq(log_count(&f, 0, VHOST_USER_SET_MEM_TABLE), 0);
    ck_assert_uint_eq(log_count(&f, 0, VHOST_USER_ADD_MEM_REG), 1);

    rb = ram_block_new_memfd("hotplug", (nr - 1) * ps, &err);
    ck_assert_ptr_nonnull(rb);
    from = log_len(&f);
    for (unsigned i = 1; i < nr; i++) {
        ck_assert_msg(add_ram(&m, rb, (i - 1) * ps, HOTPLUG_BASE + ((uint64_t)i << 20), ps,
                              &err), "region %u: %s", i, err ? err->message : "");
        assert_backend_map(&f, m.mem);
    }
    ck_assert_uint_eq(guest_memory_nregions(m.mem), nr);
    /* Exactly one ADD per new region, each with one fd and an ack asked for. */
    ck_assert_uint_eq(log_len(&f) - from, nr - 1);
    for (guint i = from; i < log_len(&f); i++) {
        LoggedMsg lm = log_at(&f, i);

        ck_assert_uint_eq(lm.request, VHOST_USER_ADD_MEM_REG);
        ck_assert_uint_eq(lm.nfds, 1);
        ck_assert(lm.flags & VHOST_USER_NEED_REPLY_MASK);
    }
    ck_assert_uint_eq(vhost_user_mem_regions_in_use(f.u), nr);

    from = log_len(&f);
    for (unsigned pass = 0; pass < 2; pass++) {
        for (unsigned i = 1; i < nr; i++) {
            if ((i & 1) != (pass == 0)) {
                continue;
            }
            ck_assert_msg(remove_ram(&m, HOTPLUG_BASE + ((uint64_t)i << 20), &err),
                          "region %u: %s", i, err ? err->message : "");
            assert_backend_map(&f, m.mem);
        }
    }
    ck_assert_uint_eq(log_len(&f) - from, nr - 1);
    for (guint i = from; i < log_len(&f); i++) {
        LoggedMsg lm = log_at(&f, i);

        ck_assert_uint_eq(lm.request, VHOST_USER_REM_MEM_REG);
        ck_assert_uint_eq(lm.nfds, 0);
        ck_assert(lm.flags & VHOST_USER_NEED_REPLY_MASK);
    }
    ck_assert_uint_eq(vhost_user_mem_regions_in_use(f.u), 1);
    assert_no_violations(&f);

    machine_stop(&m);
    ram_block_unref(rb);
    fixture_stop(&f);
}
END_TEST

/*
 * Changes made while the device is stopped reach the back-end as one
 * combined update at the next start: removals first, newest first, then
 * the additions; a region whose file changed is removed and re-added.
 */
START_TEST(test_combined_change)
{
    uint64_t ps = page_size();
    Fixture f;
    Machine m;
    GError *err = NULL;
    RamBlock *a, *b;
    guint from, k;
    LoggedMsg lm;
    static const uint64_t rem_order[] = {
        HOTPLUG_BASE + (3 << 20), HOTPLUG_BASE + (2 << 20), HOTPLUG_BASE + (1 << 20),
    };
    static const uint64_t add_order[] = {
        HOTPLUG_BASE + (1 << 20), HOTPLUG_BASE + (4 << 20), HOTPLUG_BASE + (5 << 20),
    };

    fixture_start(&f, SLOTS_PF, 32);
    machine_start(&m, &f);
    a = ram_block_new_memfd("a", 8 * ps, &err);
    b = ram_block_new_memfd("b", 8 * ps, &err);
    ck_assert(a && b);
    for (unsigned i = 1; i <= 3; i++) {
        ck_assert(add_ram(&m, a, i * ps, HOTPLUG_BASE + ((uint64_t)i << 20), ps, &err));
    }
    vhost_dev_stop(&m.hdev);
    ck_assert_uint_eq(m.hdev.mem_listener, 0);

    /* Nobody listens now: nothing is sent for these. */
    from = log_len(&f);
    ck_assert(remove_ram(&m, HOTPLUG_BASE + (2 << 20), &err));
    ck_assert(remove_ram(&m, HOTPLUG_BASE + (3 << 20), &err));
    ck_assert(remove_ram(&m, HOTPLUG_BASE + (1 << 20), &err));
    /* Same gpa, size and offset as before but another file. */
    ck_assert(add_ram(&m, b, 1 * ps, HOTPLUG_BASE + (1 << 20), ps, &err));
    ck_assert(add_ram(&m, b, 4 * ps, HOTPLUG_BASE + (4 << 20), ps, &err));
    ck_assert(add_ram(&m, b, 5 * ps, HOTPLUG_BASE + (5 << 20), ps, &err));
    ck_assert_uint_eq(log_len(&f), from);

    ck_assert_msg(vhost_dev_start(&m.hdev, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(log_count(&f, from, VHOST_USER_REM_MEM_REG), 3);
    ck_assert_uint_eq(log_count(&f, from, VHOST_USER_ADD_MEM_REG), 3);
    k = 0;
    for (guint i = from; i < log_len(&f); i++) {
        lm = log_at(&f, i);
        if (lm.request == VHOST_USER_REM_MEM_REG) {
            /* Every removal before the first addition. */
            ck_assert_uint_lt(k, 3);
            ck_assert_uint_eq(lm.region.guest_phys_addr, rem_order[k]);
            ck_assert_uint_eq(lm.nfds, 0);
            k++;
        } else if (lm.request == VHOST_USER_ADD_MEM_REG) {
            ck_assert_uint_ge(k, 3);
            ck_assert_uint_eq(lm.region.guest_phys_addr, add_order[k - 3]);
            ck_assert_uint_eq(lm.nfds, 1);
            k++;
        }
    }
    ck_assert_uint_eq(k, 6);
    assert_backend_map(&f, m.mem);
    assert_no_violations(&f);

    /* A start with nothing changed sends no region at all (ram0 stays). */
    vhost_dev_stop(&m.hdev);
    from = log_len(&f);
    ck_assert(vhost_dev_start(&m.hdev, &err));
    ck_assert_uint_eq(log_count(&f, from, VHOST_USER_REM_MEM_REG) +
                      log_count(&f, from, VHOST_USER_ADD_MEM_REG), 0);

    machine_stop(&m);
    ram_block_unref(a);
    ram_block_unref(b);
    fixture_stop(&f);
}
END_TEST

/* More regions than the back-end's slots: refused up front, naming the limit. */
START_TEST(test_slot_limit)
{
    uint64_t ps = page_size();
    Fixture f;
    Machine m;
    GError *err = NULL;
    RamBlock *rb;
    guint from;

    fixture_start(&f, SLOTS_PF, 4);
    machine_start(&m, &f);
    rb = ram_block_new_memfd("hotplug", 8 * ps, &err);
    for (unsigned i = 1; i < 4; i++) {
        ck_assert(add_ram(&m, rb, i * ps, HOTPLUG_BASE + ((uint64_t)i << 20), ps, &err));
    }
    from = log_len(&f);
    ck_assert(!add_ram(&m, rb, 4 * ps, HOTPLUG_BASE + (4 << 20), ps, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_str_eq(err->message, "cannot add RAM block 'hotplug' at 0x10400000: "
                     "net0: 5 memory regions but the back-end holds at most 4");
    g_clear_error(&err);
    ck_assert_uint_eq(guest_memory_nregions(m.mem), 4);
    ck_assert_uint_eq(log_len(&f), from);

    /* Behind the API's back: the sync itself refuses, before sending anything. */
    place_pattern(rb, 4 * ps, HOTPLUG_BASE + (4 << 20));
    ck_assert(guest_memory_add(m.mem, HOTPLUG_BASE + (4 << 20), rb, 4 * ps, ps, &err));
    ck_assert(g_error_matches(m.hdev.mem_err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_str_eq(m.hdev.mem_err->message, "net0: 5 memory regions but the back-end "
                     "holds at most 4 (GET_MAX_MEM_SLOTS)");
    ck_assert_uint_eq(log_len(&f), from);
    ck_assert(!f.u->broken);
    /* Removing one makes it fit again: only the difference goes. */
    ck_assert_msg(remove_ram(&m, HOTPLUG_BASE + (1 << 20), &err), "%s",
                  err ? err->message : "");
    ck_assert_uint_eq(log_count(&f, from, VHOST_USER_REM_MEM_REG), 1);
    ck_assert_uint_eq(log_count(&f, from, VHOST_USER_ADD_MEM_REG), 1);
    assert_backend_map(&f, m.mem);
    assert_no_violations(&f);

    machine_stop(&m);
    ram_block_unref(rb);
    fixture_stop(&f);
}
END_TEST

/*
 * A reconnect: the new back-end starts empty and gets every region again;
 * one that reports fewer slots than the regions in use is refused,
 * naming both numbers.
 */
START_TEST(test_reconnect)
{
    uint64_t ps = page_size();
    Fixture f;
    Machine m;
    GError *err = NULL;
    RamBlock *rb;
    guint from;

    fixture_start(&f, SLOTS_PF, 8);
    machine_start(&m, &f);
    rb = ram_block_new_memfd("hotplug", 8 * ps, &err);
    for (unsigned i = 1; i < 6; i++) {
        ck_assert(add_ram(&m, rb, i * ps, HOTPLUG_BASE + ((uint64_t)i << 20), ps, &err));
    }
    ck_assert_uint_eq(vhost_user_mem_regions_in_use(f.u), 6);

    /* The back-end restarts with 4 slots. */
    vhost_dev_disconnect(&m.hdev);
    fixture_reconnect(&f, SLOTS_PF, 4);
    ck_assert(!vhost_dev_connect(&m.hdev, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH));
    ck_assert_str_eq(err->message, "net0: GET_MAX_MEM_SLOTS: the back-end holds 4 memory "
                     "slots but 6 memory regions are in use");
    g_clear_error(&err);
    ck_assert(!f.u->negotiated);

    /* And again with enough: all six are added, none removed. */
    fixture_reconnect(&f, SLOTS_PF, 6);
    ck_assert_msg(vhost_dev_connect(&m.hdev, &err), "%s", err ? err->message : "");
    from = log_len(&f);
    ck_assert_msg(vhost_dev_start(&m.hdev, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(log_count(&f, from, VHOST_USER_ADD_MEM_REG), 6);
    ck_assert_uint_eq(log_count(&f, from, VHOST_USER_REM_MEM_REG), 0);
    assert_backend_map(&f, m.mem);

    /* An ADD the back-end fails: error named, connection dropped, change kept. */
    f.be.fail_req = VHOST_USER_ADD_MEM_REG;
    ck_assert(remove_ram(&m, HOTPLUG_BASE + (5 << 20), &err));
    ck_assert(!add_ram(&m, rb, 6 * ps, HOTPLUG_BASE + (6 << 20), ps, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED));
    ck_assert_str_eq(err->message, "net0: back-end failed ADD_MEM_REG (status 1)");
    g_clear_error(&err);
    ck_assert(f.u->broken);
    ck_assert_uint_eq(guest_memory_nregions(m.mem), 6);

    /* The next connection gets the table as it is now. */
    vhost_dev_disconnect(&m.hdev);
    fixture_reconnect(&f, SLOTS_PF, 509);
    ck_assert(vhost_dev_connect(&m.hdev, &err));
    ck_assert(vhost_dev_start(&m.hdev, &err));
    assert_backend_map(&f, m.mem);
    assert_no_violations(&f);

    machine_stop(&m);
    ram_block_unref(rb);
    fixture_stop(&f);
}
END_TEST

/*
 * No CONFIGURE_MEM_SLOTS, or no REPLY_ACK to go with it: SET_MEM_TABLE at
 * start and again for each run-time change, 8 regions at most.
 */
static const uint64_t fallback_pf[] = { PF(REPLY_ACK), PF(CONFIGURE_MEM_SLOTS) };

START_TEST(test_fallback_set_mem_table)
{
    uint64_t ps = page_size();
    Fixture f;
    Machine m;
    GError *err = NULL;
    RamBlock *rb;
    guint from;

    fixture_start(&f, fallback_pf[_i], 509);
    machine_start(&m, &f);
    ck_assert(!(f.be.acked_protocol_features & PF(CONFIGURE_MEM_SLOTS)));
    ck_assert(!vhost_user_mem_slots_enabled(f.u));
    ck_assert_uint_eq(log_count(&f, 0, VHOST_USER_GET_MAX_MEM_SLOTS), 0);
    ck_assert_uint_eq(log_count(&f, 0, VHOST_USER_SET_MEM_TABLE), 1);
    ck_assert_uint_eq(log_count(&f, 0, VHOST_USER_ADD_MEM_REG), 0);

    rb = ram_block_new_memfd("hotplug", 8 * ps, &err);
    for (unsigned i = 1; i < 8; i++) {
        from = log_len(&f);
        ck_assert_msg(add_ram(&m, rb, i * ps, HOTPLUG_BASE + ((uint64_t)i << 20), ps, &err),
                      "%s", err ? err->message : "");
        ck_assert_uint_eq(log_count(&f, from, VHOST_USER_SET_MEM_TABLE), 1);
        ck_assert_uint_eq(log_at(&f, from).nregions, i + 1);
        ck_assert_uint_eq(log_at(&f, from).nfds, i + 1);
        assert_backend_map(&f, m.mem);
    }
    ck_assert(!add_ram(&m, rb, 0, HOTPLUG_BASE + (8 << 20), ps, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_ptr_nonnull(strstr(err->message, "net0: 9 memory regions but the back-end "
                                 "holds at most 8"));
    g_clear_error(&err);
    from = log_len(&f);
    ck_assert(remove_ram(&m, HOTPLUG_BASE + (3 << 20), &err));
    ck_assert_uint_eq(log_at(&f, from).request, VHOST_USER_SET_MEM_TABLE);
    ck_assert_uint_eq(log_at(&f, from).nregions, 7);
    assert_backend_map(&f, m.mem);
    ck_assert_uint_eq(log_count(&f, 0, VHOST_USER_ADD_MEM_REG) +
                      log_count(&f, 0, VHOST_USER_REM_MEM_REG), 0);
    assert_no_violations(&f);

    machine_stop(&m);
    ram_block_unref(rb);
    fixture_stop(&f);
}
END_TEST

/*
 * Add/remove cycles with fresh blocks each time (fd numbers and addresses
 * get reused, which must not fool the shadow): no fd and no mapping left.
 */
START_TEST(test_cycles_flat)
{
    uint64_t ps = page_size();
    Fixture f;
    Machine m;
    GError *err = NULL;
    unsigned fds0, maps0;

    fixture_start(&f, SLOTS_PF, 64);
    machine_start(&m, &f);
    for (unsigned cycle = 0; cycle < 51; cycle++) {
        RamBlock *rb[10];

        if (cycle == 1) {
            /* The first cycle warmed up whatever is allocated once. */
            fds0 = ut_count_fds();
            maps0 = ut_count_maps("/memfd:");
        }
        for (unsigned i = 0; i < 10; i++) {
            rb[i] = ram_block_new_memfd("cycle", 2 * ps, &err);
            ck_assert_ptr_nonnull(rb[i]);
            ck_assert_msg(add_ram(&m, rb[i], (i & 1) * ps,
                                  HOTPLUG_BASE + ((uint64_t)i << 20), ps, &err),
                          "%s", err ? err->message : "");
        }
        assert_backend_map(&f, m.mem);
        for (unsigned i = 0; i < 10; i++) {
            ck_assert(remove_ram(&m, HOTPLUG_BASE + ((uint64_t)i << 20), &err));
            ram_block_unref(rb[i]);
        }
        assert_backend_map(&f, m.mem);
    }
    ck_assert_uint_eq(ut_count_fds(), fds0);
    ck_assert_uint_eq(ut_count_maps("/memfd:"), maps0);
    assert_no_violations(&f);
    machine_stop(&m);
    fixture_stop(&f);
}
END_TEST

static Suite *mem_suite(void)
{
    Suite *s = suite_create("vhost-user-mem");
    TCase *tc = tcase_create("slots");

    tcase_add_test(tc, test_diff);
    tcase_add_test(tc, test_negotiate_max_slots);
    tcase_add_loop_test(tc, test_negotiate_bad_slot_count, 0, G_N_ELEMENTS(bad_slot_counts));
    tcase_add_test(tc, test_300_regions);
    tcase_add_test(tc, test_combined_change);
    tcase_add_test(tc, test_slot_limit);
    tcase_add_test(tc, test_reconnect);
    tcase_add_loop_test(tc, test_fallback_set_mem_table, 0, G_N_ELEMENTS(fallback_pf));
    tcase_add_test(tc, test_cycles_flat);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mem_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
