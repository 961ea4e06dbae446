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

#endif
