/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy with a vhost-user back-end: a forked child maps the guest's
 * ram0 again and registers it on a userfaultfd of its own, handed over a
 * socketpair as POSTCOPY_ADVISE would. Its faults are requested and woken
 * on its own ufd at its own address, alongside the guest's; a removed ufd
 * is left alone; a child that unmaps or forks is served on; a fault the
 * translation refuses reaches err_fn while the guest keeps going; holes.
 *
 * The guest and the MigPostcopy helpers are test-postcopy-ram.c's.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migration/postcopy-ram.h"
#include "migration/uffd-compat.h"
#include "system/memory.h"
#include "unit-sock.h"
#include "util/vhost-user-error.h"

#include "test-postcopy-ram.h"

/* ---- A back-end in a child process ---- */

typedef struct BeCmd {
    char op;                    /* 'T' touch, 'U' unmap, 'F' fork */
    uint64_t off, len;
} BeCmd;

typedef struct BeReply {
    uint64_t base;              /* hello: where the child mapped ram0 */
    uint8_t byte;               /* 'T': what it read */
    int err;
} BeReply;

/* ram0 mapped again, registered MISSING on a userfaultfd of its own. */
static void backend_child(int sock, int memfd)
{
    uint8_t *base = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    int ufd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    /* As a back-end may: it hears of its own unmaps, madvises and forks. */
    struct uffdio_api api = {
        .api = UFFD_API, .features = UFFD_FEATURE_EVENT_UNMAP |
                                     UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_FORK,
    };
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)base, .len = RAM_SIZE },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    BeReply r = { .base = (uintptr_t)base };
    BeCmd c;

    if (base == MAP_FAILED || ufd < 0 || ioctl(ufd, UFFDIO_API, &api) < 0 ||
        ioctl(ufd, UFFDIO_REGISTER, &reg) < 0) {
        r.err = errno;
    }
    ut_send_fds(sock, &r, sizeof(r), &ufd, 1);
    while (ut_recv_full(sock, &c, sizeof(c), NULL, 0, NULL)) {
        if (c.op == 'T') {
            r.byte = *(volatile uint8_t *)(base + c.off);
        } else if (c.op == 'F') {
            pid_t pid = fork();

            if (pid == 0) {
                _exit(0);
            }
            r.err = pid < 0 ? errno : waitpid(pid, NULL, 0) == pid ? 0 : errno;
        } else {
            r.err = munmap(base + c.off, c.len) < 0 ? errno : 0;
        }
        ut_send_fds(sock, &r, sizeof(r), NULL, 0);
    }
    _exit(0);
}

typedef struct Backend {
    pid_t pid;
    int sock;
    int ufd;
    uint64_t base;
    uint64_t refuse;            /* atomic: a GPA page translate refuses (0: none) */
    uint64_t misplace;          /* atomic: one it sends to the gap in GPA space */
    int errors;                 /* atomic: err_fn calls */
    int err_ufd;
    MigPostcopy *remove_in_err_fn;  /* err_fn removes the ufd from this */
    char *err_msg;
} Backend;

static void backend_start(Backend *be, Guest *g)
{
    int sv[2];
    BeReply r;
    size_t n = 0;

    memset(be, 0, sizeof(*be));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    be->pid = fork();
    ck_assert_int_ge(be->pid, 0);
    if (be->pid == 0) {
        close(sv[0]);
        backend_child(sv[1], g->block[0]->fd);
    }
    close(sv[1]);
    be->sock = sv[0];
    ck_assert(ut_recv_full(be->sock, &r, sizeof(r), &be->ufd, 1, &n));
    ck_assert_msg(r.err == 0 && n == 1, "back-end set-up: %s", g_strerror(r.err));
    be->base = r.base;
}

static void backend_stop(Backend *be)
{
    int status;

    kill(be->pid, SIGKILL);             /* it may be blocked in a fault for good */
    ck_assert_int_eq(waitpid(be->pid, &status, 0), be->pid);
    close(be->sock);
    close(be->ufd);
    g_free(be->err_msg);
}

static void backend_send(Backend *be, char op, uint64_t gpa, uint64_t len)
{
    BeCmd c = { .op = op, .off = gpa, .len = len };

    ck_assert_int_eq(write(be->sock, &c, sizeof(c)), sizeof(c));
}

/* The child's reply once it came (its touch got the page), within the deadline. */
static BeReply backend_reply(Backend *be)
{
    struct pollfd p = { .fd = be->sock, .events = POLLIN };
    BeReply r;

    ck_assert_msg(poll(&p, 1, DEADLINE_US / 1000) == 1, "the back-end never answered");
    ck_assert(ut_recv_full(be->sock, &r, sizeof(r), NULL, 0, NULL));
    return r;
}

