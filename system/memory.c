/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM: fd-backed RAM blocks and the guest physical address map.
 *
 * Every block is backed by an fd a back-end can map (memfd or a file), so
 * the memory table sent over vhost-user can describe it as (fd, offset).
 * The map is a small array sorted by guest address: lookups are a binary
 * search, and a VMM has a handful of regions, so inserts need nothing
 * cleverer than a memmove.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "system/memory.h"

typedef struct MemoryListenerEntry {
    unsigned handle;
    GuestMemoryListener fn;
    void *opaque;
} MemoryListenerEntry;

struct GuestMemory {
    GArray *regions;            /* MemoryRegionMap, sorted by gpa, disjoint */
    GArray *listeners;          /* MemoryListenerEntry, registration order */
    unsigned next_handle;
};

/* ---- RAM blocks ------------------------------------------------------- */

static bool ram_block_check_size(const char *id, uint64_t size, GError **errp)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

    /*
     * A back-end maps whole pages; a block whose size is not a page
     * multiple would leave a tail the back-end can see but we do not
     * describe, so refuse it rather than round silently.
     */
    if (size == 0 || size % page != 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: size %" PRIu64 " must be a non-zero multiple of the "
                    "page size %" PRIu64, id, size, page);
        return false;
    }
    if (size > (uint64_t)SIZE_MAX || size > (uint64_t)INT64_MAX) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: size %" PRIu64 " is too large", id, size);
        return false;
    }
    return true;
}

/* Maps fd and wraps it into a block; takes ownership of fd and path. */
static RamBlock *ram_block_finish(const char *id, int fd, char *path,
                                  uint64_t size, bool share, GError **errp)
{
    void *host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      share ? MAP_SHARED : MAP_PRIVATE, fd, 0);
    RamBlock *rb;

    if (host == MAP_FAILED) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: mmap of %" PRIu64 " bytes failed: %s",
                    id, size, g_strerror(err));
        close(fd);
        g_free(path);
        return NULL;
    }

    rb = g_new0(RamBlock, 1);
    rb->id = g_strdup(id);
    rb->fd = fd;
    rb->fd_offset = 0;
    rb->size = size;
    rb->host = host;
    rb->shared = share;
    rb->path = path;
    rb->refcount = 1;
    return rb;
}

RamBlock *ram_block_new_memfd(const char *id, uint64_t size, GError **errp)
{
    return ram_block_new_memfd_share(id, size, true, errp);
}

RamBlock *ram_block_new_memfd_share(const char *id, uint64_t size, bool share,
                                    GError **errp)
{
    int fd;

    if (!ram_block_check_size(id, size, errp)) {
        return NULL;
    }
    fd = memfd_create(id, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: memfd_create failed: %s", id, g_strerror(err));
        return NULL;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: ftruncate of memfd to %" PRIu64 " bytes failed: %s",
                    id, size, g_strerror(err));
        close(fd);
        return NULL;
    }
    /*
     * Seal the size: a back-end that maps the fd must never be able to
     * shrink it under us (SIGBUS in the VMM) nor grow it.
     */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: sealing memfd failed: %s", id, g_strerror(err));
        close(fd);
        return NULL;
    }
    return ram_block_finish(id, fd, NULL, size, share, errp);
}

RamBlock *ram_block_new_file(const char *id, const char *path, uint64_t size,
                             bool share, GError **errp)
{
    struct stat st;
    char *used_path;
    int fd;

    if (!ram_block_check_size(id, size, errp)) {
        return NULL;
    }
    if (!path || !*path) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: mem-path is empty", id);
        return NULL;
    }

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* A directory (e.g. a hugetlbfs mount): back with a fresh file in it. */
        used_path = g_build_filename(path, "vhost-user-ram.XXXXXX", NULL);
        fd = g_mkstemp_full(used_path, O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) {
            /* Nobody else should open it by name; the fd keeps it alive. */
            unlink(used_path);
        }
    } else {
        used_path = g_strdup(path);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: cannot open mem-path '%s': %s", id, used_path,
                    g_strerror(err));
        g_free(used_path);
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: fstat of '%s' failed: %s", id, used_path, g_strerror(err));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: mem-path '%s' is not a regular file", id, used_path);
        goto fail;
    }
    /* Extend a short file: touching a page past EOF would SIGBUS. */
    if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: extending '%s' to %" PRIu64 " bytes failed: %s",
                    id, used_path, size, g_strerror(err));
        goto fail;
    }
    return ram_block_finish(id, fd, used_path, size, share, errp);

