/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What one dirty-log sync of a vhost-user device costs the migration
 * thread (vhost_user_base_log_sync), per GiB of guest RAM and per ring
 * count, next to an anchor doing the bare job on the same number of bits:
 *
 *   ours:   a generic vhost-user device with 1, 4 or 16 rings, in this
 *           process on the static library, negotiated with the test
 *           back-end (tests/qtest/test-backend.c, LOG_SHMFD and LOG_ALL
 *           offered), logging on (SET_LOG_BASE, LOG_ALL, every ring's log
 *           flag). Its shared log is filled as a back-end writing guest
 *           memory would (atomic ORs into the memfd it was handed) with
 *           0.1%, 1% or 10% of the pages, spread evenly; then one
 *           vhost_user_base_log_sync into a zeroed bitmap is timed.
 *   anchor: the same bits in a plain array of the same size, harvested
 *           by hand (bench-common.h: load, skip zero words, exchange the
 *           others with zero, OR into the result).
 *
 * The two results are compared bit for bit. Ours and the anchor
 * alternate; each repetition gives one ratio ours / anchor; the table
 * shows the medians of each side and of the ratios. Times are this
 * thread's CPU time per GiB of guest RAM; filling the logs is not timed.
 *
 *   build/tests/bench-migrate-log [MiB of RAM >= 64, default 4096] [repetitions, default 9]
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-common.h"
#include "hw/virtio/vhost-log.h"
#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-device.h"
#include "hw/virtio/virtio.h"
#include "test-backend.h"
#include "util/vhost-user-log.h"

#define READY_MS    10000

typedef struct Bench {
    GuestMemory *mem;
    uint64_t npages, nwords;
    uint64_t *bitmap, *raw, *out;
    unsigned reps;
    bool ready;
} Bench;

