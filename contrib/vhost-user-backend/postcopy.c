/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy (protocol feature PAGEFAULT) in the reference back-end.
 *
 * On a postcopy destination, guest RAM arrives while the guest (and so
 * this back-end) already runs. POSTCOPY_ADVISE asks us for a
 * userfaultfd, which goes to the front-end; after POSTCOPY_LISTEN every
 * memory table we map is registered on it for MISSING faults, and the
 * table is answered with the addresses of our own mappings so that the
 * front-end can turn our fault addresses into guest addresses. From
 * then on a page the destination has not received yet simply blocks the
 * thread of ours that touches it, inside the kernel, until the front-end
 * has placed the page and woken our ufd at our address. We never read
 * the ufd ourselves. POSTCOPY_END unregisters the mappings and closes it.
 *
 * One thread serves the socket and runs the rings, so a fault while a
 * ring is processed also holds up message handling, as in other
 * back-ends: the front-end has to serve our faults without waiting for
 * a reply from us. The memory table's reply goes out before anything of
 * ours touches guest RAM, and nothing does until the front-end's ack.
 *
 * A front-end that goes away while we are blocked on a page would leave
 * us blocked for good (our own ufd keeps the kernel waiting), so while
 * the ufd is open a guard thread watches the socket for a hang-up and
 * then unregisters everything, which wakes us; the page then reads as
 * whatever the file has (zeros), which no longer matters to anyone.
 *
 * For tests, --postcopy-touch makes us fault on purpose: "listen" reads
 * one byte of every page once the listening table is acknowledged (a
 * thread of its own, the socket stays served), "reply" reads the pages
 * of a ring before answering the ring requests a destination sends while
 * starting the device, so the front-end waits on a reply while we wait
 * on a page, and "end" reads one byte of every page on POSTCOPY_END
 * before answering it (a page the destination never populated faults
 * then, after the front-end has every page). A touch counts as a fault when the page was not in the
 * mapping's file before (mincore), and the time it took counts as time
 * blocked. The totals are logged after each touch pass and at exit.
 *
 * Untrusted input: the front-end's ack after the listening table (its
 * request code, size, value and fds are checked in server.c); ring
 * addresses were checked against the memory table by refbe_vring_map.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "util/vhost-user-msg.h"
#include "refbe.h"

/* FNV-1a, 64 bits: the checksum of the bytes a touch pass read. */
#define REFBE_FNV_OFFSET      0xcbf29ce484222325ull
#define REFBE_FNV_PRIME       0x100000001b3ull

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* The whole pages our mapping of region r covers (as the ioctls take them). */
static void region_span(const RefBeRegion *r, __u64 *start, __u64 *len)
{
    size_t pg = page_size();

    *start = (uintptr_t)r->map_base;
    *len = (r->map_len + pg - 1) & ~(__u64)(pg - 1);
}

static int userfaultfd_open(GError **errp)
{
    struct uffdio_api api = { .api = UFFD_API };
    int fd = -1;

#ifdef __NR_userfaultfd
    fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
#endif
    /* Without the syscall's privilege, the device node may still be ours. */
    if (fd < 0) {
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            close(dev);
        }
    }
    if (fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "userfaultfd: %s (neither the syscall nor /dev/userfaultfd "
                    "is usable; root or vm.unprivileged_userfaultfd=1 is needed)",
                    g_strerror(errno));
        return -1;
    }
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "userfaultfd: UFFDIO_API: %s", g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Removes our registrations; a thread blocked in one of them is woken. */
static void unregister_all(RefBeDev *dev)
{
    for (unsigned i = 0; dev->pc.ufd >= 0 && i < dev->nregions; i++) {
        struct uffdio_range range;

        if (!dev->regions[i].uffd_registered) {
            continue;
        }
        region_span(&dev->regions[i], &range.start, &range.len);
        if (ioctl(dev->pc.ufd, UFFDIO_UNREGISTER, &range) < 0) {
            refbe_log("%s: postcopy: UFFDIO_UNREGISTER of region %u: %s", dev->name,
                      i, g_strerror(errno));
        }
        dev->regions[i].uffd_registered = false;
    }
}

/*
 * Asks the touch thread to stop and waits for it. Its current touch may
 * still be blocked on a page: with wake, our registrations go first (the
 * kernel then wakes it); without, the front-end has to serve the page.
 */
