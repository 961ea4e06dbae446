/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy recovery after a cut connection. Two VMMs, qemu-storage-daemon
 * on both sides sharing one image, a verifying blk workload, postcopy
 * asked in the middle of the first round. The migration goes through a
 * relay in this test process (source -> relay socket -> destination), so
 * the test can cut it: both relay sockets are closed while postcopy runs
 * (max-bandwidth keeps the background stream slow, so the cut lands in
 * the middle).
 *   blk     cut, both sides postcopy-paused (migrate_cancel refused,
 *           migrate-recover / resume refused on the wrong side), then
 *           migrate-recover on the destination, migrate resume=true on
 *           the source through a new relay (after a first attempt to
 *           where nothing listens, which leaves it paused): postcopy-active
 *           again, the source's counters go on; then QMP migrate-pause on
 *           the destination pauses both again (as a hung network would be
 *           handled), and they recover again, this time over TCP (port 0:
 *           the destination says which it got);
 *           completed, nothing missing, every block verifies, the image
 *           is consistent. migrate-recover and resume are refused before
 *           the cut (postcopy-active) too.
 *   ram     the same with -S on the destination and one cut: once
 *           completed both RAMs are equal page by page, so the pages lost
 *           in the cut were sent again. Before the real recovery the
 *           source resumes twice to a fake destination (this test) that
 *           answers the handshake with a range outside guest RAM, then
 *           with a count that does not match its ranges: each attempt
 *           fails naming that, and the source stays paused
 *   preempt blk with postcopy-preempt on both sides (the relay forwards the
 *           second connection too, and cuts it with the first): requests
 *           go on it until the first cut, on the main connection after
 *   quit-paused  both sides paused, QMP quit to the source and SIGTERM to
 *           the destination: each exits within QUIT_MS, after one request,
 *           with 1 (-workload: the workloads could not verify);
 *           quit-paused-no-workload: the same without -workload exits 0,
 *           as QEMU does for a requested quit
 *   preempt-cut  postcopy-preempt, and the relay cuts the second connection
 *           alone mid-postcopy: no pause, the requests go on the main
 *           connection, completed, every block verifies
 *   preempt-cut-early  the same cut during precopy (the second connection
 *           is made at the start): the source says so at the switch and
 *           serves every request on the main connection; completed,
 *           verified
 *   lost-ack  the relay cuts instead of passing the destination's final
 *           VUOK: the source pauses (past END), migrate-recover on the
 *           completed destination and resume find nothing lacking, the
 *           source completes, every block verifies
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "postcopy-harness.h"

#define IMAGE_SIZE          (64ull << 20)
#define SEED                13u
#define RAM_MB              64
/* 64 MiB at 8 MiB/s: the background stream lasts seconds, room for a cut. */
#define BW                  (8ll << 20)
/* quit or SIGTERM while paused: the VMM is gone within this. */
#define QUIT_MS             5000
/*
 * With -workload the exit status says whether every workload verified: one
 * abandoned in postcopy-paused did not (1). Without, a requested quit is 0.
 */
#define QUIT_WL_EXIT        1

/* ---- the relay ---------------------------------------------------------- */

typedef struct Relay {
    int lfd;                    /* ours, the source connects here */
    char *to;                   /* the destination's socket path */
    GThread *thread;
    GMutex lock;
    int a, b;                   /* source side, destination side; -1 until connected */
    int a2, b2;                 /* a second connection (postcopy-preempt), -1: none */
    bool connected;
    char *err;
    int drop_ack;               /* atomic: cut instead of passing the destination's "VUOK" */
    int cut_pre;                /* atomic: the second connection's end is its own */
    int ack_dropped;            /* atomic: it did */
    uint32_t ack_win;           /* the relay thread's: last bytes from the destination */
} Relay;

static int unix_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static bool write_all(int fd, const char *b, size_t n)
{
    while (n) {
        ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/*
 * With drop_ack, the bytes of the return path before "VUOK" (their count,
 * which may end inside the tag), or -1 when n bytes hold no complete tag.
 * win carries the last bytes across reads. Requests cannot hold the tag:
 * guest RAM's addresses are far below 0x56554f4b.
 */
static ssize_t relay_ack_at(Relay *r, const char *b, ssize_t n, uint32_t *win)
{
    if (!g_atomic_int_get(&r->drop_ack)) {
        return -1;
    }
    for (ssize_t k = 0; k < n; k++) {
        *win = (*win << 8) | (uint8_t)b[k];
        if (*win == 0x56554f4bu) {
            return k >= 3 ? k - 3 : 0;
        }
    }
    return -1;
}

/*
 * Copies what fd from has to fd to; false when either ended. On the main
 * connection's return path (ret), drop_ack cuts at the destination's VUOK.
 */
static bool relay_copy(Relay *r, int from, int to, bool ret)
{
    static char buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));
    ssize_t ack = ret && n > 0 ? relay_ack_at(r, buf, n, &r->ack_win) : -1;

    if (ack >= 0) {
        /* The destination's last word never reaches the source. */
        write_all(to, buf, (size_t)ack);
        g_atomic_int_set(&r->ack_dropped, 1);
        return false;
    }
    return n > 0 && write_all(to, buf, (size_t)n);
}

