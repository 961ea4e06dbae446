/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-blk on a RAM disk or a file: IN, OUT, FLUSH, GET_ID, DISCARD and
 * WRITE_ZEROES, completed synchronously (so GET_VRING_BASE never has to
 * wait for in-flight requests), and the config space for GET_CONFIG.
 *
 * The write cache (CONFIG_WCE): write-back by default (writeback = 1: a
 * write completes once the kernel has it, FLUSH makes it durable). The
 * driver may switch it with SET_CONFIG of the writeback byte; with 0 a
 * file disk syncs every write (fdatasync) before completing it. The mode
 * belongs to the disk and outlives front-end connections, as the disk's
 * content does; a RAM disk has nothing to sync but reports the mode.
 *
 * Security model: request headers, sector numbers, lengths and segment
 * lists come from guest memory. Every range is checked against the disk
 * before it is touched; a bad request gets IOERR or UNSUPP, and only a
 * chain with no room for the status byte breaks the ring (there is no
 * other way to tell the driver).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "hw/virtio/virtio-blk-defs.h"
#include "refbe.h"

/* Data segments per request we advertise (seg_max). */
#define REFBE_BLK_SEG_MAX             126
/* Per DISCARD / WRITE_ZEROES request limits we advertise. */
#define REFBE_BLK_MAX_DWZ_SECTORS     (1u << 22)
#define REFBE_BLK_MAX_DWZ_SEG         16

struct RefBeBlk {
    int fd;                     /* -1: RAM disk */
    uint8_t *ram;
    uint64_t size;              /* bytes, a multiple of 512 */
    char id[VIRTIO_BLK_ID_BYTES];
    unsigned batch;             /* requests per round (--batch) */
    RefBeElem *elems;             /* one per request of a round */
    int64_t *lens;              /* their used lengths */
    struct iovec *data;         /* scratch for the data part of a chain */
    uint8_t *zeroes;            /* a zero-filled buffer for WRITE_ZEROES on files */
    bool write_through;         /* writeback = 0: every write synced */
    uint64_t synced;            /* writes synced because of it */
};

#define REFBE_BLK_ZERO_CHUNK      (1u << 20)

uint64_t refbe_blk_features(const RefBeOptions *opts)
{
    return (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
           (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD) |
           (1ull << VIRTIO_BLK_F_WRITE_ZEROES) | (1ull << VIRTIO_BLK_F_MQ) |
           (1ull << VIRTIO_BLK_F_CONFIG_WCE);
}

RefBeBlk *refbe_blk_new(const RefBeOptions *opts, GError **errp)
{
    g_autofree RefBeBlk *blk = g_new0(RefBeBlk, 1);

    blk->fd = -1;
    if (opts->blk_file) {
        struct stat st;

        blk->fd = open(opts->blk_file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (blk->fd < 0 || fstat(blk->fd, &st) < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "--blk-file=%s: %s", opts->blk_file, g_strerror(errno));
            goto err;
        }
        blk->size = opts->blk_size ? opts->blk_size : (uint64_t)st.st_size;
        blk->size -= blk->size % VIRTIO_BLK_SECTOR_SIZE;
        if (blk->size == 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "--blk-file=%s: empty file and no --blk-size",
                        opts->blk_file);
            goto err;
        }
        /* Grow a short file so that every sector reads back (as zeroes). */
        if ((uint64_t)st.st_size < blk->size && ftruncate(blk->fd, blk->size) < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "--blk-file=%s: cannot grow to %" PRIu64 " bytes: %s",
                        opts->blk_file, blk->size, g_strerror(errno));
            goto err;
        }
        blk->zeroes = g_malloc0(REFBE_BLK_ZERO_CHUNK);
        g_strlcpy(blk->id, "vub-file", sizeof(blk->id));
    } else {
        blk->size = opts->blk_size - opts->blk_size % VIRTIO_BLK_SECTOR_SIZE;
        if (blk->size == 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "--blk-size: %" PRIu64 " bytes is less than one sector",
                        opts->blk_size);
            goto err;
        }
        /* Anonymous mmap: untouched sectors cost nothing and read as zero. */
        blk->ram = mmap(NULL, blk->size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (blk->ram == MAP_FAILED) {
            blk->ram = NULL;
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "--blk-size=%" PRIu64 ": cannot allocate the RAM disk: %s",
                        blk->size, g_strerror(errno));
            goto err;
        }
        g_strlcpy(blk->id, "vub-ram", sizeof(blk->id));
    }
    blk->batch = MAX(opts->batch, 1);
    blk->elems = g_new(RefBeElem, blk->batch);
    blk->lens = g_new(int64_t, blk->batch);
    blk->data = g_new(struct iovec, REFBE_MAX_IOV);
    return g_steal_pointer(&blk);

