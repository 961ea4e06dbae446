/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reference VMM's machine. See vmm/vmm-machine.h.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "chardev/char-socket.h"
#include "guest/virtio-guest.h"
#include "hw/virtio/vhost-user-blk.h"
#include "hw/virtio/vhost-user-device.h"
#include "util/vhost-user-error.h"
#include "hw/virtio/vhost-user-net.h"
#include "system/memory.h"
#include "vmm/vmm-backend-req.h"
#include "vmm/vmm-machine-int.h"
#include "vmm/vmm-workload.h"

/*
 * On a terminal the progress line is rewritten in place (\r, no newline);
 * any other status line first erases it, so lines never interleave.
 */
static bool vmm_progress_on_line;

static void vmm_write_stderr(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));

    (void)r;
}

void vmm_status(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    g_autofree char *line = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = g_strdup_printf("%svhost-user-vmm: %s\n",
                           vmm_progress_on_line ? "\r\033[K" : "", msg);
    vmm_progress_on_line = false;
    /* One write per line: tests read stderr line by line while we run. */
    vmm_write_stderr(line);
}

/* ---- workloads ------------------------------------------------------ */

static gboolean vmm_machine_progress(gpointer opaque)
{
    VmmMachine *m = opaque;
    g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
    bool tty = isatty(STDERR_FILENO);

    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];
        char *p = d->wl ? vmm_workload_progress(d->wl) : NULL;

        if (p) {
            g_ptr_array_add(parts, p);
        }
    }
    if (!parts->len) {
        return G_SOURCE_CONTINUE;
    }
    if (tty) {
        g_autofree char *joined = NULL;
        g_autofree char *line = NULL;

        g_ptr_array_add(parts, NULL);
        joined = g_strjoinv(" | ", (char **)parts->pdata);
        line = g_strdup_printf("\r\033[Kvhost-user-vmm: %s", joined);
        vmm_write_stderr(line);
        vmm_progress_on_line = true;
    } else {
        /* A log or a pipe gets whole lines, one per device per second. */
        for (guint i = 0; i < parts->len; i++) {
            vmm_status("%s", (char *)parts->pdata[i]);
        }
    }
    return G_SOURCE_CONTINUE;
}

static void vmm_machine_workload_done(VmmWorkload *w, void *opaque)
{
    VmmMachine *m = opaque;

    m->workloads_done++;
    vmm_status("%s: workload finished (%s)", vmm_workload_id(w),
               vmm_workload_ok(w) ? "ok" : "failed");
    if (m->workloads_done == m->nworkloads) {
        if (m->progress_timer) {
            g_source_remove(m->progress_timer);
            m->progress_timer = 0;
        }
        if (m->done) {
            m->done(m->done_opaque);
        }
    }
}

bool vmm_machine_has_workloads(const VmmMachine *m)
{
    return m->nworkloads > 0;
}

bool vmm_machine_workloads_finished(const VmmMachine *m)
{
    return m->workloads_done == m->nworkloads;
}

void vmm_machine_set_workloads_done(VmmMachine *m, VmmMachineDoneFn fn, void *opaque)
{
    m->done = fn;
    m->done_opaque = opaque;
}

void vmm_machine_stop_workloads(VmmMachine *m, const char *why)
{
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (d->wl) {
            vmm_workload_stop(d->wl, why);
        }
    }
}

bool vmm_machine_report(VmmMachine *m, bool json)
{
    unsigned failed = 0;

    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (d->wl) {
            vmm_workload_report(d->wl, json);
            failed += !vmm_workload_ok(d->wl);
        }
    }
    if (failed) {
        vmm_status("%u of %u workloads failed", failed, m->nworkloads);
    }
    return failed == 0;
}

/* ---- devices -------------------------------------------------------- */

/*
 * An error the same back-end and options will only repeat (a queue-count
 * or feature mismatch, unshared RAM) on a device whose workload has not
 * started: that workload can never run, so it fails now, and the others
 * are stopped, rather than the VMM waiting for a start that cannot come.
 */
