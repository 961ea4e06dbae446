/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a postcopy page fault costs, fault to wake, as the faulting thread
 * sees it (wall clock: the latency is spent in other threads), for four
 * paths in one process run:
 *
 *   raw (ours' anchor): a thread faults on a missing page of a memfd
 *     mapping registered MISSING on a userfaultfd; a handler thread reads
 *     the fault, sends an 8-byte request over a unix socketpair to a
 *     "source" thread, which answers with the address and the 4 KiB page;
 *     the handler reads the answer and does UFFDIO_COPY (which wakes).
 *   ours: the same through MigPostcopy: the fault thread's request
 *     callback writes the request on a socket, the source thread answers,
 *     a migration-side thread reads the answer and calls
 *     mig_postcopy_place.
 *   raw-be (backend's anchor): raw, but the faulting thread is a forked
 *     child's (a vhost-user back-end) on its own mapping of the memfd and
 *     its own userfaultfd; the handler copies into our mapping and wakes
 *     the child with UFFDIO_WAKE on its ufd.
 *   backend: ours with that child's ufd added as a shared ufd (translate
 *     callback; woken by the library with UFFDIO_WAKE).
 *
 * Each repetition runs the four in turn (the order alternates) over fresh
 * memory, one fault per page, pages in order. Printed: per path the
 * median, 90th and 99th percentile of all faults; the median over the
 * repetitions of the paired ratios of each path's median to its anchor's.
 *
 *   build/tests/bench-postcopy-fault [pages per run, default 256] [repetitions, default 9]
 *
 * BENCH_PC_TCP="ADDR NETNS" in the environment: every request/answer
 * connection is TCP instead of a socketpair, from ADDR (an IPv4 address
 * in this process's network namespace, where it listens) to a socket made
 * in network namespace NETNS (/var/run/netns/NETNS, as `ip netns` names
 * it), both with TCP_NODELAY: the round trip of bench-postcopy.sh's *-tcp
 * cases (two namespaces joined by a veth pair), for their anchor.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "bench-common.h"
#include "migration/postcopy-ram.h"
#include "migration/uffd-compat.h"
#include "system/memory.h"

#define PAGE 4096u
#define PAGE_FILL 0x5a          /* what every answered page holds */

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench-postcopy-fault: %s: %s\n", what, why);
    exit(1);
}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die("write", g_strerror(errno));
        }
        p += n;
        len -= n;
    }
}

/* False at EOF before the first byte. */
static bool read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 && got == 0) {
            return false;
        }
        if (n <= 0) {
            die("read", n ? g_strerror(errno) : "short");
        }
        got += n;
    }
    return true;
}

/* len bytes with one fd attached (SCM_RIGHTS), in one sendmsg. */
static void send_fd(int sock, const void *buf, size_t len, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf = { 0 };
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)len) {
        die("sendmsg", g_strerror(errno));
    }
}

/* What send_fd sent (small: one recvmsg), and its fd; -1 at EOF. */
static int recv_fd(int sock, void *buf, size_t len)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = { buf, len };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
    };
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    int fd;

    if (n == 0) {
        return -1;
    }
    if (n != (ssize_t)len || !c || c->cmsg_type != SCM_RIGHTS) {
        die("recvmsg", n < 0 ? g_strerror(errno) : "no fd");
    }
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/* The source's answer to a page request. */
typedef struct Answer {
    uint64_t addr;
    uint8_t page[PAGE];
} Answer;

/* Answers each 8-byte request on fd with the address and a page, until EOF. */
static gpointer source_thread(gpointer opaque)
{
    int fd = GPOINTER_TO_INT(opaque);
    Answer *a = g_new(Answer, 1);

    while (read_full(fd, &a->addr, sizeof(a->addr))) {
        memset(a->page, PAGE_FILL, PAGE);
        write_full(fd, a, sizeof(*a));
    }
    g_free(a);
    return NULL;
}

