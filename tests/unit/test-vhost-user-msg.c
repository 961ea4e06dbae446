/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The message table and what is derived from it: table invariants, size
 * rules against the wire structs, request and reply validation (every
 * rejection with its error code and a message naming the field), ring
 * index extraction and the generated RST table. The decoded message line
 * and the trace are tested in test-vhost-user-msg-format.c.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/vhost-user-error.h"
#include "util/vhost-user-msg.h"

#include "test-vhost-user-msg.h"

/* The X-macro once more, independently of the library, to cross-check ids. */
typedef struct NameId {
    const char *name;
    uint32_t id;
} NameId;

#define NAME_ID(n, i, ...) { #n, i },
static const NameId fe_names[] = { VHOST_USER_FRONTEND_MESSAGES(NAME_ID) };
static const NameId be_names[] = { VHOST_USER_BACKEND_MESSAGES(NAME_ID) };
#undef NAME_ID

/* ---- Helpers -------------------------------------------------------- */

void um_msg_new(VhostUserMsg *m, uint32_t id, uint32_t size)
{
    vhost_user_msg_init(m, id, size);
}

/* Expects failure with `code` and a message containing `substr`. */
static void expect_error(GError *err, bool ok, int code, const char *substr)
{
    ck_assert_msg(!ok, "accepted, expected \"%s\"", substr);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(g_error_matches(err, VHOST_USER_ERROR, code),
                  "code %d (%s), expected %d: %s", err->code,
                  vhost_user_error_code_name(err->code), code, err->message);
    ck_assert_msg(strstr(err->message, substr), "\"%s\" lacks \"%s\"",
                  err->message, substr);
}

static void check_request_bad(VhostUserChannel ch, const VhostUserMsg *m,
                              size_t nfds, int code, const char *substr)
{
    g_autoptr(GError) err = NULL;
    bool ok = vhost_user_msg_validate_request(ch, m, nfds, &err);

    expect_error(err, ok, code, substr);
}

static void check_request_ok(VhostUserChannel ch, const VhostUserMsg *m, size_t nfds)
{
    g_autoptr(GError) err = NULL;

    ck_assert_msg(vhost_user_msg_validate_request(ch, m, nfds, &err),
                  "rejected: %s", err ? err->message : "?");
    ck_assert_ptr_null(err);
}

/* A syntactically valid request for any row, and the fds it needs. */
static void build_good(const VhostUserMsgInfo *info, VhostUserMsg *m, size_t *nfds)
{
    const VhostUserPayloadInfo *pi = vhost_user_payload_info(info->payload);

    um_msg_new(m, info->id, pi->min_size);
    switch (info->payload) {
    case VHOST_USER_PL_MEM_TABLE:
        m->payload.memory.nregions = 2;
        m->hdr.size = 8 + 2 * 32;
        break;
    case VHOST_USER_PL_CONFIG:
        m->payload.config.size = 4;
        m->hdr.size = 12 + 4;
        break;
    case VHOST_USER_PL_OPAQUE:
        m->hdr.size = 100;
        break;
    default:
        break;
    }
    switch (info->fds) {
    case VHOST_USER_FDS_ONE:
    case VHOST_USER_FDS_VRING:
        *nfds = 1;
        break;
    case VHOST_USER_FDS_PER_REGION:
        *nfds = 2;
        break;
    default:
        *nfds = 0;
        break;
    }
}

static VhostUserHeader reply_hdr(uint32_t id, uint32_t size)
{
    VhostUserHeader h = {
        .request = id,
        .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
        .size = size,
    };
    return h;
}

static void check_reply_header_bad(uint32_t id, bool acked, VhostUserHeader h,
                                   int code, const char *substr)
{
    g_autoptr(GError) err = NULL;
    bool ok = vhost_user_msg_validate_reply_header(FE, id, acked, &h, &err);

    expect_error(err, ok, code, substr);
}

static void check_reply_bad(uint32_t id, bool acked, const VhostUserMsg *r,
                            size_t nfds, int code, const char *substr)
{
    g_autoptr(GError) err = NULL;
    bool ok = vhost_user_msg_validate_reply_payload(FE, id, acked, r, nfds, &err);

    expect_error(err, ok, code, substr);
}

static void check_reply_ok(uint32_t id, bool acked, const VhostUserMsg *r, size_t nfds)
{
    g_autoptr(GError) err = NULL;
    VhostUserHeader h = r->hdr;

    ck_assert_msg(vhost_user_msg_validate_reply_header(FE, id, acked, &h, &err),
                  "header rejected: %s", err ? err->message : "?");
    ck_assert_msg(vhost_user_msg_validate_reply_payload(FE, id, acked, r, nfds, &err),
                  "payload rejected: %s", err ? err->message : "?");
}

VhostUserMsg um_reply_msg(uint32_t id, uint32_t size)
{
    VhostUserMsg r;

    memset(&r, 0, sizeof(r));
    r.hdr = reply_hdr(id, size);
    return r;
}

/* ---- Table invariants ----------------------------------------------- */