/*
 * Accepts the source, connects to the destination, copies both ways until
 * either ends (or, with drop_ack, the destination's "VUOK" comes: cut);
 * a second connection of the source (postcopy-preempt) is relayed too,
 * and ends with the first.
 */
static gpointer relay_thread(gpointer opaque)
{
    Relay *r = opaque;
    int a = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC), b = -1;

    if (a >= 0) {
        b = unix_connect(r->to);
    }
    g_mutex_lock(&r->lock);
    r->a = a;
    r->b = b;
    r->connected = a >= 0 && b >= 0;
    if (!r->connected) {
        r->err = g_strdup_printf("relay: %s: %s", a < 0 ? "accept" : "connect",
                                 g_strerror(errno));
    }
    g_mutex_unlock(&r->lock);
    while (a >= 0 && b >= 0) {
        struct pollfd p[5] = {
            { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN },
            { .fd = r->a2, .events = POLLIN }, { .fd = r->b2, .events = POLLIN },
            { .fd = r->a2 == -1 ? r->lfd : -1, .events = POLLIN },
        };
        static const int peer[4] = { 1, 0, 3, 2 };

        if (poll(p, 5, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (p[4].revents) {
            int a2 = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
            int b2 = a2 >= 0 ? unix_connect(r->to) : -1;

            g_mutex_lock(&r->lock);
            r->a2 = a2;
            r->b2 = b2;
            g_mutex_unlock(&r->lock);
            if (a2 < 0 || b2 < 0) {
                break;
            }
            continue;
        }
        for (int i = 0; i < 4; i++) {
            if (p[i].fd < 0 || !p[i].revents || relay_copy(r, p[i].fd, p[peer[i]].fd, i == 1)) {
                continue;
            }
            if (i >= 2 && g_atomic_int_get(&r->cut_pre)) {
                /* relay_cut_preempt: the second connection alone ends. */
                g_mutex_lock(&r->lock);
                close(r->a2);
                close(r->b2);
                r->a2 = r->b2 = -2;     /* not -1: no further second connection */
                g_mutex_unlock(&r->lock);
                break;
            }
            /* One side ended: so does the rest, as a proxy's would. */
            g_mutex_lock(&r->lock);
            for (int k = 0; k < 4; k++) {
                if (p[k].fd >= 0) {
                    shutdown(p[k].fd, SHUT_RDWR);
                }
            }
            g_mutex_unlock(&r->lock);
            return NULL;
        }
    }
    return NULL;
}

static Relay *relay_new(Fixture *f, const char *name, const char *to_path, char **uri)
{
    Relay *r = g_new0(Relay, 1);
    g_autofree char *path = g_build_filename(f->dir, name, NULL);

    r->a = r->b = r->a2 = r->b2 = -1;
    r->to = g_strdup(to_path);
    g_mutex_init(&r->lock);
    r->lfd = unix_listen(path);
    if (r->lfd < 0) {
        g_test_fail_printf("relay: listening on %s: %s", path, g_strerror(errno));
        g_free(r->to);
        g_free(r);
        return NULL;
    }
    r->thread = g_thread_new("relay", relay_thread, r);
    *uri = g_strdup_printf("unix:%s", path);
    return r;
}

/* Closes both sides at once: each VMM sees its connection end. */
static void relay_cut(Relay *r)
{
    if (!r) {
        return;
    }
    int *fds[4] = { &r->a, &r->b, &r->a2, &r->b2 };

    g_mutex_lock(&r->lock);
    for (int i = 0; i < 4; i++) {
        if (*fds[i] >= 0) {
            shutdown(*fds[i], SHUT_RDWR);
        }
    }
    g_mutex_unlock(&r->lock);
    /* A relay nobody connected to waits in accept: wake it. */
    shutdown(r->lfd, SHUT_RDWR);
    g_thread_join(r->thread);
    r->thread = NULL;
    for (int i = 0; i < 4; i++) {
        if (*fds[i] >= 0) {
            close(*fds[i]);
        }
        *fds[i] = -1;
    }
}

/*
 * The second connection (postcopy-preempt) alone ends, both sides at once;
 * the first goes on. False if there was none.
 */
static bool relay_cut_preempt(Relay *r)
{
    bool had;

    g_atomic_int_set(&r->cut_pre, 1);
    g_mutex_lock(&r->lock);
    had = r->a2 >= 0 && r->b2 >= 0;
    if (had) {
        shutdown(r->a2, SHUT_RDWR);
        shutdown(r->b2, SHUT_RDWR);
    }
    g_mutex_unlock(&r->lock);
    return had;
}

static void relay_free(Relay *r)
{
    if (!r) {
        return;
    }
    if (r->thread) {
        relay_cut(r);
    }
    close(r->lfd);
    g_mutex_clear(&r->lock);
    g_free(r->err);
    g_free(r->to);
    g_free(r);
}

/* ---- QMP helpers ------------------------------------------------------------ */

static bool expect_ok(MigVmm *v, const char *cmd)
{
    g_autofree char *err = mig_qmp_error(v, cmd);

    if (err) {
        g_test_fail_printf("%s: %s: %s", v->name, cmd, err);
        return false;
    }
    return true;
}

/* query-migrate's ram.transferred, or -1. */
static int64_t transferred(MigVmm *v)
{
    g_autoptr(JsonNode) r = mig_query(v);
    JsonObject *q = json_node_get_object(r);
    JsonObject *ram = json_object_has_member(q, "ram") ?
                      json_object_get_object_member(q, "ram") : NULL;

    return ram ? json_object_get_int_member(ram, "transferred") : -1;
}

/* query-migrate's postcopy.key on the destination (asked now), or -1. */
static int64_t dst_figure(MigVmm *v, const char *key)
{
    g_autoptr(JsonNode) r = mig_query(v);

    return pc_figure(json_node_get_object(r), key);
}

static bool status_is(MigVmm *v, const char *want)
{
    g_autofree char *st = mig_wait_status(v, want, MIG_WAIT_MS);

    if (!st || strcmp(st, want) != 0) {
        g_autofree char *log = proc_log(v->proc);

        if (st) {
            g_test_fail_printf("%s: status %s, waited for %s:\n%s", v->name, st, want, log);
        }
        return false;
    }
    return true;
}

/* ---- a fake destination for the resume handshake ----------------------- */

static bool read_all(int fd, uint8_t *b, size_t n)
{
    while (n) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t r;

        if (poll(&p, 1, MIG_WAIT_MS) <= 0) {
            return false;
        }
        r = read(fd, b, n);
        if (r <= 0) {
            return false;
        }
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static void put_be(uint8_t *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

/*
 * Resumes src to a socket of ours: reads the stream header and the
 * 'postcopy-resume' section header (id 8), answers with answer (len
 * bytes), and waits for the source to give up saying want.
 */
static bool fake_resume(Fixture *f, MigVmm *src, const uint8_t *answer, size_t len,
                        const char *want, unsigned *attempts)
{
    g_autofree char *path = g_build_filename(f->dir, "fake.sock", NULL);
    g_autofree char *cmd = g_strdup_printf("{\"execute\":\"migrate\",\"arguments\":"
                                           "{\"uri\":\"unix:%s\",\"resume\":true}}", path);
    int lfd = unix_listen(path), fd = -1;
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    uint8_t head[16];
    bool ok = false;

    if (lfd < 0 || !expect_ok(src, cmd) || poll(&p, 1, MIG_WAIT_MS) != 1 ||
        (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 || !read_all(fd, head, 16)) {
        g_test_fail_printf("fake destination: no resume connection from the source");
        goto out;
    }
    if (head[8] != 0 || head[9] != 8) {
        g_test_fail_printf("the resume connection's first section is %u, not 8",
                           head[8] << 8 | head[9]);
        goto out;
    }
    ok = write_all(fd, (const char *)answer, len) &&
         wait_log(src->proc, want, 1, MIG_WAIT_MS) &&
         wait_log(src->proc, "postcopy paused (resume to", ++*attempts, MIG_WAIT_MS) &&
         status_is(src, "postcopy-paused");
out:
    if (fd >= 0) {
        close(fd);
    }
    if (lfd >= 0) {
        close(lfd);
    }
    unlink(path);
    return ok;
}

/* A lacking range outside guest RAM; then a count its ranges do not match. */
static bool fake_resumes(Fixture *f, MigVmm *src, unsigned *attempts)
{
    uint8_t b[32];

    memcpy(b, "VURR", 4);
    put_be(b + 4, 1ull << 40, 8);
    put_be(b + 12, 4096, 8);
    if (!fake_resume(f, src, b, 20, "not inside one region of guest RAM", attempts)) {
        return false;
    }
    put_be(b + 4, 0, 8);
    memcpy(b + 20, "VURE", 4);
    put_be(b + 24, 2, 8);
    return fake_resume(f, src, b, 32, "counts 2 missing pages, its ranges hold 1", attempts);
}

/*
 * Until the destination placed pages of the background stream and some
 * are still missing: the stream is in the middle of postcopy.
 */
static bool wait_mid_postcopy(MigVmm *dst)
{
    gint64 end = g_get_monotonic_time() + MIG_WAIT_MS * 1000ll;

    while (g_get_monotonic_time() < end) {
        int64_t placed = dst_figure(dst, "pages-placed");
        int64_t missing = dst_figure(dst, "pages-missing");

        if (placed > 256 && missing > 1024) {
            g_test_message("cutting with %" PRId64 " pages placed, %" PRId64 " missing",
                           placed, missing);
            return true;
        }
        if (missing == 0) {
            break;
        }
        g_usleep(20 * 1000);
    }
    g_test_fail_printf("postcopy did not reach its middle (placed %" PRId64 ", missing %"
                       PRId64 ")", dst_figure(dst, "pages-placed"),
                       dst_figure(dst, "pages-missing"));
    return false;
}

/* query-migrate in postcopy-paused has the cause in error-desc. */
static bool paused_says_why(MigVmm *v)
{
    g_autoptr(JsonNode) r = mig_query(v);
    JsonObject *q = json_node_get_object(r);

    if (!json_object_has_member(q, "error-desc")) {
        g_autofree char *j = json_to_string(r, FALSE);

        g_test_fail_printf("%s: query-migrate in postcopy-paused without error-desc: %s",
                           v->name, j);
        return false;
    }
    g_test_message("%s: paused: %s", v->name, json_object_get_string_member(q, "error-desc"));
    return true;
}

/*
 * Cut the relay (NULL: migrate-pause on the destination instead); both
 * sides pause; the refusals of the paused state.
 */
static bool cut_and_pause(Relay *r, MigVmm *src, MigVmm *dst, int64_t *sent)
{
    if (r) {
        relay_cut(r);
    } else {
        g_autofree char *err = mig_qmp_error(dst, "{\"execute\":\"migrate-pause\"}");

        if (err) {
            g_test_fail_printf("migrate-pause in postcopy-active: %s", err);
            return false;
        }
    }
    if (!status_is(src, "postcopy-paused") || !status_is(dst, "postcopy-paused") ||
        !paused_says_why(src) || !paused_says_why(dst)) {
        return false;
    }
    *sent = transferred(src);
    return mig_expect_error(src, "{\"execute\":\"migrate_cancel\"}", "cannot be cancelled") &&
           mig_expect_error(dst, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:/x\","
                            "\"resume\":true}}", "only an outgoing migration") &&
           mig_expect_error(src, "{\"execute\":\"migrate-recover\",\"arguments\":"
                            "{\"uri\":\"unix:/x\"}}", "only an incoming migration");
}

/* The URI the destination says migrate-recover listens on (tcp:HOST:0 picked a port). */
static char *recover_uri(MigVmm *dst)
{
    static const char needle[] = "migrate-recover listens on ";
    g_autofree char *log = proc_log(dst->proc);
    const char *p = g_strrstr(log, needle);

    return p ? g_strndup(p + strlen(needle), strcspn(p + strlen(needle), "\n")) : NULL;
}

/*
 * migrate-recover on the destination, at name in f's directory with a new
 * relay to it, or (relay_name NULL) at the TCP URI name directly; migrate
 * resume=true on the source there; both postcopy-active. *rp: the relay.
 */
static bool resume(Fixture *f, MigVmm *src, MigVmm *dst, const char *name,
                   const char *relay_name, int64_t sent_before, unsigned *attempts,
                   bool fake, Relay **rp)
{
    g_autofree char *path = g_build_filename(f->dir, name, NULL);
    g_autofree char *cmd = g_strdup_printf("{\"execute\":\"migrate-recover\",\"arguments\":"
                                           "{\"uri\":\"%s%s\"}}", relay_name ? "unix:" : "",
                                           relay_name ? path : name);
    g_autofree char *ruri = NULL;
    g_autofree char *mcmd = NULL;
    gint64 end = g_get_monotonic_time() + MIG_WAIT_MS * 1000ll;
    g_autofree char *dlog = proc_log(dst->proc);
    unsigned listened = qtest_count(dlog, "migrate-recover listens on");

    if (!expect_ok(dst, cmd) ||
        !mig_expect_error(dst, cmd, "already listening") ||
        (relay_name && !(*rp = relay_new(f, relay_name, path, &ruri))) ||
        !wait_log(dst->proc, "migrate-recover listens on", listened + 1, MIG_WAIT_MS) ||
        (!relay_name && !(ruri = recover_uri(dst)))) {
        return false;
    }
    g_test_message("resuming through %s", ruri);
    if (fake && !fake_resumes(f, src, attempts)) {
        return false;
    }
    /* Nothing listens there: the attempt fails, the source stays paused. */
    mcmd = g_strdup_printf("{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:%s/"
                           "nobody.sock\",\"resume\":true}}", f->dir);
    if (!expect_ok(src, mcmd) || !wait_log(src->proc, "postcopy paused (resume to", ++*attempts,
                                           MIG_WAIT_MS) ||
        !status_is(src, "postcopy-paused")) {
        return false;
    }
    g_free(mcmd);
    mcmd = g_strdup_printf("{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
                           "\"resume\":true}}", ruri);
    if (!expect_ok(src, mcmd) || !status_is(dst, "postcopy-active")) {
        return false;
    }
    /* The source's counters go on from where the cut left them. */
    for (;;) {
        g_autofree char *st = mig_status(src);
        int64_t now = transferred(src);

        if (st && !strcmp(st, "postcopy-active") && now > sent_before) {
            g_test_message("source: %" PRId64 " bytes before the cut, %" PRId64 " now",
                           sent_before, now);
            break;
        }
        /* Until the first window after the resume went out. */
        if (!st || (strcmp(st, "postcopy-paused") != 0 && strcmp(st, "postcopy-active") != 0) ||
            (now >= 0 && now < sent_before) || g_get_monotonic_time() > end) {
            g_autofree char *log = proc_log(src->proc);

            g_test_fail_printf("source after resume: status %s, transferred %" PRId64
                               " (%" PRId64 " before):\n%s", st ? st : "?", now,
                               sent_before, log);
            return false;
        }
        g_usleep(20 * 1000);
    }
    return true;
}

/* postcopy-ram, and postcopy-preempt when preempt, on v. */
static bool set_caps(MigVmm *v, bool preempt)
{
    return !preempt ? mig_set_postcopy(v, true) :
           expect_ok(v, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
                     "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true},"
                     "{\"capability\":\"postcopy-preempt\",\"state\":true}]}}");
}

/*
 * Both VMMs (the destination with -S when frozen) over qemu-storage-daemon,
 * capability postcopy-ram on (and postcopy-preempt with preempt), the destination listening, the source's workload running,
 * and *r1 a relay to the destination (its URI in *ruri). False (test
 * failed) if any of it did not come.
 */
static bool start_pair_wl(Fixture *f, bool frozen, bool preempt, bool workload, MigVmm **src,
                          MigVmm **dst, Relay **r1, char **ruri);

static bool start_pair(Fixture *f, bool frozen, bool preempt, MigVmm **src, MigVmm **dst,
                       Relay **r1, char **ruri)
{
    return start_pair_wl(f, frozen, preempt, true, src, dst, r1, ruri);
}

/* start_pair, and without workload: no -workload on either side. */
static bool start_pair_wl(Fixture *f, bool frozen, bool preempt, bool workload, MigVmm **src,
                          MigVmm **dst, Relay **r1, char **ruri)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *dpath = g_build_filename(f->dir, "mig.sock", NULL);
    g_autofree char *duri = g_strdup_printf("unix:%s", dpath);
    g_autofree char *wl = g_strdup_printf("blk0:rw=randrw,bs=4k,iodepth=8,runtime=8s,"
                                          "seed=%u", SEED);
    g_autoptr(GPtrArray) sa = mig_args_new();
    g_autoptr(GPtrArray) da = mig_args_new();
    MigVmmOpts so = { .ram_mb = RAM_MB, .fill = true, .shm_ram = true };
    MigVmmOpts dopts = { .ram_mb = RAM_MB, .incoming = "defer", .frozen = frozen,
                         .shm_ram = true };

    return mig_qsd_pair(f, img, IMAGE_SIZE, workload ? wl : NULL, sa, da) &&
           (*src = mig_vmm_start(f, "src", &so, sa)) &&
           (*dst = mig_vmm_start(f, "dst", &dopts, da)) &&
           set_caps(*src, preempt) && set_caps(*dst, preempt) &&
           mig_incoming(*dst, duri) &&
           (!workload || wait_log((*src)->proc, "blk0: workload started", 1, MIG_WAIT_MS)) &&
           wait_log((*dst)->proc, "migration: incoming from", 1, MIG_WAIT_MS) &&
           (*r1 = relay_new(f, "relay1.sock", dpath, ruri));
}

static void test_recover(Fixture *f, bool frozen, bool preempt)
{
    static const char *const dst_seq[] = { "active", "postcopy-active", "postcopy-paused",
                                           "postcopy-active", "completed", NULL };
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *ruri = NULL;
    MigVmm *src = NULL, *dst = NULL;
    Relay *r1 = NULL, *r2 = NULL, *r3 = NULL;
    g_autofree char *slog = NULL;
    int64_t sent = 0;
    unsigned attempts = 0;
    int code = -1;

    if (!start_pair(f, frozen, preempt, &src, &dst, &r1, &ruri)) {
        goto out;
    }
    /* Nothing to resume or recover before a pause. */
    if (!mig_expect_error(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:/x\","
                          "\"resume\":true}}", "only an outgoing migration in status") ||
        !mig_expect_error(dst, "{\"execute\":\"migrate-recover\",\"arguments\":"
                          "{\"uri\":\"unix:/x\"}}", "only an incoming migration in status")) {
        goto out;
    }
    mig_set_params(src, BW, -1);
    if (!mig_migrate(src, ruri) || !mig_wait_midstream(src, 4u << 20, MIG_WAIT_MS) ||
        !expect_ok(src, "{\"execute\":\"migrate-start-postcopy\"}") ||
        !status_is(dst, "postcopy-active") || !status_is(src, "postcopy-active") ||
        !mig_expect_error(dst, "{\"execute\":\"migrate-recover\",\"arguments\":"
                          "{\"uri\":\"unix:/x\"}}", "status 'postcopy-active'") ||
        !mig_expect_error(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:/x\","
                          "\"resume\":true}}", "status 'postcopy-active'") ||
        !wait_mid_postcopy(dst) || !cut_and_pause(r1, src, dst, &sent) ||
        !resume(f, src, dst, "mig2.sock", "relay2.sock", sent, &attempts, frozen, &r2) ||
        g_test_failed()) {
        goto out;
    }
    if (!frozen) {
        /* migrate-pause in the resumed migration pauses again, and it recovers again. */
        if (!wait_mid_postcopy(dst) || !cut_and_pause(NULL, src, dst, &sent) ||
            !resume(f, src, dst, "tcp:127.0.0.1:0", NULL, sent, &attempts, false, &r3) ||
            g_test_failed()) {
            goto out;
        }
    }
    if (!pc_wait_completed(src, dst, MIG_WAIT_MS * 2, dst_seq)) {
        goto out;
    }
    if (dst_figure(dst, "pages-missing") != 0) {
        g_test_fail_printf("destination: %" PRId64 " pages still missing after completion",
                           dst_figure(dst, "pages-missing"));
        goto out;
    }
    if (!mig_vmm_end(src, &code, NULL, &slog)) {
        goto out;
    }
    /* Each failed attempt pauses again too. */
    if (code != 0 ||
        qtest_count(slog, "migration: postcopy paused") != (frozen ? 1u : 2u) + attempts ||
        qtest_count(slog, "migration: postcopy resumed") != (frozen ? 1u : 2u) ||
        !strstr(slog, "after postcopy")) {
        g_test_fail_printf("source: exit %d, expected %u pauses (%u failed attempts) and %u "
                           "resumes, completion:\n%s", code, (frozen ? 1u : 2u) + attempts,
                           attempts, frozen ? 1u : 2u, slog);
        goto out;
    }
    if (preempt) {
        g_autofree char *dlog = proc_log(dst->proc);

        /* Requested pages went on it until the first cut; the main connection after. */
        if (!strstr(dlog, "postcopy-preempt: the source's second connection is here")) {
            g_test_fail_printf("destination: no postcopy-preempt connection:\n%s", dlog);
            goto out;
        }
    }
    mig_postcopy_verify(src, dst, frozen, img, IMAGE_SIZE, SEED);
out:
    relay_free(r1);
    relay_free(r2);
    relay_free(r3);
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

/*
 * v exits by itself within QUIT_MS of being told to, with status code and
 * the line that says it left postcopy paused.
 */
static bool exits_paused(MigVmm *v, int code)
{
    g_autofree char *log = NULL;
    int got;

    if (!proc_wait(v->proc, QUIT_MS)) {
        log = proc_log(v->proc);
        g_test_fail_printf("%s: still running %u ms after quit/SIGTERM in postcopy-paused:\n%s",
                           v->name, QUIT_MS, log);
        return false;
    }
    got = WIFEXITED(v->proc->wstatus) ? WEXITSTATUS(v->proc->wstatus) : -1;
    log = proc_log(v->proc);
    g_test_message("%s: exit %d", v->name, got);
    if (got != code || !strstr(log, "the VMM exits while postcopy is paused") ||
        strstr(log, "second signal")) {
        g_test_fail_printf("%s: exit %d (want %d) after quit/SIGTERM in postcopy-paused, "
                           "log:\n%s", v->name, got, code, log);
        return false;
    }
    return true;
}

/*
 * Both sides paused, then the source gets QMP quit and the destination
 * SIGTERM: each exits promptly, after one request (no second signal).
 */
static void test_quit(Fixture *f, gconstpointer data)
{
    bool workload = !data;
    g_autofree char *ruri = NULL;
    MigVmm *src = NULL, *dst = NULL;
    Relay *r1 = NULL;
    int64_t sent = 0;

    if (!start_pair_wl(f, false, false, workload, &src, &dst, &r1, &ruri)) {
        goto out;
    }
    mig_set_params(src, BW, -1);
    if (!mig_migrate(src, ruri) || !mig_wait_midstream(src, 4u << 20, MIG_WAIT_MS) ||
        !expect_ok(src, "{\"execute\":\"migrate-start-postcopy\"}") ||
        !status_is(dst, "postcopy-active") || !wait_mid_postcopy(dst) ||
        !cut_and_pause(r1, src, dst, &sent)) {
        goto out;
    }
    json_node_unref(qmp_client_ok(src->qmp, "{\"execute\":\"quit\"}"));
    kill(dst->proc->pid, SIGTERM);
    exits_paused(src, workload ? QUIT_WL_EXIT : 0);
    exits_paused(dst, workload ? QUIT_WL_EXIT : 0);
out:
    relay_free(r1);
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

/*
 * The relay cuts instead of passing the destination's "VUOK" (after END):
 * the destination completed, the source pauses saying it is past END;
 * migrate-recover on the completed destination and resume on the source
 * find nothing lacking: the source completes, the destination stays
 * completed and acknowledged again, the workload verifies.
 */
static void test_lost_ack(Fixture *f, gconstpointer data)
{
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *path = g_build_filename(f->dir, "mig2.sock", NULL);
    g_autofree char *rec = g_strdup_printf("{\"execute\":\"migrate-recover\",\"arguments\":"
                                           "{\"uri\":\"unix:%s\"}}", path);
    g_autofree char *res = g_strdup_printf("{\"execute\":\"migrate\",\"arguments\":"
                                           "{\"uri\":\"unix:%s\",\"resume\":true}}", path);
    g_autofree char *ruri = NULL;
    g_autofree char *st = NULL;
    g_autofree char *dlog = NULL;
    g_autoptr(JsonNode) q = NULL;
    const char *why;
    MigVmm *src = NULL, *dst = NULL;
    Relay *r1 = NULL;

    if (!start_pair(f, false, false, &src, &dst, &r1, &ruri)) {
        goto out;
    }
    g_atomic_int_set(&r1->drop_ack, 1);
    mig_set_params(src, BW, -1);
    if (!mig_migrate(src, ruri) || !mig_wait_midstream(src, 4u << 20, MIG_WAIT_MS) ||
        !expect_ok(src, "{\"execute\":\"migrate-start-postcopy\"}") ||
        !status_is(dst, "completed") || !status_is(src, "postcopy-paused") ||
        !paused_says_why(src)) {
        goto out;
    }
    q = mig_query(src);
    why = json_object_get_string_member(json_node_get_object(q), "error-desc");
    if (!g_atomic_int_get(&r1->ack_dropped) || !strstr(why, "after END")) {
        g_test_fail_printf("the relay dropped VUOK: %d; the source's cause: %s",
                           g_atomic_int_get(&r1->ack_dropped), why);
        goto out;
    }
    if (!expect_ok(dst, rec) ||
        !wait_log(dst->proc, "migrate-recover listens on", 1, MIG_WAIT_MS) ||
        !expect_ok(src, res) || !status_is(src, "completed") ||
        !wait_log(dst->proc, "nothing lacking, acknowledged again", 1, MIG_WAIT_MS)) {
        goto out;
    }
    st = mig_status(dst);
    if (!st || strcmp(st, "completed") != 0) {
        g_test_fail_printf("destination after the second acknowledgement: %s", st ? st : "?");
        goto out;
    }
    if (pc_check_src(src, false)) {
        mig_postcopy_verify(src, dst, false, img, IMAGE_SIZE, SEED);
    }
out:
    relay_free(r1);
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

/*
 * postcopy-preempt, and its second connection alone breaks mid-postcopy:
 * no pause, requested pages go on the main connection (the destination
 * asks again for what was lost on the second), completed and verified.
 * With data (preempt-cut-early) it ends during precopy instead (it is
 * made at the start): the source sees that at the switch, says so, and
 * serves every request on the main connection rather than lose one in a
 * write to a closed peer.
 */
static void test_preempt_cut(Fixture *f, gconstpointer data)
{
    static const char *const dst_seq[] = { "active", "postcopy-active", "completed", NULL };
    g_autofree char *img = g_build_filename(f->dir, "disk.raw", NULL);
    g_autofree char *ruri = NULL;
    g_autofree char *slog = NULL;
    g_autofree char *events = NULL;
    MigVmm *src = NULL, *dst = NULL;
    Relay *r1 = NULL;
    bool early = data != NULL;
    int64_t req0 = 0;
    int code = -1;

    if (!start_pair(f, false, true, &src, &dst, &r1, &ruri)) {
        goto out;
    }
    mig_set_params(src, BW, -1);
    if (!mig_migrate(src, ruri) || !mig_wait_midstream(src, 4u << 20, MIG_WAIT_MS) ||
        !wait_log(dst->proc, "postcopy-preempt: the source's second connection is here", 1,
                  MIG_WAIT_MS)) {
        goto out;
    }
    if (early && !relay_cut_preempt(r1)) {
        g_test_fail_printf("the relay has no second connection to cut");
        goto out;
    }
    if (!expect_ok(src, "{\"execute\":\"migrate-start-postcopy\"}") ||
        !status_is(dst, "postcopy-active")) {
        goto out;
    }
    if (!early) {
        if (!wait_mid_postcopy(dst)) {
            goto out;
        }
        req0 = dst_figure(dst, "requests");
        if (!relay_cut_preempt(r1)) {
            g_test_fail_printf("the relay has no second connection to cut");
            goto out;
        }
        if (!wait_log(dst->proc, "requested pages come on the main connection", 1,
                      MIG_WAIT_MS)) {
            goto out;
        }
    }
    if (!pc_wait_completed(src, dst, MIG_WAIT_MS * 2, dst_seq)) {
        goto out;
    }
    /*
     * Completed means nothing was missing at END. The destination exits
     * once its workload ends: asked no more, its events were kept.
     */
    events = mig_events_str(dst);
    g_test_message("destination: %" PRId64 " requests at the cut; events %s", req0, events);
    if (strstr(events, "postcopy-paused")) {
        g_test_fail_printf("the destination paused: events %s", events);
        goto out;
    }
    if (!mig_vmm_end(src, &code, NULL, &slog)) {
        goto out;
    }
    if (code != 0 || qtest_count(slog, "migration: postcopy paused") ||
        !strstr(slog, "after postcopy") ||
        (early && !strstr(slog, "second connection ended before the switch"))) {
        g_test_fail_printf("source: exit %d, paused, no completion%s:\n%s", code,
                           early ? ", or not said that the second connection had ended" : "",
                           slog);
        goto out;
    }
    mig_postcopy_verify(src, dst, false, img, IMAGE_SIZE, SEED);
out:
    relay_free(r1);
    mig_vmm_free(src);
    mig_vmm_free(dst);
}

static void test_blk(Fixture *f, gconstpointer data)
{
    test_recover(f, false, false);
}

static void test_ram(Fixture *f, gconstpointer data)
{
    test_recover(f, true, false);
}

static void test_preempt(Fixture *f, gconstpointer data)
{
    test_recover(f, false, true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/postcopy-recover/blk", Fixture, NULL, fixture_setup, test_blk,
               fixture_teardown);
    g_test_add("/postcopy-recover/ram", Fixture, NULL, fixture_setup, test_ram,
               fixture_teardown);
    g_test_add("/postcopy-recover/quit-paused", Fixture, NULL, fixture_setup, test_quit,
               fixture_teardown);
    g_test_add("/postcopy-recover/quit-paused-no-workload", Fixture, "", fixture_setup,
               test_quit, fixture_teardown);
    g_test_add("/postcopy-recover/lost-ack", Fixture, NULL, fixture_setup, test_lost_ack,
               fixture_teardown);
    g_test_add("/postcopy-recover/preempt", Fixture, NULL, fixture_setup, test_preempt,
               fixture_teardown);
    g_test_add("/postcopy-recover/preempt-cut-early", Fixture, "early", fixture_setup,
               test_preempt_cut, fixture_teardown);
    g_test_add("/postcopy-recover/preempt-cut", Fixture, NULL, fixture_setup,
               test_preempt_cut, fixture_teardown);
    return g_test_run();
}
