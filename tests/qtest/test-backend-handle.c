/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The test back-end's request handling: what each valid front-end
 * request does to the connection's state (features, memory regions,
 * rings, the dirty log, inflight, status) and the reply it gets, plus
 * the gating rules the syntax validator cannot know. test-backend.c
 * reads, validates and dispatches each request and sends the reply.
 *
 * As everywhere in the test back-end, what the front-end sends is
 * untrusted: a bad size, index or fd is a violation, never a crash.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/vhost-user-msg.h"
#include "test-backend.h"
#include "test-backend-int.h"

/* Checks the fd of an mmap-able region and maps it; lock held. */
static bool tb_map_region(TestBackend *tb, TbConn *c, TbRegion *r,
                          const VhostUserMemoryRegion *desc, int fd)
{
    struct stat st;
    uint64_t len;
    void *p;

    if (desc->memory_size == 0 ||
        desc->mmap_offset > UINT64_MAX - desc->memory_size ||
        desc->guest_phys_addr > UINT64_MAX - desc->memory_size) {
        tb_violation_locked(tb, c, "memory region gpa=0x%" PRIx64 " size=0x%" PRIx64
                            " offset=0x%" PRIx64 ": bad size/offset",
                            desc->guest_phys_addr, desc->memory_size,
                            desc->mmap_offset);
        return false;
    }
    len = desc->mmap_offset + desc->memory_size;
    /* Mapping past the end of the file would SIGBUS on first touch. */
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < len) {
        tb_violation_locked(tb, c, "memory region gpa=0x%" PRIx64
                            ": fd smaller than mmap_offset + memory_size (0x%" PRIx64 ")",
                            desc->guest_phys_addr, len);
        return false;
    }
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        tb_violation_locked(tb, c, "memory region gpa=0x%" PRIx64 ": mmap: %s",
                            desc->guest_phys_addr, g_strerror(errno));
        return false;
    }
    r->desc = *desc;
    r->map = p;
    r->map_len = len;
    return true;
}

static bool tb_ring_check(TestBackend *tb, TbConn *c, const char *req, int ring)
{
    if (ring < 0 || ring >= TB_MAX_RINGS) {
        tb_violation_locked(tb, c, "%s: ring index %d out of range", req, ring);
        return false;
    }
    return true;
}

/* Spec rules the syntax validator cannot know: gating by negotiation. */
void tb_check_gate_locked(TestBackend *tb, TbConn *c, const VhostUserMsg *msg,
                          const VhostUserMsgInfo *info)
{
    bool ack_negotiated = c->protocol_features_set &&
        (c->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));

    if (info->gate == VHOST_USER_GATE_PROTO &&
        !(c->offered_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
        tb_violation_locked(tb, c, "%s sent but PROTOCOL_FEATURES not offered",
                            info->name);
    } else if (info->gate >= 0 &&
               !(c->protocol_features_set &&
                 (c->protocol_features & (1ull << info->gate)))) {
        tb_violation_locked(tb, c, "%s sent but protocol feature %s not negotiated",
                            info->name,
                            vhost_user_protocol_feature_name(info->gate));
    }
    if ((msg->hdr.flags & VHOST_USER_NEED_REPLY_MASK) &&
        info->reply != VHOST_USER_RK_ACK && !ack_negotiated) {
        tb_violation_locked(tb, c, "%s carries NEED_REPLY without REPLY_ACK negotiated",
                            info->name);
    }
    if (msg->hdr.flags & VHOST_USER_REPLY_MASK) {
        tb_violation_locked(tb, c, "%s request carries the REPLY flag", info->name);
    }
}

/*
 * GET_INFLIGHT_FD: a zeroed memfd of the split layout's size, offset 0;
 * TB_FAULT_VALUE reports value as mmap_size instead (the memfd keeps its
 * real size), to test the front-end's checks; 0 comes without an fd. SET_INFLIGHT_FD must hand
 * back one fd with the sizes it was given. Called with tb->lock held.
 */
