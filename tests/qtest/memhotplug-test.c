/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory hotplug through the real VMM: the test drives vhost-user-vmm's
 * QMP monitor (object-add, device_add pc-dimm, device_del, object-del)
 * and plays the back-end (test-backend.c), so it sees every message the
 * change produces and maps every region it is given.
 *
 * After each step the back-end's region table must equal the VMM's
 * (query-memory-devices plus boot RAM), and a pattern the test writes
 * into the new region's file must read back through the back-end's own
 * mapping of the fd it received, at the guest address the VMM reported.
 * The test back-end itself refuses an ADD_MEM_REG that overlaps or
 * exceeds its slots and a REM_MEM_REG for a region it does not have
 * (test-backend-mem.c), so a wrong diff is a violation at once.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "qmp-client.h"
#include "qtest-harness.h"

#define DIMM_SIZE           (256ull << 10)
#define DIMM_ALIGN          (2ull << 20)    /* the VMM's VMM_DIMM_ALIGN */
#define MANY_DIMMS          300
#define MANY_SLOTS          509
#define PATTERN_XOR         0x686f74706c756721ull

typedef struct HpCtx {
    TestCtx *t;
    QmpClient *qmp;
    char *qmp_path;
} HpCtx;

static TbConfig hp_config(bool mem_slots, unsigned slots)
{
    TbConfig cfg;

    tb_config_default(&cfg);
    if (mem_slots) {
        cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS;
        cfg.max_mem_slots = slots;
    }
    return cfg;
}

/*
 * net0 over the test back-end, memfd boot RAM, a monitor; rings running.
 * iommu: net0 with iommu_platform=on (the back-end must offer it).
 */
static HpCtx *hp_start_dev(const TbConfig *cfg, bool iommu)
{
    HpCtx *h = g_new0(HpCtx, 1);

    h->t = test_setup(cfg, false);
    h->qmp_path = g_strdup_printf("%s/qmp.sock", h->t->dir);
    add_machine_args(h->t, "memfd");
    add_client_chardev(h->t, true);
    if (iommu) {
        add_arg(h->t, "-netdev");
        add_arg(h->t, "vhost-user,id=net0,chardev=chr0,queues=1");
        add_arg(h->t, "-device");
        add_arg(h->t, "virtio-net-pci,netdev=net0,iommu_platform=on");
    } else {
        add_net(h->t, 1);
    }
    add_arg(h->t, "-qmp");
    add_arg(h->t, "unix:%s,server=on,wait=off", h->qmp_path);
    h->t->vmm = current_vmm = qtest_vmm_spawnv(h->t->args);
    wait_stderr_n(h->t, "net0: started 2 rings", 1);
    tb_wait_rings_started(h->t->tb, 1, 2, WAIT_MS);
    h->qmp = qmp_client_connect_log(h->qmp_path, WAIT_MS, qtest_vmm_log_cb, h->t->vmm);
    return h;
}

static HpCtx *hp_start(const TbConfig *cfg)
{
    return hp_start_dev(cfg, false);
}

static void hp_finish(HpCtx *h)
{
    qmp_client_free(h->qmp);
    assert_vmm_stops_cleanly(h->t);
    test_teardown(h->t);
    g_free(h->qmp_path);
    g_free(h);
}

static char *hp_mem_path(HpCtx *h, unsigned i)
{
    return g_strdup_printf("%s/mem%u", h->t->dir, i);
}

static void hp_object_add(HpCtx *h, unsigned i, bool share)
{
    g_autofree char *path = hp_mem_path(h, i);
    JsonNode *r = qmp_client_ok(h->qmp,
        "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":\"memory-backend-file\","
        "\"id\":\"mem%u\",\"size\":%llu,\"mem-path\":\"%s\",\"share\":%s}}",
        i, (unsigned long long)DIMM_SIZE, path, share ? "true" : "false");

    json_node_unref(r);
}

/* pc-dimm "dimmI" of memdev "memI" at an address the VMM picks. */
static void hp_dimm_add(HpCtx *h, unsigned i)
{
    JsonNode *r = qmp_client_ok(h->qmp,
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pc-dimm\","
        "\"id\":\"dimm%u\",\"memdev\":\"mem%u\"}}", i, i);

    json_node_unref(r);
}

