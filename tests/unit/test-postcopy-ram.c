/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy on the destination (migration/postcopy-ram.c) with the real
 * kernel: memfd guest RAM under userfaultfd. Threads of this process play
 * the guest; a forked child plays a vhost-user back-end with a mapping and
 * a userfaultfd of its own, handed over a socketpair as POSTCOPY_ADVISE
 * would. A fault blocks (asleep, not spinning) until its page is placed;
 * one request a page however many fault; holes become zero pages with no
 * request; back-ends are woken on their own ufd at their own address; a
 * removed ufd is left alone; a back-end that unmaps or forks is served on;
 * a bad back-end fault reaches err_fn while the guest keeps going; finish
 * counts what is missing; the statistics; what supported says when the
 * kernel refuses. The tests with the back-end child are in
 * test-postcopy-ram-backend.c, on the helpers of test-postcopy-ram.h.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migration/postcopy-ram.h"
#include "migration/uffd-compat.h"
#include "system/memory.h"
#include "unit-sock.h"
#include "util/vhost-user-error.h"

#include "test-postcopy-ram.h"

/* The page's fill byte, never 0. */
static uint8_t pattern(uint64_t gpa)
{
    return (uint8_t)(gpa / PAGE * 13 % 251 + 1);
}

/* ram0 at GPA 0, ram1 at 4 MiB; the first DATA_PAGES of each hold data, the rest are holes. */
Guest *pr_guest_new(void)
{
    Guest *g = g_new0(Guest, 1);
    GError *err = NULL;

    g->mem = guest_memory_new();
    for (int i = 0; i < 2; i++) {
        g_autofree char *id = g_strdup_printf("ram%d", i);
        uint64_t gpa = i ? RAM1_GPA : 0;

        g->block[i] = ram_block_new_memfd(id, RAM_SIZE, &err);
        ck_assert_msg(g->block[i], "%s", err ? err->message : "?");
        for (unsigned p = 0; p < DATA_PAGES; p++) {
            memset((uint8_t *)g->block[i]->host + p * PAGE, pattern(gpa + p * PAGE), PAGE);
        }
        ck_assert(guest_memory_add(g->mem, gpa, g->block[i], 0, RAM_SIZE, &err));
    }
    return g;
}

static void guest_free(Guest *g)
{
    guest_memory_free(g->mem);
    ram_block_unref(g->block[0]);
    ram_block_unref(g->block[1]);
    g_free(g);
}

uint8_t *pr_hva(Guest *g, uint64_t gpa)
{
    int i = gpa >= RAM1_GPA;

    return (uint8_t *)g->block[i]->host + (gpa - (i ? RAM1_GPA : 0));
}

/* Whether the block's file holds data at gpa's page (not a hole). */
bool pr_in_file(Guest *g, uint64_t gpa)
{
    int i = gpa >= RAM1_GPA;
    off_t off = gpa - (i ? RAM1_GPA : 0);

    return lseek(g->block[i]->fd, off, SEEK_DATA) == off;
}

static void on_request(uint64_t gpa, void *opaque)
{
    Requests *rq = opaque;
    gpointer key = GSIZE_TO_POINTER(gpa);

    g_mutex_lock(&rq->lock);
    g_hash_table_insert(rq->count, key,
                        GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(rq->count, key)) + 1));
    rq->total++;
    g_mutex_unlock(&rq->lock);
}

static void requests_init(Requests *rq)
{
    g_mutex_init(&rq->lock);
    rq->count = g_hash_table_new(g_direct_hash, g_direct_equal);
    rq->total = 0;
}

static void requests_fini(Requests *rq)
{
    g_hash_table_unref(rq->count);
    g_mutex_clear(&rq->lock);
}

unsigned pr_requests_for(Requests *rq, uint64_t gpa)
{
    unsigned n;

    g_mutex_lock(&rq->lock);
    n = GPOINTER_TO_UINT(g_hash_table_lookup(rq->count, GSIZE_TO_POINTER(gpa)));
    g_mutex_unlock(&rq->lock);
    return n;
}

unsigned pr_requests_total(Requests *rq)
{
    unsigned n;

    g_mutex_lock(&rq->lock);
    n = rq->total;
    g_mutex_unlock(&rq->lock);
    return n;
}

/* A MigPostcopy for g whose requests go to rq (initialised here). */
MigPostcopy *pr_pc_new(Guest *g, Requests *rq)
{
    GError *err = NULL;
    MigPostcopy *pc;

    requests_init(rq);
    pc = mig_postcopy_new(g->mem, on_request, rq, &err);
    ck_assert_msg(pc, "mig_postcopy_new: %s", err ? err->message : "?");
    return pc;
}

