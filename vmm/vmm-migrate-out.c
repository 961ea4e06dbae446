/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The source of a live migration: the blockers (checked on the loop
 * before anything starts), then the migration thread: RAM setup, dirty
 * logging and guest-write tracking on, every page once, rounds of dirty
 * pages until the rest fits in downtime-limit (or VMM_MIGRATE_MAX_ROUNDS),
 * then the guest stops, the rest of RAM and each device's state go, END,
 * and the destination's acknowledgement decides: completed (the guest now
 * runs there; ours stays stopped) or failed (ours resumes).
 *
 * The device model belongs to the loop: logging, syncs, pauses and saves
 * go through vmm_loop_call. Guest RAM itself is read from this thread:
 * its map cannot change (memory hotplug is refused while migrating).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "migration/convergence.h"
#include "migration/format.h"
#include "migration/ram-stream.h"
#include "migration/ram-track.h"
#include "migration/socket.h"
#include "migration/stream.h"
#include "util/vhost-user-error.h"
#include "vmm/vmm-loop.h"
#include "vmm/vmm-migrate-out-int.h"


/* ---- the device model, on the loop ----------------------------------- */

static bool mig_out_log_start_cb(void *opaque, GError **errp)
{
    MigOut *o = opaque;
    unsigned n = vmm_machine_ndevices(o->m);

    for (o->nlogging = 0; o->nlogging < n; o->nlogging++) {
        if (!vhost_user_base_log_start(vmm_machine_device(o->m, o->nlogging), errp)) {
            return false;
        }
    }
    return true;
}

static bool mig_out_log_stop_cb(void *opaque, GError **errp)
{
    MigOut *o = opaque;

    for (unsigned i = 0; i < o->nlogging; i++) {
        vhost_user_base_log_stop(vmm_machine_device(o->m, i));
    }
    o->nlogging = 0;
    return true;
}

/* Once per device per round, whatever its number of rings. */
static bool mig_out_log_sync_cb(void *opaque, GError **errp)
{
    MigOut *o = opaque;

    for (unsigned i = 0; i < o->nlogging; i++) {
        if (!vhost_user_base_log_sync(vmm_machine_device(o->m, i), o->bitmap, o->npages,
                                      NULL, errp)) {
            return false;
        }
    }
    return true;
}

bool mig_out_save_cb(void *opaque, GError **errp)
{
    MigOut *o = opaque;

    for (unsigned i = 0; i < vmm_machine_ndevices(o->m); i++) {
        VhostUserBase *vub = vmm_machine_device(o->m, i);
        GByteArray *b = g_byte_array_new();

        g_ptr_array_add(o->blobs, b);
        if (!vhost_user_base_save(vub, b, errp)) {
            g_prefix_error(errp, "%s: saving the device state: ", vhost_user_base_id(vub));
            return false;
        }
    }
    return true;
}

static bool mig_out_migrated_cb(void *opaque, GError **errp)
{
    MigOut *o = opaque;

    vmm_machine_migrated_out(o->m);
    return true;
}

/* ---- the rounds ---------------------------------------------------- */

/*
 * Within a round: bytes on the wire so far, and the pages of this round
 * still to go (from word `from` of the bitmap; NULL: every page, the
 * first round), so query-migrate moves while a round runs.
 */
static void mig_out_figures(MigOut *o, const uint64_t *bitmap, uint64_t from)
{
    VmmMigrate *mm = o->mm;
    uint64_t left = 0;

    if (!bitmap) {
        left = from < o->nwords ? MIN((o->nwords - from) * 64, o->npages) : 0;
    } else {
        for (uint64_t w = from; w < o->nwords; w++) {
            left += (uint64_t)__builtin_popcountll(bitmap[w]);
        }
    }
    g_mutex_lock(&mm->lock);
    mm->transferred = mig_stream_bytes_written(o->s);
    mm->remaining = left * MIG_PAGE_SIZE;
    g_mutex_unlock(&mm->lock);
}

/*
 * Sends the pages of bitmap (NULL: every page) and clears bitmap. In
 * windows of 4 MiB of guest RAM, so that the progress line, cancel
 * and a new max-bandwidth need not wait for the end of a round over a
 * large guest.
 */