static void check_table(VhostUserChannel ch, size_t expect_n, const NameId *names,
                        size_t nnames)
{
    const VhostUserMsgInfo *rows;
    size_t n;
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    rows = vhost_user_msg_table(ch, &n);
    ck_assert_uint_eq(n, expect_n);
    ck_assert_uint_eq(nnames, expect_n);
    for (size_t i = 0; i < n; i++) {
        const VhostUserMsgInfo *r = &rows[i];

        /* Dense and in order: row i is id i + 1. */
        ck_assert_uint_eq(r->id, i + 1);
        ck_assert_ptr_nonnull(r->name);
        ck_assert_msg(g_hash_table_add(seen, (gpointer)r->name), "duplicate %s", r->name);
        ck_assert_ptr_eq(vhost_user_msg_info(ch, r->id), r);
        ck_assert_str_eq(vhost_user_request_name(ch, r->id), r->name);
        ck_assert_str_eq(names[i].name, r->name);
        ck_assert_uint_eq(names[i].id, r->id);
        ck_assert_int_lt(r->payload, VHOST_USER_PL__MAX);
        ck_assert_int_lt(r->reply_payload, VHOST_USER_PL__MAX);
        ck_assert_int_le(r->fds, VHOST_USER_FDS_OPTIONAL);
        ck_assert_int_le(r->reply_fds, VHOST_USER_FDS_OPTIONAL);
        ck_assert_msg(r->gate == VHOST_USER_GATE_NONE || r->gate == VHOST_USER_GATE_PROTO ||
                      (r->gate >= 0 && r->gate < VHOST_USER_PROTOCOL_F_MAX &&
                       vhost_user_protocol_feature_name((unsigned)r->gate)),
                      "%s: bad gate %d", r->name, r->gate);
        /* A ring-scope message must say which ring: its payload carries an index. */
        if (r->scope == VHOST_USER_SCOPE_RING) {
            ck_assert_msg(r->payload == VHOST_USER_PL_U64 ||
                          r->payload == VHOST_USER_PL_VRING_STATE ||
                          r->payload == VHOST_USER_PL_VRING_ADDR ||
                          r->payload == VHOST_USER_PL_VRING_AREA, "%s", r->name);
        }
        /* Without a reply there is nothing to carry a reply payload. */
        if (r->reply == VHOST_USER_RK_NONE) {
            ck_assert_int_eq(r->reply_payload, VHOST_USER_PL_NONE);
            ck_assert_int_eq(r->reply_fds, VHOST_USER_FDS_NONE);
        }
    }
    ck_assert_ptr_null(vhost_user_msg_info(ch, 0));
    ck_assert_ptr_null(vhost_user_msg_info(ch, (uint32_t)expect_n + 1));
    ck_assert_ptr_null(vhost_user_msg_info(ch, UINT32_MAX));
    ck_assert_str_eq(vhost_user_request_name(ch, 0), "UNKNOWN");
    ck_assert_str_eq(vhost_user_request_name(ch, 999), "UNKNOWN");
}

START_TEST(test_table_frontend)
{
    check_table(FE, 43, fe_names, G_N_ELEMENTS(fe_names));
    ck_assert_str_eq(vhost_user_request_name(FE, 1), "GET_FEATURES");
    ck_assert_str_eq(vhost_user_request_name(FE, 8), "SET_VRING_NUM");
    ck_assert_str_eq(vhost_user_request_name(FE, 34), "RESET_DEVICE");
    ck_assert_str_eq(vhost_user_request_name(FE, 43), "CHECK_DEVICE_STATE");
    ck_assert_int_eq(vhost_user_msg_info(FE, VHOST_USER_GET_QUEUE_NUM)->gate,
                     VHOST_USER_PROTOCOL_F_MQ);
    ck_assert_int_eq(vhost_user_msg_info(FE, VHOST_USER_SET_VRING_ENABLE)->gate,
                     VHOST_USER_GATE_PROTO);
}
END_TEST

START_TEST(test_table_backend)
{
    check_table(BE, 8, be_names, G_N_ELEMENTS(be_names));
    ck_assert_str_eq(vhost_user_request_name(BE, 3), "VRING_HOST_NOTIFIER_MSG");
    ck_assert_str_eq(vhost_user_request_name(BE, 8), "SHARED_OBJECT_LOOKUP");
    ck_assert_str_eq(vhost_user_request_name(BE, 9), "UNKNOWN");
}
END_TEST

START_TEST(test_protocol_feature_names)
{
    ck_assert_str_eq(vhost_user_protocol_feature_name(0), "MQ");
    ck_assert_str_eq(vhost_user_protocol_feature_name(3), "REPLY_ACK");
    ck_assert_str_eq(vhost_user_protocol_feature_name(19), "DEVICE_STATE");
    ck_assert_ptr_null(vhost_user_protocol_feature_name(20));
    ck_assert_ptr_null(vhost_user_protocol_feature_name(1000));
    for (unsigned b = 0; b < VHOST_USER_PROTOCOL_F_MAX; b++) {
        ck_assert_ptr_nonnull(vhost_user_protocol_feature_name(b));
    }
}
END_TEST

START_TEST(test_payload_sizes)
{
    static const struct {
        VhostUserPayloadKind kind;
        size_t min, max;
    } want[] = {
        { VHOST_USER_PL_NONE, 0, 0 },
        { VHOST_USER_PL_U64, sizeof(uint64_t), sizeof(uint64_t) },
        { VHOST_USER_PL_U64_OPT, 0, sizeof(uint64_t) },
        { VHOST_USER_PL_VRING_STATE, sizeof(VhostUserVringState), sizeof(VhostUserVringState) },
        { VHOST_USER_PL_VRING_ADDR, sizeof(VhostUserVringAddr), sizeof(VhostUserVringAddr) },
        { VHOST_USER_PL_MEM_TABLE, 8 + sizeof(VhostUserMemoryRegion), sizeof(VhostUserMemory) },
        { VHOST_USER_PL_MEM_REG, sizeof(VhostUserMemRegMsg), sizeof(VhostUserMemRegMsg) },
        { VHOST_USER_PL_LOG, sizeof(VhostUserLog), sizeof(VhostUserLog) },
        { VHOST_USER_PL_IOTLB, sizeof(VhostUserIotlb), sizeof(VhostUserIotlb) },
        { VHOST_USER_PL_CONFIG, VHOST_USER_CONFIG_HDR_SIZE, sizeof(VhostUserConfig) },
        { VHOST_USER_PL_VRING_AREA, sizeof(VhostUserVringArea), sizeof(VhostUserVringArea) },
        { VHOST_USER_PL_INFLIGHT, sizeof(VhostUserInflight), sizeof(VhostUserInflight) },
        { VHOST_USER_PL_UUID, sizeof(VhostUserShared), sizeof(VhostUserShared) },
        { VHOST_USER_PL_DEVICE_STATE, sizeof(VhostUserTransferDeviceState),
          sizeof(VhostUserTransferDeviceState) },
        { VHOST_USER_PL_OPAQUE, 0, VHOST_USER_MAX_PAYLOAD_SIZE },
    };

    ck_assert_uint_eq(G_N_ELEMENTS(want), VHOST_USER_PL__MAX);
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        const VhostUserPayloadInfo *pi = vhost_user_payload_info(want[i].kind);

        ck_assert_ptr_nonnull(pi);
        ck_assert_ptr_nonnull(pi->name);
        ck_assert_uint_eq(pi->min_size, want[i].min);
        ck_assert_uint_eq(pi->max_size, want[i].max);
        ck_assert_uint_le(pi->max_size, VHOST_USER_MAX_PAYLOAD_SIZE);
    }
    ck_assert_ptr_null(vhost_user_payload_info(VHOST_USER_PL__MAX));
    ck_assert_uint_eq(vhost_user_payload_info(VHOST_USER_PL_MEM_TABLE)->max_size, 264);
    ck_assert_uint_eq(vhost_user_payload_info(VHOST_USER_PL_CONFIG)->max_size, 268);
}
END_TEST

