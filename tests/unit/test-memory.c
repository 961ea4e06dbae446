/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM: RAM block backends, the guest physical map, translation at
 * region edges, listeners, and the back-end's view of the memory (a second
 * mapping of the block's fd sees what the VMM wrote).
 */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "system/memory.h"

#define MiB (1024u * 1024u)

static RamBlock *new_memfd(const char *id, uint64_t size)
{
    GError *err = NULL;
    RamBlock *rb = ram_block_new_memfd(id, size, &err);

    ck_assert_msg(rb, "memfd: %s", err ? err->message : "?");
    return rb;
}

START_TEST(test_memfd_block)
{
    RamBlock *rb = new_memfd("ram0", 2 * MiB);
    struct stat st;
    int seals;

    ck_assert_int_ge(rb->fd, 0);
    ck_assert(rb->shared);
    ck_assert_ptr_null(rb->path);
    ck_assert_uint_eq(rb->fd_offset, 0);
    ck_assert_int_eq(fstat(rb->fd, &st), 0);
    ck_assert_int_eq(st.st_size, 2 * MiB);
    seals = fcntl(rb->fd, F_GET_SEALS);
    ck_assert(seals & F_SEAL_SHRINK);
    ck_assert(seals & F_SEAL_GROW);
    /* The seals are what protects the VMM from a back-end truncating it. */
    ck_assert_int_ne(ftruncate(rb->fd, MiB), 0);
    ck_assert(fcntl(rb->fd, F_GETFD) & FD_CLOEXEC);

    ck_assert_ptr_eq(ram_block_ref(rb), rb);
    ck_assert_uint_eq(rb->refcount, 2);
    ram_block_unref(rb);
    ram_block_unref(rb);
}
END_TEST

