/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest-write tracking with userfaultfd async write-protect and
 * PAGEMAP_SCAN. See include/migration/ram-track.h for the design and the
 * threading argument.
 */
#include "migration/ram-track.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "migration/uffd-compat.h"
#include "migration/uffd-open.h"
#include "util/vhost-user-error.h"

/* 24 KiB of regions: a sync of a lightly written GiB fits in one call. */
#define RAM_TRACK_VEC_LEN 1024

#define UFFD_WANTED (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

typedef struct TrackedBlock {
    char *id;
    uintptr_t host;
    uint64_t size;
    uint64_t gpa;
    bool registered;
} TrackedBlock;

struct RamTrack {
    GMutex lock;                /* blocks, started, vec: one caller at a time */
    int uffd;
    int pagemap_fd;
    unsigned long scan_request;
    GArray *blocks;             /* TrackedBlock */
    bool started;
    struct page_region *vec;
    unsigned vec_len;
    uint64_t host_page;
};

static void unavailable(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void unavailable(GError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *why = NULL;

    va_start(ap, fmt);
    why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                "guest-write tracking unavailable: %s; migration will stop "
                "the guest for the whole copy", why);
}

/*
 * Without privilege (vm.unprivileged_userfaultfd=0, no CAP_SYS_PTRACE, no
 * access to /dev/userfaultfd) only a userfaultfd limited to faults taken
 * in user mode is allowed. That limit matters for faults delivered to a
 * handler thread, which async write-protect never does: a write by the
 * kernel into a protected page (read() into guest RAM) just unprotects it,
 * as a store does (test_unprivileged in tests/unit/test-ram-track.c), so
 * it is a full substitute here.
 */
static int uffd_open(bool user_mode_only, GError **errp)
{
    int fd = -1;

    if (!user_mode_only) {
        fd = mig_uffd_open(O_CLOEXEC | O_NONBLOCK);
    }
    if (fd < 0 && (user_mode_only || errno == EPERM)) {
        fd = mig_uffd_open(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    }
    if (fd < 0) {
        unavailable(errp, "userfaultfd(): %s", g_strerror(errno));
    }
    return fd;
}

/* What the kernel offers, asked on a fresh fd (UFFDIO_API works once per fd). */
static uint64_t uffd_supported_features(bool user_mode_only)
{
    struct uffdio_api api = { .api = UFFD_API };
    int fd = uffd_open(user_mode_only, NULL);
    uint64_t features = 0;

    if (fd >= 0) {
        if (ioctl(fd, UFFDIO_API, &api) == 0) {
            features = api.features;
        }
        close(fd);
    }
    return features;
}

static bool uffd_enable(RamTrack *t, uint64_t extra, bool user_mode_only,
                        GError **errp)
{
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_WANTED | extra };

    if (ioctl(t->uffd, UFFDIO_API, &api) < 0) {
        int err = errno;
        uint64_t have = uffd_supported_features(user_mode_only);
        uint64_t missing = (UFFD_WANTED | extra) & ~have;

        unavailable(errp, "the kernel refuses userfaultfd features 0x%" PRIx64
                    " (%s; async write-protect needs Linux >= 6.7)",
                    missing ? missing : UFFD_WANTED | extra, g_strerror(err));
        return false;
    }
    return true;
}

/*
 * An empty scan: ENOTTY/EINVAL when this kernel has no PAGEMAP_SCAN, so
 * the caller learns it before anything is registered or protected.
 */
static bool scan_probe(RamTrack *t, GError **errp)
{
    struct pm_scan_arg arg = {
        .size = sizeof(arg),
        .start = t->host_page,
        .end = t->host_page,
        .vec = (uintptr_t)t->vec,
        .vec_len = t->vec_len,
        .category_mask = PAGE_IS_WRITTEN,
        .return_mask = PAGE_IS_WRITTEN,
    };

    if (ioctl(t->pagemap_fd, t->scan_request, &arg) < 0) {
        int err = errno;

        if (err == ENOTTY || err == EINVAL || err == EOPNOTSUPP) {
            unavailable(errp, "the kernel has no PAGEMAP_SCAN ioctl on "
                        "/proc/self/pagemap (%s; needs Linux >= 6.7)",
                        g_strerror(err));
        } else {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "guest-write tracking: PAGEMAP_SCAN probe: %s",
                        g_strerror(err));
        }
        return false;
    }
    return true;
}

