/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The tests' QMP client; see qmp-client.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp-client.h"

struct QmpClient {
    int fd;
    GString *in;                /* received, not yet split into lines */
    bool gone;                  /* the VMM closed the socket (EOF or reset) */
    GPtrArray *events;          /* JsonNode * of every event */
    unsigned next_id;
    QmpClientLogFn log_fn;      /* the VMM's stderr so far, or NULL */
    void *log_opaque;
};

/* Lines of the VMM's stderr shown before a fatal error. */
#define QMP_CLIENT_LOG_TAIL     80

/*
 * A failure to talk to the VMM ends the test: first the tail of the
 * VMM's stderr (why it closed the socket or went silent is usually
 * there), then g_error with msg.
 */
static void qmp_client_fatal(QmpClient *c, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3) G_GNUC_NORETURN;

static void qmp_client_fatal(QmpClient *c, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (c && c->log_fn) {
        g_autofree char *log = c->log_fn(c->log_opaque);
        const char *tail = log ? log + strlen(log) : NULL;
        unsigned n = 0;

        /* Back over QMP_CLIENT_LOG_TAIL lines (the last newline ends the last one). */
        while (tail && tail > log && n <= QMP_CLIENT_LOG_TAIL) {
            tail--;
            n += *tail == '\n';
        }
        if (tail && n > QMP_CLIENT_LOG_TAIL) {
            tail++;
        }
        fprintf(stderr, "%s\n--- the VMM's stderr, last %u lines ---\n%s--- end ---\n",
                msg, QMP_CLIENT_LOG_TAIL, tail ? tail : "(none)\n");
        fflush(stderr);
    }
    g_error("%s", msg);
}

static int qmp_client_try_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    g_assert_cmpuint(strlen(path), <, sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(fd, >=, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One line (without CR LF), or NULL at the deadline or EOF. */
static char *qmp_client_read_line(QmpClient *c, gint64 deadline)
{
    for (;;) {
        char *nl = memchr(c->in->str, '\n', c->in->len);
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        char buf[4096];
        gint64 left;
        ssize_t n;

        if (nl) {
            size_t len = nl - c->in->str;
            char *line = g_strndup(c->in->str, len && nl[-1] == '\r' ? len - 1 : len);

            g_string_erase(c->in, 0, len + 1);
            return line;
        }
        left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0 || poll(&pfd, 1, (int)MIN(left, 1000)) < 0) {
            if (left <= 0 || errno != EINTR) {
                return NULL;
            }
            continue;
        }
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            continue;
        }
        n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            c->gone = true;
            return NULL;
        }
        g_string_append_len(c->in, buf, n);
    }
}

static JsonNode *qmp_client_parse(QmpClient *c, const char *what, const char *line)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;

    if (!json_parser_load_from_data(p, line, -1, &err)) {
        qmp_client_fatal(c, "QMP %s: the VMM sent invalid JSON (%s): %s", what, err->message, line);
    }
    if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        qmp_client_fatal(c, "QMP %s: the VMM sent a non-object: %s", what, line);
    }
    return json_node_copy(json_parser_get_root(p));
}

/*
 * The next reply (events are stored on the way), or g_error; or, with
 * gone_ok, NULL if the VMM closed the socket first.
 */
static JsonNode *qmp_client_wait_reply(QmpClient *c, const char *what, bool gone_ok)
{
    gint64 deadline = g_get_monotonic_time() + QMP_CLIENT_TIMEOUT_MS * 1000ll;

    for (;;) {
        g_autofree char *line = qmp_client_read_line(c, deadline);
        JsonNode *n;

        if (!line && gone_ok && c->gone) {
            return NULL;
        }
        if (!line) {
            qmp_client_fatal(c, "QMP %s: no reply within %d ms (or the VMM closed the socket)",
                    what, QMP_CLIENT_TIMEOUT_MS);
        }
        n = qmp_client_parse(c, what, line);
        if (json_object_has_member(json_node_get_object(n), "event")) {
            g_ptr_array_add(c->events, n);
            continue;
        }
        return n;
    }
}

