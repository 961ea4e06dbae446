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
 * kernel refuses.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
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

#define MiB (1024u * 1024u)
#define PAGE 4096u
#define RAM_SIZE (1 * MiB)
#define RAM1_GPA (4 * MiB)
#define DATA_PAGES 64               /* the first pages of each block hold data */
#define DEADLINE_US (20 * G_USEC_PER_SEC)

/* Waits for a condition, failing after the deadline with what it was. */
#define WAIT_FOR(cond, what)                                                   \
    do {                                                                       \
        gint64 end_ = g_get_monotonic_time() + DEADLINE_US;                    \
        while (!(cond)) {                                                      \
            ck_assert_msg(g_get_monotonic_time() < end_, "timed out: %s", what); \
            g_usleep(200);                                                     \
        }                                                                      \
    } while (0)

typedef struct Guest {
    GuestMemory *mem;
    RamBlock *block[2];
} Guest;

/* The page's fill byte, never 0. */
static uint8_t pattern(uint64_t gpa)
{
    return (uint8_t)(gpa / PAGE * 13 % 251 + 1);
}

/* ram0 at GPA 0, ram1 at 4 MiB; the first DATA_PAGES of each hold data, the rest are holes. */
static Guest *guest_new(void)
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

static uint8_t *hva(Guest *g, uint64_t gpa)
{
    int i = gpa >= RAM1_GPA;

    return (uint8_t *)g->block[i]->host + (gpa - (i ? RAM1_GPA : 0));
}

/* Whether the block's file holds data at gpa's page (not a hole). */
static bool in_file(Guest *g, uint64_t gpa)
{
    int i = gpa >= RAM1_GPA;
    off_t off = gpa - (i ? RAM1_GPA : 0);

    return lseek(g->block[i]->fd, off, SEEK_DATA) == off;
}

/* The request callback's record: how often each page was asked for. */
typedef struct Requests {
    GMutex lock;
    GHashTable *count;          /* gpa -> count */
    unsigned total;
} Requests;

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

static unsigned requests_for(Requests *rq, uint64_t gpa)
{
    unsigned n;

    g_mutex_lock(&rq->lock);
    n = GPOINTER_TO_UINT(g_hash_table_lookup(rq->count, GSIZE_TO_POINTER(gpa)));
    g_mutex_unlock(&rq->lock);
    return n;
}

static unsigned requests_total(Requests *rq)
{
    unsigned n;

    g_mutex_lock(&rq->lock);
    n = rq->total;
    g_mutex_unlock(&rq->lock);
    return n;
}

/* A MigPostcopy for g whose requests go to rq (initialised here). */
static MigPostcopy *pc_new(Guest *g, Requests *rq)
{
    GError *err = NULL;
    MigPostcopy *pc;

    requests_init(rq);
    pc = mig_postcopy_new(g->mem, on_request, rq, &err);
    ck_assert_msg(pc, "mig_postcopy_new: %s", err ? err->message : "?");
    return pc;
}

static void pc_free(MigPostcopy *pc, Requests *rq, Guest *g)
{
    mig_postcopy_free(pc);
    requests_fini(rq);
    guest_free(g);
}

static void discard(MigPostcopy *pc, uint64_t gpa, uint64_t len)
{
    GError *err = NULL;

    ck_assert_msg(mig_postcopy_discard(pc, gpa, len, &err), "discard: %s",
                  err ? err->message : "?");
}

static void listen_ok(MigPostcopy *pc)
{
    GError *err = NULL;

    ck_assert_msg(mig_postcopy_listen(pc, &err), "listen: %s", err ? err->message : "?");
}

/* Places gpa's page filled with byte (0: a zero page). */
static void place(MigPostcopy *pc, uint64_t gpa, uint8_t byte)
{
    uint8_t data[PAGE];
    GError *err = NULL;

    memset(data, byte, PAGE);
    ck_assert_msg(mig_postcopy_place(pc, gpa, byte ? data : NULL, &err),
                  "place 0x%" G_GINT64_MODIFIER "x: %s", gpa, err ? err->message : "?");
}

