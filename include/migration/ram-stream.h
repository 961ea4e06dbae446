/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM in the migration stream. RAM_SETUP lists the source's RAM
 * regions (block id, block size, GPA, offset in the block, size); the
 * destination's must match one for one. RAM_PAGES carries runs of pages of
 * one region: a run of zero pages costs a 16-byte record, a run of data
 * pages the record and the pages.
 *
 * The guest memory map must not change between the setup and the last
 * page section (the VMM refuses memory hotplug while migrating).
 */
#ifndef MIGRATION_RAM_STREAM_H
#define MIGRATION_RAM_STREAM_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/stream.h"
#include "system/memory.h"
#include "util/vhost-user-api.h"

#define MIG_PAGE_SIZE               4096u

/* Run flags: exactly one is set. */
#define MIG_RAM_RUN_ZERO            0x0001u
#define MIG_RAM_RUN_DATA            0x0002u
#define MIG_RAM_RUN_HEADER_SIZE     16

/* At most this many regions in RAM_SETUP (above vhost-user's 509 slots). */
#define MIG_RAM_MAX_REGIONS         1024
#define MIG_RAM_BLOCK_ID_MAX        255

/* The RAM_SETUP section for mem's regions. */
VHOST_USER_API
bool mig_ram_save_setup(MigStream *s, const GuestMemory *mem, GError **errp);

/*
 * Sends the pages whose bit is set in bitmap (bit i of word i / 64: the
 * 4 KiB page at GPA i * 4096, the vhost dirty log's layout) as RAM_PAGES
 * sections; bitmap NULL sends every page (the first round). nbits must
 * cover every region. *bytes_sent (may be NULL): bytes this call put in
 * the stream.
 */
VHOST_USER_API
bool mig_ram_save_dirty(MigStream *s, const GuestMemory *mem,
                        const uint64_t *bitmap, uint64_t nbits,
                        uint64_t *bytes_sent, GError **errp);

/*
 * Sends npages pages from gpa (4 KiB aligned, inside one region: else an
 * error) as one RAM_PAGES section: postcopy's answer to a page request.
 * Zero pages and holes go as zero runs.
 */
VHOST_USER_API
bool mig_ram_save_range(MigStream *s, const GuestMemory *mem, uint64_t gpa,
                        uint64_t npages, uint64_t *bytes_sent, GError **errp);

/*
 * The destination side of each section, its header read: length is the
 * payload length. load_setup compares the source's regions with mem's and
 * refuses any difference, naming the block and both values.
 */
bool mig_ram_load_setup(MigStream *s, uint32_t length, const GuestMemory *mem,
                        GError **errp);
/* Writes each page into mem after checking the region index and bounds. */
bool mig_ram_load_pages(MigStream *s, uint32_t length, GuestMemory *mem,
                        GError **errp);

/*
 * Postcopy's placement: page gpa's 4 KiB (data NULL: a zero page), after
 * the same checks as above. An error fails the load.
 */
typedef bool (*MigRamPlaceFn)(uint64_t gpa, const void *data, void *opaque,
                              GError **errp);
/* mig_ram_load_pages, but every page goes through place instead of memcpy. */
bool mig_ram_load_pages_placed(MigStream *s, uint32_t length, GuestMemory *mem,
                               MigRamPlaceFn place, void *opaque, GError **errp);

#endif