/* Sends text; false if the VMM is gone (EPIPE, reset) and gone_ok, else g_error. */
static bool qmp_client_send(QmpClient *c, const char *what, const char *text, bool gone_ok)
{
    size_t len = strlen(text), off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 && gone_ok && (errno == EPIPE || errno == ECONNRESET)) {
            c->gone = true;
            return false;
        }
        if (n <= 0) {
            qmp_client_fatal(c, "QMP %s: send: %s", what, g_strerror(errno));
        }
        off += n;
    }
    return true;
}

QmpClient *qmp_client_connect(const char *path, unsigned timeout_ms)
{
    return qmp_client_connect_log(path, timeout_ms, NULL, NULL);
}

QmpClient *qmp_client_connect_log(const char *path, unsigned timeout_ms,
                                  QmpClientLogFn log_fn, void *log_opaque)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    QmpClient *c = g_new0(QmpClient, 1);
    JsonObject *qmp;
    JsonNode *greeting, *reply;

    c->log_fn = log_fn;
    c->log_opaque = log_opaque;
    while ((c->fd = qmp_client_try_connect(path)) < 0) {
        if (g_get_monotonic_time() > deadline) {
            qmp_client_fatal(c, "cannot connect to the QMP socket %s within %u ms", path,
                             timeout_ms);
        }
        g_usleep(20 * 1000);
    }
    c->in = g_string_new(NULL);
    c->events = g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
    c->next_id = 1;

    greeting = qmp_client_wait_reply(c, "greeting", false);
    qmp = json_object_get_object_member(json_node_get_object(greeting), "QMP");
    if (!qmp || !json_object_has_member(qmp, "version") ||
        !json_object_has_member(qmp, "capabilities")) {
        qmp_client_fatal(c, "QMP greeting lacks QMP.version or QMP.capabilities: %s",
                json_to_string(greeting, FALSE));
    }
    json_node_unref(greeting);
    reply = qmp_client_ok(c, "{\"execute\":\"qmp_capabilities\"}");
    json_node_unref(reply);
    return c;
}

void qmp_client_free(QmpClient *c)
{
    if (!c) {
        return;
    }
    close(c->fd);
    g_string_free(c->in, TRUE);
    g_ptr_array_unref(c->events);
    g_free(c);
}

static JsonNode *qmp_client_vcmd(QmpClient *c, bool gone_ok, const char *fmt, va_list ap)
{
    g_autofree char *text = g_strdup_vprintf(fmt, ap);
    g_autofree char *out = NULL;
    JsonNode *req = qmp_client_parse(c, "request", text);
    JsonNode *reply;
    JsonObject *r;
    unsigned id = c->next_id++;

    json_object_set_int_member(json_node_get_object(req), "id", id);
    out = json_to_string(req, FALSE);
    json_node_unref(req);
    if (!qmp_client_send(c, text, out, gone_ok) ||
        !(reply = qmp_client_wait_reply(c, text, gone_ok))) {
        return NULL;
    }
    r = json_node_get_object(reply);
    if (!json_object_has_member(r, "id") ||
        json_object_get_int_member(r, "id") != id) {
        qmp_client_fatal(c, "QMP %s: reply without our id %u: %s", text, id,
                json_to_string(reply, FALSE));
    }
    return reply;
}

JsonNode *qmp_client_cmd(QmpClient *c, const char *fmt, ...)
{
    va_list ap;
    JsonNode *n;

    va_start(ap, fmt);
    n = qmp_client_vcmd(c, false, fmt, ap);
    va_end(ap);
    return n;
}

/* A reply's "return" (a copy; the reply is consumed), or g_error if it failed. */
static JsonNode *qmp_client_take_return(QmpClient *c, JsonNode *reply)
{
    JsonNode *ret = json_object_get_member(json_node_get_object(reply), "return");

    if (!ret) {
        g_autofree char *text = json_to_string(reply, FALSE);

        qmp_client_fatal(c, "QMP command failed: %s", text);
    }
    ret = json_node_copy(ret);
    json_node_unref(reply);
    return ret;
}