/* DPDK replies to SET_LOG_BASE with no payload, libvhost-user with a u64. */
START_TEST(test_log_base_reply_sizes)
{
    VhostUserMsg r;
    GError *err = NULL;

    for (uint32_t size = 0; size <= 12; size += 4) {
        vhost_user_msg_init(&r, VHOST_USER_SET_LOG_BASE, size);
        r.hdr.flags |= VHOST_USER_REPLY_MASK;
        bool ok = vhost_user_msg_validate_reply_header(VHOST_USER_CHANNEL_FRONTEND,
                                                       VHOST_USER_SET_LOG_BASE, false,
                                                       &r.hdr, &err) &&
                  vhost_user_msg_validate_reply_payload(VHOST_USER_CHANNEL_FRONTEND,
                                                        VHOST_USER_SET_LOG_BASE, false,
                                                        &r, 0, &err);
        ck_assert_msg(ok == (size == 0 || size == 8), "size %u: %s", size,
                      err ? err->message : "accepted");
        g_clear_error(&err);
    }
}
END_TEST

/* ---- Request validation --------------------------------------------- */

START_TEST(test_request_good_all_rows)
{
    VhostUserChannel chans[] = { FE, BE };

    for (size_t c = 0; c < G_N_ELEMENTS(chans); c++) {
        const VhostUserMsgInfo *rows;
        size_t n;

        rows = vhost_user_msg_table(chans[c], &n);
        for (size_t i = 0; i < n; i++) {
            VhostUserMsg m;
            size_t nfds;

            build_good(&rows[i], &m, &nfds);
            check_request_ok(chans[c], &m, nfds);
            /* NEED_REPLY is a legal request flag everywhere. */
            m.hdr.flags |= VHOST_USER_NEED_REPLY_MASK;
            check_request_ok(chans[c], &m, nfds);
        }
    }
}
END_TEST

START_TEST(test_request_bad_header)
{
    VhostUserMsg m;

    um_msg_new(&m, 0, 0);
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "request 0: unknown");
    um_msg_new(&m, 44, 0);
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "request 44: unknown");
    um_msg_new(&m, 9, 0);
    check_request_bad(BE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "back-end request 9: unknown");

    um_msg_new(&m, VHOST_USER_SET_OWNER, 0);
    m.hdr.flags = 0;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "SET_OWNER: flags 0x0: version 0");
    m.hdr.flags = 2;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "version 2, expected 1");
    m.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "SET_OWNER: flags 0x5: REPLY set");
    m.hdr.flags = VHOST_USER_VERSION | 0x10;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "unknown bits 0x10");
    m.hdr.flags = VHOST_USER_VERSION | 0x80000000u;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "unknown bits 0x80000000");
}
END_TEST

START_TEST(test_request_bad_size)
{
    VhostUserMsg m;

    um_msg_new(&m, VHOST_USER_SET_VRING_NUM, 12);
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_OVERSIZED, "SET_VRING_NUM: size 12, expected 8");
    m.hdr.size = 4;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_VRING_NUM: size 4, expected 8");
    m.hdr.size = 0;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "size 0, expected 8");
    m.hdr.size = VHOST_USER_MAX_PAYLOAD_SIZE + 1;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_OVERSIZED,
                      "SET_VRING_NUM: size 4097 exceeds the maximum payload size 4096");
    m.hdr.size = UINT32_MAX;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_OVERSIZED, "size 4294967295 exceeds");

    um_msg_new(&m, VHOST_USER_SET_OWNER, 8);
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_OVERSIZED, "SET_OWNER: size 8, expected 0");
    um_msg_new(&m, VHOST_USER_SET_VRING_ADDR, 32);
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_VRING_ADDR: size 32, expected 40");

    /* Opaque: anything up to the global bound. */
    um_msg_new(&m, VHOST_USER_CREATE_CRYPTO_SESSION, VHOST_USER_MAX_PAYLOAD_SIZE);
    check_request_ok(FE, &m, 0);
    m.hdr.size = 0;
    check_request_ok(FE, &m, 0);
    m.hdr.size = VHOST_USER_MAX_PAYLOAD_SIZE + 1;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_OVERSIZED, "CREATE_CRYPTO_SESSION: size 4097");
}
END_TEST

