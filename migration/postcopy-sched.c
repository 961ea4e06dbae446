/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scheduling of the threads on a postcopy fault's path
 * (include/migration/postcopy-ram.h): each sleeps until its step comes,
 * and each wake-up is paid by a blocked guest or back-end. Traced
 * (scripts/postcopy-fault-trace.sh), most of a guest fault's time on a
 * busy machine went between a write and the reading thread getting a CPU
 * (the source's request reader, the destination's preempt placer), not in
 * the work itself: the CPUs ran the background stream, its placement and
 * the guest, and a woken thread waited out the running one's slice.
 *
 * Since Linux 6.12 (EEVDF) a fair-class thread may ask for a shorter
 * slice (sched_attr.sched_runtime, 0.1-100 ms): its virtual deadline is
 * then earlier, so on waking it preempts a thread that asked for none
 * instead of waiting for it. Its share of the CPU does not change (nice
 * is kept), and these threads run for microseconds at a time. Needs no
 * privilege; an older kernel takes the call and ignores the runtime.
 * VHOST_USER_POSTCOPY_SLICE=0 in the environment leaves the default.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
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

#define PC_SCHED_OTHER      0
#define PC_LATENCY_SLICE_NS 100000ull       /* the shortest the kernel takes */

bool mig_pc_thread_set_latency(const char *what, GError **errp)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    PcSchedAttr attr = {
        .size = sizeof(attr),
        .sched_policy = PC_SCHED_OTHER,
        .sched_runtime = PC_LATENCY_SLICE_NS,
    };
    const char *e = g_getenv("VHOST_USER_POSTCOPY_SLICE");
    int nice;

    if (e && !strcmp(e, "0")) {
        return true;            /* the kernel's default slice, for comparing */
    }
    errno = 0;
    nice = getpriority(PRIO_PROCESS, (id_t)tid);
    if (nice == -1 && errno) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "postcopy: %s thread: reading its nice value: %s", what,
                    g_strerror(errno));
        return false;
    }
    attr.sched_nice = nice;
    if (syscall(SYS_sched_setattr, tid, &attr, 0u) != 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "postcopy: %s thread: a %llu us slice (sched_setattr): %s", what,
                    PC_LATENCY_SLICE_NS / 1000, g_strerror(errno));
        return false;
    }
    return true;
}