static void hp_dimm_del(HpCtx *h, unsigned i)
{
    unsigned events = qmp_client_event_count(h->qmp, "DEVICE_DELETED");
    g_autofree char *id = g_strdup_printf("dimm%u", i);
    JsonNode *r = qmp_client_ok(h->qmp, "{\"execute\":\"device_del\","
                                "\"arguments\":{\"id\":\"%s\"}}", id);
    JsonObject *ev;

    json_node_unref(r);
    qmp_client_wait_event(h->qmp, "DEVICE_DELETED", events + 1);
    ev = qmp_client_last_event(h->qmp, "DEVICE_DELETED");
    g_assert_nonnull(ev);
    g_assert_cmpstr(json_object_get_string_member(ev, "device"), ==, id);
    r = qmp_client_ok(h->qmp, "{\"execute\":\"object-del\","
                      "\"arguments\":{\"id\":\"mem%u\"}}", i);
    json_node_unref(r);
}

/*
 * The VMM's guest RAM as the back-end must see it: boot RAM at 0, then
 * every dimm of query-memory-devices. Fills want[] (sorted by gpa); the
 * dimm of `id` (if any) goes to *id_addr.
 */
static unsigned hp_vmm_table(HpCtx *h, VhostUserMemoryRegion *want, unsigned max,
                             const char *id, uint64_t *id_addr)
{
    JsonNode *r = qmp_client_ok(h->qmp, "{\"execute\":\"query-memory-devices\"}");
    JsonArray *list = json_node_get_array(r);
    unsigned n = 0;

    g_assert_cmpuint(json_array_get_length(list) + 1, <=, max);
    want[n++] = (VhostUserMemoryRegion){ .guest_phys_addr = 0, .memory_size = RAM_SIZE };
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *info = json_array_get_object_element(list, i);
        JsonObject *d = json_object_get_object_member(info, "data");

        g_assert_cmpstr(json_object_get_string_member(info, "type"), ==, "dimm");
        want[n].guest_phys_addr = (uint64_t)json_object_get_int_member(d, "addr");
        want[n].memory_size = (uint64_t)json_object_get_int_member(d, "size");
        if (id && !strcmp(json_object_get_string_member(d, "id"), id)) {
            *id_addr = want[n].guest_phys_addr;
        }
        n++;
    }
    json_node_unref(r);
    return n;
}

/* The table of the back-end's connection conn equals the VMM's, region for region. */
static void hp_assert_tables_equal(HpCtx *h, unsigned conn, const char *id,
                                   uint64_t *id_addr)
{
    g_autofree VhostUserMemoryRegion *want = g_new0(VhostUserMemoryRegion,
                                                    TB_MAX_MEM_SLOTS + 1);
    g_autofree VhostUserMemoryRegion *have = g_new0(VhostUserMemoryRegion,
                                                    TB_MAX_MEM_SLOTS + 1);
    unsigned nwant = hp_vmm_table(h, want, TB_MAX_MEM_SLOTS + 1, id, id_addr);
    unsigned nhave = tb_mem_regions(h->t->tb, conn, have, TB_MAX_MEM_SLOTS + 1);

    if (nwant != nhave) {
        g_error("the back-end maps %u regions, the VMM has %u (boot RAM + dimms)",
                nhave, nwant);
    }
    for (unsigned i = 0; i < nwant; i++) {
        if (have[i].guest_phys_addr != want[i].guest_phys_addr ||
            have[i].memory_size != want[i].memory_size) {
            g_error("region %u: the back-end maps gpa 0x%" PRIx64 " size 0x%" PRIx64
                    ", the VMM has gpa 0x%" PRIx64 " size 0x%" PRIx64, i,
                    (uint64_t)have[i].guest_phys_addr, (uint64_t)have[i].memory_size,
                    (uint64_t)want[i].guest_phys_addr, (uint64_t)want[i].memory_size);
        }
    }
}

/*
 * Writes a pattern into memI's file at its first and last 8 bytes, then
 * reads both through the back-end's mapping at the dimm's guest address.
 */