START_TEST(test_request_mem_table)
{
    VhostUserMsg m;

    um_msg_new(&m, VHOST_USER_SET_MEM_TABLE, 8 + 32);
    m.payload.memory.nregions = 1;
    check_request_ok(FE, &m, 1);
    m.payload.memory.nregions = 8;
    m.hdr.size = 8 + 8 * 32;
    check_request_ok(FE, &m, 8);

    m.payload.memory.nregions = 9;
    m.hdr.size = 8 + 9 * 32;
    check_request_bad(FE, &m, 8, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_MEM_TABLE: nregions 9 exceeds 8");
    m.payload.memory.nregions = UINT32_MAX;
    check_request_bad(FE, &m, 8, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "nregions 4294967295 exceeds 8");
    m.payload.memory.nregions = 0;
    m.hdr.size = 8;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_MEM_TABLE: nregions 0, expected 1..8");
    m.hdr.size = 4;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "SET_MEM_TABLE: size 4");

    /* Count and size must agree both ways. */
    m.payload.memory.nregions = 2;
    m.hdr.size = 8 + 32;
    check_request_bad(FE, &m, 2, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_MEM_TABLE: size 40, expected 72 for nregions 2");
    m.hdr.size = 8 + 3 * 32;
    check_request_bad(FE, &m, 2, VHOST_USER_ERROR_OVERSIZED,
                      "SET_MEM_TABLE: size 104, expected 72 for nregions 2");
    m.hdr.size = 8 + 2 * 32 + 1;
    check_request_bad(FE, &m, 2, VHOST_USER_ERROR_OVERSIZED, "size 73, expected 72");

    /* One fd per region, no more, no less. */
    m.hdr.size = 8 + 2 * 32;
    check_request_ok(FE, &m, 2);
    check_request_bad(FE, &m, 1, VHOST_USER_ERROR_WRONG_FDS, "SET_MEM_TABLE: 1 fds, expected 2");
    check_request_bad(FE, &m, 3, VHOST_USER_ERROR_WRONG_FDS, "SET_MEM_TABLE: 3 fds, expected 2");
    check_request_bad(FE, &m, 9, VHOST_USER_ERROR_WRONG_FDS, "9 fds, more than the maximum 8");
}
END_TEST

START_TEST(test_request_config)
{
    VhostUserMsg m;

    um_msg_new(&m, VHOST_USER_SET_CONFIG, 12);
    check_request_ok(FE, &m, 0);
    m.payload.config.size = 256;
    m.hdr.size = 12 + 256;
    check_request_ok(FE, &m, 0);
    m.payload.config.size = 257;
    m.hdr.size = 12 + 257;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_CONFIG: config.size 257 exceeds 256");
    m.payload.config.size = 8;
    m.hdr.size = 12 + 4;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_CONFIG: size 16, expected 20 for config.size 8");
    m.hdr.size = 12 + 9;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_OVERSIZED, "size 21, expected 20");
    m.hdr.size = 8;
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_CONFIG: size 8, expected 12");
}
END_TEST

START_TEST(test_request_fds)
{
    VhostUserMsg m;

    /* NONE */
    um_msg_new(&m, VHOST_USER_SET_VRING_NUM, 8);
    check_request_bad(FE, &m, 1, VHOST_USER_ERROR_WRONG_FDS, "SET_VRING_NUM: 1 fds, expected 0");
    /* ONE */
    um_msg_new(&m, VHOST_USER_SET_LOG_FD, 0);
    check_request_ok(FE, &m, 1);
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_WRONG_FDS, "SET_LOG_FD: 0 fds, expected 1");
    check_request_bad(FE, &m, 2, VHOST_USER_ERROR_WRONG_FDS, "SET_LOG_FD: 2 fds, expected 1");

    /* VRING: one fd unless NOFD, and no undefined bits. */
    um_msg_new(&m, VHOST_USER_SET_VRING_KICK, 8);
    m.payload.u64 = 3;
    check_request_ok(FE, &m, 1);
    check_request_bad(FE, &m, 0, VHOST_USER_ERROR_WRONG_FDS, "SET_VRING_KICK: 0 fds, expected 1");
    m.payload.u64 = 3 | VHOST_USER_VRING_NOFD_MASK;
    check_request_ok(FE, &m, 0);
    check_request_bad(FE, &m, 1, VHOST_USER_ERROR_WRONG_FDS, "SET_VRING_KICK: 1 fds, expected 0");
    m.payload.u64 = 0x200;
    check_request_bad(FE, &m, 1, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_VRING_KICK: u64 0x200 has unknown bits 0x200");
    m.hdr.request = VHOST_USER_SET_VRING_CALL;
    m.payload.u64 = 1ull << 63 | 1;
    check_request_bad(FE, &m, 1, VHOST_USER_ERROR_INVALID_MESSAGE,
                      "SET_VRING_CALL: u64 0x8000000000000001 has unknown bits 0x8000000000000000");

    /* Back-end channel: host notifier follows the VRING rule on its u64. */
    um_msg_new(&m, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24);
    m.payload.area.u64 = 1;
    check_request_ok(BE, &m, 1);
    check_request_bad(BE, &m, 0, VHOST_USER_ERROR_WRONG_FDS,
                      "VRING_HOST_NOTIFIER_MSG: 0 fds, expected 1");
    m.payload.area.u64 = 1 | VHOST_USER_VRING_NOFD_MASK;
    check_request_ok(BE, &m, 0);
    m.payload.area.u64 = 0x1000;
    check_request_bad(BE, &m, 0, VHOST_USER_ERROR_INVALID_MESSAGE, "unknown bits 0x1000");
    um_msg_new(&m, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0);
    check_request_bad(BE, &m, 1, VHOST_USER_ERROR_WRONG_FDS, "CONFIG_CHANGE_MSG: 1 fds");
}
END_TEST

/* ---- Reply validation ----------------------------------------------- */

