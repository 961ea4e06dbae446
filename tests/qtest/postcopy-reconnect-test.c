/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A destination back-end killed with -9 while postcopy runs, and a new
 * one started on the same socket (the VMM's chardev reconnects): the
 * device must advise the new back-end again (POSTCOPY_ADVISE, a new
 * userfaultfd, POSTCOPY_LISTEN before its memory table and rings) and the
 * destination must poll that ufd, or the new back-end reads holes as
 * zeros, or blocks for good on a page not here yet.
 *   refbe  our back-end on both sides, a verified randrw workload on a
 *          blk device both back-ends share (inflight tracking on: what the
 *          killed one had in flight, the next one resubmits); the second
 *          destination back-end touches every page after its listening
 *          memory table (--postcopy-touch=listen), so it faults on pages
 *          still owed. Checked: migration completes, every block verifies,
 *          query-migrate counts the re-advised back-end and more back-end
 *          faults than before the kill, the second back-end reports faults
 *          of its own and was advised once.
 *   no-pagefault  as refbe, but the first back-end to come back has no
 *          PAGEFAULT (--no-postcopy): the device refuses it with an error
 *          naming it and the feature (it could not wait for missing
 *          pages), and once that one is gone too, a proper one is advised
 *          again and everything checks as for refbe.
 *   qsd    the same as refbe with qemu-storage-daemon (the VMM is the client, qsd
 *          the server): kill -9 the destination's qsd, start another on
 *          the same socket and image.
 *   before-listen  the destination's back-end killed during precopy, after
 *          POSTCOPY_ADVISE reached it, and a new one started before the
 *          switch: the device advises it again (not yet listening), and at
 *          POSTCOPY_LISTEN it listens like any other; its touch pass faults
 *          on pages still owed; everything checks as for refbe.
 *   absent-at-listen  the same kill, but no back-end at all at the switch:
 *          POSTCOPY_LISTEN and the guest's start (RUN: the device model
 *          loads, the back-end's migrated state is kept) go on without it,
 *          the migration is not failed; the back-end started then is
 *          advised and listens, takes the kept state, the migration
 *          completes and everything checks as for refbe.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "postcopy-harness.h"

#define IMAGE_SIZE          (64ull << 20)
#define SEED                17u
/* Large and filled: postcopy runs for seconds under PC_BW, time for a kill and a restart. */
#define RAM_MB              192

typedef enum Case {
    CASE_REFBE,
    CASE_NO_PAGEFAULT,
    CASE_QSD,
} Case;

typedef enum BeKind {
    BE_PLAIN,
    BE_TOUCH,           /* --postcopy-touch=listen */
    BE_NO_POSTCOPY,     /* --no-postcopy: no PAGEFAULT */
} BeKind;

static Proc *start_backend(Fixture *f, Case c, const char *name, const char *sock,
                           const char *disk, BeKind kind)
{
    static const char *const touch[] = { "--postcopy-touch=listen", NULL };
    static const char *const no_pc[] = { "--no-postcopy", NULL };

    if (c == CASE_QSD) {
        return proc_start_qsd_named(f, name, disk, sock, 2, true);
    }
    return pc_start_refbe(f, name, sock, disk, IMAGE_SIZE,
                          kind == BE_TOUCH ? touch : kind == BE_NO_POSTCOPY ? no_pc : NULL);
}

/* SIGKILL, reaped; its socket file outlives it: the next one's must be new. */
static void kill_backend(Proc *be, const char *sock)
{
    kill(be->pid, SIGKILL);
    proc_wait(be, TERM_WAIT_MS);
    unlink(sock);
}

/*
 * A back-end without PAGEFAULT came back while postcopy runs: the device
 * must refuse it, saying why, and not take it up.
 */
static bool refused_no_pagefault(Fixture *f, MigVmm *dst, const char *sock,
                                 const char *disk)
{
    static const char *const err = "reconnected while postcopy runs, but the new "
                                   "back-end does not offer PAGEFAULT";
    g_autofree char *log = NULL;
    Proc *be = start_backend(f, CASE_NO_PAGEFAULT, "be-dst-nopc", sock, disk,
                             BE_NO_POSTCOPY);

    if (!be || !wait_log(dst->proc, err, 1, MIG_WAIT_MS)) {
        return false;
    }
    log = proc_log(dst->proc);
    if (strstr(log, "the reconnected back-end was advised again")) {
        g_test_fail_printf("a back-end without PAGEFAULT was advised:\n%s", log);
        return false;
    }
    kill_backend(be, sock);
    return true;
}

/* The destination's query-migrate postcopy figure key now. */
static int64_t dst_figure(MigVmm *dst, const char *key)
{
    g_autoptr(JsonNode) r = mig_query(dst);

    return pc_figure(json_node_get_object(r), key);
}

/*
 * The second back-end of ours, stopped once the VMM ended: it was advised
 * once and its touch pass faulted on pages still owed.
 */
static bool check_second_refbe(Proc *be)
{
    g_autofree char *log = NULL;
    int64_t faults, advised;

    proc_stop(be);
    log = proc_log(be);
    /* Its exit report: the touch pass may still run at END, which stops it. */
    faults = pc_log_number(log, "postcopy: advised", "faults ");
    advised = pc_log_number(log, "postcopy: advised", "advised ");
    g_test_message("second destination back-end: advised %" PRId64 ", touch faults %"
                   PRId64, advised, faults);
    if (advised != 1 || faults <= 0) {
        g_test_fail_printf("the second destination back-end: advised %" PRId64 " times "
                           "(want 1), %" PRId64 " faults (want > 0):\n%s",
                           advised, faults, log);
        return false;
    }
    return true;
}

/* Both VMMs with a blk device on the shared image, each with a back-end of kind c. */
typedef struct Pair {
    char *disk;
    char *ds;           /* the destination back-end's socket */
    char *uri;
    MigVmm *src;
    MigVmm *dst;
    Proc *dbe;          /* the destination's first back-end */
} Pair;

static bool pair_start(Fixture *f, Case c, Pair *p)
{
    g_autofree char *ss = g_build_filename(f->dir, "blk-src.sock", NULL);
    /* The destination exits when it ends: it must outlast postcopy under ASan and load. */
    g_autofree char *wl = g_strdup_printf("blk0:rw=randrw,bs=4k,iodepth=8,runtime=20s,"
                                          "seed=%u", SEED);
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB, .fill = true, .shm_ram = true };
    MigVmmOpts dopts = { .ram_mb = RAM_MB, .incoming = "defer", .shm_ram = true };

    p->disk = g_build_filename(f->dir, "disk.raw", NULL);
    p->ds = g_build_filename(f->dir, "blk-dst.sock", NULL);
    p->uri = mig_unix_uri(f, "mig.sock");
    if (!mig_make_image(p->disk, IMAGE_SIZE) ||
        !start_backend(f, c, "be-src", ss, p->disk, BE_PLAIN) ||
        !(p->dbe = start_backend(f, c, "be-dst", p->ds, p->disk, BE_PLAIN))) {
        return false;
    }
    mig_add_blk(sa, ss, 2, wl);
    mig_add_blk(da, p->ds, 2, wl);
    return (p->src = mig_vmm_start(f, "src", &so, sa)) &&
           (p->dst = mig_vmm_start(f, "dst", &dopts, da));
}

