/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the message table's unit tests share: test-vhost-user-msg.c owns
 * the helpers and the suite, test-vhost-user-msg-format.c adds the tests
 * of the decoded message line and the trace.
 */
#ifndef TESTS_UNIT_TEST_VHOST_USER_MSG_H
#define TESTS_UNIT_TEST_VHOST_USER_MSG_H

#include <check.h>
#include <stdint.h>

#include "util/vhost-user-msg.h"

#define FE VHOST_USER_CHANNEL_FRONTEND
#define BE VHOST_USER_CHANNEL_BACKEND

/* A request with this id and payload size, the rest zeroed. */
void um_msg_new(VhostUserMsg *m, uint32_t id, uint32_t size);
/* A well-formed reply header to id, with this payload size, payload zeroed. */
VhostUserMsg um_reply_msg(uint32_t id, uint32_t size);

/* test-vhost-user-msg-format.c: to the "helpers" TCase. */
void msg_format_add_tests(TCase *tc);

#endif
