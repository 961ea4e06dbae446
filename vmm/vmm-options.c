/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Option parsing for vhost-user-vmm. See vmm/vmm-options.h.
 *
 * Each option's argument is split into key=value pairs once (QEMU's
 * QemuOpts syntax: an optional implied first value, ",," for a comma).
 * Every key is checked against the list the option/type accepts before
 * any value is looked at, so a misspelt key is reported by name instead
 * of silently falling back to a default.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "util/vhost-user-error.h"
#include "vmm/vmm-kv.h"
#include "vmm/vmm-options.h"

/* The library's shared object registry holds at most this many in all. */
#define VMM_SHARED_OBJECTS_MAX  1024

/* ---- config --------------------------------------------------------- */

static void vmm_mem_backend_free(gpointer p)
{
    VmmMemBackendOpts *o = p;

    g_free(o->id);
    g_free(o->mem_path);
    g_free(o);
}

static void vmm_chardev_free(gpointer p)
{
    VmmChardevOpts *o = p;

    g_free(o->id);
    g_free(o->path);
    g_free(o);
}

static void vmm_netdev_free(gpointer p)
{
    VmmNetdevOpts *o = p;

    g_free(o->id);
    g_free(o->chardev);
    g_free(o);
}

static void vmm_workload_opts_free(gpointer p)
{
    VmmWorkloadOpts *o = p;

    g_free(o->devid);
    g_free(o->opts);
    g_free(o);
}

static void vmm_device_free(gpointer p)
{
    VmmDeviceOpts *o = p;

    g_free(o->id);
    g_free(o->chardev);
    g_free(o->netdev);
    g_free(o);
}

VmmConfig *vmm_config_new(void)
{
    VmmConfig *cfg = g_new0(VmmConfig, 1);

    cfg->objects = g_ptr_array_new_with_free_func(vmm_mem_backend_free);
    cfg->chardevs = g_ptr_array_new_with_free_func(vmm_chardev_free);
    cfg->netdevs = g_ptr_array_new_with_free_func(vmm_netdev_free);
    cfg->devices = g_ptr_array_new_with_free_func(vmm_device_free);
    cfg->workloads = g_ptr_array_new_with_free_func(vmm_workload_opts_free);
    cfg->vcpu_pin = true;
    return cfg;
}

/* QEMU's URIs; the socket itself is opened (and fully checked) later. */
static bool vmm_opt_incoming(VmmConfig *cfg, const char *arg, GError **errp)
{
    if (strcmp(arg, "defer") && !g_str_has_prefix(arg, "tcp:") &&
        !g_str_has_prefix(arg, "unix:")) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-incoming: expects tcp:HOST:PORT, unix:PATH or defer, got '%s'", arg);
        return false;
    }
    if (cfg->incoming) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-incoming: given twice ('%s', then '%s')", cfg->incoming, arg);
        return false;
    }
    cfg->incoming = g_strdup(arg);
    return true;
}

/* What -incoming and -S need besides themselves. */
static bool vmm_check_incoming(const VmmConfig *cfg, GError **errp)
{
    if (cfg->no_autostart && !cfg->incoming) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-S: only supported with -incoming (the guest waits for cont "
                    "after the migration loaded it)");
        return false;
    }
    if ((cfg->no_autostart || (cfg->incoming && !strcmp(cfg->incoming, "defer"))) &&
        !cfg->qmp_path) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: needs -qmp (the guest waits for the monitor's %s)",
                    cfg->no_autostart ? "-S" : "-incoming defer",
                    cfg->no_autostart ? "cont" : "migrate-incoming");
        return false;
    }
    return true;
}

void vmm_config_free(VmmConfig *cfg)
{
    if (!cfg) {
        return;
    }
    g_ptr_array_unref(cfg->objects);
    g_ptr_array_unref(cfg->chardevs);
    g_ptr_array_unref(cfg->netdevs);
    g_ptr_array_unref(cfg->devices);
    g_ptr_array_unref(cfg->workloads);
    g_free(cfg->memory_backend);
    g_free(cfg->qmp_path);
    g_free(cfg->incoming);
    g_free(cfg);
}

