/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the migration's files share: vmm-migrate.c (state, status, events,
 * progress, QMP), vmm-migrate-out.c (the source's thread) and
 * vmm-migrate-in.c (the destination's). The rest of the VMM goes through
 * vmm/vmm-migrate.h.
 *
 * Threads: the QMP commands, the events and the progress line run on the
 * main loop; the source's rounds and the destination's load run in a
 * migration thread of their own, which reaches the device model only
 * through vmm_loop_call. Everything both read is under VmmMigrate.lock.
 */
#ifndef VMM_MIGRATE_INT_H
#define VMM_MIGRATE_INT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include <json-glib/json-glib.h>

#include "migration/postcopy-ram.h"
#include "migration/stream.h"
#include "vmm/vmm-machine.h"
#include "vmm/vmm-migrate.h"

/* What the destination writes back once it owns the guest ("VUOK"). */
#define VMM_MIGRATE_ACK             0x56554f4bu
/* How long the source waits for it after END. */
#define VMM_MIGRATE_ACK_TIMEOUT_MS  60000
/* How long the destination waits for its back-ends to negotiate. */
#define VMM_MIGRATE_READY_TIMEOUT_MS 30000
/* Rounds of dirty pages before the guest is stopped whatever remains. */
#define VMM_MIGRATE_MAX_ROUNDS      30
#define VMM_MIGRATE_DEFAULT_DOWNTIME_MS 300
#define VMM_MIGRATE_MAX_DOWNTIME_MS 2000000

typedef enum VmmMigStatus {
    VMM_MIG_NONE,
    VMM_MIG_SETUP,
    VMM_MIG_ACTIVE,
    VMM_MIG_COMPLETED,
    VMM_MIG_FAILED,
    VMM_MIG_CANCELLING,
    VMM_MIG_CANCELLED,
    VMM_MIG_POSTCOPY_ACTIVE,    /* the destination runs the guest, RAM follows */
    VMM_MIG_POSTCOPY_PAUSED,    /* the connection broke in postcopy: waits for recovery */
} VmmMigStatus;


struct VmmMigrate {
    VmmMachine *m;
    VmmMigrateFatalFn fatal;
    void *fatal_opaque;
    guint progress_timer;       /* loop only */

    GMutex lock;                /* everything below */
    VmmMigStatus status;
    bool incoming;              /* this VMM is (or was) a destination */
    bool end_sent;              /* source: past END, cancel can no longer undo */
    bool postcopy;              /* past the postcopy switch: neither can cancel */
    bool cancel;                /* migrate_cancel, or the VMM exits */
    char *error_desc;
    MigStream *stream;          /* while the thread has one, for cancel */
    int listen_fd;              /* destination, until a source connected */
    GThread *thread;
    bool thread_done;
    /* parameters */
    uint64_t max_bandwidth;     /* bytes/s, 0: unlimited */
    uint64_t downtime_limit_ms;
    bool postcopy_auto;         /* x-postcopy-auto: switch when precopy does not converge */
    MigPcSched fault_sched;     /* x-postcopy-fault-sched: threads on a fault's path */
    /* capabilities */
    bool cap_postcopy;          /* postcopy-ram */
    bool cap_preempt;           /* postcopy-preempt: requested pages on a second connection */
    /* source: migrate-start-postcopy asked; the thread switches at its next window */
    bool start_postcopy;
    char *no_tracking;          /* source: why this migration has no write tracking */
    uint64_t postcopy_requests; /* source: pages the destination asked for */
    uint64_t postcopy_followed; /* source: background windows that went where one was */
    uint64_t postcopy_rings_ahead; /* source: ring pages sent before DISCARD */
    uint64_t preempt_pages;     /* pages sent (source) or placed (destination) on the preempt connection */
    MigPostcopy *pc;            /* destination, while postcopy runs: its stats */
    struct MigInPostcopy *in_pc; /* ... and its side of it (the check at cont) */
    MigPostcopyStats pc_stats;  /* destination, the last ones once it ended */
    bool pc_stats_valid;
    /* destination: back-ends that came back while postcopy ran, advised again */
    unsigned pc_readvised;
    /* figures */
    gint64 start_us;
    gint64 setup_us;            /* setup-time */
    gint64 total_us;            /* once ended */
    gint64 downtime_ms;         /* once completed */
    uint64_t expected_downtime_ms; /* UINT64_MAX: unknown */
    uint64_t ram_total;
    uint64_t transferred;
    uint64_t remaining;
    uint64_t dirty_rate;        /* pages/s */
    uint64_t sync_count;
    uint64_t mbps_x1000;        /* Mbit/s, in thousandths */
    unsigned round;
    /* destination */
    bool autostart;             /* no -S: start the guest once loaded */
    bool wait_cont;             /* loaded with -S: cont starts the guest */
    bool defer;                 /* -incoming defer, migrate-incoming not yet given */
    bool pc_completed;          /* the last incoming migration completed in postcopy */
    /* postcopy recovery (vmm-migrate-postcopy-recover.c) */
    GCond cond;                 /* a paused thread waits here for the two below or cancel */
    char *resume_uri;           /* source: migrate resume=true asked, not yet taken */
    int recover_lfd;            /* destination: migrate-recover's socket, not yet taken */
    char *recover_path;         /* ... its unix path, removed once accepted */
};

const char *vmm_mig_status_name(VmmMigStatus s);
/* setup, active, cancelling or postcopy: a thread runs. */
bool vmm_mig_status_running(VmmMigStatus s);
/* Any thread: sets the status and emits MIGRATION from the loop. */
void vmm_mig_set_status(VmmMigrate *mm, VmmMigStatus s);
/* The same, mm->lock held. */
void vmm_mig_set_status_locked(VmmMigrate *mm, VmmMigStatus s);
/* Any thread: x-postcopy-fault-sched as it is now. */
MigPcSched vmm_mig_fault_sched(VmmMigrate *mm);
/*
 * On a thread a postcopy fault waits for (the source's request reader,
 * the destination's preempt placer), first thing: warms its stack and
 * heap (mig_pc_thread_prefault) and applies x-postcopy-fault-sched to
 * it; what names it in the status line a refusal prints.
 */
void vmm_mig_fault_thread_setup(VmmMigrate *mm, const char *what);
/* Any thread: the end of a migration thread (the VMM may wait for it). */
void vmm_mig_thread_done(VmmMigrate *mm);
/* Loop: joins a finished thread (none running afterwards). */
void vmm_mig_join(VmmMigrate *mm);
/* Loop: the progress line each second while active. */
void vmm_mig_progress_start(VmmMigrate *mm);

/* vmm-migrate-out.c, loop: checks the blockers, then starts the thread. */
bool vmm_mig_out_start(VmmMigrate *mm, const char *uri, GError **errp);
/* vmm-migrate-in.c, loop: listens and starts the thread. */
bool vmm_mig_in_start(VmmMigrate *mm, const char *uri, GError **errp);
/* Loop: the destination's postcopy figures into o (query-migrate's "postcopy"). */
void vmm_mig_postcopy_stats_json(VmmMigrate *mm, JsonObject *o);
/* Loop: the destination's postcopy progress line. */
void vmm_mig_postcopy_progress(VmmMigrate *mm);
/* Loop, QMP cont with -S: starts the loaded guest. */
bool vmm_mig_in_cont(VmmMigrate *mm, GError **errp);

/* vmm-migrate-postcopy-recover.c, loop: QMP migrate resume=true (source). */
bool vmm_mig_out_resume(VmmMigrate *mm, const char *uri, GError **errp);
/* Loop: QMP migrate-pause (either side): the connection is shut down, both pause. */
bool vmm_mig_postcopy_pause(VmmMigrate *mm, GError **errp);
/* Loop: QMP migrate-recover (destination). */
bool vmm_mig_in_recover(VmmMigrate *mm, const char *uri, GError **errp);

/* Whole elapsed ms since t0 (monotonic us). */
static inline uint64_t vmm_mig_ms_since(gint64 t0)
{
    return (uint64_t)((g_get_monotonic_time() - t0 + 999) / 1000);
}

#endif
