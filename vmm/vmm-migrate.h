/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live migration (precopy) of the reference VMM, with QEMU's interface:
 *
 *   source       QMP migrate {"uri": "unix:PATH" | "tcp:HOST:PORT"}: the
 *                blockers are checked at once (a device without dirty
 *                logging is named), then a migration thread sends all of
 *                guest RAM, then round after round what the guest and the
 *                back-ends dirtied, until the rest fits in downtime-limit;
 *                then it stops the guest (finish-migrate), sends the rest
 *                and each device's state, and waits for the destination's
 *                acknowledgement before it declares the migration
 *                completed (postmigrate). Any failure before that resumes
 *                the guest here.
 *   destination  -incoming URI|defer (then QMP migrate-incoming): loads
 *                the stream into guest RAM, each device's state into its
 *                device once its back-end negotiated, starts the guest
 *                (not with -S: QMP cont does), and acknowledges. A failed
 *                load ends the VMM with exit status 1.
 *
 * Also query-migrate, migrate-set-parameters (max-bandwidth,
 * downtime-limit), query-migrate-parameters, migrate_cancel, the
 * MIGRATION event, and a progress line each second while active.
 */
#ifndef VMM_MIGRATE_H
#define VMM_MIGRATE_H

#include <glib.h>
#include <stdbool.h>

#include "vmm/vmm-machine.h"
#include "vmm/vmm-monitor.h"

typedef struct VmmMigrate VmmMigrate;

/* Called on the loop when an incoming migration failed: the VMM exits 1. */
typedef void (*VmmMigrateFatalFn)(void *opaque);

/* One per VMM (the migration state is the process's, like the run state). */
VmmMigrate *vmm_migrate_new(VmmMachine *m, VmmMigrateFatalFn fatal, void *opaque);
/*
 * Ends a migration still running (cancelled; a destination's load fails),
 * waits for its thread while serving the loop, and frees. After the main
 * loop stopped, before the monitor and the machine go. NULL is fine.
 */
void vmm_migrate_free(VmmMigrate *mm);

/*
 * Postcopy is paused: the guest is split between two VMMs and waits for a
 * recovery. Workloads cannot wind down then (the source's guest is
 * stopped, the destination's may wait for a page that cannot come), so
 * quitting does not wait for them. NULL: false.
 */
bool vmm_migrate_postcopy_paused(VmmMigrate *mm);

/* Registers the QMP commands on mon and sends it the MIGRATION events. */
void vmm_migrate_register(VmmMigrate *mm, VmmMonitor *mon);
/* Before mon is freed. */
void vmm_migrate_unregister(VmmMigrate *mm);

/*
 * -incoming URI (or "defer"), before the main loop runs: the machine
 * becomes incoming (run state inmigrate) and, unless deferred, listens.
 * autostart false (-S): the loaded guest waits for QMP cont.
 */
bool vmm_migrate_incoming(VmmMigrate *mm, const char *uri, bool autostart,
                          GError **errp);

/*
 * Why guest RAM may not change now ("migration is active"), or NULL when
 * it may: memory hotplug is refused from migrate until the migration
 * ended, and on a destination until its guest was loaded.
 */
const char *vmm_migration_blocks_hotplug(void);

#endif
