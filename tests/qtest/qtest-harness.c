/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared qtest harness; see qtest-harness.h.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "qtest-harness.h"

/* For the failure handlers: dump what the VMM said before the test dies. */
QtestVmm *current_vmm;
static volatile sig_atomic_t vmm_stderr_dumped;

static void dump_vmm_stderr(void)
{
    if (current_vmm && !vmm_stderr_dumped) {
        g_autofree char *all = qtest_vmm_stderr(current_vmm);

        vmm_stderr_dumped = 1;
        fprintf(stderr, "---- VMM stderr so far ----\n%s---- end ----\n", all);
    }
}

static void test_log_handler(const gchar *domain, GLogLevelFlags level,
                             const gchar *message, gpointer opaque)
{
    dump_vmm_stderr();
    g_log_default_handler(domain, level, message, opaque);
}

/*
 * g_assert_*() failures abort without going through the log handler.
 * Not async-signal-safe, but the process is dying from its own abort()
 * on the test thread, not from an asynchronous signal.
 */
static void test_abort_handler(int sig)
{
    signal(SIGABRT, SIG_DFL);
    dump_vmm_stderr();
    raise(SIGABRT);
}

int count_own_fds(void)
{
    GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
    int n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    g_dir_close(dir);
    return n;
}

void G_GNUC_PRINTF(2, 3) add_arg(TestCtx *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(t->args, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

/* Back-end listening on DIR/vhost.sock with cfg (NULL: defaults). */
TestCtx *test_setup(const TbConfig *cfg, bool backend_is_client)
{
    TestCtx *t = g_new0(TestCtx, 1);

    t->dir = g_getenv(TEST_DIR_ENV);
    if (!t->dir) {
        g_error(TEST_DIR_ENV " not set: tests run only as test subprocesses");
    }
    t->own_fds = count_own_fds();
    t->tb = tb_new(t->dir, backend_is_client ? NULL : "vhost.sock", cfg);
    t->args = g_ptr_array_new_with_free_func(g_free);
    g_log_set_handler(NULL, G_LOG_LEVEL_ERROR | G_LOG_FLAG_FATAL, test_log_handler,
                      NULL);
    signal(SIGABRT, test_abort_handler);
    return t;
}

/* RAM with the fill pattern + one chardev; the device is added by the caller. */
void add_machine_args(TestCtx *t, const char *mem)
{
    add_arg(t, "-m");
    add_arg(t, "256M");
    if (g_strcmp0(mem, "file") == 0) {
        add_arg(t, "-object");
        add_arg(t, "memory-backend-file,id=mem,size=256M,mem-path=%s/guest-ram,share=on",
                t->dir);
        add_arg(t, "-machine");
        add_arg(t, "memory-backend=mem");
    } else if (g_strcmp0(mem, "memfd") == 0) {
        add_arg(t, "-object");
        add_arg(t, "memory-backend-memfd,id=mem,size=256M,share=on");
        add_arg(t, "-machine");
        add_arg(t, "memory-backend=mem");
    }
    add_arg(t, "-x-fill-pattern");
}

void add_client_chardev(TestCtx *t, bool reconnect)
{
    add_arg(t, "-chardev");
    add_arg(t, "socket,id=chr0,path=%s%s", tb_socket_path(t->tb),
            reconnect ? ",reconnect-ms=100" : "");
}

void add_net(TestCtx *t, unsigned queues)
{
    add_arg(t, "-netdev");
    add_arg(t, "vhost-user,id=net0,chardev=chr0,queues=%u", queues);
    add_arg(t, "-device");
    add_arg(t, "virtio-net-pci,netdev=net0%s", queues > 1 ? ",mq=on" : "");
}

/* The common case: memfd RAM, client chardev with reconnect, net queues=1. */
TestCtx *test_start_net(const TbConfig *cfg)
{
    return test_start_net_mq(cfg, 1);
}

TestCtx *test_start_net_mq(const TbConfig *cfg, unsigned queues)
{
    TestCtx *t = test_setup(cfg, false);

    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, queues);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    return t;
}

void wait_stderr_n(TestCtx *t, const char *substr, unsigned n)
{
    if (!qtest_vmm_wait_stderr_count(t->vmm, substr, n, WAIT_MS)) {
        g_error("waited %u ms for %u VMM stderr line(s) containing \"%s\", got %u%s",
                WAIT_MS, n, substr, qtest_vmm_count_stderr(t->vmm, substr),
                qtest_vmm_is_alive(t->vmm) ? "" : " (VMM exited)");
    }
}

/* Waits for a VMM stderr line containing both words. */
void wait_stderr_both(TestCtx *t, const char *a, const char *b)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_MS * 1000;

    for (;;) {
        g_autofree char *all = qtest_vmm_stderr(t->vmm);
        g_auto(GStrv) lines = g_strsplit(all, "\n", -1);

        for (unsigned i = 0; lines[i]; i++) {
            if (strstr(lines[i], a) && strstr(lines[i], b)) {
                return;
            }
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("no VMM stderr line with \"%s\" and \"%s\" within %d ms",
                    a, b, WAIT_MS);
        }
        g_usleep(20 * 1000);
    }
}

