/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --x-scribble: a hostile back-end for tests. Every vhost-user back-end
 * maps all of guest RAM read/write, and the reference VMM's in-process
 * guest driver keeps its bookkeeping there (ring state, request tokens,
 * descriptor counts, the block and net drivers' state pages). This writes
 * over them while a workload runs, so a test can show the VMM survives
 * whatever a back-end writes: the driver must fail the device, never
 * crash the process.
 *
 * Targeted (field=NAME): one field, on every ring of ours, set to a value
 * that indexes far out of anything, at DRIVER_OK and after every kick (so
 * the driver cannot overwrite it before it reads it back). Random
 * (random,seed=N): every Nth kick, a value of 1, 2, 4 or 8 bytes at a
 * random place of the driver's state or of our rings' used rings and
 * descriptor links. It never writes what the back-end itself reads back
 * as a chain (only .next of single descriptors): the point is the
 * driver, not this back-end.
 *
 * The driver's state is found by its magic numbers (guest-ram-state.h,
 * guest/virtqueue.h), a ring's state only when its desc_gpa is one of our
 * rings', and kept as GPAs (the memory table may change under us).
 */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest/guest-ram-state.h"
#include "guest/virtqueue.h"
#include "refbe.h"

typedef enum ScribbleWhere {
    SCR_VQ,             /* GuestVqState header: offset, width */
    SCR_VQ_TOKEN,       /* every token[] */
    SCR_VQ_NDESC,       /* every ndesc[] */
    SCR_DESC_NEXT,      /* every descriptor's .next */
    SCR_USED_ID,        /* every used ring entry's id */
    SCR_USED_LEN,       /* ... len */
    SCR_USED_IDX,       /* used->idx moved on by value */
    SCR_BLK,            /* BlkDrvState header: offset, width */
    SCR_NET,            /* NetDrvState header: offset, width */
    SCR_NET_SENT,       /* every sent[] */
} ScribbleWhere;

typedef struct ScribbleField {
    const char *name;
    ScribbleWhere where;
    size_t offset;
    unsigned width;
    uint64_t value;
} ScribbleField;

