/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Device state transfer (DEVICE_STATE): SET_DEVICE_STATE_FD and
 * CHECK_DEVICE_STATE, driven in-process through the public API
 * (vhost_user_base_save_state / _load_state) the migration code will call.
 *
 * The front-end runs in this process on the static library (the VMM has
 * no migration command yet): a device over a chardev to the scriptable
 * test back-end, whose thread answers while the test thread plays the
 * migration thread. Then our reference back-end (REF_BACKEND), which
 * keeps real state: a blk workload by the VMM on back-end A, A's state
 * saved and loaded into a fresh back-end B, and both dump the same state.
 *
 * Every wait is bounded; a front-end that hung on a silent back-end
 * fails the test by its meson timeout.
 */
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-blk.h"
#include "hw/virtio/vhost-user-device.h"
#include "migration/format.h"
#include "migration/load.h"
#include "migration/ram-stream.h"
#include "migration/stream.h"
#include "real-proc.h"
#include "test-backend.h"
#include "util/vhost-user-error.h"

#define RAM_SIZE        (2u * 1024 * 1024)
#define READY_MS        10000

/* The front-end in this process: guest RAM, a chardev, one device. */
typedef struct Front {
    GuestMemory *mem;
    CharSocket *chr;
    VhostUserBase *vub;
    bool ready;
    bool disconnected;
} Front;

static void front_notify(VhostUserBase *vub, VhostUserBaseEvent ev, unsigned nrings,
                         const GError *err, void *opaque)
{
    Front *fr = opaque;

    if (ev == VHOST_USER_BASE_READY) {
        fr->ready = true;
    } else if (ev == VHOST_USER_BASE_DISCONNECTED) {
        fr->disconnected = true;
    }
}

/* Runs the default loop (the chardev's) until *flag or the deadline. */
static bool front_wait(bool *flag, unsigned timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!*flag && g_get_monotonic_time() < end) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    return *flag;
}

/* reconnect-ms of the next front_up's chardev (0: none). */
static int64_t front_reconnect_ms;

/* blk: the blk front-end (the reference back-end); else a generic device. */
static void front_up(Front *fr, const char *sock, bool blk)
{
    g_autoptr(GError) err = NULL;
    CharSocketOptions o = { .id = "c0", .path = sock, .reconnect_ms = front_reconnect_ms };
    RamBlock *rb;

    fr->mem = guest_memory_new();
    rb = ram_block_new_memfd("ram0", RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_true(guest_memory_add(fr->mem, 0, rb, 0, RAM_SIZE, &err));
    ram_block_unref(rb);
    fr->chr = char_socket_new(&o, NULL, &err);
    g_assert_no_error(err);
    if (blk) {
        VhostUserBlkParams p = {
            .id = "blk0", .chr = fr->chr, .mem = fr->mem, .num_queues = 1,
            .queue_size = 128,
        };

        fr->vub = vhost_user_blk_new(&p, &err);
    } else {
        VhostUserDeviceParams p = {
            .id = "vdev0", .chr = fr->chr, .mem = fr->mem, .virtio_id = 26,
            .num_vqs = 1, .vq_size = 64,
        };

        fr->vub = vhost_user_device_new(&p, &err);
    }
    g_assert_no_error(err);
    vhost_user_base_set_notify(fr->vub, front_notify, fr);
    g_assert_true(char_socket_open(fr->chr, &err));
    g_assert_no_error(err);
    if (!front_wait(&fr->ready, READY_MS)) {
        g_test_fail_printf("%s: not ready within %d ms", vhost_user_base_id(fr->vub),
                           READY_MS);
    }
}

static void front_down(Front *fr)
{
    vhost_user_base_free(fr->vub);
    char_socket_free(fr->chr);
    guest_memory_free(fr->mem);
    /* Whatever the loop still holds for the freed chardev goes now. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

/* ---- against the scriptable test back-end ---------------------------- */

typedef struct Fx {
    char *dir;
    TestBackend *tb;
    Front fr;
} Fx;

static void fx_start(Fx *f, bool offer)
{
    TbConfig cfg;

    tb_config_default(&cfg);
    if (offer) {
        cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_DEVICE_STATE;
    }
    f->dir = g_dir_make_tmp("devstate-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->tb = tb_new(f->dir, "be.sock", &cfg);
    front_up(&f->fr, tb_socket_path(f->tb), false);
}

static void fx_stop(Fx *f)
{
    front_down(&f->fr);
    tb_free(f->tb);
    g_rmdir(f->dir);
    g_free(f->dir);
}

static GBytes *pattern(size_t len, uint8_t seed)
{
    uint8_t *p = g_malloc(len);

    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
    }
    return g_bytes_new_take(p, len);
}

/* The one SET_DEVICE_STATE_FD of conn 1: direction, phase STOPPED, one fd. */
static void assert_set_msg(TestBackend *tb, uint32_t direction)
{
    TbMsg *m = tb_msg_find(tb, 1, VHOST_USER_SET_DEVICE_STATE_FD, -1);
    VhostUserTransferDeviceState t;

    g_assert_nonnull(m);
    g_assert_cmpuint(m->size, ==, sizeof(t));
    memcpy(&t, m->payload, sizeof(t));
    g_assert_cmpuint(t.direction, ==, direction);
    g_assert_cmpuint(t.phase, ==, 0);
    g_assert_cmpuint(m->nfds, ==, 1);
    tb_msg_free(m);
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_DEVICE_STATE_FD), ==, 1);
}