static void pair_free(Pair *p)
{
    mig_vmm_free(p->src);
    mig_vmm_free(p->dst);
    g_free(p->disk);
    g_free(p->ds);
    g_free(p->uri);
}

/* The destination reached postcopy-active (not failed on the way). */
static bool wait_dst_postcopy(MigVmm *dst)
{
    g_autofree char *st = mig_wait_status(dst, "postcopy-active", MIG_WAIT_MS);

    if (st && strcmp(st, "postcopy-active") != 0) {
        g_test_fail_printf("the destination went %s instead of postcopy-active", st);
        return false;
    }
    return st != NULL;
}

/*
 * Postcopy runs seconds here: the destination's progress line (each
 * second) shows the faults and blocktime percentiles of both sides.
 */
static bool check_progress_line(MigVmm *dst)
{
    g_autofree char *log = proc_log(dst->proc);
    const char *l = strstr(log, "migration: postcopy, ");
    const char *eol = l ? strchr(l, '\n') : NULL;
    g_autofree char *line = l ? g_strndup(l, eol ? (size_t)(eol - l) : strlen(l)) : NULL;

    if (!line || !strstr(line, " pages missing, ") || !strstr(line, "; faults guest ") ||
        !strstr(line, "; blocktime p50/p99/max guest ") || !strstr(line, " us, back-end ")) {
        g_test_fail_printf("the destination's postcopy progress line lacks the faults or "
                           "blocktimes: %s\n%s", line ? line : "(none)", log);
        return false;
    }
    g_test_message("progress: %s", line);
    return true;
}

