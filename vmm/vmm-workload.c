/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A -workload of the reference VMM. See vmm/vmm-workload.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "guest/virtio-blk-drv.h"
#include "guest/virtio-net-drv.h"
#include "hw/virtio/vhost-user-blk.h"
#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-net.h"
#include "vmm/vmm-affinity.h"
#include "vmm/vmm-machine.h"
#include "vmm/vmm-workload.h"

typedef enum VmmWorkloadState {
    VMM_WL_WAITING,             /* the device has not started yet */
    VMM_WL_RUNNING,             /* the vCPU thread runs */
    VMM_WL_FINISHED,            /* joined, or never started */
} VmmWorkloadState;

struct VmmWorkload {
    char *id;
    VmmDeviceType type;
    BlkWorkload blk;
    NetWorkload net;
    bool vcpu_pin;              /* -vcpu-pin on */
    VmmWorkloadDoneFn done;
    void *done_opaque;

    VmmWorkloadState state;
    GThread *thread;
    bool stop;                  /* read by the driver with __atomic */
    char *stop_reason;          /* why the run was ended early, or NULL */
    bool not_run;               /* finished without ever starting */
    bool ran;                   /* the driver ran: its results mean something */

    VirtioBlkDrv *blk_drv;
    VirtioNetDrv *net_drv;
    /* Written by the thread, read by the main loop after the join. */
    VirtioBlkResult blk_res;
    VirtioNetResult net_res;
    bool run_ok;
    GError *err;

    /*
     * A device reset the driver asked for (NEEDS_RESET), run by the main
     * loop, where the device model lives, while the thread waits on
     * reset_cond. All under lock.
     */
    VirtioGuestDevice *gd;
    uint64_t features;          /* gd's at the start: the driver is built on them */
    GCond reset_cond;
    GSource *reset_src;         /* queued, not run yet */
    bool reset_done;
    bool reset_ok;
    GError *reset_err;

    /*
     * Live migration, under lock. pause is also read atomically by the
     * driver; park_cond wakes both the parked thread and a pauser.
     */
    bool pause;
    bool parked;
    bool go_elsewhere;          /* source: the parked run ends as migrated */
    bool thread_ended;
    unsigned in_flight;         /* the driver's, atomically */
    GCond park_cond;
    bool migrated;              /* source: the run ended as migrated */
    bool incoming;              /* destination: continues a parked run */

    /* Progress, written by the thread under lock, read by the main loop. */
    GMutex lock;
    bool have_progress;
    uint64_t progress_ops;
    double progress_rate;
};

const char *vmm_workload_id(const VmmWorkload *w)
{
    return w->id;
}

VmmWorkload *vmm_workload_new(const VmmWorkloadOpts *o, VmmWorkloadDoneFn done,
                              void *opaque)
{
    VmmWorkload *w = g_new0(VmmWorkload, 1);

    w->id = g_strdup(o->devid);
    w->type = o->type;
    w->blk = o->blk;
    w->net = o->net;
    w->vcpu_pin = o->vcpu_pin;
    w->done = done;
    w->done_opaque = opaque;
    g_mutex_init(&w->lock);
    g_cond_init(&w->reset_cond);
    g_cond_init(&w->park_cond);
    wl_stats_init(&w->blk_res.stats);
    wl_stats_init(&w->net_res.stats);
    return w;
}

static gboolean vmm_workload_thread_done(gpointer opaque)
{
    VmmWorkload *w = opaque;

    if (w->thread) {
        g_thread_join(w->thread);
        w->thread = NULL;
    }
    w->state = VMM_WL_FINISHED;
    if (w->done) {
        w->done(w, w->done_opaque);
    }
    return G_SOURCE_REMOVE;
}

void vmm_workload_free(VmmWorkload *w)
{
    if (!w) {
        return;
    }
    if (w->thread) {
        __atomic_store_n(&w->stop, true, __ATOMIC_RELEASE);
        g_thread_join(w->thread);
        w->thread = NULL;
    }
    /* A finish notification still queued must not run on freed memory. */
    while (g_source_remove_by_user_data(w)) {
        /* nothing */
    }
    virtio_blk_drv_free(w->blk_drv);
    virtio_net_drv_free(w->net_drv);
    virtio_blk_result_clear(&w->blk_res);
    virtio_net_result_clear(&w->net_res);
    g_clear_error(&w->err);
    g_clear_error(&w->reset_err);
    g_cond_clear(&w->reset_cond);
    g_cond_clear(&w->park_cond);
    g_mutex_clear(&w->lock);
    g_free(w->stop_reason);
    g_free(w->id);
    g_free(w);
}

