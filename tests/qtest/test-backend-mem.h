/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory slots of the test back-end (private to test-backend.c): the
 * region table of one connection and the checks that ADD_MEM_REG and
 * REM_MEM_REG must pass. They make a front-end whose idea of the table
 * drifts from the back-end's fail the test at the first wrong message,
 * not later at a stray guest access: a region added twice or over
 * another, removed without ever being added, or one too many.
 */
#ifndef TESTS_QTEST_TEST_BACKEND_MEM_H
#define TESTS_QTEST_TEST_BACKEND_MEM_H

#include <stdbool.h>
#include <stddef.h>

#include "util/vhost-user-proto.h"
#include "test-backend.h"

typedef struct TbRegion {
    VhostUserMemoryRegion desc;
    void *map;                  /* NULL: slot unused */
    size_t map_len;
} TbRegion;

/* The slot count the back-end advertises (TbConfig.max_mem_slots or 8). */
unsigned tb_mem_slots(const TbConfig *cfg);

/*
 * ADD_MEM_REG of d into regions[0..nslots): NULL and *slot = a free
 * slot, or why the front-end was wrong (caller frees): no slot left, or
 * d overlaps a mapped region in guest physical or front-end virtual
 * address space.
 */
char *tb_mem_check_add(TbRegion *regions, unsigned nslots,
                       const VhostUserMemoryRegion *d, TbRegion **slot);

/*
 * REM_MEM_REG of d: the mapped region with d's guest address, size and
 * user address (the spec's identity; mmap_offset is ignored), or NULL
 * with *why set (caller frees).
 */
TbRegion *tb_mem_find_rem(TbRegion *regions, unsigned nslots,
                          const VhostUserMemoryRegion *d, char **why);

/* Copies the mapped regions' descriptors, sorted by guest address. */
unsigned tb_mem_copy_table(const TbRegion *regions, unsigned nslots,
                           VhostUserMemoryRegion *out, unsigned max);

#endif
