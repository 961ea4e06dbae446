/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory hotplug against real back-ends we did not write, both built on
 * QEMU's libvhost-user: qemu-storage-daemon's vhost-user-blk export
 * (while a verified block workload runs through it) and QEMU 7.2's C
 * virtiofsd (as a generic vhost-user-device-pci, virtio id 26). RAM goes
 * in and out through the VMM's QMP monitor.
 *
 * What proves the back-end took each change: the VMM's message trace
 * (-trace vhost_user) shows every ADD_MEM_REG/REM_MEM_REG acked with
 * status 0, and the back-end process's own /proc/PID/maps gains the new
 * memfd (named after its memory backend id) and loses it again. For blk
 * the workload must still pass with every block verified.
 *
 * Each test runs in a test subprocess with its own temp dir (the qtest
 * harness); every process gets SIGKILL if the test dies and is stopped
 * and reaped on every path. A missing program fails the test naming the
 * Debian package that provides it: these tests are never skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "qmp-client.h"
#include "qtest-harness.h"

#define VIRTIOFSD           "/usr/lib/qemu/virtiofsd"
#define SOCKET_WAIT_MS      20000
#define WORKLOAD_END_MS     60000
#define DIMM_SIZE           (2ull << 20)
#define IMAGE_SIZE          (32ull << 20)

/* A back-end process: output to DIR/NAME.log. */
typedef struct RhProc {
    char *name;
    char *log;
    GPid pid;
    bool reaped;
    int status;
} RhProc;

/* Appends copies of the NULL-terminated strings to argv. */
static void G_GNUC_NULL_TERMINATED rh_argv(GPtrArray *argv, ...)
{
    va_list ap;
    const char *a;

    va_start(ap, argv);
    while ((a = va_arg(ap, const char *))) {
        g_ptr_array_add(argv, g_strdup(a));
    }
    va_end(ap);
}

static void rh_child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static bool rh_reaped(RhProc *p)
{
    if (!p->reaped && waitpid(p->pid, &p->status, WNOHANG) == p->pid) {
        p->reaped = true;
    }
    return p->reaped;
}

static char *rh_log(RhProc *p)
{
    char *s = NULL;

    return g_file_get_contents(p->log, &s, NULL, NULL) ? s : g_strdup("(no output)");
}

static RhProc *rh_spawn(const char *dir, const char *name, GPtrArray *argv)
{
    g_autoptr(GError) err = NULL;
    RhProc *p = g_new0(RhProc, 1);
    int out;

    p->name = g_strdup(name);
    p->log = g_strdup_printf("%s/%s.log", dir, name);
    out = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(out, >=, 0);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_async_with_pipes_and_fds(dir, (const char *const *)argv->pdata, NULL,
                                          G_SPAWN_DO_NOT_REAP_CHILD |
                                          G_SPAWN_SEARCH_PATH |
                                          G_SPAWN_STDIN_FROM_DEV_NULL,
                                          rh_child_setup, NULL, -1, out, out, NULL, NULL,
                                          0, &p->pid, NULL, NULL, NULL, &err)) {
        g_error("cannot start %s: %s", name, err->message);
    }
    g_ptr_array_remove_index(argv, argv->len - 1);
    close(out);
    return p;
}

/* SIGTERM, 5 s, SIGKILL; reaps. Returns the wait status. */
static int rh_stop(RhProc *p)
{
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    if (!rh_reaped(p)) {
        kill(p->pid, SIGTERM);
        while (!rh_reaped(p) && g_get_monotonic_time() < end) {
            g_usleep(10 * 1000);
        }
        if (!p->reaped) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &p->status, 0);
            p->reaped = true;
        }
    }
    return p->status;
}

static void rh_free(RhProc *p)
{
    rh_stop(p);
    g_spawn_close_pid(p->pid);
    g_free(p->name);
    g_free(p->log);
    g_free(p);
}

static void rh_wait_socket(RhProc *p, const char *path)
{
    gint64 end = g_get_monotonic_time() + SOCKET_WAIT_MS * 1000ll;
    struct stat st;

    while (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        if (rh_reaped(p) || g_get_monotonic_time() > end) {
            g_autofree char *log = rh_log(p);

            g_error("%s: no socket at %s (%s); its output:\n%s", p->name, path,
                    p->reaped ? "it exited" : "timed out", log);
        }
        g_usleep(20 * 1000);
    }
}

