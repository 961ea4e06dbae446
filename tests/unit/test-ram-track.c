/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest-write tracking (migration/ram-track.c) on real memfd RAM blocks
 * and the real kernel: exactly the written pages are reported, once;
 * re-protection; a full scan vector; a writer thread racing the syncs;
 * hotplug; stop; writes made by the kernel (read() into guest RAM); and
 * the clear error when the kernel lacks what tracking needs.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migration/ram-track.h"
#include "migration/uffd-compat.h"
#include "system/memory.h"
#include "util/vhost-user-error.h"

#define MiB (1024ull * 1024)
#define PAGE RAM_TRACK_PAGE_SIZE
#define BLK_SIZE (32 * MiB)
#define NPAGES (2 * BLK_SIZE / PAGE)          /* two blocks, back to back */
#define NWORDS (NPAGES / 64)

#define UNAVAILABLE_PREFIX "guest-write tracking unavailable: "
#define UNAVAILABLE_SUFFIX "; migration will stop the guest for the whole copy"

/* Two 32 MiB memfd blocks at gpa 0 and 32 MiB: one 64 MiB guest. */
typedef struct Guest {
    RamBlock *rb[2];
    RamTrackBlock blk[2];
    uint64_t expect[NWORDS];
} Guest;

static void guest_init(Guest *g)
{
    memset(g, 0, sizeof(*g));
    for (int i = 0; i < 2; i++) {
        GError *err = NULL;
        char id[8];

        snprintf(id, sizeof(id), "ram%d", i);
        g->rb[i] = ram_block_new_memfd(id, BLK_SIZE, &err);
        ck_assert_msg(g->rb[i], "memfd: %s", err ? err->message : "?");
        g->blk[i] = (RamTrackBlock) {
            .id = g->rb[i]->id,
            .host = g->rb[i]->host,
            .size = BLK_SIZE,
            .gpa = i * BLK_SIZE,
        };
    }
}

static void guest_fini(Guest *g)
{
    ram_block_unref(g->rb[0]);
    ram_block_unref(g->rb[1]);
}

static uint8_t *hva(Guest *g, uint64_t gpa)
{
    return (uint8_t *)g->rb[gpa / BLK_SIZE]->host + gpa % BLK_SIZE;
}

static void expect_page(Guest *g, uint64_t page)
{
    g->expect[page / 64] |= 1ull << (page % 64);
}

/* Writes [gpa, gpa+len) byte by byte through host pointers (may cross blocks). */
static void gwrite(Guest *g, uint64_t gpa, uint64_t len)
{
    for (uint64_t a = gpa; a < gpa + len; a++) {
        *(volatile uint8_t *)hva(g, a) = (uint8_t)(a * 7 + 1);
        expect_page(g, a / PAGE);
    }
}

static RamTrack *track_new(const RamTrackBlock *b, unsigned n,
                           const RamTrackTestHooks *hooks)
{
    GError *err = NULL;
    RamTrack *t = ram_track_new_hooked(b, n, hooks, &err);

    ck_assert_msg(t, "ram_track_new: %s", err ? err->message : "?");
    return t;
}

static void track_start(RamTrack *t)
{
    GError *err = NULL;

    ck_assert_msg(ram_track_start(t, &err), "start: %s", err ? err->message : "?");
}

static uint64_t track_sync(RamTrack *t, uint64_t *bitmap)
{
    GError *err = NULL;
    uint64_t written = ~0ull;

    memset(bitmap, 0, NWORDS * sizeof(uint64_t));
    ck_assert_msg(ram_track_sync(t, bitmap, NPAGES, &written, &err),
                  "sync: %s", err ? err->message : "?");
    return written;
}

static unsigned popcount(const uint64_t *bitmap)
{
    unsigned n = 0;

    for (unsigned i = 0; i < NWORDS; i++) {
        n += __builtin_popcountll(bitmap[i]);
    }
    return n;
}

