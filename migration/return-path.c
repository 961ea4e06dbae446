/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The return path (see return-path.h).
 *
 * Untrusted input: on the source, everything mig_rp_read returns comes
 * from the destination, another host. The tag must be one we know; a
 * page request must be 4 KiB aligned, ask for 1..MIG_RP_MAX_PAGES pages
 * and lie inside one region of guest RAM (offset compare, no wrapping),
 * else it is refused with an error naming the address and count, before
 * the source reads any guest memory for it. A lacking range (recovery)
 * likewise: aligned, not empty, inside one region.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/ram-stream.h"
#include "migration/return-path.h"
#include "util/vhost-user-error.h"

struct MigReturnPath {
    int fd;
    GMutex lock;                /* one message at a time; err */
    GError *err;                /* sticky */
};

MigReturnPath *mig_rp_new(int fd)
{
    MigReturnPath *rp = g_new0(MigReturnPath, 1);

    rp->fd = fd;
    g_mutex_init(&rp->lock);
    return rp;
}

void mig_rp_free(MigReturnPath *rp)
{
    if (!rp) {
        return;
    }
    g_clear_error(&rp->err);
    g_mutex_clear(&rp->lock);
    g_free(rp);
}

/* rp->lock held. */
static bool mig_rp_write_locked(MigReturnPath *rp, const uint8_t *b, size_t len, GError **errp)
{
    size_t done = 0;

    if (rp->err) {
        g_propagate_error(errp, g_error_copy(rp->err));
        return false;
    }
    while (done < len) {
        /* MSG_NOSIGNAL: a source that went away is an error, not SIGPIPE. */
        ssize_t r = send(rp->fd, b + done, len - done, MSG_NOSIGNAL);

        if (r < 0 && errno == ENOTSOCK) {
            r = write(rp->fd, b + done, len - done);
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            g_set_error(&rp->err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                        "return path to the source: %s",
                        r < 0 ? g_strerror(errno) : "nothing written");
            g_propagate_error(errp, g_error_copy(rp->err));
            return false;
        }
        done += (size_t)r;
    }
    return true;
}

/* One whole message. */
static bool mig_rp_send(MigReturnPath *rp, const uint8_t *b, size_t len, GError **errp)
{
    bool ok;

    g_mutex_lock(&rp->lock);
    ok = mig_rp_write_locked(rp, b, len, errp);
    g_mutex_unlock(&rp->lock);
    return ok;
}

static void put_be32(uint8_t *b, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    memcpy(b, &v, 4);
}

static void put_be64(uint8_t *b, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(b, &v, 8);
}

bool mig_rp_send_request(MigReturnPath *rp, uint64_t gpa, uint32_t npages, GError **errp)
{
    uint8_t b[16];

    g_assert(npages >= 1 && npages <= MIG_RP_MAX_PAGES);
    put_be32(b, MIG_RP_TAG_REQUEST);
    put_be64(b + 4, gpa);
    put_be32(b + 12, npages);
    return mig_rp_send(rp, b, sizeof(b), errp);
}

/* A message that is its tag alone. */
static bool mig_rp_send_tag(MigReturnPath *rp, uint32_t tag, GError **errp)
{
    uint8_t b[4];

    put_be32(b, tag);
    return mig_rp_send(rp, b, sizeof(b), errp);
}

bool mig_rp_send_ack(MigReturnPath *rp, GError **errp)
{
    return mig_rp_send_tag(rp, MIG_RP_TAG_ACK, errp);
}

bool mig_rp_send_lacking(MigReturnPath *rp, uint64_t gpa, uint64_t len, GError **errp)
{
    uint8_t b[20];

    g_assert(len && !(gpa % MIG_PAGE_SIZE) && !(len % MIG_PAGE_SIZE));
    put_be32(b, MIG_RP_TAG_LACKING);
    put_be64(b + 4, gpa);
    put_be64(b + 12, len);
    return mig_rp_send(rp, b, sizeof(b), errp);
}

bool mig_rp_send_failed(MigReturnPath *rp, GError **errp)
{
    return mig_rp_send_tag(rp, MIG_RP_TAG_FAILED, errp);
}

bool mig_rp_send_lacking_end(MigReturnPath *rp, uint64_t npages, GError **errp)
{
    uint8_t b[12];

    put_be32(b, MIG_RP_TAG_LACKING_END);
    put_be64(b + 4, npages);
    return mig_rp_send(rp, b, sizeof(b), errp);
}

