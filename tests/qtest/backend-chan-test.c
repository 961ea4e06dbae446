/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The back-end channel (BACKEND_REQ) through the real VMM: the test
 * back-end negotiates it, keeps the channel from SET_BACKEND_REQ_FD and
 * sends back-end requests (test-backend-chan.c); the VMM under test must
 * answer each (NEED_REPLY), act on it (IOTLB updates, config re-read,
 * host notifier mapping, in-band call/err, shared objects), survive the
 * malformed ones by dropping and re-making the connection without leaking
 * an fd, and never deadlock when a back-end request arrives while it
 * waits for a reply of its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "util/vhost-user-msg.h"
#include "hw/virtio/virtio.h"
#include "qtest-harness.h"
#include "test-backend-chan.h"

#define CHAN_PF ((1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) | \
                 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD) | \
                 (1ull << VHOST_USER_PROTOCOL_F_HOST_NOTIFIER) | \
                 (1ull << VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS) | \
                 (1ull << VHOST_USER_PROTOCOL_F_SHARED_OBJECT) | \
                 (1ull << VHOST_USER_PROTOCOL_F_STATUS))
#define REPLY_MS            3000
#define BLK_CAPACITY        2048u
#define STATUS_FEATURES_OK  (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
                             VIRTIO_CONFIG_S_FEATURES_OK)

static const uint8_t test_uuid[16] = {
    0x6c, 0x1f, 0x3b, 0x2a, 0x90, 0x41, 0x4e, 0x8d,
    0xa7, 0x55, 0x02, 0x13, 0xc4, 0x9e, 0x71, 0x08,
};

/* The test back-end with the channel's protocol features (and IOMMU_PLATFORM). */
static void chan_config(TbConfig *cfg, bool iommu)
{
    uint64_t capacity = GUINT64_TO_LE(BLK_CAPACITY);

    tb_config_default(cfg);
    cfg->protocol_features |= CHAN_PF;
    if (iommu) {
        cfg->features |= 1ull << VIRTIO_F_IOMMU_PLATFORM;
    }
    memcpy(cfg->config, &capacity, sizeof(capacity));
}

/* Spawns net0 (2 rings) or blk0 (1 ring) on t's back-end, with the trace on. */
static void spawn_vmm(TestCtx *t, bool blk, const char *devopts)
{
    add_machine_args(t, "memfd");
    add_client_chardev(t, true);
    if (blk) {
        add_arg(t, "-device");
        add_arg(t, "vhost-user-blk-pci,chardev=chr0%s", devopts);
    } else {
        add_arg(t, "-netdev");
        add_arg(t, "vhost-user,id=net0,chardev=chr0,queues=1");
        add_arg(t, "-device");
        add_arg(t, "virtio-net-pci,netdev=net0%s", devopts);
    }
    add_arg(t, "-trace");
    add_arg(t, "vhost_user");
    t->vmm = current_vmm = qtest_vmm_spawnv(t->args);
}

/* The same, waiting until every ring runs on connection 1. */
static TestCtx *start_vmm(const TbConfig *cfg, bool blk, const char *devopts)
{
    TestCtx *t = test_setup(cfg, false);

    spawn_vmm(t, blk, devopts);
    wait_stderr_n(t, blk ? "blk0: started 1 rings" : "net0: started 2 rings", 1);
    tb_wait_rings_started(t->tb, 1, blk ? 1 : 2, WAIT_MS);
    return t;
}

static VhostUserVringAddr ring_addr(TestCtx *t, unsigned conn, unsigned ring)
{
    TbMsg *m = tb_msg_find(t->tb, conn, VHOST_USER_SET_VRING_ADDR, (int)ring);
    VhostUserVringAddr a;

    g_assert_nonnull(m);
    g_assert_cmpuint(m->size, ==, sizeof(a));
    memcpy(&a, m->payload, sizeof(a));
    tb_msg_free(m);
    return a;
}

static uint64_t acked_features(TestCtx *t, unsigned conn)
{
    TbMsg *m = tb_msg_find(t->tb, conn, VHOST_USER_SET_FEATURES, -1);
    uint64_t f;

    g_assert_nonnull(m);
    memcpy(&f, m->payload, sizeof(f));
    tb_msg_free(m);
    return f;
}

/* Index of the first VMM stderr line holding both a and b (-1: none). */
static int stderr_line_index(TestCtx *t, const char *a, const char *b)
{
    g_autofree char *all = qtest_vmm_stderr(t->vmm);
    g_auto(GStrv) lines = g_strsplit(all, "\n", -1);

    for (int i = 0; lines[i]; i++) {
        if (strstr(lines[i], a) && (!b || strstr(lines[i], b))) {
            return i;
        }
    }
    return -1;
}

/* ---- IOTLB ------------------------------------------------------------ */