static bool backend_answered(Backend *be)
{
    struct pollfd p = { .fd = be->sock, .events = POLLIN };

    return poll(&p, 1, 0) == 1;
}

/* What the library does for a back-end waiting on gpa, done by hand. */
static void backend_wake(Backend *be, uint64_t gpa)
{
    struct uffdio_range range = { .start = be->base + gpa, .len = PAGE };

    ck_assert_int_eq(ioctl(be->ufd, UFFDIO_WAKE, &range), 0);
}

/* ram0 is at GPA 0: the back-end's address minus its base. */
static bool backend_translate(uint64_t addr, uint64_t *gpa, void *opaque)
{
    Backend *be = opaque;
    uint64_t refuse = __atomic_load_n(&be->refuse, __ATOMIC_ACQUIRE);

    uint64_t misplace = __atomic_load_n(&be->misplace, __ATOMIC_ACQUIRE);

    if (addr < be->base || addr - be->base >= RAM_SIZE ||
        (refuse && addr - be->base == refuse)) {
        return false;
    }
    *gpa = misplace && addr - be->base == misplace ? 2 * MiB : addr - be->base;
    return true;
}

static void backend_error(int ufd, const GError *err, void *opaque)
{
    Backend *be = opaque;

    be->err_ufd = ufd;
    if (be->remove_in_err_fn) {
        mig_postcopy_remove_shared(be->remove_in_err_fn, ufd);    /* on the fault thread */
    }
    g_free(be->err_msg);
    be->err_msg = g_strdup(err->message);
    g_atomic_int_inc(&be->errors);
}

static void add_shared(MigPostcopy *pc, Backend *be)
{
    GError *err = NULL;

    ck_assert_msg(mig_postcopy_add_shared(pc, be->ufd, "blk0", backend_translate,
                                          backend_error, be, &err),
                  "add_shared: %s", err ? err->message : "?");
}

/* The back-end touches a missing page: asleep until placed, then sees it. */
static void backend_fault_then_place(MigPostcopy *pc, Backend *be, Requests *rq,
                                     uint64_t gpa, uint8_t byte)
{
    backend_send(be, 'T', gpa, 0);
    WAIT_FOR(pr_requests_for(rq, gpa) == 1, "the back-end's page request");
    pr_assert_asleep(be->pid, be->pid, "the back-end");
    ck_assert_msg(!backend_answered(be), "the back-end was woken before the page came");
    pr_place(pc, gpa, byte);
    ck_assert_uint_eq(backend_reply(be).byte, byte);
}

