/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What postcopy needs of the kernel and of the RAM blocks: the checks,
 * and MISSING registration (include/migration/postcopy-probe.h).
 */
#include "migration/postcopy-probe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "migration/uffd-compat.h"
#include "migration/uffd-open.h"
#include "util/vhost-user-error.h"

#define PROBE_PAGE          4096u
#define RANGE_IOCTLS        ((1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) | \
                             (1ull << _UFFDIO_WAKE))

static void unavailable(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void unavailable(GError **errp, const char *fmt, ...)
{
    g_autofree char *why = NULL;
    va_list ap;

    va_start(ap, fmt);
    why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                "postcopy unavailable: %s", why);
}

/*
 * MISSING faults exist for shared memory (memfd, tmpfs), hugetlbfs and
 * anonymous memory; placement is by 4 KiB pages into a file that a
 * back-end can map too: shared memory only.
 */
bool mig_postcopy_blocks_usable(const GuestMemory *mem, GError **errp)
{
    for (unsigned i = 0; i < guest_memory_nregions(mem); i++) {
        const RamBlock *rb = guest_memory_region(mem, i)->block;
        struct statfs sfs;

        if (!rb->shared || rb->fd < 0) {
            unavailable(errp, "RAM block '%s' is private (share=off): its "
                        "pages cannot be placed through its fd", rb->id);
            return false;
        }
        if (fstatfs(rb->fd, &sfs) < 0 || sfs.f_type != TMPFS_MAGIC) {
            unavailable(errp, "RAM block '%s'%s%s is not shared memory (memfd "
                        "or tmpfs), which 4 KiB userfaultfd placement needs",
                        rb->id, rb->path ? " at " : "", rb->path ? rb->path : "");
            return false;
        }
    }
    return true;
}

int mig_postcopy_uffd_new(GError **errp)
{
    struct uffdio_api api = { .api = UFFD_API };
    int fd = mig_uffd_open(O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        int err = errno;

        unavailable(errp, "userfaultfd(): %s%s", g_strerror(err), err == EPERM ?
                    " (neither the syscall nor /dev/userfaultfd: needs "
                    "CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access "
                    "to /dev/userfaultfd)" : "");
        return -1;
    }
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        unavailable(errp, "UFFDIO_API: %s", g_strerror(errno));
        close(fd);
        return -1;
    }
    if (!(api.features & UFFD_FEATURE_MISSING_SHMEM)) {
        unavailable(errp, "the kernel has no userfaultfd for shared memory "
                    "(features 0x%" PRIx64 ")", (uint64_t)api.features);
        close(fd);
        return -1;
    }
    return fd;
}

bool mig_postcopy_uffd_register(int ufd, void *host, uint64_t size,
                                const char *id, GError **errp)
{
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)host, .len = size },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };

    if (ioctl(ufd, UFFDIO_REGISTER, &reg) < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: UFFDIO_REGISTER (missing) of 0x%" PRIx64
                    " bytes at %p: %s%s", id, size, host, g_strerror(err),
                    err == EBUSY ? " (already registered: write tracking "
                    "still on?)" : "");
        return false;
    }
    if ((reg.ioctls & RANGE_IOCTLS) != RANGE_IOCTLS) {
        struct uffdio_range range = reg.range;

        ioctl(ufd, UFFDIO_UNREGISTER, &range);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: the kernel offers no copy/zeropage/wake "
                    "(ioctls 0x%" PRIx64 ") on this mapping", id,
                    (uint64_t)reg.ioctls);
        return false;
    }
    return true;
}

bool mig_postcopy_probe_shmem(int ufd, GError **errp)
{
    int fd = memfd_create("postcopy-probe", MFD_CLOEXEC);
    void *p = MAP_FAILED;
    GError *err = NULL;
    bool ok = false;

    if (fd < 0 || ftruncate(fd, PROBE_PAGE) < 0 ||
        (p = mmap(NULL, PROBE_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
        MAP_FAILED) {
        unavailable(errp, "a probe memfd: %s", g_strerror(errno));
    } else if (!mig_postcopy_uffd_register(ufd, p, PROBE_PAGE, "a probe memfd", &err)) {
        unavailable(errp, "%s", err->message);
        g_error_free(err);
    } else {
        ok = true;
    }
    if (p != MAP_FAILED) {
        munmap(p, PROBE_PAGE);         /* unregisters too */
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