static bool tb_handle_inflight(TestBackend *tb, TbConn *c, uint32_t request,
                               const VhostUserPayload *p, const int *fds, size_t nfds,
                               const TbAction *act, VhostUserPayload *reply,
                               uint32_t *reply_size, bool *has_reply)
{
    uint64_t size = (uint64_t)p->inflight.num_queues *
                    (16u + 16u * (uint64_t)p->inflight.queue_size);
    struct stat st;

    if (p->inflight.num_queues == 0 || p->inflight.queue_size == 0) {
        tb_violation_locked(tb, c, "%s: %u queues of %u descriptors",
                            request == VHOST_USER_GET_INFLIGHT_FD ? "GET_INFLIGHT_FD"
                                                                  : "SET_INFLIGHT_FD",
                            p->inflight.num_queues, p->inflight.queue_size);
        return false;
    }
    if (request == VHOST_USER_SET_INFLIGHT_FD) {
        if (nfds != 1 || fstat(fds[0], &st) < 0 ||
            (uint64_t)st.st_size < p->inflight.mmap_offset + p->inflight.mmap_size) {
            tb_violation_locked(tb, c, "SET_INFLIGHT_FD: %zu fds, or an fd smaller "
                                "than offset %" PRIu64 " + size %" PRIu64, nfds,
                                p->inflight.mmap_offset, p->inflight.mmap_size);
            return false;
        }
        return true;
    }
    tb_close_fd(&c->reply_fd);
    reply->inflight = p->inflight;
    reply->inflight.mmap_size = act->fault == TB_FAULT_VALUE ? act->value : size;
    /* A back-end that does not track this device says size 0, with no fd. */
    if (reply->inflight.mmap_size) {
        c->reply_fd = memfd_create("tb-inflight", MFD_CLOEXEC);
        g_assert(c->reply_fd >= 0);
        g_assert(ftruncate(c->reply_fd, (off_t)size) == 0);
    }
    reply->inflight.mmap_offset = 0;
    *reply_size = sizeof(VhostUserInflight);
    *has_reply = true;
    return true;
}

/*
 * Applies one valid request to the connection's state and builds the
 * reply (if any) into *reply / *reply_size. Takes ownership of fds.
 * Returns false when the connection must be dropped.
 */