START_TEST(test_backend_ufd)
{
    unsigned fds = ut_count_fds();
    Guest *g = pr_guest_new();
    uint64_t p1 = 1 * PAGE, p2 = 2 * PAGE, p3 = 3 * PAGE, p4 = 4 * PAGE;
    struct uffd_msg msg;
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    Backend be;
    Toucher t;

    backend_start(&be, g);              /* before any thread: a clean fork */
    pc = pr_pc_new(g, &rq);
    pr_discard(pc, 0, 8 * PAGE);
    pr_listen_ok(pc);
    add_shared(pc, &be);                /* the thread runs already */

    backend_fault_then_place(pc, &be, &rq, p1, 0x11);
    st = pr_stats(pc);
    pr_assert_counts(&st, (MigPostcopyStats) {
        .faults_backend = 1, .requests = 1, .pages_placed = 1, .pages_missing = 7,
    });
    ck_assert_uint_ge(st.backend_max_us, 20000);
    ck_assert_uint_eq(st.blocktime_backend_us, st.backend_max_us);

    /* A page placed before the back-end touched it: served from the file. */
    pr_place(pc, p2, 0x22);
    backend_send(&be, 'T', p2, 0);
    ck_assert_uint_eq(backend_reply(&be).byte, 0x22);

    /* The back-end unmaps the end of its mapping (an UNMAP event), and goes on. */
    backend_send(&be, 'U', RAM_SIZE - 16 * PAGE, 16 * PAGE);
    ck_assert_int_eq(backend_reply(&be).err, 0);
    /* It forks (a FORK event with a new ufd for us: closed, not leaked). */
    backend_send(&be, 'F', 0, 0);
    ck_assert_int_eq(backend_reply(&be).err, 0);
    backend_fault_then_place(pc, &be, &rq, p3, 0x33);
    ck_assert_int_eq(g_atomic_int_get(&be.errors), 0);

    /* Removed: its faults are no longer read by the library. We read it. */
    mig_postcopy_remove_shared(pc, be.ufd);
    backend_send(&be, 'T', p4, 0);
    {
        struct pollfd p = { .fd = be.ufd, .events = POLLIN };

        ck_assert_int_eq(poll(&p, 1, DEADLINE_US / 1000), 1);
    }
    ck_assert_int_eq(read(be.ufd, &msg, sizeof(msg)), sizeof(msg));
    ck_assert_uint_eq(msg.event, UFFD_EVENT_PAGEFAULT);
    ck_assert_uint_eq(msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1), be.base + p4);
    ck_assert_uint_eq(pr_requests_for(&rq, p4), 0);
    pr_place(pc, p4, 0x44);
    ck_assert_msg(!backend_answered(&be), "a removed back-end was woken");
    backend_wake(&be, p4);
    ck_assert_uint_eq(backend_reply(&be).byte, 0x44);

    /* Added again; a fault translate refuses: err_fn, and the guest goes on. */
    add_shared(pc, &be);
    __atomic_store_n(&be.refuse, 5 * PAGE, __ATOMIC_RELEASE);
    backend_send(&be, 'T', 5 * PAGE, 0);
    WAIT_FOR(g_atomic_int_get(&be.errors) == 1, "err_fn");
    ck_assert_int_eq(be.err_ufd, be.ufd);
    ck_assert_msg(strstr(be.err_msg, "blk0: ") && strstr(be.err_msg, "none of the regions"),
                  "%s", be.err_msg);
    pr_toucher_start(&t, pr_hva(g, 6 * PAGE));
    WAIT_FOR(pr_requests_for(&rq, 6 * PAGE) == 1, "the guest's request");
    pr_place(pc, 6 * PAGE, 0x66);
    ck_assert_uint_eq(pr_toucher_join(&t), 0x66);
    ck_assert_uint_eq(pr_requests_for(&rq, 5 * PAGE), 0);
    pr_place(pc, 5 * PAGE, 0x55);
    backend_wake(&be, 5 * PAGE);
    ck_assert_uint_eq(backend_reply(&be).byte, 0x55);

    /* A translation into the gap between regions: the same; err_fn removes it. */
    mig_postcopy_remove_shared(pc, be.ufd);
    add_shared(pc, &be);
    be.remove_in_err_fn = pc;
    __atomic_store_n(&be.misplace, 7 * PAGE, __ATOMIC_RELEASE);
    backend_send(&be, 'T', 7 * PAGE, 0);
    WAIT_FOR(g_atomic_int_get(&be.errors) == 2, "err_fn");
    ck_assert_msg(strstr(be.err_msg, "translates to GPA 0x200000, outside guest RAM"),
                  "%s", be.err_msg);
    ck_assert_uint_eq(pr_requests_for(&rq, 7 * PAGE), 0);
    add_shared(pc, &be);                /* it was removed: added again */
    mig_postcopy_remove_shared(pc, be.ufd);

    backend_stop(&be);
    pr_pc_free(pc, &rq, g);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

/*
 * A back-end faulting on a received hole: a zero page, woken on its ufd, no
 * request. Also after finish, with the caller's ufd closed (as POSTCOPY_END
 * does) and before the caller removed it: the back-end may fault until it
 * answered POSTCOPY_END.
 */
START_TEST(test_backend_hole)
{
    unsigned fds = ut_count_fds();
    Guest *g = pr_guest_new();
    uint64_t hole = 200 * PAGE;
    GError *err = NULL;
    MigPostcopy *pc;
    Requests rq;
    Backend be;
    int key;

    backend_start(&be, g);
    pc = pr_pc_new(g, &rq);
    pr_listen_ok(pc);
    key = dup(be.ufd);
    ck_assert_msg(mig_postcopy_add_shared(pc, key, "blk0", backend_translate, backend_error,
                                          &be, &err), "add_shared: %s", err ? err->message : "?");
    backend_send(&be, 'T', hole, 0);
    ck_assert_uint_eq(backend_reply(&be).byte, 0);
    ck_assert_uint_eq(pr_requests_total(&rq), 0);
    ck_assert_uint_eq(pr_stats(pc).faults_backend, 1);
    ck_assert_uint_eq(pr_stats(pc).faults_present, 1);
    ck_assert(pr_in_file(g, hole));
    /* Ours sees the same zero page. */
    ck_assert_uint_eq(pr_hva(g, hole)[1], 0);
    pr_finish_ok(pc);
    close(key);
    backend_send(&be, 'T', hole + PAGE, 0);
    ck_assert_uint_eq(backend_reply(&be).byte, 0);
    ck_assert(pr_in_file(g, hole + PAGE));
    ck_assert_uint_eq(pr_stats(pc).faults_backend, 2);
    ck_assert_int_eq(g_atomic_int_get(&be.errors), 0);
    mig_postcopy_remove_shared(pc, key);
    backend_stop(&be);
    pr_pc_free(pc, &rq, g);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

void postcopy_ram_backend_add_tests(TCase *tc)
{
    tcase_add_test(tc, test_backend_ufd);
    tcase_add_test(tc, test_backend_hole);
}
