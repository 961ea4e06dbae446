/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The convergence rule of live migration.
 */
#include "migration/convergence.h"

/* a * b / c without overflowing 64 bits, saturated, rounded up when asked. */
static uint64_t mig_muldiv(uint64_t a, uint64_t b, uint64_t c, bool round_up)
{
    unsigned __int128 r = (unsigned __int128)a * b;

    r = round_up ? (r + c - 1) / c : r / c;
    return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

uint64_t mig_bandwidth(uint64_t bytes, uint64_t elapsed_us)
{
    return elapsed_us ? mig_muldiv(bytes, 1000000, elapsed_us, false) : 0;
}

MigConvergence mig_convergence_check(uint64_t bandwidth, uint64_t max_bandwidth,
                                     uint64_t remaining, uint64_t downtime_limit_ms)
{
    MigConvergence c = { 0 };

    if (max_bandwidth && bandwidth > max_bandwidth) {
        bandwidth = max_bandwidth;
    }
    c.bandwidth = bandwidth;
    if (!bandwidth) {
        /* Nothing measured yet: only an empty remainder is known to fit. */
        c.expected_downtime_ms = remaining ? UINT64_MAX : 0;
        c.stop_and_copy = !remaining;
        return c;
    }
    c.expected_downtime_ms = mig_muldiv(remaining, 1000, bandwidth, true);
    c.threshold_bytes = mig_muldiv(bandwidth, downtime_limit_ms, 1000, false);
    c.stop_and_copy = remaining <= c.threshold_bytes;
    return c;
}