static void test_iotlb_miss(void)
{
    TbConfig cfg;
    TestCtx *t;
    TbChan *ch;
    VhostUserVringAddr a;
    VhostUserIotlb m, upd;
    uint64_t gpa;

    chan_config(&cfg, true);
    t = start_vmm(&cfg, false, ",iommu_platform=on");
    g_assert_true(acked_features(t, 1) & (1ull << VIRTIO_F_IOMMU_PLATFORM));
    /* Behind the IOMMU the rings are given as IOVAs: guest physical addresses. */
    a = ring_addr(t, 1, 0);
    if (a.desc_user_addr >= RAM_SIZE || a.used_user_addr >= RAM_SIZE ||
        a.avail_user_addr >= RAM_SIZE) {
        g_error("SET_VRING_ADDR desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64
                ": with IOMMU_PLATFORM acked these must be IOVAs (= GPAs below 0x%llx)",
                a.desc_user_addr, a.avail_user_addr, a.used_user_addr, RAM_SIZE);
    }

    ch = tb_chan_open(t->tb, 1, WAIT_MS);
    /* A miss as DPDK sends it: no NEED_REPLY, the update is the answer. */
    m = tb_chan_iotlb(VHOST_IOTLB_MISS, a.desc_user_addr, 0, VHOST_ACCESS_RO);
    g_assert_true(tb_chan_send(ch, VHOST_USER_BACKEND_IOTLB_MSG, VHOST_USER_VERSION,
                               &m, sizeof(m), NULL, 0));
    tb_wait_msg(t->tb, 1, VHOST_USER_IOTLB_MSG, 1, WAIT_MS);
    g_assert_true(tb_iotlb_msg_get(t->tb, 1, VHOST_IOTLB_UPDATE, 0, &upd));
    g_assert_cmphex(upd.iova, ==, a.desc_user_addr);
    g_assert_cmpuint(upd.size, >, 0);
    g_assert_cmphex(upd.iova + upd.size, <=, RAM_SIZE);
    g_assert_cmpuint(upd.perm, ==, VHOST_ACCESS_RW);
    /* uaddr is the VMM's address of that very GPA, per the memory table. */
    g_assert_true(tb_uva_to_gpa(t->tb, 1, upd.uaddr, &gpa));
    g_assert_cmphex(gpa, ==, upd.iova);
    g_assert_true(tb_uva_to_gpa(t->tb, 1, upd.uaddr + upd.size - 1, &gpa));
    g_assert_cmphex(gpa, ==, upd.iova + upd.size - 1);

    /* Outside guest RAM there is no translation: a failed ack, no update. */
    m = tb_chan_iotlb(VHOST_IOTLB_MISS, 1ull << 40, 0, VHOST_ACCESS_WO);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_IOTLB_MSG, &m, sizeof(m),
                                  NULL, 0, NULL, REPLY_MS), !=, 0);
    wait_stderr_both(t, "net0: IOTLB miss at iova 0x10000000000", "not guest RAM");
    m = tb_chan_iotlb(VHOST_IOTLB_ACCESS_FAIL, 0x200000, 0x1000, VHOST_ACCESS_WO);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_IOTLB_MSG, &m, sizeof(m),
                                  NULL, 0, NULL, REPLY_MS), ==, 0);
    wait_stderr_both(t, "net0: IOTLB access failed: iova 0x200000 size 0x1000",
                     "(write)");
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_IOTLB_MSG), ==, 1);

    /* The trace decodes both sides of the exchange. */
    wait_stderr_both(t, "B>F backend-chan IOTLB_MSG", "type=MISS");
    wait_stderr_both(t, "F>B IOTLB_MSG", "type=UPDATE");
    wait_stderr_both(t, "F>B backend-chan IOTLB_MSG flags=0x5", "u64=0x1");
    g_assert_true(qtest_vmm_is_alive(t->vmm));

    tb_chan_free(ch);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_iommu_platform_off(void)
{
    TbConfig cfg;
    TestCtx *t;
    VhostUserVringAddr a;
    uint64_t gpa;

    /* Offered by the back-end, not asked for: stays off, addresses are ours. */
    chan_config(&cfg, true);
    t = start_vmm(&cfg, false, "");
    g_assert_false(acked_features(t, 1) & (1ull << VIRTIO_F_IOMMU_PLATFORM));
    a = ring_addr(t, 1, 0);
    g_assert_true(tb_uva_to_gpa(t->tb, 1, a.desc_user_addr, &gpa));
    g_assert_cmphex(a.desc_user_addr, !=, gpa);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

static void test_iommu_platform_not_offered(void)
{
    TbConfig cfg;
    TestCtx *t;

    chan_config(&cfg, false);
    t = test_setup(&cfg, false);
    spawn_vmm(t, false, ",iommu_platform=on");
    wait_stderr_both(t, "net0: error:", "iommu_platform=on but the back-end does not "
                     "offer VIRTIO_F_IOMMU_PLATFORM");
    g_usleep(300 * 1000);
    g_assert_true(qtest_vmm_is_alive(t->vmm));
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_SET_FEATURES), ==, 0);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- Back-end requests while the VMM waits for a reply ---------------- */

typedef struct NestedCase {
    TestBackend *tb;
    uint32_t trigger;           /* the front-end request whose reply waits */
    uint32_t request;           /* what the back-end sends meanwhile */
    uint64_t iova;
    gint done;                  /* 1 once the hook has run */
    bool answered;
    uint64_t status;
    char *why;
} NestedCase;