/* Save, then load, through the front-end's pipe or the back-end's own fd. */
static void test_roundtrip(gconstpointer data)
{
    TbStateMode mode = GPOINTER_TO_INT(data);
    /* Larger than a pipe's buffer: both sides must stream, not write at once. */
    g_autoptr(GBytes) state = pattern(300 * 1024, 1);
    g_autoptr(GBytes) back = pattern(200 * 1024, 2);
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GByteArray) loaded = NULL;
    g_autoptr(GError) err = NULL;
    gsize len;
    const void *p = g_bytes_get_data(state, &len);
    Fx f = { 0 };

    fx_start(&f, true);
    g_assert_true(vhost_user_base_has_device_state(f.fr.vub));
    tb_set_device_state(f.tb, mode, p, len, 0);

    g_assert_true(vhost_user_base_save_state(f.fr.vub, out, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(out->data, out->len, p, len);
    assert_set_msg(f.tb, 0);
    /* CHECK comes after the state went through, once. */
    g_assert_cmpint(tb_msg_pos(f.tb, 1, VHOST_USER_CHECK_DEVICE_STATE, -1), >,
                    tb_msg_pos(f.tb, 1, VHOST_USER_SET_DEVICE_STATE_FD, -1));
    g_assert_cmpuint(tb_msg_count(f.tb, 1, VHOST_USER_CHECK_DEVICE_STATE), ==, 1);

    p = g_bytes_get_data(back, &len);
    g_assert_true(vhost_user_base_load_state(f.fr.vub, p, len, &err));
    g_assert_no_error(err);
    loaded = tb_device_state_loaded(f.tb);
    g_assert_nonnull(loaded);
    g_assert_cmpmem(loaded->data, loaded->len, p, len);
    g_assert_cmpuint(tb_msg_count(f.tb, 1, VHOST_USER_SET_DEVICE_STATE_FD), ==, 2);
    g_assert_cmpuint(tb_msg_count(f.tb, 1, VHOST_USER_CHECK_DEVICE_STATE), ==, 2);
    g_assert_false(tb_conn_closed(f.tb, 1));
    tb_assert_no_violations(f.tb);
    fx_stop(&f);
}

/* CHECK_DEVICE_STATE != 0: an error naming the device and the message. */
static void test_check_fails(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    Fx f = { 0 };

    fx_start(&f, true);
    tb_set_device_state(f.tb, TB_STATE_PIPE, "abc", 3, 7);
    g_assert_false(vhost_user_base_save_state(f.fr.vub, out, &err));
    g_assert_error(err, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED);
    g_assert_nonnull(strstr(err->message, "vdev0: CHECK_DEVICE_STATE"));
    g_assert_nonnull(strstr(err->message, "result 7"));
    g_clear_error(&err);
    g_assert_false(vhost_user_base_load_state(f.fr.vub, "xyz", 3, &err));
    g_assert_error(err, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED);
    g_assert_nonnull(strstr(err->message, "vdev0: CHECK_DEVICE_STATE"));
    /* A failed transfer is an answer, not a broken connection. */
    g_assert_false(tb_conn_closed(f.tb, 1));
    tb_assert_no_violations(f.tb);
    fx_stop(&f);
}

/* A back-end that never closes its end: a timeout error naming the device. */
static void test_never_closes(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    gint64 start;
    Fx f = { 0 };

    fx_start(&f, true);
    vhost_user_base_set_state_limits(f.fr.vub, VHOST_USER_MAX_PAYLOAD_SIZE * 16, 300);
    tb_set_device_state(f.tb, TB_STATE_NEVER_CLOSE, "partial", 7, 0);
    start = g_get_monotonic_time();
    g_assert_false(vhost_user_base_save_state(f.fr.vub, out, &err));
    g_assert_error(err, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT);
    g_assert_nonnull(strstr(err->message, "vdev0: device state save"));
    g_assert_nonnull(strstr(err->message, "300 ms"));
    g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
    /* No CHECK after a transfer that never ended. */
    g_assert_cmpuint(tb_msg_count(f.tb, 1, VHOST_USER_CHECK_DEVICE_STATE), ==, 0);
    tb_assert_no_violations(f.tb);
    fx_stop(&f);
}

/* A state above the limit: an error naming the device and the limit. */
static void test_too_large(void)
{
    g_autoptr(GBytes) state = pattern(100000, 3);
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    gsize len;
    const void *p = g_bytes_get_data(state, &len);
    Fx f = { 0 };

    fx_start(&f, true);
    vhost_user_base_set_state_limits(f.fr.vub, 4096, 5000);
    tb_set_device_state(f.tb, TB_STATE_PIPE, p, len, 0);
    g_assert_false(vhost_user_base_save_state(f.fr.vub, out, &err));
    g_assert_error(err, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED);
    g_assert_nonnull(strstr(err->message, "vdev0: device state save"));
    g_assert_nonnull(strstr(err->message, "4096 bytes"));
    g_assert_cmpuint(out->len, <=, 4096);
    fx_stop(&f);
}

/* Without DEVICE_STATE: a clear error, nothing sent. */
static void test_not_negotiated(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    Fx f = { 0 };

    fx_start(&f, false);
    g_assert_false(vhost_user_base_has_device_state(f.fr.vub));
    g_assert_false(vhost_user_base_save_state(f.fr.vub, out, &err));
    g_assert_error(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH);
    g_assert_nonnull(strstr(err->message, "vdev0"));
    g_assert_nonnull(strstr(err->message, "DEVICE_STATE"));
    g_clear_error(&err);
    g_assert_false(vhost_user_base_load_state(f.fr.vub, "x", 1, &err));
    g_assert_error(err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH);
    g_assert_cmpuint(tb_msg_count(f.tb, 1, VHOST_USER_SET_DEVICE_STATE_FD), ==, 0);
    tb_assert_no_violations(f.tb);
    fx_stop(&f);
}

/*
 * The SET_DEVICE_STATE_FD reply is untrusted: an error code refuses the
 * transfer (connection kept); reserved bits, or a "fd attached" flag
 * without an fd, are protocol errors that drop the connection.
 */
static void test_bad_reply(void)
{
    static const struct {
        uint64_t value;
        int code;
        const char *text;
        bool drops;
    } cases[] = {
        { (1ull << 8) | 3, VHOST_USER_ERROR_BACKEND_FAILED, "refused the save transfer "
          "(error 3)", false },
        { (1ull << 8) | (1ull << 12), VHOST_USER_ERROR_INVALID_MESSAGE, "reserved bits",
          true },
        { 0, VHOST_USER_ERROR_INVALID_MESSAGE, "no-fd flag is clear but no fd", true },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) out = g_byte_array_new();
        g_autoptr(GError) err = NULL;
        Fx f = { 0 };

        fx_start(&f, true);
        tb_set_device_state(f.tb, TB_STATE_PIPE, "abc", 3, 0);
        tb_inject(f.tb, 1, VHOST_USER_SET_DEVICE_STATE_FD, TB_FAULT_VALUE, cases[i].value);
        g_assert_false(vhost_user_base_save_state(f.fr.vub, out, &err));
        g_assert_error(err, VHOST_USER_ERROR, cases[i].code);
        g_assert_nonnull(strstr(err->message, "vdev0: SET_DEVICE_STATE_FD"));
        g_assert_nonnull(strstr(err->message, cases[i].text));
        g_assert_cmpuint(tb_msg_count(f.tb, 1, VHOST_USER_CHECK_DEVICE_STATE), ==, 0);
        if (cases[i].drops) {
            tb_wait_closed(f.tb, 1, READY_MS);
        } else {
            g_assert_false(tb_conn_closed(f.tb, 1));
        }
        fx_stop(&f);
    }
}


