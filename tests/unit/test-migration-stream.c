/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream in-process, round trips and transport: a source
 * and a destination "VM" (guest memory of two RAM blocks plus device
 * state) joined by a socketpair, a TCP or a unix socket; zero pages and
 * holes cost nothing; postcopy's page answers; bandwidth, a closed peer,
 * cancel, convergence, CRC-32C, URIs. Corrupt and crafted streams are in
 * test-migration-stream-untrusted.c.
 */
#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migration/convergence.h"
#include "migration/format.h"
#include "migration/load.h"
#include "migration/ram-stream.h"
#include "migration/socket.h"
#include "migration/stream.h"
#include "unit-mig-stream.h"
#include "unit-sock.h"
#include "util/vhost-user-error.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define PAGE MIG_PAGE_SIZE
#define RAM1_GPA UNIT_RAM1_GPA

typedef struct Sender {
    int fd;                     /* connected, or -1 */
    const char *uri;            /* connect to this when fd < 0 */
    TestVm *src;
    uint64_t bytes_written;     /* by the sender, when done */
} Sender;

static gpointer sender_thread(gpointer opaque)
{
    Sender *snd = opaque;
    GError *err = NULL;
    int fd = snd->fd >= 0 ? snd->fd : mig_socket_connect(snd->uri, &err);
    MigStream *s;

    ck_assert_msg(fd >= 0, "%s", err ? err->message : "");
    s = mig_stream_new(fd);
    send_migration(s, snd->src);
    snd->bytes_written = mig_stream_bytes_written(s);
    mig_stream_free(s);
    return NULL;
}

/*
 * The sender runs in a thread; the destination loads from dst_fd, or from
 * the peer it accepts on listen_fd (dst_fd -1).
 */
static void migrate_and_check(int dst_fd, int listen_fd, Sender *snd)
{
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    Loaded loaded = loaded_new();
    GThread *t = g_thread_new("sender", sender_thread, snd);
    GError *err = NULL;
    MigStream *s;

    if (dst_fd < 0) {
        dst_fd = mig_socket_accept(listen_fd, &err);
        ck_assert_msg(dst_fd >= 0, "%s", err ? err->message : "");
    }
    s = mig_stream_new(dst_fd);
    ck_assert_msg(mig_load(s, dst->mem, record_device, &loaded, &err), "%s",
                  err ? err->message : "");
    g_thread_join(t);
    assert_same_ram(snd->src, dst);
    assert_devices(&loaded);
    ck_assert_uint_eq(mig_stream_bytes_read(s), snd->bytes_written);
    mig_stream_free(s);
    vm_free(dst);
}

START_TEST(test_roundtrip_socketpair)
{
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0);
    Sender snd = { .src = src };
    int sv[2];

    vm_fill_pattern(src);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    snd.fd = sv[0];
    migrate_and_check(sv[1], -1, &snd);
    vm_free(src);
}
END_TEST

static void roundtrip_uri(const char *listen_uri, const char *prefix)
{
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0);
    GError *err = NULL;
    int lfd = mig_socket_listen(listen_uri, &err);
    g_autofree char *uri = NULL;
    Sender snd = { .fd = -1, .src = src };

    ck_assert_msg(lfd >= 0, "%s", err ? err->message : "");
    uri = mig_socket_local_uri(lfd, &err);
    ck_assert_msg(uri && g_str_has_prefix(uri, prefix), "%s", uri ? uri : err->message);
    snd.uri = uri;
    vm_fill_pattern(src);
    migrate_and_check(-1, lfd, &snd);
    close(lfd);
    vm_free(src);
}

START_TEST(test_roundtrip_tcp)
{
    roundtrip_uri("tcp:127.0.0.1:0", "tcp:127.0.0.1:");
}
END_TEST

START_TEST(test_roundtrip_unix)
{
    g_autofree char *dir = g_dir_make_tmp("test-mig-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", dir);
    g_autofree char *path = g_strdup_printf("%s/mig.sock", dir);

    roundtrip_uri(uri, uri);
    unlink(path);
    rmdir(dir);
}
END_TEST

typedef struct ZeroRound {
    TestVm *src;
    uint64_t *bitmap;
    uint64_t sent;
} ZeroRound;

static void write_zero_round(MigStream *s, void *opaque)
{
    ZeroRound *z = opaque;
    GError *err = NULL;

    ck_assert(mig_save_header(s, &err));
    ck_assert(mig_ram_save_setup(s, z->src->mem, &err));
    ck_assert(mig_ram_save_dirty(s, z->src->mem, z->bitmap, z->src->nbits,
                                 &z->sent, &err));
    ck_assert(mig_save_end(s, &err));
}

