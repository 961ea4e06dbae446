/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A back-end killed with SIGKILL in the middle of a verified blk workload
 * and started again loses no request: INFLIGHT_SHMFD end to end, the real
 * VMM against real back-end processes.
 *
 *  - our reference back-end (REF_BACKEND) on a file, 2 queues, killed -9
 *    from outside 3 times during a verified randrw run. It runs with
 *    --batch=4: it completes requests out of avail order for a moment, as
 *    a back-end doing parallel I/O does, so resuming from the used index
 *    alone would run some requests twice and lose others (the guest
 *    driver notices either: an unknown used id, a mismatch or a request
 *    that never completes), and only the inflight area gets it right;
 *  - the same back-end killing itself at each stage of one request
 *    (--crash-at): taken, executed, published in the used ring but not
 *    yet cleared in the area. The next one must say it resubmitted, or
 *    completed, what the area holds, and the workload still verifies;
 *  - DPDK's vhost_blk example (built from the dpdk-doc package's source by
 *    scripts/build-dpdk-vhost-blk.sh), killed -9 3 times during a write
 *    workload. Its disk is RAM: the data dies with it, so nothing can be
 *    read back; what is checked is that every request completed once and
 *    without error. It serves one queue only. It does not resubmit what
 *    was in flight (new_device() looks for INFLIGHT_SHMFD in the virtio
 *    features instead of the protocol features), so it is killed only
 *    between requests: stopped (SIGSTOP) until the area shows no head in
 *    flight, then SIGKILL. That still checks its restart against our
 *    front-end's reconnect: the area handed back, the avail ring resumed
 *    from the used index the VMM read from guest memory.
 *
 * The VMM's decoded trace shows the area's life: GET_INFLIGHT_FD once per
 * device life, SET_INFLIGHT_FD on every connection. After each kill, the
 * heads the area holds in flight are counted (through the VMM's fd of the
 * area in /proc) and reported, so a log shows which kills hit a request.
 *
 * A missing program fails the test naming the Debian package that has
 * it; these tests are never skipped. Every process gets SIGKILL if this
 * test dies (PR_SET_PDEATHSIG) and is killed and reaped on every path;
 * files live in a temporary directory removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "qtest-harness.h"

#define SOCKET_WAIT_MS      20000
#define RING_WAIT_MS        20000   /* rings running again after a restart */
/* The workload's runtime, restarts, and the guest's 30 s stall limit. */
#define VMM_RUN_MS          60000
#define BACKEND_STOP_MS     5000
#define KILLS               3
#define DISK_SIZE           "64M"

typedef enum BackendKind {
    BACKEND_REF,
    BACKEND_DPDK,
} BackendKind;

typedef struct Fixture {
    char *dir;
    char *old_cwd;
    char *sock;
    char *dpdk_bin;
    char *dpdk_prefix;          /* EAL --file-prefix; its run dir goes too */
    QtestVmm *backend;
    QtestVmm *vmm;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    f->dir = g_dir_make_tmp("inflight-XXXXXX", &err);
    g_assert_no_error(err);
    /* DPDK's example puts its socket in its working directory: ours. */
    f->old_cwd = g_get_current_dir();
    g_assert_cmpint(chdir(f->dir), ==, 0);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    /* The processes go (killed and reaped) before the files they use. */
    qtest_vmm_free(f->vmm);
    qtest_vmm_free(f->backend);
    g_assert_cmpint(chdir(f->old_cwd), ==, 0);
    qtest_rm_rf(f->dir);
    if (f->dpdk_prefix) {
        g_autofree char *run = g_build_filename("/var/run/dpdk", f->dpdk_prefix, NULL);

        qtest_rm_rf(run);
    }
    g_free(f->dir);
    g_free(f->old_cwd);
    g_free(f->sock);
    g_free(f->dpdk_bin);
    g_free(f->dpdk_prefix);
}

static bool wait_socket(Fixture *f)
{
    gint64 end = g_get_monotonic_time() + SOCKET_WAIT_MS * G_TIME_SPAN_MILLISECOND;
    struct stat st;

    while (g_get_monotonic_time() < end) {
        if (stat(f->sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
            return true;
        }
        if (!qtest_vmm_is_alive(f->backend)) {
            break;
        }
        g_usleep(20 * 1000);
    }
    {
        g_autofree char *log = qtest_vmm_stderr(f->backend);

        g_test_fail_printf("no back-end socket at %s within %d ms; its stderr:\n%s",
                           f->sock, SOCKET_WAIT_MS, log);
    }
    return false;
}

/* ---- back-ends ------------------------------------------------------- */

static bool start_ref(Fixture *f, const char *crash_at)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *s = g_strdup_printf("--socket-path=%s", f->sock);
    g_autofree char *file = g_strdup_printf("--blk-file=%s/disk.img", f->dir);
    g_autofree char *crash = crash_at ? g_strdup_printf("--crash-at=%s", crash_at) : NULL;
    const char *args[] = {
        s, "--type=blk", "--queues=2", file, "--blk-size=" DISK_SIZE,
        "--batch=4", crash, NULL,
    };

    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return false;
    }
    /* A stale socket would look like a listening one. */
    g_unlink(f->sock);
    f->backend = qtest_proc_spawn(be, args, false);
    return wait_socket(f);
}

