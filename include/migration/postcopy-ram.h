/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy on the destination: guest RAM under userfaultfd. Pages the
 * source still owes are punched out of the RAM blocks' files (discard),
 * every region of the VMM's own mapping is registered MISSING, and a fault
 * thread reads the faults: of the VMM's own threads (the guest, the device
 * model) on our userfaultfd, and of vhost-user back-ends on theirs (shared
 * userfaultfds, handed over by POSTCOPY_ADVISE, which may be added and
 * removed while the thread runs). A fault on a page not received yet asks
 * the source for it (the request callback, at most once per page until
 * mig_postcopy_rerequest); the migration thread places pages as they come
 * (UFFDIO_COPY, UFFDIO_ZEROPAGE), each at most once, which wakes our own
 * faulting threads; back-ends waiting for that page are woken on their
 * own userfaultfd at their own address (UFFDIO_WAKE).
 *
 * Nothing here waits for the VMM's event loop, so a back-end that faults
 * while the loop waits for its reply is served all the same.
 *
 * Untrusted input: a back-end's fault addresses (translated by the
 * caller's callback, and a fault outside guest RAM drops that back-end's
 * ufd from the poll set with an error, never the guest).
 */
#ifndef MIGRATION_POSTCOPY_RAM_H
#define MIGRATION_POSTCOPY_RAM_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "system/memory.h"
#include "util/vhost-user-api.h"

typedef struct MigPostcopy MigPostcopy;

/*
 * How the threads on a fault's path are scheduled (postcopy-sched.c has
 * the measurements behind it): the fault thread, the source's request
 * reader, the preempt connection's placer. Each is woken once per
 * requested page, and a fault lasts until each got a CPU.
 */
typedef enum MigPcSched {
    MIG_PC_SCHED_AUTO,          /* FIFO if this process may, else SLICE */
    MIG_PC_SCHED_FIFO,          /* SCHED_FIFO priority 1: preempts the fair class */
    MIG_PC_SCHED_SLICE,         /* fair class, the shortest slice (0.1 ms, EEVDF) */
    MIG_PC_SCHED_NORMAL,        /* as the thread was created */
} MigPcSched;

/*
 * On the fault thread: page gpa (4 KiB aligned) is wanted and has not
 * arrived. Ask the source (the return path); must not wait for the page.
 */
typedef void (*MigPostcopyRequestFn)(uint64_t gpa, void *opaque);

/*
 * On the fault thread: a back-end's fault address to a guest physical
 * address. False: the address is not in any region the back-end was given.
 */
typedef bool (*MigPostcopyTranslateFn)(uint64_t addr, uint64_t *gpa, void *opaque);

/*
 * On the fault thread: a shared userfaultfd failed (a fault outside guest
 * RAM, an unexpected event, a read error). It is no longer polled; the
 * caller decides what happens to that back-end. err is the thread's.
 */
typedef void (*MigPostcopySharedErrorFn)(int ufd, const GError *err, void *opaque);

typedef struct MigPostcopyStats {
    uint64_t pages_missing;     /* not received yet */
    uint64_t pages_placed;      /* placed in all (stream and requests) */
    uint64_t pages_zero;        /* of those, placed as zero pages */
    uint64_t requests;          /* pages asked of the source */
    uint64_t faults_guest;      /* faults read from our userfaultfd */
    uint64_t faults_backend;    /* faults read from shared userfaultfds */
    uint64_t faults_present;    /* of those, on a page already received */
    /*
     * Blocktime: from reading a fault to its page placed and the faulting
     * party woken, summed (us), and per fault (us): median, 90th, 99th
     * percentile, maximum. Separately for our threads and the back-ends.
     */
    uint64_t blocktime_guest_us;
    uint64_t blocktime_backend_us;
    uint64_t guest_p50_us, guest_p90_us, guest_p99_us, guest_max_us;
    uint64_t backend_p50_us, backend_p90_us, backend_p99_us, backend_max_us;
    MigPcSched fault_sched;     /* what the fault thread got (NORMAL before listen) */
} MigPostcopyStats;

/*
 * Whether this process can put mem's RAM under userfaultfd (the
 * userfaultfd syscall or /dev/userfaultfd, shared-memory MISSING faults);
 * the reason when not, for a migration blocker.
 */
VHOST_USER_API
bool mig_postcopy_supported(const GuestMemory *mem, GError **errp);

/*
 * A userfaultfd for mem; every page counts as received until discarded.
 * Nothing is registered and no thread runs yet. request is called on the
 * fault thread.
 */
VHOST_USER_API
MigPostcopy *mig_postcopy_new(GuestMemory *mem, MigPostcopyRequestFn request,
                              void *opaque, GError **errp);

/*
 * Before listen: the pages of [gpa, gpa + len) (4 KiB aligned, inside
 * guest RAM, else an error naming the range) are owed by the source:
 * punched out of their block's file (fallocate PUNCH_HOLE) and marked not
 * received. Pages outside every region are an error.
 */
VHOST_USER_API
bool mig_postcopy_discard(MigPostcopy *pc, uint64_t gpa, uint64_t len, GError **errp);

/*
 * Registers every region of our mapping MISSING and starts the fault
 * thread. From here on guest RAM is written only by mig_postcopy_place.
 * A page that was received but is missing in the file (a hole the source
 * never sent) is placed as a zero page when touched.
 */
VHOST_USER_API
bool mig_postcopy_listen(MigPostcopy *pc, GError **errp);

/*
 * Polls a back-end's userfaultfd too (any time, also while the thread
 * runs), through a duplicate of ufd: the caller keeps owning ufd and may
 * close it before removing it (POSTCOPY_END closes it while the back-end
 * may still fault); ufd stays the key for remove_shared and err_fn until
 * then. name ("blk0") prefixes errors. err_fn may be NULL.
 */