#define VMM_MIGRATE_WINDOW_WORDS 16     /* 4 MiB of guest RAM: 0.2 s at 20 MB/s */


static bool mig_out_send(MigOut *o, uint64_t *bitmap, uint64_t *sent, GError **errp)
{
    gint64 t0 = g_get_monotonic_time();

    *sent = 0;
    for (uint64_t w0 = 0; w0 < o->nwords; w0 += VMM_MIGRATE_WINDOW_WORDS) {
        uint64_t n = MIN(VMM_MIGRATE_WINDOW_WORDS, o->nwords - w0);
        uint64_t any = 0, bytes = 0, limit;

        for (uint64_t i = w0; i < w0 + n; i++) {
            o->window[i] = bitmap ? bitmap[i] : ~0ull;
            any |= o->window[i];
        }
        if (any && !mig_ram_save_dirty(o->s, o->mem, o->window, o->nwords * 64, &bytes,
                                       errp)) {
            return false;
        }
        memset(o->window + w0, 0, n * sizeof(uint64_t));
        if (bitmap) {
            memset(bitmap + w0, 0, n * sizeof(uint64_t));
        }
        *sent += bytes;
        mig_out_figures(o, bitmap, w0 + n);
        /* The progress line's rate while the round runs. */
        g_mutex_lock(&o->mm->lock);
        o->mm->mbps_x1000 = mig_bandwidth(*sent, (uint64_t)(g_get_monotonic_time() - t0)) *
                            8 / 1000;
        g_mutex_unlock(&o->mm->lock);
        mig_out_params(o, &limit);
        if (mig_out_cancelled(o, errp)) {
            return false;
        }
        /* migrate-start-postcopy acts at the next window, not the round's end. */
        if (w0 + n < o->nwords && mig_out_postcopy_wanted(o, false)) {
            o->postcopy_now = true;
            o->switch_all = !bitmap;
            o->switch_word = w0 + n;
            return true;
        }
    }
    return true;
}

/* The pages dirtied since the last sync, into o->bitmap; their count. */
bool mig_out_sync(MigOut *o, uint64_t *dirty, GError **errp)
{
    uint64_t n = 0;

    if (!ram_track_sync(o->track, o->bitmap, o->npages, NULL, errp) ||
        !vmm_loop_call(mig_out_log_sync_cb, o, errp)) {
        return false;
    }
    for (uint64_t w = 0; w < o->nwords; w++) {
        n += (uint64_t)__builtin_popcountll(o->bitmap[w]);
    }
    *dirty = n;
    return true;
}

bool mig_out_cancelled(MigOut *o, GError **errp)
{
    bool c;

    g_mutex_lock(&o->mm->lock);
    c = o->mm->cancel;
    g_mutex_unlock(&o->mm->lock);
    if (c) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL, "cancelled");
    }
    return c;
}

/* max-bandwidth and downtime-limit may change while we run. */
uint64_t mig_out_params(MigOut *o, uint64_t *limit_ms)
{
    uint64_t bw;

    g_mutex_lock(&o->mm->lock);
    bw = o->mm->max_bandwidth;
    *limit_ms = o->mm->downtime_limit_ms;
    g_mutex_unlock(&o->mm->lock);
    /* Setting it restarts the budget: only when it changed, or it never bites. */
    if (bw != o->bw_applied) {
        mig_stream_set_max_bandwidth(o->s, bw);
        o->bw_applied = bw;
    }
    return bw;
}

/*
 * Every page once, then rounds until the rest fits. Returns with the
 * pages still to send in o->bitmap.
 */
