/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Device state for migration (protocol feature DEVICE_STATE): what this
 * back-end keeps beyond the rings, handed to the front-end through the
 * pipe of SET_DEVICE_STATE_FD and taken back on the destination.
 *
 * The state is a small versioned blob, all integers little-endian:
 *
 *   "VUBS"  u32 version (1)  u32 type (0 net, 1 blk)  u32 nrings
 *   u64 completed[nrings]        requests (blk) / buffers (net) completed
 *   blk only: u32 write_through (0 or 1)  u32 zero  u64 writes synced
 *
 * Save writes it into the front-end's fd and closes it at once (the blob
 * is far smaller than a pipe's buffer, so the write cannot block on a
 * front-end that reads only after our reply). Load keeps the fd; the
 * front-end closes its end before CHECK_DEVICE_STATE, so the state is
 * read there, until EOF, within a deadline.
 *
 * Security model: the loaded blob is untrusted. Its size is bounded while
 * reading, and magic, version, device type, ring count and exact length
 * are checked before anything is applied; a bad one changes nothing and
 * CHECK_DEVICE_STATE answers 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "refbe.h"

#define REFBE_STATE_MAGIC         "VUBS"
#define REFBE_STATE_VERSION       1
#define REFBE_STATE_HDR_SIZE      16
#define REFBE_STATE_BLK_SIZE      16
/* Far more than any state of ours: a bigger one is not ours. */
#define REFBE_STATE_MAX_SIZE      (REFBE_STATE_HDR_SIZE + 8 * 256 + REFBE_STATE_BLK_SIZE)
#define REFBE_STATE_TIMEOUT_MS    5000

/* The no-fd flag of the SET_DEVICE_STATE_FD reply. */
#define REFBE_STATE_REPLY_NOFD    ((uint64_t)1 << 8)

static void put_u32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    g_byte_array_append(b, (const guint8 *)&v, sizeof(v));
}

static void put_u64(GByteArray *b, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    g_byte_array_append(b, (const guint8 *)&v, sizeof(v));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT32_FROM_LE(v);
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_LE(v);
}

static size_t state_size(const RefBeDev *dev)
{
    return REFBE_STATE_HDR_SIZE + 8 * (size_t)dev->nvrings +
           (dev->opts->type == REFBE_DEV_BLK ? REFBE_STATE_BLK_SIZE : 0);
}

static GByteArray *state_build(RefBeDev *dev)
{
    GByteArray *b = g_byte_array_new();

    g_byte_array_append(b, (const guint8 *)REFBE_STATE_MAGIC, 4);
    put_u32(b, REFBE_STATE_VERSION);
    put_u32(b, dev->opts->type == REFBE_DEV_BLK ? 1 : 0);
    put_u32(b, dev->nvrings);
    for (unsigned i = 0; i < dev->nvrings; i++) {
        put_u64(b, dev->vrings[i].completed);
    }
    if (dev->opts->type == REFBE_DEV_BLK) {
        bool wt;
        uint64_t synced;

        refbe_blk_get_state(dev->blk, &wt, &synced);
        put_u32(b, wt);
        put_u32(b, 0);
        put_u64(b, synced);
    }
    return b;
}

/* Checks the whole blob before applying any of it. */
static bool state_apply(RefBeDev *dev, const uint8_t *p, size_t len, GError **errp)
{
    uint32_t type = dev->opts->type == REFBE_DEV_BLK ? 1 : 0;

    if (len < REFBE_STATE_HDR_SIZE || memcmp(p, REFBE_STATE_MAGIC, 4)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: device state: %zu bytes without the VUBS header", dev->name, len);
        return false;
    }
    if (get_u32(p + 4) != REFBE_STATE_VERSION || get_u32(p + 8) != type ||
        get_u32(p + 12) != dev->nvrings) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: device state: version %" PRIu32 ", type %" PRIu32 ", %" PRIu32
                    " rings; this back-end takes version %d, type %" PRIu32 ", %u rings",
                    dev->name, get_u32(p + 4), get_u32(p + 8), get_u32(p + 12),
                    REFBE_STATE_VERSION, type, dev->nvrings);
        return false;
    }
    if (len != state_size(dev)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: device state: %zu bytes, expected %zu", dev->name, len,
                    state_size(dev));
        return false;
    }
    if (type == 1 && get_u32(p + len - REFBE_STATE_BLK_SIZE) > 1) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: device state: write_through %" PRIu32 " is not 0 or 1",
                    dev->name, get_u32(p + len - REFBE_STATE_BLK_SIZE));
        return false;
    }
    for (unsigned i = 0; i < dev->nvrings; i++) {
        dev->vrings[i].completed = get_u64(p + REFBE_STATE_HDR_SIZE + 8 * i);
    }
    if (type == 1) {
        refbe_blk_set_state(dev->blk, get_u32(p + len - REFBE_STATE_BLK_SIZE) != 0,
                          get_u64(p + len - 8));
    }
    return true;
}

