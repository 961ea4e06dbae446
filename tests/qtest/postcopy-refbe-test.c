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
 *  - slots-listen-faults: the same with memory slots (--mem-slots) over
 *    two RAM blocks: the first goes in the listening SET_MEM_TABLE (the
 *    front-end sends a listening slots back-end its first table whole),
 *    the second is added later with ADD_MEM_REG, answered with our
 *    address and acknowledged;
 *  - slots-remove: REM_MEM_REG unmaps that region and only that one;
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

#define RAM_SIZE        (2u * 1024 * 1024)     /* per RAM block */
#define BLOCK_STRIDE    (2u * RAM_SIZE)         /* block b at GPA b * this */
#define PAGE            4096u
#define NPAGES          (RAM_SIZE / PAGE)       /* per block */
#define READY_MS        10000
#define FAULT_MS        10000

/*
 * The content of the page at GPA k * PAGE: what the source sent (orig)
 * and what arrives late (placed).
 */
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
    unsigned nblocks;
    const RamBlock *rb;         /* the first block, at GPA 0 */
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
 * Our back-end (blk) with the extra options (NULL-terminated, or NULL),
 * guest RAM of nblocks memfds ("ram0"...) filled with orig_byte() except
 * the pages in holes (GPA / PAGE), and a vhost-user-blk device connected
 * to it and negotiated.
 */
