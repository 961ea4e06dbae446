/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The destination of a live migration (-incoming): a thread accepts one
 * source and loads its stream into guest RAM, keeping each device's
 * section; then, on the loop, each device gets its state once its
 * back-end has negotiated, and the guest starts (with -S: on QMP cont).
 * Only then does the source hear from us (VMM_MIGRATE_ACK): until that
 * word it may still resume the guest itself, so ours must not run before.
 *
 * Untrusted input: the stream. mig_load checks every section; device
 * names are matched against our devices and the blobs are checked by
 * vhost_user_base_load.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "migration/convergence.h"
#include "migration/load.h"
#include "migration/socket.h"
#include "migration/stream.h"
#include "util/vhost-user-error.h"
#include "vmm/vmm-loop.h"
#include "vmm/vmm-migrate-in-int.h"
#include "vmm/vmm-runstate.h"


/* Each device section, checksum verified: kept until every back-end is ready. */
static bool mig_in_device(const char *name, const void *data, size_t len, void *opaque,
                          GError **errp)
{
    MigIn *in = opaque;

    if (g_hash_table_contains(in->blobs, name)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "a second state for the same device");
        return false;
    }
    g_hash_table_insert(in->blobs, g_strdup(name), g_bytes_new(data, len));
    return true;
}

static bool mig_in_ready_cb(void *opaque, GError **errp)
{
    MigIn *in = opaque;

    in->all_ready = true;
    for (unsigned i = 0; i < vmm_machine_ndevices(in->m); i++) {
        in->all_ready &= vmm_machine_device_ready(in->m, i);
    }
    return true;
}

/* Names the devices whose back-end has not negotiated. */
static bool mig_in_not_ready_cb(void *opaque, GError **errp)
{
    MigIn *in = opaque;
    g_autoptr(GString) ids = g_string_new(NULL);

    for (unsigned i = 0; i < vmm_machine_ndevices(in->m); i++) {
        if (!vmm_machine_device_ready(in->m, i)) {
            g_string_append_printf(ids, "%s%s", ids->len ? ", " : "",
                                   vhost_user_base_id(vmm_machine_device(in->m, i)));
        }
    }
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMEOUT,
                "no back-end negotiated within %u s for %s",
                VMM_MIGRATE_READY_TIMEOUT_MS / 1000, ids->str);
    return false;
}

bool mig_in_wait_ready(MigIn *in, GError **errp)
{
    gint64 end = g_get_monotonic_time() + VMM_MIGRATE_READY_TIMEOUT_MS * 1000ll;

    for (;;) {
        bool cancel;

        if (!vmm_loop_call(mig_in_ready_cb, in, errp)) {
            return false;
        }
        if (in->all_ready) {
            return true;
        }
        g_mutex_lock(&in->mm->lock);
        cancel = in->mm->cancel;
        g_mutex_unlock(&in->mm->lock);
        if (cancel) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "the VMM is exiting");
            return false;
        }
        if (g_get_monotonic_time() > end) {
            return vmm_loop_call(mig_in_not_ready_cb, in, errp);
        }
        g_usleep(20 * 1000);
    }
}

/* Every device's state into its device, then the guest starts (unless -S). */
bool mig_in_load_cb(void *opaque, GError **errp)
{
    MigIn *in = opaque;
    VmmMigrate *mm = in->mm;
    GHashTableIter it;
    gpointer k, v;
    bool autostart;

    g_hash_table_iter_init(&it, in->blobs);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (!vmm_machine_find_device(in->m, k)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "the stream has state for device '%s', which this VMM does not "
                        "have", (const char *)k);
            return false;
        }
    }
    for (unsigned i = 0; i < vmm_machine_ndevices(in->m); i++) {
        const char *id = vhost_user_base_id(vmm_machine_device(in->m, i));
        GBytes *b = g_hash_table_lookup(in->blobs, id);

        if (!b) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "device '%s': the stream carries no state for it", id);
            return false;
        }
        if (!vmm_machine_load_device(in->m, id, g_bytes_get_data(b, NULL),
                                     g_bytes_get_size(b), errp)) {
            g_prefix_error(errp, "device '%s': ", id);
            return false;
        }
    }
    g_mutex_lock(&mm->lock);
    autostart = mm->autostart;
    mm->wait_cont = !autostart;
    g_mutex_unlock(&mm->lock);
    if (!autostart) {
        vmm_runstate_set(VMM_RUN_STATE_PAUSED);
        return true;
    }
    if (!vmm_machine_incoming_start_devices(in->m, errp)) {
        g_prefix_error(errp, "starting the guest: ");
        return false;
    }
    if (!mig_in_postcopy_devices_started(in, errp)) {
        return false;
    }
    vmm_machine_incoming_start_guest(in->m);
    vmm_runstate_set(VMM_RUN_STATE_RUNNING);
    return true;
}

