/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The postcopy protocol step (hw/virtio/vhost-user-postcopy.c) against a
 * real back-end, qemu-storage-daemon: POSTCOPY_ADVISE hands over a real
 * userfaultfd, LISTEN, a SET_MEM_TABLE answered with the daemon's own
 * addresses (checked, kept, acknowledged) and END round-trip, and the
 * connection is still good after. The front-end runs in this process on
 * the static library; PAGEFAULT is offered only here (the VMM does not
 * drive postcopy yet) and memory slots are not, so the table goes whole.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-base-postcopy.h"
#include "hw/virtio/vhost-user-blk.h"
#include "hw/virtio/vhost-user-mem.h"
#include "real-proc.h"

#define RAM_SIZE        (2u * 1024 * 1024)
#define READY_MS        10000

static void on_notify(VhostUserBase *vub, VhostUserBaseEvent ev, unsigned nrings,
                      const GError *err, void *opaque)
{
    if (ev == VHOST_USER_BASE_READY) {
        *(bool *)opaque = true;
    }
}

static void test_qsd(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = g_build_filename(f->dir, "qsd.sock", NULL);
    g_autofree char *img = g_build_filename(f->dir, "disk.img", NULL);
    g_autoptr(GError) err = NULL;
    CharSocketOptions o = { .id = "c0", .path = sock };
    GuestMemory *mem;
    CharSocket *chr;
    VhostUserBase *vub;
    RamBlock *rb;
    bool ready = false;
    gint64 end;
    uint64_t gpa = 1;
    unsigned region = 9;
    int fd;

    fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 1 << 20), ==, 0);
    close(fd);
    if (!proc_start_qsd(f, img, sock, 1)) {
        return;
    }
    mem = guest_memory_new();
    rb = ram_block_new_memfd("ram0", RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_true(guest_memory_add(mem, 0, rb, 0, RAM_SIZE, &err));
    ram_block_unref(rb);
    chr = char_socket_new(&o, NULL, &err);
    g_assert_no_error(err);
    {
        VhostUserBlkParams p = {
            .id = "blk0", .chr = chr, .mem = mem, .num_queues = 1, .queue_size = 128,
        };

        vub = vhost_user_blk_new(&p, &err);
        g_assert_no_error(err);
    }
    vub->user->supported_protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_PAGEFAULT;
    vub->user->supported_protocol_features &=
        ~(1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
    vhost_user_base_set_notify(vub, on_notify, &ready);
    g_assert_true(char_socket_open(chr, &err));
    end = g_get_monotonic_time() + READY_MS * 1000;
    while (!ready && g_get_monotonic_time() < end) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    g_assert_true(ready);
    g_assert_true(vhost_user_has_protocol_feature(vub->user, VHOST_USER_PROTOCOL_F_PAGEFAULT));

    g_assert_true(vhost_user_base_postcopy_advise(vub, &err));
    g_assert_no_error(err);
    g_assert_cmpint(vhost_user_base_postcopy_ufd(vub), >=, 0);
    g_assert_true(vhost_user_base_postcopy_listen(vub, &err));
    g_assert_no_error(err);
    g_assert_true(vhost_user_mem_update(vub->user, "blk0", 0, mem, &err));
    g_assert_no_error(err);
    /* The table was answered and acknowledged; 0 is no address the daemon reported. */
    g_assert_false(vhost_user_base_postcopy_translate(vub, 0, &gpa, &region));
    g_assert_true(vhost_user_base_postcopy_end(vub, &err));
    g_assert_no_error(err);
    g_assert_cmpint(vhost_user_base_postcopy_ufd(vub), ==, -1);
    g_assert_true(vhost_user_is_usable(vub->user));

    vhost_user_base_free(vub);
    char_socket_free(chr);
    guest_memory_free(mem);
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/postcopy/qsd", Fixture, NULL, fixture_setup, test_qsd, fixture_teardown);
    return g_test_run();
}
