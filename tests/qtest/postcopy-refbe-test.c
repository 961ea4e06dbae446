/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy (PAGEFAULT) against our reference back-end, with the
 * front-end library in this process:
 *  - protocol: ADVISE hands over a real userfaultfd, the listening memory
 *    table comes back with the back-end's own mapping of our memfd (read
 *    from its /proc/PID/maps) and passes the front-end's checks, END
 *    answers 0;
 *  - no-postcopy: with --no-postcopy PAGEFAULT is not offered and ADVISE
 *    cannot be sent;
 *  - listen-faults: --postcopy-touch=listen, and the test plays the
 *    destination's fault service: the memfd has holes where pages "have
 *    not arrived", the back-end's touches fault on its ufd, the test
 *    translates each address, writes the page into the memfd and wakes
 *    the ufd; the back-end's checksum of what it read must be that of the
 *    placed content;
 *  - reply-faults: --postcopy-touch=reply, the back-end faults on a
 *    ring's pages while the front-end waits for SET_VRING_ADDR's ack; a
 *    fault service thread has to translate while that request is in
 *    flight;
 *  - hangup: the same touch, but the front-end goes away instead of
 *    serving the page: the back-end must not stay blocked (its guard
 *    unregisters), it releases the connection and accepts the next.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-socket-int.h"
#include "hw/virtio/vhost-user-base-int.h"
#include "hw/virtio/vhost-user-base-postcopy.h"
#include "hw/virtio/vhost-user-blk.h"
#include "hw/virtio/vhost-user-mem.h"
#include "real-proc.h"

#define RAM_SIZE        (2u * 1024 * 1024)
#define PAGE            4096u
#define NPAGES          (RAM_SIZE / PAGE)
#define READY_MS        10000
#define FAULT_MS        10000

/* The content of page k: what the source sent (orig) and what arrives late (placed). */
static uint8_t orig_byte(unsigned k)
{
    return (uint8_t)(k * 37 + 11);
}

static uint8_t placed_byte(unsigned k)
{
    return orig_byte(k) ^ 0x5a;
}

typedef struct Rig {
    Fixture *f;
    Proc *be;
    GuestMemory *mem;
    const RamBlock *rb;         /* the memory's only block */
    CharSocket *chr;
    VhostUserBase *vub;
} Rig;

static void on_notify(VhostUserBase *vub, VhostUserBaseEvent ev, unsigned nrings,
                      const GError *err, void *opaque)
{
    if (ev == VHOST_USER_BASE_READY) {
        *(bool *)opaque = true;
    }
}

/*
 * Our back-end (blk) with the extra option (or none), guest RAM of one
 * memfd filled with orig_byte() except the pages in holes, and a
 * vhost-user-blk device connected to it and negotiated.
 */
static bool rig_start(Rig *r, Fixture *f, const char *extra, const unsigned *holes,
                      unsigned nholes)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *sock = g_build_filename(f->dir, "be.sock", NULL);
    g_autofree char *sock_opt = g_strdup_printf("--socket-path=%s", sock);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    CharSocketOptions o = { .id = "c0", .path = sock };
    RamBlock *rb;
    bool ready = false;
    gint64 end;

    memset(r, 0, sizeof(*r));
    r->f = f;
    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return false;
    }
    g_ptr_array_add(argv, (char *)be);
    g_ptr_array_add(argv, sock_opt);
    g_ptr_array_add(argv, "--type=blk");
    g_ptr_array_add(argv, "--blk-size=1M");
    if (extra) {
        g_ptr_array_add(argv, (char *)extra);
    }
    r->be = proc_spawn(f, "refbe", argv, false, NULL);
    if (!r->be || !wait_socket(r->be, sock)) {
        return false;
    }

    r->mem = guest_memory_new();
    rb = ram_block_new_memfd("ram0", RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_true(guest_memory_add(r->mem, 0, rb, 0, RAM_SIZE, &err));
    ram_block_unref(rb);
    r->rb = guest_memory_region(r->mem, 0)->block;
    for (unsigned k = 0; k < NPAGES; k++) {
        memset((uint8_t *)r->rb->host + (size_t)k * PAGE, orig_byte(k), PAGE);
    }
    /* Pages the destination "has not received yet": nothing in the file. */
    for (unsigned i = 0; i < nholes; i++) {
        g_assert_cmpint(fallocate(r->rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  (off_t)holes[i] * PAGE, PAGE), ==, 0);
    }

    r->chr = char_socket_new(&o, NULL, &err);
    g_assert_no_error(err);
    {
        VhostUserBlkParams p = {
            .id = "blk0", .chr = r->chr, .mem = r->mem, .num_queues = 1, .queue_size = 256,
        };

        r->vub = vhost_user_blk_new(&p, &err);
        g_assert_no_error(err);
    }
    vhost_user_base_set_notify(r->vub, on_notify, &ready);
    g_assert_true(char_socket_open(r->chr, &err));
    g_assert_no_error(err);
    end = g_get_monotonic_time() + READY_MS * 1000;
    while (!ready && g_get_monotonic_time() < end) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    if (!ready) {
        g_autofree char *log = proc_log(r->be);

        g_test_fail_printf("the device did not negotiate within %d ms; back-end log:\n%s",
                           READY_MS, log);
        return false;
    }
    return true;
}

