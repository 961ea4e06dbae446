/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The memory table of a connection: SET_MEM_TABLE, or with memory slots
 * GET_MAX_MEM_SLOTS and ADD_MEM_REG / REM_MEM_REG driven by a shadow of
 * the back-end's table. See include/hw/virtio/vhost-user-mem.h.
 *
 * Untrusted input: the only value the back-end gives us here is its slot
 * count, bounded before use; each ADD/REM is acked and a failed ack drops
 * the connection in the request path. The shadow is only updated for a
 * request the back-end acked, so after a failure it still describes what
 * the back-end may have mapped (and is thrown away with the connection).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-mem.h"
#include "hw/virtio/vhost-user-postcopy.h"

struct VhostUserMemShadow {
    GArray *slots;              /* VhostUserMemSlot, in the order added */
};

/*
 * u->mem: everything memory-table related of a VhostUserState; created on
 * first use, freed by the FREE lifecycle hook. Only touched by the thread
 * holding the device (requests run from the VMM's main loop thread).
 */
struct VhostUserMemState {
    VhostUserMemShadow *shadow;
    unsigned shadow_connection; /* the shadow is valid for this connection */
    uint64_t max_mem_slots;     /* GET_MAX_MEM_SLOTS of this connection, or 0 */
    /* Regions in the last table sent; kept across reconnects. */
    unsigned regions_in_use;
};

VhostUserMemShadow *vhost_user_mem_shadow_new(void)
{
    VhostUserMemShadow *s = g_new0(VhostUserMemShadow, 1);

    s->slots = g_array_new(FALSE, TRUE, sizeof(VhostUserMemSlot));
    return s;
}

void vhost_user_mem_shadow_free(VhostUserMemShadow *s)
{
    if (!s) {
        return;
    }
    g_array_free(s->slots, TRUE);
    g_free(s);
}

bool vhost_user_mem_slot_from_region(const char *dev_name, const MemoryRegionMap *r,
                                     VhostUserMemSlot *slot, GError **errp)
{
    struct stat st;

    /* A private mapping's writes never reach the fd the back-end maps. */
    if (!r->block->shared) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: RAM block '%s' is not shared (share=off); a vhost-user "
                    "back-end cannot see the guest's writes to it",
                    dev_name, r->block->id);
        return false;
    }
    if (fstat(r->block->fd, &st) < 0) {
        int err = errno;

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "%s: fstat of RAM block '%s' failed: %s",
                    dev_name, r->block->id, g_strerror(err));
        return false;
    }
    memset(slot, 0, sizeof(*slot));
    slot->gpa = r->gpa;
    slot->size = r->size;
    slot->uaddr = (uint64_t)(uintptr_t)r->block->host + r->block_offset;
    slot->mmap_offset = r->block->fd_offset + r->block_offset;
    slot->dev = st.st_dev;
    slot->ino = st.st_ino;
    slot->fd = r->block->fd;
    return true;
}

bool vhost_user_mem_slot_equal(const VhostUserMemSlot *a, const VhostUserMemSlot *b)
{
    return a->gpa == b->gpa && a->size == b->size && a->uaddr == b->uaddr &&
           a->mmap_offset == b->mmap_offset && a->dev == b->dev && a->ino == b->ino;
}

/* Index in new_slots (sorted by gpa) of the slot starting at gpa, or -1. */
static int mem_find_gpa(const VhostUserMemSlot *slots, unsigned n, uint64_t gpa)
{
    unsigned lo = 0, hi = n;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;

        if (slots[mid].gpa < gpa) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && slots[lo].gpa == gpa ? (int)lo : -1;
}

