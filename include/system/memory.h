/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM: RAM blocks backed by a shareable fd (memfd or a file), mapped
 * into the VMM, placed at guest physical addresses. The vhost layer builds
 * the back-end's memory table from this map; the guest driver and device
 * front-ends translate guest addresses through it.
 */
#ifndef SYSTEM_MEMORY_H
#define SYSTEM_MEMORY_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/vhost-user-api.h"

typedef struct RamBlock {
    char *id;                   /* -object ...,id= */
    int fd;                     /* shareable backing fd */
    uint64_t fd_offset;         /* where the block starts within fd */
    uint64_t size;
    void *host;                 /* VMM mapping (MAP_SHARED when shared) */
    bool shared;                /* share=on: a back-end may map it */
    char *path;                 /* file backend path, NULL for memfd */
    unsigned refcount;
} RamBlock;

/*
 * memory-backend-memfd: a sealed-size memfd of `size` bytes, mapped shared
 * (ram_block_new_memfd_share: shared when share is true, else private:
 * the VMM's writes then never reach the fd, so no back-end can use it).
 * memory-backend-file: `path` opened (created if missing, and extended to
 * `size`), mapped shared when share is true.
 */
VHOST_USER_API
RamBlock *ram_block_new_memfd(const char *id, uint64_t size, GError **errp);
VHOST_USER_API
RamBlock *ram_block_new_memfd_share(const char *id, uint64_t size, bool share,
                                    GError **errp);
VHOST_USER_API
RamBlock *ram_block_new_file(const char *id, const char *path, uint64_t size,
                             bool share, GError **errp);
VHOST_USER_API
RamBlock *ram_block_ref(RamBlock *rb);
VHOST_USER_API
void ram_block_unref(RamBlock *rb);

/* One RAM block placed in guest physical address space. */
typedef struct MemoryRegionMap {
    uint64_t gpa;
    uint64_t size;
    RamBlock *block;            /* referenced */
    uint64_t block_offset;      /* offset of gpa within the block */
} MemoryRegionMap;

typedef struct GuestMemory GuestMemory;

typedef void (*GuestMemoryListener)(GuestMemory *mem, void *opaque);

VHOST_USER_API
GuestMemory *guest_memory_new(void);
VHOST_USER_API
void guest_memory_free(GuestMemory *mem);

/*
 * Places [block_offset, block_offset+size) of rb at gpa. Overlapping an
 * existing region, a zero size or an out-of-block range is an error.
 */
VHOST_USER_API
bool guest_memory_add(GuestMemory *mem, uint64_t gpa, RamBlock *rb,
                      uint64_t block_offset, uint64_t size, GError **errp);
VHOST_USER_API
bool guest_memory_remove(GuestMemory *mem, uint64_t gpa, GError **errp);

/* Regions sorted by gpa; valid until the next add/remove. */
VHOST_USER_API
unsigned guest_memory_nregions(const GuestMemory *mem);
VHOST_USER_API
const MemoryRegionMap *guest_memory_region(const GuestMemory *mem, unsigned i);
/* Highest guest address + 1 (0 when empty). */
VHOST_USER_API
uint64_t guest_memory_end(const GuestMemory *mem);

/*
 * Translation. gpa_to_hva returns NULL unless [gpa, gpa+len) lies inside a
 * single region (len 0 is treated as 1).
 */
VHOST_USER_API
void *guest_memory_gpa_to_hva(const GuestMemory *mem, uint64_t gpa, uint64_t len);
VHOST_USER_API
bool guest_memory_hva_to_gpa(const GuestMemory *mem, const void *hva, uint64_t *gpa);
VHOST_USER_API
const MemoryRegionMap *guest_memory_find(const GuestMemory *mem, uint64_t gpa);

/* Copy helpers; false when the range is not backed by one region. */
VHOST_USER_API
bool guest_memory_read(const GuestMemory *mem, uint64_t gpa, void *buf, size_t len);
VHOST_USER_API
bool guest_memory_write(GuestMemory *mem, uint64_t gpa, const void *buf, size_t len);

/* Called after every add/remove, in registration order. */
VHOST_USER_API
unsigned guest_memory_add_listener(GuestMemory *mem, GuestMemoryListener fn, void *opaque);
VHOST_USER_API
void guest_memory_remove_listener(GuestMemory *mem, unsigned handle);

#endif
