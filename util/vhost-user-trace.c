/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Decoded one-line trace of vhost-user messages, the tracing switch and
 * sink, and the reStructuredText rendering of the message table that the
 * documentation embeds.
 *
 * Security model: the formatter runs on messages straight off the socket,
 * possibly before their payload was validated. It therefore decodes a
 * field only when hdr.size says the peer actually sent it, and never reads
 * past hdr.size or the payload buffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/vhost-user-log.h"
#include "util/vhost-user-msg.h"

/* ---- Formatting ----------------------------------------------------- */

typedef struct FeatureName {
    unsigned bit;
    const char *name;
} FeatureName;

/* Transport bits the protocol cares about; device-specific bits stay hex. */
static const FeatureName device_feature_names[] = {
    { VIRTIO_F_NOTIFY_ON_EMPTY, "NOTIFY_ON_EMPTY" },
    { VHOST_F_LOG_ALL, "LOG_ALL" },
    { VIRTIO_F_ANY_LAYOUT, "ANY_LAYOUT" },
    { VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC" },
    { VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX" },
    { VHOST_USER_F_PROTOCOL_FEATURES, "PROTOCOL_FEATURES" },
    { VIRTIO_F_VERSION_1, "VERSION_1" },
    { VIRTIO_F_IOMMU_PLATFORM, "IOMMU_PLATFORM" },
    { VIRTIO_F_RING_PACKED, "RING_PACKED" },
    { VIRTIO_F_IN_ORDER, "IN_ORDER" },
};

/* " (A|B|0x3)": named bits in bit order, then the unnamed rest in hex. */
static void append_feature_names(GString *s, uint64_t v, bool protocol)
{
    uint64_t rest = v;
    bool first = true;

    if (!v) {
        return;
    }
    g_string_append(s, " (");
    for (unsigned bit = 0; bit < 64; bit++) {
        const char *name = NULL;

        if (!(v & (1ull << bit))) {
            continue;
        }
        if (protocol) {
            name = vhost_user_protocol_feature_name(bit);
        } else {
            for (size_t i = 0; i < G_N_ELEMENTS(device_feature_names); i++) {
                if (device_feature_names[i].bit == bit) {
                    name = device_feature_names[i].name;
                }
            }
        }
        if (name) {
            g_string_append_printf(s, "%s%s", first ? "" : "|", name);
            rest &= ~(1ull << bit);
            first = false;
        }
    }
    if (rest) {
        g_string_append_printf(s, "%s0x%" PRIx64, first ? "" : "|", rest);
    }
    g_string_append_c(s, ')');
}

/* By value: the region sits unaligned inside the packed message. */
static void format_region(GString *s, VhostUserMemoryRegion r)
{
    g_string_append_printf(s, "gpa=0x%" PRIx64 " size=0x%" PRIx64
                           " uaddr=0x%" PRIx64 " offset=0x%" PRIx64,
                           r.guest_phys_addr, r.memory_size,
                           r.userspace_addr, r.mmap_offset);
}

static const char *iotlb_type_name(uint8_t type)
{
    switch (type) {
    case VHOST_IOTLB_MISS:
        return "MISS";
    case VHOST_IOTLB_UPDATE:
        return "UPDATE";
    case VHOST_IOTLB_INVALIDATE:
        return "INVALIDATE";
    case VHOST_IOTLB_ACCESS_FAIL:
        return "ACCESS_FAIL";
    default:
        return NULL;
    }
}

static void format_u64(GString *s, const VhostUserMsgInfo *info,
                       VhostUserChannel ch, uint64_t v, bool is_reply)
{
    bool frontend = ch == VHOST_USER_CHANNEL_FRONTEND;

    if (!is_reply && info->fds == VHOST_USER_FDS_VRING) {
        g_string_append_printf(s, " idx=%u nofd=%u",
                               (unsigned)(v & VHOST_USER_VRING_IDX_MASK),
                               (v & VHOST_USER_VRING_NOFD_MASK) ? 1u : 0u);
        if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)) {
            /* Show the raw value when the peer set bits nobody defined. */
            g_string_append_printf(s, " u64=0x%" PRIx64, v);
        }
        return;
    }
    g_string_append_printf(s, " u64=0x%" PRIx64, v);
    if (frontend && (info->id == VHOST_USER_GET_FEATURES ||
                     info->id == VHOST_USER_SET_FEATURES)) {
        append_feature_names(s, v, false);
    } else if (frontend && (info->id == VHOST_USER_GET_PROTOCOL_FEATURES ||
                            info->id == VHOST_USER_SET_PROTOCOL_FEATURES)) {
        append_feature_names(s, v, true);
    }
}