static void die(const char *what, GError *err)
{
    fprintf(stderr, "bench-migrate-log: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

static void on_event(VhostUserBase *vub, VhostUserBaseEvent ev, unsigned nrings,
                     const GError *err, void *opaque)
{
    if (ev == VHOST_USER_BASE_READY) {
        ((Bench *)opaque)->ready = true;
    }
}

/* The library's log lines (reconnects, logging on) would drown the table. */
static void quiet(VhostUserLogLevel level, const char *dev, const char *msg, void *opaque)
{
}

/* The driver's bring-up of every ring, so that every ring logs its used ring. */
static void drive_up(VhostUserBase *vub, unsigned nrings)
{
    VirtIODevice *vdev = vhost_user_base_vdev(vub);
    uint64_t f = virtio_get_host_features(vdev) & (1ull << VIRTIO_F_VERSION_1);
    uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    GError *err = NULL;
    bool ok;

    ok = virtio_set_status(vdev, st, &err) && virtio_set_guest_features(vdev, f, &err);
    st |= VIRTIO_CONFIG_S_FEATURES_OK;
    ok = ok && virtio_set_status(vdev, st, &err);
    for (unsigned q = 0; ok && q < nrings; q++) {
        uint64_t base = 0x10000 + q * 0x4000ull;

        ok = virtio_queue_set_num(vdev, q, 64, &err) &&
             virtio_queue_set_addr(vdev, q, base, base + 0x1000, base + 0x2000, &err) &&
             virtio_queue_set_enabled(vdev, q, true, &err);
    }
    if (!ok || !virtio_set_status(vdev, st | VIRTIO_CONFIG_S_DRIVER_OK, &err)) {
        die("driver bring-up", err);
    }
}

/* count pages spread evenly, offset by the repetition; both logs get them. */
static void fill(Bench *b, uint64_t *shared, uint64_t count, unsigned rep)
{
    uint64_t stride = b->npages / count;

    for (uint64_t i = 0; i < count; i++) {
        uint64_t page = i * stride + (rep * 7919 + i * 104729) % stride;

        __atomic_fetch_or(&shared[page / 64], 1ull << (page % 64), __ATOMIC_RELEASE);
        b->raw[page / 64] |= 1ull << (page % 64);
    }
}

static void bench_rings(Bench *b, const char *dir, unsigned nrings)
{
    static const double fractions[] = { 0.001, 0.01, 0.1 };
    double gib = b->npages * VHOST_LOG_PAGE / GiB;
    g_autofree char *id = g_strdup_printf("dev%u", nrings);
    g_autofree char *name = g_strdup_printf("be%u.sock", nrings);
    CharSocketOptions o = { .id = "c0" };
    GError *err = NULL;
    TbConfig cfg;
    TestBackend *tb;
    CharSocket *chr;
    VhostUserBase *vub;
    gint64 end;

    tb_config_default(&cfg);
    cfg.features |= 1ull << VHOST_F_LOG_ALL;
    cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD;
    tb = tb_new(dir, name, &cfg);
    o.path = tb_socket_path(tb);
    chr = char_socket_new(&o, NULL, &err);
    if (!chr) {
        die("chardev", err);
    }
    {
        VhostUserDeviceParams p = {
            .id = id, .chr = chr, .mem = b->mem, .virtio_id = 26,
            .num_vqs = nrings, .vq_size = 64,
        };

        vub = vhost_user_device_new(&p, &err);
    }
    if (!vub) {
        die("device", err);
    }
    b->ready = false;
    vhost_user_base_set_notify(vub, on_event, b);
    if (!char_socket_open(chr, &err)) {
        die("connect", err);
    }
    end = g_get_monotonic_time() + READY_MS * 1000ll;
    while (!b->ready && g_get_monotonic_time() < end) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    if (!b->ready) {
        die("the device never got ready", NULL);
    }
    drive_up(vub, nrings);
    tb_wait_rings_started(tb, 1, nrings, READY_MS);
    if (!vhost_user_base_log_start(vub, &err)) {
        die("log start", err);
    }
    /* Every ring's SET_VRING_ADDR with the log flag, as in a migration. */
    tb_wait_msg(tb, 1, VHOST_USER_SET_VRING_ADDR, 2 * nrings, READY_MS);

    for (size_t f = 0; f < G_N_ELEMENTS(fractions); f++) {
        uint64_t count = (uint64_t)(b->npages * fractions[f]);
        double ours[64], anchor[64], ratio[64];

        for (unsigned r = 0; r < b->reps; r++) {
            uint64_t dirty = 0, got;
            double t0;

            fill(b, vub->log->words, count, r);
            memset(b->bitmap, 0, b->nwords * 8);
            t0 = now_s();
            if (!vhost_user_base_log_sync(vub, b->bitmap, b->npages, &dirty, &err)) {
                die("sync", err);
            }
            ours[r] = (now_s() - t0) * 1e3 / gib;

            memset(b->out, 0, b->nwords * 8);
            t0 = now_s();
            got = harvest(b->raw, b->out, b->nwords);
            anchor[r] = (now_s() - t0) * 1e3 / gib;

            if (dirty != count || got != count || memcmp(b->bitmap, b->out, b->nwords * 8)) {
                fprintf(stderr, "bench-migrate-log: %u rings %.1f%%: sync reported %"
                        PRIu64 " pages, anchor %" PRIu64 ", marked %" PRIu64 "\n",
                        nrings, fractions[f] * 100, dirty, got, count);
                exit(1);
            }
            ratio[r] = ours[r] / anchor[r];
            fprintf(stderr, "  %2u rings %5.1f%% rep %u: ours %.4f ms/GiB, anchor %.4f "
                    "ms/GiB\n", nrings, fractions[f] * 100, r, ours[r], anchor[r]);
        }
        printf("%6u  %8.1f%%  %12.4f  %14.4f  %8.2f\n", nrings, fractions[f] * 100,
               median(ours, b->reps), median(anchor, b->reps), median(ratio, b->reps));
        fflush(stdout);
    }
    vhost_user_base_log_stop(vub);
    vhost_user_base_free(vub);
    char_socket_free(chr);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    tb_free(tb);
}

int main(int argc, char **argv)
{
    static const unsigned rings[] = { 1, 4, 16 };
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 4096;
    Bench b = { .reps = argc > 2 ? atoi(argv[2]) : 9 };
    g_autofree char *dir = NULL;
    GError *err = NULL;
    RamBlock *rb;

    /* 0.1% of 64 MiB: 16 pages, one per 1024. */
    if (mib < 64 || b.reps < 1 || b.reps > 64) {
        fprintf(stderr, "usage: bench-migrate-log [MiB >= 64] [repetitions 1..64]\n");
        return 2;
    }
    vhost_user_set_log_handler(quiet, NULL);
    /* Sparse: the log covers guest-physical space; no page is touched. */
    rb = ram_block_new_memfd("ram0", mib << 20, &err);
    if (!rb) {
        die("memfd", err);
    }
    b.mem = guest_memory_new();
    if (!guest_memory_add(b.mem, 0, rb, 0, mib << 20, &err)) {
        die("guest memory", err);
    }
    ram_block_unref(rb);
    b.npages = (mib << 20) / VHOST_LOG_PAGE;
    b.nwords = (b.npages + 63) / 64;
    b.bitmap = g_new0(uint64_t, b.nwords);
    b.raw = g_new0(uint64_t, b.nwords);
    b.out = g_new0(uint64_t, b.nwords);
    dir = g_dir_make_tmp("bench-migrate-log-XXXXXX", NULL);
    if (!dir) {
        die("temporary directory", NULL);
    }
    printf("dirty-log sync, %" PRIu64 " MiB guest, %u repetitions (ms per GiB of guest RAM)\n",
           mib, b.reps);
    printf("%6s  %9s  %12s  %14s  %8s\n", "rings", "dirty", "ours ms/GiB", "anchor ms/GiB",
           "ratio");
    for (size_t i = 0; i < G_N_ELEMENTS(rings); i++) {
        bench_rings(&b, dir, rings[i]);
    }
    guest_memory_free(b.mem);
    g_rmdir(dir);
    g_free(b.bitmap);
    g_free(b.raw);
    g_free(b.out);
    return 0;
}
