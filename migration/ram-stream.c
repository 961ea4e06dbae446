/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM in the migration stream: the region list and the page runs.
 *
 * Untrusted input (the load side): the stream comes from another host.
 * Every count, index, offset and run length is checked against the
 * section's length and the destination's own regions before a byte of
 * guest memory is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "migration/format.h"
#include "migration/ram-stream.h"
#include "util/vhost-user-error.h"

/* A section holds at most this much page data, or this many runs. */
#define MIG_RAM_SECTION_DATA        (1024 * 1024)
#define MIG_RAM_SECTION_RUNS        512
#define MIG_RAM_DATA_RUN_PAGES      (MIG_RAM_SECTION_DATA / MIG_PAGE_SIZE)
#define MIG_RAM_ZERO_RUN_PAGES      65536

#define MIG_RAM_SETUP_ENTRY_FIXED   (1 + 4 * 8)

static uint8_t *mig_ram_host(const MemoryRegionMap *r)
{
    return (uint8_t *)r->block->host + r->block_offset;
}

/* Word by word, stopping at the first non-zero one (most pages that are
 * not zero are caught in the first words). */
static bool mig_page_is_zero(const uint8_t *page)
{
    const uint64_t *w = (const uint64_t *)page;

    for (size_t i = 0; i < MIG_PAGE_SIZE / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] |
            w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) {
            return false;
        }
    }
    return true;
}

/*
 * Holes of a shared RAM block's fd (never written, or punched) read as
 * zeros without looking: reading a hole through the mapping would make the
 * kernel allocate and clear a page for it, which for a mostly empty guest
 * cost most of a migration's time on both sides (and the memory). The
 * cursor caches the last hole lseek(SEEK_DATA) found, so a walk in
 * increasing offsets costs one syscall per hole and one per data page.
 * Not SEEK_HOLE: on shmem (memfd) it walks every page of the data extent,
 * which for a filled 128 MiB guest took 8 ms a call, paid again by every
 * window of the postcopy stream and every requested page. SEEK_DATA on a
 * page with data returns at once. Private mappings (share=off) keep their
 * writes out of the fd: never asked.
 */
typedef struct MigHoleCursor {
    const MemoryRegionMap *r;
    bool usable;
    uint64_t lo, hi;            /* the cached hole, offsets in the region */
} MigHoleCursor;

static void mig_hole_cursor_init(MigHoleCursor *c, const MemoryRegionMap *r)
{
    *c = (MigHoleCursor) { .r = r, .usable = r->block->shared && r->block->fd >= 0 };
}

static bool mig_page_in_hole(MigHoleCursor *c, uint64_t off)
{
    off_t base, d;

    if (!c->usable) {
        return false;
    }
    if (off >= c->lo && off < c->hi) {
        return true;
    }
    base = (off_t)(c->r->block->fd_offset + c->r->block_offset);
    d = lseek(c->r->block->fd, base + (off_t)off, SEEK_DATA);
    if (d < 0) {
        if (errno != ENXIO) {
            /* The file system cannot tell: look at every page. */
            c->usable = false;
            return false;
        }
        c->lo = off;
        c->hi = c->r->size;
        return true;
    }
    if (d > base + (off_t)off) {
        c->lo = off;
        c->hi = MIN((uint64_t)(d - base), c->r->size);
        return true;
    }
    return false;
}

static bool mig_region_page_is_zero(MigHoleCursor *c, const uint8_t *host, uint64_t off)
{
    return mig_page_in_hole(c, off) || mig_page_is_zero(host + off);
}

bool mig_ram_save_setup(MigStream *s, const GuestMemory *mem, GError **errp)
{
    unsigned n = guest_memory_nregions(mem);
    uint64_t length = 4;

    if (n > MIG_RAM_MAX_REGIONS) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration: %u RAM regions, at most %d can migrate", n,
                    MIG_RAM_MAX_REGIONS);
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);
        size_t id_len = strlen(r->block->id);

        if (id_len == 0 || id_len > MIG_RAM_BLOCK_ID_MAX ||
            (r->gpa | r->size | r->block_offset) % MIG_PAGE_SIZE) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "migration: RAM block '%s' at GPA 0x%" PRIx64 ": id "
                        "of 1 to %d bytes and 4 KiB-aligned placement needed",
                        r->block->id, r->gpa, MIG_RAM_BLOCK_ID_MAX);
            return false;
        }
        length += MIG_RAM_SETUP_ENTRY_FIXED + id_len;
    }
    if (!mig_save_section_header(s, MIG_SECTION_RAM_SETUP, 0, length, errp) ||
        !mig_stream_write_be32(s, n, errp)) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);
        size_t id_len = strlen(r->block->id);

        if (!mig_stream_write_u8(s, id_len, errp) ||
            !mig_stream_write(s, r->block->id, id_len, errp) ||
            !mig_stream_write_be64(s, r->block->size, errp) ||
            !mig_stream_write_be64(s, r->gpa, errp) ||
            !mig_stream_write_be64(s, r->block_offset, errp) ||
            !mig_stream_write_be64(s, r->size, errp)) {
            return false;
        }
    }
    return true;
}

