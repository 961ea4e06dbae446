/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory slots of the test back-end; see test-backend-mem.h.
 */
#include <inttypes.h>
#include <stdlib.h>

#include <glib.h>

#include "test-backend-mem.h"

unsigned tb_mem_slots(const TbConfig *cfg)
{
    if (!cfg->max_mem_slots) {
        return VHOST_MEMORY_BASELINE_NREGIONS;
    }
    return MIN(cfg->max_mem_slots, TB_MAX_MEM_SLOTS);
}

/* [a, a + alen) and [b, b + blen) intersect; lengths are non-zero. */
static bool tb_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

char *tb_mem_check_add(TbRegion *regions, unsigned nslots,
                       const VhostUserMemoryRegion *d, TbRegion **slot)
{
    unsigned used = 0;

    *slot = NULL;
    for (unsigned i = 0; i < nslots; i++) {
        const VhostUserMemoryRegion *r = &regions[i].desc;

        if (!regions[i].map) {
            if (!*slot) {
                *slot = &regions[i];
            }
            continue;
        }
        used++;
        if (tb_ranges_overlap(d->guest_phys_addr, d->memory_size,
                              r->guest_phys_addr, r->memory_size)) {
            return g_strdup_printf("ADD_MEM_REG gpa=0x%" PRIx64 " size=0x%" PRIx64
                                   " overlaps the mapped region gpa=0x%" PRIx64
                                   " size=0x%" PRIx64, d->guest_phys_addr,
                                   d->memory_size, r->guest_phys_addr, r->memory_size);
        }
        if (tb_ranges_overlap(d->userspace_addr, d->memory_size,
                              r->userspace_addr, r->memory_size)) {
            return g_strdup_printf("ADD_MEM_REG gpa=0x%" PRIx64 ": user address 0x%"
                                   PRIx64 " overlaps the region at gpa=0x%" PRIx64,
                                   d->guest_phys_addr, d->userspace_addr,
                                   r->guest_phys_addr);
        }
    }
    if (!*slot) {
        return g_strdup_printf("ADD_MEM_REG beyond the %u slots of GET_MAX_MEM_SLOTS "
                               "(%u in use)", nslots, used);
    }
    return NULL;
}

TbRegion *tb_mem_find_rem(TbRegion *regions, unsigned nslots,
                          const VhostUserMemoryRegion *d, char **why)
{
    for (unsigned i = 0; i < nslots; i++) {
        const VhostUserMemoryRegion *r = &regions[i].desc;

        if (regions[i].map && r->guest_phys_addr == d->guest_phys_addr &&
            r->memory_size == d->memory_size && r->userspace_addr == d->userspace_addr) {
            return &regions[i];
        }
    }
    *why = g_strdup_printf("REM_MEM_REG gpa=0x%" PRIx64 " size=0x%" PRIx64 " uaddr=0x%"
                           PRIx64 " matches no mapped region", d->guest_phys_addr,
                           d->memory_size, d->userspace_addr);
    return NULL;
}

static int tb_region_cmp_gpa(const void *a, const void *b)
{
    const VhostUserMemoryRegion *x = a, *y = b;

    return x->guest_phys_addr < y->guest_phys_addr ? -1 :
           x->guest_phys_addr > y->guest_phys_addr;
}

unsigned tb_mem_copy_table(const TbRegion *regions, unsigned nslots,
                           VhostUserMemoryRegion *out, unsigned max)
{
    unsigned n = 0;

    for (unsigned i = 0; i < nslots && n < max; i++) {
        if (regions[i].map) {
            out[n++] = regions[i].desc;
        }
    }
    qsort(out, n, sizeof(*out), tb_region_cmp_gpa);
    return n;
}
