/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The QMP monitor. See vmm/vmm-monitor.h.
 *
 * Input is a byte stream of JSON values with no framing (QMP clients may
 * or may not put newlines between commands, and a command may arrive in
 * pieces), so a small scanner finds where each top-level value ends
 * (brace depth outside strings) and only a complete value is handed to
 * json-glib. The scanner bounds both the size and the nesting of one
 * value: the client is local but still must not make us allocate or
 * recurse without limit.
 *
 * Output is buffered and written as the socket takes it: a client that
 * stops reading must not block the main loop, which also serves the
 * back-ends. A client whose backlog grows past a limit is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>
#include <glib/gstdio.h>

#include "vmm/vmm-kv.h"
#include "vmm/vmm-machine.h"
#include "vmm/vmm-monitor.h"
#include "vmm/vmm-options.h"

#define VMM_QMP_MAX_VALUE       (64 * 1024)     /* bytes in one command */
#define VMM_QMP_MAX_DEPTH       32              /* nesting in one command */
#define VMM_QMP_MAX_BACKLOG     (4 * 1024 * 1024)

typedef struct VmmQmpCommand {
    char *name;
    VmmQmpHandler fn;
    void *opaque;
} VmmQmpCommand;

struct VmmMonitor {
    char *path;
    int listen_fd;
    guint listen_watch;

    int fd;                     /* the client, or -1 */
    guint in_watch;
    guint out_watch;
    bool negotiated;            /* qmp_capabilities done on this client */
    GString *in;                /* bytes of the value being scanned */
    GString *out;               /* not yet written */
    /* scanner state over `in` */
    size_t scan_pos;
    unsigned depth;
    bool in_string;
    bool escape;

    bool in_command;
    /*
     * Replies to what one read brought are queued and written together
     * after it (vmm_monitor_readable): a client that pipelines commands,
     * or sends garbage that earns an error per stray token, costs one
     * send per read, not one per reply.
     */
    bool hold_output;
    GPtrArray *pending_events;  /* char *, sent after the current reply */
    GPtrArray *commands;        /* VmmQmpCommand */

    void (*quit)(void *opaque);
    void *quit_opaque;
};

G_DEFINE_QUARK(vmm-qmp-error-quark, vmm_qmp_error)

static const char *vmm_qmp_class_name(int code)
{
    switch (code) {
    case VMM_QMP_ERROR_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case VMM_QMP_ERROR_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    default:
        return "GenericError";
    }
}

/* ---- output ----------------------------------------------------------- */

JsonNode *vmm_qmp_object_node(JsonObject *o)
{
    JsonNode *n = json_node_init_object(json_node_alloc(), o);

    json_object_unref(o);
    return n;
}

JsonNode *vmm_qmp_array_node(JsonArray *a)
{
    JsonNode *n = json_node_init_array(json_node_alloc(), a);

    json_array_unref(a);
    return n;
}

static void vmm_monitor_drop_client(VmmMonitor *mon);

static gboolean vmm_monitor_writable(gint fd, GIOCondition cond, gpointer opaque);

/* Writes what the socket takes now; the rest waits for G_IO_OUT. */
static void vmm_monitor_flush(VmmMonitor *mon)
{
    while (!mon->hold_output && mon->fd >= 0 && mon->out->len) {
        ssize_t n = send(mon->fd, mon->out->str, mon->out->len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (mon->out->len > VMM_QMP_MAX_BACKLOG) {
                vmm_status("qmp: client does not read its replies (%zu bytes "
                           "pending): dropped", mon->out->len);
                vmm_monitor_drop_client(mon);
                return;
            }
            if (!mon->out_watch) {
                mon->out_watch = g_unix_fd_add(mon->fd, G_IO_OUT,
                                               vmm_monitor_writable, mon);
            }
            return;
        }
        if (n <= 0) {
            /* The reader side sees the hang-up and drops the client. */
            g_string_truncate(mon->out, 0);
            return;
        }
        g_string_erase(mon->out, 0, n);
    }
    if (mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
}

static gboolean vmm_monitor_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    VmmMonitor *mon = opaque;

    mon->out_watch = 0;
    vmm_monitor_flush(mon);
    return G_SOURCE_REMOVE;
}

