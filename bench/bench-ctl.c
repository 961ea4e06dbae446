/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Control-plane cost: what one request costs through the library against
 * a raw unix-socket request/reply, and how long a device's rings take to
 * come up for 1, 4, 16 and 64 queues.
 *
 * Both sides talk to the same kind of back-end: a thread of this process
 * (one per connection) that reads a message and answers at once. The raw
 * client does what a minimal careful front-end does: one send of the
 * message, one recv of the header, one of the payload. The library side
 * is a chardev and a VhostUserState with REPLY_ACK negotiated, so the
 * SET_VRING_* messages ask for an ack as the library sends them to real
 * back-ends. Times are wall-clock (a round trip is mostly waiting); ours
 * and the anchor alternate, and the ratio printed is the median of the
 * ratios of each pair, so load from other processes hits both sides.
 *
 * Bring-up is vhost_dev_start of a device with N rings (SET_FEATURES,
 * SET_MEM_TABLE, six messages per ring, one SET_VRING_ENABLE per ring),
 * pipelined (the default: acks collected after the batch) and with one
 * round trip per ack (the batch hooks off), in the same run.
 *
 * Usage: bench-ctl [--count]
 *   BENCH_REPS (default 9), BENCH_MSGS (messages per repetition, 2000),
 *   BENCH_QUEUES (only this ring count of the bring-up: 1, 4, 16 or 64).
 *   --count: only run BENCH_MSGS of each message through the library and
 *   then raw, in two threads whose ids are printed to stderr, for
 *   bench-ctl.sh to count syscalls per thread under strace.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "bench-common.h"
#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-conn.h"
#include "system/memory.h"
#include "util/vhost-user-error.h"

#define F_PROTO (1ull << VHOST_USER_F_PROTOCOL_FEATURES)
#define F_V1 (1ull << VIRTIO_F_VERSION_1)
#define PF_USED ((1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
                 (1ull << VHOST_USER_PROTOCOL_F_MQ))
#define MAX_QUEUES 64
#define RING_NUM 256

static G_NORETURN void die(const char *what, GError *err)
{
    fprintf(stderr, "bench-ctl: %s: %s\n", what, err ? err->message : g_strerror(errno));
    exit(1);
}

/* ---- The back-end: answers every message at once ------------------------ */

static bool recv_full(int fd, void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
        struct iovec iov = { (uint8_t *)buf + done, len - done };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
        };
        ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

        if (r <= 0) {
            return false;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (size_t i = 0; c->cmsg_type == SCM_RIGHTS && i < n; i++) {
                int fd_in;

                memcpy(&fd_in, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                close(fd_in);
            }
        }
        done += (size_t)r;
    }
    return true;
}

static gpointer backend_thread(gpointer opaque)
{
    int fd = GPOINTER_TO_INT(opaque);
    VhostUserMsg msg, r;

    while (recv_full(fd, &msg.hdr, sizeof(msg.hdr)) && msg.hdr.size <= sizeof(msg.payload) &&
           (!msg.hdr.size || recv_full(fd, &msg.payload, msg.hdr.size))) {
        memset(&r.hdr, 0, sizeof(r.hdr));
        r.hdr.request = msg.hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
        r.hdr.size = sizeof(uint64_t);
        switch (msg.hdr.request) {
        case VHOST_USER_GET_FEATURES:
            r.payload.u64 = F_PROTO | F_V1;
            break;
        case VHOST_USER_GET_PROTOCOL_FEATURES:
            r.payload.u64 = PF_USED;
            break;
        case VHOST_USER_GET_QUEUE_NUM:
            r.payload.u64 = MAX_QUEUES;
            break;
        case VHOST_USER_GET_VRING_BASE:
            r.payload.state = msg.payload.state;
            r.hdr.size = sizeof(VhostUserVringState);
            break;
        default:
            if (!(msg.hdr.flags & VHOST_USER_NEED_REPLY_MASK)) {
                continue;
            }
            r.payload.u64 = 0;
            break;
        }
        if (send(fd, &r, sizeof(r.hdr) + r.hdr.size, MSG_NOSIGNAL) < 0) {
            break;
        }
    }
    close(fd);
    return NULL;
}

