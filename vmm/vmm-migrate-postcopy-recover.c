/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Postcopy recovery: the migration connection broke after POSTCOPY_RUN.
 * Neither side can go on alone (the guest runs on the destination, part
 * of its RAM is still only here on the source), so both pause, status
 * postcopy-paused, and keep everything: the source its stopped guest and
 * its owed pages, the destination its running guest, its userfaultfds,
 * its back-ends listening and the faults it could not request (the fault
 * thread keeps their waiters). Then:
 *
 *   destination  QMP migrate-recover {"uri"}: listens there.
 *   source       QMP migrate {"uri", "resume": true}: connects, writes
 *                the stream header and POSTCOPY_RESUME.
 *   destination  answers on the return path with every range of pages it
 *                still lacks ("VURR" gpa len ...) and their count
 *                ("VURE" npages), asks again for the pages its faults
 *                wait for (mig_postcopy_rerequest), postcopy-active.
 *   source       owed = exactly that set (pages it sent that were lost in
 *                the cut are in it; pages that arrived are not), starts
 *                the return path's reader again, postcopy-active, and the
 *                background stream and requests go on until END / "VUOK".
 *
 * QMP migrate-pause (either side, postcopy-active) breaks the connection
 * on purpose, as QEMU's does: for a network that hangs rather than fails.
 * A failed attempt (nobody listening, the handshake broken) leaves both
 * paused, ready for another; so does a second cut. migrate_cancel is
 * refused while paused: no side can take the guest back alone.
 *
 * Threads: each side's migration thread pauses in place (waiting on
 * VmmMigrate.cond); the QMP commands run on the loop and only hand it
 * the new URI or listening socket. The VMM exiting (vmm_migrate_free)
 * wakes it to end.
 *
 * Untrusted input: on the source, the destination's lacking set.
 * mig_rp_read checks each range (aligned, not empty, inside one region of
 * guest RAM); here the number of ranges is bounded by guest RAM's pages,
 * any other message is refused, the count must match the ranges' pages,
 * and the whole answer has a deadline. A bad answer fails this attempt
 * (paused again), never the source. On the destination, the recovery
 * stream is checked as any other (mig_load_postcopy_resume).
 *
 * A cut right after END can lose the destination's "VUOK": the
 * destination completed, the source cannot tell that from a destination
 * that lacks the last pages, and pauses. A destination whose postcopy
 * completed therefore still takes migrate-recover: it answers the
 * handshake with nothing lacking ("VURE" 0), reads the source's END
 * and acknowledges again; the source completes, this side stays
 * completed. A page on that connection is refused: nothing was owed.
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "migration/format.h"
#include "migration/postcopy-ram.h"
#include "migration/return-path.h"
#include "migration/socket.h"
#include "util/vhost-user-error.h"
#include "vmm/vmm-migrate-in-int.h"
#include "vmm/vmm-migrate-out-int.h"

/*
 * Either side, after a cut: postcopy-paused with its cause, unless the VMM
 * is exiting (then true and nothing changes).
 */
static bool mig_pc_enter_paused(VmmMigrate *mm, const char *why)
{
    bool exiting;

    g_mutex_lock(&mm->lock);
    exiting = mm->cancel;
    if (!exiting) {
        g_free(mm->error_desc);
        mm->error_desc = g_strdup(why);
        vmm_mig_set_status_locked(mm, VMM_MIG_POSTCOPY_PAUSED);
    }
    g_mutex_unlock(&mm->lock);
    return exiting;
}

/* ---- source -------------------------------------------------------------- */

/* How long a broken connection's last message ("VUFL") is waited for. */
#define PC_LAST_WORDS_MS        1000

/* The reader stopped and joined, the connection closed; owed stays. */
static void mig_out_pc_disconnect(MigOut *o)
{
    MigOutPostcopy *pc = o->pc;
    VmmMigrate *mm = o->mm;

    if (o->s) {
        mig_stream_shutdown(o->s);
    }
    mig_out_pc_stop_reader(pc);
    g_mutex_lock(&pc->lock);
    pc->stopping = false;
    pc->acked = false;
    g_array_set_size(pc->queue, 0);
    g_clear_error(&pc->err);
    g_mutex_unlock(&pc->lock);
    g_mutex_lock(&mm->lock);
    mm->stream = NULL;
    g_mutex_unlock(&mm->lock);
    if (o->s) {
        o->bytes_prev += mig_stream_bytes_written(o->s);
        mig_stream_free(o->s);
        o->s = NULL;
    }
    o->fd = -1;
}

