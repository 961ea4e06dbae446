/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device layer (struct vhost_dev over user_ops) against the fake
 * back-end of test-vhost-user-conn.c: start and stop with the order of the
 * ring messages, bad config and memory, more regions than the back-end
 * takes, and a ring left unset.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chardev/char-socket.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vhost-user-conn.h"
#include "util/vhost-user-error.h"
#include "unit-sock.h"

#include "test-vhost-user-conn.h"

/* ---- The device layer over user_ops ------------------------------------ */

#define RING_NUM 8

static void setup_rings(struct vhost_dev *hdev)
{
    for (unsigned i = 0; i < hdev->nvqs; i++) {
        struct vhost_virtqueue *vq = &hdev->vqs[i];

        vq->num = RING_NUM;
        vq->desc_gpa = 0x10000 * (i + 1);
        vq->avail_gpa = vq->desc_gpa + 0x1000;
        vq->used_gpa = vq->desc_gpa + 0x2000;
    }
}

START_TEST(test_vhost_dev_start_stop)
{
    static const uint32_t ring_seq[] = {
        VHOST_USER_SET_VRING_NUM, VHOST_USER_SET_VRING_BASE, VHOST_USER_SET_VRING_ADDR,
        VHOST_USER_SET_VRING_ERR, VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL,
    };
    unsigned baseline = ut_count_fds();
    Fixture f;
    GError *err = NULL;
    RamBlock *rb;
    GuestMemory *mem = guest_memory_new();
    struct vhost_dev hdev;
    const LoggedMsg *m;
    VhostUserMemory table;
    VhostUserVringAddr addr;
    guint n, k;
    uint8_t cfg[8];

    rb = ram_block_new_memfd("ram0", 1u << 20, &err);
    ck_assert_ptr_nonnull(rb);
    ck_assert(guest_memory_add(mem, 0, rb, 0, 1u << 20, &err));

    vc_fixture_start(&f, F_PROTO | F_V1, PF(REPLY_ACK) | PF(CONFIG));
    ck_assert(vhost_dev_init(&hdev, "net0", f.u, &user_ops, mem, 0, 2, &err));
    ck_assert_msg(vhost_dev_connect(&hdev, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(hdev.features, F_PROTO | F_V1);
    ck_assert(vhost_dev_has_protocol_feature(&hdev, VHOST_USER_PROTOCOL_F_REPLY_ACK));
    ck_assert(!vhost_dev_set_acked_features(&hdev, 1ull << 40, &err));
    g_clear_error(&err);
    ck_assert(vhost_dev_set_acked_features(&hdev, F_V1, &err));
    setup_rings(&hdev);
    n = f.be.log->len;

    ck_assert_msg(vhost_dev_start(&hdev, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(vhost_dev_started_rings(&hdev), 2);
    /* SET_FEATURES, SET_MEM_TABLE, 6 per ring, 2 enables. */
    ck_assert_uint_eq(f.be.log->len, n + 2 + 12 + 2);
    m = vc_be_msg(&f.be, n);
    ck_assert_uint_eq(m->hdr.request, VHOST_USER_SET_FEATURES);
    ck_assert_uint_eq(*(uint64_t *)m->payload, F_V1 | F_PROTO);
    m = vc_be_msg(&f.be, n + 1);
    ck_assert_uint_eq(m->hdr.request, VHOST_USER_SET_MEM_TABLE);
    ck_assert_uint_eq(m->nfds, 1);
    memcpy(&table, m->payload, 8 + sizeof(VhostUserMemoryRegion));
    ck_assert_uint_eq(table.nregions, 1);
    ck_assert_uint_eq(table.regions[0].guest_phys_addr, 0);
    ck_assert_uint_eq(table.regions[0].memory_size, 1u << 20);
    ck_assert_uint_eq(table.regions[0].mmap_offset, 0);
    ck_assert_uint_eq(table.regions[0].userspace_addr, (uintptr_t)rb->host);
    k = n + 2;
    for (unsigned r = 0; r < 2; r++) {
        for (unsigned s = 0; s < G_N_ELEMENTS(ring_seq); s++, k++) {
            m = vc_be_msg(&f.be, k);
            ck_assert_uint_eq(m->hdr.request, ring_seq[s]);
        }
        m = vc_be_msg(&f.be, k - 4);
        memcpy(&addr, m->payload, sizeof(addr));
        ck_assert_uint_eq(addr.index, r);
        ck_assert_uint_eq(addr.desc_user_addr, (uintptr_t)rb->host + hdev.vqs[r].desc_gpa);
        ck_assert_uint_eq(addr.used_user_addr, (uintptr_t)rb->host + hdev.vqs[r].used_gpa);
        /* The err eventfd goes with SET_VRING_ERR, the kick fd after it. */
        ck_assert_uint_eq(vc_be_msg(&f.be, k - 3)->nfds, 1);
        ck_assert_uint_eq(vc_be_msg(&f.be, k - 2)->nfds, 1);
    }
    ck_assert_uint_eq(vc_be_msg(&f.be, k)->hdr.request, VHOST_USER_SET_VRING_ENABLE);

    ck_assert_msg(vhost_dev_get_config(&hdev, cfg, sizeof(cfg), &err), "%s",
                  err ? err->message : "");
    ck_assert_uint_eq(cfg[0], 1);
    ck_assert_uint_eq(cfg[7], 8);

    vhost_dev_stop(&hdev);
    ck_assert_uint_eq(vhost_dev_started_rings(&hdev), 0);
    ck_assert_uint_eq(hdev.vqs[0].last_avail_idx, 42);
    ck_assert_uint_eq(hdev.vqs[1].last_avail_idx, 43);

    /* Start again; then the back-end dies and the rings resume from guest RAM. */
    ck_assert_msg(vhost_dev_start(&hdev, &err), "%s", err ? err->message : "");
    {
        uint16_t used_idx = GUINT16_TO_LE(7);

        ck_assert(guest_memory_write(mem, hdev.vqs[1].used_gpa + 2, &used_idx, 2));
    }
    vc_be_arm(&f.be, VHOST_USER_SET_VRING_ENABLE, FAULT_HANGUP);
    vhost_dev_stop(&hdev);
    ck_assert(!hdev.vqs[0].started && !hdev.vqs[1].started);
    ck_assert_uint_eq(hdev.vqs[0].last_avail_idx, 0);
    ck_assert_uint_eq(hdev.vqs[1].last_avail_idx, 7);
    ck_assert(!user_ops.is_connected(&hdev));
    vhost_dev_disconnect(&hdev);
    ck_assert(!hdev.connected);
    ck_assert_uint_eq(hdev.acked_features, F_V1);
    ck_assert(!vhost_dev_start(&hdev, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED));
    g_clear_error(&err);

    vhost_dev_cleanup(&hdev);
    vc_fixture_stop(&f);
    guest_memory_free(mem);
    ram_block_unref(rb);
    ck_assert_uint_eq(ut_count_fds(), baseline);
}
END_TEST

START_TEST(test_vhost_dev_bad_config_and_memory)
{
    Fixture f;
    GError *err = NULL;
    RamBlock *rb;
    GuestMemory *mem = guest_memory_new();
    struct vhost_dev hdev;
    uint8_t cfg[8];
    g_autofree char *dir = g_dir_make_tmp("test-vuconn-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "ram", NULL);

    /* A private file mapping: the back-end would never see guest writes. */
    rb = ram_block_new_file("ram0", path, 1u << 20, false, &err);
    ck_assert_ptr_nonnull(rb);
    ck_assert(guest_memory_add(mem, 0, rb, 0, 1u << 20, &err));

    vc_fixture_start(&f, F_PROTO | F_V1, PF(REPLY_ACK) | PF(CONFIG));
    ck_assert(vhost_dev_init(&hdev, "net0", f.u, &user_ops, mem, 0, 1, &err));
    ck_assert(vhost_dev_connect(&hdev, &err));
    setup_rings(&hdev);
    ck_assert(!vhost_dev_start(&hdev, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_ptr_nonnull(strstr(err->message, "not shared"));
    g_clear_error(&err);
    ck_assert_uint_eq(vhost_dev_started_rings(&hdev), 0);

    /* A ring outside guest RAM. */
    ram_block_unref(rb);
    guest_memory_free(mem);
    mem = guest_memory_new();
    rb = ram_block_new_memfd("ram1", 1u << 20, &err);
    ck_assert(guest_memory_add(mem, 0, rb, 0, 1u << 20, &err));
    hdev.mem = mem;
    hdev.vqs[0].used_gpa = (1u << 20) - 8;
    ck_assert(!vhost_dev_start(&hdev, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_ptr_nonnull(strstr(err->message, "used ring"));
    g_clear_error(&err);

    /* GET_CONFIG answered with a different size: dropped. */
    vc_be_arm(&f.be, VHOST_USER_GET_CONFIG, FAULT_CONFIG_SHORT);
    ck_assert(!vhost_dev_get_config(&hdev, cfg, sizeof(cfg), &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE));
    ck_assert_ptr_nonnull(strstr(err->message, "net0: GET_CONFIG reply"));
    g_clear_error(&err);
    vc_assert_broken(&f);

    vhost_dev_cleanup(&hdev);
    vc_fixture_stop(&f);
    guest_memory_free(mem);
    ram_block_unref(rb);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_too_many_regions)
{
    Fixture f;
    GError *err = NULL;
    RamBlock *rb = ram_block_new_memfd("ram0", 9u << 16, &err);
    GuestMemory *mem = guest_memory_new();
    struct vhost_dev hdev;

    for (unsigned i = 0; i < 9; i++) {
        ck_assert(guest_memory_add(mem, (uint64_t)i << 20, rb, (uint64_t)i << 16,
                                   1u << 16, &err));
    }
    vc_fixture_start(&f, F_PROTO, PF(REPLY_ACK));
    ck_assert(vhost_dev_init(&hdev, "net0", f.u, &user_ops, mem, 0, 1, &err));
    ck_assert(vhost_dev_connect(&hdev, &err));
    ck_assert(!user_ops.set_mem_table(&hdev, mem, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_str_eq(err->message, "net0: 9 memory regions but SET_MEM_TABLE carries "
                     "at most 8 (back-end lacks CONFIGURE_MEM_SLOTS)");
    g_clear_error(&err);
    vhost_dev_cleanup(&hdev);
    vc_fixture_stop(&f);
    guest_memory_free(mem);
    ram_block_unref(rb);
}
END_TEST

/* A queue the driver never set up (num 0) is skipped, not an error. */
START_TEST(test_vhost_dev_unset_ring)
{
    Fixture f;
    GError *err = NULL;
    RamBlock *rb = ram_block_new_memfd("ram0", 1u << 20, &err);
    GuestMemory *mem = guest_memory_new();
    struct vhost_dev hdev;
    guint n;

    ck_assert(guest_memory_add(mem, 0, rb, 0, 1u << 20, &err));
    vc_fixture_start(&f, F_PROTO | F_V1, PF(REPLY_ACK));
    ck_assert(vhost_dev_init(&hdev, "net0", f.u, &user_ops, mem, 0, 2, &err));
    ck_assert(vhost_dev_connect(&hdev, &err));
    setup_rings(&hdev);
    hdev.vqs[1].num = 0;
    n = f.be.log->len;
    ck_assert_msg(vhost_dev_start(&hdev, &err), "%s", err ? err->message : "");
    ck_assert_uint_eq(vhost_dev_started_rings(&hdev), 1);
    /* SET_FEATURES, SET_MEM_TABLE, ring 0's six, one enable. */
    ck_assert_uint_eq(f.be.log->len, n + 9);
    vhost_dev_stop(&hdev);
    /* One disable, one GET_VRING_BASE. */
    ck_assert_uint_eq(f.be.log->len, n + 11);
    ck_assert_uint_eq(vc_be_msg(&f.be, n + 10)->hdr.request, VHOST_USER_GET_VRING_BASE);

    /* A bad size is still refused. */
    hdev.vqs[1].num = 12;
    ck_assert(!vhost_dev_start(&hdev, &err));
    ck_assert(g_error_matches(err, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG));
    ck_assert_ptr_nonnull(strstr(err->message, "net0: ring 1: size 12"));
    g_clear_error(&err);
    /* Ring 0 was started and stopped again by the unwind. */
    ck_assert_uint_eq(vhost_dev_started_rings(&hdev), 0);
    ck_assert(!hdev.started);

    vhost_dev_cleanup(&hdev);
    vc_fixture_stop(&f);
    guest_memory_free(mem);
    ram_block_unref(rb);
}
END_TEST

void vhost_user_conn_dev_add_tests(TCase *tc)
{
    tcase_add_test(tc, test_vhost_dev_start_stop);
    tcase_add_test(tc, test_vhost_dev_bad_config_and_memory);
    tcase_add_test(tc, test_too_many_regions);
    tcase_add_test(tc, test_vhost_dev_unset_ring);
}
