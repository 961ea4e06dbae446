/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user qtest: the test process plays the back-end (test-backend.c),
 * the VMM under test (vhost-user-vmm, from $VMM_BINARY) runs as a child.
 *
 * Each test runs in a forked test subprocess (g_test_trap_subprocess): a
 * failed assertion there aborts only the subprocess, whose VMM dies with
 * it (PR_SET_PDEATHSIG), and the parent still removes the temp dir it made.
 * Every wait has a deadline, and the subprocess has an overall timeout.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "hw/virtio/vhost-user-msg.h"
#include "qtest-vmm.h"
#include "test-backend.h"

#define TEST_DIR_ENV        "VHOST_USER_TEST_DIR"
#define RAM_SIZE            (256ull << 20)
#define PAGE_SIZE           4096ull
#define FILL_XOR            0x7175656d75676976ull
#define WAIT_MS             10000
#define SUBPROCESS_TIMEOUT  (90 * G_USEC_PER_SEC)

typedef struct TestCtx {
    const char *dir;
    TestBackend *tb;
    QtestVmm *vmm;
    GPtrArray *args;            /* char *, VMM argv without argv[0] */
    int own_fds;                /* the test process's fds before setup */
} TestCtx;

/* For the failure handlers: dump what the VMM said before the test dies. */
static QtestVmm *current_vmm;
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

static int count_own_fds(void)
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

