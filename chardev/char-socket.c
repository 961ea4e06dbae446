/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unix-socket chardev: client or server, reconnect with exponential
 * backoff, OPENED/CLOSED events. Its whole-message I/O with SCM_RIGHTS
 * on the connection is in char-socket-io.c.
 *
 * Untrusted input: the back-end decides when it closes, what it sends
 * while we are idle and how many fds it attaches. None of that may leak
 * an fd or deliver an event at a point where the caller cannot take it.
 *
 * Events are queued and delivered from one deferred call; a handler is
 * never invoked from inside read/write/disconnect/free. While the queue
 * is being delivered, char_socket_free() only marks the object; the
 * delivery loop releases it once the handler has returned.
 *
 * Threads: everything runs on the loop's thread, except that the
 * protocol layer may run a request (set_idle_watch, read_all, write_all,
 * disconnect) from another thread, one at a time under its own lock. The
 * recursive mutex keeps the chardev's state consistent in that case; it
 * is never held across a handler call or a blocking wait.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/char-io.h"
#include "chardev/char-path-watch.h"
#include "chardev/char-socket-int.h"
#include "chardev/char-socket.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"

#define CHAR_SOCKET_DEFAULT_TIMEOUT_MS 10000
#define CHAR_SOCKET_DEFAULT_REPLY_TIMEOUT_MS 2000
#define CHAR_SOCKET_DEFAULT_RECONNECT_MAX_MS 1000
/*
 * A reader waits for the back-end in recvmsg for up to this long at a
 * time (SO_RCVTIMEO), rather than in poll and then recvmsg: a request and
 * its reply then cost three syscalls, as a bare socket's do.
 */
#define CHAR_SOCKET_BLOCK_SLICE_MS 50

/* char-io sits below the chardev and cannot include its header. */
_Static_assert(CHAR_IO_MAX_FDS == CHAR_SOCKET_MAX_FDS, "one fd limit for both");

struct CharSocket {
    GRecMutex lock;
    char *id;
    char *path;
    bool server;
    bool wait;
    int64_t reconnect_ms;
    int64_t reconnect_max_ms;
    int64_t backoff_ms;         /* delay of the next reconnect attempt */
    int timeout_ms;
    int reply_timeout_ms;       /* prompt replies; <= timeout_ms when used */

    /*
     * Stalls (char_socket_note_stall): while a streak lasts, every
     * reconnect waits at least stall_backoff_ms, which doubles per stall.
     */
    int64_t stall_backoff_ms;   /* 0: no streak */
    int64_t connected_at;       /* monotonic µs when the connection came up */
    bool stall_pending;         /* the current connection ends by a stall */
    VhostEventLoop *loop;

    CharEventHandler handler;
    void *handler_opaque;

    int listen_fd;
    bool unlink_on_free;        /* we created the socket file */
    void *listen_watch;

    int fd;                     /* the connection, or -1 */
    int block_ms;               /* fd's blocking slice (CharIoXfer.block_ms), or 0 */
    void *idle_watch;
    bool idle_enabled;

    void *reconnect_timer;
    bool connect_failing;       /* log only the first failure of a streak */
    /*
     * Armed while reconnecting: tells when the socket path (re)appears,
     * so the back-end is connected the moment it listens again rather
     * than at the next backoff tick (which grows to reconnect_max_ms).
     * Made when a reconnecting client opens, kept until the chardev goes.
     * NULL without inotify; the timer alone then does the work.
     */
    CharPathWatch *path_watch;

    GQueue events;              /* pending CharEvent, as pointers */
    void *event_defer;
    bool dispatching;
    bool free_requested;

    unsigned connect_count;
};

static void char_socket_lock(const CharSocket *chr)
{
    g_rec_mutex_lock((GRecMutex *)&chr->lock);
}

static void char_socket_unlock(const CharSocket *chr)
{
    g_rec_mutex_unlock((GRecMutex *)&chr->lock);
}

