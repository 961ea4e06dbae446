/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The VMM under test as a subprocess; see qtest-vmm.h.
 *
 * A reader thread drains the VMM's stdout and stderr (so the VMM never
 * blocks on a full pipe) and keeps stderr as lines for the tests to wait
 * on. The process is reaped with waitpid here, not with a GChildWatch,
 * because the test thread runs no main loop.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qtest-vmm.h"

struct QtestVmm {
    GPid pid;
    bool reaped;
    int wait_status;
    int out_fd;
    int err_fd;
    int in_fd;                  /* write end of its stdin pipe, or -1 */
    GThread *reader;
    bool echo;

    GMutex lock;
    GCond cond;
    GPtrArray *lines;           /* complete stderr lines, char * */
    GString *all;               /* all stderr */
    GString *out;               /* all stdout (complete lines) */
    bool eof;
};

/* The test process's pid, for the child to notice it died before prctl. */
static pid_t qtest_parent_pid;

static void qtest_vmm_child_setup(gpointer opaque)
{
    /* Async-signal-safe only: we are between fork and exec. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != qtest_parent_pid) {
        _exit(127);
    }
}

static void qtest_vmm_add_line(QtestVmm *vmm, const char *line)
{
    if (vmm->echo) {
        fprintf(stderr, "vmm: %s\n", line);
    }
    g_mutex_lock(&vmm->lock);
    g_ptr_array_add(vmm->lines, g_strdup(line));
    g_string_append_printf(vmm->all, "%s\n", line);
    g_cond_broadcast(&vmm->cond);
    g_mutex_unlock(&vmm->lock);
}

/* Splits buf into lines; keeps the unterminated tail in partial. */
static void qtest_vmm_feed(QtestVmm *vmm, GString *partial, const char *buf,
                           size_t n, bool is_stderr)
{
    g_string_append_len(partial, buf, n);
    for (;;) {
        char *nl = memchr(partial->str, '\n', partial->len);
        if (!nl) {
            break;
        }
        *nl = '\0';
        if (is_stderr) {
            qtest_vmm_add_line(vmm, partial->str);
        } else {
            if (vmm->echo) {
                fprintf(stderr, "vmm(stdout): %s\n", partial->str);
            }
            g_mutex_lock(&vmm->lock);
            g_string_append_printf(vmm->out, "%s\n", partial->str);
            g_mutex_unlock(&vmm->lock);
        }
        g_string_erase(partial, 0, nl - partial->str + 1);
    }
}

static gpointer qtest_vmm_reader(gpointer opaque)
{
    QtestVmm *vmm = opaque;
    g_autoptr(GString) err_part = g_string_new(NULL);
    g_autoptr(GString) out_part = g_string_new(NULL);
    struct pollfd pfd[2] = {
        { .fd = vmm->err_fd, .events = POLLIN },
        { .fd = vmm->out_fd, .events = POLLIN },
    };

    while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
        char buf[4096];

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (unsigned i = 0; i < 2; i++) {
            ssize_t n;

            if (pfd[i].fd < 0 || !pfd[i].revents) {
                continue;
            }
            n = read(pfd[i].fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;     /* poll ignores negative fds */
                continue;
            }
            qtest_vmm_feed(vmm, i == 0 ? err_part : out_part, buf, n, i == 0);
        }
    }
    if (err_part->len) {
        qtest_vmm_add_line(vmm, err_part->str);
    }
    vmm->err_fd = vmm->out_fd = -1;
    g_mutex_lock(&vmm->lock);
    vmm->eof = true;
    g_cond_broadcast(&vmm->cond);
    g_mutex_unlock(&vmm->lock);
    return NULL;
}

QtestVmm *qtest_vmm_spawn(const char *const *args)
{
    const char *binary = g_getenv("VMM_BINARY");

    if (!binary || !*binary) {
        g_error("VMM_BINARY is not set: point it at the vhost-user-vmm to test "
                "(meson test sets it)");
    }
    return qtest_proc_spawn(binary, args, false);
}

