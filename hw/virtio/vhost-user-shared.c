/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared object registry, see vhost-user-shared.h.
 *
 * UUIDs come from untrusted back-ends: they are only compared, never
 * interpreted, and a back-end can neither replace nor remove another
 * back-end's object (first registration wins; removal checks the owner).
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-shared.h"

typedef struct SharedObject {
    uint8_t uuid[VHOST_USER_UUID_LEN];
    int fd;
    const void *owner;
} SharedObject;

static GMutex shared_lock;
static GHashTable *shared_objects;  /* uuid bytes -> SharedObject, owns both */

static guint uuid_hash(gconstpointer key)
{
    const uint8_t *u = key;
    guint h = 5381;

    for (unsigned i = 0; i < VHOST_USER_UUID_LEN; i++) {
        h = h * 33 + u[i];
    }
    return h;
}

static gboolean uuid_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, VHOST_USER_UUID_LEN) == 0;
}

static void shared_object_free(gpointer p)
{
    SharedObject *obj = p;

    if (obj->fd >= 0) {
        close(obj->fd);
    }
    g_free(obj);
}

/* Caller holds shared_lock. */
static GHashTable *shared_table_locked(void)
{
    if (!shared_objects) {
        /* The key points into the value, so only the value is freed. */
        shared_objects = g_hash_table_new_full(uuid_hash, uuid_equal, NULL,
                                               shared_object_free);
    }
    return shared_objects;
}

bool vhost_user_uuid_is_nil(const uint8_t uuid[VHOST_USER_UUID_LEN])
{
    for (unsigned i = 0; i < VHOST_USER_UUID_LEN; i++) {
        if (uuid[i]) {
            return false;
        }
    }
    return true;
}

void vhost_user_uuid_format(const uint8_t uuid[VHOST_USER_UUID_LEN], char buf[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned o = 0;

    for (unsigned i = 0; i < VHOST_USER_UUID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            buf[o++] = '-';
        }
        buf[o++] = hex[uuid[i] >> 4];
        buf[o++] = hex[uuid[i] & 0xf];
    }
    buf[o] = '\0';
}

/* Caller holds shared_lock. */
static unsigned shared_count_owner_locked(const void *owner)
{
    GHashTableIter it;
    gpointer v;
    unsigned n = 0;

    if (!shared_objects) {
        return 0;
    }
    g_hash_table_iter_init(&it, shared_objects);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        n += ((SharedObject *)v)->owner == owner;
    }
    return n;
}

bool vhost_user_shared_add(const uint8_t uuid[VHOST_USER_UUID_LEN], int fd,
                           const void *owner, unsigned owner_max, GError **errp)
{
    char str[37];
    SharedObject *obj;
    GHashTable *t;

    vhost_user_uuid_format(uuid, str);
    if (vhost_user_uuid_is_nil(uuid)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "shared object %s: the nil UUID names no object", str);
        return false;
    }
    g_mutex_lock(&shared_lock);
    t = shared_table_locked();
    /* Each object may hold an fd: a back-end must not exhaust ours. */
    if (g_hash_table_size(t) >= VHOST_USER_SHARED_MAX) {
        g_mutex_unlock(&shared_lock);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "shared object %s: the registry is full (%u objects)", str,
                    VHOST_USER_SHARED_MAX);
        return false;
    }
    /* ... and one back-end must not take the room the others need. */
    if (shared_count_owner_locked(owner) >= owner_max) {
        g_mutex_unlock(&shared_lock);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "shared object %s: this back-end holds its limit of %u objects "
                    "(shared-objects-max)", str, owner_max);
        return false;
    }
    if (g_hash_table_contains(t, uuid)) {
        g_mutex_unlock(&shared_lock);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "shared object %s: already registered", str);
        return false;
    }
    obj = g_new0(SharedObject, 1);
    memcpy(obj->uuid, uuid, VHOST_USER_UUID_LEN);
    obj->fd = fd;
    obj->owner = owner;
    g_hash_table_insert(t, obj->uuid, obj);
    g_mutex_unlock(&shared_lock);
    return true;
}

bool vhost_user_shared_remove(const uint8_t uuid[VHOST_USER_UUID_LEN],
                              const void *owner, GError **errp)
{
    char str[37];
    SharedObject *obj;

    vhost_user_uuid_format(uuid, str);
    g_mutex_lock(&shared_lock);
    obj = g_hash_table_lookup(shared_table_locked(), uuid);
    if (!obj || obj->owner != owner) {
        g_mutex_unlock(&shared_lock);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "shared object %s: %s", str,
                    obj ? "registered by another device" : "not registered");
        return false;
    }
    g_hash_table_remove(shared_objects, uuid);
    g_mutex_unlock(&shared_lock);
    return true;
}

int vhost_user_shared_lookup(const uint8_t uuid[VHOST_USER_UUID_LEN])
{
    SharedObject *obj;
    int fd = -1;

    g_mutex_lock(&shared_lock);
    obj = g_hash_table_lookup(shared_table_locked(), uuid);
    /*
     * An object its back-end exports without an fd would have to be
     * fetched from it with GET_SHARED_OBJECT; not done (yet): not found.
     */
    if (obj && obj->fd >= 0) {
        fd = fcntl(obj->fd, F_DUPFD_CLOEXEC, 0);
    }
    g_mutex_unlock(&shared_lock);
    return fd;
}

static gboolean shared_owned_by(gpointer key, gpointer value, gpointer owner)
{
    return ((SharedObject *)value)->owner == owner;
}

void vhost_user_shared_remove_owner(const void *owner)
{
    g_mutex_lock(&shared_lock);
    if (shared_objects) {
        g_hash_table_foreach_remove(shared_objects, shared_owned_by, (gpointer)owner);
    }
    g_mutex_unlock(&shared_lock);
}

unsigned vhost_user_shared_count_owner(const void *owner)
{
    unsigned n;

    g_mutex_lock(&shared_lock);
    n = shared_count_owner_locked(owner);
    g_mutex_unlock(&shared_lock);
    return n;
}

unsigned vhost_user_shared_count(void)
{
    unsigned n;

    g_mutex_lock(&shared_lock);
    n = shared_objects ? g_hash_table_size(shared_objects) : 0;
    g_mutex_unlock(&shared_lock);
    return n;
}

bool vhost_user_get_shared_object(VhostUserState *u, const uint8_t uuid[16], int *fd,
                                  GError **errp)
{
    VhostUserMsg msg, reply;
    int rfd = -1;

    *fd = -1;
    vhost_user_msg_init(&msg, VHOST_USER_GET_SHARED_OBJECT, sizeof(VhostUserShared));
    memcpy(msg.payload.object.uuid, uuid, 16);
    if (!vhost_user_call_fd(u, 0, &msg, NULL, 0, &reply, &rfd, errp)) {
        return false;
    }
    if (reply.payload.u64 != 0 || rfd < 0) {
        char str[37];

        if (rfd >= 0) {
            close(rfd);
        }
        vhost_user_uuid_format(uuid, str);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_BACKEND_FAILED,
                    "%s: GET_SHARED_OBJECT %s: back-end has no such object "
                    "(status %" PRIu64 ")", u->name, str, reply.payload.u64);
        return false;
    }
    *fd = rfd;
    return true;
}