static void char_socket_dispatch_events(void *opaque);

static void char_socket_queue_event(CharSocket *chr, CharEvent event)
{
    if (chr->free_requested) {
        return;
    }
    g_queue_push_tail(&chr->events, GINT_TO_POINTER(event));
    /* While delivering, the running loop picks the new event up itself. */
    if (!chr->event_defer && !chr->dispatching) {
        chr->event_defer = vhost_loop_defer(chr->loop, char_socket_dispatch_events, chr);
    }
}

/* ---- idle watch ------------------------------------------------------ */

static bool char_socket_idle_cb(int fd, unsigned events, void *opaque);

/*
 * Suspending the watch (idle_enabled false) leaves it attached: adding or
 * removing a watch makes GLib write its context's wakeup eventfd, and the
 * protocol layer suspends and resumes around every request, so two
 * wakeups per request would be the price. While the loop's thread runs
 * the request itself the loop does not poll at all; only when a request
 * runs on another thread can the loop see the reply arrive, and then
 * char_socket_idle_cb detaches the watch (lazily, once) and resuming
 * attaches it again.
 */
static void char_socket_update_idle_watch(CharSocket *chr)
{
    bool live = chr->fd >= 0 && !chr->free_requested;

    if (live && chr->idle_enabled && !chr->idle_watch) {
        chr->idle_watch = vhost_loop_add_watch(chr->loop, chr->fd, VHOST_WATCH_IN,
                                               char_socket_idle_cb, chr);
    } else if (!live && chr->idle_watch) {
        vhost_loop_remove_watch(chr->loop, chr->idle_watch);
        chr->idle_watch = NULL;
    }
}