QtestVmm *qtest_proc_spawn(const char *binary, const char *const *args, bool stdin_pipe)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *cmdline = NULL;
    QtestVmm *vmm;
    const char *v = g_getenv("V");

    g_ptr_array_add(argv, (char *)binary);
    for (unsigned i = 0; args && args[i]; i++) {
        g_ptr_array_add(argv, (char *)args[i]);
    }
    g_ptr_array_add(argv, NULL);
    cmdline = g_strjoinv(" ", (char **)argv->pdata);
    g_test_message("spawning %s", cmdline);

    vmm = g_new0(QtestVmm, 1);
    g_mutex_init(&vmm->lock);
    g_cond_init(&vmm->cond);
    vmm->lines = g_ptr_array_new_with_free_func(g_free);
    vmm->all = g_string_new(NULL);
    vmm->out = g_string_new(NULL);
    vmm->echo = v && strcmp(v, "1") == 0;
    vmm->out_fd = vmm->err_fd = vmm->in_fd = -1;
    qtest_parent_pid = getpid();

    /* A bare name is looked up in PATH (real back-ends); a path is used as is. */
    if (!g_spawn_async_with_pipes(NULL, (char **)argv->pdata, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD |
                                  (strchr(binary, '/') ? 0 : G_SPAWN_SEARCH_PATH),
                                  qtest_vmm_child_setup, NULL, &vmm->pid,
                                  stdin_pipe ? &vmm->in_fd : NULL,
                                  &vmm->out_fd, &vmm->err_fd, &err)) {
        g_error("spawning %s: %s", binary, err->message);
    }
    vmm->reader = g_thread_new("vmm-stderr", qtest_vmm_reader, vmm);
    return vmm;
}

QtestVmm *qtest_vmm_spawnv(GPtrArray *args)
{
    g_autoptr(GPtrArray) copy = g_ptr_array_new();

    for (unsigned i = 0; i < args->len; i++) {
        g_ptr_array_add(copy, g_ptr_array_index(args, i));
    }
    g_ptr_array_add(copy, NULL);
    return qtest_vmm_spawn((const char *const *)copy->pdata);
}

pid_t qtest_vmm_pid(const QtestVmm *vmm)
{
    return vmm->pid;
}

/* Reaps the child; blocking or not. True once it has been reaped. */
static bool qtest_vmm_reap(QtestVmm *vmm, bool block)
{
    pid_t r;

    if (vmm->reaped) {
        return true;
    }
    do {
        r = waitpid(vmm->pid, &vmm->wait_status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == vmm->pid || (r < 0 && errno == ECHILD)) {
        vmm->reaped = true;
        if (r < 0) {
            vmm->wait_status = 0;
        }
    }
    return vmm->reaped;
}

bool qtest_vmm_is_alive(QtestVmm *vmm)
{
    return !qtest_vmm_reap(vmm, false);
}

static int qtest_vmm_exit_code(const QtestVmm *vmm)
{
    if (WIFEXITED(vmm->wait_status)) {
        return WEXITSTATUS(vmm->wait_status);
    }
    if (WIFSIGNALED(vmm->wait_status)) {
        return 128 + WTERMSIG(vmm->wait_status);
    }
    return -1;
}

void qtest_vmm_kill(QtestVmm *vmm)
{
    if (!qtest_vmm_reap(vmm, false)) {
        kill(vmm->pid, SIGKILL);
        qtest_vmm_reap(vmm, true);
    }
}

int qtest_vmm_wait_exit(QtestVmm *vmm, unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!qtest_vmm_reap(vmm, false)) {
        if (g_get_monotonic_time() > deadline) {
            return -1;
        }
        g_usleep(10 * 1000);
    }
    return qtest_vmm_exit_code(vmm);
}

