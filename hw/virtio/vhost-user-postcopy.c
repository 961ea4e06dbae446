/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy, the protocol step (see vhost-user-postcopy.h). The PAGEFAULT
 * gate is the request path's (the message table's gate column).
 *
 * UNTRUSTED INPUT: the fd of the POSTCOPY_ADVISE reply, the memory tables
 * the back-end answers while listening and the POSTCOPY_END status come
 * from the back-end. The fd must really be a userfaultfd; every region's
 * count, guest address and size must match what we sent; any mismatch
 * drops the connection (vhost_user_fail).
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chardev/char-socket-int.h"
#include "hw/virtio/vhost-user-postcopy.h"
#include "util/vhost-user-error.h"

typedef struct PostcopyRegion {
    uint64_t gpa;
    uint64_t size;
    uint64_t backend_base;      /* the back-end's userspace address */
} PostcopyRegion;

typedef struct VhostUserPostcopy {
    int ufd;
    GArray *regions;            /* PostcopyRegion */
} VhostUserPostcopy;

/*
 * u->postcopy (the pointer and its contents) of every connection, taken
 * inside u->lock where both are needed. The fault thread translates under
 * this lock alone: u->lock is held for a whole request, and a back-end
 * may fault while it handles one (libvhost-user reads the used index on
 * SET_VRING_ADDR), so translating under u->lock would wait for a reply
 * that waits for the page.
 */
static GMutex pc_lock;

static void postcopy_free(VhostUserPostcopy *pc)
{
    if (pc->ufd >= 0) {
        close(pc->ufd);
    }
    g_array_free(pc->regions, TRUE);
    g_free(pc);
}

/* A new connection knows nothing of the old one's ufd or addresses. */
static void postcopy_conn_hook(VhostUserState *u, VhostUserConnEvent ev, void *opaque)
{
    VhostUserPostcopy *pc;

    (void)ev;
    (void)opaque;
    g_mutex_lock(&u->lock);
    g_mutex_lock(&pc_lock);
    pc = u->postcopy;
    u->postcopy = NULL;
    g_mutex_unlock(&pc_lock);
    g_mutex_unlock(&u->lock);
    vhost_user_remove_conn_hook(u, postcopy_conn_hook, NULL);
    if (pc) {
        postcopy_free(pc);
    }
}

/* Caller holds u->lock and pc_lock. */
static VhostUserPostcopy *postcopy_state_locked(VhostUserState *u)
{
    if (!u->postcopy) {
        u->postcopy = g_new0(VhostUserPostcopy, 1);
        u->postcopy->ufd = -1;
        u->postcopy->regions = g_array_new(FALSE, TRUE, sizeof(PostcopyRegion));
    }
    return u->postcopy;
}

