/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The inflight area's life on the front-end side: checked, kept, freed.
 * The messages that fetch and hand it over are in vhost-user.c. See
 * include/hw/virtio/vhost-inflight.h for the rules.
 *
 * Security model: size, offset and fd come from the back-end and are
 * untrusted; all three are checked before the fd is kept, and the area
 * is never mapped here (the back-end could shrink the file under us).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hw/virtio/vhost-inflight.h"
#include "util/vhost-user-error.h"

uint64_t vhost_inflight_min_size(uint16_t num_queues, uint16_t queue_size)
{
    return (uint64_t)num_queues * (16u + 16u * (uint64_t)queue_size);
}

uint64_t vhost_inflight_max_size(uint16_t num_queues, uint16_t queue_size)
{
    return (uint64_t)num_queues * (4096u + 32u + 32u * (uint64_t)queue_size);
}

void vhost_inflight_init(struct vhost_inflight *inflight)
{
    memset(inflight, 0, sizeof(*inflight));
    inflight->fd = -1;
}

void vhost_inflight_free(struct vhost_inflight *inflight)
{
    if (inflight->fd >= 0) {
        close(inflight->fd);
    }
    vhost_inflight_init(inflight);
}

static bool inflight_fail(GError **errp, int fd, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static bool inflight_fail(GError **errp, int fd, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    if (fd >= 0) {
        close(fd);
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE, msg);
    return false;
}

bool vhost_inflight_take(struct vhost_inflight *inflight, const char *name, int fd,
                         uint64_t size, uint64_t offset, uint16_t num_queues,
                         uint16_t queue_size, GError **errp)
{
    uint64_t min = vhost_inflight_min_size(num_queues, queue_size);
    uint64_t max = vhost_inflight_max_size(num_queues, queue_size);
    long page = sysconf(_SC_PAGESIZE);
    struct stat st;

    if (fd < 0) {
        return inflight_fail(errp, fd, "%s: GET_INFLIGHT_FD reply: mmap_size %" PRIu64
                             " but no fd", name, size);
    }
    if (size < min || size > max) {
        return inflight_fail(errp, fd, "%s: GET_INFLIGHT_FD reply: mmap_size %" PRIu64
                             " is outside %" PRIu64 "..%" PRIu64 " for %u queues of "
                             "%u descriptors", name, size, min, max, num_queues,
                             queue_size);
    }
    if (offset % (uint64_t)page) {
        return inflight_fail(errp, fd, "%s: GET_INFLIGHT_FD reply: mmap_offset 0x%"
                             PRIx64 " is not page aligned", name, offset);
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return inflight_fail(errp, fd, "%s: GET_INFLIGHT_FD reply: the fd is not a "
                             "shared memory file", name);
    }
    if (offset > (uint64_t)st.st_size || size > (uint64_t)st.st_size - offset) {
        return inflight_fail(errp, fd, "%s: GET_INFLIGHT_FD reply: mmap_offset 0x%"
                             PRIx64 " + mmap_size %" PRIu64 " is past the end of "
                             "the fd (%" PRIu64 " bytes)", name, offset, size,
                             (uint64_t)st.st_size);
    }
    vhost_inflight_free(inflight);
    inflight->fd = fd;
    inflight->size = size;
    inflight->offset = offset;
    inflight->num_queues = num_queues;
    inflight->queue_size = queue_size;
    return true;
}