static bool char_socket_idle_cb(int fd, unsigned events, void *opaque)
{
    CharSocket *chr = opaque;
    char byte;
    ssize_t ret;
    bool keep = true;

    char_socket_lock(chr);
    if (chr->fd != fd || !chr->idle_watch) {
        /* A stale dispatch for a connection already gone. */
        char_socket_unlock(chr);
        return false;
    }
    if (!chr->idle_enabled) {
        /*
         * A request on another thread owns the socket: whatever is there
         * is its reply. Detach until the request resumes the watch, or the
         * loop would spin on the level-triggered readiness meanwhile.
         */
        chr->idle_watch = NULL;
        char_socket_unlock(chr);
        return false;
    }
    /* Peek so that HUP with data still queued is told apart from EOF. */
    do {
        ret = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (ret < 0 && errno == EINTR);

    if (ret == 0) {
        char_socket_disconnect(chr, "back-end closed the connection");
        keep = false;
    } else if (ret > 0) {
        char_socket_disconnect(chr, "unexpected data from back-end while idle");
        keep = false;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        g_autofree char *reason = g_strdup_printf("socket error: %s",
                                                  g_strerror(errno));
        char_socket_disconnect(chr, reason);
        keep = false;
    } else if (events & (VHOST_WATCH_HUP | VHOST_WATCH_ERR)) {
        char_socket_disconnect(chr, "back-end hung up");
        keep = false;
    }
    if (!keep) {
        /* disconnect removed the watch already; returning false is safe too. */
        chr->idle_watch = NULL;
    }
    char_socket_unlock(chr);
    return keep;
}

void char_socket_set_idle_watch(CharSocket *chr, bool enable)
{
    char_socket_lock(chr);
    chr->idle_enabled = enable;
    char_socket_update_idle_watch(chr);
    char_socket_unlock(chr);
}

/* ---- connection up / down ------------------------------------------- */

/*
 * The current connection has been up long enough to count as healthy:
 * several times the longest any reply may take, so it has answered
 * requests of every kind in the meantime rather than just not been asked.
 */
static bool char_socket_was_healthy(const CharSocket *chr, int64_t now)
{
    return now - chr->connected_at >= (int64_t)CHAR_SOCKET_STALL_HEALTHY_FACTOR *
                                       chr->timeout_ms * G_TIME_SPAN_MILLISECOND;
}

static void char_socket_set_connected(CharSocket *chr, int fd)
{
    chr->fd = fd;
    /* If the fd stays non-blocking, reads poll: slower, as correct. */
    chr->block_ms = char_io_set_blocking_slice(fd, CHAR_SOCKET_BLOCK_SLICE_MS) == 0
                    ? CHAR_SOCKET_BLOCK_SLICE_MS : 0;
    chr->connect_count++;
    chr->connected_at = g_get_monotonic_time();
    chr->stall_pending = false;
    /*
     * The backoff is not reset here: a back-end that accepts and then
     * fails every bring-up would be retried every reconnect_ms forever,
     * one error each time. The owner resets it once the connection has
     * proved good (char_socket_reset_backoff).
     */
    chr->connect_failing = false;
    /* Connected: nothing to wait for (this may run inside its callback). */
    if (chr->path_watch) {
        char_path_watch_arm(chr->path_watch, false);
    }
    char_socket_update_idle_watch(chr);
    char_socket_queue_event(chr, CHR_EVENT_OPENED);
}

void char_socket_disconnect(CharSocket *chr, const char *reason)
{
    char_socket_lock(chr);
    if (chr->fd < 0) {
        char_socket_unlock(chr);
        return;
    }
    if (chr->idle_watch) {
        vhost_loop_remove_watch(chr->loop, chr->idle_watch);
        chr->idle_watch = NULL;
    }
    /* A connection that stayed up long enough without a stall ends a streak. */
    if (!chr->stall_pending && char_socket_was_healthy(chr, g_get_monotonic_time())) {
        chr->stall_backoff_ms = 0;
    }
    chr->stall_pending = false;
    /* Close at once: no request may write to or read from a dead peer. */
    close(chr->fd);
    chr->fd = -1;
    vhost_user_log(VHOST_USER_LOG_INFO, chr->id, "disconnected: %s",
                   reason ? reason : "requested");
    char_socket_queue_event(chr, CHR_EVENT_CLOSED);
    char_socket_unlock(chr);
}

/* ---- client ---------------------------------------------------------- */

static bool char_socket_fill_addr(const char *path, struct sockaddr_un *addr)
{
    size_t len = strlen(path);

    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (!len || len >= sizeof(addr->sun_path)) {
        return false;
    }
    memcpy(addr->sun_path, path, len + 1);
    return true;
}

/* One connect attempt; on success the connection is up. */
static bool char_socket_try_connect(CharSocket *chr, GError **errp)
{
    struct sockaddr_un addr;
    int fd;
    int ret;

    char_socket_fill_addr(chr->path, &addr);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "chardev %s: socket(): %s", chr->id, g_strerror(errno));
        return false;
    }
    do {
        ret = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    } while (ret < 0 && errno == EINTR);
    if (ret < 0 && errno == EINPROGRESS) {
        /* Not expected for AF_UNIX, but bounded if a kernel does it. */
        int err = 0;
        socklen_t errlen = sizeof(err);
        int rev = char_io_wait(fd, POLLOUT, char_io_deadline(chr->timeout_ms));

        if (rev <= 0) {
            errno = rev == 0 ? ETIMEDOUT : -rev;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0) {
            /* errno set by getsockopt */
        } else if (err) {
            errno = err;
        } else {
            ret = 0;
        }
    }
    if (ret < 0) {
        /* EAGAIN: the listener's backlog is full; treat as a failed try. */
        int err = errno;
        struct stat st;

        close(fd);
        /*
         * connect() says ECONNREFUSED for a regular file or a directory
         * too, which sends the user looking for a dead back-end.
         */
        if (err == ECONNREFUSED && stat(chr->path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                        "chardev %s: %s: not a socket", chr->id, chr->path);
            return false;
        }
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "chardev %s: failed to connect to %s: %s",
                    chr->id, chr->path, g_strerror(err));
        return false;
    }
    char_socket_set_connected(chr, fd);
    return true;
}