int qtest_vmm_terminate(QtestVmm *vmm, unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    if (qtest_vmm_reap(vmm, false)) {
        return qtest_vmm_exit_code(vmm);
    }
    kill(vmm->pid, SIGTERM);
    while (!qtest_vmm_reap(vmm, false)) {
        if (g_get_monotonic_time() > deadline) {
            g_test_message("VMM pid %d ignored SIGTERM for %u ms: killing it",
                           (int)vmm->pid, timeout_ms);
            qtest_vmm_kill(vmm);
            return -1;
        }
        g_usleep(10 * 1000);
    }
    return qtest_vmm_exit_code(vmm);
}

void qtest_vmm_free(QtestVmm *vmm)
{
    if (!vmm) {
        return;
    }
    if (vmm->in_fd >= 0) {
        close(vmm->in_fd);
    }
    qtest_vmm_kill(vmm);
    /* The pipes hit EOF once the VMM is gone, so the reader ends. */
    g_thread_join(vmm->reader);
    g_spawn_close_pid(vmm->pid);
    g_ptr_array_unref(vmm->lines);
    g_string_free(vmm->all, TRUE);
    g_string_free(vmm->out, TRUE);
    g_mutex_clear(&vmm->lock);
    g_cond_clear(&vmm->cond);
    g_free(vmm);
}

static unsigned qtest_vmm_count_locked(QtestVmm *vmm, const char *substr)
{
    unsigned n = 0;

    for (unsigned i = 0; i < vmm->lines->len; i++) {
        n += strstr(g_ptr_array_index(vmm->lines, i), substr) != NULL;
    }
    return n;
}

unsigned qtest_vmm_count_stderr(QtestVmm *vmm, const char *substr)
{
    unsigned n;

    g_mutex_lock(&vmm->lock);
    n = qtest_vmm_count_locked(vmm, substr);
    g_mutex_unlock(&vmm->lock);
    return n;
}

bool qtest_vmm_wait_stderr_count(QtestVmm *vmm, const char *substr, unsigned count,
                                 unsigned timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    bool ok;

    g_mutex_lock(&vmm->lock);
    while (!(ok = qtest_vmm_count_locked(vmm, substr) >= count) && !vmm->eof) {
        if (!g_cond_wait_until(&vmm->cond, &vmm->lock, deadline)) {
            ok = qtest_vmm_count_locked(vmm, substr) >= count;
            break;
        }
    }
    g_mutex_unlock(&vmm->lock);
    return ok;
}

char *qtest_vmm_log_cb(void *vmm)
{
    return qtest_vmm_stderr(vmm);
}

char *qtest_vmm_stderr(QtestVmm *vmm)
{
    char *s;

    g_mutex_lock(&vmm->lock);
    s = g_strdup(vmm->all->str);
    g_mutex_unlock(&vmm->lock);
    return s;
}

char *qtest_vmm_stdout_at_exit(QtestVmm *vmm, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * G_TIME_SPAN_MILLISECOND;
    char *s;

    g_mutex_lock(&vmm->lock);
    while (!vmm->eof && g_cond_wait_until(&vmm->cond, &vmm->lock, end)) {
    }
    s = vmm->eof ? g_strdup(vmm->out->str) : NULL;
    g_mutex_unlock(&vmm->lock);
    return s;
}

void qtest_vmm_wait_for_stderr_line(QtestVmm *vmm, const char *substr,
                                    unsigned timeout_ms)
{
    if (!qtest_vmm_wait_stderr_count(vmm, substr, 1, timeout_ms)) {
        g_autofree char *all = qtest_vmm_stderr(vmm);
        g_error("no VMM stderr line containing \"%s\" within %u ms%s; stderr:\n%s",
                substr, timeout_ms,
                qtest_vmm_is_alive(vmm) ? "" : " (VMM exited)", all);
    }
}

int qtest_vmm_fd_count(QtestVmm *vmm)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/fd", (int)vmm->pid);
    GDir *dir;
    int n = 0;

    if (!qtest_vmm_is_alive(vmm)) {
        return -1;
    }
    dir = g_dir_open(path, 0, NULL);
    if (!dir) {
        return -1;
    }
    while (g_dir_read_name(dir)) {
        n++;
    }
    g_dir_close(dir);
    return n;
}
