/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Source and destination VMMs for the migration tests; see migrate-harness.h.
 */
#include <fcntl.h>
#include <stdio.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "guest/pattern.h"
#include "migrate-harness.h"

#define PAGE                4096u
#define POLL_MS             20

/*
 * RAM files on /dev/shm of runs that died before mig_vmm_free: their
 * fixture directory (same tmp dir, same name) is gone.
 */
static void shm_ram_sweep(const char *tmpdir)
{
    GDir *d = g_dir_open("/dev/shm", 0, NULL);
    const char *n;

    while (d && (n = g_dir_read_name(d))) {
        const char *dash = strchr(n, '-') ? strchr(strchr(n, '-') + 1, '-') : NULL;
        g_autofree char *fixture = NULL;
        g_autofree char *path = NULL;

        if (!g_str_has_prefix(n, "vutest-") || !g_str_has_suffix(n, ".ram") || !dash) {
            continue;
        }
        fixture = g_build_filename(tmpdir, n, NULL);
        fixture[strlen(tmpdir) + 1 + (dash - n)] = '\0';
        if (!g_file_test(fixture, G_FILE_TEST_IS_DIR)) {
            path = g_build_filename("/dev/shm", n, NULL);
            unlink(path);
        }
    }
    if (d) {
        g_dir_close(d);
    }
}

MigVmm *mig_vmm_start(Fixture *f, const char *name, const MigVmmOpts *o, GPtrArray *args)
{
    const char *bin = vmm_binary();
    unsigned mb = o->ram_mb ? o->ram_mb : MIG_RAM_MB;
    g_autofree char *qmp_path = g_strdup_printf("%s/%s.qmp", f->dir, name);
    g_autofree char *qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp_path);
    g_autofree char *m = g_strdup_printf("%uM", mb);
    g_autofree char *obj = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    MigVmm *v;

    if (!bin) {
        return NULL;
    }
    v = g_new0(MigVmm, 1);
    v->name = g_strdup(name);
    v->out_path = g_strdup_printf("%s/%s.json", f->dir, name);
    if (o->shm_ram) {
        g_autofree char *base = g_path_get_basename(f->dir);
        g_autofree char *tmpdir = g_path_get_dirname(f->dir);

        shm_ram_sweep(tmpdir);
        v->ram_path = g_strdup_printf("/dev/shm/%s-%s.ram", base, name);
        v->ram_owned = true;
    } else {
        v->ram_path = g_strdup_printf("%s/%s.ram", f->dir, name);
    }
    v->ram_size = (uint64_t)mb << 20;
    obj = g_strdup_printf("memory-backend-file,id=ram0,size=%uM,mem-path=%s,share=on", mb,
                          v->ram_path);
    if (o->netns) {
        g_ptr_array_add(argv, "ip");
        g_ptr_array_add(argv, "netns");
        g_ptr_array_add(argv, "exec");
        g_ptr_array_add(argv, (char *)o->netns);
    }
    for (const char *const *w = o->wrap; w && *w; w++) {
        g_ptr_array_add(argv, (char *)*w);
    }
    g_ptr_array_add(argv, (char *)bin);
    g_ptr_array_add(argv, "-m");
    g_ptr_array_add(argv, m);
    g_ptr_array_add(argv, "-object");
    g_ptr_array_add(argv, obj);
    g_ptr_array_add(argv, "-machine");
    g_ptr_array_add(argv, "memory-backend=ram0");
    g_ptr_array_add(argv, "-qmp");
    g_ptr_array_add(argv, qmp_arg);
    g_ptr_array_add(argv, "-summary");
    g_ptr_array_add(argv, "json");
    if (o->trace) {
        g_ptr_array_add(argv, "-trace");
        g_ptr_array_add(argv, "vhost_user");
    }
    if (o->fill) {
        g_ptr_array_add(argv, "-x-fill-pattern");
    }
    if (o->incoming) {
        g_ptr_array_add(argv, "-incoming");
        g_ptr_array_add(argv, (char *)o->incoming);
    }
    if (o->frozen) {
        g_ptr_array_add(argv, "-S");
    }
    for (guint i = 0; args && i < args->len; i++) {
        g_ptr_array_add(argv, args->pdata[i]);
    }
    v->proc = proc_spawn(f, name, argv, false, v->out_path);
    if (!v->proc || !wait_socket(v->proc, qmp_path)) {
        mig_vmm_free(v);
        return NULL;
    }
    v->qmp = qmp_client_connect_log(qmp_path, MIG_WAIT_MS, proc_log_cb, v->proc);
    return v;
}