static void char_socket_reconnect_cb(void *opaque);
static void char_socket_path_appeared(void *opaque);

static void char_socket_schedule_reconnect(CharSocket *chr)
{
    int64_t cap = MAX(chr->reconnect_max_ms, chr->reconnect_ms);
    int64_t delay = chr->backoff_ms;
    /* A stalling back-end is not retried sooner than its streak allows. */
    int64_t first = MAX(delay, chr->stall_backoff_ms);

    if (chr->server || chr->reconnect_ms <= 0 || chr->reconnect_timer ||
        chr->fd >= 0 || chr->free_requested) {
        return;
    }
    if (!chr->path_watch) {
        chr->path_watch = char_path_watch_new(chr->loop, chr->path,
                                              char_socket_path_appeared, chr);
    }
    if (chr->path_watch) {
        char_path_watch_arm(chr->path_watch, true);
    }
    chr->reconnect_timer = vhost_loop_add_timer(chr->loop,
                                                (unsigned)MIN(first, (int64_t)UINT_MAX),
                                                char_socket_reconnect_cb, chr);
    /* The next failure waits twice as long, up to the cap. */
    chr->backoff_ms = MIN(delay * 2, cap);
}

static void char_socket_reconnect_cb(void *opaque)
{
    CharSocket *chr = opaque;
    g_autoptr(GError) err = NULL;

    char_socket_lock(chr);
    chr->reconnect_timer = NULL;    /* fired: the handle is gone */
    if (chr->fd < 0 && !chr->free_requested &&
        !char_socket_try_connect(chr, &err)) {
        if (!chr->connect_failing) {
            vhost_user_log(VHOST_USER_LOG_WARNING, NULL, "%s; retrying", err->message);
            chr->connect_failing = true;
        }
        char_socket_schedule_reconnect(chr);
    }
    char_socket_unlock(chr);
}

/*
 * The socket file was created (or moved in, or touched): a back-end is
 * binding. Try now, and if it is not listening yet (bind() comes before
 * listen()), retry from the shortest delay rather than the grown one.
 */
static void char_socket_path_appeared(void *opaque)
{
    CharSocket *chr = opaque;
    g_autoptr(GError) err = NULL;

    char_socket_lock(chr);
    if (chr->fd < 0 && !chr->free_requested && !chr->server) {
        if (chr->reconnect_timer) {
            vhost_loop_remove_timer(chr->loop, chr->reconnect_timer);
            chr->reconnect_timer = NULL;
        }
        chr->backoff_ms = chr->reconnect_ms;
        if (!char_socket_try_connect(chr, &err)) {
            char_socket_schedule_reconnect(chr);
        }
    }
    char_socket_unlock(chr);
}

/* ---- server ---------------------------------------------------------- */

