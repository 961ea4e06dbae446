/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream's framing: a header (magic, version), then sections
 * (id, flags, length, payload) up to an END section. Integers are
 * big-endian. docs/devel/migration.rst has the byte-level layout.
 *
 * RAM sections: migration/ram-stream.h. The receiver's loop:
 * migration/load.h.
 */
#ifndef MIGRATION_FORMAT_H
#define MIGRATION_FORMAT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/stream.h"
#include "util/vhost-user-api.h"

#define MIG_STREAM_MAGIC            0x56554d53u     /* "VUMS" */
#define MIG_STREAM_VERSION_MAJOR    1
#define MIG_STREAM_VERSION_MINOR    0
#define MIG_STREAM_HEADER_SIZE      8

typedef enum MigSectionId {
    MIG_SECTION_END = 0,
    MIG_SECTION_RAM_SETUP = 1,
    MIG_SECTION_RAM_PAGES = 2,
    MIG_SECTION_DEVICE = 3,
    /*
     * Postcopy (docs/devel/migration.rst, "Postcopy"): in this order,
     * ADVISE < DISCARD* < LISTEN < DEVICE* < RUN < RAM_PAGES* < END.
     */
    MIG_SECTION_POSTCOPY_ADVISE = 4,    /* empty: the source may switch */
    MIG_SECTION_POSTCOPY_DISCARD = 5,   /* n x (be64 gpa, be64 len): owed */
    MIG_SECTION_POSTCOPY_LISTEN = 6,    /* empty: pages are placed from now */
    MIG_SECTION_POSTCOPY_RUN = 7,       /* empty: the destination runs the guest */
    MIG_SECTION_POSTCOPY_RESUME = 8,    /* empty: first of a recovery connection */
    /*
     * empty: first of a postcopy-preempt connection (the source's second:
     * requested pages only, RAM_PAGES* after it, no END).
     */
    MIG_SECTION_POSTCOPY_PREEMPT = 9,
} MigSectionId;

/* Ranges in one POSTCOPY_DISCARD section, at most (64 KiB of payload). */
#define MIG_DISCARD_MAX_RANGES      4096

/* A reader that does not know the id skips the section instead of failing. */
#define MIG_SECTION_F_OPTIONAL      0x0001u
#define MIG_SECTION_F_KNOWN         MIG_SECTION_F_OPTIONAL

#define MIG_SECTION_HEADER_SIZE     8
/*
 * No section is longer: a reader that buffers a payload (device state,
 * RAM setup) never allocates more, whatever the length field says.
 */
#define MIG_SECTION_MAX_LEN         (64u * 1024 * 1024)

/* Device instance names: 1..MIG_DEVICE_NAME_MAX printable ASCII bytes. */
#define MIG_DEVICE_NAME_MAX         64

typedef struct MigSectionHeader {
    uint16_t id;
    uint16_t flags;
    uint32_t length;            /* payload bytes after the section header */
} MigSectionHeader;

/*
 * "end", "ram-setup", "ram-pages", "device", "postcopy-advise",
 * "postcopy-discard", "postcopy-listen", "postcopy-run", "postcopy-resume",
 * "postcopy-preempt"; NULL for an unknown id.
 */
const char *mig_section_name(uint16_t id);

/* CRC32C (Castagnoli), as iSCSI and ext4 use it; crc starts at 0. */
uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len);

VHOST_USER_API
bool mig_save_header(MigStream *s, GError **errp);
/* Refuses another magic or major version, naming what was found and expected. */
bool mig_load_header(MigStream *s, GError **errp);

bool mig_save_section_header(MigStream *s, MigSectionId id, uint16_t flags,
                             uint32_t length, GError **errp);
/*
 * Reads and bounds a section header: unknown flag bits and lengths above
 * MIG_SECTION_MAX_LEN are refused. The id is the caller's to check.
 */
bool mig_load_section_header(MigStream *s, MigSectionHeader *h, GError **errp);

/* A DEVICE section: the instance name and its state, checksummed. */
VHOST_USER_API
bool mig_save_device(MigStream *s, const char *name, const void *data,
                     size_t len, GError **errp);
/*
 * Reads the payload of a DEVICE section of `length` bytes (its header
 * already read). On success *name and *data are the caller's to g_free.
 */
bool mig_load_device(MigStream *s, uint32_t length, char **name,
                     void **data, size_t *len, GError **errp);

/*
 * An empty postcopy section (ADVISE, LISTEN, RUN, RESUME, PREEMPT); flushes the stream, so
 * the destination acts on it at once.
 */
VHOST_USER_API
bool mig_save_postcopy_section(MigStream *s, MigSectionId id, GError **errp);
/*
 * A POSTCOPY_DISCARD section: n ranges (1..MIG_DISCARD_MAX_RANGES) of
 * pages the source still owes, ranges[2 * i] the GPA and ranges[2 * i + 1]
 * the length, both 4 KiB aligned.
 */
VHOST_USER_API
bool mig_save_postcopy_discard(MigStream *s, const uint64_t *ranges, unsigned n,
                               GError **errp);
/*
 * Reads a POSTCOPY_DISCARD payload of `length` bytes and hands each range
 * to fn. A length that is not a whole number of 16-byte ranges, no range,
 * more than MIG_DISCARD_MAX_RANGES, an empty, unaligned or wrapping range
 * is refused before fn sees any of it. fn checks the range against guest
 * RAM.
 */
typedef bool (*MigDiscardFn)(uint64_t gpa, uint64_t len, void *opaque, GError **errp);
bool mig_load_postcopy_discard(MigStream *s, uint32_t length, MigDiscardFn fn,
                               void *opaque, GError **errp);

/* The END section; flushes the stream. */
VHOST_USER_API
bool mig_save_end(MigStream *s, GError **errp);

#endif