/* Whether the back-end process maps the memfd of memory backend id. */
static bool rh_maps_memfd(RhProc *p, const char *id)
{
    g_autofree char *maps_path = g_strdup_printf("/proc/%d/maps", (int)p->pid);
    g_autofree char *needle = g_strdup_printf("/memfd:%s (deleted)", id);
    g_autofree char *maps = NULL;

    if (!g_file_get_contents(maps_path, &maps, NULL, NULL)) {
        g_error("%s: cannot read %s", p->name, maps_path);
    }
    return strstr(maps, needle) != NULL;
}

static void rh_require(const char *path, const char *package)
{
    g_autofree char *found = g_path_is_absolute(path) ? g_strdup(path) :
                             g_find_program_in_path(path);

    if (!found || access(found, X_OK) < 0) {
        g_error("%s not found: install the Debian package '%s' "
                "(scripts/install-deps.sh does)", path, package);
    }
}

/* ---- the VMM's trace -------------------------------------------------- */

/* stderr lines of vmm containing both a and b. */
static unsigned rh_count_both(QtestVmm *vmm, const char *a, const char *b)
{
    g_autofree char *all = qtest_vmm_stderr(vmm);
    g_auto(GStrv) lines = g_strsplit(all, "\n", -1);
    unsigned n = 0;

    for (unsigned i = 0; lines[i]; i++) {
        n += strstr(lines[i], a) && strstr(lines[i], b);
    }
    return n;
}

static void rh_wait_both(QtestVmm *vmm, const char *a, const char *b, unsigned n)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000ll;

    while (rh_count_both(vmm, a, b) < n) {
        if (g_get_monotonic_time() > end) {
            g_error("waited %d ms for %u VMM stderr lines with \"%s\" and \"%s\", got %u",
                    WAIT_MS, n, a, b, rh_count_both(vmm, a, b));
        }
        g_usleep(10 * 1000);
    }
}

/* The u64 of the back-end's GET_MAX_MEM_SLOTS reply in the trace. */
static unsigned rh_traced_slots(QtestVmm *vmm, const char *dev)
{
    g_autofree char *all = qtest_vmm_stderr(vmm);
    g_autofree char *key = g_strdup_printf("%s B>F GET_MAX_MEM_SLOTS", dev);
    const char *l = strstr(all, key);
    const char *v = l ? strstr(l, "u64=0x") : NULL;

    if (!v) {
        g_error("no GET_MAX_MEM_SLOTS reply in the trace: the back-end must offer "
                "CONFIGURE_MEM_SLOTS");
    }
    return (unsigned)g_ascii_strtoull(v + 6, NULL, 16);
}

/* ---- hotplug steps ---------------------------------------------------- */

typedef struct RhCtx {
    const char *dir;
    const char *dev;            /* "blk0", "vdev0": names its trace lines */
    QtestVmm *vmm;
    QmpClient *qmp;
    RhProc *backend;
    unsigned acked_adds;        /* "B>F ADD_MEM_REG ... u64=0x0" expected so far */
    unsigned acked_rems;
} RhCtx;

static char *rh_trace_key(RhCtx *c, const char *dir, const char *req)
{
    return g_strdup_printf("%s %s %s ", c->dev, dir, req);
}

/*
 * object-add + device_add of memfd hpmemI as dimmI: acked ADD_MEM_REG at
 * the address the VMM reports, and the back-end maps the memfd.
 */