static bool mig_out_iterate(MigOut *o, GError **errp)
{
    VmmMigrate *mm = o->mm;
    gint64 t0 = g_get_monotonic_time();
    uint64_t sent = 0;
    unsigned round = 1;

    g_mutex_lock(&mm->lock);
    mm->round = round;
    g_mutex_unlock(&mm->lock);
    if (!mig_out_send(o, NULL, &sent, errp)) {
        return false;
    }
    for (;;) {
        if (o->postcopy_now) {
            return true;
        }
        uint64_t elapsed = (uint64_t)(g_get_monotonic_time() - t0);
        uint64_t dirty, limit, max_bw, bw;
        MigConvergence c;

        if (!mig_out_sync(o, &dirty, errp)) {
            return false;
        }
        max_bw = mig_out_params(o, &limit);
        bw = mig_bandwidth(sent, elapsed);
        c = mig_convergence_check(bw, max_bw, dirty * MIG_PAGE_SIZE, limit);
        g_mutex_lock(&mm->lock);
        mm->transferred = mig_stream_bytes_written(o->s);
        mm->remaining = dirty * MIG_PAGE_SIZE;
        mm->sync_count++;
        mm->dirty_rate = elapsed ? dirty * 1000000 / elapsed : 0;
        mm->expected_downtime_ms = c.expected_downtime_ms;
        mm->mbps_x1000 = c.bandwidth * 8 / 1000;
        g_mutex_unlock(&mm->lock);
        if (c.stop_and_copy) {
            return true;
        }
        if (mig_out_postcopy_wanted(o, true)) {
            o->postcopy_now = true;
            o->switch_all = false;
            o->switch_word = o->nwords;     /* the rest is in o->bitmap */
            return true;
        }
        if (round >= VMM_MIGRATE_MAX_ROUNDS) {
            vmm_status("migration: %" PRIu64 " MiB still dirty after %u rounds: stopping "
                       "the guest for the rest", (dirty * MIG_PAGE_SIZE) >> 20, round);
            return true;
        }
        if (mig_out_cancelled(o, errp)) {
            return false;
        }
        round++;
        g_mutex_lock(&mm->lock);
        mm->round = round;
        g_mutex_unlock(&mm->lock);
        t0 = g_get_monotonic_time();
        if (!mig_out_send(o, o->bitmap, &sent, errp)) {
            return false;
        }
    }
}

/* The destination's word: it loaded everything and owns the guest now. */
static bool mig_out_wait_ack(MigOut *o, GError **errp)
{
    struct pollfd p = { .fd = o->fd, .events = POLLIN };
    uint8_t b[4];
    size_t got = 0;
    gint64 end = g_get_monotonic_time() + VMM_MIGRATE_ACK_TIMEOUT_MS * 1000ll;

    while (got < sizeof(b)) {
        int left = (int)((end - g_get_monotonic_time()) / 1000);
        ssize_t r;

        if (left <= 0) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "the destination did not confirm within %u s that it runs the guest",
                        VMM_MIGRATE_ACK_TIMEOUT_MS / 1000);
            return false;
        }
        r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r > 0) {
            r = read(o->fd, b + got, sizeof(b) - got);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                            "the destination closed the connection without taking over "
                            "the guest%s%s", r < 0 ? ": " : "", r < 0 ? g_strerror(errno) : "");
                return false;
            }
            got += (size_t)r;
        }
    }
    if (((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]) !=
        VMM_MIGRATE_ACK) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "the destination answered 0x%02x%02x%02x%02x, not its acknowledgement",
                    b[0], b[1], b[2], b[3]);
        return false;
    }
    return true;
}

bool mig_out_no_return(MigOut *o, bool *flag, GError **errp)
{
    bool cancelled;

    g_mutex_lock(&o->mm->lock);
    cancelled = o->mm->cancel;
    if (!cancelled) {
        *flag = true;
    }
    g_mutex_unlock(&o->mm->lock);
    if (cancelled) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL, "cancelled");
    }
    return !cancelled;
}

bool mig_out_send_devices(MigOut *o, GError **errp)
{
    for (unsigned i = 0; i < o->blobs->len; i++) {
        GByteArray *b = o->blobs->pdata[i];

        if (!mig_save_device(o->s, vhost_user_base_id(vmm_machine_device(o->m, i)),
                             b->data, b->len, errp)) {
            return false;
        }
    }
    return true;
}

