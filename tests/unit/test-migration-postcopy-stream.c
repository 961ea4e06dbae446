/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy's part of the migration stream in-process: the four postcopy
 * sections through mig_load_ops (their work called in order, pages
 * written before LISTEN and placed after RUN, anything out of order
 * refused naming the section), POSTCOPY_DISCARD's payload checks, and the
 * return path (page requests and the ack over a socketpair, whole under
 * concurrent writers, a destination's bad request refused), and postcopy
 * recovery: a recovery stream (POSTCOPY_RESUME first, then placed pages)
 * through mig_load_postcopy_resume, and the lacking ranges on the return
 * path, checked like requests.
 */
#include <check.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/format.h"
#include "migration/load.h"
#include "migration/ram-stream.h"
#include "migration/return-path.h"
#include "migration/stream.h"
#include "unit-mig-vm.h"
#include "util/vhost-user-error.h"

#define MiB (1024u * 1024u)
#define PAGE MIG_PAGE_SIZE
#define RAM1_GPA UNIT_RAM1_GPA

/* ---- a stream of steps ------------------------------------------------ */

/* What the source writes: one letter per section. */
typedef struct Script {
    /*
     * S setup, A advise, P pages, D discard, L listen, V device, R run,
     * E end, Z resume; a script starting with Z or ! ("!SPE": not a
     * resume) is loaded as a recovery connection
     */
    const char *steps;
    TestVm *src;
} Script;

static void write_script(MigStream *s, const Script *sc)
{
    uint64_t range[2] = { RAM1_GPA, 2 * PAGE };
    uint64_t bitmap[(RAM1_GPA + 2 * MiB) / PAGE / 64] = { 0 };
    GError *err = NULL;
    bool ok = true;

    ck_assert(mig_save_header(s, &err));
    for (const char *c = sc->steps; ok && *c; c++) {
        switch (*c) {
        case 'S':
            ok = mig_ram_save_setup(s, sc->src->mem, &err);
            break;
        case 'A':
            ok = mig_save_postcopy_section(s, MIG_SECTION_POSTCOPY_ADVISE, &err);
            break;
        case 'P':
            /* Page 0 of ram0 and the first page of ram1. */
            bitmap[0] = 1;
            bitmap[RAM1_GPA / PAGE / 64] = 1;
            ok = mig_ram_save_dirty(s, sc->src->mem, bitmap, G_N_ELEMENTS(bitmap) * 64,
                                    NULL, &err);
            break;
        case 'D':
            ok = mig_save_postcopy_discard(s, range, 1, &err);
            break;
        case 'L':
            ok = mig_save_postcopy_section(s, MIG_SECTION_POSTCOPY_LISTEN, &err);
            break;
        case 'V':
            ok = mig_save_device(s, "blk0", "state", 5, &err);
            break;
        case 'R':
            ok = mig_save_postcopy_section(s, MIG_SECTION_POSTCOPY_RUN, &err);
            break;
        case 'E':
            ok = mig_save_end(s, &err);
            break;
        case 'Z':
            ok = mig_save_postcopy_section(s, MIG_SECTION_POSTCOPY_RESUME, &err);
            break;
        }
    }
    ck_assert_msg(ok, "%s", err ? err->message : "");
    ck_assert(mig_stream_flush(s, &err));
}

/* The destination's calls, one letter each; placed pages counted. */
typedef struct Calls {
    GString *seq;
    unsigned placed;
    uint64_t discard_gpa, discard_len;
} Calls;

static bool on_device(const char *name, const void *data, size_t len, void *opaque,
                      GError **errp)
{
    g_string_append_c(((Calls *)opaque)->seq, 'V');
    return true;
}

static bool on_advise(void *opaque, GError **errp)
{
    g_string_append_c(((Calls *)opaque)->seq, 'A');
    return true;
}

static bool on_discard(uint64_t gpa, uint64_t len, void *opaque, GError **errp)
{
    Calls *c = opaque;

    g_string_append_c(c->seq, 'D');
    c->discard_gpa = gpa;
    c->discard_len = len;
    return true;
}

static bool on_listen(void *opaque, GError **errp)
{
    g_string_append_c(((Calls *)opaque)->seq, 'L');
    return true;
}

static bool on_run(void *opaque, GError **errp)
{
    g_string_append_c(((Calls *)opaque)->seq, 'R');
    return true;
}

static bool on_place(uint64_t gpa, const void *data, void *opaque, GError **errp)
{
    Calls *c = opaque;

    ck_assert(gpa == 0 || gpa == RAM1_GPA);
    ck_assert_int_eq(((const uint8_t *)data)[0], 0x5a);
    c->placed++;
    return true;
}

static bool on_resume(void *opaque, GError **errp)
{
    g_string_append_c(((Calls *)opaque)->seq, 'Z');
    return true;
}

static const MigLoadOps postcopy_ops = {
    .device = on_device, .advise = on_advise, .discard = on_discard, .listen = on_listen,
    .run = on_run, .place = on_place, .resume = on_resume,
};

/* Records the script, loads it into a fresh destination (0xaa everywhere). */
static bool run_script(const char *steps, const MigLoadOps *ops, Calls *calls,
                       TestVm **dst_out, bool *postcopy, GError **errp)
{
    int sv[2];
    TestVm *src = vm_new(1 * MiB, 2 * MiB, 0x5a), *dst = vm_new(1 * MiB, 2 * MiB, 0xaa);
    Script sc = { steps, src };
    MigStream *w, *r;
    bool ok;

    /* A memfd holds the whole stream: no reader needed while writing. */
    sv[0] = memfd_create("pc-stream", MFD_CLOEXEC);
    ck_assert_int_ge(sv[0], 0);
    w = mig_stream_new(dup(sv[0]));
    write_script(w, &sc);
    mig_stream_free(w);
    ck_assert_int_eq(lseek(sv[0], 0, SEEK_SET), 0);
    r = mig_stream_new(sv[0]);
    calls->seq = g_string_new(NULL);
    ok = steps[0] == 'Z' || steps[0] == '!' ? mig_load_postcopy_resume(r, dst->mem, ops, calls, errp) :
         mig_load_ops(r, dst->mem, ops, calls, postcopy, errp);
    mig_stream_free(r);
    vm_free(src);
    if (dst_out) {
        *dst_out = dst;
    } else {
        vm_free(dst);
    }
    return ok;
}

START_TEST(test_postcopy_sequence)
{
    Calls c = { 0 };
    TestVm *dst = NULL;
    GError *err = NULL;
    bool postcopy = false;

    ck_assert_msg(run_script("SAPDLVRPE", &postcopy_ops, &c, &dst, &postcopy, &err), "%s",
                  err ? err->message : "");
    /* Every step, in order; the pages before LISTEN written, after RUN placed. */
    ck_assert_str_eq(c.seq->str, "ADLVR");
    ck_assert(postcopy);
    ck_assert_uint_eq(c.placed, 2);
    ck_assert_uint_eq(c.discard_gpa, RAM1_GPA);
    ck_assert_uint_eq(c.discard_len, 2 * PAGE);
    ck_assert_int_eq(((uint8_t *)dst->block[0]->host)[0], 0x5a);
    ck_assert_int_eq(((uint8_t *)dst->block[1]->host)[0], 0x5a);
    ck_assert_int_eq(((uint8_t *)dst->block[1]->host)[PAGE], 0xaa);
    vm_free(dst);
    g_string_free(c.seq, TRUE);

    /* Advised, but precopy finished: devices then END, no listen. */
    c = (Calls){ 0 };
    ck_assert_msg(run_script("SAPVE", &postcopy_ops, &c, NULL, &postcopy, &err), "%s",
                  err ? err->message : "");
    ck_assert_str_eq(c.seq->str, "AV");
    ck_assert(!postcopy);
    ck_assert_uint_eq(c.placed, 0);
    g_string_free(c.seq, TRUE);
}
END_TEST

static void assert_script_fails(const char *steps, const MigLoadOps *ops, const char *want1,
                                const char *want2)
{
    Calls c = { 0 };
    GError *err = NULL;

    ck_assert_msg(!run_script(steps, ops, &c, NULL, NULL, &err), "%s loaded", steps);
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE));
    ck_assert_msg(strstr(err->message, want1) && (!want2 || strstr(err->message, want2)),
                  "%s: '%s' / '%s' not in: %s", steps, want1, want2 ? want2 : "",
                  err->message);
    g_error_free(err);
    g_string_free(c.seq, TRUE);
}