static MigPostcopyStats stats(MigPostcopy *pc)
{
    MigPostcopyStats st;

    mig_postcopy_get_stats(pc, &st);
    return st;
}

/* The counters (not the times) are exactly want's. */
static void assert_counts(const MigPostcopyStats *st, MigPostcopyStats want)
{
    ck_assert_uint_eq(st->faults_guest, want.faults_guest);
    ck_assert_uint_eq(st->faults_backend, want.faults_backend);
    ck_assert_uint_eq(st->faults_present, want.faults_present);
    ck_assert_uint_eq(st->requests, want.requests);
    ck_assert_uint_eq(st->pages_placed, want.pages_placed);
    ck_assert_uint_eq(st->pages_zero, want.pages_zero);
    ck_assert_uint_eq(st->pages_missing, want.pages_missing);
}

static void finish_ok(MigPostcopy *pc)
{
    GError *err = NULL;

    ck_assert_msg(mig_postcopy_finish(pc, &err), "finish: %s", err ? err->message : "?");
}

/* A guest thread reading one byte of guest RAM. */
typedef struct Toucher {
    volatile uint8_t *addr;
    int tid;                    /* atomic */
    int done;                   /* atomic */
    uint8_t seen;
    GThread *thread;
} Toucher;

static gpointer toucher_run(gpointer opaque)
{
    Toucher *t = opaque;

    g_atomic_int_set(&t->tid, gettid());
    t->seen = *t->addr;
    g_atomic_int_set(&t->done, 1);
    return NULL;
}

static void toucher_start(Toucher *t, uint8_t *addr)
{
    *t = (Toucher) { .addr = addr };
    t->thread = g_thread_new("toucher", toucher_run, t);
    WAIT_FOR(g_atomic_int_get(&t->tid), "the toucher thread");
}

static uint8_t toucher_join(Toucher *t)
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
static void assert_asleep(int pid, int tid, const char *who)
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
    Guest *g = guest_new();
    uint64_t gpa = 5 * PAGE;
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    Toucher t;

    pc = pc_new(g, &rq);
    discard(pc, gpa, PAGE);
    ck_assert(!mig_postcopy_received(pc, gpa));
    ck_assert(mig_postcopy_received(pc, gpa + PAGE));
    ck_assert_uint_eq(mig_postcopy_missing(pc), 1);
    ck_assert_msg(!in_file(g, gpa), "the discarded page is still in the file");
    listen_ok(pc);

    toucher_start(&t, hva(g, gpa));
    WAIT_FOR(requests_for(&rq, gpa) == 1, "the page request");
    ck_assert(!g_atomic_int_get(&t.done));
    assert_asleep(getpid(), t.tid, "the faulting thread");
    ck_assert(!g_atomic_int_get(&t.done));

    place(pc, gpa, 0x5a);
    ck_assert_uint_eq(toucher_join(&t), 0x5a);
    ck_assert_uint_eq(hva(g, gpa)[PAGE - 1], 0x5a);
    ck_assert_uint_eq(hva(g, gpa + PAGE)[0], pattern(gpa + PAGE));
    ck_assert(mig_postcopy_received(pc, gpa));
    ck_assert_uint_eq(mig_postcopy_missing(pc), 0);

    st = stats(pc);
    assert_counts(&st, (MigPostcopyStats) {
        .faults_guest = 1, .requests = 1, .pages_placed = 1,
    });
    /* Asleep for 20 ms at least before the place. */
    ck_assert_uint_ge(st.blocktime_guest_us, 20000);
    ck_assert_uint_eq(st.guest_max_us, st.blocktime_guest_us);
    ck_assert_uint_eq(st.guest_p50_us, st.guest_max_us);
    finish_ok(pc);
    pc_free(pc, &rq, g);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