/* Exactly the expected pages: names the first page that differs. */
static void assert_bitmap(const uint64_t *got, const uint64_t *want)
{
    for (unsigned i = 0; i < NWORDS; i++) {
        uint64_t diff = got[i] ^ want[i];

        if (diff) {
            unsigned bit = __builtin_ctzll(diff);

            ck_abort_msg("page %u (gpa 0x%llx): %s", i * 64 + bit,
                         (unsigned long long)(i * 64 + bit) * PAGE,
                         (got[i] >> bit) & 1 ? "reported but not written"
                                             : "written but not reported");
        }
    }
}

/* A sync reports exactly the pages in g->expect, and counts them. */
static void sync_expect(RamTrack *t, Guest *g)
{
    uint64_t bitmap[NWORDS];

    ck_assert_uint_eq(track_sync(t, bitmap), popcount(g->expect));
    assert_bitmap(bitmap, g->expect);
}

START_TEST(test_exact_pages)
{
    static const uint64_t scattered[] = { 3, 64, 65, 127, 1000, 4095, 5000, 9999, 12345 };
    uint64_t bitmap[NWORDS];
    volatile uint8_t sink = 0;
    Guest g;
    RamTrack *t;

    guest_init(&g);
    /* Populated before tracking starts: such pages must be protected too. */
    gwrite(&g, 77 * PAGE, PAGE);
    t = track_new(g.blk, 2, NULL);
    track_start(t);
    memset(g.expect, 0, sizeof(g.expect));

    gwrite(&g, 0, 1);                                   /* first byte */
    gwrite(&g, 2 * BLK_SIZE - 1, 1);                  /* last byte */
    gwrite(&g, BLK_SIZE - 1, 1);                      /* last byte of ram0 */
    for (unsigned i = 0; i < G_N_ELEMENTS(scattered); i++) {
        gwrite(&g, scattered[i] * PAGE + 100, 3);
    }
    gwrite(&g, 77 * PAGE + PAGE - 1, 1);                /* populated before start */
    /* Across the boundary of the blocks: pages 8190..8193. */
    gwrite(&g, BLK_SIZE - 6 * 1024, 12 * 1024);
    /* Reads are not writes. */
    for (uint64_t p = 200; p < 300; p++) {
        sink += *hva(&g, p * PAGE);
    }
    (void)sink;

    sync_expect(t, &g);

    /* Nothing written since: nothing reported. */
    ck_assert_uint_eq(track_sync(t, bitmap), 0);
    ck_assert_uint_eq(popcount(bitmap), 0);

    /* The reported pages were protected again: a second write is caught. */
    memset(g.expect, 0, sizeof(g.expect));
    gwrite(&g, 0, 1);
    gwrite(&g, 5000 * PAGE, 1);
    gwrite(&g, BLK_SIZE, 1);
    sync_expect(t, &g);

    ram_track_free(t);
    guest_fini(&g);
}
END_TEST

/* A scan vector of 2 regions: the sync must go on from walk_end. */
START_TEST(test_vector_full)
{
    RamTrackTestHooks hooks = { .vec_len = 2 };
    Guest g;
    RamTrack *t;

    guest_init(&g);
    t = track_new(g.blk, 2, &hooks);
    track_start(t);
    for (uint64_t p = 1; p < NPAGES; p += 97) {        /* 169 separate runs */
        gwrite(&g, p * PAGE, 1);
    }
    sync_expect(t, &g);
    ram_track_free(t);
    guest_fini(&g);
}
END_TEST

/*
 * More separate runs than the kernel's internal 512-region buffer holds,
 * with the default vector: the kernel then reports a walk_end behind the
 * regions it returned (seen on 6.18). Every page must still be reported,
 * and the sync must not fail.
 */
