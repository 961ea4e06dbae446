/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * minimal-vmm: the smallest VMM that embeds libvhost-user-frontend.
 *
 *   minimal-vmm SOCKET [SECTOR]
 *
 * Connects a vhost-user-blk device to the back-end listening on SOCKET,
 * then plays the guest driver itself: it negotiates features, sets up one
 * split virtqueue in guest RAM, submits one read of SECTOR (default 0) and
 * prints what came back. It uses only the installed headers:
 *
 *   cc minimal-vmm.c $(pkg-config --cflags --libs vhost-user-frontend)
 *
 * docs/devel/embedding.rst walks through it. The guest side is written out
 * by hand (no ring library) so that every step a real driver takes through
 * the virtio device model is visible; a real VMM has a guest kernel do it
 * through its virtio transport (PCI or MMIO registers) instead.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost-user-blk.h"
#include "hw/virtio/virtio-ring-defs.h"
#include "system/memory.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-log.h"
#include "util/vhost-user-proto.h"

/* Guest RAM: one 1 MiB region at guest physical address 0. */
#define RAM_SIZE        (1024 * 1024)
/* Where the driver puts things in guest RAM (one page each). */
#define DESC_GPA        0x1000
#define AVAIL_GPA       0x2000
#define USED_GPA        0x3000
#define HDR_GPA         0x4000
#define DATA_GPA        0x5000
#define STATUS_GPA      0x6000
#define QUEUE_SIZE      8
#define TIMEOUT_MS      10000

typedef struct Vmm {
    GuestMemory *mem;
    bool ready;                 /* the back-end is negotiated: drive the device */
    bool failed;                /* the library reported an error */
} Vmm;

/*
 * Everything the library wants to say (a reconnect, a decoded message with
 * VHOST_USER_TRACE=1) comes here: it never prints by itself.
 */
static void log_handler(VhostUserLogLevel level, const char *dev, const char *msg,
                        void *opaque)
{
    fprintf(stderr, "minimal-vmm: %s: %s: %s\n", vhost_user_log_level_name(level),
            dev ? dev : "-", msg);
}

/*
 * Device life cycle events, from the event loop. READY means the back-end
 * is connected and negotiated: the driver may now bring the device up.
 * After a back-end restart READY (or STARTED, if the rings were running)
 * comes again; this example does not wait around for that.
 */
static void device_event(VhostUserBase *vub, VhostUserBaseEvent event, unsigned nrings,
                         const GError *err, void *opaque)
{
    Vmm *vmm = opaque;

    switch (event) {
    case VHOST_USER_BASE_READY:
        vmm->ready = true;
        break;
    case VHOST_USER_BASE_ERROR:
        fprintf(stderr, "minimal-vmm: %s: %s (%s)\n", vhost_user_base_id(vub),
                err->message, vhost_user_error_should_reconnect(err) ?
                "a reconnect may help" : "a reconnect will not help");
        vmm->failed = true;
        break;
    case VHOST_USER_BASE_DISCONNECTED:
        vmm->ready = false;
        break;
    default:
        break;
    }
}

/* Runs the GLib loop (the library's default) until *flag or a timeout. */
static bool run_loop_until(const bool *flag, const bool *failed)
{
    gint64 deadline = g_get_monotonic_time() + TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;

    while (!*flag && !*failed && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    return *flag;
}

/* The guest driver's bring-up (virtio 1.x, 3.1.1), on the device model. */
static bool driver_bring_up(VirtIODevice *vdev, GError **errp)
{
    uint64_t features;

    if (!virtio_set_status(vdev, 0, errp) ||
        !virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE, errp) ||
        !virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
                           errp)) {
        return false;
    }
    /* The offer combines the back-end's features and the device's own. */
    features = virtio_get_host_features(vdev);
    if (!virtio_has_feature(features, VIRTIO_F_VERSION_1)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "no VIRTIO_F_VERSION_1 on offer");
        return false;
    }
    /* This driver needs nothing beyond VERSION_1: plain split rings. */
    if (!virtio_set_guest_features(vdev, 1ull << VIRTIO_F_VERSION_1, errp) ||
        !virtio_set_status(vdev, virtio_get_status(vdev) | VIRTIO_CONFIG_S_FEATURES_OK,
                           errp)) {
        return false;
    }
    if (!(virtio_get_status(vdev) & VIRTIO_CONFIG_S_FEATURES_OK)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "the device refused our features");
        return false;
    }
    /* Queue 0: its size and where its three parts sit in guest RAM. */
    if (!virtio_queue_set_num(vdev, 0, QUEUE_SIZE, errp) ||
        !virtio_queue_set_addr(vdev, 0, DESC_GPA, AVAIL_GPA, USED_GPA, errp) ||
        !virtio_queue_set_enabled(vdev, 0, true, errp)) {
        return false;
    }
    /*
     * DRIVER_OK starts the device: the library sends the memory table and
     * the ring addresses, and the back-end starts processing the ring.
     */
    return virtio_set_status(vdev, virtio_get_status(vdev) | VIRTIO_CONFIG_S_DRIVER_OK,
                             errp);
}

/*
 * One request on queue 0, as a guest driver writes it: three descriptors
 * (request header, data buffer, status byte), one avail entry, a kick;
 * then the back-end's completion in the used ring and its interrupt.
 */
