/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dirty log (LOG_SHMFD, VHOST_F_LOG_ALL): while the front-end has
 * logging on, every guest page we write gets its bit set in the log it
 * handed over with SET_LOG_BASE, with an atomic OR (the front-end fetches
 * and clears words concurrently). We write guest memory in two ways:
 * used ring entries and indices (logged at their GPA, log_guest_addr of
 * SET_VRING_ADDR, when the ring's VHOST_VRING_F_LOG is set), and the
 * device-writable buffers of a chain we complete (net RX, blk reads and
 * status; logged at the descriptors' GPAs while VHOST_F_LOG_ALL is on).
 *
 * Untrusted input: the log's size and offset are checked against the fd;
 * the descriptor chain is guest memory and re-read here, so the walk is
 * bounded and simply stops at anything malformed (the pop already
 * refused a malformed chain; a guest that changes it afterwards only
 * loses marks of its own memory); a bit outside the log is never set.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "refbe.h"

#define REFBE_DIRTY_PAGE      4096ull

void refbe_dirty_release(RefBeDev *dev)
{
    if (dev->dirty_map) {
        munmap(dev->dirty_map, dev->dirty_map_len);
    }
    dev->dirty_map = NULL;
    dev->dirty_map_len = 0;
    dev->dirty_log = NULL;
    dev->dirty_words = 0;
}

bool refbe_dirty_set_base(RefBeDev *dev, const VhostUserLog *l, int fd, GError **errp)
{
    struct stat st;
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t map_off, map_len;
    void *map;

    if (fd < 0 || fstat(fd, &st) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_LOG_BASE: no usable fd", dev->name);
        return false;
    }
    if (l->mmap_size == 0 || l->mmap_size % 8 || l->mmap_offset > (uint64_t)st.st_size ||
        l->mmap_size > (uint64_t)st.st_size - l->mmap_offset) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_LOG_BASE: size %" PRIu64 " at offset %" PRIu64
                    " is empty, not whole words, or outside the %" PRIu64 "-byte fd",
                    dev->name, l->mmap_size, l->mmap_offset, (uint64_t)st.st_size);
        return false;
    }
    /* mmap wants a page-aligned offset: map from the page before it. */
    map_off = l->mmap_offset - l->mmap_offset % (uint64_t)pg;
    map_len = l->mmap_size + (l->mmap_offset - map_off);
    map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_off);
    if (map == MAP_FAILED) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: SET_LOG_BASE: cannot map %" PRIu64 " bytes: %s", dev->name,
                    map_len, g_strerror(errno));
        return false;
    }
    /* The old log goes only now: the front-end frees it once we answered. */
    refbe_dirty_release(dev);
    dev->dirty_map = map;
    dev->dirty_map_len = map_len;
    dev->dirty_log = (uint64_t *)((uint8_t *)map + (l->mmap_offset - map_off));
    dev->dirty_words = l->mmap_size / 8;
    return true;
}

/* Sets the bits of every page of [gpa, gpa + len) that the log covers. */
static void dirty_mark(RefBeDev *dev, uint64_t gpa, uint64_t len)
{
    uint64_t first, last;

    if (!dev->dirty_log || len == 0 || gpa + len < gpa) {
        return;
    }
    first = gpa / REFBE_DIRTY_PAGE;
    last = (gpa + len - 1) / REFBE_DIRTY_PAGE;
    for (uint64_t p = first; p <= last && p / 64 < dev->dirty_words; p++) {
        __atomic_fetch_or(&dev->dirty_log[p / 64], 1ull << (p % 64), __ATOMIC_RELEASE);
    }
}

void refbe_dirty_used(RefBeDev *dev, const RefBeVring *vq, uint64_t offset, uint64_t len)
{
    if (vq->log_used && refbe_has_feature(dev, VHOST_F_LOG_ALL)) {
        dirty_mark(dev, vq->log_guest_addr + offset, len);
    }
}

void refbe_dirty_chain(RefBeDev *dev, const RefBeVring *vq, uint16_t head)
{
    const VringDesc *table = vq->desc;
    unsigned table_size = vq->num, count = 0;
    bool indirect = false;
    uint16_t i = head;

    if (!refbe_has_feature(dev, VHOST_F_LOG_ALL) || !dev->dirty_log || !table ||
        head >= vq->num) {
        return;
    }
    for (;;) {
        VringDesc d;

        memcpy(&d, &table[i], sizeof(d));
        if (++count > table_size) {
            return;
        }
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (indirect || d.len == 0 || d.len % sizeof(VringDesc) ||
                d.len / sizeof(VringDesc) > REFBE_VRING_MAX_SIZE) {
                return;
            }
            table = refbe_gpa_to_host(dev, d.addr, d.len);
            if (!table) {
                return;
            }
            table_size = d.len / sizeof(VringDesc);
            indirect = true;
            count = 0;
            i = 0;
            continue;
        }
        /* Whole buffers: what we wrote of them is at most all of them. */
        if (d.flags & VRING_DESC_F_WRITE) {
            dirty_mark(dev, d.addr, d.len);
        }
        if (!(d.flags & VRING_DESC_F_NEXT) || d.next >= table_size) {
            return;
        }
        i = d.next;
    }
}