int mig_in_accept_once(VmmMigrate *mm, int lfd, const char *unix_path, GError **errp)
{
    int fd = mig_socket_accept(lfd, errp);

    g_mutex_lock(&mm->lock);
    mm->listen_fd = -1;
    g_mutex_unlock(&mm->lock);
    close(lfd);
    if (unix_path) {
        unlink(unix_path);
    }
    return fd;
}

void mig_in_close_listener(MigIn *in)
{
    if (in->lfd < 0) {
        return;
    }
    close(in->lfd);
    in->lfd = -1;
    if (in->unix_path) {
        unlink(in->unix_path);
    }
}

static bool mig_in_run(MigIn *in, uint64_t *bytes, GError **errp)
{
    VmmMigrate *mm = in->mm;
    MigLoadOps ops = { 0 };
    MigStream *s;
    GError *err = NULL;
    bool postcopy = false;
    int fd;
    bool ok;

    fd = mig_socket_accept(in->lfd, errp);
    g_mutex_lock(&mm->lock);
    mm->listen_fd = -1;
    in->preempt = mm->cap_postcopy && mm->cap_preempt;
    g_mutex_unlock(&mm->lock);
    /* postcopy-preempt: the source connects again at its switch. */
    if (!in->preempt || fd < 0) {
        mig_in_close_listener(in);
    }
    if (fd < 0) {
        return false;
    }
    s = mig_stream_new(fd);
    g_mutex_lock(&mm->lock);
    mm->start_us = g_get_monotonic_time();
    mm->stream = s;
    if (mm->cancel) {
        mig_stream_shutdown(s);
    }
    g_mutex_unlock(&mm->lock);
    vmm_mig_set_status(mm, VMM_MIG_ACTIVE);

    g_mutex_lock(&in->rp_lock);
    in->rp = mig_rp_new(fd);
    g_mutex_unlock(&in->rp_lock);
    ops.device = mig_in_device;
    mig_in_postcopy_ops(&ops);
    ok = mig_load_ops(s, vmm_machine_memory(in->m), &ops, in, &postcopy, &err);
    if (!ok && postcopy && mig_in_postcopy_recoverable(in)) {
        /* The guest runs here: a cut pauses until migrate-recover (or exit). */
        ok = mig_in_pc_recover(in, &s, g_steal_pointer(&err), &err);
    }
    if (!ok) {
        g_propagate_error(errp, g_steal_pointer(&err));
    }
    *bytes = in->bytes_prev + (s ? mig_stream_bytes_read(s) : 0);
    g_mutex_lock(&mm->lock);
    mm->transferred = *bytes;
    mm->mbps_x1000 = mig_bandwidth(*bytes, (uint64_t)(g_get_monotonic_time() - mm->start_us)) *
                     8 / 1000;
    g_mutex_unlock(&mm->lock);
    if (postcopy) {
        /* The guest started at POSTCOPY_RUN; the rest of its RAM is in. */
        ok = ok && mig_in_postcopy_end(in, errp);
    } else {
        ok = ok && mig_in_wait_ready(in, errp) && mig_in_postcopy_end(in, errp) &&
             vmm_loop_call(mig_in_load_cb, in, errp);
    }
    /* Serialised with the fault thread's requests. */
    ok = ok && mig_rp_send_ack(in->rp, errp);
    if (ok && postcopy) {
        /* Should this ack be lost, the source resumes to have it again. */
        g_mutex_lock(&mm->lock);
        mm->pc_completed = true;
        g_mutex_unlock(&mm->lock);
    }
    if (!ok && postcopy && in->rp) {
        /* The guest ran here: without this word the source would wait to recover. */
        mig_rp_send_failed(in->rp, NULL);
    }
    mig_in_postcopy_free(in);
    mig_in_close_listener(in);
    g_mutex_lock(&mm->lock);
    mm->stream = NULL;
    g_mutex_unlock(&mm->lock);
    mig_stream_free(s);
    return ok;
}