START_TEST(test_zero_pages_cheap)
{
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0);
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    ZeroRound z = { .src = src, .bitmap = g_new0(uint64_t, src->nbits / 64 + 1) };
    g_autoptr(GByteArray) bytes = NULL;
    unsigned n = 0;
    GError *err = NULL;

    /* Every other page: each zero page is a run of its own, the worst case. */
    for (int b = 0; b < 2; b++) {
        for (uint64_t off = 0; off < src->block[b]->size; off += 2 * PAGE) {
            set_bit(z.bitmap, (b ? RAM1_GPA : 0) + off);
            n++;
        }
    }
    bytes = record(write_zero_round, &z);
    ck_assert_msg(z.sent < 64 * n, "%u zero pages cost %" G_GUINT64_FORMAT " bytes",
                  n, z.sent);

    /* The destination's pages named in the bitmap are now zero, the rest not. */
    ck_assert(load_bytes(bytes->data, bytes->len, dst, &err));
    for (int b = 0; b < 2; b++) {
        const uint8_t *host = dst->block[b]->host;

        for (uint64_t off = 0; off < dst->block[b]->size; off += PAGE) {
            ck_assert_uint_eq(host[off + PAGE - 1], off % (2 * PAGE) ? 0xaa : 0);
        }
    }

    /* A data page costs its 4 KiB. */
    memset(src->block[0]->host, 1, PAGE);
    memset(z.bitmap, 0, (src->nbits / 64 + 1) * 8);
    set_bit(z.bitmap, 0);
    g_byte_array_unref(record(write_zero_round, &z));
    ck_assert_uint_ge(z.sent, PAGE);
    g_free(z.bitmap);
    vm_free(src);
    vm_free(dst);
}
END_TEST