void mig_vmm_free(MigVmm *v)
{
    if (!v) {
        return;
    }
    if (v->qmp) {
        qmp_client_free(v->qmp);
    }
    if (v->ram_owned) {
        unlink(v->ram_path);
    }
    g_free(v->name);
    g_free(v->out_path);
    g_free(v->ram_path);
    g_free(v);
}

static void add_workload(GPtrArray *a, const char *workload)
{
    if (workload) {
        g_ptr_array_add(a, g_strdup("-workload"));
        g_ptr_array_add(a, g_strdup(workload));
    }
}

void mig_add_blk(GPtrArray *a, const char *sock, unsigned queues, const char *workload)
{
    g_ptr_array_add(a, g_strdup("-chardev"));
    g_ptr_array_add(a, g_strdup_printf("socket,id=cb,path=%s,reconnect-ms=100", sock));
    g_ptr_array_add(a, g_strdup("-device"));
    g_ptr_array_add(a, g_strdup_printf("vhost-user-blk-pci,chardev=cb,num-queues=%u",
                                       queues));
    add_workload(a, workload);
}

void mig_add_net(GPtrArray *a, const char *sock, unsigned queues, const char *workload)
{
    g_ptr_array_add(a, g_strdup("-chardev"));
    g_ptr_array_add(a, g_strdup_printf("socket,id=cn,path=%s,reconnect-ms=100", sock));
    g_ptr_array_add(a, g_strdup("-netdev"));
    g_ptr_array_add(a, g_strdup_printf("vhost-user,id=net0,chardev=cn,queues=%u", queues));
    g_ptr_array_add(a, g_strdup("-device"));
    g_ptr_array_add(a, g_strdup("virtio-net-pci,netdev=net0"));
    add_workload(a, workload);
}

char *mig_unix_uri(Fixture *f, const char *name)
{
    return g_strdup_printf("unix:%s/%s", f->dir, name);
}

void mig_set_params(MigVmm *v, int64_t max_bandwidth, int64_t downtime_ms)
{
    g_autoptr(GString) a = g_string_new(NULL);

    if (max_bandwidth >= 0) {
        g_string_append_printf(a, "\"max-bandwidth\":%" PRId64, max_bandwidth);
    }
    if (downtime_ms >= 0) {
        g_string_append_printf(a, "%s\"downtime-limit\":%" PRId64, a->len ? "," : "",
                               downtime_ms);
    }
    json_node_unref(qmp_client_ok(v->qmp, "{\"execute\":\"migrate-set-parameters\","
                                  "\"arguments\":{%s}}", a->str));
}

bool mig_set_postcopy(MigVmm *v, bool on)
{
    JsonNode *r = qmp_client_cmd(v->qmp, "{\"execute\":\"migrate-set-capabilities\","
                                 "\"arguments\":{\"capabilities\":[{\"capability\":"
                                 "\"postcopy-ram\",\"state\":%s}]}}", on ? "true" : "false");
    bool ok = json_object_has_member(json_node_get_object(r), "return");

    if (!ok) {
        g_autofree char *s = json_to_string(r, FALSE);

        g_test_fail_printf("%s: migrate-set-capabilities postcopy-ram refused: %s", v->name, s);
    }
    json_node_unref(r);
    return ok;
}

bool mig_incoming(MigVmm *v, const char *uri)
{
    JsonNode *r = qmp_client_cmd(v->qmp, "{\"execute\":\"migrate-incoming\",\"arguments\":"
                                 "{\"uri\":\"%s\"}}", uri);
    bool ok = json_object_has_member(json_node_get_object(r), "return");

    if (!ok) {
        g_autofree char *s = json_to_string(r, FALSE);

        g_test_fail_printf("%s: migrate-incoming %s refused: %s", v->name, uri, s);
    }
    json_node_unref(r);
    return ok;
}