/* ---- pause / resume and the device's migratable state ----------------- */

#define Q_DESC  0x10000ull
#define Q_AVAIL 0x11000ull
#define Q_USED  0x12000ull

/* Plays the driver's bring-up of the one queue: what the source had. */
static void drive_up(VhostUserBase *vub)
{
    VirtIODevice *vdev = vhost_user_base_vdev(vub);
    g_autoptr(GError) err = NULL;
    uint64_t f = virtio_get_host_features(vdev) & (1ull << VIRTIO_F_VERSION_1);

    g_assert_true(virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                                    VIRTIO_CONFIG_S_DRIVER, &err));
    g_assert_true(virtio_set_guest_features(vdev, f, &err));
    g_assert_true(virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                                    VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
                                    &err));
    g_assert_true(virtio_queue_set_num(vdev, 0, 64, &err));
    g_assert_true(virtio_queue_set_addr(vdev, 0, Q_DESC, Q_AVAIL, Q_USED, &err));
    g_assert_true(virtio_queue_set_enabled(vdev, 0, true, &err));
    g_assert_true(virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                                    VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                                    VIRTIO_CONFIG_S_DRIVER_OK, &err));
    g_assert_no_error(err);
}

/* The base of the n-th SET_VRING_BASE (1-based) of conn 1, or -1. */
static int64_t sent_base(TestBackend *tb)
{
    TbMsg *m = tb_msg_find(tb, 1, VHOST_USER_SET_VRING_BASE, 0);
    struct vhost_vring_state st;
    int64_t v = -1;

    if (m && m->size >= sizeof(st)) {
        memcpy(&st, m->payload, sizeof(st));
        v = st.num;
    }
    tb_msg_free(m);
    return v;
}