bool tb_handle(TestBackend *tb, TbConn *c, const VhostUserMsg *msg,
               int *fds, size_t nfds, const TbAction *act,
               VhostUserPayload *reply, uint32_t *reply_size, bool *has_reply)
{
    /* An aligned copy: the payload sits at offset 12 of the packed message. */
    g_autofree VhostUserPayload *p = g_new0(VhostUserPayload, 1);
    const char *name = vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND,
                                               msg->hdr.request);
    int ring = vhost_user_msg_ring_index(VHOST_USER_CHANNEL_FRONTEND, msg);
    bool ok = true;
    bool value = act->fault == TB_FAULT_VALUE;

    *has_reply = false;
    *reply_size = 0;
    memcpy(p, msg->payload.raw, msg->hdr.size);

    g_mutex_lock(&tb->lock);
    if (ring >= 0 && !tb_ring_check(tb, c, name, ring)) {
        ok = false;
        goto out;
    }
    switch (msg->hdr.request) {
    case VHOST_USER_GET_FEATURES:
        reply->u64 = value ? act->value : tb->cfg.features;
        c->offered_features = reply->u64;
        *reply_size = 8;
        *has_reply = true;
        break;
    case VHOST_USER_SET_FEATURES:
        if (p->u64 & ~c->offered_features) {
            tb_violation_locked(tb, c, "SET_FEATURES acks 0x%" PRIx64
                                " not offered (offered 0x%" PRIx64 ")",
                                p->u64, c->offered_features);
        }
        c->features = p->u64;
        c->features_set = true;
        break;
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        reply->u64 = value ? act->value : tb->cfg.protocol_features;
        *reply_size = 8;
        *has_reply = true;
        break;
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        if (p->u64 & ~tb->cfg.protocol_features) {
            tb_violation_locked(tb, c, "SET_PROTOCOL_FEATURES acks 0x%" PRIx64
                                " not offered", p->u64);
        }
        c->protocol_features = p->u64;
        c->protocol_features_set = true;
        break;
    case VHOST_USER_GET_QUEUE_NUM:
        reply->u64 = value ? act->value : tb->cfg.queue_num;
        *reply_size = 8;
        *has_reply = true;
        break;
    case VHOST_USER_SET_OWNER:
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
    case VHOST_USER_SET_VRING_ENDIAN:
    case VHOST_USER_SEND_RARP:
    case VHOST_USER_NET_SET_MTU:
    case VHOST_USER_SET_CONFIG:
        break;
    case VHOST_USER_SET_MEM_TABLE: {
        const VhostUserMemory *mem = &p->memory;
        for (unsigned i = 0; i < G_N_ELEMENTS(c->regions); i++) {
            tb_region_unmap(&c->regions[i]);
        }
        /* The validator checked nregions against size and fd count. */
        for (unsigned i = 0; i < mem->nregions && i < nfds; i++) {
            if (!tb_map_region(tb, c, &c->regions[i], &mem->regions[i], fds[i])) {
                ok = false;
                break;
            }
        }
        break;
    }
    case VHOST_USER_ADD_MEM_REG: {
        TbRegion *slot;
        g_autofree char *why = tb_mem_check_add(c->regions, tb_mem_slots(&tb->cfg),
                                                &p->mem_reg.region, &slot);

        if (why) {
            tb_violation_locked(tb, c, "%s", why);
            ok = false;
        } else if (nfds != 1 ||
                   !tb_map_region(tb, c, slot, &p->mem_reg.region, fds[0])) {
            ok = false;
        }
        break;
    }
    case VHOST_USER_REM_MEM_REG: {
        g_autofree char *why = NULL;
        TbRegion *r = tb_mem_find_rem(c->regions, tb_mem_slots(&tb->cfg),
                                      &p->mem_reg.region, &why);

        if (r) {
            tb_region_unmap(r);
        } else {
            tb_violation_locked(tb, c, "%s", why);
        }
        break;
    }
    case VHOST_USER_GET_MAX_MEM_SLOTS:
        reply->u64 = value ? act->value : tb_mem_slots(&tb->cfg);
        *reply_size = 8;
        *has_reply = true;
        break;
    case VHOST_USER_SET_LOG_BASE: {
        struct stat st;
        void *map;

        /* Mapped as a back-end would, so a test can mark pages (tb_log_mark). */
        if (nfds != 1 || fstat(fds[0], &st) < 0 || p->log.mmap_size == 0 ||
            p->log.mmap_offset > (uint64_t)st.st_size ||
            p->log.mmap_size > (uint64_t)st.st_size - p->log.mmap_offset) {
            tb_violation_locked(tb, c, "SET_LOG_BASE: %zu fds, or size %" PRIu64
                                " at offset %" PRIu64 " outside the fd", nfds,
                                p->log.mmap_size, p->log.mmap_offset);
            ok = false;
            break;
        }
        map = mmap(NULL, p->log.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
                   (off_t)p->log.mmap_offset);
        g_assert(map != MAP_FAILED);
        tb_log_unmap(c);
        c->log_map = map;
        c->log_len = p->log.mmap_size;
        if (c->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD)) {
            reply->u64 = 0;
            *reply_size = 8;
            *has_reply = true;
        }
        break;
    }
    case VHOST_USER_SET_LOG_FD:
        break;
    case VHOST_USER_SET_VRING_NUM:
        c->rings[ring].num = p->state.num;
        break;
    case VHOST_USER_SET_VRING_ADDR:
        c->rings[ring].addr = p->addr;
        c->rings[ring].addr_set = true;
        break;
    case VHOST_USER_SET_VRING_BASE:
        c->rings[ring].base = p->state.num;
        c->rings[ring].stopped = false;
        break;
    case VHOST_USER_GET_VRING_BASE:
        reply->state.index = ring;
        reply->state.num = value ? (uint32_t)act->value :
            tb->vring_base_reply[ring] >= 0 ? (uint32_t)tb->vring_base_reply[ring] :
            c->rings[ring].base;
        *reply_size = sizeof(VhostUserVringState);
        *has_reply = true;
        c->rings[ring].started = false;
        c->rings[ring].stopped = true;
        /* The spec lets the back-end drop the kick fd of a stopped ring. */
        tb_close_fd(&c->rings[ring].kick_fd);
        break;
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR: {
        TbRing *r = &c->rings[ring];
        int *slot = msg->hdr.request == VHOST_USER_SET_VRING_KICK ? &r->kick_fd :
                    msg->hdr.request == VHOST_USER_SET_VRING_CALL ? &r->call_fd :
                    &r->err_fd;
        tb_close_fd(slot);
        if (!(p->u64 & VHOST_USER_VRING_NOFD_MASK) && nfds == 1) {
            *slot = fds[0];
            fds[0] = -1;
        }
        if (msg->hdr.request == VHOST_USER_SET_VRING_KICK) {
            if (!r->addr_set || r->num == 0) {
                tb_violation_locked(tb, c, "SET_VRING_KICK on ring %d before "
                                    "SET_VRING_NUM/SET_VRING_ADDR", ring);
            }
            r->started = true;
            r->stopped = false;
            /* Without PROTOCOL_FEATURES a ring is enabled when it starts. */
            if (!(c->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
                r->enabled = true;
            }
        }
        break;
    }
    case VHOST_USER_SET_VRING_ENABLE:
        if (p->state.num > 1) {
            tb_violation_locked(tb, c, "SET_VRING_ENABLE ring %d num %u not 0/1",
                                ring, p->state.num);
        }
        c->rings[ring].enabled = p->state.num != 0;
        break;
    case VHOST_USER_GET_CONFIG: {
        const VhostUserConfig *cfg = &p->config;
        uint32_t n = cfg->size;
        if (cfg->offset > VHOST_USER_MAX_CONFIG_SIZE ||
            n > VHOST_USER_MAX_CONFIG_SIZE - cfg->offset) {
            tb_violation_locked(tb, c, "GET_CONFIG offset %u size %u beyond %u bytes",
                                cfg->offset, n, VHOST_USER_MAX_CONFIG_SIZE);
            ok = false;
            break;
        }
        reply->config.offset = cfg->offset;
        reply->config.size = n;
        reply->config.flags = cfg->flags;
        memcpy(reply->config.region, tb->cfg.config + cfg->offset, n);
        *reply_size = VHOST_USER_CONFIG_HDR_SIZE + n;
        *has_reply = true;
        break;
    }
    case VHOST_USER_SET_STATUS:
        c->status = p->u64;
        break;
    case VHOST_USER_GET_STATUS:
        reply->u64 = value ? act->value : c->status;
        *reply_size = 8;
        *has_reply = true;
        break;
    case VHOST_USER_SET_BACKEND_REQ_FD:
        /* Kept open: closing it would look like a back-end channel hang-up. */
        tb_close_fd(&c->backend_req_fd);
        if (nfds == 1) {
            c->backend_req_fd = fds[0];
            fds[0] = -1;
        }
        break;
    case VHOST_USER_GET_INFLIGHT_FD:
    case VHOST_USER_SET_INFLIGHT_FD:
        ok = tb_handle_inflight(tb, c, msg->hdr.request, p, fds, nfds, act, reply,
                                reply_size, has_reply);
        break;
    case VHOST_USER_SET_DEVICE_STATE_FD:
    case VHOST_USER_CHECK_DEVICE_STATE: {
        g_autofree char *violation = NULL;

        ok = tb_handle_device_state(tb, c, msg->hdr.request, p, fds, nfds, act, reply,
                                    reply_size, has_reply, &violation);
        if (violation) {
            tb_violation_locked(tb, c, "%s", violation);
        }
        break;
    }
    case VHOST_USER_IOTLB_MSG:
    case VHOST_USER_VRING_KICK:
        /* Logged for the test (test-backend-chan.h); IOTLB_MSG is always acked. */
        break;
    default:
        /* Never offered by the default config; a test that offers it must script it. */
        tb_violation_locked(tb, c, "%s: not supported by the test back-end", name);
        ok = false;
        break;
    }
out:
    /*
     * The request changed the state the wait helpers look at (rings
     * started, enabled): wake them now, not at their next 50 ms poll.
     */
    g_cond_broadcast(&tb->cond);
    g_mutex_unlock(&tb->lock);
    tb_close_fds(fds, nfds);
    return ok;
}