static int char_socket_accept(CharSocket *chr)
{
    int fd;

    do {
        fd = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static bool char_socket_listen_cb(int lfd, unsigned events, void *opaque)
{
    CharSocket *chr = opaque;

    char_socket_lock(chr);
    for (;;) {
        int fd = char_socket_accept(chr);

        if (fd == -EAGAIN || fd == -EWOULDBLOCK) {
            break;
        }
        if (fd < 0) {
            /* ECONNABORTED and friends: that peer is gone, keep listening. */
            if (fd != -ECONNABORTED && fd != -EPROTO) {
                vhost_user_log(VHOST_USER_LOG_ERROR, chr->id, "accept on %s failed: %s",
                               chr->path, g_strerror(-fd));
                break;
            }
            continue;
        }
        if (chr->fd >= 0 || chr->free_requested) {
            /* One back-end per chardev: a second one is turned away. */
            vhost_user_log(VHOST_USER_LOG_WARNING, chr->id,
                           "refusing a second connection on %s", chr->path);
            close(fd);
            continue;
        }
        char_socket_set_connected(chr, fd);
    }
    char_socket_unlock(chr);
    return true;
}

static bool char_socket_listen(CharSocket *chr, GError **errp)
{
    struct sockaddr_un addr;
    struct stat st;
    int fd;

    char_socket_fill_addr(chr->path, &addr);
    /* A stale socket from an earlier run would make bind() fail. */
    if (lstat(chr->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "chardev %s: %s: not a socket (refusing to replace it)",
                        chr->id, chr->path);
            return false;
        }
        unlink(chr->path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "chardev %s: socket(): %s", chr->id, g_strerror(errno));
        return false;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int err = errno;

        close(fd);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "chardev %s: failed to bind %s: %s", chr->id, chr->path,
                    g_strerror(err));
        return false;
    }
    chr->unlink_on_free = true;
    if (listen(fd, 1) < 0) {
        int err = errno;

        close(fd);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "chardev %s: listen on %s: %s", chr->id, chr->path,
                    g_strerror(err));
        return false;
    }
    chr->listen_fd = fd;
    return true;
}

/* ---- public API ------------------------------------------------------ */

CharSocket *char_socket_new(const CharSocketOptions *opts, VhostEventLoop *loop,
                            GError **errp)
{
    const char *id = opts && opts->id ? opts->id : "(unnamed)";
    struct sockaddr_un addr;
    CharSocket *chr;

    if (!opts || !opts->path || !char_socket_fill_addr(opts->path, &addr)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "chardev %s: path must be set and shorter than %zu bytes",
                    id, sizeof(addr.sun_path));
        return NULL;
    }
    if (opts->reconnect_ms < 0 || opts->reconnect_max_ms < 0 ||
        opts->timeout_ms < 0 || opts->reply_timeout_ms < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "chardev %s: reconnect-ms, its cap and the timeouts must "
                    "not be negative", id);
        return NULL;
    }
    if (opts->server && opts->reconnect_ms) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "chardev %s: reconnect-ms is only for client mode "
                    "(server=off)", id);
        return NULL;
    }

    chr = g_new0(CharSocket, 1);
    g_rec_mutex_init(&chr->lock);
    chr->id = g_strdup(id);
    chr->path = g_strdup(opts->path);
    chr->server = opts->server;
    chr->wait = opts->server && opts->wait;
    chr->reconnect_ms = opts->reconnect_ms;
    chr->reconnect_max_ms = opts->reconnect_max_ms ? opts->reconnect_max_ms
                                                   : CHAR_SOCKET_DEFAULT_RECONNECT_MAX_MS;
    chr->backoff_ms = chr->reconnect_ms;
    chr->timeout_ms = opts->timeout_ms ? opts->timeout_ms
                                       : CHAR_SOCKET_DEFAULT_TIMEOUT_MS;
    chr->reply_timeout_ms = opts->reply_timeout_ms ? opts->reply_timeout_ms
                                                   : CHAR_SOCKET_DEFAULT_REPLY_TIMEOUT_MS;
    chr->loop = loop ? loop : vhost_event_loop_default();
    chr->listen_fd = -1;
    chr->fd = -1;
    chr->idle_enabled = true;
    g_queue_init(&chr->events);
    return chr;
}