/* Queues node (consumed) as one line: QEMU ends each with CR LF. */
static void vmm_monitor_send_node(VmmMonitor *mon, JsonNode *node)
{
    g_autofree char *text = json_to_string(node, FALSE);

    json_node_unref(node);
    if (mon->fd < 0) {
        return;
    }
    g_string_append(mon->out, text);
    g_string_append(mon->out, "\r\n");
    vmm_monitor_flush(mon);
}

/* Appends s, valid UTF-8, as a JSON string: runs of plain bytes at once. */
static void vmm_monitor_append_quoted(GString *out, const char *s)
{
    const char *plain = s;

    g_string_append_c(out, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        g_string_append_len(out, plain, s - plain);
        if (c < 0x20) {
            g_string_append_printf(out, "\\u%04x", c);
        } else {
            g_string_append_c(out, '\\');
            g_string_append_c(out, (char)c);
        }
        plain = s + 1;
    }
    g_string_append_len(out, plain, s - plain);
    g_string_append_c(out, '"');
}

/*
 * Written straight as text, not built as a JSON tree and serialised: a
 * client that sends garbage gets an error per bad value, and the tree
 * took a score of allocations per error (two thirds of the monitor's
 * time under fuzz-qmp's garbage).
 */
static void vmm_monitor_send_error(VmmMonitor *mon, JsonNode *id, int cls,
                                   const char *desc)
{
    /*
     * A desc may quote what the client sent (json-glib's parse errors do,
     * cut in the middle of a UTF-8 sequence): the reply must stay JSON.
     */
    g_autofree char *valid = NULL;

    if (mon->fd < 0) {
        return;
    }
    valid = g_utf8_make_valid(desc, -1);
    g_string_append(mon->out, "{\"error\":{\"class\":");
    vmm_monitor_append_quoted(mon->out, vmm_qmp_class_name(cls));
    g_string_append(mon->out, ",\"desc\":");
    vmm_monitor_append_quoted(mon->out, valid);
    g_string_append_c(mon->out, '}');
    if (id) {
        g_autofree char *text = json_to_string(id, FALSE);

        g_string_append(mon->out, ",\"id\":");
        g_string_append(mon->out, text);
    }
    g_string_append(mon->out, "}\r\n");
    vmm_monitor_flush(mon);
}

void vmm_monitor_event(VmmMonitor *mon, const char *name, JsonObject *data)
{
    JsonObject *top = json_object_new();
    JsonObject *ts = json_object_new();
    gint64 now = g_get_real_time();
    JsonNode *node;

    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_string_member(top, "event", name);
    if (data) {
        json_object_set_object_member(top, "data", data);
    }
    json_object_set_object_member(top, "timestamp", ts);
    node = vmm_qmp_object_node(top);
    if (mon->fd < 0 || !mon->negotiated) {
        json_node_unref(node);
        return;
    }
    if (mon->in_command) {
        g_ptr_array_add(mon->pending_events, json_to_string(node, FALSE));
        json_node_unref(node);
        return;
    }
    vmm_monitor_send_node(mon, node);
}

/* Every member of o is in allowed; what names them in the error ("Parameter"). */
static bool vmm_qmp_check_members(JsonObject *o, const char *const *allowed,
                                  const char *what, GError **errp)
{
    GList *members = json_object_get_members(o);
    bool ok = true;

    for (GList *l = members; l && ok; l = l->next) {
        bool known = false;

        for (const char *const *k = allowed; *k && !known; k++) {
            known = !strcmp(*k, l->data);
        }
        if (!known) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "%s '%s' is unexpected", what, (const char *)l->data);
            ok = false;
        }
    }
    g_list_free(members);
    return ok;
}

/* ---- commands --------------------------------------------------------- */

