/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Back-end device state transfer. See
 * include/hw/virtio/vhost-user-device-state.h.
 *
 * Untrusted input: the back-end decides how many bytes come and when (if
 * ever) the EOF comes, and may hand us an fd of its own instead of our
 * pipe. Every read is bounded (max_size) and every wait has a deadline,
 * so a back-end that never closes its end, floods us or closes early
 * gives an error naming the device, never a hang or an unbounded buffer.
 * The reply's flags and fd are checked in hw/virtio/vhost-user.c.
 *
 * Why the pipe is served from the caller's thread with a deadline rather
 * than on the event loop: the transfer runs while the device is stopped
 * and the caller (the migration thread, or a monitor command) waits for
 * the whole state anyway; doing it synchronously keeps the state machine
 * out of the loop (no half-done transfer the loop must remember across
 * events) and the loop's thread free for other devices while the
 * migration thread blocks. The deadline is what keeps a silent back-end
 * from blocking its caller forever. Called on the loop's own thread (the
 * reference VMM's monitor), the loop stalls for at most the deadline: a
 * back-end that waits for a back-end channel answer before finishing its
 * state then fails by timeout instead of deadlocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hw/virtio/vhost-user-device-state.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-proto.h"

#define STATE_CHUNK     (64u * 1024)

bool vhost_dev_has_device_state(const struct vhost_dev *hdev)
{
    return hdev->connected && hdev->vhost_ops->set_device_state_fd &&
           hdev->vhost_ops->check_device_state &&
           vhost_dev_has_protocol_feature(hdev, VHOST_USER_PROTOCOL_F_DEVICE_STATE);
}

static const char *dir_name(VhostDeviceStateDirection dir)
{
    return dir == VHOST_DEVICE_STATE_SAVE ? "save" : "load";
}

static bool state_usable(struct vhost_dev *hdev, VhostDeviceStateDirection dir,
                         GError **errp)
{
    if (!hdev->connected) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                    "%s: device state %s: no back-end connected", hdev->name,
                    dir_name(dir));
        return false;
    }
    if (!vhost_dev_has_device_state(hdev)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: device state %s: the back-end does not offer protocol feature "
                    "DEVICE_STATE (bit %d)", hdev->name, dir_name(dir),
                    VHOST_USER_PROTOCOL_F_DEVICE_STATE);
        return false;
    }
    if (hdev->started) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: device state %s: the rings are running; the back-end must be "
                    "stopped first", hdev->name, dir_name(dir));
        return false;
    }
    return true;
}

/*
 * Hands one end of a fresh pipe to the back-end and returns the fd we
 * transfer through: the other end, or the back-end's own fd.
 */
static int state_open(struct vhost_dev *hdev, VhostDeviceStateDirection dir,
                      GError **errp)
{
    int p[2], theirs = -1, ours, give;

    if (pipe2(p, O_CLOEXEC) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: device state %s: pipe: %s", hdev->name, dir_name(dir),
                    g_strerror(errno));
        return -1;
    }
    ours = dir == VHOST_DEVICE_STATE_SAVE ? p[0] : p[1];
    give = dir == VHOST_DEVICE_STATE_SAVE ? p[1] : p[0];
    if (!hdev->vhost_ops->set_device_state_fd(hdev, dir, VHOST_DEVICE_STATE_STOPPED,
                                              give, &theirs, errp)) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    /* The back-end has its copy: only then can its close be our EOF. */
    close(give);
    if (theirs >= 0) {
        close(ours);
        ours = theirs;
    }
    /* Every wait below is poll() with a deadline; the I/O itself must not block. */
    if (fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: device state %s: fcntl: %s", hdev->name, dir_name(dir),
                    g_strerror(errno));
        close(ours);
        return -1;
    }
    return ours;
}

/* Waits for events on fd until deadline (monotonic us): 1 ready, 0 timeout, -1 error. */
static int state_wait(int fd, short events, gint64 deadline)
{
    for (;;) {
        gint64 left = deadline - g_get_monotonic_time();
        struct pollfd pfd = { .fd = fd, .events = events };
        int r;

        if (left <= 0) {
            return 0;
        }
        r = poll(&pfd, 1, (int)MIN((left + 999) / 1000, G_MAXINT));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        return r < 0 ? -1 : (r > 0 ? 1 : 0);
    }
}

