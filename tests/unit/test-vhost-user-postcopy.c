/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy's protocol step (hw/virtio/vhost-user-postcopy.c) against a
 * fake back-end thread: POSTCOPY_ADVISE must hand over exactly one real
 * userfaultfd, the memory table answered while listening must match what
 * was sent (count, guest address, size) and is acknowledged, the kept
 * bases translate back-end addresses, POSTCOPY_END's status is checked.
 * Each fault mode breaks one of those on purpose. Translation goes on
 * while a request waits for its reply (a back-end faults while it handles
 * one), and a base echoed back (libvhost-user) is found in the back-end's
 * /proc maps.
 */
#include <check.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chardev/char-socket.h"
#include "system/memory.h"
#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost-user-mem.h"
#include "hw/virtio/vhost-user-postcopy.h"
#include "util/vhost-user-error.h"
#include "unit-sock.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define BE_BASE 0x7f0000000000ull
#define GPA0 0x0ull
#define GPA1 0x100000000ull
#define RSIZE 0x200000ull
#define GPA2 0x200000000ull

typedef enum Fault {
    FAULT_NONE,
    FAULT_NO_FD,            /* ADVISE reply without an fd */
    FAULT_EVENTFD,          /* ADVISE reply with an eventfd */
    FAULT_COUNT,            /* listening table with one region fewer */
    FAULT_GPA,              /* region 1's guest address moved */
    FAULT_SIZE,             /* region 1's size halved */
    FAULT_END_STATUS,       /* POSTCOPY_END answers 1 */
    FAULT_REG_SIZE,         /* ADD_MEM_REG's region size doubled */
} Fault;

typedef struct FakeBackend {
    int fd;
    GThread *thread;
    Fault fault;
    bool listening;
    gint acks;              /* u64 acknowledgements of listening replies */
    gint tables;            /* listening SET_MEM_TABLEs */
    gint regs;              /* listening ADD_MEM_REGs */
    /* hold: GET_FEATURES is answered only once released */
    bool hold;
    GMutex lock;
    GCond cond;
    bool held, released;
} FakeBackend;

typedef struct Fixture {
    char *dir, *path;
    CharSocket *chr;
    VhostUserState *u;
    FakeBackend be;
} Fixture;

static int new_userfaultfd(void)
{
    int fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

    ck_assert_msg(fd >= 0, "userfaultfd: %s", g_strerror(errno));
    return fd;
}

static void be_reply(FakeBackend *be, VhostUserMsg *r, uint32_t size, int fd)
{
    r->hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    r->hdr.size = size;
    ut_send_fds(be->fd, r, sizeof(r->hdr) + size, &fd, fd >= 0 ? 1 : 0);
}