const VmmMemBackendOpts *vmm_config_find_object(const VmmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->objects->len; i++) {
        const VmmMemBackendOpts *o = cfg->objects->pdata[i];

        if (!strcmp(o->id, id)) {
            return o;
        }
    }
    return NULL;
}

const VmmChardevOpts *vmm_config_find_chardev(const VmmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->chardevs->len; i++) {
        const VmmChardevOpts *o = cfg->chardevs->pdata[i];

        if (!strcmp(o->id, id)) {
            return o;
        }
    }
    return NULL;
}

const VmmWorkloadOpts *vmm_config_find_workload(const VmmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->workloads->len; i++) {
        const VmmWorkloadOpts *o = cfg->workloads->pdata[i];

        if (!strcmp(o->devid, id)) {
            return o;
        }
    }
    return NULL;
}

static VmmNetdevOpts *vmm_config_find_netdev(const VmmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->netdevs->len; i++) {
        VmmNetdevOpts *o = cfg->netdevs->pdata[i];

        if (!strcmp(o->id, id)) {
            return o;
        }
    }
    return NULL;
}

/* ---- the options ---------------------------------------------------- */

static bool vmm_check_id(const char *what, const char *id, GError **errp)
{
    /* QEMU's rule: a letter, then letters, digits, '-', '.', '_'. */
    if (!g_ascii_isalpha(id[0])) {
        goto bad;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_') {
            goto bad;
        }
    }
    return true;
bad:
    g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                "%s: id '%s' must start with a letter and hold only letters, "
                "digits, '-', '.' and '_'", what, id);
    return false;
}

static bool vmm_opt_m(VmmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const keys[] = { "size", NULL };
    g_autoptr(VmmKvList) kv = vmm_kv_parse("-m", arg, "size", errp);

    if (!kv || !vmm_kv_check_keys(kv, keys, NULL, errp) ||
        /* As in QEMU, a bare -m number is in MiB. */
        !vmm_kv_size(kv, "size", 1ull << 20, true, &cfg->ram_size, errp)) {
        return false;
    }
    cfg->ram_size_set = true;
    return true;
}

static bool vmm_opt_object(VmmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const memfd_keys[] = { "id", "size", "share", NULL };
    static const char *const file_keys[] = { "id", "size", "mem-path", "share", NULL };
    g_autoptr(VmmKvList) kv = vmm_kv_parse("-object", arg, "qom-type", errp);
    g_autofree char *type = NULL;
    VmmMemBackendOpts *o;

    if (!kv || !vmm_kv_str(kv, "qom-type", true, &type, errp)) {
        return false;
    }
    vmm_kv_set_what(kv, "-object", type);
    o = g_new0(VmmMemBackendOpts, 1);
    g_ptr_array_add(cfg->objects, o);
    if (!strcmp(type, "memory-backend-memfd")) {
        o->type = VMM_OBJECT_MEMFD;
        o->share = true;        /* memfd is shared unless told otherwise */
        if (!vmm_kv_check_keys(kv, memfd_keys, "qom-type", errp)) {
            return false;
        }
    } else if (!strcmp(type, "memory-backend-file")) {
        o->type = VMM_OBJECT_FILE;
        o->share = false;       /* QEMU's default for files */
        if (!vmm_kv_check_keys(kv, file_keys, "qom-type", errp) ||
            !vmm_kv_str(kv, "mem-path", true, &o->mem_path, errp)) {
            return false;
        }
    } else {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-object: unknown object type '%s' (supported: "
                    "memory-backend-memfd, memory-backend-file)", type);
        return false;
    }
    return vmm_kv_str(kv, "id", true, &o->id, errp) &&
           vmm_check_id(kv->what, o->id, errp) &&
           vmm_kv_size(kv, "size", 1, true, &o->size, errp) &&
           vmm_kv_bool(kv, "share", &o->share, errp);
}

