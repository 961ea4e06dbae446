/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Workload option strings; the syntax is in include/guest/workload.h.
 * They come from the command line, so every value is range-checked and
 * every error names the device, the key and the value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guest/workload.h"

G_DEFINE_QUARK(guest-error-quark, guest_error)

void blk_workload_init(BlkWorkload *wl)
{
    memset(wl, 0, sizeof(*wl));
    wl->rw = BLK_RW_RANDRW;
    wl->bs = 4096;
    wl->iodepth = BLK_DEFAULT_IODEPTH;
    wl->verify = true;
    wl->rwmixread = 50;
    wl->seed = 1;
    wl->flush = true;
    wl->wce = -1;
}

void net_workload_init(NetWorkload *wl)
{
    memset(wl, 0, sizeof(*wl));
    wl->count = 1000;
    wl->nsizes = 3;
    wl->sizes[0] = 64;
    wl->sizes[1] = 512;
    wl->sizes[2] = 1518;
    wl->window = 64;
    wl->rxbuf = 2048;
    wl->drain_ms = 1000;
    wl->seed = 1;
    wl->verify = NET_VERIFY_FULL;
    wl->poll = NET_POLL_OFF;
    wl->burst = NET_DEFAULT_BURST;
}

bool workload_split(const char *arg, char **devid, char **opts, GError **errp)
{
    const char *colon = strchr(arg, ':');
    size_t n = colon ? (size_t)(colon - arg) : strlen(arg);

    if (n == 0) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "-workload '%s': expected DEVID:KEY=VALUE,...", arg);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!g_ascii_isalnum(arg[i]) && arg[i] != '-' && arg[i] != '_' && arg[i] != '.') {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "-workload '%s': device id '%.*s' has a '%c'",
                        arg, (int)n, arg, arg[i]);
            return false;
        }
    }
    *devid = g_strndup(arg, n);
    *opts = g_strdup(colon ? colon + 1 : "");
    return true;
}

/* ---- value parsers: all reject trailing junk, signs and overflow ---- */

static bool parse_u64(const char *name, const char *key, const char *val,
                      uint64_t *out, GError **errp)
{
    char *end;
    uint64_t v;

    errno = 0;
    if (!g_ascii_isdigit(val[0])) {
        goto bad;
    }
    v = g_ascii_strtoull(val, &end, 10);
    if (errno || *end) {
        goto bad;
    }
    *out = v;
    return true;
bad:
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                "%s: %s: '%s' is not a number", name, key, val);
    return false;
}

static bool parse_size(const char *name, const char *key, const char *val,
                       uint64_t *out, GError **errp)
{
    char *end;
    uint64_t v, mult = 1;

    errno = 0;
    if (!g_ascii_isdigit(val[0])) {
        goto bad;
    }
    v = g_ascii_strtoull(val, &end, 10);
    if (errno) {
        goto bad;
    }
    switch (g_ascii_tolower(*end)) {
    case 'k': mult = 1ull << 10; end++; break;
    case 'm': mult = 1ull << 20; end++; break;
    case 'g': mult = 1ull << 30; end++; break;
    case 't': mult = 1ull << 40; end++; break;
    default: break;
    }
    /* "4k", "4kb", "4KiB" and "512b" all mean what they say. */
    if (mult > 1 && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'b' || end[1] == 'B')) {
        end += 2;
    } else if (end[0] == 'b' || end[0] == 'B') {
        end++;
    }
    if (*end || (v && mult > UINT64_MAX / v)) {
        goto bad;
    }
    *out = v * mult;
    return true;
bad:
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                "%s: %s: '%s' is not a size (like 4096, 4k, 1M, 2G)", name, key, val);
    return false;
}

/* Milliseconds; a bare number is seconds, like fio's runtime. */
static bool parse_time_ms(const char *name, const char *key, const char *val,
                          uint64_t *out, GError **errp)
{
    char *end;
    uint64_t v, mult;

    errno = 0;
    if (!g_ascii_isdigit(val[0])) {
        goto bad;
    }
    v = g_ascii_strtoull(val, &end, 10);
    if (errno) {
        goto bad;
    }
    if (!*end || !strcmp(end, "s")) {
        mult = 1000;
    } else if (!strcmp(end, "ms")) {
        mult = 1;
    } else if (!strcmp(end, "m")) {
        mult = 60000;
    } else {
        goto bad;
    }
    if (v > UINT64_MAX / mult) {
        goto bad;
    }
    *out = v * mult;
    return true;
bad:
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                "%s: %s: '%s' is not a time (like 10, 10s, 500ms, 2m)", name, key, val);
    return false;
}