bool mig_migrate(MigVmm *src, const char *uri)
{
    JsonNode *r;
    JsonObject *o;
    bool ok;

    /* mig_wait_status looks at this migration's events, not an earlier one's. */
    src->ev_next = qmp_client_event_count(src->qmp, "MIGRATION");
    src->ev_last[0] = '\0';
    r = qmp_client_cmd(src->qmp, "{\"execute\":\"migrate\",\"arguments\":"
                       "{\"uri\":\"%s\"}}", uri);
    o = json_node_get_object(r);
    ok = json_object_has_member(o, "return");

    if (!ok) {
        g_autofree char *s = json_to_string(r, FALSE);

        g_test_fail_printf("%s: migrate %s refused: %s", src->name, uri, s);
    }
    json_node_unref(r);
    return ok;
}

JsonNode *mig_query(MigVmm *v)
{
    return qmp_client_ok(v->qmp, "{\"execute\":\"query-migrate\"}");
}

char *mig_qmp_error(MigVmm *v, const char *cmd)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(v->qmp, "%s", cmd);
    JsonObject *o = json_node_get_object(r);
    JsonObject *e;

    if (!json_object_has_member(o, "error")) {
        return NULL;
    }
    e = json_object_get_object_member(o, "error");
    return g_strdup(json_object_has_member(e, "desc") ?
                    json_object_get_string_member(e, "desc") : "(no desc)");
}

bool mig_expect_error(MigVmm *v, const char *cmd, const char *needle)
{
    g_autofree char *err = mig_qmp_error(v, cmd);

    if (!err || !strstr(err, needle)) {
        g_test_fail_printf("%s: %s: expected an error saying '%s', got %s", v->name, cmd,
                           needle, err ? err : "success");
        return false;
    }
    g_test_message("%s: %s: %s", v->name, cmd, err);
    return true;
}

static char *final_from_log(MigVmm *v);

char *mig_status(MigVmm *v)
{
    g_autoptr(JsonNode) r = qmp_client_ok_or_gone(v->qmp, "{\"execute\":\"query-migrate\"}");
    JsonObject *o;
    char *s;

    /*
     * A source whose guest left exits by itself once its migration
     * completed: a query can meet a process that already stopped
     * serving. It printed how the migration ended before it went.
     */
    if (!r) {
        s = final_from_log(v);
        return s ? s : g_strdup("gone");
    }
    o = json_node_get_object(r);
    return g_strdup(json_object_has_member(o, "status")
                    ? json_object_get_string_member(o, "status") : "none");
}

static bool status_final(const char *s)
{
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

/*
 * The outcome a source printed, or NULL: a source whose guest left exits
 * by itself soon after "completed", maybe before the next query.
 */
static char *final_from_log(MigVmm *v)
{
    static const char *const lines[][2] = {
        { "vhost-user-vmm: migration: completed in ", "completed" },
        { "vhost-user-vmm: migration: failed: ", "failed" },
        { "vhost-user-vmm: migration: cancelled", "cancelled" },
    };
    g_autofree char *log = proc_log(v->proc);

    for (size_t i = 0; i < G_N_ELEMENTS(lines); i++) {
        if (strstr(log, lines[i][0])) {
            return g_strdup(lines[i][1]);
        }
    }
    return NULL;
}

/* mig_wait_status's result s, remembered: the events up to now are looked at. */
static char *status_seen(MigVmm *v, char *s)
{
    v->ev_next = qmp_client_event_count(v->qmp, "MIGRATION");
    g_strlcpy(v->ev_last, s, sizeof(v->ev_last));
    return s;
}

/*
 * The first MIGRATION event since the last look whose status is want or
 * a final one, or NULL. A status polled passes as quickly as it wants
 * (postcopy-active to completed between two queries); its event stays.
 * The event of the status the last call returned through a query may
 * come after it: the first event equal to that one is skipped (two
 * events in a row never have one status, so it is that one).
 */
static char *status_from_events(MigVmm *v, const char *want)
{
    unsigned n = qmp_client_event_count(v->qmp, "MIGRATION");

    for (; v->ev_next < n; v->ev_next++) {
        JsonObject *d = qmp_client_nth_event(v->qmp, "MIGRATION", v->ev_next);
        const char *s = d && json_object_has_member(d, "status")
                        ? json_object_get_string_member(d, "status") : "";
        bool stale = !strcmp(s, v->ev_last);

        v->ev_last[0] = '\0';
        if (!stale && (!strcmp(s, want) || status_final(s))) {
            v->ev_next++;
            g_strlcpy(v->ev_last, s, sizeof(v->ev_last));
            return g_strdup(s);
        }
    }
    return NULL;
}

char *mig_wait_status(MigVmm *v, const char *want, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        char *s = final_from_log(v), *ev;

        s = s ? s : mig_status(v);
        if ((ev = status_from_events(v, want))) {
            g_free(s);
            return ev;
        }
        if (!strcmp(s, "gone")) {
            g_autofree char *log = proc_log(v->proc);

            g_test_fail_printf("%s: the VMM went away without saying how its migration "
                               "ended, while %s was awaited:\n%s", v->name, want, log);
            g_free(s);
            return NULL;
        }
        if (!strcmp(s, want) || status_final(s)) {
            return status_seen(v, s);
        }
        if (g_get_monotonic_time() > end) {
            g_autofree char *log = proc_log(v->proc);

            g_test_fail_printf("%s: migration status %s, not %s, after %u ms:\n%s",
                               v->name, s, want, timeout_ms, log);
            g_free(s);
            return NULL;
        }
        g_free(s);
        g_usleep(POLL_MS * 1000);
    }
}