/* Both sides completed, the destination's figures and untouched RAM check. */
static bool pair_completed(Pair *p, bool need_backend)
{
    static const char *const dst_seq[] = { "setup", "active", "postcopy-active", "completed",
                                           NULL };

    /* Read as zeros or never served, the second back-end's pages would differ here. */
    return pc_wait_completed(p->src, p->dst, MIG_WAIT_MS, dst_seq) &&
           pc_check_dst_figures(p->dst, false, need_backend) &&
           pc_check_src(p->src, false) && pc_compare_unallocated(p->src, p->dst) &&
           check_progress_line(p->dst);
}

static void test_case(Fixture *f, Case c)
{
    Pair p = { 0 };
    MigVmm *dst;
    Proc *dbe2;
    int64_t faults0, faults1, missing0, readvised;

    if (!pair_start(f, c, &p) ||
        !pc_switch_midstream(p.src, p.dst, "blk0", p.uri, false) ||
        !wait_dst_postcopy(p.dst)) {
        goto out;
    }
    dst = p.dst;
    /* The guest runs on the destination: its back-end has requests in flight. */
    if (!wait_log(dst->proc, "migration: postcopy: guest running", 1, MIG_WAIT_MS)) {
        goto out;
    }
    faults0 = dst_figure(dst, "faults-backend");
    missing0 = dst_figure(dst, "pages-missing");
    kill_backend(p.dbe, p.ds);
    if (!wait_log(dst->proc, "blk0: disconnected", 1, MIG_WAIT_MS) ||
        (c == CASE_NO_PAGEFAULT && !refused_no_pagefault(f, dst, p.ds, p.disk)) ||
        !(dbe2 = start_backend(f, c, "be-dst2", p.ds, p.disk, BE_TOUCH)) ||
        !wait_log(dst->proc, "the reconnected back-end was advised again", 1,
                  MIG_WAIT_MS)) {
        goto out;
    }
    g_test_message("killed the destination's back-end with %" PRId64 " pages missing, %"
                   PRId64 " back-end faults; the new one was advised again", missing0,
                   faults0);
    if (!pair_completed(&p, c != CASE_QSD)) {
        goto out;
    }
    faults1 = dst_figure(dst, "faults-backend");
    readvised = dst_figure(dst, "backends-readvised");
    g_test_message("destination: back-end faults %" PRId64 " before the kill, %" PRId64
                   " at the end; back-ends re-advised %" PRId64, faults0, faults1,
                   readvised);
    /*
     * At least once: under load (the ASan build in make check) a connection
     * to the restarted back-end can drop during its bring-up, and the next
     * one is advised again too (seen: 2 with qemu-storage-daemon).
     */
    if (missing0 <= 0 || readvised < 1 || (c != CASE_QSD && faults1 <= faults0)) {
        g_test_fail_printf("pages missing at the kill %" PRId64 " (want > 0), back-ends "
                           "re-advised %" PRId64 " (want >= 1), back-end faults %" PRId64
                           " -> %" PRId64 " (want more after the kill)", missing0,
                           readvised, faults0, faults1);
        goto out;
    }
    if (mig_vmm_verified(dst, 1) && mig_check_image(p.disk, IMAGE_SIZE, SEED) &&
        c != CASE_QSD) {
        check_second_refbe(dbe2);
    }
out:
    pair_free(&p);
}