static void hp_check_pattern(HpCtx *h, unsigned i, uint64_t addr)
{
    g_autofree char *path = hp_mem_path(h, i);
    const uint64_t offs[2] = { 0, DIMM_SIZE - 8 };
    int fd = open(path, O_RDWR | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    for (unsigned k = 0; k < 2; k++) {
        uint64_t v = (addr + offs[k]) ^ PATTERN_XOR ^ i, got = 0;

        g_assert_cmpint(pwrite(fd, &v, sizeof(v), (off_t)offs[k]), ==, sizeof(v));
        if (!tb_read_gpa(h->t->tb, 1, addr + offs[k], &got, sizeof(got))) {
            g_error("dimm%u: gpa 0x%" PRIx64 " is not in the back-end's table", i,
                    addr + offs[k]);
        }
        if (got != v) {
            g_error("dimm%u: the back-end reads 0x%016" PRIx64 " at gpa 0x%" PRIx64
                    ", the test wrote 0x%016" PRIx64 " into %s", i, got,
                    addr + offs[k], v, path);
        }
    }
    close(fd);
}

/* Every ADD_MEM_REG of conn 1 carried one fd, every REM_MEM_REG none; all acked. */
static void hp_assert_slot_messages(HpCtx *h, unsigned nadd, unsigned nrem)
{
    unsigned total = tb_msg_count(h->t->tb, 1, 0), adds = 0, rems = 0;

    for (unsigned i = 0; i < total; i++) {
        TbMsg *m = tb_msg_get(h->t->tb, 1, i);
        uint32_t req = m->request, nfds = m->nfds, flags = m->flags;

        tb_msg_free(m);

        if (req == VHOST_USER_ADD_MEM_REG) {
            adds++;
            g_assert_cmpuint(nfds, ==, 1);
        } else if (req == VHOST_USER_REM_MEM_REG) {
            rems++;
            if (nfds != 0) {
                g_error("REM_MEM_REG #%u carried %u fds; the spec says none", rems, nfds);
            }
        } else {
            continue;
        }
        /* Without the ack a failed update would go unnoticed. */
        g_assert_true(flags & VHOST_USER_NEED_REPLY_MASK);
    }
    g_assert_cmpuint(adds, ==, nadd);
    g_assert_cmpuint(rems, ==, nrem);
}

/* Waits (bounded) for the VMM to exit by itself; returns its exit status. */
static int hp_wait_exit(QtestVmm *vmm)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000ll;

    while (qtest_vmm_is_alive(vmm)) {
        if (g_get_monotonic_time() > end) {
            g_error("the VMM did not exit within %d ms", WAIT_MS);
        }
        g_usleep(10 * 1000);
    }
    return qtest_vmm_terminate(vmm, 0);
}

/* ---- 300 regions, one at a time ---------------------------------------- */

static void test_many_regions(void)
{
    TbConfig cfg = hp_config(true, MANY_SLOTS);
    HpCtx *h = hp_start(&cfg);
    TestBackend *tb = h->t->tb;
    unsigned adds0;

    /* The boot RAM went by ADD_MEM_REG too: slots replace the table. */
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_GET_MAX_MEM_SLOTS), ==, 1);
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_MEM_TABLE), ==, 0);
    adds0 = tb_msg_count(tb, 1, VHOST_USER_ADD_MEM_REG);
    g_assert_cmpuint(adds0, ==, 1);

    for (unsigned i = 0; i < MANY_DIMMS; i++) {
        g_autofree char *id = g_strdup_printf("dimm%u", i);
        uint64_t addr = UINT64_MAX;

        hp_object_add(h, i, true);
        hp_dimm_add(h, i);
        /* Only the new region is sent, nothing is removed. */
        g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_ADD_MEM_REG), ==, adds0 + i + 1);
        g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_REM_MEM_REG), ==, 0);
        hp_assert_tables_equal(h, 1, id, &addr);
        g_assert_cmpuint(addr, !=, UINT64_MAX);
        g_assert_cmpuint(addr % DIMM_ALIGN, ==, 0);
        g_assert_cmpuint(addr, >=, RAM_SIZE);
        hp_check_pattern(h, i, addr);
    }

    /* Out of order (a stride coprime with 300), so holes open in the middle. */
    for (unsigned k = 0; k < MANY_DIMMS; k++) {
        unsigned i = (k * 7) % MANY_DIMMS;
        uint64_t dummy;
        uint64_t gone;
        g_autofree VhostUserMemoryRegion *want = g_new0(VhostUserMemoryRegion,
                                                        TB_MAX_MEM_SLOTS + 1);
        g_autofree char *id = g_strdup_printf("dimm%u", i);
        unsigned n;

        gone = UINT64_MAX;
        hp_vmm_table(h, want, TB_MAX_MEM_SLOTS + 1, id, &gone);
        g_assert_cmpuint(gone, !=, UINT64_MAX);
        hp_dimm_del(h, i);
        g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_REM_MEM_REG), ==, k + 1);
        g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_ADD_MEM_REG), ==,
                         adds0 + MANY_DIMMS);
        hp_assert_tables_equal(h, 1, NULL, NULL);
        if (tb_read_gpa(tb, 1, gone, &dummy, sizeof(dummy))) {
            g_error("dimm%u was removed but the back-end still maps gpa 0x%" PRIx64,
                    i, gone);
        }
        n = tb_mem_regions(tb, 1, want, TB_MAX_MEM_SLOTS + 1);
        g_assert_cmpuint(n, ==, MANY_DIMMS - k);
    }
    hp_assert_slot_messages(h, adds0 + MANY_DIMMS, MANY_DIMMS);
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_MEM_TABLE), ==, 0);
    /* The boot RAM was never touched, and the rings kept running. */
    g_assert_cmpuint(tb_rings_started(tb, 1), ==, 2);
    g_assert_cmpuint(tb_conn_count(tb), ==, 1);
    hp_finish(h);
}