void vmm_monitor_register(VmmMonitor *mon, const char *name, VmmQmpHandler fn,
                          void *opaque)
{
    VmmQmpCommand *c = g_new0(VmmQmpCommand, 1);

    for (guint i = 0; i < mon->commands->len; i++) {
        g_assert(strcmp(((VmmQmpCommand *)mon->commands->pdata[i])->name, name));
    }
    c->name = g_strdup(name);
    c->fn = fn;
    c->opaque = opaque;
    g_ptr_array_add(mon->commands, c);
}

static void vmm_qmp_command_free(gpointer p)
{
    VmmQmpCommand *c = p;

    g_free(c->name);
    g_free(c);
}

static const VmmQmpCommand *vmm_monitor_find(VmmMonitor *mon, const char *name)
{
    for (guint i = 0; i < mon->commands->len; i++) {
        const VmmQmpCommand *c = mon->commands->pdata[i];

        if (!strcmp(c->name, name)) {
            return c;
        }
    }
    return NULL;
}

static JsonNode *vmm_qmp_capabilities(VmmMonitor *mon, JsonObject *args, void *opaque,
                                      GError **errp)
{
    static const char *const allowed[] = { "enable", NULL };
    JsonNode *enable;

    if (!vmm_qmp_check_args(args, allowed, errp)) {
        return NULL;
    }
    /* We offer no capability (the greeting says []), so none can be enabled. */
    enable = json_object_get_member(args, "enable");
    if (enable && JSON_NODE_HOLDS_ARRAY(enable) &&
        json_array_get_length(json_node_get_array(enable)) > 0) {
        JsonNode *first = json_array_get_element(json_node_get_array(enable), 0);
        const char *cap = JSON_NODE_HOLDS_VALUE(first) &&
                          json_node_get_value_type(first) == G_TYPE_STRING ?
                          json_node_get_string(first) : "?";

        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Capability '%s' not available", cap);
        return NULL;
    }
    if (enable && !JSON_NODE_HOLDS_ARRAY(enable)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Invalid parameter type for 'enable', expected: array");
        return NULL;
    }
    mon->negotiated = true;
    return NULL;
}

static JsonNode *vmm_qmp_query_commands(VmmMonitor *mon, JsonObject *args, void *opaque,
                                        GError **errp)
{
    JsonArray *a;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    a = json_array_new();
    for (guint i = 0; i < mon->commands->len; i++) {
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "name",
                                      ((VmmQmpCommand *)mon->commands->pdata[i])->name);
        json_array_add_object_element(a, o);
    }
    return vmm_qmp_array_node(a);
}

static JsonNode *vmm_qmp_quit(VmmMonitor *mon, JsonObject *args, void *opaque,
                              GError **errp)
{
    JsonObject *data;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    data = json_object_new();
    json_object_set_boolean_member(data, "guest", FALSE);
    json_object_set_string_member(data, "reason", "host-qmp-quit");
    vmm_monitor_event(mon, "SHUTDOWN", data);
    vmm_status("qmp: quit");
    if (mon->quit) {
        mon->quit(mon->quit_opaque);
    }
    return NULL;
}