static bool uffd_register(RamTrack *t, TrackedBlock *b, GError **errp)
{
    struct uffdio_register reg = {
        .range = { .start = b->host, .len = b->size },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    struct uffdio_writeprotect wp = {
        .range = { .start = b->host, .len = b->size },
        .mode = UFFDIO_WRITEPROTECT_MODE_WP,
    };

    if (ioctl(t->uffd, UFFDIO_REGISTER, &reg) < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: UFFDIO_REGISTER (write-protect) of %" PRIu64
                    " bytes at 0x%" PRIxPTR ": %s%s", b->id, b->size, b->host,
                    g_strerror(err), err == EINVAL ?
                    " (not a shared memfd/shmem or anonymous mapping?)" : "");
        return false;
    }
    b->registered = true;
    if (ioctl(t->uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: UFFDIO_WRITEPROTECT of %" PRIu64 " bytes: %s",
                    b->id, b->size, g_strerror(errno));
        return false;
    }
    return true;
}

/* Unregistering also drops the protection of every page of the range. */
static bool uffd_unregister(RamTrack *t, TrackedBlock *b, GError **errp)
{
    struct uffdio_range range = { .start = b->host, .len = b->size };

    if (!b->registered) {
        return true;
    }
    b->registered = false;
    if (ioctl(t->uffd, UFFDIO_UNREGISTER, &range) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: UFFDIO_UNREGISTER: %s", b->id, g_strerror(errno));
        return false;
    }
    return true;
}

static bool block_check(RamTrack *t, const RamTrackBlock *nb, GError **errp)
{
    const char *id = nb->id ? nb->id : "(block)";
    uintptr_t host = (uintptr_t)nb->host;

    if (!nb->size || host % t->host_page || nb->size % t->host_page ||
        nb->gpa % RAM_TRACK_PAGE_SIZE || host + nb->size < host ||
        nb->gpa + nb->size < nb->gpa) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: guest-write tracking needs a non-empty block aligned "
                    "to %" PRIu64 " bytes (host 0x%" PRIxPTR ", size 0x%"
                    PRIx64 ", gpa 0x%" PRIx64 ")", id, t->host_page, host,
                    nb->size, nb->gpa);
        return false;
    }
    for (guint i = 0; i < t->blocks->len; i++) {
        const TrackedBlock *b = &g_array_index(t->blocks, TrackedBlock, i);

        if ((host < b->host + b->size && b->host < host + nb->size) ||
            (nb->gpa < b->gpa + b->size && b->gpa < nb->gpa + nb->size)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: overlaps tracked block %s (gpa 0x%" PRIx64
                        "+0x%" PRIx64 ")", id, b->id, b->gpa, b->size);
            return false;
        }
    }
    return true;
}

static void tracked_block_clear(gpointer p)
{
    g_free(((TrackedBlock *)p)->id);
}

static bool add_block_locked(RamTrack *t, const RamTrackBlock *nb, GError **errp)
{
    TrackedBlock b;

    if (!block_check(t, nb, errp)) {
        return false;
    }
    b = (TrackedBlock) {
        .id = g_strdup(nb->id ? nb->id : "(block)"),
        .host = (uintptr_t)nb->host,
        .size = nb->size,
        .gpa = nb->gpa,
    };
    if (t->started && !uffd_register(t, &b, errp)) {
        uffd_unregister(t, &b, NULL);
        g_free(b.id);
        return false;
    }
    g_array_append_val(t->blocks, b);
    return true;
}

RamTrackBlock ram_track_block_from_region(const MemoryRegionMap *r)
{
    return (RamTrackBlock) {
        .id = r->block->id,
        .host = (uint8_t *)r->block->host + r->block_offset,
        .size = r->size,
        .gpa = r->gpa,
    };
}

RamTrack *ram_track_new_hooked(const RamTrackBlock *blocks, unsigned nblocks,
                               const RamTrackTestHooks *hooks, GError **errp)
{
    static const RamTrackTestHooks none;
    RamTrack *t = g_new0(RamTrack, 1);

    hooks = hooks ? hooks : &none;
    g_mutex_init(&t->lock);
    t->pagemap_fd = -1;
    t->host_page = sysconf(_SC_PAGESIZE);
    t->scan_request = hooks->scan_request ? hooks->scan_request : PAGEMAP_SCAN;
    t->vec_len = hooks->vec_len ? hooks->vec_len : RAM_TRACK_VEC_LEN;
    t->vec = g_new(struct page_region, t->vec_len);
    t->blocks = g_array_new(false, false, sizeof(TrackedBlock));
    g_array_set_clear_func(t->blocks, tracked_block_clear);

    t->uffd = uffd_open(hooks->user_mode_only, errp);
    if (t->uffd < 0 ||
        !uffd_enable(t, hooks->extra_uffd_features, hooks->user_mode_only, errp)) {
        goto fail;
    }
    t->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (t->pagemap_fd < 0) {
        unavailable(errp, "/proc/self/pagemap: %s", g_strerror(errno));
        goto fail;
    }
    if (!scan_probe(t, errp)) {
        goto fail;
    }
    for (unsigned i = 0; i < nblocks; i++) {
        if (!add_block_locked(t, &blocks[i], errp)) {
            goto fail;
        }
    }
    return t;

fail:
    ram_track_free(t);
    return NULL;
}

