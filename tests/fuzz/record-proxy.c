/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: both peers' bytes (a back-end and a VMM) pass through.
 *
 * record-proxy: a vhost-user man in the middle that records a real
 * conversation for the fuzz corpus (tests/fuzz/rec-to-seeds.py turns the
 * recording into seeds; scripts/record-corpus.sh drives both).
 *
 *   record-proxy --listen PATH --connect PATH --out FILE [--once]
 *
 * It listens on PATH for the VMM (which takes it for the back-end), and
 * for each connection it accepts connects to the real back-end's socket.
 * Every message is read whole (header, payload and the fds that came with
 * it), recorded, and written on to the other side as one sendmsg with the
 * same fds: the bytes and the fds are those the sender sent, only the
 * segmentation of the stream may differ. SET_BACKEND_REQ_FD is the one
 * message whose fd is replaced: the back-end gets one end of a socketpair
 * of the proxy's, and the proxy relays between its other end and the
 * VMM's channel, so the back-end channel is recorded too.
 *
 * Recording: a sequence of records, each
 *   "VURC", u8 channel (0 main socket, 1 back-end channel), u8 direction
 *   (0 towards the back-end, 1 towards the VMM), u8 fd count, u8
 *   connection number, u32 message length (little-endian); then per fd a
 *   u64 kind (RecFdKind) and a u64 size (st_size); then the message.
 * A message larger than REC_MAX_MSG ends the connection (no vhost-user
 * message is: the largest payload is a 4 KiB config or a memory table).
 * With --once the proxy exits when its first connection ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/char-io.h"
#include "util/vhost-user-proto.h"

#define REC_MAX_MSG     (64 * 1024)
/* A peer that sent part of a message sends the rest at once: vhost-user does. */
#define REC_WAIT_MS     10000

typedef enum RecFdKind {
    REC_FD_FILE,                /* a regular file or memfd */
    REC_FD_EVENTFD,
    REC_FD_PIPE,
    REC_FD_SOCKET,
    REC_FD_USERFAULTFD,
    REC_FD_OTHER,
} RecFdKind;

enum { CH_MAIN, CH_BACKEND };
enum { TO_BACKEND, TO_VMM };

typedef struct Conn {
    int vmm;                    /* accepted from the VMM */
    int be;                     /* connected to the back-end */
    int vmm_chan;               /* the VMM's channel end it handed over, or -1 */
    int be_chan;                /* our socketpair end the back-end talks to, or -1 */
    unsigned n;
} Conn;

static FILE *rec_out;
static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
    quit = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "record-proxy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static RecFdKind fd_kind(int fd, uint64_t *size)
{
    char path[64], link[128];
    struct stat st;
    ssize_t n;

    *size = 0;
    if (fstat(fd, &st) < 0) {
        return REC_FD_OTHER;
    }
    *size = (uint64_t)st.st_size;
    if (S_ISREG(st.st_mode)) {
        return REC_FD_FILE;
    }
    if (S_ISFIFO(st.st_mode)) {
        return REC_FD_PIPE;
    }
    if (S_ISSOCK(st.st_mode)) {
        return REC_FD_SOCKET;
    }
    /* Anonymous inodes say what they are in their link name. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, link, sizeof(link) - 1);
    if (n > 0) {
        link[n] = 0;
        if (strstr(link, "[eventfd]")) {
            return REC_FD_EVENTFD;
        }
        if (strstr(link, "[userfaultfd]")) {
            return REC_FD_USERFAULTFD;
        }
    }
    return REC_FD_OTHER;
}

static void record(unsigned ch, unsigned dir, unsigned conn, const uint8_t *msg, uint32_t len,
                   const int *fds, size_t nfds)
{
    uint8_t head[12] = { 'V', 'U', 'R', 'C', ch, dir, (uint8_t)nfds, (uint8_t)conn };

    memcpy(head + 8, &len, sizeof(len));
    fwrite(head, 1, sizeof(head), rec_out);
    for (size_t i = 0; i < nfds; i++) {
        uint64_t size, kind = fd_kind(fds[i], &size);

        fwrite(&kind, 1, sizeof(kind), rec_out);
        fwrite(&size, 1, sizeof(size), rec_out);
    }
    fwrite(msg, 1, len, rec_out);
    /* Flushed per message: a killed proxy leaves a usable recording. */
    fflush(rec_out);
}

