/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost dirty log (protocol feature LOG_SHMFD): a shared memfd with
 * one bit per 4 KiB page of guest-physical address space, bit n of
 * 64-bit word n / 64 for the page at gpa n * 4096. The back-end sets bits
 * with atomic ORs while VHOST_F_LOG_ALL is on; the front-end collects
 * them with atomic exchanges (fetch-and-clear), so no bit set
 * concurrently is lost.
 *
 * A dirty bitmap handed to vhost_log_sync has the same layout (one bit
 * per page by GPA, little-endian bit order within uint64_t words), so a
 * sync is a word-wise OR.
 */
#ifndef HW_VIRTIO_VHOST_LOG_H
#define HW_VIRTIO_VHOST_LOG_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define VHOST_LOG_PAGE_SHIFT    12
#define VHOST_LOG_PAGE          (1ull << VHOST_LOG_PAGE_SHIFT)
#define VHOST_LOG_BITS          64ull
/* Bytes of log that cover guest addresses [0, end). */
#define VHOST_LOG_BYTES(end)    \
    ((((end) + VHOST_LOG_PAGE * VHOST_LOG_BITS - 1) / (VHOST_LOG_PAGE * VHOST_LOG_BITS)) * 8)

typedef struct VhostLog {
    int fd;                     /* memfd, handed to the back-end */
    uint64_t *words;            /* our shared mapping of it */
    uint64_t nwords;
    uint64_t size;              /* bytes: nwords * 8 */
} VhostLog;

/*
 * A zeroed log covering guest addresses [0, end) (end > 0). name is the
 * device, for errors and the memfd's name.
 */
VhostLog *vhost_log_new(const char *name, uint64_t end, GError **errp);
void vhost_log_free(VhostLog *log);
/* Guest addresses [0, covered) have a bit. */
uint64_t vhost_log_covers(const VhostLog *log);

/*
 * Fetch-and-clear of every non-zero word, ORed into bitmap (npages bits).
 * Returns how many bits were set in the log. A bit beyond npages is put
 * back into the log (nothing is lost) and *overflow set.
 */
uint64_t vhost_log_sync(VhostLog *log, uint64_t *bitmap, uint64_t npages, bool *overflow);
/*
 * Moves every bit of from (an older, replaced log) into to, which covers
 * at least as much: bits the back-end set before it switched logs.
 */
void vhost_log_move(VhostLog *to, VhostLog *from);

#endif