bool char_socket_open(CharSocket *chr, GError **errp)
{
    bool ok = true;

    char_socket_lock(chr);
    if (chr->fd >= 0 || chr->listen_fd >= 0 || chr->reconnect_timer) {
        /* Already open (or already trying): nothing to do. */
        goto out;
    }
    if (chr->server) {
        if (!char_socket_listen(chr, errp)) {
            ok = false;
            goto out;
        }
        if (chr->wait) {
            /* wait=on: the VMM does not start before its back-end is there. */
            int rev = char_io_wait(chr->listen_fd, POLLIN, -1);
            int fd = rev > 0 ? char_socket_accept(chr) : rev;

            while (fd == -EAGAIN || fd == -ECONNABORTED) {
                rev = char_io_wait(chr->listen_fd, POLLIN, -1);
                fd = rev > 0 ? char_socket_accept(chr) : rev;
            }
            if (fd < 0) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                            "chardev %s: waiting for a connection on %s: %s",
                            chr->id, chr->path, g_strerror(-fd));
                close(chr->listen_fd);
                chr->listen_fd = -1;
                ok = false;
                goto out;
            }
            char_socket_set_connected(chr, fd);
        }
        chr->listen_watch = vhost_loop_add_watch(chr->loop, chr->listen_fd,
                                                 VHOST_WATCH_IN,
                                                 char_socket_listen_cb, chr);
        goto out;
    }

    if (!chr->reconnect_ms) {
        ok = char_socket_try_connect(chr, errp);
        goto out;
    }
    /*
     * Made now, disarmed, rather than at the first disconnect: the fd it
     * holds is then part of the process's steady state from the start.
     */
    if (!chr->path_watch) {
        chr->path_watch = char_path_watch_new(chr->loop, chr->path,
                                              char_socket_path_appeared, chr);
    }
    {
        g_autoptr(GError) err = NULL;

        if (!char_socket_try_connect(chr, &err)) {
            vhost_user_log(VHOST_USER_LOG_WARNING, NULL, "%s; retrying", err->message);
            chr->connect_failing = true;
            char_socket_schedule_reconnect(chr);
        }
    }
out:
    char_socket_unlock(chr);
    return ok;
}

void char_socket_set_handler(CharSocket *chr, CharEventHandler handler, void *opaque)
{
    char_socket_lock(chr);
    chr->handler = handler;
    chr->handler_opaque = opaque;
    char_socket_unlock(chr);
}

bool char_socket_is_connected(const CharSocket *chr)
{
    bool ret;

    char_socket_lock(chr);
    ret = chr->fd >= 0;
    char_socket_unlock(chr);
    return ret;
}

const char *char_socket_id(const CharSocket *chr)
{
    return chr->id;
}

const char *char_socket_path(const CharSocket *chr)
{
    return chr->path;
}

VhostEventLoop *char_socket_loop(const CharSocket *chr)
{
    return chr->loop;
}

int char_socket_timeout_ms(const CharSocket *chr)
{
    return chr->timeout_ms;
}

void char_socket_set_timeout_ms(CharSocket *chr, int timeout_ms)
{
    chr->timeout_ms = timeout_ms > 0 ? timeout_ms : CHAR_SOCKET_DEFAULT_TIMEOUT_MS;
}

int char_socket_fd(const CharSocket *chr)
{
    int fd;

    char_socket_lock(chr);
    fd = chr->fd;
    char_socket_unlock(chr);
    return fd;
}

void char_socket_reset_backoff(CharSocket *chr)
{
    char_socket_lock(chr);
    chr->backoff_ms = chr->reconnect_ms;
    char_socket_unlock(chr);
}

int char_socket_reply_timeout_ms(const CharSocket *chr, bool slow)
{
    return slow ? chr->timeout_ms : MIN(chr->reply_timeout_ms, chr->timeout_ms);
}

void char_socket_note_stall(CharSocket *chr, int stalled_ms)
{
    int64_t now = g_get_monotonic_time();

    char_socket_lock(chr);
    if (chr->fd >= 0 && !chr->stall_pending) {
        bool fresh = !chr->stall_backoff_ms || char_socket_was_healthy(chr, now);

        /*
         * The first retry waits as long as the stall held us, so a back-end
         * that stalls every connection holds its caller at most half the
         * time; every further stall doubles that.
         */
        chr->stall_backoff_ms = fresh ? MAX((int64_t)stalled_ms, chr->reconnect_ms)
                                      : chr->stall_backoff_ms * 2;
        chr->stall_backoff_ms = MIN(chr->stall_backoff_ms,
                                    (int64_t)CHAR_SOCKET_STALL_BACKOFF_MAX_MS);
        chr->stall_pending = true;
    }
    char_socket_unlock(chr);
}