/*
 * Pause stops the ring without a reset (status kept, GET_VRING_BASE),
 * resume restarts it from the back-end's base; the saved blob brings a
 * fresh device on another back-end to the same point, starting its ring
 * only at resume, from that base, at the same addresses.
 */
static void test_pause_save_load(void)
{
    g_autoptr(GByteArray) blob = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    VirtIODevice *vb;
    Fx a = { 0 }, b = { 0 };
    TbMsg *m;
    struct vhost_vring_addr addr;

    fx_start(&a, false);
    tb_set_vring_base_reply(a.tb, 0, 17);
    drive_up(a.fr.vub);
    tb_wait_rings_started(a.tb, 1, 1, READY_MS);

    g_assert_true(vhost_user_base_pause(a.fr.vub, &err));
    g_assert_no_error(err);
    g_assert_true(tb_ring_stopped(a.tb, 1, 0));
    g_assert_true(vhost_user_base_is_paused(a.fr.vub));
    g_assert_cmpuint(virtio_get_status(vhost_user_base_vdev(a.fr.vub)) &
                     VIRTIO_CONFIG_S_DRIVER_OK, !=, 0);
    /* Not a reset: no RESET_DEVICE / SET_STATUS 0 went out. */
    g_assert_cmpuint(tb_msg_count(a.tb, 1, VHOST_USER_RESET_DEVICE), ==, 0);

    g_assert_true(vhost_user_base_resume(a.fr.vub, &err));
    g_assert_no_error(err);
    tb_wait_msg(a.tb, 1, VHOST_USER_SET_VRING_BASE, 2, READY_MS);
    g_assert_cmpuint(tb_msg_count(a.tb, 1, VHOST_USER_SET_VRING_KICK), ==, 2);

    g_assert_true(vhost_user_base_pause(a.fr.vub, &err));
    g_assert_true(vhost_user_base_save(a.fr.vub, blob, &err));
    g_assert_no_error(err);

    fx_start(&b, false);
    vb = vhost_user_base_vdev(b.fr.vub);
    g_assert_true(vhost_user_base_load(b.fr.vub, blob->data, blob->len, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(virtio_get_status(vb), ==, virtio_get_status(vhost_user_base_vdev(a.fr.vub)));
    g_assert_true(vhost_user_base_is_paused(b.fr.vub));
    g_assert_cmpuint(tb_msg_count(b.tb, 1, VHOST_USER_SET_VRING_KICK), ==, 0);

    g_assert_true(vhost_user_base_resume(b.fr.vub, &err));
    g_assert_no_error(err);
    tb_wait_rings_started(b.tb, 1, 1, READY_MS);
    g_assert_cmpint(sent_base(b.tb), ==, 17);
    m = tb_msg_find(b.tb, 1, VHOST_USER_SET_VRING_ADDR, 0);
    g_assert_nonnull(m);
    g_assert_cmpuint(m->size, >=, sizeof(addr));
    memcpy(&addr, m->payload, sizeof(addr));
    tb_msg_free(m);
    /* The back-end sees host addresses of the same GPAs: same offsets apart. */
    g_assert_cmpuint(addr.avail_user_addr - addr.desc_user_addr, ==, Q_AVAIL - Q_DESC);
    g_assert_cmpuint(addr.used_user_addr - addr.desc_user_addr, ==, Q_USED - Q_DESC);
    tb_assert_no_violations(a.tb);
    tb_assert_no_violations(b.tb);
    fx_stop(&b);
    fx_stop(&a);
}


/*
 * Stop-and-copy through the library alone, as the VMM's migration thread
 * does it: the source device paused, its RAM and its device section sent
 * over a socket (pages + blob with the back-end's DEVICE_STATE), the
 * destination loads both, its back-end gets the state, and resume starts
 * its ring at the source's base. RAM arrives byte for byte.
 */
typedef struct SaveJob {
    MigStream *s;
    GuestMemory *mem;
    GByteArray *blob;
    GError *err;
} SaveJob;

static gpointer save_thread(gpointer opaque)
{
    SaveJob *j = opaque;
    uint64_t sent = 0;

    if (mig_save_header(j->s, &j->err) && mig_ram_save_setup(j->s, j->mem, &j->err) &&
        mig_ram_save_dirty(j->s, j->mem, NULL, 0, &sent, &j->err) &&
        mig_save_device(j->s, "vdev0", j->blob->data, j->blob->len, &j->err)) {
        mig_save_end(j->s, &j->err);
    }
    return NULL;
}

static bool load_device(const char *name, const void *data, size_t len, void *opaque,
                        GError **errp)
{
    VhostUserBase *vub = opaque;

    if (strcmp(name, vhost_user_base_id(vub))) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "no device '%s' here", name);
        return false;
    }
    return vhost_user_base_load(vub, data, len, errp);
}

