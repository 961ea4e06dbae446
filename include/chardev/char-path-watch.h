/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tells when a unix socket path appears (created, moved in, or touched),
 * so that a reconnecting client can connect the moment its back-end
 * listens again instead of at its next backoff tick. Linux inotify on the
 * socket's directory; only the path's own name counts.
 *
 * It is a hint, never the only way: where inotify is unavailable (no
 * instances left, a directory we may not watch) char_path_watch_new
 * returns NULL and the caller's timer does the work alone. The callback
 * runs from the loop; the caller checks for itself whether the path now
 * accepts connections (bind() creates the file before listen()).
 */
#ifndef CHARDEV_CHAR_PATH_WATCH_H
#define CHARDEV_CHAR_PATH_WATCH_H

#include "system/event-loop.h"

typedef struct CharPathWatch CharPathWatch;
typedef void (*CharPathWatchFn)(void *opaque);

/*
 * Made disarmed: fn runs only while armed. Arm and disarm are cheap, so a
 * client arms it for each reconnect; creating and closing an inotify
 * instance is not (closing waits for an RCU grace period, milliseconds),
 * so the instance lives as long as the watch.
 */
CharPathWatch *char_path_watch_new(VhostEventLoop *loop, const char *path,
                                   CharPathWatchFn fn, void *opaque);
/*
 * Arming first drops what happened while disarmed: the caller tries to
 * connect anyway when it starts waiting. May be called from inside fn.
 */
void char_path_watch_arm(CharPathWatch *w, bool armed);
/* Stops watching; no callback runs afterwards. NULL is fine. */
void char_path_watch_free(CharPathWatch *w);

#endif