/* Appends the decoded payload of a message whose size fits `kind`. */
static void format_payload(GString *s, const VhostUserMsgInfo *info,
                           VhostUserChannel ch, VhostUserPayloadKind kind,
                           const VhostUserMsg *msg, bool is_reply, bool packed)
{
    uint32_t size = msg->hdr.size;

    switch (kind) {
    case VHOST_USER_PL_NONE:
        break;
    case VHOST_USER_PL_U64:
        format_u64(s, info, ch, msg->payload.u64, is_reply);
        break;
    case VHOST_USER_PL_U64_OPT:
        if (size == 8) {
            format_u64(s, info, ch, msg->payload.u64, is_reply);
        }
        break;
    case VHOST_USER_PL_VRING_STATE: {
        uint32_t num = msg->payload.state.num;

        if (packed && ch == VHOST_USER_CHANNEL_FRONTEND &&
            (info->id == VHOST_USER_SET_VRING_BASE || info->id == VHOST_USER_GET_VRING_BASE)) {
            /* Two positions, each a 15-bit index and its lap's wrap counter. */
            g_string_append_printf(s, " idx=%" PRIu32 " num=0x%" PRIx32 " avail_idx=%u "
                                   "avail_wrap=%u used_idx=%u used_wrap=%u",
                                   msg->payload.state.index, num, num & 0x7fffu,
                                   (num >> 15) & 1u, (num >> 16) & 0x7fffu, num >> 31);
            break;
        }
        g_string_append_printf(s, " idx=%" PRIu32 " num=%" PRIu32,
                               msg->payload.state.index, num);
        break;
    }
    case VHOST_USER_PL_VRING_ADDR: {
        VhostUserVringAddr a = msg->payload.addr;

        g_string_append_printf(s, " idx=%" PRIu32 " flags=0x%" PRIx32
                               " desc=0x%" PRIx64 " used=0x%" PRIx64
                               " avail=0x%" PRIx64 " log=0x%" PRIx64,
                               a.index, a.flags, a.desc_user_addr,
                               a.used_user_addr, a.avail_user_addr,
                               a.log_guest_addr);
        break;
    }
    case VHOST_USER_PL_MEM_TABLE: {
        uint32_t n = msg->payload.memory.nregions;
        /* Decode only regions that are both announced and present. */
        uint32_t present = (size - offsetof(VhostUserMemory, regions)) /
                           sizeof(VhostUserMemoryRegion);
        uint32_t shown = MIN(MIN(n, present), VHOST_MEMORY_BASELINE_NREGIONS);

        g_string_append_printf(s, " nregions=%" PRIu32, n);
        for (uint32_t i = 0; i < shown; i++) {
            g_string_append_printf(s, " [%" PRIu32 "] ", i);
            format_region(s, msg->payload.memory.regions[i]);
        }
        break;
    }
    case VHOST_USER_PL_MEM_REG:
        g_string_append_c(s, ' ');
        format_region(s, msg->payload.mem_reg.region);
        break;
    case VHOST_USER_PL_LOG:
        g_string_append_printf(s, " mmap_size=0x%" PRIx64 " mmap_offset=0x%" PRIx64,
                               msg->payload.log.mmap_size, msg->payload.log.mmap_offset);
        break;
    case VHOST_USER_PL_IOTLB: {
        VhostUserIotlb t = msg->payload.iotlb;
        const char *type = iotlb_type_name(t.type);

        g_string_append_printf(s, " iova=0x%" PRIx64 " size=0x%" PRIx64
                               " uaddr=0x%" PRIx64 " perm=0x%x",
                               t.iova, t.size, t.uaddr, t.perm);
        if (type) {
            g_string_append_printf(s, " type=%s", type);
        } else {
            g_string_append_printf(s, " type=%u", t.type);
        }
        break;
    }
    case VHOST_USER_PL_CONFIG:
        g_string_append_printf(s, " cfg.offset=%" PRIu32 " cfg.size=%" PRIu32
                               " cfg.flags=0x%" PRIx32,
                               msg->payload.config.offset,
                               msg->payload.config.size,
                               msg->payload.config.flags);
        break;
    case VHOST_USER_PL_VRING_AREA: {
        VhostUserVringArea a = msg->payload.area;

        g_string_append_printf(s, " idx=%u nofd=%u area.size=0x%" PRIx64
                               " area.offset=0x%" PRIx64,
                               (unsigned)(a.u64 & VHOST_USER_VRING_IDX_MASK),
                               (a.u64 & VHOST_USER_VRING_NOFD_MASK) ? 1u : 0u,
                               a.size, a.offset);
        break;
    }
    case VHOST_USER_PL_INFLIGHT: {
        VhostUserInflight in = msg->payload.inflight;

        g_string_append_printf(s, " mmap_size=0x%" PRIx64 " mmap_offset=0x%" PRIx64
                               " num_queues=%u queue_size=%u",
                               in.mmap_size, in.mmap_offset,
                               in.num_queues, in.queue_size);
        break;
    }
    case VHOST_USER_PL_UUID: {
        g_string_append(s, " uuid=");
        for (size_t i = 0; i < sizeof(msg->payload.object.uuid); i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10) {
                g_string_append_c(s, '-');
            }
            g_string_append_printf(s, "%02x", msg->payload.object.uuid[i]);
        }
        break;
    }
    case VHOST_USER_PL_DEVICE_STATE:
        g_string_append_printf(s, " direction=%s phase=%" PRIu32,
                               msg->payload.transfer_state.direction == 0 ? "save" :
                               msg->payload.transfer_state.direction == 1 ? "load" : "?",
                               msg->payload.transfer_state.phase);
        break;
    case VHOST_USER_PL_OPAQUE:
    default:
        g_string_append_printf(s, " payload=%" PRIu32 "B", size);
        break;
    }
}

