/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inflight I/O tracking (INFLIGHT_SHMFD) for split rings, so that a
 * back-end killed in the middle of requests can be restarted and finish
 * every one of them exactly once.
 *
 * The area is a memfd we create at GET_INFLIGHT_FD; the front-end keeps
 * it and hands it back with SET_INFLIGHT_FD on every connection, so it
 * survives us. For each queue it holds, in the spec's layout, which heads
 * were taken from the avail ring and not yet put in the used ring, the
 * order they were taken in, and the last batch put in the used ring.
 * Every store is made in the order the spec gives, so whatever instant
 * the process dies at, the next one can tell what to run again.
 *
 * Security model: the front-end chooses the sizes, the fd and its offset,
 * and can write the area at any time; a guest can write its rings. Sizes
 * are checked before anything is mapped, the fd must hold what we map,
 * every head read from the area is checked against the ring size, and an
 * area that does not match the ring breaks that ring, not the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "refbe.h"

#define REFBE_INFLIGHT_VERSION    1
/* Per-queue regions start on cache lines, as other back-ends lay them out. */
#define REFBE_INFLIGHT_ALIGN      64

/* Bytes of one queue's region: the header and queue_size descriptors. */
static size_t queue_stride(uint16_t queue_size)
{
    size_t raw = sizeof(RefBeInflightQueue) + (size_t)queue_size * sizeof(RefBeInflightDesc);

    return (raw + REFBE_INFLIGHT_ALIGN - 1) & ~(size_t)(REFBE_INFLIGHT_ALIGN - 1);
}

/*
 * Checks the queue count and size a front-end asks for or describes an
 * area with; *size gets the bytes the area needs.
 */
static bool check_geometry(RefBeDev *dev, const char *req, const VhostUserInflight *in,
                           size_t *size, GError **errp)
{
    if (in->num_queues == 0 || in->num_queues > dev->nvrings) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: num_queues %u is not in 1..%u", dev->name, req,
                    in->num_queues, dev->nvrings);
        return false;
    }
    if (in->queue_size == 0 || in->queue_size > REFBE_VRING_MAX_SIZE) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: queue_size %u is not in 1..%d", dev->name, req,
                    in->queue_size, REFBE_VRING_MAX_SIZE);
        return false;
    }
    /* At most 64 x (16 + 16 x 32768) bytes: no overflow. */
    *size = in->num_queues * queue_stride(in->queue_size);
    return true;
}

/* A ring pointing into the area must not outlive the mapping. */
static bool check_rings_stopped(RefBeDev *dev, const char *req, GError **errp)
{
    for (unsigned i = 0; i < dev->nvrings; i++) {
        if (dev->vrings[i].started) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: %s: ring %u is running (the area may change only "
                        "while every ring is stopped)", dev->name, req, i);
            return false;
        }
    }
    return true;
}

static void install(RefBeDev *dev, void *map, size_t map_len, uint8_t *base,
                    const VhostUserInflight *in)
{
    refbe_inflight_release(dev);
    dev->inflight_map = map;
    dev->inflight_map_len = map_len;
    dev->inflight_base = base;
    dev->inflight_queues = in->num_queues;
    dev->inflight_queue_size = in->queue_size;
}

void refbe_inflight_release(RefBeDev *dev)
{
    for (unsigned i = 0; i < dev->nvrings; i++) {
        dev->vrings[i].inflight = NULL;
    }
    if (dev->inflight_map) {
        munmap(dev->inflight_map, dev->inflight_map_len);
    }
    dev->inflight_map = NULL;
    dev->inflight_map_len = 0;
    dev->inflight_base = NULL;
    dev->inflight_queues = 0;
    dev->inflight_queue_size = 0;
}