/* ---- without memory slots: SET_MEM_TABLE, 8 regions --------------------- */

static void test_set_mem_table_limit(void)
{
    TbConfig cfg = hp_config(false, 0);
    HpCtx *h = hp_start(&cfg);
    TestBackend *tb = h->t->tb;
    g_autofree char *desc = NULL;
    TbMsg *last = NULL;
    JsonNode *r;
    uint64_t addr;

    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_MEM_TABLE), ==, 1);
    /* Boot RAM + 7 dimms: the 8 regions SET_MEM_TABLE can describe. */
    for (unsigned i = 0; i < 7; i++) {
        addr = UINT64_MAX;
        hp_object_add(h, i, true);
        hp_dimm_add(h, i);
        g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_MEM_TABLE), ==, i + 2);
        {
            g_autofree char *id = g_strdup_printf("dimm%u", i);

            hp_assert_tables_equal(h, 1, id, &addr);
        }
        hp_check_pattern(h, i, addr);
    }
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_ADD_MEM_REG), ==, 0);
    last = tb_msg_get(tb, 1, tb_msg_count(tb, 1, 0) - 1);
    g_assert_cmpuint(last->request, ==, VHOST_USER_SET_MEM_TABLE);
    g_assert_cmpuint(last->nfds, ==, 8);

    /* The 9th region: refused before anything is sent, naming the limit. */
    hp_object_add(h, 7, true);
    desc = qmp_client_fails(h->qmp, "GenericError",
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pc-dimm\","
        "\"id\":\"dimm7\",\"memdev\":\"mem7\"}}");
    g_test_message("9th region refused: %s", desc);
    if (!strstr(desc, "dimm7") || !strstr(desc, "net0") || !strstr(desc, "at most 8") ||
        !strstr(desc, "9 memory regions")) {
        g_error("the refusal of the 9th region must name the dimm, the device and "
                "the limit of 8: \"%s\"", desc);
    }
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_MEM_TABLE), ==, 8);
    hp_assert_tables_equal(h, 1, NULL, NULL);
    /* Nothing is left half-done: the memdev is free again. */
    r = qmp_client_ok(h->qmp, "{\"execute\":\"object-del\",\"arguments\":{\"id\":\"mem7\"}}");
    json_node_unref(r);

    /* Removing one sends the 7-region table. */
    hp_dimm_del(h, 3);
    g_assert_cmpuint(tb_msg_count(tb, 1, VHOST_USER_SET_MEM_TABLE), ==, 9);
    hp_assert_tables_equal(h, 1, NULL, NULL);
    g_clear_pointer(&last, tb_msg_free);
    last = tb_msg_get(tb, 1, tb_msg_count(tb, 1, 0) - 1);
    g_assert_cmpuint(last->request, ==, VHOST_USER_SET_MEM_TABLE);
    g_assert_cmpuint(last->nfds, ==, 7);
    g_assert_cmpuint(tb_rings_started(tb, 1), ==, 2);
    tb_msg_free(last);
    hp_finish(h);
}

/* ---- a reconnect with fewer slots than regions in use ------------------ */