static bool parse_bool(const char *name, const char *key, const char *val,
                       bool *out, GError **errp)
{
    static const char *const yes[] = { "on", "true", "yes", "1" };
    static const char *const no[] = { "off", "false", "no", "0" };

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (!g_ascii_strcasecmp(val, yes[i])) {
            *out = true;
            return true;
        }
        if (!g_ascii_strcasecmp(val, no[i])) {
            *out = false;
            return true;
        }
    }
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                "%s: %s: '%s' is not on/off", name, key, val);
    return false;
}

/*
 * One of names[n] (NULL entries are not choices); the error lists them:
 * "net0: poll: 'busy' is not on, off or adaptive".
 */
static bool parse_choice(const char *name, const char *key, const char *val,
                         const char *const *names, size_t n, unsigned *out,
                         GError **errp)
{
    g_autoptr(GString) list = g_string_new(NULL);
    size_t valid = 0, seen = 0;

    for (size_t i = 0; i < n; i++) {
        if (names[i] && !strcmp(val, names[i])) {
            *out = (unsigned)i;
            return true;
        }
        valid += names[i] != NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (names[i]) {
            seen++;
            g_string_append_printf(list, "%s%s", seen == 1 ? "" :
                                   seen == valid ? " or " : ", ", names[i]);
        }
    }
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION, "%s: %s: '%s' is not %s",
                name, key, val, list->str);
    return false;
}

/* A number in [lo, hi]. */
static bool parse_range(const char *name, const char *key, const char *val,
                        uint64_t lo, uint64_t hi, uint64_t *out, GError **errp)
{
    if (!parse_u64(name, key, val, out, errp)) {
        return false;
    }
    if (*out < lo || *out > hi) {
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: %s: '%s' is outside [%" PRIu64 ", %" PRIu64 "]",
                    name, key, val, lo, hi);
        return false;
    }
    return true;
}

static const char *const blk_rw_names[] = {
    [BLK_RW_READ] = "read",
    [BLK_RW_WRITE] = "write",
    [BLK_RW_RANDREAD] = "randread",
    [BLK_RW_RANDWRITE] = "randwrite",
    [BLK_RW_RANDRW] = "randrw",
    [BLK_RW_RW] = "rw",
    [BLK_RW_FILL] = "fill",
};

static const char *const blk_poll_names[] = {
    [BLK_POLL_OFF] = "off",
    [BLK_POLL_ON] = "on",
    [BLK_POLL_ADAPTIVE] = "adaptive",
};

const char *blk_workload_poll_name(BlkPollMode p)
{
    return (unsigned)p < G_N_ELEMENTS(blk_poll_names) ? blk_poll_names[p] : "?";
}

/*
 * Calls fn for each "key=value" of opts (empty items are allowed, so a
 * trailing comma is harmless). A key without '=' is an error.
 */
typedef bool (*WorkloadKvFn)(void *wl, const char *name, const char *key,
                             const char *val, GError **errp);

static bool parse_kv(void *wl, const char *name, const char *opts,
                     WorkloadKvFn fn, GError **errp)
{
    g_auto(GStrv) items = g_strsplit(opts ? opts : "", ",", -1);

    for (char **it = items; *it; it++) {
        char *eq;

        if (!**it) {
            continue;
        }
        eq = strchr(*it, '=');
        if (!eq || eq == *it || !eq[1]) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: '%s': expected KEY=VALUE", name, *it);
            return false;
        }
        *eq = '\0';
        if (!fn(wl, name, *it, eq + 1, errp)) {
            return false;
        }
    }
    return true;
}

const char *blk_workload_rw_name(BlkRwMode rw)
{
    return (size_t)rw < G_N_ELEMENTS(blk_rw_names) ? blk_rw_names[rw] : "?";
}

