/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the guest drivers' live-migration tests share: a WorkloadCtl
 * whose park() blocks until the test lets the run go on or ends it as
 * migrated, and a pause that waits for the park as the VMM's does.
 */
#ifndef UNIT_PARK_H
#define UNIT_PARK_H

#include <glib.h>
#include <stdbool.h>

#include "guest/workload.h"

typedef struct UnitPark {
    GMutex lock;
    GCond cond;
    bool pause;                 /* the driver reads it atomically */
    bool parked;
    bool released;
    bool go_on;                 /* what park returns once released */
    unsigned parks;
    unsigned in_flight;         /* the driver's */
} UnitPark;

static bool unit_park_cb(void *opaque)
{
    UnitPark *p = opaque;
    bool go_on;

    g_mutex_lock(&p->lock);
    p->parked = true;
    p->parks++;
    g_cond_broadcast(&p->cond);
    while (!p->released) {
        g_cond_wait(&p->cond, &p->lock);
    }
    go_on = p->go_on;
    p->parked = false;
    p->released = false;
    g_mutex_unlock(&p->lock);
    return go_on;
}

static void unit_park_init(UnitPark *p, WorkloadCtl *ctl)
{
    memset(p, 0, sizeof(*p));
    g_mutex_init(&p->lock);
    g_cond_init(&p->cond);
    ctl->pause = &p->pause;
    ctl->park = unit_park_cb;
    ctl->in_flight = &p->in_flight;
    ctl->opaque = p;
}

/* Asks for a pause and waits (5 s at most) until the driver parked. */
static bool unit_park_pause(UnitPark *p)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
    bool ok;

    g_mutex_lock(&p->lock);
    __atomic_store_n(&p->pause, true, __ATOMIC_RELEASE);
    while (!p->parked && g_cond_wait_until(&p->cond, &p->lock, deadline)) {
    }
    ok = p->parked;
    g_mutex_unlock(&p->lock);
    return ok;
}

/* Lets the parked run go on here (go_on) or end as migrated. */
static void unit_park_release(UnitPark *p, bool go_on)
{
    g_mutex_lock(&p->lock);
    __atomic_store_n(&p->pause, false, __ATOMIC_RELEASE);
    p->go_on = go_on;
    p->released = true;
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
}

static void unit_park_clear(UnitPark *p)
{
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->cond);
}

#endif