START_TEST(test_many_runs)
{
    uint64_t bitmap[NWORDS];
    Guest g;
    RamTrack *t;

    guest_init(&g);
    t = track_new(g.blk, 2, NULL);
    track_start(t);
    for (uint64_t p = 0; p < NPAGES; p += 3) {         /* 2731 per block */
        gwrite(&g, p * PAGE + 5, 1);
    }
    sync_expect(t, &g);
    ck_assert_uint_eq(track_sync(t, bitmap), 0);
    ram_track_free(t);
    guest_fini(&g);
}
END_TEST

/*
 * A thread writes every page of the guest once, in a scattered order,
 * while the test syncs back to back. Each write is logged with the number
 * of syncs completed before it: a write made after sync k returned must be
 * reported by a sync after k. One write per page, so a later write cannot
 * hide a lost one. (Scanning, then protecting the range in a second call
 * loses the writes made in between: this test catches that.)
 */
typedef struct Race {
    Guest *g;
    uint32_t gen[NPAGES];       /* syncs completed before page n was written */
    unsigned done;              /* syncs completed (atomic) */
    bool finished;              /* atomic */
} Race;

static void *race_writer(void *opaque)
{
    Race *r = opaque;

    for (uint64_t i = 0; i < NPAGES; i++) {
        /* 4099 is odd: a permutation of the pages, hopping between blocks. */
        uint64_t page = (i * 4099) % NPAGES;

        r->gen[page] = __atomic_load_n(&r->done, __ATOMIC_ACQUIRE);
        *(volatile uint8_t *)hva(r->g, page * PAGE + (i & 0xfff)) = (uint8_t)i;
    }
    __atomic_store_n(&r->finished, true, __ATOMIC_RELEASE);
    return NULL;
}

START_TEST(test_concurrent_writer)
{
    Race *r = g_new0(Race, 1);
    uint32_t *last_report = g_new0(uint32_t, NPAGES);
    uint64_t bitmap[NWORDS];
    unsigned nsync = 0, lost = 0, first_lost = 0;
    bool finished;
    Guest g;
    RamTrack *t;
    GThread *th;

    guest_init(&g);
    /* Populated first: the writer's faults are write-protect faults only. */
    memset(g.rb[0]->host, 1, BLK_SIZE);
    memset(g.rb[1]->host, 1, BLK_SIZE);
    r->g = &g;
    t = track_new(g.blk, 2, NULL);
    track_start(t);
    th = g_thread_new("writer", race_writer, r);
    do {
        finished = __atomic_load_n(&r->finished, __ATOMIC_ACQUIRE);
        track_sync(t, bitmap);          /* after the last write when finished */
        nsync++;
        for (uint64_t p = 0; p < NPAGES; p++) {
            if ((bitmap[p / 64] >> (p % 64)) & 1) {
                last_report[p] = nsync;
            }
        }
        __atomic_store_n(&r->done, nsync, __ATOMIC_RELEASE);
    } while (!finished);
    g_thread_join(th);

    for (uint64_t p = 0; p < NPAGES; p++) {
        if (last_report[p] <= r->gen[p]) {
            first_lost = lost++ ? first_lost : p;
        }
    }
    ck_assert_msg(lost == 0, "%u of %u writes never reported (%u syncs; the "
                  "first: page %u, written after sync %u)", lost,
                  (unsigned)NPAGES, nsync, first_lost, r->gen[first_lost]);
    /* The syncs did run while the thread wrote. */
    ck_assert_uint_gt(nsync, 10);

    ram_track_free(t);
    guest_fini(&g);
    g_free(last_report);
    g_free(r);
}
END_TEST

/*
 * Blocks taken from a GuestMemory map: a region may map part of a RAM
 * block (block_offset), and its pages are reported at their guest address.
 */
