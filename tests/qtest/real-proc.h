/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Child processes for the tests against real back-ends (testpmd,
 * qemu-storage-daemon, our reference back-end) and the VMM: each runs in
 * the fixture's temporary directory with its output in a log there, gets
 * SIGKILL if the test dies (PR_SET_PDEATHSIG), and is killed and reaped
 * at teardown; every wait is bounded. Plus the few JSON look-ups the
 * tests make in the VMM's one-line summaries.
 */
#ifndef TESTS_QTEST_REAL_PROC_H
#define TESTS_QTEST_REAL_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#define SPAWN_WAIT_MS       20000   /* a back-end's socket must appear by then */
#define VMM_RUN_MS          40000   /* a whole workload run */
#define TERM_WAIT_MS        5000    /* SIGTERM to exit, before SIGKILL */

typedef struct Proc {
    char *name;
    char *log;                  /* stdout + stderr (VMM: stderr only) */
    GPid pid;
    int stdin_w;                /* write end of its stdin pipe, or -1 */
    bool reaped;
    int wstatus;
} Proc;

typedef struct Fixture {
    char *dir;
    GPtrArray *procs;           /* Proc, killed and reaped at teardown */
    char *dpdk_prefix;          /* --file-prefix, its runtime dir is removed */
} Fixture;

/* Reaps p if it exited; true once it has. */
bool proc_poll(Proc *p);
/* Waits up to timeout_ms for the exit; true when it exited. */
bool proc_wait(Proc *p, unsigned timeout_ms);
/* SIGTERM, a bounded wait, then SIGKILL; always reaps. */
void proc_stop(Proc *p);
/* Its log file's content (newly allocated). */
char *proc_log(const Proc *p);
/* proc_log for qmp_client_connect_log (a QmpClientLogFn). */
char *proc_log_cb(void *p);
/*
 * Spawns argv in f's directory with stdout to out_path (or the log when
 * NULL), stderr to the log and, with stdin_pipe, stdin from a pipe kept
 * open (testpmd exits at EOF on stdin). NULL with the test failed when it
 * cannot start.
 */
Proc *proc_spawn(Fixture *f, const char *name, GPtrArray *argv,
                 bool stdin_pipe, const char *out_path);
/* Waits for a unix socket at path; fails the test (with p's log) if not. */
bool wait_socket(Proc *p, const char *path);
bool wait_log(Proc *p, const char *needle, unsigned n, unsigned timeout_ms);
/* False, with the test failed naming the Debian package, when prog is missing. */
bool require_program(const char *prog, const char *package);
/* $VMM_BINARY, or NULL with the test failed. */
const char *vmm_binary(void);
/*
 * Runs the VMM with args to its end. Returns its stdout (the JSON lines)
 * or NULL with the test failed; *exit_code gets the exit status.
 */
char *run_vmm(Fixture *f, const char *name, GPtrArray *args, int *exit_code);
/* How many times needle occurs in haystack. */
unsigned qtest_count(const char *haystack, const char *needle);
/* The unsigned number after "key": in a one-line JSON object, or -1. */
int64_t json_uint(const char *json, const char *key);
bool json_true(const char *json, const char *key);
/*
 * Waits for a VMM started with proc_spawn (stdout to out_path) to end;
 * *code gets its exit status, *out its stdout (or NULL) and *log its
 * stderr, which also goes to the test log. False, with the test failed,
 * when it did not end in time.
 */
bool vmm_collect(Proc *vmm, const char *out_path, int *code, char **out, char **log);

/*
 * qemu-storage-daemon exporting the raw image img as vhost-user-blk on
 * sock with queues queues; NULL (test failed) when its socket never came.
 */
Proc *proc_start_qsd(Fixture *f, const char *img, const char *sock, unsigned queues);
/* The same under the process name name; shared: locking=off (two daemons, one image). */
Proc *proc_start_qsd_named(Fixture *f, const char *name, const char *img, const char *sock,
                           unsigned queues, bool shared);
/*
 * Our reference back-end ($REF_BACKEND) of type (net or blk) on sock,
 * logging as name; blk_file/blk_size (NULL/0: its defaults) back the
 * disk; client: it connects to the VMM's socket instead of listening.
 */
Proc *proc_start_ref(Fixture *f, const char *name, const char *type, const char *sock,
                     unsigned queues, const char *blk_file, uint64_t blk_size, bool client);

/*
 * testpmd with a net_vhost port in io forwarding, looped to itself: every
 * packet the guest sends comes back. client: it connects to our socket
 * (the VMM listens) instead of listening; then no socket is waited for.
 * One --file-prefix per fixture (runtime files removed at teardown).
 */
Proc *proc_start_testpmd(Fixture *f, const char *sock, unsigned queues, bool client,
                         bool jumbo);

/*
 * DPDK's vhost_blk example (a RAM disk), built by $DPDK_VHOST_BLK_BUILD
 * into $DPDK_VHOST_BLK_DIR, listening on f's directory/vhost.socket (it
 * puts its socket in its working directory). packed_fix: the build with
 * its packed-ring bug fixed (scripts/build-dpdk-vhost-blk.sh --packed-fix
 * says which). NULL (test failed) when it cannot be built or started.
 */
Proc *proc_start_dpdk_blk(Fixture *f, bool packed_fix);
/* Removes the directory path and the files in it (no subdirectories). */
void proc_remove_tree(const char *path);

void fixture_setup(Fixture *f, gconstpointer data);
void fixture_teardown(Fixture *f, gconstpointer data);

#endif
