/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Command-line parsing of vhost-user-vmm: QEMU's option names and syntax
 * (-object TYPE,key=val,..., "-chardev socket,...", sizes with K/M/G/T,
 * on/off booleans, ",," for a literal comma) into a VmmConfig. Nothing is
 * created here; every cross-reference (backend ids, chardevs, netdevs) is
 * resolved and checked before the machine is built, so a typo never
 * leaves a half-built VMM behind.
 */
#ifndef VMM_OPTIONS_H
#define VMM_OPTIONS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest/workload.h"

#define VMM_DEFAULT_RAM_SIZE    (128ull * 1024 * 1024)
#define VMM_DEFAULT_QUEUE_SIZE  256
#define VMM_DEFAULT_VQ_SIZE     64
#define VMM_MAX_NET_QUEUES      1024

typedef enum VmmObjectType {
    VMM_OBJECT_MEMFD,
    VMM_OBJECT_FILE,
} VmmObjectType;

typedef struct VmmMemBackendOpts {
    VmmObjectType type;
    char *id;
    uint64_t size;
    char *mem_path;             /* file backend only */
    bool share;
} VmmMemBackendOpts;

typedef struct VmmChardevOpts {
    char *id;
    char *path;
    bool server;
    bool wait;
    int64_t reconnect_ms;       /* 0: never */
    int reply_timeout_ms;       /* prompt replies; 0: the chardev's default */
    int slow_reply_timeout_ms;  /* slow replies and socket I/O; 0: default */
    bool used;                  /* claimed by a netdev or device */
} VmmChardevOpts;

typedef struct VmmNetdevOpts {
    char *id;
    char *chardev;
    unsigned queues;
    bool used;
} VmmNetdevOpts;

typedef enum VmmDeviceType {
    VMM_DEVICE_NET,             /* virtio-net-pci */
    VMM_DEVICE_BLK,             /* vhost-user-blk-pci */
    VMM_DEVICE_GENERIC,         /* vhost-user-device-pci */
} VmmDeviceType;

typedef struct VmmDeviceOpts {
    VmmDeviceType type;
    char *id;                   /* resolved: given, netdev id, blkN, vdevN */
    char *chardev;              /* resolved for net too (the netdev's) */
    char *netdev;
    /* net */
    unsigned queues;            /* from the netdev */
    bool mq;
    uint8_t mac[6];
    uint16_t host_mtu;
    /* blk */
    unsigned num_queues;
    /* net, blk */
    unsigned queue_size;
    /* generic */
    unsigned virtio_id;
    unsigned num_vqs;
    unsigned vq_size;
    unsigned config_size;
    /* all: iommu_platform=on offers VIRTIO_F_IOMMU_PLATFORM (identity IOMMU) */
    bool iommu_platform;
    /* all: packed=on offers VIRTIO_F_RING_PACKED (QEMU's property; default off) */
    bool packed;
    /* all: in_order=on offers VIRTIO_F_IN_ORDER (QEMU's property; default off) */
    bool in_order;
    /* all: shared-objects-max=N, the back-end's SHARED_OBJECT_ADD limit (0: default) */
    unsigned shared_objects_max;
} VmmDeviceOpts;

/* -workload DEVID:OPTIONS, parsed against the device's type at resolution. */
typedef struct VmmWorkloadOpts {
    char *devid;
    char *opts;                 /* as given, for messages */
    VmmDeviceType type;         /* resolved: the device's */
    BlkWorkload blk;            /* resolved when type is VMM_DEVICE_BLK */
    NetWorkload net;            /* resolved when type is VMM_DEVICE_NET */
    bool vcpu_pin;              /* resolved: -vcpu-pin's */
} VmmWorkloadOpts;

typedef struct VmmConfig {
    uint64_t ram_size;          /* resolved */
    bool ram_size_set;          /* -m given */
    char *memory_backend;       /* -machine memory-backend= */
    GPtrArray *objects;         /* VmmMemBackendOpts */
    GPtrArray *chardevs;        /* VmmChardevOpts */
    GPtrArray *netdevs;         /* VmmNetdevOpts */
    GPtrArray *devices;         /* VmmDeviceOpts */
    GPtrArray *workloads;       /* VmmWorkloadOpts, at most one per device */
    bool summary_json;          /* -summary json: one JSON line per workload */
    bool fill_pattern;          /* -x-fill-pattern */
    bool vcpu_pin;              /* -vcpu-pin on (the default) */
    bool trace;                 /* -trace vhost_user */
    char *qmp_path;             /* -qmp unix:PATH,server=on: the monitor's socket */
    bool qmp_wait;              /* -qmp ...,wait=on: start-up waits for a client */
    char *incoming;             /* -incoming tcp:HOST:PORT|unix:PATH|defer */
    bool no_autostart;          /* -S: a loaded guest waits for QMP cont */
    bool help;                  /* -h / --help: print help, exit 0 */
} VmmConfig;

VmmConfig *vmm_config_new(void);
void vmm_config_free(VmmConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmmConfig, vmm_config_free)

/*
 * Parses argv[1..argc-1] into cfg and resolves it. Errors name the option
 * and the key: "-chardev socket: unknown parameter 'pth'".
 */
bool vmm_options_parse(VmmConfig *cfg, int argc, char **argv, GError **errp);

const VmmMemBackendOpts *vmm_config_find_object(const VmmConfig *cfg, const char *id);
const VmmChardevOpts *vmm_config_find_chardev(const VmmConfig *cfg, const char *id);
/* The workload given for device id, or NULL. */
const VmmWorkloadOpts *vmm_config_find_workload(const VmmConfig *cfg, const char *id);

#endif