/*
 * The destination's lacking ranges, up to "VURE": the new owed set, which
 * replaces the old one only when the whole answer is good.
 */
static bool mig_out_pc_read_lacking(MigOut *o, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    gint64 end = g_get_monotonic_time() + VMM_MIGRATE_ACK_TIMEOUT_MS * 1000ll;
    g_autofree uint64_t *owed = g_new0(uint64_t, o->nwords ? o->nwords : 1);
    uint64_t nranges = 0, n = 0;

    for (;;) {
        int left = (int)MAX((end - g_get_monotonic_time()) / 1000, 1);
        MigRpMsg msg;

        if (!mig_rp_read(o->fd, o->mem, left, &msg, errp)) {
            return false;
        }
        if (msg.tag == MIG_RP_TAG_LACKING_END) {
            if (msg.len != n) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                            "postcopy resume: the destination counts %" PRIu64 " missing "
                            "pages, its ranges hold %" PRIu64, msg.len, n);
                return false;
            }
            g_free(pc->owed);
            pc->owed = g_steal_pointer(&owed);
            pc->nowed = n;
            return true;
        }
        if (msg.tag != MIG_RP_TAG_LACKING || ++nranges > o->npages) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        msg.tag != MIG_RP_TAG_LACKING ?
                        "postcopy resume: message 0x%08x instead of the missing pages" :
                        "postcopy resume: more ranges of missing pages than guest RAM has "
                        "pages (0x%08x)", msg.tag);
            return false;
        }
        /* Checked by mig_rp_read: aligned, not empty, inside one region. */
        for (uint64_t p = msg.gpa / MIG_PAGE_SIZE; p < (msg.gpa + msg.len) / MIG_PAGE_SIZE;
             p++) {
            uint64_t bit = 1ull << (p % 64);

            n += !(owed[p / 64] & bit);
            owed[p / 64] |= bit;
        }
    }
}

static bool mig_out_pc_reconnect(MigOut *o, const char *uri, GError **errp)
{
    MigOutPostcopy *pc = o->pc;
    VmmMigrate *mm = o->mm;

    if (!mig_out_connect(o, uri, errp) ||
        !mig_save_postcopy_section(o->s, MIG_SECTION_POSTCOPY_RESUME, errp) ||
        !mig_out_pc_read_lacking(o, errp)) {
        return false;
    }
    /* The destination asks again for what its faults wait for: read from now. */
    pc->reader = g_thread_new("migration-rp", mig_out_rp_thread, o);
    g_mutex_lock(&mm->lock);
    mm->remaining = pc->nowed * MIG_PAGE_SIZE;
    g_mutex_unlock(&mm->lock);
    return true;
}

/*
 * Whether the destination said it failed for good ("VUFL"). A peer that
 * closed has its last words in our socket: give the reader a moment to
 * read them (a hung network is not waited for longer than that).
 */
static bool mig_out_pc_dest_failed(MigOut *o)
{
    MigOutPostcopy *pc = o->pc;
    gint64 end = g_get_monotonic_time() + PC_LAST_WORDS_MS * 1000ll;
    bool failed;

    g_mutex_lock(&pc->lock);
    while (pc->reader && !pc->err && !pc->acked) {
        if (!g_cond_wait_until(&pc->cond, &pc->lock, end)) {
            break;
        }
    }
    failed = pc->dest_failed;
    g_mutex_unlock(&pc->lock);
    return failed;
}

bool mig_out_pc_recover(MigOut *o, GError *err, GError **errp)
{
    VmmMigrate *mm = o->mm;
    g_autoptr(GError) why = err;

    if (mig_out_pc_dest_failed(o)) {
        g_propagate_prefixed_error(errp, g_steal_pointer(&why),
                                   "the destination failed, no recovery: ");
        return false;
    }
    mig_out_pc_disconnect(o);
    for (;;) {
        g_autofree char *uri = NULL;
        g_autoptr(GError) again = NULL;
        bool exiting;

        exiting = mig_pc_enter_paused(mm, why->message);
        if (!exiting) {
            vmm_status("migration: postcopy paused (%s); %" PRIu64 " MiB still owed; the "
                       "guest stays stopped here until migrate with resume=true",
                       why->message, (o->pc->nowed * MIG_PAGE_SIZE) >> 20);
        }
        g_mutex_lock(&mm->lock);
        while (!mm->resume_uri && !mm->cancel) {
            g_cond_wait(&mm->cond, &mm->lock);
        }
        uri = g_steal_pointer(&mm->resume_uri);
        g_mutex_unlock(&mm->lock);
        if (!uri) {
            vmm_status("migration: the VMM exits while postcopy is paused (%" PRIu64
                       " MiB the destination lacks go with it)",
                       (o->pc->nowed * MIG_PAGE_SIZE) >> 20);
            g_propagate_prefixed_error(errp, g_steal_pointer(&why),
                                       "the VMM exits while postcopy is paused: ");
            return false;
        }
        vmm_status("migration: postcopy: resuming to %s", uri);
        if (mig_out_pc_reconnect(o, uri, &again)) {
            vmm_mig_set_status(mm, VMM_MIG_POSTCOPY_ACTIVE);
            vmm_mig_progress_start(mm);
            vmm_status("migration: postcopy resumed: %" PRIu64 " MiB still owed",
                       (o->pc->nowed * MIG_PAGE_SIZE) >> 20);
            return true;
        }
        mig_out_pc_disconnect(o);
        g_clear_error(&why);
        why = g_error_new(again->domain, again->code, "resume to %s: %s", uri,
                          again->message);
    }
}

