/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Running a function on the VMM's main loop thread from another thread
 * (the migration thread) and waiting for its result, the way QEMU's
 * migration thread takes the big lock: the device model, the vhost-user
 * devices and guest memory's map belong to the loop thread.
 */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <glib.h>
#include <stdbool.h>

typedef bool (*VmmLoopFn)(void *opaque, GError **errp);

/*
 * Runs fn(opaque, errp) on the thread that owns the default main context
 * and returns its result. Called on that thread, it runs fn at once;
 * elsewhere it blocks until the loop has run it (the loop must be
 * running).
 */
bool vmm_loop_call(VmmLoopFn fn, void *opaque, GError **errp);

#endif
