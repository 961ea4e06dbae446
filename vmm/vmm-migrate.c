/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live migration: the state both sides share, the MIGRATION events, the
 * progress line and the QMP commands. The source's thread is in
 * vmm-migrate-out.c, the destination's in vmm-migrate-in.c. See
 * vmm/vmm-migrate.h.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "migration/stream.h"
#include "vmm/vmm-migrate-int.h"
#include "vmm/vmm-runstate.h"

/* One VM per process: the monitor that gets the events, and the migration. */
static VmmMonitor *vmm_migrate_mon;     /* loop only */
static VmmMigrate *vmm_migrate_current;

const char *vmm_mig_status_name(VmmMigStatus s)
{
    switch (s) {
    case VMM_MIG_NONE:
        return "none";
    case VMM_MIG_SETUP:
        return "setup";
    case VMM_MIG_ACTIVE:
        return "active";
    case VMM_MIG_COMPLETED:
        return "completed";
    case VMM_MIG_FAILED:
        return "failed";
    case VMM_MIG_CANCELLING:
        return "cancelling";
    case VMM_MIG_CANCELLED:
        return "cancelled";
    case VMM_MIG_POSTCOPY_ACTIVE:
        return "postcopy-active";
    case VMM_MIG_POSTCOPY_PAUSED:
        return "postcopy-paused";
    }
    return "unknown";
}

bool vmm_mig_status_running(VmmMigStatus s)
{
    return s == VMM_MIG_SETUP || s == VMM_MIG_ACTIVE || s == VMM_MIG_CANCELLING ||
           s == VMM_MIG_POSTCOPY_ACTIVE || s == VMM_MIG_POSTCOPY_PAUSED;
}

static gboolean vmm_mig_event(gpointer opaque)
{
    JsonObject *data;

    if (vmm_migrate_mon) {
        data = json_object_new();
        json_object_set_string_member(data, "status", opaque);
        vmm_monitor_event(vmm_migrate_mon, "MIGRATION", data);
    }
    return G_SOURCE_REMOVE;
}

void vmm_mig_set_status_locked(VmmMigrate *mm, VmmMigStatus s)
{
    if (mm->status == s) {
        return;
    }
    mm->status = s;
    /* From the loop, in the order of the changes (the names are static). */
    g_idle_add_full(G_PRIORITY_HIGH, vmm_mig_event, (gpointer)vmm_mig_status_name(s), NULL);
}

void vmm_mig_set_status(VmmMigrate *mm, VmmMigStatus s)
{
    g_mutex_lock(&mm->lock);
    vmm_mig_set_status_locked(mm, s);
    g_mutex_unlock(&mm->lock);
}

MigPcSched vmm_mig_fault_sched(VmmMigrate *mm)
{
    MigPcSched s;

    g_mutex_lock(&mm->lock);
    s = mm->fault_sched;
    g_mutex_unlock(&mm->lock);
    return s;
}

void vmm_mig_fault_thread_setup(VmmMigrate *mm, const char *what)
{
    g_autoptr(GError) err = NULL;
    MigPcSched got;

    mig_pc_thread_prefault();
    if (!mig_pc_thread_set_sched(vmm_mig_fault_sched(mm), what, &got, &err)) {
        vmm_status("migration: %s", err->message);     /* only the latency suffers */
    }
}

void vmm_mig_thread_done(VmmMigrate *mm)
{
    g_mutex_lock(&mm->lock);
    mm->thread_done = true;
    g_mutex_unlock(&mm->lock);
    /* vmm_migrate_free may be iterating the loop, waiting for this. */
    g_main_context_wakeup(NULL);
}

void vmm_mig_join(VmmMigrate *mm)
{
    GThread *t;

    g_mutex_lock(&mm->lock);
    t = mm->thread;
    mm->thread = NULL;
    g_mutex_unlock(&mm->lock);
    if (t) {
        g_thread_join(t);
    }
}

/* ---- progress ----------------------------------------------------------- */