bool vmm_mig_postcopy_pause(VmmMigrate *mm, GError **errp)
{
    bool ok;

    g_mutex_lock(&mm->lock);
    ok = mm->status == VMM_MIG_POSTCOPY_ACTIVE && mm->stream;
    if (ok) {
        /* As if the network failed: the thread sees its stream end and pauses. */
        mig_stream_shutdown(mm->stream);
    } else {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "migrate-pause: only a migration in status 'postcopy-active' can pause "
                    "(status '%s')", vmm_mig_status_name(mm->status));
    }
    g_mutex_unlock(&mm->lock);
    return ok;
}

bool vmm_mig_out_resume(VmmMigrate *mm, const char *uri, GError **errp)
{
    bool ok;

    g_mutex_lock(&mm->lock);
    ok = !mm->incoming && mm->status == VMM_MIG_POSTCOPY_PAUSED && !mm->resume_uri;
    if (ok) {
        mm->resume_uri = g_strdup(uri);
        g_cond_broadcast(&mm->cond);
    } else if (mm->resume_uri) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "migrate resume: a resume to %s is already under way", mm->resume_uri);
    } else {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "migrate resume: only an outgoing migration in status 'postcopy-paused' "
                    "can resume (status '%s'%s)", vmm_mig_status_name(mm->status),
                    mm->incoming ? ", incoming" : "");
    }
    g_mutex_unlock(&mm->lock);
    return ok;
}

/* ---- destination --------------------------------------------------------------- */

/* "VURR" for every run of pages not received, then "VURE" with their count. */
static bool mig_in_pc_send_lacking(MigIn *in, MigPostcopy *pc, GError **errp)
{
    GuestMemory *mem = vmm_machine_memory(in->m);
    uint64_t total = 0;

    for (unsigned i = 0; i < guest_memory_nregions(mem); i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);
        uint64_t end = r->gpa + r->size, gpa = r->gpa;

        while (gpa < end) {
            uint64_t q;

            if (mig_postcopy_received(pc, gpa)) {
                gpa += MIG_PAGE_SIZE;
                continue;
            }
            for (q = gpa + MIG_PAGE_SIZE; q < end && !mig_postcopy_received(pc, q);
                 q += MIG_PAGE_SIZE) {
            }
            if (!mig_rp_send_lacking(in->rp, gpa, q - gpa, errp)) {
                return false;
            }
            total += (q - gpa) / MIG_PAGE_SIZE;
            gpa = q;
        }
    }
    return mig_rp_send_lacking_end(in->rp, total, errp);
}

/* The load's resume callback: POSTCOPY_RESUME came on the new connection. */
static bool mig_in_pc_resume(void *opaque, GError **errp)
{
    MigIn *in = opaque;
    MigPostcopy *pc = mig_in_postcopy_ram(in);
    bool ok;

    if (!pc) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_STATE,
                    "postcopy resume: this destination has no postcopy under way");
        return false;
    }
    /*
     * Only this thread places pages, and it is here: the set cannot change.
     * Under rp_lock the fault thread's requests wait until the set is out.
     */
    g_mutex_lock(&in->rp_lock);
    in->rp = g_steal_pointer(&in->rp_next);
    ok = in->rp && mig_in_pc_send_lacking(in, pc, errp);
    g_mutex_unlock(&in->rp_lock);
    if (!ok) {
        return false;
    }
    mig_postcopy_rerequest(pc);
    vmm_mig_set_status(in->mm, VMM_MIG_POSTCOPY_ACTIVE);
    vmm_status("migration: postcopy resumed: %" PRIu64 " pages still missing",
               mig_postcopy_missing(pc));
    return true;
}