/* Builds the example (once per build dir) with the script meson names. */
static bool build_dpdk(Fixture *f)
{
    const char *script = g_getenv("DPDK_VHOST_BLK_BUILD");
    const char *out = g_getenv("DPDK_VHOST_BLK_DIR");
    g_autoptr(GError) err = NULL;
    g_autofree char *errout = NULL;
    int status = -1;

    if (!script || !out) {
        g_test_fail_printf("DPDK_VHOST_BLK_BUILD / DPDK_VHOST_BLK_DIR are not set "
                           "(run through meson test)");
        return false;
    }
    {
        const char *argv[] = { "/bin/sh", script, out, NULL };

        if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                          NULL, &errout, &status, &err) ||
            !g_spawn_check_wait_status(status, NULL)) {
            /* The script names the Debian package that is missing. */
            g_test_fail_printf("cannot build DPDK's vhost_blk example (Debian "
                               "packages dpdk-doc and dpdk-dev): %s",
                               err ? err->message : errout);
            return false;
        }
    }
    f->dpdk_bin = g_build_filename(out, "vhost-blk", NULL);
    return true;
}

static bool start_dpdk(Fixture *f)
{
    g_autofree char *prefix = g_strdup_printf("--file-prefix=%s", f->dpdk_prefix);
    /*
     * No hugepages (-m then is plain memory), no devices, no shared config
     * or telemetry files; lcore 0 only: its one worker thread polls there.
     */
    const char *args[] = {
        "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
        prefix, "-l", "0", "--log-level=lib.eal:warning", NULL,
    };

    g_unlink(f->sock);
    f->backend = qtest_proc_spawn(f->dpdk_bin, args, false);
    return wait_socket(f);
}

static bool start_backend(Fixture *f, BackendKind kind, const char *crash_at)
{
    return kind == BACKEND_REF ? start_ref(f, crash_at) : start_dpdk(f);
}

/* Our back-end breaks a ring (and says so) on anything inconsistent. */
static void assert_no_ring_fault(Fixture *f)
{
    if (qtest_vmm_count_stderr(f->backend, "ring stopped until") ||
        qtest_vmm_count_stderr(f->backend, "dropping the connection")) {
        g_autofree char *log = qtest_vmm_stderr(f->backend);

        g_test_fail_printf("the back-end refused something; its stderr:\n%s", log);
    }
}

/* ---- the inflight area, as the VMM holds it -------------------------- */

/*
 * Heads marked in flight in the VMM's copy of the area (split layout: per
 * queue a 16-byte header with desc_num at offset 10, then 16-byte entries
 * with the inflight byte first). -1 when the area cannot be found.
 */
static int count_inflight_heads(Fixture *f, unsigned num_queues)
{
    g_autofree char *fd_dir = g_strdup_printf("/proc/%d/fd", (int)qtest_vmm_pid(f->vmm));
    GDir *d = g_dir_open(fd_dir, 0, NULL);
    const char *name;
    int count = -1;

    while (d && count < 0 && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(fd_dir, name, NULL);
        g_autofree char *target = g_file_read_link(path, NULL);
        g_autofree char *buf = NULL;
        gsize len = 0, stride;

        if (!target || !strstr(target, "memfd:") || !strstr(target, "inflight") ||
            !g_file_get_contents(path, &buf, &len, NULL) || len % num_queues) {
            continue;
        }
        stride = len / num_queues;
        count = 0;
        for (unsigned q = 0; q < num_queues; q++) {
            const uint8_t *region = (const uint8_t *)buf + q * stride;
            uint16_t desc_num;

            memcpy(&desc_num, region + 10, sizeof(desc_num));
            for (gsize i = 0; i < desc_num && 16 + 16 * (i + 1) <= stride; i++) {
                count += region[16 + 16 * i] != 0;
            }
        }
    }
    if (d) {
        g_dir_close(d);
    }
    return count;
}

/*
 * SIGKILL at a moment the area shows requests in flight (in_flight) or
 * none. Stops the back-end (SIGSTOP), looks, and lets it run a little
 * more until the area is as wanted. An idle back-end has nothing in
 * flight, and one that cannot resubmit must be killed between requests.
 */
