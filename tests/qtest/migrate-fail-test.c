/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live migration when something goes wrong. Each case ends with the
 * source VMM still running its guest: its workload (when it has one)
 * completes and verifies, and it exits cleanly (no sanitizer report in
 * the ASan build).
 *   no-log-shmfd    a back-end without LOG_SHMFD blocks migrate at once,
 *                   naming the device; nothing reaches the destination
 *   no-pagefault    the same for one without PAGEFAULT when capability
 *                   postcopy-ram is on
 *   ram-size        the destination has less RAM: it refuses the stream
 *                   naming the block and both sizes and exits 1; the
 *                   source ends failed and resumes
 *   dest-killed     the destination dies (SIGKILL) mid-stream
 *   cancel          migrate_cancel mid-stream: cancelling, cancelled
 *   log-start-drop  the back-end hangs up on SET_LOG_BASE
 *   log-stop-drop   the back-end hangs up on the SET_FEATURES that ends
 *                   logging (after a cancel)
 * The slow stream comes from max-bandwidth over guest RAM without zero
 * pages (-x-fill-pattern).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "migrate-harness.h"
#include "test-backend.h"

#define SLOW_BPS            (16ll << 20)    /* 128 MiB of RAM takes 8 s */
#define SLOW_RAM_MB         128
#define BLK_SIZE            (64ull << 20)
#define WORKLOAD            "blk0:rw=randrw,bs=4k,iodepth=8,runtime=5s"

/* ---- common --------------------------------------------------------- */

static GPtrArray *blk_args(const char *sock)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);

    mig_add_blk(a, sock, 2, WORKLOAD);
    return a;
}

static GPtrArray *net_args(const char *sock)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);

    mig_add_net(a, sock, 1, NULL);
    return a;
}

/*
 * Source and destination VMMs with a block device each on our reference
 * back-end, both back-ends on one disk file (shared storage), the same
 * workload on both; the source's workload has started.
 */
typedef struct Pair {
    MigVmm *src, *dst;
    char *uri;
} Pair;

static bool pair_start(Fixture *f, Pair *p, const MigVmmOpts *so, MigVmmOpts *dopts)
{
    g_autofree char *disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *ss = g_build_filename(f->dir, "blk-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "blk-dst.sock", NULL);
    g_autoptr(GPtrArray) sa = blk_args(ss);
    g_autoptr(GPtrArray) da = blk_args(ds);

    p->uri = mig_unix_uri(f, "mig.sock");
    dopts->incoming = p->uri;
    if (!proc_start_ref(f, "blk-src", "blk", ss, 2, disk, BLK_SIZE, false) ||
        !proc_start_ref(f, "blk-dst", "blk", ds, 2, disk, BLK_SIZE, false) ||
        !(p->src = mig_vmm_start(f, "src", so, sa)) ||
        !(p->dst = mig_vmm_start(f, "dst", dopts, da))) {
        return false;
    }
    return wait_log(p->src->proc, "blk0: workload started", 1, MIG_WAIT_MS) &&
           wait_log(p->dst->proc, "migration: incoming from", 1, MIG_WAIT_MS);
}

static void pair_free(Pair *p)
{
    mig_vmm_free(p->src);
    mig_vmm_free(p->dst);
    g_free(p->uri);
}

/* The source after a failed or cancelled migration: running, and its workload verifies. */
static bool source_resumed(MigVmm *src)
{
    g_autofree char *rs = mig_run_state(src);

    if (strcmp(rs, "running") != 0) {
        g_test_fail_printf("source: run state %s after the migration ended, not running",
                           rs);
        return false;
    }
    return mig_vmm_verified(src, 1);
}

/* The destination exits non-zero by itself. */
static bool dest_gave_up(MigVmm *dst, char **log)
{
    int code = -1;

    if (!mig_vmm_end(dst, &code, NULL, log)) {
        return false;
    }
    if (code == 0) {
        g_test_fail_printf("the destination exited 0 without a guest:\n%s", *log);
        return false;
    }
    return true;
}

/* SIGTERM: exit 0 and no sanitizer report. */
static bool stops_cleanly(MigVmm *v)
{
    g_autofree char *log = NULL;
    int code = -1;

    kill(v->proc->pid, SIGTERM);
    if (!mig_vmm_end(v, &code, NULL, &log)) {
        return false;
    }
    if (code != 0 || strstr(log, "Sanitizer") || strstr(log, "runtime error")) {
        g_test_fail_printf("%s: exit %d after SIGTERM:\n%s", v->name, code, log);
        return false;
    }
    return true;
}

static int vmm_fds(MigVmm *v)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/fd", (int)v->proc->pid);
    GDir *d = g_dir_open(path, 0, NULL);
    int n = 0;

    if (!d) {
        return -1;
    }
    while (g_dir_read_name(d)) {
        n++;
    }
    g_dir_close(d);
    return n;
}