bool refbe_inflight_get_fd(RefBeDev *dev, const VhostUserInflight *req,
                         VhostUserInflight *reply, int *fd, GError **errp)
{
    size_t size;
    void *map;
    int mfd;

    *fd = -1;
    if (!check_geometry(dev, "GET_INFLIGHT_FD", req, &size, errp) ||
        !check_rings_stopped(dev, "GET_INFLIGHT_FD", errp)) {
        return false;
    }
    if (refbe_has_feature(dev, VIRTIO_F_RING_PACKED)) {
        /* Size 0, no fd: not tracked (the packed layout is not implemented here). */
        memset(reply, 0, sizeof(*reply));
        reply->num_queues = req->num_queues;
        reply->queue_size = req->queue_size;
        return true;
    }
    mfd = memfd_create("vhost-user-backend-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0 || ftruncate(mfd, (off_t)size) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: GET_INFLIGHT_FD: cannot create a %zu-byte memfd: %s",
                    dev->name, size, g_strerror(errno));
        goto err;
    }
    /*
     * Fixed size: neither the front-end nor a later back-end can shrink it
     * under a mapping (which would be SIGBUS on the next access).
     */
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: GET_INFLIGHT_FD: cannot seal the memfd: %s", dev->name,
                    g_strerror(errno));
        goto err;
    }
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (map == MAP_FAILED) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: GET_INFLIGHT_FD: mmap: %s", dev->name, g_strerror(errno));
        goto err;
    }
    /* Version 0 everywhere: every queue is set up when its ring starts. */
    memset(map, 0, size);
    install(dev, map, size, map, req);

    reply->mmap_size = size;
    reply->mmap_offset = 0;
    reply->num_queues = req->num_queues;
    reply->queue_size = req->queue_size;
    *fd = mfd;
    return true;

err:
    if (mfd >= 0) {
        close(mfd);
    }
    return false;
}

bool refbe_inflight_set_fd(RefBeDev *dev, const VhostUserInflight *req, int fd,
                         GError **errp)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t aligned = req->mmap_offset & ~(uint64_t)(page - 1);
    uint64_t delta = req->mmap_offset - aligned;
    struct stat st;
    size_t need;
    void *map;

    if (!check_geometry(dev, "SET_INFLIGHT_FD", req, &need, errp) ||
        !check_rings_stopped(dev, "SET_INFLIGHT_FD", errp)) {
        return false;
    }
    if (fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_WRONG_FDS,
                    "%s: SET_INFLIGHT_FD: no fd", dev->name);
        return false;
    }
    if (req->mmap_size < need || req->mmap_offset % 8 ||
        req->mmap_offset + req->mmap_size < req->mmap_offset) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_INFLIGHT_FD: mmap_size %" PRIu64 " at offset %" PRIu64
                    " cannot hold %u queues of %u descriptors (%zu bytes at an "
                    "8-byte aligned offset)", dev->name, req->mmap_size,
                    req->mmap_offset, req->num_queues, req->queue_size, need);
        return false;
    }
    if (fstat(fd, &st) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: SET_INFLIGHT_FD: fstat: %s", dev->name, g_strerror(errno));
        return false;
    }
    /* Mapping past the end of the file would be SIGBUS on first touch. */
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < req->mmap_offset + need) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_INFLIGHT_FD: the fd is %s of %" PRIu64 " bytes, "
                    "less than mmap_offset %" PRIu64 " + %zu", dev->name,
                    S_ISREG(st.st_mode) ? "a file" : "not a file",
                    (uint64_t)st.st_size, req->mmap_offset, need);
        return false;
    }
    /* Only the part we use: the front-end's mmap_size may be larger. */
    map = mmap(NULL, need + delta, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
               (off_t)aligned);
    if (map == MAP_FAILED) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: SET_INFLIGHT_FD: mmap of %zu bytes at offset %" PRIu64
                    ": %s", dev->name, need, req->mmap_offset, g_strerror(errno));
        return false;
    }
    install(dev, map, need + delta, (uint8_t *)map + delta, req);
    return true;
}

/* ---- Ring start: recovery ------------------------------------------- */

typedef struct Resubmit {
    uint64_t counter;
    uint16_t head;
} Resubmit;