static void test_stop_and_copy(void)
{
    g_autoptr(GByteArray) blob = g_byte_array_new();
    g_autoptr(GByteArray) loaded = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *src = g_malloc(RAM_SIZE);
    g_autofree uint8_t *dst = g_malloc(RAM_SIZE);
    SaveJob job = { 0 };
    GThread *th;
    MigStream *rs;
    Fx a = { 0 }, b = { 0 };
    int sv[2];

    fx_start(&a, true);
    tb_set_vring_base_reply(a.tb, 0, 5);
    tb_set_device_state(a.tb, TB_STATE_PIPE, "backend-state", 13, 0);
    drive_up(a.fr.vub);
    tb_wait_rings_started(a.tb, 1, 1, READY_MS);
    for (size_t i = 0; i < RAM_SIZE; i += 4096) {
        /* Data pages and zero pages both. */
        memset(src + i, (i / 4096) % 3 ? (int)(i / 4096) : 0, 4096);
    }
    g_assert_true(guest_memory_write(a.fr.mem, 0, src, RAM_SIZE));
    g_assert_true(vhost_user_base_pause(a.fr.vub, &err));
    g_assert_true(vhost_user_base_save(a.fr.vub, blob, &err));
    g_assert_no_error(err);

    fx_start(&b, true);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    job = (SaveJob){ .s = mig_stream_new(sv[0]), .mem = a.fr.mem, .blob = blob };
    rs = mig_stream_new(sv[1]);
    th = g_thread_new("save", save_thread, &job);
    g_assert_true(mig_load(rs, b.fr.mem, load_device, b.fr.vub, &err));
    g_assert_no_error(err);
    g_thread_join(th);
    g_assert_no_error(job.err);
    mig_stream_free(job.s);
    mig_stream_free(rs);

    g_assert_true(guest_memory_read(b.fr.mem, 0, dst, RAM_SIZE));
    g_assert_cmpmem(dst, RAM_SIZE, src, RAM_SIZE);
    loaded = tb_device_state_loaded(b.tb);
    g_assert_nonnull(loaded);
    g_assert_cmpmem(loaded->data, loaded->len, "backend-state", 13);
    g_assert_true(vhost_user_base_resume(b.fr.vub, &err));
    g_assert_no_error(err);
    tb_wait_rings_started(b.tb, 1, 1, READY_MS);
    g_assert_cmpint(sent_base(b.tb), ==, 5);
    tb_assert_no_violations(a.tb);
    tb_assert_no_violations(b.tb);
    fx_stop(&b);
    fx_stop(&a);
}