bool vmm_workload_started(const VmmWorkload *w)
{
    return w->state != VMM_WL_WAITING;
}

bool vmm_workload_finished(const VmmWorkload *w)
{
    return w->state == VMM_WL_FINISHED;
}

/* ---- the vCPU thread ------------------------------------------------ */

static void vmm_workload_progress_cb(void *opaque, const char *name,
                                     uint64_t ops, double ops_per_sec)
{
    VmmWorkload *w = opaque;

    g_mutex_lock(&w->lock);
    w->have_progress = true;
    w->progress_ops = ops;
    w->progress_rate = ops_per_sec;
    g_mutex_unlock(&w->lock);
}

static bool vmm_workload_needs_reset(void *opaque)
{
    VmmWorkload *w = opaque;

    return virtio_needs_reset(w->gd->vdev);
}

/* Main loop: the driver's reset and boot, as its status writes would do. */
static gboolean vmm_workload_reset_cb(gpointer opaque)
{
    VmmWorkload *w = opaque;
    GError *err = NULL;
    bool ok;

    vmm_status("%s: the driver resets the device", w->id);
    ok = virtio_guest_device_boot(w->gd, &err);
    /*
     * The driver resubmits requests built for the features it started
     * with (DISCARD, FLUSH...): a back-end that came back with others
     * cannot take them.
     */
    if (ok && w->gd->features != w->features) {
        g_set_error(&err, VHOST_USER_ERROR, VHOST_USER_ERROR_FEATURE_MISMATCH,
                    "%s: the device came back with features 0x%" PRIx64 ", not the "
                    "0x%" PRIx64 " the driver runs with", w->id, w->gd->features,
                    w->features);
        ok = false;
    }
    g_mutex_lock(&w->lock);
    g_clear_pointer(&w->reset_src, g_source_unref);
    w->reset_done = true;
    w->reset_ok = ok;
    g_clear_error(&w->reset_err);
    w->reset_err = err;
    g_cond_broadcast(&w->reset_cond);
    g_mutex_unlock(&w->lock);
    return G_SOURCE_REMOVE;
}

/*
 * vCPU thread: has the main loop reset and boot the device, and waits.
 * Gives up when the run is being stopped: the main loop may then be the
 * one waiting for this thread (vmm_workload_free), and the queued reset
 * is withdrawn so it never runs on a freed workload.
 */
static bool vmm_workload_reset(void *opaque, GError **errp)
{
    VmmWorkload *w = opaque;
    bool ok;

    g_mutex_lock(&w->lock);
    w->reset_done = false;
    w->reset_src = g_idle_source_new();
    g_source_set_callback(w->reset_src, vmm_workload_reset_cb, w, NULL);
    g_source_attach(w->reset_src, NULL);
    while (!w->reset_done) {
        if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
            g_source_destroy(w->reset_src);
            g_clear_pointer(&w->reset_src, g_source_unref);
            g_mutex_unlock(&w->lock);
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_LOCAL,
                        "%s: the run was stopped during a device reset", w->id);
            return false;
        }
        g_cond_wait_until(&w->reset_cond, &w->lock,
                          g_get_monotonic_time() + 100 * G_TIME_SPAN_MILLISECOND);
    }
    ok = w->reset_ok;
    if (!ok) {
        g_propagate_error(errp, g_steal_pointer(&w->reset_err));
    }
    g_mutex_unlock(&w->lock);
    return ok;
}

/*
 * vCPU thread, nothing in flight: parked until resumed (true) or the run
 * moved to the destination (false). A run being stopped goes on, to end.
 */
