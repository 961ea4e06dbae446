/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Child processes of the real back-end tests; see real-proc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include "real-proc.h"

/* ---- processes ------------------------------------------------------ */

static void child_setup(gpointer data)
{
    /* Never outlive the test, whatever happens to it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

bool proc_poll(Proc *p)
{
    if (!p->reaped) {
        pid_t r = waitpid(p->pid, &p->wstatus, WNOHANG);

        if (r == p->pid || (r < 0 && errno == ECHILD)) {
            p->reaped = true;
        }
    }
    return p->reaped;
}

/* Waits up to timeout_ms for the exit; true when it exited. */
bool proc_wait(Proc *p, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!proc_poll(p)) {
        if (g_get_monotonic_time() >= end) {
            return false;
        }
        g_usleep(10 * 1000);
    }
    return true;
}

/* SIGTERM, a bounded wait, then SIGKILL; always reaps. */
void proc_stop(Proc *p)
{
    if (p->stdin_w >= 0) {
        close(p->stdin_w);
        p->stdin_w = -1;
    }
    if (proc_poll(p)) {
        return;
    }
    kill(p->pid, SIGTERM);
    if (!proc_wait(p, TERM_WAIT_MS)) {
        kill(p->pid, SIGKILL);
        if (waitpid(p->pid, &p->wstatus, 0) == p->pid) {
            p->reaped = true;
        }
    }
}

static void proc_free(gpointer data)
{
    Proc *p = data;

    proc_stop(p);
    g_spawn_close_pid(p->pid);
    g_free(p->name);
    g_free(p->log);
    g_free(p);
}

char *proc_log_cb(void *p)
{
    return proc_log(p);
}

char *proc_log(const Proc *p)
{
    char *s = NULL;

    if (!g_file_get_contents(p->log, &s, NULL, NULL)) {
        s = g_strdup("(no log)");
    }
    return s;
}

/*
 * Spawns argv with stdout to out_path (or the log when NULL), stderr to
 * the log and, with stdin_pipe, stdin from a pipe we keep open (testpmd
 * exits at EOF on stdin).
 */
Proc *proc_spawn(Fixture *f, const char *name, GPtrArray *argv,
                        bool stdin_pipe, const char *out_path)
{
    g_autoptr(GError) err = NULL;
    Proc *p = g_new0(Proc, 1);
    int pipefd[2] = { -1, -1 };
    int log_fd, out_fd, null_fd = -1;
    bool ok;

    p->name = g_strdup(name);
    p->log = g_strdup_printf("%s/%s.log", f->dir, name);
    p->stdin_w = -1;
    log_fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(log_fd, >=, 0);
    out_fd = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                      : log_fd;
    g_assert_cmpint(out_fd, >=, 0);
    if (stdin_pipe) {
        g_assert_true(g_unix_open_pipe(pipefd, FD_CLOEXEC, NULL));
    } else {
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(null_fd, >=, 0);
    }
    g_ptr_array_add(argv, NULL);
    ok = g_spawn_async_with_pipes_and_fds(f->dir, (const char *const *)argv->pdata,
                                          NULL,
                                          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                          child_setup, NULL,
                                          stdin_pipe ? pipefd[0] : null_fd,
                                          out_fd, log_fd, NULL, NULL, 0, &p->pid,
                                          NULL, NULL, NULL, &err);
    g_ptr_array_remove_index(argv, argv->len - 1);
    close(log_fd);
    if (out_fd != log_fd) {
        close(out_fd);
    }
    if (null_fd >= 0) {
        close(null_fd);
    }
    if (stdin_pipe) {
        close(pipefd[0]);
        p->stdin_w = pipefd[1];
    }
    if (!ok) {
        g_test_fail_printf("cannot start %s: %s", name, err->message);
        p->reaped = true;
        g_free(p->name);
        g_free(p->log);
        if (p->stdin_w >= 0) {
            close(p->stdin_w);
        }
        g_free(p);
        return NULL;
    }
    g_ptr_array_add(f->procs, p);
    return p;
}

/*
 * Waits until p's log holds needle (at least n times); fails the test
 * (with the log) if it does not within timeout_ms or p exits first.
 */
bool wait_log(Proc *p, const char *needle, unsigned n, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    g_autofree char *log = NULL;

    for (;;) {
        g_free(log);
        log = proc_log(p);
        if (qtest_count(log, needle) >= n) {
            return true;
        }
        if (g_get_monotonic_time() >= end || proc_poll(p)) {
            break;
        }
        g_usleep(20 * 1000);
    }
    g_test_fail_printf("%s: '%s' not seen %u time(s) within %u ms (%s); its output:\n%s",
                       p->name, needle, n, timeout_ms,
                       p->reaped ? "it exited" : "still running", log);
    return false;
}

