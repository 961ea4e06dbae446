/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inflight I/O tracking (protocol feature INFLIGHT_SHMFD): a shared
 * memory area the back-end allocates and fills with the state of every
 * request it has taken from a ring but not yet completed. The front-end
 * keeps the area (its fd and a mapping) for the life of the device, and
 * hands it to every new connection, so a back-end that crashed or was
 * upgraded finds the requests it had in flight and completes them: the
 * guest sees each request completed once.
 *
 * The rules that make this work, and which back-ends are picky about:
 *  - GET_INFLIGHT_FD once per ring life: asking again makes a back-end
 *    allocate a fresh, empty area and drop the old one, losing exactly
 *    what the area is for. The area is kept across reconnects.
 *  - SET_INFLIGHT_FD on every connection, after SET_VRING_NUM of every
 *    ring (DPDK binds the area to rings that exist; sent earlier, rings
 *    are missed or it crashes) and before any ring is kicked.
 *  - The back-end's answer is untrusted: the size must cover the split
 *    layout for num_queues x queue_size and stay within a sane bound, the
 *    offset must be page aligned, and offset + size must lie inside the
 *    fd (checked with fstat), so that the next back-end, which maps it,
 *    is not handed a short file.
 *  - The front-end never maps the area: the back-end owns the fd and could
 *    shrink it at any time, and touching a mapping past the end of a file
 *    raises SIGBUS. So instead of being cleared, the area is dropped when
 *    a ring life ends: at a clean stop (the back-end answered
 *    GET_VRING_BASE for every ring, so nothing is in flight) and at a
 *    device reset; the next start asks for a fresh one. A later start
 *    must never replay a previous ring life.
 */
#ifndef HW_VIRTIO_VHOST_INFLIGHT_H
#define HW_VIRTIO_VHOST_INFLIGHT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct vhost_inflight {
    int fd;                     /* -1: not allocated (yet, or not tracked) */
    uint64_t size;
    uint64_t offset;
    uint16_t num_queues;
    uint16_t queue_size;
};

/*
 * Bounds on the back-end's mmap_size for num_queues rings of queue_size:
 * at least the spec's split layout (a 16-byte header and 16 bytes per
 * descriptor per queue); at most room for the packed layout (32 bytes a
 * descriptor) with a page of alignment per queue.
 */
uint64_t vhost_inflight_min_size(uint16_t num_queues, uint16_t queue_size);
uint64_t vhost_inflight_max_size(uint16_t num_queues, uint16_t queue_size);

/* A struct with nothing allocated (fd -1). */
void vhost_inflight_init(struct vhost_inflight *inflight);
/* Closes; back to the init state. Safe to call twice. */
void vhost_inflight_free(struct vhost_inflight *inflight);

/*
 * Checks the back-end's answer to GET_INFLIGHT_FD (name and the request's
 * num_queues/queue_size for the messages) and keeps it. Takes fd in every
 * case: on success it is kept in *inflight, on failure it is closed and
 * errp names the field.
 */
bool vhost_inflight_take(struct vhost_inflight *inflight, const char *name, int fd,
                         uint64_t size, uint64_t offset, uint16_t num_queues,
                         uint16_t queue_size, GError **errp);

#endif
