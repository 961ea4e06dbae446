/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small "VM" for the migration stream's unit tests: guest memory of two
 * RAM blocks (memfd), ram0 at GPA 0 and ram1 at UNIT_RAM1_GPA, a hole
 * between them.
 */
#ifndef TESTS_UNIT_UNIT_MIG_VM_H
#define TESTS_UNIT_UNIT_MIG_VM_H

#include <stdint.h>

#include "system/memory.h"

#define UNIT_RAM1_GPA   (4u * 1024 * 1024)

typedef struct TestVm {
    GuestMemory *mem;
    RamBlock *block[2];
    uint64_t nbits;             /* dirty bitmap size, in pages */
} TestVm;

/* Every byte = fill (0 leaves the memfds unpopulated). */
TestVm *vm_new(uint64_t size0, uint64_t size1, uint8_t fill);
void vm_free(TestVm *vm);

#endif