static bool vmm_workload_park(void *opaque)
{
    VmmWorkload *w = opaque;
    bool go_on;

    g_mutex_lock(&w->lock);
    w->parked = true;
    g_cond_broadcast(&w->park_cond);
    while (w->pause && !w->go_elsewhere &&
           !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        /* Timed: vmm_workload_free() sets stop without the lock. */
        g_cond_wait_until(&w->park_cond, &w->lock,
                          g_get_monotonic_time() + 100 * G_TIME_SPAN_MILLISECOND);
    }
    go_on = !w->go_elsewhere;
    w->parked = false;
    g_mutex_unlock(&w->lock);
    return go_on;
}

static gpointer vmm_workload_thread(gpointer opaque)
{
    VmmWorkload *w = opaque;
    WorkloadCtl ctl = {
        .name = w->id,
        .stop = &w->stop,
        .progress = vmm_workload_progress_cb,
        .opaque = w,
        .stall_ms = VMM_WORKLOAD_STALL_MS,
        .needs_reset = vmm_workload_needs_reset,
        .reset_device = vmm_workload_reset,
        .pause = &w->pause,
        .park = vmm_workload_park,
        .in_flight = &w->in_flight,
    };
    bool ok;

    if (w->type == VMM_DEVICE_BLK) {
        ok = w->incoming ?
             virtio_blk_drv_continue(w->blk_drv, &w->blk, &ctl, &w->blk_res, &w->err) :
             virtio_blk_drv_run(w->blk_drv, &w->blk, &ctl, &w->blk_res, &w->err);
        w->migrated = w->blk_res.migrated;
    } else {
        ok = w->incoming ?
             virtio_net_drv_continue(w->net_drv, &w->net, &ctl, &w->net_res, &w->err) :
             virtio_net_drv_run(w->net_drv, &w->net, &ctl, &w->net_res, &w->err);
        w->migrated = w->net_res.migrated;
    }
    w->run_ok = ok;
    g_mutex_lock(&w->lock);
    w->thread_ended = true;
    g_cond_broadcast(&w->park_cond);
    g_mutex_unlock(&w->lock);
    /* The join happens in the loop: the thread cannot join itself. */
    g_idle_add(vmm_workload_thread_done, w);
    return NULL;
}

/* ---- start ---------------------------------------------------------- */

/* Takes size bytes (at most half of what is free) from the guest allocator. */
static uint64_t vmm_workload_area(VmmWorkload *w, GuestMemory *mem, uint64_t want,
                                  uint64_t *size, GError **errp)
{
    /*
     * Leave half of the free RAM: devices whose back-ends connect later
     * still need room for their rings and buffers.
     */
    uint64_t cap = (guest_alloc_free_bytes(mem) / 2) & ~(GUEST_PAGE_SIZE - 1);
    uint64_t n = MIN(want, cap);

    n = (n + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
    if (!n) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_NO_SPACE,
                    "%s: no guest RAM left for the workload's buffers (-m)", w->id);
        return 0;
    }
    *size = n;
    return guest_alloc(mem, n, GUEST_PAGE_SIZE, errp);
}

/*
 * wce=: the guest's driver sets the write cache mode through the config
 * space (virtio 5.2.6.4, CONFIG_WCE), as a guest kernel does when told
 * to, and checks that the device took it.
 */
static bool vmm_workload_set_wce(VmmWorkload *w, VirtioGuestDevice *gd,
                                 VirtioBlkConfig *bc, GError **errp)
{
    const uint32_t off = offsetof(VirtioBlkConfig, writeback);
    uint8_t was = bc->writeback, want = (uint8_t)w->blk.wce;

    if (!virtio_has_feature(gd->features, VIRTIO_BLK_F_CONFIG_WCE)) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_UNSUPPORTED,
                    "%s: wce=%u: the device does not offer VIRTIO_BLK_F_CONFIG_WCE",
                    w->id, want);
        return false;
    }
    if (!virtio_config_write(gd->vdev, off, &want, 1, errp) ||
        !virtio_config_read(gd->vdev, off, &bc->writeback, 1, errp)) {
        return false;
    }
    if (bc->writeback != want) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_DEVICE,
                    "%s: wce=%u: the config still says writeback=%u", w->id, want,
                    bc->writeback);
        return false;
    }
    vmm_status("%s: write cache %s (writeback %u, was %u)", w->id,
               want ? "on: write-back" : "off: write-through", want, was);
    return true;
}

