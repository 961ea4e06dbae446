/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the postcopy tests between two VMMs share (real-postcopy-test with
 * real back-ends, postcopy-test with ours, postcopy-recover-test): the
 * destination's query-migrate postcopy figures, the switch in the middle
 * of the first round, the checks of both sides after completion, our
 * back-end's start and its log figures, the untouched RAM compared.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "guest/virtio-guest.h"
#include "postcopy-harness.h"

/* query-migrate's postcopy.key on the destination, or -1. */
/* Member key of query-migrate's "postcopy" object, NULL when either is absent. */
static JsonNode *pc_member(JsonObject *q, const char *key)
{
    JsonObject *pc = json_object_has_member(q, "postcopy") ?
                     json_object_get_object_member(q, "postcopy") : NULL;

    return pc && json_object_has_member(pc, key) ? json_object_get_member(pc, key) : NULL;
}

int64_t pc_figure(JsonObject *q, const char *key)
{
    JsonNode *n = pc_member(q, key);

    return n ? json_node_get_int(n) : -1;
}

static const char *pc_string(JsonObject *q, const char *key)
{
    JsonNode *n = pc_member(q, key);

    return n ? json_node_get_string(n) : NULL;
}

/*
 * Capability on both sides, the destination listens, the source migrates
 * under max-bandwidth and is in the middle of its first round (POSTCOPY_ADVISE
 * sent); auto: with x-postcopy-auto and a downtime-limit that the rounds
 * never meet, so it switches by itself.
 */
bool pc_precopy_midstream(MigVmm *src, MigVmm *dst, const char *dev, const char *uri,
                          bool autoswitch)
{
    g_autofree char *started = g_strdup_printf("%s: workload started", dev);

    if (!mig_set_postcopy(src, true) || !mig_set_postcopy(dst, true) ||
        !mig_incoming(dst, uri) ||
        !wait_log(src->proc, started, 1, MIG_WAIT_MS) ||
        !wait_log(dst->proc, "migration: incoming from", 1, MIG_WAIT_MS)) {
        return false;
    }
    /* A downtime-limit of 0: the rounds never converge. */
    mig_set_params(src, PC_BW, autoswitch ? 0 : -1);
    if (autoswitch) {
        json_node_unref(qmp_client_ok(src->qmp, "{\"execute\":\"migrate-set-parameters\","
                                      "\"arguments\":{\"x-postcopy-auto\":true}}"));
    }
    if (!mig_migrate(src, uri) || !mig_wait_midstream(src, 4u << 20, MIG_WAIT_MS)) {
        g_autofree char *dlog = proc_log(dst->proc);

        g_test_message("destination:\n%s", dlog);
        return false;
    }
    if (!mig_expect_error(src, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
                          "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":false}]}}",
                          "migration process in progress")) {
        return false;
    }
    return true;
}

bool pc_start_postcopy(MigVmm *src)
{
    g_autofree char *err = mig_qmp_error(src, "{\"execute\":\"migrate-start-postcopy\"}");

    if (err) {
        g_test_fail_printf("migrate-start-postcopy refused mid-stream: %s", err);
        return false;
    }
    return true;
}

bool pc_switch_midstream(MigVmm *src, MigVmm *dst, const char *dev, const char *uri,
                         bool autoswitch)
{
    return pc_precopy_midstream(src, dst, dev, uri, autoswitch) &&
           (autoswitch || pc_start_postcopy(src));
}

bool pc_wait_completed(MigVmm *src, MigVmm *dst, unsigned src_timeout_ms,
                       const char *const *dst_seq)
{
    g_autofree char *st = NULL;
    g_autofree char *dst_st = NULL;

    if (!(st = mig_wait_status(src, "completed", src_timeout_ms)) ||
        !(dst_st = mig_wait_status(dst, "completed", MIG_WAIT_MS))) {
        return false;
    }
    if (strcmp(st, "completed") != 0 || strcmp(dst_st, "completed") != 0) {
        g_autofree char *log = proc_log(src->proc);
        g_autofree char *dlog = proc_log(dst->proc);

        g_test_fail_printf("postcopy ended %s (destination %s); source:\n%s\n"
                           "destination:\n%s", st, dst_st, log, dlog);
        return false;
    }
    /* The source exits once its guest left: its side is checked in its log (pc_check_src). */
    if (!mig_events_in_order(dst, dst_seq)) {
        g_autofree char *de = mig_events_str(dst);

        g_test_fail_printf("the destination's MIGRATION events: %s", de);
        return false;
    }
    return true;
}

