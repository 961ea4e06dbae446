/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Recovery time after a back-end crash or upgrade: from the moment the
 * back-end listens again to the moment every ring of the device runs again
 * on the new connection, for our VMM with reconnect-ms=1.
 *
 * The back-end is the qtest test back-end (tests/qtest/test-backend.c) in
 * this process, so both ends of the measurement are taken here: t0 right
 * before the socket is bound and listening, t1 when the back-end has
 * handled the last SET_VRING_ENABLE of the new connection. A "downtime" D
 * is how long the socket is gone (the back-end closed the connection and
 * removed its listener) before it comes back; D = 0 is a crash of the
 * connection alone, the listener staying.
 *
 * The anchor is QEMU 7.2, whose minimum is reconnect=1 (seconds): it
 * retries at a fixed 1 s interval after the disconnect. With
 * BENCH_QEMU=/path/to/qemu-system-x86_64 it is also measured, with a
 * vhost-user-blk device against the same back-end. QEMU without a guest
 * never starts rings, so its figure is the time to its socket connect (a
 * lower bound of its recovery); the table also says whether QEMU then
 * negotiated on that connection at all (7.2 does not for a device that
 * was never started: its close path skips the callback that re-installs
 * the device's event handler when vhost_dev->vdev is NULL).
 *
 * Usage: VMM_BINARY=build/vhost-user-vmm bench-reconnect
 *   BENCH_RUNS (default 15), BENCH_DOWNTIMES (ms, default "0 10 100 500 1500"),
 *   BENCH_QEMU (unset: QEMU not measured), BENCH_SOCK_DIR (the socket's
 *   directory; default: a new one under $TMPDIR, removed at the end).
 * The table goes to stdout, progress to stderr.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "util/vhost-user-msg.h"
#include "qtest-vmm.h"
#include "test-backend.h"

#define BENCH_WAIT_MS 10000

typedef struct Bench {
    char *dir;
    TbConfig cfg;
    TestBackend *tb;
    QtestVmm *vmm;
    bool qemu;                  /* the VMM is QEMU: see bench_is_up */
    bool booted;                /* the VMM's first connection is up */
    unsigned rings;
} Bench;

typedef struct BenchUp {
    Bench *b;
    unsigned conn;
} BenchUp;

static bool bench_is_up(TestBackend *tb, void *opaque)
{
    const BenchUp *u = opaque;

    if (u->b->qemu) {
        /* Its first connection negotiates; later ones: see the header. */
        return !u->b->booted ? tb_msg_count(tb, 1, VHOST_USER_GET_CONFIG) > 0
                             : tb_conn_count(tb) >= u->conn;
    }
    return tb_rings_started(tb, u->conn) == u->b->rings &&
           tb_rings_enabled(tb, u->conn) == u->b->rings;
}

static void bench_wait_up(Bench *b, unsigned conn)
{
    BenchUp u = { b, conn };

    if (!tb_wait_until(b->tb, bench_is_up, &u, BENCH_WAIT_MS)) {
        TbMsg *m;

        fprintf(stderr, "bench-reconnect: connection %u did not come up within %d ms; "
                "it received:", conn, BENCH_WAIT_MS);
        for (unsigned i = 0; (m = tb_msg_get(b->tb, conn, i)); i++) {
            fprintf(stderr, " %s", vhost_user_request_name(VHOST_USER_CHANNEL_FRONTEND,
                                                           m->request));
            tb_msg_free(m);
        }
        fprintf(stderr, "\n");
        /* The VMM dies with us (PR_SET_PDEATHSIG); the socket goes with the back-end. */
        tb_free(b->tb);
        g_rmdir(b->dir);
        exit(1);
    }
}

static void bench_listen(Bench *b)
{
    b->tb = tb_new(b->dir, "vhost.sock", &b->cfg);
}

/* One crash of the back-end with downtime ms; returns the recovery in ms. */
static double bench_one(Bench *b, unsigned downtime_ms)
{
    gint64 t0;
    unsigned conn;

    if (downtime_ms == 0) {
        conn = tb_conn_count(b->tb);
        t0 = g_get_monotonic_time();
        tb_disconnect(b->tb, conn);
        conn++;
    } else {
        tb_free(b->tb);
        g_usleep((gulong)downtime_ms * 1000);
        t0 = g_get_monotonic_time();
        bench_listen(b);
        conn = 1;
    }
    bench_wait_up(b, conn);
    return (g_get_monotonic_time() - t0) / 1000.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void bench_start(Bench *b, const char *binary, bool qemu)
{
    g_autofree char *chardev = NULL;
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);

    b->qemu = qemu;
    bench_listen(b);
    if (qemu) {
        chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect=1",
                                  tb_socket_path(b->tb));
        for (const char *const *a = (const char *const[]){
                 "-M", "q35", "-S", "-display", "none", "-monitor", "none",
                 "-serial", "none", "-nodefaults", "-m", "64M",
                 "-object", "memory-backend-memfd,id=mem,size=64M,share=on",
                 "-machine", "memory-backend=mem", "-chardev", NULL }; *a; a++) {
            g_ptr_array_add(args, g_strdup(*a));
        }
        g_ptr_array_add(args, g_strdup(chardev));
        g_ptr_array_add(args, g_strdup("-device"));
        g_ptr_array_add(args, g_strdup("vhost-user-blk-pci,chardev=c0,num-queues=1"));
    } else {
        chardev = g_strdup_printf("socket,id=c0,path=%s,reconnect-ms=1",
                                  tb_socket_path(b->tb));
        for (const char *const *a = (const char *const[]){
                 "-m", "64M", "-object", "memory-backend-memfd,id=mem,size=64M,share=on",
                 "-machine", "memory-backend=mem", "-netdev",
                 "vhost-user,id=net0,chardev=c0,queues=2", "-device",
                 "virtio-net-pci,netdev=net0,mq=on", "-chardev", NULL }; *a; a++) {
            g_ptr_array_add(args, g_strdup(*a));
        }
        g_ptr_array_add(args, g_strdup(chardev));
    }
    g_setenv("VMM_BINARY", binary, TRUE);
    b->booted = false;
    b->vmm = qtest_vmm_spawnv(args);
    bench_wait_up(b, 1);
    b->booted = true;
}