static void rig_free(Rig *r)
{
    if (r->vub) {
        vhost_user_base_free(r->vub);
    }
    if (r->chr) {
        char_socket_free(r->chr);
    }
    if (r->mem) {
        guest_memory_free(r->mem);
    }
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

/* ADVISE, LISTEN and the listening memory table, each checked. */
static void rig_listen(Rig *r)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(vhost_user_has_protocol_feature(r->vub->user,
                                                  VHOST_USER_PROTOCOL_F_PAGEFAULT));
    g_assert_true(vhost_user_base_postcopy_advise(r->vub, &err));
    g_assert_no_error(err);
    g_assert_cmpint(vhost_user_base_postcopy_ufd(r->vub), >=, 0);
    g_assert_true(vhost_user_base_postcopy_listen(r->vub, &err));
    g_assert_no_error(err);
    g_assert_true(vhost_user_mem_update(r->vub->user, "blk0", 0, r->mem, &err));
    g_assert_no_error(err);
}

static void rig_end(Rig *r)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(vhost_user_base_postcopy_end(r->vub, &err));
    g_assert_no_error(err);
    g_assert_cmpint(vhost_user_base_postcopy_ufd(r->vub), ==, -1);
    g_assert_true(vhost_user_is_usable(r->vub->user));
}

/* Where the back-end process mapped our memfd (its /proc/PID/maps), or 0. */
static uint64_t backend_mapping(Rig *r)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps", (int)r->be->pid);
    g_autofree char *maps = NULL;
    g_auto(GStrv) lines = NULL;
    uint64_t found = 0;

    g_assert_true(g_file_get_contents(path, &maps, NULL, NULL));
    lines = g_strsplit(maps, "\n", -1);
    for (char **l = lines; *l; l++) {
        unsigned long long start, end;

        if (strstr(*l, "/memfd:ram0") &&
            sscanf(*l, "%llx-%llx", &start, &end) == 2 && end - start == RAM_SIZE) {
            g_assert_cmpuint(found, ==, 0);     /* exactly one mapping */
            found = start;
        }
    }
    return found;
}

static void test_protocol(Fixture *f, gconstpointer data)
{
    Rig r;
    uint64_t base, gpa = 0;
    unsigned region = 9;

    if (!rig_start(&r, f, NULL, NULL, 0)) {
        rig_free(&r);
        return;
    }
    rig_listen(&r);
    /* The table named the back-end's own mapping: its faults translate. */
    base = backend_mapping(&r);
    g_assert_cmpuint(base, !=, 0);
    g_assert_true(vhost_user_base_postcopy_translate(r.vub, base, &gpa, &region));
    g_assert_cmpuint(gpa, ==, 0);
    g_assert_cmpuint(region, ==, 0);
    g_assert_true(vhost_user_base_postcopy_translate(r.vub, base + RAM_SIZE - 1, &gpa,
                                                     &region));
    g_assert_cmpuint(gpa, ==, RAM_SIZE - 1);
    g_assert_false(vhost_user_base_postcopy_translate(r.vub, base + RAM_SIZE, &gpa,
                                                      &region));
    g_assert_false(vhost_user_base_postcopy_translate(r.vub, (uintptr_t)r.rb->host, &gpa,
                                                      &region));
    rig_end(&r);
    g_assert_true(wait_log(r.be, "postcopy ended", 1, READY_MS));
    rig_free(&r);
}

static void test_no_postcopy(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    Rig r;

    if (!rig_start(&r, f, "--no-postcopy", NULL, 0)) {
        rig_free(&r);
        return;
    }
    g_assert_false(vhost_user_has_protocol_feature(r.vub->user,
                                                   VHOST_USER_PROTOCOL_F_PAGEFAULT));
    g_assert_false(vhost_user_base_postcopy_advise(r.vub, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "PAGEFAULT"));
    g_assert_cmpint(vhost_user_base_postcopy_ufd(r.vub), ==, -1);
    /* Refused here, never sent: the connection is fine. */
    g_assert_true(vhost_user_is_usable(r.vub->user));
    rig_free(&r);
}

