/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a new user of the reference VMM runs into, end to end: the real
 * VMM against our reference back-end (REF_BACKEND), both as processes.
 *
 *  - a device that can never start (num-queues above what the back-end
 *    serves) under -workload: the VMM exits 1 at once, saying why, rather
 *    than waiting forever for a start that cannot come;
 *  - share=off: a memfd so configured is mapped private (as QEMU does),
 *    and guest RAM that is not shared under a vhost-user device is an
 *    error naming the memory backend and the device, before anything runs;
 *  - verify_only: an image filled by rw=fill in one VMM is checked sector
 *    by sector by another; one corrupted sector in the file fails the
 *    check naming that sector; a plain rw=read never claims "verified";
 *  - workload values beyond the device (queues, size, iodepth, net queues
 *    and window) are errors naming device, key, value and limit, and the
 *    VMM exits 1 at once instead of running something else quietly.
 *
 * Every wait has a deadline far below a hang (EXIT_MS): a VMM that hangs
 * fails the test instead of stalling it.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "qtest-harness.h"

#define SOCKET_WAIT_MS  10000
#define EXIT_MS         5000        /* "at once": a hang is forever */
#define RUN_MS          30000       /* a real (short) workload */
#define DISK_SECTORS    16384u      /* the 8M file disk */
#define BAD_SECTOR      5000u

typedef struct Usage {
    const char *dir;
    char *sock;
    char *disk;
    QtestVmm *backend;
} Usage;

static Usage *usage_new(void)
{
    Usage *u = g_new0(Usage, 1);

    u->dir = g_getenv(TEST_DIR_ENV);
    g_assert_nonnull(u->dir);
    u->sock = g_build_filename(u->dir, "be.sock", NULL);
    u->disk = g_build_filename(u->dir, "disk.img", NULL);
    return u;
}

static void usage_free(Usage *u)
{
    qtest_vmm_free(u->backend);
    g_free(u->sock);
    g_free(u->disk);
    g_free(u);
}

/* Our reference back-end listening on u->sock: blk on an 8M file, or net. */
static void start_backend(Usage *u, const char *type, unsigned queues)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *s = g_strdup_printf("--socket-path=%s", u->sock);
    g_autofree char *t = g_strdup_printf("--type=%s", type);
    g_autofree char *q = g_strdup_printf("--queues=%u", queues);
    g_autofree char *f = g_strdup_printf("--blk-file=%s", u->disk);
    bool blk = !strcmp(type, "blk");
    const char *args[] = { s, t, q, blk ? f : NULL, "--blk-size=8M", NULL };
    gint64 end = g_get_monotonic_time() + SOCKET_WAIT_MS * G_TIME_SPAN_MILLISECOND;
    struct stat st;

    if (!be || !*be) {
        g_error("REF_BACKEND is not set (run through meson test)");
    }
    u->backend = qtest_proc_spawn(be, args, false);
    while (g_get_monotonic_time() < end) {
        if (stat(u->sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
            return;
        }
        g_usleep(20 * 1000);
    }
    g_error("no back-end socket at %s within %d ms", u->sock, SOCKET_WAIT_MS);
}

/*
 * The VMM with -summary json (stdout and stderr in one log): its args
 * after "-m 128M", NULL-terminated, "SOCK" in any of them standing for
 * the back-end socket.
 */
static QtestVmm *spawn_vmm(Usage *u, const char *const *rest)
{
    const char *bin = g_getenv("VMM_BINARY");
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);

    if (!bin || !*bin) {
        g_error("VMM_BINARY is not set (run through meson test)");
    }
    g_ptr_array_add(args, g_strdup("-m"));
    g_ptr_array_add(args, g_strdup("128M"));
    for (unsigned i = 0; rest[i]; i++) {
        g_auto(GStrv) parts = g_strsplit(rest[i], "SOCK", -1);

        g_ptr_array_add(args, g_strjoinv(u->sock, parts));
    }
    g_ptr_array_add(args, g_strdup("-summary"));
    g_ptr_array_add(args, g_strdup("json"));
    g_ptr_array_add(args, NULL);
    current_vmm = qtest_proc_spawn(bin, (const char *const *)args->pdata, false);
    return current_vmm;
}

