/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy fault tracing (include/migration/postcopy-ram.h): one trace
 * line per step of a requested page, stamped with CLOCK_MONOTONIC, so
 * that the source's and the destination's lines of one fault can be put
 * side by side. Off unless VHOST_USER_POSTCOPY_TRACE asks for it: the
 * check is one atomic load.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "migration/postcopy-ram.h"
#include "util/vhost-user-log.h"

static gsize pc_trace_init;
static int pc_trace_on;

bool mig_pc_trace_enabled(void)
{
    if (g_once_init_enter(&pc_trace_init)) {
        const char *v = g_getenv("VHOST_USER_POSTCOPY_TRACE");

        g_atomic_int_set(&pc_trace_on, v && *v && strcmp(v, "0") != 0);
        g_once_init_leave(&pc_trace_init, 1);
    }
    return g_atomic_int_get(&pc_trace_on) != 0;
}

static void pc_trace_va(gint64 t, const char *fmt, va_list ap) G_GNUC_PRINTF(2, 0);

static void pc_trace_va(gint64 t, const char *fmt, va_list ap)
{
    g_autofree char *body = g_strdup_vprintf(fmt, ap);

    vhost_user_log(VHOST_USER_LOG_TRACE, "postcopy", "t=%" G_GINT64_FORMAT " %s", t, body);
}

void mig_pc_trace(const char *fmt, ...)
{
    gint64 now = g_get_monotonic_time();
    va_list ap;

    if (!mig_pc_trace_enabled()) {
        return;
    }
    va_start(ap, fmt);
    pc_trace_va(now, fmt, ap);
    va_end(ap);
}

void mig_pc_trace_at(gint64 t, const char *fmt, ...)
{
    va_list ap;

    if (!mig_pc_trace_enabled()) {
        return;
    }
    va_start(ap, fmt);
    pc_trace_va(t, fmt, ap);
    va_end(ap);
}