START_TEST(test_guest_memory_regions)
{
    GuestMemory *mem = guest_memory_new();
    RamTrackBlock blk[2];
    GError *err = NULL;
    Guest g;
    RamTrack *t;

    guest_init(&g);
    /* ram0 whole at 0; the second half of ram1 at 48 MiB. */
    ck_assert(guest_memory_add(mem, 0, g.rb[0], 0, BLK_SIZE, &err));
    ck_assert(guest_memory_add(mem, BLK_SIZE + BLK_SIZE / 2, g.rb[1], BLK_SIZE / 2,
                               BLK_SIZE / 2, &err));
    ck_assert_uint_eq(guest_memory_nregions(mem), 2);
    for (unsigned i = 0; i < 2; i++) {
        blk[i] = ram_track_block_from_region(guest_memory_region(mem, i));
    }
    ck_assert_str_eq(blk[1].id, "ram1");
    t = track_new(blk, 2, NULL);
    track_start(t);

    ck_assert(guest_memory_write(mem, BLK_SIZE + BLK_SIZE / 2 + 5 * PAGE, "x", 1));
    ck_assert(guest_memory_write(mem, 3 * PAGE, "y", 1));
    /* The unmapped first half of ram1 is not guest memory: not tracked. */
    *(volatile uint8_t *)g.rb[1]->host = 1;
    expect_page(&g, (BLK_SIZE + BLK_SIZE / 2) / PAGE + 5);
    expect_page(&g, 3);
    sync_expect(t, &g);

    ram_track_free(t);
    guest_memory_free(mem);
    guest_fini(&g);
}
END_TEST

/* Whether the kernel tracks [host, host+size) for async write-protect now. */
static bool kernel_tracks(void *host, uint64_t size)
{
    struct page_region vec[4];
    struct pm_scan_arg arg = {
        .size = sizeof(arg),
        .flags = PM_SCAN_CHECK_WPASYNC,
        .start = (uintptr_t)host,
        .end = (uintptr_t)host + size,
        .vec = (uintptr_t)vec,
        .vec_len = G_N_ELEMENTS(vec),
        .category_mask = PAGE_IS_WRITTEN,
        .return_mask = PAGE_IS_WRITTEN,
    };
    int fd = open("/proc/self/pagemap", O_RDONLY);
    int ret, err;

    ck_assert_int_ge(fd, 0);
    ret = ioctl(fd, PAGEMAP_SCAN, &arg);
    err = errno;
    close(fd);
    ck_assert_msg(ret >= 0 || err == EPERM, "PAGEMAP_SCAN: %s", g_strerror(err));
    return ret >= 0;
}

START_TEST(test_hotplug)
{
    uint64_t bitmap[NWORDS];
    GError *err = NULL;
    Guest g;
    RamTrack *t;

    guest_init(&g);
    t = track_new(g.blk, 1, NULL);
    track_start(t);

    /* Plugged while tracking: protected at once, its writes reported. */
    ck_assert(ram_track_add_block(t, &g.blk[1], &err));
    gwrite(&g, BLK_SIZE + 10 * PAGE, 1);
    gwrite(&g, 2 * BLK_SIZE - 1, 1);
    gwrite(&g, 5 * PAGE, 1);
    sync_expect(t, &g);

    /* An overlapping block is refused. */
    RamTrackBlock dup = g.blk[1];
    dup.gpa = 0x100000000ull;
    ck_assert(!ram_track_add_block(t, &dup, &err));
    ck_assert_int_eq(err->code, VHOST_USER_ERROR_CONFIG);
    g_clear_error(&err);

    /* A bitmap that misses the new block: refused before any scan. */
    gwrite(&g, BLK_SIZE, 1);
    memset(bitmap, 0, sizeof(bitmap));
    ck_assert(!ram_track_sync(t, bitmap, NPAGES / 2, NULL, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "ram1"));
    g_clear_error(&err);
    memset(g.expect, 0, sizeof(g.expect));
    gwrite(&g, BLK_SIZE, 1);
    sync_expect(t, &g);

    /* Unplugged: no longer scanned, its writes no longer reported. */
    ck_assert(ram_track_remove_block(t, 0, &err));
    ck_assert(!kernel_tracks(g.blk[0].host, BLK_SIZE));
    ck_assert(kernel_tracks(g.blk[1].host, BLK_SIZE));
    ck_assert(!ram_track_remove_block(t, 0, &err));
    g_clear_error(&err);
    memset(g.expect, 0, sizeof(g.expect));
    gwrite(&g, 5 * PAGE, 1);
    memset(g.expect, 0, sizeof(g.expect));
    gwrite(&g, BLK_SIZE + PAGE, 1);
    sync_expect(t, &g);

    ram_track_free(t);
    guest_fini(&g);
}
END_TEST

