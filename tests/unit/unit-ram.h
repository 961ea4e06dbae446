/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM for unit tests: one memfd block mapped at GPA 0, made and
 * dropped by a Check fixture.
 */
#ifndef TESTS_UNIT_UNIT_RAM_H
#define TESTS_UNIT_UNIT_RAM_H

#include <check.h>

#include "system/memory.h"

static inline void unit_ram_setup(uint64_t size, RamBlock **rb, GuestMemory **mem)
{
    GError *err = NULL;

    *rb = ram_block_new_memfd("ram", size, &err);
    ck_assert_msg(*rb, "memfd: %s", err ? err->message : "?");
    *mem = guest_memory_new();
    ck_assert(guest_memory_add(*mem, 0, *rb, 0, size, &err));
}

static inline void unit_ram_teardown(RamBlock *rb, GuestMemory *mem)
{
    guest_memory_free(mem);
    ram_block_unref(rb);
}

#endif