fail:
    close(fd);
    g_free(used_path);
    return NULL;
}

RamBlock *ram_block_ref(RamBlock *rb)
{
    if (rb) {
        rb->refcount++;
    }
    return rb;
}

void ram_block_unref(RamBlock *rb)
{
    if (!rb) {
        return;
    }
    g_assert(rb->refcount > 0);
    if (--rb->refcount > 0) {
        return;
    }
    munmap(rb->host, rb->size);
    close(rb->fd);
    g_free(rb->path);
    g_free(rb->id);
    g_free(rb);
}

/* ---- The guest physical map -------------------------------------------- */

GuestMemory *guest_memory_new(void)
{
    GuestMemory *mem = g_new0(GuestMemory, 1);

    mem->regions = g_array_new(FALSE, TRUE, sizeof(MemoryRegionMap));
    mem->listeners = g_array_new(FALSE, TRUE, sizeof(MemoryListenerEntry));
    mem->next_handle = 1;
    return mem;
}

void guest_memory_free(GuestMemory *mem)
{
    if (!mem) {
        return;
    }
    for (guint i = 0; i < mem->regions->len; i++) {
        ram_block_unref(g_array_index(mem->regions, MemoryRegionMap, i).block);
    }
    g_array_free(mem->regions, TRUE);
    g_array_free(mem->listeners, TRUE);
    g_free(mem);
}

static void guest_memory_notify(GuestMemory *mem)
{
    /*
     * Walk by handle rather than by pointer: a listener may add or remove
     * listeners, which reallocates the array.
     */
    for (guint i = 0; i < mem->listeners->len; i++) {
        MemoryListenerEntry e = g_array_index(mem->listeners, MemoryListenerEntry, i);

        e.fn(mem, e.opaque);
    }
}

/* Index of the first region whose end is above gpa (may be len). */
static guint guest_memory_lower_bound(const GuestMemory *mem, uint64_t gpa)
{
    guint lo = 0, hi = mem->regions->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const MemoryRegionMap *r = &g_array_index(mem->regions, MemoryRegionMap, mid);

        if (r->gpa + r->size <= gpa) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool guest_memory_add(GuestMemory *mem, uint64_t gpa, RamBlock *rb,
                      uint64_t block_offset, uint64_t size, GError **errp)
{
    MemoryRegionMap r;
    guint pos;

    g_assert(mem && rb);
    if (size == 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: guest memory region at 0x%" PRIx64 " has size 0",
                    rb->id, gpa);
        return false;
    }
    if (block_offset > rb->size || size > rb->size - block_offset) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: range [0x%" PRIx64 ", +0x%" PRIx64 ") lies outside "
                    "the block of 0x%" PRIx64 " bytes",
                    rb->id, block_offset, size, rb->size);
        return false;
    }
    if (gpa + size < gpa) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: guest range 0x%" PRIx64 " + 0x%" PRIx64
                    " wraps the address space", rb->id, gpa, size);
        return false;
    }

    pos = guest_memory_lower_bound(mem, gpa);
    if (pos < mem->regions->len) {
        const MemoryRegionMap *next = &g_array_index(mem->regions, MemoryRegionMap, pos);

        /* next ends above gpa; it overlaps unless it starts at or after our end. */
        if (next->gpa < gpa + size) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: guest range [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps "
                        "%s at [0x%" PRIx64 ", 0x%" PRIx64 ")",
                        rb->id, gpa, gpa + size, next->block->id,
                        next->gpa, next->gpa + next->size);
            return false;
        }
    }

    r.gpa = gpa;
    r.size = size;
    r.block = ram_block_ref(rb);
    r.block_offset = block_offset;
    g_array_insert_val(mem->regions, pos, r);
    guest_memory_notify(mem);
    return true;
}