static void touch_thread_stop(RefBeDev *dev, bool wake)
{
    if (!dev->pc.touch_thread) {
        return;
    }
    __atomic_store_n(&dev->pc.touch_stop, true, __ATOMIC_RELAXED);
    if (wake) {
        unregister_all(dev);
    }
    g_thread_join(dev->pc.touch_thread);
    dev->pc.touch_thread = NULL;
    dev->pc.touch_stop = false;
}

/* Until the socket hangs up or guard_stop is written. */
static gpointer guard_thread(gpointer opaque)
{
    RefBeDev *dev = opaque;
    struct pollfd p[2] = {
        { .fd = dev->sock, .events = POLLRDHUP },
        { .fd = dev->pc.guard_stop, .events = POLLIN },
    };

    for (;;) {
        int r = poll(p, 2, -1);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 || p[1].revents) {
            return NULL;
        }
        if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
            break;
        }
    }
    g_mutex_lock(&dev->pc.lock);
    refbe_log("%s: postcopy: the front-end hung up; unregistering guest memory so that "
              "nothing of ours stays blocked on a page", dev->name);
    unregister_all(dev);
    g_mutex_unlock(&dev->pc.lock);
    return NULL;
}

static void guard_start(RefBeDev *dev, GError **errp)
{
    dev->pc.guard_stop = eventfd(0, EFD_CLOEXEC);
    if (dev->pc.guard_stop < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "eventfd: %s", g_strerror(errno));
        return;
    }
    dev->pc.guard_thread = g_thread_new("refbe-pc-guard", guard_thread, dev);
}

static void guard_stop(RefBeDev *dev)
{
    uint64_t one = 1;

    if (dev->pc.guard_thread) {
        if (write(dev->pc.guard_stop, &one, sizeof(one)) != sizeof(one)) {
            refbe_log("%s: postcopy: cannot stop the guard: %s", dev->name,
                      g_strerror(errno));
        }
        g_thread_join(dev->pc.guard_thread);
        dev->pc.guard_thread = NULL;
    }
    if (dev->pc.guard_stop >= 0) {
        close(dev->pc.guard_stop);
    }
    dev->pc.guard_stop = -1;
}

void refbe_postcopy_lock(RefBeDev *dev)
{
    g_mutex_lock(&dev->pc.lock);
}

void refbe_postcopy_unlock(RefBeDev *dev)
{
    g_mutex_unlock(&dev->pc.lock);
}

void refbe_postcopy_release(RefBeDev *dev)
{
    guard_stop(dev);
    touch_thread_stop(dev, true);
    unregister_all(dev);
    if (dev->pc.ufd >= 0) {
        close(dev->pc.ufd);
    }
    dev->pc.ufd = -1;
    dev->pc.listening = false;
}

bool refbe_postcopy_advise(RefBeDev *dev, int *reply_fd, GError **errp)
{
    int fd;

    /* A second ADVISE starts over with a fresh ufd. */
    refbe_postcopy_release(dev);
    fd = userfaultfd_open(errp);
    if (fd >= 0) {
        *reply_fd = dup(fd);
        if (*reply_fd < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "dup: %s", g_strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        dev->pc.ufd = fd;
        guard_start(dev, errp);
    }
    if (fd < 0 || !dev->pc.guard_thread) {
        g_prefix_error(errp, "%s: POSTCOPY_ADVISE: ", dev->name);
        refbe_postcopy_release(dev);
        if (*reply_fd >= 0) {
            close(*reply_fd);
            *reply_fd = -1;
        }
        return false;
    }
    dev->pc.advised++;
    refbe_log("%s: postcopy advised: userfaultfd created", dev->name);
    return true;
}

bool refbe_postcopy_listen(RefBeDev *dev, GError **errp)
{
    if (dev->pc.ufd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: POSTCOPY_LISTEN before POSTCOPY_ADVISE", dev->name);
        return false;
    }
    dev->pc.listening = true;
    return true;
}

static void touch_end(RefBeDev *dev);

uint64_t refbe_postcopy_end(RefBeDev *dev)
{
    bool had = dev->pc.ufd >= 0;

    if (had && dev->pc.listening && dev->opts->postcopy_touch == REFBE_PC_TOUCH_END) {
        touch_end(dev);
    }
    /* Every page has arrived by now, so nothing of ours can still block. */
    refbe_postcopy_release(dev);
    refbe_log("%s: postcopy ended%s", dev->name, had ? "" : " (it was never advised)");
    return 0;
}

bool refbe_postcopy_listening(const RefBeDev *dev)
{
    return dev->pc.listening;
}

void refbe_postcopy_before_remap(RefBeDev *dev)
{
    /* The old mappings go away: nothing may be reading them. */
    touch_thread_stop(dev, false);
}

bool refbe_postcopy_register(RefBeDev *dev, RefBeRegion *regions, unsigned n,
                             GError **errp)
{
    for (unsigned i = 0; i < n; i++) {
        struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };

        region_span(&regions[i], &reg.range.start, &reg.range.len);
        if (ioctl(dev->pc.ufd, UFFDIO_REGISTER, &reg) < 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "%s: SET_MEM_TABLE while postcopy listens: region %u (GPA 0x%"
                        PRIx64 ", 0x%" PRIx64 " bytes): UFFDIO_REGISTER: %s",
                        dev->name, i, regions[i].gpa, regions[i].size,
                        g_strerror(errno));
            return false;
        }
        regions[i].uffd_registered = true;
    }
    return true;
}