void assert_vmm_stops_cleanly(TestCtx *t)
{
    int status;

    if (!qtest_vmm_is_alive(t->vmm)) {
        g_error("the VMM exited before SIGTERM (exit status %d)",
                qtest_vmm_terminate(t->vmm, 0));
    }
    status = qtest_vmm_terminate(t->vmm, WAIT_MS);
    if (status != 0) {
        g_error("after SIGTERM the VMM %s %d, expected exit status 0",
                status < 0 ? "had to be killed:" : "exited with", status);
    }
}

void test_teardown(TestCtx *t)
{
    static const char *const sanitizer_marks[] = {
        "runtime error:", "AddressSanitizer", "LeakSanitizer",
    };

    tb_assert_no_violations(t->tb);
    qtest_vmm_kill(t->vmm);
    /* An ASan/UBSan VMM that does not halt on error still says so on stderr. */
    for (unsigned i = 0; i < G_N_ELEMENTS(sanitizer_marks); i++) {
        if (qtest_vmm_wait_stderr_count(t->vmm, sanitizer_marks[i], 1, 2000)) {
            g_error("VMM stderr reports a sanitizer error (\"%s\")", sanitizer_marks[i]);
        }
    }
    qtest_vmm_free(t->vmm);
    current_vmm = NULL;
    tb_free(t->tb);
    /* Every fd the back-end received or made is closed by now. */
    g_assert_cmpint(count_own_fds(), ==, t->own_fds);
    g_ptr_array_unref(t->args);
    g_free(t);
}

bool fd_count_at_most(TestBackend *tb, void *opaque)
{
    const int *max = opaque;
    int n = qtest_vmm_fd_count(current_vmm);

    return n >= 0 && n <= *max;
}

/* ---- Running each test in a subprocess ------------------------------- */

void qtest_rm_rf(const char *path)
{
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    if (dir) {
        while ((name = g_dir_read_name(dir))) {
            g_autofree char *child = g_build_filename(path, name, NULL);
            qtest_rm_rf(child);
        }
        g_dir_close(dir);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

typedef struct TestCase {
    void (*vfn)(void);          /* either this ... */
    GTestDataFunc fn;           /* ... or this, with data */
    gconstpointer data;
} TestCase;

static void run_test(gconstpointer opaque)
{
    const TestCase *tc = opaque;
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = NULL;

    if (g_test_subprocess()) {
        if (tc->vfn) {
            tc->vfn();
        } else {
            tc->fn(tc->data);
        }
        return;
    }
    dir = g_dir_make_tmp("vhost-user-test-XXXXXX", &err);
    g_assert_no_error(err);
    /* Inherited by the subprocess: it has no other way to learn the dir. */
    g_setenv(TEST_DIR_ENV, dir, TRUE);
    g_test_trap_subprocess(NULL, SUBPROCESS_TIMEOUT,
                           G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_unsetenv(TEST_DIR_ENV);
    qtest_rm_rf(dir);
    g_assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));
    g_test_trap_assert_passed();
}

void add_test_case(const char *path, void (*vfn)(void), GTestDataFunc fn,
                          gconstpointer data)
{
    TestCase *tc = g_new0(TestCase, 1);     /* freed by GLib with the suite */

    tc->vfn = vfn;
    tc->fn = fn;
    tc->data = data;
    g_test_add_data_func_full(path, tc, run_test, g_free);
}



void qtest_harness_init(int *argc, char ***argv)
{
    g_test_init(argc, argv, NULL);
    /*
     * GLib creates the global default context (and its eventfd) lazily,
     * e.g. when the back-end thread pushes its own context; create it now
     * so it does not count as an fd leaked by a test.
     */
    g_main_context_default();
    /* A VMM that vanishes mid-reply must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
}
