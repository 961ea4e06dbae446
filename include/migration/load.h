/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The destination's side of a migration stream: reads the header, then
 * every section up to END, writing RAM into the destination's guest memory
 * and handing each device section to the VMM.
 */
#ifndef MIGRATION_LOAD_H
#define MIGRATION_LOAD_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#include "migration/format.h"
#include "migration/ram-stream.h"
#include "migration/stream.h"
#include "system/memory.h"
#include "util/vhost-user-api.h"

/*
 * One device's state, checksum verified. name is the instance ("blk0");
 * an error fails the load, prefixed with the device's name.
 */
typedef bool (*MigDeviceLoadFn)(const char *name, const void *data, size_t len,
                                void *opaque, GError **errp);

/*
 * Loads a whole stream into mem (its regions placed as on the source).
 * RAM_SETUP must come before any RAM_PAGES; an unknown section id fails
 * the load unless the section is flagged optional. Returns after END.
 */
VHOST_USER_API
bool mig_load(MigStream *s, GuestMemory *mem, MigDeviceLoadFn device_fn,
              void *opaque, GError **errp);

/*
 * A destination that does postcopy: what to do at each postcopy section.
 * Sections must come in order: RAM_SETUP, POSTCOPY_ADVISE (before any
 * RAM_PAGES or DEVICE), RAM_PAGES, then either DEVICE* END (the source
 * finished with precopy) or POSTCOPY_DISCARD* POSTCOPY_LISTEN DEVICE*
 * POSTCOPY_RUN RAM_PAGES* END; anything else fails the load naming the
 * section. Before LISTEN pages are written into mem; after RUN each page
 * goes to place. Each callback runs on the thread that calls mig_load_ops;
 * an error fails the load.
 */
typedef struct MigLoadOps {
    MigDeviceLoadFn device;
    /* NULL: a postcopy section fails the load (precopy only). */
    bool (*advise)(void *opaque, GError **errp);
    MigDiscardFn discard;
    bool (*listen)(void *opaque, GError **errp);
    /* Every DEVICE section of the switch has been handed over. */
    bool (*run)(void *opaque, GError **errp);
    MigRamPlaceFn place;
    /*
     * A recovery connection's 'postcopy-resume' came: tell the source
     * (return path) which pages are still missing. NULL: no recovery.
     */
    bool (*resume)(void *opaque, GError **errp);
} MigLoadOps;

/*
 * mig_load with postcopy. *postcopy (may be NULL) tells, also on failure,
 * whether the stream had reached POSTCOPY_LISTEN: from there the source
 * can no longer take the guest back.
 */
VHOST_USER_API
bool mig_load_ops(MigStream *s, GuestMemory *mem, const MigLoadOps *ops, void *opaque,
                  bool *postcopy, GError **errp);

/*
 * Postcopy recovery: the first connection broke after POSTCOPY_RUN and
 * the source connected again. Reads the header and POSTCOPY_RESUME (else
 * an error naming what came), calls ops->resume, then loads as after
 * POSTCOPY_RUN: RAM_PAGES (placed) until END.
 */
VHOST_USER_API
bool mig_load_postcopy_resume(MigStream *s, GuestMemory *mem, const MigLoadOps *ops,
                              void *opaque, GError **errp);

/*
 * A postcopy-preempt connection (the source's second, after the main one):
 * its header, 'postcopy-preempt', then 'ram-pages' sections, each page to
 * place (which must take pages from any thread: the main stream places
 * concurrently). Runs until the connection fails or is shut down (the
 * error says which); any other section fails it, naming the section.
 */
VHOST_USER_API
bool mig_load_preempt(MigStream *s, GuestMemory *mem, MigRamPlaceFn place, void *opaque,
                      GError **errp);

#endif