static bool vmm_opt_machine(VmmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const keys[] = { "memory-backend", NULL };
    g_autoptr(VmmKvList) kv = vmm_kv_parse("-machine", arg, NULL, errp);
    g_autofree char *backend = NULL;

    if (!kv || !vmm_kv_check_keys(kv, keys, NULL, errp) ||
        !vmm_kv_str(kv, "memory-backend", false, &backend, errp)) {
        return false;
    }
    if (backend) {
        /* Later -machine options override earlier ones, as in QEMU. */
        g_free(cfg->memory_backend);
        cfg->memory_backend = g_steal_pointer(&backend);
    }
    return true;
}

static bool vmm_opt_chardev(VmmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const keys[] = {
        "id", "path", "server", "wait", "reconnect-ms", "reconnect",
        "reply-timeout-ms", "slow-reply-timeout-ms", NULL
    };
    g_autoptr(VmmKvList) kv = vmm_kv_parse("-chardev", arg, "backend", errp);
    g_autofree char *type = NULL;
    uint64_t reconnect_ms = 0, reconnect_s = 0, reply_ms = 0, slow_ms = 0;
    VmmChardevOpts *o;

    if (!kv || !vmm_kv_str(kv, "backend", true, &type, errp)) {
        return false;
    }
    vmm_kv_set_what(kv, "-chardev", type);
    if (strcmp(type, "socket")) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-chardev: unknown backend type '%s' (supported: socket)", type);
        return false;
    }
    if (!vmm_kv_check_keys(kv, keys, "backend", errp)) {
        return false;
    }
    o = g_new0(VmmChardevOpts, 1);
    g_ptr_array_add(cfg->chardevs, o);
    o->wait = true;             /* QEMU's default for servers */
    if (!vmm_kv_str(kv, "id", true, &o->id, errp) ||
        !vmm_check_id(kv->what, o->id, errp) ||
        !vmm_kv_str(kv, "path", true, &o->path, errp) ||
        !vmm_kv_bool(kv, "server", &o->server, errp) ||
        !vmm_kv_bool(kv, "wait", &o->wait, errp) ||
        !vmm_kv_uint(kv, "reconnect-ms", 0, 24ull * 3600 * 1000, &reconnect_ms, errp) ||
        /* The older seconds-based spelling. */
        !vmm_kv_uint(kv, "reconnect", 0, 24ull * 3600, &reconnect_s, errp) ||
        /* 0 is "the default"; an hour is far beyond any sane bound. */
        !vmm_kv_uint(kv, "reply-timeout-ms", 1, 3600 * 1000, &reply_ms, errp) ||
        !vmm_kv_uint(kv, "slow-reply-timeout-ms", 1, 3600 * 1000, &slow_ms, errp)) {
        return false;
    }
    o->reply_timeout_ms = (int)reply_ms;
    o->slow_reply_timeout_ms = (int)slow_ms;
    if (reply_ms && slow_ms && reply_ms > slow_ms) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s,id=%s: reply-timeout-ms (%llu) must not exceed "
                    "slow-reply-timeout-ms (%llu)", kv->what, o->id,
                    (unsigned long long)reply_ms, (unsigned long long)slow_ms);
        return false;
    }
    if (vmm_kv_find(kv, "reconnect-ms") && vmm_kv_find(kv, "reconnect")) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s,id=%s: 'reconnect' and 'reconnect-ms' are mutually "
                    "exclusive", kv->what, o->id);
        return false;
    }
    o->reconnect_ms = reconnect_ms ? (int64_t)reconnect_ms : (int64_t)reconnect_s * 1000;
    if (o->server && o->reconnect_ms) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s,id=%s: 'reconnect-ms' is for clients, not server=on",
                    kv->what, o->id);
        return false;
    }
    return true;
}