/* Touches npages pages of base in order; each fault's wall time in lat. */
static void touch_all(uint8_t *base, unsigned npages, double *lat)
{
    for (unsigned i = 0; i < npages; i++) {
        double t0 = now_us();
        uint8_t v = *(volatile uint8_t *)(base + (uint64_t)i * PAGE);

        lat[i] = now_us() - t0;
        if (v != PAGE_FILL) {
            die("touch", "wrong page content");
        }
    }
}

static int memfd_pages(unsigned npages)
{
    int fd = memfd_create("bench-postcopy", MFD_CLOEXEC);

    if (fd < 0 || ftruncate(fd, (off_t)npages * PAGE) < 0) {
        die("memfd", g_strerror(errno));
    }
    return fd;
}

static uint8_t *map_shared(int fd, unsigned npages)
{
    void *p = mmap(NULL, (size_t)npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    if (p == MAP_FAILED) {
        die("mmap", g_strerror(errno));
    }
    return p;
}

/* A blocking userfaultfd with [base, +npages) registered MISSING. */
static int uffd_on(uint8_t *base, unsigned npages)
{
    int ufd = syscall(SYS_userfaultfd, O_CLOEXEC);
    struct uffdio_api api = { .api = UFFD_API };
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)base, .len = (uint64_t)npages * PAGE },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };

    if (ufd < 0 || ioctl(ufd, UFFDIO_API, &api) < 0 || ioctl(ufd, UFFDIO_REGISTER, &reg) < 0) {
        die("userfaultfd", g_strerror(errno));
    }
    return ufd;
}

/* ---- raw: the anchors ---- */

typedef struct Raw {
    int ufd;                    /* ours: registered on base, for the copy */
    int fault_ufd;              /* where faults come from: ufd or a child's */
    uint64_t fault_base;        /* the faulting mapping's address */
    int sock;
    uint8_t *base;
    unsigned npages;
} Raw;

static gpointer raw_handler(gpointer opaque)
{
    Raw *r = opaque;
    Answer *a = g_new(Answer, 1);

    for (unsigned i = 0; i < r->npages; i++) {
        struct uffd_msg msg;
        uint64_t addr;
        struct uffdio_copy copy;
        struct uffdio_range wake;

        if (read(r->fault_ufd, &msg, sizeof(msg)) != sizeof(msg)) {
            die("raw: read ufd", g_strerror(errno));
        }
        addr = msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1);
        write_full(r->sock, &addr, sizeof(addr));
        read_full(r->sock, a, sizeof(*a));
        copy = (struct uffdio_copy) {
            .dst = (uintptr_t)r->base + (a->addr - r->fault_base),
            .src = (uintptr_t)a->page, .len = PAGE,
        };
        if (ioctl(r->ufd, UFFDIO_COPY, &copy) < 0) {
            die("raw: UFFDIO_COPY", g_strerror(errno));
        }
        wake = (struct uffdio_range) { .start = addr, .len = PAGE };
        if (r->fault_ufd != r->ufd && ioctl(r->fault_ufd, UFFDIO_WAKE, &wake) < 0) {
            die("raw: UFFDIO_WAKE", g_strerror(errno));
        }
    }
    g_free(a);
    return NULL;
}

/* ---- the request/answer connection: a socketpair, or TCP across namespaces ---- */

typedef struct TcpPeer {
    const char *netns;
    struct sockaddr_in to;
    int fd;
    const char *err;
    int errnum;                 /* errno is per thread: the peer's, for err */
} TcpPeer;

static void nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A thread of its own: setns() moves only the calling thread, and for good. */
static gpointer tcp_peer_thread(gpointer opaque)
{
    TcpPeer *t = opaque;
    g_autofree char *path = g_strdup_printf("/var/run/netns/%s", t->netns);
    int ns = open(path, O_RDONLY | O_CLOEXEC);

    if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
        t->err = "entering the peer's network namespace";
    } else if ((t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
               connect(t->fd, (struct sockaddr *)&t->to, sizeof(t->to)) < 0) {
        t->err = "connecting from the peer's network namespace";
    }
    t->errnum = errno;
    if (ns >= 0) {
        close(ns);
    }
    return NULL;
}