/*
 * The destination's back-end goes away between POSTCOPY_ADVISE and
 * POSTCOPY_LISTEN; absent: its successor comes only once the guest runs
 * on the destination, else before the switch.
 */
static void test_advise_listen(Fixture *f, bool absent)
{
    static const char *const no_be = "postcopy: no back-end at POSTCOPY_LISTEN";
    g_autofree char *dlog = NULL;
    Pair p = { 0 };
    MigVmm *dst;
    Proc *dbe2 = NULL;

    if (!pair_start(f, CASE_REFBE, &p) ||
        !pc_precopy_midstream(p.src, p.dst, "blk0", p.uri, false) ||
        !wait_log(p.dbe, "postcopy advised: userfaultfd created", 1, MIG_WAIT_MS)) {
        goto out;
    }
    dst = p.dst;
    kill_backend(p.dbe, p.ds);
    if (!wait_log(dst->proc, "blk0: disconnected", 1, MIG_WAIT_MS)) {
        goto out;
    }
    if (!absent &&
        (!(dbe2 = start_backend(f, CASE_REFBE, "be-dst2", p.ds, p.disk, BE_TOUCH)) ||
         !wait_log(dst->proc, "the reconnected back-end was advised again", 1,
                   MIG_WAIT_MS))) {
        goto out;
    }
    if (!pc_start_postcopy(p.src) || !wait_dst_postcopy(dst)) {
        goto out;
    }
    /* The guest starts without its back-end; the next one is advised and listens. */
    if (absent &&
        (!wait_log(dst->proc, no_be, 1, MIG_WAIT_MS) ||
         !wait_log(dst->proc, "migration: postcopy: guest running", 1, MIG_WAIT_MS) ||
         !(dbe2 = start_backend(f, CASE_REFBE, "be-dst2", p.ds, p.disk, BE_TOUCH)) ||
         !wait_log(dst->proc, "was advised again and listens", 1, MIG_WAIT_MS))) {
        goto out;
    }
    if (!pair_completed(&p, true)) {
        goto out;
    }
    dlog = proc_log(dst->proc);
    if (!absent && strstr(dlog, no_be)) {
        g_test_fail_printf("a back-end was there at the switch, but the destination "
                           "says:\n%s", dlog);
        goto out;
    }
    if (absent && !strstr(dlog, "went to the reconnected back-end")) {
        g_test_fail_printf("the migrated back-end state did not go to the back-end that "
                           "came after the guest started:\n%s", dlog);
        goto out;
    }
    if (mig_vmm_verified(dst, 1) && mig_check_image(p.disk, IMAGE_SIZE, SEED)) {
        check_second_refbe(dbe2);
    }
out:
    pair_free(&p);
}

static void test_before_listen(Fixture *f, gconstpointer data)
{
    test_advise_listen(f, false);
}

static void test_absent_at_listen(Fixture *f, gconstpointer data)
{
    test_advise_listen(f, true);
}

static void test_refbe(Fixture *f, gconstpointer data)
{
    test_case(f, CASE_REFBE);
}

static void test_no_pagefault(Fixture *f, gconstpointer data)
{
    test_case(f, CASE_NO_PAGEFAULT);
}

static void test_qsd(Fixture *f, gconstpointer data)
{
    if (require_program("qemu-storage-daemon", "qemu-system-common")) {
        test_case(f, CASE_QSD);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/postcopy-reconnect/refbe", Fixture, NULL, fixture_setup, test_refbe,
               fixture_teardown);
    g_test_add("/postcopy-reconnect/no-pagefault", Fixture, NULL, fixture_setup,
               test_no_pagefault, fixture_teardown);
    g_test_add("/postcopy-reconnect/qsd", Fixture, NULL, fixture_setup, test_qsd,
               fixture_teardown);
    g_test_add("/postcopy-reconnect/before-listen", Fixture, NULL, fixture_setup,
               test_before_listen, fixture_teardown);
    g_test_add("/postcopy-reconnect/absent-at-listen", Fixture, NULL, fixture_setup,
               test_absent_at_listen, fixture_teardown);
    return g_test_run();
}