static bool vmm_opt_netdev(VmmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const keys[] = { "id", "chardev", "queues", "vhostforce", NULL };
    g_autoptr(VmmKvList) kv = vmm_kv_parse("-netdev", arg, "type", errp);
    g_autofree char *type = NULL;
    uint64_t queues = 1;
    bool force = true;
    VmmNetdevOpts *o;

    if (!kv || !vmm_kv_str(kv, "type", true, &type, errp)) {
        return false;
    }
    vmm_kv_set_what(kv, "-netdev", type);
    if (strcmp(type, "vhost-user")) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-netdev: unknown netdev type '%s' (supported: vhost-user)", type);
        return false;
    }
    if (!vmm_kv_check_keys(kv, keys, "type", errp)) {
        return false;
    }
    o = g_new0(VmmNetdevOpts, 1);
    g_ptr_array_add(cfg->netdevs, o);
    if (!vmm_kv_str(kv, "id", true, &o->id, errp) ||
        !vmm_check_id(kv->what, o->id, errp) ||
        !vmm_kv_str(kv, "chardev", true, &o->chardev, errp) ||
        !vmm_kv_uint(kv, "queues", 1, VMM_MAX_NET_QUEUES, &queues, errp) ||
        /* Accepted for QEMU command lines; vhost-user is always "forced". */
        !vmm_kv_bool(kv, "vhostforce", &force, errp)) {
        return false;
    }
    o->queues = (unsigned)queues;
    return true;
}

static bool vmm_parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char tail;

    if (strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &tail) != 6) {
        return false;
    }
    for (int i = 0; i < 6; i++) {
        if (!g_ascii_isxdigit(s[i * 3]) || !g_ascii_isxdigit(s[i * 3 + 1])) {
            return false;
        }
        mac[i] = (uint8_t)v[i];
    }
    /* A multicast address cannot be a NIC's own. */
    return !(mac[0] & 1);
}