/* Is `size` what `kind` needs to be decoded without reading past it? */
static bool size_fits(VhostUserPayloadKind kind, const VhostUserMsg *msg)
{
    const VhostUserPayloadInfo *pi = vhost_user_payload_info(kind);
    uint32_t size = msg->hdr.size;

    if (!pi || size > VHOST_USER_MAX_PAYLOAD_SIZE) {
        return false;
    }
    switch (kind) {
    case VHOST_USER_PL_MEM_TABLE:
        return size >= offsetof(VhostUserMemory, regions);
    case VHOST_USER_PL_CONFIG:
        return size >= VHOST_USER_CONFIG_HDR_SIZE;
    case VHOST_USER_PL_OPAQUE:
        return true;
    default:
        return size == pi->min_size;
    }
}

char *vhost_user_msg_format(VhostUserChannel ch, const VhostUserMsg *msg,
                            size_t nfds, bool is_reply)
{
    return vhost_user_msg_format_ring(ch, msg, nfds, is_reply, false);
}

char *vhost_user_msg_format_ring(VhostUserChannel ch, const VhostUserMsg *msg,
                                 size_t nfds, bool is_reply, bool packed)
{
    const VhostUserMsgInfo *info = vhost_user_msg_info(ch, msg->hdr.request);
    GString *s = g_string_new(NULL);
    VhostUserPayloadKind kind;

    if (info) {
        g_string_append(s, info->name);
    } else {
        g_string_append_printf(s, "UNKNOWN(%" PRIu32 ")", msg->hdr.request);
    }
    g_string_append_printf(s, " flags=0x%" PRIx32 " size=%" PRIu32 " fds=%zu",
                           msg->hdr.flags, msg->hdr.size, nfds);
    if (!info) {
        return g_string_free(s, FALSE);
    }

    if (!is_reply) {
        kind = info->payload;
    } else if (info->reply == VHOST_USER_RK_NONE) {
        /* Only a REPLY_ACK status can answer a request without a reply. */
        kind = VHOST_USER_PL_U64;
    } else {
        kind = info->reply_payload;
        if (!size_fits(kind, msg) && msg->hdr.size == sizeof(uint64_t)) {
            /* NEED_REPLY on a request with a payload reply: the ack. */
            kind = VHOST_USER_PL_U64;
        }
    }
    if (size_fits(kind, msg)) {
        format_payload(s, info, ch, kind, msg, is_reply, packed);
    } else if (msg->hdr.size) {
        /* Malformed: say so instead of decoding bytes that are not there. */
        g_string_append_printf(s, " (bad size for %s payload)",
                               vhost_user_payload_info(kind)->name);
    }
    return g_string_free(s, FALSE);
}

/* ---- Switch and sink ------------------------------------------------ */

static gsize trace_env_read;
static gint trace_on;

G_LOCK_DEFINE_STATIC(trace_sink);
static VhostUserTraceSink trace_sink;
static void *trace_sink_opaque;

/* The environment is read once, on first use; enable() then overrides it. */
static void trace_init_from_env(void)
{
    if (g_once_init_enter(&trace_env_read)) {
        const char *env = getenv("VHOST_USER_TRACE");

        g_atomic_int_set(&trace_on, env && *env && strcmp(env, "0") != 0);
        g_once_init_leave(&trace_env_read, 1);
    }
}