/* sv[0]: this side's end; sv[1]: the source's end. */
static void conn_pair(int sv[2])
{
    const char *spec = g_getenv("BENCH_PC_TCP");
    g_auto(GStrv) f = spec ? g_strsplit(spec, " ", 2) : NULL;
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);
    TcpPeer t = { .fd = -1 };
    int l;

    if (!spec) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            die("socketpair", g_strerror(errno));
        }
        return;
    }
    if (!f[0] || !f[1] || inet_pton(AF_INET, f[0], &a.sin_addr) != 1) {
        die("BENCH_PC_TCP", "expected \"IPV4-ADDRESS NETNS\"");
    }
    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0) {
        die("BENCH_PC_TCP: listening", g_strerror(errno));
    }
    t.netns = f[1];
    t.to = a;
    g_thread_join(g_thread_new("tcp-peer", tcp_peer_thread, &t));
    if (t.err) {
        die(t.err, g_strerror(t.errnum));
    }
    sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (sv[0] < 0) {
        die("BENCH_PC_TCP: accept", g_strerror(errno));
    }
    close(l);
    sv[1] = t.fd;
    nodelay(sv[0]);
    nodelay(sv[1]);
}

/* child < 0: our thread faults; else the back-end child on its own ufd. */
static void run_raw(int child, unsigned npages, double *lat)
{
    int sv[2], fd = memfd_pages(npages);
    Raw r = { .base = map_shared(fd, npages), .npages = npages };
    GThread *src, *handler;

    r.ufd = uffd_on(r.base, npages);
    r.fault_ufd = r.ufd;
    r.fault_base = (uintptr_t)r.base;
    if (child >= 0) {
        uint32_t n = npages;
        uint64_t child_base;

        send_fd(child, &n, sizeof(n), fd);
        r.fault_ufd = recv_fd(child, &child_base, sizeof(child_base));
        r.fault_base = child_base;
    }
    if (r.fault_ufd < 0) {
        die("raw set-up", g_strerror(errno));
    }
    conn_pair(sv);
    r.sock = sv[0];
    src = g_thread_new("source", source_thread, GINT_TO_POINTER(sv[1]));
    handler = g_thread_new("handler", raw_handler, &r);
    if (child >= 0) {
        write_full(child, "g", 1);
        if (!read_full(child, lat, npages * sizeof(double))) {
            die("raw backend", "the child died");
        }
        close(r.fault_ufd);
    } else {
        touch_all(r.base, npages, lat);
    }
    g_thread_join(handler);
    close(sv[0]);
    g_thread_join(src);
    close(sv[1]);
    close(r.ufd);
    munmap(r.base, (size_t)npages * PAGE);
    close(fd);
}

/* ---- ours: through MigPostcopy ---- */

typedef struct Ours {
    MigPostcopy *pc;
    int req;                    /* the request callback writes here */
    int ans;                    /* the migration thread reads answers here */
    uint64_t base;              /* a back-end's mapping, for translate; 0: none */
} Ours;

static void ours_request(uint64_t gpa, void *opaque)
{
    Ours *o = opaque;

    write_full(o->req, &gpa, sizeof(gpa));
}

static gpointer migration_thread(gpointer opaque)
{
    Ours *o = opaque;
    Answer *a = g_new(Answer, 1);
    GError *err = NULL;

    while (read_full(o->ans, a, sizeof(*a))) {
        if (!mig_postcopy_place(o->pc, a->addr, a->page, &err)) {
            die("place", err->message);
        }
    }
    g_free(a);
    return NULL;
}

/*
 * The source's socket: requests in from the request callback (req) and
 * answers out to the migration thread (ans), one socketpair each way.
 */
typedef struct Wiring {
    int req[2], ans[2];
    GThread *src, *mig;
} Wiring;

static gpointer relay_source(gpointer opaque)
{
    Wiring *w = opaque;
    Answer *a = g_new(Answer, 1);

    while (read_full(w->req[1], &a->addr, sizeof(a->addr))) {
        memset(a->page, PAGE_FILL, PAGE);
        write_full(w->ans[1], a, sizeof(*a));
    }
    close(w->ans[1]);           /* the migration thread sees EOF */
    g_free(a);
    return NULL;
}