void refbe_postcopy_mem_reply(RefBeDev *dev, const VhostUserMsg *msg, VhostUserMsg *reply)
{
    const VhostUserMemory *sent = &msg->payload.memory;

    vhost_user_msg_init(reply, msg->hdr.request, msg->hdr.size);
    reply->payload.memory.nregions = sent->nregions;
    for (unsigned i = 0; i < sent->nregions; i++) {
        reply->payload.memory.regions[i] = sent->regions[i];
        /* The spec's point: where the region lives in our address space. */
        reply->payload.memory.regions[i].userspace_addr = (uintptr_t)dev->regions[i].host;
    }
}

/* ---- Touching guest pages on purpose ------------------------------------ */

/* Reads *p; a page that was not in the file faults, and that is counted. */
static uint8_t touch_byte(RefBeDev *dev, const uint8_t *p, uint64_t *faults)
{
    size_t pg = page_size();
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)(pg - 1));
    unsigned char resident = 1;
    gint64 t0, t1;
    uint8_t v;

    if (mincore(page, pg, &resident) < 0) {
        resident = 1;
    }
    t0 = g_get_monotonic_time();
    v = *(const volatile uint8_t *)p;
    t1 = g_get_monotonic_time();
    __atomic_add_fetch(&dev->pc.touched, 1, __ATOMIC_RELAXED);
    if (!(resident & 1)) {
        __atomic_add_fetch(&dev->pc.faults, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&dev->pc.blocked_us, (uint64_t)(t1 - t0), __ATOMIC_RELAXED);
        (*faults)++;
    }
    return v;
}

typedef struct TouchRange {
    const uint8_t *host;
    uint64_t size;
} TouchRange;

typedef struct TouchJob {
    RefBeDev *dev;
    GArray *ranges;             /* TouchRange, copied: the table may change */
} TouchJob;

/*
 * --postcopy-touch=listen: one byte at the start of every page, in table
 * order, after one of the last page. When the switch came in the middle of
 * the first round (the tests', the bench's), the last page is owed and the
 * background stream, going on from where the round stopped, reaches it
 * last: that first touch waits for a request whatever the stream and the
 * guest's faults (which it follows) placed meanwhile where the pass begins.
 */
static gpointer touch_listen_thread(gpointer opaque)
{
    TouchJob *job = opaque;
    RefBeDev *dev = job->dev;
    size_t pg = page_size();
    uint64_t pages = 0, faults = 0, sum = REFBE_FNV_OFFSET;
    gint64 start = g_get_monotonic_time();
    bool stopped = false;

    if (job->ranges->len) {
        const TouchRange *last = &g_array_index(job->ranges, TouchRange, job->ranges->len - 1);

        if (last->size >= pg) {
            /* Counted as this pass's fault if it was one; not read again into the hash. */
            (void)touch_byte(dev, last->host + last->size - pg, &faults);
        }
    }
    for (guint i = 0; i < job->ranges->len && !stopped; i++) {
        const TouchRange *r = &g_array_index(job->ranges, TouchRange, i);

        for (uint64_t off = 0; off < r->size; off += pg) {
            if (__atomic_load_n(&dev->pc.touch_stop, __ATOMIC_RELAXED)) {
                stopped = true;
                break;
            }
            sum = (sum ^ touch_byte(dev, r->host + off, &faults)) * REFBE_FNV_PRIME;
            pages++;
        }
    }
    refbe_log("%s: postcopy-touch listen: %s: pages %" PRIu64 " faults %" PRIu64
              " ms %" PRId64 " fnv 0x%016" PRIx64, dev->name,
              stopped ? "stopped" : "done", pages, faults,
              (g_get_monotonic_time() - start) / 1000, sum);
    g_array_free(job->ranges, TRUE);
    g_free(job);
    return NULL;
}