/* A fresh driver's area, or (incoming) the one the source's record names. */
static uint64_t vmm_workload_take_area(VmmWorkload *w, VirtioGuestDevice *gd,
                                       const GuestDirEntry *incoming, uint64_t want,
                                       uint64_t *size, GError **errp)
{
    uint64_t gpa;

    if (incoming) {
        *size = incoming->area_size;
        return incoming->area_gpa;
    }
    gpa = vmm_workload_area(w, gd->mem, want, size, errp);
    /* Where a destination finds this driver after a migration. */
    if (gpa && !guest_dir_publish(gd, w->id, gpa, *size, errp)) {
        return 0;
    }
    return gpa;
}

static bool vmm_workload_setup_blk(VmmWorkload *w, VirtioGuestDevice *gd,
                                   const GuestDirEntry *incoming, GError **errp)
{
    VirtIODevice *vdev = gd->vdev;
    VirtioBlkConfig bc = { 0 };
    VirtioBlkDrvConfig dc = { 0 };
    uint32_t len = MIN(virtio_config_len(vdev), (uint32_t)sizeof(bc));
    uint64_t gpa, size = 0;

    if (!virtio_config_read(vdev, 0, &bc, len, errp)) {
        return false;
    }
    /* The source set it: the config came over with the device state. */
    if (!incoming && w->blk.wce >= 0 && !vmm_workload_set_wce(w, gd, &bc, errp)) {
        return false;
    }
    dc.capacity = GUINT64_FROM_LE(bc.capacity);
    if (virtio_has_feature(gd->features, VIRTIO_BLK_F_BLK_SIZE)) {
        dc.blk_size = GUINT32_FROM_LE(bc.blk_size);
    }
    if (virtio_has_feature(gd->features, VIRTIO_BLK_F_SEG_MAX)) {
        dc.seg_max = GUINT32_FROM_LE(bc.seg_max);
    }
    dc.num_queues = virtio_has_feature(gd->features, VIRTIO_BLK_F_MQ) ?
                    GUINT16_FROM_LE(bc.num_queues) : 1;
    gpa = vmm_workload_take_area(w, gd, incoming, virtio_blk_drv_area_size(dc.capacity),
                                 &size, errp);
    if (!gpa) {
        return false;
    }
    w->blk_drv = incoming ?
        virtio_blk_drv_attach(w->id, gd->mem, &gd->vqs[0], gd->nvqs, gd->features,
                              &dc, gpa, size, errp) :
        virtio_blk_drv_new(w->id, gd->mem, &gd->vqs[0], gd->nvqs, gd->features,
                           &dc, gpa, size, w->blk.seed, errp);
    return w->blk_drv != NULL;
}

static bool vmm_workload_setup_net(VmmWorkload *w, VirtioGuestDevice *gd,
                                   const GuestDirEntry *incoming, GError **errp)
{
    VirtIODevice *vdev = gd->vdev;
    VirtioNetConfig nc = { 0 };
    VirtioNetDrvConfig dc = { 0 };
    uint32_t len = MIN(virtio_config_len(vdev), (uint32_t)sizeof(nc));
    GuestVirtqueue *vq0 = &gd->vqs[0];
    uint64_t gpa, size = 0, want;

    if (!virtio_config_read(vdev, 0, &nc, len, errp)) {
        return false;
    }
    memcpy(dc.mac, nc.mac, sizeof(dc.mac));
    if (virtio_has_feature(gd->features, VIRTIO_NET_F_MTU)) {
        dc.mtu = GUINT16_FROM_LE(nc.mtu);
    }
    dc.max_queue_pairs = virtio_has_feature(gd->features, VIRTIO_NET_F_MQ) ?
                         GUINT16_FROM_LE(nc.max_virtqueue_pairs) : 1;
    /* Beyond the device is an error, never a quiet cut (as for blk). */
    {
        unsigned pairs = MIN((unsigned)dc.max_queue_pairs, gd->nvqs / 2);

        if (w->net.queues > pairs) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: queues=%u but the device has %u queue pair%s", w->id,
                        w->net.queues, pairs, pairs == 1 ? "" : "s");
            return false;
        }
        if (w->net.window > vq0->num) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: window=%u but the rings hold %u entries", w->id,
                        w->net.window, vq0->num);
            return false;
        }
    }
    want = virtio_net_drv_area_size(gd->nvqs / 2, vq0->num, gd->features, &dc,
                                    &w->net);
    gpa = vmm_workload_take_area(w, gd, incoming, want, &size, errp);
    if (!gpa) {
        return false;
    }
    if (size < want) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_NO_SPACE,
                    "%s: the workload needs %" PRIu64 " bytes of guest RAM for "
                    "buffers, only %" PRIu64 " can be spared (raise -m)",
                    w->id, want, size);
        return false;
    }
    w->net_drv = incoming ?
        virtio_net_drv_attach(w->id, gd->mem, vq0, gd->nvqs, gd->features, &dc, gpa,
                              size, errp) :
        virtio_net_drv_new(w->id, gd->mem, vq0, gd->nvqs, gd->features, &dc, gpa,
                           size, errp);
    return w->net_drv != NULL;
}