/*
 * Waits for the exit; fails unless it is `code` within ms. Returns all
 * the VMM wrote: stderr, then stdout (the JSON summary).
 */
static char *expect_exit(QtestVmm *vmm, int code, unsigned ms, const char *what)
{
    int got = qtest_vmm_wait_exit(vmm, ms);
    g_autofree char *out = got < 0 ? NULL : qtest_vmm_stdout_at_exit(vmm, SOCKET_WAIT_MS);
    g_autofree char *err = qtest_vmm_stderr(vmm);
    char *log = g_strconcat(err, out ? out : "", NULL);

    if (got != code) {
        g_error("%s: expected exit status %d within %u ms, got %s%d; VMM output:\n%s",
                what, code, ms, got < 0 ? "no exit (timeout) " : "", got, log);
    }
    return log;
}

static void expect_in(const char *log, const char *want, const char *what)
{
    if (!strstr(log, want)) {
        g_error("%s: expected \"%s\" in the VMM's output:\n%s", what, want, log);
    }
}

/* ---- a device that cannot start ------------------------------------ */

static void test_fatal_error_exits(void)
{
    Usage *u = usage_new();
    const char *args[] = {
        "-chardev", "socket,id=c0,path=SOCK,reconnect-ms=100",
        "-device", "vhost-user-blk-pci,chardev=c0,num-queues=4",
        "-workload", "blk0:ops=100", NULL,
    };
    g_autofree char *log = NULL;
    QtestVmm *vmm;

    start_backend(u, "blk", 2);
    vmm = spawn_vmm(u, args);
    log = expect_exit(vmm, 1, EXIT_MS, "num-queues=4 on a 2-queue back-end");
    expect_in(log, "num-queues=4 but the back-end serves 2 queues", "the cause");
    expect_in(log, "blk0: workload FAILED: the device cannot start", "the failure");
    qtest_vmm_free(vmm);
    current_vmm = NULL;
    usage_free(u);
}

/* ---- share=off -------------------------------------------------------- */

/* The memfd of backend "mem" is mapped private (rw-p) in the VMM. */
static void test_share_off_private(void)
{
    Usage *u = usage_new();
    const char *args[] = {
        "-object", "memory-backend-memfd,id=mem,size=128M,share=off",
        "-machine", "memory-backend=mem", NULL,
    };
    QtestVmm *vmm = spawn_vmm(u, args);
    g_autofree char *maps_path = NULL;
    g_autofree char *maps = NULL;
    g_auto(GStrv) lines = NULL;
    unsigned found = 0;

    qtest_vmm_wait_for_stderr_line(vmm, "ready", SOCKET_WAIT_MS);
    maps_path = g_strdup_printf("/proc/%d/maps", (int)qtest_vmm_pid(vmm));
    g_assert_true(g_file_get_contents(maps_path, &maps, NULL, NULL));
    lines = g_strsplit(maps, "\n", -1);
    for (unsigned i = 0; lines[i]; i++) {
        char perms[8] = "";

        if (!strstr(lines[i], "/memfd:mem ")) {
            continue;
        }
        g_assert_cmpint(sscanf(lines[i], "%*s %7s", perms), ==, 1);
        g_test_message("guest RAM mapping: %s", lines[i]);
        if (perms[3] != 'p') {
            g_error("share=off guest RAM is mapped shared: %s", lines[i]);
        }
        found++;
    }
    g_assert_cmpuint(found, ==, 1);
    g_assert_cmpint(qtest_vmm_terminate(vmm, SOCKET_WAIT_MS), ==, 0);
    qtest_vmm_free(vmm);
    current_vmm = NULL;
    usage_free(u);
}

