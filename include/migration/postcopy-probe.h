/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What postcopy (postcopy-ram.c) needs of the kernel and of the RAM
 * blocks, each checked with an error that says what is missing: shared
 * memory blocks, a userfaultfd that handles shared memory, MISSING
 * registration with copy, zeropage and wake. Internal to the library.
 */
#ifndef MIGRATION_POSTCOPY_PROBE_H
#define MIGRATION_POSTCOPY_PROBE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "system/memory.h"

/* Every block of mem is shared memory (memfd or tmpfs) with an fd. */
bool mig_postcopy_blocks_usable(const GuestMemory *mem, GError **errp);

/* A non-blocking userfaultfd, API handshake done, shared memory supported. */
int mig_postcopy_uffd_new(GError **errp);

/*
 * Registers [host, host + size) MISSING on ufd; the range must offer
 * UFFDIO_COPY, _ZEROPAGE and _WAKE. Errors start with id (the block).
 */
bool mig_postcopy_uffd_register(int ufd, void *host, uint64_t size,
                                const char *id, GError **errp);

/* Registration on a one-page shared memfd: what listen will ask of the kernel. */
bool mig_postcopy_probe_shmem(int ufd, GError **errp);

#endif