static gboolean vmm_mig_progress(gpointer opaque)
{
    VmmMigrate *mm = opaque;
    g_autofree char *downtime = NULL;
    bool going, postcopy, incoming;
    unsigned round;
    uint64_t sent, total, remaining, mbps_x1000, expected, requests;

    g_mutex_lock(&mm->lock);
    going = mm->status == VMM_MIG_ACTIVE && !mm->incoming;
    postcopy = mm->status == VMM_MIG_POSTCOPY_ACTIVE;
    incoming = mm->incoming;
    requests = mm->postcopy_requests;
    round = mm->round;
    sent = mm->transferred;
    total = mm->ram_total;
    remaining = mm->remaining;
    mbps_x1000 = mm->mbps_x1000;
    expected = mm->expected_downtime_ms;
    if (!vmm_mig_status_running(mm->status)) {
        mm->progress_timer = 0;
        g_mutex_unlock(&mm->lock);
        return G_SOURCE_REMOVE;
    }
    g_mutex_unlock(&mm->lock);
    if (postcopy && incoming) {
        vmm_mig_postcopy_progress(mm);
        return G_SOURCE_CONTINUE;
    }
    if (postcopy) {
        vmm_status("migration: postcopy, %" PRIu64 " MiB sent, %" PRIu64 " MiB still owed, %"
                   PRIu64 " pages requested, %.1f MiB/s", sent >> 20, remaining >> 20,
                   requests, mbps_x1000 / 1000.0 / 8.0 * 1e6 / (1 << 20));
        return G_SOURCE_CONTINUE;
    }
    if (!going || !round) {
        return G_SOURCE_CONTINUE;
    }
    downtime = expected == UINT64_MAX ? g_strdup("unknown") :
               g_strdup_printf("%" PRIu64 " ms", expected);
    vmm_status("migration: round %u, %" PRIu64 " MiB of %" PRIu64 " MiB sent, %" PRIu64
               " MiB remaining, %.1f MiB/s, expected downtime %s", round, sent >> 20,
               total >> 20, remaining >> 20, mbps_x1000 / 1000.0 / 8.0 * 1e6 / (1 << 20),
               downtime);
    return G_SOURCE_CONTINUE;
}

void vmm_mig_progress_start(VmmMigrate *mm)
{
    g_mutex_lock(&mm->lock);
    if (!mm->progress_timer) {
        mm->progress_timer = g_timeout_add(1000, vmm_mig_progress, mm);
    }
    g_mutex_unlock(&mm->lock);
}

/* ---- the object ------------------------------------------------------- */

VmmMigrate *vmm_migrate_new(VmmMachine *m, VmmMigrateFatalFn fatal, void *opaque)
{
    VmmMigrate *mm = g_new0(VmmMigrate, 1);

    mm->m = m;
    mm->fatal = fatal;
    mm->fatal_opaque = opaque;
    mm->listen_fd = -1;
    mm->recover_lfd = -1;
    g_cond_init(&mm->cond);
    mm->downtime_limit_ms = VMM_MIGRATE_DEFAULT_DOWNTIME_MS;
    mm->fault_sched = MIG_PC_SCHED_AUTO;
    mm->expected_downtime_ms = UINT64_MAX;
    mm->autostart = true;
    g_mutex_init(&mm->lock);
    vmm_migrate_current = mm;
    return mm;
}

bool vmm_migrate_postcopy_paused(VmmMigrate *mm)
{
    bool paused;

    if (!mm) {
        return false;
    }
    g_mutex_lock(&mm->lock);
    paused = mm->status == VMM_MIG_POSTCOPY_PAUSED;
    g_mutex_unlock(&mm->lock);
    return paused;
}

