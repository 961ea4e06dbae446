/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sockets for the migration stream, addressed by QEMU's URI syntax.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "migration/socket.h"
#include "util/vhost-user-error.h"

typedef struct MigSocketAddr {
    bool is_unix;
    char *path;                 /* unix */
    char *host, *port;          /* tcp */
} MigSocketAddr;

static void mig_socket_addr_clear(MigSocketAddr *a)
{
    g_free(a->path);
    g_free(a->host);
    g_free(a->port);
}

static bool mig_socket_parse(const char *uri, MigSocketAddr *a, GError **errp)
{
    const char *hp, *colon;

    memset(a, 0, sizeof(*a));
    if (g_str_has_prefix(uri, "unix:")) {
        const char *path = uri + strlen("unix:");

        if (!*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "migration URI '%s': unix socket path empty or too long",
                        uri);
            return false;
        }
        a->is_unix = true;
        a->path = g_strdup(path);
        return true;
    }
    if (!g_str_has_prefix(uri, "tcp:")) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration URI '%s': expected unix:PATH or tcp:HOST:PORT",
                    uri);
        return false;
    }
    hp = uri + strlen("tcp:");
    if (*hp == '[') {
        const char *end = strchr(hp, ']');

        if (!end || end[1] != ':') {
            goto bad_tcp;
        }
        a->host = g_strndup(hp + 1, end - hp - 1);
        colon = end + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon) {
            goto bad_tcp;
        }
        a->host = g_strndup(hp, colon - hp);
    }
    a->port = g_strdup(colon + 1);
    if (!*a->port || strspn(a->port, "0123456789") != strlen(a->port)) {
        goto bad_tcp;
    }
    return true;

bad_tcp:
    mig_socket_addr_clear(a);
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                "migration URI '%s': expected tcp:HOST:PORT or tcp:[IPV6]:PORT",
                uri);
    return false;
}

static void mig_socket_error(GError **errp, const char *uri, const char *what)
{
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                "migration URI '%s': %s: %s", uri, what, g_strerror(errno));
}

static int mig_socket_unix(const char *uri, const MigSocketAddr *a, bool listen_,
                           GError **errp)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        mig_socket_error(errp, uri, "socket");
        return -1;
    }
    strcpy(sun.sun_path, a->path);
    if (listen_) {
        struct stat st;

        /* A stale socket left by an earlier run would refuse bind; any other file stays. */
        if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            unlink(a->path);
        }
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 1) < 0) {
            mig_socket_error(errp, uri, "listen");
            close(fd);
            return -1;
        }
    } else if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        mig_socket_error(errp, uri, "connect");
        close(fd);
        return -1;
    }
    return fd;
}

static int mig_socket_tcp(const char *uri, const MigSocketAddr *a, bool listen_,
                          GError **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = listen_ ? AI_PASSIVE : 0,
    };
    struct addrinfo *res, *ai;
    int fd = -1, rc, one = 1;

    rc = getaddrinfo(*a->host ? a->host : NULL, a->port, &hints, &res);
    if (rc) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration URI '%s': %s", uri, gai_strerror(rc));
        return -1;
    }
    errno = EADDRNOTAVAIL;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (listen_) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0) {
                break;
            }
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            /* Page runs are written whole; headers must not wait for Nagle. */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        mig_socket_error(errp, uri, listen_ ? "listen" : "connect");
    }
    return fd;
}

static int mig_socket_open(const char *uri, bool listen_, GError **errp)
{
    MigSocketAddr a;
    int fd;

    if (!mig_socket_parse(uri, &a, errp)) {
        return -1;
    }
    fd = a.is_unix ? mig_socket_unix(uri, &a, listen_, errp)
                   : mig_socket_tcp(uri, &a, listen_, errp);
    mig_socket_addr_clear(&a);
    return fd;
}

int mig_socket_listen(const char *uri, GError **errp)
{
    return mig_socket_open(uri, true, errp);
}

int mig_socket_connect(const char *uri, GError **errp)
{
    return mig_socket_open(uri, false, errp);
}

int mig_socket_accept(int listen_fd, GError **errp)
{
    int fd;

    do {
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "migration: accept: %s", g_strerror(errno));
        return fd;
    }
    /*
     * The destination writes its page requests (16 bytes) on this socket:
     * with Nagle a request waits for the previous one's ACK. Fails, and
     * is not needed, on a unix socket.
     */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    return fd;
}

char *mig_socket_local_uri(int fd, GError **errp)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "migration: getsockname: %s", g_strerror(errno));
        return NULL;
    }
    if (ss.ss_family == AF_UNIX) {
        return g_strdup_printf("unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
    }
    if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "migration: getnameinfo failed");
        return NULL;
    }
    return ss.ss_family == AF_INET6 ? g_strdup_printf("tcp:[%s]:%s", host, port)
                                    : g_strdup_printf("tcp:%s:%s", host, port);
}