/* Runs one complete request (root of a parsed value). */
static void vmm_monitor_dispatch(VmmMonitor *mon, JsonNode *root)
{
    static const char *const top_keys[] = { "execute", "arguments", "id", NULL };
    g_autoptr(GError) err = NULL;
    JsonObject *req, *args;
    JsonNode *id, *exec, *argn, *ret;
    const VmmQmpCommand *cmd;
    const char *name;
    g_autoptr(JsonObject) empty = json_object_new();

    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        vmm_monitor_send_error(mon, NULL, VMM_QMP_ERROR_GENERIC,
                               "QMP input must be a JSON object");
        return;
    }
    req = json_node_get_object(root);
    id = json_object_get_member(req, "id");
    exec = json_object_get_member(req, "execute");
    if (!exec) {
        vmm_monitor_send_error(mon, id, VMM_QMP_ERROR_GENERIC,
                               "QMP input lacks member 'execute'");
        return;
    }
    if (!JSON_NODE_HOLDS_VALUE(exec) || json_node_get_value_type(exec) != G_TYPE_STRING) {
        vmm_monitor_send_error(mon, id, VMM_QMP_ERROR_GENERIC,
                               "QMP input member 'execute' must be a string");
        return;
    }
    if (!vmm_qmp_check_members(req, top_keys, "QMP input member", &err)) {
        vmm_monitor_send_error(mon, id, VMM_QMP_ERROR_GENERIC, err->message);
        return;
    }
    argn = json_object_get_member(req, "arguments");
    if (argn && !JSON_NODE_HOLDS_OBJECT(argn)) {
        vmm_monitor_send_error(mon, id, VMM_QMP_ERROR_GENERIC,
                               "QMP input member 'arguments' must be an object");
        return;
    }
    args = argn ? json_node_get_object(argn) : empty;
    name = json_node_get_string(exec);

    if (!mon->negotiated && strcmp(name, "qmp_capabilities")) {
        vmm_monitor_send_error(mon, id, VMM_QMP_ERROR_COMMAND_NOT_FOUND,
                               "Expecting capabilities negotiation with "
                               "'qmp_capabilities'");
        return;
    }
    if (mon->negotiated && !strcmp(name, "qmp_capabilities")) {
        vmm_monitor_send_error(mon, id, VMM_QMP_ERROR_COMMAND_NOT_FOUND,
                               "Capabilities negotiation is already complete, "
                               "command ignored");
        return;
    }
    cmd = vmm_monitor_find(mon, name);
    if (!cmd) {
        g_autofree char *msg = g_strdup_printf("The command %s has not been found",
                                               name);

        vmm_monitor_send_error(mon, id, VMM_QMP_ERROR_COMMAND_NOT_FOUND, msg);
        return;
    }

    mon->in_command = true;
    ret = cmd->fn(mon, args, cmd->opaque, &err);
    mon->in_command = false;
    if (err) {
        vmm_monitor_send_error(mon, id, err->domain == VMM_QMP_ERROR ? err->code :
                               VMM_QMP_ERROR_GENERIC, err->message);
        if (ret) {
            json_node_unref(ret);
        }
    } else {
        JsonObject *top = json_object_new();

        if (!ret) {
            ret = vmm_qmp_object_node(json_object_new());
        }
        json_object_set_member(top, "return", ret);
        if (id) {
            json_object_set_member(top, "id", json_node_copy(id));
        }
        vmm_monitor_send_node(mon, vmm_qmp_object_node(top));
    }
    for (guint i = 0; i < mon->pending_events->len; i++) {
        if (mon->fd >= 0) {
            g_string_append(mon->out, mon->pending_events->pdata[i]);
            g_string_append(mon->out, "\r\n");
        }
    }
    g_ptr_array_set_size(mon->pending_events, 0);
    vmm_monitor_flush(mon);
}

/* ---- input ------------------------------------------------------------ */

static void vmm_monitor_scan_reset(VmmMonitor *mon)
{
    g_string_truncate(mon->in, 0);
    mon->scan_pos = 0;
    mon->depth = 0;
    mon->in_string = false;
    mon->escape = false;
}

/*
 * Whether every string of the value, member names included, is valid
 * UTF-8. Valid UTF-8 on the wire is not enough: json-glib decodes a \u
 * escape cut short by taking the bytes after it as its digits, so
 * "\u00e" followed by a two-byte character leaves a stray continuation
 * byte in the string. A command echoes strings (the id, a device name),
 * and its reply would no longer be JSON. The scanner bounds the depth.
 */
static bool vmm_qmp_node_utf8_valid(JsonNode *node)
{
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT: {
        JsonObjectIter it;
        const char *name;
        JsonNode *member;

        json_object_iter_init(&it, json_node_get_object(node));
        while (json_object_iter_next(&it, &name, &member)) {
            if (!g_utf8_validate(name, -1, NULL) || !vmm_qmp_node_utf8_valid(member)) {
                return false;
            }
        }
        return true;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *a = json_node_get_array(node);

        for (guint i = 0; i < json_array_get_length(a); i++) {
            if (!vmm_qmp_node_utf8_valid(json_array_get_element(a, i))) {
                return false;
            }
        }
        return true;
    }
    case JSON_NODE_VALUE:
        return json_node_get_value_type(node) != G_TYPE_STRING ||
               g_utf8_validate(json_node_get_string(node), -1, NULL);
    case JSON_NODE_NULL:
        break;
    }
    return true;
}