void vmm_migrate_free(VmmMigrate *mm)
{
    if (!mm) {
        return;
    }
    g_mutex_lock(&mm->lock);
    mm->cancel = true;
    if (mm->stream) {
        mig_stream_shutdown(mm->stream);
    }
    if (mm->listen_fd >= 0) {
        /* Wakes a thread blocked in accept(). */
        shutdown(mm->listen_fd, SHUT_RDWR);
    }
    /* A thread in postcopy-paused waits for recovery: it ends now. */
    g_cond_broadcast(&mm->cond);
    /* The thread may be waiting for a loop call: serve them until it ends. */
    while (mm->thread && !mm->thread_done) {
        g_mutex_unlock(&mm->lock);
        g_main_context_iteration(NULL, TRUE);
        g_mutex_lock(&mm->lock);
    }
    g_mutex_unlock(&mm->lock);
    vmm_mig_join(mm);
    if (mm->listen_fd >= 0) {
        close(mm->listen_fd);
    }
    if (mm->recover_lfd >= 0) {
        close(mm->recover_lfd);
    }
    if (mm->recover_path) {
        unlink(mm->recover_path);
    }
    if (mm->progress_timer) {
        g_source_remove(mm->progress_timer);
    }
    vmm_migrate_current = NULL;
    g_mutex_clear(&mm->lock);
    g_cond_clear(&mm->cond);
    g_free(mm->resume_uri);
    g_free(mm->recover_path);
    g_free(mm->no_tracking);
    g_free(mm->error_desc);
    g_free(mm);
}

const char *vmm_migration_blocks_hotplug(void)
{
    VmmMigrate *mm = vmm_migrate_current;
    const char *why = NULL;

    if (!mm) {
        return NULL;
    }
    g_mutex_lock(&mm->lock);
    if (vmm_mig_status_running(mm->status)) {
        why = mm->incoming ? "an incoming migration is loading guest RAM" :
                             "a migration is active";
    } else if (mm->incoming && vmm_machine_is_incoming(mm->m) && !mm->wait_cont) {
        why = "the VMM waits for an incoming migration (-incoming)";
    }
    g_mutex_unlock(&mm->lock);
    return why;
}

bool vmm_migrate_incoming(VmmMigrate *mm, const char *uri, bool autostart, GError **errp)
{
    mm->incoming = true;
    mm->autostart = autostart;
    vmm_machine_set_incoming(mm->m);
    vmm_runstate_set(VMM_RUN_STATE_INMIGRATE);
    if (!strcmp(uri, "defer")) {
        mm->defer = true;
        vmm_status("migration: incoming deferred (waiting for migrate-incoming)");
        return true;
    }
    return vmm_mig_in_start(mm, uri, errp);
}

/* ---- QMP ------------------------------------------------------------------ */

static JsonNode *vmm_qmp_migrate(VmmMonitor *mon, JsonObject *args, void *opaque,
                                 GError **errp)
{
    static const char *const keys[] = { "uri", "detach", "blk", "inc", "resume", NULL };
    const char *uri;
    bool resume = false;

    if (!vmm_qmp_check_args(args, keys, errp) ||
        !vmm_qmp_arg_str(args, "uri", true, &uri, errp) ||
        !vmm_qmp_arg_bool(args, "resume", &resume, errp)) {
        return NULL;
    }
    if (resume) {
        vmm_mig_out_resume(opaque, uri, errp);
    } else {
        vmm_mig_out_start(opaque, uri, errp);
    }
    return NULL;
}

static JsonNode *vmm_qmp_migrate_recover(VmmMonitor *mon, JsonObject *args, void *opaque,
                                         GError **errp)
{
    static const char *const keys[] = { "uri", NULL };
    const char *uri;

    if (vmm_qmp_check_args(args, keys, errp) &&
        vmm_qmp_arg_str(args, "uri", true, &uri, errp)) {
        vmm_mig_in_recover(opaque, uri, errp);
    }
    return NULL;
}

