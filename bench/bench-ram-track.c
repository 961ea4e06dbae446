/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What tracking the VMM's own guest-RAM writes costs the migration thread
 * (migration/ram-track.c), per GiB of guest RAM, next to an anchor doing
 * the same job without the kernel:
 *
 *   sync at 0.1%, 1%, 10% of pages written, as single pages or as runs of
 *     64 contiguous pages, spread over the RAM: one ram_track_sync (the
 *     PAGEMAP_SCAN walk that reports and re-protects the written pages)
 *     against a fetch-and-clear of a dirty bitmap with the same bits set
 *     (a vhost-user dirty log harvest: load each word, skip the zero ones,
 *     atomically exchange the others with zero, OR them into the result).
 *   protect-all: ram_track_start on populated RAM (register and
 *     write-protect every page) against mprotect(PROT_READ) of the same
 *     range (the classic write-protect, one kernel page-table walk).
 *
 * Ours and the anchor alternate, each repetition gives one ratio ours /
 * anchor, the figure printed is the median of those ratios (and the
 * median of each side's times). Times are the thread's CPU time (user and
 * kernel): the machines are shared. The writes themselves are not timed.
 *
 *   build/tests/bench-ram-track [MiB of RAM >= 256, default 1024] [repetitions, default 9]
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench-common.h"
#include "migration/ram-track.h"
#include "system/memory.h"

static void die(const char *what, GError *err)
{
    fprintf(stderr, "bench-ram-track: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

typedef struct Bench {
    RamBlock *rb;
    RamTrack *t;
    uint64_t npages, nwords;
    uint64_t *bitmap, *log, *out;
    unsigned reps;
} Bench;

/*
 * Writes `count` pages in runs of `run` contiguous pages spread evenly
 * over the RAM (each run at an offset that changes with the repetition),
 * and sets their bits in the anchor's log.
 */
static void dirty(Bench *b, uint64_t count, uint64_t run, unsigned rep)
{
    uint64_t nruns = count / run;
    uint64_t stride = b->npages / nruns;

    for (uint64_t i = 0; i < nruns; i++) {
        uint64_t first = i * stride + (rep * 7919 + i * 104729) % (stride - run + 1);

        for (uint64_t page = first; page < first + run; page++) {
            ((volatile uint8_t *)b->rb->host)[page * RAM_TRACK_PAGE_SIZE + rep] = (uint8_t)i;
            b->log[page / 64] |= 1ull << (page % 64);
        }
    }
}

static void bench_sync(Bench *b, double fraction, uint64_t run)
{
    uint64_t count = (uint64_t)(b->npages * fraction) / run * run;
    double ours[64], anchor[64], ratio[64];
    double gib = b->npages * RAM_TRACK_PAGE_SIZE / GiB;
    GError *err = NULL;

    for (unsigned r = 0; r < b->reps; r++) {
        uint64_t written, got;
        double t0;

        dirty(b, count, run, r);
        memset(b->bitmap, 0, b->nwords * 8);
        t0 = now_s();
        if (!ram_track_sync(b->t, b->bitmap, b->npages, &written, &err)) {
            die("sync", err);
        }
        ours[r] = (now_s() - t0) * 1e3 / gib;

        memset(b->out, 0, b->nwords * 8);
        t0 = now_s();
        got = harvest(b->log, b->out, b->nwords);
        anchor[r] = (now_s() - t0) * 1e3 / gib;

        /* Both saw exactly the pages written, or the comparison means nothing. */
        if (written != count || got != count ||
            memcmp(b->bitmap, b->out, b->nwords * 8)) {
            fprintf(stderr, "bench-ram-track: %.1f%%: sync reported %" PRIu64
                    " pages, anchor %" PRIu64 ", written %" PRIu64 "\n",
                    fraction * 100, written, got, count);
            exit(1);
        }
        ratio[r] = ours[r] / anchor[r];
        fprintf(stderr, "  %5.1f%% runs of %3" PRIu64 " rep %u: ours %.4f ms/GiB, "
                "anchor %.4f ms/GiB\n", fraction * 100, run, r, ours[r], anchor[r]);
    }
    printf("%8.1f%%  %4" PRIu64 "  %12.3f  %14.4f  %10.0f\n", fraction * 100, run,
           median(ours, b->reps), median(anchor, b->reps), median(ratio, b->reps));
}

static void bench_protect_all(Bench *b)
{
    double ours[64], anchor[64], ratio[64];
    double gib = b->npages * RAM_TRACK_PAGE_SIZE / GiB;
    uint64_t size = b->npages * RAM_TRACK_PAGE_SIZE;
    GError *err = NULL;

    for (unsigned r = 0; r < b->reps; r++) {
        double t0;

        if (!ram_track_stop(b->t, &err)) {
            die("stop", err);
        }
        t0 = now_s();
        if (!ram_track_start(b->t, &err)) {
            die("start", err);
        }
        ours[r] = (now_s() - t0) * 1e3 / gib;

        t0 = now_s();
        if (mprotect(b->rb->host, size, PROT_READ)) {
            die("mprotect", NULL);
        }
        anchor[r] = (now_s() - t0) * 1e3 / gib;
        if (mprotect(b->rb->host, size, PROT_READ | PROT_WRITE)) {
            die("mprotect", NULL);
        }
        ratio[r] = ours[r] / anchor[r];
        fprintf(stderr, "  protect-all rep %u: ours %.3f ms/GiB, anchor %.3f ms/GiB\n",
                r, ours[r], anchor[r]);
    }
    printf("%9s  %4s  %12.3f  %14.4f  %10.2f\n", "protect", "all", median(ours, b->reps),
           median(anchor, b->reps), median(ratio, b->reps));
}

int main(int argc, char **argv)
{
    static const double fractions[] = { 0.001, 0.01, 0.1 };
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 1024;
    Bench b = { .reps = argc > 2 ? atoi(argv[2]) : 9 };
    GError *err = NULL;
    RamTrackBlock blk;

    /* 0.1% of 256 MiB: one run of 64 pages. */
    if (mib < 256 || b.reps < 1 || b.reps > 64) {
        fprintf(stderr, "usage: bench-ram-track [MiB >= 256] [repetitions 1..64]\n");
        return 2;
    }
    b.rb = ram_block_new_memfd("ram0", mib << 20, &err);
    if (!b.rb) {
        die("memfd", err);
    }
    /* A running guest's RAM is populated: walk present pages, not holes. */
    memset(b.rb->host, 1, mib << 20);
    b.npages = (mib << 20) / RAM_TRACK_PAGE_SIZE;
    b.nwords = b.npages / 64;
    b.bitmap = g_new0(uint64_t, b.nwords);
    b.log = g_new0(uint64_t, b.nwords);
    b.out = g_new0(uint64_t, b.nwords);
    blk = (RamTrackBlock) { "ram0", b.rb->host, mib << 20, 0 };
    b.t = ram_track_new(&blk, 1, &err);
    if (!b.t || !ram_track_start(b.t, &err)) {
        die("tracker", err);
    }

    printf("guest RAM %" PRIu64 " MiB (memfd, populated), %u repetitions, thread "
           "CPU time, medians; ratio = median of ours/anchor per repetition;\n"
           "run = contiguous pages per written run, runs spread evenly\n", mib, b.reps);
    printf("%9s  %4s  %12s  %14s  %10s\n", "written", "run", "ours ms/GiB",
           "anchor ms/GiB", "ratio");
    for (unsigned i = 0; i < G_N_ELEMENTS(fractions); i++) {
        bench_sync(&b, fractions[i], 1);
        bench_sync(&b, fractions[i], 64);
    }
    printf("(sync anchor: dirty-bitmap fetch-and-clear of the same pages)\n");
    bench_protect_all(&b);
    printf("(protect anchor: mprotect(PROT_READ) of the same range)\n");

    ram_track_free(b.t);
    ram_block_unref(b.rb);
    g_free(b.bitmap);
    g_free(b.log);
    g_free(b.out);
    return 0;
}