static bool vmm_opt_device(VmmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const net_keys[] = {
        "id", "netdev", "mq", "mac", "host_mtu", "iommu_platform", "packed", "in_order",
        "shared-objects-max", NULL
    };
    static const char *const blk_keys[] = {
        "id", "chardev", "num-queues", "queue-size", "iommu_platform", "packed", "in_order",
        "shared-objects-max", NULL
    };
    static const char *const generic_keys[] = {
        "id", "chardev", "virtio-id", "num_vqs", "vq_size", "config_size",
        "iommu_platform", "packed", "in_order", "shared-objects-max", NULL
    };
    g_autoptr(VmmKvList) kv = vmm_kv_parse("-device", arg, "driver", errp);
    g_autofree char *driver = NULL;
    g_autofree char *mac = NULL;
    uint64_t v;
    VmmDeviceOpts *o;

    if (!kv || !vmm_kv_str(kv, "driver", true, &driver, errp)) {
        return false;
    }
    vmm_kv_set_what(kv, "-device", driver);
    o = g_new0(VmmDeviceOpts, 1);
    g_ptr_array_add(cfg->devices, o);
    o->queue_size = VMM_DEFAULT_QUEUE_SIZE;

    if (!strcmp(driver, "virtio-net-pci")) {
        o->type = VMM_DEVICE_NET;
        o->mq = true;           /* offered whenever the netdev has queues > 1 */
        v = 0;
        if (!vmm_kv_check_keys(kv, net_keys, "driver", errp) ||
            !vmm_kv_str(kv, "netdev", true, &o->netdev, errp) ||
            !vmm_kv_bool(kv, "mq", &o->mq, errp) ||
            !vmm_kv_str(kv, "mac", false, &mac, errp) ||
            !vmm_kv_uint(kv, "host_mtu", 68, 65535, &v, errp)) {
            return false;
        }
        o->host_mtu = (uint16_t)v;
        if (mac && !vmm_parse_mac(mac, o->mac)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: parameter 'mac' expects a unicast address like "
                        "52:54:00:12:34:56, got '%s'", kv->what, mac);
            return false;
        }
        if (!mac) {
            /* QEMU's scheme: 52:54:00:12:34:56, 57, ... per NIC. */
            static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
            unsigned nics = 0;

            for (guint i = 0; i + 1 < cfg->devices->len; i++) {
                nics += ((VmmDeviceOpts *)cfg->devices->pdata[i])->type == VMM_DEVICE_NET;
            }
            memcpy(o->mac, base, sizeof(base));
            o->mac[5] = (uint8_t)(base[5] + nics);
        }
    } else if (!strcmp(driver, "vhost-user-blk-pci")) {
        o->type = VMM_DEVICE_BLK;
        v = 1;
        if (!vmm_kv_check_keys(kv, blk_keys, "driver", errp) ||
            !vmm_kv_str(kv, "chardev", true, &o->chardev, errp) ||
            !vmm_kv_uint(kv, "num-queues", 1, 64, &v, errp)) {
            return false;
        }
        o->num_queues = (unsigned)v;
        v = o->queue_size;
        if (!vmm_kv_uint(kv, "queue-size", 2, 32768, &v, errp)) {
            return false;
        }
        o->queue_size = (unsigned)v;
    } else if (!strcmp(driver, "vhost-user-device-pci")) {
        o->type = VMM_DEVICE_GENERIC;
        if (!vmm_kv_check_keys(kv, generic_keys, "driver", errp) ||
            !vmm_kv_str(kv, "chardev", true, &o->chardev, errp)) {
            return false;
        }
        if (!vmm_kv_find(kv, "virtio-id") || !vmm_kv_find(kv, "num_vqs")) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: parameter '%s' is required", kv->what,
                        vmm_kv_find(kv, "virtio-id") ? "num_vqs" : "virtio-id");
            return false;
        }
        v = 0;
        if (!vmm_kv_uint(kv, "virtio-id", 1, 65535, &v, errp)) {
            return false;
        }
        o->virtio_id = (unsigned)v;
        if (!vmm_kv_uint(kv, "num_vqs", 1, 64, &v, errp)) {
            return false;
        }
        o->num_vqs = (unsigned)v;
        v = VMM_DEFAULT_VQ_SIZE;
        if (!vmm_kv_uint(kv, "vq_size", 2, 32768, &v, errp)) {
            return false;
        }
        o->vq_size = (unsigned)v;
        v = 0;
        if (!vmm_kv_uint(kv, "config_size", 0, 256, &v, errp)) {
            return false;
        }
        o->config_size = (unsigned)v;
    } else {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-device: unknown device '%s' (supported: virtio-net-pci, "
                    "vhost-user-blk-pci, vhost-user-device-pci)", driver);
        return false;
    }

    {
        unsigned size = o->type == VMM_DEVICE_GENERIC ? o->vq_size : o->queue_size;

        if (size & (size - 1)) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: parameter '%s' must be a power of two, got %u",
                        kv->what, o->type == VMM_DEVICE_GENERIC ? "vq_size" :
                        "queue-size", size);
            return false;
        }
    }
    v = 0;
    if (!vmm_kv_uint(kv, "shared-objects-max", 1, VMM_SHARED_OBJECTS_MAX, &v, errp)) {
        return false;
    }
    o->shared_objects_max = (unsigned)v;
    /* Every vhost-user device takes it, as in QEMU (virtio-pci's property). */
    return vmm_kv_bool(kv, "iommu_platform", &o->iommu_platform, errp) &&
           vmm_kv_bool(kv, "packed", &o->packed, errp) &&
           vmm_kv_bool(kv, "in_order", &o->in_order, errp) &&
           vmm_kv_str(kv, "id", false, &o->id, errp) &&
           (!o->id || vmm_check_id(kv->what, o->id, errp));
}