bool vhost_user_trace_enabled(void)
{
    trace_init_from_env();
    return g_atomic_int_get(&trace_on) != 0;
}

void vhost_user_trace_enable(bool on)
{
    trace_init_from_env();
    g_atomic_int_set(&trace_on, on ? 1 : 0);
}

void vhost_user_trace_set_sink(VhostUserTraceSink sink, void *opaque)
{
    G_LOCK(trace_sink);
    trace_sink = sink;
    trace_sink_opaque = opaque;
    G_UNLOCK(trace_sink);
}

void vhost_user_trace_msg(const char *dev, bool local_is_frontend,
                          VhostUserChannel ch, VhostUserTraceDir dir,
                          const VhostUserMsg *msg, size_t nfds, bool is_reply)
{
    vhost_user_trace_msg_ring(dev, local_is_frontend, ch, dir, msg, nfds, is_reply, false);
}

void vhost_user_trace_msg_ring(const char *dev, bool local_is_frontend,
                               VhostUserChannel ch, VhostUserTraceDir dir,
                               const VhostUserMsg *msg, size_t nfds, bool is_reply,
                               bool packed)
{
    g_autofree char *body = NULL;
    g_autofree char *line = NULL;
    bool frontend_sent;

    if (!vhost_user_trace_enabled()) {
        return;
    }
    /*
     * Name the sender first, whichever side writes the trace: the same
     * message reads "F>B" in the front-end's log and in the back-end's.
     */
    frontend_sent = local_is_frontend == (dir == VHOST_USER_TRACE_TX);
    body = vhost_user_msg_format_ring(ch, msg, nfds, is_reply, packed);
    /*
     * The back-end channel reuses ids (IOTLB_MSG is 22 on one socket, 1 on
     * the other) and runs interleaved with the main socket: tag its lines.
     */
    line = g_strdup_printf("%s %s%s", frontend_sent ? "F>B" : "B>F",
                           ch == VHOST_USER_CHANNEL_BACKEND ? "backend-chan " : "",
                           body);

    G_LOCK(trace_sink);
    if (trace_sink) {
        g_autofree char *full = g_strdup_printf("vhost-user: %s %s", dev ? dev : "-", line);

        trace_sink(full, trace_sink_opaque);
    } else {
        /* The library prints nothing itself: the log handler decides. */
        vhost_user_log(VHOST_USER_LOG_TRACE, dev, "%s", line);
    }
    G_UNLOCK(trace_sink);
}

/* ---- Documentation table -------------------------------------------- */

#define RST_COLS 10

static const char *fd_rule_name(VhostUserFdRule rule)
{
    switch (rule) {
    case VHOST_USER_FDS_NONE:
        return "0";
    case VHOST_USER_FDS_ONE:
        return "1";
    case VHOST_USER_FDS_VRING:
        return "1 unless NOFD";
    case VHOST_USER_FDS_PER_REGION:
        return "1 per region";
    case VHOST_USER_FDS_OPTIONAL:
        return "0 or 1";
    default:
        return "?";
    }
}

static char *reply_text(const VhostUserMsgInfo *info)
{
    const char *pl = vhost_user_payload_info(info->reply_payload)->name;
    const char *fds = info->reply_fds == VHOST_USER_FDS_NONE ? "" :
                      info->reply_fds == VHOST_USER_FDS_ONE ? " + fd" : " + 0/1 fd";

    switch (info->reply) {
    case VHOST_USER_RK_NONE:
        return g_strdup("ack if NEED_REPLY");
    case VHOST_USER_RK_ACK:
        return g_strdup_printf("ack always%s", fds);
    case VHOST_USER_RK_COND:
        return g_strdup_printf("%s if %s%s, else ack if NEED_REPLY", pl,
                               info->reply_cond == VHOST_USER_RC_LOG_SHMFD ?
                               "LOG_SHMFD" : "postcopy listening", fds);
    case VHOST_USER_RK_PAYLOAD:
    default:
        if (info->reply_payload == VHOST_USER_PL_NONE) {
            /* POSTCOPY_ADVISE: an empty reply whose only content is the fd. */
            return g_strdup(info->reply_fds == VHOST_USER_FDS_NONE ? "empty" : "fd only");
        }
        return g_strdup_printf("%s%s", pl, fds);
    }
}

static const char *check_text(VhostUserReplyCheck chk)
{
    switch (chk) {
    case VHOST_USER_RCHK_VRING_INDEX:
        return "ring index";
    case VHOST_USER_RCHK_CONFIG_RANGE:
        return "config range";
    case VHOST_USER_RCHK_NONE:
    default:
        return "-";
    }
}