/* Closes the broken connection; requests wait (remembered) until the next. */
static void mig_in_pc_disconnect(MigIn *in, MigStream **sp)
{
    VmmMigrate *mm = in->mm;

    if (*sp) {
        mig_stream_shutdown(*sp);       /* a fault thread blocked writing returns */
    }
    g_mutex_lock(&in->rp_lock);
    mig_rp_free(in->rp);
    in->rp = NULL;
    g_mutex_unlock(&in->rp_lock);
    g_clear_pointer(&in->rp_next, mig_rp_free);
    g_mutex_lock(&mm->lock);
    mm->stream = NULL;
    g_mutex_unlock(&mm->lock);
    if (*sp) {
        in->bytes_prev += mig_stream_bytes_read(*sp);
        mig_stream_free(*sp);
        *sp = NULL;
    }
}

/* Paused until migrate-recover's socket has a source (or the VMM exits). */
static bool mig_in_pc_accept(MigIn *in, MigStream **sp, GError **errp)
{
    VmmMigrate *mm = in->mm;
    g_autofree char *path = NULL;
    int lfd, fd;

    g_mutex_lock(&mm->lock);
    while (mm->recover_lfd < 0 && !mm->cancel) {
        g_cond_wait(&mm->cond, &mm->lock);
    }
    if (mm->cancel) {
        g_mutex_unlock(&mm->lock);
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                    "the VMM exits while postcopy is paused");
        return false;
    }
    lfd = mm->recover_lfd;
    mm->recover_lfd = -1;
    path = g_steal_pointer(&mm->recover_path);
    mm->listen_fd = lfd;            /* vmm_migrate_free shuts it down */
    g_mutex_unlock(&mm->lock);
    fd = mig_in_accept_once(mm, lfd, path, errp);
    if (fd < 0) {
        return false;
    }
    *sp = mig_stream_new(fd);
    /* Not in->rp yet: no request may come before the lacking set (resume). */
    in->rp_next = mig_rp_new(fd);
    g_mutex_lock(&mm->lock);
    mm->stream = *sp;
    if (mm->cancel) {
        mig_stream_shutdown(*sp);
    }
    g_mutex_unlock(&mm->lock);
    return true;
}

bool mig_in_pc_recover(MigIn *in, MigStream **sp, GError *err, GError **errp)
{
    VmmMigrate *mm = in->mm;
    g_autoptr(GError) why = err;
    MigLoadOps ops = { 0 };

    mig_in_postcopy_ops(&ops);
    ops.resume = mig_in_pc_resume;
    for (;;) {
        bool exiting;

        mig_in_pc_disconnect(in, sp);
        exiting = mig_pc_enter_paused(mm, why->message);
        if (exiting || !mig_in_postcopy_recoverable(in)) {
            if (exiting) {
                vmm_status("migration: the VMM exits while postcopy is paused (%" PRIu64
                           " pages were still missing)",
                           mig_postcopy_missing(mig_in_postcopy_ram(in)));
            }
            g_propagate_error(errp, g_steal_pointer(&why));
            return false;
        }
        vmm_status("migration: postcopy paused (%s); %" PRIu64 " pages missing; the guest "
                   "runs, waiting for migrate-recover", why->message,
                   mig_postcopy_missing(mig_in_postcopy_ram(in)));
        g_clear_error(&why);
        if (!mig_in_pc_accept(in, sp, &why)) {
            g_prefix_error(&why, "migrate-recover: ");
            continue;
        }
        vmm_status("migration: postcopy: the source connected again");
        if (mig_load_postcopy_resume(*sp, vmm_machine_memory(in->m), &ops, in, &why)) {
            return true;
        }
    }
}

/* ---- destination, completed: the acknowledgement again ---------------------- */

typedef struct MigInReack {
    VmmMigrate *mm;
    int lfd;
    char *path;                 /* a unix socket's, removed once accepted */
    MigReturnPath *rp;
} MigInReack;

static bool mig_in_reack_resume(void *opaque, GError **errp)
{
    MigInReack *r = opaque;

    return mig_rp_send_lacking_end(r->rp, 0, errp);
}

static bool mig_in_reack_place(uint64_t gpa, const void *data, void *opaque, GError **errp)
{
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                "postcopy resume after completion: the source sent the page at GPA 0x%"
                PRIx64 ", but nothing was lacking", gpa);
    return false;
}

