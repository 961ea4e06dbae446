/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Workload statistics: operation and byte counts, elapsed time and a
 * latency histogram good to ~1.5 % from 100 ns to ~70 s, from which the
 * summary's percentiles come. Fixed size, no allocation per sample.
 */
#ifndef GUEST_STATS_H
#define GUEST_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* 64 buckets per power of two; 48 rows reach far beyond any latency. */
#define WL_HIST_SUB     64
#define WL_HIST_POW     48

typedef struct WorkloadStats {
    uint64_t ops;
    uint64_t bytes;
    uint64_t errors;            /* failed or mismatching operations */
    uint64_t start_ns;
    uint64_t end_ns;
    uint64_t lat_min_ns;
    uint64_t lat_max_ns;
    uint64_t lat_sum_ns;
    uint64_t lat_samples;       /* ops with a latency (all, unless sampled) */
    uint64_t hist[WL_HIST_POW][WL_HIST_SUB];
} WorkloadStats;

uint64_t wl_now_ns(void);       /* CLOCK_MONOTONIC */

void wl_stats_init(WorkloadStats *s);
void wl_stats_record(WorkloadStats *s, uint64_t latency_ns, uint64_t bytes);
/* An operation without a latency sample (net lat-sample=N). */
void wl_stats_count(WorkloadStats *s, uint64_t bytes);
void wl_stats_merge(WorkloadStats *into, const WorkloadStats *from);
/* p in [0, 100]; 0 when no samples. */
uint64_t wl_stats_percentile(const WorkloadStats *s, double p);
double wl_stats_seconds(const WorkloadStats *s);

/*
 * "blk0: 10000 ops, 40.0 MiB in 2.01 s: 4975 op/s, 19.9 MiB/s; latency
 * us min/avg/p50/p99/p99.9/max 21/50/48/90/130/410; verified"
 */
char *wl_stats_summary(const WorkloadStats *s, const char *name, bool verified);
/*
 * One JSON object on one line:
 * {"device":"blk0","ops":...,"bytes":...,"seconds":...,"ops_per_sec":...,
 *  "bytes_per_sec":...,"errors":...,"latency_us":{"min":..,"avg":..,
 *  "p50":..,"p90":..,"p99":..,"p999":..,"max":..},"verified":true}
 */
char *wl_stats_json(const WorkloadStats *s, const char *name, bool verified);

#endif