/* A listener in dir; the back-end thread takes the connection it accepts. */
typedef struct Conn {
    char *path;
    int lfd;
    GThread *backend;
} Conn;

static void conn_listen(Conn *c, const char *dir, const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    c->path = g_build_filename(dir, name, NULL);
    g_strlcpy(sa.sun_path, c->path, sizeof(sa.sun_path));
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(c->lfd, 1) < 0) {
        die("listen", NULL);
    }
}

static void conn_accept(Conn *c)
{
    int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        die("accept", NULL);
    }
    close(c->lfd);
    unlink(c->path);
    c->backend = g_thread_new("backend", backend_thread, GINT_TO_POINTER(fd));
}

/* ---- The two clients ------------------------------------------------------ */

typedef struct Bench {
    char *dir;
    Conn lib_conn, raw_conn;
    CharSocket *chr;
    VhostUserState *u;
    int raw_fd;
    unsigned msgs;
} Bench;

typedef enum Kind { K_GET_FEATURES, K_SET_VRING_NUM, K_SET_VRING_ADDR, K_GET_VRING_BASE,
                    K_N } Kind;
static const char *const kind_name[K_N] = {
    "GET_FEATURES", "SET_VRING_NUM", "SET_VRING_ADDR", "GET_VRING_BASE",
};

/* The message of a kind, flags as the library would set them. */
static void make_msg(Kind k, VhostUserMsg *msg)
{
    switch (k) {
    case K_GET_FEATURES:
        vhost_user_msg_init(msg, VHOST_USER_GET_FEATURES, 0);
        break;
    case K_SET_VRING_NUM:
        vhost_user_msg_init(msg, VHOST_USER_SET_VRING_NUM, sizeof(VhostUserVringState));
        msg->payload.state.num = RING_NUM;
        msg->hdr.flags |= VHOST_USER_NEED_REPLY_MASK;
        break;
    case K_SET_VRING_ADDR:
        vhost_user_msg_init(msg, VHOST_USER_SET_VRING_ADDR, sizeof(VhostUserVringAddr));
        msg->payload.addr.desc_user_addr = 0x10000;
        msg->payload.addr.avail_user_addr = 0x11000;
        msg->payload.addr.used_user_addr = 0x12000;
        msg->hdr.flags |= VHOST_USER_NEED_REPLY_MASK;
        break;
    default:
        vhost_user_msg_init(msg, VHOST_USER_GET_VRING_BASE, sizeof(VhostUserVringState));
        break;
    }
}

static void lib_one(Bench *b, Kind k)
{
    VhostUserMsg msg, reply;
    GError *err = NULL;
    bool ok;

    make_msg(k, &msg);
    if (k == K_GET_FEATURES || k == K_GET_VRING_BASE) {
        ok = vhost_user_call(b->u, 0, &msg, &reply, &err);
    } else {
        ok = vhost_user_send(b->u, 0, &msg, NULL, 0, 0, &err);
    }
    if (!ok) {
        die(kind_name[k], err);
    }
}

static void raw_one(Bench *b, Kind k)
{
    VhostUserMsg msg, reply;

    make_msg(k, &msg);
    if (send(b->raw_fd, &msg, sizeof(msg.hdr) + msg.hdr.size, MSG_NOSIGNAL) < 0 ||
        recv(b->raw_fd, &reply.hdr, sizeof(reply.hdr), MSG_WAITALL) != sizeof(reply.hdr) ||
        reply.hdr.size > sizeof(reply.payload) ||
        recv(b->raw_fd, &reply.payload, reply.hdr.size, MSG_WAITALL) != reply.hdr.size) {
        die("raw request", NULL);
    }
}

