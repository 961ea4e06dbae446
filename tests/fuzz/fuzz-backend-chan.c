/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: the bytes are what a back-end writes on the back-end
 * channel (BACKEND_REQ), with the fds it attaches.
 *
 * libFuzzer target: the back-end channel's incremental assembler and
 * dispatcher (hw/virtio/vhost-user-backend-chan.c) of a real
 * VhostUserState and vhost_dev (2 rings), connected through a unix socket
 * to a minimal in-process back-end thread that answers the main socket.
 * Every input is a fresh connection: set up, fed, drained, torn down; the
 * process's fd count must be what it was before, and no host notifier
 * page may stay mapped. The back-end thread and its listening socket live
 * for the whole run (a thread per input was most of an input's cost): it
 * accepts each input's connection, serves it until the VMM closes it, and
 * says so before the next input starts.
 *
 * Input layout:
 *   byte 0     the back-end's protocol features: bit 0 BACKEND_SEND_FD,
 *              1 HOST_NOTIFIER, 2 SHARED_OBJECT, 3 CONFIG,
 *              4 INBAND_NOTIFICATIONS, 5 REPLY_ACK; bit 6 the VMM's IOTLB
 *              translation succeeds; bit 7 the back-end closes its end of
 *              the channel after the last chunk
 *   then chunks, each:
 *     byte     bits 0-1 fd kind (FuzzFdKind: 0 memfd of a page, 1
 *              eventfd, 2 empty memfd, 3 pipe), bits 2-3 fd count (0..3), bit 4 run the
 *              event loop after the chunk (else the bytes pile up)
 *     byte     length L of the chunk (0..255; 0 means the rest)
 *     L bytes  written as one sendmsg, the fds attached: raw stream bytes,
 *              so headers and payloads split and run on anywhere
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-backend-chan.h"
#include "hw/virtio/vhost-user-conn.h"
#include "system/event-loop.h"
#include "system/memory.h"
#include "util/vhost-user-log.h"
#include "util/vhost-user-msg.h"
#include "fuzz-lib.h"
#include "unit-sock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define PF(name) (1ull << VHOST_USER_PROTOCOL_F_##name)

/* ---- The back-end's main socket ------------------------------------- */

typedef struct Fake {
    int listen_fd;              /* the main socket's listener, for the whole run */
    int chan_fd;                /* our end of the channel, from SET_BACKEND_REQ_FD */
    uint64_t pf;                /* this input's protocol features */
    GMutex lock;
    GCond cond;
    bool have_chan;
    bool served;                /* this input's connection is closed on our side */
} Fake;

/* Answers one connection of the main socket as a well-behaved back-end would. */
static void fake_serve(Fake *f, int sock, uint64_t pf)
{
    for (;;) {
        VhostUserMsg m, r;
        int fd = -1;
        size_t nfds = 0, rsize = 0;
        bool reply = true;

        if (!ut_recv_full(sock, &m.hdr, sizeof(m.hdr), &fd, 1, &nfds) ||
            m.hdr.size > sizeof(m.payload) ||
            !ut_recv_full(sock, &m.payload, m.hdr.size, &fd, 1, &nfds)) {
            if (nfds) {
                close(fd);
            }
            break;
        }
        memset(&r, 0, sizeof(r));
        r.hdr.request = m.hdr.request;
        r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
        switch (m.hdr.request) {
        case VHOST_USER_GET_FEATURES:
            r.payload.u64 = 1ull << VHOST_USER_F_PROTOCOL_FEATURES |
                            1ull << VIRTIO_F_VERSION_1;
            rsize = 8;
            break;
        case VHOST_USER_GET_PROTOCOL_FEATURES:
            r.payload.u64 = pf;
            rsize = 8;
            break;
        case VHOST_USER_GET_QUEUE_NUM:
            r.payload.u64 = 1;
            rsize = 8;
            break;
        case VHOST_USER_GET_CONFIG:
            r.payload.config = m.payload.config;
            rsize = m.hdr.size;
            break;
        case VHOST_USER_SET_BACKEND_REQ_FD:
            g_mutex_lock(&f->lock);
            if (nfds && !f->have_chan) {
                f->chan_fd = fd;
                f->have_chan = true;
                nfds = 0;
            }
            g_cond_broadcast(&f->cond);
            g_mutex_unlock(&f->lock);
            reply = false;
            break;
        default:
            reply = false;
            break;
        }
        if (m.hdr.flags & VHOST_USER_NEED_REPLY_MASK) {
            reply = true;
            r.payload.u64 = 0;
            rsize = 8;
        }
        if (nfds) {
            close(fd);
        }
        if (reply) {
            r.hdr.size = (uint32_t)rsize;
            (void)!fuzz_send_fds(sock, &r, sizeof(r.hdr) + rsize, NULL, 0);
        }
    }
}

/* The back-end: one connection after another, for the whole run. */
static gpointer fake_thread(gpointer opaque)
{
    Fake *f = opaque;

    for (;;) {
        int sock = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        uint64_t pf;

        if (sock < 0) {
            if (errno == EINTR) {
                continue;
            }
            abort();
        }
        g_mutex_lock(&f->lock);
        pf = f->pf;
        g_mutex_unlock(&f->lock);
        fake_serve(f, sock, pf);
        close(sock);
        g_mutex_lock(&f->lock);
        f->served = true;
        g_cond_broadcast(&f->cond);
        g_mutex_unlock(&f->lock);
    }
    return NULL;
}

/* ---- The VMM's callbacks ---------------------------------------------- */

static bool translate_ok;

static bool vmm_translate(void *opaque, uint64_t iova, uint8_t perm, uint64_t *uaddr,
                          uint64_t *size, uint8_t *out_perm)
{
    *uaddr = 0x7f0000000000ull + (iova & 0xffffffffull);
    *size = 0x1000;
    *out_perm = perm;
    return translate_ok;
}

static void vmm_host_notifier(void *opaque, unsigned ring, void *addr, size_t size)
{
    if (addr) {
        /* The page must be usable at once: a short file would SIGBUS here. */
        *(volatile uint32_t *)addr = 0x5a5a;
    }
}

static void vmm_config_changed(void *opaque, const uint8_t *config, uint32_t len)
{
}

static void vmm_access_fail(void *opaque, uint64_t iova, uint64_t size, uint8_t perm)
{
}

static const VhostUserBackendReqOps vmm_ops = {
    .iotlb_translate = vmm_translate,
    .iotlb_access_fail = vmm_access_fail,
    .config_changed = vmm_config_changed,
    .host_notifier = vmm_host_notifier,
};

/* ---- Harness ---------------------------------------------------------- */

static char *sock_path;
static RamBlock *ram;
static GuestMemory *mem;
static Fake fake = { .listen_fd = -1, .chan_fd = -1 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    GError *err = NULL;

    vhost_user_set_log_handler(fuzz_quiet_log, NULL);
    /* Created once, so the per-input fd count does not see them. */
    g_main_context_default();
    vhost_event_loop_default();
    ram = ram_block_new_memfd("ram0", 1u << 20, &err);
    mem = guest_memory_new();
    if (!ram || !guest_memory_add(mem, 0, ram, 0, 1u << 20, &err)) {
        abort();
    }
    fake.listen_fd = fuzz_listen_tmp("fuzz-bechan-XXXXXX", &sock_path);
    g_mutex_init(&fake.lock);
    g_cond_init(&fake.cond);
    g_thread_unref(g_thread_new("fuzz-backend", fake_thread, &fake));
    return 0;
}

/*
 * Whether a host notifier page (a "fuzz-memfd" mapping) is mapped: read
 * through a fixed buffer, /proc/self/maps of an ASan process being large.
 */
static bool notifier_mapped(void)
{
    static const char name[] = "fuzz-memfd";
    static char buf[65536];
    size_t keep = 0;
    bool found = false;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        abort();
    }
    while (!found && (n = read(fd, buf + keep, sizeof(buf) - keep - 1)) > 0) {
        size_t len = keep + (size_t)n;

        buf[len] = 0;
        found = memmem(buf, len, name, sizeof(name) - 1) != NULL;
        /* A name split across two reads: keep its possible start. */
        keep = MIN(len, sizeof(name) - 2);
        memmove(buf, buf + len - keep, keep);
    }
    close(fd);
    return found;
}

