/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scheduling of the threads on a postcopy fault's path
 * (include/migration/postcopy-ram.h): each sleeps until its step comes,
 * and each wake-up is paid by a blocked guest or back-end. Traced
 * (scripts/postcopy-fault-trace.sh), most of a fault's time on a busy
 * machine went between a write and the reading thread getting a CPU (the
 * source's request reader, the destination's preempt placer), not in the
 * work itself: the CPUs ran the background stream, its placement and the
 * guest, and a woken thread waited for the running one.
 *
 * Two remedies, the stronger first:
 * - SCHED_FIFO, priority 1 (the lowest real-time one): woken, the thread
 *   preempts every fair-class thread at once. perf sched showed why the
 *   fair class is not enough: a reader woken with negative lag (it had
 *   just run) is not eligible under EEVDF and waited 0.9 ms behind the
 *   nice-10 background sender. These threads run for microseconds per
 *   page and then block, so they cannot starve anyone (and the kernel's
 *   real-time throttling would stop a runaway one at 95% of a CPU). Needs
 *   CAP_SYS_NICE or RLIMIT_RTPRIO >= 1. Not inherited across fork
 *   (SCHED_FLAG_RESET_ON_FORK).
 * - The shortest fair slice, 0.1 ms (sched_attr.sched_runtime; EEVDF,
 *   Linux 6.12+): an earlier virtual deadline, so on waking the thread
 *   usually preempts one that asked for none. No privilege; nice and CPU
 *   share unchanged; an older kernel takes the call and ignores it.
 *
 * And one remedy for the first fault, which found every thread on its
 * path cold: mig_pc_thread_prefault.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <glib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "migration/postcopy-ram.h"
#include "util/vhost-user-error.h"

/* The kernel's struct sched_attr, first version (48 bytes); not in every libc. */
typedef struct PcSchedAttr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
} PcSchedAttr;

G_STATIC_ASSERT(sizeof(PcSchedAttr) == 48);

#define PC_SCHED_OTHER          0
#define PC_SCHED_FIFO           1
#define PC_RESET_ON_FORK        0x01ull
#define PC_FIFO_PRIORITY        1u
#define PC_LATENCY_SLICE_NS     100000ull       /* the shortest the kernel takes */

static const char *const pc_sched_names[] = {
    [MIG_PC_SCHED_AUTO] = "auto",
    [MIG_PC_SCHED_FIFO] = "fifo",
    [MIG_PC_SCHED_SLICE] = "slice",
    [MIG_PC_SCHED_NORMAL] = "normal",
};

const char *mig_pc_sched_name(MigPcSched s)
{
    return (unsigned)s < G_N_ELEMENTS(pc_sched_names) ? pc_sched_names[s] : "?";
}

bool mig_pc_sched_parse(const char *name, MigPcSched *s)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(pc_sched_names); i++) {
        if (name && !strcmp(name, pc_sched_names[i])) {
            *s = (MigPcSched)i;
            return true;
        }
    }
    return false;
}

/*
 * What a thread touches ahead. The stack covers the deepest fault path
 * with room (a trace line's formatting alone takes 8 KiB of it). The heap
 * block covers one request's allocations (a 12 KiB RAM section, GLib's
 * arrays); freed, it goes back to the top of the thread's arena and stays
 * there, since glibc trims a top only beyond 128 KiB.
 */
#define PC_PREFAULT_STACK       (64 * 1024)
#define PC_PREFAULT_HEAP        (64 * 1024)
#define PC_PAGE                 4096

/* A frame of its own, so the array is below the caller's frame. */
static G_GNUC_NO_INLINE void pc_prefault_stack(void)
{
    volatile uint8_t buf[PC_PREFAULT_STACK];

    for (size_t i = 0; i < sizeof(buf); i += PC_PAGE) {
        buf[i] = 0;
    }
}

void mig_pc_thread_prefault(void)
{
    /*
     * g_malloc, not g_malloc0: calloc knows a fresh top is zero and would
     * not touch it. Volatile, or the stores die with the block. The first
     * malloc of a thread is also what gives it an arena, with an mprotect
     * to grow it: both done here, not in a fault.
     */
    volatile uint8_t *heap = g_malloc(PC_PREFAULT_HEAP);

    for (size_t i = 0; i < PC_PREFAULT_HEAP; i += PC_PAGE) {
        heap[i] = 0;
    }
    g_free((void *)heap);
    pc_prefault_stack();
}

static int pc_setattr(pid_t tid, PcSchedAttr *attr)
{
    return syscall(SYS_sched_setattr, tid, attr, 0u) == 0 ? 0 : -errno;
}

bool mig_pc_thread_set_sched(MigPcSched want, const char *what, MigPcSched *got,
                             GError **errp)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    PcSchedAttr attr = { .size = sizeof(attr), .sched_flags = PC_RESET_ON_FORK };
    int nice, r = 0, rs;

    *got = MIG_PC_SCHED_NORMAL;
    if (want == MIG_PC_SCHED_NORMAL) {
        return true;
    }
    if (want == MIG_PC_SCHED_AUTO || want == MIG_PC_SCHED_FIFO) {
        attr.sched_policy = PC_SCHED_FIFO;
        attr.sched_priority = PC_FIFO_PRIORITY;
        r = pc_setattr(tid, &attr);
        if (r == 0) {
            *got = MIG_PC_SCHED_FIFO;
            return true;
        }
        /* Not allowed (or no RT class): the slice is the next best. */
    }
    errno = 0;
    nice = getpriority(PRIO_PROCESS, (id_t)tid);
    if (nice == -1 && errno) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "postcopy: %s thread: reading its nice value: %s", what,
                    g_strerror(errno));
        return false;
    }
    attr = (PcSchedAttr) {
        .size = sizeof(attr),
        .sched_policy = PC_SCHED_OTHER,
        .sched_nice = nice,
        .sched_runtime = PC_LATENCY_SLICE_NS,
    };
    rs = pc_setattr(tid, &attr);
    if (rs != 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "postcopy: %s thread: a %llu us slice (sched_setattr): %s", what,
                    PC_LATENCY_SLICE_NS / 1000, g_strerror(-rs));
        return false;
    }
    *got = MIG_PC_SCHED_SLICE;
    if (want == MIG_PC_SCHED_FIFO) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "postcopy: %s thread: SCHED_FIFO refused (%s; needs CAP_SYS_NICE or "
                    "RLIMIT_RTPRIO >= %u), runs with the 0.1 ms slice instead", what,
                    g_strerror(-r), PC_FIFO_PRIORITY);
        return false;
    }
    return true;
}