/*
 * write() that reports EPIPE instead of raising SIGPIPE, which would kill
 * a VMM that kept the default action: the signal is blocked in this
 * thread for the call and a SIGPIPE it raised is consumed.
 */
static ssize_t state_write(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    bool was_pending;
    ssize_t n;
    int saved;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    n = write(fd, buf, len);
    saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        const struct timespec zero = { 0, 0 };

        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

/*
 * One read (save) or write (load) of up to len bytes once fd is ready,
 * before the deadline. Returns the bytes moved (0 on a save: EOF), or -1
 * with errp set (the timeout or the I/O error, naming the device and how
 * far the transfer got: done bytes).
 */
static ssize_t state_step(struct vhost_dev *hdev, VhostDeviceStateDirection dir, int fd,
                          void *buf, size_t len, gint64 deadline, unsigned timeout_ms,
                          size_t done, GError **errp)
{
    bool save = dir == VHOST_DEVICE_STATE_SAVE;

    for (;;) {
        int w = state_wait(fd, save ? POLLIN : POLLOUT, deadline);
        ssize_t n;

        if (w == 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                        "%s: device state %s: the back-end did not %s within %u ms; "
                        "%zu bytes %s", hdev->name, dir_name(dir),
                        save ? "finish its state (no EOF)" : "take the whole state",
                        timeout_ms, done, save ? "read" : "written");
            return -1;
        }
        n = w < 0 ? -1 : save ? read(fd, buf, len) : state_write(fd, buf, len);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR || errno == EAGAIN) {
            continue;
        }
        g_set_error(errp, VHOST_USER_ERROR,
                    save ? VHOST_USER_ERROR_LOCAL : VHOST_USER_ERROR_BACKEND_FAILED,
                    "%s: device state %s: %s the state after %zu bytes: %s", hdev->name,
                    dir_name(dir), save ? "reading" : "writing", done,
                    errno == EPIPE ? "the back-end closed its end" : g_strerror(errno));
        return -1;
    }
}

bool vhost_dev_save_device_state(struct vhost_dev *hdev, GByteArray *out, size_t max_size,
                                 unsigned timeout_ms, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    g_autofree uint8_t *buf = NULL;
    size_t total = 0;
    ssize_t n;
    int fd;

    if (!state_usable(hdev, VHOST_DEVICE_STATE_SAVE, errp)) {
        return false;
    }
    fd = state_open(hdev, VHOST_DEVICE_STATE_SAVE, errp);
    if (fd < 0) {
        return false;
    }
    buf = g_malloc(STATE_CHUNK);
    while ((n = state_step(hdev, VHOST_DEVICE_STATE_SAVE, fd, buf, STATE_CHUNK, deadline,
                           timeout_ms, total, errp)) > 0) {
        if ((size_t)n > max_size - total) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                        "%s: device state save: the back-end's state exceeds the "
                        "limit of %zu bytes", hdev->name, max_size);
            n = -1;
            break;
        }
        g_byte_array_append(out, buf, (guint)n);
        total += (size_t)n;
    }
    /* On failure the back-end's writes now fail (EPIPE): the transfer is off. */
    close(fd);
    return n == 0 && hdev->vhost_ops->check_device_state(hdev, errp);
}

bool vhost_dev_load_device_state(struct vhost_dev *hdev, const void *data, size_t len,
                                 unsigned timeout_ms, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    const uint8_t *p = data;
    size_t done = 0;
    int fd;

    if (!state_usable(hdev, VHOST_DEVICE_STATE_LOAD, errp)) {
        return false;
    }
    fd = state_open(hdev, VHOST_DEVICE_STATE_LOAD, errp);
    if (fd < 0) {
        return false;
    }
    while (done < len) {
        ssize_t n = state_step(hdev, VHOST_DEVICE_STATE_LOAD, fd, (void *)(p + done),
                               MIN(len - done, STATE_CHUNK), deadline, timeout_ms, done,
                               errp);

        if (n < 0) {
            close(fd);
            return false;
        }
        done += (size_t)n;
    }
    /* Our close is the back-end's EOF: the end of the state. */
    close(fd);
    return hdev->vhost_ops->check_device_state(hdev, errp);
}