START_TEST(test_postcopy_order)
{
    const MigLoadOps precopy_only = { .device = on_device };

    assert_script_fails("SAE", &precopy_only, "'postcopy-advise'", "does not do postcopy");
    assert_script_fails("ASE", &postcopy_ops, "'postcopy-advise'", "before 'ram-setup'");
    assert_script_fails("SPAE", &postcopy_ops, "'postcopy-advise'", "not right after");
    assert_script_fails("SAAE", &postcopy_ops, "'postcopy-advise'", "not right after");
    assert_script_fails("SDE", &postcopy_ops, "'postcopy-discard'", "without 'postcopy-advise'");
    assert_script_fails("SLE", &postcopy_ops, "'postcopy-listen'", "without 'postcopy-advise'");
    assert_script_fails("SADPLE", &postcopy_ops, "'ram-pages'", NULL);
    assert_script_fails("SAVDLRE", &postcopy_ops, "'postcopy-discard'", NULL);
    assert_script_fails("SADVLRE", &postcopy_ops, "'device'", "before 'postcopy-listen'");
    assert_script_fails("SALPRE", &postcopy_ops, "'ram-pages'", NULL);
    assert_script_fails("SALDRE", &postcopy_ops, "'postcopy-discard'",
                        "after 'postcopy-listen'");
    assert_script_fails("SARE", &postcopy_ops, "'postcopy-run'", "without 'postcopy-listen'");
    assert_script_fails("SALRRE", &postcopy_ops, "'postcopy-run'", "a second time");
    assert_script_fails("SALRVE", &postcopy_ops, "'device'", "after 'postcopy-run'");
    assert_script_fails("SALVE", &postcopy_ops, "'end'", "did not reach 'postcopy-run'");
    assert_script_fails("SADE", &postcopy_ops, "'end'", "did not reach 'postcopy-run'");
}
END_TEST