/* Guest stopped: the rest of RAM, every device's state, END, the answer. */
static bool mig_out_switchover(MigOut *o, GError **errp)
{
    VmmMigrate *mm = o->mm;
    gint64 t_stop;
    uint64_t dirty = 0;

    vmm_runstate_set(VMM_RUN_STATE_FINISH_MIGRATE);
    t_stop = g_get_monotonic_time();
    if (!vmm_machine_vm_stop(o->m, errp)) {
        return false;
    }
    o->stopped = o->was_running;
    if (o->track) {
        /* The rings are stopped: the back-ends' last writes are in their logs. */
        if (!mig_out_sync(o, &dirty, errp) ||
            !mig_ram_save_dirty(o->s, o->mem, o->bitmap, o->npages, NULL, errp)) {
            return false;
        }
    } else {
        g_mutex_lock(&mm->lock);
        mm->round = 1;
        g_mutex_unlock(&mm->lock);
        if (!mig_ram_save_dirty(o->s, o->mem, NULL, 0, NULL, errp)) {
            return false;
        }
    }
    mig_out_figures(o, o->bitmap, o->nwords);     /* nothing left */
    if (!vmm_loop_call(mig_out_save_cb, o, errp) || !mig_out_send_devices(o, errp)) {
        return false;
    }
    if (!mig_out_no_return(o, &mm->end_sent, errp) || !mig_save_end(o->s, errp) ||
        !mig_out_wait_ack(o, errp)) {
        return false;
    }
    g_mutex_lock(&mm->lock);
    mm->downtime_ms = (gint64)vmm_mig_ms_since(t_stop);
    mm->transferred = mig_stream_bytes_written(o->s);
    mm->remaining = 0;
    g_mutex_unlock(&mm->lock);
    return true;
}

bool mig_out_connect(MigOut *o, const char *uri, GError **errp)
{
    VmmMigrate *mm = o->mm;
    int fd = mig_socket_connect(uri, errp);

    if (fd < 0) {
        return false;
    }
    o->fd = fd;
    o->s = mig_stream_new(fd);
    g_mutex_lock(&mm->lock);
    mm->stream = o->s;
    if (mm->cancel) {
        mig_stream_shutdown(o->s);
    }
    g_mutex_unlock(&mm->lock);
    return mig_save_header(o->s, errp);
}

static bool mig_out_run(MigOut *o, GError **errp)
{
    VmmMigrate *mm = o->mm;
    g_autoptr(GArray) blocks = g_array_new(FALSE, FALSE, sizeof(RamTrackBlock));
    GError *err = NULL;

    if (!mig_out_connect(o, o->uri, errp)) {
        return false;
    }
    mig_out_params(o, &(uint64_t){ 0 });
    if (!mig_ram_save_setup(o->s, o->mem, errp)) {
        return false;
    }
    /* The destination checks its side of postcopy now, not at the switch. */
    if (o->postcopy_cap &&
        !mig_save_postcopy_section(o->s, MIG_SECTION_POSTCOPY_ADVISE, errp)) {
        return false;
    }
    if (o->preempt_cap) {
        mig_out_pc_preempt_connect(o);
    }

    for (unsigned i = 0; i < guest_memory_nregions(o->mem); i++) {
        RamTrackBlock b = ram_track_block_from_region(guest_memory_region(o->mem, i));

        g_array_append_val(blocks, b);
    }
    o->track = ram_track_new((RamTrackBlock *)blocks->data, blocks->len, &err);
    if (!o->track && g_error_matches(err, VHOST_USER_ERROR,
                                     VHOST_USER_ERROR_FEATURE_MISMATCH)) {
        vmm_status("migration: %s", err->message);
        /* migrate-start-postcopy refuses from now on, saying why. */
        g_mutex_lock(&mm->lock);
        g_free(mm->no_tracking);
        mm->no_tracking = g_strdup(err->message);
        g_mutex_unlock(&mm->lock);
        if (o->postcopy_cap) {
            /* Postcopy switches mid-precopy; without rounds there is no such point. */
            vmm_status("migration: postcopy-ram: stop-and-copy instead, "
                       "migrate-start-postcopy has no effect");
        }
        g_clear_error(&err);
    } else if (!o->track) {
        g_propagate_error(errp, err);
        return false;
    } else if (!vmm_loop_call(mig_out_log_start_cb, o, errp) ||
               !ram_track_start(o->track, errp)) {
        return false;
    }
    g_mutex_lock(&mm->lock);
    mm->setup_us = g_get_monotonic_time() - mm->start_us;
    g_mutex_unlock(&mm->lock);
    vmm_mig_set_status(mm, VMM_MIG_ACTIVE);

    if (o->track && !mig_out_iterate(o, errp)) {
        return false;
    }
    if (o->postcopy_now) {
        return mig_out_postcopy(o, errp);
    }
    return !mig_out_cancelled(o, errp) && mig_out_switchover(o, errp);
}