RamTrack *ram_track_new(const RamTrackBlock *blocks, unsigned nblocks,
                        GError **errp)
{
    return ram_track_new_hooked(blocks, nblocks, NULL, errp);
}

static bool stop_locked(RamTrack *t, GError **errp)
{
    bool ok = true;

    for (guint i = 0; i < t->blocks->len; i++) {
        TrackedBlock *b = &g_array_index(t->blocks, TrackedBlock, i);

        /* Go on after a failure: leave as little registered as we can. */
        if (!uffd_unregister(t, b, ok ? errp : NULL)) {
            ok = false;
        }
    }
    t->started = false;
    return ok;
}

bool ram_track_start(RamTrack *t, GError **errp)
{
    bool ok = true;

    g_mutex_lock(&t->lock);
    if (t->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "guest-write tracking: already started");
        ok = false;
    }
    for (guint i = 0; ok && i < t->blocks->len; i++) {
        ok = uffd_register(t, &g_array_index(t->blocks, TrackedBlock, i), errp);
    }
    if (ok) {
        t->started = true;
    } else if (!t->started) {
        stop_locked(t, NULL);
    }
    g_mutex_unlock(&t->lock);
    return ok;
}

bool ram_track_stop(RamTrack *t, GError **errp)
{
    bool ok;

    g_mutex_lock(&t->lock);
    ok = stop_locked(t, errp);
    g_mutex_unlock(&t->lock);
    return ok;
}

static bool region_matches(const TrackedBlock *b, const RamTrackBlock *nb)
{
    return b->gpa == nb->gpa && b->host == (uintptr_t)nb->host &&
           b->size == nb->size;
}

bool ram_track_update_blocks(RamTrack *t, const GuestMemory *mem, GError **errp)
{
    unsigned n = guest_memory_nregions(mem);
    bool ok = true;

    g_mutex_lock(&t->lock);
    /* Removals first: a new region may reuse a removed one's addresses. */
    for (guint i = t->blocks->len; i-- > 0;) {
        TrackedBlock *b = &g_array_index(t->blocks, TrackedBlock, i);
        bool present = false;

        for (unsigned j = 0; j < n && !present; j++) {
            RamTrackBlock nb = ram_track_block_from_region(guest_memory_region(mem, j));

            present = region_matches(b, &nb);
        }
        if (!present) {
            /* Its mapping may be gone already, and the registration with it. */
            uffd_unregister(t, b, NULL);
            g_array_remove_index(t->blocks, i);
        }
    }
    for (unsigned j = 0; j < n && ok; j++) {
        RamTrackBlock nb = ram_track_block_from_region(guest_memory_region(mem, j));
        bool present = false;

        for (guint i = 0; i < t->blocks->len && !present; i++) {
            present = region_matches(&g_array_index(t->blocks, TrackedBlock, i), &nb);
        }
        ok = present || add_block_locked(t, &nb, errp);
    }
    g_mutex_unlock(&t->lock);
    return ok;
}

bool ram_track_started(RamTrack *t)
{
    bool started;

    g_mutex_lock(&t->lock);
    started = t->started;
    g_mutex_unlock(&t->lock);
    return started;
}

/* Atomic ORs: the caller may merge other sources into the same bitmap. */
static void bitmap_set_range(uint64_t *bitmap, uint64_t first, uint64_t n)
{
    while (n) {
        uint64_t bit = first % 64;
        uint64_t len = MIN(n, 64 - bit);
        uint64_t mask = (len == 64 ? ~0ULL : ((1ULL << len) - 1)) << bit;

        __atomic_fetch_or(&bitmap[first / 64], mask, __ATOMIC_RELAXED);
        first += len;
        n -= len;
    }
}

