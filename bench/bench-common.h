/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the C benchmarks share: the clock (this thread's CPU time: the
 * machines are shared), the median, and the anchor's dirty-bitmap
 * harvest (a vhost-user dirty log sync done by hand: load each word, skip
 * the zero ones, atomically exchange the others with zero, OR them into
 * the result).
 */
#ifndef BENCH_BENCH_COMMON_H
#define BENCH_BENCH_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define GiB (1024.0 * 1024 * 1024)

static inline double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Sorts v. */
static inline double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Returns the bits harvested. */
static inline uint64_t harvest(uint64_t *log, uint64_t *out, uint64_t nwords)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < nwords; i++) {
        if (__atomic_load_n(&log[i], __ATOMIC_RELAXED)) {
            uint64_t w = __atomic_exchange_n(&log[i], 0, __ATOMIC_ACQ_REL);

            out[i] |= w;
            n += __builtin_popcountll(w);
        }
    }
    return n;
}

#endif
