/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Blocktime per postcopy fault, in a log-linear histogram: exact below
 * 16 us, then 16 buckets per power of two (a percentile is its bucket's
 * upper end, at most 1/16 = 6.25% above the true value, and never above
 * the maximum, which is kept exactly). Bounded memory however long
 * postcopy runs. Not thread-safe: the caller locks. Internal to the
 * library (not installed).
 */
#ifndef MIGRATION_POSTCOPY_HIST_H
#define MIGRATION_POSTCOPY_HIST_H

#include <stdint.h>

#define MIG_PC_HIST_SUB         16
#define MIG_PC_HIST_BUCKETS     (MIG_PC_HIST_SUB + (64 - 4) * MIG_PC_HIST_SUB)

typedef struct MigPcHist {
    uint64_t count, max;
    uint64_t bucket[MIG_PC_HIST_BUCKETS];
} MigPcHist;

void mig_pc_hist_add(MigPcHist *h, uint64_t v);
/* The pct-th percentile (1..100) of what was added; 0 when empty. */
uint64_t mig_pc_hist_percentile(const MigPcHist *h, unsigned pct);

#endif