static int64_t ram_member(JsonObject *o, const char *key)
{
    JsonObject *ram = json_object_has_member(o, "ram")
                      ? json_object_get_object_member(o, "ram") : NULL;

    return ram && json_object_has_member(ram, key) ? json_object_get_int_member(ram, key)
                                                   : -1;
}

bool mig_wait_midstream(MigVmm *v, uint64_t bytes, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    gint64 active_since = 0;

    for (;;) {
        g_autoptr(JsonNode) r = mig_query(v);
        JsonObject *o = json_node_get_object(r);
        const char *s = json_object_has_member(o, "status")
                        ? json_object_get_string_member(o, "status") : "none";
        int64_t sent = ram_member(o, "transferred");
        int64_t left = ram_member(o, "remaining");
        gint64 now = g_get_monotonic_time();

        if (!strcmp(s, "active")) {
            active_since = active_since ? active_since : now;
            /* query-migrate's figures move within a round, not only between. */
            if (sent >= (int64_t)bytes && left > 0) {
                g_test_message("%s: mid-stream: %" PRId64 " bytes sent, %" PRId64
                               " left, active for %" PRId64 " ms", v->name, sent, left,
                               (now - active_since) / 1000);
                return true;
            }
        }
        if (status_final(s) || now > end) {
            g_autofree char *j = json_to_string(r, FALSE);
            g_autofree char *log = proc_log(v->proc);

            g_test_fail_printf("%s: never in the middle of the stream (%" PRIu64
                               " bytes sent, some left): %s\n%s", v->name, bytes, j, log);
            return false;
        }
        g_usleep(POLL_MS * 1000);
    }
}

char *mig_events_str(MigVmm *v)
{
    GString *s = g_string_new(NULL);
    JsonObject *e;

    for (unsigned i = 0; (e = qmp_client_nth_event(v->qmp, "MIGRATION", i)); i++) {
        g_string_append_printf(s, "%s%s", i ? "," : "",
                               json_object_get_string_member(e, "status"));
    }
    return g_string_free(s, FALSE);
}

bool mig_events_in_order(MigVmm *v, const char *const *seq)
{
    JsonObject *e;
    unsigned k = 0;

    /* A query makes the client read what the VMM sent meanwhile. */
    g_free(mig_status(v));
    for (unsigned i = 0; seq[k] && (e = qmp_client_nth_event(v->qmp, "MIGRATION", i));
         i++) {
        k += !g_strcmp0(json_object_get_string_member(e, "status"), seq[k]);
    }
    return seq[k] == NULL;
}

