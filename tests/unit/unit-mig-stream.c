/* SPDX-License-Identifier: BSD-3-Clause */
/* What the migration stream's unit tests share; see unit-mig-stream.h. */
#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migration/format.h"
#include "migration/load.h"
#include "migration/ram-stream.h"
#include "unit-mig-stream.h"
#include "util/vhost-user-error.h"

#define MiB (1024u * 1024u)
#define PAGE MIG_PAGE_SIZE
#define RAM1_GPA UNIT_RAM1_GPA

/* Every third page zero, the others a pattern naming block and page. */
void vm_fill_pattern(TestVm *vm)
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

void assert_same_ram(TestVm *a, TestVm *b)
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

void set_bit(uint64_t *bitmap, uint64_t gpa)
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
void send_migration(MigStream *s, TestVm *src)
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

bool record_device(const char *name, const void *data, size_t len,
                          void *opaque, GError **errp)
{
    Loaded *l = opaque;

    g_ptr_array_add(l->names, g_strdup(name));
    g_ptr_array_add(l->states, g_bytes_new(data, len));
    return true;
}

void assert_devices(Loaded *l)
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

Loaded loaded_new(void)
{
    return (Loaded) {
        .names = g_ptr_array_new_with_free_func(g_free),
        .states = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref),
    };
}

/* A memfd holding len bytes of buf, at offset 0. */
int memfd_with(const void *buf, size_t len)
{
    int fd = memfd_create("mig-stream", MFD_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* What writer puts in a stream, as bytes. */
GByteArray *record(Writer writer, void *opaque)
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
GByteArray *record_migration(void)
{
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0);
    GByteArray *bytes;

    vm_fill_pattern(src);
    bytes = record(write_migration, src);
    vm_free(src);
    return bytes;
}

/* Loads len bytes of buf into a fresh destination (0xaa everywhere). */
bool load_bytes(const void *buf, size_t len, TestVm *dst, GError **errp)
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
void assert_load_fails(const void *buf, size_t len, int code, ...)
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

bool check_place(uint64_t gpa, const void *data, void *opaque, GError **errp)
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

/* The RAM_PAGES sections of bytes through place: how many, or 0 on error. */
unsigned load_placed(GByteArray *bytes, TestVm *dst, Placed *p, GError **errp)
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