/* Microseconds per message, BENCH_MSGS of them. */
static double time_msgs(Bench *b, Kind k, bool lib)
{
    gint64 t0 = g_get_monotonic_time();

    for (unsigned i = 0; i < b->msgs; i++) {
        if (lib) {
            lib_one(b, k);
        } else {
            raw_one(b, k);
        }
    }
    return (double)(g_get_monotonic_time() - t0) / b->msgs;
}

static void bench_open(Bench *b)
{
    CharSocketOptions opts = { .id = "chr0" };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    GError *err = NULL;

    b->dir = g_dir_make_tmp("bench-ctl-XXXXXX", NULL);
    if (!b->dir) {
        die("tmp dir", NULL);
    }
    conn_listen(&b->lib_conn, b->dir, "lib.sock");
    conn_listen(&b->raw_conn, b->dir, "raw.sock");
    opts.path = b->lib_conn.path;
    b->chr = char_socket_new(&opts, NULL, &err);
    if (!b->chr || !char_socket_open(b->chr, &err)) {
        die("chardev", err);
    }
    conn_accept(&b->lib_conn);
    b->u = vhost_user_state_new(b->chr, "net0");
    vhost_user_set_features(b->u, F_PROTO | F_V1, PF_USED);

    g_strlcpy(sa.sun_path, b->raw_conn.path, sizeof(sa.sun_path));
    b->raw_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b->raw_fd < 0 || connect(b->raw_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die("raw connect", NULL);
    }
    conn_accept(&b->raw_conn);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static void bench_close(Bench *b)
{
    vhost_user_state_free(b->u);
    char_socket_disconnect(b->chr, "bench done");
    char_socket_free(b->chr);
    close(b->raw_fd);
    g_thread_join(b->lib_conn.backend);
    g_thread_join(b->raw_conn.backend);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    rmdir(b->dir);
    g_free(b->lib_conn.path);
    g_free(b->raw_conn.path);
    g_free(b->dir);
}

/* ---- Per-message cost ----------------------------------------------------- */

static void bench_messages(Bench *b, unsigned reps)
{
    printf("per-message time, us (median of %u alternating repetitions of %u messages)\n",
           reps, b->msgs);
    printf("%-16s %10s %10s %12s\n", "message", "library", "raw", "lib/raw");
    for (Kind k = 0; k < K_N; k++) {
        double lib[reps], raw[reps], ratio[reps];

        /* One round first: the first messages fault pages in. */
        time_msgs(b, k, true);
        time_msgs(b, k, false);
        for (unsigned r = 0; r < reps; r++) {
            /* Alternate which goes first, so neither always follows the other. */
            if (r % 2) {
                raw[r] = time_msgs(b, k, false);
                lib[r] = time_msgs(b, k, true);
            } else {
                lib[r] = time_msgs(b, k, true);
                raw[r] = time_msgs(b, k, false);
            }
            ratio[r] = lib[r] / raw[r];
        }
        printf("%-16s %10.2f %10.2f %11.2fx\n", kind_name[k], median(lib, reps),
               median(raw, reps), median(ratio, reps));
    }
}

/* ---- Bring-up --------------------------------------------------------------- */

static double time_bringup(Bench *b, GuestMemory *mem, unsigned nvqs, const VhostOps *ops)
{
    struct vhost_dev hdev;
    GError *err = NULL;
    gint64 t0;
    double us;

    if (!vhost_dev_init(&hdev, "net0", b->u, ops, mem, 0, nvqs, &err) ||
        !vhost_dev_connect(&hdev, &err) || !vhost_dev_set_acked_features(&hdev, F_V1, &err)) {
        die("vhost_dev", err);
    }
    for (unsigned i = 0; i < nvqs; i++) {
        hdev.vqs[i].num = RING_NUM;
        hdev.vqs[i].desc_gpa = 0x10000ull * (i + 1);
        hdev.vqs[i].avail_gpa = hdev.vqs[i].desc_gpa + 0x1000;
        hdev.vqs[i].used_gpa = hdev.vqs[i].desc_gpa + 0x2000;
    }
    t0 = g_get_monotonic_time();
    if (!vhost_dev_start(&hdev, &err)) {
        die("vhost_dev_start", err);
    }
    us = (double)(g_get_monotonic_time() - t0);
    vhost_dev_stop(&hdev);
    vhost_dev_cleanup(&hdev);
    return us;
}

static void bench_bringup(Bench *b, unsigned reps)
{
    static const unsigned queues[] = { 1, 4, 16, MAX_QUEUES };
    const char *only = g_getenv("BENCH_QUEUES");
    VhostOps unbatched = user_ops;
    GuestMemory *mem = guest_memory_new();
    GError *err = NULL;
    RamBlock *rb = ram_block_new_memfd("ram0", 0x10000ull * (MAX_QUEUES + 2), &err);

    if (!rb || !guest_memory_add(mem, 0, rb, 0, 0x10000ull * (MAX_QUEUES + 2), &err)) {
        die("guest memory", err);
    }
    /* The same start, one round trip per ack: what pipelining saves. */
    unbatched.batch_begin = NULL;
    unbatched.batch_end = NULL;
    printf("\nbring-up (vhost_dev_start), us (median of %u alternating repetitions)\n", reps);
    printf("%-8s %12s %12s %12s %12s\n", "rings", "pipelined", "per ring", "one-by-one",
           "per ring");
    for (unsigned q = 0; q < G_N_ELEMENTS(queues); q++) {
        double pipe[reps], serial[reps], p, s;

        if (only && (unsigned)atoi(only) != queues[q]) {
            continue;
        }

        time_bringup(b, mem, queues[q], &user_ops);
        for (unsigned r = 0; r < reps; r++) {
            if (r % 2) {
                serial[r] = time_bringup(b, mem, queues[q], &unbatched);
                pipe[r] = time_bringup(b, mem, queues[q], &user_ops);
            } else {
                pipe[r] = time_bringup(b, mem, queues[q], &user_ops);
                serial[r] = time_bringup(b, mem, queues[q], &unbatched);
            }
        }
        p = median(pipe, reps);
        s = median(serial, reps);
        printf("%-8u %12.0f %12.1f %12.0f %12.1f\n", queues[q], p, p / queues[q], s,
               s / queues[q]);
    }
    guest_memory_free(mem);
    ram_block_unref(rb);
}

/* ---- --count: each client in a thread of its own, for strace ------------- */

typedef struct CountJob {
    Bench *b;
    bool lib;
} CountJob;

static gpointer count_thread(gpointer opaque)
{
    CountJob *j = opaque;

    fprintf(stderr, "%s-tid=%ld\n", j->lib ? "lib" : "raw", (long)syscall(SYS_gettid));
    for (Kind k = 0; k < K_N; k++) {
        time_msgs(j->b, k, j->lib);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *reps_env = g_getenv("BENCH_REPS");
    const char *msgs_env = g_getenv("BENCH_MSGS");
    unsigned reps = reps_env ? (unsigned)atoi(reps_env) : 9;
    Bench b = { .msgs = msgs_env ? (unsigned)atoi(msgs_env) : 2000 };

    if (reps < 1 || b.msgs < 1) {
        fprintf(stderr, "bench-ctl: BENCH_REPS and BENCH_MSGS must be positive\n");
        return 2;
    }
    bench_open(&b);
    if (argc > 1 && !strcmp(argv[1], "--count")) {
        /* One after the other: the counts must not mix. */
        CountJob lib = { &b, true }, raw = { &b, false };

        g_thread_join(g_thread_new("lib", count_thread, &lib));
        g_thread_join(g_thread_new("raw", count_thread, &raw));
    } else {
        bench_messages(&b, reps);
        bench_bringup(&b, reps);
    }
    bench_close(&b);
    return 0;
}
