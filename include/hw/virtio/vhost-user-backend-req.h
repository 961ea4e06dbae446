/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The VMM's answers to what a back-end asks on its channel (BACKEND_REQ):
 * IOTLB misses, config changes, host notifier pages. Part of the public
 * API: a VMM fills one in and installs it on a device.
 */
#ifndef HW_VIRTIO_VHOST_USER_BACKEND_REQ_H
#define HW_VIRTIO_VHOST_USER_BACKEND_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What the VMM supplies to answer back-end requests. Every member is
 * optional. Callbacks marked "direct" run while a front-end request may be
 * waiting for its reply: they must not call into this library; the others
 * run from the event loop with no request in flight.
 */
typedef struct VhostUserBackendReqOps {
    /*
     * direct: an IOTLB miss for iova with perm (VHOST_ACCESS_*). Fill in
     * the translation (*uaddr, *size, *out_perm) covering iova and return
     * true; the update is then sent with IOTLB_MSG. False: no mapping.
     */
    bool (*iotlb_translate)(void *opaque, uint64_t iova, uint8_t perm,
                            uint64_t *uaddr, uint64_t *size, uint8_t *out_perm);
    /* The back-end could not access [iova, iova+size) with perm. */
    void (*iotlb_access_fail)(void *opaque, uint64_t iova, uint64_t size,
                              uint8_t perm);
    /*
     * The device config changed. With a config length set, the config was
     * re-read with GET_CONFIG first and is passed in; otherwise (or if the
     * read failed) config is NULL and len 0.
     */
    void (*config_changed)(void *opaque, const uint8_t *config, uint32_t len);
    /*
     * direct: ring's host notifier page was mapped at addr (size bytes),
     * or, with addr NULL, is about to be unmapped: stop using it before
     * returning.
     */
    void (*host_notifier)(void *opaque, unsigned ring, void *addr, size_t size);
    /*
     * The back-end signalled an error on ring (on the ring's err eventfd,
     * given to it with SET_VRING_ERR, or in-band with VRING_ERR). Runs
     * from the event loop; the library watches the eventfds itself.
     */
    void (*vring_error)(void *opaque, unsigned ring);
} VhostUserBackendReqOps;

#endif