static void drain_loop(int chan)
{
    char buf[256];
    int fd = -1;

    while (g_main_context_iteration(NULL, FALSE)) {
    }
    /* Our answers (and a LOOKUP's fd): read them so the socket never fills. */
    for (;;) {
        char cbuf[CMSG_SPACE(sizeof(int) * 8)];
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        ssize_t n = recvmsg(chan, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        if (n <= 0) {
            break;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (size_t i = 0; i < k; i++) {
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                close(fd);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The default bounds: a loaded machine must not fail the bring-up. */
    CharSocketOptions opts = { .id = "chr0" };
    struct vhost_dev hdev;
    CharSocket *chr;
    VhostUserState *u;
    GError *err = NULL;
    unsigned fds_before;
    size_t pos = 1;
    bool sent_page = false;

    if (size < 1) {
        return 0;
    }
    fds_before = fuzz_count_fds();
    translate_ok = data[0] & 0x40;
    g_mutex_lock(&fake.lock);
    fake.pf = PF(MQ) | PF(BACKEND_REQ) |
              ((data[0] & 0x01) ? PF(BACKEND_SEND_FD) : 0) |
              ((data[0] & 0x02) ? PF(HOST_NOTIFIER) : 0) |
              ((data[0] & 0x04) ? PF(SHARED_OBJECT) : 0) |
              ((data[0] & 0x08) ? PF(CONFIG) : 0) |
              ((data[0] & 0x10) ? PF(INBAND_NOTIFICATIONS) : 0) |
              ((data[0] & 0x20) ? PF(REPLY_ACK) : 0);
    fake.chan_fd = -1;
    fake.have_chan = false;
    fake.served = false;
    g_mutex_unlock(&fake.lock);

    opts.path = sock_path;
    chr = char_socket_new(&opts, NULL, &err);
    if (!chr || !char_socket_open(chr, &err)) {
        abort();
    }

    u = vhost_user_state_new(chr, "net0");
    vhost_user_set_backend_req_ops(u, &vmm_ops, NULL, 4, NULL);
    if (!vhost_dev_init(&hdev, "net0", u, &user_ops, mem, 0, 2, &err) ||
        !vhost_dev_connect(&hdev, &err)) {
        fprintf(stderr, "bring-up failed: %s\n", err ? err->message : "?");
        abort();
    }
    g_mutex_lock(&fake.lock);
    while (!fake.have_chan) {
        g_cond_wait(&fake.cond, &fake.lock);
    }
    g_mutex_unlock(&fake.lock);

    while (pos + 2 <= size) {
        unsigned ctl = data[pos], kind = ctl & 3, nfds = (ctl >> 2) & 3;
        size_t len = data[pos + 1] ? data[pos + 1] : size - pos - 2;
        int fds[FUZZ_MAX_FDS], extra[FUZZ_MAX_FDS];
        uint8_t *chunk;

        pos += 2;
        len = MIN(len, size - pos);
        if (len == 0) {
            break;
        }
        /* Exactly the chunk's bytes: nothing past them to read by mistake. */
        chunk = g_memdup2(data + pos, len);
        pos += len;
        for (unsigned i = 0; i < nfds; i++) {
            extra[i] = -1;
            fds[i] = fuzz_make_fd((FuzzFdKind)kind, &extra[i]);
        }
        sent_page |= nfds && kind == FUZZ_FD_MEMFD_PAGE;
        (void)!fuzz_send_fds(fake.chan_fd, chunk, len, fds, nfds);
        g_free(chunk);
        for (unsigned i = 0; i < nfds; i++) {
            close(fds[i]);
            if (extra[i] >= 0) {
                close(extra[i]);
            }
        }
        if (ctl & 0x10) {
            drain_loop(fake.chan_fd);
        }
    }
    if (data[0] & 0x80) {
        /* The back-end goes away in the middle of whatever it sent. */
        shutdown(fake.chan_fd, SHUT_WR);
    }
    drain_loop(fake.chan_fd);

    vhost_dev_cleanup(&hdev);
    vhost_user_state_free(u);
    char_socket_disconnect(chr, "fuzz input done");
    /* The back-end has seen the close and closed its end of the main socket. */
    g_mutex_lock(&fake.lock);
    while (!fake.served) {
        g_cond_wait(&fake.cond, &fake.lock);
    }
    g_mutex_unlock(&fake.lock);
    close(fake.chan_fd);
    char_socket_free(chr);
    drain_loop(-1);

    /*
     * Every fd that arrived was kept and released, or closed; no page left.
     * Only a "fuzz-memfd" page this input sent can be mapped (the last
     * input's were checked gone), so the maps are read only then.
     */
    if (fuzz_count_fds() != fds_before || (sent_page && notifier_mapped())) {
        abort();
    }
    return 0;
}