void vhost_user_mem_diff(const VhostUserMemSlot *old, unsigned nold,
                         const VhostUserMemSlot *new_slots, unsigned nnew,
                         GArray *rem, GArray *add)
{
    /* kept[j]: new region j is already mapped unchanged, so it is not added. */
    g_autofree bool *kept = g_new0(bool, nnew ? nnew : 1);

    /*
     * Both tables are disjoint in GPA, so a region can only match the one
     * starting at the same address. Newest first: a back-end that keeps
     * its regions in an array may compact it, and undoing in reverse
     * keeps its indexes stable.
     */
    for (unsigned i = nold; i-- > 0;) {
        int j = mem_find_gpa(new_slots, nnew, old[i].gpa);

        if (j >= 0 && !kept[j] && vhost_user_mem_slot_equal(&old[i], &new_slots[j])) {
            kept[j] = true;
        } else {
            guint idx = i;

            g_array_append_val(rem, idx);
        }
    }
    for (unsigned j = 0; j < nnew; j++) {
        if (!kept[j]) {
            guint idx = j;

            g_array_append_val(add, idx);
        }
    }
}

static void mem_conn_hook(VhostUserState *u, VhostUserConnEvent ev, void *opaque)
{
    VhostUserMemState *m = opaque;

    /* A reset needs nothing: the shadow is checked against the connection. */
    if (ev == VHOST_USER_CONN_FREE) {
        vhost_user_remove_conn_hook(u, mem_conn_hook, m);
        vhost_user_mem_shadow_free(m->shadow);
        g_free(m);
        u->mem = NULL;
    }
}

static VhostUserMemState *mem_state(VhostUserState *u)
{
    if (!u->mem) {
        u->mem = g_new0(VhostUserMemState, 1);
        u->mem->shadow = vhost_user_mem_shadow_new();
        vhost_user_add_conn_hook(u, mem_conn_hook, u->mem);
    }
    return u->mem;
}

bool vhost_user_mem_slots_enabled(const VhostUserState *u)
{
    return vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) &&
           vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_REPLY_ACK) &&
           u->mem && u->mem->max_mem_slots > 0;
}

unsigned vhost_user_mem_max_regions(const VhostUserState *u)
{
    return vhost_user_mem_slots_enabled(u) ? (unsigned)u->mem->max_mem_slots
                                           : VHOST_MEMORY_BASELINE_NREGIONS;
}

unsigned vhost_user_mem_regions_in_use(const VhostUserState *u)
{
    return u->mem ? u->mem->regions_in_use : 0;
}

void vhost_user_mem_note_guest_ram(VhostUserState *u, GuestMemory *mem)
{
    /*
     * The regions a new back-end's slot count is checked against are the
     * guest's RAM now, not the last table sent: RAM unplugged while no
     * back-end was there must not get the next one refused.
     */
    if (!u->negotiated && u->mem && u->mem->regions_in_use && mem) {
        u->mem->regions_in_use = guest_memory_nregions(mem);
    }
}

/* The shadow of the current connection, emptied when it is an older one's. */
static VhostUserMemShadow *mem_shadow(VhostUserState *u)
{
    VhostUserMemState *m = mem_state(u);

    if (m->shadow_connection != vhost_user_connection(u)) {
        g_array_set_size(m->shadow->slots, 0);
    }
    m->shadow_connection = vhost_user_connection(u);
    return m->shadow;
}

bool vhost_user_mem_negotiate(VhostUserState *u, GError **errp)
{
    VhostUserMemState *m = mem_state(u);
    uint64_t slots;

    /* Whatever the old back-end had mapped, this one has nothing. */
    g_array_set_size(mem_shadow(u)->slots, 0);
    m->max_mem_slots = 0;
    if (!vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
        return true;
    }

    if (!vhost_user_call_u64(u, 0, VHOST_USER_GET_MAX_MEM_SLOTS, &slots, errp)) {
        return false;
    }
    if (slots == 0 || slots > VHOST_USER_MAX_MEM_SLOTS_LIMIT) {
        return vhost_user_fail(u, errp, "%s: GET_MAX_MEM_SLOTS reply: slot count %" PRIu64
                               " outside 1..%d", u->name, slots,
                               VHOST_USER_MAX_MEM_SLOTS_LIMIT);
    }
    /*
     * A back-end restarted with a smaller limit cannot take the guest's
     * RAM as it is now; refuse it here rather than half-map it later.
     * Without REPLY_ACK the slots are not used, so the count does not
     * matter (SET_MEM_TABLE's limit of 8 applies).
     */
    if (vhost_user_has_protocol_feature(u, VHOST_USER_PROTOCOL_F_REPLY_ACK) &&
        slots < m->regions_in_use) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: GET_MAX_MEM_SLOTS: the back-end holds %" PRIu64 " memory "
                    "slots but %u memory regions are in use", u->name, slots,
                    m->regions_in_use);
        return false;
    }
    m->max_mem_slots = slots;
    return true;
}