char *mig_run_state(MigVmm *v)
{
    g_autoptr(JsonNode) r = qmp_client_ok(v->qmp, "{\"execute\":\"query-status\"}");

    return g_strdup(json_object_get_string_member(json_node_get_object(r), "status"));
}

bool mig_vmm_end(MigVmm *v, int *code, char **out, char **log)
{
    g_autofree char *o = NULL;
    g_autofree char *l = NULL;

    if (!vmm_collect(v->proc, v->out_path, code, &o, &l)) {
        return false;
    }
    if (out) {
        *out = g_steal_pointer(&o);
    }
    if (log) {
        *log = g_steal_pointer(&l);
    }
    return true;
}

bool mig_vmm_verified(MigVmm *v, unsigned n)
{
    g_autofree char *out = NULL;
    g_autofree char *log = NULL;
    int code = -1;

    if (!mig_vmm_end(v, &code, &out, &log)) {
        return false;
    }
    if (code != 0 || !out || qtest_count(out, "\"verified\":true") != n ||
        qtest_count(out, "\"ok\":true") != n ||
        qtest_count(out, "\"mismatches\":0") != qtest_count(out, "\"mismatches\":")) {
        g_test_fail_printf("%s: exit %d, %u verified summaries expected: %s\n%s", v->name,
                           code, n, out ? out : "(none)", log);
        return false;
    }
    return true;
}

bool mig_completed_verified(MigVmm *src, MigVmm *dst, const char *what)
{
    g_autofree char *st = mig_wait_status(src, "completed", MIG_WAIT_MS);

    if (!st) {
        return false;
    }
    if (strcmp(st, "completed") != 0) {
        g_autofree char *log = proc_log(src->proc);

        g_test_fail_printf("%s: the source's migration ended %s:\n%s", what, st, log);
        return false;
    }
    return mig_vmm_verified(dst, 1);
}

static void *map_file(const char *path, uint64_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    void *p = MAP_FAILED;

    if (fd < 0) {
        return NULL;
    }
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == size) {
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    }
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

int64_t mig_ram_compare(const MigVmm *a, const MigVmm *b)
{
    const uint8_t *pa, *pb;
    g_autoptr(GString) first = g_string_new(NULL);
    int64_t diff = 0;

    if (a->ram_size != b->ram_size) {
        g_test_fail_printf("RAM sizes differ: %s %" PRIu64 ", %s %" PRIu64, a->name,
                           a->ram_size, b->name, b->ram_size);
        return -1;
    }
    pa = map_file(a->ram_path, a->ram_size);
    pb = map_file(b->ram_path, b->ram_size);
    if (!pa || !pb) {
        g_test_fail_printf("cannot map %s or %s (%" PRIu64 " bytes)", a->ram_path,
                           b->ram_path, a->ram_size);
        diff = -1;
        goto out;
    }
    for (uint64_t off = 0; off < a->ram_size; off += PAGE) {
        if (memcmp(pa + off, pb + off, PAGE) != 0) {
            if (diff++ < 8) {
                g_string_append_printf(first, " 0x%" PRIx64, off);
            }
        }
    }
    if (diff) {
        g_test_message("%" PRId64 " of %" PRIu64 " pages differ between %s and %s; "
                       "first at GPA%s", diff, a->ram_size / PAGE, a->name, b->name,
                       first->str);
    }
out:
    if (pa) {
        munmap((void *)pa, a->ram_size);
    }
    if (pb) {
        munmap((void *)pb, b->ram_size);
    }
    return diff;
}

/* ---- network namespaces --------------------------------------------- */

static bool run_cmd(const char *cmdline, bool quiet)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL;
    g_autofree char *errs = NULL;
    int status = -1;

    if (!g_spawn_command_line_sync(cmdline, &out, &errs, &status, &err) ||
        !g_spawn_check_wait_status(status, NULL)) {
        if (!quiet) {
            g_test_fail_printf("'%s' failed: %s%s", cmdline, err ? err->message : "",
                               errs ? errs : "");
        }
        return false;
    }
    return true;
}