static bool vmm_opt_trace(VmmConfig *cfg, const char *arg, GError **errp)
{
    const char *pattern = g_str_has_prefix(arg, "enable=") ? arg + 7 : arg;

    if (strcmp(pattern, "vhost_user") && strcmp(pattern, "vhost_user*")) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-trace: unknown trace event '%s' (available: vhost_user)", arg);
        return false;
    }
    cfg->trace = true;
    return true;
}

/*
 * -qmp unix:PATH,server=on,wait=off, QEMU's chardev shorthand. Only a
 * listening unix socket: the monitor is for a local client (a test, an
 * operator's socat or qmp-shell). Also the legacy "server,nowait".
 */
static bool vmm_opt_qmp(VmmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const keys[] = { "server", "wait", "nowait", NULL };
    g_autoptr(VmmKvList) kv = vmm_kv_parse("-qmp", arg, "path", errp);
    g_autofree char *where = NULL;
    bool server = false, wait = true, nowait = false;

    if (!kv || !vmm_kv_str(kv, "path", true, &where, errp) ||
        !vmm_kv_check_keys(kv, keys, "path", errp) ||
        !vmm_kv_bool(kv, "server", &server, errp) ||
        !vmm_kv_bool(kv, "wait", &wait, errp) ||
        !vmm_kv_bool(kv, "nowait", &nowait, errp)) {
        return false;
    }
    if (cfg->qmp_path) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-qmp: only one monitor is supported");
        return false;
    }
    if (!g_str_has_prefix(where, "unix:") || !where[5]) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-qmp: expects unix:PATH,server=on[,wait=off], got '%s'", arg);
        return false;
    }
    if (!server) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-qmp %s: only server=on is supported (the VMM listens)", where);
        return false;
    }
    if (vmm_kv_find(kv, "nowait") && vmm_kv_find(kv, "wait")) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-qmp %s: 'wait' and 'nowait' are mutually exclusive", where);
        return false;
    }
    cfg->qmp_path = g_strdup(where + 5);
    cfg->qmp_wait = wait && !nowait;
    return true;
}

static bool vmm_opt_workload(VmmConfig *cfg, const char *arg, GError **errp)
{
    VmmWorkloadOpts *o = g_new0(VmmWorkloadOpts, 1);

    g_ptr_array_add(cfg->workloads, o);
    /* The keys depend on the device's type: checked once devices resolve. */
    return workload_split(arg, &o->devid, &o->opts, errp);
}

static bool vmm_opt_summary(VmmConfig *cfg, const char *arg, GError **errp)
{
    if (!strcmp(arg, "json")) {
        cfg->summary_json = true;
    } else if (!strcmp(arg, "human") || !strcmp(arg, "text")) {
        cfg->summary_json = false;
    } else {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-summary: expects 'human' or 'json', got '%s'", arg);
        return false;
    }
    return true;
}

static bool vmm_opt_vcpu_pin(VmmConfig *cfg, const char *arg, GError **errp)
{
    if (!strcmp(arg, "on")) {
        cfg->vcpu_pin = true;
    } else if (!strcmp(arg, "off")) {
        cfg->vcpu_pin = false;
    } else {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "-vcpu-pin: expects 'on' or 'off', got '%s'", arg);
        return false;
    }
    return true;
}

/* ---- resolution ----------------------------------------------------- */