typedef struct MigRamRun {
    uint16_t region;
    uint16_t flags;
    uint32_t npages;
    uint64_t offset;            /* in the region */
    const uint8_t *host;
} MigRamRun;

typedef struct MigRamSection {
    MigRamRun runs[MIG_RAM_SECTION_RUNS];
    unsigned nruns;
    uint64_t data;
} MigRamSection;

static bool mig_ram_flush_section(MigStream *s, MigRamSection *sec, GError **errp)
{
    uint64_t length = sec->data + (uint64_t)sec->nruns * MIG_RAM_RUN_HEADER_SIZE;

    if (!sec->nruns) {
        return true;
    }
    if (!mig_save_section_header(s, MIG_SECTION_RAM_PAGES, 0, length, errp)) {
        return false;
    }
    for (unsigned i = 0; i < sec->nruns; i++) {
        const MigRamRun *run = &sec->runs[i];

        if (!mig_stream_write_be16(s, run->region, errp) ||
            !mig_stream_write_be16(s, run->flags, errp) ||
            !mig_stream_write_be32(s, run->npages, errp) ||
            !mig_stream_write_be64(s, run->offset, errp)) {
            return false;
        }
        if (run->flags == MIG_RAM_RUN_DATA &&
            !mig_stream_write(s, run->host, (size_t)run->npages * MIG_PAGE_SIZE,
                              errp)) {
            return false;
        }
    }
    sec->nruns = 0;
    sec->data = 0;
    return true;
}

static bool mig_bit(const uint64_t *bitmap, uint64_t page)
{
    return !bitmap || (bitmap[page / 64] >> (page % 64)) & 1;
}

/*
 * The dirty pages among pages [p, end) of one region (page numbers
 * within the region), as runs of like pages.
 */
static bool mig_ram_save_region(MigStream *s, MigRamSection *sec, unsigned ri,
                                const MemoryRegionMap *r, const uint64_t *bitmap,
                                uint64_t p, uint64_t end, GError **errp)
{
    uint64_t first = r->gpa / MIG_PAGE_SIZE;
    const uint8_t *host = mig_ram_host(r);
    MigHoleCursor hc;

    mig_hole_cursor_init(&hc, r);
    while (p < end) {
        MigRamRun run;
        uint32_t max;

        /* A clean word of the log skips 64 pages at once. */
        if (bitmap && (first + p) % 64 == 0 && !bitmap[(first + p) / 64]) {
            p += 64;
            continue;
        }
        if (!mig_bit(bitmap, first + p)) {
            p++;
            continue;
        }
        run = (MigRamRun) {
            .region = ri, .offset = p * MIG_PAGE_SIZE, .npages = 1,
            .host = host + p * MIG_PAGE_SIZE,
            .flags = mig_region_page_is_zero(&hc, host, p * MIG_PAGE_SIZE) ?
                     MIG_RAM_RUN_ZERO : MIG_RAM_RUN_DATA,
        };
        max = run.flags == MIG_RAM_RUN_ZERO ? MIG_RAM_ZERO_RUN_PAGES :
              MIG_RAM_DATA_RUN_PAGES - sec->data / MIG_PAGE_SIZE;
        p++;
        while (p < end && run.npages < max && mig_bit(bitmap, first + p) &&
               mig_region_page_is_zero(&hc, host, p * MIG_PAGE_SIZE) ==
               (run.flags == MIG_RAM_RUN_ZERO)) {
            run.npages++;
            p++;
        }
        sec->runs[sec->nruns++] = run;
        if (run.flags == MIG_RAM_RUN_DATA) {
            sec->data += (uint64_t)run.npages * MIG_PAGE_SIZE;
        }
        if ((sec->nruns == MIG_RAM_SECTION_RUNS || sec->data == MIG_RAM_SECTION_DATA) &&
            !mig_ram_flush_section(s, sec, errp)) {
            return false;
        }
    }
    return true;
}

/* The last section out, and what the call cost in the stream. */
static bool mig_ram_save_done(MigStream *s, MigRamSection *sec, uint64_t start,
                              uint64_t *bytes_sent, GError **errp)
{
    if (!mig_ram_flush_section(s, sec, errp)) {
        return false;
    }
    if (bytes_sent) {
        *bytes_sent = mig_stream_bytes_written(s) - start;
    }
    return true;
}

