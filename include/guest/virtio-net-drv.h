/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's virtio-net driver (virtio 1.x, 5.1) and its packet
 * workload, for a back-end that loops packets back (our reference
 * back-end's net loopback, or a forwarding switch port).
 *
 * It knows nothing of vhost: it gets guest RAM, the device's queues in
 * virtio order (rx0, tx0, rx1, tx1, ...; no control queue), initialised by
 * the caller with kick_fd/call_fd set, the negotiated features, the config
 * (mac, mtu) and a guest-RAM area for buffers and bookkeeping.
 *
 * Each packet sent is: a 12-byte virtio_net_hdr_v1 (always 12 bytes with
 * VERSION_1), an ethernet header to the device's own MAC with ethertype
 * 0x88b5 (local experimental), and a payload made by pattern_fill() with
 * id = (queue pair << 48) | sequence and generation = the run number, so
 * every packet received says which queue sent it, which one it was, and
 * whether it belongs to this run. The MAC addresses are not checked on
 * receive: forwarders may rewrite or swap them.
 *
 * Receive buffers are posted once, at the first run, and stay posted:
 * with VIRTIO_NET_F_MRG_RXBUF they are rxbuf bytes each and a packet may
 * span several (num_buffers), without it each holds a whole packet: the
 * header and the largest of the first run's sizes, 1518 bytes at least,
 * and with VIRTIO_NET_F_MTU the MTU's largest frame.
 *
 * Frames are 46 to 9018 bytes (jumbo). With VIRTIO_NET_F_MTU none is
 * larger than mtu + 18: the 14-byte ethernet header and one 4-byte VLAN
 * tag are counted on top of the MTU, as a tagged full-MTU frame must
 * pass (so mtu 1500 allows 1518, mtu 9000 allows 9018); a workload size
 * above that is refused before anything is sent. Everything runs in the
 * caller's thread.
 */
#ifndef GUEST_VIRTIO_NET_DRV_H
#define GUEST_VIRTIO_NET_DRV_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "guest/stats.h"
#include "guest/virtqueue.h"
#include "guest/workload.h"
#include "hw/virtio/virtio-net-defs.h"

#define VIRTIO_NET_ETHERTYPE        0x88b5
/* What a back-end announces the guest's MAC with (SEND_RARP). */
#define VIRTIO_NET_ETHERTYPE_RARP   0x8035
#define VIRTIO_NET_ETH_HLEN         14

typedef struct VirtioNetDrvConfig {
    uint8_t mac[6];
    uint16_t mtu;               /* 0: not given */
    uint16_t max_queue_pairs;
} VirtioNetDrvConfig;

typedef struct VirtioNetDrv VirtioNetDrv;

typedef struct VirtioNetResult {
    WorkloadStats stats;        /* one sample per verified packet: round trip */
    uint64_t sent;
    uint64_t received;          /* packets taken from the RX queues */
    uint64_t verified;          /* ... that were a packet we sent, intact */
    uint64_t mismatched;        /* ... that were damaged, unknown or duplicate */
    uint64_t stale;             /* ... from an earlier run (not counted wrong) */
    uint64_t lost;              /* sent, never received */
    uint64_t wrong_queue;       /* verified, but on another pair's RX queue */
    /*
     * ... that were a RARP (ethertype 0x8035) from the device's own MAC:
     * a back-end's announce after SEND_RARP, looped back. Not a packet we
     * sent, not a mismatch.
     */
    uint64_t announce_frames;
    /*
     * Notifications and sleeps of the run, the system calls of the data
     * path: kicks sent (eventfd writes; EVENT_IDX or NO_NOTIFY spare the
     * others) and waits in poll() on the call eventfds (each followed by
     * a read per queue). Both 0 per packet when polling against a
     * polling back-end.
     */
    uint64_t kicks;
    uint64_t sleeps;
    bool verified_all;          /* every packet sent came back verified */
    char *first_error;          /* first mismatch or failure, or NULL */
    bool migrated;              /* parked and moved to another VMM: ended there */
    bool continued;             /* picked up a run another VMM parked */
    uint64_t ops_before;        /* ... which had verified this many packets */
} VirtioNetResult;

void virtio_net_result_clear(VirtioNetResult *res);

/*
 * nvqs is 2 x queue pairs (a control queue, if any, is the caller's).
 * name ("net0") prefixes every error.
 */
VirtioNetDrv *virtio_net_drv_new(const char *name, GuestMemory *mem,
                                 GuestVirtqueue *vqs, unsigned nvqs,
                                 uint64_t features, const VirtioNetDrvConfig *cfg,
                                 uint64_t buf_gpa, uint64_t buf_size,
                                 GError **errp);
void virtio_net_drv_free(VirtioNetDrv *d);

/*
 * Buffer area size for nqp queue pairs of ring_num entries running wl
 * with the negotiated features and cfg (RX buffers of every pair, TX
 * slots and the received bitmaps).
 */
uint64_t virtio_net_drv_area_size(unsigned nqp, unsigned ring_num, uint64_t features,
                                  const VirtioNetDrvConfig *cfg, const NetWorkload *wl);

/*
 * Sends wl->count packets on each queue pair used (sizes in turn), at
 * most wl->window outstanding per pair, verifies every packet received,
 * and after the last one waits up to wl->drain_ms for stragglers.
 * Returns true when every packet sent came back verified; otherwise
 * false with errp naming the first problem (a mismatch, or how many were
 * lost); res is filled in either way.
 */
bool virtio_net_drv_run(VirtioNetDrv *d, const NetWorkload *wl,
                        const WorkloadCtl *ctl, VirtioNetResult *res,
                        GError **errp);

/*
 * Live migration: as for blk (include/guest/virtio-blk-drv.h). A run
 * parked through ctl->pause/park leaves a record in the state page (the
 * sent counts and received bitmaps are there already); attach builds a
 * driver on that area without posting or resetting anything, checking
 * every value against the area's layout; continue goes on with the same
 * workload: packets that arrived while parked wait in the used rings and
 * are taken then, and every packet sent before the switchover must still
 * come back.
 */
VirtioNetDrv *virtio_net_drv_attach(const char *name, GuestMemory *mem,
                                    GuestVirtqueue *vqs, unsigned nvqs,
                                    uint64_t features, const VirtioNetDrvConfig *cfg,
                                    uint64_t buf_gpa, uint64_t buf_size, GError **errp);
bool virtio_net_drv_continue(VirtioNetDrv *d, const NetWorkload *wl,
                             const WorkloadCtl *ctl, VirtioNetResult *res,
                             GError **errp);

#endif