static char *gate_text(int gate)
{
    const char *name;

    if (gate == VHOST_USER_GATE_NONE) {
        return g_strdup("-");
    }
    if (gate == VHOST_USER_GATE_PROTO) {
        return g_strdup("PROTOCOL_FEATURES");
    }
    name = gate >= 0 ? vhost_user_protocol_feature_name((unsigned)gate) : NULL;
    return g_strdup(name ? name : "?");
}

/* Cells of one channel's table, row-major, header row first. */
static GPtrArray *table_cells(VhostUserChannel ch)
{
    static const char *const head[RST_COLS] = {
        "id", "name", "payload", "fds", "reply", "wait", "check", "gate", "scope",
        "handler",
    };
    GPtrArray *cells = g_ptr_array_new_with_free_func(g_free);
    const VhostUserMsgInfo *rows;
    size_t n;

    for (size_t c = 0; c < RST_COLS; c++) {
        g_ptr_array_add(cells, g_strdup(head[c]));
    }
    rows = vhost_user_msg_table(ch, &n);
    for (size_t i = 0; i < n; i++) {
        const VhostUserMsgInfo *r = &rows[i];

        g_ptr_array_add(cells, g_strdup_printf("%" PRIu32, r->id));
        g_ptr_array_add(cells, g_strdup(r->name));
        g_ptr_array_add(cells, g_strdup(vhost_user_payload_info(r->payload)->name));
        g_ptr_array_add(cells, g_strdup(fd_rule_name(r->fds)));
        g_ptr_array_add(cells, reply_text(r));
        g_ptr_array_add(cells, g_strdup(r->reply_wait == VHOST_USER_RW_SLOW ?
                                        "slow" : "prompt"));
        g_ptr_array_add(cells, g_strdup(check_text(r->reply_check)));
        g_ptr_array_add(cells, gate_text(r->gate));
        g_ptr_array_add(cells, g_strdup(r->scope == VHOST_USER_SCOPE_RING ?
                                        "ring" : "device"));
        g_ptr_array_add(cells, g_strdup(strcmp(r->handler, "none") ? r->handler : "-"));
    }
    return cells;
}

static void rst_border(GString *s, const size_t *width)
{
    for (size_t c = 0; c < RST_COLS; c++) {
        for (size_t k = 0; k < width[c]; k++) {
            g_string_append_c(s, '=');
        }
        g_string_append(s, c + 1 < RST_COLS ? "  " : "\n");
    }
}

static void rst_row(GString *s, GPtrArray *cells, size_t row, const size_t *width)
{
    GString *line = g_string_new(NULL);

    for (size_t c = 0; c < RST_COLS; c++) {
        const char *cell = g_ptr_array_index(cells, row * RST_COLS + c);

        g_string_append(line, cell);
        if (c + 1 < RST_COLS) {
            for (size_t k = strlen(cell); k < width[c] + 2; k++) {
                g_string_append_c(line, ' ');
            }
        }
    }
    g_string_append_printf(s, "%s\n", line->str);
    g_string_free(line, TRUE);
}

/* An RST "simple table", columns as wide as their widest cell. */
static void rst_table(GString *s, VhostUserChannel ch)
{
    g_autoptr(GPtrArray) cells = table_cells(ch);
    size_t nrows = cells->len / RST_COLS;
    size_t width[RST_COLS] = { 0 };

    for (size_t i = 0; i < cells->len; i++) {
        size_t len = strlen(g_ptr_array_index(cells, i));

        width[i % RST_COLS] = MAX(width[i % RST_COLS], len);
    }
    rst_border(s, width);
    rst_row(s, cells, 0, width);
    rst_border(s, width);
    for (size_t r = 1; r < nrows; r++) {
        rst_row(s, cells, r, width);
    }
    rst_border(s, width);
}

char *vhost_user_msg_table_rst(void)
{
    GString *s = g_string_new(NULL);

    /*
     * Blank first and last lines: the block sits between two RST comment
     * lines, and RST needs a blank line after a comment and after a table.
     */
    g_string_append(s, "\nFront-end requests (front-end socket):\n\n");
    rst_table(s, VHOST_USER_CHANNEL_FRONTEND);
    g_string_append(s, "\nBack-end requests (back-end channel, BACKEND_REQ):\n\n");
    rst_table(s, VHOST_USER_CHANNEL_BACKEND);
    g_string_append_c(s, '\n');
    return g_string_free(s, FALSE);
}