static bool rig_start(Rig *r, Fixture *f, const char *const *extra, unsigned nblocks,
                      const unsigned *holes, unsigned nholes)
{
    const char *be = g_getenv("REF_BACKEND");
    g_autofree char *sock = g_build_filename(f->dir, "be.sock", NULL);
    g_autofree char *sock_opt = g_strdup_printf("--socket-path=%s", sock);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    CharSocketOptions o = { .id = "c0", .path = sock };
    bool ready = false;
    gint64 end;

    memset(r, 0, sizeof(*r));
    r->f = f;
    r->nblocks = nblocks;
    if (!be || !*be) {
        g_test_fail_printf("REF_BACKEND is not set (run through meson test)");
        return false;
    }
    g_ptr_array_add(argv, (char *)be);
    g_ptr_array_add(argv, sock_opt);
    g_ptr_array_add(argv, "--type=blk");
    g_ptr_array_add(argv, "--blk-size=1M");
    for (unsigned i = 0; extra && extra[i]; i++) {
        g_ptr_array_add(argv, (char *)extra[i]);
    }
    r->be = proc_spawn(f, "refbe", argv, false, NULL);
    if (!r->be || !wait_socket(r->be, sock)) {
        return false;
    }

    r->mem = guest_memory_new();
    for (unsigned b = 0; b < nblocks; b++) {
        g_autofree char *id = g_strdup_printf("ram%u", b);
        uint64_t gpa = (uint64_t)b * BLOCK_STRIDE;
        RamBlock *rb = ram_block_new_memfd(id, RAM_SIZE, &err);

        g_assert_no_error(err);
        g_assert_true(guest_memory_add(r->mem, gpa, rb, 0, RAM_SIZE, &err));
        for (unsigned k = 0; k < NPAGES; k++) {
            memset((uint8_t *)rb->host + (size_t)k * PAGE, orig_byte(gpa / PAGE + k), PAGE);
        }
        ram_block_unref(rb);
    }
    r->rb = guest_memory_region(r->mem, 0)->block;
    /* Pages the destination "has not received yet": nothing in the file. */
    for (unsigned i = 0; i < nholes; i++) {
        const MemoryRegionMap *m = guest_memory_find(r->mem, (uint64_t)holes[i] * PAGE);

        g_assert_nonnull(m);
        g_assert_cmpint(fallocate(m->block->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  (off_t)((uint64_t)holes[i] * PAGE - m->gpa), PAGE), ==, 0);
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

/* Where the back-end process mapped memfd "ram<b>" (its /proc/PID/maps), or 0. */
static uint64_t backend_mapping(Rig *r, unsigned b)
{
    g_autofree char *name = g_strdup_printf("/memfd:ram%u ", b);
    g_autofree char *path = g_strdup_printf("/proc/%d/maps", (int)r->be->pid);
    g_autofree char *maps = NULL;
    g_auto(GStrv) lines = NULL;
    uint64_t found = 0;

    g_assert_true(g_file_get_contents(path, &maps, NULL, NULL));
    lines = g_strsplit(maps, "\n", -1);
    for (char **l = lines; *l; l++) {
        unsigned long long start, end;

        if (strstr(*l, name) &&
            sscanf(*l, "%llx-%llx", &start, &end) == 2 && end - start == RAM_SIZE) {
            g_assert_cmpuint(found, ==, 0);     /* exactly one mapping */
            found = start;
        }
    }
    return found;
}

/*
 * The listening replies named the back-end's own mappings: its addresses
 * translate to the right guest addresses, ours do not.
 */
static void check_translation(Rig *r)
{
    for (unsigned b = 0; b < r->nblocks; b++) {
        uint64_t base = backend_mapping(r, b), want = (uint64_t)b * BLOCK_STRIDE, gpa = 1;
        unsigned region = 9;

        g_assert_cmpuint(base, !=, 0);
        g_assert_true(vhost_user_base_postcopy_translate(r->vub, base, &gpa, &region));
        g_assert_cmpuint(gpa, ==, want);
        g_assert_true(vhost_user_base_postcopy_translate(r->vub, base + RAM_SIZE - 1, &gpa,
                                                         &region));
        g_assert_cmpuint(gpa, ==, want + RAM_SIZE - 1);
        /* Past the end: nothing, or another block the back-end mapped right there. */
        if (vhost_user_base_postcopy_translate(r->vub, base + RAM_SIZE, &gpa, &region)) {
            g_assert_cmpuint(r->nblocks, >, 1);
            g_assert_cmpuint(gpa % BLOCK_STRIDE, ==, 0);
        }
        g_assert_false(vhost_user_base_postcopy_translate(
            r->vub, (uintptr_t)guest_memory_gpa_to_hva(r->mem, want, 1), &gpa, &region));
    }
}

static void test_protocol(Fixture *f, gconstpointer data)
{
    Rig r;

    if (!rig_start(&r, f, NULL, 1, NULL, 0)) {
        rig_free(&r);
        return;
    }
    rig_listen(&r);
    check_translation(&r);
    rig_end(&r);
    g_assert_true(wait_log(r.be, "postcopy ended", 1, READY_MS));
    rig_free(&r);
}

static void test_no_postcopy(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    Rig r;

    static const char *const opts[] = { "--no-postcopy", NULL };

    if (!rig_start(&r, f, opts, 1, NULL, 0)) {
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
static int serve_one_fault(Rig *r, gint64 deadline, GString *why)
{
    VhostUserBase *vub = r->vub;
    int ufd = vhost_user_base_postcopy_ufd(vub);
    const MemoryRegionMap *map;
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
        !(map = guest_memory_find(r->mem, gpa))) {
        g_string_append_printf(why, "fault at 0x%llx does not translate into guest RAM",
                               (unsigned long long)m.arg.pagefault.address);
        return -1;
    }
    gpa &= ~(uint64_t)(PAGE - 1);
    memset(page, placed_byte(gpa / PAGE), sizeof(page));
    if (pwrite(map->block->fd, page, PAGE, (off_t)(map->block->fd_offset + map->block_offset +
                                                   gpa - map->gpa)) != PAGE) {
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

typedef struct ListenCase {
    unsigned nblocks;
    bool mem_slots;             /* the last block comes with ADD_MEM_REG */
    unsigned nholes;
    unsigned holes[8];          /* GPA / PAGE */
} ListenCase;

static const ListenCase listen_table = {
    .nblocks = 1, .nholes = 4, .holes = { 1, 77, 300, NPAGES - 1 },
};

static const ListenCase listen_slots = {
    .nblocks = 2, .mem_slots = true, .nholes = 5,
    .holes = { 1, 300, BLOCK_STRIDE / PAGE, BLOCK_STRIDE / PAGE + 200,
               BLOCK_STRIDE / PAGE + NPAGES - 1 },
};

static bool is_hole(const ListenCase *c, unsigned k)
{
    for (unsigned i = 0; i < c->nholes; i++) {
        if (c->holes[i] == k) {
            return true;
        }
    }
    return false;
}

static void test_listen_faults(Fixture *f, gconstpointer data)
{
    const ListenCase *c = data;
    static const char *const table_opts[] = { "--postcopy-touch=listen", NULL };
    static const char *const slots_opts[] = { "--postcopy-touch=listen", "--mem-slots",
                                              NULL };
    g_autoptr(GString) why = g_string_new(NULL);
    g_autoptr(GHashTable) served = g_hash_table_new(NULL, NULL);
    g_autofree char *log = NULL;
    gint64 deadline;
    uint64_t faults = 0, pages = 0, fnv = 0, want = 0xcbf29ce484222325ull;
    Rig r;

    if (!rig_start(&r, f, c->mem_slots ? slots_opts : table_opts, c->nblocks, c->holes,
                   c->nholes)) {
        rig_free(&r);
        return;
    }
    g_assert_true(vhost_user_has_protocol_feature(
        r.vub->user, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) == c->mem_slots);
    if (c->mem_slots) {
        /* The last block is "hotplugged" while listening. */
        uint64_t gpa = (uint64_t)(c->nblocks - 1) * BLOCK_STRIDE;
        RamBlock *late = ram_block_ref(guest_memory_find(r.mem, gpa)->block);
        g_autoptr(GError) err = NULL;

        g_assert_true(guest_memory_remove(r.mem, gpa, &err));
        rig_listen(&r);
        g_assert_true(guest_memory_add(r.mem, gpa, late, 0, RAM_SIZE, &err));
        ram_block_unref(late);
        g_assert_true(vhost_user_mem_update(r.vub->user, "blk0", 0, r.mem, &err));
        g_assert_no_error(err);
        g_assert_true(wait_log(r.be, "ADD_MEM_REG while postcopy listens", 1, FAULT_MS));
    } else {
        rig_listen(&r);
    }
    check_translation(&r);
    deadline = g_get_monotonic_time() + FAULT_MS * 1000;
    while (g_hash_table_size(served) < c->nholes) {
        int k = serve_one_fault(&r, deadline, why);

        if (k < 0) {
            g_autofree char *l = proc_log(r.be);

            g_test_fail_printf("after %u of %u faults: %s; back-end log:\n%s",
                               g_hash_table_size(served), c->nholes, why->str, l);
            rig_free(&r);
            return;
        }
        g_assert_true(is_hole(c, k));    /* a page that was there never faults */
        g_hash_table_add(served, GINT_TO_POINTER(k));
    }
    if (!wait_log(r.be, "postcopy-touch listen: done", 1, FAULT_MS)) {
        rig_free(&r);
        return;
    }
    log = proc_log(r.be);
    /* The last pass read every page of every region, in GPA order here. */
    g_assert_true(log_field(log, "postcopy-touch listen: done", "pages ", &pages));
    g_assert_true(log_field(log, "postcopy-touch listen: done", "fnv ", &fnv));
    g_assert_cmpuint(pages, ==, c->nblocks * NPAGES);
    for (unsigned b = 0; b < c->nblocks; b++) {
        for (unsigned p = 0; p < NPAGES; p++) {
            unsigned k = b * BLOCK_STRIDE / PAGE + p;

            want = (want ^ (is_hole(c, k) ? placed_byte(k) : orig_byte(k))) *
                   0x100000001b3ull;
        }
    }
    g_assert_cmphex(fnv, ==, want);
    /* One table, one pass: it took every fault (with slots, earlier passes took some). */
    if (!c->mem_slots) {
        g_assert_true(log_field(log, "postcopy-touch listen: done", "faults ", &faults));
        g_assert_cmpuint(faults, ==, c->nholes);
    }
    rig_end(&r);
    /* The totals at exit count each missing page once. */
    proc_stop(r.be);
    g_free(log);
    log = proc_log(r.be);
    g_assert_true(log_field(log, "postcopy: advised", "faults ", &faults));
    g_assert_cmpuint(faults, ==, c->nholes);
    rig_free(&r);
}

/* --mem-slots without postcopy: a region removed is unmapped, the other stays. */
static void test_slots_remove(Fixture *f, gconstpointer data)
{
    static const char *const opts[] = { "--mem-slots", NULL };
    g_autoptr(GError) err = NULL;
    Rig r;

    if (!rig_start(&r, f, opts, 2, NULL, 0)) {
        rig_free(&r);
        return;
    }
    g_assert_true(vhost_user_has_protocol_feature(r.vub->user,
                                                  VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
    g_assert_true(vhost_user_mem_update(r.vub->user, "blk0", 0, r.mem, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(backend_mapping(&r, 0), !=, 0);
    g_assert_cmpuint(backend_mapping(&r, 1), !=, 0);
    g_assert_true(guest_memory_remove(r.mem, BLOCK_STRIDE, &err));
    g_assert_no_error(err);
    g_assert_true(vhost_user_mem_update(r.vub->user, "blk0", 0, r.mem, &err));
    g_assert_no_error(err);
    /* REM_MEM_REG was acknowledged (REPLY_ACK), so it is done. */
    g_assert_true(vhost_user_is_usable(r.vub->user));
    g_assert_cmpuint(backend_mapping(&r, 0), !=, 0);
    g_assert_cmpuint(backend_mapping(&r, 1), ==, 0);
    r.nblocks = 1;
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
        int k = serve_one_fault(s->r, deadline, s->why);

        if (k < 0) {
            break;
        }
        g_hash_table_add(s->served, GINT_TO_POINTER(k));
    }
    return NULL;
}

static const char *const reply_opts[] = { "--postcopy-touch=reply", NULL };

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

    if (!rig_start(&r, f, reply_opts, 1, holes, G_N_ELEMENTS(holes))) {
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

    if (!rig_start(&r, f, reply_opts, 1, holes, G_N_ELEMENTS(holes))) {
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
    g_test_add("/postcopy-refbe/listen-faults", Fixture, &listen_table, fixture_setup,
               test_listen_faults, fixture_teardown);
    g_test_add("/postcopy-refbe/slots-listen-faults", Fixture, &listen_slots, fixture_setup,
               test_listen_faults, fixture_teardown);
    g_test_add("/postcopy-refbe/slots-remove", Fixture, NULL, fixture_setup,
               test_slots_remove, fixture_teardown);
    g_test_add("/postcopy-refbe/reply-faults", Fixture, NULL, fixture_setup,
               test_reply_faults, fixture_teardown);
    g_test_add("/postcopy-refbe/hangup", Fixture, NULL, fixture_setup, test_hangup,
               fixture_teardown);
    return g_test_run();
}