static void test_reconnect_fewer_slots(void)
{
    TbConfig cfg = hp_config(true, 64);
    HpCtx *h = hp_start(&cfg);
    TestBackend *tb = h->t->tb;
    g_autofree char *all = NULL;

    for (unsigned i = 0; i < 5; i++) {
        hp_object_add(h, i, true);
        hp_dimm_add(h, i);
    }
    hp_assert_tables_equal(h, 1, NULL, NULL);
    /* From now on the back-end says 4 slots; 6 regions are in use. */
    tb_inject(tb, 0, VHOST_USER_GET_MAX_MEM_SLOTS, TB_FAULT_VALUE, 4);
    tb_disconnect(tb, 1);
    tb_wait_conn(tb, 2, WAIT_MS);
    wait_stderr_both(h->t, "net0: error:", "GET_MAX_MEM_SLOTS");
    all = qtest_vmm_stderr(h->t->vmm);
    if (!strstr(all, "holds 4 memory slots but 6 memory regions are in use")) {
        g_error("the VMM must refuse the back-end naming both numbers (4 slots, "
                "6 regions); its stderr:\n%s", all);
    }
    /* Refused before any region or ring went to it. */
    g_assert_cmpuint(tb_msg_count(tb, 2, VHOST_USER_ADD_MEM_REG), ==, 0);
    g_assert_cmpuint(tb_msg_count(tb, 2, VHOST_USER_SET_MEM_TABLE), ==, 0);
    g_assert_cmpuint(tb_rings_started(tb, 2), ==, 0);
    g_assert_true(qtest_vmm_is_alive(h->t->vmm));

    /* The monitor still answers, and the dimms are all still there. */
    {
        g_autofree VhostUserMemoryRegion *want = g_new0(VhostUserMemoryRegion, 8);

        g_assert_cmpuint(hp_vmm_table(h, want, 8, NULL, NULL), ==, 6);
    }

    /*
     * A mismatch is not retried on the same connection (it would fail the
     * same way). With two dimms gone, 4 regions fit in 4 slots: a restarted
     * back-end (a new connection) gets them all and the rings run again.
     */
    hp_dimm_del(h, 1);
    hp_dimm_del(h, 3);
    g_assert_cmpuint(tb_msg_count(tb, 2, VHOST_USER_REM_MEM_REG), ==, 0);
    tb_disconnect(tb, 2);
    tb_wait_rings_started(tb, 3, 2, WAIT_MS);
    g_assert_cmpuint(tb_msg_count(tb, 3, VHOST_USER_ADD_MEM_REG), ==, 4);
    hp_assert_tables_equal(h, 3, NULL, NULL);
    hp_finish(h);
}

/* ---- a back-end that fails an ADD_MEM_REG -------------------------------- */

static void test_backend_refuses(void)
{
    TbConfig cfg = hp_config(true, 16);
    HpCtx *h = hp_start(&cfg);
    TestBackend *tb = h->t->tb;
    g_autofree char *desc = NULL;
    JsonNode *r;

    hp_object_add(h, 0, true);
    hp_dimm_add(h, 0);
    hp_object_add(h, 1, true);
    /* The next ADD_MEM_REG on this connection is answered with status 1. */
    tb_inject(tb, 1, VHOST_USER_ADD_MEM_REG, TB_FAULT_ACK_FAIL, 1);
    desc = qmp_client_fails(h->qmp, "GenericError",
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pc-dimm\","
        "\"id\":\"dimm1\",\"memdev\":\"mem1\"}}");
    g_test_message("refused by the back-end: %s", desc);
    if (!strstr(desc, "dimm1") || !strstr(desc, "net0") || !strstr(desc, "ADD_MEM_REG")) {
        g_error("the error must name the dimm, the device and the message: \"%s\"", desc);
    }
    /* Undone: no dimm1, and its memdev is free for object-del. */
    r = qmp_client_ok(h->qmp, "{\"execute\":\"query-memory-devices\"}");
    g_assert_cmpuint(json_array_get_length(json_node_get_array(r)), ==, 1);
    json_node_unref(r);
    r = qmp_client_ok(h->qmp, "{\"execute\":\"object-del\",\"arguments\":"
                      "{\"id\":\"mem1\"}}");
    json_node_unref(r);

    /*
     * The back-end that failed was dropped; its successor gets the table
     * as it is now, boot RAM and dimm0, and the rings run again.
     */
    tb_wait_closed(tb, 1, WAIT_MS);
    tb_wait_rings_started(tb, 2, 2, WAIT_MS);
    hp_assert_tables_equal(h, 2, NULL, NULL);
    hp_finish(h);
}

/* The position of the first request of that kind from index from on, or -1. */
static int hp_msg_pos(TestBackend *tb, unsigned conn, uint32_t request, unsigned from)
{
    for (unsigned i = from;; i++) {
        TbMsg *m = tb_msg_get(tb, conn, i);
        bool hit;

        if (!m) {
            return -1;
        }
        hit = m->request == request;
        tb_msg_free(m);
        if (hit) {
            return (int)i;
        }
    }
}