static bool kill_when(Fixture *f, unsigned num_queues, bool in_flight)
{
    pid_t pid = qtest_vmm_pid(f->backend);

    for (unsigned tries = 0; tries < 1000; tries++) {
        int heads;

        kill(pid, SIGSTOP);
        g_usleep(2000);     /* every thread stopped */
        heads = count_inflight_heads(f, num_queues);
        if (heads < 0) {
            kill(pid, SIGCONT);
            g_test_fail_printf("the VMM holds no inflight area (no memfd named "
                               "*inflight* among its fds)");
            return false;
        }
        if ((heads > 0) == in_flight) {
            qtest_vmm_kill(f->backend);
            g_test_message("killed with %d request(s) in flight after %u stop(s)",
                           heads, tries + 1);
            return true;
        }
        kill(pid, SIGCONT);
        g_usleep(g_test_rand_int_range(100, 3000));
    }
    g_test_fail_printf("the back-end never had %s requests in flight (1000 looks)",
                       in_flight ? "any" : "no");
    return false;
}

/* ---- the scenario ---------------------------------------------------- */

static void spawn_vmm(Fixture *f, unsigned queues, const char *workload)
{
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=10",
                                               f->sock);
    g_autofree char *device = g_strdup_printf("vhost-user-blk-pci,chardev=c0,"
                                              "num-queues=%u", queues);
    g_autofree char *wl = g_strdup_printf("blk0:%s", workload);
    const char *args[] = {
        "-m", "256M",
        "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
        "-machine", "memory-backend=mem",
        "-chardev", chardev,
        "-device", device,
        "-workload", wl,
        "-trace", "vhost_user",
        NULL,
    };

    f->vmm = qtest_vmm_spawn(args);
}

/* Waits for the VMM's nth "rings running" line (one per connection). */
static bool wait_rings_started(Fixture *f, unsigned n)
{
    if (qtest_vmm_wait_stderr_count(f->vmm, "blk0: started", n, RING_WAIT_MS)) {
        return true;
    }
    {
        g_autofree char *log = qtest_vmm_stderr(f->vmm);
        g_autofree char *be = qtest_vmm_stderr(f->backend);

        g_test_fail_printf("the VMM did not start its rings (connection %u) within "
                           "%d ms; VMM stderr:\n%s\nback-end stderr:\n%s", n,
                           RING_WAIT_MS, log, be);
    }
    return false;
}

/*
 * The VMM's run must end with exit status 0 and the workload passed:
 * every request completed once (the driver refuses an id it has not in
 * flight), none failed, and with verify every block read back matched.
 */
static void assert_workload_passed(Fixture *f, bool verified, unsigned connections)
{
    int code = qtest_vmm_wait_exit(f->vmm, VMM_RUN_MS);
    g_autofree char *log = qtest_vmm_stderr(f->vmm);
    unsigned gets = qtest_vmm_count_stderr(f->vmm, "F>B GET_INFLIGHT_FD");
    unsigned sets = qtest_vmm_count_stderr(f->vmm, "F>B SET_INFLIGHT_FD");

    if (code != 0 || !qtest_vmm_count_stderr(f->vmm, "blk0: workload passed") ||
        !qtest_vmm_count_stderr(f->vmm, "0 mismatching sectors, 0 I/O errors") ||
        (verified && !qtest_vmm_count_stderr(f->vmm, "0 errors; verified"))) {
        g_autofree char *be = qtest_vmm_stderr(f->backend);

        g_test_fail_printf("the VMM exited with %d; expected 0 and a passed%s "
                           "workload. VMM stderr:\n%s\nlast back-end's stderr:\n%s",
                           code, verified ? ", verified" : "", log, be);
        return;
    }
    /* Fetched once per device life, handed to every connection. */
    if (gets != 1 || sets != connections) {
        g_test_fail_printf("GET_INFLIGHT_FD sent %u times (expected 1), "
                           "SET_INFLIGHT_FD %u times (expected %u, one per "
                           "connection); VMM stderr:\n%s", gets, sets, connections,
                           log);
    }
}

/*
 * Kills the back-end with SIGKILL KILLS times while the workload runs,
 * each time some random 0.3-0.9 s after the rings started again, and
 * starts it again on the same socket (and disk file). Ours: the first
 * kill wherever it lands, the others with requests in flight; DPDK's
 * example: between requests (see the top of the file).
 */
