/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the migration stream's unit tests share (test-migration-stream.c:
 * round trips and transport; test-migration-stream-untrusted.c: corrupt,
 * cut and crafted streams): a patterned source, a whole migration written
 * or recorded, loading recorded bytes, and postcopy's placed loader
 * checking each page against the source.
 */
#ifndef TESTS_UNIT_UNIT_MIG_STREAM_H
#define TESTS_UNIT_UNIT_MIG_STREAM_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/stream.h"
#include "unit-mig-vm.h"

/* Every third page zero, the others a pattern naming block and page. */
void vm_fill_pattern(TestVm *vm);
void assert_same_ram(TestVm *a, TestVm *b);
void set_bit(uint64_t *bitmap, uint64_t gpa);

/*
 * A whole migration: setup, a first round of every page, a second round
 * of pages the guest changed meanwhile, two devices (blk0, net0), END.
 */
void send_migration(MigStream *s, TestVm *src);

/* The device sections a load saw, in order. */
typedef struct Loaded {
    GPtrArray *names;
    GPtrArray *states;
} Loaded;

bool record_device(const char *name, const void *data, size_t len, void *opaque,
                   GError **errp);
Loaded loaded_new(void);
/* The two devices of send_migration, with their states; frees l's arrays. */
void assert_devices(Loaded *l);

/* A memfd holding len bytes of buf, at offset 0. */
int memfd_with(const void *buf, size_t len);
typedef void (*Writer)(MigStream *s, void *opaque);

/* What writer puts in a stream, as bytes. */
GByteArray *record(Writer writer, void *opaque);
/* The whole migration of a patterned source, recorded. */
GByteArray *record_migration(void);
/* Loads len bytes of buf into dst (devices recorded, then dropped). */
bool load_bytes(const void *buf, size_t len, TestVm *dst, GError **errp);
/* Loads and expects failure with code and every string of the NULL-ended list. */
void assert_load_fails(const void *buf, size_t len, int code, ...);

/* Postcopy's page answers: each page of the range handed to place, checked against src. */
typedef struct Placed {
    TestVm *src;
    uint64_t next_gpa;          /* the page expected next */
    unsigned pages, zero;
    uint64_t fail_gpa;          /* place refuses this one (0: none) */
} Placed;

bool check_place(uint64_t gpa, const void *data, void *opaque, GError **errp);
/* The RAM_PAGES sections of bytes through place: how many, or 0 on error. */
unsigned load_placed(GByteArray *bytes, TestVm *dst, Placed *p, GError **errp);

#endif