static void vmm_workload_launch(VmmWorkload *w, VirtioGuestDevice *gd,
                                const GuestDirEntry *incoming, GError *err);

void vmm_workload_start(VmmWorkload *w, VirtioGuestDevice *gd)
{
    if (w->state != VMM_WL_WAITING) {
        return;
    }
    vmm_workload_launch(w, gd, NULL, NULL);
}

/* Builds the driver (fresh, or on the incoming record) and starts the thread. */
static void vmm_workload_launch(VmmWorkload *w, VirtioGuestDevice *gd,
                                const GuestDirEntry *incoming, GError *err)
{
    bool ok = !err;

    w->state = VMM_WL_RUNNING;
    w->gd = gd;
    w->features = gd ? gd->features : 0;
    /*
     * STARTED comes from inside the driver's DRIVER_OK write (before the
     * boot returns), or from a reconnect restart after a DRIVER_OK the
     * device could not act on at first: either way the rings are laid out
     * and DRIVER_OK is set, which is what the driver needs.
     */
    if (!ok) {
        /* already failed */
    } else if (!gd || !gd->nvqs || !gd->vqs[0].num ||
        !(virtio_get_status(gd->vdev) & VIRTIO_CONFIG_S_DRIVER_OK)) {
        g_set_error(&err, GUEST_ERROR, GUEST_ERROR_DEVICE,
                    "%s: the guest driver has not brought the device up", w->id);
        ok = false;
    } else if (w->type == VMM_DEVICE_BLK) {
        ok = vmm_workload_setup_blk(w, gd, incoming, &err);
    } else {
        ok = vmm_workload_setup_net(w, gd, incoming, &err);
    }
    if (ok) {
        g_autofree char *name = g_strdup_printf("vcpu-%s", w->id);
        int cpu = w->vcpu_pin ? vmm_affinity_take_vcpu() : -1;

        w->thread = g_thread_try_new(name, vmm_workload_thread, w, &err);
        ok = w->thread != NULL;
        if (cpu >= 0) {
            g_autofree char *placed = vmm_affinity_main_rest(cpu);

            vmm_status("%s: vCPU thread on %s", w->id, placed);
        }
        w->ran = ok;
    }
    if (!ok) {
        w->err = g_steal_pointer(&err);
        w->run_ok = false;
        /* Finish from the loop, as a thread would, never re-entrantly. */
        g_idle_add(vmm_workload_thread_done, w);
        return;
    }
    vmm_status("%s: workload %s (%s)", w->id, incoming ? "continues after the migration"
               : "started", w->type == VMM_DEVICE_BLK ? "virtio-blk" : "virtio-net");
}

void vmm_workload_stop(VmmWorkload *w, const char *why)
{
    if (w->state == VMM_WL_FINISHED) {
        return;
    }
    if (!w->stop_reason) {
        w->stop_reason = g_strdup(why);
    }
    if (w->state == VMM_WL_WAITING) {
        /* Nothing ran: no elapsed time to report either. */
        w->blk_res.stats.end_ns = w->blk_res.stats.start_ns;
        w->net_res.stats.end_ns = w->net_res.stats.start_ns;
        w->not_run = true;
        w->state = VMM_WL_RUNNING;
        g_idle_add(vmm_workload_thread_done, w);
        return;
    }
    __atomic_store_n(&w->stop, true, __ATOMIC_RELEASE);
}