/* Waits for a unix socket at path; fails the test (with p's log) if not. */
bool wait_socket(Proc *p, const char *path)
{
    gint64 end = g_get_monotonic_time() + (gint64)SPAWN_WAIT_MS * 1000;
    struct stat st;

    while (g_get_monotonic_time() < end) {
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            return true;
        }
        if (proc_poll(p)) {
            break;
        }
        g_usleep(20 * 1000);
    }
    {
        g_autofree char *log = proc_log(p);

        g_test_fail_printf("%s: no socket at %s within %u ms (%s); its output:\n%s",
                           p->name, path, SPAWN_WAIT_MS,
                           p->reaped ? "it exited" : "still running", log);
    }
    return false;
}

bool require_program(const char *prog, const char *package)
{
    g_autofree char *path = g_find_program_in_path(prog);

    if (!path) {
        g_test_fail_printf("%s not found: install the Debian package '%s' "
                           "(scripts/install-deps.sh does)", prog, package);
        return false;
    }
    return true;
}

const char *vmm_binary(void)
{
    const char *vmm = g_getenv("VMM_BINARY");

    if (!vmm || !*vmm) {
        g_test_fail_printf("VMM_BINARY is not set (run through meson test)");
        return NULL;
    }
    return vmm;
}

/*
 * Runs the VMM with args to its end. Returns its stdout (the JSON lines)
 * or NULL with the test failed; *exit_code gets the exit status.
 */
char *run_vmm(Fixture *f, const char *name, GPtrArray *args, int *exit_code)
{
    g_autofree char *out_path = g_strdup_printf("%s/%s.json", f->dir, name);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *vmm = vmm_binary();
    char *out = NULL;
    Proc *p;

    if (!vmm) {
        return NULL;
    }
    g_ptr_array_add(argv, (char *)vmm);
    for (guint i = 0; i < args->len; i++) {
        g_ptr_array_add(argv, args->pdata[i]);
    }
    p = proc_spawn(f, name, argv, false, out_path);
    if (!p) {
        return NULL;
    }
    if (!proc_wait(p, VMM_RUN_MS)) {
        g_autofree char *log = proc_log(p);

        proc_stop(p);
        g_test_fail_printf("%s did not finish within %u ms; its stderr:\n%s",
                           name, VMM_RUN_MS, log);
        return NULL;
    }
    *exit_code = WIFEXITED(p->wstatus) ? WEXITSTATUS(p->wstatus)
                                       : 128 + WTERMSIG(p->wstatus);
    {
        g_autofree char *log = proc_log(p);

        g_test_message("%s stderr:\n%s", name, log);
        if (*exit_code != 0) {
            g_test_fail_printf("%s exited with %d; its stderr:\n%s", name,
                               *exit_code, log);
        }
    }
    if (!g_file_get_contents(out_path, &out, NULL, NULL)) {
        out = g_strdup("");
    }
    g_test_message("%s stdout: %s", name, out);
    return out;
}

/*
 * How many times needle occurs in haystack. Not inlined: GCC 12 then sees
 * through proc_log() and warns about a dangling pointer that is not one.
 */
