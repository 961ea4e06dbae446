/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream in-process: a source and a destination "VM" (guest
 * memory of two RAM blocks plus device state) joined by a socketpair, a
 * TCP or a unix socket, or a recorded stream in a memfd that a test
 * corrupts, cuts or rewrites before loading it.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/convergence.h"
#include "migration/format.h"
#include "migration/load.h"
#include "migration/ram-stream.h"
#include "migration/socket.h"
#include "migration/stream.h"
#include "unit-sock.h"
#include "util/vhost-user-error.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define PAGE MIG_PAGE_SIZE
#define RAM1_GPA (4 * MiB)

typedef struct TestVm {
    GuestMemory *mem;
    RamBlock *block[2];
    uint64_t nbits;             /* dirty bitmap size, in pages */
} TestVm;

/* ram0 at GPA 0, ram1 at 4 MiB (a hole between them), every byte = fill. */
static TestVm *vm_new(uint64_t size0, uint64_t size1, uint8_t fill)
{
    TestVm *vm = g_new0(TestVm, 1);
    uint64_t gpa[2] = { 0, RAM1_GPA }, size[2] = { size0, size1 };
    GError *err = NULL;

    vm->mem = guest_memory_new();
    for (int i = 0; i < 2; i++) {
        g_autofree char *id = g_strdup_printf("ram%d", i);

        vm->block[i] = ram_block_new_memfd(id, size[i], &err);
        ck_assert_msg(vm->block[i], "%s", err ? err->message : "?");
        memset(vm->block[i]->host, fill, size[i]);
        ck_assert(guest_memory_add(vm->mem, gpa[i], vm->block[i], 0, size[i], &err));
    }
    vm->nbits = (RAM1_GPA + size1) / PAGE;
    return vm;
}

static void vm_free(TestVm *vm)
{
    guest_memory_free(vm->mem);
    ram_block_unref(vm->block[0]);
    ram_block_unref(vm->block[1]);
    g_free(vm);
}

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

static Suite *migration_stream_suite(void)
{
    Suite *s = suite_create("migration-stream");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_roundtrip_socketpair);
    tcase_add_test(tc, test_roundtrip_tcp);
    tcase_add_test(tc, test_roundtrip_unix);
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