static bool blk_kv(void *opaque, const char *name, const char *key,
                   const char *val, GError **errp)
{
    BlkWorkload *wl = opaque;
    uint64_t v;

    if (!strcmp(key, "rw") || !strcmp(key, "readwrite")) {
        for (size_t i = 0; i < G_N_ELEMENTS(blk_rw_names); i++) {
            if (!strcmp(val, blk_rw_names[i])) {
                wl->rw = (BlkRwMode)i;
                return true;
            }
        }
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: %s: '%s' is not read, write, randread, randwrite, "
                    "randrw, rw or fill", name, key, val);
        return false;
    }
    if (!strcmp(key, "bs") || !strcmp(key, "blocksize")) {
        if (!parse_size(name, key, val, &v, errp)) {
            return false;
        }
        if (v == 0 || v % 512 || v > (4u << 20)) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: %s: '%s' is not a multiple of 512 up to 4M",
                        name, key, val);
            return false;
        }
        wl->bs = (uint32_t)v;
        return true;
    }
    if (!strcmp(key, "iodepth")) {
        if (!parse_range(name, key, val, 1, 32768, &v, errp)) {
            return false;
        }
        wl->iodepth = (unsigned)v;
        return true;
    }
    if (!strcmp(key, "number_ios") || !strcmp(key, "ops")) {
        return parse_u64(name, key, val, &wl->ops, errp);
    }
    if (!strcmp(key, "runtime")) {
        return parse_time_ms(name, key, val, &wl->runtime_ms, errp);
    }
    if (!strcmp(key, "verify")) {
        return parse_bool(name, key, val, &wl->verify, errp);
    }
    if (!strcmp(key, "verify_only")) {
        return parse_bool(name, key, val, &wl->verify_only, errp);
    }
    if (!strcmp(key, "flush")) {
        return parse_bool(name, key, val, &wl->flush, errp);
    }
    if (!strcmp(key, "poll")) {
        for (unsigned i = 0; i < G_N_ELEMENTS(blk_poll_names); i++) {
            if (!strcmp(val, blk_poll_names[i])) {
                wl->poll = (BlkPollMode)i;
                return true;
            }
        }
        g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                    "%s: %s: '%s' is not on, off or adaptive", name, key, val);
        return false;
    }
    if (!strcmp(key, "wce")) {
        if (!parse_range(name, key, val, 0, 1, &v, errp)) {
            return false;
        }
        wl->wce = (int)v;
        return true;
    }
    if (!strcmp(key, "rwmixread")) {
        if (!parse_range(name, key, val, 0, 100, &v, errp)) {
            return false;
        }
        wl->rwmixread = (unsigned)v;
        return true;
    }
    if (!strcmp(key, "rwmixwrite")) {
        if (!parse_range(name, key, val, 0, 100, &v, errp)) {
            return false;
        }
        wl->rwmixread = 100 - (unsigned)v;
        return true;
    }
    if (!strcmp(key, "seed") || !strcmp(key, "randseed")) {
        if (!parse_range(name, key, val, 0, UINT32_MAX, &v, errp)) {
            return false;
        }
        wl->seed = (uint32_t)v;
        return true;
    }
    if (!strcmp(key, "size")) {
        if (!parse_size(name, key, val, &v, errp)) {
            return false;
        }
        if (v % 512) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: %s: '%s' is not a multiple of 512", name, key, val);
            return false;
        }
        wl->size = v;
        return true;
    }
    if (!strcmp(key, "queues") || !strcmp(key, "numjobs")) {
        if (!parse_range(name, key, val, 0, 1024, &v, errp)) {
            return false;
        }
        wl->queues = (unsigned)v;
        return true;
    }
    if (!strcmp(key, "discard") || !strcmp(key, "write_zeroes")) {
        unsigned other = !strcmp(key, "discard") ? wl->write_zeroes_pct : wl->discard_pct;

        if (!parse_range(name, key, val, 0, 100 - other, &v, errp)) {
            return false;
        }
        if (!strcmp(key, "discard")) {
            wl->discard_pct = (unsigned)v;
        } else {
            wl->write_zeroes_pct = (unsigned)v;
        }
        return true;
    }
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                "%s: unknown block workload key '%s' (rw, bs, iodepth, "
                "number_ios, runtime, verify, verify_only, rwmixread, seed, size, "
                "queues, discard, write_zeroes, flush, poll, wce)", name, key);
    return false;
}