/* A reconnect while paused does not restart the rings: only resume does. */
static void test_pause_reconnect(void)
{
    g_autoptr(GError) err = NULL;
    Fx a = { 0 };

    front_reconnect_ms = 50;
    fx_start(&a, false);
    front_reconnect_ms = 0;
    drive_up(a.fr.vub);
    tb_wait_rings_started(a.tb, 1, 1, READY_MS);
    g_assert_true(vhost_user_base_pause(a.fr.vub, &err));
    a.fr.ready = false;
    char_socket_disconnect(a.fr.chr, "test: back-end restart");
    /* Back with the rings still stopped: the device says READY, not STARTED. */
    g_assert_true(front_wait(&a.fr.ready, READY_MS));
    tb_wait_conn(a.tb, 2, READY_MS);
    g_assert_cmpuint(tb_rings_started(a.tb, 2), ==, 0);
    g_assert_true(vhost_user_base_is_paused(a.fr.vub));
    g_assert_true(vhost_user_base_resume(a.fr.vub, &err));
    g_assert_no_error(err);
    tb_wait_rings_started(a.tb, 2, 1, READY_MS);
    fx_stop(&a);
}

/* Blob offsets (see vhost-user-base-migrate.c): header 24, config 0, ring 32. */
#define OFF_NVQS        6
#define OFF_STATUS      16
#define OFF_RING_NUM    24
#define OFF_RING_DESC   32

