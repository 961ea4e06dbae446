/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the destination's two files share: vmm-migrate-in.c (accept, the
 * load, the devices, the acknowledgement) and vmm-migrate-postcopy-in.c
 * (the postcopy sections' work, page placement, requests to the source).
 */
#ifndef VMM_MIGRATE_IN_INT_H
#define VMM_MIGRATE_IN_INT_H

#include <glib.h>
#include <stdbool.h>

#include "migration/load.h"
#include "migration/return-path.h"
#include "vmm/vmm-migrate-int.h"

typedef struct MigInPostcopy MigInPostcopy;

typedef struct MigIn {
    VmmMigrate *mm;
    VmmMachine *m;
    int lfd;                    /* -1 once closed */
    char *unix_path;            /* removed when done */
    bool preempt;               /* postcopy-preempt: lfd stays open for the second connection */
    GHashTable *blobs;          /* device id -> GBytes */
    bool all_ready;
    GMutex rp_lock;             /* rp: recovery replaces it */
    MigReturnPath *rp;          /* requests (fault thread) and the ack (load thread) */
    MigReturnPath *rp_next;     /* recovery: the new connection's, until resumed */
    uint64_t bytes_prev;        /* read on the connections before a recovery */
    MigInPostcopy *pc;          /* from POSTCOPY_ADVISE */
} MigIn;

/* vmm-migrate-in.c */
/* The listening socket closed (its unix path removed); again is a no-op. */
void mig_in_close_listener(MigIn *in);
/* Load thread: waits (bounded) until every back-end negotiated. */
bool mig_in_wait_ready(MigIn *in, GError **errp);
/* Loop: every device's state into its device, then the guest starts (unless -S). */
bool mig_in_load_cb(void *opaque, GError **errp);

/* vmm-migrate-postcopy-in.c */
/* The postcopy callbacks of the load (load thread). */
void mig_in_postcopy_ops(MigLoadOps *ops);
/*
 * After END of a stream that reached POSTCOPY_RUN: every page in, the
 * guest's start done, POSTCOPY_END to each back-end. After END of one
 * that only advised (precopy finished): POSTCOPY_END too. Load thread.
 */
bool mig_in_postcopy_end(MigIn *in, GError **errp);
/* The one connection on lfd (mm->listen_fd): then lfd closed, unix_path removed. */
int mig_in_accept_once(VmmMigrate *mm, int lfd, const char *unix_path, GError **errp);
/*
 * Loop, during postcopy, once the devices started and before the guest
 * does: no page the source still owes may have been populated by a
 * back-end's mapping (true when not in postcopy).
 */
bool mig_in_postcopy_devices_started(MigIn *in, GError **errp);
/*
 * Loop, QMP cont with -S: the same check once the devices started, if
 * postcopy still runs; a failure also fails the load (as a failed start
 * after RUN would), so the source hears it and the guest never runs here.
 */
bool mig_in_postcopy_cont_check(VmmMigrate *mm, GError **errp);
/* Whatever happened: the fault thread stopped, everything freed. */
void mig_in_postcopy_free(MigIn *in);
/* The guest runs here on postcopy (past RUN, started fine): a cut can pause. */
bool mig_in_postcopy_recoverable(MigIn *in);
/* The destination's MigPostcopy, NULL when none. */
MigPostcopy *mig_in_postcopy_ram(MigIn *in);

/* vmm-migrate-postcopy-recover.c, load thread */
/*
 * The stream broke (err, taken) past POSTCOPY_RUN: postcopy-paused until
 * migrate-recover's socket has the source again, then its recovery
 * stream is loaded to END (*sp: the stream, replaced). Pauses again on
 * another cut. False (errp): not recoverable, or the VMM exits.
 */
bool mig_in_pc_recover(MigIn *in, MigStream **sp, GError *err, GError **errp);

#endif