static void G_GNUC_PRINTF(2, 3) add_arg(TestCtx *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(t->args, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

/* Back-end listening on DIR/vhost.sock with cfg (NULL: defaults). */
static TestCtx *test_setup(const TbConfig *cfg, bool backend_is_client)
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
static void add_machine_args(TestCtx *t, const char *mem)
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

static void add_client_chardev(TestCtx *t, bool reconnect)
{
    add_arg(t, "-chardev");
    add_arg(t, "socket,id=chr0,path=%s%s", tb_socket_path(t->tb),
            reconnect ? ",reconnect-ms=100" : "");
}

static void add_net(TestCtx *t, unsigned queues)
{
    add_arg(t, "-netdev");
    add_arg(t, "vhost-user,id=net0,chardev=chr0,queues=%u", queues);
    add_arg(t, "-device");
    add_arg(t, "virtio-net-pci,netdev=net0%s", queues > 1 ? ",mq=on" : "");
}

/* The common case: memfd RAM, client chardev with reconnect, net queues=1. */
static TestCtx *test_start_net(const TbConfig *cfg)
{
    TestCtx *t = test_setup(cfg, false);

    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
    return t;
}

static void wait_stderr_n(TestCtx *t, const char *substr, unsigned n)
{
    if (!qtest_vmm_wait_stderr_count(t->vmm, substr, n, WAIT_MS)) {
        g_error("waited %u ms for %u VMM stderr line(s) containing \"%s\", got %u%s",
                WAIT_MS, n, substr, qtest_vmm_count_stderr(t->vmm, substr),
                qtest_vmm_is_alive(t->vmm) ? "" : " (VMM exited)");
    }
}

/* Waits for a VMM stderr line containing both words. */
static void wait_stderr_both(TestCtx *t, const char *a, const char *b)
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

static void assert_vmm_stops_cleanly(TestCtx *t)
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

static void test_teardown(TestCtx *t)
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

/* ---- read-guest-mem ----------------------------------------------------- */

static void check_fill_pattern_page(TestCtx *t, uint64_t gpa)
{
    uint64_t v;

    if (!tb_read_gpa(t->tb, 1, gpa, &v, sizeof(v))) {
        g_error("GPA 0x%" PRIx64 " is not in the mapped memory table", gpa);
    }
    if (v != (gpa ^ FILL_XOR)) {
        g_error("GPA 0x%" PRIx64 ": read 0x%016" PRIx64 ", fill pattern 0x%016" PRIx64,
                gpa, v, (uint64_t)(gpa ^ FILL_XOR));
    }
}

static void test_read_guest_mem(const char *mem)
{
    TestCtx *t = test_setup(NULL, false);

    add_machine_args(t, mem);
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    g_assert_cmpuint(tb_mem_end(t->tb, 1), ==, RAM_SIZE);
    for (uint64_t gpa = 0; gpa < 0x100000; gpa += PAGE_SIZE) {
        check_fill_pattern_page(t, gpa);
    }
    check_fill_pattern_page(t, RAM_SIZE - PAGE_SIZE);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_read_guest_mem_memfd(void)
{
    test_read_guest_mem("memfd");
}

static void test_read_guest_mem_file(void)
{
    test_read_guest_mem("file");
}

/* ---- multiqueue --------------------------------------------------------- */

static void test_multiqueue(void)
{
    static const uint32_t once[] = {
        VHOST_USER_SET_FEATURES, VHOST_USER_SET_MEM_TABLE, VHOST_USER_SET_OWNER,
        VHOST_USER_GET_QUEUE_NUM, VHOST_USER_SET_PROTOCOL_FEATURES,
    };
    TbConfig cfg;
    TestCtx *t;

    tb_config_default(&cfg);
    cfg.queue_num = 2;
    t = test_setup(&cfg, false);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 2);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    wait_stderr_n(t, "net0: started 4 rings", 1);
    tb_wait_rings_started(t->tb, 1, 4, WAIT_MS);
    for (unsigned ring = 0; ring < 4; ring++) {
        g_assert_true(tb_ring_started(t->tb, 1, ring));
    }
    g_assert_cmpuint(tb_rings_enabled(t->tb, 1), ==, 4);
    for (unsigned i = 0; i < G_N_ELEMENTS(once); i++) {
        unsigned n = tb_msg_count(t->tb, 1, once[i]);
        if (n != 1) {
            g_error("%s received %u times on the connection, expected once",
                    vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, once[i]), n);
        }
    }

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- connect-fail / flags-mismatch ------------------------------------- */

static void test_connect_fail(void)
{
    TestCtx *t = test_setup(NULL, false);

    tb_inject(t->tb, 1, 0, TB_FAULT_DROP, 0);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    tb_wait_closed(t->tb, 1, WAIT_MS);
    tb_wait_rings_started(t->tb, 2, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 1);
    wait_stderr_n(t, "net0: error:", 1);
    g_assert_cmpuint(tb_rings_started(t->tb, 1), ==, 0);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_flags_mismatch(void)
{
    TestCtx *t = test_setup(NULL, false);

    tb_inject(t->tb, 1, VHOST_USER_SET_FEATURES, TB_FAULT_DROP, 0);
    tb_inject(t->tb, 2, VHOST_USER_GET_FEATURES, TB_FAULT_VALUE, 0);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    tb_wait_closed(t->tb, 1, WAIT_MS);
    tb_wait_msg(t->tb, 2, VHOST_USER_GET_FEATURES, 1, WAIT_MS);
    wait_stderr_both(t, "net0: error:", "VERSION_1");
    /* A back-end lacking VERSION_1 must not take the VMM down. */
    g_usleep(500 * 1000);
    g_assert_true(qtest_vmm_is_alive(t->vmm));
    g_assert_cmpuint(tb_rings_started(t->tb, 2), ==, 0);
    g_assert_cmpuint(tb_msg_count(t->tb, 2, VHOST_USER_SET_VRING_KICK), ==, 0);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- reconnect ---------------------------------------------------------- */

static void test_reconnect(void)
{
    TestCtx *t = test_start_net(NULL);
    uint64_t used_gpa;
    uint16_t idx = 5;
    TbMsg *base;

    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    if (!tb_ring_used_gpa(t->tb, 1, 0, &used_gpa)) {
        g_error("ring 0's used address is not inside the memory table");
    }
    /* struct vring_used { le16 flags; le16 idx; ... } */
    g_assert_true(tb_write_gpa(t->tb, 1, used_gpa + 2, &idx, sizeof(idx)));

    /* The back-end vanishes: no GET_VRING_BASE can be answered. */
    tb_disconnect(t->tb, 1);
    tb_wait_rings_started(t->tb, 2, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 2);

    base = tb_msg_find(t->tb, 2, VHOST_USER_SET_VRING_BASE, 0);
    g_assert_nonnull(base);
    g_assert_cmpuint(base->size, ==, sizeof(VhostUserVringState));
    {
        VhostUserVringState st;
        memcpy(&st, base->payload, sizeof(st));
        g_assert_cmpuint(st.index, ==, 0);
        g_assert_cmpuint(st.num, ==, 5);
    }
    tb_msg_free(base);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- bad-reply -------------------------------------------------------- */

typedef struct BadReplyCase {
    const char *name;
    uint32_t request;
    TbFault fault;
} BadReplyCase;

static const BadReplyCase bad_reply_cases[] = {
    { "wrong-code", VHOST_USER_GET_FEATURES, TB_FAULT_WRONG_CODE },
    { "no-reply-flag", VHOST_USER_GET_FEATURES, TB_FAULT_NO_REPLY_FLAG },
    { "bad-version", VHOST_USER_GET_FEATURES, TB_FAULT_BAD_VERSION },
    { "oversized", VHOST_USER_GET_FEATURES, TB_FAULT_OVERSIZED },
    { "undersized", VHOST_USER_GET_FEATURES, TB_FAULT_UNDERSIZED },
    { "extra-fds", VHOST_USER_GET_FEATURES, TB_FAULT_EXTRA_FDS },
};

static bool fd_count_at_most(TestBackend *tb, void *opaque)
{
    const int *max = opaque;
    int n = qtest_vmm_fd_count(current_vmm);

    return n >= 0 && n <= *max;
}

static void test_bad_reply(gconstpointer data)
{
    const BadReplyCase *bc = data;
    const char *req = vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND, bc->request);
    TestCtx *t;
    int baseline;

    t = test_start_net(NULL);
    tb_inject(t->tb, 2, bc->request, bc->fault, 0);

    /* Connection 1: healthy; its steady state is the fd baseline. */
    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    /* Let transient fds (connect, eventfd setup) settle before counting. */
    g_usleep(200 * 1000);
    baseline = qtest_vmm_fd_count(t->vmm);
    g_assert_cmpint(baseline, >, 0);

    /* Connection 2: the bad reply. */
    tb_disconnect(t->tb, 1);
    tb_wait_msg(t->tb, 2, bc->request, 1, WAIT_MS);
    wait_stderr_both(t, "net0: error:", req);
    tb_wait_closed(t->tb, 2, WAIT_MS);

    /* Connection 3: healthy again, nothing left behind. */
    tb_wait_rings_started(t->tb, 3, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 2);
    if (!tb_wait_until(t->tb, fd_count_at_most, &baseline, 2000)) {
        g_error("%s: VMM has %d fds after recovery, %d before the bad reply",
                bc->name, qtest_vmm_fd_count(t->vmm), baseline);
    }
    g_assert_true(qtest_vmm_is_alive(t->vmm));

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- reply-ack ---------------------------------------------------------- */

/* Every reply-less request after SET_PROTOCOL_FEATURES carries NEED_REPLY (or none does). */
static void check_need_reply(TestCtx *t, unsigned conn, bool expect)
{
    bool negotiated = false;
    unsigned checked = 0;
    TbMsg *m;

    for (unsigned i = 0; (m = tb_msg_get(t->tb, conn, i)); i++) {
        const VhostUserMsgInfo *info =
            vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND, m->request);
        bool need = m->flags & VHOST_USER_NEED_REPLY_MASK;

        g_assert_nonnull(info);
        if (!expect && need) {
            g_error("%s carries NEED_REPLY without REPLY_ACK", info->name);
        }
        if (expect && negotiated && info->reply == VHOST_USER_RK_NONE && !need) {
            g_error("%s (message %u) has no NEED_REPLY although REPLY_ACK was "
                    "negotiated", info->name, i);
        }
        checked += negotiated && info->reply == VHOST_USER_RK_NONE;
        if (m->request == VHOST_USER_SET_PROTOCOL_FEATURES) {
            negotiated = true;
        }
        tb_msg_free(m);
    }
    if (expect) {
        g_assert_true(negotiated);
        g_assert_cmpuint(checked, >, 0);
    }
}

static void test_reply_ack(bool on)
{
    TbConfig cfg;
    TestCtx *t;

    tb_config_default(&cfg);
    if (!on) {
        cfg.protocol_features &= ~(1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    }
    t = test_start_net(&cfg);
    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    check_need_reply(t, 1, on);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_reply_ack_on(void)
{
    test_reply_ack(true);
}

static void test_reply_ack_off(void)
{
    test_reply_ack(false);
}

static void test_reply_ack_fail(void)
{
    TestCtx *t = test_setup(NULL, false);

    tb_inject(t->tb, 1, VHOST_USER_SET_MEM_TABLE, TB_FAULT_ACK_FAIL, 1);
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    tb_wait_msg(t->tb, 1, VHOST_USER_SET_MEM_TABLE, 1, WAIT_MS);
    wait_stderr_n(t, "back-end failed SET_MEM_TABLE", 1);
    /* Give a wrong VMM time to go on starting rings regardless. */
    g_usleep(300 * 1000);
    g_assert_cmpuint(tb_rings_started(t->tb, 1), ==, 0);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_VRING_KICK), ==, 0);
    g_assert_true(qtest_vmm_is_alive(t->vmm));

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- server-mode / clean-stop ----------------------------------------- */

static void test_server_mode(void)
{
    TestCtx *t = test_setup(NULL, true);
    g_autofree char *path = g_build_filename(t->dir, "vmm.sock", NULL);

    add_machine_args(t, "memfd");
    add_arg(t, "-chardev");
    add_arg(t, "socket,id=chr0,path=%s,server=on,wait=off", path);
    add_net(t, 1);
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);

    wait_stderr_n(t, "vhost-user-vmm: ready", 1);
    tb_connect(t->tb, path, WAIT_MS);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 1);

    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_clean_stop(void)
{
    TestCtx *t = test_start_net(NULL);

    wait_stderr_n(t, "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, 2, WAIT_MS);

    assert_vmm_stops_cleanly(t);
    for (unsigned ring = 0; ring < 2; ring++) {
        if (!tb_ring_stopped(t->tb, 1, ring)) {
            g_error("no GET_VRING_BASE for ring %u before the VMM exited", ring);
        }
    }
    /* stderr is drained up to EOF: the line is there or never will be. */
    wait_stderr_n(t, "net0: stopped 2 rings", 1);
    test_teardown(t);
}

/* ---- Running each test in a subprocess ------------------------------- */

static void rm_rf(const char *path)
{
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    if (dir) {
        while ((name = g_dir_read_name(dir))) {
            g_autofree char *child = g_build_filename(path, name, NULL);
            rm_rf(child);
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
    rm_rf(dir);
    g_assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));
    g_test_trap_assert_passed();
}

static void add_test_case(const char *path, void (*vfn)(void), GTestDataFunc fn,
                          gconstpointer data)
{
    TestCase *tc = g_new0(TestCase, 1);     /* freed by GLib with the suite */

    tc->vfn = vfn;
    tc->fn = fn;
    tc->data = data;
    g_test_add_data_func_full(path, tc, run_test, g_free);
}

#define ADD_VOID_TEST(path, f) add_test_case(path, f, NULL, NULL)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /*
     * GLib creates the global default context (and its eventfd) lazily,
     * e.g. when the back-end thread pushes its own context; create it now
     * so it does not count as an fd leaked by a test.
     */
    g_main_context_default();
    /* A VMM that vanishes mid-reply must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);

    ADD_VOID_TEST("/vhost-user/read-guest-mem/memfd", test_read_guest_mem_memfd);
    ADD_VOID_TEST("/vhost-user/read-guest-mem/file", test_read_guest_mem_file);
    ADD_VOID_TEST("/vhost-user/multiqueue", test_multiqueue);
    ADD_VOID_TEST("/vhost-user/connect-fail", test_connect_fail);
    ADD_VOID_TEST("/vhost-user/flags-mismatch", test_flags_mismatch);
    ADD_VOID_TEST("/vhost-user/reconnect", test_reconnect);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_reply_cases); i++) {
        g_autofree char *path = g_strdup_printf("/vhost-user/bad-reply/%s",
                                                bad_reply_cases[i].name);
        add_test_case(path, NULL, test_bad_reply, &bad_reply_cases[i]);
    }
    ADD_VOID_TEST("/vhost-user/reply-ack/on", test_reply_ack_on);
    ADD_VOID_TEST("/vhost-user/reply-ack/off", test_reply_ack_off);
    ADD_VOID_TEST("/vhost-user/reply-ack/fail", test_reply_ack_fail);
    ADD_VOID_TEST("/vhost-user/server-mode", test_server_mode);
    ADD_VOID_TEST("/vhost-user/clean-stop", test_clean_stop);

    return g_test_run();
}