void pr_pc_free(MigPostcopy *pc, Requests *rq, Guest *g)
{
    mig_postcopy_free(pc);
    requests_fini(rq);
    guest_free(g);
}

void pr_discard(MigPostcopy *pc, uint64_t gpa, uint64_t len)
{
    GError *err = NULL;

    ck_assert_msg(mig_postcopy_discard(pc, gpa, len, &err), "discard: %s",
                  err ? err->message : "?");
}

void pr_listen_ok(MigPostcopy *pc)
{
    GError *err = NULL;

    ck_assert_msg(mig_postcopy_listen(pc, &err), "listen: %s", err ? err->message : "?");
}

/* Places gpa's page filled with byte (0: a zero page). */
void pr_place(MigPostcopy *pc, uint64_t gpa, uint8_t byte)
{
    uint8_t data[PAGE];
    GError *err = NULL;

    memset(data, byte, PAGE);
    ck_assert_msg(mig_postcopy_place(pc, gpa, byte ? data : NULL, &err),
                  "place 0x%" G_GINT64_MODIFIER "x: %s", gpa, err ? err->message : "?");
}

MigPostcopyStats pr_stats(MigPostcopy *pc)
{
    MigPostcopyStats st;

    mig_postcopy_get_stats(pc, &st);
    return st;
}

/* The counters (not the times) are exactly want's. */
void pr_assert_counts(const MigPostcopyStats *st, MigPostcopyStats want)
{
    ck_assert_uint_eq(st->faults_guest, want.faults_guest);
    ck_assert_uint_eq(st->faults_backend, want.faults_backend);
    ck_assert_uint_eq(st->faults_present, want.faults_present);
    ck_assert_uint_eq(st->requests, want.requests);
    ck_assert_uint_eq(st->pages_placed, want.pages_placed);
    ck_assert_uint_eq(st->pages_zero, want.pages_zero);
    ck_assert_uint_eq(st->pages_missing, want.pages_missing);
}

void pr_finish_ok(MigPostcopy *pc)
{
    GError *err = NULL;

    ck_assert_msg(mig_postcopy_finish(pc, &err), "finish: %s", err ? err->message : "?");
}

static gpointer toucher_run(gpointer opaque)
{
    Toucher *t = opaque;

    g_atomic_int_set(&t->tid, gettid());
    t->seen = *t->addr;
    g_atomic_int_set(&t->done, 1);
    return NULL;
}

void pr_toucher_start(Toucher *t, uint8_t *addr)
{
    *t = (Toucher) { .addr = addr };
    t->thread = g_thread_new("toucher", toucher_run, t);
    WAIT_FOR(g_atomic_int_get(&t->tid), "the toucher thread");
}

uint8_t pr_toucher_join(Toucher *t)
{
    WAIT_FOR(g_atomic_int_get(&t->done), "the toucher to get its page");
    g_thread_join(t->thread);
    return t->seen;
}

/* The scheduler state letter of a task ('S': asleep, 'R': running). */
static char task_state(int pid, int tid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/task/%d/stat", pid, tid);
    g_autofree char *text = NULL;
    const char *p;

    ck_assert_msg(g_file_get_contents(path, &text, NULL, NULL), "%s", path);
    p = strrchr(text, ')');
    ck_assert(p && p[1] == ' ');
    return p[2];
}

/* Asleep every time we look over ~20 ms: blocked in the fault, not spinning on it. */
void pr_assert_asleep(int pid, int tid, const char *who)
{
    for (int i = 0; i < 20; i++) {
        char state = task_state(pid, tid);

        ck_assert_msg(state == 'S', "%s is in state '%c', not asleep", who, state);
        g_usleep(1000);
    }
}