/* Any other fd could be a file or socket the back-end wants us to use. */
static bool fd_is_userfaultfd(int fd)
{
    char path[64], target[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        return false;
    }
    target[n] = '\0';
    return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

bool vhost_user_postcopy_advise(VhostUserState *u, GError **errp)
{
    VhostUserMsg msg, reply;
    VhostUserPostcopy *pc;
    int fd = -1;

    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = VHOST_USER_POSTCOPY_ADVISE;
    if (!vhost_user_call_fd(u, 0, &msg, NULL, 0, &reply, &fd, errp)) {
        return false;
    }
    if (fd < 0) {
        return vhost_user_fail(u, errp, "%s: POSTCOPY_ADVISE reply: no userfaultfd "
                               "came with it", u->name);
    }
    if (!fd_is_userfaultfd(fd)) {
        close(fd);
        return vhost_user_fail(u, errp, "%s: POSTCOPY_ADVISE reply: the fd is not "
                               "a userfaultfd", u->name);
    }
    vhost_user_add_conn_hook(u, postcopy_conn_hook, NULL);
    g_mutex_lock(&u->lock);
    g_mutex_lock(&pc_lock);
    pc = postcopy_state_locked(u);
    if (pc->ufd >= 0) {
        close(pc->ufd);
    }
    pc->ufd = fd;
    g_mutex_unlock(&pc_lock);
    g_mutex_unlock(&u->lock);
    return true;
}

bool vhost_user_postcopy_listen(VhostUserState *u, GError **errp)
{
    VhostUserMsg msg;

    if (vhost_user_postcopy_ufd(u) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: POSTCOPY_LISTEN before POSTCOPY_ADVISE", u->name);
        return false;
    }
    memset(&msg.hdr, 0, sizeof(msg.hdr));
    msg.hdr.request = VHOST_USER_POSTCOPY_LISTEN;
    if (!vhost_user_send(u, 0, &msg, NULL, 0, 0, errp)) {
        return false;
    }
    g_mutex_lock(&u->lock);
    u->postcopy_listening = true;
    g_mutex_unlock(&u->lock);
    return true;
}

bool vhost_user_postcopy_end(VhostUserState *u, GError **errp)
{
    VhostUserPostcopy *pc;
    uint64_t status;
    bool ok;

    ok = vhost_user_call_u64(u, 0, VHOST_USER_POSTCOPY_END, &status, errp);
    if (ok && status != 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "%s: back-end failed POSTCOPY_END (status %" PRIu64 ")",
                    u->name, status);
        ok = false;
    }
    /* Ended either way: the back-end's ufd is of no further use to us. */
    g_mutex_lock(&u->lock);
    u->postcopy_listening = false;
    g_mutex_lock(&pc_lock);
    pc = u->postcopy;
    if (pc && pc->ufd >= 0) {
        close(pc->ufd);
        pc->ufd = -1;
    }
    g_mutex_unlock(&pc_lock);
    g_mutex_unlock(&u->lock);
    return ok;
}

int vhost_user_postcopy_ufd(VhostUserState *u)
{
    int fd;

    g_mutex_lock(&pc_lock);
    fd = u->postcopy ? u->postcopy->ufd : -1;
    g_mutex_unlock(&pc_lock);
    return fd;
}

bool vhost_user_postcopy_listening(VhostUserState *u)
{
    bool l;

    g_mutex_lock(&u->lock);
    l = u->postcopy_listening;
    g_mutex_unlock(&u->lock);
    return l;
}

bool vhost_user_postcopy_translate(VhostUserState *u, uint64_t backend_addr,
                                   uint64_t *gpa, unsigned *region)
{
    bool found = false;

    /* pc_lock alone: see its comment. */
    g_mutex_lock(&pc_lock);
    for (guint i = 0; u->postcopy && i < u->postcopy->regions->len; i++) {
        const PostcopyRegion *r = &g_array_index(u->postcopy->regions, PostcopyRegion, i);

        /* Written as an offset compare so base + size cannot overflow. */
        if (backend_addr >= r->backend_base && backend_addr - r->backend_base < r->size) {
            *gpa = r->gpa + (backend_addr - r->backend_base);
            *region = i;
            found = true;
            break;
        }
    }
    g_mutex_unlock(&pc_lock);
    return found;
}

/*
 * Runs under u->lock: the error (INVALID_MESSAGE) makes the request path
 * drop the connection, so vhost_user_fail (which takes the lock) is not used.
 */
static bool G_GNUC_PRINTF(2, 3) reply_error(GError **errp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_propagate_error(errp, g_error_new_valist(VHOST_USER_ERROR,
                                               VHOST_USER_ERROR_INVALID_MESSAGE, fmt, ap));
    va_end(ap);
    return false;
}