static void vmm_device_error(VmmDevice *d, const GError *err)
{
    VmmMachine *m = d->machine;
    g_autofree char *why = NULL;

    vmm_status("%s: error: %s", d->id, err ? err->message : "unknown error");
    if (!d->wl || vmm_workload_started(d->wl) || vhost_user_error_should_reconnect(err)) {
        return;
    }
    why = g_strdup_printf("the device cannot start: %s",
                          err ? err->message : "unknown error");
    vmm_workload_stop(d->wl, why);
    g_free(why);
    why = g_strdup_printf("stopped: %s cannot start", d->id);
    vmm_machine_stop_workloads(m, why);
}

void vmm_device_boot(VmmDevice *d)
{
    g_autoptr(GError) err = NULL;

    if (d->machine->incoming) {
        return;
    }

    if (!d->guest) {
        d->guest = virtio_guest_device_new(vhost_user_base_vdev(d->vub),
                                           d->machine->mem);
    }
    if (!virtio_guest_device_boot(d->guest, &err)) {
        vmm_device_error(d, err);
    }
}

/* A net device's link (VIRTIO_NET_S_LINK_UP) follows its back-end. */
static void vmm_device_link_status(VmmDevice *d)
{
    if (vhost_user_base_virtio_id(d->vub) == VIRTIO_ID_NET) {
        vmm_status("%s: link %s", d->id, vhost_user_net_link_up(d->vub) ? "up" : "down");
    }
}

static void vmm_device_notify(VhostUserBase *vub, VhostUserBaseEvent event,
                              unsigned nrings, const GError *err, void *opaque)
{
    VmmDevice *d = opaque;

    switch (event) {
    case VHOST_USER_BASE_CONNECTED:
        vmm_status("%s: connected (%s)", d->id, d->chr_path);
        break;
    case VHOST_USER_BASE_READY:
        d->ready = true;
        vmm_device_boot(d);
        break;
    case VHOST_USER_BASE_STARTED:
        vmm_status("%s: started %u rings", d->id, nrings);
        vmm_device_link_status(d);
        /*
         * The first start runs the workload; later ones (after a
         * reconnect) resume the rings under the running thread. On a
         * destination the workload continues the source's run instead
         * (vmm_machine_incoming_start), never a fresh one.
         */
        if (d->wl && !vmm_workload_started(d->wl) && !d->machine->incoming) {
            vmm_workload_start(d->wl, d->guest);
        }
        break;
    case VHOST_USER_BASE_STOPPED:
        vmm_status("%s: stopped %u rings", d->id, nrings);
        break;
    case VHOST_USER_BASE_DISCONNECTED:
        d->ready = false;
        vmm_status("%s: disconnected", d->id);
        vmm_device_link_status(d);
        if (d->wl && vmm_workload_started(d->wl) && !vmm_workload_finished(d->wl)) {
            vmm_status("%s: workload waits for the back-end to reconnect", d->id);
        }
        break;
    case VHOST_USER_BASE_ERROR:
        vmm_device_error(d, err);
        break;
    case VHOST_USER_BASE_NEEDS_RESET:
        vmm_status("%s: the back-end left %u requests in an unknown state and "
                   "does not track requests in flight: the device needs a reset "
                   "(the driver submits them again)", d->id, nrings);
        break;
    }
}

static void vmm_device_free(gpointer p)
{
    VmmDevice *d = p;

    /* The vCPU thread uses the rings: it goes before the device. */
    vmm_workload_free(d->wl);
    vhost_user_base_free(d->vub);
    /* After the device: its teardown still reports unmapped notifiers. */
    vmm_backend_req_free(d->backend_req_ops);
    virtio_guest_device_free(d->guest);
    g_free(d->id);
    g_free(d->chr_path);
    g_free(d);
}