/*
 * Behind the (identity) IOMMU a back-end may hold translations into a
 * dimm: unplugging it first invalidates the dimm's whole range (acked),
 * and only then removes the region, so the back-end never translates
 * into memory that is gone.
 */
static void test_iommu_invalidate(void)
{
    TbConfig cfg = hp_config(true, 16);
    HpCtx *h;
    TestBackend *tb;
    uint64_t addr = 0;
    int inval = -1, rem;

    cfg.features |= 1ull << VIRTIO_F_IOMMU_PLATFORM;
    cfg.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ;
    h = hp_start_dev(&cfg, true);
    tb = h->t->tb;
    hp_object_add(h, 0, true);
    hp_dimm_add(h, 0);
    {
        VhostUserMemoryRegion want[4];

        hp_vmm_table(h, want, G_N_ELEMENTS(want), "dimm0", &addr);
        g_assert_cmphex(addr, !=, 0);
    }
    hp_dimm_del(h, 0);
    rem = hp_msg_pos(tb, 1, VHOST_USER_REM_MEM_REG, 0);
    g_assert_cmpint(rem, >=, 0);
    for (int i = 0; i < rem; i++) {
        TbMsg *m = tb_msg_get(tb, 1, (unsigned)i);
        VhostUserIotlb io;

        if (m->request == VHOST_USER_IOTLB_MSG) {
            memcpy(&io, m->payload, sizeof(io));
            if (io.type == VHOST_IOTLB_INVALIDATE && io.iova == addr &&
                io.size == DIMM_SIZE) {
                inval = i;
            }
        }
        tb_msg_free(m);
    }
    if (inval < 0) {
        g_error("no IOTLB_MSG invalidating [0x%" PRIx64 ", +0x%llx) before the "
                "REM_MEM_REG (message %d)", addr, (unsigned long long)DIMM_SIZE, rem);
    }
    tb_assert_no_violations(tb);
    hp_finish(h);
}

/* ---- the monitor itself -------------------------------------------------- */