/* One region of the back-end's answer against the one we sent. */
static bool check_region(VhostUserState *u, const char *req, unsigned i,
                         const VhostUserMemoryRegion *sent,
                         const VhostUserMemoryRegion *got, GError **errp)
{
    if (got->guest_phys_addr != sent->guest_phys_addr) {
        return reply_error(errp, "%s: %s reply: region %u guest_phys_addr 0x%"
                               PRIx64 " but 0x%" PRIx64 " was sent", u->name, req, i,
                               got->guest_phys_addr, sent->guest_phys_addr);
    }
    if (got->memory_size != sent->memory_size) {
        return reply_error(errp, "%s: %s reply: region %u memory_size 0x%"
                               PRIx64 " but 0x%" PRIx64 " was sent", u->name, req, i,
                               got->memory_size, sent->memory_size);
    }
    return true;
}

/*
 * replace: an ADD_MEM_REG of a GPA already kept supersedes it. A whole
 * table was cleared first, so each of its regions is kept as sent, even
 * two naming one GPA: each answer then translates (fuzz-postcopy-reply
 * found the first one's base dropped).
 */
static void keep_region(VhostUserState *u, VhostUserPostcopy *pc,
                        const VhostUserMemoryRegion *sent, const VhostUserMemoryRegion *got,
                        bool replace)
{
    PostcopyRegion r = {
        .gpa = got->guest_phys_addr,
        .size = got->memory_size,
        .backend_base = got->userspace_addr,
    };

    /*
     * Our own address back: a back-end that filled in a copy of the message
     * (libvhost-user). Its real base is in its maps; a back-end in this
     * process really has ours.
     */
    if (got->userspace_addr == sent->userspace_addr) {
        vhost_user_postcopy_peer_base(char_socket_fd(u->chr), sent->userspace_addr,
                                      sent->mmap_offset, sent->memory_size,
                                      &r.backend_base);
    }

    for (guint i = 0; replace && i < pc->regions->len; i++) {
        if (g_array_index(pc->regions, PostcopyRegion, i).gpa == r.gpa) {
            g_array_index(pc->regions, PostcopyRegion, i) = r;
            return;
        }
    }
    g_array_append_val(pc->regions, r);
}

/*
 * Runs with u->lock held (vhost_user_call_listening), so the bases and
 * the listening flag change together with the request.
 */
static bool mem_reply_locked(VhostUserState *u, const VhostUserMsg *msg,
                             const VhostUserMsg *reply, GError **errp)
{
    VhostUserPostcopy *pc = postcopy_state_locked(u);

    if (msg->hdr.request == VHOST_USER_ADD_MEM_REG) {
        if (!check_region(u, "ADD_MEM_REG", 0, &msg->payload.mem_reg.region,
                          &reply->payload.mem_reg.region, errp)) {
            return false;
        }
        keep_region(u, pc, &msg->payload.mem_reg.region, &reply->payload.mem_reg.region,
                    true);
        return true;
    }
    if (reply->payload.memory.nregions != msg->payload.memory.nregions) {
        return reply_error(errp, "%s: SET_MEM_TABLE reply: nregions %" PRIu32
                               " but %" PRIu32 " were sent", u->name,
                               reply->payload.memory.nregions, msg->payload.memory.nregions);
    }
    for (uint32_t i = 0; i < msg->payload.memory.nregions; i++) {
        if (!check_region(u, "SET_MEM_TABLE", i, &msg->payload.memory.regions[i],
                          &reply->payload.memory.regions[i], errp)) {
            return false;
        }
    }
    /* A whole table replaces whatever the back-end had. */
    g_array_set_size(pc->regions, 0);
    for (uint32_t i = 0; i < msg->payload.memory.nregions; i++) {
        keep_region(u, pc, &msg->payload.memory.regions[i], &reply->payload.memory.regions[i],
                    false);
    }
    return true;
}

bool vhost_user_postcopy_mem_reply(VhostUserState *u, const VhostUserMsg *msg,
                                   const VhostUserMsg *reply, void *opaque, GError **errp)
{
    bool ok;

    (void)opaque;
    g_mutex_lock(&pc_lock);
    ok = mem_reply_locked(u, msg, reply, errp);
    g_mutex_unlock(&pc_lock);
    return ok;
}