static CharSocket *vmm_machine_chardev(VmmMachine *m, const char *id)
{
    for (guint i = 0; i < m->chardevs->len; i++) {
        CharSocket *chr = m->chardevs->pdata[i];

        if (!strcmp(char_socket_id(chr), id)) {
            return chr;
        }
    }
    return NULL;
}

static bool vmm_machine_add_device(VmmMachine *m, const VmmDeviceOpts *o,
                                   const VmmChardevOpts *co,
                                   const VmmWorkloadOpts *wo, GError **errp)
{
    CharSocket *chr = vmm_machine_chardev(m, o->chardev);
    VhostUserBase *vub = NULL;
    VmmDevice *d;

    g_assert(chr);  /* the options resolved every chardev reference */
    switch (o->type) {
    case VMM_DEVICE_NET: {
        VhostUserNetParams p = {
            .id = o->id, .chr = chr, .mem = m->mem, .queues = o->queues,
            .mq = o->mq, .host_mtu = o->host_mtu, .queue_size = o->queue_size,
            .iommu_platform = o->iommu_platform,
            .packed = o->packed, .in_order = o->in_order,
        };

        memcpy(p.mac, o->mac, sizeof(p.mac));
        vub = vhost_user_net_new(&p, errp);
        break;
    }
    case VMM_DEVICE_BLK: {
        VhostUserBlkParams p = {
            .id = o->id, .chr = chr, .mem = m->mem, .num_queues = o->num_queues,
            .queue_size = o->queue_size, .iommu_platform = o->iommu_platform,
            .packed = o->packed, .in_order = o->in_order,
        };

        vub = vhost_user_blk_new(&p, errp);
        break;
    }
    case VMM_DEVICE_GENERIC: {
        VhostUserDeviceParams p = {
            .id = o->id, .chr = chr, .mem = m->mem, .virtio_id = (uint16_t)o->virtio_id,
            .num_vqs = o->num_vqs, .vq_size = o->vq_size, .config_size = o->config_size,
            .iommu_platform = o->iommu_platform,
            .packed = o->packed, .in_order = o->in_order,
        };

        vub = vhost_user_device_new(&p, errp);
        break;
    }
    }
    if (!vub) {
        return false;
    }
    if (o->shared_objects_max) {
        vhost_user_base_set_shared_objects_max(vub, o->shared_objects_max);
    }
    d = g_new0(VmmDevice, 1);
    d->machine = m;
    d->id = g_strdup(o->id);
    d->chr_path = g_strdup(co->path);
    d->vub = vub;
    d->backend_req_ops = vmm_backend_req_install(vub, m->mem);
    if (wo) {
        d->wl = vmm_workload_new(wo, vmm_machine_workload_done, m);
        m->nworkloads++;
    }
    vhost_user_base_set_notify(vub, vmm_device_notify, d);
    g_ptr_array_add(m->devices, d);
    return true;
}

/* ---- RAM ------------------------------------------------------------ */

static RamBlock *vmm_machine_find_block(VmmMachine *m, const char *id)
{
    for (guint i = 0; i < m->blocks->len; i++) {
        RamBlock *rb = m->blocks->pdata[i];

        if (!strcmp(rb->id, id)) {
            return rb;
        }
    }
    return NULL;
}

static bool vmm_machine_create_ram(VmmMachine *m, const VmmConfig *cfg, GError **errp)
{
    RamBlock *ram;

    for (guint i = 0; i < cfg->objects->len; i++) {
        const VmmMemBackendOpts *o = cfg->objects->pdata[i];
        RamBlock *rb = o->type == VMM_OBJECT_MEMFD ?
            ram_block_new_memfd_share(o->id, o->size, o->share, errp) :
            ram_block_new_file(o->id, o->mem_path, o->size, o->share, errp);

        if (!rb) {
            return false;
        }
        g_ptr_array_add(m->blocks, rb);
    }
    if (cfg->memory_backend) {
        ram = vmm_machine_find_block(m, cfg->memory_backend);
        g_assert(ram);  /* resolved by the options */
    } else {
        ram = ram_block_new_memfd("ram0", cfg->ram_size, errp);
        if (!ram) {
            return false;
        }
        g_ptr_array_add(m->blocks, ram);
    }
    /*
     * A back-end maps the fd, which a private mapping's writes never
     * reach: the device could only ever fail, so it is refused up front
     * (QEMU: vhost-user needs share=on), as device_add refuses such RAM.
     */
    if (!ram->shared && cfg->devices->len) {
        const VmmDeviceOpts *d = cfg->devices->pdata[0];

        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: memory backend '%s' has share=off, but a vhost-user "
                    "back-end must map guest RAM: use share=on", d->id, ram->id);
        return false;
    }
    return guest_memory_add(m->mem, 0, ram, 0, ram->size, errp);
}

