/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream in-process: a source and a destination "VM" (guest
 * memory of two RAM blocks plus device state) joined by a socketpair, a
 * TCP or a unix socket, or a recorded stream in a memfd that a test
 * corrupts, cuts or rewrites before loading it.
 */
#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migration/convergence.h"
#include "migration/format.h"
#include "migration/load.h"
#include "migration/ram-stream.h"
#include "migration/socket.h"
#include "migration/stream.h"
#include "unit-mig-vm.h"
#include "unit-sock.h"
#include "util/vhost-user-error.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define PAGE MIG_PAGE_SIZE
#define RAM1_GPA UNIT_RAM1_GPA

/* Every third page zero, the others a pattern naming block and page. */
static void vm_fill_pattern(TestVm *vm)
{
    for (int b = 0; b < 2; b++) {
        uint8_t *host = vm->block[b]->host;

        for (uint64_t p = 0; p < vm->block[b]->size / PAGE; p++) {
            for (unsigned i = 0; i < PAGE; i++) {
                host[p * PAGE + i] = p % 3 == 0 ? 0 : (uint8_t)(b * 101 + p * 7 + i);
            }
        }
    }
}

static void assert_same_ram(TestVm *a, TestVm *b)
{
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_eq(a->block[i]->size, b->block[i]->size);
        for (uint64_t off = 0; off < a->block[i]->size; off += PAGE) {
            ck_assert_msg(!memcmp((uint8_t *)a->block[i]->host + off,
                                  (uint8_t *)b->block[i]->host + off, PAGE),
                          "ram%d page 0x%" G_GINT64_MODIFIER "x differs", i, off);
        }
    }
}

static void set_bit(uint64_t *bitmap, uint64_t gpa)
{
    bitmap[gpa / PAGE / 64] |= 1ull << (gpa / PAGE % 64);
}

static const char blk0_state[] = "blk0: ring 0 at 17, ring 1 at 4";
static const char net0_state[] = "net0 state with a NUL\0inside";

/*
 * A whole migration: setup, a first round of every page, a second round
 * of pages the guest changed meanwhile (a zero page written, a data page
 * cleared), two devices, END.
 */
static void send_migration(MigStream *s, TestVm *src)
{
    g_autofree uint64_t *bitmap = g_new0(uint64_t, (src->nbits + 63) / 64);
    uint8_t *ram1 = src->block[1]->host;
    GError *err = NULL;
    uint64_t sent;

    ck_assert(mig_save_header(s, &err));
    ck_assert(mig_ram_save_setup(s, src->mem, &err));
    ck_assert_msg(mig_ram_save_dirty(s, src->mem, NULL, 0, &sent, &err), "%s",
                  err ? err->message : "");
    ck_assert_uint_gt(sent, 2 * (1 + 2) * MiB / 3);

    memset(ram1 + 3 * PAGE, 0x5a, PAGE);            /* was zero */
    memset(ram1 + 4 * PAGE, 0, PAGE);               /* was data */
    set_bit(bitmap, RAM1_GPA + 3 * PAGE);
    set_bit(bitmap, RAM1_GPA + 4 * PAGE);
    ck_assert(mig_ram_save_dirty(s, src->mem, bitmap, src->nbits, &sent, &err));
    ck_assert_uint_lt(sent, PAGE + 200);

    ck_assert(mig_save_device(s, "blk0", blk0_state, sizeof(blk0_state), &err));
    ck_assert(mig_save_device(s, "net0", net0_state, sizeof(net0_state), &err));
    ck_assert(mig_save_end(s, &err));
}

typedef struct Loaded {
    GPtrArray *names;
    GPtrArray *states;
} Loaded;

static bool record_device(const char *name, const void *data, size_t len,
                          void *opaque, GError **errp)
{
    Loaded *l = opaque;

    g_ptr_array_add(l->names, g_strdup(name));
    g_ptr_array_add(l->states, g_bytes_new(data, len));
    return true;
}

static void assert_devices(Loaded *l)
{
    ck_assert_uint_eq(l->names->len, 2);
    ck_assert_str_eq(l->names->pdata[0], "blk0");
    ck_assert_str_eq(l->names->pdata[1], "net0");
    ck_assert_uint_eq(g_bytes_get_size(l->states->pdata[1]), sizeof(net0_state));
    ck_assert(!memcmp(g_bytes_get_data(l->states->pdata[0], NULL), blk0_state,
                      sizeof(blk0_state)));
    ck_assert(!memcmp(g_bytes_get_data(l->states->pdata[1], NULL), net0_state,
                      sizeof(net0_state)));
    g_ptr_array_unref(l->names);
    g_ptr_array_unref(l->states);
}