unsigned char_socket_connect_count(const CharSocket *chr)
{
    return chr->connect_count;
}

/*
 * The fd to read from, or -1 with errp set; *nfds (if any) zeroed, and
 * x->block_ms set for the fd.
 */
int char_socket_read_fd(CharSocket *chr, size_t *nfds, CharIoXfer *x, GError **errp)
{
    int fd;

    char_socket_lock(chr);
    fd = chr->fd;
    x->block_ms = chr->block_ms;
    char_socket_unlock(chr);
    if (nfds) {
        *nfds = 0;
    }
    if (fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "chardev %s: not connected", chr->id);
    }
    return fd;
}

/* ---- events and teardown --------------------------------------------- */

/* Releases every resource except the memory; no event fires afterwards. */
static void char_socket_teardown(CharSocket *chr)
{
    if (chr->idle_watch) {
        vhost_loop_remove_watch(chr->loop, chr->idle_watch);
        chr->idle_watch = NULL;
    }
    if (chr->listen_watch) {
        vhost_loop_remove_watch(chr->loop, chr->listen_watch);
        chr->listen_watch = NULL;
    }
    if (chr->reconnect_timer) {
        vhost_loop_remove_timer(chr->loop, chr->reconnect_timer);
        chr->reconnect_timer = NULL;
    }
    g_clear_pointer(&chr->path_watch, char_path_watch_free);
    if (chr->event_defer) {
        vhost_loop_cancel_defer(chr->loop, chr->event_defer);
        chr->event_defer = NULL;
    }
    g_queue_clear(&chr->events);
    if (chr->fd >= 0) {
        close(chr->fd);
        chr->fd = -1;
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
        chr->listen_fd = -1;
    }
    if (chr->unlink_on_free) {
        unlink(chr->path);
        chr->unlink_on_free = false;
    }
}

static void char_socket_destroy(CharSocket *chr)
{
    g_rec_mutex_clear(&chr->lock);
    g_free(chr->id);
    g_free(chr->path);
    g_free(chr);
}

static void char_socket_dispatch_events(void *opaque)
{
    CharSocket *chr = opaque;

    char_socket_lock(chr);
    chr->event_defer = NULL;    /* fired: the handle is gone */
    chr->dispatching = true;
    while (!chr->free_requested && !g_queue_is_empty(&chr->events)) {
        CharEvent event = GPOINTER_TO_INT(g_queue_pop_head(&chr->events));
        CharEventHandler handler = chr->handler;
        void *handler_opaque = chr->handler_opaque;

        if (handler) {
            /* Never hold the lock across a handler: it may run requests. */
            char_socket_unlock(chr);
            handler(chr, event, handler_opaque);
            char_socket_lock(chr);
        }
        if (event == CHR_EVENT_CLOSED) {
            /* Reconnect only once the owner has seen the connection go. */
            char_socket_schedule_reconnect(chr);
        }
    }
    chr->dispatching = false;
    if (chr->free_requested) {
        char_socket_unlock(chr);
        char_socket_destroy(chr);
        return;
    }
    char_socket_unlock(chr);
}

void char_socket_free(CharSocket *chr)
{
    if (!chr) {
        return;
    }
    char_socket_lock(chr);
    if (chr->free_requested) {
        char_socket_unlock(chr);
        return;
    }
    chr->free_requested = true;
    char_socket_teardown(chr);
    if (chr->dispatching) {
        /* Called from our own handler: the delivery loop frees it. */
        char_socket_unlock(chr);
        return;
    }
    char_socket_unlock(chr);
    char_socket_destroy(chr);
}