START_TEST(test_fault_waits_for_place)
{
    unsigned fds = ut_count_fds();
    Guest *g = pr_guest_new();
    uint64_t gpa = 5 * PAGE;
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    Toucher t;

    pc = pr_pc_new(g, &rq);
    pr_discard(pc, gpa, PAGE);
    ck_assert(!mig_postcopy_received(pc, gpa));
    ck_assert(mig_postcopy_received(pc, gpa + PAGE));
    ck_assert_uint_eq(mig_postcopy_missing(pc), 1);
    ck_assert_msg(!pr_in_file(g, gpa), "the discarded page is still in the file");
    pr_listen_ok(pc);

    pr_toucher_start(&t, pr_hva(g, gpa));
    WAIT_FOR(pr_requests_for(&rq, gpa) == 1, "the page request");
    ck_assert(!g_atomic_int_get(&t.done));
    pr_assert_asleep(getpid(), t.tid, "the faulting thread");
    ck_assert(!g_atomic_int_get(&t.done));

    pr_place(pc, gpa, 0x5a);
    ck_assert_uint_eq(pr_toucher_join(&t), 0x5a);
    ck_assert_uint_eq(pr_hva(g, gpa)[PAGE - 1], 0x5a);
    ck_assert_uint_eq(pr_hva(g, gpa + PAGE)[0], pattern(gpa + PAGE));
    ck_assert(mig_postcopy_received(pc, gpa));
    ck_assert_uint_eq(mig_postcopy_missing(pc), 0);

    st = pr_stats(pc);
    pr_assert_counts(&st, (MigPostcopyStats) {
        .faults_guest = 1, .requests = 1, .pages_placed = 1,
    });
    /* Asleep for 20 ms at least before the place. */
    ck_assert_uint_ge(st.blocktime_guest_us, 20000);
    ck_assert_uint_eq(st.guest_max_us, st.blocktime_guest_us);
    ck_assert_uint_eq(st.guest_p50_us, st.guest_max_us);
    pr_finish_ok(pc);
    pr_pc_free(pc, &rq, g);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

START_TEST(test_one_request_many_faults)
{
    Guest *g = pr_guest_new();
    uint64_t gpa = RAM1_GPA + 3 * PAGE;
    Toucher t[4];
    MigPostcopy *pc;
    Requests rq;

    pc = pr_pc_new(g, &rq);
    pr_discard(pc, gpa, PAGE);
    pr_listen_ok(pc);
    for (int i = 0; i < 4; i++) {
        pr_toucher_start(&t[i], pr_hva(g, gpa) + i * 100);
    }
    WAIT_FOR(pr_stats(pc).faults_guest == 4, "four faults read");
    ck_assert_uint_eq(pr_requests_for(&rq, gpa), 1);
    ck_assert_uint_eq(pr_stats(pc).requests, 1);

    /* A new connection to the source: asked again, once. */
    mig_postcopy_rerequest(pc);
    ck_assert_uint_eq(pr_requests_for(&rq, gpa), 2);
    ck_assert_uint_eq(pr_requests_total(&rq), 2);

    pr_place(pc, gpa, 0x77);
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(pr_toucher_join(&t[i]), 0x77);
    }
    /* Nobody waits any more: nothing to ask again. */
    mig_postcopy_rerequest(pc);
    ck_assert_uint_eq(pr_requests_total(&rq), 2);
    pr_pc_free(pc, &rq, g);
}
END_TEST

/*
 * A received page that is a hole (zero on the source, never sent) and a
 * page placed as zero nobody waited for (left a hole): a touch gets a zero
 * page at once, with no request.
 */
START_TEST(test_hole_is_zero_without_request)
{
    Guest *g = pr_guest_new();
    uint64_t hole = RAM1_GPA + 200 * PAGE, zeroed = 7 * PAGE;
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    Toucher t;

    pc = pr_pc_new(g, &rq);
    pr_discard(pc, zeroed, PAGE);
    pr_listen_ok(pc);
    pr_place(pc, zeroed, 0);
    ck_assert_msg(!pr_in_file(g, zeroed), "a zero page nobody waits for was allocated");

    pr_toucher_start(&t, pr_hva(g, hole));
    ck_assert_uint_eq(pr_toucher_join(&t), 0);
    pr_toucher_start(&t, pr_hva(g, zeroed) + 17);
    ck_assert_uint_eq(pr_toucher_join(&t), 0);
    ck_assert_uint_eq(pr_requests_total(&rq), 0);
    st = pr_stats(pc);
    pr_assert_counts(&st, (MigPostcopyStats) {
        .faults_guest = 2, .faults_present = 2, .pages_placed = 1, .pages_zero = 1,
    });
    /* The neighbours are untouched. */
    ck_assert_uint_eq(pr_hva(g, zeroed + PAGE)[0], pattern(zeroed + PAGE));
    pr_finish_ok(pc);
    pr_pc_free(pc, &rq, g);
}
END_TEST