/* Bytes of memory a RAM block's fd holds (shmem counts what is allocated). */
static uint64_t block_populated(const RamBlock *rb)
{
    struct stat st;

    ck_assert_int_eq(fstat(rb->fd, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

static void write_all_ram(MigStream *s, void *opaque)
{
    TestVm *src = opaque;
    GError *err = NULL;

    ck_assert(mig_save_header(s, &err));
    ck_assert(mig_ram_save_setup(s, src->mem, &err));
    ck_assert(mig_ram_save_dirty(s, src->mem, NULL, 0, NULL, &err));
    ck_assert(mig_save_end(s, &err));
}

/*
 * Never-written RAM is neither read on the source nor touched on the
 * destination: reading a hole through the mapping would allocate and
 * clear a page for it, on both sides, for an idle guest's whole RAM.
 */
START_TEST(test_holes_untouched)
{
    TestVm *src = vm_new(1 * MiB, 16 * MiB, 0);
    TestVm *dst = vm_new(1 * MiB, 16 * MiB, 0);
    uint8_t *ram1 = src->block[1]->host;
    g_autoptr(GByteArray) bytes = NULL;
    GError *err = NULL;

    memset(ram1 + 5 * PAGE, 0x3c, PAGE);
    memset(ram1 + 9 * MiB, 0, PAGE);    /* populated, but zero */
    bytes = record(write_all_ram, src);
    ck_assert_msg(block_populated(src->block[1]) <= 4 * PAGE,
                  "saving populated %" G_GUINT64_FORMAT " bytes of the source",
                  block_populated(src->block[1]));
    ck_assert(load_bytes(bytes->data, bytes->len, dst, &err));
    ck_assert_msg(block_populated(dst->block[1]) <= 4 * PAGE,
                  "loading populated %" G_GUINT64_FORMAT " bytes of the destination",
                  block_populated(dst->block[1]));
    assert_same_ram(src, dst);
    vm_free(src);
    vm_free(dst);
}
END_TEST

/* Thread CPU ms of 1000 single-page saves spread over npages pages at gpa. */
static double single_pages_ms(TestVm *vm, uint64_t gpa, uint64_t npages)
{
    MigStream *s = mig_stream_new(memfd_create("mig-stream", MFD_CLOEXEC));
    struct timespec t0, t1;
    GError *err = NULL;

    ck_assert_int_eq(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0), 0);
    for (unsigned i = 0; i < 1000; i++) {
        ck_assert(mig_ram_save_range(s, vm->mem, gpa + (uint64_t)(i * 81u) % npages * PAGE, 1,
                                     NULL, &err));
    }
    ck_assert(mig_stream_flush(s, &err));
    ck_assert_int_eq(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1), 0);
    mig_stream_free(s);
    return (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
}

/*
 * A requested page of a filled RAM block costs about one page, not a
 * walk of the block: SEEK_HOLE on a shmem file walks the whole data
 * extent (ms for 64 MiB), and the postcopy stream pays the hole check
 * per requested page and per 64-page window. So single pages of the
 * 64 MiB block cost about what they cost in the 1 MiB one (with the walk:
 * 30 times more). Thread CPU time, compared within the run: neither a
 * loaded machine nor a sanitizer build changes the ratio.
 */
START_TEST(test_page_cost_filled)
{
    TestVm *src = vm_new(1 * MiB, 64 * MiB, 0x5a);
    double small = single_pages_ms(src, 0, 1 * MiB / PAGE);
    double large = single_pages_ms(src, RAM1_GPA, 64 * MiB / PAGE);

    ck_assert_msg(large < 4 * small + 5, "1000 single pages cost %.1f ms of CPU in a filled "
                  "64 MiB block, %.1f ms in a 1 MiB one", large, small);
    vm_free(src);
}
END_TEST

typedef struct RangeReq {
    TestVm *src;
    uint64_t gpa, npages, sent;
} RangeReq;

static void write_range(MigStream *s, void *opaque)
{
    RangeReq *r = opaque;
    GError *err = NULL;

    ck_assert(mig_ram_save_range(s, r->src->mem, r->gpa, r->npages, &r->sent, &err));
    ck_assert(mig_save_end(s, &err));
}

START_TEST(test_page_request)
{
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0), *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    /* ram1's pages 2 to 7: data, zero, hole, data, zero, data. */
    RangeReq r = { .src = src, .gpa = RAM1_GPA + 2 * PAGE, .npages = 6 };
    uint64_t bad[][2] = { { RAM1_GPA + 1, 1 }, { 0, 0 }, { 2 * MiB, 1 },
                          { RAM1_GPA + 2 * MiB - PAGE, 2 }, { 64 * MiB, 1 } };
    g_autoptr(GByteArray) bytes = NULL;
    Placed p = { .src = src, .next_gpa = r.gpa };
    GError *err = NULL;

    vm_fill_pattern(src);
    ck_assert_int_eq(fallocate(src->block[1]->fd, FALLOC_FL_PUNCH_HOLE |
                               FALLOC_FL_KEEP_SIZE, 4 * PAGE, PAGE), 0);
    bytes = record(write_range, &r);
    ck_assert_uint_eq(r.sent + MIG_SECTION_HEADER_SIZE, bytes->len);
    ck_assert_uint_le(r.sent, MIG_SECTION_HEADER_SIZE + 6 * MIG_RAM_RUN_HEADER_SIZE + 3 * PAGE);
    ck_assert_uint_eq(load_placed(bytes, dst, &p, &err), 1);
    ck_assert_uint_eq(p.pages, 6);
    ck_assert_uint_eq(p.zero, 3);
    /* Placed, never written by the loader itself. */
    ck_assert_uint_eq(((uint8_t *)dst->block[1]->host)[2 * PAGE], 0xaa);

    /* place's error is the load's. */
    p = (Placed) { .src = src, .next_gpa = r.gpa, .fail_gpa = r.gpa + 3 * PAGE };
    ck_assert_uint_eq(load_placed(bytes, dst, &p, &err), 0);
    ck_assert_msg(err && strstr(err->message, "place refused"), "%s", err ? err->message : "-");
    g_clear_error(&err);

    /* Unaligned, empty, in the gap, past a region's end, past RAM: refused, nothing sent. */
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        MigStream *s = mig_stream_new(memfd_create("mig-stream", MFD_CLOEXEC));

        ck_assert(!mig_ram_save_range(s, src->mem, bad[i][0], bad[i][1], NULL, &err));
        ck_assert_msg(err && strstr(err->message, "inside one RAM region"), "request %u", i);
        g_clear_error(&err);
        ck_assert_uint_eq(mig_stream_bytes_written(s), 0);
        mig_stream_free(s);
    }
    vm_free(src);
    vm_free(dst);
}
END_TEST

static gpointer drain_thread(gpointer opaque)
{
    int fd = GPOINTER_TO_INT(opaque);
    static uint8_t buf[64 * KiB];
    uint64_t total = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        total += n;
    }
    close(fd);
    return GSIZE_TO_POINTER(total);
}