/*
 * In the back-end thread, before the trigger's reply: a back-end request
 * with NEED_REPLY, whose answer must arrive while the VMM still waits.
 */
static TbAction nested_hook(TestBackend *tb, unsigned conn, const TbMsg *msg,
                            void *opaque)
{
    NestedCase *nc = opaque;
    TbAction none = { TB_FAULT_NONE, 0, 0 };
    VhostUserIotlb m = tb_chan_iotlb(VHOST_IOTLB_MISS, nc->iova, 0, VHOST_ACCESS_RW);
    TbChan *ch;

    if (conn != 1 || msg->request != nc->trigger || g_atomic_int_get(&nc->done)) {
        return none;
    }
    ch = tb_chan_open(tb, conn, REPLY_MS);
    if (!tb_chan_send(ch, nc->request, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
                      nc->request == VHOST_USER_BACKEND_IOTLB_MSG ? &m : NULL,
                      nc->request == VHOST_USER_BACKEND_IOTLB_MSG ? sizeof(m) : 0,
                      NULL, 0)) {
        nc->why = g_strdup(g_strerror(errno));
    } else {
        nc->answered = tb_chan_recv_reply(ch, nc->request, &nc->status, NULL, REPLY_MS,
                                          &nc->why);
    }
    tb_chan_free(ch);
    g_atomic_int_set(&nc->done, 1);
    return none;
}

static void nested_check(NestedCase *nc, const char *during)
{
    const char *name = vhost_user_request_name(VHOST_USER_CHANNEL_BACKEND, nc->request);

    if (!g_atomic_int_get(&nc->done)) {
        g_error("the back-end never saw %s", during);
    }
    if (!nc->answered) {
        g_error("%s with NEED_REPLY sent during %s was not answered while the VMM "
                "waited for that reply: %s", name, during, nc->why);
    }
    g_assert_cmpuint(nc->status, ==, 0);
    g_free(nc->why);
}

static void test_iotlb_miss_during_get_vring_base(void)
{
    NestedCase nc = {
        .trigger = VHOST_USER_GET_VRING_BASE, .request = VHOST_USER_BACKEND_IOTLB_MSG,
    };
    TbConfig cfg;
    TestCtx *t;
    int miss, reply;

    chan_config(&cfg, true);
    t = start_vmm(&cfg, false, ",iommu_platform=on");
    nc.iova = ring_addr(t, 1, 0).used_user_addr;
    tb_set_hook(t->tb, nested_hook, &nc);

    /*
     * Stopping sends GET_VRING_BASE with the main loop gone: only the
     * request path itself can answer the miss, or both sides wait.
     */
    assert_vmm_stops_cleanly(t);
    nested_check(&nc, "GET_VRING_BASE");
    g_assert_true(tb_ring_stopped(t->tb, 1, 0));
    g_assert_true(tb_ring_stopped(t->tb, 1, 1));
    wait_stderr_n(t, "net0: stopped 2 rings", 1);
    g_assert_cmpint(stderr_line_index(t, "error", NULL), <, 0);
    /* Miss and its answer fall between the request and its reply. */
    miss = stderr_line_index(t, "B>F backend-chan IOTLB_MSG", "type=MISS");
    reply = stderr_line_index(t, "B>F GET_VRING_BASE", NULL);
    g_assert_cmpint(miss, >=, 0);
    g_assert_cmpint(stderr_line_index(t, "F>B GET_VRING_BASE", NULL), <, miss);
    g_assert_cmpint(miss, <, stderr_line_index(t, "F>B backend-chan IOTLB_MSG", NULL));
    g_assert_cmpint(stderr_line_index(t, "F>B backend-chan IOTLB_MSG", NULL), <, reply);
    tb_set_hook(t->tb, NULL, NULL);
    test_teardown(t);
}

static void test_config_change_during_get_config(void)
{
    NestedCase nc = {
        .trigger = VHOST_USER_GET_CONFIG, .request = VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
    };
    g_autofree char *line = g_strdup_printf("blk0: config changed: capacity %u sectors",
                                            BLK_CAPACITY);
    TbConfig cfg;
    TestCtx *t;

    chan_config(&cfg, false);
    t = test_setup(&cfg, false);
    /* In place before the VMM connects: the first GET_CONFIG is at connect. */
    tb_set_hook(t->tb, nested_hook, &nc);
    spawn_vmm(t, true, "");

    wait_stderr_n(t, "blk0: started 1 rings", 1);
    nested_check(&nc, "GET_CONFIG");
    /* Afterwards, from the loop, the config is re-read and reported. */
    tb_wait_msg(t->tb, 1, VHOST_USER_GET_CONFIG, 2, WAIT_MS);
    wait_stderr_n(t, line, 1);
    g_assert_cmpuint(tb_conn_count(t->tb), ==, 1);
    g_assert_cmpint(stderr_line_index(t, "error", NULL), <, 0);
    g_assert_true(qtest_vmm_is_alive(t->vmm));

    assert_vmm_stops_cleanly(t);
    tb_set_hook(t->tb, NULL, NULL);
    test_teardown(t);
}