err:
    if (blk->fd >= 0) {
        close(blk->fd);
    }
    g_free(blk->zeroes);
    return NULL;
}

void refbe_blk_free(RefBeBlk *blk)
{
    if (!blk) {
        return;
    }
    if (blk->fd >= 0) {
        close(blk->fd);
    }
    if (blk->ram) {
        munmap(blk->ram, blk->size);
    }
    g_free(blk->zeroes);
    g_free(blk->elems);
    g_free(blk->lens);
    g_free(blk->data);
    g_free(blk);
}

void refbe_blk_get_config(RefBeDev *dev, uint32_t offset, uint32_t size, uint8_t *buf)
{
    VirtioBlkConfig cfg = {
        .capacity = dev->blk->size / VIRTIO_BLK_SECTOR_SIZE,
        .seg_max = REFBE_BLK_SEG_MAX,
        .blk_size = VIRTIO_BLK_SECTOR_SIZE,
        .num_queues = dev->opts->queues,
        .max_discard_sectors = REFBE_BLK_MAX_DWZ_SECTORS,
        .max_discard_seg = REFBE_BLK_MAX_DWZ_SEG,
        .discard_sector_alignment = 1,
        .max_write_zeroes_sectors = REFBE_BLK_MAX_DWZ_SECTORS,
        .max_write_zeroes_seg = REFBE_BLK_MAX_DWZ_SEG,
        .write_zeroes_may_unmap = 1,
        .writeback = !dev->blk->write_through,
    };

    memset(buf, 0, size);
    if (offset < sizeof(cfg)) {
        memcpy(buf, (uint8_t *)&cfg + offset, MIN(size, sizeof(cfg) - offset));
    }
}

/*
 * CONFIG_WCE is always offered; a front-end restoring the driver's choice
 * on a new connection may send this before SET_FEATURES, so the feature
 * is not asked to be negotiated yet.
 */
bool refbe_blk_set_config(RefBeDev *dev, const VhostUserConfig *c, GError **errp)
{
    const uint32_t wb = offsetof(VirtioBlkConfig, writeback);
    RefBeBlk *blk = dev->blk;

    if (c->offset != wb || c->size != 1) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_CONFIG: offset %" PRIu32 " size %" PRIu32 "; only "
                    "writeback (offset %" PRIu32 ", size 1) is writable",
                    dev->name, c->offset, c->size, wb);
        return false;
    }
    if (c->flags != VHOST_SET_CONFIG_TYPE_FRONTEND &&
        c->flags != VHOST_SET_CONFIG_TYPE_MIGRATION) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_CONFIG: flags 0x%" PRIx32 " is no SET_CONFIG type",
                    dev->name, c->flags);
        return false;
    }
    if (c->region[0] > 1) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: SET_CONFIG: writeback %u is not 0 or 1", dev->name,
                    c->region[0]);
        return false;
    }
    if (blk->write_through == !c->region[0]) {
        return true;
    }
    /* Write-back from now on: what the cache holds must reach the disk. */
    if (c->region[0] && blk->fd >= 0 && fdatasync(blk->fd) < 0) {
        refbe_log("%s: fdatasync on leaving write-through: %s", dev->name,
                g_strerror(errno));
    }
    refbe_log("%s: write cache %s (writeback=%u; %" PRIu64 " writes synced so far)",
            dev->name, c->region[0] ? "on: write-back" : "off: write-through",
            c->region[0], blk->synced);
    blk->write_through = !c->region[0];
    return true;
}

void refbe_blk_get_state(const RefBeBlk *blk, bool *write_through, uint64_t *synced)
{
    *write_through = blk->write_through;
    *synced = blk->synced;
}

void refbe_blk_set_state(RefBeBlk *blk, bool write_through, uint64_t synced)
{
    blk->write_through = write_through;
    blk->synced = synced;
}

/* ---- Disk access ------------------------------------------------------ */

/* True when [sector, sector + bytes / 512) lies on the disk. */
static bool range_ok(RefBeBlk *blk, uint64_t sector, uint64_t bytes)
{
    uint64_t sectors = blk->size / VIRTIO_BLK_SECTOR_SIZE;

    return sector <= sectors && bytes / VIRTIO_BLK_SECTOR_SIZE <= sectors - sector;
}