static int cmp_counter(const void *a, const void *b)
{
    const Resubmit *x = a, *y = b;

    return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/*
 * The spec's reconnect step 1: when the used ring is ahead of the area's
 * used_idx, the process died between publishing the last batch and
 * clearing its heads' inflight flags; clear them now, walking the batch
 * list from last_batch_head.
 */
static bool repair_last_batch(RefBeDev *dev, RefBeVring *vq, RefBeInflightQueue *q)
{
    uint16_t batch = (uint16_t)(vq->used_idx - q->used_idx);
    uint16_t head = q->last_batch_head;

    if (batch > vq->num) {
        /*
         * More than a ring's worth: not a half-recorded batch but an area
         * from before the ring was set up afresh (a driver reset). Harmless
         * when nothing is in flight; otherwise we cannot tell what to run.
         */
        for (unsigned i = 0; i < vq->num; i++) {
            if (q->desc[i].inflight) {
                refbe_vring_fault(dev, vq, "inflight area: used_idx %u is %u entries "
                                "behind the used ring's %u (ring size %u) with "
                                "head %u in flight: the area does not belong to "
                                "this ring", q->used_idx, batch, vq->used_idx,
                                vq->num, i);
                return false;
            }
        }
        batch = 0;
    }
    for (uint16_t i = 0; i < batch; i++) {
        if (head >= vq->num) {
            refbe_vring_fault(dev, vq, "inflight area: last batch entry %u is head "
                            "%u, out of range (ring size %u)", i, head, vq->num);
            return false;
        }
        q->desc[head].inflight = 0;
        head = q->desc[head].next;
    }
    if (batch) {
        refbe_log("%s: ring %u: completed %u request(s) whose used entry was "
                "published just before the last disconnect", dev->name, vq->index,
                batch);
    }
    __atomic_store_n(&q->used_idx, vq->used_idx, __ATOMIC_RELEASE);
    return true;
}

/* The spec's reconnect step 2: queue the heads still in flight, oldest first. */
static bool collect_inflight(RefBeDev *dev, RefBeVring *vq, RefBeInflightQueue *q)
{
    g_autofree Resubmit *list = g_new(Resubmit, vq->num);
    uint16_t avail_idx = __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
    uint16_t outstanding = (uint16_t)(avail_idx - vq->used_idx);
    uint16_t base = vq->last_avail_idx;
    uint64_t max_counter = 0;
    unsigned n = 0;

    for (unsigned i = 0; i < vq->num; i++) {
        if (q->desc[i].inflight) {
            list[n].counter = q->desc[i].counter;
            list[n].head = i;
            max_counter = MAX(max_counter, list[n].counter);
            n++;
        }
    }
    /*
     * Every head in flight was taken from the avail ring and not given
     * back, so the driver has that many buffers outstanding at least.
     */
    if (n > outstanding || outstanding > vq->num) {
        refbe_vring_fault(dev, vq, "inflight area: %u heads in flight, but the "
                        "driver has %u buffers outstanding (avail %u, used %u)",
                        n, outstanding, avail_idx, vq->used_idx);
        return false;
    }
    qsort(list, n, sizeof(*list), cmp_counter);
    g_free(vq->resubmit);
    vq->resubmit = g_new(uint16_t, MAX(n, 1));
    for (unsigned i = 0; i < n; i++) {
        vq->resubmit[i] = list[i].head;
    }
    vq->resubmit_num = n;
    vq->resubmit_pos = 0;
    vq->inflight_counter = max_counter + 1;
    /*
     * Heads are taken in avail order and each one taken is either in the
     * used ring or in flight: the next avail entry is right after both.
     * The front-end's SET_VRING_BASE may be only the used index (it could
     * not ask a dead back-end for GET_VRING_BASE).
     */
    vq->last_avail_idx = (uint16_t)(vq->used_idx + n);
    if (n || base != vq->last_avail_idx) {
        refbe_log("%s: ring %u: %u request(s) in flight at the last disconnect, "
                "resubmitting them; avail ring resumes at %u (used %u + %u; "
                "SET_VRING_BASE said %u)", dev->name, vq->index, n,
                vq->last_avail_idx, vq->used_idx, n, base);
    }
    return true;
}

bool refbe_inflight_ring_start(RefBeDev *dev, RefBeVring *vq, GError **errp)
{
    RefBeInflightQueue *q;

    g_clear_pointer(&vq->resubmit, g_free);
    vq->resubmit_num = vq->resubmit_pos = 0;
    vq->inflight = NULL;
    if (!dev->inflight_base) {
        return true;
    }
    /* The area's packed layout (DescStatePacked) is not implemented here. */
    if (refbe_vring_packed(vq)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_VRING_KICK: ring %u: inflight tracking of packed rings "
                    "is not supported", dev->name, vq->index);
        return false;
    }
    if (vq->index >= dev->inflight_queues || vq->num > dev->inflight_queue_size) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_VRING_KICK: ring %u of size %u is not covered by the "
                    "inflight area (%u queues of %u descriptors)", dev->name,
                    vq->index, vq->num, dev->inflight_queues,
                    dev->inflight_queue_size);
        return false;
    }
    q = (RefBeInflightQueue *)(dev->inflight_base +
                             vq->index * queue_stride(dev->inflight_queue_size));

    if (q->version == 0) {
        /* First start with this area: nothing can be in flight. */
        memset(q->desc, 0, (size_t)vq->num * sizeof(RefBeInflightDesc));
        q->features = 0;
        q->desc_num = vq->num;
        q->last_batch_head = 0;
        q->used_idx = vq->used_idx;
        __atomic_store_n(&q->version, REFBE_INFLIGHT_VERSION, __ATOMIC_RELEASE);
        vq->inflight_counter = 1;
        vq->inflight = q;
        return true;
    }
    if (q->version != REFBE_INFLIGHT_VERSION || q->desc_num != vq->num) {
        refbe_vring_fault(dev, vq, "inflight area: version %u for %u descriptors, "
                        "expected version %u for this ring's %u", q->version,
                        q->desc_num, REFBE_INFLIGHT_VERSION, vq->num);
        return true;
    }
    if (repair_last_batch(dev, vq, q) && collect_inflight(dev, vq, q)) {
        vq->inflight = q;
    }
    return true;
}