/* ---- Every request answered ------------------------------------------- */

static void test_need_reply(void)
{
    TbConfig cfg;
    TestCtx *t;
    TbChan *ch;
    VhostUserIotlb miss, fail;
    VhostUserVringArea area, withdraw;
    VhostUserVringState st = tb_chan_vring_state(0, 0);
    VhostUserShared obj;
    int memfd, objfd;
    int lookup_fd = -1;
    const struct {
        uint32_t request;
        const void *payload;
        uint32_t size;
        const int *fd;
        int *reply_fd;
    } reqs[] = {
        { VHOST_USER_BACKEND_IOTLB_MSG, &miss, sizeof(miss), NULL, NULL },
        { VHOST_USER_BACKEND_IOTLB_MSG, &fail, sizeof(fail), NULL, NULL },
        { VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, NULL, 0, NULL, NULL },
        { VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, &area, sizeof(area), &memfd, NULL },
        { VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, &withdraw, sizeof(withdraw),
          NULL, NULL },
        { VHOST_USER_BACKEND_VRING_CALL, &st, sizeof(st), NULL, NULL },
        { VHOST_USER_BACKEND_VRING_ERR, &st, sizeof(st), NULL, NULL },
        { VHOST_USER_BACKEND_SHARED_OBJECT_ADD, &obj, sizeof(obj), &objfd, NULL },
        { VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP, &obj, sizeof(obj), NULL, &lookup_fd },
        { VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE, &obj, sizeof(obj), NULL, NULL },
    };

    chan_config(&cfg, true);
    t = start_vmm(&cfg, true, ",iommu_platform=on");
    /* After the harness counted our fds: these are closed before teardown. */
    memfd = tb_chan_memfd("notifier", 4096);
    objfd = tb_chan_memfd("object", 4096);
    miss = tb_chan_iotlb(VHOST_IOTLB_MISS, 0x100000, 0, VHOST_ACCESS_RW);
    fail = tb_chan_iotlb(VHOST_IOTLB_ACCESS_FAIL, 0x100000, 0x1000, VHOST_ACCESS_RO);
    area = tb_chan_area(0, 4096, 0, false);
    withdraw = tb_chan_area(0, 0, 0, true);
    memcpy(obj.uuid, test_uuid, sizeof(obj.uuid));

    ch = tb_chan_open(t->tb, 1, WAIT_MS);
    for (unsigned i = 0; i < G_N_ELEMENTS(reqs); i++) {
        const char *name = vhost_user_request_name(VHOST_USER_CHANNEL_BACKEND,
                                                   reqs[i].request);
        g_autofree char *traced = g_strdup_printf("F>B backend-chan %s flags=0x5", name);
        unsigned before = qtest_vmm_count_stderr(t->vmm, traced);
        uint64_t status = tb_chan_call(ch, reqs[i].request, reqs[i].payload,
                                       reqs[i].size, reqs[i].fd, reqs[i].fd ? 1 : 0,
                                       reqs[i].reply_fd, REPLY_MS);

        if (status != 0) {
            g_error("request %u (%s) was answered with status %" PRIu64 ", expected 0",
                    i, name, status);
        }
        wait_stderr_n(t, traced, before + 1);
    }
    g_assert_cmpint(lookup_fd, >=, 0);
    close(lookup_fd);
    wait_stderr_n(t, "blk0: host notifier of ring 0 mapped (4096 bytes)", 1);
    wait_stderr_n(t, "blk0: host notifier of ring 0 unmapped", 1);
    wait_stderr_n(t, "blk0: ring 0: the back-end signalled a ring error", 1);
    wait_stderr_n(t, "blk0: config changed: capacity 2048 sectors", 1);
    tb_wait_msg(t->tb, 1, VHOST_USER_IOTLB_MSG, 1, WAIT_MS);
    g_assert_cmpuint(tb_conn_count(t->tb), ==, 1);

    tb_chan_free(ch);
    close(memfd);
    close(objfd);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- Host notifiers --------------------------------------------------- */

static void test_host_notifier(void)
{
    TbConfig cfg;
    TestCtx *t;
    TbChan *ch;
    VhostUserVringArea a = tb_chan_area(1, 4096, 4096, false);
    int fd;

    chan_config(&cfg, false);
    t = start_vmm(&cfg, false, "");
    fd = tb_chan_memfd("notifier", 8192);
    ch = tb_chan_open(t->tb, 1, WAIT_MS);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, &a,
                                  sizeof(a), &fd, 1, NULL, REPLY_MS), ==, 0);
    wait_stderr_n(t, "net0: host notifier of ring 1 mapped (4096 bytes)", 1);
    wait_stderr_both(t, "B>F backend-chan VRING_HOST_NOTIFIER_MSG", "fds=1");
    /* A stopped ring's doorbell goes away before the VMM exits. */
    assert_vmm_stops_cleanly(t);
    wait_stderr_n(t, "net0: host notifier of ring 1 unmapped", 1);
    tb_chan_free(ch);
    close(fd);
    test_teardown(t);
}