static bool disk_rw(RefBeBlk *blk, bool write, uint64_t off, struct iovec *iov,
                    unsigned n)
{
    if (blk->ram) {
        for (unsigned i = 0; i < n; i++) {
            if (write) {
                memcpy(blk->ram + off, iov[i].iov_base, iov[i].iov_len);
            } else {
                memcpy(iov[i].iov_base, blk->ram + off, iov[i].iov_len);
            }
            off += iov[i].iov_len;
        }
        return true;
    }
    /* Short transfers are retried from where they stopped. */
    while (n) {
        ssize_t r = write ? pwritev(blk->fd, iov, n, off) : preadv(blk->fd, iov, n, off);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        off += r;
        while (n && (size_t)r >= iov->iov_len) {
            r -= iov->iov_len;
            iov++;
            n--;
        }
        if (n) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= r;
        }
    }
    return true;
}

static bool disk_zero(RefBeBlk *blk, uint64_t off, uint64_t len)
{
    if (blk->ram) {
        memset(blk->ram + off, 0, len);
        return true;
    }
    /* A punched hole reads as zeroes; not every file system can punch. */
    if (fallocate(blk->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)len) == 0) {
        return true;
    }
    while (len) {
        size_t chunk = MIN(len, REFBE_BLK_ZERO_CHUNK);
        ssize_t r = pwrite(blk->fd, blk->zeroes, chunk, off);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        off += r;
        len -= r;
    }
    return true;
}

/* ---- Requests ---------------------------------------------------------- */

static uint8_t do_discard_wz(RefBeBlk *blk, RefBeElem *e, uint32_t type)
{
    size_t bytes = e->out_len - sizeof(VirtioBlkOutHdr);
    size_t nseg = bytes / sizeof(VirtioBlkDiscardWz);
    uint32_t allowed = type == VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WRITE_ZEROES_F_UNMAP : 0;

    if (bytes % sizeof(VirtioBlkDiscardWz) || nseg == 0) {
        return VIRTIO_BLK_S_IOERR;
    }
    if (nseg > REFBE_BLK_MAX_DWZ_SEG) {
        return VIRTIO_BLK_S_UNSUPP;
    }
    /* Check every segment before acting on any. */
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nseg; i++) {
            VirtioBlkDiscardWz seg;
            uint64_t len;

            refbe_iov_to_buf(e->iov, e->out_num, sizeof(VirtioBlkOutHdr) + i * sizeof(seg),
                           &seg, sizeof(seg));
            len = (uint64_t)seg.num_sectors * VIRTIO_BLK_SECTOR_SIZE;
            if (pass == 0) {
                if (seg.flags & ~allowed) {
                    return VIRTIO_BLK_S_UNSUPP;
                }
                if (seg.num_sectors > REFBE_BLK_MAX_DWZ_SECTORS ||
                    !range_ok(blk, seg.sector, len)) {
                    return VIRTIO_BLK_S_IOERR;
                }
            } else if (!disk_zero(blk, seg.sector * VIRTIO_BLK_SECTOR_SIZE, len)) {
                return VIRTIO_BLK_S_IOERR;
            }
        }
    }
    return VIRTIO_BLK_S_OK;
}

/*
 * Executes one request. Returns the used length (bytes written into the
 * driver's buffers, status byte included), or -1 when the ring broke.
 */