static MigPostcopy *ours_start(Ours *o, Wiring *w, GuestMemory *mem, unsigned npages)
{
    GError *err = NULL;

    conn_pair(w->req);
    conn_pair(w->ans);
    o->req = w->req[0];
    o->ans = w->ans[0];
    o->pc = mig_postcopy_new(mem, ours_request, o, &err);
    if (!o->pc || !mig_postcopy_discard(o->pc, 0, (uint64_t)npages * PAGE, &err) ||
        !mig_postcopy_listen(o->pc, &err)) {
        die("postcopy", err->message);
    }
    w->src = g_thread_new("source", relay_source, w);
    w->mig = g_thread_new("migration", migration_thread, o);
    return o->pc;
}

static void ours_stop(Ours *o, Wiring *w)
{
    GError *err = NULL;

    close(w->req[0]);           /* the source sees EOF, then the migration thread */
    g_thread_join(w->src);
    g_thread_join(w->mig);
    close(w->req[1]);
    close(w->ans[0]);
    if (!mig_postcopy_finish(o->pc, &err)) {
        die("finish", err->message);
    }
    mig_postcopy_free(o->pc);
}

static GuestMemory *guest_new(unsigned npages, RamBlock **rb)
{
    GuestMemory *mem = guest_memory_new();
    GError *err = NULL;

    *rb = ram_block_new_memfd("ram0", (uint64_t)npages * PAGE, &err);
    if (!*rb || !guest_memory_add(mem, 0, *rb, 0, (uint64_t)npages * PAGE, &err)) {
        die("guest memory", err->message);
    }
    return mem;
}

static void run_ours(unsigned npages, double *lat)
{
    RamBlock *rb;
    GuestMemory *mem = guest_new(npages, &rb);
    Ours o = { 0 };
    Wiring w;

    ours_start(&o, &w, mem, npages);
    touch_all(rb->host, npages, lat);
    ours_stop(&o, &w);
    guest_memory_free(mem);
    ram_block_unref(rb);
}

/* ---- backend: a forked child faults on its own mapping and ufd ---- */

/*
 * Per run: a memfd and the page count in; its mapping's address and its
 * ufd out; then, told to, it touches every page and sends the latencies.
 */
static void child_main(int sock)
{
    uint32_t npages;
    int fd;

    for (;;) {
        uint64_t hello;
        double *lat;
        uint8_t *base;
        int ufd;
        char go;

        fd = recv_fd(sock, &npages, sizeof(npages));
        if (fd < 0) {
            _exit(0);
        }
        base = map_shared(fd, npages);
        ufd = uffd_on(base, npages);
        hello = (uintptr_t)base;
        send_fd(sock, &hello, sizeof(hello), ufd);
        if (!read_full(sock, &go, 1)) {
            _exit(0);
        }
        lat = g_new(double, npages);
        touch_all(base, npages, lat);
        write_full(sock, lat, npages * sizeof(double));
        g_free(lat);
        munmap(base, (size_t)npages * PAGE);
        close(ufd);
        close(fd);
    }
}

static bool child_translate(uint64_t addr, uint64_t *gpa, void *opaque)
{
    Ours *o = opaque;

    *gpa = addr - o->base;
    return addr >= o->base;
}

static void run_backend(int child, unsigned npages, double *lat)
{
    RamBlock *rb;
    GuestMemory *mem = guest_new(npages, &rb);
    uint32_t n = npages;
    uint64_t hello;
    GError *err = NULL;
    Ours o = { 0 };
    int ufd;
    Wiring w;

    send_fd(child, &n, sizeof(n), rb->fd);
    ufd = recv_fd(child, &hello, sizeof(hello));
    if (ufd < 0) {
        die("backend", "no ufd from the child");
    }
    o.base = hello;
    ours_start(&o, &w, mem, npages);
    if (!mig_postcopy_add_shared(o.pc, ufd, "bench0", child_translate, NULL, &o, &err)) {
        die("add_shared", err->message);
    }
    write_full(child, "g", 1);
    if (!read_full(child, lat, npages * sizeof(double))) {
        die("backend", "the child died");
    }
    mig_postcopy_remove_shared(o.pc, ufd);
    close(ufd);
    ours_stop(&o, &w);
    guest_memory_free(mem);
    ram_block_unref(rb);
}