static bool mem_send_reg(VhostUserState *u, unsigned vq_index, uint32_t request,
                         const VhostUserMemSlot *slot, GError **errp)
{
    VhostUserMsg msg;

    memset(&msg, 0, sizeof(msg.hdr) + sizeof(VhostUserMemRegMsg));
    msg.hdr.request = request;
    msg.hdr.size = sizeof(VhostUserMemRegMsg);
    msg.payload.mem_reg.region.guest_phys_addr = slot->gpa;
    msg.payload.mem_reg.region.memory_size = slot->size;
    msg.payload.mem_reg.region.userspace_addr = slot->uaddr;
    msg.payload.mem_reg.region.mmap_offset = slot->mmap_offset;
    /*
     * REM_MEM_REG goes without an fd: the spec allows one but back-ends
     * differ on whether they expect it; matching is by the region fields.
     */
    if (request == VHOST_USER_ADD_MEM_REG) {
        return vhost_user_call_listening(u, vq_index, &msg, &slot->fd, 1,
                                         vhost_user_postcopy_mem_reply, NULL, errp);
    }
    return vhost_user_send(u, vq_index, &msg, NULL, 0, 0, errp);
}

bool vhost_user_mem_sync(VhostUserState *u, const char *dev_name, unsigned vq_index,
                         GuestMemory *mem, GError **errp)
{
    unsigned n = guest_memory_nregions(mem);
    VhostUserMemShadow *s;
    g_autofree VhostUserMemSlot *want = g_new0(VhostUserMemSlot, n ? n : 1);
    g_autoptr(GArray) rem = g_array_new(FALSE, FALSE, sizeof(guint));
    g_autoptr(GArray) add = g_array_new(FALSE, FALSE, sizeof(guint));

    if (!vhost_user_mem_slots_enabled(u)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "%s: memory slots are not negotiated on this connection",
                    dev_name);
        return false;
    }
    if (n > u->mem->max_mem_slots) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: %u memory regions but the back-end holds at most %" PRIu64
                    " (GET_MAX_MEM_SLOTS)", dev_name, n, u->mem->max_mem_slots);
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        if (!vhost_user_mem_slot_from_region(dev_name, guest_memory_region(mem, i),
                                             &want[i], errp)) {
            return false;
        }
    }

    s = mem_shadow(u);
    vhost_user_mem_diff((const VhostUserMemSlot *)(void *)s->slots->data, s->slots->len,
                        want, n, rem, add);

    /*
     * Removals first: the back-end never holds old and new at once, so
     * max(old, new) slots are enough. rem is newest first, so removing
     * each from the shadow right away never shifts a later index.
     */
    for (guint k = 0; k < rem->len; k++) {
        guint i = g_array_index(rem, guint, k);
        VhostUserMemSlot slot = g_array_index(s->slots, VhostUserMemSlot, i);

        if (!mem_send_reg(u, vq_index, VHOST_USER_REM_MEM_REG, &slot, errp)) {
            return false;
        }
        g_array_remove_index(s->slots, i);
    }
    for (guint k = 0; k < add->len; k++) {
        const VhostUserMemSlot *slot = &want[g_array_index(add, guint, k)];

        if (!mem_send_reg(u, vq_index, VHOST_USER_ADD_MEM_REG, slot, errp)) {
            return false;
        }
        g_array_append_val(s->slots, *slot);
    }
    u->mem->regions_in_use = n;
    return true;
}