/* Each -workload names a device with a guest driver; its keys fit the type. */
static bool vmm_resolve_workloads(VmmConfig *cfg, GError **errp)
{
    for (guint i = 0; i < cfg->workloads->len; i++) {
        VmmWorkloadOpts *w = cfg->workloads->pdata[i];
        const VmmDeviceOpts *dev = NULL;
        g_autoptr(GError) err = NULL;
        bool ok;

        w->vcpu_pin = cfg->vcpu_pin;
        for (guint j = 0; j < i; j++) {
            if (!strcmp(((VmmWorkloadOpts *)cfg->workloads->pdata[j])->devid, w->devid)) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                            "-workload %s: device '%s' already has a workload "
                            "(one -workload per device)", w->devid, w->devid);
                return false;
            }
        }
        for (guint j = 0; j < cfg->devices->len; j++) {
            const VmmDeviceOpts *d = cfg->devices->pdata[j];

            if (!strcmp(d->id, w->devid)) {
                dev = d;
                break;
            }
        }
        if (!dev) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "-workload %s: no -device with id '%s'", w->devid, w->devid);
            return false;
        }
        w->type = dev->type;
        switch (dev->type) {
        case VMM_DEVICE_BLK:
            blk_workload_init(&w->blk);
            ok = blk_workload_parse(&w->blk, w->devid, w->opts, &err);
            break;
        case VMM_DEVICE_NET:
            net_workload_init(&w->net);
            ok = net_workload_parse(&w->net, w->devid, w->opts, &err);
            break;
        default:
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "-workload %s: vhost-user-device-pci has no guest driver "
                        "to run a workload (only virtio-net-pci and "
                        "vhost-user-blk-pci do)", w->devid);
            return false;
        }
        if (!ok) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "-workload %s", err->message);
            return false;
        }
    }
    return true;
}

static bool vmm_check_unique(GPtrArray *arr, size_t id_offset, const char *what,
                             GError **errp)
{
    for (guint i = 0; i < arr->len; i++) {
        const char *a = *(char **)((char *)arr->pdata[i] + id_offset);

        for (guint j = 0; j < i; j++) {
            const char *b = *(char **)((char *)arr->pdata[j] + id_offset);

            if (!strcmp(a, b)) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                            "%s: duplicate id '%s'", what, a);
                return false;
            }
        }
    }
    return true;
}

static bool vmm_claim_chardev(VmmConfig *cfg, const char *who, const char *id,
                              GError **errp)
{
    VmmChardevOpts *c = (VmmChardevOpts *)vmm_config_find_chardev(cfg, id);

    if (!c) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: chardev '%s' not found", who, id);
        return false;
    }
    if (c->used) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: chardev '%s' is already in use", who, id);
        return false;
    }
    c->used = true;
    return true;
}

static bool vmm_config_resolve(VmmConfig *cfg, GError **errp)
{
    unsigned nblk = 0, ngeneric = 0;

    if (!vmm_check_unique(cfg->objects, offsetof(VmmMemBackendOpts, id), "-object", errp) ||
        !vmm_check_unique(cfg->chardevs, offsetof(VmmChardevOpts, id), "-chardev", errp) ||
        !vmm_check_unique(cfg->netdevs, offsetof(VmmNetdevOpts, id), "-netdev", errp)) {
        return false;
    }

    if (cfg->memory_backend) {
        const VmmMemBackendOpts *o = vmm_config_find_object(cfg, cfg->memory_backend);

        if (!o) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "-machine memory-backend=%s: no -object with that id",
                        cfg->memory_backend);
            return false;
        }
        if (cfg->ram_size_set && cfg->ram_size != o->size) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "-machine memory-backend=%s: backend size %" G_GUINT64_FORMAT
                        " differs from -m %" G_GUINT64_FORMAT, cfg->memory_backend,
                        o->size, cfg->ram_size);
            return false;
        }
        cfg->ram_size = o->size;
    } else if (!cfg->ram_size_set) {
        cfg->ram_size = VMM_DEFAULT_RAM_SIZE;
    }

    for (guint i = 0; i < cfg->netdevs->len; i++) {
        VmmNetdevOpts *n = cfg->netdevs->pdata[i];
        g_autofree char *who = g_strdup_printf("-netdev vhost-user,id=%s", n->id);

        if (!vmm_claim_chardev(cfg, who, n->chardev, errp)) {
            return false;
        }
    }

    for (guint i = 0; i < cfg->devices->len; i++) {
        VmmDeviceOpts *d = cfg->devices->pdata[i];

        switch (d->type) {
        case VMM_DEVICE_NET: {
            VmmNetdevOpts *n = vmm_config_find_netdev(cfg, d->netdev);

            if (!n) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                            "-device virtio-net-pci: netdev '%s' not found", d->netdev);
                return false;
            }
            if (n->used) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                            "-device virtio-net-pci: netdev '%s' is already in use",
                            d->netdev);
                return false;
            }
            n->used = true;
            d->chardev = g_strdup(n->chardev);
            d->queues = n->queues;
            if (!d->id) {
                d->id = g_strdup(n->id);
            }
            break;
        }
        case VMM_DEVICE_BLK:
        case VMM_DEVICE_GENERIC: {
            g_autofree char *who = g_strdup_printf(
                "-device %s", d->type == VMM_DEVICE_BLK ? "vhost-user-blk-pci" :
                                                          "vhost-user-device-pci");

            if (!vmm_claim_chardev(cfg, who, d->chardev, errp)) {
                return false;
            }
            if (!d->id) {
                d->id = d->type == VMM_DEVICE_BLK ?
                    g_strdup_printf("blk%u", nblk) : g_strdup_printf("vdev%u", ngeneric);
            }
            if (d->type == VMM_DEVICE_BLK) {
                nblk++;
            } else {
                ngeneric++;
            }
            break;
        }
        }
    }
    return vmm_check_unique(cfg->devices, offsetof(VmmDeviceOpts, id), "-device", errp) &&
           vmm_resolve_workloads(cfg, errp);
}

