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
    int lfd;
    char *unix_path;            /* removed when done */
    GHashTable *blobs;          /* device id -> GBytes */
    bool all_ready;
    MigReturnPath *rp;          /* requests (fault thread) and the ack (load thread) */
    MigInPostcopy *pc;          /* from POSTCOPY_ADVISE */
} MigIn;

/* vmm-migrate-in.c */
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
/*
 * Loop, during postcopy, once the devices started and before the guest
 * does: no page the source still owes may have been populated by a
 * back-end's mapping (true when not in postcopy).
 */
bool mig_in_postcopy_devices_started(MigIn *in, GError **errp);
/* Whatever happened: the fault thread stopped, everything freed. */
void mig_in_postcopy_free(MigIn *in);

#endif