START_TEST(test_one_request_many_faults)
{
    Guest *g = guest_new();
    uint64_t gpa = RAM1_GPA + 3 * PAGE;
    Toucher t[4];
    MigPostcopy *pc;
    Requests rq;

    pc = pc_new(g, &rq);
    discard(pc, gpa, PAGE);
    listen_ok(pc);
    for (int i = 0; i < 4; i++) {
        toucher_start(&t[i], hva(g, gpa) + i * 100);
    }
    WAIT_FOR(stats(pc).faults_guest == 4, "four faults read");
    ck_assert_uint_eq(requests_for(&rq, gpa), 1);
    ck_assert_uint_eq(stats(pc).requests, 1);

    /* A new connection to the source: asked again, once. */
    mig_postcopy_rerequest(pc);
    ck_assert_uint_eq(requests_for(&rq, gpa), 2);
    ck_assert_uint_eq(requests_total(&rq), 2);

    place(pc, gpa, 0x77);
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(toucher_join(&t[i]), 0x77);
    }
    /* Nobody waits any more: nothing to ask again. */
    mig_postcopy_rerequest(pc);
    ck_assert_uint_eq(requests_total(&rq), 2);
    pc_free(pc, &rq, g);
}
END_TEST

/*
 * A received page that is a hole (zero on the source, never sent) and a
 * page placed as zero nobody waited for (left a hole): a touch gets a zero
 * page at once, with no request.
 */
START_TEST(test_hole_is_zero_without_request)
{
    Guest *g = guest_new();
    uint64_t hole = RAM1_GPA + 200 * PAGE, zeroed = 7 * PAGE;
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    Toucher t;

    pc = pc_new(g, &rq);
    discard(pc, zeroed, PAGE);
    listen_ok(pc);
    place(pc, zeroed, 0);
    ck_assert_msg(!in_file(g, zeroed), "a zero page nobody waits for was allocated");

    toucher_start(&t, hva(g, hole));
    ck_assert_uint_eq(toucher_join(&t), 0);
    toucher_start(&t, hva(g, zeroed) + 17);
    ck_assert_uint_eq(toucher_join(&t), 0);
    ck_assert_uint_eq(requests_total(&rq), 0);
    st = stats(pc);
    assert_counts(&st, (MigPostcopyStats) {
        .faults_guest = 2, .faults_present = 2, .pages_placed = 1, .pages_zero = 1,
    });
    /* The neighbours are untouched. */
    ck_assert_uint_eq(hva(g, zeroed + PAGE)[0], pattern(zeroed + PAGE));
    finish_ok(pc);
    pc_free(pc, &rq, g);
}
END_TEST