/* Exactly len bytes, within the deadline (end_us 0: none). */
static bool mig_rp_read_exact(int fd, uint8_t *b, size_t len, gint64 end_us, GError **errp)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int wait = -1;
        ssize_t r;

        /*
         * With no deadline the read itself waits (a migration socket is
         * blocking): the source's request reader then wakes once per
         * request, in read, not in poll and then read.
         */
        if (end_us) {
            gint64 left = end_us - g_get_monotonic_time();

            if (left <= 0) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                            "return path: nothing from the destination in time");
                return false;
            }
            wait = (int)MIN(left / 1000 + 1, G_MAXINT);
            r = poll(&p, 1, wait);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r == 0) {
                continue;           /* the deadline check above ends it */
            }
        }
        r = read(fd, b + got, len - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && errno == EAGAIN && !end_us) {
            (void)poll(&p, 1, -1);  /* a non-blocking fd after all */
            continue;
        }
        if (r <= 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                        "return path: the destination closed the connection%s%s%s",
                        got ? " in the middle of a message" : "", r < 0 ? ": " : "",
                        r < 0 ? g_strerror(errno) : "");
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

static bool mig_rp_check_request(const GuestMemory *mem, uint64_t gpa, uint32_t npages,
                                 GError **errp)
{
    const MemoryRegionMap *r;

    if (gpa % MIG_PAGE_SIZE || npages == 0 || npages > MIG_RP_MAX_PAGES) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "return path: page request for %" PRIu32 " pages at 0x%" PRIx64
                    ": not 4 KiB aligned or not 1 to %u pages", npages, gpa,
                    MIG_RP_MAX_PAGES);
        return false;
    }
    r = guest_memory_find(mem, gpa);
    if (!r || (uint64_t)npages * MIG_PAGE_SIZE > r->size - (gpa - r->gpa)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "return path: page request for %" PRIu32 " pages at 0x%" PRIx64
                    ": not inside one region of guest RAM", npages, gpa);
        return false;
    }
    return true;
}

static bool mig_rp_check_lacking(const GuestMemory *mem, uint64_t gpa, uint64_t len,
                                 GError **errp)
{
    const MemoryRegionMap *r;

    if ((gpa | len) % MIG_PAGE_SIZE || !len) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "return path: lacking range of 0x%" PRIx64 " bytes at 0x%" PRIx64
                    ": empty or not 4 KiB aligned", len, gpa);
        return false;
    }
    r = guest_memory_find(mem, gpa);
    if (!r || len > r->size - (gpa - r->gpa)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "return path: lacking range of 0x%" PRIx64 " bytes at 0x%" PRIx64
                    ": not inside one region of guest RAM", len, gpa);
        return false;
    }
    return true;
}

bool mig_rp_read(int fd, const GuestMemory *mem, int timeout_ms, MigRpMsg *msg,
                 GError **errp)
{
    gint64 end = timeout_ms < 0 ? 0 : g_get_monotonic_time() + timeout_ms * 1000ll;
    uint8_t b[16];
    uint32_t v32;
    uint64_t v64;

    memset(msg, 0, sizeof(*msg));
    if (!mig_rp_read_exact(fd, b, 4, end, errp)) {
        return false;
    }
    memcpy(&v32, b, 4);
    msg->tag = GUINT32_FROM_BE(v32);
    switch (msg->tag) {
    case MIG_RP_TAG_ACK:
    case MIG_RP_TAG_FAILED:
        return true;
    case MIG_RP_TAG_REQUEST:
        if (!mig_rp_read_exact(fd, b, 12, end, errp)) {
            return false;
        }
        memcpy(&v64, b, 8);
        memcpy(&v32, b + 8, 4);
        msg->gpa = GUINT64_FROM_BE(v64);
        msg->npages = GUINT32_FROM_BE(v32);
        return mig_rp_check_request(mem, msg->gpa, msg->npages, errp);
    case MIG_RP_TAG_LACKING:
        if (!mig_rp_read_exact(fd, b, 16, end, errp)) {
            return false;
        }
        memcpy(&v64, b, 8);
        msg->gpa = GUINT64_FROM_BE(v64);
        memcpy(&v64, b + 8, 8);
        msg->len = GUINT64_FROM_BE(v64);
        return mig_rp_check_lacking(mem, msg->gpa, msg->len, errp);
    case MIG_RP_TAG_LACKING_END:
        if (!mig_rp_read_exact(fd, b, 8, end, errp)) {
            return false;
        }
        memcpy(&v64, b, 8);
        msg->len = GUINT64_FROM_BE(v64);
        return true;
    }
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                "return path: unknown message 0x%02x%02x%02x%02x from the destination",
                b[0], b[1], b[2], b[3]);
    return false;
}