static Loaded loaded_new(void)
{
    return (Loaded) {
        .names = g_ptr_array_new_with_free_func(g_free),
        .states = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref),
    };
}

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

/* A memfd holding len bytes of buf, at offset 0. */
static int memfd_with(const void *buf, size_t len)
{
    int fd = memfd_create("mig-stream", MFD_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

typedef void (*Writer)(MigStream *s, void *opaque);

/* What writer puts in a stream, as bytes. */
static GByteArray *record(Writer writer, void *opaque)
{
    int fd = memfd_create("mig-stream", MFD_CLOEXEC);
    MigStream *s = mig_stream_new(dup(fd));
    GByteArray *bytes = g_byte_array_new();
    GError *err = NULL;
    off_t len;

    writer(s, opaque);
    ck_assert(mig_stream_flush(s, &err));
    mig_stream_free(s);
    len = lseek(fd, 0, SEEK_END);
    g_byte_array_set_size(bytes, len);
    ck_assert_int_eq(pread(fd, bytes->data, len, 0), len);
    close(fd);
    return bytes;
}

static void write_migration(MigStream *s, void *opaque)
{
    send_migration(s, opaque);
}

/* The whole migration of a patterned source, recorded. */
static GByteArray *record_migration(void)
{
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0);
    GByteArray *bytes;

    vm_fill_pattern(src);
    bytes = record(write_migration, src);
    vm_free(src);
    return bytes;
}

/* Loads len bytes of buf into a fresh destination (0xaa everywhere). */
static bool load_bytes(const void *buf, size_t len, TestVm *dst, GError **errp)
{
    Loaded loaded = loaded_new();
    MigStream *s = mig_stream_new(memfd_with(buf, len));
    bool ok = mig_load(s, dst->mem, record_device, &loaded, errp);

    mig_stream_free(s);
    g_ptr_array_unref(loaded.names);
    g_ptr_array_unref(loaded.states);
    return ok;
}

/* Loads and expects failure with code and every string of the NULL-ended list. */
static void assert_load_fails(const void *buf, size_t len, int code, ...)
{
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    GError *err = NULL;
    const char *want;
    va_list ap;

    ck_assert(!load_bytes(buf, len, dst, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, code),
                  "code %s: %s", vhost_user_error_code_name(err->code), err->message);
    va_start(ap, code);
    while ((want = va_arg(ap, const char *))) {
        ck_assert_msg(strstr(err->message, want), "'%s' not in: %s", want,
                      err->message);
    }
    va_end(ap);
    g_error_free(err);
    vm_free(dst);
}

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

START_TEST(test_block_size_mismatch)
{
    g_autoptr(GByteArray) bytes = record_migration();
    TestVm *dst = vm_new(1 * MiB, 1 * MiB, 0xaa);
    GError *err = NULL;

    ck_assert(!load_bytes(bytes->data, bytes->len, dst, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_msg(strstr(err->message, "'ram1'") && strstr(err->message, "2097152") &&
                  strstr(err->message, "1048576"), "%s", err->message);
    g_error_free(err);
    vm_free(dst);
}
END_TEST

/* Offset of the last occurrence of needle in bytes. */
static size_t find_last(GByteArray *bytes, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = bytes->len - n; i > 0; i--) {
        if (!memcmp(bytes->data + i, needle, n)) {
            return i;
        }
    }
    ck_abort_msg("'%s' not in the stream", needle);
    return 0;
}

START_TEST(test_device_corrupted)
{
    g_autoptr(GByteArray) bytes = record_migration();
    size_t name = find_last(bytes, "blk0");

    /* A byte of the state, then a byte of the checksum itself. */
    bytes->data[name + 4 + 4 + 5] ^= 0x01;
    assert_load_fails(bytes->data, bytes->len, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "device section 'blk0'", "checksum mismatch", NULL);
    bytes->data[name + 4 + 4 + 5] ^= 0x01;
    bytes->data[name + 4 + 1] ^= 0x80;
    assert_load_fails(bytes->data, bytes->len, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "device section 'blk0'", "checksum mismatch", NULL);
}
END_TEST

/* Where the first RAM_PAGES payload starts: header, RAM_SETUP, section header. */
#define FIRST_PAGES (MIG_STREAM_HEADER_SIZE + MIG_SECTION_HEADER_SIZE + \
                     4 + 2 * (1 + 4 + 4 * 8) + MIG_SECTION_HEADER_SIZE)

static gpointer send_prefix_thread(gpointer opaque)
{
    Sender *snd = opaque;
    GByteArray *bytes = record_migration();

    ut_send_fds(snd->fd, bytes->data, FIRST_PAGES + 100, NULL, 0);
    close(snd->fd);
    g_byte_array_unref(bytes);
    return NULL;
}

START_TEST(test_truncated)
{
    g_autoptr(GByteArray) bytes = record_migration();
    size_t name = find_last(bytes, "blk0");
    size_t cuts[] = {
        3, MIG_STREAM_HEADER_SIZE, MIG_STREAM_HEADER_SIZE + 5,
        MIG_STREAM_HEADER_SIZE + MIG_SECTION_HEADER_SIZE + 20, FIRST_PAGES,
        FIRST_PAGES + 100, FIRST_PAGES + 5000, bytes->len / 2,
        name + 6, bytes->len - 9, bytes->len - 1,
    };
    unsigned fds = ut_count_fds();
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    Sender snd = { .fd = -1 };
    Loaded loaded = loaded_new();
    GError *err = NULL;
    MigStream *s;
    GThread *t;
    int sv[2];

    for (size_t i = 0; i < G_N_ELEMENTS(cuts); i++) {
        assert_load_fails(bytes->data, cuts[i], VHOST_USER_ERROR_PARTIAL_MESSAGE,
                          "migration stream: unexpected end in section", NULL);
    }
    assert_load_fails(bytes->data, FIRST_PAGES + 100,
                      VHOST_USER_ERROR_PARTIAL_MESSAGE,
                      "unexpected end in section 'ram-pages' after 100 bytes", NULL);
    assert_load_fails(bytes->data, name + 6, VHOST_USER_ERROR_PARTIAL_MESSAGE,
                      "section 'device'", NULL);

    /* The same over a socket whose source goes away mid-section. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    snd.fd = sv[0];
    t = g_thread_new("sender", send_prefix_thread, &snd);
    s = mig_stream_new(sv[1]);
    ck_assert(!mig_load(s, dst->mem, record_device, &loaded, &err));
    ck_assert_msg(strstr(err->message,
                         "unexpected end in section 'ram-pages' after 100 bytes"),
                  "%s", err->message);
    g_thread_join(t);
    g_error_free(err);
    mig_stream_free(s);
    ck_assert_uint_eq(loaded.names->len, 0);
    g_ptr_array_unref(loaded.names);
    g_ptr_array_unref(loaded.states);
    vm_free(dst);
    ck_assert_uint_eq(ut_count_fds(), fds);
}
END_TEST

static void write_header_end(MigStream *s, void *opaque)
{
    GError *err = NULL;

    ck_assert(mig_save_header(s, &err));
    ck_assert(mig_save_end(s, &err));
}

START_TEST(test_bad_version)
{
    g_autoptr(GByteArray) bytes = record(write_header_end, NULL);
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    GError *err = NULL;

    ck_assert(load_bytes(bytes->data, bytes->len, dst, &err));
    vm_free(dst);
    bytes->data[5] = 2;                     /* major 2 */
    bytes->data[7] = 3;                     /* minor 3 */
    assert_load_fails(bytes->data, bytes->len, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "version 2.3 not supported", "reads version 1.x", NULL);
    bytes->data[5] = 1;
    bytes->data[0] = 'Q';
    assert_load_fails(bytes->data, bytes->len, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "not a migration stream", NULL);
    /* A newer minor version of the same major loads. */
    bytes->data[0] = 'V';
    dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    ck_assert(load_bytes(bytes->data, bytes->len, dst, &err));
    vm_free(dst);
}
END_TEST

/*
 * Hand-made streams: header, the source's RAM_SETUP when asked, one
 * section as given (its length field need not match the payload), END.
 */
typedef struct Crafted {
    bool setup;
    uint16_t id, flags;
    uint32_t length;
    const void *payload;
    size_t payload_len;
} Crafted;

static void write_crafted(MigStream *s, void *opaque)
{
    const Crafted *c = opaque;
    TestVm *vm = vm_new(1 * MiB, 2 * MiB, 0);
    GError *err = NULL;

    ck_assert(mig_save_header(s, &err));
    if (c->setup) {
        ck_assert(mig_ram_save_setup(s, vm->mem, &err));
    }
    ck_assert(mig_stream_write_be16(s, c->id, &err));
    ck_assert(mig_stream_write_be16(s, c->flags, &err));
    ck_assert(mig_stream_write_be32(s, c->length, &err));
    ck_assert(mig_stream_write(s, c->payload, c->payload_len, &err));
    ck_assert(mig_save_end(s, &err));
    vm_free(vm);
}

static GByteArray *crafted(bool setup, uint16_t id, uint16_t flags, uint32_t length,
                           const void *payload, size_t payload_len)
{
    Crafted c = { setup, id, flags, length, payload, payload_len };

    return record(write_crafted, &c);
}

/* A crafted stream fails to load with code and want. */
static void assert_crafted_fails(int code, bool setup, uint16_t id, uint16_t flags,
                                 uint32_t length, const void *payload,
                                 size_t payload_len, const char *want)
{
    g_autoptr(GByteArray) b = crafted(setup, id, flags, length, payload,
                                      payload_len);

    assert_load_fails(b->data, b->len, code, want, NULL);
}

/* A RAM_PAGES run record. */
static void run_record(uint8_t *rec, uint16_t region, uint16_t flags,
                       uint32_t npages, uint64_t offset)
{
    region = GUINT16_TO_BE(region);
    flags = GUINT16_TO_BE(flags);
    npages = GUINT32_TO_BE(npages);
    offset = GUINT64_TO_BE(offset);
    memcpy(rec, &region, 2);
    memcpy(rec + 2, &flags, 2);
    memcpy(rec + 4, &npages, 4);
    memcpy(rec + 8, &offset, 8);
}

START_TEST(test_untrusted_lengths)
{
    uint8_t rec[16 + PAGE] = { 0 };
    uint8_t setup[4] = { 0, 0x0f, 0x42, 0x40 };     /* 1000000 regions */
    uint8_t dev[10] = { 200, 'b', 'l', 'k', '0' };

    assert_crafted_fails(VHOST_USER_ERROR_OVERSIZED, false, MIG_SECTION_DEVICE, 0,
                         0xfffffff0u, "", 0, "length 4294967280 exceeds");
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, false, MIG_SECTION_DEVICE,
                         0, sizeof(dev), dev, sizeof(dev), "bad instance name");
    assert_crafted_fails(VHOST_USER_ERROR_CONFIG, false, MIG_SECTION_RAM_SETUP, 0,
                         sizeof(setup), setup, sizeof(setup),
                         "1000000 RAM regions on the source, 2 on the destination");

    run_record(rec, 0, MIG_RAM_RUN_ZERO, 1, 0);
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, false,
                         MIG_SECTION_RAM_PAGES, 0, 16, rec, 16,
                         "'ram-pages' before 'ram-setup'");
    run_record(rec, 7, MIG_RAM_RUN_ZERO, 1, 0);
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, true,
                         MIG_SECTION_RAM_PAGES, 0, 16, rec, 16, "region 7");
    /* ram0 is 256 pages: a run past its end, and one whose end wraps around. */
    run_record(rec, 0, MIG_RAM_RUN_ZERO, 257, 0);
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, true,
                         MIG_SECTION_RAM_PAGES, 0, 16, rec, 16,
                         "bad run in block 'ram0'");
    run_record(rec, 0, MIG_RAM_RUN_DATA, 1, UINT64_MAX - PAGE + 1);
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, true,
                         MIG_SECTION_RAM_PAGES, 0, 16 + PAGE, rec, 16 + PAGE,
                         "bad run in block 'ram0'");
    run_record(rec, 0, MIG_RAM_RUN_ZERO | MIG_RAM_RUN_DATA, 1, 0);
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, true,
                         MIG_SECTION_RAM_PAGES, 0, 16, rec, 16, "flags 0x3");
    /* Two pages of data announced, one in the section. */
    run_record(rec, 0, MIG_RAM_RUN_DATA, 2, 0);
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, true,
                         MIG_SECTION_RAM_PAGES, 0, 16 + PAGE, rec, 16 + PAGE,
                         "needs 8192 bytes, the section has 4096 left");
    /* A run header cut by the section's end. */
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, true,
                         MIG_SECTION_RAM_PAGES, 0, 10, rec, 10,
                         "a run header needs 16 bytes");
}
END_TEST

