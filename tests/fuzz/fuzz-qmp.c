/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: the bytes are what a QMP client writes to the
 * reference VMM's monitor socket.
 *
 * libFuzzer target: the QMP monitor (vmm/vmm-monitor.c: the incremental
 * JSON value scanner, json-glib's parse, the dispatcher, the built-in
 * commands and the argument checkers handlers use), with no VMM started.
 * The monitor listens once; per input a client connects, reads the
 * greeting, writes the bytes, closes its writing side, and the loop runs
 * until the monitor has answered everything and dropped the client.
 * Besides the built-in qmp_capabilities, query-commands and quit, the
 * harness registers x-fuzz-args, whose handler reads its arguments with
 * vmm_qmp_check_args, vmm_qmp_arg_str, vmm_qmp_arg_size and
 * vmm_qmp_arg_bool and sends an event, as the VMM's commands do.
 *
 * Every line the monitor sends must be a JSON object with exactly one
 * of "QMP", "return", "error" or "event"; no fd may be left behind.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "vmm/vmm-monitor.h"
#include "fuzz-lib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The VMM's status line (vmm/vmm-machine.c): no VMM here, no output. */
void vmm_status(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void vmm_status(const char *fmt, ...)
{
}

static VmmMonitor *mon;
static char *qmp_path;

/*
 * Lines already found valid, byte for byte: the greeting and most error
 * replies repeat from input to input, and parsing them again in the
 * harness cost as much as the monitor's own work. Kept in static memory,
 * never malloc'ed: a block kept past an input would make libFuzzer run a
 * leak check for it. Emptied when half full.
 */
#define VALID_SLOTS 8192            /* a power of two */
#define VALID_ARENA (1u << 20)
#define VALID_LINE_MAX 4096         /* longer lines are parsed every time */

static struct {
    uint64_t hash;
    uint32_t off, len;              /* len 0: an empty slot */
} valid_slots[VALID_SLOTS];
static char valid_arena[VALID_ARENA];
static uint32_t valid_used, valid_count;

/* Not coverage-instrumented, as check_line (below) is not. */
__attribute__((noinline, no_sanitize("coverage")))
static uint64_t line_hash(const char *line, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;      /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)line[i]) * 0x100000001b3ull;
    }
    return h;
}

/* Whether line is known valid; with add, remember it as valid. */
__attribute__((noinline, no_sanitize("coverage")))
static bool valid_line(const char *line, size_t len, bool add)
{
    uint64_t h = line_hash(line, len);
    uint32_t i = (uint32_t)h & (VALID_SLOTS - 1);

    if (!len || len > VALID_LINE_MAX) {
        return false;
    }
    for (; valid_slots[i].len; i = (i + 1) & (VALID_SLOTS - 1)) {
        if (valid_slots[i].hash == h && valid_slots[i].len == len &&
            !memcmp(valid_arena + valid_slots[i].off, line, len)) {
            return true;
        }
    }
    if (add) {
        if (valid_count >= VALID_SLOTS / 2 || valid_used + len > VALID_ARENA) {
            memset(valid_slots, 0, sizeof(valid_slots));
            valid_used = valid_count = 0;
            i = (uint32_t)h & (VALID_SLOTS - 1);
        }
        memcpy(valid_arena + valid_used, line, len);
        valid_slots[i].hash = h;
        valid_slots[i].off = valid_used;
        valid_slots[i].len = (uint32_t)len;
        valid_used += (uint32_t)len;
        valid_count++;
    }
    return false;
}

static void on_quit(void *opaque)
{
}

static JsonNode *fuzz_args(VmmMonitor *m, JsonObject *args, void *opaque, GError **errp)
{
    static const char *const allowed[] = { "name", "size", "flag", NULL };
    const char *name = NULL;
    uint64_t sz = 0;
    bool flag = false;
    JsonObject *ret, *ev;

    if (!vmm_qmp_check_args(args, allowed, errp) ||
        !vmm_qmp_arg_str(args, "name", true, &name, errp) ||
        !vmm_qmp_arg_size(args, "size", false, &sz, errp) ||
        !vmm_qmp_arg_bool(args, "flag", &flag, errp)) {
        return NULL;
    }
    ev = json_object_new();
    json_object_set_string_member(ev, "name", name);
    /* After the reply, as DEVICE_DELETED is. */
    vmm_monitor_event(m, "X_FUZZ", ev);
    ret = json_object_new();
    json_object_set_string_member(ret, "name", name);
    json_object_set_int_member(ret, "size", (gint64)sz);
    json_object_set_boolean_member(ret, "flag", flag);
    return vmm_qmp_object_node(ret);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    g_autofree char *dir = g_dir_make_tmp("fuzz-qmp-XXXXXX", NULL);
    GError *err = NULL;

    qmp_path = g_build_filename(dir, "qmp.sock", NULL);
    mon = vmm_monitor_new(qmp_path, false, on_quit, NULL, &err);
    if (!mon) {
        abort();
    }
    vmm_monitor_register(mon, "x-fuzz-args", fuzz_args, NULL);
    g_main_context_default();
    return 0;
}

/*
 * One line the monitor sent: a JSON object of one of the four kinds. Not
 * instrumented: whether the cache answered depends on earlier inputs, and
 * the fuzzer must not take that for new behaviour of this one.
 */
__attribute__((noinline, no_sanitize("coverage")))
static void check_line(const char *line, size_t len)
{
    g_autoptr(JsonParser) p = NULL;
    JsonObject *o;
    unsigned kinds;

    if (valid_line(line, len, false)) {
        return;
    }
    p = json_parser_new();
    if (!json_parser_load_from_data(p, line, (gssize)len, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        abort();
    }
    o = json_node_get_object(json_parser_get_root(p));
    kinds = json_object_has_member(o, "QMP") + json_object_has_member(o, "return") +
            json_object_has_member(o, "error") + json_object_has_member(o, "event");
    if (kinds != 1) {
        abort();
    }
    valid_line(line, len, true);
}

/* Reads what the monitor sent so far into out (never blocks). */
static void read_replies(int fd, GString *out)
{
    char buf[4096];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        g_string_append_len(out, buf, n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_autoptr(GString) out = g_string_new(NULL);
    unsigned fds_before = fuzz_count_fds();
    uint8_t *bytes = g_malloc(size ? size : 1);
    const char *p, *nl;
    int fd;

    memcpy(bytes, data, size);
    g_strlcpy(sa.sun_path, qmp_path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        abort();
    }
    /* The monitor accepts and greets from the loop. */
    while (!strchr(out->str, '\n')) {
        g_main_context_iteration(NULL, TRUE);
        read_replies(fd, out);
    }
    if (size && fuzz_send_fds(fd, bytes, size, NULL, 0) != (ssize_t)size) {
        abort();
    }
    shutdown(fd, SHUT_WR);
    /* Until the monitor has seen EOF and closed its end. */
    for (;;) {
        char c;
        ssize_t n;

        while (g_main_context_iteration(NULL, FALSE)) {
        }
        read_replies(fd, out);
        n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
        if (n == 0) {
            break;
        }
        if (n < 0 && errno != EAGAIN) {
            abort();
        }
        g_main_context_iteration(NULL, TRUE);
    }
    close(fd);
    g_free(bytes);

    for (p = out->str; (nl = strchr(p, '\n')); p = nl + 1) {
        check_line(p, (size_t)(nl - p));
    }
    if (*p) {
        abort();                /* a reply cut short */
    }
    if (fuzz_count_fds() != fds_before) {
        abort();
    }
    return 0;
}
