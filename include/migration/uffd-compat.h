/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Kernel ABI for write tracking that the build host's headers may predate:
 * userfaultfd's asynchronous write-protect mode (Linux 6.7) and the
 * PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7). Debian 12 ships
 * 6.1 headers, so the values are written out here from the kernel's uapi
 * (include/uapi/linux/userfaultfd.h and fs.h); the kernel we run on may
 * still lack them, which the tracker finds out at run time.
 *
 * Each definition is guarded: newer headers win, and the size checks
 * below catch a layout that disagrees with the uapi.
 */
#ifndef MIGRATION_UFFD_COMPAT_H
#define MIGRATION_UFFD_COMPAT_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <sys/ioctl.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
/* Protect never-populated pages too (pte markers), not only present ones. */
#define UFFD_FEATURE_WP_UNPOPULATED     (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
/* A write to a protected page unprotects it in the kernel: no fault message. */
#define UFFD_FEATURE_WP_ASYNC           (1 << 15)
#endif

#ifndef PAGEMAP_SCAN
/* Categories, reported in page_region.categories and used in the masks. */
#define PAGE_IS_WPALLOWED       (1 << 0)
#define PAGE_IS_WRITTEN         (1 << 1)
#define PAGE_IS_FILE            (1 << 2)
#define PAGE_IS_PRESENT         (1 << 3)
#define PAGE_IS_SWAPPED         (1 << 4)
#define PAGE_IS_PFNZERO         (1 << 5)
#define PAGE_IS_HUGE            (1 << 6)
#define PAGE_IS_SOFT_DIRTY      (1 << 7)

/* One run of pages with the same categories: [start, end). */
struct page_region {
    __u64 start;
    __u64 end;
    __u64 categories;
};

/* Write-protect the matched pages in the same walk that reports them. */
#define PM_SCAN_WP_MATCHING     (1 << 0)
/* Fail (EPERM) instead of skipping a range not registered for async WP. */
#define PM_SCAN_CHECK_WPASYNC   (1 << 1)

struct pm_scan_arg {
    __u64 size;                 /* sizeof(struct pm_scan_arg) */
    __u64 flags;                /* PM_SCAN_* */
    __u64 start;                /* page-aligned */
    __u64 end;
    __u64 walk_end;             /* out: where the walk stopped */
    __u64 vec;                  /* struct page_region * */
    __u64 vec_len;
    __u64 max_pages;            /* 0: no limit */
    __u64 category_inverted;
    __u64 category_mask;
    __u64 category_anyof_mask;
    __u64 return_mask;
};

#define PAGEMAP_SCAN            _IOWR('f', 16, struct pm_scan_arg)
#endif

/* The kernel rejects any other size; these pin the layout to the uapi's. */
_Static_assert(sizeof(struct page_region) == 24, "struct page_region: 3 x u64");
_Static_assert(sizeof(struct pm_scan_arg) == 96, "struct pm_scan_arg: 12 x u64");
_Static_assert(offsetof(struct pm_scan_arg, walk_end) == 32,
               "pm_scan_arg.walk_end follows size, flags, start, end");
_Static_assert(offsetof(struct pm_scan_arg, return_mask) == 88,
               "pm_scan_arg.return_mask is the last field");

#endif