static gboolean mig_in_fatal(gpointer opaque)
{
    VmmMigrate *mm = opaque;

    if (mm->fatal) {
        mm->fatal(mm->fatal_opaque);
    }
    return G_SOURCE_REMOVE;
}

static gpointer mig_in_thread(gpointer opaque)
{
    MigIn *in = opaque;
    VmmMigrate *mm = in->mm;
    g_autoptr(GError) err = NULL;
    uint64_t bytes = 0;
    bool ok = mig_in_run(in, &bytes, &err);
    bool paused, exiting;
    gint64 ms;

    g_mutex_lock(&mm->lock);
    mm->total_us = g_get_monotonic_time() - mm->start_us;
    ms = mm->total_us / 1000;
    paused = mm->wait_cont;
    exiting = mm->cancel;
    if (!ok) {
        g_free(mm->error_desc);
        mm->error_desc = g_strdup(err->message);
    }
    g_mutex_unlock(&mm->lock);
    if (ok) {
        vmm_mig_set_status(mm, VMM_MIG_COMPLETED);
        vmm_status("migration: loaded %" PRIu64 " MiB in %" PRId64 " ms, %s", bytes >> 20,
                   ms, paused ? "guest paused until cont (-S)" : "guest running");
    } else {
        vmm_mig_set_status(mm, VMM_MIG_FAILED);
        /* A VMM told to exit (SIGTERM) while it waited is no failed load. */
        if (!exiting) {
            vmm_status("migration: load failed: %s", err->message);
            g_idle_add(mig_in_fatal, mm);
        }
    }
    g_hash_table_unref(in->blobs);
    mig_rp_free(in->rp);
    mig_rp_free(in->rp_next);
    g_mutex_clear(&in->rp_lock);
    g_free(in->unix_path);
    g_free(in);
    vmm_mig_thread_done(mm);
    return NULL;
}

bool vmm_mig_in_start(VmmMigrate *mm, const char *uri, GError **errp)
{
    g_autofree char *local = NULL;
    MigIn *in;
    int lfd = mig_socket_listen(uri, errp);

    if (lfd < 0) {
        return false;
    }
    local = mig_socket_local_uri(lfd, NULL);
    in = g_new0(MigIn, 1);
    in->mm = mm;
    in->m = mm->m;
    in->lfd = lfd;
    g_mutex_init(&in->rp_lock);
    in->blobs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify)g_bytes_unref);
    if (g_str_has_prefix(uri, "unix:")) {
        in->unix_path = g_strdup(uri + 5);
    }
    vmm_mig_set_status(mm, VMM_MIG_SETUP);
    g_mutex_lock(&mm->lock);
    mm->ram_total = 0;
    for (unsigned i = 0; i < guest_memory_nregions(vmm_machine_memory(mm->m)); i++) {
        mm->ram_total += guest_memory_region(vmm_machine_memory(mm->m), i)->size;
    }
    mm->listen_fd = lfd;
    mm->pc_stats_valid = false;
    mm->pc_completed = false;
    mm->preempt_pages = 0;
    mm->thread_done = false;
    mm->start_us = g_get_monotonic_time();
    mm->thread = g_thread_new("migration-in", mig_in_thread, in);
    g_mutex_unlock(&mm->lock);
    vmm_status("migration: incoming from %s", local ? local : uri);
    return true;
}

bool vmm_mig_in_cont(VmmMigrate *mm, GError **errp)
{
    if (!vmm_machine_incoming_start_devices(mm->m, errp)) {
        g_prefix_error(errp, "starting the migrated guest: ");
        return false;
    }
    /* With -S the devices start here, maybe while postcopy still runs. */
    if (!mig_in_postcopy_cont_check(mm, errp)) {
        g_prefix_error(errp, "starting the migrated guest: ");
        return false;
    }
    vmm_machine_incoming_start_guest(mm->m);
    g_mutex_lock(&mm->lock);
    mm->wait_cont = false;
    g_mutex_unlock(&mm->lock);
    vmm_runstate_set(VMM_RUN_STATE_RUNNING);
    vmm_status("migration: guest running (cont)");
    return true;
}
