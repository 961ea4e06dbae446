/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The decoded form of a message (vhost_user_msg_format): one line per
 * message with its name, flags, size, fds and the payload fields that
 * matter, packed ring bases included; and the trace built on it, whose
 * arrow names the sender whichever side writes the line.
 */
#include <check.h>
#include <string.h>

#include "util/vhost-user-msg.h"

#include "test-vhost-user-msg.h"

/* ---- Format and trace ----------------------------------------------- */

static void check_format(VhostUserChannel ch, const VhostUserMsg *m, size_t nfds,
                         bool is_reply, const char *want)
{
    g_autofree char *s = vhost_user_msg_format(ch, m, nfds, is_reply);

    ck_assert_str_eq(s, want);
}

/*
 * A packed ring's base, as the spec lays out num: bits 0-14 and 15 the
 * avail index and driver wrap counter, 16-30 and 31 the used ones.
 */
START_TEST(test_format_packed_base)
{
    VhostUserMsg m;
    g_autofree char *fresh = NULL, *reply = NULL, *split = NULL, *num = NULL;

    um_msg_new(&m, VHOST_USER_SET_VRING_BASE, 8);
    m.payload.state.index = 1;
    m.payload.state.num = 0x80008000;
    fresh = vhost_user_msg_format_ring(FE, &m, 0, false, true);
    ck_assert_str_eq(fresh, "SET_VRING_BASE flags=0x1 size=8 fds=0 idx=1 num=0x80008000 "
                     "avail_idx=0 avail_wrap=1 used_idx=0 used_wrap=1");
    /* Split rings, and packed ones unknown to the caller: the plain number. */
    split = vhost_user_msg_format_ring(FE, &m, 0, false, false);
    ck_assert_str_eq(split, "SET_VRING_BASE flags=0x1 size=8 fds=0 idx=1 num=2147516416");
    /* Only the bases: SET_VRING_NUM's num is a size. */
    um_msg_new(&m, VHOST_USER_SET_VRING_NUM, 8);
    m.payload.state.num = 256;
    num = vhost_user_msg_format_ring(FE, &m, 0, false, true);
    ck_assert_str_eq(num, "SET_VRING_NUM flags=0x1 size=8 fds=0 idx=0 num=256");
    /* A stop in lap 0 of the driver, lap 1 of the device. */
    m = um_reply_msg(VHOST_USER_GET_VRING_BASE, 8);
    m.payload.state.index = 0;
    m.payload.state.num = 0x80050003;
    reply = vhost_user_msg_format_ring(FE, &m, 0, true, true);
    ck_assert_str_eq(reply, "GET_VRING_BASE flags=0x5 size=8 fds=0 idx=0 num=0x80050003 "
                     "avail_idx=3 avail_wrap=0 used_idx=5 used_wrap=1");
}
END_TEST

