/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest virtio-blk driver against a RAM-disk device model
 * (unit-blk-dev.c) running in its own thread, like a back-end would, with
 * faults injected into it: a corrupted sector, lost interrupts, a device
 * that stops completing; and the driver parked, dropped and attached again
 * from guest RAM, as after a migration.
 */
#include <check.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "guest/virtio-blk-drv.h"
#include "unit-blk-dev.h"
#include "unit-park.h"

START_TEST(test_write_then_read_verify)
{
    VirtioBlkResult res;
    BlkWorkload wl;
    VirtioBlkDrv *d;

    blk_test(1, false, false);
    d = drv_new(1, ALL_FEATURES);
    blk_workload_init(&wl);
    wl.rw = BLK_RW_WRITE;
    wl.iodepth = 4;
    wl.ops = CAPACITY / 8;      /* the whole disk once */
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.writes, CAPACITY / 8);
    ck_assert_uint_eq(res.flushes, 1);
    /* The read-back after the run covers every sector. */
    ck_assert_uint_eq(res.sectors_verified, CAPACITY);
    virtio_blk_result_clear(&res);
    wl.rw = BLK_RW_READ;
    wl.ops = 500;
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.reads, 500);
    ck_assert_uint_eq(res.sectors_verified, 500 * 8 + CAPACITY);
    ck_assert_uint_eq(res.stats.ops, 500);
    virtio_blk_result_clear(&res);
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_randrw_two_queues)
{
    VirtioBlkResult res;
    BlkWorkload wl;
    VirtioBlkDrv *d;
    GError *err = NULL;

    blk_test(2, _i & 1, _i & 2);
    d = drv_new(2, ALL_FEATURES);
    blk_workload_init(&wl);
    ck_assert(blk_workload_parse(&wl, "blk0", "rw=randrw,bs=4k,iodepth=8,ops=4000,size=1M",
                                 &err));
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.reads + res.writes, 4000);
    ck_assert_uint_gt(res.reads, 1000);
    ck_assert_uint_gt(res.writes, 1000);
    ck_assert_uint_eq(res.range_sectors, 2048);
    ck_assert_uint_gt(res.sectors_verified, 2048);
    ck_assert(vqs[0].st->last_used_idx > 0 && vqs[1].st->last_used_idx > 0);
    virtio_blk_result_clear(&res);
    /* Mixed in: discards and write-zeroes, verified as zeroes later. */
    ck_assert(blk_workload_parse(&wl, "blk0", "discard=10,write_zeroes=10,bs=8k", &err));
    run_ok(d, &wl, &res);
    ck_assert_uint_gt(res.discards, 100);
    ck_assert_uint_gt(res.write_zeroes, 100);
    virtio_blk_result_clear(&res);
    ck_assert(virtio_blk_drv_verify_all(d, &err));
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_corrupt_sector_caught)
{
    VirtioBlkResult res;
    BlkWorkload wl;
    VirtioBlkDrv *d;
    GError *err = NULL;
    WorkloadCtl ctl = { .name = "blk0" };

    blk_test(2, true, false);
    d = drv_new(2, ALL_FEATURES);
    blk_workload_init(&wl);
    wl.rw = BLK_RW_FILL;
    wl.bs = 16384;
    run_ok(d, &wl, &res);
    virtio_blk_result_clear(&res);
    dev.corrupt_sector = 777;
    wl.rw = BLK_RW_RANDREAD;
    wl.ops = 200;
    ck_assert(!virtio_blk_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert(err && err->domain == GUEST_ERROR && err->code == GUEST_ERROR_VERIFY);
    ck_assert_msg(strstr(err->message, "blk0: sector 777 ") != NULL, "%s", err->message);
    ck_assert_msg(strstr(err->message, "at byte 100") != NULL, "%s", err->message);
    ck_assert(!res.verified);
    ck_assert_uint_ge(res.mismatches, 1);
    ck_assert(res.first_error && strstr(res.first_error, "sector 777"));
    g_clear_error(&err);
    virtio_blk_result_clear(&res);
    /* Alone: a read of just that sector names it too. */
    ck_assert(!virtio_blk_drv_read_verify(d, 770, 16, &err));
    ck_assert_msg(strstr(err->message, "sector 777"), "%s", err->message);
    g_clear_error(&err);
    dev.corrupt_sector = -1;
    ck_assert(virtio_blk_drv_read_verify(d, 770, 16, &err));
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_fill_matches_image)
{
    VirtioBlkResult res;
    BlkWorkload wl;
    VirtioBlkDrv *d;

    blk_test(1, true, true);
    d = drv_new(1, ALL_FEATURES);
    blk_workload_init(&wl);
    wl.rw = BLK_RW_FILL;
    wl.bs = 65536;
    wl.seed = 42;
    run_ok(d, &wl, &res);
    ck_assert_uint_eq(res.writes, CAPACITY / 128);
    virtio_blk_result_clear(&res);
    dev_stop();
    /* What an image checker does: every sector is the seed's generation 1. */
    for (uint64_t s = 0; s < CAPACITY; s++) {
        PatternMismatch mm;
        uint8_t want[512];
        ck_assert_msg(virtio_blk_check_sector(dev.disk + s * 512, s, 42, &mm),
                      "sector %" PRIu64 " at byte %zu", s, mm.offset);
        virtio_blk_expected_sector(want, s, 42);
        ck_assert(memcmp(want, dev.disk + s * 512, 512) == 0);
    }
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

static void run_fails(VirtioBlkDrv *d, const BlkWorkload *wl, VirtioBlkResult *res,
                      const char *want)
{
    WorkloadCtl ctl = { .name = "blk0", .stall_ms = 5000 };
    GError *err = NULL;

    ck_assert(!virtio_blk_drv_run(d, wl, &ctl, res, &err));
    ck_assert_msg(err && strstr(err->message, want), "expected \"%s\" in \"%s\"",
                  want, err ? err->message : "(no error)");
    ck_assert(!res->verified);
    g_error_free(err);
    virtio_blk_result_clear(res);
}

/*
 * Options beyond the device are errors, never cut down; verify_only
 * checks what a fill wrote, sector by sector; a run that wrote nothing
 * never says it verified.
 */
START_TEST(test_limits_and_verify_only)
{
    VirtioBlkResult res;
    BlkWorkload wl;
    VirtioBlkDrv *d;

    blk_test(2, false, false);
    d = drv_new(2, ALL_FEATURES);
    blk_workload_init(&wl);
    wl.queues = 3;
    run_fails(d, &wl, &res, "blk0: queues=3 but the device has 2 request queues");
    wl.queues = 0;
    wl.iodepth = 30;            /* 3 descriptors a request: 21 fit in 64 */
    run_fails(d, &wl, &res, "blk0: iodepth=30 but a ring of 64 entries holds at most 21");
    wl.iodepth = BLK_DEFAULT_IODEPTH;
    wl.size = (CAPACITY + 8) * 512ull;
    run_fails(d, &wl, &res, "blk0: size=4198400 but the disk holds 4194304 bytes");
    wl.size = 0;

    wl.rw = BLK_RW_FILL;
    wl.seed = 9;
    run_ok(d, &wl, &res);
    virtio_blk_result_clear(&res);
    blk_workload_init(&wl);
    wl.verify_only = true;
    wl.seed = 9;
    run_ok_ctl(d, &wl, &(WorkloadCtl){ .name = "blk0", .stall_ms = 5000 }, &res);
    ck_assert(res.verified);
    ck_assert_uint_eq(res.sectors_verified, CAPACITY);
    ck_assert_uint_eq(res.writes, 0);
    virtio_blk_result_clear(&res);
    dev.disk[777 * 512 + 200] ^= 0x5a;
    run_fails(d, &wl, &res, "blk0: sector 777 (byte offset 397824) mismatch at byte 200");
    virtio_blk_drv_free(d);

    /* A fresh driver knows nothing of the disk: a read checks nothing. */
    d = drv_new(2, ALL_FEATURES);
    blk_workload_init(&wl);
    wl.rw = BLK_RW_READ;
    wl.ops = 50;
    run_fails(d, &wl, &res, "blk0: nothing was verified");
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_discard_write_zeroes)
{
    VirtioBlkDrv *d;
    GError *err = NULL;
    uint8_t buf[64 * 512];

    blk_test(1, false, false);
    d = drv_new(1, ALL_FEATURES);
    ck_assert(virtio_blk_drv_write_pattern(d, 0, 64, &err));
    ck_assert(virtio_blk_drv_read_verify(d, 0, 64, &err));
    ck_assert(virtio_blk_drv_discard(d, 8, 16, &err));
    ck_assert(virtio_blk_drv_write_zeroes(d, 32, 8, true, &err));
    ck_assert_msg(virtio_blk_drv_read_verify(d, 0, 64, &err), "%s", err ? err->message : "");
    ck_assert(virtio_blk_drv_read(d, 0, 64, buf, &err));
    ck_assert(pattern_is_zero(buf + 8 * 512, 16 * 512, NULL));
    ck_assert(pattern_is_zero(buf + 32 * 512, 8 * 512, NULL));
    ck_assert(!pattern_is_zero(buf, 512, NULL));
    ck_assert(!pattern_is_zero(buf + 24 * 512, 512, NULL));
    /* Rewritten after the discard: a new generation, not the old one. */
    ck_assert(virtio_blk_drv_write_pattern(d, 8, 4, &err));
    ck_assert(virtio_blk_drv_verify_all(d, &err));
    /* A device that still holds data where zeroes belong is caught. */
    dev.disk[40 * 512 + 3] = 1;
    ck_assert(virtio_blk_drv_write_zeroes(d, 40, 1, false, &err));
    dev.disk[40 * 512 + 3] = 1;
    ck_assert(!virtio_blk_drv_read_verify(d, 40, 1, &err));
    ck_assert_msg(strstr(err->message, "sector 40 ") &&
                  strstr(err->message, "zeroes"), "%s", err->message);
    g_clear_error(&err);
    /* Out of range is refused before anything is sent. */
    ck_assert(!virtio_blk_drv_discard(d, CAPACITY - 1, 2, &err));
    ck_assert(err->code == GUEST_ERROR_OPTION);
    g_clear_error(&err);
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_flush_and_get_id)
{
    VirtioBlkDrv *d;
    GError *err = NULL;
    char id[VIRTIO_BLK_ID_BYTES + 1];
    uint64_t before;

    blk_test(1, false, true);
    d = drv_new(1, ALL_FEATURES);
    before = dev.requests;
    ck_assert(virtio_blk_drv_flush(d, &err));
    ck_assert_uint_eq(dev.requests, before + 1);
    ck_assert(virtio_blk_drv_get_id(d, id, &err));
    ck_assert_str_eq(id, "ramdisk-0123456789AB");
    virtio_blk_drv_free(d);
    /* Not negotiated: refused locally, naming the feature. */
    d = drv_new(1, 0);
    ck_assert(!virtio_blk_drv_flush(d, &err));
    ck_assert(err->code == GUEST_ERROR_UNSUPPORTED);
    ck_assert_msg(strstr(err->message, "blk0: flush"), "%s", err->message);
    g_clear_error(&err);
    ck_assert(!virtio_blk_drv_discard(d, 0, 1, &err));
    g_clear_error(&err);
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_lost_interrupts_and_stall)
{
    VirtioBlkResult res;
    BlkWorkload wl;
    VirtioBlkDrv *d;
    GError *err = NULL;
    WorkloadCtl ctl = { .name = "blk0", .poll_ms = 5, .stall_ms = 300 };
    bool stop = false;
    uint64_t t0;

    blk_test(1, false, false);
    d = drv_new(1, ALL_FEATURES);
    /* No call ever: the polling fallback completes everything anyway. */
    dev.no_call = true;
    blk_workload_init(&wl);
    wl.ops = 300;
    wl.iodepth = 4;
    wl.size = 256 * 1024;
    run_ok_ctl(d, &wl, &ctl, &res);
    ck_assert_uint_eq(res.stats.ops, 300);
    virtio_blk_result_clear(&res);
    /* stop ends a long run early and cleanly. */
    dev.no_call = false;
    wl.ops = 0;
    wl.runtime_ms = 60000;
    ctl.stop = &stop;
    stop = true;
    ck_assert(virtio_blk_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert(res.verified);
    virtio_blk_result_clear(&res);
    ctl.stop = NULL;
    /* A device that stops completing: a clear error, not a hang. */
    dev.hang = true;
    wl.runtime_ms = 0;
    wl.ops = 10;
    t0 = wl_now_ns();
    ck_assert(!virtio_blk_drv_run(d, &wl, &ctl, &res, &err));
    ck_assert_uint_lt(wl_now_ns() - t0, 5000000000ull);
    ck_assert(err->code == GUEST_ERROR_DEVICE);
    ck_assert_msg(strstr(err->message, "blk0: no completion for 300 ms"), "%s", err->message);
    g_clear_error(&err);
    virtio_blk_result_clear(&res);
    /* Its buffers are still the device's: the driver refuses to go on. */
    ck_assert(!virtio_blk_drv_flush(d, &err));
    ck_assert(err->code == GUEST_ERROR_BROKEN);
    g_clear_error(&err);
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

static void progress_cb(void *opaque, const char *name, uint64_t ops, double rate)
{
    unsigned *calls = opaque;

    ck_assert_str_eq(name, "blk0");
    ck_assert_uint_gt(ops, 0);
    ck_assert(rate > 0);
    (*calls)++;
}

START_TEST(test_progress_and_runtime)
{
    VirtioBlkResult res;
    BlkWorkload wl;
    VirtioBlkDrv *d;
    unsigned calls = 0;
    WorkloadCtl ctl = { .name = "blk0", .progress = progress_cb, .opaque = &calls };

    blk_test(2, true, true);
    d = drv_new(2, ALL_FEATURES);
    blk_workload_init(&wl);
    wl.runtime_ms = 1300;
    wl.size = 1 << 20;
    run_ok_ctl(d, &wl, &ctl, &res);
    ck_assert_uint_ge(calls, 1);
    ck_assert_uint_le(calls, 3);
    ck_assert(wl_stats_seconds(&res.stats) >= 1.2);
    ck_assert_uint_gt(res.stats.ops, 100);
    virtio_blk_result_clear(&res);
    dev_stop();
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_bad_config)
{
    VirtioBlkDrvConfig cfg = { .capacity = CAPACITY, .blk_size = 1000 };
    VirtioBlkResult res;
    BlkWorkload wl;
    GError *err = NULL;
    VirtioBlkDrv *d;

    ring_setup(1, false, false);
    ck_assert(!virtio_blk_drv_new("blk7", mem, vqs, 1, 1ull << VIRTIO_BLK_F_BLK_SIZE,
                                  &cfg, BUF_GPA, BUF_SIZE, 1, &err));
    ck_assert_msg(strstr(err->message, "blk7: config blk_size 1000"), "%s", err->message);
    g_clear_error(&err);
    cfg.blk_size = 4096;
    ck_assert(!virtio_blk_drv_new("blk7", mem, vqs, 1, 0, &cfg, RAM_SIZE - 4096,
                                  BUF_SIZE, 1, &err));
    g_clear_error(&err);
    d = virtio_blk_drv_new("blk7", mem, vqs, 1, 1ull << VIRTIO_BLK_F_BLK_SIZE, &cfg,
                           BUF_GPA, BUF_SIZE, 1, &err);
    ck_assert(d);
    ck_assert_uint_eq(virtio_blk_drv_tracked_sectors(d), CAPACITY);
    /* The suggested area tracks a whole large disk. */
    ck_assert_uint_ge(virtio_blk_drv_area_size(1ull << 21), (1ull << 21) * 4 + (32u << 20));
    blk_workload_init(&wl);
    wl.bs = 512;                /* below the logical block size */
    ck_assert(!virtio_blk_drv_run(d, &wl, NULL, &res, &err));
    ck_assert_msg(strstr(err->message, "blk7: bs 512"), "%s", err->message);
    g_clear_error(&err);
    wl.bs = 4096;
    wl.iodepth = 64;
    wl.discard_pct = 5;         /* not negotiated */
    ck_assert(!virtio_blk_drv_run(d, &wl, NULL, &res, &err));
    ck_assert(err->code == GUEST_ERROR_UNSUPPORTED);
    g_clear_error(&err);
    virtio_blk_drv_free(d);
    /* A read-only disk takes no writing workload. */
    d = virtio_blk_drv_new("blk7", mem, vqs, 1, 1ull << VIRTIO_BLK_F_RO, &cfg,
                           BUF_GPA, BUF_SIZE, 1, &err);
    ck_assert(d);
    wl.discard_pct = 0;
    ck_assert(!virtio_blk_drv_run(d, &wl, NULL, &res, &err));
    ck_assert_msg(strstr(err->message, "blk7: the workload writes but the device is "
                         "read-only"), "%s", err->message);
    g_clear_error(&err);
    virtio_blk_drv_free(d);
    teardown();
}
END_TEST

START_TEST(test_workload_options)
{
    BlkWorkload wl;
    NetWorkload nw;
    GError *err = NULL;
    g_autofree char *devid = NULL, *opts = NULL, *fmt = NULL, *nfmt = NULL;
    BlkWorkload wl2;
    NetWorkload nw2;

    ck_assert(workload_split("blk0:rw=randrw,bs=4k,iodepth=32,ops=10000,verify=on",
                             &devid, &opts, &err));
    ck_assert_str_eq(devid, "blk0");
    blk_workload_init(&wl);
    ck_assert(blk_workload_parse(&wl, devid, opts, &err));
    ck_assert_int_eq(wl.rw, BLK_RW_RANDRW);
    ck_assert_uint_eq(wl.bs, 4096);
    ck_assert_uint_eq(wl.iodepth, 32);
    ck_assert_uint_eq(wl.ops, 10000);
    ck_assert(blk_workload_parse(&wl, "blk0", "runtime=500ms,size=1M,rwmixread=70,"
                                 "seed=9,number_ios=5,verify=off,bs=1KiB,", &err));
    ck_assert_uint_eq(wl.runtime_ms, 500);
    ck_assert_uint_eq(wl.size, 1 << 20);
    ck_assert_uint_eq(wl.ops, 5);
    ck_assert_uint_eq(wl.bs, 1024);
    ck_assert(!wl.verify);
    fmt = blk_workload_format(&wl);
    blk_workload_init(&wl2);
    ck_assert_msg(blk_workload_parse(&wl2, "blk0", fmt, &err), "%s", fmt);
    ck_assert(memcmp(&wl, &wl2, sizeof(wl)) == 0);
    /* wce: left alone unless given, and given it survives the round trip. */
    ck_assert_int_eq(wl.wce, -1);
    ck_assert(!strstr(fmt, "wce"));
    ck_assert(blk_workload_parse(&wl, "blk0", "wce=0", &err));
    ck_assert_int_eq(wl.wce, 0);
    g_free(fmt);
    fmt = blk_workload_format(&wl);
    ck_assert(strstr(fmt, ",wce=0"));
    blk_workload_init(&wl2);
    ck_assert_msg(blk_workload_parse(&wl2, "blk0", fmt, &err), "%s", fmt);
    ck_assert(memcmp(&wl, &wl2, sizeof(wl)) == 0);
    /* poll: off by default, each mode survives the round trip. */
    ck_assert_int_eq(wl.poll, BLK_POLL_OFF);
    ck_assert(blk_workload_parse(&wl, "blk0", "poll=adaptive", &err));
    ck_assert_int_eq(wl.poll, BLK_POLL_ADAPTIVE);
    g_free(fmt);
    fmt = blk_workload_format(&wl);
    ck_assert(strstr(fmt, ",poll=adaptive"));
    blk_workload_init(&wl2);
    ck_assert_msg(blk_workload_parse(&wl2, "blk0", fmt, &err), "%s", fmt);
    ck_assert(memcmp(&wl, &wl2, sizeof(wl)) == 0);

    static const struct { const char *opts, *msg; } bad[] = {
        { "poll=busy", "blk0: poll: 'busy' is not on, off or adaptive" },
        { "bs=1000", "blk0: bs: '1000' is not a multiple of 512" },
        { "rw=sideways", "blk0: rw: 'sideways' is not" },
        { "iodepth=0", "blk0: iodepth: '0' is outside [1, 32768]" },
        { "verify=maybe", "blk0: verify: 'maybe' is not on/off" },
        { "runtime=5h", "blk0: runtime: '5h' is not a time" },
        { "color=red", "blk0: unknown block workload key 'color'" },
        { "ops", "blk0: 'ops': expected KEY=VALUE" },
        { "ops=-1", "blk0: ops: '-1' is not a number" },
        { "size=99999999999999999999", "blk0: size: '99999999999999999999' is not a size" },
        { "discard=60,write_zeroes=50", "blk0: write_zeroes: '50' is outside [0, 40]" },
        { "wce=2", "blk0: wce: '2' is outside [0, 1]" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        blk_workload_init(&wl);
        ck_assert(!blk_workload_parse(&wl, "blk0", bad[i].opts, &err));
        ck_assert_msg(strstr(err->message, bad[i].msg) == err->message, "%s -> %s",
                      bad[i].opts, err->message);
        g_clear_error(&err);
    }
    ck_assert(!workload_split(":x=1", &devid, &opts, &err));
    g_clear_error(&err);

    net_workload_init(&nw);
    ck_assert(net_workload_parse(&nw, "net0", "count=10000,size=64+512+1518,window=32", &err));
    ck_assert_uint_eq(nw.count, 10000);
    ck_assert_uint_eq(nw.nsizes, 3);
    ck_assert_uint_eq(nw.sizes[2], 1518);
    ck_assert_uint_eq(nw.window, 32);
    nfmt = net_workload_format(&nw);
    net_workload_init(&nw2);
    ck_assert_msg(net_workload_parse(&nw2, "net0", nfmt, &err), "%s", nfmt);
    ck_assert(memcmp(&nw, &nw2, sizeof(nw)) == 0);
    ck_assert(!net_workload_parse(&nw, "net0", "size=64+12", &err));
    ck_assert_msg(strstr(err->message, "net0: size: '12' is outside [46, 9018]"), "%s",
                  err->message);
    g_clear_error(&err);
    /* Jumbo frames parse; the device's MTU is the driver's business. */
    ck_assert(net_workload_parse(&nw, "net0", "size=64+1518+9014", &err));
    ck_assert_uint_eq(nw.sizes[2], 9014);
    ck_assert(!net_workload_parse(&nw, "net0", "count=0", &err));
    g_clear_error(&err);
    ck_assert(!net_workload_parse(&nw, "net0", "bs=4k", &err));
    ck_assert_msg(strstr(err->message, "'bs'"), "%s", err->message);
    g_clear_error(&err);

    /* The measured modes: verify, poll, burst, lat-sample (issue 12). */
    net_workload_init(&nw);
    ck_assert(nw.verify == NET_VERIFY_FULL && nw.poll == NET_POLL_OFF);
    ck_assert_uint_eq(nw.burst, NET_DEFAULT_BURST);
    ck_assert_uint_eq(net_workload_lat_sample(&nw), 1);
    ck_assert(net_workload_parse(&nw, "net0", "window=64,verify=seq,poll=adaptive,burst=64",
                                 &err));
    ck_assert(nw.verify == NET_VERIFY_SEQ && nw.poll == NET_POLL_ADAPTIVE);
    ck_assert_uint_eq(nw.burst, 64);
    ck_assert_uint_eq(net_workload_lat_sample(&nw), NET_DEFAULT_LAT_SAMPLE);
    g_free(nfmt);
    nfmt = net_workload_format(&nw);
    ck_assert(!strstr(nfmt, "lat-sample"));
    net_workload_init(&nw2);
    ck_assert_msg(net_workload_parse(&nw2, "net0", nfmt, &err), "%s", nfmt);
    ck_assert(memcmp(&nw, &nw2, sizeof(nw)) == 0);
    ck_assert(net_workload_parse(&nw, "net0", "verify=sample,poll=on,lat-sample=8", &err));
    ck_assert(nw.verify == NET_VERIFY_SAMPLE && nw.poll == NET_POLL_ON);
    ck_assert_uint_eq(net_workload_lat_sample(&nw), 8);
    g_free(nfmt);
    nfmt = net_workload_format(&nw);
    net_workload_init(&nw2);
    ck_assert_msg(net_workload_parse(&nw2, "net0", nfmt, &err), "%s", nfmt);
    ck_assert(memcmp(&nw, &nw2, sizeof(nw)) == 0);
    /* blk's booleans: on is full, off is seq (the header is always checked). */
    ck_assert(net_workload_parse(&nw, "net0", "verify=on", &err));
    ck_assert(nw.verify == NET_VERIFY_FULL);
    ck_assert(net_workload_parse(&nw, "net0", "verify=off", &err));
    ck_assert(nw.verify == NET_VERIFY_SEQ);
    static const struct { const char *opts, *msg; } nbad[] = {
        { "verify=most", "net0: verify: 'most' is not full, sample or seq" },
        { "poll=busy", "net0: poll: 'busy' is not off, on or adaptive" },
        { "burst=0", "net0: burst: '0' is outside [1, 4096]" },
        { "lat-sample=0", "net0: lat-sample: '0' is outside [1, 1048576]" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(nbad); i++) {
        ck_assert(!net_workload_parse(&nw, "net0", nbad[i].opts, &err));
        ck_assert_msg(!strcmp(err->message, nbad[i].msg), "%s -> %s", nbad[i].opts,
                      err->message);
        g_clear_error(&err);
    }
}
END_TEST

/* ---- live migration: park, drop the driver, attach from RAM, go on ---- */

typedef struct BlkRunArgs {
    VirtioBlkDrv *d;
    BlkWorkload wl;
    WorkloadCtl ctl;
    VirtioBlkResult res;
    GError *err;
    bool ok;
} BlkRunArgs;

static gpointer blk_run_thread(gpointer opaque)
{
    BlkRunArgs *a = opaque;

    a->ok = virtio_blk_drv_run(a->d, &a->wl, &a->ctl, &a->res, &a->err);
    return NULL;
}

/*
 * Everything host-side goes (driver, rings' views), the device is stopped
 * as a migration stops it, and what is left is guest RAM.
 */
static void blk_drop_host_state(VirtioBlkDrv *d, bool attach)
{
    uint64_t v;

    dev_stop();
    ck_assert_int_eq(read(dev.stop_fd, &v, 8), 8);
    virtio_blk_drv_free(d);
    for (unsigned q = 0; q < dev.nq && attach; q++) {
        int kick = vqs[q].kick_fd, call = vqs[q].call_fd;

        memset(&vqs[q], 0xa5, sizeof(vqs[q]));
        ck_assert(guest_vq_attach(&vqs[q], mem, vq_state_gpa[q]));
        vqs[q].kick_fd = kick;
        vqs[q].call_fd = call;
    }
}

static VirtioBlkDrv *blk_attach(unsigned nq, GError **errp)
{
    VirtioBlkDrvConfig cfg = { .capacity = CAPACITY, .blk_size = 512, .seg_max = 8,
                               .num_queues = (uint16_t)nq };

    return virtio_blk_drv_attach("blk0", mem, vqs, nq, ALL_FEATURES, &cfg, BUF_GPA,
                                 BUF_SIZE, errp);
}

/*
 * Runs opts, pauses and resumes it *pauses times in place, then parks it
 * once more and ends it there as migrated.
 */
static BlkRunArgs *blk_run_and_park(UnitPark *park, const char *opts, unsigned *pauses)
{
    BlkRunArgs *a = g_new0(BlkRunArgs, 1);
    GThread *t;
    GError *err = NULL;

    blk_test(2, true, true);
    a->d = drv_new(2, ALL_FEATURES);
    blk_workload_init(&a->wl);
    ck_assert(blk_workload_parse(&a->wl, "blk0", opts, &err));
    a->ctl = (WorkloadCtl){ .name = "blk0", .stall_ms = 5000 };
    unit_park_init(park, &a->ctl);
    t = g_thread_new("blk-run", blk_run_thread, a);
    for (unsigned i = 0; i <= *pauses; i++) {
        g_usleep(30000);
        /*
         * The first park only once the run has written: a slow (ASan,
         * loaded) machine may not have completed one in 30 ms, and the
         * test is about written blocks surviving the park.
         */
        for (unsigned w = 0; i == 0 && w < 500 &&
             !__atomic_load_n(&a->res.writes, __ATOMIC_RELAXED); w++) {
            g_usleep(10000);
        }
        ck_assert_msg(unit_park_pause(park), "the run did not park");
        /* Parked: nothing in flight anywhere, the rings are quiet. */
        ck_assert_uint_eq(__atomic_load_n(&park->in_flight, __ATOMIC_RELAXED), 0);
        for (unsigned q = 0; q < dev.nq; q++) {
            ck_assert_uint_eq(guest_vq_in_flight(&vqs[q]), 0);
        }
        unit_park_release(park, i < *pauses);
    }
    g_thread_join(t);
    ck_assert_msg(a->ok, "%s", a->err ? a->err->message : "?");
    ck_assert(a->res.migrated);
    ck_assert_uint_gt(a->res.writes, 0);
    *pauses = park->parks;
    return a;
}

START_TEST(test_park_and_continue_from_ram)
{
    UnitPark park;
    unsigned pauses = 1;
    BlkRunArgs *a = blk_run_and_park(&park, "rw=randrw,iodepth=8,ops=30000,size=1M",
                                     &pauses);
    VirtioBlkResult res;
    uint64_t before = a->res.reads + a->res.writes;
    WorkloadCtl ctl = { .name = "blk0", .stall_ms = 5000 };
    GError *err = NULL;
    VirtioBlkDrv *d2;

    ck_assert_uint_eq(pauses, 2);
    ck_assert_uint_lt(before, 30000);
    blk_drop_host_state(a->d, true);
    d2 = blk_attach(2, &err);
    ck_assert_msg(d2, "%s", err ? err->message : "?");
    dev_start();
    ck_assert_msg(virtio_blk_drv_continue(d2, &a->wl, &ctl, &res, &err), "%s",
                  err ? err->message : "?");
    ck_assert(res.continued && !res.migrated && res.verified);
    ck_assert_uint_eq(res.mismatches, 0);
    ck_assert_uint_eq(res.io_errors, 0);
    /* The counts are the whole run's: exactly the ops asked for. */
    ck_assert_uint_eq(res.reads + res.writes, 30000);
    ck_assert_uint_eq(res.ops_before, before);
    ck_assert_uint_eq(res.ops_before + res.stats.ops, 30000);
    /* The read-back covered the blocks written before the switchover. */
    ck_assert_uint_ge(res.sectors_verified, 2048);
    virtio_blk_result_clear(&res);
    /* A record is consumed: a second continuation is refused. */
    ck_assert(!virtio_blk_drv_continue(d2, &a->wl, &ctl, &res, &err));
    ck_assert_msg(strstr(err->message, "no parked run"), "%s", err->message);
    g_clear_error(&err);
    dev_stop();
    virtio_blk_result_clear(&res);
    virtio_blk_result_clear(&a->res);
    virtio_blk_drv_free(d2);
    unit_park_clear(&park);
    g_free(a);
    teardown();
}
END_TEST

/* _i: which value of the parked driver's state a back-end overwrote. */
START_TEST(test_corrupt_state_refused)
{
    static const char *const want[] = {
        "tracked", "pool", "generation table", "verify_cursor", "bs 4096",
    };
    UnitPark park;
    unsigned pauses = 0;
    BlkRunArgs *a = blk_run_and_park(&park, "rw=randrw,iodepth=8,ops=30000,size=1M",
                                     &pauses);
    uint8_t *st = guest_memory_gpa_to_hva(mem, BUF_GPA, 4096);
    GError *err = NULL;
    VirtioBlkDrv *d2 = NULL;
    VirtioBlkResult res = { 0 };
    WorkloadCtl ctl = { .name = "blk0" };
    GuestVqState *vs;
    GuestVirtqueue vq;

    /* BlkDrvState: tracked at 8, pool_size 24, gen_gpa 32; the run record at 56. */
    switch (_i) {
    case 0: *(uint64_t *)(st + 8) += 1000; break;
    case 1: *(uint64_t *)(st + 24) = 1ull << 40; break;
    case 2: *(uint64_t *)(st + 32) = 0xdead0000ull; break;
    case 3: *(uint64_t *)(st + 56 + 24 + 32) = UINT64_MAX; break;
    case 4: a->wl.bs = 8192; break;     /* the destination's workload differs */
    case 5:
        vs = guest_memory_gpa_to_hva(mem, vq_state_gpa[1], sizeof(*vs));
        vs->num_free = 0xffff;
        break;
    case 6:
        vs = guest_memory_gpa_to_hva(mem, vq_state_gpa[1], sizeof(*vs));
        vs->free_head = QSIZE;
        break;
    }
    blk_drop_host_state(a->d, _i < 5);
    if (_i >= 5) {
        /* The ring state is refused before anything indexes with it. */
        ck_assert(!guest_vq_attach(&vq, mem, vq_state_gpa[1]));
    } else {
        d2 = blk_attach(2, &err);
        ck_assert(!d2 || !virtio_blk_drv_continue(d2, &a->wl, &ctl, &res, &err));
        ck_assert_msg(strstr(err->message, want[_i]) && strstr(err->message, "blk0"),
                      "case %d: %s", _i, err->message);
        g_clear_error(&err);
    }
    virtio_blk_result_clear(&res);
    virtio_blk_result_clear(&a->res);
    virtio_blk_drv_free(d2);
    unit_park_clear(&park);
    g_free(a);
    teardown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guest-blk");
    TCase *tc = tcase_create("blk");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_write_then_read_verify);
    /* 0: chains, 1: indirect, 2: event idx, 3: both */
    tcase_add_loop_test(tc, test_randrw_two_queues, 0, 4);
    tcase_add_test(tc, test_corrupt_sector_caught);
    tcase_add_test(tc, test_fill_matches_image);
    tcase_add_test(tc, test_limits_and_verify_only);
    tcase_add_test(tc, test_discard_write_zeroes);
    tcase_add_test(tc, test_flush_and_get_id);
    tcase_add_test(tc, test_lost_interrupts_and_stall);
    tcase_add_test(tc, test_progress_and_runtime);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_workload_options);
    tcase_add_test(tc, test_park_and_continue_from_ram);
    tcase_add_loop_test(tc, test_corrupt_state_refused, 0, 7);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
