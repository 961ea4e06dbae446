/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where a queue's ring lies in guest RAM (virtio_queue_get_ring_areas):
 * the three areas of a split ring and of a packed ring at their sizes in
 * the virtio spec, and nothing before the driver set the queue up. The
 * postcopy source sends these pages ahead of the switch, so a short area
 * would leave a page the devices touch first behind.
 */
#include <check.h>

#include "hw/virtio/virtio-int.h"
#include "util/vhost-user-proto.h"

static const VirtioDeviceClass klass = { .name = "test" };

static void init(VirtIODevice *vdev)
{
    ck_assert(virtio_device_init(vdev, "rings0", 2, &klass, NULL, 2, 256, 0, NULL));
}

START_TEST(test_unset)
{
    VirtIODevice vdev;
    uint64_t gpa[VIRTIO_QUEUE_RING_AREAS], len[VIRTIO_QUEUE_RING_AREAS];

    init(&vdev);
    ck_assert_uint_eq(virtio_queue_get_ring_areas(&vdev, 0, gpa, len), 0);
    /* A size without addresses, and a queue past the last. */
    ck_assert(virtio_queue_set_num(&vdev, 0, 128, NULL));
    ck_assert_uint_eq(virtio_queue_get_ring_areas(&vdev, 0, gpa, len), 0);
    ck_assert_uint_eq(virtio_queue_get_ring_areas(&vdev, 2, gpa, len), 0);
    virtio_device_cleanup(&vdev);
}
END_TEST

START_TEST(test_split)
{
    VirtIODevice vdev;
    uint64_t gpa[VIRTIO_QUEUE_RING_AREAS], len[VIRTIO_QUEUE_RING_AREAS];

    init(&vdev);
    ck_assert(virtio_queue_set_num(&vdev, 1, 128, NULL));
    ck_assert(virtio_queue_set_addr(&vdev, 1, 0x100000, 0x100800, 0x101000, NULL));
    ck_assert_uint_eq(virtio_queue_get_ring_areas(&vdev, 1, gpa, len), 3);
    ck_assert_uint_eq(gpa[0], 0x100000);
    ck_assert_uint_eq(len[0], 16 * 128);
    /* flags, idx, 128 entries, used_event: it reaches past one page at 256. */
    ck_assert_uint_eq(gpa[1], 0x100800);
    ck_assert_uint_eq(len[1], 2 + 2 + 2 * 128 + 2);
    /* flags, idx, 128 8-byte elements, avail_event: 1030 bytes. */
    ck_assert_uint_eq(gpa[2], 0x101000);
    ck_assert_uint_eq(len[2], 2 + 2 + 8 * 128 + 2);
    virtio_device_cleanup(&vdev);
}
END_TEST

START_TEST(test_packed)
{
    VirtIODevice vdev;
    uint64_t gpa[VIRTIO_QUEUE_RING_AREAS], len[VIRTIO_QUEUE_RING_AREAS];

    init(&vdev);
    ck_assert(virtio_set_guest_features(&vdev, 1ull << VIRTIO_F_RING_PACKED, NULL));
    ck_assert(virtio_queue_set_num(&vdev, 0, 256, NULL));
    ck_assert(virtio_queue_set_addr(&vdev, 0, 0x200000, 0x201000, 0x201004, NULL));
    ck_assert_uint_eq(virtio_queue_get_ring_areas(&vdev, 0, gpa, len), 3);
    ck_assert_uint_eq(len[0], 16 * 256);
    /* The event suppression structures: 4 bytes each. */
    ck_assert_uint_eq(gpa[1], 0x201000);
    ck_assert_uint_eq(len[1], 4);
    ck_assert_uint_eq(gpa[2], 0x201004);
    ck_assert_uint_eq(len[2], 4);
    virtio_device_cleanup(&vdev);
}
END_TEST

static Suite *rings_suite(void)
{
    Suite *s = suite_create("virtio-rings");
    TCase *tc = tcase_create("areas");

    tcase_add_test(tc, test_unset);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_packed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rings_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
