/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy live migration between two VMM processes with our reference
 * back-end (contrib/vhost-user-backend, PAGEFAULT) on both sides: a blk
 * device on one disk file both back-ends share, a verified randrw
 * workload, migrate-start-postcopy in the middle of the first round:
 *   listen-touch  the destination's back-end touches every page of guest
 *                 RAM right after POSTCOPY_LISTEN (--postcopy-touch=listen):
 *                 it faults on the pages still owed, the destination serves
 *                 them; the back-end reports faults, query-migrate counts
 *                 them as the back-end's, the workload verifies
 *   reply-touch   --postcopy-touch=reply: the back-end faults on ring pages
 *                 while the front-end waits for its reply (SET_VRING_ADDR,
 *                 VRING_KICK, GET_VRING_BASE); no reply times out (10 s),
 *                 the whole migration takes a fraction of that
 *   guest-fresh   a larger guest RAM than the workload uses, filled on the
 *                 source: the guest faults on pages it owes, and every page
 *                 the guest never hands out (above its allocator's bump
 *                 pointer) arrives in the background equal to the source's
 *   slots-listen  listen-touch with --mem-slots on both back-ends (the
 *                 destination's first listening table goes whole)
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "postcopy-harness.h"

#define IMAGE_SIZE          (64ull << 20)
#define SEED                13u
#define RAM_MB              64
#define FRESH_RAM_MB        192
/* The front-end's wait for a back-end's reply (hw/virtio/vhost-user.c). */
#define REPLY_TIMEOUT_MS    10000

/*
 * The destination's back-end, stopped after the VMM ended: its exit report
 * counts faults (> 0).
 */
static bool check_backend_faults(Proc *be)
{
    g_autofree char *log = NULL;
    int64_t faults;

    proc_stop(be);
    log = proc_log(be);
    faults = pc_log_number(log, "postcopy: advised", "faults ");
    g_test_message("destination back-end: %" PRId64 " faults", faults);
    if (faults <= 0) {
        g_test_fail_printf("the destination's back-end reports no fault (%" PRId64 "):\n%s",
                           faults, log);
        return false;
    }
    return true;
}

/* The destination's migration total-time (ms), or -1. */
static int64_t dst_total_ms(MigVmm *dst)
{
    g_autoptr(JsonNode) r = mig_query(dst);
    JsonObject *q = json_node_get_object(r);

    return json_object_has_member(q, "total-time") ?
           json_object_get_int_member(q, "total-time") : -1;
}

typedef enum Case {
    CASE_LISTEN,
    CASE_REPLY,
    CASE_FRESH,
    CASE_SLOTS,
} Case;

static void test_case(Fixture *f, Case c)
{
    static const char *const listen[] = { "--postcopy-touch=listen", NULL };
    static const char *const reply[] = { "--postcopy-touch=reply", NULL };
    static const char *const slots[] = { "--mem-slots", NULL };
    static const char *const slots_listen[] = { "--mem-slots", "--postcopy-touch=listen",
                                                NULL };
    const char *const *src_extra = c == CASE_SLOTS ? slots : NULL;
    const char *const *dst_extra = c == CASE_LISTEN ? listen : c == CASE_REPLY ? reply :
                                   c == CASE_SLOTS ? slots_listen : NULL;
    unsigned ram_mb = c == CASE_FRESH ? FRESH_RAM_MB : RAM_MB;
    g_autofree char *disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *ss = g_build_filename(f->dir, "blk-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "blk-dst.sock", NULL);
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *wl = g_strdup_printf("blk0:rw=randrw,bs=4k,iodepth=8,runtime=6s,"
                                          "seed=%u", SEED);
    g_autofree char *dlog = NULL;
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = ram_mb, .fill = true, .shm_ram = true };
    MigVmmOpts dopts = { .ram_mb = ram_mb, .incoming = "defer", .shm_ram = true };
    MigVmm *src = NULL, *dst = NULL;
    Proc *dbe;
    int64_t total;

    if (!mig_make_image(disk, IMAGE_SIZE) ||
        !pc_start_refbe(f, "refbe-src", ss, disk, IMAGE_SIZE, src_extra) ||
        !(dbe = pc_start_refbe(f, "refbe-dst", ds, disk, IMAGE_SIZE, dst_extra))) {
        return;
    }
    mig_add_blk(sa, ss, 2, wl);
    mig_add_blk(da, ds, 2, wl);
    if (!(src = mig_vmm_start(f, "src", &so, sa)) ||
        !(dst = mig_vmm_start(f, "dst", &dopts, da)) ||
        !pc_migrate_postcopy(src, dst, "blk0", uri, false) ||
        !pc_check_dst_figures(dst, c == CASE_FRESH, c != CASE_FRESH) ||
        !pc_check_src(src, c == CASE_FRESH)) {
        goto out;
    }
    total = dst_total_ms(dst);
    g_test_message("destination: total-time %" PRId64 " ms", total);
    if (c == CASE_REPLY) {
        dlog = proc_log(dst->proc);
        if (total < 0 || total >= REPLY_TIMEOUT_MS / 2 || strstr(dlog, "timed out") ||
            strstr(dlog, "reply")) {
            g_test_fail_printf("reply-touch: total-time %" PRId64 " ms (want < %u) or a "
                               "reply error:\n%s", total, REPLY_TIMEOUT_MS / 2, dlog);
            goto out;
        }
    }
    if (c == CASE_FRESH && !pc_compare_unallocated(src, dst)) {
        goto out;
    }
    if (mig_vmm_verified(dst, 1) && mig_check_image(disk, IMAGE_SIZE, SEED) &&
        c != CASE_FRESH) {
        check_backend_faults(dbe);
    }
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

static void test_listen(Fixture *f, gconstpointer data)
{
    test_case(f, CASE_LISTEN);
}

static void test_reply(Fixture *f, gconstpointer data)
{
    test_case(f, CASE_REPLY);
}

static void test_fresh(Fixture *f, gconstpointer data)
{
    test_case(f, CASE_FRESH);
}

static void test_slots(Fixture *f, gconstpointer data)
{
    test_case(f, CASE_SLOTS);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/postcopy/listen-touch", Fixture, NULL, fixture_setup, test_listen,
               fixture_teardown);
    g_test_add("/postcopy/reply-touch", Fixture, NULL, fixture_setup, test_reply,
               fixture_teardown);
    g_test_add("/postcopy/guest-fresh", Fixture, NULL, fixture_setup, test_fresh,
               fixture_teardown);
    g_test_add("/postcopy/slots-listen", Fixture, NULL, fixture_setup, test_slots,
               fixture_teardown);
    return g_test_run();
}