static const char *const net_verify_names[] = {
    [NET_VERIFY_FULL] = "full",
    [NET_VERIFY_SAMPLE] = "sample",
    [NET_VERIFY_SEQ] = "seq",
};

static const char *const net_poll_names[] = {
    [NET_POLL_OFF] = "off",
    [NET_POLL_ON] = "on",
    [NET_POLL_ADAPTIVE] = "adaptive",
};

const char *net_workload_verify_name(NetVerifyMode v)
{
    return (size_t)v < G_N_ELEMENTS(net_verify_names) ? net_verify_names[v] : "?";
}

const char *net_workload_poll_name(NetPollMode p)
{
    return (size_t)p < G_N_ELEMENTS(net_poll_names) ? net_poll_names[p] : "?";
}

unsigned net_workload_lat_sample(const NetWorkload *wl)
{
    if (wl->lat_sample) {
        return wl->lat_sample;
    }
    return wl->verify == NET_VERIFY_FULL ? 1 : NET_DEFAULT_LAT_SAMPLE;
}

/*
 * verify=: full, sample or seq; the booleans blk's verify= takes mean full
 * (on) and seq (off): a packet's header is always checked, it is how the
 * packet is counted.
 */
static bool net_verify(NetWorkload *wl, const char *name, const char *key,
                       const char *val, GError **errp)
{
    static const char *const alias[] = { "on", "off" };
    unsigned v;

    for (size_t i = 0; i < G_N_ELEMENTS(alias); i++) {
        if (!g_ascii_strcasecmp(val, alias[i])) {
            wl->verify = i == 0 ? NET_VERIFY_FULL : NET_VERIFY_SEQ;
            return true;
        }
    }
    if (!parse_choice(name, key, val, net_verify_names, G_N_ELEMENTS(net_verify_names),
                      &v, errp)) {
        return false;
    }
    wl->verify = (NetVerifyMode)v;
    return true;
}

static bool net_sizes(NetWorkload *wl, const char *name, const char *key,
                      const char *val, GError **errp)
{
    /* '+' separates because ',' separates keys; ':' is accepted too. */
    g_auto(GStrv) parts = g_strsplit_set(val, "+:", -1);
    unsigned n = 0;

    for (char **p = parts; *p; p++) {
        uint64_t v;

        if (n == NET_WORKLOAD_MAX_SIZES) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: %s: '%s' has more than %d sizes", name, key, val,
                        NET_WORKLOAD_MAX_SIZES);
            return false;
        }
        if (!parse_size(name, key, *p, &v, errp)) {
            return false;
        }
        if (v < NET_FRAME_MIN || v > NET_FRAME_MAX) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: %s: '%s' is outside [%d, %d] (frame bytes without "
                        "the virtio-net header)", name, key, *p,
                        NET_FRAME_MIN, NET_FRAME_MAX);
            return false;
        }
        wl->sizes[n++] = (uint32_t)v;
    }
    wl->nsizes = n;
    return true;
}