/* A malformed back-end request: dropped, reported, reconnected, no fd left. */
typedef struct BadRequestCase {
    const char *name;
    uint32_t request;
    unsigned ring;
    uint64_t size;              /* notifier size */
    uint64_t offset;            /* notifier offset */
    uint64_t fd_size;           /* bytes of each memfd sent */
    unsigned nfds;
    const char *error;          /* what the VMM's error must say */
} BadRequestCase;

static const BadRequestCase bad_request_cases[] = {
    { "host-notifier/bad-offset", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG,
      0, 4096, 100, 8192, 1, "offset 0x64 is not page aligned" },
    { "host-notifier/bad-size", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG,
      0, 100, 0, 8192, 1, "size 100, expected the page size" },
    { "host-notifier/bad-ring", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG,
      7, 4096, 0, 8192, 1, "ring index 7 but the device has 2 rings" },
    { "host-notifier/short-fd", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG,
      0, 4096, 4096, 4096, 1, "exceeds the fd's size 4096" },
    { "vring-call/bad-ring", VHOST_USER_BACKEND_VRING_CALL,
      9, 0, 0, 0, 0, "ring index 9 but the device has 2 rings" },
    { "too-many-fds", VHOST_USER_BACKEND_SHARED_OBJECT_ADD,
      0, 0, 0, 4096, 9, "fds" },
};

static void test_bad_request(gconstpointer data)
{
    const BadRequestCase *bc = data;
    const char *name = vhost_user_request_name(VHOST_USER_CHANNEL_BACKEND, bc->request);
    VhostUserVringArea area = tb_chan_area(bc->ring, bc->size, bc->offset, false);
    VhostUserVringState st = tb_chan_vring_state(bc->ring, 0);
    VhostUserShared obj;
    const void *payload;
    uint32_t size;
    int fds[TB_CHAN_MAX_FDS];
    TbConfig cfg;
    TestCtx *t;
    TbChan *ch;
    int baseline;

    memcpy(obj.uuid, test_uuid, sizeof(obj.uuid));
    switch (bc->request) {
    case VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG:
        payload = &area;
        size = sizeof(area);
        break;
    case VHOST_USER_BACKEND_VRING_CALL:
        payload = &st;
        size = sizeof(st);
        break;
    default:
        payload = &obj;
        size = sizeof(obj);
        break;
    }
    chan_config(&cfg, false);
    t = start_vmm(&cfg, false, "");
    /* Let transient fds (connect, eventfd setup) settle before counting. */
    g_usleep(200 * 1000);
    baseline = qtest_vmm_fd_count(t->vmm);
    g_assert_cmpint(baseline, >, 0);

    ch = tb_chan_open(t->tb, 1, WAIT_MS);
    for (unsigned i = 0; i < bc->nfds; i++) {
        fds[i] = tb_chan_memfd(bc->name, bc->fd_size);
    }
    g_assert_true(tb_chan_send(ch, bc->request,
                               VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
                               payload, size, fds, bc->nfds));
    for (unsigned i = 0; i < bc->nfds; i++) {
        close(fds[i]);
    }
    tb_wait_closed(t->tb, 1, WAIT_MS);
    g_assert_true(tb_chan_wait_closed(ch, WAIT_MS));
    wait_stderr_both(t, "net0: error:", name);
    wait_stderr_both(t, name, bc->error);

    /* Reconnected and running again, with no fd left behind. */
    tb_wait_rings_started(t->tb, 2, 2, WAIT_MS);
    wait_stderr_n(t, "net0: started 2 rings", 2);
    if (!tb_wait_until(t->tb, fd_count_at_most, &baseline, 2000)) {
        g_error("%s: VMM has %d fds after recovery, %d before the bad request",
                bc->name, qtest_vmm_fd_count(t->vmm), baseline);
    }
    g_assert_true(qtest_vmm_is_alive(t->vmm));
    tb_chan_free(ch);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- In-band notifications -------------------------------------------- */

/* The eventfd counter of fd within timeout_ms (0: never signalled). */
static uint64_t eventfd_wait(int fd, unsigned timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    uint64_t v = 0;

    if (poll(&pfd, 1, (int)timeout_ms) == 1 && read(fd, &v, sizeof(v)) != sizeof(v)) {
        v = 0;
    }
    return v;
}

static void test_vring_call_err(void)
{
    VhostUserVringState call = tb_chan_vring_state(1, 0);
    VhostUserVringState err = tb_chan_vring_state(0, 0);
    TbConfig cfg;
    TestCtx *t;
    TbChan *ch;
    int call_fd;

    chan_config(&cfg, false);
    t = start_vmm(&cfg, false, "");
    ch = tb_chan_open(t->tb, 1, WAIT_MS);
    /* Our copy of ring 1's call eventfd: the VMM's VRING_CALL must signal it. */
    call_fd = tb_dup_call_fd(t->tb, 1, 1);
    g_assert_cmpint(call_fd, >=, 0);
    g_assert_cmpuint(eventfd_wait(call_fd, 0), ==, 0);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_VRING_CALL, &call,
                                  sizeof(call), NULL, 0, NULL, REPLY_MS), ==, 0);
    g_assert_cmpuint(eventfd_wait(call_fd, REPLY_MS), >=, 1);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_VRING_ERR, &err,
                                  sizeof(err), NULL, 0, NULL, REPLY_MS), ==, 0);
    wait_stderr_n(t, "net0: ring 0: the back-end signalled a ring error", 1);
    g_assert_cmpuint(qtest_vmm_count_stderr(t->vmm, "ring 1: the back-end signalled"),
                     ==, 0);
    wait_stderr_both(t, "B>F backend-chan VRING_CALL", "idx=1");
    close(call_fd);
    tb_chan_free(ch);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/*
 * Without any back-end channel: every ring gets its err eventfd at start
 * (SET_VRING_ERR with an fd), and a write to it is reported by the VMM,
 * through the library's watch and the vring_error callback.
 */