/* A page is placed once: later copies (the stream and an answered request) are dropped. */
START_TEST(test_place_once)
{
    Guest *g = pr_guest_new();
    uint64_t before = 2 * PAGE, after = 3 * PAGE;
    MigPostcopy *pc;
    Requests rq;

    pc = pr_pc_new(g, &rq);
    pr_discard(pc, before, 2 * PAGE);
    pr_place(pc, before, 0x21);                /* before listen: written directly */
    ck_assert_uint_eq(pr_hva(g, before)[9], 0x21);
    pr_listen_ok(pc);
    pr_place(pc, before, 0x22);
    pr_place(pc, after, 0x31);
    pr_place(pc, after, 0x32);
    pr_place(pc, after, 0);
    ck_assert_uint_eq(pr_hva(g, before)[9], 0x21);
    ck_assert_uint_eq(pr_hva(g, after)[PAGE - 1], 0x31);
    ck_assert_uint_eq(pr_stats(pc).pages_placed, 2);
    ck_assert_uint_eq(pr_stats(pc).pages_zero, 0);
    ck_assert_uint_eq(pr_requests_total(&rq), 0);
    pr_finish_ok(pc);
    pr_pc_free(pc, &rq, g);
}
END_TEST

static void assert_error(GError **err, int code, const char *want)
{
    ck_assert_ptr_nonnull(*err);
    ck_assert_msg((*err)->code == code, "code %d: %s", (*err)->code, (*err)->message);
    ck_assert_msg(strstr((*err)->message, want), "'%s' not in: %s", want, (*err)->message);
    g_clear_error(err);
}

