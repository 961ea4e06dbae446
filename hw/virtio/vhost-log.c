/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost dirty log's memory: see include/hw/virtio/vhost-log.h.
 *
 * Untrusted input: the back-end writes this memory concurrently and may
 * set any bit; a bit outside the caller's bitmap is refused by
 * vhost_log_sync, never written past the bitmap.
 */
#include <errno.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hw/virtio/vhost-log.h"
#include "util/vhost-user-error.h"

VhostLog *vhost_log_new(const char *name, uint64_t end, GError **errp)
{
    uint64_t size = VHOST_LOG_BYTES(end);
    g_autofree char *fdname = g_strdup_printf("vhost-log-%s", name);
    VhostLog *log;
    void *p;
    int fd;

    if (end == 0 || size > SIZE_MAX) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: no dirty log for guest memory ending at 0x%" PRIx64, name, end);
        return NULL;
    }
    fd = memfd_create(fdname, MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        int err = errno;

        if (fd >= 0) {
            close(fd);
        }
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: cannot create a %" PRIu64 "-byte dirty log: %s", name, size,
                    g_strerror(err));
        return NULL;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int err = errno;

        close(fd);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: cannot map the %" PRIu64 "-byte dirty log: %s", name, size,
                    g_strerror(err));
        return NULL;
    }
    log = g_new0(VhostLog, 1);
    log->fd = fd;
    log->words = p;
    log->size = size;
    log->nwords = size / 8;
    return log;
}

void vhost_log_free(VhostLog *log)
{
    if (!log) {
        return;
    }
    munmap(log->words, log->size);
    close(log->fd);
    g_free(log);
}

uint64_t vhost_log_covers(const VhostLog *log)
{
    return log->nwords * VHOST_LOG_BITS * VHOST_LOG_PAGE;
}

uint64_t vhost_log_sync(VhostLog *log, uint64_t *bitmap, uint64_t npages, bool *overflow)
{
    uint64_t nbitmap_words = (npages + VHOST_LOG_BITS - 1) / VHOST_LOG_BITS;
    uint64_t count = 0;

    *overflow = false;
    for (uint64_t i = 0; i < log->nwords; i++) {
        uint64_t w, keep = 0;

        /* A plain read first: most words are zero, and an exchange dirties the line. */
        if (!__atomic_load_n(&log->words[i], __ATOMIC_RELAXED)) {
            continue;
        }
        w = __atomic_exchange_n(&log->words[i], 0, __ATOMIC_ACQ_REL);
        if (i >= nbitmap_words) {
            keep = w;
        } else if (i == nbitmap_words - 1 && npages % VHOST_LOG_BITS) {
            keep = w & ~((1ull << (npages % VHOST_LOG_BITS)) - 1);
        }
        if (keep) {
            /* Outside the caller's bitmap: back into the log, for a bigger one. */
            __atomic_fetch_or(&log->words[i], keep, __ATOMIC_RELEASE);
            *overflow = true;
            w &= ~keep;
        }
        if (w) {
            bitmap[i] |= w;
            count += (uint64_t)__builtin_popcountll(w);
        }
    }
    return count;
}

void vhost_log_move(VhostLog *to, VhostLog *from)
{
    uint64_t n = MIN(to->nwords, from->nwords);

    for (uint64_t i = 0; i < n; i++) {
        if (__atomic_load_n(&from->words[i], __ATOMIC_RELAXED)) {
            __atomic_fetch_or(&to->words[i],
                              __atomic_exchange_n(&from->words[i], 0, __ATOMIC_ACQ_REL),
                              __ATOMIC_RELEASE);
        }
    }
}