/* Following hotplug from a GuestMemory listener. */
static void follow_memory(GuestMemory *mem, void *opaque)
{
    GError *err = NULL;

    ck_assert_msg(ram_track_update_blocks(opaque, mem, &err), "update: %s",
                  err ? err->message : "?");
}

START_TEST(test_follow_guest_memory)
{
    GuestMemory *mem = guest_memory_new();
    GError *err = NULL;
    Guest g;
    RamTrack *t;

    guest_init(&g);
    t = track_new(NULL, 0, NULL);
    guest_memory_add_listener(mem, follow_memory, t);
    ck_assert(guest_memory_add(mem, 0, g.rb[0], 0, BLK_SIZE, &err));
    track_start(t);
    ck_assert(kernel_tracks(g.blk[0].host, BLK_SIZE));

    /* Plugged: tracked from the listener on. */
    ck_assert(guest_memory_add(mem, BLK_SIZE, g.rb[1], 0, BLK_SIZE, &err));
    ck_assert(kernel_tracks(g.blk[1].host, BLK_SIZE));
    gwrite(&g, BLK_SIZE + 7 * PAGE, 1);
    gwrite(&g, 7 * PAGE, 1);
    sync_expect(t, &g);

    /* Unplugged: no longer tracked; the other block is left as it was. */
    gwrite(&g, BLK_SIZE + 9 * PAGE, 1);
    ck_assert(guest_memory_remove(mem, 0, &err));
    ck_assert(!kernel_tracks(g.blk[0].host, BLK_SIZE));
    gwrite(&g, 3 * PAGE, 1);
    memset(g.expect, 0, sizeof(g.expect));
    expect_page(&g, BLK_SIZE / PAGE + 9);       /* written before the unplug */
    sync_expect(t, &g);

    ram_track_free(t);
    guest_memory_free(mem);
    guest_fini(&g);
}
END_TEST

START_TEST(test_stop)
{
    uint64_t bitmap[NWORDS];
    GError *err = NULL;
    Guest g;
    RamTrack *t;

    guest_init(&g);
    t = track_new(g.blk, 2, NULL);
    ck_assert(!kernel_tracks(g.blk[0].host, BLK_SIZE));
    track_start(t);
    ck_assert(kernel_tracks(g.blk[0].host, BLK_SIZE));
    ck_assert(kernel_tracks(g.blk[1].host, BLK_SIZE));
    ck_assert(!ram_track_start(t, &err));
    ck_assert_int_eq(err->code, VHOST_USER_ERROR_INVALID_STATE);
    g_clear_error(&err);

    gwrite(&g, 0, 1);
    ck_assert(ram_track_stop(t, &err));
    ck_assert(!ram_track_started(t));
    /* The kernel no longer tracks: writes cost nothing, nobody reports them. */
    ck_assert(!kernel_tracks(g.blk[0].host, BLK_SIZE));
    ck_assert(!kernel_tracks(g.blk[1].host, BLK_SIZE));
    gwrite(&g, PAGE, 1);
    ck_assert(!ram_track_sync(t, bitmap, NPAGES, NULL, &err));
    ck_assert_int_eq(err->code, VHOST_USER_ERROR_INVALID_STATE);
    g_clear_error(&err);

    /* Started again: everything protected anew, earlier writes not reported. */
    track_start(t);
    memset(g.expect, 0, sizeof(g.expect));
    gwrite(&g, 2 * PAGE, 1);
    sync_expect(t, &g);

    /* Freed while started: unregistered too. */
    ram_track_free(t);
    ck_assert(!kernel_tracks(g.blk[0].host, BLK_SIZE));
    guest_fini(&g);
}
END_TEST