static void test_vring_err_fd(void)
{
    TbConfig cfg;
    TestCtx *t;
    uint64_t one = 1;
    int err_fd;

    tb_config_default(&cfg);
    t = start_vmm(&cfg, false, "");
    for (unsigned ring = 0; ring < 2; ring++) {
        TbMsg *m = tb_msg_find(t->tb, 1, VHOST_USER_SET_VRING_ERR, (int)ring);
        uint64_t u64;

        g_assert_nonnull(m);
        g_assert_cmpuint(m->nfds, ==, 1);
        g_assert_cmpuint(m->size, ==, sizeof(u64));
        memcpy(&u64, m->payload, sizeof(u64));
        g_assert_cmpuint(u64, ==, ring);
        tb_msg_free(m);
    }
    err_fd = tb_dup_err_fd(t->tb, 1, 1);
    g_assert_cmpint(err_fd, >=, 0);
    g_assert_cmpint(write(err_fd, &one, sizeof(one)), ==, sizeof(one));
    wait_stderr_n(t, "net0: ring 1: the back-end signalled a ring error", 1);
    g_assert_cmpuint(qtest_vmm_count_stderr(t->vmm, "ring 0: the back-end signalled"),
                     ==, 0);
    close(err_fd);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- Shared objects --------------------------------------------------- */

static void test_shared_object(void)
{
    VhostUserShared obj;
    TbConfig cfg;
    TestCtx *t;
    TbChan *ch;
    int fd, got = -1;
    struct stat a, b;

    memcpy(obj.uuid, test_uuid, sizeof(obj.uuid));
    chan_config(&cfg, false);
    t = start_vmm(&cfg, false, "");
    fd = tb_chan_memfd("shared", 4096);
    ch = tb_chan_open(t->tb, 1, WAIT_MS);

    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_ADD, &obj,
                                  sizeof(obj), &fd, 1, NULL, REPLY_MS), ==, 0);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP, &obj,
                                  sizeof(obj), NULL, 0, &got, REPLY_MS), ==, 0);
    /* The lookup hands back the very object that was added. */
    g_assert_cmpint(got, >=, 0);
    g_assert_cmpint(fstat(fd, &a), ==, 0);
    g_assert_cmpint(fstat(got, &b), ==, 0);
    g_assert_cmpuint(a.st_ino, ==, b.st_ino);
    g_assert_cmpuint(a.st_dev, ==, b.st_dev);
    close(got);
    got = -1;

    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE, &obj,
                                  sizeof(obj), NULL, 0, NULL, REPLY_MS), ==, 0);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP, &obj,
                                  sizeof(obj), NULL, 0, &got, REPLY_MS), !=, 0);
    g_assert_cmpint(got, <, 0);
    /* Removing what is gone fails too, and the connection stays. */
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE, &obj,
                                  sizeof(obj), NULL, 0, NULL, REPLY_MS), !=, 0);
    g_assert_cmpuint(tb_conn_count(t->tb), ==, 1);

    /*
     * As the spec has it, ADD with the UUID alone: the back-end exports the
     * object itself. Accepted, owned, and (not fetched from the exporter
     * yet) a lookup does not find an fd; the owner can remove it.
     */
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_ADD, &obj,
                                  sizeof(obj), NULL, 0, NULL, REPLY_MS), ==, 0);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP, &obj,
                                  sizeof(obj), NULL, 0, &got, REPLY_MS), !=, 0);
    g_assert_cmpint(got, <, 0);
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE, &obj,
                                  sizeof(obj), NULL, 0, NULL, REPLY_MS), ==, 0);
    g_assert_cmpuint(tb_conn_count(t->tb), ==, 1);

    tb_chan_free(ch);
    close(fd);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/*
 * Adds objects n, n+1, ... (each with its own memfd) until one is refused
 * or max + 1 were tried; returns how many were accepted.
 */
static unsigned add_objects(TbChan *ch, unsigned first, unsigned max)
{
    unsigned ok = 0;

    for (unsigned i = first; i < first + max + 1; i++) {
        VhostUserShared obj = { 0 };
        int fd = tb_chan_memfd("shared", 4096);
        uint64_t st;

        obj.uuid[0] = 0x5a;
        memcpy(&obj.uuid[8], &i, sizeof(i));
        st = tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_ADD, &obj, sizeof(obj),
                          &fd, 1, NULL, REPLY_MS);
        close(fd);          /* the VMM has its own copy, or none */
        if (st != 0) {
            break;
        }
        ok++;
    }
    return ok;
}