VHOST_USER_API
bool mig_postcopy_add_shared(MigPostcopy *pc, int ufd, const char *name,
                             MigPostcopyTranslateFn translate,
                             MigPostcopySharedErrorFn err_fn, void *opaque,
                             GError **errp);
/*
 * Stops polling ufd; when it returns, the fault thread no longer uses it
 * (waiters on it are forgotten, not woken) and our duplicate is closed.
 */
VHOST_USER_API
void mig_postcopy_remove_shared(MigPostcopy *pc, int ufd);

/*
 * Places page gpa (data: 4 KiB; NULL: a zero page). A page already
 * received is left alone (true). Wakes whoever waits for it. Any thread.
 */
VHOST_USER_API
bool mig_postcopy_place(MigPostcopy *pc, uint64_t gpa, const void *data, GError **errp);
/*
 * The same, for a page read on connection conn ("main", "preempt"): the
 * name goes in the fault trace (mig_pc_trace); mig_postcopy_place is "main".
 */
VHOST_USER_API
bool mig_postcopy_place_from(MigPostcopy *pc, uint64_t gpa, const void *data,
                             const char *conn, GError **errp);

VHOST_USER_API
bool mig_postcopy_received(MigPostcopy *pc, uint64_t gpa);
/* Pages not received yet: 0 means the source owes nothing more. */
VHOST_USER_API
uint64_t mig_postcopy_missing(MigPostcopy *pc);

/*
 * Waits until no page is missing (true) or end_us (monotonic) passed
 * (false). For a destination whose pages come on more than one
 * connection: END on one does not mean the others' pages are in.
 */
VHOST_USER_API
bool mig_postcopy_wait_received(MigPostcopy *pc, gint64 end_us);

/*
 * After a new connection to the source (recovery): calls the request
 * callback again for every page someone still waits for.
 */
VHOST_USER_API
void mig_postcopy_rerequest(MigPostcopy *pc);

VHOST_USER_API
void mig_postcopy_get_stats(MigPostcopy *pc, MigPostcopyStats *st);

/*
 * Every page received: unregisters our mapping. An error (naming how many
 * pages are missing) if not. The fault thread keeps serving the shared
 * ufds until they are removed (or pc freed): a back-end may fault until
 * it answered POSTCOPY_END (a fault read late is woken, a hole it touches
 * is zero-filled through its own ufd).
 */
VHOST_USER_API
bool mig_postcopy_finish(MigPostcopy *pc, GError **errp);

/* Stops the thread, unregisters and closes our userfaultfd. NULL is ok. */
VHOST_USER_API
void mig_postcopy_free(MigPostcopy *pc);

/* "auto", "fifo", "slice", "normal"; parse is false for anything else. */
VHOST_USER_API
const char *mig_pc_sched_name(MigPcSched s);
VHOST_USER_API
bool mig_pc_sched_parse(const char *name, MigPcSched *s);

/*
 * Called on the thread itself; what ("fault") names it in errors. *got:
 * FIFO, SLICE or NORMAL, what the thread now has. AUTO never fails for
 * want of privilege: refused FIFO falls back to SLICE. An explicit FIFO
 * that is refused also falls back to SLICE (*got says so) but returns
 * false, with an error naming the privilege it needs; a failure to set
 * the slice returns false with *got NORMAL. The thread runs on either way.
 */
VHOST_USER_API
bool mig_pc_thread_set_sched(MigPcSched want, const char *what, MigPcSched *got,
                             GError **errp);

/*
 * Called on a thread of a fault's path (the fault thread does it itself),
 * once, before its first event: touches its stack and the heap of its
 * malloc arena, so that the first fault it serves does not also pay for
 * page faults of the thread's own. In a VM each of those costs tens of
 * microseconds; the first request of a migration spent 180-380 us in them
 * on the source's reader alone (perf), more than a whole later fault.
 */
VHOST_USER_API
void mig_pc_thread_prefault(void);

/*
 * The fault thread's scheduling (default SLICE: a library does not make
 * real-time threads unasked). Before mig_postcopy_listen.
 */
VHOST_USER_API
void mig_postcopy_set_sched(MigPostcopy *pc, MigPcSched sched);

/*
 * Fault tracing, for finding where a fault's time goes: on when
 * VHOST_USER_POSTCOPY_TRACE is set in the environment (any value but
 * "0"). Each step of a requested page is one VHOST_USER_LOG_TRACE line
 * for device "postcopy": "t=US STEP key=value...", US CLOCK_MONOTONIC in
 * us (comparable between two processes on one host), every line with
 * gpa=. Destination: fault (who= guest or the device, addr= its address,
 * block=, off=), request-sent (conn=), page-recv (conn=), placed (after
 * UFFDIO_COPY; copy= its us), woken (who=, blocked=, by= UFFDIO_COPY
 * for the guest, UFFDIO_WAKE on its ufd for a back-end; a back-end's
 * stamped before the ioctl). Source: request-recv (conn=),
 * request-taken (main connection only: the sender thread took it),
 * page-sent (conn=). request-sent and page-sent are stamped when the
 * write starts (mig_pc_trace_at). Only requested pages are traced,
 * never the background stream. scripts/postcopy-fault-trace.sh puts the
 * two VMMs' lines of one fault side by side.
 */
VHOST_USER_API
bool mig_pc_trace_enabled(void);
VHOST_USER_API
void mig_pc_trace(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/*
 * A line stamped t (g_get_monotonic_time() taken earlier): for a step
 * that starts a write (request-sent, page-sent), stamped before the
 * write and logged after it, so that the stamp precedes the peer's read
 * and the trace costs the write nothing.
 */
VHOST_USER_API
void mig_pc_trace_at(gint64 t, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#endif
