/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-net loopback: every frame the driver transmits on queue pair k
 * (TX ring 2k + 1) comes back on the same pair's RX ring (2k), behind a
 * fresh 12-byte virtio_net_hdr_v1. With VIRTIO_NET_F_MRG_RXBUF a frame
 * may fill several RX buffers (num_buffers says how many).
 *
 * Jumbo frames (up to 64 KiB here) take as many mergeable RX buffers as
 * they need. After NET_SET_MTU a frame longer than mtu + 18 (ethernet
 * header and one VLAN tag, the guest driver's rule too) is dropped, as a
 * port with that MTU would.
 *
 * Nothing is lost while RX is merely full or not yet started: the TX
 * chain is left on its ring and the pair is pumped again when the RX
 * ring is kicked or enabled. Frames that can never be delivered (bigger
 * than any buffer we accept, malformed) are dropped and counted.
 *
 * Security model: the frames and the RX buffers are guest memory; sizes
 * come from the descriptor chains, which vring.c has bounded.
 */
#include <inttypes.h>
#include <string.h>

#include "hw/virtio/virtio-net-defs.h"
#include "util/vhost-user-error.h"
#include "refbe.h"

/* Largest frame: 64 KiB, as a GSO-less Linux virtio-net never exceeds. */
#define REFBE_NET_MAX_FRAME       65536
/*
 * A frame spread over more RX buffers than this is dropped: a full
 * 64 KiB frame in 256-byte buffers fits.
 */
#define REFBE_NET_MAX_BUFS        257
/* Ethernet header + one VLAN tag on top of an MTU. */
#define REFBE_NET_MTU_OVERHEAD    18u

struct RefBeNet {
    RefBeElem *tx;
    RefBeElem *rx_first;          /* kept: num_buffers is written last */
    RefBeElem *rx;
    uint8_t *pkt;               /* header + frame */
    struct {
        uint16_t head;
        uint32_t len;
    } used[REFBE_NET_MAX_BUFS];
    uint64_t dropped;
    bool warned_small;
    bool warned_big;
    bool warned_mtu;
};

uint64_t refbe_net_features(const RefBeOptions *opts)
{
    return (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
           (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_NET_F_MQ);
}

RefBeNet *refbe_net_new(void)
{
    RefBeNet *net = g_new0(RefBeNet, 1);

    net->tx = g_new(RefBeElem, 1);
    net->rx_first = g_new(RefBeElem, 1);
    net->rx = g_new(RefBeElem, 1);
    net->pkt = g_malloc(sizeof(VirtioNetHdr) + REFBE_NET_MAX_FRAME);
    return net;
}

void refbe_net_free(RefBeNet *net)
{
    if (!net) {
        return;
    }
    g_free(net->tx);
    g_free(net->rx_first);
    g_free(net->rx);
    g_free(net->pkt);
    g_free(net);
}

typedef enum {
    DELIVER_DONE,               /* delivered, or dropped for good */
    DELIVER_NO_ROOM,            /* RX has too few buffers now: retry later */
} DeliverResult;

/* Pops one RX buffer, re-arming the kick once if the ring looks empty. */
static int rx_pop(RefBeDev *dev, RefBeVring *rx, RefBeElem *e)
{
    int r = refbe_vring_pop(dev, rx, e);

    if (r == 0 && refbe_vring_rearm(dev, rx)) {
        r = refbe_vring_pop(dev, rx, e);
    }
    return r;
}

/* Puts header + frame (len bytes in net->pkt) into the RX ring. */
static DeliverResult deliver(RefBeDev *dev, RefBeNet *net, RefBeVring *rx, size_t len)
{
    bool mrg = refbe_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF);
    uint16_t nbufs = 1;
    size_t done;
    int r;

    if (rx->broken) {
        net->dropped++;
        return DELIVER_DONE;
    }
    if (!refbe_vring_ready(rx)) {
        return DELIVER_NO_ROOM;
    }
    r = rx_pop(dev, rx, net->rx_first);
    if (r < 0) {
        net->dropped++;
        return DELIVER_DONE;
    }
    if (r == 0) {
        return DELIVER_NO_ROOM;
    }

    if (!mrg || net->rx_first->in_len >= len) {
        RefBeElem *e = net->rx_first;
        struct iovec *in = e->iov + e->out_num;

        if (e->in_len < len) {
            /* Without MRG_RXBUF the driver owes us buffers for a whole frame. */
            if (!net->warned_small) {
                refbe_log("%s: ring %u: RX buffer of %zu bytes for a %zu-byte "
                        "packet; dropping such packets", dev->name, rx->index,
                        e->in_len, len);
                net->warned_small = true;
            }
            refbe_vring_unpop(rx, 1);
            net->dropped++;
            return DELIVER_DONE;
        }
        ((VirtioNetHdr *)net->pkt)->num_buffers = 1;
        refbe_iov_from_buf(in, e->in_num, 0, net->pkt, len);
        refbe_vring_push(rx, e->head, len);
        return DELIVER_DONE;
    }

    /* Mergeable: fill buffers in ring order until the packet is in. */
    if (net->rx_first->in_len < sizeof(VirtioNetHdr)) {
        if (!net->warned_small) {
            refbe_log("%s: ring %u: first RX buffer of %zu bytes cannot hold the "
                    "header; dropping such packets", dev->name, rx->index,
                    net->rx_first->in_len);
            net->warned_small = true;
        }
        refbe_vring_unpop(rx, 1);
        net->dropped++;
        return DELIVER_DONE;
    }
    done = refbe_iov_from_buf(net->rx_first->iov + net->rx_first->out_num,
                            net->rx_first->in_num, 0, net->pkt, len);
    net->used[0].head = net->rx_first->head;
    net->used[0].len = done;
    while (done < len) {
        RefBeElem *e = net->rx;
        size_t chunk;

        /* More buffers than the ring has would wait for room forever. */
        if (nbufs == REFBE_NET_MAX_BUFS || nbufs == rx->num) {
            refbe_vring_unpop(rx, nbufs);
            net->dropped++;
            return DELIVER_DONE;
        }
        r = rx_pop(dev, rx, e);
        if (r <= 0) {
            /* Give the buffers back: the frame goes in whole or not at all. */
            if (r == 0) {
                refbe_vring_unpop(rx, nbufs);
                return DELIVER_NO_ROOM;
            }
            net->dropped++;
            return DELIVER_DONE;
        }
        chunk = refbe_iov_from_buf(e->iov + e->out_num, e->in_num, 0,
                                 net->pkt + done, len - done);
        net->used[nbufs].head = e->head;
        net->used[nbufs].len = chunk;
        nbufs++;
        done += chunk;
    }
    refbe_iov_from_buf(net->rx_first->iov + net->rx_first->out_num,
                     net->rx_first->in_num, offsetof(VirtioNetHdr, num_buffers),
                     &nbufs, sizeof(nbufs));
    for (unsigned i = 0; i < nbufs; i++) {
        refbe_vring_fill(rx, net->used[i].head, net->used[i].len, i);
    }
    refbe_vring_flush(rx, nbufs);
    return DELIVER_DONE;
}

/* Moves frames from pair's TX to its RX until TX is empty or RX is full. */
static void pump(RefBeDev *dev, unsigned pair)
{
    RefBeNet *net = dev->net;
    RefBeVring *rx = &dev->vrings[2 * pair];
    RefBeVring *tx = &dev->vrings[2 * pair + 1];
    unsigned budget = REFBE_RING_BUDGET;

    for (;;) {
        bool blocked = false;
        int r = 0;

        while (budget && (r = refbe_vring_pop(dev, tx, net->tx)) == 1) {
            budget--;
            RefBeElem *e = net->tx;
            size_t len = e->out_len;

            if (len < sizeof(VirtioNetHdr) || len > sizeof(VirtioNetHdr) + REFBE_NET_MAX_FRAME) {
                if (!net->warned_big) {
                    refbe_log("%s: ring %u: TX chain of %zu bytes is not a header "
                            "plus a frame of at most %d bytes; dropped",
                            dev->name, tx->index, len, REFBE_NET_MAX_FRAME);
                    net->warned_big = true;
                }
                net->dropped++;
                refbe_vring_push(tx, e->head, 0);
                continue;
            }
            if (dev->net_mtu &&
                len - sizeof(VirtioNetHdr) > dev->net_mtu + REFBE_NET_MTU_OVERHEAD) {
                if (!net->warned_mtu) {
                    refbe_log("%s: ring %u: %zu-byte frame over the MTU %u + %u; "
                            "dropping such frames", dev->name, tx->index,
                            len - sizeof(VirtioNetHdr), dev->net_mtu,
                            REFBE_NET_MTU_OVERHEAD);
                    net->warned_mtu = true;
                }
                net->dropped++;
                refbe_vring_push(tx, e->head, 0);
                continue;
            }
            refbe_iov_to_buf(e->iov, e->out_num, 0, net->pkt, len);
            /* A fresh header: no offloads are negotiated, so all zero. */
            memset(net->pkt, 0, sizeof(VirtioNetHdr));
            if (deliver(dev, net, rx, len) == DELIVER_NO_ROOM) {
                refbe_vring_unpop(tx, 1);
                blocked = true;
                break;
            }
            refbe_vring_push(tx, e->head, 0);
        }
        if (!budget && !blocked) {
            tx->pending = true;
            break;
        }
        /* Blocked: the RX kick (re-armed in rx_pop) resumes the pair. */
        if (r < 0 || blocked || !refbe_vring_rearm(dev, tx)) {
            break;
        }
    }
    refbe_vring_notify(dev, rx);
    refbe_vring_notify(dev, tx);
}

bool refbe_net_set_mtu(RefBeDev *dev, uint64_t mtu, GError **errp)
{
    /* The range virtio-net's config mtu and QEMU's host_mtu allow. */
    if (mtu < 68 || mtu > 65535) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "%s: NET_SET_MTU: %" PRIu64 " is outside [68, 65535]",
                    dev->name, mtu);
        return false;
    }
    dev->net_mtu = (uint16_t)mtu;
    dev->net->warned_mtu = false;
    refbe_log("%s: MTU %u: frames of up to %u bytes", dev->name, dev->net_mtu,
            dev->net_mtu + REFBE_NET_MTU_OVERHEAD);
    return true;
}

void refbe_net_kick(RefBeDev *dev, RefBeVring *vq)
{
    pump(dev, vq->index / 2);
}
