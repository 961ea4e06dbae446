/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What every qtest against the real VMM shares: a test context (temp dir,
 * test back-end, VMM argv and process), VMM argv builders, waits on the
 * VMM's stderr, a clean-stop check, a teardown that checks for leaked fds
 * and sanitizer reports, and running each test case in a forked test
 * subprocess with its own temp dir.
 *
 * Each test runs in a forked test subprocess (g_test_trap_subprocess): a
 * failed assertion there aborts only the subprocess, whose VMM dies with
 * it (PR_SET_PDEATHSIG), and the parent still removes the temp dir it made.
 * Every wait has a deadline, and the subprocess has an overall timeout.
 */
#ifndef TESTS_QTEST_QTEST_HARNESS_H
#define TESTS_QTEST_QTEST_HARNESS_H

#include <glib.h>
#include <stdbool.h>

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

/* The VMM of the running test, for the failure handlers (stderr dump). */
extern QtestVmm *current_vmm;

int count_own_fds(void);
void add_arg(TestCtx *t, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Back-end listening on DIR/vhost.sock with cfg (NULL: defaults). */
TestCtx *test_setup(const TbConfig *cfg, bool backend_is_client);
/* RAM ("memfd", "file" or NULL: -m only) with the fill pattern. */
void add_machine_args(TestCtx *t, const char *mem);
void add_client_chardev(TestCtx *t, bool reconnect);
void add_net(TestCtx *t, unsigned queues);
/* The common case: memfd RAM, client chardev with reconnect, net queues=1. */
TestCtx *test_start_net(const TbConfig *cfg);
/* The same with queues pairs (cfg's queue_num must allow them). */
TestCtx *test_start_net_mq(const TbConfig *cfg, unsigned queues);
void wait_stderr_n(TestCtx *t, const char *substr, unsigned n);
/* Waits for a VMM stderr line containing both words. */
void wait_stderr_both(TestCtx *t, const char *a, const char *b);
void assert_vmm_stops_cleanly(TestCtx *t);
void test_teardown(TestCtx *t);
/* TbPredicate: the running VMM has at most *(int *)opaque fds. */
bool fd_count_at_most(TestBackend *tb, void *opaque);

/* g_test_init, plus what every qtest main needs before its first test. */
void qtest_harness_init(int *argc, char ***argv);
/* Removes path and, for a directory, everything below it. */
void qtest_rm_rf(const char *path);
/* Registers a test run in its own subprocess: vfn(), or fn(data). */
void add_test_case(const char *path, void (*vfn)(void), GTestDataFunc fn,
                   gconstpointer data);
#define ADD_VOID_TEST(path, f) add_test_case(path, f, NULL, NULL)

#endif
