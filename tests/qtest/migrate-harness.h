/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Two VMM processes for migration tests: a source and a destination,
 * each with its own back-end (started by the test), a QMP client on both,
 * guest RAM in a file of the fixture's directory (memory-backend-file,
 * share=on) so the test can read either side's RAM, waits on the
 * migration status (query-migrate, MIGRATION events), a page-by-page RAM
 * compare, and a pair of network namespaces joined by a veth pair.
 *
 * Built on real-proc.h: every process dies with the test (PDEATHSIG) and
 * is reaped at teardown; every wait is bounded. Failures are reported
 * with g_test_fail_printf and a false/NULL return, so the caller can
 * still clean up (namespaces) before it returns.
 */
#ifndef TESTS_QTEST_MIGRATE_HARNESS_H
#define TESTS_QTEST_MIGRATE_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-client.h"
#include "real-proc.h"

#define MIG_RAM_MB          256
#define MIG_WAIT_MS         30000

typedef struct MigVmmOpts {
    unsigned ram_mb;            /* 0: MIG_RAM_MB */
    const char *incoming;       /* -incoming URI, or NULL for a source */
    bool frozen;                /* -S: paused after the load until cont */
    bool trace;                 /* -trace vhost_user */
    bool fill;                  /* -x-fill-pattern: no zero page, a slow stream */
    const char *netns;          /* run inside this network namespace */
    const char *const *wrap;    /* NULL-ended argv before the VMM's (it execs the VMM) */
    /*
     * RAM file on tmpfs (/dev/shm, removed by mig_vmm_free) instead of the
     * fixture's directory: postcopy places pages only into shared memory.
     */
    bool shm_ram;
} MigVmmOpts;

typedef struct MigVmm {
    char *name;
    Proc *proc;                 /* owned by the fixture */
    QmpClient *qmp;
    char *out_path;             /* its stdout: the JSON summaries */
    char *ram_path;             /* its guest RAM */
    bool ram_owned;             /* ram_path is ours to remove */
    uint64_t ram_size;
    /* mig_wait_status: the MIGRATION events it has looked at, and what it returned last. */
    unsigned ev_next;
    char ev_last[32];
} MigVmm;


/*
 * Starts the VMM called name (its files are NAME.log, NAME.json,
 * NAME.ram, NAME.qmp in f's directory) with args after the common ones,
 * and connects to its monitor. NULL, with the test failed, when it does
 * not come up.
 */
MigVmm *mig_vmm_start(Fixture *f, const char *name, const MigVmmOpts *o, GPtrArray *args);
/* Closes the monitor; the process stays with the fixture. NULL is fine. */
void mig_vmm_free(MigVmm *v);

/*
 * Appends to a (char *, freed with it) a reference-style block device on
 * sock (chardev "cb", reconnect-ms=100) with queues request queues, or a
 * vhost-user net device net0 (chardev "cn") with queues pairs, and
 * -workload when workload is not NULL.
 */
void mig_add_blk(GPtrArray *a, const char *sock, unsigned queues, const char *workload);
void mig_add_net(GPtrArray *a, const char *sock, unsigned queues, const char *workload);

/* "unix:DIR/name" for f. */
char *mig_unix_uri(Fixture *f, const char *name);

/* migrate-set-parameters: max-bandwidth in B/s, downtime-limit in ms; < 0 leaves one. */
void mig_set_params(MigVmm *v, int64_t max_bandwidth, int64_t downtime_ms);
/* migrate-set-capabilities postcopy-ram; false, with the test failed, when refused. */
bool mig_set_postcopy(MigVmm *v, bool on);
/* migrate-incoming uri (a destination started with -incoming defer). */
bool mig_incoming(MigVmm *v, const char *uri);
/* QMP migrate to uri; false, with the test failed, when it is refused. */
bool mig_migrate(MigVmm *src, const char *uri);
/* A QMP command's error description, or NULL when it succeeded (caller frees). */
char *mig_qmp_error(MigVmm *v, const char *cmd);
/* cmd fails with an error containing needle; else the test fails (false). */
bool mig_expect_error(MigVmm *v, const char *cmd, const char *needle);
/* query-migrate's return (caller unrefs). */
JsonNode *mig_query(MigVmm *v);
/*
 * query-migrate's status (caller frees); if the VMM went away before it
 * replied, how its log says the migration ended, else "gone".
 */
char *mig_status(MigVmm *v);
/*
 * Waits until the status is want or a final one (completed, failed,
 * cancelled); returns it (caller frees), or NULL with the test failed
 * when neither came in timeout_ms. A status passed between two queries
 * counts: the VMM's MIGRATION events since the last call are looked at
 * first, in order (the queries read them in), then query-migrate's.
 */