static JsonNode *vmm_qmp_migrate_incoming(VmmMonitor *mon, JsonObject *args, void *opaque,
                                          GError **errp)
{
    static const char *const keys[] = { "uri", NULL };
    VmmMigrate *mm = opaque;
    const char *uri;

    if (!vmm_qmp_check_args(args, keys, errp) ||
        !vmm_qmp_arg_str(args, "uri", true, &uri, errp)) {
        return NULL;
    }
    if (!mm->defer) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    mm->incoming ? "The incoming migration has already been started" :
                    "'-incoming' was not specified on the command line");
        return NULL;
    }
    if (vmm_mig_in_start(mm, uri, errp)) {
        mm->defer = false;
    }
    return NULL;
}

static JsonNode *vmm_qmp_migrate_pause(VmmMonitor *mon, JsonObject *args, void *opaque,
                                       GError **errp)
{
    if (vmm_qmp_no_args(args, errp)) {
        vmm_mig_postcopy_pause(opaque, errp);
    }
    return NULL;
}

static JsonNode *vmm_qmp_migrate_cancel(VmmMonitor *mon, JsonObject *args, void *opaque,
                                        GError **errp)
{
    VmmMigrate *mm = opaque;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    g_mutex_lock(&mm->lock);
    if (mm->status == VMM_MIG_POSTCOPY_PAUSED) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "migrate_cancel: postcopy is paused and the guest's RAM is split between "
                    "the two VMMs; it cannot be cancelled (migrate-recover on the destination, "
                    "then migrate with resume=true here)");
        g_mutex_unlock(&mm->lock);
        return NULL;
    }
    /*
     * Once END went out the destination may already run the guest: the
     * source can only wait for its word, never resume on its own; past the
     * postcopy switch the guest runs there and part of its RAM is here.
     */
    if (!mm->incoming && !mm->end_sent && !mm->postcopy &&
        (mm->status == VMM_MIG_SETUP || mm->status == VMM_MIG_ACTIVE)) {
        mm->cancel = true;
        if (mm->stream) {
            mig_stream_shutdown(mm->stream);
        }
        /* Under the lock: the thread's "cancelled" must come after it. */
        vmm_mig_set_status_locked(mm, VMM_MIG_CANCELLING);
    }
    g_mutex_unlock(&mm->lock);
    return NULL;
}

static JsonNode *vmm_qmp_query_migrate(VmmMonitor *mon, JsonObject *args, void *opaque,
                                       GError **errp)
{
    VmmMigrate *mm = opaque;
    JsonObject *o, *ram;
    gint64 total;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    o = json_object_new();
    g_mutex_lock(&mm->lock);
    json_object_set_string_member(o, "status", vmm_mig_status_name(mm->status));
    if (mm->status != VMM_MIG_NONE) {
        total = vmm_mig_status_running(mm->status) ?
                (g_get_monotonic_time() - mm->start_us) / 1000 : mm->total_us / 1000;
        json_object_set_int_member(o, "total-time", total);
        json_object_set_int_member(o, "setup-time", mm->setup_us / 1000);
        if ((mm->status == VMM_MIG_COMPLETED || mm->status == VMM_MIG_POSTCOPY_ACTIVE) &&
            !mm->incoming && mm->downtime_ms) {
            json_object_set_int_member(o, "downtime", mm->downtime_ms);
        }
        if (mm->status == VMM_MIG_ACTIVE && !mm->incoming &&
            mm->expected_downtime_ms != UINT64_MAX) {
            json_object_set_int_member(o, "expected-downtime",
                                       (gint64)mm->expected_downtime_ms);
        }
        ram = json_object_new();
        json_object_set_int_member(ram, "total", (gint64)mm->ram_total);
        json_object_set_int_member(ram, "transferred", (gint64)mm->transferred);
        json_object_set_int_member(ram, "remaining", (gint64)mm->remaining);
        json_object_set_int_member(ram, "dirty-pages-rate", (gint64)mm->dirty_rate);
        json_object_set_int_member(ram, "dirty-sync-count", (gint64)mm->sync_count);
        json_object_set_double_member(ram, "mbps", mm->mbps_x1000 / 1000.0);
        if (!mm->incoming && mm->cap_postcopy) {
            json_object_set_int_member(ram, "postcopy-requests",
                                       (gint64)mm->postcopy_requests);
        }
        if (mm->cap_preempt) {
            /* Pages sent (source) or placed (destination) on the preempt connection. */
            json_object_set_int_member(ram, "postcopy-preempt-pages",
                                       (gint64)mm->preempt_pages);
        }
        json_object_set_object_member(o, "ram", ram);
        if (mm->incoming) {
            vmm_mig_postcopy_stats_json(mm, o);
        }
        if ((mm->status == VMM_MIG_FAILED || mm->status == VMM_MIG_POSTCOPY_PAUSED) &&
            mm->error_desc) {
            json_object_set_string_member(o, "error-desc", mm->error_desc);
        }
    }
    g_mutex_unlock(&mm->lock);
    return vmm_qmp_object_node(o);
}