START_TEST(test_bandwidth_limit)
{
    g_autofree uint8_t *data = g_malloc0(8 * MiB);
    GError *err = NULL;
    MigStream *s;
    GThread *t;
    int64_t start, elapsed_ms;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t = g_thread_new("drain", drain_thread, GINT_TO_POINTER(sv[1]));
    s = mig_stream_new(sv[0]);
    mig_stream_set_max_bandwidth(s, 32 * MiB);
    start = g_get_monotonic_time();
    /* Small writes through the buffer, then one large one past it. */
    for (unsigned i = 0; i < 4 * MiB; i += 1000) {
        ck_assert(mig_stream_write(s, data + i, MIN(1000, 4 * MiB - i), &err));
    }
    ck_assert(mig_stream_write(s, data, 4 * MiB, &err));
    ck_assert(mig_stream_flush(s, &err));
    elapsed_ms = (g_get_monotonic_time() - start) / 1000;
    ck_assert_uint_eq(mig_stream_bytes_written(s), 8 * MiB);
    mig_stream_free(s);
    ck_assert_uint_eq(GPOINTER_TO_SIZE(g_thread_join(t)), 8 * MiB);
    /* 8 MiB at 32 MiB/s: 250 ms, less the allowed burst. */
    ck_assert_msg(elapsed_ms >= 200 && elapsed_ms < 5000, "took %" G_GINT64_FORMAT
                  " ms", elapsed_ms);
}
END_TEST

START_TEST(test_write_to_closed_peer)
{
    g_autofree uint8_t *data = g_malloc0(MiB);
    GError *err = NULL;
    MigStream *s;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    s = mig_stream_new(sv[0]);
    /* No SIGPIPE: an error, and the next write says the same. */
    ck_assert(!mig_stream_write(s, data, MiB, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED));
    g_clear_error(&err);
    ck_assert(!mig_stream_write(s, data, 10, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED));
    g_clear_error(&err);
    mig_stream_free(s);
}
END_TEST

typedef struct Canceller {
    MigStream *s;
} Canceller;

static gpointer cancel_thread(gpointer opaque)
{
    Canceller *c = opaque;

    /* Header and setup sent; the destination now waits for more. */
    g_usleep(100 * 1000);
    mig_stream_shutdown(c->s);
    return NULL;
}

START_TEST(test_cancel)
{
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0);
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    Loaded loaded = loaded_new();
    GError *err = NULL;
    MigStream *out;
    Canceller c;
    GThread *t;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    out = mig_stream_new(sv[0]);
    ck_assert(mig_save_header(out, &err));
    ck_assert(mig_ram_save_setup(out, src->mem, &err));
    ck_assert(mig_stream_flush(out, &err));
    c.s = mig_stream_new(sv[1]);
    t = g_thread_new("cancel", cancel_thread, &c);
    ck_assert(!mig_load(c.s, dst->mem, record_device, &loaded, &err));
    g_thread_join(t);
    ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_PARTIAL_MESSAGE) &&
                  strstr(err->message, "unexpected end in section 'section header' after 0 bytes"),
                  "%s", err->message);
    g_clear_error(&err);
    /* The source's side of a cancelled migration fails its next write. */
    mig_stream_shutdown(out);
    ck_assert(!mig_stream_write(out, "x", 1, &err) || !mig_stream_flush(out, &err));
    g_clear_error(&err);
    mig_stream_free(out);
    mig_stream_free(c.s);
    g_ptr_array_unref(loaded.names);
    g_ptr_array_unref(loaded.states);
    vm_free(src);
    vm_free(dst);
}
END_TEST

START_TEST(test_convergence)
{
    const uint64_t MB = 1000 * 1000;
    MigConvergence c;

    ck_assert_uint_eq(mig_bandwidth(8 * MiB, 250 * 1000), 32 * MiB);
    ck_assert_uint_eq(mig_bandwidth(8 * MiB, 0), 0);

    /* 50 MB at 100 MB/s: 500 ms, more than 300 ms allows. */
    c = mig_convergence_check(100 * MB, 0, 50 * MB, 300);
    ck_assert(!c.stop_and_copy);
    ck_assert_uint_eq(c.expected_downtime_ms, 500);
    ck_assert_uint_eq(c.threshold_bytes, 30 * MB);
    /* 20 MB: 200 ms, stop and copy. */
    c = mig_convergence_check(100 * MB, 0, 20 * MB, 300);
    ck_assert(c.stop_and_copy);
    ck_assert_uint_eq(c.expected_downtime_ms, 200);
    /* The same with max-bandwidth 10 MB/s: 2 s, iterate. */
    c = mig_convergence_check(100 * MB, 10 * MB, 20 * MB, 300);
    ck_assert(!c.stop_and_copy);
    ck_assert_uint_eq(c.expected_downtime_ms, 2000);
    ck_assert_uint_eq(c.bandwidth, 10 * MB);
    /* Nothing measured: iterate unless nothing is left. */
    c = mig_convergence_check(0, 0, 1, 300);
    ck_assert(!c.stop_and_copy);
    ck_assert_uint_eq(c.expected_downtime_ms, UINT64_MAX);
    c = mig_convergence_check(0, 0, 0, 300);
    ck_assert(c.stop_and_copy);
    /* Huge numbers neither overflow nor wrap. */
    c = mig_convergence_check(1, 0, UINT64_MAX, UINT64_MAX);
    ck_assert_uint_eq(c.expected_downtime_ms, UINT64_MAX);
}
END_TEST