static void kill_and_restart(Fixture *f, BackendKind kind, unsigned queues,
                             const char *workload, bool verified)
{
    if (!start_backend(f, kind, NULL)) {
        return;
    }
    spawn_vmm(f, queues, workload);
    for (unsigned i = 0; i < KILLS; i++) {
        int heads;

        if (!wait_rings_started(f, i + 1)) {
            return;
        }
        g_usleep(g_test_rand_int_range(300, 900) * 1000);
        if (kind == BACKEND_REF) {
            assert_no_ring_fault(f);
        }
        if (kind == BACKEND_REF && i == 0) {
            qtest_vmm_kill(f->backend);
        } else if (!kill_when(f, queues, kind == BACKEND_REF)) {
            return;
        }
        heads = count_inflight_heads(f, queues);
        g_test_message("kill %u: %d request(s) in flight in the inflight area",
                       i + 1, heads);
        if (heads < 0) {
            g_test_fail_printf("kill %u: the VMM holds no inflight area (no memfd "
                               "named *inflight* among its fds)", i + 1);
            return;
        }
        qtest_vmm_free(f->backend);
        f->backend = NULL;
        if (!start_backend(f, kind, NULL)) {
            return;
        }
    }
    assert_workload_passed(f, verified, KILLS + 1);
    if (kind == BACKEND_REF) {
        assert_no_ring_fault(f);
        g_assert_cmpint(qtest_vmm_terminate(f->backend, BACKEND_STOP_MS), ==, 0);
    }
}

static void test_ref_kill9(Fixture *f, gconstpointer data)
{
    f->sock = g_build_filename(f->dir, "blk.sock", NULL);
    kill_and_restart(f, BACKEND_REF, 2, "rw=randrw,bs=4k,iodepth=32,runtime=10s", true);
}

/* What the back-end started after the crash must say it found. */
typedef struct CrashCase {
    const char *crash_at;
    const char *expect;
} CrashCase;

static const CrashCase crash_cases[] = {
    { "taken:3000", "request(s) in flight at the last disconnect, resubmitting" },
    { "executed:3000", "request(s) in flight at the last disconnect, resubmitting" },
    { "published:3001", "whose used entry was published just before the last" },
};

static void test_ref_crash_at(Fixture *f, gconstpointer data)
{
    const CrashCase *c = data;
    int code;

    f->sock = g_build_filename(f->dir, "blk.sock", NULL);
    if (!start_ref(f, c->crash_at)) {
        return;
    }
    spawn_vmm(f, 2, "rw=randrw,bs=4k,iodepth=32,runtime=4s");
    code = qtest_vmm_wait_exit(f->backend, RING_WAIT_MS);
    if (code != 128 + SIGKILL) {
        g_autofree char *log = qtest_vmm_stderr(f->backend);

        g_test_fail_printf("--crash-at=%s: the back-end ended with %d, expected "
                           "SIGKILL; its stderr:\n%s", c->crash_at, code, log);
        return;
    }
    g_test_message("crash at %s: %d request(s) in flight in the inflight area",
                   c->crash_at, count_inflight_heads(f, 2));
    qtest_vmm_free(f->backend);
    f->backend = NULL;
    if (!start_ref(f, NULL)) {
        return;
    }
    if (!qtest_vmm_wait_stderr_count(f->backend, c->expect, 1, RING_WAIT_MS)) {
        g_autofree char *log = qtest_vmm_stderr(f->backend);

        g_test_fail_printf("after --crash-at=%s the next back-end did not report "
                           "\"%s\"; its stderr:\n%s", c->crash_at, c->expect, log);
        return;
    }
    assert_workload_passed(f, true, 2);
    assert_no_ring_fault(f);
    g_assert_cmpint(qtest_vmm_terminate(f->backend, BACKEND_STOP_MS), ==, 0);
}

static void test_dpdk_kill9(Fixture *f, gconstpointer data)
{
    if (!build_dpdk(f)) {
        return;
    }
    /* The example's name, in the working directory (fixture_setup's chdir). */
    f->sock = g_build_filename(f->dir, "vhost.socket", NULL);
    f->dpdk_prefix = g_strdup_printf("vuinflight%d", (int)getpid());
    /*
     * A RAM disk that dies with the process: write only, nothing to verify.
     * A shallow queue: the example cannot resubmit, so the kill must land
     * between requests, and at depth 32 a slow (ASan) VMM kept the example
     * busy through every one of kill_when's looks.
     */
    kill_and_restart(f, BACKEND_DPDK, 1, "rw=randwrite,bs=4k,iodepth=4,runtime=8s,"
                     "verify=off", false);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* A back-end that vanishes mid-reply must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);

    g_test_add("/inflight/ref/kill9-restart-2q", Fixture, NULL, fixture_setup,
               test_ref_kill9, fixture_teardown);
    for (size_t i = 0; i < G_N_ELEMENTS(crash_cases); i++) {
        g_autofree char *stage = g_strndup(crash_cases[i].crash_at,
                                           strcspn(crash_cases[i].crash_at, ":"));
        g_autofree char *path = g_strdup_printf("/inflight/ref/crash-at-%s", stage);

        g_test_add(path, Fixture, &crash_cases[i], fixture_setup, test_ref_crash_at,
                   fixture_teardown);
    }
    g_test_add("/inflight/dpdk/kill9-restart", Fixture, NULL, fixture_setup,
               test_dpdk_kill9, fixture_teardown);
    return g_test_run();
}