static void vmm_monitor_parse_value(VmmMonitor *mon, const char *text, size_t len)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) err = NULL;

    if (!json_parser_load_from_data(parser, text, (gssize)len, &err)) {
        g_autofree char *msg = g_strdup_printf("JSON parse error, %s", err->message);

        vmm_monitor_send_error(mon, NULL, VMM_QMP_ERROR_GENERIC, msg);
        return;
    }
    if (!vmm_qmp_node_utf8_valid(json_parser_get_root(parser))) {
        vmm_monitor_send_error(mon, NULL, VMM_QMP_ERROR_GENERIC,
                               "JSON parse error, a string is not valid UTF-8");
        return;
    }
    vmm_monitor_dispatch(mon, json_parser_get_root(parser));
}

/*
 * Scans the new bytes of mon->in; each complete top-level value is run
 * and removed. Returns false when the client must be dropped.
 */
static bool vmm_monitor_scan(VmmMonitor *mon)
{
    while (mon->fd >= 0 && mon->scan_pos < mon->in->len) {
        char ch = mon->in->str[mon->scan_pos++];

        if (mon->in_string) {
            if (mon->escape) {
                mon->escape = false;
            } else if (ch == '\\') {
                mon->escape = true;
            } else if (ch == '"') {
                mon->in_string = false;
            }
            continue;
        }
        switch (ch) {
        case '"':
            if (mon->depth == 0) {
                goto stray;
            }
            mon->in_string = true;
            break;
        case '{':
        case '[':
            if (++mon->depth > VMM_QMP_MAX_DEPTH) {
                vmm_monitor_send_error(mon, NULL, VMM_QMP_ERROR_GENERIC,
                                       "JSON parse error, nesting too deep");
                return false;
            }
            break;
        case '}':
        case ']':
            if (mon->depth == 0) {
                vmm_monitor_send_error(mon, NULL, VMM_QMP_ERROR_GENERIC,
                                       "JSON parse error, unbalanced bracket");
                g_string_erase(mon->in, 0, mon->scan_pos);
                mon->scan_pos = 0;
                continue;
            }
            if (--mon->depth == 0) {
                size_t len = mon->scan_pos;
                g_autofree char *value = g_strndup(mon->in->str, len);

                g_string_erase(mon->in, 0, mon->scan_pos);
                mon->scan_pos = 0;
                vmm_monitor_parse_value(mon, value, len);
            }
            break;
        default:
        stray:
            if (mon->depth == 0 && !g_ascii_isspace(ch)) {
                /* Only objects are requests; a stray token is reported once. */
                vmm_monitor_send_error(mon, NULL, VMM_QMP_ERROR_GENERIC,
                                       "JSON parse error, expecting a JSON object");
                g_string_erase(mon->in, 0, mon->scan_pos);
                mon->scan_pos = 0;
            } else if (mon->depth == 0) {
                g_string_erase(mon->in, 0, mon->scan_pos);
                mon->scan_pos = 0;
            }
            break;
        }
    }
    if (mon->in->len > VMM_QMP_MAX_VALUE) {
        vmm_monitor_send_error(mon, NULL, VMM_QMP_ERROR_GENERIC,
                               "JSON parse error, command larger than 64 KiB");
        return false;
    }
    return true;
}

