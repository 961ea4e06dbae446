/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Calls on the main loop thread. See vmm/vmm-loop.h.
 */
#include "vmm/vmm-loop.h"

typedef struct VmmLoopCall {
    VmmLoopFn fn;
    void *opaque;
    GError *err;
    bool ok;
    bool done;
    GMutex lock;
    GCond cond;
} VmmLoopCall;

static gboolean vmm_loop_call_cb(gpointer p)
{
    VmmLoopCall *c = p;
    GError *err = NULL;
    bool ok = c->fn(c->opaque, &err);

    g_mutex_lock(&c->lock);
    c->ok = ok;
    c->err = err;
    c->done = true;
    g_cond_signal(&c->cond);
    g_mutex_unlock(&c->lock);
    return G_SOURCE_REMOVE;
}

bool vmm_loop_call(VmmLoopFn fn, void *opaque, GError **errp)
{
    VmmLoopCall c = { .fn = fn, .opaque = opaque };
    bool ok;

    if (g_main_context_is_owner(g_main_context_default())) {
        return fn(opaque, errp);
    }
    g_mutex_init(&c.lock);
    g_cond_init(&c.cond);
    /* High priority: the guest may be stopped while the loop runs this. */
    g_main_context_invoke_full(NULL, G_PRIORITY_HIGH, vmm_loop_call_cb, &c, NULL);
    g_mutex_lock(&c.lock);
    while (!c.done) {
        g_cond_wait(&c.cond, &c.lock);
    }
    g_mutex_unlock(&c.lock);
    ok = c.ok;
    if (!ok) {
        g_propagate_error(errp, c.err);
    } else if (c.err) {
        g_error_free(c.err);
    }
    g_mutex_clear(&c.lock);
    g_cond_clear(&c.cond);
    return ok;
}