/* ---- Requests --------------------------------------------------------- */

int refbe_inflight_pop(RefBeDev *dev, RefBeVring *vq, RefBeElem *elem)
{
    RefBeInflightQueue *q = vq->inflight;
    int r;

    if (!q) {
        return refbe_vring_pop(dev, vq, elem);
    }
    if (!refbe_vring_ready(vq)) {
        return vq->broken ? -1 : 0;
    }
    /* Still marked in flight with their old counters: nothing to record. */
    if (vq->resubmit_pos < vq->resubmit_num) {
        return refbe_vring_read_chain(dev, vq, vq->resubmit[vq->resubmit_pos++], elem);
    }
    r = refbe_vring_pop(dev, vq, elem);
    if (r == 1) {
        /*
         * Before the request runs. The counter first: a head found in
         * flight after a crash always has its order. The atomic stores
         * keep the compiler from reordering what another process (our
         * successor) will read.
         */
        __atomic_store_n(&q->desc[elem->head].counter, vq->inflight_counter++,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&q->desc[elem->head].inflight, 1, __ATOMIC_RELEASE);
    }
    return r;
}

void refbe_inflight_fill(RefBeVring *vq, uint16_t head, uint32_t len, unsigned offset)
{
    RefBeInflightQueue *q = vq->inflight;

    if (q) {
        /* The list the successor walks if we die before the flush is recorded. */
        __atomic_store_n(&q->desc[head].next, q->last_batch_head, __ATOMIC_RELAXED);
        __atomic_store_n(&q->last_batch_head, head, __ATOMIC_RELEASE);
    }
    refbe_vring_fill(vq, head, len, offset);
}

void refbe_inflight_flush(RefBeDev *dev, RefBeVring *vq, unsigned count)
{
    RefBeInflightQueue *q = vq->inflight;
    uint16_t head;

    refbe_vring_flush(vq, count);         /* used->idx moves: the guest sees them */
    refbe_crash_point(dev, REFBE_CRASH_PUBLISHED);
    if (!q) {
        return;
    }
    /*
     * The heads we just filled, newest first. The front-end can write the
     * area too: a link out of range ends the walk (it only hurts itself).
     */
    head = q->last_batch_head;
    for (unsigned i = 0; i < count && head < vq->num; i++) {
        __atomic_store_n(&q->desc[head].inflight, 0, __ATOMIC_RELEASE);
        head = q->desc[head].next;
    }
    __atomic_store_n(&q->used_idx, vq->used_idx, __ATOMIC_RELEASE);
}

void refbe_crash_point(RefBeDev *dev, RefBeCrashStage stage)
{
    const RefBeOptions *o = dev->opts;

    if (o->crash_stage == REFBE_CRASH_NONE) {
        return;
    }
    if (stage == REFBE_CRASH_TAKEN && ++dev->requests_taken == o->crash_request) {
        dev->crash_armed = true;
    }
    if (dev->crash_armed && stage == o->crash_stage) {
        refbe_log("%s: --crash-at: killing ourselves (request %" PRIu64 ")",
                dev->name, o->crash_request);
        raise(SIGKILL);
    }
}