static JsonNode *vmm_qmp_migrate_set_parameters(VmmMonitor *mon, JsonObject *args,
                                                void *opaque, GError **errp)
{
    static const char *const keys[] = { "max-bandwidth", "downtime-limit", "x-postcopy-auto",
                                        "x-postcopy-fault-sched", NULL };
    VmmMigrate *mm = opaque;
    uint64_t bw, limit;
    bool pc_auto;
    MigPcSched sched;
    const char *sched_name = NULL;

    g_mutex_lock(&mm->lock);
    bw = mm->max_bandwidth;
    limit = mm->downtime_limit_ms;
    pc_auto = mm->postcopy_auto;
    sched = mm->fault_sched;
    g_mutex_unlock(&mm->lock);
    if (!vmm_qmp_check_args(args, keys, errp) ||
        !vmm_qmp_arg_size(args, "max-bandwidth", false, &bw, errp) ||
        !vmm_qmp_arg_size(args, "downtime-limit", false, &limit, errp) ||
        !vmm_qmp_arg_bool(args, "x-postcopy-auto", &pc_auto, errp) ||
        !vmm_qmp_arg_str(args, "x-postcopy-fault-sched", false, &sched_name, errp)) {
        return NULL;
    }
    if (sched_name && !mig_pc_sched_parse(sched_name, &sched)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Parameter 'x-postcopy-fault-sched' expects 'auto', 'fifo', 'slice' or "
                    "'normal', got '%s'", sched_name);
        return NULL;
    }
    if (limit > VMM_MIGRATE_MAX_DOWNTIME_MS) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Parameter 'downtime-limit' expects an integer in the range of 0 to "
                    "%u milliseconds, got %" PRIu64, VMM_MIGRATE_MAX_DOWNTIME_MS, limit);
        return NULL;
    }
    if (bw > INT64_MAX) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Parameter 'max-bandwidth' expects bytes per second up to %" PRId64
                    " (0: unlimited), got %" PRIu64, INT64_MAX, bw);
        return NULL;
    }
    /* All or none: a rejected value changes nothing. The thread reads them each round. */
    g_mutex_lock(&mm->lock);
    mm->max_bandwidth = bw;
    mm->downtime_limit_ms = limit;
    mm->postcopy_auto = pc_auto;
    mm->fault_sched = sched;
    g_mutex_unlock(&mm->lock);
    return NULL;
}

static JsonNode *vmm_qmp_query_migrate_parameters(VmmMonitor *mon, JsonObject *args,
                                                  void *opaque, GError **errp)
{
    VmmMigrate *mm = opaque;
    JsonObject *o;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    o = json_object_new();
    g_mutex_lock(&mm->lock);
    json_object_set_int_member(o, "max-bandwidth", (gint64)mm->max_bandwidth);
    json_object_set_int_member(o, "downtime-limit", (gint64)mm->downtime_limit_ms);
    json_object_set_boolean_member(o, "x-postcopy-auto", mm->postcopy_auto);
    json_object_set_string_member(o, "x-postcopy-fault-sched", mig_pc_sched_name(mm->fault_sched));
    g_mutex_unlock(&mm->lock);
    return vmm_qmp_object_node(o);
}