/* ---- a blocker ------------------------------------------------------ */

/* A listening socket nobody should connect to; -1 on failure. */
static int listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4)) {
        g_test_fail_printf("listen on %s: %s", path, g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* migrate's error desc, or NULL when it was accepted. */
static char *migrate_error(MigVmm *v, const char *uri)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(v->qmp, "{\"execute\":\"migrate\","
                                           "\"arguments\":{\"uri\":\"%s\"}}", uri);
    JsonObject *o = json_node_get_object(r);
    JsonObject *e = json_object_has_member(o, "error")
                    ? json_object_get_object_member(o, "error") : NULL;

    return e ? g_strdup(json_object_get_string_member(e, "desc")) : NULL;
}

static void migrate_cancel(MigVmm *v)
{
    json_node_unref(qmp_client_ok(v->qmp, "{\"execute\":\"migrate_cancel\"}"));
}

/* data 0: no LOG_SHMFD; 1: LOG_SHMFD but no PAGEFAULT, with postcopy-ram on. */
static void test_no_log_shmfd(Fixture *f, gconstpointer data)
{
    bool postcopy = GPOINTER_TO_INT(data);
    const char *lacks = postcopy ? "PAGEFAULT" : "LOG_SHMFD";
    g_autofree char *lpath = g_build_filename(f->dir, "dst.sock", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s", lpath);
    g_autofree char *desc = NULL;
    g_autofree char *st = NULL;
    g_autofree char *rs = NULL;
    g_autoptr(GPtrArray) args = NULL;
    TbConfig cfg;
    TestBackend *tb;
    MigVmmOpts o = { 0 };
    MigVmm *src = NULL;
    int lfd = -1, c;


    tb_config_default(&cfg);
    /* Logging in SET_FEATURES, but no shared-memory log to log into. */
    cfg.features |= 1ull << VHOST_F_LOG_ALL;
    if (postcopy) {
        cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD;
    }
    tb = tb_new(f->dir, "vhost.sock", &cfg);
    args = net_args(tb_socket_path(tb));
    if (!(src = mig_vmm_start(f, "src", &o, args)) ||
        !wait_log(src->proc, "net0: started", 1, MIG_WAIT_MS) ||
        (postcopy && !mig_set_postcopy(src, true)) ||
        (lfd = listen_unix(lpath)) < 0) {
        goto out;
    }
    desc = migrate_error(src, uri);
    if (!desc) {
        g_test_fail_printf("migrate accepted with a back-end that lacks %s", lacks);
        migrate_cancel(src);
        goto out;
    }
    g_test_message("migrate refused: %s", desc);
    if (!strstr(desc, "net0") || !strstr(desc, lacks)) {
        g_test_fail_printf("the refusal does not name the device and %s: %s", lacks, desc);
    }
    st = mig_status(src);
    if (!strcmp(st, "setup") || !strcmp(st, "active") || !strcmp(st, "completed")) {
        g_test_fail_printf("migration status %s after a refused migrate", st);
    }
    /* Nothing was sent: no connection, no logging, rings untouched. */
    g_usleep(200 * 1000);
    c = accept(lfd, NULL, NULL);
    if (c >= 0) {
        close(c);
        g_test_fail_printf("the source connected to the destination after a refusal");
    }
    if (tb_msg_count(tb, 1, VHOST_USER_SET_LOG_BASE) ||
        tb_msg_count(tb, 1, VHOST_USER_GET_VRING_BASE) || tb_conn_count(tb) != 1) {
        g_test_fail_printf("the back-end was touched: %u SET_LOG_BASE, %u GET_VRING_BASE, "
                           "%u connections", tb_msg_count(tb, 1, VHOST_USER_SET_LOG_BASE),
                           tb_msg_count(tb, 1, VHOST_USER_GET_VRING_BASE),
                           tb_conn_count(tb));
    }
    rs = mig_run_state(src);
    if (strcmp(rs, "running") != 0) {
        g_test_fail_printf("run state %s after a refused migrate", rs);
    }
    stops_cleanly(src);
    tb_assert_no_violations(tb);
out:
    if (lfd >= 0) {
        close(lfd);
    }
    mig_vmm_free(src);
    tb_free(tb);
}

/* ---- the destination fails ------------------------------------------ */

static void test_ram_size(Fixture *f, gconstpointer data)
{
    MigVmmOpts so = { .ram_mb = 256 };
    MigVmmOpts dopts = { .ram_mb = 128 };
    g_autofree char *st = NULL;
    g_autofree char *dlog = NULL;
    Pair p = { 0 };


    if (!pair_start(f, &p, &so, &dopts) || !mig_migrate(p.src, p.uri)) {
        goto out;
    }
    st = mig_wait_status(p.src, "failed", MIG_WAIT_MS);
    if (!st) {
        goto out;
    }
    if (strcmp(st, "failed") != 0) {
        g_test_fail_printf("source status %s with a smaller destination", st);
        goto out;
    }
    if (!dest_gave_up(p.dst, &dlog)) {
        goto out;
    }
    if (!strstr(dlog, "ram0") || !strstr(dlog, "268435456") || !strstr(dlog, "134217728")) {
        g_test_fail_printf("the destination's refusal does not name the block and both "
                           "sizes:\n%s", dlog);
    }
    source_resumed(p.src);
out:
    pair_free(&p);
}

/* Both sides with a slow stream, the source's migration in the middle. */
static bool slow_midstream(Fixture *f, Pair *p)
{
    MigVmmOpts so = { .ram_mb = SLOW_RAM_MB, .fill = true };
    MigVmmOpts dopts = { .ram_mb = SLOW_RAM_MB, .fill = true };

    if (!pair_start(f, p, &so, &dopts)) {
        return false;
    }
    mig_set_params(p->src, SLOW_BPS, -1);
    return mig_migrate(p->src, p->uri) && mig_wait_midstream(p->src, 4 << 20, MIG_WAIT_MS);
}

static void test_dest_killed(Fixture *f, gconstpointer data)
{
    g_autofree char *st = NULL;
    Pair p = { 0 };


    if (!slow_midstream(f, &p)) {
        goto out;
    }
    kill(p.dst->proc->pid, SIGKILL);
    st = mig_wait_status(p.src, "failed", MIG_WAIT_MS);
    if (st && strcmp(st, "failed") != 0) {
        g_test_fail_printf("source status %s after the destination died", st);
    } else if (st) {
        wait_log(p.src->proc, "migration: failed", 1, MIG_WAIT_MS);
        source_resumed(p.src);
    }
out:
    pair_free(&p);
}

static void test_cancel(Fixture *f, gconstpointer data)
{
    const char *const seq[] = { "setup", "active", "cancelling", "cancelled", NULL };
    g_autofree char *st = NULL;
    g_autofree char *ev = NULL;
    g_autofree char *dlog = NULL;
    Pair p = { 0 };


    if (!slow_midstream(f, &p)) {
        goto out;
    }
    migrate_cancel(p.src);
    st = mig_wait_status(p.src, "cancelled", MIG_WAIT_MS);
    if (!st) {
        goto out;
    }
    ev = mig_events_str(p.src);
    if (strcmp(st, "cancelled") != 0 || !mig_events_in_order(p.src, seq)) {
        g_test_fail_printf("after migrate_cancel: status %s, MIGRATION events %s", st, ev);
        goto out;
    }
    g_test_message("MIGRATION events: %s", ev);
    if (wait_log(p.src->proc, "migration: cancelled", 1, MIG_WAIT_MS) &&
        dest_gave_up(p.dst, &dlog)) {
        source_resumed(p.src);
    }
out:
    pair_free(&p);
}

/* ---- the back-end hangs up while logging starts or stops ------------ */

typedef struct DropCtx {
    bool stop;                  /* drop when logging stops, not when it starts */
    bool logging;               /* LOG_ALL was acked on connection 1 */
} DropCtx;

static TbAction drop_hook(TestBackend *tb, unsigned conn, const TbMsg *msg, void *opaque)
{
    DropCtx *d = opaque;
    TbAction a = { .fault = TB_FAULT_NONE };
    uint64_t features;

    if (conn != 1) {
        return a;
    }
    if (!d->stop && msg->request == VHOST_USER_SET_LOG_BASE) {
        a.fault = TB_FAULT_DROP;
    } else if (d->stop && msg->request == VHOST_USER_SET_FEATURES &&
               msg->size >= sizeof(features)) {
        memcpy(&features, msg->payload, sizeof(features));
        if (features & (1ull << VHOST_F_LOG_ALL)) {
            d->logging = true;
        } else if (d->logging) {
            a.fault = TB_FAULT_DROP;
        }
    }
    return a;
}

/* query-migrate's error-desc names both a and b (the device and the message). */
static bool error_desc_names(MigVmm *v, const char *a, const char *b)
{
    g_autoptr(JsonNode) r = mig_query(v);
    JsonObject *o = json_node_get_object(r);
    const char *desc = json_object_has_member(o, "error-desc")
                       ? json_object_get_string_member(o, "error-desc") : "";

    if (!strstr(desc, a) || !strstr(desc, b)) {
        g_test_fail_printf("%s: error-desc \"%s\" does not name %s and %s", v->name, desc,
                           a, b);
        return false;
    }
    return true;
}

typedef struct FdWait {
    MigVmm *v;
    int max;
} FdWait;

static bool fds_back(TestBackend *tb, void *opaque)
{
    FdWait *w = opaque;
    int n = vmm_fds(w->v);

    return n >= 0 && n <= w->max;
}

static void test_log_drop(Fixture *f, gconstpointer data)
{
    DropCtx d = { .stop = GPOINTER_TO_INT(data) };
    g_autofree char *uri = mig_unix_uri(f, "mig.sock");
    g_autofree char *st = NULL;
    g_autoptr(GPtrArray) sa = NULL;
    g_autoptr(GPtrArray) da = NULL;
    MigVmmOpts so = { .ram_mb = SLOW_RAM_MB, .fill = true };
    MigVmmOpts dopts = { .ram_mb = SLOW_RAM_MB, .fill = true, .incoming = uri };
    TestBackend *stb, *dtb;
    MigVmm *src = NULL, *dst = NULL;
    TbConfig cfg;
    FdWait fw = { 0 };
    g_autofree char *ev = NULL;


    tb_config_default(&cfg);
    cfg.features |= 1ull << VHOST_F_LOG_ALL;
    cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD;
    stb = tb_new(f->dir, "src-vhost.sock", &cfg);
    dtb = tb_new(f->dir, "dst-vhost.sock", &cfg);
    tb_set_hook(stb, drop_hook, &d);
    sa = net_args(tb_socket_path(stb));
    da = net_args(tb_socket_path(dtb));
    if (!(src = mig_vmm_start(f, "src", &so, sa)) ||
        !wait_log(src->proc, "net0: started", 1, MIG_WAIT_MS) ||
        !(dst = mig_vmm_start(f, "dst", &dopts, da)) ||
        !wait_log(dst->proc, "migration: incoming from", 1, MIG_WAIT_MS)) {
        goto out;
    }
    fw.v = src;
    fw.max = vmm_fds(src);
    if (d.stop) {
        /* Logging stops when the migration is cancelled. */
        mig_set_params(src, SLOW_BPS, -1);
        if (!mig_migrate(src, uri) || !mig_wait_midstream(src, 4 << 20, MIG_WAIT_MS)) {
            goto out;
        }
        migrate_cancel(src);
    } else if (!mig_migrate(src, uri)) {
        goto out;
    }
    st = mig_wait_status(src, "completed", MIG_WAIT_MS);
    if (!st) {
        goto out;
    }
    ev = mig_events_str(src);
    g_test_message("status %s; MIGRATION events %s", st, ev);
    tb_wait_closed(stb, 1, MIG_WAIT_MS);
    if (strcmp(st, "completed") != 0) {
        g_autofree char *rs = mig_run_state(src);

        /* Failed or cancelled: the guest runs on, its device comes back. */
        if (strcmp(rs, "running") != 0) {
            g_test_fail_printf("source run state %s after status %s", rs, st);
            goto out;
        }
        tb_wait_rings_started(stb, 2, 2, MIG_WAIT_MS);
        if (!tb_wait_until(stb, fds_back, &fw, MIG_WAIT_MS)) {
            g_test_fail_printf("source holds %d fds, %d before the migration",
                               vmm_fds(src), fw.max);
        }
        if (!d.stop && !error_desc_names(src, "net0", "SET_LOG_BASE")) {
            goto out;
        }
    } else if (!d.stop) {
        /* Completed without the device's log is a lost-write bug. */
        g_test_fail_printf("migration completed though net0's logging never started");
    }
    stops_cleanly(src);
    tb_assert_no_violations(stb);
out:
    mig_vmm_free(src);
    mig_vmm_free(dst);
    tb_free(stb);
    tb_free(dtb);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/migrate-fail/no-pagefault", Fixture, GINT_TO_POINTER(1), fixture_setup,
               test_no_log_shmfd, fixture_teardown);
    g_test_add("/migrate-fail/no-log-shmfd", Fixture, GINT_TO_POINTER(0), fixture_setup,
               test_no_log_shmfd, fixture_teardown);
    g_test_add("/migrate-fail/ram-size", Fixture, NULL, fixture_setup, test_ram_size,
               fixture_teardown);
    g_test_add("/migrate-fail/dest-killed", Fixture, NULL, fixture_setup, test_dest_killed,
               fixture_teardown);
    g_test_add("/migrate-fail/cancel", Fixture, NULL, fixture_setup, test_cancel,
               fixture_teardown);
    g_test_add("/migrate-fail/log-start-drop", Fixture, GINT_TO_POINTER(0), fixture_setup,
               test_log_drop, fixture_teardown);
    g_test_add("/migrate-fail/log-stop-drop", Fixture, GINT_TO_POINTER(1), fixture_setup,
               test_log_drop, fixture_teardown);
    return g_test_run();
}