/*
 * One back-end cannot make the VMM hold more than its shared-objects-max
 * objects (each an fd): the default (32) and a configured limit (4). A
 * refused add answers status 1, is logged naming the device and the
 * limit, and the connection stays; after a remove there is room again.
 */
static void test_shared_object_limit(gconstpointer data)
{
    unsigned limit = GPOINTER_TO_UINT(data);
    g_autofree char *opts = limit != 32 ? g_strdup_printf(",shared-objects-max=%u", limit) :
                                          g_strdup("");
    VhostUserShared obj = { 0 };
    TbConfig cfg;
    TestCtx *t;
    TbChan *ch;
    unsigned before, after;

    chan_config(&cfg, false);
    t = start_vmm(&cfg, false, opts);
    ch = tb_chan_open(t->tb, 1, WAIT_MS);
    before = (unsigned)qtest_vmm_fd_count(t->vmm);
    g_assert_cmpuint(add_objects(ch, 0, limit), ==, limit);
    wait_stderr_n(t, "net0: SHARED_OBJECT_ADD: shared object", 1);
    g_assert_cmpint(stderr_line_index(t, "net0: SHARED_OBJECT_ADD", "holds its limit of"), >=, 0);
    /* 16 more refused: the VMM holds none of their fds (a few fds of slack). */
    after = (unsigned)qtest_vmm_fd_count(t->vmm);
    for (unsigned i = 0; i < 16; i++) {
        g_assert_cmpuint(add_objects(ch, 100 + i, 0), ==, 0);
    }
    g_assert_cmpuint((unsigned)qtest_vmm_fd_count(t->vmm), <, after + 8);
    g_assert_cmpuint(after, >=, before + limit);
    g_assert_cmpuint(tb_conn_count(t->tb), ==, 1);

    /* Room again after a remove (object 0's UUID). */
    obj.uuid[0] = 0x5a;
    g_assert_cmpuint(tb_chan_call(ch, VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE, &obj,
                                  sizeof(obj), NULL, 0, NULL, REPLY_MS), ==, 0);
    g_assert_cmpuint(add_objects(ch, 1000, 0), ==, 1);
    g_assert_cmpuint(tb_conn_count(t->tb), ==, 1);

    tb_chan_free(ch);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/*
 * The VMM raises its soft RLIMIT_NOFILE to the hard limit at start-up (as
 * QEMU does): started with a soft limit of 256, it runs with the hard one.
 */
static void test_nofile_raised(void)
{
    struct rlimit mine, low;
    TbConfig cfg;
    TestCtx *t;
    g_autofree char *path = NULL;
    g_autofree char *limits = NULL;
    g_auto(GStrv) lines = NULL;
    unsigned long long soft = 0, hard = 0;
    bool found = false;

    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &mine), ==, 0);
    if (mine.rlim_max <= 256) {
        g_test_fail_printf("the hard RLIMIT_NOFILE here is %llu: cannot tell a raise",
                           (unsigned long long)mine.rlim_max);
        return;
    }
    low = mine;
    low.rlim_cur = 256;
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &low), ==, 0);
    chan_config(&cfg, false);
    t = start_vmm(&cfg, false, "");
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &mine), ==, 0);
    path = g_strdup_printf("/proc/%d/limits", (int)qtest_vmm_pid(t->vmm));
    g_assert_true(g_file_get_contents(path, &limits, NULL, NULL));
    lines = g_strsplit(limits, "\n", -1);
    for (unsigned i = 0; lines[i]; i++) {
        if (g_str_has_prefix(lines[i], "Max open files") &&
            sscanf(lines[i] + strlen("Max open files"), "%llu %llu", &soft, &hard) == 2) {
            found = true;
        }
    }
    g_assert_true(found);
    g_assert_cmpuint(soft, ==, (unsigned long long)mine.rlim_max);
    g_assert_cmpuint(hard, ==, (unsigned long long)mine.rlim_max);
    assert_vmm_stops_cleanly(t);
    test_teardown(t);
}

/* ---- Device status ---------------------------------------------------- */

/* Log indexes of conn's SET_STATUS messages and their values. */
static unsigned status_sequence(TestCtx *t, unsigned conn, unsigned *at, uint64_t *val,
                                unsigned max)
{
    unsigned n = 0;
    TbMsg *m;

    for (unsigned i = 0; (m = tb_msg_get(t->tb, conn, i)); i++) {
        if (m->request == VHOST_USER_SET_STATUS && n < max) {
            at[n] = i;
            memcpy(&val[n], m->payload, sizeof(val[n]));
            n++;
        }
        tb_msg_free(m);
    }
    return n;
}

static unsigned last_index_of(TestCtx *t, unsigned conn, uint32_t request)
{
    unsigned last = 0;
    TbMsg *m;

    for (unsigned i = 0; (m = tb_msg_get(t->tb, conn, i)); i++) {
        if (m->request == request) {
            last = i;
        }
        tb_msg_free(m);
    }
    return last;
}

