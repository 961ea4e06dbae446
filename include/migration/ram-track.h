/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tracking the VMM's own writes to guest RAM during live migration.
 *
 * The reference VMM's guest runs in-process and writes guest RAM through
 * host pointers, so no hypervisor dirty log sees those writes: the VMM
 * tracks them itself, the way a hypervisor tracks a vCPU. Each RAM block
 * is registered with a userfaultfd in asynchronous write-protect mode
 * (UFFD_FEATURE_WP_ASYNC, Linux >= 6.7): a write to a protected page
 * makes the kernel drop the protection of that page and go on, with no
 * fault message and no thread of ours involved. A sync asks the kernel,
 * with the PAGEMAP_SCAN ioctl on /proc/self/pagemap, for the pages whose
 * protection is gone (PAGE_IS_WRITTEN) and protects them again in the same
 * page-table walk.
 *
 * Threads: the writers (vCPU threads, the guest driver) need no lock and
 * are never stopped. The scan tests and re-protects each page under the
 * page-table lock, so a write lands either before (the page is reported
 * by this sync, and a copy made after it returns sees the data) or after
 * (the page is protected again, the write unprotects it, the next sync
 * reports it). A write through a TLB entry that was still writable while
 * the walk ran can only hit a page this sync reports; the kernel flushes
 * those entries before the ioctl returns. So every write is reported by
 * the sync that follows it or by an earlier one still running, never lost.
 * The tracker's own calls (start, sync, stop, add, remove) may come from
 * different threads (the migration thread syncs while the main loop
 * hotplugs memory): they serialise on a lock inside the tracker.
 *
 * Privilege: none needed. Without it the kernel only grants a userfaultfd
 * limited to user-mode faults (UFFD_USER_MODE_ONLY), which is enough for
 * async write-protect: writes by the kernel itself (a read() into guest
 * RAM) are tracked and do not fail.
 *
 * Seen: stores through this process's mappings of the blocks, by any of
 * its threads or by the kernel on its behalf. Not seen: writes through
 * another mapping of the same memory (a vhost-user back-end's, a second
 * mmap of the fd): the back-ends' dirty log covers theirs.
 *
 * Cost measured on Linux 6.18 (bench/bench-ram-track.c): protecting
 * everything ~17-25 ms/GiB (start, add); a sync ~0.25 ms/GiB plus ~30-50 us
 * for each 2 MiB range holding a written page (one TLB flush per page
 * table re-protected): clustered writes stay near 1-2 ms/GiB, writes
 * scattered over every 2 MiB cost as much as protecting everything.
 *
 * Errors: when the kernel or the process lacks what this needs,
 * ram_track_new() fails with VHOST_USER_ERROR_FEATURE_MISMATCH and a
 * message "guest-write tracking unavailable: <why>; migration will stop
 * the guest for the whole copy": the caller falls back to stop-and-copy.
 * Every other failure is VHOST_USER_ERROR_LOCAL (a syscall failed),
 * _CONFIG (a bad block) or _INVALID_STATE (a call out of order).
 * Exported: a VMM whose guest writes RAM from its own threads needs it.
 */
#ifndef MIGRATION_RAM_TRACK_H
#define MIGRATION_RAM_TRACK_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "system/memory.h"
#include "util/vhost-user-api.h"

/* One bit per guest page of this size in a sync's bitmap. */
#define RAM_TRACK_PAGE_SHIFT 12
#define RAM_TRACK_PAGE_SIZE (1ULL << RAM_TRACK_PAGE_SHIFT)

typedef struct RamTrack RamTrack;

/*
 * A tracked range of guest RAM: size bytes at host (the VMM's shared
 * mapping, host-page aligned) placed at guest address gpa (4 KiB
 * aligned). id names it in messages ("ram0"); it is copied.
 */
typedef struct RamTrackBlock {
    const char *id;
    void *host;
    uint64_t size;
    uint64_t gpa;
} RamTrackBlock;

/* The block for one region of a GuestMemory map. */
VHOST_USER_API
RamTrackBlock ram_track_block_from_region(const MemoryRegionMap *r);

/*
 * Opens the userfaultfd (async WP) and /proc/self/pagemap and checks that
 * PAGEMAP_SCAN is there, then takes the blocks (may be none). Nothing is
 * protected yet. Fails with FEATURE_MISMATCH when tracking is unavailable.
 */
VHOST_USER_API
RamTrack *ram_track_new(const RamTrackBlock *blocks, unsigned nblocks,
                        GError **errp);

/*
 * Registers every block and write-protects all of it: from now on each
 * written page is reported by a sync. Whatever was written before is not:
 * the first copy round must send everything.
 */
VHOST_USER_API
bool ram_track_start(RamTrack *t, GError **errp);

/*
 * Sets the bit of every guest page written since the previous sync (or
 * start) in bitmap (bit n of word n / 64 is the page at gpa n * 4 KiB;
 * the layout of the vhost-user dirty log on little-endian hosts), and
 * protects those pages again. Bits are only ever set, with atomic ORs:
 * the caller clears them. npages is the bitmap's size in pages: it must
 * cover every block, which is checked before anything is scanned.
 * *written (may be NULL) gets the number of pages reported.
 * On failure some writes may have been consumed without being reported:
 * the caller must treat all of guest RAM as dirty, or stop the guest.
 */
VHOST_USER_API
bool ram_track_sync(RamTrack *t, uint64_t *bitmap, uint64_t npages,
                    uint64_t *written, GError **errp);

/*
 * Unregisters every block: writes cost nothing again and are no longer
 * reported. Does not sync: sync first to keep the last writes.
 */
VHOST_USER_API
bool ram_track_stop(RamTrack *t, GError **errp);

/*
 * Memory hotplug while tracking (or not). A block added while tracking is
 * registered and protected at once (its earlier contents are the caller's
 * to send). Remove a block before its memory is unmapped; its writes
 * since the last sync are dropped.
 */
VHOST_USER_API
bool ram_track_add_block(RamTrack *t, const RamTrackBlock *block, GError **errp);
VHOST_USER_API
bool ram_track_remove_block(RamTrack *t, uint64_t gpa, GError **errp);

/*
 * Makes the tracked blocks those of mem's regions: drops the blocks whose
 * region is gone, adds (and protects, when tracking) the new ones. Call it
 * from a GuestMemoryListener to follow hotplug. The mapping of a removed
 * region may already be unmapped when the listener runs: that is fine.
 */
VHOST_USER_API
bool ram_track_update_blocks(RamTrack *t, const GuestMemory *mem, GError **errp);

VHOST_USER_API
bool ram_track_started(RamTrack *t);

/* Stops when started; NULL is fine. */
VHOST_USER_API
void ram_track_free(RamTrack *t);

/*
 * For tests only: pretend the kernel lacks what tracking needs, or make
 * the scan's output vector tiny, through the same code paths the real
 * cases take.
 */
typedef struct RamTrackTestHooks {
    uint64_t extra_uffd_features;   /* ORed into UFFDIO_API's request */
    unsigned long scan_request;     /* ioctl number used instead of PAGEMAP_SCAN */
    unsigned vec_len;               /* regions per scan call, 0: the default */
    bool user_mode_only;            /* open the userfaultfd with UFFD_USER_MODE_ONLY */
} RamTrackTestHooks;

RamTrack *ram_track_new_hooked(const RamTrackBlock *blocks, unsigned nblocks,
                               const RamTrackTestHooks *hooks, GError **errp);

#endif