static gboolean vmm_monitor_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    VmmMonitor *mon = opaque;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    bool ok;

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        mon->in_watch = 0;
        vmm_monitor_drop_client(mon);
        return G_SOURCE_REMOVE;
    }
    g_string_append_len(mon->in, buf, n);
    mon->hold_output = true;
    ok = vmm_monitor_scan(mon);
    mon->hold_output = false;
    /* On failure too: say why before going, the error reply is queued. */
    vmm_monitor_flush(mon);
    if (!ok) {
        mon->in_watch = 0;
        vmm_monitor_drop_client(mon);
        return G_SOURCE_REMOVE;
    }
    /* A command (quit) may have dropped the client from inside. */
    return mon->fd == fd ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* ---- connections ------------------------------------------------------ */

static gboolean vmm_monitor_accept(gint fd, GIOCondition cond, gpointer opaque);

static void vmm_monitor_greet(VmmMonitor *mon)
{
    JsonObject *ver = json_object_new();
    JsonObject *qemu = json_object_new();
    JsonObject *qmp = json_object_new();
    JsonObject *top = json_object_new();
    g_auto(GStrv) parts = g_strsplit(VMM_VERSION, ".", 3);

    /* QEMU's shape; the numbers are ours, so clients can tell. */
    json_object_set_int_member(qemu, "major", parts[0] ? atoi(parts[0]) : 0);
    json_object_set_int_member(qemu, "minor", parts[0] && parts[1] ? atoi(parts[1]) : 0);
    json_object_set_int_member(qemu, "micro", parts[0] && parts[1] && parts[2] ?
                               atoi(parts[2]) : 0);
    json_object_set_object_member(ver, "qemu", qemu);
    json_object_set_string_member(ver, "package", "vhost-user-vmm");
    json_object_set_object_member(qmp, "version", ver);
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(top, "QMP", qmp);
    vmm_monitor_send_node(mon, vmm_qmp_object_node(top));
}

static void vmm_monitor_attach(VmmMonitor *mon, int fd)
{
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    mon->fd = fd;
    mon->negotiated = false;
    vmm_monitor_scan_reset(mon);
    g_string_truncate(mon->out, 0);
    mon->in_watch = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                  vmm_monitor_readable, mon);
    /* One client at a time, as QEMU's QMP: others wait in the backlog. */
    if (mon->listen_watch) {
        g_source_remove(mon->listen_watch);
        mon->listen_watch = 0;
    }
    vmm_monitor_greet(mon);
}

static void vmm_monitor_drop_client(VmmMonitor *mon)
{
    if (mon->fd < 0) {
        return;
    }
    if (mon->in_watch) {
        g_source_remove(mon->in_watch);
        mon->in_watch = 0;
    }
    if (mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
    close(mon->fd);
    mon->fd = -1;
    g_string_truncate(mon->out, 0);
    vmm_monitor_scan_reset(mon);
    if (mon->listen_fd >= 0 && !mon->listen_watch) {
        mon->listen_watch = g_unix_fd_add(mon->listen_fd, G_IO_IN,
                                          vmm_monitor_accept, mon);
    }
}

static gboolean vmm_monitor_accept(gint fd, GIOCondition cond, gpointer opaque)
{
    VmmMonitor *mon = opaque;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (c < 0) {
        return G_SOURCE_CONTINUE;
    }
    mon->listen_watch = 0;
    vmm_monitor_attach(mon, c);
    return G_SOURCE_REMOVE;
}

VmmMonitor *vmm_monitor_new(const char *path, bool wait, void (*quit)(void *opaque),
                            void *quit_opaque, GError **errp)
{
    VmmMonitor *mon = g_new0(VmmMonitor, 1);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;

    mon->path = g_strdup(path);
    mon->listen_fd = -1;
    mon->fd = -1;
    mon->in = g_string_new(NULL);
    mon->out = g_string_new(NULL);
    mon->pending_events = g_ptr_array_new_with_free_func(g_free);
    mon->commands = g_ptr_array_new_with_free_func(vmm_qmp_command_free);
    mon->quit = quit;
    mon->quit_opaque = quit_opaque;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "-qmp: socket path '%s' is longer than %zu bytes", path,
                    sizeof(sa.sun_path) - 1);
        goto fail;
    }
    strcpy(sa.sun_path, path);
    /* Replace a socket left by an earlier run, never any other file. */
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    mon->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (mon->listen_fd < 0 ||
        bind(mon->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(mon->listen_fd, 4) < 0) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "-qmp: cannot listen on %s: %s", path, g_strerror(errno));
        goto fail;
    }

    vmm_monitor_register(mon, "qmp_capabilities", vmm_qmp_capabilities, NULL);
    vmm_monitor_register(mon, "query-commands", vmm_qmp_query_commands, NULL);
    vmm_monitor_register(mon, "quit", vmm_qmp_quit, NULL);

    if (wait) {
        int c;

        vmm_status("qmp: waiting for a client on %s", path);
        do {
            c = accept4(mon->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        } while (c < 0 && errno == EINTR);
        if (c < 0) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "-qmp: accept on %s: %s", path, g_strerror(errno));
            goto fail;
        }
        vmm_monitor_attach(mon, c);
    } else {
        mon->listen_watch = g_unix_fd_add(mon->listen_fd, G_IO_IN,
                                          vmm_monitor_accept, mon);
    }
    return mon;