static void test_set_status(void)
{
    TbConfig cfg;
    TestCtx *t;
    unsigned at[8];
    uint64_t val[8];
    unsigned n;

    chan_config(&cfg, false);
    t = start_vmm(&cfg, false, "");
    n = status_sequence(t, 1, at, val, G_N_ELEMENTS(at));
    g_assert_cmpuint(n, ==, 2);
    /* FEATURES_OK right after SET_FEATURES, DRIVER_OK once every ring runs. */
    g_assert_cmphex(val[0], ==, STATUS_FEATURES_OK);
    g_assert_cmpuint(at[0], >, last_index_of(t, 1, VHOST_USER_SET_FEATURES));
    g_assert_cmphex(val[1], ==, STATUS_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmpuint(at[1], >, last_index_of(t, 1, VHOST_USER_SET_VRING_ENABLE));
    /* SYNC: each was acked before the VMM went on. */
    for (unsigned i = 0; i < n; i++) {
        TbMsg *m = tb_msg_get(t->tb, 1, at[i]);

        g_assert_true(m->flags & VHOST_USER_NEED_REPLY_MASK);
        tb_msg_free(m);
    }

    /* Stopping resets the device status after the rings are stopped. */
    assert_vmm_stops_cleanly(t);
    n = status_sequence(t, 1, at, val, G_N_ELEMENTS(at));
    g_assert_cmpuint(n, ==, 3);
    g_assert_cmphex(val[2], ==, 0);
    g_assert_cmpuint(at[2], >, last_index_of(t, 1, VHOST_USER_GET_VRING_BASE));
    test_teardown(t);
}

/*
 * Two queue pairs, two vhost_devs: DRIVER_OK only once all four rings run,
 * and status 0 (a device reset) only after the last ring's GET_VRING_BASE:
 * the base of a ring read after a reset would mean nothing.
 */
static void test_set_status_mq(void)
{
    TbConfig cfg;
    TestCtx *t;
    unsigned at[8];
    uint64_t val[8];
    unsigned n;

    chan_config(&cfg, false);
    cfg.queue_num = 2;
    t = test_start_net_mq(&cfg, 2);
    wait_stderr_n(t, "net0: started 4 rings", 1);
    tb_wait_rings_started(t->tb, 1, 4, WAIT_MS);
    n = status_sequence(t, 1, at, val, G_N_ELEMENTS(at));
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmphex(val[1], ==, STATUS_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmpuint(at[1], >, last_index_of(t, 1, VHOST_USER_SET_VRING_ENABLE));

    assert_vmm_stops_cleanly(t);
    n = status_sequence(t, 1, at, val, G_N_ELEMENTS(at));
    g_assert_cmpuint(n, ==, 3);
    g_assert_cmphex(val[2], ==, 0);
    g_assert_cmpuint(tb_msg_count(t->tb, 1, VHOST_USER_GET_VRING_BASE), ==, 4);
    g_assert_cmpuint(at[2], >, last_index_of(t, 1, VHOST_USER_GET_VRING_BASE));
    test_teardown(t);
}

int main(int argc, char **argv)
{
    qtest_harness_init(&argc, &argv);

    ADD_VOID_TEST("/backend-chan/iotlb/miss", test_iotlb_miss);
    ADD_VOID_TEST("/backend-chan/set-status-mq", test_set_status_mq);
    ADD_VOID_TEST("/backend-chan/iotlb/miss-during-get-vring-base",
                  test_iotlb_miss_during_get_vring_base);
    ADD_VOID_TEST("/backend-chan/iommu-platform/off", test_iommu_platform_off);
    ADD_VOID_TEST("/backend-chan/iommu-platform/not-offered",
                  test_iommu_platform_not_offered);
    ADD_VOID_TEST("/backend-chan/config-change-during-get-config",
                  test_config_change_during_get_config);
    ADD_VOID_TEST("/backend-chan/need-reply", test_need_reply);
    ADD_VOID_TEST("/backend-chan/host-notifier/good", test_host_notifier);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_request_cases); i++) {
        g_autofree char *path = g_strdup_printf("/backend-chan/%s",
                                                bad_request_cases[i].name);

        add_test_case(path, NULL, test_bad_request, &bad_request_cases[i]);
    }
    ADD_VOID_TEST("/backend-chan/vring-call-err", test_vring_call_err);
    ADD_VOID_TEST("/backend-chan/vring-err-fd", test_vring_err_fd);
    ADD_VOID_TEST("/backend-chan/shared-object", test_shared_object);
    add_test_case("/backend-chan/shared-object-limit/default", NULL,
                  test_shared_object_limit, GUINT_TO_POINTER(32));
    add_test_case("/backend-chan/shared-object-limit/4", NULL, test_shared_object_limit,
                  GUINT_TO_POINTER(4));
    ADD_VOID_TEST("/backend-chan/nofile-raised", test_nofile_raised);
    ADD_VOID_TEST("/backend-chan/set-status", test_set_status);
    return g_test_run();
}