/* ---- live migration ---------------------------------------------------- */

bool vmm_workload_pause(VmmWorkload *w, unsigned timeout_ms, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * G_TIME_SPAN_MILLISECOND;
    unsigned in_flight;

    if (w->state != VMM_WL_RUNNING || !w->thread) {
        return true;
    }
    g_mutex_lock(&w->lock);
    __atomic_store_n(&w->pause, true, __ATOMIC_RELEASE);
    while (!w->parked && !w->thread_ended) {
        if (!g_cond_wait_until(&w->park_cond, &w->lock, deadline)) {
            break;
        }
    }
    if (w->parked || w->thread_ended) {
        g_mutex_unlock(&w->lock);
        return true;
    }
    __atomic_store_n(&w->pause, false, __ATOMIC_RELEASE);
    g_cond_broadcast(&w->park_cond);
    g_mutex_unlock(&w->lock);
    in_flight = __atomic_load_n(&w->in_flight, __ATOMIC_RELAXED);
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_DEVICE,
                "%s: the workload did not pause within %u ms: %u %s still in flight",
                w->id, timeout_ms, in_flight,
                w->type == VMM_DEVICE_BLK ? "requests" : "TX buffers");
    return false;
}

void vmm_workload_resume(VmmWorkload *w)
{
    g_mutex_lock(&w->lock);
    __atomic_store_n(&w->pause, false, __ATOMIC_RELEASE);
    g_cond_broadcast(&w->park_cond);
    g_mutex_unlock(&w->lock);
}

void vmm_workload_migrated(VmmWorkload *w)
{
    if (w->state == VMM_WL_FINISHED) {
        return;
    }
    if (w->state == VMM_WL_WAITING || !w->thread) {
        /* Never ran here: it may on the destination. Not a failure. */
        w->migrated = true;
        vmm_workload_stop(w, "migrated before its device started");
        return;
    }
    g_mutex_lock(&w->lock);
    w->go_elsewhere = true;
    g_cond_broadcast(&w->park_cond);
    g_mutex_unlock(&w->lock);
}

void vmm_workload_start_incoming(VmmWorkload *w, VirtioGuestDevice *gd)
{
    GError *err = NULL;
    GuestDirEntry e;

    if (w->state != VMM_WL_WAITING) {
        return;
    }
    w->incoming = true;
    if (!guest_dir_find(gd->mem, w->id, &e, &err) ||
        !virtio_guest_device_attach(gd, &e, &err)) {
        g_prefix_error(&err, "continuing after the migration: ");
    }
    vmm_workload_launch(w, gd, &e, err);
}

/* ---- reporting ------------------------------------------------------ */

/* Mean frame size of a net workload, for a bytes-per-second estimate. */
static double vmm_net_mean_frame(const NetWorkload *wl)
{
    double sum = 0;

    for (unsigned i = 0; i < wl->nsizes; i++) {
        sum += wl->sizes[i];
    }
    return wl->nsizes ? sum / wl->nsizes : 0;
}

char *vmm_workload_progress(VmmWorkload *w)
{
    uint64_t ops;
    double rate;

    if (w->state != VMM_WL_RUNNING || w->not_run) {
        return NULL;
    }
    g_mutex_lock(&w->lock);
    if (!w->have_progress) {
        g_mutex_unlock(&w->lock);
        return NULL;
    }
    ops = w->progress_ops;
    rate = w->progress_rate;
    g_mutex_unlock(&w->lock);

    if (w->type == VMM_DEVICE_BLK) {
        return g_strdup_printf("%s: %" PRIu64 " ops, %.0f op/s, %.1f MiB/s",
                               w->id, ops, rate,
                               rate * w->blk.bs / (1024.0 * 1024.0));
    }
    return g_strdup_printf("%s: %" PRIu64 " packets, %.0f pkt/s (%.3f Mpps), "
                           "%.1f MiB/s", w->id, ops, rate, rate / 1e6,
                           rate * vmm_net_mean_frame(&w->net) / (1024.0 * 1024.0));
}