void refbe_postcopy_table_acked(RefBeDev *dev)
{
    TouchJob *job;

    if (dev->opts->postcopy_touch != REFBE_PC_TOUCH_LISTEN) {
        return;
    }
    /* A region was added: a new pass over all of them replaces the old. */
    touch_thread_stop(dev, false);
    job = g_new0(TouchJob, 1);
    job->dev = dev;
    job->ranges = g_array_new(FALSE, FALSE, sizeof(TouchRange));
    for (unsigned i = 0; i < dev->nregions; i++) {
        TouchRange r = { dev->regions[i].host, dev->regions[i].size };

        g_array_append_val(job->ranges, r);
    }
    dev->pc.touch_thread = g_thread_new("refbe-pc-touch", touch_listen_thread, job);
}

/* Every page of [p, p + len). */
static void touch_span(RefBeDev *dev, const void *p, uint64_t len, uint64_t *pages,
                       uint64_t *faults)
{
    size_t pg = page_size();
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(pg - 1);
    uintptr_t end = (uintptr_t)p + len;

    for (; a < end; a += pg) {
        /* The first page may start before p, which lies in guest memory. */
        touch_byte(dev, (const uint8_t *)MAX(a, (uintptr_t)p), faults);
        (*pages)++;
    }
}

void refbe_postcopy_touch_ring(RefBeDev *dev, RefBeVring *vq, const char *req)
{
    uint64_t ev = refbe_has_feature(dev, VIRTIO_RING_F_EVENT_IDX) ? 2 : 0;
    uint64_t pages = 0, faults = 0, ring_faults;
    gint64 start;

    if (dev->opts->postcopy_touch != REFBE_PC_TOUCH_REPLY || !dev->pc.listening ||
        !vq->desc) {
        return;
    }
    start = g_get_monotonic_time();
    touch_span(dev, vq->desc, 16ull * vq->num, &pages, &faults);
    touch_span(dev, vq->avail, 4 + 2ull * vq->num + ev, &pages, &faults);
    touch_span(dev, vq->used, 4 + 8ull * vq->num + ev, &pages, &faults);
    ring_faults = faults;
    /* A few pages the ring does not use: the ends of every region. */
    for (unsigned i = 0; i < dev->nregions; i++) {
        const RefBeRegion *r = &dev->regions[i];

        touch_span(dev, r->host, 1, &pages, &faults);
        touch_span(dev, r->host + r->size - 1, 1, &pages, &faults);
    }
    refbe_log("%s: postcopy-touch reply: %s ring %u: pages %" PRIu64 " faults %" PRIu64
              " ring-faults %" PRIu64 " ms %" PRId64, dev->name, req, vq->index, pages,
              faults, ring_faults, (g_get_monotonic_time() - start) / 1000);
}

/* --postcopy-touch=end: the front-end must still serve our ufd. */
static void touch_end(RefBeDev *dev)
{
    uint64_t pages = 0, faults = 0;
    gint64 start = g_get_monotonic_time();

    for (unsigned i = 0; i < dev->nregions; i++) {
        touch_span(dev, dev->regions[i].host, dev->regions[i].size, &pages, &faults);
    }
    refbe_log("%s: postcopy-touch end: pages %" PRIu64 " faults %" PRIu64 " ms %" PRId64,
              dev->name, pages, faults, (g_get_monotonic_time() - start) / 1000);
}

void refbe_postcopy_report(RefBeDev *dev)
{
    if (!dev->pc.advised && dev->opts->postcopy_touch == REFBE_PC_TOUCH_NONE) {
        return;
    }
    refbe_log("%s: postcopy: advised %u times, pages touched %" PRIu64 ", faults %"
              PRIu64 ", blocked %" PRIu64 " us", dev->name, dev->pc.advised,
              __atomic_load_n(&dev->pc.touched, __ATOMIC_RELAXED),
              __atomic_load_n(&dev->pc.faults, __ATOMIC_RELAXED),
              __atomic_load_n(&dev->pc.blocked_us, __ATOMIC_RELAXED));
}