/*
 * The destination's part for one back-end fault: the page content goes
 * into the memfd (the back-end is blocked, and a page written to shmem is
 * present from then on), then the back-end's ufd is woken at its address.
 * Returns the page served, or -1 when none came before the deadline.
 */
static int serve_one_fault(VhostUserBase *vub, gint64 deadline, const RamBlock *rb,
                           GString *why)
{
    int ufd = vhost_user_base_postcopy_ufd(vub);
    struct uffd_msg m;
    struct uffdio_range wake;
    uint8_t page[PAGE];
    uint64_t gpa;
    unsigned region;
    ssize_t n;

    for (;;) {
        struct pollfd p = { .fd = ufd, .events = POLLIN };
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;

        if (left <= 0) {
            g_string_append(why, "no fault on the back-end's ufd before the deadline");
            return -1;
        }
        if (poll(&p, 1, (int)MIN(left, 100)) == 1) {
            n = read(ufd, &m, sizeof(m));
            if (n == sizeof(m)) {
                break;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                g_string_append_printf(why, "read of the ufd: %s", g_strerror(errno));
                return -1;
            }
        }
    }
    if (m.event != UFFD_EVENT_PAGEFAULT) {
        g_string_append_printf(why, "ufd event 0x%x, not a page fault", m.event);
        return -1;
    }
    if (!vhost_user_base_postcopy_translate(vub, m.arg.pagefault.address, &gpa, &region) ||
        gpa >= RAM_SIZE) {
        g_string_append_printf(why, "fault at 0x%llx does not translate into guest RAM",
                               (unsigned long long)m.arg.pagefault.address);
        return -1;
    }
    memset(page, placed_byte(gpa / PAGE), sizeof(page));
    if (pwrite(rb->fd, page, PAGE, (off_t)(gpa & ~(uint64_t)(PAGE - 1))) != PAGE) {
        g_string_append_printf(why, "pwrite: %s", g_strerror(errno));
        return -1;
    }
    wake.start = m.arg.pagefault.address & ~(uint64_t)(PAGE - 1);
    wake.len = PAGE;
    if (ioctl(ufd, UFFDIO_WAKE, &wake) < 0) {
        g_string_append_printf(why, "UFFDIO_WAKE: %s", g_strerror(errno));
        return -1;
    }
    return (int)(gpa / PAGE);
}

/* The number after key in the last line of log containing line_tag. */
static bool log_field(const char *log, const char *line_tag, const char *key, uint64_t *val)
{
    const char *line = NULL, *p = log, *k;

    while ((p = strstr(p, line_tag))) {
        line = p++;
    }
    if (!line || !(k = strstr(line, key))) {
        return false;
    }
    *val = g_ascii_strtoull(k + strlen(key), NULL, 0);
    return true;
}

static void test_listen_faults(Fixture *f, gconstpointer data)
{
    static const unsigned holes[] = { 1, 77, 300, NPAGES - 1 };
    g_autoptr(GString) why = g_string_new(NULL);
    g_autoptr(GHashTable) served = g_hash_table_new(NULL, NULL);
    g_autofree char *log = NULL;
    gint64 deadline;
    uint64_t faults = 0, pages = 0, fnv = 0, want = 0xcbf29ce484222325ull;
    Rig r;

    if (!rig_start(&r, f, "--postcopy-touch=listen", holes, G_N_ELEMENTS(holes))) {
        rig_free(&r);
        return;
    }
    rig_listen(&r);
    deadline = g_get_monotonic_time() + FAULT_MS * 1000;
    while (g_hash_table_size(served) < G_N_ELEMENTS(holes)) {
        int k = serve_one_fault(r.vub, deadline, r.rb, why);
        bool hole = false;

        if (k < 0) {
            g_autofree char *l = proc_log(r.be);

            g_test_fail_printf("after %u of %zu faults: %s; back-end log:\n%s",
                               g_hash_table_size(served), G_N_ELEMENTS(holes), why->str, l);
            rig_free(&r);
            return;
        }
        for (unsigned i = 0; i < G_N_ELEMENTS(holes); i++) {
            hole |= holes[i] == (unsigned)k;
        }
        g_assert_true(hole);    /* a page that was there never faults */
        g_hash_table_add(served, GINT_TO_POINTER(k));
    }
    if (!wait_log(r.be, "postcopy-touch listen: done", 1, FAULT_MS)) {
        rig_free(&r);
        return;
    }
    log = proc_log(r.be);
    g_assert_true(log_field(log, "postcopy-touch listen", "pages ", &pages));
    g_assert_true(log_field(log, "postcopy-touch listen", "faults ", &faults));
    g_assert_true(log_field(log, "postcopy-touch listen", "fnv ", &fnv));
    g_assert_cmpuint(pages, ==, NPAGES);
    g_assert_cmpuint(faults, ==, G_N_ELEMENTS(holes));
    /* What the back-end read: the placed bytes where the holes were. */
    for (unsigned k = 0; k < NPAGES; k++) {
        uint8_t b = g_hash_table_contains(served, GINT_TO_POINTER(k)) ? placed_byte(k)
                                                                       : orig_byte(k);

        want = (want ^ b) * 0x100000001b3ull;
    }
    g_assert_cmphex(fnv, ==, want);
    rig_end(&r);
    /* The totals at exit count the same faults. */
    proc_stop(r.be);
    g_free(log);
    log = proc_log(r.be);
    g_assert_true(log_field(log, "postcopy: advised", "faults ", &faults));
    g_assert_cmpuint(faults, ==, G_N_ELEMENTS(holes));
    rig_free(&r);
}