static gpointer be_thread(gpointer opaque)
{
    FakeBackend *be = opaque;

    for (;;) {
        VhostUserMsg msg, r;
        int fds[VHOST_USER_MAX_FDS];
        size_t nfds = 0;
        int fd = -1;

        if (!ut_recv_full(be->fd, &msg.hdr, sizeof(msg.hdr), fds, G_N_ELEMENTS(fds), &nfds)) {
            break;
        }
        if (msg.hdr.size > sizeof(msg.payload) ||
            (msg.hdr.size && !ut_recv_full(be->fd, &msg.payload, msg.hdr.size, NULL, 0, NULL))) {
            break;
        }
        for (size_t i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        memset(&r, 0, sizeof(r));
        r.hdr.request = msg.hdr.request;
        switch (msg.hdr.request) {
        case VHOST_USER_POSTCOPY_ADVISE:
            if (be->fault == FAULT_EVENTFD) {
                fd = eventfd(0, EFD_CLOEXEC);
            } else if (be->fault != FAULT_NO_FD) {
                fd = new_userfaultfd();
            }
            be_reply(be, &r, 0, fd);
            if (fd >= 0) {
                close(fd);
            }
            break;
        case VHOST_USER_POSTCOPY_LISTEN:
            be->listening = true;
            goto ack;
        case VHOST_USER_SET_MEM_TABLE:
        case VHOST_USER_ADD_MEM_REG:
            if (!be->listening) {
                goto ack;
            }
            g_atomic_int_inc(msg.hdr.request == VHOST_USER_ADD_MEM_REG ? &be->regs
                                                                     : &be->tables);
            r.payload = msg.payload;
            if (msg.hdr.request == VHOST_USER_ADD_MEM_REG) {
                r.payload.mem_reg.region.userspace_addr = BE_BASE + 0x80000000ull;
                if (be->fault == FAULT_REG_SIZE) {
                    r.payload.mem_reg.region.memory_size *= 2;
                }
            } else {
                for (uint32_t i = 0; i < r.payload.memory.nregions; i++) {
                    r.payload.memory.regions[i].userspace_addr = BE_BASE + i * RSIZE;
                }
                if (be->fault == FAULT_COUNT) {
                    r.payload.memory.nregions--;
                } else if (be->fault == FAULT_GPA) {
                    r.payload.memory.regions[1].guest_phys_addr += 0x1000;
                } else if (be->fault == FAULT_SIZE) {
                    r.payload.memory.regions[1].memory_size /= 2;
                }
            }
            be_reply(be, &r, msg.hdr.request == VHOST_USER_ADD_MEM_REG ? msg.hdr.size
                     : offsetof(VhostUserMemory, regions) +
                       r.payload.memory.nregions * sizeof(VhostUserMemoryRegion), -1);
            /* The front-end's u64 acknowledgement comes next. */
            if (!ut_recv_full(be->fd, &msg.hdr, sizeof(msg.hdr), NULL, 0, NULL) ||
                msg.hdr.size != sizeof(uint64_t) ||
                !ut_recv_full(be->fd, &msg.payload, 8, NULL, 0, NULL)) {
                goto out;
            }
            if (msg.hdr.request == r.hdr.request && msg.payload.u64 == 0) {
                g_atomic_int_inc(&be->acks);
            }
            break;
        case VHOST_USER_GET_FEATURES:
            /* A back-end that faults while it handles a request. */
            g_mutex_lock(&be->lock);
            be->held = be->hold;
            g_cond_broadcast(&be->cond);
            while (be->hold && !be->released) {
                g_cond_wait(&be->cond, &be->lock);
            }
            g_mutex_unlock(&be->lock);
            r.payload.u64 = 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
            be_reply(be, &r, sizeof(uint64_t), -1);
            break;
        case VHOST_USER_POSTCOPY_END:
            be->listening = false;
            r.payload.u64 = be->fault == FAULT_END_STATUS ? 1 : 0;
            be_reply(be, &r, sizeof(uint64_t), -1);
            break;
        case VHOST_USER_GET_MAX_MEM_SLOTS:
            r.payload.u64 = 32;
            be_reply(be, &r, sizeof(uint64_t), -1);
            break;
        default:
        ack:
            /* REPLY_ACK (when negotiated): every other request is answered 0. */
            if (msg.hdr.flags & VHOST_USER_NEED_REPLY_MASK) {
                r.payload.u64 = 0;
                be_reply(be, &r, sizeof(uint64_t), -1);
            }
            break;
        }
    }
out:
    close(be->fd);
    return NULL;
}

static void fixture_start_slots(Fixture *f, Fault fault, bool pagefault, bool slots)
{
    CharSocketOptions opts = { .id = "chr0", .timeout_ms = 3000 };
    GError *err = NULL;

    memset(f, 0, sizeof(*f));
    f->chr = ut_chardev_connected(&opts, "test-vupostcopy-XXXXXX", &f->dir, &f->path, &f->be.fd);
    f->be.fault = fault;
    g_mutex_init(&f->be.lock);
    g_cond_init(&f->be.cond);
    f->be.thread = g_thread_new("fake-backend", be_thread, &f->be);

    f->u = vhost_user_state_new(f->chr, "blk0");
    /*
     * Negotiation itself is tested elsewhere: take its outcome as given.
     * Memory slots without REPLY_ACK: ADD_MEM_REG may be sent, the memory
     * code still sends whole tables.
     */
    vhost_user_set_features(f->u, 1ull << VHOST_USER_F_PROTOCOL_FEATURES,
                            (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
                            (slots ? 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK : 0) |
                            (pagefault ? 1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT : 0));
    vhost_user_set_negotiated(f->u, 1);
    if (slots) {
        ck_assert_msg(vhost_user_mem_negotiate(f->u, &err), "%s", err ? err->message : "?");
        ck_assert(vhost_user_mem_slots_enabled(f->u));
    }
}

static void fixture_start(Fixture *f, Fault fault, bool pagefault)
{
    fixture_start_slots(f, fault, pagefault, false);
}

static void fixture_stop(Fixture *f)
{
    vhost_user_state_free(f->u);
    char_socket_disconnect(f->chr, "test done");
    g_thread_join(f->be.thread);
    g_mutex_clear(&f->be.lock);
    g_cond_clear(&f->be.cond);
    char_socket_free(f->chr);
    /* Let deferred chardev work run and release what it holds. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    unlink(f->path);
    rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

/* Two guest RAM regions through the memory code's SET_MEM_TABLE path. */
static bool send_table(Fixture *f, GError **errp)
{
    GuestMemory *mem = guest_memory_new();
    RamBlock *rb0 = ram_block_new_memfd("ram0", RSIZE, errp);
    RamBlock *rb1 = ram_block_new_memfd("ram1", RSIZE, errp);
    bool ok;

    ck_assert(rb0 && rb1);
    ck_assert(guest_memory_add(mem, GPA0, rb0, 0, RSIZE, errp));
    ck_assert(guest_memory_add(mem, GPA1, rb1, 0, RSIZE, errp));
    ok = vhost_user_mem_update(f->u, "blk0", 0, mem, errp);
    guest_memory_free(mem);
    ram_block_unref(rb0);
    ram_block_unref(rb1);
    return ok;
}

/* One hotplugged region: ADD_MEM_REG as the memory slot code sends it. */
static bool send_reg(Fixture *f, GError **errp)
{
    VhostUserMsg msg;
    int fd = memfd_create("r2", MFD_CLOEXEC);
    bool ok;

    memset(&msg, 0, sizeof(msg));
    msg.hdr.request = VHOST_USER_ADD_MEM_REG;
    msg.hdr.size = sizeof(VhostUserMemRegMsg);
    msg.payload.mem_reg.region = (VhostUserMemoryRegion) {
        .guest_phys_addr = GPA2, .memory_size = RSIZE, .userspace_addr = 0x90000000,
    };
    ok = vhost_user_call_listening(f->u, 0, &msg, &fd, 1, vhost_user_postcopy_mem_reply,
                                   NULL, errp);
    close(fd);
    return ok;
}

static void must(bool ok, GError *err)
{
    ck_assert_msg(ok, "%s", err ? err->message : "?");
}

START_TEST(test_round_trip)
{
    Fixture f;
    GError *err = NULL;
    uint64_t gpa = 0;
    unsigned region = 99;
    int fds_before = ut_count_fds();

    fixture_start(&f, FAULT_NONE, true);
    must(vhost_user_postcopy_advise(f.u, &err), err);
    ck_assert_int_ge(vhost_user_postcopy_ufd(f.u), 0);
    must(vhost_user_postcopy_listen(f.u, &err), err);
    ck_assert(f.u->postcopy_listening);
    must(send_table(&f, &err), err);
    must(send_reg(&f, &err), err);

    ck_assert(vhost_user_postcopy_translate(f.u, BE_BASE + RSIZE + 0x1234, &gpa, &region));
    ck_assert_uint_eq(gpa, GPA1 + 0x1234);
    ck_assert_uint_eq(region, 1);
    ck_assert(vhost_user_postcopy_translate(f.u, BE_BASE, &gpa, &region));
    ck_assert_uint_eq(gpa, GPA0);
    ck_assert_uint_eq(region, 0);
    ck_assert(vhost_user_postcopy_translate(f.u, BE_BASE + 0x80000000ull + RSIZE - 1, &gpa,
                                            &region));
    ck_assert_uint_eq(gpa, GPA2 + RSIZE - 1);
    ck_assert_uint_eq(region, 2);
    ck_assert(!vhost_user_postcopy_translate(f.u, BE_BASE + 0x80000000ull + RSIZE, &gpa,
                                             &region));
    ck_assert(!vhost_user_postcopy_translate(f.u, BE_BASE + 2 * RSIZE, &gpa, &region));
    ck_assert(!vhost_user_postcopy_translate(f.u, BE_BASE - 1, &gpa, &region));

    must(vhost_user_postcopy_end(f.u, &err), err);
    /* END's reply came after the ack was read: the count is final. */
    ck_assert_int_eq(g_atomic_int_get(&f.be.acks), 2);
    ck_assert(!f.u->postcopy_listening);
    ck_assert_int_eq(vhost_user_postcopy_ufd(f.u), -1);
    ck_assert(vhost_user_is_usable(f.u));
    fixture_stop(&f);
    ck_assert_int_eq(ut_count_fds(), fds_before);
}
END_TEST

START_TEST(test_without_pagefault)
{
    Fixture f;
    GError *err = NULL;

    fixture_start(&f, FAULT_NONE, false);
    ck_assert(!vhost_user_postcopy_advise(f.u, &err));
    ck_assert_msg(strstr(err->message, "blk0: POSTCOPY_ADVISE") &&
                  strstr(err->message, "PAGEFAULT"),
                  "%s", err->message);
    g_clear_error(&err);
    ck_assert(vhost_user_is_usable(f.u));
    fixture_stop(&f);
}
END_TEST

static gpointer get_features_thread(gpointer opaque)
{
    Fixture *f = opaque;
    uint64_t v = 0;
    GError *err = NULL;

    must(vhost_user_call_u64(f->u, 0, VHOST_USER_GET_FEATURES, &v, &err), err);
    return NULL;
}

typedef struct Translate {
    VhostUserState *u;
    uint64_t gpa;
    gint done;
} Translate;

static gpointer translate_thread(gpointer opaque)
{
    Translate *t = opaque;
    unsigned region;

    ck_assert(vhost_user_postcopy_translate(t->u, BE_BASE + RSIZE + 0x10, &t->gpa, &region));
    g_atomic_int_set(&t->done, 1);
    return NULL;
}

/*
 * The fault thread translates while the loop waits for a reply that the
 * back-end gives only once its fault is served: translating must not wait
 * for that request (libvhost-user reads the used index in SET_VRING_ADDR).
 */
START_TEST(test_translate_during_request)
{
    Fixture f;
    GError *err = NULL;
    Translate t = { 0 };
    GThread *req, *tr;
    gint64 end;
    bool in_time;

    fixture_start(&f, FAULT_NONE, true);
    must(vhost_user_postcopy_advise(f.u, &err), err);
    must(vhost_user_postcopy_listen(f.u, &err), err);
    must(send_table(&f, &err), err);
    f.be.hold = true;
    req = g_thread_new("request", get_features_thread, &f);
    g_mutex_lock(&f.be.lock);
    while (!f.be.held) {
        g_cond_wait(&f.be.cond, &f.be.lock);
    }
    g_mutex_unlock(&f.be.lock);
    t.u = f.u;
    tr = g_thread_new("translate", translate_thread, &t);
    end = g_get_monotonic_time() + 2 * G_TIME_SPAN_SECOND;
    while (!g_atomic_int_get(&t.done) && g_get_monotonic_time() < end) {
        g_usleep(1000);
    }
    in_time = g_atomic_int_get(&t.done);
    /* Released either way, so that a failing run still ends. */
    g_mutex_lock(&f.be.lock);
    f.be.released = true;
    g_cond_broadcast(&f.be.cond);
    g_mutex_unlock(&f.be.lock);
    g_thread_join(req);
    g_thread_join(tr);
    ck_assert_msg(in_time, "translation waited for the request's reply");
    ck_assert_uint_eq(t.gpa, GPA1 + 0x10);
    fixture_stop(&f);
}
END_TEST

/*
 * A child maps a memfd once (or twice: ambiguous), connects to us (so the
 * socket's peer credentials are its own, as a back-end's are) and tells
 * where; we find that base from its maps by the file behind our mapping.
 */
static void peer_base_case(unsigned child_maps, bool want_found)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    socklen_t salen;
    int lfd, cfd, fd = memfd_create("pc-peer", MFD_CLOEXEC);
    uint8_t *ours;
    uint64_t child_addr = 0, base = 0;
    pid_t pid;
    char c;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 4 * RSIZE), 0);
    /* Abstract address: nothing to clean up. */
    snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "vupc-peer-%d-%u", (int)getpid(),
             child_maps);
    salen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, salen), 0);
    ck_assert_int_eq(listen(lfd, 1), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        void *p = mmap(NULL, 4 * RSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        for (unsigned i = 1; i < child_maps; i++) {
            mmap(NULL, 4 * RSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        }
        child_addr = (uint64_t)(uintptr_t)p;
        if (connect(s, (struct sockaddr *)&sa, salen) < 0 ||
            write(s, &child_addr, sizeof(child_addr)) != sizeof(child_addr) ||
            read(s, &c, 1) < 0) {
            _exit(1);
        }
        _exit(0);
    }
    cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(cfd, 0);
    close(lfd);
    ck_assert_int_eq(read(cfd, &child_addr, sizeof(child_addr)), sizeof(child_addr));
    ours = mmap(NULL, 4 * RSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert(ours != MAP_FAILED);
    /* The region is the file's second RSIZE. */
    ck_assert_int_eq(vhost_user_postcopy_peer_base(cfd, (uint64_t)(uintptr_t)ours + RSIZE,
                                                   RSIZE, RSIZE, &base), want_found);
    if (want_found) {
        ck_assert_uint_eq(base, child_addr + RSIZE);
    }
    /* Our own end is no peer: nothing to look up. */
    ck_assert(!vhost_user_postcopy_peer_base(-1, (uint64_t)(uintptr_t)ours, 0, RSIZE, &base));
    ck_assert_int_eq(write(cfd, "x", 1), 1);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    munmap(ours, 4 * RSIZE);
    close(cfd);
    close(fd);
}

START_TEST(test_peer_base)
{
    peer_base_case(1, true);
    peer_base_case(2, false);
}
END_TEST

typedef struct FaultCase {
    Fault fault;
    const char *needle;
} FaultCase;

static const FaultCase fault_cases[] = {
    { FAULT_NO_FD, "POSTCOPY_ADVISE reply: 0 fds" },
    { FAULT_EVENTFD, "POSTCOPY_ADVISE reply: the fd is not a userfaultfd" },
    { FAULT_COUNT, "SET_MEM_TABLE reply: nregions 1 but 2" },
    { FAULT_GPA, "SET_MEM_TABLE reply: region 1 guest_phys_addr" },
    { FAULT_SIZE, "SET_MEM_TABLE reply: region 1 memory_size" },
    { FAULT_END_STATUS, "back-end failed POSTCOPY_END (status 1)" },
    { FAULT_REG_SIZE, "ADD_MEM_REG reply: region 0 memory_size" },
};

START_TEST(test_bad_backend)
{
    const FaultCase *c = &fault_cases[_i];
    Fixture f;
    GError *err = NULL;
    bool ok;
    int fds_before = ut_count_fds();

    fixture_start(&f, c->fault, true);
    ok = vhost_user_postcopy_advise(f.u, &err);
    if (ok) {
        must(vhost_user_postcopy_listen(f.u, &err), err);
        ok = send_table(&f, &err);
    }
    if (ok) {
        ok = send_reg(&f, &err);
    }
    if (ok) {
        ok = vhost_user_postcopy_end(f.u, &err);
    }
    ck_assert_msg(!ok, "fault %d was accepted", c->fault);
    ck_assert_msg(strstr(err->message, "blk0") && strstr(err->message, c->needle),
                  "fault %d: %s", c->fault, err->message);
    g_clear_error(&err);
    if (c->fault != FAULT_END_STATUS) {
        /* A malformed reply: never talk to that back-end again. */
        ck_assert(vhost_user_is_broken(f.u));
    }
    if (c->fault <= FAULT_EVENTFD || c->fault == FAULT_END_STATUS) {
        ck_assert_int_eq(vhost_user_postcopy_ufd(f.u), -1);
    }
    fixture_stop(&f);
    ck_assert_int_eq(ut_count_fds(), fds_before);
}
END_TEST

/*
 * With memory slots, a listening back-end that holds nothing yet gets the
 * whole table in one SET_MEM_TABLE (libvhost-user never reads an
 * acknowledgement of a listening ADD_MEM_REG), and the slot shadow then
 * holds that table: the same RAM again sends nothing.
 */
START_TEST(test_slots_listening_table)
{
    Fixture f;
    GError *err = NULL;
    GuestMemory *mem = guest_memory_new();
    RamBlock *rb0 = ram_block_new_memfd("ram0", RSIZE, &err);
    RamBlock *rb1 = ram_block_new_memfd("ram1", RSIZE, &err);

    ck_assert(rb0 && rb1);
    ck_assert(guest_memory_add(mem, GPA0, rb0, 0, RSIZE, &err));
    ck_assert(guest_memory_add(mem, GPA1, rb1, 0, RSIZE, &err));
    fixture_start_slots(&f, FAULT_NONE, true, true);
    ck_assert_msg(vhost_user_postcopy_advise(f.u, &err), "%s", err ? err->message : "?");
    ck_assert_msg(vhost_user_postcopy_listen(f.u, &err), "%s", err ? err->message : "?");
    ck_assert_msg(vhost_user_mem_update(f.u, "blk0", 0, mem, &err), "%s",
                  err ? err->message : "?");
    ck_assert_int_eq(g_atomic_int_get(&f.be.tables), 1);
    ck_assert_int_eq(g_atomic_int_get(&f.be.regs), 0);
    ck_assert_int_eq(vhost_user_mem_regions_in_use(f.u), 2);
    /* The shadow is that table: nothing to add or remove. */
    ck_assert_msg(vhost_user_mem_update(f.u, "blk0", 0, mem, &err), "%s",
                  err ? err->message : "?");
    ck_assert_int_eq(g_atomic_int_get(&f.be.tables), 1);
    ck_assert_int_eq(g_atomic_int_get(&f.be.regs), 0);
    ck_assert_msg(vhost_user_postcopy_end(f.u, &err), "%s", err ? err->message : "?");
    /* END's reply came after the ack was read: the count is final. */
    ck_assert_int_eq(g_atomic_int_get(&f.be.acks), 1);
    fixture_stop(&f);
    guest_memory_free(mem);
    ram_block_unref(rb0);
    ram_block_unref(rb1);
}
END_TEST

static Suite *postcopy_suite(void)
{
    Suite *s = suite_create("vhost-user-postcopy");
    TCase *tc = tcase_create("proto");

    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_without_pagefault);
    tcase_add_test(tc, test_slots_listening_table);
    tcase_add_test(tc, test_translate_during_request);
    tcase_add_test(tc, test_peer_base);
    tcase_add_loop_test(tc, test_bad_backend, 0, G_N_ELEMENTS(fault_cases));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(postcopy_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