/* The capabilities this VMM knows, QEMU's names. */
static const char *const vmm_mig_caps[] = { "postcopy-ram", "postcopy-preempt", NULL };

/*
 * {"capabilities": [{"capability": "postcopy-ram", "state": true}]}: all
 * or nothing (a bad entry changes none). Refused while a migration runs;
 * a destination sets them before its source connects.
 */
static JsonNode *vmm_qmp_migrate_set_capabilities(VmmMonitor *mon, JsonObject *args,
                                                  void *opaque, GError **errp)
{
    static const char *const keys[] = { "capabilities", NULL };
    VmmMigrate *mm = opaque;
    JsonArray *caps;
    bool postcopy, preempt, busy;

    if (!vmm_qmp_check_args(args, keys, errp)) {
        return NULL;
    }
    if (!json_object_has_member(args, "capabilities") ||
        !JSON_NODE_HOLDS_ARRAY(json_object_get_member(args, "capabilities"))) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Parameter 'capabilities' is missing or not an array");
        return NULL;
    }
    caps = json_object_get_array_member(args, "capabilities");
    g_mutex_lock(&mm->lock);
    postcopy = mm->cap_postcopy;
    preempt = mm->cap_preempt;
    /* A destination still waiting for its source may change them. */
    busy = vmm_mig_status_running(mm->status) && !(mm->incoming && mm->listen_fd >= 0);
    g_mutex_unlock(&mm->lock);
    if (busy) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "There's a migration process in progress");
        return NULL;
    }
    for (guint i = 0; i < json_array_get_length(caps); i++) {
        JsonNode *n = json_array_get_element(caps, i);
        JsonObject *c = JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
        static const char *const ckeys[] = { "capability", "state", NULL };
        const char *name;
        bool state = false;

        if (!c) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "capabilities[%u]: expected an object", i);
            return NULL;
        }
        if (!vmm_qmp_check_args(c, ckeys, errp) ||
            !vmm_qmp_arg_str(c, "capability", true, &name, errp) ||
            !vmm_qmp_arg_bool(c, "state", &state, errp)) {
            g_prefix_error(errp, "capabilities[%u]: ", i);
            return NULL;
        }
        if (!json_object_has_member(c, "state")) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "Parameter 'state' is missing");
            g_prefix_error(errp, "capabilities[%u]: ", i);
            return NULL;
        }
        if (strcmp(name, "postcopy-ram") == 0) {
            postcopy = state;
        } else if (strcmp(name, "postcopy-preempt") == 0) {
            preempt = state;
        } else {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "Parameter 'capability' does not accept value '%s' (this VMM "
                        "knows: postcopy-ram, postcopy-preempt)", name);
            return NULL;
        }
    }
    if (preempt && !postcopy) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Postcopy preempt requires postcopy-ram");
        return NULL;
    }
    g_mutex_lock(&mm->lock);
    mm->cap_postcopy = postcopy;
    mm->cap_preempt = preempt;
    g_mutex_unlock(&mm->lock);
    return NULL;
}

