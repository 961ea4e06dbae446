/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vCPU thread placement (-vcpu-pin). See vmm/vmm-affinity.h.
 *
 * The CPUs the process was allowed at the first call are the pool: the
 * vCPU threads take them in turn, one each, and the main loop keeps the
 * rest; at least one always stays with the main loop (more vCPU threads
 * than that allows share the taken CPUs in turn). Where the turn starts
 * depends on the process id: several VMMs on one machine (tests run in
 * parallel, a migration's two ends) then spread their vCPU threads over
 * the CPUs rather than all take the same one.
 */
#include <sched.h>
#include <stdbool.h>
#include <unistd.h>

#include <glib.h>

#include "vmm/vmm-affinity.h"

static cpu_set_t pool;          /* allowed at the first call */
static int pool_n = -1;         /* CPUs in pool; -1 before the first call */
static cpu_set_t taken;         /* given to vCPU threads */
static unsigned vcpus;          /* vCPU threads placed */

/* The nth CPU of set, counting from the lowest (n < CPU_COUNT(set)). */
static int cpu_nth(const cpu_set_t *set, int n)
{
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, set) && n-- == 0) {
            return c;
        }
    }
    return -1;
}

static char *cpu_list(const cpu_set_t *set)
{
    GString *s = g_string_new(NULL);

    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, set)) {
            g_string_append_printf(s, "%s%d", s->len ? "," : "", c);
        }
    }
    return g_string_free(s, FALSE);
}

static bool set_self(const cpu_set_t *set)
{
    return sched_setaffinity(0, sizeof(*set), set) == 0;
}

int vmm_affinity_take_vcpu(void)
{
    cpu_set_t one;
    int cpu;

    if (pool_n < 0) {
        CPU_ZERO(&pool);
        pool_n = sched_getaffinity(0, sizeof(pool), &pool) == 0 ? CPU_COUNT(&pool) : 0;
    }
    if (pool_n < 2) {
        return -1;
    }
    cpu = cpu_nth(&pool, (int)(((unsigned)getpid() + vcpus++ % (unsigned)(pool_n - 1)) %
                                (unsigned)pool_n));
    CPU_SET(cpu, &taken);
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    /* Failing, the thread is born where we are: it still runs. */
    (void)set_self(&one);
    return cpu;
}

char *vmm_affinity_main_rest(int cpu)
{
    cpu_set_t rest;
    g_autofree char *list = NULL;

    CPU_XOR(&rest, &pool, &taken);
    list = cpu_list(&rest);
    if (!set_self(&rest)) {
        return g_strdup_printf("CPU %d (the main loop could not be moved to CPUs %s)",
                               cpu, list);
    }
    return g_strdup_printf("CPU %d, main loop on CPUs %s", cpu, list);
}