static gpointer mig_in_reack_thread(gpointer opaque)
{
    MigInReack *r = opaque;
    VmmMigrate *mm = r->mm;
    MigLoadOps ops = { .resume = mig_in_reack_resume, .place = mig_in_reack_place };
    g_autoptr(GError) err = NULL;
    MigStream *s = NULL;
    int fd = mig_in_accept_once(mm, r->lfd, r->path, &err);

    if (fd >= 0) {
        s = mig_stream_new(fd);
        r->rp = mig_rp_new(fd);
        g_mutex_lock(&mm->lock);
        mm->stream = s;
        if (mm->cancel) {
            mig_stream_shutdown(s);
        }
        g_mutex_unlock(&mm->lock);
        if (mig_load_postcopy_resume(s, vmm_machine_memory(mm->m), &ops, r, &err) &&
            mig_rp_send_ack(r->rp, &err)) {
            vmm_status("migration: postcopy: the source resumed after this side completed: "
                       "nothing lacking, acknowledged again");
        }
        g_mutex_lock(&mm->lock);
        mm->stream = NULL;
        g_mutex_unlock(&mm->lock);
    }
    if (err) {
        vmm_status("migration: postcopy: acknowledging again: %s", err->message);
    }
    mig_rp_free(r->rp);
    mig_stream_free(s);
    g_free(r->path);
    g_free(r);
    vmm_mig_thread_done(mm);
    return NULL;
}

/* Loop: migrate-recover on a destination whose postcopy completed. */
static bool mig_in_reack_start(VmmMigrate *mm, const char *uri, GError **errp)
{
    MigInReack *r;
    g_autofree char *local = NULL;
    int lfd = mig_socket_listen(uri, errp);

    if (lfd < 0) {
        g_prefix_error(errp, "migrate-recover: ");
        return false;
    }
    local = mig_socket_local_uri(lfd, NULL);
    vmm_mig_join(mm);               /* the completed migration's thread */
    r = g_new0(MigInReack, 1);
    r->mm = mm;
    r->lfd = lfd;
    r->path = g_str_has_prefix(uri, "unix:") ? g_strdup(uri + 5) : NULL;
    g_mutex_lock(&mm->lock);
    mm->listen_fd = lfd;
    mm->thread_done = false;
    mm->thread = g_thread_new("migration-reack", mig_in_reack_thread, r);
    g_mutex_unlock(&mm->lock);
    vmm_status("migration: postcopy: completed here, for a source that missed the "
               "acknowledgement: migrate-recover listens on %s", local ? local : uri);
    return true;
}

bool vmm_mig_in_recover(VmmMigrate *mm, const char *uri, GError **errp)
{
    g_autofree char *local = NULL;
    bool listening, reack;
    int lfd;

    g_mutex_lock(&mm->lock);
    /* listen_fd: the thread already waits on an earlier one's socket. */
    listening = mm->recover_lfd >= 0 || mm->listen_fd >= 0;
    reack = mm->incoming && mm->status == VMM_MIG_COMPLETED && mm->pc_completed &&
            !listening && (!mm->thread || mm->thread_done);
    if (reack) {
        g_mutex_unlock(&mm->lock);
        return mig_in_reack_start(mm, uri, errp);
    }
    if (!mm->incoming || mm->status != VMM_MIG_POSTCOPY_PAUSED || listening) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    mm->incoming && mm->status == VMM_MIG_POSTCOPY_PAUSED ?
                    "migrate-recover: already listening for the source (status '%s')" :
                    "migrate-recover: only an incoming migration in status "
                    "'postcopy-paused' can recover (status '%s')",
                    vmm_mig_status_name(mm->status));
        g_mutex_unlock(&mm->lock);
        return false;
    }
    g_mutex_unlock(&mm->lock);
    lfd = mig_socket_listen(uri, errp);
    if (lfd < 0) {
        g_prefix_error(errp, "migrate-recover: ");
        return false;
    }
    /* tcp:HOST:0 picks a port: say which (before the thread may close lfd). */
    local = mig_socket_local_uri(lfd, NULL);
    g_mutex_lock(&mm->lock);
    mm->recover_lfd = lfd;
    g_free(mm->recover_path);
    mm->recover_path = g_str_has_prefix(uri, "unix:") ? g_strdup(uri + 5) : NULL;
    g_cond_broadcast(&mm->cond);
    g_mutex_unlock(&mm->lock);
    vmm_status("migration: postcopy: migrate-recover listens on %s", local ? local : uri);
    return true;
}