JsonNode *qmp_client_ok(QmpClient *c, const char *fmt, ...)
{
    va_list ap;
    JsonNode *reply;

    va_start(ap, fmt);
    reply = qmp_client_vcmd(c, false, fmt, ap);
    va_end(ap);
    return qmp_client_take_return(c, reply);
}

JsonNode *qmp_client_ok_or_gone(QmpClient *c, const char *fmt, ...)
{
    va_list ap;
    JsonNode *reply;

    va_start(ap, fmt);
    reply = qmp_client_vcmd(c, true, fmt, ap);
    va_end(ap);
    return reply ? qmp_client_take_return(c, reply) : NULL;
}

char *qmp_client_fails(QmpClient *c, const char *cls, const char *fmt, ...)
{
    va_list ap;
    JsonNode *reply;
    JsonObject *err;
    char *desc;

    va_start(ap, fmt);
    reply = qmp_client_vcmd(c, false, fmt, ap);
    va_end(ap);
    err = json_object_get_object_member(json_node_get_object(reply), "error");
    if (!err || !json_object_has_member(err, "desc") ||
        !json_object_has_member(err, "class") ||
        (cls && g_strcmp0(json_object_get_string_member(err, "class"), cls))) {
        g_autofree char *text = json_to_string(reply, FALSE);

        qmp_client_fatal(c, "QMP: expected an error%s%s, got: %s", cls ? " of class " : "",
                cls ? cls : "", text);
    }
    desc = g_strdup(json_object_get_string_member(err, "desc"));
    json_node_unref(reply);
    return desc;
}

void qmp_client_wait_event(QmpClient *c, const char *name, unsigned count)
{
    gint64 deadline = g_get_monotonic_time() + QMP_CLIENT_TIMEOUT_MS * 1000ll;

    while (qmp_client_event_count(c, name) < count) {
        g_autofree char *line = qmp_client_read_line(c, deadline);
        JsonNode *n;

        if (!line) {
            qmp_client_fatal(c, "QMP: waited %d ms for event %s #%u, got %u", QMP_CLIENT_TIMEOUT_MS,
                    name, count, qmp_client_event_count(c, name));
        }
        n = qmp_client_parse(c, name, line);
        if (!json_object_has_member(json_node_get_object(n), "event")) {
            qmp_client_fatal(c, "QMP: a reply nobody asked for while waiting for %s: %s", name,
                             line);
        }
        g_ptr_array_add(c->events, n);
    }
}

unsigned qmp_client_event_count(QmpClient *c, const char *name)
{
    unsigned n = 0;

    for (guint i = 0; i < c->events->len; i++) {
        JsonObject *e = json_node_get_object(c->events->pdata[i]);

        n += !g_strcmp0(json_object_get_string_member(e, "event"), name);
    }
    return n;
}

JsonObject *qmp_client_last_event(QmpClient *c, const char *name)
{
    for (guint i = c->events->len; i-- > 0;) {
        JsonObject *e = json_node_get_object(c->events->pdata[i]);

        if (!g_strcmp0(json_object_get_string_member(e, "event"), name)) {
            return json_object_get_object_member(e, "data");
        }
    }
    return NULL;
}

JsonObject *qmp_client_nth_event(QmpClient *c, const char *name, unsigned n)
{
    for (guint i = 0; i < c->events->len; i++) {
        JsonObject *e = json_node_get_object(c->events->pdata[i]);

        if (!g_strcmp0(json_object_get_string_member(e, "event"), name) && n-- == 0) {
            return json_object_get_object_member(e, "data");
        }
    }
    return NULL;
}

void qmp_client_send_raw(QmpClient *c, const char *bytes)
{
    qmp_client_send(c, "raw", bytes, false);
}

char *qmp_client_read_raw(QmpClient *c)
{
    return qmp_client_read_line(c, g_get_monotonic_time() +
                                QMP_CLIENT_TIMEOUT_MS * 1000ll);
}

char *qmp_client_read_raw_ms(QmpClient *c, unsigned timeout_ms)
{
    return qmp_client_read_line(c, g_get_monotonic_time() + timeout_ms * 1000ll);
}