START_TEST(test_format)
{
    VhostUserMsg m;

    um_msg_new(&m, VHOST_USER_SET_VRING_NUM, 8);
    m.payload.state.num = 256;
    check_format(FE, &m, 0, false, "SET_VRING_NUM flags=0x1 size=8 fds=0 idx=0 num=256");

    um_msg_new(&m, VHOST_USER_GET_FEATURES, 0);
    check_format(FE, &m, 0, false, "GET_FEATURES flags=0x1 size=0 fds=0");
    m = um_reply_msg(VHOST_USER_GET_FEATURES, 8);
    m.payload.u64 = (1ull << 32) | (1ull << 30) | 0x3;
    check_format(FE, &m, 0, true, "GET_FEATURES flags=0x5 size=8 fds=0 "
                 "u64=0x140000003 (PROTOCOL_FEATURES|VERSION_1|0x3)");

    um_msg_new(&m, VHOST_USER_SET_PROTOCOL_FEATURES, 8);
    m.payload.u64 = 0x20b;
    check_format(FE, &m, 0, false, "SET_PROTOCOL_FEATURES flags=0x1 size=8 fds=0 "
                 "u64=0x20b (MQ|LOG_SHMFD|REPLY_ACK|CONFIG)");
    m.payload.u64 = (1ull << 40) | 1;
    check_format(FE, &m, 0, false, "SET_PROTOCOL_FEATURES flags=0x1 size=8 fds=0 "
                 "u64=0x10000000001 (MQ|0x10000000000)");
    m.payload.u64 = 0;
    check_format(FE, &m, 0, false, "SET_PROTOCOL_FEATURES flags=0x1 size=8 fds=0 u64=0x0");

    um_msg_new(&m, VHOST_USER_SET_VRING_ADDR, 40);
    m.payload.addr.index = 1;
    m.payload.addr.flags = 1;
    m.payload.addr.desc_user_addr = 0x7f0000001000;
    m.payload.addr.used_user_addr = 0x7f0000003000;
    m.payload.addr.avail_user_addr = 0x7f0000002000;
    m.payload.addr.log_guest_addr = 0x3000;
    check_format(FE, &m, 0, false, "SET_VRING_ADDR flags=0x1 size=40 fds=0 idx=1 flags=0x1 "
                 "desc=0x7f0000001000 used=0x7f0000003000 avail=0x7f0000002000 log=0x3000");

    um_msg_new(&m, VHOST_USER_SET_MEM_TABLE, 8 + 2 * 32);
    m.payload.memory.nregions = 2;
    m.payload.memory.regions[0].memory_size = 0xa0000;
    m.payload.memory.regions[0].userspace_addr = 0x7f1200000000;
    m.payload.memory.regions[1].guest_phys_addr = 0x100000;
    m.payload.memory.regions[1].memory_size = 0x3ff00000;
    m.payload.memory.regions[1].userspace_addr = 0x7f1200100000;
    m.payload.memory.regions[1].mmap_offset = 0x100000;
    check_format(FE, &m, 2, false, "SET_MEM_TABLE flags=0x1 size=72 fds=2 nregions=2 "
                 "[0] gpa=0x0 size=0xa0000 uaddr=0x7f1200000000 offset=0x0 "
                 "[1] gpa=0x100000 size=0x3ff00000 uaddr=0x7f1200100000 offset=0x100000");
    /* A lying count decodes only what is there. */
    m.payload.memory.nregions = 200;
    m.hdr.size = 8 + 32;
    check_format(FE, &m, 0, false, "SET_MEM_TABLE flags=0x1 size=40 fds=0 nregions=200 "
                 "[0] gpa=0x0 size=0xa0000 uaddr=0x7f1200000000 offset=0x0");

    um_msg_new(&m, VHOST_USER_SET_VRING_KICK, 8);
    m.payload.u64 = 2;
    check_format(FE, &m, 1, false, "SET_VRING_KICK flags=0x1 size=8 fds=1 idx=2 nofd=0");
    m.payload.u64 = 0x102;
    check_format(FE, &m, 0, false, "SET_VRING_KICK flags=0x1 size=8 fds=0 idx=2 nofd=1");
    m.payload.u64 = 0x402;
    check_format(FE, &m, 0, false,
                 "SET_VRING_KICK flags=0x1 size=8 fds=0 idx=2 nofd=0 u64=0x402");

    um_msg_new(&m, VHOST_USER_GET_CONFIG, 12 + 60);
    m.payload.config.size = 60;
    check_format(FE, &m, 0, false,
                 "GET_CONFIG flags=0x1 size=72 fds=0 cfg.offset=0 cfg.size=60 cfg.flags=0x0");

    /* Acks decode as the u64 status. */
    m = um_reply_msg(VHOST_USER_SET_VRING_ENABLE, 8);
    m.payload.u64 = 1;
    check_format(FE, &m, 0, true, "SET_VRING_ENABLE flags=0x5 size=8 fds=0 u64=0x1");
    m = um_reply_msg(VHOST_USER_GET_CONFIG, 8);
    check_format(FE, &m, 0, true, "GET_CONFIG flags=0x5 size=8 fds=0 u64=0x0");

    /* Malformed and unknown messages never decode past the header. */
    um_msg_new(&m, VHOST_USER_SET_VRING_NUM, 3);
    check_format(FE, &m, 0, false,
                 "SET_VRING_NUM flags=0x1 size=3 fds=0 (bad size for vring_state payload)");
    um_msg_new(&m, 77, 8);
    check_format(FE, &m, 3, false, "UNKNOWN(77) flags=0x1 size=8 fds=3");

    /* Back-end channel. */
    um_msg_new(&m, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, 24);
    m.payload.area.u64 = 1;
    m.payload.area.size = 0x1000;
    m.payload.area.offset = 0x2000;
    check_format(BE, &m, 1, false, "VRING_HOST_NOTIFIER_MSG flags=0x1 size=24 fds=1 "
                 "idx=1 nofd=0 area.size=0x1000 area.offset=0x2000");
    um_msg_new(&m, VHOST_USER_BACKEND_IOTLB_MSG, 32);
    m.payload.iotlb.iova = 0x1000;
    m.payload.iotlb.perm = VHOST_ACCESS_RW;
    m.payload.iotlb.type = VHOST_IOTLB_MISS;
    check_format(BE, &m, 0, false, "IOTLB_MSG flags=0x1 size=32 fds=0 "
                 "iova=0x1000 size=0x0 uaddr=0x0 perm=0x3 type=MISS");
    um_msg_new(&m, VHOST_USER_BACKEND_SHARED_OBJECT_ADD, 16);
    for (int i = 0; i < 16; i++) {
        m.payload.object.uuid[i] = (uint8_t)(i * 0x11);
    }
    check_format(BE, &m, 1, false, "SHARED_OBJECT_ADD flags=0x1 size=16 fds=1 "
                 "uuid=00112233-4455-6677-8899-aabbccddeeff");
    um_msg_new(&m, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0);
    check_format(BE, &m, 0, false, "CONFIG_CHANGE_MSG flags=0x1 size=0 fds=0");
    um_msg_new(&m, 9, 0);
    check_format(BE, &m, 0, false, "UNKNOWN(9) flags=0x1 size=0 fds=0");
}
END_TEST