G_GNUC_NO_INLINE unsigned qtest_count(const char *haystack, const char *needle)
{
    unsigned n = 0;

    for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* The unsigned number after "key": in a one-line JSON object, or -1. */
int64_t json_uint(const char *json, const char *key)
{
    g_autofree char *pat = g_strdup_printf("\"%s\":", key);
    const char *p = strstr(json, pat);

    if (!p || !g_ascii_isdigit(p[strlen(pat)])) {
        return -1;
    }
    return (int64_t)g_ascii_strtoull(p + strlen(pat), NULL, 10);
}

bool json_true(const char *json, const char *key)
{
    g_autofree char *pat = g_strdup_printf("\"%s\":true", key);

    return strstr(json, pat) != NULL;
}

/*
 * Waits for a VMM started with proc_spawn (stdout to out_path) to end;
 * *code gets its exit status, *out its stdout (or NULL) and *log its
 * stderr, which also goes to the test log. False, with the test failed,
 * when it did not end in time.
 */
bool vmm_collect(Proc *vmm, const char *out_path, int *code, char **out,
                        char **log)
{
    if (!proc_wait(vmm, VMM_RUN_MS)) {
        g_autofree char *l = proc_log(vmm);

        g_test_fail_printf("the VMM did not finish within %u ms:\n%s", VMM_RUN_MS, l);
        return false;
    }
    *code = WIFEXITED(vmm->wstatus) ? WEXITSTATUS(vmm->wstatus) : -1;
    if (!g_file_get_contents(out_path, out, NULL, NULL)) {
        *out = NULL;
    }
    *log = proc_log(vmm);
    g_test_message("vmm exit %d, stdout %s\nstderr:\n%s", *code, *out ? *out : "",
                   *log);
    return true;
}

/* ---- fixture -------------------------------------------------------- */

Proc *proc_start_dpdk_blk(Fixture *f, bool packed_fix)
{
    const char *script = g_getenv("DPDK_VHOST_BLK_BUILD");
    const char *out = g_getenv("DPDK_VHOST_BLK_DIR");
    g_autofree char *bin = NULL, *prefix = NULL, *errout = NULL;
    g_autofree char *sock = g_build_filename(f->dir, "vhost.socket", NULL);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    const char *build[] = { "/bin/sh", script, packed_fix ? "--packed-fix" : out,
                            packed_fix ? out : NULL, NULL };
    /* No hugepages, devices, shared config or telemetry; its worker polls on lcore 0. */
    const char *const fixed[] = {
        "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
        "-l", "0", "--log-level=lib.eal:warning",
    };
    int status = -1;
    Proc *p;

    if (!script || !out) {
        g_test_fail_printf("DPDK_VHOST_BLK_BUILD / DPDK_VHOST_BLK_DIR are not set "
                           "(run through meson test)");
        return NULL;
    }
    /* The script names the Debian package that is missing. */
    if (!g_spawn_sync(NULL, (char **)build, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL,
                      &errout, &status, &err) ||
        !g_spawn_check_wait_status(status, NULL)) {
        g_test_fail_printf("cannot build DPDK's vhost_blk example (Debian packages "
                           "dpdk-doc and dpdk-dev): %s", err ? err->message : errout);
        return NULL;
    }
    bin = g_build_filename(out, packed_fix ? "vhost-blk-packed-fix" : "vhost-blk", NULL);
    if (!f->dpdk_prefix) {
        f->dpdk_prefix = g_strdup_printf("vublk%d", (int)getpid());
    }
    prefix = g_strdup_printf("--file-prefix=%s", f->dpdk_prefix);
    /* Line-buffered stdout: what it printed is in its log even when it is killed. */
    g_ptr_array_add(argv, "stdbuf");
    g_ptr_array_add(argv, "-oL");
    g_ptr_array_add(argv, bin);
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        g_ptr_array_add(argv, (char *)fixed[i]);
    }
    g_ptr_array_add(argv, prefix);
    /* It does not remove its socket when killed; a stale one stops the next. */
    g_unlink(sock);
    p = proc_spawn(f, "vhost-blk", argv, false, NULL);
    return p && wait_socket(p, sock) ? p : NULL;
}

void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    f->dir = g_dir_make_tmp("vutest-XXXXXX", &err);
    g_assert_no_error(err);
    f->procs = g_ptr_array_new_with_free_func(proc_free);
}