START_TEST(test_crc32c)
{
    /* The check value of CRC-32C (RFC 3720, B.4) and its iSCSI vector. */
    uint8_t zeros[32] = { 0 };

    ck_assert_uint_eq(mig_crc32c(0, "123456789", 9), 0xe3069283);
    ck_assert_uint_eq(mig_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aa);
    ck_assert_uint_eq(mig_crc32c(mig_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
}
END_TEST

START_TEST(test_uri_errors)
{
    const char *bad[] = {
        "tcp:127.0.0.1", "tcp:127.0.0.1:", "tcp:127.0.0.1:http", "tcp:[::1]4444",
        "fd:3", "exec:cat", "unix:", "127.0.0.1:4444",
    };
    GError *err = NULL;
    unsigned fds = ut_count_fds();
    int lfd;
    g_autofree char *uri = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_int_lt(mig_socket_connect(bad[i], &err), 0);
        ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG),
                      "%s: %s", bad[i], err->message);
        ck_assert_msg(strstr(err->message, bad[i]), "%s", err->message);
        g_clear_error(&err);
    }
    /* A port nobody listens on (just closed): connect fails, naming the URI. */
    lfd = mig_socket_listen("tcp:127.0.0.1:0", &err);
    ck_assert_int_ge(lfd, 0);
    uri = mig_socket_local_uri(lfd, &err);
    close(lfd);
    ck_assert_int_lt(mig_socket_connect(uri, &err), 0);
    ck_assert_msg(strstr(err->message, uri) && strstr(err->message, "connect"), "%s",
                  err->message);
    g_clear_error(&err);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

/* One message through a new pair of streams; the page faults it took. */
static long stream_pair_faults(void)
{
    uint8_t out[8192], in[8192];      /* past what malloc wrote itself */
    struct rusage before, after;
    MigStream *w, *r;
    GError *err = NULL;
    int sv[2];
    bool ok;

    memset(out, 0x5a, sizeof(out));
    memset(in, 0, sizeof(in));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    w = mig_stream_new(sv[0]);
    r = mig_stream_new(sv[1]);
    getrusage(RUSAGE_THREAD, &before);
    ok = mig_stream_write(w, out, sizeof(out), &err) && mig_stream_flush(w, &err) &&
         mig_stream_read(r, in, sizeof(in), &err);
    getrusage(RUSAGE_THREAD, &after);
    ck_assert_msg(ok && !memcmp(in, out, sizeof(in)), "%s", err ? err->message : "data");
    /* Kept: a later pair must not reuse these buffers. */
    return after.ru_minflt - before.ru_minflt;
}

static int buffers_warm_child(void *opaque)
{
    long faults;

    stream_pair_faults();
    faults = stream_pair_faults();
    printf("buffers-warm: a new pair's first message: %ld page faults\n", faults);
    return faults == 0 ? 0 : 40;
}

/*
 * A new stream's buffers are touched when it is made, so its first
 * message (a postcopy request's page, the first after the switch) pays
 * no page fault for them. In a child: its first pair also maps the code.
 */
START_TEST(test_buffers_warm)
{
    ck_assert_msg(ut_child_run(buffers_warm_child, NULL) == 0,
                  "the first message of a new stream took page faults");
}
END_TEST

static Suite *migration_stream_suite(void)
{
    Suite *s = suite_create("migration-stream");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_roundtrip_socketpair);
    tcase_add_test(tc, test_roundtrip_tcp);
    tcase_add_test(tc, test_roundtrip_unix);
    tcase_add_test(tc, test_zero_pages_cheap);
    tcase_add_test(tc, test_holes_untouched);
    tcase_add_test(tc, test_page_cost_filled);
    tcase_add_test(tc, test_page_request);
    tcase_add_test(tc, test_bandwidth_limit);
    tcase_add_test(tc, test_write_to_closed_peer);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_convergence);
    tcase_add_test(tc, test_crc32c);
    tcase_add_test(tc, test_uri_errors);
    tcase_add_test(tc, test_buffers_warm);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(migration_stream_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
