/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * inotify on a socket's directory: see include/chardev/char-path-watch.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-path-watch.h"

struct CharPathWatch {
    VhostEventLoop *loop;
    int fd;
    void *watch;
    char *name;                 /* the socket's file name in its directory */
    CharPathWatchFn fn;
    void *opaque;
};

static bool char_path_watch_cb(int fd, unsigned events, void *opaque)
{
    CharPathWatch *w = opaque;
    /* struct inotify_event is followed by its name: align for it. */
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;

            if (ev->len && strcmp(ev->name, w->name) == 0) {
                hit = true;
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    /* Last: the callback may disarm w (the client connected). */
    if (hit) {
        w->fn(w->opaque);
    }
    return true;
}

CharPathWatch *char_path_watch_new(VhostEventLoop *loop, const char *path,
                                   CharPathWatchFn fn, void *opaque)
{
    g_autofree char *dir = g_path_get_dirname(path);
    CharPathWatch *w;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

    if (fd < 0) {
        return NULL;
    }
    if (inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
        close(fd);
        return NULL;
    }
    w = g_new0(CharPathWatch, 1);
    w->loop = loop;
    w->fd = fd;
    w->name = g_path_get_basename(path);
    w->fn = fn;
    w->opaque = opaque;
    return w;
}

void char_path_watch_arm(CharPathWatch *w, bool armed)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

    if (armed == (w->watch != NULL)) {
        return;
    }
    if (!armed) {
        vhost_loop_remove_watch(w->loop, w->watch);
        w->watch = NULL;
        return;
    }
    while (read(w->fd, buf, sizeof(buf)) > 0) {
        /* stale: from while we were not waiting */
    }
    w->watch = vhost_loop_add_watch(w->loop, w->fd, VHOST_WATCH_IN, char_path_watch_cb, w);
}

void char_path_watch_free(CharPathWatch *w)
{
    if (!w) {
        return;
    }
    char_path_watch_arm(w, false);
    close(w->fd);
    g_free(w->name);
    g_free(w);
}