static uint64_t rh_plug(RhCtx *c, unsigned i)
{
    g_autofree char *ack = rh_trace_key(c, "B>F", "ADD_MEM_REG");
    g_autofree char *req = rh_trace_key(c, "F>B", "ADD_MEM_REG");
    g_autofree char *id = g_strdup_printf("hpmem%u", i);
    g_autofree char *gpa = NULL;
    JsonNode *r;
    JsonArray *list;
    uint64_t addr = UINT64_MAX;

    r = qmp_client_ok(c->qmp, "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":"
                      "\"memory-backend-memfd\",\"id\":\"%s\",\"size\":%llu}}", id,
                      (unsigned long long)DIMM_SIZE);
    json_node_unref(r);
    r = qmp_client_ok(c->qmp, "{\"execute\":\"device_add\",\"arguments\":{\"driver\":"
                      "\"pc-dimm\",\"id\":\"dimm%u\",\"memdev\":\"%s\"}}", i, id);
    json_node_unref(r);
    r = qmp_client_ok(c->qmp, "{\"execute\":\"query-memory-devices\"}");
    list = json_node_get_array(r);
    for (guint k = 0; k < json_array_get_length(list); k++) {
        JsonObject *d = json_object_get_object_member(
            json_array_get_object_element(list, k), "data");
        g_autofree char *want = g_strdup_printf("dimm%u", i);

        if (!strcmp(json_object_get_string_member(d, "id"), want)) {
            addr = (uint64_t)json_object_get_int_member(d, "addr");
        }
    }
    json_node_unref(r);
    g_assert_cmpuint(addr, !=, UINT64_MAX);

    gpa = g_strdup_printf("gpa=0x%" PRIx64 " ", addr);
    rh_wait_both(c->vmm, req, gpa, 1);
    rh_wait_both(c->vmm, ack, "u64=0x0", ++c->acked_adds);
    if (rh_count_both(c->vmm, ack, "u64=") != c->acked_adds) {
        g_error("%s answered an ADD_MEM_REG with a non-zero status", c->backend->name);
    }
    if (!rh_maps_memfd(c->backend, id)) {
        g_error("%s acked ADD_MEM_REG of %s but does not map its memfd",
                c->backend->name, id);
    }
    return addr;
}

/* device_del + object-del: acked REM_MEM_REG, and the mapping is gone. */
static void rh_unplug(RhCtx *c, unsigned i)
{
    g_autofree char *ack = rh_trace_key(c, "B>F", "REM_MEM_REG");
    g_autofree char *req = rh_trace_key(c, "F>B", "REM_MEM_REG");
    g_autofree char *id = g_strdup_printf("hpmem%u", i);
    JsonNode *r;

    r = qmp_client_ok(c->qmp, "{\"execute\":\"device_del\",\"arguments\":{\"id\":"
                      "\"dimm%u\"}}", i);
    json_node_unref(r);
    r = qmp_client_ok(c->qmp, "{\"execute\":\"object-del\",\"arguments\":{\"id\":"
                      "\"%s\"}}", id);
    json_node_unref(r);
    rh_wait_both(c->vmm, ack, "u64=0x0", ++c->acked_rems);
    if (rh_count_both(c->vmm, ack, "u64=") != c->acked_rems) {
        g_error("%s answered a REM_MEM_REG with a non-zero status", c->backend->name);
    }
    /* The request carried no fd (the spec's rule; old back-ends wanted one). */
    g_assert_cmpuint(rh_count_both(c->vmm, req, "fds=0"), ==, c->acked_rems);
    if (rh_maps_memfd(c->backend, id)) {
        g_error("%s acked REM_MEM_REG of %s but still maps its memfd",
                c->backend->name, id);
    }
}

static void rh_start_vmm(RhCtx *c, GPtrArray *args)
{
    g_autofree char *qmp_path = g_strdup_printf("%s/qmp.sock", c->dir);
    g_autofree char *qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp_path);

    rh_argv(args, "-qmp", qmp_arg, "-trace", "vhost_user", NULL);
    c->vmm = current_vmm = qtest_vmm_spawnv(args);
    c->qmp = qmp_client_connect(qmp_path, WAIT_MS);
}

static void rh_assert_no_sanitizer_report(QtestVmm *vmm)
{
    g_assert_cmpuint(qtest_vmm_count_stderr(vmm, "runtime error:"), ==, 0);
    g_assert_cmpuint(qtest_vmm_count_stderr(vmm, "Sanitizer"), ==, 0);
}

/* ---- qemu-storage-daemon ---------------------------------------------- */