static bool net_kv(void *opaque, const char *name, const char *key,
                   const char *val, GError **errp)
{
    NetWorkload *wl = opaque;
    uint64_t v;

    if (!strcmp(key, "count") || !strcmp(key, "packets")) {
        return parse_range(name, key, val, 1, UINT32_MAX, &wl->count, errp);
    }
    if (!strcmp(key, "size") || !strcmp(key, "sizes")) {
        return net_sizes(wl, name, key, val, errp);
    }
    if (!strcmp(key, "window")) {
        if (!parse_range(name, key, val, 1, 32768, &v, errp)) {
            return false;
        }
        wl->window = (unsigned)v;
        wl->window_set = true;
        return true;
    }
    if (!strcmp(key, "queues")) {
        if (!parse_range(name, key, val, 0, 1024, &v, errp)) {
            return false;
        }
        wl->queues = (unsigned)v;
        return true;
    }
    if (!strcmp(key, "rxbuf")) {
        if (!parse_size(name, key, val, &v, errp)) {
            return false;
        }
        if (v < 64 || v > 65536) {
            g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                        "%s: %s: '%s' is outside [64, 64k]", name, key, val);
            return false;
        }
        wl->rxbuf = (uint32_t)v;
        return true;
    }
    if (!strcmp(key, "drain")) {
        return parse_time_ms(name, key, val, &wl->drain_ms, errp);
    }
    if (!strcmp(key, "max-lost")) {
        return parse_range(name, key, val, 0, UINT32_MAX, &wl->max_lost, errp);
    }
    if (!strcmp(key, "runtime")) {
        return parse_time_ms(name, key, val, &wl->runtime_ms, errp);
    }
    if (!strcmp(key, "seed")) {
        if (!parse_range(name, key, val, 0, UINT32_MAX, &v, errp)) {
            return false;
        }
        wl->seed = (uint32_t)v;
        return true;
    }
    if (!strcmp(key, "verify")) {
        return net_verify(wl, name, key, val, errp);
    }
    if (!strcmp(key, "poll")) {
        unsigned m;

        if (!parse_choice(name, key, val, net_poll_names, G_N_ELEMENTS(net_poll_names),
                          &m, errp)) {
            return false;
        }
        wl->poll = (NetPollMode)m;
        return true;
    }
    if (!strcmp(key, "burst")) {
        if (!parse_range(name, key, val, 1, NET_MAX_BURST, &v, errp)) {
            return false;
        }
        wl->burst = (unsigned)v;
        return true;
    }
    if (!strcmp(key, "lat-sample")) {
        if (!parse_range(name, key, val, 1, 1u << 20, &v, errp)) {
            return false;
        }
        wl->lat_sample = (unsigned)v;
        return true;
    }
    g_set_error(errp, GUEST_ERROR, GUEST_ERROR_OPTION,
                "%s: unknown net workload key '%s' (count, size, window, "
                "queues, rxbuf, drain, runtime, seed, max-lost, verify, poll, "
                "burst, lat-sample)", name, key);
    return false;
}

bool blk_workload_parse(BlkWorkload *wl, const char *name, const char *opts,
                        GError **errp)
{
    return parse_kv(wl, name, opts, blk_kv, errp);
}

bool net_workload_parse(NetWorkload *wl, const char *name, const char *opts,
                        GError **errp)
{
    return parse_kv(wl, name, opts, net_kv, errp);
}

char *blk_workload_format(const BlkWorkload *wl)
{
    /* wce only when set: "leave it" has no value that parses back. */
    g_autofree char *wce = wl->wce >= 0 ? g_strdup_printf(",wce=%d", wl->wce)
                                        : g_strdup("");

    return g_strdup_printf("rw=%s,bs=%" PRIu32 ",iodepth=%u,ops=%" PRIu64
                           ",runtime=%" PRIu64 "ms,verify=%s,rwmixread=%u,seed=%" PRIu32
                           ",size=%" PRIu64 ",queues=%u,discard=%u,write_zeroes=%u,flush=%s"
                           ",verify_only=%s,poll=%s%s",
                           blk_rw_names[wl->rw], wl->bs, wl->iodepth, wl->ops,
                           wl->runtime_ms, wl->verify ? "on" : "off", wl->rwmixread,
                           wl->seed, wl->size, wl->queues, wl->discard_pct,
                           wl->write_zeroes_pct, wl->flush ? "on" : "off",
                           wl->verify_only ? "on" : "off",
                           blk_workload_poll_name(wl->poll), wce);
}

char *net_workload_format(const NetWorkload *wl)
{
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "count=%" PRIu64 ",size=", wl->count);
    for (unsigned i = 0; i < wl->nsizes; i++) {
        g_string_append_printf(s, "%s%" PRIu32, i ? "+" : "", wl->sizes[i]);
    }
    g_string_append_printf(s, ",window=%u,queues=%u,rxbuf=%" PRIu32 ",drain=%" PRIu64
                           "ms,runtime=%" PRIu64 "ms,seed=%" PRIu32 ",max-lost=%" PRIu64
                           ",verify=%s,poll=%s,burst=%u", wl->window,
                           wl->queues, wl->rxbuf, wl->drain_ms, wl->runtime_ms, wl->seed,
                           wl->max_lost, net_workload_verify_name(wl->verify),
                           net_workload_poll_name(wl->poll), wl->burst);
    /* lat-sample only when given: "the mode's default" has no value that parses back. */
    if (wl->lat_sample) {
        g_string_append_printf(s, ",lat-sample=%u", wl->lat_sample);
    }
    return g_string_free(s, false);
}