/* Logging and tracking off, whatever the outcome. */
static void mig_out_cleanup(MigOut *o)
{
    if (o->nlogging) {
        vmm_loop_call(mig_out_log_stop_cb, o, NULL);
    }
    ram_track_free(o->track);
    o->track = NULL;
}

static gpointer mig_out_thread(gpointer opaque)
{
    MigOut *o = opaque;
    VmmMigrate *mm = o->mm;
    g_autoptr(GError) err = NULL;
    bool ok = mig_out_run(o, &err);
    bool cancelled;

    if (!ok && o->s) {
        /* Unblocks the return path's reader, if any. */
        mig_stream_shutdown(o->s);
    }
    mig_out_postcopy_cleanup(o);
    mig_out_cleanup(o);
    g_mutex_lock(&mm->lock);
    mm->stream = NULL;
    cancelled = mm->cancel;
    mm->total_us = g_get_monotonic_time() - mm->start_us;
    g_mutex_unlock(&mm->lock);
    mig_stream_free(o->s);

    if (ok) {
        vmm_runstate_set(VMM_RUN_STATE_POSTMIGRATE);
        vmm_loop_call(mig_out_migrated_cb, o, NULL);
        vmm_mig_set_status(mm, VMM_MIG_COMPLETED);
        g_mutex_lock(&mm->lock);
        vmm_status("migration: completed in %" PRId64 " ms, downtime %" PRId64
                   " ms (%u rounds, %" PRIu64 " MiB)%s", mm->total_us / 1000,
                   mm->downtime_ms, mm->round, mm->transferred >> 20,
                   o->postcopy_switched ? " after postcopy" : "");
        if (o->postcopy_switched) {
            vmm_status("migration: postcopy: %" PRIu64 " page requests served, %" PRIu64
                       " pages on the postcopy-preempt connection; the background went on "
                       "from a requested page %" PRIu64 " times", mm->postcopy_requests,
                       mm->preempt_pages, mm->postcopy_followed);
        }
        g_mutex_unlock(&mm->lock);
    } else {
        g_autoptr(GError) start_err = NULL;

        /*
         * Past the postcopy switch the destination ran the guest and owns
         * part of its RAM: ours must never run again (recovery is for later).
         */
        if (o->postcopy_switched) {
            vmm_status("migration: postcopy failed; the guest stays stopped here (its "
                       "state is split between the two sides)");
        } else {
            if (o->stopped && !vmm_machine_vm_start(o->m, &start_err)) {
                vmm_status("migration: resuming the guest: %s", start_err->message);
            }
            vmm_runstate_set(o->prev_state);
        }
        g_mutex_lock(&mm->lock);
        g_free(mm->error_desc);
        mm->error_desc = g_strdup(err->message);
        g_mutex_unlock(&mm->lock);
        vmm_mig_set_status(mm, cancelled ? VMM_MIG_CANCELLED : VMM_MIG_FAILED);
        if (cancelled) {
            vmm_status("migration: cancelled");
        } else {
            vmm_status("migration: failed: %s", err->message);
        }
    }
    mig_stream_free(o->pre);                    /* precopy ended it: never used */
    g_ptr_array_unref(o->blobs);
    g_free(o->bitmap);
    g_free(o->window);
    g_free(o->uri);
    g_free(o);
    vmm_mig_thread_done(mm);
    return NULL;
}

/* ---- migrate, on the loop --------------------------------------------- */