static void test_qmp_protocol(void)
{
    TbConfig cfg = hp_config(true, 16);
    HpCtx *h = hp_start(&cfg);
    g_autofree char *line = NULL;
    g_autofree char *desc = NULL;
    JsonNode *r;

    r = qmp_client_ok(h->qmp, "{\"execute\":\"query-status\"}");
    g_assert_true(json_object_get_boolean_member(json_node_get_object(r), "running"));
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(r), "status"),
                    ==, "running");
    json_node_unref(r);

    g_free(desc);
    desc = qmp_client_fails(h->qmp, "CommandNotFound", "{\"execute\":\"no-such\"}");
    g_assert_nonnull(strstr(desc, "no-such"));
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "CommandNotFound",
                            "{\"execute\":\"qmp_capabilities\"}");
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "GenericError",
                            "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":"
                            "\"memory-backend-memfd\",\"id\":\"m\"}}");
    g_assert_nonnull(strstr(desc, "'size' is missing"));
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "DeviceNotFound", "{\"execute\":\"device_del\","
                            "\"arguments\":{\"id\":\"nope\"}}");
    g_assert_nonnull(strstr(desc, "nope"));
    /*
     * A \u escape cut short before a two-byte character (the fuzz-qmp
     * finding): valid UTF-8 on the wire, not once json-glib has decoded
     * it. Refused before the command runs; device_del would echo the id.
     */
    qmp_client_send_raw(h->qmp, "{\"execute\":\"device_del\",\"arguments\":"
                        "{\"id\":\"\\u00e\xc7\xa3\xdd\x8c\"}}\n");
    line = qmp_client_read_raw(h->qmp);
    g_assert_nonnull(line);
    g_assert_nonnull(strstr(line, "not valid UTF-8"));
    g_clear_pointer(&line, g_free);

    /* Bad JSON gets an error, and the session goes on. */
    qmp_client_send_raw(h->qmp, "{\"execute\": }\n");
    line = qmp_client_read_raw(h->qmp);
    g_assert_nonnull(line);
    g_assert_nonnull(strstr(line, "\"error\""));
    /* No framing: two commands in one write, one command in two writes. */
    qmp_client_send_raw(h->qmp, "{\"execute\":\"query-status\",\"id\":\"a\"}"
                        "{\"execute\":\"query-status\",\"id\":\"b\"}{\"exec");
    for (unsigned i = 0; i < 2; i++) {
        g_free(line);
        line = qmp_client_read_raw(h->qmp);
        g_assert_nonnull(line);
        g_assert_nonnull(strstr(line, i ? "\"id\":\"b\"" : "\"id\":\"a\""));
    }
    qmp_client_send_raw(h->qmp, "ute\":\"query-status\",\"id\":{\"n\":[1,\"}\"]}}");
    g_free(line);
    line = qmp_client_read_raw(h->qmp);
    g_assert_nonnull(line);
    g_assert_nonnull(strstr(line, "\"return\""));
    g_assert_nonnull(strstr(line, "\"id\":{\"n\":[1,\"}\"]}"));
    r = qmp_client_ok(h->qmp, "{\"execute\":\"query-memory-devices\"}");
    g_assert_cmpuint(json_array_get_length(json_node_get_array(r)), ==, 0);
    json_node_unref(r);

    /* share=off: refused at device_add, naming the object and why. */
    hp_object_add(h, 1, false);
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "GenericError",
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pc-dimm\","
        "\"id\":\"dimm1\",\"memdev\":\"mem1\"}}");
    g_test_message("share=off refused: %s", desc);
    g_assert_nonnull(strstr(desc, "mem1"));
    g_assert_nonnull(strstr(desc, "share=off"));
    g_assert_cmpuint(tb_msg_count(h->t->tb, 1, VHOST_USER_ADD_MEM_REG), ==, 1);
    /*
     * A memfd with share=false is made (mapped private), as -object makes
     * it: only plugging it under a vhost-user device is refused.
     */
    r = qmp_client_ok(h->qmp, "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":"
                      "\"memory-backend-memfd\",\"id\":\"memp\",\"size\":%llu,"
                      "\"share\":false}}", (unsigned long long)DIMM_SIZE);
    json_node_unref(r);
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "GenericError",
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"pc-dimm\","
        "\"id\":\"dimmp\",\"memdev\":\"memp\"}}");
    g_test_message("memfd share=off refused: %s", desc);
    g_assert_nonnull(strstr(desc, "memp"));
    g_assert_nonnull(strstr(desc, "share=off"));
    r = qmp_client_ok(h->qmp, "{\"execute\":\"object-del\",\"arguments\":{\"id\":\"memp\"}}");
    json_node_unref(r);
    g_assert_cmpuint(tb_msg_count(h->t->tb, 1, VHOST_USER_ADD_MEM_REG), ==, 1);

    /* An explicit address; a busy memdev; an overlap; object-del in use. */
    hp_object_add(h, 2, true);
    r = qmp_client_ok(h->qmp, "{\"execute\":\"device_add\",\"arguments\":{\"driver\":"
                      "\"pc-dimm\",\"id\":\"dimm2\",\"memdev\":\"mem2\",\"addr\":%llu}}",
                      (unsigned long long)(1ull << 32));
    json_node_unref(r);
    hp_check_pattern(h, 2, 1ull << 32);
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "GenericError", "{\"execute\":\"device_add\","
                            "\"arguments\":{\"driver\":\"pc-dimm\",\"id\":\"dimm3\","
                            "\"memdev\":\"mem2\"}}");
    g_assert_nonnull(strstr(desc, "already in use"));
    hp_object_add(h, 3, true);
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "GenericError", "{\"execute\":\"device_add\","
                            "\"arguments\":{\"driver\":\"pc-dimm\",\"id\":\"dimm3\","
                            "\"memdev\":\"mem3\",\"addr\":%llu}}",
                            (unsigned long long)((1ull << 32) + 4096));
    g_test_message("overlap refused: %s", desc);
    g_assert_nonnull(strstr(desc, "overlaps"));
    g_free(desc);
    desc = qmp_client_fails(h->qmp, "GenericError", "{\"execute\":\"object-del\","
                            "\"arguments\":{\"id\":\"mem2\"}}");
    g_assert_nonnull(strstr(desc, "in use"));
    hp_assert_tables_equal(h, 1, NULL, NULL);

    /*
     * Input nested without bound is refused and the client dropped; the
     * monitor then takes the next client, which finds the state intact.
     */
    {
        g_autofree char *deep = g_strnfill(100, '[');
        g_autofree char *bye = NULL;

        qmp_client_send_raw(h->qmp, deep);
        bye = qmp_client_read_raw(h->qmp);
        g_assert_nonnull(bye);
        g_assert_nonnull(strstr(bye, "nesting too deep"));
        g_assert_null(qmp_client_read_raw(h->qmp));
        qmp_client_free(h->qmp);
        h->qmp = qmp_client_connect(h->qmp_path, WAIT_MS);
        r = qmp_client_ok(h->qmp, "{\"execute\":\"query-memory-devices\"}");
        g_assert_cmpuint(json_array_get_length(json_node_get_array(r)), ==, 1);
        json_node_unref(r);
    }

    /* quit: the reply, then the VMM exits 0 by itself. */
    r = qmp_client_ok(h->qmp, "{\"execute\":\"quit\"}");
    json_node_unref(r);
    wait_stderr_n(h->t, "net0: stopped 2 rings", 1);
    g_assert_cmpint(hp_wait_exit(h->t->vmm), ==, 0);
    /* A query to a VMM that is gone: NULL, not a failure, with _or_gone. */
    g_assert_null(qmp_client_ok_or_gone(h->qmp, "{\"execute\":\"query-status\"}"));
    qmp_client_free(h->qmp);
    test_teardown(h->t);
    g_free(h->qmp_path);
    g_free(h);
}