/* A blob from the stream is untrusted: each bad field is refused, nothing changes. */
static void test_load_untrusted(void)
{
    static const struct {
        size_t off;
        unsigned size;          /* 0: truncate at off; 9: append a byte */
        uint64_t value;
        const char *text;
    } cases[] = {
        { 0, 4, 0x12345678, "magic" },
        { OFF_NVQS, 2, 2, "2 queues on the source, 1 here" },
        { OFF_STATUS, 1, 0x47, "status 0x47" },
        { OFF_RING_NUM, 2, 4096, "ring 0: size 4096" },
        { OFF_RING_NUM, 2, 48, "ring 0: size 48" },
        { OFF_RING_DESC, 8, RAM_SIZE - 16, "not all in guest RAM" },
        { 30, 0, 0, "truncated at ring" },
        { 0, 9, 0, "1 bytes after the end" },
    };
    g_autoptr(GByteArray) blob = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    Fx a = { 0 }, b = { 0 };

    fx_start(&a, false);
    drive_up(a.fr.vub);
    tb_wait_rings_started(a.tb, 1, 1, READY_MS);
    g_assert_true(vhost_user_base_pause(a.fr.vub, &err));
    g_assert_true(vhost_user_base_save(a.fr.vub, blob, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(blob->len, ==, 24 + 32 + 4);
    fx_start(&b, false);

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) bad = g_byte_array_new();
        size_t len;

        g_byte_array_append(bad, blob->data, blob->len);
        len = bad->len;
        if (cases[i].size == 0) {
            len = cases[i].off;
        } else if (cases[i].size == 9) {
            g_byte_array_append(bad, (const guint8 *)"x", 1);
            len = bad->len;
        } else {
            uint64_t v = GUINT64_TO_LE(cases[i].value);

            memcpy(bad->data + cases[i].off, &v, cases[i].size);
        }
        g_assert_false(vhost_user_base_load(b.fr.vub, bad->data, len, &err));
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].text) || !strstr(err->message, "vdev0")) {
            g_test_fail_printf("case %zu: '%s' does not say '%s'", i, err->message,
                               cases[i].text);
        }
        g_clear_error(&err);
        g_assert_cmpuint(virtio_get_status(vhost_user_base_vdev(b.fr.vub)), ==, 0);
    }
    /* The intact blob still loads after all that. */
    g_assert_true(vhost_user_base_load(b.fr.vub, blob->data, blob->len, &err));
    g_assert_no_error(err);
    fx_stop(&b);
    fx_stop(&a);
}

/* ---- with our reference back-end -------------------------------------- */

/* A file disk: with the write cache off its writes are synced (and counted). */
static Proc *start_ref_blk(Fixture *f, const char *sock, const char *dump)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *s = g_strdup_printf("--socket-path=%s", sock);
    g_autofree char *d = g_strdup_printf("--state-dump=%s", dump);
    g_autofree char *file = g_strdup_printf("--blk-file=%s.img", sock);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    Proc *p;

    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return NULL;
    }
    g_ptr_array_add(argv, (char *)be);
    g_ptr_array_add(argv, s);
    g_ptr_array_add(argv, "--type=blk");
    g_ptr_array_add(argv, file);
    g_ptr_array_add(argv, "--blk-size=16M");
    g_ptr_array_add(argv, d);
    p = proc_spawn(f, "backend", argv, false, NULL);
    return p && wait_socket(p, sock) ? p : NULL;
}

/* Stops p (SIGTERM: it writes its dump at exit) and returns the dump. */
static char *stop_and_dump(Proc *p, const char *dump)
{
    char *s = NULL;

    proc_stop(p);
    if (!g_file_get_contents(dump, &s, NULL, NULL)) {
        g_autofree char *log = proc_log(p);

        g_test_fail_printf("%s: no state dump at exit:\n%s", p->name, log);
    }
    return s;
}