/*
 * The kernel itself writing guest RAM (a read() from a socket or pipe into
 * a buffer in guest memory) is caught like a CPU store, and read() does
 * not fail, with or without UFFD_USER_MODE_ONLY (which a non-root VMM may
 * need to open a userfaultfd).
 */
static void kernel_write_case(bool user_mode_only)
{
    RamTrackTestHooks hooks = { .user_mode_only = user_mode_only };
    char buf[3 * 4096];
    int pfd[2];
    Guest g;
    RamTrack *t;

    guest_init(&g);
    t = track_new(g.blk, 2, &hooks);
    track_start(t);
    memset(buf, 0x5a, sizeof(buf));
    ck_assert_int_eq(pipe(pfd), 0);
    ck_assert_int_eq(write(pfd[1], buf, sizeof(buf)), sizeof(buf));
    /* 12 KiB from the middle of page 8190 of ram0 into ram1: pages 8190..8193 */
    ck_assert_int_eq(read(pfd[0], hva(&g, BLK_SIZE - 2 * PAGE + 100),
                          2 * PAGE - 100), 2 * PAGE - 100);
    ck_assert_int_eq(read(pfd[0], hva(&g, BLK_SIZE), PAGE + 100), PAGE + 100);
    close(pfd[0]);
    close(pfd[1]);
    ck_assert_int_eq(*hva(&g, BLK_SIZE + PAGE + 99), 0x5a);
    for (uint64_t p = 8190; p <= 8193; p++) {
        expect_page(&g, p);
    }
    sync_expect(t, &g);
    ram_track_free(t);
    guest_fini(&g);
}

START_TEST(test_kernel_writes)
{
    kernel_write_case(false);
}
END_TEST

START_TEST(test_kernel_writes_user_mode_only)
{
    kernel_write_case(true);
}
END_TEST

/*
 * A VMM that is not root, on a host with vm.unprivileged_userfaultfd=0 and
 * /dev/userfaultfd 0600 (as here): tracking works through a user-mode-only
 * userfaultfd, kernel writes included. Run in a child that drops root.
 */
static int unprivileged_child(void)
{
    g_autoptr(GError) err = NULL;
    uint64_t bitmap[NWORDS] = { 0 };
    uint64_t written = 0;
    char buf[100] = { 1 };
    RamTrackBlock b;
    RamBlock *rb;
    RamTrack *t;
    int pfd[2];

    if (setgroups(0, NULL) || setgid(65534) || setuid(65534) ||
        prctl(PR_SET_DUMPABLE, 1)) {
        return 10;
    }
    if (syscall(SYS_userfaultfd, O_CLOEXEC) >= 0 || errno != EPERM) {
        fprintf(stderr, "unprivileged: a full userfaultfd is allowed here, "
                "the fallback is not exercised\n");
    }
    rb = ram_block_new_memfd("ram0", BLK_SIZE, &err);
    if (!rb) {
        return 11;
    }
    b = (RamTrackBlock) { "ram0", rb->host, BLK_SIZE, 0 };
    t = ram_track_new(&b, 1, &err);
    if (!t || !ram_track_start(t, &err)) {
        fprintf(stderr, "unprivileged: %s\n", err->message);
        return 12;
    }
    if (pipe(pfd) || write(pfd[1], buf, sizeof(buf)) != sizeof(buf) ||
        read(pfd[0], (uint8_t *)rb->host + 9 * PAGE + 7, sizeof(buf)) != sizeof(buf)) {
        return 13;
    }
    *((volatile uint8_t *)rb->host + 20 * PAGE) = 1;
    if (!ram_track_sync(t, bitmap, NPAGES, &written, &err)) {
        fprintf(stderr, "unprivileged: %s\n", err->message);
        return 14;
    }
    if (written != 2 || bitmap[0] != ((1ull << 9) | (1ull << 20))) {
        return 15;
    }
    ram_track_free(t);
    ram_block_unref(rb);
    return 0;
}