static int64_t handle_req(RefBeDev *dev, RefBeVring *vq, RefBeElem *e)
{
    RefBeBlk *blk = dev->blk;
    struct iovec *in = e->iov + e->out_num;
    VirtioBlkOutHdr hdr;
    size_t data_len = e->in_len ? e->in_len - 1 : 0;
    size_t written = 0;
    unsigned n;
    uint8_t status;

    if (e->in_len == 0) {
        refbe_vring_fault(dev, vq, "request %u has no device-writable status byte",
                        e->head);
        return -1;
    }
    if (refbe_iov_to_buf(e->iov, e->out_num, 0, &hdr, sizeof(hdr)) != sizeof(hdr)) {
        status = VIRTIO_BLK_S_IOERR;
        goto done;
    }

    switch (hdr.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool is_write = hdr.type == VIRTIO_BLK_T_OUT;
        size_t len = is_write ? e->out_len - sizeof(hdr) : data_len;

        if (len % VIRTIO_BLK_SECTOR_SIZE || !range_ok(blk, hdr.sector, len)) {
            status = VIRTIO_BLK_S_IOERR;
            break;
        }
        if (is_write) {
            n = refbe_iov_slice(e->iov, e->out_num, sizeof(hdr), len, blk->data,
                              REFBE_MAX_IOV);
        } else {
            n = refbe_iov_slice(in, e->in_num, 0, len, blk->data, REFBE_MAX_IOV);
        }
        if (!disk_rw(blk, is_write, hdr.sector * VIRTIO_BLK_SECTOR_SIZE, blk->data, n)) {
            status = VIRTIO_BLK_S_IOERR;
            break;
        }
        written = is_write ? 0 : len;
        status = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        status = blk->fd < 0 || fdatasync(blk->fd) == 0 ? VIRTIO_BLK_S_OK
                                                        : VIRTIO_BLK_S_IOERR;
        break;
    case VIRTIO_BLK_T_GET_ID: {
        char id[VIRTIO_BLK_ID_BYTES] = { 0 };

        memcpy(id, blk->id, sizeof(id));
        written = refbe_iov_from_buf(in, e->in_num, 0, id, MIN(data_len, sizeof(id)));
        status = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        status = do_discard_wz(blk, e, hdr.type);
        break;
    default:
        status = VIRTIO_BLK_S_UNSUPP;
        break;
    }
    /* Write-through: nothing that changed the disk completes unsynced. */
    if (status == VIRTIO_BLK_S_OK && blk->write_through && blk->fd >= 0 &&
        (hdr.type == VIRTIO_BLK_T_OUT || hdr.type == VIRTIO_BLK_T_DISCARD ||
         hdr.type == VIRTIO_BLK_T_WRITE_ZEROES)) {
        status = fdatasync(blk->fd) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
        blk->synced++;
    }

done:
    refbe_iov_from_buf(in, e->in_num, data_len, &status, 1);
    return (int64_t)written + 1;
}

/*
 * One round: takes up to max requests and runs them in ring order, then
 * completes them newest first, the oldest in a used-ring update of its
 * own. With more than one, the completions are out of avail order for a
 * moment, as with a back-end doing parallel I/O; --batch makes ours do it
 * so that resuming from the used index alone is visibly not enough.
 * Returns the number taken, or -1 when the ring broke; *pop gets the
 * last refbe_inflight_pop result.
 */
static int blk_round(RefBeDev *dev, RefBeVring *vq, unsigned max, int *pop)
{
    RefBeBlk *blk = dev->blk;
    unsigned n = 0;

    while (n < max && (*pop = refbe_inflight_pop(dev, vq, &blk->elems[n])) == 1) {
        refbe_crash_point(dev, REFBE_CRASH_TAKEN);
        blk->lens[n] = handle_req(dev, vq, &blk->elems[n]);
        if (blk->lens[n] < 0) {
            return -1;
        }
        refbe_crash_point(dev, REFBE_CRASH_EXECUTED);
        n++;
    }
    for (unsigned i = 1; i < n; i++) {
        refbe_inflight_fill(vq, blk->elems[n - i].head, (uint32_t)blk->lens[n - i], i - 1);
    }
    if (n > 1) {
        refbe_inflight_flush(dev, vq, n - 1);
    }
    if (n) {
        refbe_inflight_fill(vq, blk->elems[0].head, (uint32_t)blk->lens[0], 0);
        refbe_inflight_flush(dev, vq, 1);
    }
    return (int)n;
}

void refbe_blk_finish_resubmits(RefBeDev *dev, RefBeVring *vq)
{
    bool enabled = vq->enabled;
    int r = 1;

    /* Owed to the driver even by a disabled ring; pop takes them first. */
    vq->enabled = true;
    while (vq->resubmit_pos < vq->resubmit_num && r == 1 && !vq->broken) {
        unsigned left = vq->resubmit_num - vq->resubmit_pos;

        if (blk_round(dev, vq, MIN(left, dev->blk->batch), &r) <= 0) {
            break;
        }
    }
    vq->enabled = enabled;
    refbe_vring_notify(dev, vq);
}

void refbe_blk_kick(RefBeDev *dev, RefBeVring *vq)
{
    RefBeBlk *blk = dev->blk;
    unsigned budget = REFBE_RING_BUDGET;
    int r = 0;

    do {
        while (budget) {
            int n = blk_round(dev, vq, MIN(blk->batch, budget), &r);

            if (n <= 0) {
                break;
            }
            budget -= n;
            if (r != 1) {
                break;
            }
        }
        if (!budget) {
            vq->pending = true;
            break;
        }
    } while (r >= 0 && !vq->broken && refbe_vring_rearm(dev, vq));
    refbe_vring_notify(dev, vq);
}