static void test_ref_blk(Fixture *f, gconstpointer data)
{
    g_autofree char *sock_a = g_build_filename(f->dir, "a.sock", NULL);
    g_autofree char *sock_b = g_build_filename(f->dir, "b.sock", NULL);
    g_autofree char *dump_a = g_build_filename(f->dir, "a.state", NULL);
    g_autofree char *dump_b = g_build_filename(f->dir, "b.state", NULL);
    g_autofree char *chardev = g_strdup_printf("socket,id=c0,path=%s", sock_a);
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    g_autoptr(GByteArray) state = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL;
    g_autofree char *a = NULL;
    g_autofree char *b = NULL;
    Front fr = { 0 };
    Proc *pa, *pb;
    int code = -1;

    if (!(pa = start_ref_blk(f, sock_a, dump_a))) {
        return;
    }
    /* The guest writes with the write cache off: state A must carry both. */
    g_ptr_array_add(args, "-m");
    g_ptr_array_add(args, "64M");
    g_ptr_array_add(args, "-chardev");
    g_ptr_array_add(args, chardev);
    g_ptr_array_add(args, "-device");
    g_ptr_array_add(args, "vhost-user-blk-pci,chardev=c0");
    g_ptr_array_add(args, "-workload");
    g_ptr_array_add(args, "blk0:rw=randwrite,bs=4k,iodepth=8,ops=3000,size=8M,wce=0");
    g_ptr_array_add(args, "-summary");
    g_ptr_array_add(args, "json");
    out = run_vmm(f, "vmm", args, &code);
    if (!out || code != 0) {
        return;
    }

    /* The VMM stopped the rings and left; the source saves A's state. */
    front_up(&fr, sock_a, true);
    g_assert_true(vhost_user_base_has_device_state(fr.vub));
    g_assert_true(vhost_user_base_save_state(fr.vub, state, &err));
    g_assert_no_error(err);
    front_down(&fr);

    /* The destination loads it into a fresh back-end. */
    if (!(pb = start_ref_blk(f, sock_b, dump_b))) {
        return;
    }
    memset(&fr, 0, sizeof(fr));
    front_up(&fr, sock_b, true);
    g_assert_true(vhost_user_base_load_state(fr.vub, state->data, state->len, &err));
    g_assert_no_error(err);
    /* A state that is not the device's is refused by CHECK_DEVICE_STATE. */
    state->data[0] ^= 0xff;
    g_assert_false(vhost_user_base_load_state(fr.vub, state->data, state->len, &err));
    g_assert_error(err, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED);
    g_assert_nonnull(strstr(err->message, "blk0: CHECK_DEVICE_STATE"));
    front_down(&fr);

    a = stop_and_dump(pa, dump_a);
    b = stop_and_dump(pb, dump_b);
    if (!a || !b) {
        return;
    }
    g_test_message("state A:\n%s", a);
    /* The workload's writes (plus the driver's reads) and the cache mode. */
    g_assert_null(strstr(a, "ring 0 completed 0\n"));
    g_assert_nonnull(strstr(a, "write_through 1\n"));
    g_assert_null(strstr(a, "synced 0\n"));
    g_assert_cmpstr(a, ==, b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* The test back-end's writer sees EPIPE when the front-end gives up. */
    signal(SIGPIPE, SIG_IGN);
    g_test_add_data_func("/device-state/roundtrip/pipe", GINT_TO_POINTER(TB_STATE_PIPE),
                         test_roundtrip);
    g_test_add_data_func("/device-state/roundtrip/backend-fd",
                         GINT_TO_POINTER(TB_STATE_OWN_FD), test_roundtrip);
    g_test_add_func("/device-state/check-fails", test_check_fails);
    g_test_add_func("/device-state/never-closes", test_never_closes);
    g_test_add_func("/device-state/too-large", test_too_large);
    g_test_add_func("/device-state/not-negotiated", test_not_negotiated);
    g_test_add_func("/device-state/bad-reply", test_bad_reply);
    g_test_add_func("/device-state/pause-save-load", test_pause_save_load);
    g_test_add_func("/device-state/load-untrusted", test_load_untrusted);
    g_test_add_func("/device-state/stop-and-copy", test_stop_and_copy);
    g_test_add_func("/device-state/pause-reconnect", test_pause_reconnect);
    g_test_add("/device-state/ref-blk", Fixture, NULL, fixture_setup, test_ref_blk,
               fixture_teardown);
    return g_test_run();
}