/* The whole table in one SET_MEM_TABLE (no memory slots): at most 8 regions. */
static bool mem_set_table(VhostUserState *u, const char *dev_name, unsigned vq_index,
                          GuestMemory *mem, GError **errp)
{
    unsigned n = guest_memory_nregions(mem);
    int fds[VHOST_MEMORY_BASELINE_NREGIONS];
    VhostUserMsg msg;
    uint32_t size;

    if (n == 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: SET_MEM_TABLE: the guest has no memory regions", dev_name);
        return false;
    }
    if (n > VHOST_MEMORY_BASELINE_NREGIONS) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: %u memory regions but SET_MEM_TABLE carries at most %d "
                    "(back-end lacks CONFIGURE_MEM_SLOTS)",
                    dev_name, n, VHOST_MEMORY_BASELINE_NREGIONS);
        return false;
    }

    size = offsetof(VhostUserMemory, regions) + n * sizeof(VhostUserMemoryRegion);
    /* Only header and the bytes sent are cleared: no stack garbage on the wire. */
    memset(&msg, 0, sizeof(msg.hdr) + size);
    msg.hdr.request = VHOST_USER_SET_MEM_TABLE;
    msg.hdr.size = size;
    msg.payload.memory.nregions = n;
    for (unsigned i = 0; i < n; i++) {
        VhostUserMemoryRegion *wr = &msg.payload.memory.regions[i];
        VhostUserMemSlot slot;

        if (!vhost_user_mem_slot_from_region(dev_name, guest_memory_region(mem, i),
                                             &slot, errp)) {
            return false;
        }
        wr->guest_phys_addr = slot.gpa;
        wr->memory_size = slot.size;
        wr->userspace_addr = slot.uaddr;
        wr->mmap_offset = slot.mmap_offset;
        fds[i] = slot.fd;
    }
    /* While postcopy listens the back-end answers with its own addresses. */
    if (!(vhost_user_postcopy_listening(u)
          ? vhost_user_call_listening(u, vq_index, &msg, fds, n,
                                      vhost_user_postcopy_mem_reply, NULL, errp)
          : vhost_user_send(u, vq_index, &msg, fds, n, VHOST_USER_REQ_SYNC, errp))) {
        return false;
    }
    /* What a reconnecting back-end's slot count is checked against. */
    mem_state(u)->regions_in_use = n;
    return true;
}

/*
 * While postcopy listens, the table goes whole even with memory slots:
 * libvhost-user (qemu-storage-daemon) answers a listening ADD_MEM_REG
 * without waiting for the front-end's acknowledgement, so that ack would
 * reach it as a malformed ADD_MEM_REG and drop the connection; the
 * SET_MEM_TABLE handshake (reply with its addresses, our ack) is the one
 * back-ends implement alike. The shadow then holds the whole table.
 */
static bool mem_set_table_listening(VhostUserState *u, const char *dev_name,
                                    unsigned vq_index, GuestMemory *mem, GError **errp)
{
    unsigned n = guest_memory_nregions(mem);
    VhostUserMemShadow *s;

    if (!mem_set_table(u, dev_name, vq_index, mem, errp)) {
        return false;
    }
    s = mem_shadow(u);
    g_array_set_size(s->slots, 0);
    for (unsigned i = 0; i < n; i++) {
        VhostUserMemSlot slot;

        if (!vhost_user_mem_slot_from_region(dev_name, guest_memory_region(mem, i), &slot,
                                             errp)) {
            return false;
        }
        g_array_append_val(s->slots, slot);
    }
    return true;
}

bool vhost_user_mem_update(VhostUserState *u, const char *dev_name, unsigned vq_index,
                           GuestMemory *mem, GError **errp)
{
    if (vhost_user_mem_slots_enabled(u) && vhost_user_postcopy_listening(u) &&
        guest_memory_nregions(mem) <= VHOST_MEMORY_BASELINE_NREGIONS) {
        return mem_set_table_listening(u, dev_name, vq_index, mem, errp);
    }
    /* Only the difference to what the back-end has, one region at a time. */
    if (vhost_user_mem_slots_enabled(u)) {
        return vhost_user_mem_sync(u, dev_name, vq_index, mem, errp);
    }
    return mem_set_table(u, dev_name, vq_index, mem, errp);
}