static JsonNode *vmm_qmp_query_migrate_capabilities(VmmMonitor *mon, JsonObject *args,
                                                    void *opaque, GError **errp)
{
    VmmMigrate *mm = opaque;
    JsonArray *a;
    JsonNode *n;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    a = json_array_new();
    for (unsigned i = 0; vmm_mig_caps[i]; i++) {
        JsonObject *c = json_object_new();

        json_object_set_string_member(c, "capability", vmm_mig_caps[i]);
        g_mutex_lock(&mm->lock);
        json_object_set_boolean_member(c, "state", i == 0 ? mm->cap_postcopy :
                                                   mm->cap_preempt);
        g_mutex_unlock(&mm->lock);
        json_array_add_object_element(a, c);
    }
    n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

/* Loop: QMP migrate-start-postcopy; the source's thread switches at its next window. */
static bool vmm_mig_start_postcopy(VmmMigrate *mm, GError **errp)
{
    bool ok = false;

    g_mutex_lock(&mm->lock);
    if (!mm->cap_postcopy) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Enable postcopy with migrate-set-capabilities before the start of "
                    "migration (capability postcopy-ram is off)");
    } else if (mm->incoming || (mm->status != VMM_MIG_SETUP && mm->status != VMM_MIG_ACTIVE)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Postcopy must be started after migration has been started (status '%s'%s)",
                    vmm_mig_status_name(mm->status), mm->incoming ? ", on the destination" : "");
    } else if (mm->no_tracking) {
        /* Without rounds there is no point to switch at: it would be ignored. */
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "migrate-start-postcopy has no effect: this migration is a single "
                    "stop-and-copy without write tracking (%s)", mm->no_tracking);
    } else {
        /* The thread switches at its next 4 MiB window. */
        mm->start_postcopy = true;
        ok = true;
    }
    g_mutex_unlock(&mm->lock);
    return ok;
}

static JsonNode *vmm_qmp_migrate_start_postcopy(VmmMonitor *mon, JsonObject *args,
                                                void *opaque, GError **errp)
{
    if (vmm_qmp_no_args(args, errp)) {
        vmm_mig_start_postcopy(opaque, errp);
    }
    return NULL;
}

/*
 * QMP cont on an incoming VMM (vmm-runstate.c calls this while the machine
 * is incoming): with -S, starts the guest the migration loaded; while the
 * load still runs, makes it start the guest when done (QEMU's autostart).
 */
static bool vmm_migrate_cont_hook(void *opaque, GError **errp)
{
    VmmMigrate *mm = opaque;
    bool loading, waiting;

    g_mutex_lock(&mm->lock);
    waiting = mm->wait_cont;
    loading = mm->incoming && !waiting && vmm_machine_is_incoming(mm->m);
    if (loading) {
        mm->autostart = true;
    }
    g_mutex_unlock(&mm->lock);
    if (waiting) {
        return vmm_mig_in_cont(mm, errp);
    }
    if (!loading) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "cont: the guest waits for an incoming migration (migrate-incoming)");
        return false;
    }
    return true;
}

void vmm_migrate_register(VmmMigrate *mm, VmmMonitor *mon)
{
    vmm_migrate_mon = mon;
    vmm_monitor_register(mon, "migrate", vmm_qmp_migrate, mm);
    vmm_monitor_register(mon, "migrate-incoming", vmm_qmp_migrate_incoming, mm);
    vmm_monitor_register(mon, "migrate-recover", vmm_qmp_migrate_recover, mm);
    vmm_monitor_register(mon, "migrate-pause", vmm_qmp_migrate_pause, mm);
    vmm_monitor_register(mon, "migrate_cancel", vmm_qmp_migrate_cancel, mm);
    vmm_monitor_register(mon, "query-migrate", vmm_qmp_query_migrate, mm);
    vmm_monitor_register(mon, "migrate-set-parameters", vmm_qmp_migrate_set_parameters, mm);
    vmm_monitor_register(mon, "query-migrate-parameters", vmm_qmp_query_migrate_parameters,
                         mm);
    vmm_monitor_register(mon, "migrate-set-capabilities", vmm_qmp_migrate_set_capabilities,
                         mm);
    vmm_monitor_register(mon, "query-migrate-capabilities",
                         vmm_qmp_query_migrate_capabilities, mm);
    vmm_monitor_register(mon, "migrate-start-postcopy", vmm_qmp_migrate_start_postcopy, mm);
    vmm_runstate_set_cont_hook(vmm_migrate_cont_hook, mm);
}

void vmm_migrate_unregister(VmmMigrate *mm)
{
    (void)mm;
    vmm_runstate_set_cont_hook(NULL, NULL);
    vmm_migrate_mon = NULL;
}