/* The reply test's fault service: a thread of its own, as in a VMM. */
typedef struct FaultService {
    Rig *r;
    unsigned want;
    GHashTable *served;         /* page numbers */
    GString *why;               /* set when it gave up */
} FaultService;

static gpointer fault_service(gpointer opaque)
{
    FaultService *s = opaque;
    gint64 deadline = g_get_monotonic_time() + FAULT_MS * 1000;

    while (g_hash_table_size(s->served) < s->want) {
        int k = serve_one_fault(s->r->vub, deadline, s->r->rb, s->why);

        if (k < 0) {
            break;
        }
        g_hash_table_add(s->served, GINT_TO_POINTER(k));
    }
    return NULL;
}

#define RING_NUM        256
#define DESC_GPA        0x10000u
#define AVAIL_GPA       0x11000u
#define USED_GPA        0x12000u

static void test_reply_faults(Fixture *f, gconstpointer data)
{
    /* The ring's three pages, the region's first and last, and one never touched. */
    static const unsigned holes[] = { 0, DESC_GPA / PAGE, AVAIL_GPA / PAGE, USED_GPA / PAGE,
                                      NPAGES - 1, 100 };
    g_autoptr(GError) err = NULL;
    g_autoptr(GString) why = g_string_new(NULL);
    g_autoptr(GHashTable) served = g_hash_table_new(NULL, NULL);
    g_autofree char *log = NULL;
    FaultService s = { .r = NULL, .want = G_N_ELEMENTS(holes) - 1 };
    GThread *t;
    VhostUserMsg msg;
    uint64_t faults = 0;
    uint8_t *host;
    bool ok;
    Rig r;

    if (!rig_start(&r, f, "--postcopy-touch=reply", holes, G_N_ELEMENTS(holes))) {
        rig_free(&r);
        return;
    }
    rig_listen(&r);
    s.r = &r;
    s.served = served;
    s.why = why;
    t = g_thread_new("fault-service", fault_service, &s);

    host = r.rb->host;
    memset(&msg, 0, sizeof(msg));
    msg.hdr.request = VHOST_USER_SET_VRING_NUM;
    msg.hdr.size = sizeof(msg.payload.state);
    msg.payload.state.index = 0;
    msg.payload.state.num = RING_NUM;
    g_assert_true(vhost_user_send(r.vub->user, 0, &msg, NULL, 0, 0, &err));
    g_assert_no_error(err);
    /* Answered (REPLY_ACK) only once the back-end got every page it touches. */
    memset(&msg, 0, sizeof(msg));
    msg.hdr.request = VHOST_USER_SET_VRING_ADDR;
    msg.hdr.size = sizeof(msg.payload.addr);
    msg.payload.addr.index = 0;
    msg.payload.addr.desc_user_addr = (uintptr_t)(host + DESC_GPA);
    msg.payload.addr.avail_user_addr = (uintptr_t)(host + AVAIL_GPA);
    msg.payload.addr.used_user_addr = (uintptr_t)(host + USED_GPA);
    ok = vhost_user_send(r.vub->user, 0, &msg, NULL, 0, 0, &err);
    g_thread_join(t);
    if (!ok || why->len) {
        g_autofree char *l = proc_log(r.be);

        g_test_fail_printf("SET_VRING_ADDR: %s; fault service after %u of %u pages: %s; "
                           "back-end log:\n%s", ok ? "answered" : err->message,
                           g_hash_table_size(served), s.want,
                           why->len ? why->str : "done", l);
        rig_free(&r);
        return;
    }
    for (unsigned i = 0; i + 1 < G_N_ELEMENTS(holes); i++) {
        g_assert_true(g_hash_table_contains(served, GINT_TO_POINTER(holes[i])));
    }
    log = proc_log(r.be);
    g_assert_true(log_field(log, "postcopy-touch reply: SET_VRING_ADDR", "faults ", &faults));
    g_assert_cmpuint(faults, ==, s.want);
    rig_end(&r);
    rig_free(&r);
}

