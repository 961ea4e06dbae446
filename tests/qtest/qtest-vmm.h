/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The VMM under test as a subprocess: spawn it with an argv built by the
 * test, watch its stderr (status lines), count its fds, stop it.
 *
 * The VMM gets SIGKILL if the test process dies first (PR_SET_PDEATHSIG),
 * so a failed assertion never leaves a VMM behind.
 */
#ifndef TESTS_QTEST_QTEST_VMM_H
#define TESTS_QTEST_QTEST_VMM_H

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct QtestVmm QtestVmm;

/*
 * Spawns $VMM_BINARY with args (NULL-terminated, without argv[0]).
 * Fails the test with a clear message when VMM_BINARY is unset or the
 * spawn fails. stderr is captured (echoed as "vmm: ..." when V=1).
 */
QtestVmm *qtest_vmm_spawn(const char *const *args);
/* Same, args given as a GPtrArray of char * (not NULL-terminated). */
QtestVmm *qtest_vmm_spawnv(GPtrArray *args);
/*
 * Any program the same way (a real back-end: looked up in PATH unless it
 * contains a '/'), its stdout and stderr both captured. With stdin_pipe,
 * its stdin is a pipe kept open until the free (testpmd exits on EOF).
 */
QtestVmm *qtest_proc_spawn(const char *binary, const char *const *args,
                           bool stdin_pipe);
/* Kills (SIGKILL) if still running, reaps, frees. NULL is fine. */
void qtest_vmm_free(QtestVmm *vmm);

pid_t qtest_vmm_pid(const QtestVmm *vmm);

/* True while the process has not exited (reaps it when it has). */
bool qtest_vmm_is_alive(QtestVmm *vmm);

/* Number of complete stderr lines that contain substr. */
unsigned qtest_vmm_count_stderr(QtestVmm *vmm, const char *substr);
/*
 * Waits until at least `count` stderr lines contain substr. Returns false
 * on timeout or when the VMM's stderr closed first.
 */
bool qtest_vmm_wait_stderr_count(QtestVmm *vmm, const char *substr, unsigned count,
                                 unsigned timeout_ms);
/* Waits for one line containing substr; fails the test on timeout. */
void qtest_vmm_wait_for_stderr_line(QtestVmm *vmm, const char *substr,
                                    unsigned timeout_ms);
/* All stderr so far (caller frees). */
char *qtest_vmm_stderr(QtestVmm *vmm);
/* qtest_vmm_stderr for qmp_client_connect_log (a QmpClientLogFn). */
char *qtest_vmm_log_cb(void *vmm);
/*
 * All of stdout once the process closed it (caller frees), waiting up to
 * timeout_ms for that; NULL on timeout. Stderr is complete by then too.
 */
char *qtest_vmm_stdout_at_exit(QtestVmm *vmm, unsigned timeout_ms);

/* Entries of /proc/PID/fd, or -1 when the process is gone. */
int qtest_vmm_fd_count(QtestVmm *vmm);

/*
 * SIGTERM, then waits up to timeout_ms for the exit (SIGKILL after that).
 * Returns the exit code, 128 + signal if killed by a signal, or -1 if it
 * had to be killed after the timeout.
 */
int qtest_vmm_terminate(QtestVmm *vmm, unsigned timeout_ms);
/* Waits up to timeout_ms for the exit: its code as terminate's, -1 on timeout. */
int qtest_vmm_wait_exit(QtestVmm *vmm, unsigned timeout_ms);
/* SIGKILL and reap. */
void qtest_vmm_kill(QtestVmm *vmm);

#endif