/* ---- POSTCOPY_DISCARD's payload ------------------------------------------ */

static bool discard_payload(const void *buf, uint32_t len, Calls *c, GError **errp)
{
    int fd = memfd_create("pc-discard", MFD_CLOEXEC);
    MigStream *s;
    bool ok;

    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    s = mig_stream_new(fd);
    ok = mig_load_postcopy_discard(s, len, on_discard, c, errp);
    mig_stream_free(s);
    return ok;
}

static void put_range(uint8_t *b, uint64_t gpa, uint64_t len)
{
    gpa = GUINT64_TO_BE(gpa);
    len = GUINT64_TO_BE(len);
    memcpy(b, &gpa, 8);
    memcpy(b + 8, &len, 8);
}

START_TEST(test_discard_untrusted)
{
    g_autofree uint8_t *big = g_malloc0((MIG_DISCARD_MAX_RANGES + 1) * 16);
    uint8_t b[32];
    struct { uint64_t gpa, len; const char *want; } bad[] = {
        { 0, 0, "is empty" },
        { 1, PAGE, "not 4 KiB aligned" },
        { 0, PAGE + 1, "not 4 KiB aligned" },
        { UINT64_MAX - PAGE + 1, 2 * PAGE, "wraps" },
    };
    Calls c = { .seq = g_string_new(NULL) };
    GError *err = NULL;

    put_range(b, PAGE, PAGE);
    put_range(b + 16, 8 * PAGE, 4 * PAGE);
    ck_assert(discard_payload(b, 32, &c, &err));
    ck_assert_str_eq(c.seq->str, "DD");
    ck_assert_uint_eq(c.discard_gpa, 8 * PAGE);

    ck_assert(!discard_payload(b, 17, &c, &err));
    ck_assert(strstr(err->message, "'postcopy-discard' of 17 bytes"));
    g_clear_error(&err);
    ck_assert(!discard_payload(b, 0, &c, &err));
    g_clear_error(&err);
    ck_assert(!discard_payload(big, (MIG_DISCARD_MAX_RANGES + 1) * 16, &c, &err));
    ck_assert(strstr(err->message, "not 1 to 4096 ranges"));
    g_clear_error(&err);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_string_truncate(c.seq, 0);
        /* A good range first: nothing is handed over before all are checked. */
        put_range(b, PAGE, PAGE);
        put_range(b + 16, bad[i].gpa, bad[i].len);
        ck_assert(!discard_payload(b, 32, &c, &err));
        ck_assert_msg(strstr(err->message, bad[i].want) && strstr(err->message, "range 1"),
                      "%s", err->message);
        ck_assert_str_eq(c.seq->str, "");
        g_clear_error(&err);
    }
    g_string_free(c.seq, TRUE);
}
END_TEST

/* ---- the return path ----------------------------------------------------- */

typedef struct Writer {
    MigReturnPath *rp;
    uint64_t base;
} Writer;

static gpointer request_thread(gpointer opaque)
{
    Writer *w = opaque;
    GError *err = NULL;

    for (uint64_t i = 0; i < 500; i++) {
        ck_assert(mig_rp_send_request(w->rp, w->base + (i % 200) * PAGE, 1 + i % 4, &err));
    }
    return NULL;
}