static void capture_line(const char *line, void *opaque)
{
    g_ptr_array_add(opaque, g_strdup(line));
}

START_TEST(test_trace)
{
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    VhostUserMsg m;

    vhost_user_trace_set_sink(capture_line, lines);
    um_msg_new(&m, VHOST_USER_SET_OWNER, 0);

    vhost_user_trace_enable(false);
    ck_assert(!vhost_user_trace_enabled());
    vhost_user_trace_msg("net0", true, FE, VHOST_USER_TRACE_TX, &m, 0, false);
    ck_assert_uint_eq(lines->len, 0);

    vhost_user_trace_enable(true);
    ck_assert(vhost_user_trace_enabled());
    /* The arrow names the sender, whichever side writes the trace. */
    vhost_user_trace_msg("net0", true, FE, VHOST_USER_TRACE_TX, &m, 0, false);
    vhost_user_trace_msg("be0", false, FE, VHOST_USER_TRACE_RX, &m, 0, false);
    m = um_reply_msg(VHOST_USER_GET_FEATURES, 8);
    vhost_user_trace_msg("net0", true, FE, VHOST_USER_TRACE_RX, &m, 0, true);
    vhost_user_trace_msg("be0", false, FE, VHOST_USER_TRACE_TX, &m, 0, true);
    um_msg_new(&m, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0);
    vhost_user_trace_msg("blk0", true, BE, VHOST_USER_TRACE_RX, &m, 0, false);

    ck_assert_uint_eq(lines->len, 5);
    ck_assert_str_eq(g_ptr_array_index(lines, 0),
                     "vhost-user: net0 F>B SET_OWNER flags=0x1 size=0 fds=0");
    ck_assert_str_eq(g_ptr_array_index(lines, 1),
                     "vhost-user: be0 F>B SET_OWNER flags=0x1 size=0 fds=0");
    ck_assert_str_eq(g_ptr_array_index(lines, 2),
                     "vhost-user: net0 B>F GET_FEATURES flags=0x5 size=8 fds=0 u64=0x0");
    ck_assert_str_eq(g_ptr_array_index(lines, 3),
                     "vhost-user: be0 B>F GET_FEATURES flags=0x5 size=8 fds=0 u64=0x0");
    ck_assert_str_eq(g_ptr_array_index(lines, 4),
                     "vhost-user: blk0 B>F backend-chan CONFIG_CHANGE_MSG flags=0x1 "
                     "size=0 fds=0");

    vhost_user_trace_enable(false);
    vhost_user_trace_set_sink(NULL, NULL);
}
END_TEST

void msg_format_add_tests(TCase *tc)
{
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_format_packed_base);
    tcase_add_test(tc, test_trace);
}
