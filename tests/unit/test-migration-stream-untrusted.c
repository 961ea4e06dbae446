/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream's loader against bad input: a recorded stream in a
 * memfd that a test corrupts, cuts or rewrites, and hand-made sections
 * with lying lengths, counts, runs and flags; each fails with a clear
 * error naming the section and field, and nothing leaks.
 */
#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>
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

/* Sends the migration's first bytes on the socket opaque, then closes it. */
static gpointer send_prefix_thread(gpointer opaque)
{
    int fd = GPOINTER_TO_INT(opaque);
    GByteArray *bytes = record_migration();

    ut_send_fds(fd, bytes->data, FIRST_PAGES + 100, NULL, 0);
    close(fd);
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
    t = g_thread_new("sender", send_prefix_thread, GINT_TO_POINTER(sv[0]));
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

static Suite *migration_stream_untrusted_suite(void)
{
    Suite *s = suite_create("migration-stream-untrusted");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_block_size_mismatch);
    tcase_add_test(tc, test_device_corrupted);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_untrusted_lengths);
    tcase_add_test(tc, test_placed_untrusted);
    tcase_add_test(tc, test_unknown_sections);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(migration_stream_untrusted_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