/* ---- the report ---- */

enum { RAW, OURS, RAW_BACKEND, BACKEND, NPATHS };
static const char *const path_name[NPATHS] = { "raw", "ours", "raw-be", "backend" };
/* Each path's anchor: the raw path of the same faulting party. */
static const int anchor_of[NPATHS] = { RAW, RAW, RAW_BACKEND, RAW_BACKEND };

static double pct(double *sorted, size_t n, double p)
{
    size_t rank = (size_t)(p / 100 * n + 0.999999);

    return sorted[MIN(MAX(rank, 1), n) - 1];
}

int main(int argc, char **argv)
{
    unsigned npages = argc > 1 ? atoi(argv[1]) : 256;
    unsigned reps = argc > 2 ? atoi(argv[2]) : 9;
    double *all[NPATHS], rep_median[NPATHS][64], ratio[NPATHS][64];
    int sv[2];
    pid_t child;

    if (npages < 16 || npages > 65536 || reps < 1 || reps > 64) {
        fprintf(stderr, "usage: bench-postcopy-fault [pages 16..65536] [repetitions 1..64]\n");
        return 2;
    }
    /* The back-end first, before any thread: a clean fork. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        die("socketpair", g_strerror(errno));
    }
    child = fork();
    if (child == 0) {
        close(sv[0]);
        child_main(sv[1]);
    }
    close(sv[1]);
    for (int p = 0; p < NPATHS; p++) {
        all[p] = g_new(double, (size_t)npages * reps);
    }
    for (unsigned r = 0; r < reps; r++) {
        for (int k = 0; k < NPATHS; k++) {
            int p = r % 2 ? NPATHS - 1 - k : k;        /* alternate the order */
            double *lat = all[p] + (size_t)r * npages;
            double tmp[65536];

            if (p == RAW || p == RAW_BACKEND) {
                run_raw(p == RAW ? -1 : sv[0], npages, lat);
            } else if (p == OURS) {
                run_ours(npages, lat);
            } else {
                run_backend(sv[0], npages, lat);
            }
            memcpy(tmp, lat, npages * sizeof(double));
            rep_median[p][r] = median(tmp, npages);
        }
        for (int p = 0; p < NPATHS; p++) {
            ratio[p][r] = rep_median[p][r] / rep_median[anchor_of[p]][r];
        }
        fprintf(stderr, "  rep %u: median us raw %.1f, ours %.1f, raw-be %.1f, backend %.1f\n",
                r, rep_median[RAW][r], rep_median[OURS][r], rep_median[RAW_BACKEND][r],
                rep_median[BACKEND][r]);
    }
    close(sv[0]);
    waitpid(child, NULL, 0);

    printf("postcopy fault to wake, %u pages x %u repetitions per path, wall clock (us);\n"
           "ratio = median over repetitions of (path median / its anchor's median) of the\n"
           "same repetition; anchors: raw for ours, raw-be for backend\n", npages, reps);
    printf("%8s  %9s  %9s  %9s  %7s\n", "path", "median", "p90", "p99", "ratio");
    for (int p = 0; p < NPATHS; p++) {
        size_t n = (size_t)npages * reps;

        qsort(all[p], n, sizeof(double), cmp_double);
        printf("%8s  %9.1f  %9.1f  %9.1f  %7.2f\n", path_name[p], pct(all[p], n, 50),
               pct(all[p], n, 90), pct(all[p], n, 99), median(ratio[p], reps));
        g_free(all[p]);
    }
    printf("(raw: one handler thread reads the fault, request/answer over %s,\n"
           " UFFDIO_COPY; raw-be: the same for the back-end child's fault, + UFFDIO_WAKE)\n",
           g_getenv("BENCH_PC_TCP") ? "TCP across network namespaces" : "a socketpair");
    return 0;
}