const char *const pc_dst_events[] = { "setup", "active", "postcopy-active", "completed",
                                      NULL };

bool pc_migrate_postcopy(MigVmm *src, MigVmm *dst, const char *dev, const char *uri,
                         bool autoswitch)
{
    return pc_switch_midstream(src, dst, dev, uri, autoswitch) &&
           pc_wait_completed(src, dst, MIG_WAIT_MS, pc_dst_events);
}

/*
 * One side's (guest: the vCPUs, backend: the back-ends) blocktime in
 * query-migrate: its own per-fault percentiles in order, the total at
 * least the longest fault; with need, faults that blocked (max > 0).
 */
static bool pc_check_side_times(JsonObject *q, const char *side, bool need)
{
    g_autofree char *k_total = g_strdup_printf("blocktime-%s-us", side);
    g_autofree char *k50 = g_strdup_printf("%s-p50-us", side);
    g_autofree char *k90 = g_strdup_printf("%s-p90-us", side);
    g_autofree char *k99 = g_strdup_printf("%s-p99-us", side);
    g_autofree char *kmax = g_strdup_printf("%s-max-us", side);
    int64_t total = pc_figure(q, k_total), p50 = pc_figure(q, k50), p90 = pc_figure(q, k90);
    int64_t p99 = pc_figure(q, k99), max = pc_figure(q, kmax);

    g_test_message("%s blocktime: total %" PRId64 " us, p50/p90/p99/max %" PRId64 "/%"
                   PRId64 "/%" PRId64 "/%" PRId64 " us", side, total, p50, p90, p99, max);
    return p50 >= 0 && p50 <= p90 && p90 <= p99 && p99 <= max && max <= total &&
           (!need || max > 0);
}

/*
 * The destination's postcopy figures after completion: nothing missing,
 * faults of the guest served by requests, and (need_backend) faults of
 * the back-end too.
 */
bool pc_check_dst_figures(MigVmm *dst, bool need_guest, bool need_backend)
{
    g_autoptr(JsonNode) r = mig_query(dst);
    JsonObject *q = json_node_get_object(r);
    g_autofree char *j = json_to_string(r, FALSE);
    int64_t missing = pc_figure(q, "pages-missing");
    int64_t placed = pc_figure(q, "pages-placed");
    int64_t requests = pc_figure(q, "requests");
    int64_t fg = pc_figure(q, "faults-guest");
    int64_t fb = pc_figure(q, "faults-backend");

    g_test_message("destination: %s", j);
    if (!pc_check_side_times(q, "guest", need_guest) ||
        !pc_check_side_times(q, "backend", need_backend)) {
        g_test_fail_printf("destination's postcopy blocktime figures: %s", j);
        return false;
    }
    /*
     * The fault thread under the default x-postcopy-fault-sched (auto):
     * SCHED_FIFO, since the tests run as root.
     */
    if (g_strcmp0(pc_string(q, "fault-sched"), "fifo") != 0) {
        g_test_fail_printf("destination's postcopy fault-sched: want \"fifo\" (root, "
                           "x-postcopy-fault-sched auto): %s", j);
        return false;
    }
    if (missing != 0 || placed <= 0 || (need_guest && (fg <= 0 || requests <= 0)) ||
        (need_backend && fb <= 0)) {
        g_test_fail_printf("destination's postcopy figures: missing %" PRId64 ", placed %"
                           PRId64 ", requests %" PRId64 ", guest faults %" PRId64
                           ", back-end faults %" PRId64 " (want 0, > 0%s%s): %s", missing,
                           placed, requests, fg, fb, need_guest ? ", > 0, > 0" : "",
                           need_backend ? ", > 0" : "", j);
        return false;
    }
    return true;
}

/*
 * The source switched to postcopy, served page requests when asked to
 * (need_requests; its last status lines: it exits by itself once its
 * guest left) and ended 0.
 */
bool pc_check_src(MigVmm *src, bool need_requests)
{
    g_autofree char *log = NULL;
    const char *line;
    uint64_t served = UINT64_MAX;
    int code = -1;

    if (!mig_vmm_end(src, &code, NULL, &log)) {
        return false;
    }
    if (code != 0) {
        g_test_fail_printf("the source exited %d after a completed migration:\n%s", code, log);
        return false;
    }
    for (line = log; (line = strstr(line, "migration: postcopy: ")); line++) {
        if (sscanf(line, "migration: postcopy: %" SCNu64 " page requests served",
                   &served) == 1) {
            break;
        }
    }
    if (!line || (need_requests && !served) || !strstr(log, "after postcopy") ||
        !strstr(log, "migration: switching to postcopy")) {
        g_test_fail_printf("source: no postcopy completion with page requests served:\n%s",
                           log);
        return false;
    }
    g_test_message("source: %" PRIu64 " page requests served", served);
    return true;
}