bool guest_memory_remove(GuestMemory *mem, uint64_t gpa, GError **errp)
{
    guint pos = guest_memory_lower_bound(mem, gpa);
    RamBlock *rb;

    if (pos >= mem->regions->len ||
        g_array_index(mem->regions, MemoryRegionMap, pos).gpa != gpa) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "guest memory: no region starts at 0x%" PRIx64, gpa);
        return false;
    }
    rb = g_array_index(mem->regions, MemoryRegionMap, pos).block;
    g_array_remove_index(mem->regions, pos);
    /* Listeners run first: they may still look at the old block's mapping. */
    guest_memory_notify(mem);
    ram_block_unref(rb);
    return true;
}

unsigned guest_memory_nregions(const GuestMemory *mem)
{
    return mem->regions->len;
}

const MemoryRegionMap *guest_memory_region(const GuestMemory *mem, unsigned i)
{
    if (i >= mem->regions->len) {
        return NULL;
    }
    return &g_array_index(mem->regions, MemoryRegionMap, i);
}

uint64_t guest_memory_end(const GuestMemory *mem)
{
    const MemoryRegionMap *last;

    if (mem->regions->len == 0) {
        return 0;
    }
    last = &g_array_index(mem->regions, MemoryRegionMap, mem->regions->len - 1);
    return last->gpa + last->size;
}

const MemoryRegionMap *guest_memory_find(const GuestMemory *mem, uint64_t gpa)
{
    guint pos = guest_memory_lower_bound(mem, gpa);
    const MemoryRegionMap *r;

    if (pos >= mem->regions->len) {
        return NULL;
    }
    r = &g_array_index(mem->regions, MemoryRegionMap, pos);
    return gpa >= r->gpa ? r : NULL;
}

void *guest_memory_gpa_to_hva(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    const MemoryRegionMap *r = guest_memory_find(mem, gpa);
    uint64_t off;

    if (!r) {
        return NULL;
    }
    if (len == 0) {
        len = 1;
    }
    off = gpa - r->gpa;
    /* Written so that a huge len cannot overflow. */
    if (len > r->size - off) {
        return NULL;
    }
    return (uint8_t *)r->block->host + r->block_offset + off;
}

bool guest_memory_hva_to_gpa(const GuestMemory *mem, const void *hva, uint64_t *gpa)
{
    uintptr_t a = (uintptr_t)hva;

    for (guint i = 0; i < mem->regions->len; i++) {
        const MemoryRegionMap *r = &g_array_index(mem->regions, MemoryRegionMap, i);
        uintptr_t start = (uintptr_t)r->block->host + (uintptr_t)r->block_offset;

        if (a >= start && a - start < r->size) {
            *gpa = r->gpa + (a - start);
            return true;
        }
    }
    return false;
}

bool guest_memory_read(const GuestMemory *mem, uint64_t gpa, void *buf, size_t len)
{
    void *p = guest_memory_gpa_to_hva(mem, gpa, len);

    if (!p) {
        return false;
    }
    memcpy(buf, p, len);
    return true;
}

bool guest_memory_write(GuestMemory *mem, uint64_t gpa, const void *buf, size_t len)
{
    void *p = guest_memory_gpa_to_hva(mem, gpa, len);

    if (!p) {
        return false;
    }
    memcpy(p, buf, len);
    return true;
}

unsigned guest_memory_add_listener(GuestMemory *mem, GuestMemoryListener fn, void *opaque)
{
    MemoryListenerEntry e = { .handle = mem->next_handle++, .fn = fn, .opaque = opaque };

    g_array_append_val(mem->listeners, e);
    return e.handle;
}

void guest_memory_remove_listener(GuestMemory *mem, unsigned handle)
{
    for (guint i = 0; i < mem->listeners->len; i++) {
        if (g_array_index(mem->listeners, MemoryListenerEntry, i).handle == handle) {
            g_array_remove_index(mem->listeners, i);
            return;
        }
    }
}