bool vmm_workload_ok(const VmmWorkload *w)
{
    if (w->state == VMM_WL_FINISHED && w->migrated && !w->err) {
        /* Handed over: the destination judges the run. */
        return true;
    }
    if (w->state != VMM_WL_FINISHED || w->not_run || w->stop_reason || !w->run_ok) {
        return false;
    }
    if (w->type == VMM_DEVICE_BLK) {
        return (!w->blk.verify && !w->blk.verify_only) || w->blk_res.verified;
    }
    return w->net_res.verified_all;
}

/* s as the contents of a JSON string (RFC 8259 escapes). */
static void vmm_json_append_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            g_string_append_c(out, '\\');
            g_string_append_c(out, (char)*p);
        } else if (*p < 0x20) {
            g_string_append_printf(out, "\\u%04x", *p);
        } else {
            g_string_append_c(out, (char)*p);
        }
    }
    g_string_append_c(out, '"');
}

/* Why the workload failed, or NULL when it did not. */
static const char *vmm_workload_failure(const VmmWorkload *w)
{
    if (vmm_workload_ok(w)) {
        return NULL;
    }
    if (w->not_run) {
        return w->stop_reason ? w->stop_reason : "the device never started";
    }
    if (w->err) {
        return w->err->message;
    }
    if (w->stop_reason) {
        return w->stop_reason;
    }
    if (!vmm_workload_ok(w)) {
        const char *first = w->type == VMM_DEVICE_BLK ? w->blk_res.first_error :
                                                         w->net_res.first_error;
        return first ? first : "not verified";
    }
    return NULL;
}

static void vmm_workload_json(VmmWorkload *w, const WorkloadStats *s, bool verified,
                              const char *failure)
{
    g_autofree char *base = wl_stats_json(s, w->id, verified);
    GString *out = g_string_new(NULL);
    size_t len = strlen(base);
    g_autofree char *line = NULL;
    ssize_t r;

    /* wl_stats_json's object, reopened to add the device's own fields. */
    g_assert(len && base[len - 1] == '}');
    g_string_append_len(out, base, (gssize)len - 1);
    if (w->type == VMM_DEVICE_BLK) {
        const VirtioBlkResult *b = &w->blk_res;

        g_string_append_printf(out,
            ",\"type\":\"virtio-blk\",\"bs\":%" PRIu32 ",\"reads\":%" PRIu64
            ",\"writes\":%" PRIu64 ",\"flushes\":%" PRIu64 ",\"discards\":%" PRIu64
            ",\"write_zeroes\":%" PRIu64 ",\"sectors_verified\":%" PRIu64
            ",\"mismatches\":%" PRIu64 ",\"io_errors\":%" PRIu64
            ",\"range_sectors\":%" PRIu64 ",\"resets\":%u,\"resubmitted\":%" PRIu64
            ",\"poll\":\"%s\",\"sleeps\":%" PRIu64,
            w->blk.bs, b->reads, b->writes,
            b->flushes, b->discards, b->write_zeroes, b->sectors_verified,
            b->mismatches, b->io_errors, b->range_sectors, b->resets, b->resubmitted,
            blk_workload_poll_name(w->blk.poll), b->sleeps);
    } else {
        const VirtioNetResult *n = &w->net_res;

        g_string_append_printf(out,
            ",\"type\":\"virtio-net\",\"sent\":%" PRIu64 ",\"received\":%" PRIu64
            ",\"packets_verified\":%" PRIu64 ",\"mismatched\":%" PRIu64
            ",\"stale\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"wrong_queue\":%" PRIu64
            ",\"announce_frames\":%" PRIu64 ",\"kicks\":%" PRIu64 ",\"sleeps\":%" PRIu64
            ",\"verify\":\"%s\",\"poll\":\"%s\",\"mpps\":%.6f", n->sent, n->received,
            n->verified, n->mismatched, n->stale, n->lost, n->wrong_queue, n->announce_frames,
            n->kicks, n->sleeps, net_workload_verify_name(w->net.verify),
            net_workload_poll_name(w->net.poll),
            wl_stats_seconds(s) > 0 ? (double)s->ops / wl_stats_seconds(s) / 1e6 : 0.0);
    }
    g_string_append_printf(out, ",\"migrated\":%s,\"continued\":%s,\"ok\":%s,\"error\":",
                           w->migrated ? "true" : "false",
                           w->blk_res.continued || w->net_res.continued ? "true" : "false",
                           failure ? "false" : "true");
    if (failure) {
        vmm_json_append_string(out, failure);
    } else {
        g_string_append(out, "null");
    }
    g_string_append(out, "}\n");
    line = g_string_free(out, FALSE);
    /* One write: a reader of stdout gets whole lines. */
    fflush(stdout);
    r = write(STDOUT_FILENO, line, strlen(line));
    (void)r;
}

