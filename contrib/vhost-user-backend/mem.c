/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory for the reference back-end: the whole table of
 * SET_MEM_TABLE, or (with --mem-slots, protocol feature
 * CONFIGURE_MEM_SLOTS) one region at a time with ADD_MEM_REG and
 * REM_MEM_REG. Each region is an mmap of the fd that came with it; the
 * rings are translated again after every change. While postcopy listens
 * (postcopy.c), new mappings are registered on the userfaultfd and the
 * request is answered with our own addresses.
 *
 * Untrusted input: every region's size, guest and user addresses and
 * mmap offset (no wrap-around, no empty region, within its fd when the
 * fd is a regular file so that no access can raise SIGBUS), overlaps
 * with the other regions in guest and user address space, the region
 * count (at most VHOST_MEMORY_BASELINE_NREGIONS, also with slots), and
 * REM_MEM_REG's region, which must be one we hold. A bad request changes
 * nothing and ends the connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "util/vhost-user-msg.h"
#include "refbe.h"

static void unmap_regions(RefBeRegion *regions, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (regions[i].map_base) {
            munmap(regions[i].map_base, regions[i].map_len);
        }
    }
    memset(regions, 0, n * sizeof(*regions));
}

/*
 * Maps one region. The fd's size is checked first: touching a mapping
 * past the end of its file raises SIGBUS, which the guest must not be
 * able to trigger in us.
 */
static bool map_region(RefBeDev *dev, const char *req, unsigned i,
                       const VhostUserMemoryRegion *m, int fd, RefBeRegion *r,
                       GError **errp)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t aligned = m->mmap_offset & ~(uint64_t)(page - 1);
    uint64_t delta = m->mmap_offset - aligned;
    struct stat st;
    void *p;

    if (m->memory_size == 0 ||
        m->guest_phys_addr + m->memory_size < m->guest_phys_addr ||
        m->userspace_addr + m->memory_size < m->userspace_addr ||
        m->mmap_offset + m->memory_size < m->mmap_offset ||
        m->memory_size + delta > SIZE_MAX / 2) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: region %u: size 0x%" PRIx64 " at GPA 0x%"
                    PRIx64 " UVA 0x%" PRIx64 " offset 0x%" PRIx64
                    " is empty or wraps around", dev->name, req, i, m->memory_size,
                    m->guest_phys_addr, m->userspace_addr, m->mmap_offset);
        return false;
    }
    if (fd < 0 || fstat(fd, &st) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: %s: region %u: fstat: %s", dev->name, req, i,
                    fd < 0 ? "no fd" : g_strerror(errno));
        return false;
    }
    if (S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size < m->mmap_offset + m->memory_size) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: %s: region %u: fd holds %" PRIu64 " bytes, "
                    "less than mmap_offset 0x%" PRIx64 " + memory_size 0x%" PRIx64,
                    dev->name, req, i, (uint64_t)st.st_size, m->mmap_offset,
                    m->memory_size);
        return false;
    }
    p = mmap(NULL, m->memory_size + delta, PROT_READ | PROT_WRITE, MAP_SHARED,
             fd, (off_t)aligned);
    if (p == MAP_FAILED) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: %s: region %u: mmap of 0x%" PRIx64
                    " bytes at offset 0x%" PRIx64 ": %s", dev->name, req, i,
                    m->memory_size, m->mmap_offset, g_strerror(errno));
        return false;
    }
    r->gpa = m->guest_phys_addr;
    r->size = m->memory_size;
    r->uva = m->userspace_addr;
    r->map_base = p;
    r->map_len = m->memory_size + delta;
    r->host = (uint8_t *)p + delta;
    return true;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Region m against the n regions of others; index i names m in the error. */
static bool check_overlap(RefBeDev *dev, const char *req, unsigned i,
                          const VhostUserMemoryRegion *m, const RefBeRegion *others,
                          unsigned n, GError **errp)
{
    for (unsigned j = 0; j < n; j++) {
        if (ranges_overlap(m->guest_phys_addr, m->memory_size, others[j].gpa,
                           others[j].size) ||
            ranges_overlap(m->userspace_addr, m->memory_size, others[j].uva,
                           others[j].size)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "%s: %s: region %u (GPA 0x%" PRIx64 ") overlaps the one at "
                        "GPA 0x%" PRIx64, dev->name, req, i, m->guest_phys_addr,
                        others[j].gpa);
            return false;
        }
    }
    return true;
}

/* Ring addresses are UVAs: translate them again in the changed table. */
static void remap_rings(RefBeDev *dev, const char *req)
{
    for (unsigned i = 0; i < dev->nvrings; i++) {
        RefBeVring *vq = &dev->vrings[i];
        g_autoptr(GError) err = NULL;

        if (vq->desc && !refbe_vring_map(dev, vq, &err)) {
            refbe_vring_fault(dev, vq, "after %s: %s", req, err->message);
        }
    }
}