START_TEST(test_finish_counts_missing)
{
    Guest *g = pr_guest_new();
    GError *err = NULL;
    MigPostcopy *pc;
    Requests rq;

    pc = pr_pc_new(g, &rq);
    pr_discard(pc, 0, 2 * PAGE);
    pr_discard(pc, RAM1_GPA + RAM_SIZE - PAGE, PAGE);
    ck_assert_uint_eq(mig_postcopy_missing(pc), 3);
    pr_listen_ok(pc);
    pr_place(pc, PAGE, 0x41);
    ck_assert(!mig_postcopy_finish(pc, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "2 pages still missing");
    pr_place(pc, 0, 0x40);
    ck_assert(!mig_postcopy_finish(pc, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "1 page still missing");
    pr_place(pc, RAM1_GPA + RAM_SIZE - PAGE, 0);
    pr_finish_ok(pc);
    /* Unregistered: the hole left by the zero page reads as zero with no thread. */
    ck_assert_uint_eq(pr_hva(g, RAM1_GPA + RAM_SIZE - PAGE)[5], 0);
    ck_assert_uint_eq(pr_hva(g, 0)[5], 0x40);
    pr_pc_free(pc, &rq, g);
}
END_TEST

START_TEST(test_bad_ranges)
{
    Guest *g = pr_guest_new();
    GError *err = NULL;
    MigPostcopy *pc;
    Requests rq;

    pc = pr_pc_new(g, &rq);
    ck_assert(!mig_postcopy_discard(pc, PAGE + 1, PAGE, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_MESSAGE, "not 4 KiB aligned");
    ck_assert(!mig_postcopy_discard(pc, 2 * MiB, PAGE, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_MESSAGE, "GPA 0x200000 is outside guest RAM");
    /* Running past ram0's end: refused whole, nothing punched. */
    ck_assert(!mig_postcopy_discard(pc, RAM_SIZE - PAGE, 2 * PAGE, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_MESSAGE, "GPA 0x100000 is outside");
    ck_assert_uint_eq(mig_postcopy_missing(pc), 0);
    ck_assert(!mig_postcopy_place(pc, 3 * MiB, NULL, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_MESSAGE, "outside guest RAM");
    pr_listen_ok(pc);
    ck_assert(!mig_postcopy_discard(pc, 0, PAGE, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "after listen");
    ck_assert(!mig_postcopy_listen(pc, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "listen twice");
    ck_assert(pr_in_file(g, 0));
    pr_pc_free(pc, &rq, g);
}
END_TEST

START_TEST(test_supported)
{
    unsigned fds = ut_count_fds();
    Guest *g = pr_guest_new();
    GuestMemory *mem = guest_memory_new();
    char path[] = "/var/tmp/postcopy-ram-test-XXXXXX";
    struct statfs sfs;
    RamBlock *rb;
    GError *err = NULL;
    Requests rq;
    int tmp;

    requests_init(&rq);
    ck_assert_msg(mig_postcopy_supported(g->mem, &err), "%s", err ? err->message : "?");
    guest_free(g);
    ck_assert_uint_eq(ut_count_fds(), fds);

    rb = ram_block_new_memfd_share("rampriv", RAM_SIZE, false, &err);
    ck_assert_ptr_nonnull(rb);
    ck_assert(guest_memory_add(mem, 0, rb, 0, RAM_SIZE, &err));
    ck_assert(!mig_postcopy_supported(mem, &err));
    assert_error(&err, VHOST_USER_ERROR_FEATURE_MISMATCH, "'rampriv' is private");
    ck_assert_ptr_null(mig_postcopy_new(mem, on_request, &rq, &err));
    assert_error(&err, VHOST_USER_ERROR_FEATURE_MISMATCH, "postcopy unavailable: ");
    ck_assert(guest_memory_remove(mem, 0, &err));
    ram_block_unref(rb);

    /* A file on a disk file system: no 4 KiB placement. */
    ck_assert_int_ge(tmp = g_mkstemp(path), 0);
    close(tmp);
    rb = ram_block_new_file("ramfile", path, RAM_SIZE, true, &err);
    ck_assert_msg(rb, "%s", err ? err->message : "?");
    unlink(path);
    ck_assert_msg(fstatfs(rb->fd, &sfs) == 0 && sfs.f_type != TMPFS_MAGIC,
                  "this test needs /var/tmp on a disk file system, not tmpfs");
    ck_assert(guest_memory_add(mem, 0, rb, 0, RAM_SIZE, &err));
    ck_assert(!mig_postcopy_supported(mem, &err));
    assert_error(&err, VHOST_USER_ERROR_FEATURE_MISMATCH, "is not shared memory");
    guest_memory_free(mem);
    ram_block_unref(rb);
    requests_fini(&rq);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

/*
 * This process from now on: syscall nr (unless -1) and ioctl(_, request)
 * (unless 0) fail with err, as on a kernel or in a sandbox without them.
 * x86-64 numbering; the request is matched on its low 32 bits.
 */
static bool refuse(int nr, uint32_t request, int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, request, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = G_N_ELEMENTS(f), .filter = f };

    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/*
 * In a child under refuse(nr, request, err): supported and listen fail
 * with want in the message (want NULL: they work). Exit status: 0 ok,
 * else which step failed.
 */
static int refused_child(int nr, uint32_t request, int err, const char *want)
{
    Guest *g = pr_guest_new();
    GError *e = NULL;
    MigPostcopy *pc;

    if (!refuse(nr, request, err)) {
        return 10;
    }
    if (!want) {
        /* Expected to work all the same (through /dev/userfaultfd). */
        pc = mig_postcopy_new(g->mem, on_request, NULL, &e);
        if (!mig_postcopy_supported(g->mem, &e) || !pc || !mig_postcopy_listen(pc, &e)) {
            fprintf(stderr, "fallback: %s\n", e ? e->message : "(no error)");
            return 13;
        }
        mig_postcopy_free(pc);
        guest_free(g);
        return 0;
    }
    if (mig_postcopy_supported(g->mem, &e) || !e ||
        !g_str_has_prefix(e->message, "postcopy unavailable: ") ||
        !strstr(e->message, want)) {
        fprintf(stderr, "supported: %s\n", e ? e->message : "(no error)");
        return 11;
    }
    g_clear_error(&e);
    pc = mig_postcopy_new(g->mem, on_request, NULL, &e);
    if (nr < 0 && (!pc || mig_postcopy_listen(pc, &e) || !strstr(e->message, want))) {
        fprintf(stderr, "listen: %s\n", e ? e->message : "(no error)");
        return 12;
    }
    mig_postcopy_free(pc);
    g_clear_error(&e);
    guest_free(g);
    return 0;
}

static void assert_refused(int nr, uint32_t request, int err, const char *want)
{
    int status;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        _exit(refused_child(nr, request, err, want));
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "refused child (want '%s'): status 0x%x", want ? want : "success",
                  status);
}

/* What supported says when the kernel (or a sandbox) says no. */
START_TEST(test_unsupported_kernel)
{
    /* MISSING registration refused: found by the probe, before any migration. */
    assert_refused(-1, (uint32_t)UFFDIO_REGISTER, EINVAL,
                   "UFFDIO_REGISTER (missing) of 0x");
    /* The syscall refused (as to a non-root VMM): /dev/userfaultfd serves. */
    assert_refused(__NR_userfaultfd, 0, EPERM, NULL);
    /* No userfaultfd at all: the syscall and /dev/userfaultfd both refused. */
    assert_refused(__NR_userfaultfd, (uint32_t)USERFAULTFD_IOC_NEW, EPERM,
                   "needs CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access "
                   "to /dev/userfaultfd");
}
END_TEST

/* Ten faults, one of them kept waiting 100 ms: the figures. */
START_TEST(test_stats)
{
    Guest *g = pr_guest_new();
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    uint64_t sum;

    pc = pr_pc_new(g, &rq);
    pr_discard(pc, 0, 10 * PAGE);
    pr_discard(pc, RAM1_GPA, 5 * PAGE);
    pr_listen_ok(pc);
    for (unsigned i = 0; i < 10; i++) {
        Toucher t;

        pr_toucher_start(&t, pr_hva(g, i * PAGE));
        WAIT_FOR(pr_requests_for(&rq, i * PAGE) == 1, "the page request");
        if (i == 4) {
            g_usleep(100 * 1000);           /* the slow one: its latency, not a wait */
        }
        pr_place(pc, i * PAGE, 0x60 + i);
        ck_assert_uint_eq(pr_toucher_join(&t), 0x60 + i);
    }
    for (unsigned i = 0; i < 5; i++) {
        pr_place(pc, RAM1_GPA + i * PAGE, i % 2 ? 0x70 : 0);     /* the stream's */
    }
    st = pr_stats(pc);
    pr_assert_counts(&st, (MigPostcopyStats) {
        .faults_guest = 10, .requests = 10, .pages_placed = 15, .pages_zero = 3,
    });
    /* p99 of ten is the slowest; the others below 100 ms each. */
    ck_assert_uint_ge(st.guest_max_us, 100000);
    ck_assert_uint_eq(st.guest_p99_us, st.guest_max_us);
    ck_assert_uint_lt(st.guest_p90_us, 100000);
    ck_assert_uint_le(st.guest_p50_us, st.guest_p90_us);
    sum = st.blocktime_guest_us;
    ck_assert_uint_ge(sum, st.guest_max_us);
    ck_assert_uint_le(sum, st.guest_max_us + 9 * st.guest_p90_us + 9);
    ck_assert_uint_eq(st.backend_max_us, 0);
    ck_assert_uint_eq(st.backend_p50_us, 0);
    pr_finish_ok(pc);
    pr_pc_free(pc, &rq, g);
}
END_TEST

/* The tid of this process's thread named comm (0: none yet). */
static pid_t thread_named(const char *comm)
{
    g_autoptr(GDir) dir = g_dir_open("/proc/self/task", 0, NULL);
    const char *tid;

    ck_assert(dir);
    while ((tid = g_dir_read_name(dir))) {
        g_autofree char *cpath = g_strdup_printf("/proc/self/task/%s/comm", tid);
        g_autofree char *name = NULL;

        if (g_file_get_contents(cpath, &name, NULL, NULL) &&
            !strcmp(g_strstrip(name), comm)) {
            return (pid_t)atoi(tid);
        }
    }
    return 0;
}

/* se.slice (ns) of this process's thread named comm, from /proc (0: no such thread). */
static uint64_t thread_slice(const char *comm)
{
    pid_t tid = thread_named(comm);
    g_autofree char *spath = g_strdup_printf("/proc/self/task/%d/sched", (int)tid);
    g_autofree char *sched = NULL;
    const char *line;

    if (!tid) {
        return 0;
    }
    ck_assert_msg(g_file_get_contents(spath, &sched, NULL, NULL), "%s", spath);
    line = strstr(sched, "se.slice");
    ck_assert_msg(line, "no se.slice in %s", spath);
    return g_ascii_strtoull(strchr(line, ':') + 1, NULL, 10);
}

/*
 * The fault thread asks for the shortest slice (0.1 ms): woken by a fault,
 * it preempts a busy thread instead of waiting out the kernel's default
 * slice (1.4 ms on these 2-core machines), as the fault trace showed.
 */
START_TEST(test_fault_thread_slice)
{
    Guest *g = pr_guest_new();
    MigPostcopy *pc;
    Requests rq;
    uint64_t slice = 0;

    pc = pr_pc_new(g, &rq);
    pr_discard(pc, RAM1_GPA, PAGE);
    pr_listen_ok(pc);
    /* The thread sets it first thing: wait for it to have run. */
    for (int i = 0; i < 2000 && slice != 100000; i++) {
        slice = thread_slice("postcopy-fault");
        g_usleep(1000);
    }
    ck_assert_uint_eq(slice, 100000);
    pr_place(pc, RAM1_GPA, 1);
    pr_finish_ok(pc);
    pr_pc_free(pc, &rq, g);
}
END_TEST

/*
 * Asked for FIFO (as the reference VMM does by default when it may), the
 * fault thread is SCHED_FIFO (not inherited by a fork), and the stats say
 * so: woken by a fault it preempts the fair class at once. perf sched
 * showed the fair class's request reader waiting 0.9 ms behind a nice-10
 * thread (postcopy-sched.c). Runs as root here (CAP_SYS_NICE).
 */
START_TEST(test_fault_thread_fifo)
{
    Guest *g = pr_guest_new();
    MigPostcopy *pc;
    MigPostcopyStats st;
    Requests rq;
    pid_t tid = 0;
    int policy = -1;

    ck_assert_msg(geteuid() == 0, "needs root (CAP_SYS_NICE) for SCHED_FIFO");
    pc = pr_pc_new(g, &rq);
    mig_postcopy_set_sched(pc, MIG_PC_SCHED_FIFO);
    mig_postcopy_get_stats(pc, &st);
    ck_assert_int_eq(st.fault_sched, MIG_PC_SCHED_NORMAL);
    pr_discard(pc, RAM1_GPA, PAGE);
    pr_listen_ok(pc);
    for (int i = 0; i < 2000; i++) {
        mig_postcopy_get_stats(pc, &st);
        tid = thread_named("postcopy-fault");
        if (st.fault_sched != MIG_PC_SCHED_NORMAL && tid) {
            break;
        }
        g_usleep(1000);
    }
    ck_assert_int_eq(st.fault_sched, MIG_PC_SCHED_FIFO);
    ck_assert_int_ne(tid, 0);
    policy = sched_getscheduler(tid);
    ck_assert_int_eq(policy, SCHED_FIFO | SCHED_RESET_ON_FORK);
    pr_place(pc, RAM1_GPA, 1);
    pr_finish_ok(pc);
    pr_pc_free(pc, &rq, g);
}
END_TEST

/* Drops CAP_SYS_NICE from this process's effective set, RLIMIT_RTPRIO to 0. */
static void drop_rt_privilege(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];
    struct rlimit rl = { 0, 0 };

    if (syscall(SYS_capget, &hdr, data) != 0) {
        _exit(10);
    }
    data[CAP_SYS_NICE / 32].effective &= ~(1u << (CAP_SYS_NICE % 32));
    if (syscall(SYS_capset, &hdr, data) != 0 || setrlimit(RLIMIT_RTPRIO, &rl) != 0) {
        _exit(11);
    }
}

/*
 * Without the privilege: auto falls back to the short slice quietly, an
 * explicit fifo falls back too but says what it needs, normal leaves the
 * thread alone. In a child, which gives the privilege up first.
 */
START_TEST(test_sched_without_privilege)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        GError *err = NULL;
        MigPcSched got;

        drop_rt_privilege();
        if (!mig_pc_thread_set_sched(MIG_PC_SCHED_AUTO, "t", &got, &err) ||
            got != MIG_PC_SCHED_SLICE || sched_getscheduler(0) != SCHED_OTHER) {
            _exit(20);
        }
        if (mig_pc_thread_set_sched(MIG_PC_SCHED_FIFO, "t", &got, &err) ||
            got != MIG_PC_SCHED_SLICE || !err || !strstr(err->message, "t thread") ||
            !strstr(err->message, "CAP_SYS_NICE")) {
            _exit(21);
        }
        g_clear_error(&err);
        if (!mig_pc_thread_set_sched(MIG_PC_SCHED_NORMAL, "t", &got, &err) ||
            got != MIG_PC_SCHED_NORMAL) {
            _exit(22);
        }
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child: status 0x%x (10/11: dropping the privilege; 20 auto, 21 fifo, "
                  "22 normal)", status);
}
END_TEST

/* ---- a fault-path thread warmed ahead (mig_pc_thread_prefault) ---------- */

/* Minor page faults of the calling thread so far. */
static long thread_minflt(void)
{
    struct rusage ru;

    ck_assert_int_eq(getrusage(RUSAGE_THREAD, &ru), 0);
    return ru.ru_minflt;
}

/*
 * What a first request does on a fault-path thread, in small: some stack
 * below the caller's frame and a 12 KiB block (the source's RAM section).
 * The page faults it took.
 */
static G_GNUC_NO_INLINE long first_request_faults(void)
{
    long before = thread_minflt();
    volatile uint8_t frame[32 * 1024];
    volatile uint8_t *block;

    for (size_t i = 0; i < sizeof(frame); i += 512) {
        frame[i] = 1;
    }
#ifndef __SANITIZE_ADDRESS__
    block = g_malloc(12 * 1024);
    for (size_t i = 0; i < 12 * 1024; i += 512) {
        block[i] = 1;
    }
    g_free((void *)block);
#else
    (void)block;
#endif
    return thread_minflt() - before;
}

typedef struct PrefaultProbe {
    pthread_barrier_t *both;
    bool warm;
    long faults;
} PrefaultProbe;

static gpointer prefault_probe(gpointer opaque)
{
    PrefaultProbe *p = opaque;

    if (p->warm) {
        mig_pc_thread_prefault();
    }
    /* Both alive: neither takes over the other's stack or malloc arena. */
    pthread_barrier_wait(p->both);
    p->faults = first_request_faults();
    return NULL;
}

static int thread_prefault_child(void *opaque)
{
    pthread_barrier_t both;
    PrefaultProbe cold = { .both = &both }, warm = { .both = &both, .warm = true };
    GThread *tc, *tw;

    /* The probe's code and GLib's, mapped by this thread first. */
    first_request_faults();
    pthread_barrier_init(&both, NULL, 2);
    tc = g_thread_new("cold", prefault_probe, &cold);
    tw = g_thread_new("warm", prefault_probe, &warm);
    g_thread_join(tc);
    g_thread_join(tw);
    printf("thread-prefault: first request's page faults: cold %ld, warmed %ld\n",
           cold.faults, warm.faults);
#ifndef __SANITIZE_ADDRESS__
    return cold.faults < 3 ? 30 : warm.faults != 0 ? 31 : 0;
#else
    /* ASan's shadow of the probe's frame is its own, and cold. */
    return cold.faults < 3 ? 30 : warm.faults >= cold.faults ? 31 : 0;
#endif
}

/*
 * A warmed thread serves its first request without a page fault of its
 * own; a cold one (the control: the probe does see faults) takes several.
 * In a child, whose threads are the first: no cached stack or arena.
 * Under ASan the heap is ASan's (per-size regions, a quarantine), which
 * a thread cannot warm: there only the stack is probed, and its shadow
 * pages still fault, so the warmed thread only has to fault less.
 */
START_TEST(test_thread_prefault)
{
    int code = ut_child_run(thread_prefault_child, NULL);

    ck_assert_msg(code == 0, "child: exit %d (30: a cold thread took under 3 page faults, "
                  "the probe sees nothing; 31: the warmed thread still faulted)", code);
}
END_TEST

START_TEST(test_sched_names)
{
    MigPcSched s;

    for (int i = MIG_PC_SCHED_AUTO; i <= MIG_PC_SCHED_NORMAL; i++) {
        ck_assert(mig_pc_sched_parse(mig_pc_sched_name((MigPcSched)i), &s));
        ck_assert_int_eq(s, i);
    }
    ck_assert_str_eq(mig_pc_sched_name(MIG_PC_SCHED_FIFO), "fifo");
    ck_assert(!mig_pc_sched_parse("FIFO", &s));
    ck_assert(!mig_pc_sched_parse("", &s));
    ck_assert(!mig_pc_sched_parse(NULL, &s));
    ck_assert_str_eq(mig_pc_sched_name((MigPcSched)99), "?");
}
END_TEST

static Suite *postcopy_ram_suite(void)
{
    Suite *s = suite_create("postcopy-ram");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_fault_waits_for_place);
    tcase_add_test(tc, test_one_request_many_faults);
    tcase_add_test(tc, test_hole_is_zero_without_request);
    tcase_add_test(tc, test_place_once);
    tcase_add_test(tc, test_finish_counts_missing);
    tcase_add_test(tc, test_bad_ranges);
    tcase_add_test(tc, test_supported);
    tcase_add_test(tc, test_unsupported_kernel);
    tcase_add_test(tc, test_stats);
    postcopy_ram_backend_add_tests(tc);
    tcase_add_test(tc, test_fault_thread_slice);
    tcase_add_test(tc, test_fault_thread_fifo);
    tcase_add_test(tc, test_sched_without_privilege);
    tcase_add_test(tc, test_sched_names);
    tcase_add_test(tc, test_thread_prefault);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(postcopy_ram_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