START_TEST(test_reply_good)
{
    VhostUserMsg r;

    r = um_reply_msg(VHOST_USER_GET_FEATURES, 8);
    check_reply_ok(VHOST_USER_GET_FEATURES, false, &r, 0);
    r = um_reply_msg(VHOST_USER_GET_VRING_BASE, 8);
    check_reply_ok(VHOST_USER_GET_VRING_BASE, false, &r, 0);
    /* Any request may be acked when it carried NEED_REPLY. */
    r = um_reply_msg(VHOST_USER_SET_VRING_ENABLE, 8);
    check_reply_ok(VHOST_USER_SET_VRING_ENABLE, true, &r, 0);
    r = um_reply_msg(VHOST_USER_IOTLB_MSG, 8);
    check_reply_ok(VHOST_USER_IOTLB_MSG, false, &r, 0);
    r = um_reply_msg(VHOST_USER_GET_CONFIG, 12 + 60);
    r.payload.config.size = 60;
    check_reply_ok(VHOST_USER_GET_CONFIG, false, &r, 0);
    r = um_reply_msg(VHOST_USER_GET_INFLIGHT_FD, 24);
    check_reply_ok(VHOST_USER_GET_INFLIGHT_FD, false, &r, 1);
    r = um_reply_msg(VHOST_USER_POSTCOPY_ADVISE, 0);
    check_reply_ok(VHOST_USER_POSTCOPY_ADVISE, false, &r, 1);
    r = um_reply_msg(VHOST_USER_SET_DEVICE_STATE_FD, 8);
    check_reply_ok(VHOST_USER_SET_DEVICE_STATE_FD, false, &r, 0);
    check_reply_ok(VHOST_USER_SET_DEVICE_STATE_FD, false, &r, 1);
    ck_assert_int_eq(vhost_user_reply_payload_kind(FE, VHOST_USER_GET_VRING_BASE, false),
                     VHOST_USER_PL_VRING_STATE);
    ck_assert_int_eq(vhost_user_reply_payload_kind(FE, VHOST_USER_GET_CONFIG, true),
                     VHOST_USER_PL_U64);
}
END_TEST

START_TEST(test_reply_bad_header)
{
    VhostUserHeader h;

    h = reply_hdr(VHOST_USER_SET_MEM_TABLE, 8);
    check_reply_header_bad(VHOST_USER_GET_VRING_BASE, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE,
                           "GET_VRING_BASE reply: request 5 (SET_MEM_TABLE), expected 11");
    h = reply_hdr(77, 8);
    check_reply_header_bad(VHOST_USER_GET_FEATURES, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE,
                           "GET_FEATURES reply: request 77 (UNKNOWN), expected 1");
    h = reply_hdr(VHOST_USER_GET_FEATURES, 8);
    h.flags = VHOST_USER_VERSION;
    check_reply_header_bad(VHOST_USER_GET_FEATURES, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE,
                           "GET_FEATURES reply: flags 0x1: REPLY not set");
    h.flags = VHOST_USER_REPLY_MASK | 2;
    check_reply_header_bad(VHOST_USER_GET_FEATURES, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE, "version 2, expected 1");
    h.flags = VHOST_USER_REPLY_MASK;
    check_reply_header_bad(VHOST_USER_GET_FEATURES, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE, "version 0, expected 1");
    h.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK;
    check_reply_header_bad(VHOST_USER_GET_FEATURES, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE,
                           "GET_FEATURES reply: flags 0xd: NEED_REPLY set in a reply");
    h.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK | 0x100;
    check_reply_header_bad(VHOST_USER_GET_FEATURES, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE, "unknown bits 0x100");

    /* A request without a reply gets none unless it asked for an ack. */
    h = reply_hdr(VHOST_USER_SET_OWNER, 8);
    check_reply_header_bad(VHOST_USER_SET_OWNER, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE, "SET_OWNER reply: SET_OWNER has no reply");
    check_reply_header_bad(0, false, h, VHOST_USER_ERROR_INVALID_MESSAGE,
                           "reply to unknown request 0");
}
END_TEST

START_TEST(test_reply_bad_size)
{
    VhostUserHeader h;
    VhostUserMsg r;

    h = reply_hdr(VHOST_USER_GET_VRING_BASE, 12);
    check_reply_header_bad(VHOST_USER_GET_VRING_BASE, false, h, VHOST_USER_ERROR_OVERSIZED,
                           "GET_VRING_BASE reply: size 12, expected 8");
    h.size = 4;
    check_reply_header_bad(VHOST_USER_GET_VRING_BASE, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE,
                           "GET_VRING_BASE reply: size 4, expected 8");
    h.size = 0;
    check_reply_header_bad(VHOST_USER_GET_VRING_BASE, false, h,
                           VHOST_USER_ERROR_INVALID_MESSAGE, "size 0, expected 8");
    h.size = UINT32_MAX;
    check_reply_header_bad(VHOST_USER_GET_VRING_BASE, false, h, VHOST_USER_ERROR_OVERSIZED,
                           "GET_VRING_BASE reply: size 4294967295 exceeds the maximum");
    h = reply_hdr(VHOST_USER_GET_CONFIG, VHOST_USER_MAX_PAYLOAD_SIZE + 1);
    check_reply_header_bad(VHOST_USER_GET_CONFIG, false, h, VHOST_USER_ERROR_OVERSIZED,
                           "GET_CONFIG reply: size 4097 exceeds");
    /* An ack is exactly the u64, whatever the request's own reply is. */
    h = reply_hdr(VHOST_USER_SET_FEATURES, 4);
    check_reply_header_bad(VHOST_USER_SET_FEATURES, true, h, VHOST_USER_ERROR_INVALID_MESSAGE,
                           "SET_FEATURES reply: size 4, expected 8");
    h = reply_hdr(VHOST_USER_GET_CONFIG, 12 + 8);
    check_reply_header_bad(VHOST_USER_GET_CONFIG, true, h, VHOST_USER_ERROR_OVERSIZED,
                           "GET_CONFIG reply: size 20, expected 8");
    h = reply_hdr(VHOST_USER_POSTCOPY_ADVISE, 8);
    check_reply_header_bad(VHOST_USER_POSTCOPY_ADVISE, false, h, VHOST_USER_ERROR_OVERSIZED,
                           "POSTCOPY_ADVISE reply: size 8, expected 0");
    /* Variable layouts: the header check only bounds the size. */
    h = reply_hdr(VHOST_USER_GET_CONFIG, 12 + 257);
    check_reply_header_bad(VHOST_USER_GET_CONFIG, false, h, VHOST_USER_ERROR_OVERSIZED,
                           "GET_CONFIG reply: size 269, expected 268");
    h.size = 11;
    check_reply_header_bad(VHOST_USER_GET_CONFIG, false, h, VHOST_USER_ERROR_INVALID_MESSAGE,
                           "GET_CONFIG reply: size 11, expected 12");

    /* GET_CONFIG: the size must match the config.size inside. */
    r = um_reply_msg(VHOST_USER_GET_CONFIG, 12 + 60);
    r.payload.config.size = 56;
    check_reply_bad(VHOST_USER_GET_CONFIG, false, &r, 0, VHOST_USER_ERROR_OVERSIZED,
                    "GET_CONFIG reply: size 72, expected 68 for config.size 56");
    r.payload.config.size = 64;
    check_reply_bad(VHOST_USER_GET_CONFIG, false, &r, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "GET_CONFIG reply: size 72, expected 76 for config.size 64");
    r.payload.config.size = 1000;
    check_reply_bad(VHOST_USER_GET_CONFIG, false, &r, 0, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "GET_CONFIG reply: config.size 1000 exceeds 256");
    /* The payload check repeats the header rules on its own. */
    r = um_reply_msg(VHOST_USER_GET_FEATURES, 16);
    check_reply_bad(VHOST_USER_GET_FEATURES, false, &r, 0, VHOST_USER_ERROR_OVERSIZED,
                    "GET_FEATURES reply: size 16, expected 8");
}
END_TEST