/* Under a vhost-user device: refused at once, naming backend and device. */
static void check_share_off_refused(const char *object)
{
    Usage *u = usage_new();
    const char *args[] = {
        "-object", object, "-machine", "memory-backend=mem",
        "-chardev", "socket,id=c0,path=SOCK,reconnect-ms=100",
        "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
        "-workload", "blk0:ops=100", NULL,
    };
    g_autofree char *log = NULL;
    QtestVmm *vmm;

    start_backend(u, "blk", 2);
    vmm = spawn_vmm(u, args);
    log = expect_exit(vmm, 1, EXIT_MS, object);
    expect_in(log, "blk0: memory backend 'mem' has share=off", object);
    expect_in(log, "use share=on", object);
    qtest_vmm_free(vmm);
    current_vmm = NULL;
    usage_free(u);
}

static void test_share_off_memfd_refused(void)
{
    check_share_off_refused("memory-backend-memfd,id=mem,size=128M,share=off");
}

static void test_share_off_file_refused(void)
{
    g_autofree char *obj = g_strdup_printf("memory-backend-file,id=mem,size=128M,"
                                           "mem-path=%s/ram,share=off",
                                           g_getenv(TEST_DIR_ENV));

    check_share_off_refused(obj);
}

/* ---- verify_only ------------------------------------------------------ */

/* The line of the JSON summary, or a failure. */
static const char *json_line(const char *log, const char *what)
{
    const char *j = strstr(log, "{\"device\":");

    if (!j) {
        g_error("%s: no JSON summary in the VMM's output:\n%s", what, log);
    }
    return j;
}

static char *run_blk(Usage *u, const char *workload, int code, const char *what)
{
    g_autofree char *wl = g_strdup_printf("blk0:%s", workload);
    const char *args[] = {
        "-chardev", "socket,id=c0,path=SOCK",
        "-device", "vhost-user-blk-pci,chardev=c0,num-queues=2",
        "-workload", wl, NULL,
    };
    QtestVmm *vmm = spawn_vmm(u, args);
    char *log = expect_exit(vmm, code, RUN_MS, what);

    qtest_vmm_free(vmm);
    current_vmm = NULL;
    return log;
}

static void corrupt_sector(Usage *u, uint64_t sector)
{
    int fd = open(u->disk, O_WRONLY | O_CLOEXEC);
    const char junk[] = "corrupted by vmm-usage-test";

    g_assert_cmpint(fd, >=, 0);
    /* Past the pattern header: the data, not just the header, is checked. */
    g_assert_cmpint(pwrite(fd, junk, sizeof(junk), (off_t)(sector * 512 + 100)), ==,
                    (ssize_t)sizeof(junk));
    g_assert_cmpint(fsync(fd), ==, 0);
    close(fd);
}

static void test_verify_only(void)
{
    Usage *u = usage_new();
    g_autofree char *fill = NULL;
    g_autofree char *check = NULL;
    g_autofree char *other_seed = NULL;
    g_autofree char *bad = NULL;
    g_autofree char *read = NULL;
    g_autofree char *want_bad = g_strdup_printf("blk0: workload FAILED: blk0: sector %u "
                                                "(byte offset %u)", BAD_SECTOR,
                                                BAD_SECTOR * 512);
    g_autofree char *want_sectors = g_strdup_printf("\"sectors_verified\":%u,",
                                                    DISK_SECTORS);
    const char *j;

    start_backend(u, "blk", 2);
    fill = run_blk(u, "rw=fill,bs=4k,seed=77", 0, "rw=fill");
    expect_in(json_line(fill, "rw=fill"), "\"verified\":true", "rw=fill");

    /* A new VMM, on the same back-end and file. */
    check = run_blk(u, "verify_only=on,bs=4k,seed=77", 0, "verify_only");
    j = json_line(check, "verify_only");
    expect_in(j, "\"verified\":true", "verify_only");
    expect_in(j, want_sectors, "verify_only checks every sector");
    expect_in(j, "\"mismatches\":0,", "verify_only");
    expect_in(j, "\"writes\":0,", "verify_only writes nothing");

    /* Another seed: what is there is not what that fill would write. */
    other_seed = run_blk(u, "verify_only=on,bs=4k,seed=78", 1, "verify_only, seed 78");
    expect_in(json_line(other_seed, "seed 78"), "\"verified\":false", "seed 78");

    corrupt_sector(u, BAD_SECTOR);
    bad = run_blk(u, "verify_only=on,bs=4k,seed=77", 1, "verify_only, one bad sector");
    j = json_line(bad, "one bad sector");
    expect_in(j, "\"verified\":false", "one bad sector");
    expect_in(j, "\"mismatches\":1,", "one bad sector");
    expect_in(bad, want_bad, "one bad sector is named");

    /* A plain read of it checks nothing, so it never says it verified. */
    read = run_blk(u, "rw=read,ops=200", 1, "rw=read");
    j = json_line(read, "rw=read");
    expect_in(j, "\"verified\":false", "rw=read");
    expect_in(j, "\"sectors_verified\":0,", "rw=read");
    expect_in(read, "nothing was verified", "rw=read says why");
    usage_free(u);
}