/* Postcopy's page answers: each page of the range handed to place, checked against src. */
typedef struct Placed {
    TestVm *src;
    uint64_t next_gpa;          /* the page expected next */
    unsigned pages, zero;
    uint64_t fail_gpa;          /* place refuses this one (0: none) */
} Placed;

static bool check_place(uint64_t gpa, const void *data, void *opaque, GError **errp)
{
    static const uint8_t zero[PAGE];
    Placed *p = opaque;
    const uint8_t *src = guest_memory_gpa_to_hva(p->src->mem, gpa, PAGE);

    if (gpa == p->fail_gpa) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "place refused 0x%" PRIx64, gpa);
        return false;
    }
    ck_assert_uint_eq(gpa, p->next_gpa);
    ck_assert_msg(!memcmp(data ? data : zero, src, PAGE) &&
                  (!data || memcmp(data, zero, PAGE)), "page 0x%" PRIx64, gpa);
    p->next_gpa += PAGE;
    p->pages++;
    p->zero += !data;
    return true;
}

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

/* The RAM_PAGES sections of bytes through place: how many, or 0 on error. */
static unsigned load_placed(GByteArray *bytes, TestVm *dst, Placed *p, GError **errp)
{
    MigStream *s = mig_stream_new(memfd_with(bytes->data, bytes->len));
    MigSectionHeader h;
    unsigned n = 0;
    bool ok;

    while ((ok = mig_load_section_header(s, &h, errp)) && h.id != MIG_SECTION_END) {
        ck_assert_uint_eq(h.id, MIG_SECTION_RAM_PAGES);
        n++;
        if (!(ok = mig_ram_load_pages_placed(s, h.length, dst->mem, check_place, p,
                                             errp))) {
            break;
        }
    }
    mig_stream_free(s);
    return ok ? n : 0;
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

/* The placed loader checks runs as the plain one does, before any place. */
START_TEST(test_placed_untrusted)
{
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    Placed p = { .src = dst, .next_gpa = UINT64_MAX };
    uint8_t rec[16];
    g_autoptr(GByteArray) bytes = NULL;
    GError *err = NULL;

    run_record(rec, 0, MIG_RAM_RUN_ZERO, 257, 0);
    bytes = crafted(false, MIG_SECTION_RAM_PAGES, 0, 16, rec, 16);
    g_byte_array_remove_range(bytes, 0, MIG_STREAM_HEADER_SIZE);
    ck_assert_uint_eq(load_placed(bytes, dst, &p, &err), 0);
    ck_assert_msg(err && strstr(err->message, "bad run in block 'ram0'"), "%s",
                  err ? err->message : "-");
    g_clear_error(&err);
    ck_assert_uint_eq(p.pages, 0);
    vm_free(dst);
}
END_TEST

START_TEST(test_unknown_sections)
{
    g_autoptr(GByteArray) optional = crafted(false, 77, MIG_SECTION_F_OPTIONAL, 3,
                                             "abc", 3);
    TestVm *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    GError *err = NULL;

    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, false, 77, 0, 3, "abc",
                         3, "unknown section id 77");
    assert_crafted_fails(VHOST_USER_ERROR_INVALID_MESSAGE, false, MIG_SECTION_END,
                         0x8000, 0, "", 0, "unknown flags 0x8000");
    ck_assert_msg(load_bytes(optional->data, optional->len, dst, &err), "%s",
                  err ? err->message : "");
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
    tcase_add_test(tc, test_block_size_mismatch);
    tcase_add_test(tc, test_device_corrupted);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_untrusted_lengths);
    tcase_add_test(tc, test_page_request);
    tcase_add_test(tc, test_placed_untrusted);
    tcase_add_test(tc, test_unknown_sections);
    tcase_add_test(tc, test_bandwidth_limit);
    tcase_add_test(tc, test_write_to_closed_peer);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_convergence);
    tcase_add_test(tc, test_crc32c);
    tcase_add_test(tc, test_uri_errors);
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