START_TEST(test_reply_fds)
{
    VhostUserMsg r;

    r = um_reply_msg(VHOST_USER_GET_FEATURES, 8);
    check_reply_bad(VHOST_USER_GET_FEATURES, false, &r, 1, VHOST_USER_ERROR_WRONG_FDS,
                    "GET_FEATURES reply: 1 fds, expected 0");
    r = um_reply_msg(VHOST_USER_SET_VRING_ADDR, 8);
    check_reply_bad(VHOST_USER_SET_VRING_ADDR, true, &r, 2, VHOST_USER_ERROR_WRONG_FDS,
                    "SET_VRING_ADDR reply: 2 fds, expected 0");
    r = um_reply_msg(VHOST_USER_POSTCOPY_ADVISE, 0);
    check_reply_bad(VHOST_USER_POSTCOPY_ADVISE, false, &r, 0, VHOST_USER_ERROR_WRONG_FDS,
                    "POSTCOPY_ADVISE reply: 0 fds, expected 1");
    /* An inflight reply of size 0 (not tracked) may come without its fd. */
    r = um_reply_msg(VHOST_USER_GET_INFLIGHT_FD, 24);
    check_reply_bad(VHOST_USER_GET_INFLIGHT_FD, false, &r, 2, VHOST_USER_ERROR_WRONG_FDS,
                    "GET_INFLIGHT_FD reply: 2 fds, expected 0..1");
    r = um_reply_msg(VHOST_USER_SET_DEVICE_STATE_FD, 8);
    check_reply_bad(VHOST_USER_SET_DEVICE_STATE_FD, false, &r, 2, VHOST_USER_ERROR_WRONG_FDS,
                    "SET_DEVICE_STATE_FD reply: 2 fds, expected 0..1");
    r = um_reply_msg(VHOST_USER_GET_FEATURES, 8);
    check_reply_bad(VHOST_USER_GET_FEATURES, false, &r, 200, VHOST_USER_ERROR_WRONG_FDS,
                    "200 fds, more than the maximum 8");
}
END_TEST

/* ---- Helpers: ring index, init -------------------------------------- */

/* The reply conditions and "always answered" come from the table. */
START_TEST(test_reply_plan)
{
    const uint64_t ack = 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;
    const uint64_t log = 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD;
    const VhostUserMsgInfo *mt = vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND,
                                                     VHOST_USER_SET_MEM_TABLE);
    const VhostUserMsgInfo *lb = vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND,
                                                     VHOST_USER_SET_LOG_BASE);
    const VhostUserMsgInfo *io = vhost_user_msg_info(VHOST_USER_CHANNEL_FRONTEND,
                                                     VHOST_USER_IOTLB_MSG);
    const VhostUserMsgInfo *lk = vhost_user_msg_info(VHOST_USER_CHANNEL_BACKEND,
                                                     VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP);
    bool need, expect;

    /* SET_MEM_TABLE: an ack with REPLY_ACK; the addresses once postcopy listens. */
    vhost_user_msg_reply_plan(mt, 0, false, &need, &expect);
    ck_assert(!need && !expect);
    vhost_user_msg_reply_plan(mt, ack, false, &need, &expect);
    ck_assert(need && expect);
    vhost_user_msg_reply_plan(mt, ack, true, &need, &expect);
    ck_assert(!need && expect);
    ck_assert_int_eq(vhost_user_reply_payload_kind(VHOST_USER_CHANNEL_FRONTEND,
                                                   VHOST_USER_ADD_MEM_REG, false),
                     VHOST_USER_PL_MEM_REG);
    /* SET_LOG_BASE: a reply only with LOG_SHMFD. */
    vhost_user_msg_reply_plan(lb, 0, false, &need, &expect);
    ck_assert(!need && !expect);
    vhost_user_msg_reply_plan(lb, log, false, &need, &expect);
    ck_assert(!need && expect);
    ck_assert(!vhost_user_reply_cond_holds(VHOST_USER_RC_LOG_SHMFD, ack, true));
    /* IOTLB_MSG and the back-end's lookup: always answered. */
    vhost_user_msg_reply_plan(io, 0, false, &need, &expect);
    ck_assert(need && expect);
    ck_assert_int_eq(lk->reply, VHOST_USER_RK_ACK);
    ck_assert_int_eq(lk->reply_fds, VHOST_USER_FDS_OPTIONAL);
    ck_assert_str_eq(lk->handler, "shared_lookup");
    ck_assert_str_eq(mt->handler, "none");
}
END_TEST