/*
 * While postcopy listens, the fresh mappings are registered on the ufd
 * and the reply is the table with our addresses; the front-end's ack is
 * awaited once it is sent (server.c).
 */
bool refbe_mem_set_table(RefBeDev *dev, const VhostUserMsg *msg, int *fds,
                         VhostUserMsg *reply, bool *has_reply, GError **errp)
{
    const VhostUserMemory *mem = &msg->payload.memory;
    RefBeRegion fresh[VHOST_MEMORY_BASELINE_NREGIONS] = { 0 };
    unsigned n = mem->nregions;     /* 1..8, checked by the validator */

    for (unsigned i = 0; i < n; i++) {
        if (!check_overlap(dev, "SET_MEM_TABLE", i, &mem->regions[i], fresh, i, errp) ||
            !map_region(dev, "SET_MEM_TABLE", i, &mem->regions[i], fds[i], &fresh[i],
                        errp)) {
            unmap_regions(fresh, i);
            return false;
        }
    }
    if (refbe_postcopy_listening(dev) && !refbe_postcopy_register(dev, fresh, n, errp)) {
        unmap_regions(fresh, n);
        return false;
    }
    /* The mappings keep the memory; the fds are no longer needed. */
    refbe_postcopy_before_remap(dev);
    refbe_postcopy_lock(dev);
    unmap_regions(dev->regions, dev->nregions);
    memcpy(dev->regions, fresh, sizeof(fresh));
    dev->nregions = n;
    refbe_postcopy_unlock(dev);
    remap_rings(dev, "SET_MEM_TABLE");
    if (refbe_postcopy_listening(dev)) {
        refbe_postcopy_mem_reply(dev, msg, reply);
        *has_reply = true;
        dev->pc.ack_request = msg->hdr.request;
    }
    return true;
}

bool refbe_mem_add(RefBeDev *dev, const VhostUserMsg *msg, int fd, VhostUserMsg *reply,
                   bool *has_reply, GError **errp)
{
    const VhostUserMemoryRegion *m = &msg->payload.mem_reg.region;
    RefBeRegion r = { 0 };

    if (dev->nregions >= VHOST_MEMORY_BASELINE_NREGIONS) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: ADD_MEM_REG: all %d slots (GET_MAX_MEM_SLOTS) are in use",
                    dev->name, VHOST_MEMORY_BASELINE_NREGIONS);
        return false;
    }
    if (!check_overlap(dev, "ADD_MEM_REG", dev->nregions, m, dev->regions, dev->nregions,
                       errp) ||
        !map_region(dev, "ADD_MEM_REG", dev->nregions, m, fd, &r, errp)) {
        return false;
    }
    if (refbe_postcopy_listening(dev) && !refbe_postcopy_register(dev, &r, 1, errp)) {
        unmap_regions(&r, 1);
        return false;
    }
    refbe_postcopy_lock(dev);
    dev->regions[dev->nregions++] = r;
    refbe_postcopy_unlock(dev);
    remap_rings(dev, "ADD_MEM_REG");
    if (refbe_postcopy_listening(dev)) {
        vhost_user_msg_init(reply, msg->hdr.request, msg->hdr.size);
        reply->payload.mem_reg = msg->payload.mem_reg;
        /* As for a whole table: where the region lives in our address space. */
        reply->payload.mem_reg.region.userspace_addr = (uintptr_t)r.host;
        *has_reply = true;
        dev->pc.ack_request = msg->hdr.request;
        refbe_log("%s: ADD_MEM_REG while postcopy listens: GPA 0x%" PRIx64 " at %p",
                  dev->name, r.gpa, (void *)r.host);
    }
    return true;
}

bool refbe_mem_rem(RefBeDev *dev, const VhostUserMsg *msg, GError **errp)
{
    const VhostUserMemoryRegion *m = &msg->payload.mem_reg.region;
    unsigned i;

    /* The front-end names the region by where it sits in guest memory. */
    for (i = 0; i < dev->nregions; i++) {
        if (dev->regions[i].gpa == m->guest_phys_addr &&
            dev->regions[i].size == m->memory_size) {
            break;
        }
    }
    if (i == dev->nregions) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: REM_MEM_REG: no region of 0x%" PRIx64 " bytes at GPA 0x%"
                    PRIx64, dev->name, m->memory_size, m->guest_phys_addr);
        return false;
    }
    refbe_postcopy_before_remap(dev);
    refbe_postcopy_lock(dev);
    unmap_regions(&dev->regions[i], 1);
    memmove(&dev->regions[i], &dev->regions[i + 1],
            (dev->nregions - i - 1) * sizeof(dev->regions[0]));
    dev->nregions--;
    memset(&dev->regions[dev->nregions], 0, sizeof(dev->regions[0]));
    refbe_postcopy_unlock(dev);
    remap_rings(dev, "REM_MEM_REG");
    return true;
}

void refbe_mem_release(RefBeDev *dev)
{
    unmap_regions(dev->regions, dev->nregions);
    dev->nregions = 0;
}
