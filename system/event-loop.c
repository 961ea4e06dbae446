/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Wrappers over the injected event-loop table, and the process-wide
 * default loop (the GLib adapter on the global default context).
 */
#include "system/event-loop.h"

VhostEventLoop *vhost_event_loop_default(void)
{
    static VhostEventLoop *default_loop;

    /* g_once: the first user may be any thread (a VMM's I/O thread too). */
    if (g_once_init_enter(&default_loop)) {
        g_once_init_leave(&default_loop, vhost_event_loop_glib_new(NULL));
    }
    return default_loop;
}

static VhostEventLoop *loop_or_default(VhostEventLoop *loop)
{
    return loop ? loop : vhost_event_loop_default();
}

void *vhost_loop_add_watch(VhostEventLoop *loop, int fd, unsigned events,
                           VhostFdWatchFn cb, void *opaque)
{
    g_return_val_if_fail(fd >= 0 && cb, NULL);
    loop = loop_or_default(loop);
    return loop->ops->add_watch(loop, fd, events, cb, opaque);
}

void vhost_loop_remove_watch(VhostEventLoop *loop, void *watch)
{
    if (!watch) {
        return;
    }
    loop = loop_or_default(loop);
    loop->ops->remove_watch(loop, watch);
}

void *vhost_loop_add_timer(VhostEventLoop *loop, unsigned ms,
                           VhostCallbackFn cb, void *opaque)
{
    g_return_val_if_fail(cb, NULL);
    loop = loop_or_default(loop);
    return loop->ops->add_timer(loop, ms, cb, opaque);
}

void vhost_loop_remove_timer(VhostEventLoop *loop, void *timer)
{
    if (!timer) {
        return;
    }
    loop = loop_or_default(loop);
    loop->ops->remove_timer(loop, timer);
}

void *vhost_loop_defer(VhostEventLoop *loop, VhostCallbackFn cb, void *opaque)
{
    g_return_val_if_fail(cb, NULL);
    loop = loop_or_default(loop);
    return loop->ops->defer(loop, cb, opaque);
}

void vhost_loop_cancel_defer(VhostEventLoop *loop, void *handle)
{
    if (!handle) {
        return;
    }
    loop = loop_or_default(loop);
    loop->ops->cancel_defer(loop, handle);
}
