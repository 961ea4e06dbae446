/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The event loop the library runs on, as a table of callbacks injected by
 * the VMM. The library never creates threads or loops of its own for its
 * core work: it asks the VMM to watch fds, run timers and run deferred
 * calls. A VMM built on its own epoll loop fills in these callbacks; the
 * GLib adapter (system/event-loop-glib.c) is the default.
 *
 * All callbacks are invoked from the loop's thread, never re-entrantly from
 * inside a library call.
 */
#ifndef SYSTEM_EVENT_LOOP_H
#define SYSTEM_EVENT_LOOP_H

#include <glib.h>
#include <stdbool.h>

#include "util/vhost-user-api.h"

typedef enum VhostWatchEvents {
    VHOST_WATCH_IN  = 1 << 0,
    VHOST_WATCH_OUT = 1 << 1,
    VHOST_WATCH_HUP = 1 << 2,   /* always reported, need not be asked for */
    VHOST_WATCH_ERR = 1 << 3,   /* always reported, need not be asked for */
} VhostWatchEvents;

/* Return false to remove the watch (as if remove_watch had been called). */
typedef bool (*VhostFdWatchFn)(int fd, unsigned events, void *opaque);
/* One-shot: a timer or a deferred call fires once and is then gone. */
typedef void (*VhostCallbackFn)(void *opaque);

typedef struct VhostEventLoop VhostEventLoop;

typedef struct VhostEventLoopOps {
    void *(*add_watch)(VhostEventLoop *loop, int fd, unsigned events,
                       VhostFdWatchFn cb, void *opaque);
    void (*remove_watch)(VhostEventLoop *loop, void *watch);
    void *(*add_timer)(VhostEventLoop *loop, unsigned ms,
                       VhostCallbackFn cb, void *opaque);
    void (*remove_timer)(VhostEventLoop *loop, void *timer);
    /* Run cb from the loop as soon as possible, after the current dispatch. */
    void *(*defer)(VhostEventLoop *loop, VhostCallbackFn cb, void *opaque);
    void (*cancel_defer)(VhostEventLoop *loop, void *handle);
} VhostEventLoopOps;

struct VhostEventLoop {
    const VhostEventLoopOps *ops;
    void *opaque;               /* the implementation's own state */
};

/* GLib adapter: ctx NULL means the global default context. */
VHOST_USER_API
VhostEventLoop *vhost_event_loop_glib_new(GMainContext *ctx);
VHOST_USER_API
void vhost_event_loop_glib_free(VhostEventLoop *loop);
/* The process-wide default (GLib, default context); never freed. */
VHOST_USER_API
VhostEventLoop *vhost_event_loop_default(void);

/* Convenience wrappers that dispatch through loop->ops. */
VHOST_USER_API
void *vhost_loop_add_watch(VhostEventLoop *loop, int fd, unsigned events,
                           VhostFdWatchFn cb, void *opaque);
VHOST_USER_API
void vhost_loop_remove_watch(VhostEventLoop *loop, void *watch);
VHOST_USER_API
void *vhost_loop_add_timer(VhostEventLoop *loop, unsigned ms,
                           VhostCallbackFn cb, void *opaque);
VHOST_USER_API
void vhost_loop_remove_timer(VhostEventLoop *loop, void *timer);
VHOST_USER_API
void *vhost_loop_defer(VhostEventLoop *loop, VhostCallbackFn cb, void *opaque);
VHOST_USER_API
void vhost_loop_cancel_defer(VhostEventLoop *loop, void *handle);

#endif