START_TEST(test_return_path)
{
    TestVm *vm = vm_new(1 * MiB, 2 * MiB, 0);
    int sv[2];
    MigReturnPath *rp;
    Writer w[2];
    GThread *t[2];
    unsigned seen[2] = { 0 };
    MigRpMsg m;
    GError *err = NULL;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    rp = mig_rp_new(sv[0]);
    /* Two writers at once (the fault thread and the load thread): whole messages. */
    w[0] = (Writer){ rp, 0 };
    w[1] = (Writer){ rp, RAM1_GPA };
    t[0] = g_thread_new("rq0", request_thread, &w[0]);
    t[1] = g_thread_new("rq1", request_thread, &w[1]);
    for (unsigned i = 0; i < 1000; i++) {
        /*
         * With a deadline and without one (the source's reader: the read
         * itself waits), and from the middle on with a non-blocking fd,
         * which without a deadline must wait too, not fail with EAGAIN.
         */
        if (i == 500) {
            ck_assert_int_eq(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK), 0);
        }
        ck_assert_msg(mig_rp_read(sv[1], vm->mem, i % 2 ? 5000 : -1, &m, &err), "%s",
                      err ? err->message : "");
        ck_assert_uint_eq(m.tag, MIG_RP_TAG_REQUEST);
        seen[m.gpa >= RAM1_GPA]++;
    }
    g_thread_join(t[0]);
    g_thread_join(t[1]);
    ck_assert_uint_eq(seen[0], 500);
    ck_assert_uint_eq(seen[1], 500);
    ck_assert(mig_rp_send_ack(rp, &err));
    ck_assert(mig_rp_read(sv[1], vm->mem, 5000, &m, &err));
    ck_assert_uint_eq(m.tag, MIG_RP_TAG_ACK);

    /* Nothing more: the timeout, then the peer gone. */
    ck_assert(!mig_rp_read(sv[1], vm->mem, 50, &m, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT));
    g_clear_error(&err);
    mig_rp_free(rp);
    close(sv[0]);
    ck_assert(!mig_rp_read(sv[1], vm->mem, 5000, &m, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED));
    g_clear_error(&err);
    close(sv[1]);
    vm_free(vm);
}
END_TEST

/* Raw bytes from a destination, read by the source's mig_rp_read. */
static void assert_rp_refused(const TestVm *vm, const void *buf, size_t len, const char *want)
{
    int sv[2];
    MigRpMsg m;
    GError *err = NULL;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(write(sv[0], buf, len), (ssize_t)len);
    close(sv[0]);
    ck_assert(!mig_rp_read(sv[1], vm->mem, 5000, &m, &err));
    ck_assert_msg(strstr(err->message, want), "'%s' not in: %s", want, err->message);
    g_error_free(err);
    close(sv[1]);
}

static void request_bytes(uint8_t *b, uint64_t gpa, uint32_t n)
{
    uint32_t tag = GUINT32_TO_BE(MIG_RP_TAG_REQUEST);

    gpa = GUINT64_TO_BE(gpa);
    n = GUINT32_TO_BE(n);
    memcpy(b, &tag, 4);
    memcpy(b + 4, &gpa, 8);
    memcpy(b + 12, &n, 4);
}

START_TEST(test_return_path_untrusted)
{
    TestVm *vm = vm_new(1 * MiB, 2 * MiB, 0);
    uint8_t b[16];

    request_bytes(b, 100, 1);
    assert_rp_refused(vm, b, 16, "not 4 KiB aligned");
    request_bytes(b, 0, 0);
    assert_rp_refused(vm, b, 16, "not 1 to 256 pages");
    request_bytes(b, 0, MIG_RP_MAX_PAGES + 1);
    assert_rp_refused(vm, b, 16, "not 1 to 256 pages");
    /* The hole between ram0 and ram1, a run past ram0's end, far beyond. */
    request_bytes(b, 2 * MiB, 1);
    assert_rp_refused(vm, b, 16, "not inside one region");
    request_bytes(b, 1 * MiB - PAGE, 2);
    assert_rp_refused(vm, b, 16, "not inside one region");
    request_bytes(b, UINT64_MAX - PAGE + 1, 2);
    assert_rp_refused(vm, b, 16, "not inside one region");
    assert_rp_refused(vm, "XXXX", 4, "unknown message 0x58585858");
    request_bytes(b, 0, 1);
    assert_rp_refused(vm, b, 9, "in the middle of a message");
    vm_free(vm);
}
END_TEST