START_TEST(test_bad_sizes)
{
    GError *err = NULL;

    ck_assert_ptr_null(ram_block_new_memfd("ram0", 0, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_ptr_nonnull(strstr(err->message, "ram0"));
    g_clear_error(&err);
    ck_assert_ptr_null(ram_block_new_memfd("ram1", 1000, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    g_clear_error(&err);
    ck_assert_ptr_null(ram_block_new_file("ram2", "", MiB, true, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    g_clear_error(&err);
    ck_assert_ptr_null(ram_block_new_file("ram3", "/nonexistent/dir/file", MiB,
                                          true, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "ram3"));
    g_clear_error(&err);
}
END_TEST

START_TEST(test_file_block)
{
    g_autofree char *dir = g_dir_make_tmp("test-memory-XXXXXX", NULL);
    g_autofree char *path = NULL;
    GError *err = NULL;
    RamBlock *rb, *priv;
    struct stat st;
    uint8_t byte = 0;
    int fd;

    ck_assert_ptr_nonnull(dir);
    path = g_build_filename(dir, "ram", NULL);

    /* Created and extended. */
    rb = ram_block_new_file("fram", path, MiB, true, &err);
    ck_assert_msg(rb, "%s", err ? err->message : "?");
    ck_assert(rb->shared);
    ck_assert_str_eq(rb->path, path);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, MiB);
    memset(rb->host, 0xab, 4096);

    /* Shared: the bytes are in the file. */
    fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, &byte, 1, 100), 1);
    ck_assert_uint_eq(byte, 0xab);

    /* Private: writes stay in the VMM. */
    priv = ram_block_new_file("fpriv", path, MiB, false, &err);
    ck_assert_msg(priv, "%s", err ? err->message : "?");
    ck_assert(!priv->shared);
    ck_assert_uint_eq(((uint8_t *)priv->host)[100], 0xab);
    memset(priv->host, 0x11, 4096);
    ck_assert_int_eq(pread(fd, &byte, 1, 100), 1);
    ck_assert_uint_eq(byte, 0xab);
    close(fd);
    ram_block_unref(priv);
    ram_block_unref(rb);

    /* A directory: an anonymous file inside it, nothing left behind. */
    rb = ram_block_new_file("fdir", dir, MiB, true, &err);
    ck_assert_msg(rb, "%s", err ? err->message : "?");
    ram_block_unref(rb);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_add_remove_overlap)
{
    RamBlock *a = new_memfd("a", 4 * MiB);
    RamBlock *b = new_memfd("b", MiB);
    GuestMemory *mem = guest_memory_new();
    GError *err = NULL;

    ck_assert_uint_eq(guest_memory_nregions(mem), 0);
    ck_assert_uint_eq(guest_memory_end(mem), 0);

    /* Added out of order; kept sorted. */
    ck_assert(guest_memory_add(mem, 0x10000000, b, 0, MiB, &err));
    ck_assert(guest_memory_add(mem, 0, a, 0, 2 * MiB, &err));
    ck_assert(guest_memory_add(mem, 4 * MiB, a, 2 * MiB, 2 * MiB, &err));
    ck_assert_uint_eq(guest_memory_nregions(mem), 3);
    ck_assert_uint_eq(guest_memory_region(mem, 0)->gpa, 0);
    ck_assert_uint_eq(guest_memory_region(mem, 1)->gpa, 4 * MiB);
    ck_assert_uint_eq(guest_memory_region(mem, 1)->block_offset, 2 * MiB);
    ck_assert_uint_eq(guest_memory_region(mem, 2)->gpa, 0x10000000);
    ck_assert_ptr_null(guest_memory_region(mem, 3));
    ck_assert_uint_eq(guest_memory_end(mem), 0x10000000 + MiB);
    ck_assert_uint_eq(a->refcount, 3);

    /* Overlaps: inside, straddling the start, straddling the end, covering. */
    ck_assert(!guest_memory_add(mem, MiB, b, 0, MiB, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_ptr_nonnull(strstr(err->message, "overlaps a"));
    g_clear_error(&err);
    ck_assert(!guest_memory_add(mem, 3 * MiB + 4096, b, 0, MiB, &err));
    g_clear_error(&err);
    ck_assert(!guest_memory_add(mem, 0x10000000 - 4096, b, 0, 8192, &err));
    g_clear_error(&err);
    ck_assert(!guest_memory_add(mem, 0x0fff0000, a, 0, 4 * MiB, &err));
    g_clear_error(&err);
    /* Adjacent is fine. */
    ck_assert(guest_memory_add(mem, 2 * MiB, b, 0, MiB, &err));

    /* Bad ranges. */
    ck_assert(!guest_memory_add(mem, 0x20000000, b, 0, 0, &err));
    g_clear_error(&err);
    ck_assert(!guest_memory_add(mem, 0x20000000, b, 4096, MiB, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "outside"));
    g_clear_error(&err);
    ck_assert(!guest_memory_add(mem, 0x20000000, b, UINT64_MAX, 2, &err));
    g_clear_error(&err);
    ck_assert(!guest_memory_add(mem, UINT64_MAX - 4095, b, 0, MiB, &err));
    g_clear_error(&err);

    /* Remove by start address only. */
    ck_assert(!guest_memory_remove(mem, 4096, &err));
    g_clear_error(&err);
    ck_assert(!guest_memory_remove(mem, 0x30000000, &err));
    g_clear_error(&err);
    ck_assert(guest_memory_remove(mem, 4 * MiB, &err));
    ck_assert_uint_eq(guest_memory_nregions(mem), 3);
    ck_assert_uint_eq(a->refcount, 2);
    ck_assert(!guest_memory_remove(mem, 4 * MiB, &err));
    g_clear_error(&err);

    guest_memory_free(mem);
    ck_assert_uint_eq(a->refcount, 1);
    ck_assert_uint_eq(b->refcount, 1);
    ram_block_unref(a);
    ram_block_unref(b);
}
END_TEST

START_TEST(test_translation_edges)
{
    RamBlock *a = new_memfd("a", 4 * MiB);
    GuestMemory *mem = guest_memory_new();
    GError *err = NULL;
    uint8_t *base = a->host;
    uint64_t gpa = 0;
    uint8_t buf[16] = { 0 };

    /* Two adjacent regions from one block, the second from its middle. */
    ck_assert(guest_memory_add(mem, 0x100000, a, 0, MiB, &err));
    ck_assert(guest_memory_add(mem, 0x200000, a, 2 * MiB, MiB, &err));

    ck_assert_ptr_eq(guest_memory_gpa_to_hva(mem, 0x100000, 1), base);
    ck_assert_ptr_eq(guest_memory_gpa_to_hva(mem, 0x1fffff, 1), base + MiB - 1);
    ck_assert_ptr_eq(guest_memory_gpa_to_hva(mem, 0x1fffff, 0), base + MiB - 1);
    ck_assert_ptr_eq(guest_memory_gpa_to_hva(mem, 0x200000, 1), base + 2 * MiB);
    ck_assert_ptr_eq(guest_memory_gpa_to_hva(mem, 0x100000, MiB), base);
    ck_assert_ptr_null(guest_memory_gpa_to_hva(mem, 0x100000, MiB + 1));
    ck_assert_ptr_null(guest_memory_gpa_to_hva(mem, 0xfffff, 1));
    ck_assert_ptr_null(guest_memory_gpa_to_hva(mem, 0x300000, 1));
    ck_assert_ptr_null(guest_memory_gpa_to_hva(mem, 0x100000, UINT64_MAX));
    ck_assert_ptr_null(guest_memory_gpa_to_hva(mem, UINT64_MAX, 1));
    /* Contiguous in guest space, but two regions: refused. */
    ck_assert_ptr_null(guest_memory_gpa_to_hva(mem, 0x1ffff8, 16));

    ck_assert(guest_memory_find(mem, 0x200000) == guest_memory_region(mem, 1));
    ck_assert_ptr_null(guest_memory_find(mem, 0x300000));

    /* Round trips at both edges of both regions. */
    {
        const uint64_t probes[] = { 0x100000, 0x1fffff, 0x200000, 0x2fffff };

        for (size_t i = 0; i < G_N_ELEMENTS(probes); i++) {
            void *hva = guest_memory_gpa_to_hva(mem, probes[i], 1);

            ck_assert_ptr_nonnull(hva);
            ck_assert(guest_memory_hva_to_gpa(mem, hva, &gpa));
            ck_assert_uint_eq(gpa, probes[i]);
        }
    }
    /* Block bytes that are not placed in the guest have no gpa. */
    ck_assert(!guest_memory_hva_to_gpa(mem, base + MiB, &gpa));
    ck_assert(!guest_memory_hva_to_gpa(mem, base + 3 * MiB, &gpa));
    ck_assert(!guest_memory_hva_to_gpa(mem, buf, &gpa));

    /* Copies: within a region fine, across regions refused. */
    memset(buf, 0x5a, sizeof(buf));
    ck_assert(guest_memory_write(mem, 0x1ffff0, buf, 16));
    ck_assert(!guest_memory_write(mem, 0x1ffff8, buf, 16));
    ck_assert(!guest_memory_read(mem, 0x1ffff8, buf, 16));
    ck_assert(!guest_memory_read(mem, 0x400000, buf, 1));
    memset(buf, 0, sizeof(buf));
    ck_assert(guest_memory_read(mem, 0x1ffff0, buf, 16));
    ck_assert_uint_eq(buf[15], 0x5a);
    ck_assert_uint_eq(base[MiB - 1], 0x5a);

    guest_memory_free(mem);
    ram_block_unref(a);
}
END_TEST

typedef struct ListenerLog {
    GString *s;
} ListenerLog;

static void listener_a(GuestMemory *mem, void *opaque)
{
    ListenerLog *log = opaque;

    g_string_append_printf(log->s, "a%u ", guest_memory_nregions(mem));
}

static void listener_b(GuestMemory *mem, void *opaque)
{
    ListenerLog *log = opaque;

    g_string_append_printf(log->s, "b%u ", guest_memory_nregions(mem));
}

START_TEST(test_listeners)
{
    RamBlock *a = new_memfd("a", MiB);
    GuestMemory *mem = guest_memory_new();
    ListenerLog log = { g_string_new(NULL) };
    GError *err = NULL;
    unsigned ha, hb;

    ha = guest_memory_add_listener(mem, listener_a, &log);
    hb = guest_memory_add_listener(mem, listener_b, &log);
    ck_assert_uint_ne(ha, hb);

    ck_assert(guest_memory_add(mem, 0, a, 0, MiB / 2, &err));
    ck_assert(guest_memory_add(mem, MiB, a, MiB / 2, MiB / 2, &err));
    /* A failed add changes nothing and tells nobody. */
    ck_assert(!guest_memory_add(mem, 0, a, 0, 4096, &err));
    g_clear_error(&err);
    guest_memory_remove_listener(mem, ha);
    ck_assert(guest_memory_remove(mem, 0, &err));
    guest_memory_remove_listener(mem, hb);
    guest_memory_remove_listener(mem, 12345);
    ck_assert(guest_memory_remove(mem, MiB, &err));

    ck_assert_str_eq(log.s->str, "a1 b1 a2 b2 b1 ");
    g_string_free(log.s, TRUE);
    guest_memory_free(mem);
    ram_block_unref(a);
}
END_TEST

/* What a back-end does with SET_MEM_TABLE: map the fd at the offset it was given. */
START_TEST(test_backend_view)
{
    RamBlock *a = new_memfd("a", 4 * MiB);
    GuestMemory *mem = guest_memory_new();
    GError *err = NULL;
    const MemoryRegionMap *r;
    const char msg[] = "hello back-end";
    uint8_t *view;

    ck_assert(guest_memory_add(mem, 0x40000000, a, 2 * MiB, MiB, &err));
    r = guest_memory_region(mem, 0);
    view = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->block->fd,
                (off_t)(r->block->fd_offset + r->block_offset));
    ck_assert(view != MAP_FAILED);

    ck_assert(guest_memory_write(mem, 0x40000000 + 4096, msg, sizeof(msg)));
    ck_assert_mem_eq(view + 4096, msg, sizeof(msg));
    ck_assert(guest_memory_write(mem, 0x40000000 + MiB - 1, "z", 1));
    ck_assert_uint_eq(view[MiB - 1], 'z');

    /* And the other way: what the back-end writes the VMM reads. */
    view[0] = 0x77;
    {
        uint8_t byte = 0;

        ck_assert(guest_memory_read(mem, 0x40000000, &byte, 1));
        ck_assert_uint_eq(byte, 0x77);
    }

    munmap(view, r->size);
    guest_memory_free(mem);
    ram_block_unref(a);
}
END_TEST

static Suite *memory_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_memfd_block);
    tcase_add_test(tc, test_bad_sizes);
    tcase_add_test(tc, test_file_block);
    tcase_add_test(tc, test_add_remove_overlap);
    tcase_add_test(tc, test_translation_edges);
    tcase_add_test(tc, test_listeners);
    tcase_add_test(tc, test_backend_view);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(memory_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