static void vmm_machine_fill_pattern(VmmMachine *m)
{
    uint64_t end = guest_memory_end(m->mem);

    for (uint64_t gpa = 0; gpa + sizeof(uint64_t) <= end; gpa += GUEST_PAGE_SIZE) {
        uint64_t v = GUINT64_TO_LE(gpa ^ VMM_FILL_PATTERN_XOR);

        guest_memory_write(m->mem, gpa, &v, sizeof(v));
    }
}

/* ---- machine -------------------------------------------------------- */

VmmMachine *vmm_machine_new(const VmmConfig *cfg, GError **errp)
{
    VmmMachine *m = g_new0(VmmMachine, 1);

    m->mem = guest_memory_new();
    m->blocks = g_ptr_array_new_with_free_func((GDestroyNotify)ram_block_unref);
    m->chardevs = g_ptr_array_new_with_free_func((GDestroyNotify)char_socket_free);
    m->devices = g_ptr_array_new_with_free_func(vmm_device_free);

    if (!vmm_machine_create_ram(m, cfg, errp)) {
        goto fail;
    }
    /* Before anything (the guest allocator's header included) is written. */
    if (cfg->fill_pattern) {
        vmm_machine_fill_pattern(m);
    }
    if (cfg->devices->len && !guest_alloc_init(m->mem, errp)) {
        goto fail;
    }

    for (guint i = 0; i < cfg->chardevs->len; i++) {
        const VmmChardevOpts *o = cfg->chardevs->pdata[i];
        CharSocketOptions co = {
            .id = o->id,
            .path = o->path,
            .server = o->server,
            .wait = o->wait,
            .reconnect_ms = o->reconnect_ms,
            .reply_timeout_ms = o->reply_timeout_ms,
            .timeout_ms = o->slow_reply_timeout_ms,
        };
        CharSocket *chr = char_socket_new(&co, NULL, errp);

        if (!chr) {
            goto fail;
        }
        g_ptr_array_add(m->chardevs, chr);
    }

    for (guint i = 0; i < cfg->devices->len; i++) {
        const VmmDeviceOpts *o = cfg->devices->pdata[i];

        if (!vmm_machine_add_device(m, o, vmm_config_find_chardev(cfg, o->chardev),
                                    vmm_config_find_workload(cfg, o->id), errp)) {
            goto fail;
        }
    }

    if (m->nworkloads) {
        m->progress_timer = g_timeout_add(1000, vmm_machine_progress, m);
    }

    /*
     * Opened last, with every handler in place: OPENED comes from the
     * loop, even for a connection made right here.
     */
    for (guint i = 0; i < m->chardevs->len; i++) {
        if (!char_socket_open(m->chardevs->pdata[i], errp)) {
            goto fail;
        }
    }
    return m;

fail:
    vmm_machine_free(m);
    return NULL;
}

void vmm_machine_shutdown(VmmMachine *m)
{
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        vhost_user_base_stop(d->vub);
    }
}

void vmm_machine_free(VmmMachine *m)
{
    if (!m) {
        return;
    }
    if (m->progress_timer) {
        g_source_remove(m->progress_timer);
    }
    /* Devices before their chardevs, chardevs before the RAM they map. */
    g_ptr_array_unref(m->devices);
    g_ptr_array_unref(m->chardevs);
    guest_memory_free(m->mem);
    g_ptr_array_unref(m->blocks);
    g_free(m);
}