bool mig_ram_save_dirty(MigStream *s, const GuestMemory *mem,
                        const uint64_t *bitmap, uint64_t nbits,
                        uint64_t *bytes_sent, GError **errp)
{
    g_autofree MigRamSection *sec = g_new0(MigRamSection, 1);
    uint64_t start = mig_stream_bytes_written(s);
    unsigned n = guest_memory_nregions(mem);

    if (bitmap && nbits < guest_memory_end(mem) / MIG_PAGE_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "migration: dirty bitmap of %" PRIu64 " pages does not "
                    "cover guest memory up to GPA 0x%" PRIx64, nbits,
                    guest_memory_end(mem));
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);

        if (!mig_ram_save_region(s, sec, i, r, bitmap, 0, r->size / MIG_PAGE_SIZE,
                                 errp)) {
            return false;
        }
    }
    return mig_ram_save_done(s, sec, start, bytes_sent, errp);
}

bool mig_ram_save_range(MigStream *s, const GuestMemory *mem, uint64_t gpa,
                        uint64_t npages, uint64_t *bytes_sent, GError **errp)
{
    uint64_t start = mig_stream_bytes_written(s);
    g_autofree MigRamSection *sec = NULL;

    for (unsigned i = 0; i < guest_memory_nregions(mem); i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);
        uint64_t p = (gpa - r->gpa) / MIG_PAGE_SIZE;

        if (gpa % MIG_PAGE_SIZE || gpa < r->gpa || gpa - r->gpa >= r->size) {
            continue;
        }
        if (!npages || npages > r->size / MIG_PAGE_SIZE - p) {
            break;
        }
        sec = g_new0(MigRamSection, 1);
        return mig_ram_save_region(s, sec, i, r, NULL, p, p + npages, errp) &&
               mig_ram_save_done(s, sec, start, bytes_sent, errp);
    }
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                "migration: page request for %" PRIu64 " pages at GPA 0x%"
                PRIx64 ": not 4 KiB aligned inside one RAM region", npages, gpa);
    return false;
}

/* Takes n bytes of the section's remaining payload, or fails naming it. */
static bool mig_take(MigStream *s, uint64_t *remaining, uint64_t n,
                     const char *what, GError **errp)
{
    if (n > *remaining) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section '%s': %s needs %" PRIu64
                    " bytes, the section has %" PRIu64 " left", 
                    mig_stream_section_name(s), what, n, *remaining);
        return false;
    }
    *remaining -= n;
    return true;
}

static bool mig_ram_check_region(unsigned i, const char *id, uint64_t block_size,
                                 uint64_t gpa, uint64_t offset, uint64_t size,
                                 const MemoryRegionMap *r, GError **errp)
{
    if (strcmp(id, r->block->id)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration stream: RAM region %u: source block '%s', "
                    "destination block '%s'", i, id, r->block->id);
        return false;
    }
    if (block_size != r->block->size) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration stream: RAM block '%s': size %" PRIu64 " on the "
                    "source, %" PRIu64 " on the destination", id, block_size,
                    r->block->size);
        return false;
    }
    if (gpa != r->gpa || offset != r->block_offset || size != r->size) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration stream: RAM block '%s': placed at GPA 0x%" PRIx64
                    " (+0x%" PRIx64 ", 0x%" PRIx64 " bytes) on the source, at GPA "
                    "0x%" PRIx64 " (+0x%" PRIx64 ", 0x%" PRIx64 " bytes) on the "
                    "destination", id, gpa, offset, size, r->gpa,
                    r->block_offset, r->size);
        return false;
    }
    return true;
}

bool mig_ram_load_setup(MigStream *s, uint32_t length, const GuestMemory *mem,
                        GError **errp)
{
    unsigned n = guest_memory_nregions(mem);
    uint64_t remaining = length;
    uint32_t count;

    if (!mig_take(s, &remaining, 4, "the region count", errp) ||
        !mig_stream_read_be32(s, &count, errp)) {
        return false;
    }
    if (count != n) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration stream: %" PRIu32 " RAM regions on the source, "
                    "%u on the destination", count, n);
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        char id[MIG_RAM_BLOCK_ID_MAX + 1];
        uint64_t block_size, gpa, offset, size;
        uint8_t id_len;

        if (!mig_take(s, &remaining, 1, "a region's id length", errp) ||
            !mig_stream_read_u8(s, &id_len, errp) ||
            !mig_take(s, &remaining, id_len + MIG_RAM_SETUP_ENTRY_FIXED - 1,
                      "a region entry", errp) ||
            !mig_stream_read(s, id, id_len, errp) ||
            !mig_stream_read_be64(s, &block_size, errp) ||
            !mig_stream_read_be64(s, &gpa, errp) ||
            !mig_stream_read_be64(s, &offset, errp) ||
            !mig_stream_read_be64(s, &size, errp)) {
            return false;
        }
        id[id_len] = '\0';
        if (strlen(id) != id_len) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "migration stream: RAM region %u: block id with a NUL", i);
            return false;
        }
        if (!mig_ram_check_region(i, id, block_size, gpa, offset, size,
                                  guest_memory_region(mem, i), errp)) {
            return false;
        }
    }
    if (remaining) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section 'ram-setup': %" PRIu64
                    " bytes left after %u regions", remaining, n);
        return false;
    }
    return true;
}

