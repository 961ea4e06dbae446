/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the two halves of postcopy on the destination share: the state
 * of a MigPostcopy and the helpers both use. postcopy-ram.c creates it,
 * places pages, keeps the set of back-ends' userfaultfds and finishes;
 * postcopy-fault.c is the fault thread that serves what they report.
 * The rules (threads, the lock) are in postcopy-ram.c. Internal to the
 * library (not installed).
 */
#ifndef MIGRATION_POSTCOPY_RAM_INT_H
#define MIGRATION_POSTCOPY_RAM_INT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/postcopy-hist.h"
#include "migration/postcopy-ram.h"

#define PC_PAGE             4096u

typedef struct PcRegion {
    uint64_t gpa, size;
    uint8_t *host;              /* our mapping of the region */
    RamBlock *block;            /* referenced */
    uint64_t fd_offset;         /* the region's start in block->fd */
} PcRegion;

typedef struct PcShared {
    int ufd;                    /* the caller's: the key of add/remove */
    int fd;                     /* our dup of it: polled, read and woken */
    char *name;
    MigPostcopyTranslateFn translate;
    MigPostcopySharedErrorFn err_fn;
    void *opaque;
    bool failed;                /* under lock: no longer polled */
    int removed;                /* atomic: remove_shared was called */
} PcShared;

/* Someone blocked on a page that has not arrived. */
typedef struct PcWaiter {
    PcShared *sh;               /* NULL: one of our threads (on our ufd) */
    uint64_t addr;              /* sh: the page in the back-end's mapping */
    int64_t since;              /* when its fault was read (monotonic, us) */
} PcWaiter;

struct MigPostcopy {
    PcRegion *regions;          /* sorted by gpa, as mem's */
    unsigned nregions;
    MigPostcopyRequestFn request;
    void *opaque;
    int ufd;
    int event_fd;               /* the shared set changed, or stop */
    uint64_t npages;            /* of GPA space */
    uint64_t *received;         /* a bit a page; written under lock */
    uint64_t *requested;        /* under lock */
    bool registered;
    bool listened;
    int ended;                  /* atomic: finish unregistered our mapping */

    GMutex lock;
    GCond cond;
    GPtrArray *shared;          /* PcShared *, the set polled */
    GPtrArray *dead;            /* removed on the fault thread: freed by it */
    GHashTable *waiters;        /* page number -> GArray of PcWaiter */
    uint64_t gen;               /* bumped whenever the shared set changes */
    uint64_t thread_gen;        /* the set the thread polls; G_MAXUINT64: gone */
    bool stop;
    GThread *thread;
    MigPcSched sched;           /* the fault thread's, set before listen */

    MigPostcopyStats st;        /* the counters; percentiles from the hists */
    MigPcHist hist_guest, hist_backend;
};

/* The received and requested bitmaps: a bit a page, atomic. */
static inline bool bit_test(const uint64_t *map, uint64_t page)
{
    return (__atomic_load_n(&map[page / 64], __ATOMIC_ACQUIRE) >> (page % 64)) & 1;
}

static inline void bit_set(uint64_t *map, uint64_t page)
{
    __atomic_fetch_or(&map[page / 64], 1ull << (page % 64), __ATOMIC_RELEASE);
}

static inline void bit_clear(uint64_t *map, uint64_t page)
{
    __atomic_fetch_and(&map[page / 64], ~(1ull << (page % 64)), __ATOMIC_RELEASE);
}

/* ---- postcopy-ram.c ---- */

/* The region holding gpa, by bisection, or NULL. */
const PcRegion *mig_pc_region_of_gpa(const MigPostcopy *pc, uint64_t gpa);
/* Our mapping of the page at gpa, or NULL outside guest RAM. */
uint8_t *mig_pc_gpa_host(const MigPostcopy *pc, uint64_t gpa);
/* UFFDIO_COPY (data) or UFFDIO_ZEROPAGE of our page at host; -errno or 0. */
int mig_pc_uffd_fill(int ufd, uint8_t *host, const void *data);
/* UFFDIO_WAKE of the page at addr in ufd's mapping. */
void mig_pc_uffd_wake(int ufd, uint64_t addr);

/* ---- postcopy-fault.c ---- */

/* The fault thread's body (opaque: the MigPostcopy); runs until pc->stop. */
gpointer mig_pc_fault_thread(gpointer opaque);
/* Forgets sh's waiters whose address is in [start, end); under lock. */
void mig_pc_forget_waiters(MigPostcopy *pc, PcShared *sh, uint64_t start, uint64_t end);

#endif