/* ---- argv ----------------------------------------------------------- */

typedef struct VmmOption {
    const char *name;
    bool has_arg;
    bool (*handler)(VmmConfig *cfg, const char *arg, GError **errp);
} VmmOption;

static const VmmOption vmm_options[] = {
    { "m", true, vmm_opt_m },
    { "object", true, vmm_opt_object },
    { "machine", true, vmm_opt_machine },
    { "M", true, vmm_opt_machine },
    { "chardev", true, vmm_opt_chardev },
    { "netdev", true, vmm_opt_netdev },
    { "device", true, vmm_opt_device },
    { "trace", true, vmm_opt_trace },
    { "workload", true, vmm_opt_workload },
    { "summary", true, vmm_opt_summary },
    { "vcpu-pin", true, vmm_opt_vcpu_pin },
    { "qmp", true, vmm_opt_qmp },
    { "incoming", true, vmm_opt_incoming },
    { "S", false, NULL },
    { "x-fill-pattern", false, NULL },
    { "h", false, NULL },
    { "help", false, NULL },
};

bool vmm_options_parse(VmmConfig *cfg, int argc, char **argv, GError **errp)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name;
        const VmmOption *opt = NULL;

        if (a[0] != '-' || !a[1]) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "unexpected argument '%s' (options start with '-')", a);
            return false;
        }
        /* QEMU accepts -opt and --opt alike. */
        name = a[1] == '-' ? a + 2 : a + 1;
        for (size_t k = 0; k < G_N_ELEMENTS(vmm_options); k++) {
            if (!strcmp(vmm_options[k].name, name)) {
                opt = &vmm_options[k];
                break;
            }
        }
        if (!opt) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "unknown option '%s' (see --help)", a);
            return false;
        }
        if (!strcmp(opt->name, "h") || !strcmp(opt->name, "help")) {
            cfg->help = true;
            return true;
        }
        if (!strcmp(opt->name, "x-fill-pattern")) {
            cfg->fill_pattern = true;
            continue;
        }
        if (!strcmp(opt->name, "S")) {
            cfg->no_autostart = true;
            continue;
        }
        if (i + 1 >= argc) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "-%s: requires an argument", opt->name);
            return false;
        }
        if (!opt->handler(cfg, argv[++i], errp)) {
            return false;
        }
    }
    return vmm_config_resolve(cfg, errp) && vmm_check_incoming(cfg, errp);
}
