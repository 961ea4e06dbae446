/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-net driver, parking a run and continuing it from
 * guest RAM (live migration). See include/guest/virtio-net-drv.h.
 *
 * Untrusted input: the run record is read back from guest RAM, which a
 * back-end can write. Every count is checked against the workload and the
 * received records' bounds before it is used.
 */
#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "virtio-net-drv-int.h"

bool net_run_pause_wanted(const NetRun *run)
{
    /* A run being stopped ends rather than parks: nobody would resume it. */
    return run->ctl.pause && run->ctl.park &&
           __atomic_load_n(run->ctl.pause, __ATOMIC_ACQUIRE) &&
           !(run->ctl.stop && __atomic_load_n(run->ctl.stop, __ATOMIC_ACQUIRE));
}

/* A merged packet is half taken: its last buffers are not used yet. */
bool net_rx_partial(const VirtioNetDrv *d)
{
    for (unsigned p = 0; p < d->nqp; p++) {
        if (d->asmb[p].want) {
            return true;
        }
    }
    return false;
}

static void net_run_save(NetRun *run)
{
    NetRunRecord *r = &run->d->st->rec;
    const VirtioNetResult *res = run->res;
    uint64_t now = wl_now_ns();

    r->magic = 0;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    r->nqp = run->nqp;
    r->window = run->window;
    r->ntx = run->ntx;
    r->slot = run->slot;
    r->sending = run->sending;
    r->count = run->wl->count;
    r->runtime_left_ns = !run->end_ns ? 0 : run->end_ns > now ? run->end_ns - now : 1;
    r->received = res->received;
    r->verified = res->verified;
    r->mismatched = res->mismatched;
    r->stale = res->stale;
    r->wrong_queue = res->wrong_queue;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    r->magic = NET_RUN_MAGIC;
}

/*
 * Nothing out on TX and no packet half taken: saves the run and parks.
 * RX buffers stay posted: what the device delivers meanwhile waits in
 * the used rings (guest RAM) for whoever goes on. Returns false when the
 * run moved to another VMM.
 */
bool net_run_park(NetRun *run)
{
    uint64_t t0 = wl_now_ns(), parked;
    bool go_on;

    net_run_save(run);
    if (run->ctl.in_flight) {
        __atomic_store_n(run->ctl.in_flight, run->tx_in_flight, __ATOMIC_RELAXED);
    }
    go_on = run->ctl.park(run->ctl.opaque);
    parked = wl_now_ns() - t0;
    run->res->stats.start_ns += parked;
    run->last_activity_ns += parked;
    run->last_progress_ns += parked;
    if (run->end_ns) {
        run->end_ns += parked;
    }
    if (go_on) {
        __atomic_store_n(&run->d->st->rec.magic, 0, __ATOMIC_RELEASE);
    } else {
        run->migrated = true;
    }
    return go_on;
}

/*
 * The record a parked run left, as untrusted input: the same workload
 * shape, sent counts within count, received records that fit what was
 * sent (net_seen_restore()). Sets got[] from the records and the counts.
 */
bool net_run_restore(NetRun *run, GError **errp)
{
    VirtioNetDrv *d = run->d;
    NetRunRecord r = d->st->rec;
    VirtioNetResult *res = run->res;

    if (r.magic != NET_RUN_MAGIC) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: run record: magic 0x%08" PRIx32 ", no parked run to continue",
                    d->name, r.magic);
        return false;
    }
    if (r.nqp != run->nqp || r.window != run->window || r.ntx != run->ntx ||
        r.slot != run->slot || r.count != run->wl->count || r.sending > 1) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                    "%s: run record: %" PRIu32 " pairs, window %" PRIu32 ", %" PRIu32
                    " TX slots of %" PRIu32 ", count %" PRIu64 "; this workload has %u, "
                    "%u, %u of %" PRIu32 ", %" PRIu64 " (the same -workload must "
                    "continue)", d->name, r.nqp, r.window, r.ntx, r.slot, r.count,
                    run->nqp, run->window, run->ntx, run->slot, run->wl->count);
        return false;
    }
    for (unsigned p = 0; p < run->nqp; p++) {
        uint64_t sent = d->st->sent[p], got = 0;
        const char *why;

        if (sent > r.count) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                        "%s: run record: sent[%u] %" PRIu64 " is over count %" PRIu64,
                        d->name, p, sent, r.count);
            return false;
        }
        why = net_seen_restore(run, p, sent, &got);
        if (why) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_CONFIG,
                        "%s: run record: queue pair %u received record %s (%" PRIu64
                        " sent)", d->name, p, why, sent);
            return false;
        }
        run->got[p] = got;
        res->sent += sent;
    }
    res->received = r.received;
    res->verified = r.verified;
    res->mismatched = r.mismatched;
    res->stale = r.stale;
    res->wrong_queue = r.wrong_queue;
    res->ops_before = r.verified;
    res->continued = true;
    if (r.mismatched) {
        res->first_error = g_strdup_printf("%s: %" PRIu64 " packets mismatched before "
                                           "the migration", d->name, r.mismatched);
    }
    run->sending = r.sending;
    run->end_ns = r.runtime_left_ns ? wl_now_ns() + r.runtime_left_ns : 0;
    d->st->rec.magic = 0;
    return true;
}
