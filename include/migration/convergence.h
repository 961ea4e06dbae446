/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * When to stop iterating over dirty RAM and stop the guest for the final
 * copy (QEMU's rule): the expected downtime is what remains dirty divided
 * by the bandwidth; once it fits in downtime-limit, stop and copy.
 */
#ifndef MIGRATION_CONVERGENCE_H
#define MIGRATION_CONVERGENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/vhost-user-api.h"

typedef struct MigConvergence {
    bool stop_and_copy;             /* false: iterate again */
    uint64_t bandwidth;             /* bytes/s the estimate used */
    /* remaining / bandwidth in ms; UINT64_MAX when the bandwidth is unknown */
    uint64_t expected_downtime_ms;
    uint64_t threshold_bytes;       /* what downtime-limit allows to remain */
} MigConvergence;

/* Bytes/s of a round that sent bytes in elapsed_us (0 when nothing was timed). */
VHOST_USER_API
uint64_t mig_bandwidth(uint64_t bytes, uint64_t elapsed_us);

/*
 * bandwidth: measured over the last round, bytes/s. max_bandwidth: the
 * stream's limit (0: none); the final copy is limited too, so the estimate
 * never uses more. remaining: dirty bytes still to send. downtime_limit_ms:
 * the most the guest may stay stopped.
 */
VHOST_USER_API
MigConvergence mig_convergence_check(uint64_t bandwidth, uint64_t max_bandwidth,
                                     uint64_t remaining, uint64_t downtime_limit_ms);

#endif