#define VQ_FIELD(f, v) \
    { "vq." #f, SCR_VQ, offsetof(GuestVqState, f), sizeof(((GuestVqState *)0)->f), v }
#define BLK_FIELD(f, v) \
    { "blk." #f, SCR_BLK, offsetof(BlkDrvState, f), sizeof(((BlkDrvState *)0)->f), v }
#define NET_FIELD(f, v) \
    { "net." #f, SCR_NET, offsetof(NetDrvState, f), sizeof(((NetDrvState *)0)->f), v }

static const ScribbleField scribble_fields[] = {
    VQ_FIELD(num, 0x8000),
    VQ_FIELD(free_head, 0xffff),
    VQ_FIELD(num_free, 0xffff),
    VQ_FIELD(avail_idx, 0x7777),
    VQ_FIELD(last_used_idx, 0x7777),
    VQ_FIELD(flags, 0xffff),
    { "vq.token", SCR_VQ_TOKEN, 0, 8, UINT64_MAX },
    { "vq.ndesc", SCR_VQ_NDESC, 0, 2, 0xffff },
    { "desc.next", SCR_DESC_NEXT, 0, 2, 0xffff },
    { "used.id", SCR_USED_ID, 0, 4, 0xfffffff0u },
    { "used.len", SCR_USED_LEN, 0, 4, UINT32_MAX },
    { "used.idx", SCR_USED_IDX, 0, 2, 0x4000 },
    BLK_FIELD(seed, 0x5eed),
    BLK_FIELD(tracked, 1ull << 62),
    BLK_FIELD(pool_gpa, 1ull << 62),
    BLK_FIELD(pool_size, 1ull << 62),
    BLK_FIELD(gen_gpa, 1ull << 62),
    BLK_FIELD(inflight_gpa, 1ull << 62),
    NET_FIELD(run, 0x7777),
    NET_FIELD(rxbuf, UINT32_MAX),
    NET_FIELD(nqp, 0xffff),
    NET_FIELD(rx_gpa, 1ull << 62),
    NET_FIELD(work_gpa, 1ull << 62),
    { "net.sent", SCR_NET_SENT, 0, 8, 1ull << 62 },
};

struct RefBeScribble {
    const ScribbleField *field;     /* NULL: random */
    uint64_t rng;
    unsigned every;
    uint64_t calls;
    uint64_t writes;
    uint64_t *vq_gpa;               /* per ring: its GuestVqState, 0 unknown */
    uint64_t drv_gpa;               /* BlkDrvState / NetDrvState, 0 unknown */
    /*
     * A search that found nothing is not repeated before this time
     * (monotonic us): it reads all of guest RAM, and it runs on the
     * request path (a ring's first kick is processed at SET_VRING_KICK),
     * so repeating it per ring and per call kept a reply past the VMM's
     * timeout on a loaded machine before the driver had written its state.
     */
    gint64 vq_retry_at;
    gint64 drv_retry_at;
    bool logged;
};

/* How long a search that found nothing is not repeated. */
#define SCRIBBLE_RETRY_US (20 * 1000)

const char *refbe_scribble_fields(void)
{
    static char names[512];

    if (!names[0]) {
        for (size_t i = 0; i < G_N_ELEMENTS(scribble_fields); i++) {
            g_strlcat(names, i ? "|" : "", sizeof(names));
            g_strlcat(names, scribble_fields[i].name, sizeof(names));
        }
    }
    return names;
}

RefBeScribble *refbe_scribble_parse(const char *arg)
{
    g_auto(GStrv) parts = g_strsplit(arg, ",", -1);
    RefBeScribble *s = g_new0(RefBeScribble, 1);
    bool mode = false;

    s->rng = 1;
    s->every = 8;
    for (char **p = parts; *p; p++) {
        const char *v = strchr(*p, '=');
        uint64_t n = 0;
        char *end = NULL;

        if (!strcmp(*p, "random")) {
            mode = true;
            continue;
        }
        if (!v) {
            goto bad;
        }
        v++;
        if (g_str_has_prefix(*p, "field=")) {
            for (size_t i = 0; i < G_N_ELEMENTS(scribble_fields); i++) {
                if (!strcmp(v, scribble_fields[i].name)) {
                    s->field = &scribble_fields[i];
                }
            }
            if (!s->field) {
                goto bad;
            }
            mode = true;
            continue;
        }
        n = g_ascii_strtoull(v, &end, 10);
        if (!*v || *end) {
            goto bad;
        }
        if (g_str_has_prefix(*p, "seed=")) {
            s->rng = n ? n : 1;
        } else if (g_str_has_prefix(*p, "every=") && n >= 1 && n <= 1000000) {
            s->every = (unsigned)n;
        } else {
            goto bad;
        }
    }
    if (mode) {
        return s;
    }
bad:
    g_free(s);
    return NULL;
}

void refbe_scribble_free(RefBeScribble *s)
{
    if (s) {
        g_free(s->vq_gpa);
        g_free(s);
    }
}

/* GuestVqState and its token[] and ndesc[] (we do not link the driver). */
static uint64_t vq_state_size(unsigned num)
{
    return sizeof(GuestVqState) + 10ull * num;
}

static uint64_t scr_rand(RefBeScribble *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static void put(void *p, unsigned width, uint64_t v)
{
    /* Little-endian, like every vhost-user peer: the low bytes. */
    memcpy(p, &v, width);
}

/*
 * Calls fn on each 4-byte-aligned place of guest RAM holding magic. Only
 * pages resident in the RAM file are read (mincore): the driver's state
 * has been written, so it is resident, and reading the holes would fault
 * in all of guest RAM (2.5 s for 128M on a loaded machine, on the request
 * path of SET_VRING_KICK).
 */
static uint64_t find_magic(RefBeDev *dev, uint32_t magic,
                           bool (*fits)(RefBeDev *dev, const uint8_t *at, void *opaque),
                           void *opaque)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);

    for (unsigned i = 0; i < dev->nregions; i++) {
        const RefBeRegion *r = &dev->regions[i];
        uintptr_t base = (uintptr_t)r->host & ~(pg - 1);
        size_t span = (uintptr_t)r->host + r->size - base;
        g_autofree unsigned char *resident = g_malloc((span + pg - 1) / pg);
        bool all = mincore((void *)base, span, resident) != 0;

        for (uint64_t off = 0; off + 64 <= r->size; off += 4) {
            uintptr_t at = (uintptr_t)r->host + off;
            uint32_t m;

            if (!all && !(resident[(at - base) / pg] & 1)) {
                off = ((at - base) / pg + 1) * pg + base - (uintptr_t)r->host - 4;
                continue;
            }
            memcpy(&m, r->host + off, 4);
            if (m == magic && fits(dev, r->host + off, opaque)) {
                return r->gpa + off;
            }
        }
    }
    return 0;
}

static bool vq_state_fits(RefBeDev *dev, const uint8_t *at, void *opaque)
{
    const RefBeVring *vq = opaque;
    GuestVqState st;

    memcpy(&st, at, sizeof(st));
    return st.num == vq->num &&
           refbe_gpa_to_host(dev, st.desc_gpa, 16ull * vq->num) == (void *)vq->desc;
}

static bool any_fits(RefBeDev *dev, const uint8_t *at, void *opaque)
{
    return true;
}

/* Where ring i's GuestVqState is now, or NULL; looked for once. */
static GuestVqState *vq_state(RefBeDev *dev, RefBeScribble *s, unsigned i)
{
    RefBeVring *vq = &dev->vrings[i];
    GuestVqState *st;

    if (!vq->desc || !vq->num) {
        return NULL;
    }
    if (s->vq_gpa[i]) {
        st = refbe_gpa_to_host(dev, s->vq_gpa[i], vq_state_size(vq->num));
        if (st && st->magic == GUEST_VQ_STATE_MAGIC) {
            return st;
        }
    }
    if (g_get_monotonic_time() < s->vq_retry_at) {
        return NULL;
    }
    s->vq_gpa[i] = find_magic(dev, GUEST_VQ_STATE_MAGIC, vq_state_fits, vq);
    if (!s->vq_gpa[i]) {
        s->vq_retry_at = g_get_monotonic_time() + SCRIBBLE_RETRY_US;
    }
    return s->vq_gpa[i] ?
           refbe_gpa_to_host(dev, s->vq_gpa[i], vq_state_size(vq->num)) : NULL;
}

static uint8_t *drv_state(RefBeDev *dev, RefBeScribble *s)
{
    uint32_t magic = dev->opts->type == REFBE_DEV_BLK ? BLK_STATE_MAGIC : NET_STATE_MAGIC;
    uint32_t *p;

    if (s->drv_gpa) {
        p = refbe_gpa_to_host(dev, s->drv_gpa, 4096);
        if (p && *p == magic) {
            return (uint8_t *)p;
        }
    }
    if (g_get_monotonic_time() < s->drv_retry_at) {
        return NULL;
    }
    s->drv_gpa = find_magic(dev, magic, any_fits, NULL);
    if (!s->drv_gpa) {
        s->drv_retry_at = g_get_monotonic_time() + SCRIBBLE_RETRY_US;
    }
    return s->drv_gpa ? refbe_gpa_to_host(dev, s->drv_gpa, 4096) : NULL;
}

/* f at ring i (ring fields) or at the driver state; false: not there yet. */
static bool write_field(RefBeDev *dev, RefBeScribble *s, const ScribbleField *f,
                        unsigned i, uint64_t value)
{
    RefBeVring *vq = &dev->vrings[i];
    GuestVqState *st = NULL;
    uint8_t *drv;
    uint16_t idx;

    switch (f->where) {
    case SCR_VQ:
    case SCR_VQ_TOKEN:
    case SCR_VQ_NDESC:
        st = vq_state(dev, s, i);
        if (!st) {
            return false;
        }
        if (f->where == SCR_VQ) {
            put((uint8_t *)st + f->offset, f->width, value);
        }
        for (unsigned k = 0; f->where != SCR_VQ && k < vq->num; k++) {
            uint8_t *arr = (uint8_t *)(st + 1) +
                           (f->where == SCR_VQ_NDESC ? 8ull * vq->num : 0);
            put(arr + (size_t)k * f->width, f->width, value);
        }
        return true;
    case SCR_DESC_NEXT:
    case SCR_USED_ID:
    case SCR_USED_LEN:
        if (!vq->desc || !vq->used) {
            return false;
        }
        for (unsigned k = 0; k < vq->num; k++) {
            if (f->where == SCR_DESC_NEXT) {
                put(&vq->desc[k].next, 2, value);
            } else {
                put(f->where == SCR_USED_ID ? (void *)&vq->used->ring[k].id :
                    (void *)&vq->used->ring[k].len, 4, value);
            }
        }
        return true;
    case SCR_USED_IDX:
        if (!vq->used) {
            return false;
        }
        memcpy(&idx, &vq->used->idx, 2);
        idx += (uint16_t)value;
        memcpy(&vq->used->idx, &idx, 2);
        return true;
    case SCR_BLK:
    case SCR_NET:
    case SCR_NET_SENT:
        if ((f->where == SCR_BLK) != (dev->opts->type == REFBE_DEV_BLK) ||
            !(drv = drv_state(dev, s))) {
            return false;
        }
        if (f->where == SCR_NET_SENT) {
            for (unsigned k = 0; k < NET_MAX_QP; k++) {
                put(drv + offsetof(NetDrvState, sent) + 8ull * k, 8, value);
            }
        } else {
            put(drv + f->offset, f->width, value);
        }
        return true;
    }
    return false;
}

/* One random write somewhere of ours; false when nothing is there yet. */
static bool write_random(RefBeDev *dev, RefBeScribble *s)
{
    const ScribbleField *f = &scribble_fields[scr_rand(s) % G_N_ELEMENTS(scribble_fields)];
    unsigned i = (unsigned)(scr_rand(s) % dev->nvrings);
    RefBeVring *vq = &dev->vrings[i];
    uint64_t v = scr_rand(s);
    static const unsigned widths[] = { 1, 2, 4, 8 };
    GuestVqState *st;
    uint8_t *drv;

    /* Half the time a value that is merely a little off. */
    if (scr_rand(s) & 1) {
        v = scr_rand(s) & 0x1ff;
    }
    switch (scr_rand(s) % 4) {
    case 0:             /* anywhere in the ring's state block */
        st = vq_state(dev, s, i);
        if (st) {
            uint64_t size = vq_state_size(vq->num);
            unsigned w = widths[scr_rand(s) % 4];
            uint64_t off = scr_rand(s) % (size - w + 1);
            /* Not the magic: that is how the next write finds it. */
            off = MAX(off, (uint64_t)4);
            put((uint8_t *)st + off, w, v);
            return true;
        }
        return false;
    case 1:             /* anywhere in the driver's state header */
        drv = drv_state(dev, s);
        if (drv) {
            size_t size = dev->opts->type == REFBE_DEV_BLK ? offsetof(BlkDrvState, run) :
                          offsetof(NetDrvState, rec);
            unsigned w = widths[scr_rand(s) % 4];
            size_t off = MAX((size_t)(scr_rand(s) % (size - w + 1)), (size_t)4);
            put(drv + off, w, v);
            return true;
        }
        return false;
    default:            /* a named field, with a random value */
        return write_field(dev, s, f, i, v);
    }
}

void refbe_scribble_used_elem(RefBeScribble *s, uint32_t *id, uint32_t *len)
{
    if (!s || !s->field) {
        return;
    }
    if (s->field->where == SCR_USED_ID) {
        *id = (uint32_t)s->field->value;
        s->writes++;
    } else if (s->field->where == SCR_USED_LEN) {
        *len = (uint32_t)s->field->value;
        s->writes++;
    }
}

void refbe_scribble(RefBeDev *dev, RefBeScribble *s)
{
    bool wrote = false;

    if (!s || !dev->nvrings || !dev->nregions) {
        return;
    }
    if (!s->vq_gpa) {
        s->vq_gpa = g_new0(uint64_t, dev->nvrings);
    }
    s->calls++;
    if (s->field) {
        for (unsigned i = 0; i < dev->nvrings; i++) {
            wrote |= write_field(dev, s, s->field, i, s->field->value);
        }
    } else if (s->calls % s->every == 0) {
        wrote = write_random(dev, s);
    }
    s->writes += wrote;
    if (wrote && !s->logged) {
        refbe_log("%s: scribble: writing %s over the driver's guest RAM",
                  dev->name, s->field ? s->field->name : "at random");
        s->logged = true;
    }
}