int64_t pc_log_number(const char *log, const char *line, const char *key)
{
    const char *last = NULL, *k;
    const char *eol;

    for (const char *s = log; (s = strstr(s, line)); s++) {
        last = s;
    }
    if (!last) {
        return -1;
    }
    eol = strchr(last, '\n');
    k = strstr(last, key);
    if (!k || (eol && k > eol)) {
        return -1;
    }
    return g_ascii_strtoll(k + strlen(key), NULL, 10);
}

Proc *pc_start_refbe(Fixture *f, const char *name, const char *sock, const char *disk,
                     uint64_t size, const char *const *extra)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    Proc *p;

    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return NULL;
    }
    g_ptr_array_add(argv, g_strdup(be));
    g_ptr_array_add(argv, g_strdup_printf("--socket-path=%s", sock));
    g_ptr_array_add(argv, g_strdup("--type=blk"));
    g_ptr_array_add(argv, g_strdup("--queues=2"));
    g_ptr_array_add(argv, g_strdup_printf("--blk-file=%s", disk));
    g_ptr_array_add(argv, g_strdup_printf("--blk-size=%" PRIu64, size));
    for (; extra && *extra; extra++) {
        g_ptr_array_add(argv, g_strdup(*extra));
    }
    p = proc_spawn(f, name, argv, false, NULL);
    return p && wait_socket(p, sock) ? p : NULL;
}

/*
 * Pages [bump pointer of the destination guest's allocator, end of RAM):
 * the guest never handed them out, nothing wrote them after the switch,
 * so they must hold what the source sent (filled: not zero).
 */
bool pc_compare_unallocated(MigVmm *src, MigVmm *dst)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    GuestAllocHeader h;
    uint8_t *a = MAP_FAILED, *b = MAP_FAILED;
    int fa = open(src->ram_path, O_RDONLY), fb = open(dst->ram_path, O_RDONLY);
    uint64_t from, diff = 0, first = 0, zero = 0;
    bool ok = false;

    if (fa < 0 || fb < 0 || src->ram_size != dst->ram_size ||
        pread(fb, &h, sizeof(h), GUEST_ALLOC_BASE) != sizeof(h) ||
        h.magic != GUEST_ALLOC_MAGIC || h.next > dst->ram_size) {
        g_test_fail_printf("cannot read the RAM files or the destination's allocator header");
        goto out;
    }
    a = mmap(NULL, src->ram_size, PROT_READ, MAP_SHARED, fa, 0);
    b = mmap(NULL, dst->ram_size, PROT_READ, MAP_SHARED, fb, 0);
    if (a == MAP_FAILED || b == MAP_FAILED) {
        g_test_fail_printf("cannot map the RAM files");
        goto out;
    }
    from = (h.next + pg - 1) & ~(uint64_t)(pg - 1);
    for (uint64_t off = from; off < dst->ram_size; off += pg) {
        if (memcmp(a + off, b + off, pg)) {
            first = diff++ ? first : off;
        }
        zero += a[off] == 0 && !memcmp(a + off, a + off + 1, pg - 1);
    }
    g_test_message("unallocated 0x%" PRIx64 "..0x%" PRIx64 ": %" PRIu64 " pages differ, %"
                   PRIu64 " zero", from, dst->ram_size, diff, zero);
    if (from >= dst->ram_size / 2 || diff || zero) {
        g_test_fail_printf("pages above the guest's allocator (0x%" PRIx64 "): %" PRIu64
                           " differ (first at 0x%" PRIx64 "), %" PRIu64 " are zero on the "
                           "source (want 0, 0, and at least half of RAM)", from, diff, first,
                           zero);
        goto out;
    }
    ok = true;
out:
    if (a != MAP_FAILED) {
        munmap(a, src->ram_size);
    }
    if (b != MAP_FAILED) {
        munmap(b, dst->ram_size);
    }
    if (fa >= 0) {
        close(fa);
    }
    if (fb >= 0) {
        close(fb);
    }
    return ok;
}