void refbe_state_reset(RefBeDev *dev)
{
    if (dev->state_fd >= 0) {
        close(dev->state_fd);
    }
    dev->state_fd = -1;
    dev->state_result = 1;      /* CHECK without a transfer: nothing succeeded */
}

/* Writes all of b into fd (blocking: the blob fits a pipe's buffer). */
static bool write_all(int fd, const GByteArray *b)
{
    size_t done = 0;

    while (done < b->len) {
        ssize_t n = write(fd, b->data + done, b->len - done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        done += (size_t)n;
    }
    return true;
}

bool refbe_state_set_fd(RefBeDev *dev, const VhostUserTransferDeviceState *t, int *fds,
                      size_t nfds, uint64_t *reply, GError **errp)
{
    refbe_state_reset(dev);
    /* We never hand back an fd of our own. */
    *reply = REFBE_STATE_REPLY_NOFD;
    if (t->direction > 1 || t->phase != 0) {
        refbe_log("%s: SET_DEVICE_STATE_FD: direction %" PRIu32 " phase %" PRIu32
                " not supported", dev->name, t->direction, t->phase);
        *reply |= 1;
        return true;
    }
    for (unsigned i = 0; i < dev->nvrings; i++) {
        if (dev->vrings[i].started) {
            refbe_log("%s: SET_DEVICE_STATE_FD: ring %u is running", dev->name, i);
            *reply |= 1;
            return true;
        }
    }
    /* The validator made sure exactly one fd came. */
    dev->state_fd = fds[0];
    fds[0] = -1;
    if (t->direction == 0) {
        g_autoptr(GByteArray) b = state_build(dev);
        bool ok = write_all(dev->state_fd, b);

        if (!ok) {
            refbe_log("%s: device state save: write: %s", dev->name, g_strerror(errno));
        }
        /* Our close is the front-end's EOF. */
        refbe_state_reset(dev);
        dev->state_result = ok ? 0 : 1;
        return true;
    }
    dev->state_result = -1;     /* a load: read at CHECK_DEVICE_STATE */
    return true;
}

/* Reads the loaded state until EOF, bounded in size and time. */
static GByteArray *read_state(RefBeDev *dev, GError **errp)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    gint64 deadline = g_get_monotonic_time() + REFBE_STATE_TIMEOUT_MS * 1000ll;
    uint8_t buf[4096];

    for (;;) {
        struct pollfd pfd = { .fd = dev->state_fd, .events = POLLIN };
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        ssize_t n;
        int r;

        if (left <= 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                        "%s: device state load: no EOF within %d ms", dev->name,
                        REFBE_STATE_TIMEOUT_MS);
            return NULL;
        }
        r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r == 0) {
            continue;
        }
        n = r < 0 ? -1 : read(dev->state_fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "%s: device state load: read: %s", dev->name, g_strerror(errno));
            return NULL;
        }
        if (n == 0) {
            return g_steal_pointer(&b);
        }
        if (b->len + (size_t)n > REFBE_STATE_MAX_SIZE) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                        "%s: device state load: more than %d bytes", dev->name,
                        REFBE_STATE_MAX_SIZE);
            return NULL;
        }
        g_byte_array_append(b, buf, (guint)n);
    }
}

uint64_t refbe_state_check(RefBeDev *dev)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) b = NULL;

    if (dev->state_result != -1) {
        return dev->state_result ? 1 : 0;
    }
    b = read_state(dev, &err);
    if (!b || !state_apply(dev, b->data, b->len, &err)) {
        refbe_log("%s", err->message);
        refbe_state_reset(dev);
        return 1;
    }
    refbe_log("%s: device state loaded (%u bytes)", dev->name, b->len);
    refbe_state_reset(dev);
    dev->state_result = 0;
    return 0;
}

bool refbe_state_dump(RefBeDev *dev, const char *path, GError **errp)
{
    g_autoptr(GString) s = g_string_new(NULL);

    g_string_append_printf(s, "type %s\nrings %u\n",
                           dev->opts->type == REFBE_DEV_BLK ? "blk" : "net", dev->nvrings);
    for (unsigned i = 0; i < dev->nvrings; i++) {
        g_string_append_printf(s, "ring %u completed %" PRIu64 "\n", i,
                               dev->vrings[i].completed);
    }
    if (dev->opts->type == REFBE_DEV_BLK) {
        bool wt;
        uint64_t synced;

        refbe_blk_get_state(dev->blk, &wt, &synced);
        g_string_append_printf(s, "write_through %d\nsynced %" PRIu64 "\n", wt, synced);
    }
    return g_file_set_contents(path, s->str, (gssize)s->len, errp);
}