START_TEST(test_resume_stream)
{
    Calls c = { 0 };
    GError *err = NULL;
    bool postcopy = false;

    /* A recovery connection: resume, then pages placed as after RUN, END. */
    ck_assert_msg(run_script("ZPE", &postcopy_ops, &c, NULL, &postcopy, &err), "%s",
                  err ? err->message : "");
    ck_assert_str_eq(c.seq->str, "Z");
    ck_assert_uint_eq(c.placed, 2);
    g_string_free(c.seq, TRUE);

    /* Anything else first, or a resume inside a first connection: refused. */
    assert_script_fails("!SPE", &postcopy_ops, "starts with section 1 (ram-setup)",
                        "not 'postcopy-resume'");
    assert_script_fails("SAPDLVRZPE", &postcopy_ops, "'postcopy-resume' out of order",
                        "first section of a recovery");
    assert_script_fails("ZZE", &postcopy_ops, "'postcopy-resume' out of order",
                        "first section of a recovery");
    assert_script_fails("ZVE", &postcopy_ops, "'device' out of order", "after 'postcopy-run'");
}
END_TEST

static void lacking_bytes(uint8_t *b, uint64_t gpa, uint64_t len)
{
    uint32_t tag = GUINT32_TO_BE(MIG_RP_TAG_LACKING);

    gpa = GUINT64_TO_BE(gpa);
    len = GUINT64_TO_BE(len);
    memcpy(b, &tag, 4);
    memcpy(b + 4, &gpa, 8);
    memcpy(b + 12, &len, 8);
}

START_TEST(test_return_path_lacking)
{
    TestVm *vm = vm_new(1 * MiB, 2 * MiB, 0);
    int sv[2];
    MigReturnPath *rp;
    MigRpMsg m;
    GError *err = NULL;
    uint8_t b[20];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    rp = mig_rp_new(sv[0]);
    ck_assert(mig_rp_send_lacking(rp, RAM1_GPA + PAGE, 2 * MiB - PAGE, &err));
    ck_assert(mig_rp_send_lacking_end(rp, 511, &err));
    ck_assert_msg(mig_rp_read(sv[1], vm->mem, 5000, &m, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(m.tag, MIG_RP_TAG_LACKING);
    ck_assert_uint_eq(m.gpa, RAM1_GPA + PAGE);
    ck_assert_uint_eq(m.len, 2 * MiB - PAGE);
    ck_assert(mig_rp_read(sv[1], vm->mem, 5000, &m, &err));
    ck_assert_uint_eq(m.tag, MIG_RP_TAG_LACKING_END);
    ck_assert_uint_eq(m.len, 511);
    ck_assert(mig_rp_send_failed(rp, &err));
    ck_assert(mig_rp_read(sv[1], vm->mem, 5000, &m, &err));
    ck_assert_uint_eq(m.tag, MIG_RP_TAG_FAILED);
    mig_rp_free(rp);
    close(sv[0]);
    close(sv[1]);

    /* From a destination: unaligned, empty, across a region's end, wrapping. */
    lacking_bytes(b, 100, PAGE);
    assert_rp_refused(vm, b, 20, "empty or not 4 KiB aligned");
    lacking_bytes(b, 0, 0);
    assert_rp_refused(vm, b, 20, "empty or not 4 KiB aligned");
    lacking_bytes(b, 0, PAGE + 1);
    assert_rp_refused(vm, b, 20, "empty or not 4 KiB aligned");
    lacking_bytes(b, 1 * MiB - PAGE, 2 * PAGE);
    assert_rp_refused(vm, b, 20, "not inside one region");
    lacking_bytes(b, 2 * MiB, PAGE);
    assert_rp_refused(vm, b, 20, "not inside one region");
    lacking_bytes(b, RAM1_GPA, UINT64_MAX - PAGE + 1);
    assert_rp_refused(vm, b, 20, "not inside one region");
    lacking_bytes(b, 0, PAGE);
    assert_rp_refused(vm, b, 13, "in the middle of a message");
    vm_free(vm);
}
END_TEST

static Suite *postcopy_stream_suite(void)
{
    Suite *s = suite_create("migration-postcopy-stream");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_postcopy_sequence);
    tcase_add_test(tc, test_postcopy_order);
    tcase_add_test(tc, test_discard_untrusted);
    tcase_add_test(tc, test_return_path);
    tcase_add_test(tc, test_return_path_untrusted);
    tcase_add_test(tc, test_resume_stream);
    tcase_add_test(tc, test_return_path_lacking);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(postcopy_stream_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
