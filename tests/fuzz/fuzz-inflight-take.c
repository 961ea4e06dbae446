/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: a back-end's GET_INFLIGHT_FD reply and the fd with it.
 *
 * libFuzzer target: vhost_inflight_take (hw/virtio/vhost-inflight.c).
 * Input, exactly 33 bytes:
 *   bytes 0-23  the reply payload (VhostUserInflight: mmap_size,
 *               mmap_offset, num_queues, queue_size, padding); the two
 *               counts are used as the request's, as the front-end asked
 *               for them
 *   byte 24     the fd: 0 a memfd, 1 none (-1), 2 a pipe, 3 a memfd too
 *   bytes 25-32 the memfd's length (u64, taken modulo 2^36: sparse)
 * Oracles: on success the area lies inside the file, its size within the
 * bounds for the queues and its offset page aligned, and the fd is kept;
 * on failure a VHOST_USER_ERROR says why, the fd is closed and nothing is
 * kept. Either way the fd is closed once the area is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hw/virtio/vhost-inflight.h"
#include "util/vhost-user-error.h"
#include "util/vhost-user-proto.h"

#define FUZZ_INFLIGHT_INPUT (sizeof(VhostUserInflight) + 1 + sizeof(uint64_t))
/* scripts/run-fuzz.sh passes it as -max_len. */
_Static_assert(FUZZ_INFLIGHT_INPUT == 33, "input layout changed: update run-fuzz.sh");

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static int make_fd(uint8_t kind, uint64_t len, int *other)
{
    int fd, p[2];

    *other = -1;
    switch (kind & 3) {
    case 1:
        return -1;
    case 2:
        if (pipe(p) < 0) {
            abort();
        }
        *other = p[1];
        return p[0];
    default:
        fd = memfd_create("fuzz-inflight", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)(len & ((1ull << 36) - 1))) < 0) {
            abort();
        }
        return fd;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vhost_inflight inflight;
    VhostUserInflight *in;
    GError *err = NULL;
    uint64_t len, min, max;
    uint8_t *buf;
    int fd, other;
    struct stat st;

    if (size != FUZZ_INFLIGHT_INPUT) {
        return 0;
    }
    /* Exactly the given bytes: a read past them is an ASan error. */
    buf = malloc(size);
    memcpy(buf, data, size);
    in = (VhostUserInflight *)buf;
    memcpy(&len, buf + sizeof(*in) + 1, sizeof(len));
    fd = make_fd(buf[sizeof(*in)], len, &other);
    st.st_size = 0;
    if (fd >= 0 && fstat(fd, &st) < 0) {
        abort();
    }
    min = vhost_inflight_min_size(in->num_queues, in->queue_size);
    max = vhost_inflight_max_size(in->num_queues, in->queue_size);

    vhost_inflight_init(&inflight);
    if (vhost_inflight_take(&inflight, "fuzz", fd, in->mmap_size, in->mmap_offset,
                            in->num_queues, in->queue_size, &err)) {
        if (fd < 0 || inflight.fd != fd || !S_ISREG(st.st_mode) ||
            inflight.size < min || inflight.size > max ||
            inflight.offset % (uint64_t)sysconf(_SC_PAGESIZE) ||
            inflight.offset > (uint64_t)st.st_size ||
            inflight.size > (uint64_t)st.st_size - inflight.offset) {
            abort();
        }
        vhost_inflight_free(&inflight);
    } else {
        if (!err || err->domain != VHOST_USER_ERROR || !err->message[0] ||
            inflight.fd != -1) {
            abort();
        }
        g_error_free(err);
    }
    /* Taken in every case: closed on failure, and by free on success. */
    if (fd >= 0 && fd_open(fd)) {
        abort();
    }
    if (other >= 0) {
        close(other);
    }
    free(buf);
    return 0;
}