/*
 * -qmp spellings: errors are reported by name (exit 1); the legacy
 * "server,nowait" works; wait=on (the default) holds start-up until a
 * client connects.
 */
static void test_qmp_options(void)
{
    static const char *const bad[][2] = {
        { "unix:/tmp/x.sock", "only server=on" },
        { "tcp:localhost:4444,server=on", "expects unix:PATH" },
        { "unix:/tmp/x.sock,server=on,wait=off,wait=on", "given twice" },
        { "unix:/tmp/x.sock,server=on,bogus=1", "unknown parameter 'bogus'" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *args[] = { "-qmp", bad[i][0], NULL };
        QtestVmm *vmm = qtest_vmm_spawn(args);

        if (!qtest_vmm_wait_stderr_count(vmm, bad[i][1], 1, WAIT_MS)) {
            g_autofree char *all = qtest_vmm_stderr(vmm);

            g_error("-qmp %s: expected an error with \"%s\", got:\n%s", bad[i][0],
                    bad[i][1], all);
        }
        g_assert_cmpint(hp_wait_exit(vmm), ==, 1);
        qtest_vmm_free(vmm);
    }

    for (unsigned legacy = 0; legacy < 2; legacy++) {
        g_autofree char *path = g_strdup_printf("%s/opt%u.sock", g_getenv(TEST_DIR_ENV),
                                                legacy);
        g_autofree char *arg = g_strdup_printf("unix:%s,%s", path,
                                               legacy ? "server,nowait" : "server=on");
        const char *args[] = { "-qmp", arg, NULL };
        QtestVmm *vmm = qtest_vmm_spawn(args);
        QmpClient *qmp;
        JsonNode *r;

        if (!legacy) {
            qtest_vmm_wait_for_stderr_line(vmm, "qmp: waiting for a client", WAIT_MS);
            g_usleep(200 * 1000);
            g_assert_cmpuint(qtest_vmm_count_stderr(vmm, "vhost-user-vmm: ready"), ==, 0);
        }
        qmp = qmp_client_connect(path, WAIT_MS);
        qtest_vmm_wait_for_stderr_line(vmm, "vhost-user-vmm: ready", WAIT_MS);
        r = qmp_client_ok(qmp, "{\"execute\":\"query-status\"}");
        json_node_unref(r);
        qmp_client_free(qmp);
        g_assert_cmpint(qtest_vmm_terminate(vmm, WAIT_MS), ==, 0);
        qtest_vmm_free(vmm);
        /* The monitor removes its socket at exit. */
        g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Created now so that it does not count as an fd leaked by a test. */
    g_main_context_default();
    signal(SIGPIPE, SIG_IGN);

    ADD_VOID_TEST("/memhotplug/many-regions", test_many_regions);
    ADD_VOID_TEST("/memhotplug/set-mem-table-limit", test_set_mem_table_limit);
    ADD_VOID_TEST("/memhotplug/reconnect-fewer-slots", test_reconnect_fewer_slots);
    ADD_VOID_TEST("/memhotplug/backend-refuses", test_backend_refuses);
    ADD_VOID_TEST("/memhotplug/iommu-invalidate", test_iommu_invalidate);
    ADD_VOID_TEST("/memhotplug/qmp-protocol", test_qmp_protocol);
    ADD_VOID_TEST("/memhotplug/qmp-options", test_qmp_options);
    return g_test_run();
}