/* Namespaces of ours whose test process is gone (it died before its cleanup). */
static void remove_stale_netns(void)
{
    g_autofree char *out = NULL;
    g_auto(GStrv) lines = NULL;

    if (!g_spawn_command_line_sync("ip netns list", &out, NULL, NULL, NULL) || !out) {
        return;
    }
    lines = g_strsplit(out, "\n", -1);
    for (char **l = lines; *l; l++) {
        unsigned pid;
        char side;

        if (sscanf(*l, "vumig%u-%c", &pid, &side) == 2 && kill((pid_t)pid, 0) != 0) {
            g_autofree char *name = g_strndup(*l, strcspn(*l, " "));
            g_autofree char *cmd = g_strdup_printf("ip netns del %s", name);

            run_cmd(cmd, true);
        }
    }
}

bool mig_netns_setup(MigNetns *ns, const char *addr_a, const char *addr_b)
{
    char *cmds[7];
    bool ok = true;

    if (!require_program("ip", "iproute2")) {
        return false;
    }
    remove_stale_netns();
    ns->a = g_strdup_printf("vumig%d-a", (int)getpid());
    ns->b = g_strdup_printf("vumig%d-b", (int)getpid());
    cmds[0] = g_strdup_printf("ip netns add %s", ns->a);
    cmds[1] = g_strdup_printf("ip netns add %s", ns->b);
    /* Created inside the namespaces: nothing of it is ever in ours. */
    cmds[2] = g_strdup_printf("ip link add mig0 netns %s type veth peer name mig0 netns %s",
                              ns->a, ns->b);
    cmds[3] = g_strdup_printf("ip -n %s addr add %s/24 dev mig0", ns->a, addr_a);
    cmds[4] = g_strdup_printf("ip -n %s addr add %s/24 dev mig0", ns->b, addr_b);
    cmds[5] = g_strdup_printf("ip -n %s link set mig0 up", ns->a);
    cmds[6] = g_strdup_printf("ip -n %s link set mig0 up", ns->b);
    for (unsigned i = 0; ok && i < G_N_ELEMENTS(cmds); i++) {
        ok = run_cmd(cmds[i], false);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(cmds); i++) {
        g_free(cmds[i]);
    }
    if (!ok) {
        mig_netns_cleanup(ns);
    }
    return ok;
}

void mig_netns_cleanup(MigNetns *ns)
{
    char **names[] = { &ns->a, &ns->b };

    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
        if (*names[i]) {
            g_autofree char *cmd = g_strdup_printf("ip netns del %s", *names[i]);

            run_cmd(cmd, true);
            g_clear_pointer(names[i], g_free);
        }
    }
}

/* ---- testpmd -------------------------------------------------------- */

static char *testpmd_prefix(const char *name)
{
    return g_strdup_printf("vumig%d-%s", (int)getpid(), name);
}

Proc *mig_start_testpmd(Fixture *f, const char *name, const char *sock, unsigned queues)
{
    return mig_start_testpmd_postcopy(f, name, sock, queues, false, true);
}

Proc *mig_start_testpmd_postcopy(Fixture *f, const char *name, const char *sock,
                                 unsigned queues, bool postcopy, bool mlockall)
{
    g_autofree char *vdev = g_strdup_printf("net_vhost0,iface=%s,queues=%u%s", sock, queues,
                                            postcopy ? ",postcopy-support=1" : "");
    g_autofree char *rxq = g_strdup_printf("--rxq=%u", queues);
    g_autofree char *txq = g_strdup_printf("--txq=%u", queues);
    g_autofree char *prefix = NULL;
    g_autofree char *p = testpmd_prefix(name);
    g_autoptr(GPtrArray) tp = g_ptr_array_new();
    const char *const fixed[] = {
        "dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "512", "--no-pci",
        "--log-level=lib.eal:warning",
    };
    const char *const fwd[] = {
        "--forward-mode=io", "--port-topology=loop", "--nb-cores=1", "--stats-period=0",
        "--total-num-mbufs=8192",
    };
    Proc *pr;

    if (!require_program("dpdk-testpmd", "dpdk")) {
        return NULL;
    }
    prefix = g_strdup_printf("--file-prefix=%s", p);
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        g_ptr_array_add(tp, (char *)fixed[i]);
    }
    g_ptr_array_add(tp, prefix);
    g_ptr_array_add(tp, "--vdev");
    g_ptr_array_add(tp, vdev);
    g_ptr_array_add(tp, "--");
    for (size_t i = 0; i < G_N_ELEMENTS(fwd); i++) {
        g_ptr_array_add(tp, (char *)fwd[i]);
    }
    g_ptr_array_add(tp, rxq);
    g_ptr_array_add(tp, txq);
    /*
     * testpmd locks all its memory, future mappings included: guest RAM
     * mapped at SET_MEM_TABLE would be populated at once, every page still
     * owed by the source filled with zeros, and no fault would ever come.
     */
    if (!mlockall) {
        g_ptr_array_add(tp, "--no-mlockall");
    }
    pr = proc_spawn(f, name, tp, true, NULL);
    return pr && wait_socket(pr, sock) ? pr : NULL;
}