char *mig_wait_status(MigVmm *v, const char *want, unsigned timeout_ms);
/*
 * Waits until the migration is active with at least bytes of RAM sent
 * and some left, or has been active for a second (a slow stream): it is in
 * the middle. False (test failed) if it ended first.
 */
bool mig_wait_midstream(MigVmm *v, uint64_t bytes, unsigned timeout_ms);
/* True when v's MIGRATION events hold the statuses seq (NULL-ended) in that order. */
bool mig_events_in_order(MigVmm *v, const char *const *seq);
/* The MIGRATION event statuses so far, comma-separated (caller frees). */
char *mig_events_str(MigVmm *v);
/* query-status's status (caller frees). */
char *mig_run_state(MigVmm *v);

/*
 * Waits for v's end; *code gets its exit status, *out its stdout and *log
 * its stderr (both may be NULL; caller frees). False, with the test
 * failed, if it did not end within VMM_RUN_MS.
 */
bool mig_vmm_end(MigVmm *v, int *code, char **out, char **log);
/* v ended 0 and each of its n summaries is verified with 0 mismatches. */
bool mig_vmm_verified(MigVmm *v, unsigned n);
/*
 * The source's migration completes (else the test fails with what names
 * the case and the source's log), then dst ends with one verified workload.
 */
bool mig_completed_verified(MigVmm *src, MigVmm *dst, const char *what);

/*
 * Compares the RAM files of a and b page by page. Returns the number of
 * differing pages, naming the first few (with their GPA) in the test log;
 * -1 (test failed) when a file cannot be read or the sizes differ.
 */
int64_t mig_ram_compare(const MigVmm *a, const MigVmm *b);

/* An argument list whose strings it frees (for mig_add_blk and the like). */
GPtrArray *mig_args_new(void);
/* A sparse image of size bytes at path; false (test failed) if it cannot be made. */
bool mig_make_image(const char *path, uint64_t size);

/*
 * Every 512-byte sector of the image at path (size bytes) is either never
 * written (zero) or exactly what a blk workload with seed writes there in
 * some generation: nothing torn, misplaced or lost. False (test failed)
 * otherwise, or when nothing was written.
 */
bool mig_check_image(const char *path, uint64_t size, unsigned seed);

/*
 * qemu-storage-daemon on both sides (qsd-src, qsd-dst: 4 queues each,
 * sockets in f's directory) sharing a new sparse image of size bytes at
 * img, and a 4-queue blk device on each into sa and da with workload wl.
 * False (test failed) when qemu-storage-daemon is missing or fails.
 */
bool mig_qsd_pair(Fixture *f, const char *img, uint64_t size, const char *wl,
                  GPtrArray *sa, GPtrArray *da);
/*
 * After a postcopy that completed: with frozen (-S on the destination,
 * the source gone) both RAMs equal page by page, then cont; the
 * destination's workload verified and the image at img consistent.
 */
bool mig_postcopy_verify(MigVmm *src, MigVmm *dst, bool frozen, const char *img,
                         uint64_t size, unsigned seed);

/*
 * Network namespaces NAME-a and NAME-b (NAME gets the test's pid, so
 * parallel runs do not collide; namespaces left by dead runs are removed
 * first), joined by a veth pair with addr_a/24 and addr_b/24 on the two
 * ends, set up only inside the namespaces. False (test failed) on error,
 * after removing what was made.
 */
typedef struct MigNetns {
    char *a, *b;
} MigNetns;
bool mig_netns_setup(MigNetns *ns, const char *addr_a, const char *addr_b);
/* Removes both namespaces (their veth ends go with them). */
void mig_netns_cleanup(MigNetns *ns);

/*
 * dpdk-testpmd in io forwarding looped on a net_vhost port with queues
 * pairs, logging as name, its own --file-prefix (removed with
 * mig_testpmd_cleanup at the test's end).
 */
Proc *mig_start_testpmd(Fixture *f, const char *name, const char *sock, unsigned queues);
/*
 * The same, with PAGEFAULT offered (postcopy: postcopy-support=1), and
 * with its memory locked (mlockall, testpmd's default) or not
 * (--no-mlockall, what postcopy needs).
 */
Proc *mig_start_testpmd_postcopy(Fixture *f, const char *name, const char *sock,
                                 unsigned queues, bool postcopy, bool mlockall);
void mig_testpmd_cleanup(const char *name);

#endif
