/* SPDX-License-Identifier: BSD-3-Clause */
/* The migration unit tests' VM; see unit-mig-vm.h. */
#include <check.h>
#include <string.h>

#include "migration/ram-stream.h"
#include "unit-mig-vm.h"

TestVm *vm_new(uint64_t size0, uint64_t size1, uint8_t fill)
{
    TestVm *vm = g_new0(TestVm, 1);
    uint64_t gpa[2] = { 0, UNIT_RAM1_GPA }, size[2] = { size0, size1 };
    GError *err = NULL;

    vm->mem = guest_memory_new();
    for (int i = 0; i < 2; i++) {
        g_autofree char *id = g_strdup_printf("ram%d", i);

        vm->block[i] = ram_block_new_memfd(id, size[i], &err);
        ck_assert_msg(vm->block[i], "%s", err ? err->message : "?");
        if (fill) {
            /* A fresh memfd reads as zeros: 0 leaves it unpopulated. */
            memset(vm->block[i]->host, fill, size[i]);
        }
        ck_assert(guest_memory_add(vm->mem, gpa[i], vm->block[i], 0, size[i], &err));
    }
    vm->nbits = (UNIT_RAM1_GPA + size1) / MIG_PAGE_SIZE;
    return vm;
}

void vm_free(TestVm *vm)
{
    guest_memory_free(vm->mem);
    ram_block_unref(vm->block[0]);
    ram_block_unref(vm->block[1]);
    g_free(vm);
}