/* A page is placed once: later copies (the stream and an answered request) are dropped. */
START_TEST(test_place_once)
{
    Guest *g = guest_new();
    uint64_t before = 2 * PAGE, after = 3 * PAGE;
    MigPostcopy *pc;
    Requests rq;

    pc = pc_new(g, &rq);
    discard(pc, before, 2 * PAGE);
    place(pc, before, 0x21);                /* before listen: written directly */
    ck_assert_uint_eq(hva(g, before)[9], 0x21);
    listen_ok(pc);
    place(pc, before, 0x22);
    place(pc, after, 0x31);
    place(pc, after, 0x32);
    place(pc, after, 0);
    ck_assert_uint_eq(hva(g, before)[9], 0x21);
    ck_assert_uint_eq(hva(g, after)[PAGE - 1], 0x31);
    ck_assert_uint_eq(stats(pc).pages_placed, 2);
    ck_assert_uint_eq(stats(pc).pages_zero, 0);
    ck_assert_uint_eq(requests_total(&rq), 0);
    finish_ok(pc);
    pc_free(pc, &rq, g);
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
    Guest *g = guest_new();
    GError *err = NULL;
    MigPostcopy *pc;
    Requests rq;

    pc = pc_new(g, &rq);
    discard(pc, 0, 2 * PAGE);
    discard(pc, RAM1_GPA + RAM_SIZE - PAGE, PAGE);
    ck_assert_uint_eq(mig_postcopy_missing(pc), 3);
    listen_ok(pc);
    place(pc, PAGE, 0x41);
    ck_assert(!mig_postcopy_finish(pc, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "2 pages still missing");
    place(pc, 0, 0x40);
    ck_assert(!mig_postcopy_finish(pc, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "1 page still missing");
    place(pc, RAM1_GPA + RAM_SIZE - PAGE, 0);
    finish_ok(pc);
    /* Unregistered: the hole left by the zero page reads as zero with no thread. */
    ck_assert_uint_eq(hva(g, RAM1_GPA + RAM_SIZE - PAGE)[5], 0);
    ck_assert_uint_eq(hva(g, 0)[5], 0x40);
    pc_free(pc, &rq, g);
}
END_TEST

START_TEST(test_bad_ranges)
{
    Guest *g = guest_new();
    GError *err = NULL;
    MigPostcopy *pc;
    Requests rq;

    pc = pc_new(g, &rq);
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
    listen_ok(pc);
    ck_assert(!mig_postcopy_discard(pc, 0, PAGE, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "after listen");
    ck_assert(!mig_postcopy_listen(pc, &err));
    assert_error(&err, VHOST_USER_ERROR_INVALID_STATE, "listen twice");
    ck_assert(in_file(g, 0));
    pc_free(pc, &rq, g);
}
END_TEST

START_TEST(test_supported)
{
    unsigned fds = ut_count_fds();
    Guest *g = guest_new();
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
    Guest *g = guest_new();
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
    Guest *g = guest_new();
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    uint64_t sum;

    pc = pc_new(g, &rq);
    discard(pc, 0, 10 * PAGE);
    discard(pc, RAM1_GPA, 5 * PAGE);
    listen_ok(pc);
    for (unsigned i = 0; i < 10; i++) {
        Toucher t;

        toucher_start(&t, hva(g, i * PAGE));
        WAIT_FOR(requests_for(&rq, i * PAGE) == 1, "the page request");
        if (i == 4) {
            g_usleep(100 * 1000);           /* the slow one: its latency, not a wait */
        }
        place(pc, i * PAGE, 0x60 + i);
        ck_assert_uint_eq(toucher_join(&t), 0x60 + i);
    }
    for (unsigned i = 0; i < 5; i++) {
        place(pc, RAM1_GPA + i * PAGE, i % 2 ? 0x70 : 0);     /* the stream's */
    }
    st = stats(pc);
    assert_counts(&st, (MigPostcopyStats) {
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
    finish_ok(pc);
    pc_free(pc, &rq, g);
}
END_TEST

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
    WAIT_FOR(requests_for(rq, gpa) == 1, "the back-end's page request");
    assert_asleep(be->pid, be->pid, "the back-end");
    ck_assert_msg(!backend_answered(be), "the back-end was woken before the page came");
    place(pc, gpa, byte);
    ck_assert_uint_eq(backend_reply(be).byte, byte);
}

START_TEST(test_backend_ufd)
{
    unsigned fds = ut_count_fds();
    Guest *g = guest_new();
    uint64_t p1 = 1 * PAGE, p2 = 2 * PAGE, p3 = 3 * PAGE, p4 = 4 * PAGE;
    struct uffd_msg msg;
    MigPostcopyStats st;
    MigPostcopy *pc;
    Requests rq;
    Backend be;
    Toucher t;

    backend_start(&be, g);              /* before any thread: a clean fork */
    pc = pc_new(g, &rq);
    discard(pc, 0, 8 * PAGE);
    listen_ok(pc);
    add_shared(pc, &be);                /* the thread runs already */

    backend_fault_then_place(pc, &be, &rq, p1, 0x11);
    st = stats(pc);
    assert_counts(&st, (MigPostcopyStats) {
        .faults_backend = 1, .requests = 1, .pages_placed = 1, .pages_missing = 7,
    });
    ck_assert_uint_ge(st.backend_max_us, 20000);
    ck_assert_uint_eq(st.blocktime_backend_us, st.backend_max_us);

    /* A page placed before the back-end touched it: served from the file. */
    place(pc, p2, 0x22);
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
    ck_assert_uint_eq(requests_for(&rq, p4), 0);
    place(pc, p4, 0x44);
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
    toucher_start(&t, hva(g, 6 * PAGE));
    WAIT_FOR(requests_for(&rq, 6 * PAGE) == 1, "the guest's request");
    place(pc, 6 * PAGE, 0x66);
    ck_assert_uint_eq(toucher_join(&t), 0x66);
    ck_assert_uint_eq(requests_for(&rq, 5 * PAGE), 0);
    place(pc, 5 * PAGE, 0x55);
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
    ck_assert_uint_eq(requests_for(&rq, 7 * PAGE), 0);
    add_shared(pc, &be);                /* it was removed: added again */
    mig_postcopy_remove_shared(pc, be.ufd);

    backend_stop(&be);
    pc_free(pc, &rq, g);
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
    Guest *g = guest_new();
    uint64_t hole = 200 * PAGE;
    GError *err = NULL;
    MigPostcopy *pc;
    Requests rq;
    Backend be;
    int key;

    backend_start(&be, g);
    pc = pc_new(g, &rq);
    listen_ok(pc);
    key = dup(be.ufd);
    ck_assert_msg(mig_postcopy_add_shared(pc, key, "blk0", backend_translate, backend_error,
                                          &be, &err), "add_shared: %s", err ? err->message : "?");
    backend_send(&be, 'T', hole, 0);
    ck_assert_uint_eq(backend_reply(&be).byte, 0);
    ck_assert_uint_eq(requests_total(&rq), 0);
    ck_assert_uint_eq(stats(pc).faults_backend, 1);
    ck_assert_uint_eq(stats(pc).faults_present, 1);
    ck_assert(in_file(g, hole));
    /* Ours sees the same zero page. */
    ck_assert_uint_eq(hva(g, hole)[1], 0);
    finish_ok(pc);
    close(key);
    backend_send(&be, 'T', hole + PAGE, 0);
    ck_assert_uint_eq(backend_reply(&be).byte, 0);
    ck_assert(in_file(g, hole + PAGE));
    ck_assert_uint_eq(stats(pc).faults_backend, 2);
    ck_assert_int_eq(g_atomic_int_get(&be.errors), 0);
    mig_postcopy_remove_shared(pc, key);
    backend_stop(&be);
    pc_free(pc, &rq, g);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

/* se.slice (ns) of this process's thread named comm, from /proc (0: no such thread). */
static uint64_t thread_slice(const char *comm)
{
    g_autoptr(GDir) dir = g_dir_open("/proc/self/task", 0, NULL);
    const char *tid;

    ck_assert(dir);
    while ((tid = g_dir_read_name(dir))) {
        g_autofree char *cpath = g_strdup_printf("/proc/self/task/%s/comm", tid);
        g_autofree char *spath = g_strdup_printf("/proc/self/task/%s/sched", tid);
        g_autofree char *name = NULL, *sched = NULL;
        const char *line;

        if (!g_file_get_contents(cpath, &name, NULL, NULL) ||
            strcmp(g_strstrip(name), comm) != 0) {
            continue;
        }
        ck_assert_msg(g_file_get_contents(spath, &sched, NULL, NULL), "%s", spath);
        line = strstr(sched, "se.slice");
        ck_assert_msg(line, "no se.slice in %s", spath);
        return g_ascii_strtoull(strchr(line, ':') + 1, NULL, 10);
    }
    return 0;
}

/*
 * The fault thread asks for the shortest slice (0.1 ms): woken by a fault,
 * it preempts a busy thread instead of waiting out the kernel's default
 * slice (1.4 ms on these 2-core machines), as the fault trace showed.
 */
START_TEST(test_fault_thread_slice)
{
    Guest *g = guest_new();
    MigPostcopy *pc;
    Requests rq;
    uint64_t slice = 0;

    pc = pc_new(g, &rq);
    discard(pc, RAM1_GPA, PAGE);
    listen_ok(pc);
    /* The thread sets it first thing: wait for it to have run. */
    for (int i = 0; i < 2000 && slice != 100000; i++) {
        slice = thread_slice("postcopy-fault");
        g_usleep(1000);
    }
    ck_assert_uint_eq(slice, 100000);
    place(pc, RAM1_GPA, 1);
    finish_ok(pc);
    pc_free(pc, &rq, g);
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
    tcase_add_test(tc, test_backend_ufd);
    tcase_add_test(tc, test_backend_hole);
    tcase_add_test(tc, test_fault_thread_slice);
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