void proc_remove_tree(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    const char *name;

    if (!d) {
        return;
    }
    /* Our directories hold only files (logs, sockets, the image). */
    while ((name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(path, name, NULL);

        g_unlink(p);
    }
    g_dir_close(d);
    g_rmdir(path);
}

void fixture_teardown(Fixture *f, gconstpointer data)
{
    /* Back-ends and VMMs die (and are reaped) before their files go. */
    g_ptr_array_unref(f->procs);
    /*
     * VUTEST_KEEP=1 keeps a failed test's directory: every process's log
     * (the back-ends' stdout and stderr too) for a post-mortem.
     */
    if (g_test_failed() && g_getenv("VUTEST_KEEP")) {
        g_test_message("kept %s (VUTEST_KEEP)", f->dir);
    } else {
        proc_remove_tree(f->dir);
    }
    if (f->dpdk_prefix) {
        g_autofree char *run = g_build_filename("/var/run/dpdk", f->dpdk_prefix, NULL);

        proc_remove_tree(run);
        g_free(f->dpdk_prefix);
    }
    g_free(f->dir);
}

Proc *proc_start_qsd(Fixture *f, const char *img, const char *sock, unsigned queues)
{
    return proc_start_qsd_named(f, "qsd", img, sock, queues, false);
}

Proc *proc_start_qsd_named(Fixture *f, const char *name, const char *img, const char *sock,
                           unsigned queues, bool shared)
{
    /* Shared storage: two daemons on one image, so no image lock. */
    g_autofree char *blockdev = g_strdup_printf(
        "driver=file,node-name=f,filename=%s,cache.direct=off%s", img,
        shared ? ",locking=off" : "");
    g_autofree char *export = g_strdup_printf(
        "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=%s,"
        "writable=on,num-queues=%u", sock, queues);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    Proc *p;

    g_ptr_array_add(argv, "qemu-storage-daemon");
    g_ptr_array_add(argv, "--blockdev");
    g_ptr_array_add(argv, blockdev);
    g_ptr_array_add(argv, "--export");
    g_ptr_array_add(argv, export);
    p = proc_spawn(f, name, argv, false, NULL);
    return p && wait_socket(p, sock) ? p : NULL;
}

Proc *proc_start_ref(Fixture *f, const char *name, const char *type, const char *sock,
                     unsigned queues, const char *blk_file, uint64_t blk_size, bool client)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *s = g_strdup_printf("--socket-path=%s", sock);
    g_autofree char *t = g_strdup_printf("--type=%s", type);
    g_autofree char *q = g_strdup_printf("--queues=%u", queues);
    g_autofree char *file = blk_file ? g_strdup_printf("--blk-file=%s", blk_file) : NULL;
    g_autofree char *size = g_strdup_printf("--blk-size=%" G_GUINT64_FORMAT, blk_size);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    Proc *p;

    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return NULL;
    }
    g_ptr_array_add(argv, (char *)be);
    g_ptr_array_add(argv, s);
    g_ptr_array_add(argv, t);
    g_ptr_array_add(argv, q);
    if (file) {
        g_ptr_array_add(argv, file);
    }
    if (blk_size) {
        g_ptr_array_add(argv, size);
    }
    if (client) {
        g_ptr_array_add(argv, "--client");
    }
    p = proc_spawn(f, name, argv, false, NULL);
    if (!p) {
        return NULL;
    }
    return client || wait_socket(p, sock) ? p : NULL;
}

Proc *proc_start_testpmd(Fixture *f, const char *sock, unsigned queues, bool client,
                         bool jumbo)
{
    g_autofree char *vdev = g_strdup_printf("net_vhost0,iface=%s,queues=%u%s", sock,
                                            queues, client ? ",client=1" : "");
    g_autofree char *rxq = g_strdup_printf("--rxq=%u", queues);
    g_autofree char *txq = g_strdup_printf("--txq=%u", queues);
    g_autofree char *prefix = NULL;
    g_autoptr(GPtrArray) tp = g_ptr_array_new();
    const char *const fixed[] = {
        "dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "512", "--no-pci",
        "--log-level=lib.eal:warning",
    };
    Proc *p;

    if (!require_program("dpdk-testpmd", "dpdk")) {
        return NULL;
    }
    if (!f->dpdk_prefix) {
        f->dpdk_prefix = g_strdup_printf("vutest%d-%u", (int)getpid(), queues);
    }
    prefix = g_strdup_printf("--file-prefix=%s", f->dpdk_prefix);
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        g_ptr_array_add(tp, (char *)fixed[i]);
    }
    g_ptr_array_add(tp, prefix);
    g_ptr_array_add(tp, "--vdev");
    g_ptr_array_add(tp, vdev);
    g_ptr_array_add(tp, "--");
    g_ptr_array_add(tp, "--forward-mode=io");
    /* One port forwarding to itself: every packet goes back to the guest. */
    g_ptr_array_add(tp, "--port-topology=loop");
    g_ptr_array_add(tp, "--nb-cores=1");
    g_ptr_array_add(tp, rxq);
    g_ptr_array_add(tp, txq);
    g_ptr_array_add(tp, "--stats-period=0");
    /* A small pool starts fast without hugepages. */
    g_ptr_array_add(tp, "--total-num-mbufs=8192");
    if (jumbo) {
        /* 9018-byte frames arrive in chained 2 KiB mbufs and leave so. */
        g_ptr_array_add(tp, "--max-pkt-len=9600");
    }
    p = proc_spawn(f, "testpmd", tp, true, NULL);
    if (!p || client) {
        return p;
    }
    return wait_socket(p, sock) ? p : NULL;
}
