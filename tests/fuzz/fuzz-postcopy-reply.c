/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: the bytes are a back-end's answer to SET_MEM_TABLE or
 * ADD_MEM_REG while postcopy listens (its own addresses for the regions).
 *
 * libFuzzer target: the postcopy-listening reply of a real VhostUserState
 * (vhost_user_call_listening with vhost_user_postcopy_mem_reply, in
 * hw/virtio/vhost-user-conn.c and hw/virtio/vhost-user-postcopy.c),
 * through a real unix socket after a real POSTCOPY_ADVISE (a userfaultfd
 * the harness makes) and POSTCOPY_LISTEN. The harness writes the ADVISE
 * reply, then the fuzzed reply cut at a byte the input names, then closes.
 * A reply is accepted, and then every region it names translates and the
 * u64 acknowledgement follows it on the socket; or the request fails with
 * a VHOST_USER_ERROR GError and the connection is no longer usable. No fd
 * may leak either way.
 *
 * Input layout:
 *   byte 0     bit 0 ADD_MEM_REG (else SET_MEM_TABLE), bits 1-3 the
 *              regions sent less one (SET_MEM_TABLE), bit 7 REPLY_ACK
 *              negotiated
 *   byte 1-2   cut: how many of the reply bytes are sent before the close
 *   then       16 bytes per region sent: guest address, size (our
 *              userspace address is fixed per region)
 *   then       the reply bytes
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib.h>

#include "hw/virtio/vhost-user-conn.h"
#include "hw/virtio/vhost-user-postcopy.h"
#include "system/event-loop.h"
#include "util/vhost-user-msg.h"
#include "fuzz-lib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define HDR_SIZE sizeof(VhostUserHeader)
#define OUR_UADDR(i) (0x7f0000000000ull + ((uint64_t)(i) << 32))

static char *sock_path;
static int listen_fd = -1;
static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int extra;

    listen_fd = fuzz_listen_tmp("fuzz-postcopy-XXXXXX", &sock_path);
    memfd = fuzz_make_fd(FUZZ_FD_MEMFD_PAGE, &extra);
    vhost_user_set_log_handler(fuzz_quiet_log, NULL);
    /* Created once, so the per-input fd count does not see them. */
    g_main_context_default();
    vhost_event_loop_default();
    return 0;
}

/*
 * The POSTCOPY_ADVISE reply, with a real userfaultfd (closed after
 * sending), and with REPLY_ACK the ack of POSTCOPY_LISTEN.
 */
static void send_advise_reply(int peer, bool acked)
{
    VhostUserMsg r, ack;
    int ufd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (ufd < 0) {
        abort();
    }
    vhost_user_msg_init(&r, VHOST_USER_POSTCOPY_ADVISE, 0);
    r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    if (fuzz_send_fds(peer, &r, HDR_SIZE, &ufd, 1) != (ssize_t)HDR_SIZE) {
        abort();
    }
    close(ufd);
    vhost_user_msg_init(&ack, VHOST_USER_POSTCOPY_LISTEN, sizeof(uint64_t));
    ack.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    ack.payload.u64 = 0;
    if (acked && fuzz_send_fds(peer, &ack, HDR_SIZE + sizeof(uint64_t), NULL, 0) !=
                     (ssize_t)(HDR_SIZE + sizeof(uint64_t))) {
        abort();
    }
}

/*
 * After an accepted reply: what the peer received ends with the u64
 * acknowledgement of the request (the spec's "the front-end replies").
 */
static void check_ack(int peer, uint32_t request)
{
    uint8_t buf[8192];
    size_t got = 0;
    VhostUserHeader h;
    uint64_t val;
    ssize_t n;

    while ((n = recv(peer, buf + got, sizeof(buf) - got, MSG_DONTWAIT)) > 0) {
        got += (size_t)n;
    }
    if (got < HDR_SIZE + sizeof(val)) {
        abort();
    }
    memcpy(&h, buf + got - HDR_SIZE - sizeof(val), sizeof(h));
    memcpy(&val, buf + got - sizeof(val), sizeof(val));
    if (h.request != request || h.size != sizeof(val) ||
        (h.flags & VHOST_USER_REPLY_MASK)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool add;
    unsigned nregions, fds_before;
    size_t pos, len, cut;
    int fds[VHOST_MEMORY_BASELINE_NREGIONS], peer;
    VhostUserMemoryRegion sent[VHOST_MEMORY_BASELINE_NREGIONS];
    uint8_t *reply_bytes;
    VhostUserMsg msg;
    CharSocket *chr;
    VhostUserState *u;
    GError *err = NULL;
    bool ok;

    if (size < 3) {
        return 0;
    }
    add = data[0] & 1;
    nregions = add ? 1 : ((data[0] >> 1) & 7) + 1;
    pos = 3 + 16 * (size_t)nregions;
    if (size < pos) {
        return 0;
    }
    memset(sent, 0, sizeof(sent));
    for (unsigned i = 0; i < nregions; i++) {
        memcpy(&sent[i].guest_phys_addr, data + 3 + 16 * i, 8);
        memcpy(&sent[i].memory_size, data + 3 + 16 * i + 8, 8);
        sent[i].userspace_addr = OUR_UADDR(i);
        fds[i] = memfd;
    }
    len = size - pos;
    cut = MIN((size_t)(data[1] | data[2] << 8), len);
    /* Exactly the reply's bytes: reading one more is an ASan error. */
    reply_bytes = g_malloc(len ? len : 1);
    memcpy(reply_bytes, data + pos, len);

    fds_before = fuzz_count_fds();
    chr = fuzz_connect(sock_path, listen_fd, &peer);
    u = fuzz_state_new(chr, data[0] & 0x80);
    send_advise_reply(peer, data[0] & 0x80);
    fuzz_send_cut(peer, reply_bytes, cut, len, NULL, 0);
    if (!vhost_user_postcopy_advise(u, &err) || !vhost_user_postcopy_listen(u, &err)) {
        fprintf(stderr, "advise/listen: %s\n", err ? err->message : "?");
        abort();
    }

    if (add) {
        vhost_user_msg_init(&msg, VHOST_USER_ADD_MEM_REG, sizeof(VhostUserMemRegMsg));
        msg.payload.mem_reg.region = sent[0];
    } else {
        vhost_user_msg_init(&msg, VHOST_USER_SET_MEM_TABLE,
                            offsetof(VhostUserMemory, regions) +
                            nregions * sizeof(VhostUserMemoryRegion));
        msg.payload.memory.nregions = nregions;
        memcpy(msg.payload.memory.regions, sent, nregions * sizeof(sent[0]));
    }
    ok = vhost_user_call_listening(u, 0, &msg, fds, nregions, vhost_user_postcopy_mem_reply,
                                   NULL, &err);
    if (ok) {
        const VhostUserMsg *r = (const VhostUserMsg *)reply_bytes;
        const VhostUserMemoryRegion *got = add ? &r->payload.mem_reg.region
                                               : r->payload.memory.regions;

        /* Accepted: the reply was whole, and each region it named translates. */
        for (unsigned i = 0; i < nregions; i++) {
            uint64_t gpa;
            unsigned reg;

            if (sent[i].memory_size &&
                !vhost_user_postcopy_translate(u, got[i].userspace_addr, &gpa, &reg)) {
                abort();
            }
        }
        check_ack(peer, msg.hdr.request);
    } else {
        fuzz_check_refused(u, err);
    }
    fuzz_teardown(u, chr, peer, fds_before);
    g_free(reply_bytes);
    return 0;
}