void mig_testpmd_cleanup(const char *name)
{
    g_autofree char *p = testpmd_prefix(name);
    g_autofree char *run = g_build_filename("/var/run/dpdk", p, NULL);
    proc_remove_tree(run);
}

GPtrArray *mig_args_new(void)
{
    return g_ptr_array_new_with_free_func(g_free);
}

bool mig_make_image(const char *path, uint64_t size)
{
    FILE *fp = fopen(path, "w");
    bool ok = fp && ftruncate(fileno(fp), (off_t)size) == 0;

    if (fp) {
        fclose(fp);
    }
    if (!ok) {
        g_test_fail_printf("cannot create %s", path);
    }
    return ok;
}

bool mig_check_image(const char *path, uint64_t size, unsigned seed)
{
    const unsigned sector = 512;
    g_autofree char *data = NULL;
    gsize len = 0;
    uint64_t written = 0;

    if (!g_file_get_contents(path, &data, &len, NULL) || len != size) {
        g_test_fail_printf("cannot read %s (%zu bytes)", path, (size_t)len);
        return false;
    }
    for (uint64_t s = 0; s < size / sector; s++) {
        const char *buf = data + s * sector;
        PatternHeader h;
        PatternMismatch mm;
        size_t off;

        if (pattern_is_zero(buf, sector, &off)) {
            continue;
        }
        memcpy(&h, buf, sizeof(h));
        if (h.id != s || h.seed != seed ||
            !pattern_check(buf, sector, s, h.generation, seed, &mm)) {
            g_test_fail_printf("image sector %" PRIu64 ": not what the workload writes "
                               "there (header id %" PRIu64 " generation %" PRIu64
                               " seed %u)", s, h.id, h.generation, h.seed);
            return false;
        }
        written++;
    }
    g_test_message("image: %" PRIu64 " sectors written, all consistent", written);
    if (written == 0) {
        g_test_fail_printf("image: nothing was written");
        return false;
    }
    return true;
}

bool mig_qsd_pair(Fixture *f, const char *img, uint64_t size, const char *wl,
                  GPtrArray *sa, GPtrArray *da)
{
    g_autofree char *ss = g_build_filename(f->dir, "qsd-src.sock", NULL);
    g_autofree char *ds = g_build_filename(f->dir, "qsd-dst.sock", NULL);

    if (!require_program("qemu-storage-daemon", "qemu-system-common") ||
        !mig_make_image(img, size) ||
        !proc_start_qsd_named(f, "qsd-src", img, ss, 4, true) ||
        !proc_start_qsd_named(f, "qsd-dst", img, ds, 4, true)) {
        return false;
    }
    mig_add_blk(sa, ss, 4, wl);
    mig_add_blk(da, ds, 4, wl);
    return true;
}

bool mig_postcopy_verify(MigVmm *src, MigVmm *dst, bool frozen, const char *img,
                         uint64_t size, unsigned seed)
{
    if (frozen) {
        /* Source gone, destination held by -S: nothing writes either RAM. */
        int64_t diff = mig_ram_compare(src, dst);

        if (diff != 0) {
            g_test_fail_printf("%" PRId64 " pages differ between the source's and the "
                               "destination's RAM after postcopy", diff);
            return false;
        }
        json_node_unref(qmp_client_ok(dst->qmp, "{\"execute\":\"cont\"}"));
    }
    return mig_vmm_verified(dst, 1) && mig_check_image(img, size, seed);
}