/* ---- values beyond the device ----------------------------------------- */

typedef struct RangeCase {
    const char *name;
    const char *type;           /* back-end type */
    const char *workload;
    const char *want;           /* device, key, value and limit */
} RangeCase;

static const RangeCase range_cases[] = {
    { "blk-queues", "blk", "blk0:queues=5", "blk0: queues=5 but the device has 2 request queues" },
    { "blk-size", "blk", "blk0:size=1g", "blk0: size=1073741824 but the disk holds 8388608 bytes" },
    { "blk-iodepth", "blk", "blk0:iodepth=1000", "blk0: iodepth=1000 but a ring of 256 entries holds "
                                  "at most " },
    { "net-queues", "net", "net0:queues=3", "net0: queues=3 but the device has 2 queue pairs" },
    { "net-window", "net", "net0:window=300", "net0: window=300 but the rings hold 256 entries" },
    /* 9018-byte frames span 5 of the default 2 KiB RX buffers: 51 fit a ring of 256. */
    { "net-window-jumbo", "net", "net0:size=9018,window=60",
      "net0: window=60 but the rx ring of 256 holds 51 packets" },
};

static void test_out_of_range(gconstpointer data)
{
    const RangeCase *c = data;
    Usage *u = usage_new();
    bool blk = !strcmp(c->type, "blk");
    const char *args[] = {
        "-chardev", "socket,id=c0,path=SOCK",
        blk ? "-device" : "-netdev",
        blk ? "vhost-user-blk-pci,chardev=c0,num-queues=2" :
              "vhost-user,id=net0,chardev=c0,queues=2",
        blk ? "-workload" : "-device",
        blk ? c->workload : "virtio-net-pci,netdev=net0",
        blk ? NULL : "-workload", c->workload, NULL,
    };
    g_autofree char *log = NULL;
    QtestVmm *vmm;

    start_backend(u, c->type, 2);
    vmm = spawn_vmm(u, args);
    log = expect_exit(vmm, 1, EXIT_MS, c->workload);
    expect_in(log, c->want, c->workload);
    qtest_vmm_free(vmm);
    current_vmm = NULL;
    usage_free(u);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);
    ADD_VOID_TEST("/vmm-usage/fatal-error-exits", test_fatal_error_exits);
    ADD_VOID_TEST("/vmm-usage/share-off/memfd-private", test_share_off_private);
    ADD_VOID_TEST("/vmm-usage/share-off/memfd-refused", test_share_off_memfd_refused);
    ADD_VOID_TEST("/vmm-usage/share-off/file-refused", test_share_off_file_refused);
    ADD_VOID_TEST("/vmm-usage/verify-only", test_verify_only);
    for (unsigned i = 0; i < G_N_ELEMENTS(range_cases); i++) {
        g_autofree char *path = g_strdup_printf("/vmm-usage/out-of-range/%s",
                                                range_cases[i].name);

        add_test_case(path, NULL, test_out_of_range, &range_cases[i]);
    }
    return g_test_run();
}