static void test_qsd_blk(void)
{
    RhCtx c = { .dir = g_getenv(TEST_DIR_ENV), .dev = "blk0" };
    g_autofree char *img = g_strdup_printf("%s/disk.raw", c.dir);
    g_autofree char *sock = g_strdup_printf("%s/blk.sock", c.dir);
    g_autofree char *blockdev = NULL;
    g_autofree char *export = NULL;
    g_autofree char *chardev = NULL;
    g_autofree char *desc = NULL;
    g_autoptr(GPtrArray) qsd = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    unsigned slots;
    int fd, status;

    rh_require("qemu-storage-daemon", "qemu-system-common");
    fd = open(img, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, IMAGE_SIZE), ==, 0);
    close(fd);
    blockdev = g_strdup_printf("driver=file,node-name=f,filename=%s,cache.direct=off", img);
    export = g_strdup_printf("type=vhost-user-blk,id=e,node-name=f,addr.type=unix,"
                             "addr.path=%s,writable=on,num-queues=1", sock);
    rh_argv(qsd, "qemu-storage-daemon", "--blockdev", blockdev, "--export", export, NULL);
    c.backend = rh_spawn(c.dir, "qsd", qsd);
    rh_wait_socket(c.backend, sock);

    chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=100", sock);
    /* Long enough that every hotplug step below happens while it runs. */
    rh_argv(args, "-m", "256M", "-chardev", chardev,
            "-device", "vhost-user-blk-pci,chardev=c0,num-queues=1",
            "-workload", "blk0:rw=randrw,bs=4k,iodepth=16,runtime=10s,verify=on", NULL);
    rh_start_vmm(&c, args);
    qtest_vmm_wait_for_stderr_line(c.vmm, "blk0: workload started", WAIT_MS);
    c.acked_adds = 1;           /* the boot RAM */
    rh_wait_both(c.vmm, "blk0 B>F ADD_MEM_REG ", "u64=0x0", 1);
    slots = rh_traced_slots(c.vmm, "blk0");
    g_test_message("qemu-storage-daemon: GET_MAX_MEM_SLOTS = %u", slots);
    g_assert_cmpuint(slots, >=, 4);
    g_assert_cmpuint(slots, <=, 509);

    /* A few regions in and out, interleaved, once I/O is flowing. */
    rh_wait_both(c.vmm, "blk0: ", " op/s, ", 1);
    rh_plug(&c, 0);
    rh_plug(&c, 1);
    rh_unplug(&c, 0);
    rh_plug(&c, 2);
    rh_unplug(&c, 1);
    rh_unplug(&c, 2);

    /*
     * A second later (more I/O in between): up to qsd's own limit, boot
     * RAM + slots - 1 dimms; one more is refused.
     */
    rh_wait_both(c.vmm, "blk0: ", " op/s, ", 2);
    for (unsigned i = 10; i < 10 + slots - 1; i++) {
        rh_plug(&c, i);
    }
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, "blk0: workload finished"), ==, 0);
    {
        JsonNode *r = qmp_client_ok(c.qmp, "{\"execute\":\"object-add\",\"arguments\":"
                                    "{\"qom-type\":\"memory-backend-memfd\",\"id\":"
                                    "\"over\",\"size\":%llu}}",
                                    (unsigned long long)DIMM_SIZE);

        json_node_unref(r);
    }
    desc = qmp_client_fails(c.qmp, "GenericError", "{\"execute\":\"device_add\","
                            "\"arguments\":{\"driver\":\"pc-dimm\",\"id\":\"over\","
                            "\"memdev\":\"over\"}}");
    g_test_message("qemu-storage-daemon: region %u refused: %s", slots + 1, desc);
    {
        g_autofree char *limit = g_strdup_printf("at most %u", slots);

        if (!strstr(desc, limit) || !strstr(desc, "blk0") || !strstr(desc, "over")) {
            g_error("the refusal must name the dimm, the device and qsd's limit of "
                    "%u: \"%s\"", slots, desc);
        }
    }
    for (unsigned i = 10; i < 10 + slots - 1; i++) {
        rh_unplug(&c, i);
    }
    /* All of it while the workload ran. */
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, "blk0: workload finished"), ==, 0);

    qtest_vmm_wait_for_stderr_line(c.vmm, "blk0: workload passed", WORKLOAD_END_MS);
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, "0 mismatching sectors, 0 I/O "
                                            "errors"), ==, 1);
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, "blocks of 4096 verified"), ==, 1);
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, " 0 blocks of 4096 verified"), ==, 0);
    qmp_client_free(c.qmp);
    {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000ll;

        while (qtest_vmm_is_alive(c.vmm) && g_get_monotonic_time() < end) {
            g_usleep(10 * 1000);
        }
    }
    g_assert_cmpint(qtest_vmm_terminate(c.vmm, WAIT_MS), ==, 0);
    rh_assert_no_sanitizer_report(c.vmm);
    qtest_vmm_free(c.vmm);
    current_vmm = NULL;
    status = rh_stop(c.backend);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *log = rh_log(c.backend);

        g_error("qemu-storage-daemon did not exit cleanly (status 0x%x):\n%s", status, log);
    }
    rh_free(c.backend);
}