/* The table's semantic checks of a reply against its request. */
START_TEST(test_check_reply)
{
    VhostUserMsg req, reply;
    GError *err = NULL;

    vhost_user_msg_init(&req, VHOST_USER_GET_VRING_BASE, sizeof(VhostUserVringState));
    req.payload.state.index = 1;
    reply = req;
    reply.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    reply.payload.state.num = 7;
    ck_assert(vhost_user_msg_check_reply(VHOST_USER_CHANNEL_FRONTEND, &req, &reply, NULL));
    reply.payload.state.index = 3;
    ck_assert(!vhost_user_msg_check_reply(VHOST_USER_CHANNEL_FRONTEND, &req, &reply, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE));
    ck_assert_str_eq(err->message,
                     "GET_VRING_BASE reply: ring index 3 but ring 1 was asked for");
    g_clear_error(&err);

    vhost_user_msg_init(&req, VHOST_USER_GET_CONFIG, VHOST_USER_CONFIG_HDR_SIZE + 4);
    req.payload.config.offset = 8;
    req.payload.config.size = 4;
    reply = req;
    ck_assert(vhost_user_msg_check_reply(VHOST_USER_CHANNEL_FRONTEND, &req, &reply, NULL));
    reply.payload.config.offset = 0;
    ck_assert(!vhost_user_msg_check_reply(VHOST_USER_CHANNEL_FRONTEND, &req, &reply, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "GET_CONFIG reply: size 16 offset 0"));
    g_clear_error(&err);
    reply.payload.config.offset = 8;
    reply.payload.config.size = 3;
    reply.hdr.size = VHOST_USER_CONFIG_HDR_SIZE + 3;
    ck_assert(!vhost_user_msg_check_reply(VHOST_USER_CHANNEL_FRONTEND, &req, &reply, NULL));
    /* Rows without a check accept anything their layout allows. */
    vhost_user_msg_init(&req, VHOST_USER_GET_FEATURES, 0);
    ck_assert(vhost_user_msg_check_reply(VHOST_USER_CHANNEL_FRONTEND, &req, &reply, NULL));
}
END_TEST

START_TEST(test_ring_index)
{
    VhostUserMsg m;

    um_msg_new(&m, VHOST_USER_SET_VRING_NUM, 8);
    m.payload.state.index = 5;
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), 5);
    m.payload.state.index = UINT32_MAX;
    /* Clamped, never negative: a huge index must not look device-wide. */
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), INT32_MAX);

    um_msg_new(&m, VHOST_USER_SET_VRING_ADDR, 40);
    m.payload.addr.index = 7;
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), 7);

    um_msg_new(&m, VHOST_USER_SET_VRING_CALL, 8);
    m.payload.u64 = 0x1ff;
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), 0xff);
    m.payload.u64 = 0x102;
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), 2);

    um_msg_new(&m, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24);
    m.payload.area.u64 = 4;
    ck_assert_int_eq(vhost_user_msg_ring_index(BE, &m), 4);
    um_msg_new(&m, VHOST_USER_BACKEND_VRING_CALL, 8);
    m.payload.state.index = 3;
    ck_assert_int_eq(vhost_user_msg_ring_index(BE, &m), 3);

    um_msg_new(&m, VHOST_USER_SET_MEM_TABLE, 40);
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), -1);
    um_msg_new(&m, VHOST_USER_GET_FEATURES, 0);
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), -1);
    um_msg_new(&m, 99, 8);
    ck_assert_int_eq(vhost_user_msg_ring_index(FE, &m), -1);
    um_msg_new(&m, VHOST_USER_BACKEND_IOTLB_MSG, 32);
    ck_assert_int_eq(vhost_user_msg_ring_index(BE, &m), -1);
}
END_TEST

START_TEST(test_msg_init)
{
    VhostUserMsg m;

    memset(&m, 0xaa, sizeof(m));
    vhost_user_msg_init(&m, VHOST_USER_SET_VRING_ADDR, 40);
    ck_assert_uint_eq(m.hdr.request, VHOST_USER_SET_VRING_ADDR);
    ck_assert_uint_eq(m.hdr.flags, VHOST_USER_VERSION);
    ck_assert_uint_eq(m.hdr.size, 40);
    for (size_t i = 0; i < sizeof(m.payload.raw); i++) {
        ck_assert_uint_eq(m.payload.raw[i], 0);
    }
}
END_TEST

/*
 * Random headers and payloads through every parser entry point: under
 * ASan/UBSan this catches any read past hdr.size or the payload buffer.
 * Sizes and ids are biased towards the interesting small values.
 */