static bool read_sector(Vmm *vmm, VirtIODevice *vdev, uint64_t sector, uint8_t *data,
                        GError **errp)
{
    VirtioBlkOutHdr hdr = { .type = VIRTIO_BLK_T_IN, .sector = sector };
    VringDesc *desc = guest_memory_gpa_to_hva(vmm->mem, DESC_GPA, 3 * sizeof(*desc));
    volatile uint16_t *avail = guest_memory_gpa_to_hva(vmm->mem, AVAIL_GPA,
                                                       vring_avail_size(QUEUE_SIZE));
    volatile uint16_t *used_idx = guest_memory_gpa_to_hva(vmm->mem, USED_GPA + 2, 2);
    struct pollfd pfd = { .events = POLLIN };
    uint64_t one = 1;
    uint8_t status = 0xff;
    int kick_fd;

    guest_memory_write(vmm->mem, HDR_GPA, &hdr, sizeof(hdr));
    guest_memory_write(vmm->mem, STATUS_GPA, &status, 1);
    desc[0] = (VringDesc){ HDR_GPA, sizeof(hdr), VRING_DESC_F_NEXT, 1 };
    desc[1] = (VringDesc){ DATA_GPA, VIRTIO_BLK_SECTOR_SIZE,
                           VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2 };
    desc[2] = (VringDesc){ STATUS_GPA, 1, VRING_DESC_F_WRITE, 0 };

    /* avail: flags, idx, ring[]. The entry must be visible before the index. */
    avail[2] = 0;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    avail[1] = 1;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    /* The device gave each queue an eventfd pair: kick one, wait on the other. */
    virtio_queue_get_notifiers(vdev, 0, &kick_fd, &pfd.fd);
    if (write(kick_fd, &one, sizeof(one)) != sizeof(one)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL, "kick failed");
        return false;
    }
    while (*used_idx != 1) {
        if (poll(&pfd, 1, TIMEOUT_MS) <= 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                        "no completion within %d ms", TIMEOUT_MS);
            return false;
        }
        if (read(pfd.fd, &one, sizeof(one)) < 0) {
            break;      /* spurious; the used index says whether we are done */
        }
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    guest_memory_read(vmm->mem, STATUS_GPA, &status, 1);
    if (status != VIRTIO_BLK_S_OK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "read of sector %" PRIu64 " failed: status %u", sector, status);
        return false;
    }
    return guest_memory_read(vmm->mem, DATA_GPA, data, VIRTIO_BLK_SECTOR_SIZE);
}

int main(int argc, char **argv)
{
    Vmm vmm = { 0 };
    g_autoptr(GError) err = NULL;
    CharSocketOptions chr_opts = { .id = "chr0", .reconnect_ms = 100 };
    VhostUserBlkParams blk = { .id = "blk0", .num_queues = 1, .queue_size = QUEUE_SIZE };
    CharSocket *chr = NULL;
    VhostUserBase *dev = NULL;
    RamBlock *ram = NULL;
    VirtioBlkConfig cfg = { 0 };
    uint8_t data[VIRTIO_BLK_SECTOR_SIZE];
    uint64_t sector = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
    int ret = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET [SECTOR]\n", argv[0]);
        return 2;
    }
    vhost_user_set_log_handler(log_handler, NULL);

    /* Guest RAM: a memfd the back-end can map (its fd goes over the socket). */
    vmm.mem = guest_memory_new();
    ram = ram_block_new_memfd("ram0", RAM_SIZE, &err);
    if (!ram || !guest_memory_add(vmm.mem, 0, ram, 0, RAM_SIZE, &err)) {
        goto out;
    }

    /*
     * The chardev: a client of the back-end's socket on the default (GLib)
     * loop. With reconnect_ms it retries until the back-end listens, and
     * reconnects after the back-end restarts.
     */
    chr_opts.path = argv[1];
    chr = char_socket_new(&chr_opts, NULL, &err);
    if (!chr) {
        goto out;
    }
    blk.chr = chr;
    blk.mem = vmm.mem;
    dev = vhost_user_blk_new(&blk, &err);
    if (!dev) {
        goto out;
    }
    vhost_user_base_set_notify(dev, device_event, &vmm);
    if (!char_socket_open(chr, &err)) {
        goto out;
    }
    if (!run_loop_until(&vmm.ready, &vmm.failed)) {
        g_set_error(&err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                    "%s: the back-end did not come up", vhost_user_base_id(dev));
        goto out;
    }

    /* The config space (the back-end's, fetched at connect): the disk size. */
    if (!driver_bring_up(vhost_user_base_vdev(dev), &err) ||
        !virtio_config_read(vhost_user_base_vdev(dev), 0, &cfg,
                            MIN(virtio_config_len(vhost_user_base_vdev(dev)), sizeof(cfg)),
                            &err)) {
        goto out;
    }
    if (sector >= cfg.capacity) {
        g_set_error(&err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "sector %" PRIu64 " is beyond the disk's %" PRIu64 " sectors",
                    sector, (uint64_t)cfg.capacity);
        goto out;
    }
    if (!read_sector(&vmm, vhost_user_base_vdev(dev), sector, data, &err)) {
        goto out;
    }
    printf("blk0: %" PRIu64 " sectors; sector %" PRIu64 ": ", (uint64_t)cfg.capacity,
           sector);
    for (unsigned i = 0; i < 64; i++) {
        putchar(g_ascii_isprint(data[i]) ? data[i] : '.');
    }
    putchar('\n');
    ret = 0;

out:
    if (err) {
        fprintf(stderr, "minimal-vmm: %s\n", err->message);
    }
    /* The device first (it stops the rings and lets go of the chardev). */
    vhost_user_base_free(dev);
    if (chr) {
        char_socket_free(chr);
    }
    guest_memory_free(vmm.mem);
    if (ram) {
        ram_block_unref(ram);
    }
    return ret;
}