/*
 * Reads exactly len bytes into buf, adding the fds that arrive to fds.
 * 1 done, 0 EOF before the first byte, -1 error, EOF inside, too many
 * fds, or the rest not there within REC_WAIT_MS.
 */
static int read_full(int fd, uint8_t *buf, size_t len, int *fds, size_t *nfds)
{
    int64_t deadline = char_io_deadline(REC_WAIT_MS);
    size_t got = 0, dropped = 0;
    bool ctrunc = false;

    while (got < len) {
        ssize_t n = char_io_recv(fd, buf + got, len - got, fds, CHAR_IO_MAX_FDS, nfds,
                                 &dropped, &ctrunc);

        if (n == -EAGAIN) {
            if (char_io_wait(fd, POLLIN, deadline) <= 0) {
                return -1;
            }
            continue;
        }
        if (n <= 0) {
            return n == 0 && got == 0 ? 0 : -1;
        }
        if (dropped || ctrunc) {
            fprintf(stderr, "record-proxy: more than %d fds on one message\n",
                    CHAR_IO_MAX_FDS);
            return -1;
        }
        got += (size_t)n;
    }
    return 1;
}

/* The whole message (the rest after a short write), fds on the first byte. */
static bool write_full(int fd, const uint8_t *buf, size_t len, const int *fds, size_t nfds)
{
    int64_t deadline = char_io_deadline(REC_WAIT_MS);
    size_t done = 0;

    while (done < len) {
        ssize_t n = char_io_send(fd, buf + done, len - done, done ? NULL : fds,
                                 done ? 0 : nfds);

        if (n == -EAGAIN) {
            if (char_io_wait(fd, POLLOUT, deadline) <= 0) {
                return false;
            }
            continue;
        }
        if (n <= 0) {
            return false;
        }
        done += (size_t)n;
    }
    return true;
}

static void close_chan(Conn *c)
{
    if (c->vmm_chan >= 0) {
        close(c->vmm_chan);
    }
    if (c->be_chan >= 0) {
        close(c->be_chan);
    }
    c->vmm_chan = c->be_chan = -1;
}

/*
 * Relays one message from -> to on channel ch in direction dir. False
 * when from is at EOF or either side failed: the caller ends what it
 * belongs to.
 */