/* The hang-up test's other side: waits for the first fault, then hangs up. */
typedef struct HangUp {
    int ufd;
    int sock;
    bool faulted;
} HangUp;

static gpointer hang_up_on_fault(gpointer opaque)
{
    HangUp *h = opaque;
    struct pollfd p = { .fd = h->ufd, .events = POLLIN };
    struct uffd_msg m;

    if (poll(&p, 1, FAULT_MS) == 1 && read(h->ufd, &m, sizeof(m)) == sizeof(m)) {
        h->faulted = m.event == UFFD_EVENT_PAGEFAULT;
    }
    shutdown(h->sock, SHUT_RDWR);
    return NULL;
}

/* A second front-end can connect: the back-end's loop is alive. */
static void connect_again(Rig *r)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_autofree char *sock = g_build_filename(r->f->dir, "be.sock", NULL);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_true(wait_log(r->be, "front-end connected", 2, FAULT_MS));
    close(fd);
}

static void test_hangup(Fixture *f, gconstpointer data)
{
    static const unsigned holes[] = { DESC_GPA / PAGE };
    g_autoptr(GError) err = NULL;
    HangUp h = { .faulted = false };
    VhostUserMsg msg;
    GThread *t;
    uint8_t *host;
    Rig r;

    if (!rig_start(&r, f, "--postcopy-touch=reply", holes, G_N_ELEMENTS(holes))) {
        rig_free(&r);
        return;
    }
    rig_listen(&r);
    h.ufd = vhost_user_base_postcopy_ufd(r.vub);
    h.sock = char_socket_fd(r.chr);
    g_assert_cmpint(h.sock, >=, 0);
    t = g_thread_new("hang-up", hang_up_on_fault, &h);

    host = r.rb->host;
    memset(&msg, 0, sizeof(msg));
    msg.hdr.request = VHOST_USER_SET_VRING_NUM;
    msg.hdr.size = sizeof(msg.payload.state);
    msg.payload.state.num = RING_NUM;
    g_assert_true(vhost_user_send(r.vub->user, 0, &msg, NULL, 0, 0, &err));
    memset(&msg, 0, sizeof(msg));
    msg.hdr.request = VHOST_USER_SET_VRING_ADDR;
    msg.hdr.size = sizeof(msg.payload.addr);
    msg.payload.addr.desc_user_addr = (uintptr_t)(host + DESC_GPA);
    msg.payload.addr.avail_user_addr = (uintptr_t)(host + AVAIL_GPA);
    msg.payload.addr.used_user_addr = (uintptr_t)(host + USED_GPA);
    /* Never answered: the page never comes, the front-end hangs up. */
    g_assert_false(vhost_user_send(r.vub->user, 0, &msg, NULL, 0, 0, &err));
    g_thread_join(t);
    g_assert_true(h.faulted);
    g_assert_true(wait_log(r.be, "the front-end hung up", 1, FAULT_MS));
    g_assert_true(wait_log(r.be, "front-end gone; connection state released", 1, FAULT_MS));
    connect_again(&r);
    rig_free(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/postcopy-refbe/protocol", Fixture, NULL, fixture_setup, test_protocol,
               fixture_teardown);
    g_test_add("/postcopy-refbe/no-postcopy", Fixture, NULL, fixture_setup,
               test_no_postcopy, fixture_teardown);
    g_test_add("/postcopy-refbe/listen-faults", Fixture, NULL, fixture_setup,
               test_listen_faults, fixture_teardown);
    g_test_add("/postcopy-refbe/reply-faults", Fixture, NULL, fixture_setup,
               test_reply_faults, fixture_teardown);
    g_test_add("/postcopy-refbe/hangup", Fixture, NULL, fixture_setup, test_hangup,
               fixture_teardown);
    return g_test_run();
}