/* Where loaded pages go: memcpy into the mapping, or postcopy's place. */
typedef struct MigRamSink {
    MigRamPlaceFn place;        /* NULL: written into the mapping */
    void *opaque;
} MigRamSink;

/* A checked run through place, page by page (data through a bounce page). */
static bool mig_ram_place_run(MigStream *s, uint64_t *remaining,
                              const MemoryRegionMap *r, uint16_t flags,
                              uint64_t offset, uint64_t bytes,
                              const MigRamSink *sink, GError **errp)
{
    g_autofree uint8_t *page = NULL;

    if (flags == MIG_RAM_RUN_DATA) {
        if (!mig_take(s, remaining, bytes, "a run's page data", errp)) {
            return false;
        }
        page = g_malloc(MIG_PAGE_SIZE);
    }
    for (uint64_t i = offset; i < offset + bytes; i += MIG_PAGE_SIZE) {
        if ((page && !mig_stream_read(s, page, MIG_PAGE_SIZE, errp)) ||
            !sink->place(r->gpa + i, page, sink->opaque, errp)) {
            return false;
        }
    }
    return true;
}

static bool mig_ram_load_run(MigStream *s, uint64_t *remaining, GuestMemory *mem,
                             const MigRamSink *sink, GError **errp)
{
    const MemoryRegionMap *r;
    uint16_t region, flags;
    uint32_t npages;
    uint64_t offset, bytes;
    MigHoleCursor hc;
    uint8_t *host;

    if (!mig_take(s, remaining, MIG_RAM_RUN_HEADER_SIZE, "a run header", errp) ||
        !mig_stream_read_be16(s, &region, errp) ||
        !mig_stream_read_be16(s, &flags, errp) ||
        !mig_stream_read_be32(s, &npages, errp) ||
        !mig_stream_read_be64(s, &offset, errp)) {
        return false;
    }
    if (region >= guest_memory_nregions(mem)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section 'ram-pages': region %u, the "
                    "destination has %u", region, guest_memory_nregions(mem));
        return false;
    }
    r = guest_memory_region(mem, region);
    bytes = (uint64_t)npages * MIG_PAGE_SIZE;
    if ((flags != MIG_RAM_RUN_ZERO && flags != MIG_RAM_RUN_DATA) || !npages ||
        offset % MIG_PAGE_SIZE || offset > r->size || bytes > r->size - offset) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section 'ram-pages': bad run in block "
                    "'%s' (flags 0x%x, %" PRIu32 " pages at offset 0x%" PRIx64
                    ", region of 0x%" PRIx64 " bytes)", r->block->id, flags,
                    npages, offset, r->size);
        return false;
    }
    if (sink->place) {
        return mig_ram_place_run(s, remaining, r, flags, offset, bytes, sink, errp);
    }
    host = mig_ram_host(r);
    if (flags == MIG_RAM_RUN_DATA) {
        return mig_take(s, remaining, bytes, "a run's page data", errp) &&
               mig_stream_read(s, host + offset, bytes, errp);
    }
    /*
     * A fresh destination is all zero: writing zeros over zeros only costs
     * time, and a page still in a hole of the fd is not even looked at.
     */
    mig_hole_cursor_init(&hc, r);
    for (uint64_t i = offset; i < offset + bytes; i += MIG_PAGE_SIZE) {
        if (!mig_region_page_is_zero(&hc, host, i)) {
            memset(host + i, 0, MIG_PAGE_SIZE);
        }
    }
    return true;
}

static bool mig_ram_load_runs(MigStream *s, uint32_t length, GuestMemory *mem,
                              const MigRamSink *sink, GError **errp)
{
    uint64_t remaining = length;

    while (remaining) {
        if (!mig_ram_load_run(s, &remaining, mem, sink, errp)) {
            return false;
        }
    }
    return true;
}

bool mig_ram_load_pages(MigStream *s, uint32_t length, GuestMemory *mem,
                        GError **errp)
{
    return mig_ram_load_runs(s, length, mem, &(MigRamSink) { 0 }, errp);
}

bool mig_ram_load_pages_placed(MigStream *s, uint32_t length, GuestMemory *mem,
                               MigRamPlaceFn place, void *opaque, GError **errp)
{
    return mig_ram_load_runs(s, length, mem,
                             &(MigRamSink) { .place = place, .opaque = opaque }, errp);
}
