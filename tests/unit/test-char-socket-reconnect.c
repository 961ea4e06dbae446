/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the unix-socket chardev over many connections: the
 * client's reconnect and its backoff (doubling, capped, restarted by the
 * owner only, stretched by stalls), the server turning a second peer
 * away, and connect/disconnect cycles that must leave no fd behind.
 *
 * The fixture (private loop, raw peer, deadlines) is test-char-socket.c's.
 */
#include <check.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-io.h"
#include "chardev/char-socket-int.h"
#include "chardev/char-socket.h"

#include "test-char-socket.h"

/* ---- reconnect --------------------------------------------------------- */

START_TEST(test_reconnect_late_server)
{
    CharSocket *chr = cs_new_chr(false, 10);
    int lfd, peer;
    gint64 t0;

    ck_assert(char_socket_open(chr, NULL));
    ck_assert(!char_socket_is_connected(chr));
    cs_run_for(100);
    ck_assert_int_eq(cs_rec.opened, 0);
    lfd = cs_raw_listen(cs_sock_path);
    t0 = g_get_monotonic_time();
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    ck_assert_int_le((g_get_monotonic_time() - t0) / 1000, 400);
    peer = cs_raw_accept(lfd);

    /* After a close, a client with reconnect-ms connects again. */
    close(peer);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    ck_assert(cs_run_until(&cs_rec.opened, 2, 2000));
    ck_assert_int_eq(char_socket_connect_count(chr), 2);
    peer = cs_raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_reconnect_backoff_capped)
{
    CharSocketOptions opts = { .id = "chr0", .path = cs_sock_path,
                               .reconnect_ms = 10, .reconnect_max_ms = 40 };
    CharSocket *chr = char_socket_new(&opts, cs_loop, NULL);
    int lfd, peer;
    gint64 t0;

    /* The file is there all along: only the timer can find the listener. */
    lfd = cs_raw_bind(cs_sock_path);
    char_socket_set_handler(chr, cs_on_event, &cs_rec);
    ck_assert(char_socket_open(chr, NULL));
    /*
     * Uncapped, attempts would come at 10, 30, 70, 150, 310, 630, 1270 ms:
     * a server listening from 700 ms would wait ~570 ms. Capped at 40 ms it
     * waits 40 ms at most.
     */
    cs_run_for(700);
    ck_assert_int_eq(listen(lfd, 4), 0);
    t0 = g_get_monotonic_time();
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    ck_assert_int_le((g_get_monotonic_time() - t0) / 1000, 200);
    peer = cs_raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/*
 * A back-end that comes back creates its socket file: the client connects
 * then, not at its next backoff tick. With reconnect-ms=60000 the timer
 * alone would not try again within the test's deadline.
 */
START_TEST(test_reconnect_path_appears)
{
    CharSocketOptions opts = { .id = "chr0", .path = cs_sock_path,
                               .reconnect_ms = 60000, .reconnect_max_ms = 60000 };
    CharSocket *chr = char_socket_new(&opts, cs_loop, NULL);
    int lfd, peer;

    char_socket_set_handler(chr, cs_on_event, &cs_rec);
    ck_assert(char_socket_open(chr, NULL));
    cs_run_for(100);
    ck_assert_int_eq(cs_rec.opened, 0);
    lfd = cs_raw_listen(cs_sock_path);
    ck_assert(cs_run_until(&cs_rec.opened, 1, 5000));
    peer = cs_raw_accept(lfd);

    /* Gone and back again (a new file): found again by its path. */
    close(peer);
    close(lfd);
    unlink(cs_sock_path);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    cs_run_for(50);
    lfd = cs_raw_listen(cs_sock_path);
    ck_assert(cs_run_until(&cs_rec.opened, 2, 5000));
    peer = cs_raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(test_backoff_doubles)
{
    CharSocketOptions opts = { .id = "chr0", .path = cs_sock_path,
                               .reconnect_ms = 100, .reconnect_max_ms = 10000 };
    CharSocket *chr = char_socket_new(&opts, cs_loop, NULL);
    int lfd, peer;
    gint64 t0;

    /* The file is there all along: only the timer can find the listener. */
    lfd = cs_raw_bind(cs_sock_path);
    char_socket_set_handler(chr, cs_on_event, &cs_rec);
    ck_assert(char_socket_open(chr, NULL));
    /* Attempts at 100, 300, 700 ms; then 1500 ms. */
    cs_run_for(750);
    ck_assert_int_eq(listen(lfd, 4), 0);
    t0 = g_get_monotonic_time();
    ck_assert(cs_run_until(&cs_rec.opened, 1, 3000));
    ck_assert_int_ge((g_get_monotonic_time() - t0) / 1000, 500);
    peer = cs_raw_accept(lfd);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/*
 * A peer that accepts and hangs up at once does not restart the backoff:
 * only the owner does, once a connection proved good. Otherwise a
 * back-end failing every bring-up is retried every reconnect_ms forever.
 */
START_TEST(test_backoff_survives_connect)
{
    CharSocketOptions opts = { .id = "chr0", .path = cs_sock_path,
                               .reconnect_ms = 100, .reconnect_max_ms = 10000 };
    CharSocket *chr = char_socket_new(&opts, cs_loop, NULL);
    int lfd = cs_raw_listen(cs_sock_path);
    gint64 delay_ms[4];

    char_socket_set_handler(chr, cs_on_event, &cs_rec);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    for (int i = 0; i < 4; i++) {
        gint64 t0;

        if (i == 3) {
            char_socket_reset_backoff(chr);
        }
        close(cs_raw_accept(lfd));
        ck_assert(cs_run_until(&cs_rec.closed, i + 1, 2000));
        t0 = g_get_monotonic_time();
        ck_assert(cs_run_until(&cs_rec.opened, i + 2, 3000));
        delay_ms[i] = (g_get_monotonic_time() - t0) / 1000;
    }
    /* 100, 200, 400 ms; then 100 again after the reset. */
    ck_assert_int_ge(delay_ms[2], 300);
    ck_assert_int_lt(delay_ms[3], 300);
    close(cs_raw_accept(lfd));
    char_socket_free(chr);
    close(lfd);
}
END_TEST

/*
 * Ends the connection (by a stall of stalled_ms, or, with 0, by the peer
 * closing *peer) and returns how long the reconnect took, in ms; *peer is
 * the newly accepted peer then.
 */
static gint64 drop_and_time_reconnect(CharSocket *chr, int lfd, int stalled_ms, int *peer)
{
    int closed = cs_rec.closed, opened = cs_rec.opened;
    gint64 t0;

    if (stalled_ms) {
        char_socket_note_stall(chr, stalled_ms);
        char_socket_disconnect(chr, "stalled");
    }
    close(*peer);
    ck_assert(cs_run_until(&cs_rec.closed, closed + 1, 2000));
    t0 = g_get_monotonic_time();
    ck_assert(cs_run_until(&cs_rec.opened, opened + 1, 3000));
    *peer = cs_raw_accept(lfd);
    return (g_get_monotonic_time() - t0) / 1000;
}

/* A connected client chardev with these bounds (reconnect-ms 20); *peer, *lfd. */
static CharSocket *stall_chr(int timeout_ms, int reply_timeout_ms, int *peer, int *lfd)
{
    CharSocketOptions opts = { .id = "chr0", .path = cs_sock_path, .reconnect_ms = 20,
                               .timeout_ms = timeout_ms,
                               .reply_timeout_ms = reply_timeout_ms };
    CharSocket *chr = char_socket_new(&opts, cs_loop, NULL);

    *lfd = cs_raw_listen(cs_sock_path);
    char_socket_set_handler(chr, cs_on_event, &cs_rec);
    ck_assert(char_socket_open(chr, NULL));
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));
    *peer = cs_raw_accept(*lfd);
    return chr;
}

/*
 * A connection dropped by a stall (char_socket_note_stall) is retried no
 * sooner than the stall lasted, then twice as late per stall, even when
 * the owner says in between that a bring-up went well; a plain crash in
 * the streak does not cut it short either.
 */
START_TEST(test_stall_backoff)
{
    int peer, lfd;
    CharSocket *chr = stall_chr(3000, 250, &peer, &lfd);
    gint64 d0, d1, d2;

    ck_assert_int_eq(char_socket_reply_timeout_ms(chr, false), 250);
    ck_assert_int_eq(char_socket_reply_timeout_ms(chr, true), 3000);
    char_socket_reset_backoff(chr);
    d0 = drop_and_time_reconnect(chr, lfd, 250, &peer);
    char_socket_reset_backoff(chr);
    d1 = drop_and_time_reconnect(chr, lfd, 250, &peer);
    char_socket_reset_backoff(chr);
    d2 = drop_and_time_reconnect(chr, lfd, 0, &peer);
    /* 250 (the stall), 500 (doubled), 500 (a crash keeps the streak); not 20. */
    ck_assert_int_ge(d0, 230);
    ck_assert_int_lt(d0, 480);
    ck_assert_int_ge(d1, 480);
    ck_assert_int_ge(d2, 480);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/*
 * A connection that stays up 3 x timeout_ms (here 3 x 300 ms) without a
 * stall ends the streak: the next stall is retried after its own length
 * again, not after twice the last delay.
 */
START_TEST(test_stall_streak_ends)
{
    int peer, lfd;
    CharSocket *chr = stall_chr(300, 200, &peer, &lfd);
    gint64 d0, d1;

    d0 = drop_and_time_reconnect(chr, lfd, 200, &peer);
    /* Healthy for longer than 900 ms: the streak is over. */
    cs_run_for(1100);
    d1 = drop_and_time_reconnect(chr, lfd, 200, &peer);
    /* 200, then 200 again (400 if the streak had gone on). */
    ck_assert_int_ge(d0, 180);
    ck_assert_int_ge(d1, 180);
    ck_assert_int_lt(d1, 380);
    char_socket_free(chr);
    close(peer);
    close(lfd);
}
END_TEST

/* ---- server ------------------------------------------------------------ */

START_TEST(test_server_second_peer)
{
    CharSocket *chr = cs_new_chr(true, 0);
    int p1, p2, p3;
    char c;

    ck_assert(char_socket_open(chr, NULL));
    p1 = cs_raw_connect(cs_sock_path);
    ck_assert(cs_run_until(&cs_rec.opened, 1, 2000));

    /* A second concurrent peer is turned away: it sees EOF. */
    p2 = cs_raw_connect(cs_sock_path);
    cs_run_for(50);
    ck_assert_int_gt(char_io_wait(p2, POLLIN, char_io_deadline(1000)), 0);
    ck_assert_int_eq(read(p2, &c, 1), 0);
    ck_assert_int_eq(cs_rec.opened, 1);
    ck_assert(char_socket_is_connected(chr));

    /* After the first leaves, the next one is accepted. */
    close(p1);
    ck_assert(cs_run_until(&cs_rec.closed, 1, 2000));
    p3 = cs_raw_connect(cs_sock_path);
    ck_assert(cs_run_until(&cs_rec.opened, 2, 2000));
    ck_assert_int_eq(char_socket_connect_count(chr), 2);
    char_socket_free(chr);
    close(p2);
    close(p3);
}
END_TEST

START_TEST(test_cycles_fd_flat)
{
    CharSocket *chr = cs_new_chr(true, 0);
    int baseline = -1;

    ck_assert(char_socket_open(chr, NULL));
    for (int i = 0; i < 200; i++) {
        int peer = cs_raw_connect(cs_sock_path);

        ck_assert(cs_run_until(&cs_rec.opened, i + 1, 2000));
        if (i & 1) {
            close(peer);
        } else {
            char_socket_disconnect(chr, "test: cycle");
            close(peer);
        }
        ck_assert(cs_run_until(&cs_rec.closed, i + 1, 2000));
        if (i == 0) {
            baseline = cs_count_fds();
        }
    }
    ck_assert_int_eq(cs_count_fds(), baseline);
    ck_assert_int_eq(cs_rec.opened, 200);
    ck_assert_int_eq(cs_rec.closed, 200);
    char_socket_free(chr);
}
END_TEST

START_TEST(test_client_cycles_fd_flat)
{
    int lfd = cs_raw_listen(cs_sock_path);
    int baseline = cs_count_fds();

    /* new/open/free with events pending, over and over. */
    for (int i = 0; i < 200; i++) {
        CharSocket *chr = cs_new_chr(false, 10);
        int peer;

        ck_assert(char_socket_open(chr, NULL));
        peer = cs_raw_accept(lfd);
        if (i & 1) {
            ck_assert(cs_run_until(&cs_rec.opened, (i + 1) / 2, 2000));
        }
        char_socket_free(chr);
        close(peer);
    }
    cs_run_for(20);
    ck_assert_int_eq(cs_count_fds(), baseline);
    close(lfd);
}
END_TEST

/* In the order the suite has always run them. */
void char_socket_reconnect_add_tests(Suite *s)
{
    cs_add(s, "reconnect-late-server", test_reconnect_late_server);
    cs_add(s, "reconnect-backoff-capped", test_reconnect_backoff_capped);
    cs_add(s, "backoff-doubles", test_backoff_doubles);
    cs_add(s, "reconnect-path-appears", test_reconnect_path_appears);
    cs_add(s, "backoff-survives-connect", test_backoff_survives_connect);
    cs_add(s, "stall-backoff", test_stall_backoff);
    cs_add(s, "stall-streak-ends", test_stall_streak_ends);
    cs_add(s, "server-second-peer", test_server_second_peer);
    cs_add(s, "cycles-fd-flat", test_cycles_fd_flat);
    cs_add(s, "client-cycles-fd-flat", test_client_cycles_fd_flat);
}
