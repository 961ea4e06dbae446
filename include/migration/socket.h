/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sockets for a migration stream, by QEMU's URI syntax: "unix:PATH",
 * "tcp:HOST:PORT" and "tcp:[IPV6]:PORT". The source connects, the
 * destination (-incoming) listens and accepts one peer.
 */
#ifndef MIGRATION_SOCKET_H
#define MIGRATION_SOCKET_H

#include <glib.h>

#include "util/vhost-user-api.h"

/*
 * Sockets by URI. listen returns a listening fd (TCP port 0 picks a free
 * port: mig_socket_local_uri tells which); accept waits for one peer;
 * connect returns a connected fd. All fds are close-on-exec and blocking.
 */
VHOST_USER_API
int mig_socket_listen(const char *uri, GError **errp);
VHOST_USER_API
int mig_socket_accept(int listen_fd, GError **errp);
VHOST_USER_API
int mig_socket_connect(const char *uri, GError **errp);
/* "tcp:127.0.0.1:40123" or "unix:/path" for a bound socket; NULL on error. */
VHOST_USER_API
char *mig_socket_local_uri(int fd, GError **errp);

#endif
