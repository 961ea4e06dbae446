/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy between two VMMs (migrate-harness.h): the switch in the middle
 * of the first round and the checks both sides must pass afterwards.
 * Failures are reported with g_test_fail_printf and a false return.
 */
#ifndef TESTS_QTEST_POSTCOPY_HARNESS_H
#define TESTS_QTEST_POSTCOPY_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "migrate-harness.h"

/* max-bandwidth during the first round: a 64 MiB filled RAM takes ~2 s. */
#define PC_BW               (32ll << 20)

/* query-migrate's postcopy.key (q: its return), or -1. */
int64_t pc_figure(JsonObject *q, const char *key);
/*
 * postcopy-ram on both sides, the destination (-incoming defer) listens on
 * uri once dev's workload runs on the source, the source migrates under
 * PC_BW and is told to switch in the middle of the stream (autoswitch: it
 * switches by itself, x-postcopy-auto with a downtime-limit of 0).
 */
bool pc_switch_midstream(MigVmm *src, MigVmm *dst, const char *dev, const char *uri,
                         bool autoswitch);
/* pc_switch_midstream in two: up to the middle of the first round, and the switch. */
bool pc_precopy_midstream(MigVmm *src, MigVmm *dst, const char *dev, const char *uri,
                          bool autoswitch);
bool pc_start_postcopy(MigVmm *src);
/*
 * Both sides completed (the source within src_timeout_ms) and the
 * destination's MIGRATION events include dst_seq (NULL-terminated) in order.
 */
bool pc_wait_completed(MigVmm *src, MigVmm *dst, unsigned src_timeout_ms,
                       const char *const *dst_seq);
/* A postcopy destination's MIGRATION events from the start, for pc_wait_completed. */
extern const char *const pc_dst_events[];
/* pc_switch_midstream, then both sides completed and the destination went through postcopy-active. */
bool pc_migrate_postcopy(MigVmm *src, MigVmm *dst, const char *dev, const char *uri,
                         bool autoswitch);
/*
 * The destination's figures after completion: nothing missing, pages
 * placed, faults of the guest served by requests (need_guest) and faults
 * of the back-end (need_backend).
 */
bool pc_check_dst_figures(MigVmm *dst, bool need_guest, bool need_backend);
/*
 * Our back-end (blk, 2 queues) on sock with the shared disk of size bytes,
 * and extra options (NULL-ended, may be NULL); NULL (test failed) when its
 * socket never came.
 */
Proc *pc_start_refbe(Fixture *f, const char *name, const char *sock, const char *disk,
                     uint64_t size, const char *const *extra);
/*
 * Pages [bump pointer of the destination guest's allocator, end of RAM):
 * nothing wrote them after the switch, so they must hold what the source
 * sent (its RAM filled: not zero). Both RAM files are read (shm_ram).
 */
bool pc_compare_unallocated(MigVmm *src, MigVmm *dst);
/* The unsigned number after key in the last line of log that contains line, or -1. */
int64_t pc_log_number(const char *log, const char *line, const char *key);
/* The source switched, served page requests (need_requests) and exited 0. */
bool pc_check_src(MigVmm *src, bool need_requests);

#endif