void vmm_workload_report(VmmWorkload *w, bool json)
{
    const char *failure = vmm_workload_failure(w);
    const WorkloadStats *s;
    g_autofree char *summary = NULL;
    bool verified;

    if (w->type == VMM_DEVICE_BLK) {
        s = &w->blk_res.stats;
        verified = w->blk_res.verified;
    } else {
        s = &w->net_res.stats;
        verified = w->net_res.verified_all;
    }
    if (w->ran && (w->blk_res.continued || w->net_res.continued)) {
        vmm_status("%s: continued after a migration: %" PRIu64 " %s done on the source; "
                   "the figures below are the destination's part, the counts the "
                   "whole run's", w->id, w->type == VMM_DEVICE_BLK ?
                   w->blk_res.ops_before : w->net_res.ops_before,
                   w->type == VMM_DEVICE_BLK ? "ops" : "packets verified");
    }
    if (w->ran) {
        summary = wl_stats_summary(s, w->id, verified);
        if (w->migrated && g_str_has_suffix(summary, "NOT verified")) {
            /* Not a verdict: the destination reads back what this part wrote. */
            summary[strlen(summary) - strlen("NOT verified")] = '\0';
            vmm_status("%smigrated, the destination verifies", summary);
        } else {
            vmm_status("%s", summary);
        }
        if (w->type == VMM_DEVICE_BLK) {
            const VirtioBlkResult *b = &w->blk_res;

            vmm_status("%s: %" PRIu64 " reads, %" PRIu64 " writes, %" PRIu64
                       " flushes, %" PRIu64 " discards, %" PRIu64 " write-zeroes; "
                       "%" PRIu64 " blocks of %" PRIu32 " verified (%" PRIu64
                       " sectors), %" PRIu64 " mismatching sectors, %" PRIu64
                       " I/O errors", w->id, b->reads, b->writes, b->flushes,
                       b->discards, b->write_zeroes,
                       b->sectors_verified / (w->blk.bs / VIRTIO_BLK_SECTOR_SIZE),
                       w->blk.bs, b->sectors_verified, b->mismatches, b->io_errors);
            if (b->resets) {
                vmm_status("%s: %u device resets asked for by the device; %" PRIu64
                           " requests submitted again", w->id, b->resets,
                           b->resubmitted);
            }
        } else {
            const VirtioNetResult *n = &w->net_res;
            double secs = wl_stats_seconds(s);

            vmm_status("%s: %" PRIu64 " sent, %" PRIu64 " received, %" PRIu64
                       " verified, %" PRIu64 " lost, %" PRIu64 " mismatched, %"
                       PRIu64 " on the wrong queue; %.3f Mpps", w->id, n->sent,
                       n->received, n->verified, n->lost, n->mismatched,
                       n->wrong_queue, secs > 0 ? (double)s->ops / secs / 1e6 : 0.0);
            if (n->announce_frames) {
                vmm_status("%s: %" PRIu64 " announce frames seen (RARP from the "
                           "guest's MAC)", w->id, n->announce_frames);
            }
        }
    }
    if (failure) {
        vmm_status("%s: workload FAILED: %s", w->id, failure);
    } else if (w->migrated) {
        vmm_status("%s: workload migrated: it goes on on the destination", w->id);
    } else {
        vmm_status("%s: workload passed", w->id);
    }
    if (json) {
        vmm_workload_json(w, s, verified, failure);
    }
}