/* ---- run-time RAM ----------------------------------------------------- */

GuestMemory *vmm_machine_memory(VmmMachine *m)
{
    return m->mem;
}

VhostUserBase *vmm_machine_find_device(VmmMachine *m, const char *id)
{
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];

        if (!strcmp(d->id, id)) {
            return d->vub;
        }
    }
    return NULL;
}

RamBlock *vmm_machine_find_ram_block(VmmMachine *m, const char *id)
{
    return vmm_machine_find_block(m, id);
}

void vmm_machine_add_ram_block(VmmMachine *m, RamBlock *rb)
{
    g_assert(!vmm_machine_find_block(m, rb->id));
    g_ptr_array_add(m->blocks, rb);
}

void vmm_machine_del_ram_block(VmmMachine *m, RamBlock *rb)
{
    for (unsigned i = 0; i < guest_memory_nregions(m->mem); i++) {
        g_assert(guest_memory_region(m->mem, i)->block != rb);
    }
    if (!g_ptr_array_remove(m->blocks, rb)) {
        g_assert_not_reached();
    }
}

/* Every device: each back-end maps all guest RAM. */
static GPtrArray *vmm_machine_vubs(VmmMachine *m)
{
    GPtrArray *vubs = g_ptr_array_new();

    for (guint i = 0; i < m->devices->len; i++) {
        g_ptr_array_add(vubs, ((VmmDevice *)m->devices->pdata[i])->vub);
    }
    return vubs;
}

bool vmm_machine_plug_ram(VmmMachine *m, uint64_t gpa, RamBlock *rb, GError **errp)
{
    g_autoptr(GPtrArray) vubs = vmm_machine_vubs(m);
    GError *err = NULL;

    if (vhost_user_base_add_ram((VhostUserBase *const *)vubs->pdata, vubs->len, m->mem,
                                gpa, rb, 0, rb->size, &err)) {
        return true;
    }
    /*
     * Made but refused by a back-end (which was dropped): undo, so that a
     * failed device_add leaves no memory device behind. The others get
     * the removal; the dropped one gets the whole table on reconnect.
     */
    if (guest_memory_find(m->mem, gpa) && guest_memory_find(m->mem, gpa)->block == rb) {
        g_autoptr(GError) undo_err = NULL;

        vhost_user_base_remove_ram((VhostUserBase *const *)vubs->pdata, vubs->len,
                                   m->mem, gpa, &undo_err);
    }
    g_propagate_error(errp, err);
    return false;
}

/*
 * Behind the identity IOMMU a back-end may hold translations into the
 * region (a miss is answered up to the region's end): they go first, so
 * it never uses the range once the region's memory is gone. A back-end
 * that fails the invalidation is dropped like any other; it gets a fresh
 * start on reconnect.
 */
static void vmm_machine_iotlb_invalidate(VmmMachine *m, uint64_t gpa, uint64_t size)
{
    for (guint i = 0; i < m->devices->len; i++) {
        VmmDevice *d = m->devices->pdata[i];
        g_autoptr(GError) err = NULL;

        if (!vhost_user_base_iotlb_invalidate(d->vub, gpa, size, &err)) {
            vmm_status("%s: %s", d->id, err->message);
        }
    }
}

bool vmm_machine_unplug_ram(VmmMachine *m, uint64_t gpa, GError **errp)
{
    g_autoptr(GPtrArray) vubs = vmm_machine_vubs(m);
    const MemoryRegionMap *r = guest_memory_find(m->mem, gpa);

    if (r) {
        vmm_machine_iotlb_invalidate(m, r->gpa, r->size);
    }
    return vhost_user_base_remove_ram((VhostUserBase *const *)vubs->pdata, vubs->len,
                                      m->mem, gpa, errp);
}
