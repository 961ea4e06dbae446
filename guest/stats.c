/* SPDX-License-Identifier: BSD-3-Clause */
/* Workload statistics; see include/guest/stats.h. */
#include <string.h>
#include <time.h>

#include "guest/stats.h"

uint64_t wl_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void wl_stats_init(WorkloadStats *s)
{
    memset(s, 0, sizeof(*s));
    s->lat_min_ns = UINT64_MAX;
    s->start_ns = wl_now_ns();
}

/*
 * Log-linear buckets. Row 0 holds values below WL_HIST_SUB one per bucket;
 * row r >= 1 holds [2^(r+5), 2^(r+6)) split into WL_HIST_SUB equal parts
 * of width 2^(r-1): every bucket is within 1/64 of its values.
 */
static void wl_bucket(uint64_t v, unsigned *row, unsigned *sub)
{
    unsigned shift;

    if (v < WL_HIST_SUB) {
        *row = 0;
        *sub = (unsigned)v;
        return;
    }
    shift = 63 - (unsigned)__builtin_clzll(v) - 6;
    if (shift + 1 >= WL_HIST_POW) {
        *row = WL_HIST_POW - 1;
        *sub = WL_HIST_SUB - 1;
        return;
    }
    *row = shift + 1;
    *sub = (unsigned)(v >> shift) - WL_HIST_SUB;
}

static uint64_t wl_bucket_value(unsigned row, unsigned sub)
{
    unsigned shift;

    if (row == 0) {
        return sub;
    }
    shift = row - 1;
    /* The middle of the bucket. */
    return ((uint64_t)(WL_HIST_SUB + sub) << shift) + ((1ull << shift) >> 1);
}

void wl_stats_record(WorkloadStats *s, uint64_t latency_ns, uint64_t bytes)
{
    unsigned pow, sub;

    s->ops++;
    s->bytes += bytes;
    s->lat_samples++;
    s->lat_sum_ns += latency_ns;
    if (latency_ns < s->lat_min_ns) {
        s->lat_min_ns = latency_ns;
    }
    if (latency_ns > s->lat_max_ns) {
        s->lat_max_ns = latency_ns;
    }
    wl_bucket(latency_ns, &pow, &sub);
    s->hist[pow][sub]++;
}

void wl_stats_count(WorkloadStats *s, uint64_t bytes)
{
    s->ops++;
    s->bytes += bytes;
}

void wl_stats_merge(WorkloadStats *into, const WorkloadStats *from)
{
    into->ops += from->ops;
    into->bytes += from->bytes;
    into->errors += from->errors;
    into->lat_sum_ns += from->lat_sum_ns;
    into->lat_samples += from->lat_samples;
    if (from->lat_min_ns < into->lat_min_ns) {
        into->lat_min_ns = from->lat_min_ns;
    }
    if (from->lat_max_ns > into->lat_max_ns) {
        into->lat_max_ns = from->lat_max_ns;
    }
    if (from->start_ns && (!into->start_ns || from->start_ns < into->start_ns)) {
        into->start_ns = from->start_ns;
    }
    if (from->end_ns > into->end_ns) {
        into->end_ns = from->end_ns;
    }
    for (unsigned p = 0; p < WL_HIST_POW; p++) {
        for (unsigned b = 0; b < WL_HIST_SUB; b++) {
            into->hist[p][b] += from->hist[p][b];
        }
    }
}

uint64_t wl_stats_percentile(const WorkloadStats *s, double pct)
{
    uint64_t total = 0, want, seen = 0;

    for (unsigned p = 0; p < WL_HIST_POW; p++) {
        for (unsigned b = 0; b < WL_HIST_SUB; b++) {
            total += s->hist[p][b];
        }
    }
    if (!total) {
        return 0;
    }
    /* The ends are known exactly; the histogram only approximates them. */
    if (pct <= 0) {
        return s->lat_min_ns;
    }
    if (pct >= 100) {
        return s->lat_max_ns;
    }
    want = (uint64_t)(pct / 100.0 * (double)total + 0.5);
    if (want < 1) {
        want = 1;
    }
    for (unsigned p = 0; p < WL_HIST_POW; p++) {
        for (unsigned b = 0; b < WL_HIST_SUB; b++) {
            seen += s->hist[p][b];
            if (seen >= want) {
                uint64_t v = wl_bucket_value(p, b);
                /* Never report outside what was actually observed. */
                if (v < s->lat_min_ns) {
                    v = s->lat_min_ns;
                }
                if (v > s->lat_max_ns) {
                    v = s->lat_max_ns;
                }
                return v;
            }
        }
    }
    return s->lat_max_ns;
}

double wl_stats_seconds(const WorkloadStats *s)
{
    uint64_t end = s->end_ns ? s->end_ns : wl_now_ns();

    return end > s->start_ns ? (double)(end - s->start_ns) / 1e9 : 0.0;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

char *wl_stats_summary(const WorkloadStats *s, const char *name, bool verified)
{
    double secs = wl_stats_seconds(s);
    double rate = secs > 0 ? (double)s->ops / secs : 0;
    double mib = (double)s->bytes / (1024.0 * 1024.0);

    return g_strdup_printf(
        "%s: %" G_GUINT64_FORMAT " ops, %.1f MiB in %.2f s: %.0f op/s, %.1f MiB/s; "
        "latency us min/avg/p50/p99/p99.9/max %.1f/%.1f/%.1f/%.1f/%.1f/%.1f; "
        "%" G_GUINT64_FORMAT " errors; %s",
        name, s->ops, mib, secs, rate, secs > 0 ? mib / secs : 0.0,
        us(s->lat_samples ? s->lat_min_ns : 0),
        us(s->lat_samples ? s->lat_sum_ns / s->lat_samples : 0),
        us(wl_stats_percentile(s, 50)), us(wl_stats_percentile(s, 99)),
        us(wl_stats_percentile(s, 99.9)), us(s->lat_max_ns), s->errors,
        verified ? "verified" : "NOT verified");
}

char *wl_stats_json(const WorkloadStats *s, const char *name, bool verified)
{
    double secs = wl_stats_seconds(s);
    g_autofree char *esc = g_strescape(name, NULL);

    return g_strdup_printf(
        "{\"device\":\"%s\",\"ops\":%" G_GUINT64_FORMAT ",\"bytes\":%" G_GUINT64_FORMAT
        ",\"seconds\":%.6f,\"ops_per_sec\":%.1f,\"bytes_per_sec\":%.1f,"
        "\"errors\":%" G_GUINT64_FORMAT ",\"latency_us\":{\"min\":%.3f,\"avg\":%.3f,"
        "\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
        "\"verified\":%s}",
        esc, s->ops, s->bytes, secs, secs > 0 ? (double)s->ops / secs : 0.0,
        secs > 0 ? (double)s->bytes / secs : 0.0, s->errors,
        us(s->lat_samples ? s->lat_min_ns : 0),
        us(s->lat_samples ? s->lat_sum_ns / s->lat_samples : 0),
        us(wl_stats_percentile(s, 50)), us(wl_stats_percentile(s, 90)),
        us(wl_stats_percentile(s, 99)), us(wl_stats_percentile(s, 99.9)),
        us(s->lat_max_ns), verified ? "true" : "false");
}