static bool sync_block(RamTrack *t, const TrackedBlock *b, uint64_t *bitmap,
                       uint64_t *written, GError **errp)
{
    uint64_t end = b->host + b->size;
    uint64_t cur = b->host;

    while (cur < end) {
        uint64_t next = cur;
        struct pm_scan_arg arg = {
            .size = sizeof(arg),
            .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
            .start = cur,
            .end = end,
            .vec = (uintptr_t)t->vec,
            .vec_len = t->vec_len,
            .category_mask = PAGE_IS_WRITTEN,
            .return_mask = PAGE_IS_WRITTEN,
        };
        long n = ioctl(t->pagemap_fd, t->scan_request, &arg);

        if (n < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "%s: PAGEMAP_SCAN of 0x%" PRIx64 "..0x%" PRIx64
                        ": %s", b->id, cur, end, g_strerror(errno));
            return false;
        }
        if ((unsigned long)n > t->vec_len) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "%s: PAGEMAP_SCAN from 0x%" PRIx64 ": %ld regions "
                        "for a vector of %u", b->id, cur, n, t->vec_len);
            return false;
        }
        for (long i = 0; i < n; i++) {
            const struct page_region *r = &t->vec[i];

            /* In order, inside the walk: anything else would set wrong bits. */
            if (r->start < next || r->end > end || r->start >= r->end) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                            "%s: PAGEMAP_SCAN region 0x%" PRIx64 "..0x%"
                            PRIx64 " outside 0x%" PRIx64 "..0x%" PRIx64,
                            b->id, (uint64_t)r->start, (uint64_t)r->end,
                            next, end);
                return false;
            }
            uint64_t first = (b->gpa + (r->start - b->host)) >> RAM_TRACK_PAGE_SHIFT;
            uint64_t pages = (r->end - r->start) >> RAM_TRACK_PAGE_SHIFT;

            bitmap_set_range(bitmap, first, pages);
            *written += pages;
            next = r->end;
        }
        /*
         * A vector with room left means the walk reached the end. A full
         * one stops it early: go on from where it stopped. That is
         * walk_end, except that the kernel (seen on 6.18) leaves walk_end
         * where its internal 512-region buffer first filled, even when
         * the walk then went further: never go back before the last
         * region reported, which is already protected again.
         */
        if ((unsigned long)n < t->vec_len) {
            break;
        }
        cur = MAX(next, (uint64_t)arg.walk_end);
    }
    return true;
}

bool ram_track_sync(RamTrack *t, uint64_t *bitmap, uint64_t npages,
                    uint64_t *written, GError **errp)
{
    uint64_t count = 0;
    bool ok = true;

    g_mutex_lock(&t->lock);
    if (!t->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "guest-write tracking: sync while not started");
        ok = false;
    }
    /* Before any scan: a scan consumes what it reports. */
    for (guint i = 0; ok && i < t->blocks->len; i++) {
        const TrackedBlock *b = &g_array_index(t->blocks, TrackedBlock, i);

        if ((b->gpa + b->size) >> RAM_TRACK_PAGE_SHIFT > npages) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                        "%s: gpa 0x%" PRIx64 "+0x%" PRIx64 " beyond the dirty "
                        "bitmap's %" PRIu64 " pages", b->id, b->gpa, b->size,
                        npages);
            ok = false;
        }
    }
    for (guint i = 0; ok && i < t->blocks->len; i++) {
        ok = sync_block(t, &g_array_index(t->blocks, TrackedBlock, i), bitmap,
                        &count, errp);
    }
    g_mutex_unlock(&t->lock);
    if (written) {
        *written = count;
    }
    return ok;
}

bool ram_track_add_block(RamTrack *t, const RamTrackBlock *block, GError **errp)
{
    bool ok;

    g_mutex_lock(&t->lock);
    ok = add_block_locked(t, block, errp);
    g_mutex_unlock(&t->lock);
    return ok;
}

bool ram_track_remove_block(RamTrack *t, uint64_t gpa, GError **errp)
{
    bool ok = false;
    guint i;

    g_mutex_lock(&t->lock);
    for (i = 0; i < t->blocks->len; i++) {
        if (g_array_index(t->blocks, TrackedBlock, i).gpa == gpa) {
            break;
        }
    }
    if (i == t->blocks->len) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "guest-write tracking: no block at gpa 0x%" PRIx64, gpa);
    } else {
        ok = uffd_unregister(t, &g_array_index(t->blocks, TrackedBlock, i), errp);
        g_array_remove_index(t->blocks, i);
    }
    g_mutex_unlock(&t->lock);
    return ok;
}

void ram_track_free(RamTrack *t)
{
    if (!t) {
        return;
    }
    if (t->uffd >= 0) {
        stop_locked(t, NULL);
        close(t->uffd);
    }
    if (t->pagemap_fd >= 0) {
        close(t->pagemap_fd);
    }
    g_array_free(t->blocks, true);
    g_free(t->vec);
    g_mutex_clear(&t->lock);
    g_free(t);
}
