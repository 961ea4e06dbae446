/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * GLib adapter for the injected event loop: every watch, timer and
 * deferred call is one GSource attached to a GMainContext.
 *
 * Handle lifetime: a handle is the GSource itself. It is valid until it is
 * removed, until a watch callback returns false, or until a timer or
 * deferred call has fired. Inside its own callback it stays valid, so a
 * callback may remove its own handle (and a watch may also return false
 * afterwards) without a double destroy: the source is referenced for the
 * duration of the dispatch and destroyed at most once.
 */
#include <glib-unix.h>

#include "system/event-loop.h"

typedef enum VhostGSourceKind {
    VHOST_GSOURCE_WATCH,
    VHOST_GSOURCE_TIMER,
    VHOST_GSOURCE_DEFER,
} VhostGSourceKind;

typedef struct VhostGSource {
    GSource base;
    VhostGSourceKind kind;
    gpointer fd_tag;            /* watch only */
    int fd;
    VhostFdWatchFn watch_cb;
    VhostCallbackFn cb;
    void *opaque;
} VhostGSource;

typedef struct VhostGlibLoop {
    VhostEventLoop loop;
    GMainContext *ctx;
} VhostGlibLoop;

static unsigned glib_to_vhost_events(GIOCondition cond)
{
    unsigned ev = 0;

    if (cond & (G_IO_IN | G_IO_PRI)) {
        ev |= VHOST_WATCH_IN;
    }
    if (cond & G_IO_OUT) {
        ev |= VHOST_WATCH_OUT;
    }
    if (cond & G_IO_HUP) {
        ev |= VHOST_WATCH_HUP;
    }
    if (cond & (G_IO_ERR | G_IO_NVAL)) {
        ev |= VHOST_WATCH_ERR;
    }
    return ev;
}

static GIOCondition vhost_to_glib_events(unsigned events)
{
    /* HUP and ERR are always reported, as poll() does. */
    GIOCondition cond = G_IO_HUP | G_IO_ERR;

    if (events & VHOST_WATCH_IN) {
        cond |= G_IO_IN;
    }
    if (events & VHOST_WATCH_OUT) {
        cond |= G_IO_OUT;
    }
    return cond;
}

static gboolean vhost_gsource_dispatch(GSource *source, GSourceFunc unused,
                                       gpointer unused_data)
{
    VhostGSource *s = (VhostGSource *)source;
    gboolean keep = G_SOURCE_REMOVE;

    /*
     * Hold a reference across the callback: it may remove this very
     * handle, which drops the context's reference.
     */
    g_source_ref(source);
    switch (s->kind) {
    case VHOST_GSOURCE_WATCH: {
        GIOCondition cond = g_source_query_unix_fd(source, s->fd_tag);
        unsigned ev = glib_to_vhost_events(cond);

        if (!ev) {
            keep = G_SOURCE_CONTINUE;
            break;
        }
        keep = s->watch_cb(s->fd, ev, s->opaque) ? G_SOURCE_CONTINUE
                                                 : G_SOURCE_REMOVE;
        break;
    }
    case VHOST_GSOURCE_TIMER:
    case VHOST_GSOURCE_DEFER:
        /*
         * One-shot: destroy before the callback so that a remove or cancel
         * from inside it is a no-op, and a re-arm from inside it creates a
         * fresh source.
         */
        g_source_destroy(source);
        s->cb(s->opaque);
        keep = G_SOURCE_REMOVE;
        break;
    }
    if (keep == G_SOURCE_REMOVE && !g_source_is_destroyed(source)) {
        g_source_destroy(source);
    }
    g_source_unref(source);
    /* Already destroyed if removing; GLib ignores the return value then. */
    return keep;
}

static GSourceFuncs vhost_gsource_funcs = {
    .dispatch = vhost_gsource_dispatch,
};

static GMainContext *glib_loop_ctx(VhostEventLoop *loop)
{
    return ((VhostGlibLoop *)loop->opaque)->ctx;
}

static VhostGSource *vhost_gsource_new(VhostGSourceKind kind, const char *name)
{
    VhostGSource *s = (VhostGSource *)g_source_new(&vhost_gsource_funcs,
                                                   sizeof(VhostGSource));

    s->kind = kind;
    s->fd = -1;
    g_source_set_name(&s->base, name);
    return s;
}

/* The context keeps the only reference; the handle is a borrowed pointer. */
static void *vhost_gsource_attach(VhostEventLoop *loop, VhostGSource *s)
{
    g_source_attach(&s->base, glib_loop_ctx(loop));
    g_source_unref(&s->base);
    return s;
}

static void vhost_gsource_remove(void *handle)
{
    GSource *source = handle;

    if (!g_source_is_destroyed(source)) {
        g_source_destroy(source);
    }
}

static void *glib_add_watch(VhostEventLoop *loop, int fd, unsigned events,
                            VhostFdWatchFn cb, void *opaque)
{
    VhostGSource *s = vhost_gsource_new(VHOST_GSOURCE_WATCH, "vhost-watch");

    s->fd = fd;
    s->watch_cb = cb;
    s->opaque = opaque;
    s->fd_tag = g_source_add_unix_fd(&s->base, fd, vhost_to_glib_events(events));
    return vhost_gsource_attach(loop, s);
}

static void *glib_add_timer(VhostEventLoop *loop, unsigned ms,
                            VhostCallbackFn cb, void *opaque)
{
    VhostGSource *s = vhost_gsource_new(VHOST_GSOURCE_TIMER, "vhost-timer");

    s->cb = cb;
    s->opaque = opaque;
    g_source_set_ready_time(&s->base,
                            g_get_monotonic_time() + (gint64)ms * G_TIME_SPAN_MILLISECOND);
    return vhost_gsource_attach(loop, s);
}

static void *glib_defer(VhostEventLoop *loop, VhostCallbackFn cb, void *opaque)
{
    VhostGSource *s = vhost_gsource_new(VHOST_GSOURCE_DEFER, "vhost-defer");

    s->cb = cb;
    s->opaque = opaque;
    /*
     * Ready at once, but a source attached during a dispatch is only
     * dispatched on a later iteration: "after the current dispatch".
     */
    g_source_set_priority(&s->base, G_PRIORITY_HIGH);
    g_source_set_ready_time(&s->base, 0);
    return vhost_gsource_attach(loop, s);
}

static void glib_remove(VhostEventLoop *loop, void *handle)
{
    vhost_gsource_remove(handle);
}

static const VhostEventLoopOps vhost_glib_ops = {
    .add_watch = glib_add_watch,
    .remove_watch = glib_remove,
    .add_timer = glib_add_timer,
    .remove_timer = glib_remove,
    .defer = glib_defer,
    .cancel_defer = glib_remove,
};

VhostEventLoop *vhost_event_loop_glib_new(GMainContext *ctx)
{
    VhostGlibLoop *l = g_new0(VhostGlibLoop, 1);

    l->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    l->loop.ops = &vhost_glib_ops;
    l->loop.opaque = l;
    return &l->loop;
}

void vhost_event_loop_glib_free(VhostEventLoop *loop)
{
    VhostGlibLoop *l;

    if (!loop) {
        return;
    }
    g_return_if_fail(loop->ops == &vhost_glib_ops);
    l = loop->opaque;
    /*
     * Sources still attached stay with the context (which they reference
     * through it); their owners must have removed them before this.
     */
    g_main_context_unref(l->ctx);
    g_free(l);
}
