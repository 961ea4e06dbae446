/* SPDX-License-Identifier: BSD-3-Clause */
/* Blocktime histogram of postcopy faults, see postcopy-hist.h. */
#include <glib.h>

#include "migration/postcopy-hist.h"

static unsigned hist_index(uint64_t v)
{
    unsigned e;

    if (v < MIG_PC_HIST_SUB) {
        return v;
    }
    e = 63 - __builtin_clzll(v);                /* >= 4 */
    return MIG_PC_HIST_SUB + (e - 4) * MIG_PC_HIST_SUB +
           ((v >> (e - 4)) & (MIG_PC_HIST_SUB - 1));
}

static uint64_t hist_high(unsigned i)
{
    unsigned e, m;

    if (i < MIG_PC_HIST_SUB) {
        return i;
    }
    e = (i - MIG_PC_HIST_SUB) / MIG_PC_HIST_SUB + 4;
    m = (i - MIG_PC_HIST_SUB) % MIG_PC_HIST_SUB;
    return ((uint64_t)(MIG_PC_HIST_SUB + m) << (e - 4)) + ((1ull << (e - 4)) - 1);
}

void mig_pc_hist_add(MigPcHist *h, uint64_t v)
{
    h->count++;
    h->max = MAX(h->max, v);
    h->bucket[hist_index(v)]++;
}

uint64_t mig_pc_hist_percentile(const MigPcHist *h, unsigned pct)
{
    uint64_t rank = MAX((h->count * pct + 99) / 100, 1), seen = 0;

    if (!h->count) {
        return 0;
    }
    for (unsigned i = 0; i < MIG_PC_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            return MIN(hist_high(i), h->max);
        }
    }
    return h->max;
}