static bool relay(Conn *c, int from, int to, unsigned ch, unsigned dir)
{
    static uint8_t buf[REC_MAX_MSG];
    VhostUserHeader hdr;
    int fds[CHAR_IO_MAX_FDS], pair[2] = { -1, -1 };
    size_t nfds = 0;
    bool ok = false;
    int r;

    r = read_full(from, buf, sizeof(hdr), fds, &nfds);
    if (r <= 0) {
        if (r < 0) {
            fprintf(stderr, "record-proxy: conn %u: a header cut short (%s)\n", c->n,
                    ch == CH_MAIN ? "main" : "back-end channel");
        }
        goto out;
    }
    memcpy(&hdr, buf, sizeof(hdr));
    if (hdr.size > REC_MAX_MSG - sizeof(hdr)) {
        fprintf(stderr, "record-proxy: conn %u: message %u of %u bytes: too large\n", c->n,
                hdr.request, hdr.size);
        goto out;
    }
    if (read_full(from, buf + sizeof(hdr), hdr.size, fds, &nfds) != 1) {
        fprintf(stderr, "record-proxy: conn %u: a payload cut short\n", c->n);
        goto out;
    }
    record(ch, dir, c->n, buf, sizeof(hdr) + hdr.size, fds, nfds);
    if (ch == CH_MAIN && dir == TO_BACKEND && hdr.request == VHOST_USER_SET_BACKEND_REQ_FD &&
        nfds == 1) {
        /* The back-end gets our end; we relay to the VMM's. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
            die("socketpair");
        }
        close_chan(c);
        c->vmm_chan = fds[0];
        c->be_chan = pair[0];
        fds[0] = pair[1];
    }
    ok = write_full(to, buf, sizeof(hdr) + hdr.size, fds, nfds);
    if (!ok) {
        fprintf(stderr, "record-proxy: conn %u: cannot pass message %u on (%s)\n", c->n,
                hdr.request, dir == TO_BACKEND ? "the back-end" : "the VMM");
    }
out:
    for (size_t i = 0; i < nfds; i++) {
        /* The VMM's channel end is kept (we relay to it), the rest passed on. */
        if (fds[i] != c->vmm_chan) {
            close(fds[i]);
        }
    }
    return ok;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
        die("socket");
    }
    strcpy(sa.sun_path, path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "record-proxy: connect %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Relays one VMM connection until either side of the main socket goes. */
static void serve(Conn *c)
{
    while (!quit) {
        struct pollfd p[4] = {
            { c->vmm, POLLIN, 0 }, { c->be, POLLIN, 0 },
            { c->vmm_chan, POLLIN, 0 }, { c->be_chan, POLLIN, 0 },
        };

        if (poll(p, 4, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("poll");
        }
        if ((p[0].revents && !relay(c, c->vmm, c->be, CH_MAIN, TO_BACKEND)) ||
            (p[1].revents && !relay(c, c->be, c->vmm, CH_MAIN, TO_VMM))) {
            break;
        }
        /* A channel that ends ends on both sides; the main socket goes on. */
        if ((p[3].revents && !relay(c, c->be_chan, c->vmm_chan, CH_BACKEND, TO_VMM)) ||
            (p[2].revents && c->vmm_chan >= 0 &&
             !relay(c, c->vmm_chan, c->be_chan, CH_BACKEND, TO_BACKEND))) {
            close_chan(c);
        }
    }
    close_chan(c);
    close(c->vmm);
    close(c->be);
}

static void usage(void)
{
    fprintf(stderr, "usage: record-proxy --listen PATH --connect PATH --out FILE [--once]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "connect", required_argument, NULL, 'c' },
        { "out", required_argument, NULL, 'o' },
        { "once", no_argument, NULL, '1' },
        { NULL, 0, NULL, 0 },
    };
    const char *lpath = NULL, *cpath = NULL, *out = NULL;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct sigaction sact = { .sa_handler = on_signal };
    bool once = false;
    unsigned n = 0;
    int opt, lfd;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l': lpath = optarg; break;
        case 'c': cpath = optarg; break;
        case 'o': out = optarg; break;
        case '1': once = true; break;
        default: usage();
        }
    }
    if (!lpath || !cpath || !out || optind != argc || strlen(lpath) >= sizeof(sa.sun_path)) {
        usage();
    }
    rec_out = fopen(out, "wb");
    if (!rec_out) {
        die(out);
    }
    /* No SA_RESTART: a signal breaks accept and poll, and we leave. */
    sigaction(SIGTERM, &sact, NULL);
    sigaction(SIGINT, &sact, NULL);
    signal(SIGPIPE, SIG_IGN);

    unlink(lpath);
    strcpy(sa.sun_path, lpath);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
        die(lpath);
    }
    while (!quit) {
        Conn c = { .vmm_chan = -1, .be_chan = -1, .n = n++ };

        c.vmm = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c.vmm < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("accept");
        }
        c.be = connect_unix(cpath);
        if (c.be < 0) {
            /* The VMM sees a back-end that hung up, as it would without us. */
            close(c.vmm);
        } else {
            serve(&c);
        }
        if (once) {
            break;
        }
    }
    close(lfd);
    unlink(lpath);
    fclose(rec_out);
    return 0;
}
