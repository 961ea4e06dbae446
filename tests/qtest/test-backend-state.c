/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The test back-end's DEVICE_STATE (SET_DEVICE_STATE_FD and
 * CHECK_DEVICE_STATE): a save sends the scripted state through the
 * front-end's fd (or a pipe of our own, sent back with the reply) from a
 * thread of its own, so a state larger than a pipe's buffer does not
 * block the back-end's loop; a load is read by a thread until EOF and
 * kept for the test. See tb_set_device_state in test-backend.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "test-backend-int.h"

static void ds_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

struct TbDevState {
    TbStateMode mode;
    GBytes *state;              /* what a save sends */
    uint64_t check_result;
    GThread *thread;            /* the writer or reader of the last transfer */
    int held_fd;                /* NEVER_CLOSE: the write end we keep */
    GByteArray *loaded;         /* the last load's bytes, once read */
    bool loading;
};

typedef struct TbXfer {
    int fd;
    GBytes *state;              /* NULL: a load, read into *out */
    GByteArray *out;
    bool keep_open;
    int *held_fd;
} TbXfer;

static gpointer tb_xfer_thread(gpointer opaque)
{
    TbXfer *x = opaque;

    if (x->state) {
        gsize len;
        const uint8_t *p = g_bytes_get_data(x->state, &len);
        size_t done = 0;

        while (done < len) {
            ssize_t n = write(x->fd, p + done, len - done);

            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;      /* the front-end gave up (EPIPE): fine for the test */
            }
            done += (size_t)n;
        }
        if (x->keep_open) {
            *x->held_fd = x->fd;
            x->fd = -1;
        }
    } else {
        uint8_t buf[4096];
        ssize_t n;

        while ((n = read(x->fd, buf, sizeof(buf))) != 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                break;
            }
            g_byte_array_append(x->out, buf, (guint)n);
        }
    }
    if (x->fd >= 0) {
        close(x->fd);
    }
    if (x->state) {
        g_bytes_unref(x->state);
    }
    g_free(x);
    return NULL;
}

static TbDevState *tb_ds_get_locked(TestBackend *tb)
{
    if (!tb->ds) {
        tb->ds = g_new0(TbDevState, 1);
        tb->ds->held_fd = -1;
    }
    return tb->ds;
}

/* Waits for the last transfer's thread (the test's own thread, the front-end has its ends). */
static void tb_ds_join(TbDevState *ds)
{
    if (ds->thread) {
        g_thread_join(ds->thread);
        ds->thread = NULL;
    }
}

void tb_set_device_state(TestBackend *tb, TbStateMode mode, const void *state, size_t len,
                         uint64_t check_result)
{
    TbDevState *ds;

    g_mutex_lock(&tb->lock);
    ds = tb_ds_get_locked(tb);
    ds->mode = mode;
    if (ds->state) {
        g_bytes_unref(ds->state);
    }
    ds->state = g_bytes_new(state, len);
    ds->check_result = check_result;
    g_mutex_unlock(&tb->lock);
}

GByteArray *tb_device_state_loaded(TestBackend *tb)
{
    GByteArray *copy = NULL;

    g_mutex_lock(&tb->lock);
    if (tb->ds && tb->ds->loaded && !tb->ds->loading) {
        copy = g_byte_array_sized_new(tb->ds->loaded->len);
        g_byte_array_append(copy, tb->ds->loaded->data, tb->ds->loaded->len);
    }
    g_mutex_unlock(&tb->lock);
    return copy;
}

bool tb_handle_device_state(TestBackend *tb, TbConn *c, uint32_t request,
                            const VhostUserPayload *p, int *fds, size_t nfds,
                            const TbAction *act, VhostUserPayload *reply,
                            uint32_t *reply_size, bool *has_reply, char **violation)
{
    TbDevState *ds = tb_ds_get_locked(tb);
    bool save = p->transfer_state.direction == 0;
    TbXfer *x;
    int fd;

    *reply_size = 8;
    *has_reply = true;
    if (request == VHOST_USER_CHECK_DEVICE_STATE) {
        /* A load is complete once the front-end closed its end: before CHECK. */
        tb_ds_join(ds);
        ds->loading = false;
        reply->u64 = act->fault == TB_FAULT_VALUE ? act->value : ds->check_result;
        return true;
    }
    tb_ds_join(ds);
    ds_close_fd(&ds->held_fd);
    if (nfds != 1 || p->transfer_state.direction > 1 || p->transfer_state.phase != 0) {
        *violation = g_strdup_printf("SET_DEVICE_STATE_FD: %zu fds, direction %u, "
                                     "phase %u", nfds, p->transfer_state.direction,
                                     p->transfer_state.phase);
        return false;
    }
    fd = fds[0];
    fds[0] = -1;
    reply->u64 = 1ull << 8;     /* no fd of ours */
    if (ds->mode == TB_STATE_OWN_FD) {
        int own[2];

        g_assert(pipe2(own, O_CLOEXEC) == 0);
        close(fd);
        /* Save: the front-end reads our pipe; load: it writes into it. */
        fd = save ? own[1] : own[0];
        ds_close_fd(&c->reply_fd);
        c->reply_fd = save ? own[0] : own[1];
        reply->u64 = 0;
    }
    if (act->fault == TB_FAULT_VALUE) {
        reply->u64 = act->value;
    }
    x = g_new0(TbXfer, 1);
    x->fd = fd;
    if (save) {
        x->state = ds->state ? g_bytes_ref(ds->state) : g_bytes_new(NULL, 0);
        x->keep_open = ds->mode == TB_STATE_NEVER_CLOSE;
        x->held_fd = &ds->held_fd;
    } else {
        if (ds->loaded) {
            g_byte_array_unref(ds->loaded);
        }
        ds->loaded = g_byte_array_new();
        ds->loading = true;
        x->out = ds->loaded;
    }
    ds->thread = g_thread_new("tb-device-state", tb_xfer_thread, x);
    return true;
}

void tb_device_state_free(TestBackend *tb)
{
    TbDevState *ds = tb->ds;

    if (!ds) {
        return;
    }
    /* A front-end that gave up closed its end: the thread ends on EPIPE or EOF. */
    tb_ds_join(ds);
    ds_close_fd(&ds->held_fd);
    if (ds->state) {
        g_bytes_unref(ds->state);
    }
    if (ds->loaded) {
        g_byte_array_unref(ds->loaded);
    }
    g_free(ds);
    tb->ds = NULL;
}
