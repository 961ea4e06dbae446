/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The back-end's side of the back-end channel (BACKEND_REQ) for the test
 * back-end: a test (or a TbHook, from the back-end thread while a
 * front-end request waits for its reply) sends back-end requests on the
 * socket the VMM handed over with SET_BACKEND_REQ_FD and reads the VMM's
 * replies. Which protocol features are negotiated is the test's choice
 * (TbConfig.protocol_features).
 *
 * The sender is deliberately not bound by the spec: any request id, any
 * flags, any number of fds (up to TB_CHAN_MAX_FDS, more than the 8 the
 * protocol allows), so a test can send what a broken back-end would.
 */
#ifndef TESTS_QTEST_TEST_BACKEND_CHAN_H
#define TESTS_QTEST_TEST_BACKEND_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "test-backend.h"

#define TB_CHAN_MAX_FDS     TB_SEND_MAX_FDS

typedef struct TbChan TbChan;

/*
 * Waits up to timeout_ms for conn's SET_BACKEND_REQ_FD and takes a copy of
 * the channel (the test back-end keeps its own). Fails the test on timeout.
 */
TbChan *tb_chan_open(TestBackend *tb, unsigned conn, unsigned timeout_ms);
/* Closes our copy. NULL is fine. */
void tb_chan_free(TbChan *ch);

/* Sends one request; false when the socket refused it (closed). */
bool tb_chan_send(TbChan *ch, uint32_t request, uint32_t flags, const void *payload,
                  uint32_t size, const int *fds, size_t nfds);

/*
 * Reads the front-end's reply to request: version 1, REPLY set, the same
 * request id, a u64 payload. *status gets it; with reply_fd, one fd may
 * come along (-1 when none), without it any fd is an error. False with
 * *why (caller frees) on a timeout, EOF or a malformed reply.
 */
bool tb_chan_recv_reply(TbChan *ch, uint32_t request, uint64_t *status, int *reply_fd,
                        unsigned timeout_ms, char **why);

/*
 * Sends request with NEED_REPLY and returns the reply's status; fails the
 * test, naming the request, when no valid reply comes within timeout_ms.
 */
uint64_t tb_chan_call(TbChan *ch, uint32_t request, const void *payload, uint32_t size,
                      const int *fds, size_t nfds, int *reply_fd, unsigned timeout_ms);

/* True once the front-end closed its end of the channel within timeout_ms. */
bool tb_chan_wait_closed(TbChan *ch, unsigned timeout_ms);

/* ---- Payloads --------------------------------------------------------- */

VhostUserIotlb tb_chan_iotlb(uint8_t type, uint64_t iova, uint64_t size, uint8_t perm);
VhostUserVringArea tb_chan_area(unsigned ring, uint64_t size, uint64_t offset, bool nofd);
VhostUserVringState tb_chan_vring_state(unsigned ring, unsigned num);
/* A memfd of size bytes (caller closes). */
int tb_chan_memfd(const char *name, size_t size);

/*
 * The i-th (0-based) IOTLB_MSG of type the front-end sent on conn's main
 * socket, or false when there is none (yet).
 */
bool tb_iotlb_msg_get(TestBackend *tb, unsigned conn, uint8_t type, unsigned i,
                      VhostUserIotlb *out);

#endif