/* ---- virtiofsd ---------------------------------------------------------- */

static void test_virtiofsd(void)
{
    RhCtx c = { .dir = g_getenv(TEST_DIR_ENV), .dev = "vdev0" };
    g_autofree char *share = g_strdup_printf("%s/share", c.dir);
    g_autofree char *sock = g_strdup_printf("%s/fs.sock", c.dir);
    g_autofree char *sock_opt = NULL;
    g_autofree char *source = NULL;
    g_autofree char *chardev = NULL;
    g_autoptr(GPtrArray) fsd = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    unsigned slots;

    rh_require(VIRTIOFSD, "qemu-system-common");
    if (geteuid() != 0) {
        g_error("virtiofsd needs root (it chroots into the shared directory and "
                "keeps CAP_DAC_OVERRIDE); run this test as root");
    }
    g_assert_cmpint(g_mkdir(share, 0755), ==, 0);
    sock_opt = g_strdup_printf("--socket-path=%s", sock);
    source = g_strdup_printf("source=%s", share);
    /*
     * chroot rather than the default pid namespace: no fork, so the pid we
     * hold is the process that maps guest RAM (its /proc/PID/maps).
     */
    rh_argv(fsd, VIRTIOFSD, sock_opt, "-o", source, "-o", "cache=none",
            "-o", "sandbox=chroot", NULL);
    c.backend = rh_spawn(c.dir, "virtiofsd", fsd);
    rh_wait_socket(c.backend, sock);

    chardev = g_strdup_printf("socket,id=c0,path=%s", sock);
    /* virtio-fs: a hiprio queue and one request queue; no config space. */
    rh_argv(args, "-m", "256M", "-chardev", chardev,
            "-device", "vhost-user-device-pci,chardev=c0,virtio-id=26,num_vqs=2", NULL);
    rh_start_vmm(&c, args);
    qtest_vmm_wait_for_stderr_line(c.vmm, "vdev0: started 2 rings", WAIT_MS);
    c.acked_adds = 1;
    rh_wait_both(c.vmm, "vdev0 B>F ADD_MEM_REG ", "u64=0x0", 1);
    slots = rh_traced_slots(c.vmm, "vdev0");
    g_test_message("virtiofsd: GET_MAX_MEM_SLOTS = %u", slots);
    g_assert_cmpuint(slots, >=, 4);

    rh_plug(&c, 0);
    rh_plug(&c, 1);
    rh_plug(&c, 2);
    rh_unplug(&c, 1);
    rh_unplug(&c, 0);
    rh_unplug(&c, 2);
    /* The rings were never restarted: the back-end took every change live. */
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, "vdev0: started 2 rings"), ==, 1);
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, "vdev0: error"), ==, 0);
    g_assert_false(rh_reaped(c.backend));

    qmp_client_free(c.qmp);
    g_assert_cmpint(qtest_vmm_terminate(c.vmm, WAIT_MS), ==, 0);
    g_assert_cmpuint(qtest_vmm_count_stderr(c.vmm, "vdev0: stopped 2 rings"), ==, 1);
    rh_assert_no_sanitizer_report(c.vmm);
    qtest_vmm_free(c.vmm);
    current_vmm = NULL;
    rh_free(c.backend);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    ADD_VOID_TEST("/real-hotplug/qsd-blk", test_qsd_blk);
    ADD_VOID_TEST("/real-hotplug/virtiofsd", test_virtiofsd);
    return g_test_run();
}