static void bench_stop(Bench *b)
{
    qtest_vmm_terminate(b->vmm, BENCH_WAIT_MS);
    qtest_vmm_free(b->vmm);
    b->vmm = NULL;
    tb_free(b->tb);
    b->tb = NULL;
}

/* Median, p90 and max of runs recoveries, into out[3]. */
static void bench_series(Bench *b, unsigned downtime, unsigned runs, double out[3])
{
    g_autofree double *v = g_new(double, runs);

    for (unsigned i = 0; i < runs; i++) {
        v[i] = bench_one(b, downtime);
        fprintf(stderr, "  %s downtime %u ms run %u: %.2f ms\n",
                b->qemu ? "qemu" : "ours", downtime, i + 1, v[i]);
    }
    qsort(v, runs, sizeof(*v), cmp_double);
    out[0] = v[runs / 2];
    out[1] = v[MIN(runs - 1, (runs * 9 + 9) / 10 - 1)];
    out[2] = v[runs - 1];
}

/* QEMU 7.2's fixed 1 s retry: the first one 1 s after the disconnect. */
static double qemu_model_ms(unsigned downtime)
{
    return 1000.0 - (double)(downtime % 1000);
}

int main(int argc, char **argv)
{
    const char *vmm = g_getenv("VMM_BINARY");
    const char *qemu = g_getenv("BENCH_QEMU");
    const char *runs_env = g_getenv("BENCH_RUNS");
    g_auto(GStrv) downs = g_strsplit(g_getenv("BENCH_DOWNTIMES") ?
                                     g_getenv("BENCH_DOWNTIMES") : "0 10 100 500 1500",
                                     " ", -1);
    unsigned runs = runs_env ? (unsigned)atoi(runs_env) : 15;
    g_autoptr(GError) err = NULL;
    Bench b = { 0 };
    GArray *ours = g_array_new(FALSE, FALSE, sizeof(double) * 3);
    GArray *theirs = g_array_new(FALSE, FALSE, sizeof(double) * 3);
    GArray *dts = g_array_new(FALSE, FALSE, sizeof(unsigned));
    FILE *table;
    unsigned qemu_negotiated = 0;

    if (!vmm || !*vmm || runs == 0) {
        fprintf(stderr, "usage: VMM_BINARY=.../vhost-user-vmm [BENCH_RUNS=N] "
                "[BENCH_DOWNTIMES='0 10 ...'] [BENCH_QEMU=qemu-system-x86_64] %s\n",
                argv[0]);
        return 2;
    }
    /* The test helpers log with g_test_message on stdout: keep it for the table. */
    table = fdopen(dup(STDOUT_FILENO), "w");
    dup2(STDERR_FILENO, STDOUT_FILENO);
    signal(SIGPIPE, SIG_IGN);
    g_main_context_default();

    /* bench-reconnect.sh passes a directory it removes whatever happens. */
    b.dir = g_strdup(g_getenv("BENCH_SOCK_DIR"));
    if (!b.dir) {
        b.dir = g_dir_make_tmp("bench-reconnect-XXXXXX", &err);
        g_assert_no_error(err);
    }
    tb_config_default(&b.cfg);
    b.cfg.queue_num = 2;
    memset(b.cfg.config, 0, sizeof(b.cfg.config));
    b.cfg.config[0] = 8;        /* virtio-blk capacity: 8 sectors */
    b.rings = 4;

    for (unsigned i = 0; downs[i]; i++) {
        unsigned d;

        if (!*downs[i]) {
            continue;
        }
        d = (unsigned)atoi(downs[i]);
        g_array_append_val(dts, d);
    }

    bench_start(&b, vmm, false);
    for (unsigned i = 0; i < dts->len; i++) {
        double r[3];

        bench_series(&b, g_array_index(dts, unsigned, i), runs, r);
        g_array_append_vals(ours, r, 1);
    }
    bench_stop(&b);

    if (qemu && *qemu) {
        bench_start(&b, qemu, true);
        for (unsigned i = 0; i < dts->len; i++) {
            double r[3];

            /* A second apart each: QEMU's timer makes every run ~1 s anyway. */
            bench_series(&b, g_array_index(dts, unsigned, i), MIN(runs, 5u), r);
            g_array_append_vals(theirs, r, 1);
        }
        /* Long enough for a negotiation that is coming at all. */
        g_usleep(2 * G_USEC_PER_SEC);
        qemu_negotiated = tb_msg_count(b.tb, tb_conn_count(b.tb), 0);
        bench_stop(&b);
    }
    g_rmdir(b.dir);

    fprintf(table, "Back-end restart -> rings running again (ms, %u runs; ours: net, 2 "
            "queue pairs, reconnect-ms=1)\n\n", runs);
    fprintf(table, "| downtime | ours median | ours p90 | ours max | QEMU 7.2 reconnect=1 "
            "(1 s timer) |%s\n", qemu && *qemu ? " QEMU 7.2 measured: socket connect, median |"
                                             : "");
    fprintf(table, "|---:|---:|---:|---:|---:|%s\n", qemu && *qemu ? "---:|" : "");
    for (unsigned i = 0; i < dts->len; i++) {
        const double *r = (const double *)(void *)(ours->data + i * sizeof(double) * 3);
        unsigned d = g_array_index(dts, unsigned, i);

        fprintf(table, "| %u ms%s | %.1f | %.1f | %.1f | %.0f |", d,
                d ? "" : " (listener stays)", r[0], r[1], r[2], qemu_model_ms(d));
        if (theirs->len > i) {
            const double *q = (const double *)(void *)(theirs->data + i * sizeof(double) * 3);

            fprintf(table, " %.1f |", q[0]);
        }
        fprintf(table, "\n");
    }
    if (qemu && *qemu) {
        fprintf(table, "\nQEMU 7.2 after its reconnects: %u vhost-user messages on its last "
                "connection within 2 s (%s)\n", qemu_negotiated,
                qemu_negotiated ? "it negotiated again" :
                "the socket is back but the device never negotiates again: lost reconnect");
    }
    fclose(table);
    g_array_unref(ours);
    g_array_unref(theirs);
    g_array_unref(dts);
    g_free(b.dir);
    return 0;
}