static bool mig_out_check(VmmMigrate *mm, GError **errp)
{
    GuestMemory *mem = vmm_machine_memory(mm->m);
    VmmRunState rs = vmm_runstate_get();
    unsigned n = guest_memory_nregions(mem);

    if (vmm_mig_status_running(mm->status)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "There's a migration process in progress (status '%s')",
                    vmm_mig_status_name(mm->status));
        return false;
    }
    if (mm->incoming && vmm_machine_is_incoming(mm->m)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "The guest has not arrived yet: this VMM waits for an incoming "
                    "migration");
        return false;
    }
    if (rs == VMM_RUN_STATE_POSTMIGRATE) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "The guest already migrated to another VMM");
        return false;
    }
    if (!n || n > MIG_RAM_MAX_REGIONS) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "guest RAM has %u regions; a migration stream carries 1 to %u", n,
                    MIG_RAM_MAX_REGIONS);
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);
        size_t idlen = strlen(r->block->id);

        if (!idlen || idlen > MIG_RAM_BLOCK_ID_MAX || (r->gpa | r->size) % MIG_PAGE_SIZE) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "RAM block '%s' at 0x%" PRIx64 " cannot migrate: ids are 1..%u "
                        "bytes, placement and size 4 KiB aligned", r->block->id, r->gpa,
                        MIG_RAM_BLOCK_ID_MAX);
            return false;
        }
    }
    for (unsigned i = 0; i < vmm_machine_ndevices(mm->m); i++) {
        VhostUserBase *vub = vmm_machine_device(mm->m, i);
        g_autoptr(GError) why = NULL;

        if (!vhost_user_base_check_migratable(vub, &why)) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "migration is blocked by device '%s': %s", vhost_user_base_id(vub),
                        why->message);
            return false;
        }
    }
    return !mm->cap_postcopy || mig_out_postcopy_check(mm, errp);
}

bool vmm_mig_out_start(VmmMigrate *mm, const char *uri, GError **errp)
{
    GuestMemory *mem = vmm_machine_memory(mm->m);
    MigOut *o;
    bool ok;

    g_mutex_lock(&mm->lock);
    ok = mig_out_check(mm, errp);
    g_mutex_unlock(&mm->lock);
    if (!ok) {
        return false;
    }
    /* A thread that ended is joined before the next one starts. */
    vmm_mig_join(mm);

    o = g_new0(MigOut, 1);
    o->mm = mm;
    o->m = mm->m;
    o->mem = mem;
    o->uri = g_strdup(uri);
    o->fd = -1;
    o->bw_applied = UINT64_MAX;
    o->blobs = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
    o->npages = (guest_memory_end(mem) + MIG_PAGE_SIZE - 1) / MIG_PAGE_SIZE;
    o->nwords = (o->npages + 63) / 64;
    o->bitmap = g_new0(uint64_t, o->nwords ? o->nwords : 1);
    o->window = g_new0(uint64_t, o->nwords ? o->nwords : 1);
    o->was_running = vmm_machine_vm_running(mm->m);
    o->prev_state = vmm_runstate_get();
    o->postcopy_cap = mm->cap_postcopy;     /* loop thread: the only writer */
    o->preempt_cap = mm->cap_postcopy && mm->cap_preempt;

    g_mutex_lock(&mm->lock);
    mm->incoming = false;
    mm->cancel = false;
    mm->end_sent = false;
    mm->postcopy = false;
    mm->start_postcopy = false;
    g_clear_pointer(&mm->no_tracking, g_free);
    mm->postcopy_requests = 0;
    mm->postcopy_followed = 0;
    mm->postcopy_rings_ahead = 0;
    mm->preempt_pages = 0;
    g_clear_pointer(&mm->error_desc, g_free);
    mm->start_us = g_get_monotonic_time();
    mm->setup_us = mm->total_us = mm->downtime_ms = 0;
    mm->expected_downtime_ms = UINT64_MAX;
    mm->ram_total = 0;
    for (unsigned i = 0; i < guest_memory_nregions(mem); i++) {
        mm->ram_total += guest_memory_region(mem, i)->size;
    }
    mm->transferred = mm->remaining = mm->dirty_rate = mm->sync_count = 0;
    mm->mbps_x1000 = 0;
    mm->round = 0;
    mm->thread_done = false;
    g_mutex_unlock(&mm->lock);
    vmm_mig_set_status(mm, VMM_MIG_SETUP);
    vmm_status("migration: to %s", uri);
    vmm_mig_progress_start(mm);
    g_mutex_lock(&mm->lock);
    mm->thread = g_thread_new("migration", mig_out_thread, o);
    g_mutex_unlock(&mm->lock);
    return true;
}