START_TEST(test_random_messages)
{
    g_autoptr(GRand) rnd = g_rand_new_with_seed(0x7648);
    VhostUserMsg m;

    for (int iter = 0; iter < 20000; iter++) {
        VhostUserChannel ch = g_rand_boolean(rnd) ? FE : BE;
        uint32_t id = (uint32_t)g_rand_int_range(rnd, 0, 50);
        bool acked = g_rand_boolean(rnd);
        size_t nfds = (size_t)g_rand_int_range(rnd, 0, 10);
        GError *err = NULL;
        char *s;

        for (size_t i = 0; i < sizeof(m); i += 4) {
            uint32_t v = g_rand_int(rnd);

            memcpy((char *)&m + i, &v, MIN(4, sizeof(m) - i));
        }
        m.hdr.request = g_rand_boolean(rnd) ? id : g_rand_int(rnd);
        m.hdr.flags &= g_rand_boolean(rnd) ? 0xf : 0xffffffff;
        m.hdr.size = g_rand_boolean(rnd) ? (uint32_t)g_rand_int_range(rnd, 0, 300)
                                         : g_rand_int(rnd) % 5000;
        if (g_rand_boolean(rnd)) {
            m.payload.memory.nregions = (uint32_t)g_rand_int_range(rnd, 0, 10);
            m.payload.config.size &= 0x1ff;
        }

        if (vhost_user_msg_validate_request(ch, &m, nfds, &err)) {
            ck_assert_uint_le(m.hdr.size, VHOST_USER_MAX_PAYLOAD_SIZE);
            ck_assert_uint_le(nfds, VHOST_USER_MAX_FDS);
        } else {
            ck_assert_ptr_nonnull(err);
            g_clear_error(&err);
        }
        if (!vhost_user_msg_validate_reply_header(ch, id, acked, &m.hdr, &err)) {
            g_clear_error(&err);
        }
        if (!vhost_user_msg_validate_reply_payload(ch, id, acked, &m, nfds, &err)) {
            g_clear_error(&err);
        }
        (void)vhost_user_msg_ring_index(ch, &m);
        s = vhost_user_msg_format(ch, &m, nfds, acked);
        g_free(s);
    }
}
END_TEST

/* ---- Reply wait class --------------------------------------------- */

/*
 * Only replies that wait for work are slow; every answer the spec has
 * come at once, and all of ours on the back-end channel, are prompt.
 */
START_TEST(test_reply_wait)
{
    static const uint32_t slow[] = {
        VHOST_USER_RESET_OWNER, VHOST_USER_SET_MEM_TABLE, VHOST_USER_GET_VRING_BASE,
        VHOST_USER_CREATE_CRYPTO_SESSION, VHOST_USER_POSTCOPY_ADVISE,
        VHOST_USER_POSTCOPY_LISTEN, VHOST_USER_POSTCOPY_END, VHOST_USER_RESET_DEVICE,
        VHOST_USER_ADD_MEM_REG, VHOST_USER_REM_MEM_REG, VHOST_USER_SET_STATUS,
        VHOST_USER_SET_DEVICE_STATE_FD, VHOST_USER_CHECK_DEVICE_STATE,
    };
    const VhostUserMsgInfo *rows;
    size_t n, nslow = 0;

    rows = vhost_user_msg_table(FE, &n);
    for (size_t i = 0; i < n; i++) {
        bool want = false;

        for (size_t j = 0; j < G_N_ELEMENTS(slow); j++) {
            want |= rows[i].id == slow[j];
        }
        ck_assert_msg((rows[i].reply_wait == VHOST_USER_RW_SLOW) == want, "%s",
                      rows[i].name);
        nslow += want;
    }
    ck_assert_uint_eq(nslow, G_N_ELEMENTS(slow));
    rows = vhost_user_msg_table(BE, &n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(rows[i].reply_wait == VHOST_USER_RW_PROMPT, "%s", rows[i].name);
    }
}
END_TEST

/* ---- Docs table ----------------------------------------------------- */

START_TEST(test_table_rst)
{
    g_autofree char *a = vhost_user_msg_table_rst();
    g_autofree char *b = vhost_user_msg_table_rst();
    const VhostUserMsgInfo *rows;
    size_t n;

    ck_assert_str_eq(a, b);
    ck_assert(g_str_has_suffix(a, "\n"));
    ck_assert_ptr_nonnull(strstr(a, "id  "));
    ck_assert_ptr_nonnull(strstr(a, "gate"));
    ck_assert_ptr_nonnull(strstr(a, "scope"));
    ck_assert_ptr_nonnull(strstr(a, " wait "));
    ck_assert_ptr_nonnull(strstr(a, " slow "));
    for (int c = 0; c < 2; c++) {
        VhostUserChannel ch = c ? BE : FE;

        rows = vhost_user_msg_table(ch, &n);
        for (size_t i = 0; i < n; i++) {
            g_autofree char *cell = g_strdup_printf(" %s ", rows[i].name);

            ck_assert_msg(strstr(a, cell), "%s missing", rows[i].name);
        }
    }
    /* Simple-table borders: every line of a table is no wider than its border. */
    ck_assert_ptr_nonnull(strstr(a, "\n==  "));
    ck_assert_ptr_nonnull(strstr(a, "SET_MEM_TABLE"));
    ck_assert_ptr_nonnull(strstr(a, "1 per region"));
    ck_assert_ptr_nonnull(strstr(a, "INBAND_NOTIFICATIONS"));
}
END_TEST

static Suite *msg_suite(void)
{
    Suite *s = suite_create("vhost-user-msg");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, test_table_frontend);
    tcase_add_test(tc, test_table_backend);
    tcase_add_test(tc, test_protocol_feature_names);
    tcase_add_test(tc, test_payload_sizes);
    tcase_add_test(tc, test_log_base_reply_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("request");
    tcase_add_test(tc, test_request_good_all_rows);
    tcase_add_test(tc, test_request_bad_header);
    tcase_add_test(tc, test_request_bad_size);
    tcase_add_test(tc, test_request_mem_table);
    tcase_add_test(tc, test_request_config);
    tcase_add_test(tc, test_request_fds);
    suite_add_tcase(s, tc);

    tc = tcase_create("reply");
    tcase_add_test(tc, test_reply_good);
    tcase_add_test(tc, test_reply_bad_header);
    tcase_add_test(tc, test_reply_bad_size);
    tcase_add_test(tc, test_reply_fds);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    tcase_add_test(tc, test_ring_index);
    tcase_add_test(tc, test_reply_plan);
    tcase_add_test(tc, test_check_reply);
    tcase_add_test(tc, test_msg_init);
    msg_format_add_tests(tc);
    tcase_add_test(tc, test_table_rst);
    tcase_add_test(tc, test_reply_wait);
    tcase_add_test(tc, test_random_messages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(msg_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