fail:
    vmm_monitor_free(mon);
    return NULL;
}

void vmm_monitor_free(VmmMonitor *mon)
{
    if (!mon) {
        return;
    }
    vmm_monitor_flush(mon);
    if (mon->listen_watch) {
        g_source_remove(mon->listen_watch);
        mon->listen_watch = 0;
    }
    if (mon->listen_fd >= 0) {
        close(mon->listen_fd);
        unlink(mon->path);
    }
    mon->listen_fd = -1;
    vmm_monitor_drop_client(mon);
    g_string_free(mon->in, TRUE);
    g_string_free(mon->out, TRUE);
    g_ptr_array_unref(mon->pending_events);
    g_ptr_array_unref(mon->commands);
    g_free(mon->path);
    g_free(mon);
}

/* ---- argument helpers ------------------------------------------------- */

bool vmm_qmp_no_args(JsonObject *args, GError **errp)
{
    static const char *const none[] = { NULL };

    return vmm_qmp_check_members(args, none, "Parameter", errp);
}

bool vmm_qmp_check_args(JsonObject *args, const char *const *allowed, GError **errp)
{
    return vmm_qmp_check_members(args, allowed, "Parameter", errp);
}

static JsonNode *vmm_qmp_member(JsonObject *args, const char *name, bool required,
                                GError **errp)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n && required) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Parameter '%s' is missing", name);
    }
    return n;
}

static void vmm_qmp_type_error(const char *name, const char *expected, GError **errp)
{
    g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                "Invalid parameter type for '%s', expected: %s", name, expected);
}

bool vmm_qmp_arg_str(JsonObject *args, const char *name, bool required,
                     const char **out, GError **errp)
{
    GError *err = NULL;
    JsonNode *n = vmm_qmp_member(args, name, required, &err);

    *out = NULL;
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    if (!n) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
        vmm_qmp_type_error(name, "string", errp);
        return false;
    }
    *out = json_node_get_string(n);
    return true;
}

bool vmm_qmp_arg_size(JsonObject *args, const char *name, bool required,
                      uint64_t *out, GError **errp)
{
    GError *err = NULL;
    JsonNode *n = vmm_qmp_member(args, name, required, &err);

    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    if (!n) {
        return true;
    }
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64) {
        gint64 v = json_node_get_int(n);

        if (v < 0) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "Parameter '%s' expects a non-negative integer, got %" PRId64,
                        name, (int64_t)v);
            return false;
        }
        *out = (uint64_t)v;
        return true;
    }
    /* Also "2M", like the command line, for people typing by hand. */
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING &&
        vmm_parse_size(json_node_get_string(n), 1, out)) {
        return true;
    }
    vmm_qmp_type_error(name, "uint64 (or a size string like \"2M\")", errp);
    return false;
}

bool vmm_qmp_arg_bool(JsonObject *args, const char *name, bool *out, GError **errp)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN) {
        vmm_qmp_type_error(name, "boolean", errp);
        return false;
    }
    *out = json_node_get_boolean(n);
    return true;
}