START_TEST(test_unprivileged)
{
    int status;
    pid_t pid;

    if (getuid() != 0) {
        return;                 /* already unprivileged: the other tests cover it */
    }
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        _exit(unprivileged_child());
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "unprivileged child: status 0x%x", status);
}
END_TEST

static void assert_unavailable(const RamTrackTestHooks *hooks, const char *why)
{
    GError *err = NULL;
    Guest g;

    guest_init(&g);
    ck_assert_ptr_null(ram_track_new_hooked(g.blk, 2, hooks, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(err->code, VHOST_USER_ERROR_FEATURE_MISMATCH);
    ck_assert(!vhost_user_error_should_reconnect(err));
    ck_assert_msg(g_str_has_prefix(err->message, UNAVAILABLE_PREFIX) &&
                  g_str_has_suffix(err->message, UNAVAILABLE_SUFFIX) &&
                  strstr(err->message, why), "message: %s", err->message);
    g_error_free(err);
    /* Nothing was left registered. */
    ck_assert(!kernel_tracks(g.blk[0].host, BLK_SIZE));
    guest_fini(&g);
}

/* A userfaultfd feature this kernel refuses (bit 62: none has it). */
START_TEST(test_unavailable_uffd_feature)
{
    RamTrackTestHooks hooks = { .extra_uffd_features = 1ull << 62 };

    assert_unavailable(&hooks, "refuses userfaultfd features 0x4000000000000000");
}
END_TEST

/* No PAGEMAP_SCAN: an ioctl number the pagemap file does not know. */
START_TEST(test_unavailable_pagemap_scan)
{
    RamTrackTestHooks hooks = {
        .scan_request = _IOWR('f', 200, struct pm_scan_arg),
    };

    assert_unavailable(&hooks, "no PAGEMAP_SCAN ioctl");
}
END_TEST

START_TEST(test_bad_block)
{
    GError *err = NULL;
    Guest g;
    RamTrackBlock b;

    guest_init(&g);
    b = g.blk[0];
    b.gpa = 100;
    ck_assert_ptr_null(ram_track_new(&b, 1, &err));
    ck_assert_int_eq(err->code, VHOST_USER_ERROR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err->message, "ram0"));
    g_clear_error(&err);
    b = g.blk[0];
    b.size = 0;
    ck_assert_ptr_null(ram_track_new(&b, 1, &err));
    g_clear_error(&err);
    guest_fini(&g);
}
END_TEST

static Suite *ram_track_suite(void)
{
    Suite *s = suite_create("ram-track");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_exact_pages);
    tcase_add_test(tc, test_vector_full);
    tcase_add_test(tc, test_many_runs);
    tcase_add_test(tc, test_concurrent_writer);
    tcase_add_test(tc, test_hotplug);
    tcase_add_test(tc, test_guest_memory_regions);
    tcase_add_test(tc, test_follow_guest_memory);
    tcase_add_test(tc, test_stop);
    tcase_add_test(tc, test_kernel_writes);
    tcase_add_test(tc, test_kernel_writes_user_mode_only);
    tcase_add_test(tc, test_unprivileged);
    tcase_add_test(tc, test_unavailable_uffd_feature);
    tcase_add_test(tc, test_unavailable_pagemap_scan);
    tcase_add_test(tc, test_bad_block);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ram_track_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
