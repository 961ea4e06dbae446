/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream's header and section framing.
 *
 * Untrusted input: the stream comes from another host. Every length and
 * count read here is bounded before it sizes an allocation or a read, and
 * a bad one fails the load with an error naming the section.
 */
#include <inttypes.h>
#include <string.h>

#include "migration/format.h"
#include "util/vhost-user-error.h"

const char *mig_section_name(uint16_t id)
{
    switch (id) {
    case MIG_SECTION_END:
        return "end";
    case MIG_SECTION_RAM_SETUP:
        return "ram-setup";
    case MIG_SECTION_RAM_PAGES:
        return "ram-pages";
    case MIG_SECTION_DEVICE:
        return "device";
    case MIG_SECTION_POSTCOPY_ADVISE:
        return "postcopy-advise";
    case MIG_SECTION_POSTCOPY_DISCARD:
        return "postcopy-discard";
    case MIG_SECTION_POSTCOPY_LISTEN:
        return "postcopy-listen";
    case MIG_SECTION_POSTCOPY_RUN:
        return "postcopy-run";
    case MIG_SECTION_POSTCOPY_RESUME:
        return "postcopy-resume";
    case MIG_SECTION_POSTCOPY_PREEMPT:
        return "postcopy-preempt";
    }
    return NULL;
}

static uint32_t crc32c_table[256];

static void mig_crc32c_init(void)
{
    static gsize done;

    if (g_once_init_enter(&done)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;

            for (int k = 0; k < 8; k++) {
                /* 0x82f63b78: the Castagnoli polynomial, bit-reversed. */
                c = (c >> 1) ^ (c & 1 ? 0x82f63b78u : 0);
            }
            crc32c_table[i] = c;
        }
        g_once_init_leave(&done, 1);
    }
}

uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    mig_crc32c_init();
    crc = ~crc;
    while (len--) {
        crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

bool mig_save_header(MigStream *s, GError **errp)
{
    return mig_stream_write_be32(s, MIG_STREAM_MAGIC, errp) &&
           mig_stream_write_be16(s, MIG_STREAM_VERSION_MAJOR, errp) &&
           mig_stream_write_be16(s, MIG_STREAM_VERSION_MINOR, errp);
}

bool mig_load_header(MigStream *s, GError **errp)
{
    uint32_t magic;
    uint16_t major, minor;

    mig_stream_begin_section(s, "header");
    if (!mig_stream_read_be32(s, &magic, errp) ||
        !mig_stream_read_be16(s, &major, errp) ||
        !mig_stream_read_be16(s, &minor, errp)) {
        return false;
    }
    if (magic != MIG_STREAM_MAGIC) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: not a migration stream (magic 0x%08x, "
                    "expected 0x%08x)", magic, MIG_STREAM_MAGIC);
        return false;
    }
    /* A newer minor version only adds optional sections: readable. */
    if (major != MIG_STREAM_VERSION_MAJOR) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: version %u.%u not supported (this "
                    "destination reads version %u.x, up to %u.%u)", major, minor,
                    MIG_STREAM_VERSION_MAJOR, MIG_STREAM_VERSION_MAJOR,
                    MIG_STREAM_VERSION_MINOR);
        return false;
    }
    return true;
}

bool mig_save_section_header(MigStream *s, MigSectionId id, uint16_t flags,
                             uint32_t length, GError **errp)
{
    g_assert(length <= MIG_SECTION_MAX_LEN);
    return mig_stream_write_be16(s, id, errp) &&
           mig_stream_write_be16(s, flags, errp) &&
           mig_stream_write_be32(s, length, errp);
}

bool mig_load_section_header(MigStream *s, MigSectionHeader *h, GError **errp)
{
    const char *name;

    mig_stream_begin_section(s, "section header");
    if (!mig_stream_read_be16(s, &h->id, errp) ||
        !mig_stream_read_be16(s, &h->flags, errp) ||
        !mig_stream_read_be32(s, &h->length, errp)) {
        return false;
    }
    name = mig_section_name(h->id);
    if (h->flags & ~MIG_SECTION_F_KNOWN) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section %u (%s): unknown flags 0x%x",
                    h->id, name ? name : "unknown", h->flags);
        return false;
    }
    if (h->length > MIG_SECTION_MAX_LEN) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "migration stream: section %u (%s): length %" PRIu32
                    " exceeds the limit of %u bytes", h->id,
                    name ? name : "unknown", h->length, MIG_SECTION_MAX_LEN);
        return false;
    }
    mig_stream_begin_section(s, name ? name : "unknown");
    return true;
}

static bool mig_device_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > MIG_DEVICE_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isgraph(name[i])) {
            return false;
        }
    }
    return true;
}

bool mig_save_device(MigStream *s, const char *name, const void *data,
                     size_t len, GError **errp)
{
    size_t name_len = strlen(name);
    uint64_t length = 1 + name_len + 4 + (uint64_t)len;
    uint32_t crc;

    if (!mig_device_name_ok(name, name_len)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration stream: device name '%s' is not 1 to %d "
                    "printable characters", name, MIG_DEVICE_NAME_MAX);
        return false;
    }
    if (length > MIG_SECTION_MAX_LEN) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_OVERSIZED,
                    "migration stream: device '%s': state of %zu bytes exceeds "
                    "the section limit of %u bytes", name, len, MIG_SECTION_MAX_LEN);
        return false;
    }
    crc = mig_crc32c(0, name, name_len);
    crc = mig_crc32c(crc, data, len);
    return mig_save_section_header(s, MIG_SECTION_DEVICE, 0, length, errp) &&
           mig_stream_write_u8(s, name_len, errp) &&
           mig_stream_write(s, name, name_len, errp) &&
           mig_stream_write_be32(s, crc, errp) &&
           mig_stream_write(s, data, len, errp);
}

bool mig_load_device(MigStream *s, uint32_t length, char **name,
                     void **data, size_t *len, GError **errp)
{
    g_autofree uint8_t *buf = NULL;
    g_autofree char *shown = NULL;
    uint32_t want, got;
    size_t name_len;

    /* length <= MIG_SECTION_MAX_LEN: mig_load_section_header checked it. */
    buf = g_malloc(length ? length : 1);
    if (!mig_stream_read(s, buf, length, errp)) {
        return false;
    }
    name_len = length ? buf[0] : 0;
    if (length < 1 + name_len + 4 || !mig_device_name_ok((char *)buf + 1, name_len)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: device section of %" PRIu32 " bytes: "
                    "bad instance name (length %zu)", length, name_len);
        return false;
    }
    shown = g_strndup((char *)buf + 1, name_len);
    memcpy(&want, buf + 1 + name_len, 4);
    want = GUINT32_FROM_BE(want);
    got = mig_crc32c(0, buf + 1, name_len);
    got = mig_crc32c(got, buf + 1 + name_len + 4, length - 1 - name_len - 4);
    if (got != want) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: device section '%s': checksum mismatch "
                    "(stream says 0x%08x, data gives 0x%08x)", shown, want, got);
        return false;
    }
    *len = length - 1 - name_len - 4;
    memmove(buf, buf + 1 + name_len + 4, *len);
    *data = g_steal_pointer(&buf);
    *name = g_steal_pointer(&shown);
    return true;
}

bool mig_save_end(MigStream *s, GError **errp)
{
    return mig_save_section_header(s, MIG_SECTION_END, 0, 0, errp) &&
           mig_stream_flush(s, errp);
}

bool mig_save_postcopy_section(MigStream *s, MigSectionId id, GError **errp)
{
    g_assert(id == MIG_SECTION_POSTCOPY_ADVISE || id == MIG_SECTION_POSTCOPY_LISTEN ||
             id == MIG_SECTION_POSTCOPY_RUN || id == MIG_SECTION_POSTCOPY_RESUME ||
             id == MIG_SECTION_POSTCOPY_PREEMPT);
    return mig_save_section_header(s, id, 0, 0, errp) && mig_stream_flush(s, errp);
}

bool mig_save_postcopy_discard(MigStream *s, const uint64_t *ranges, unsigned n,
                               GError **errp)
{
    g_assert(n >= 1 && n <= MIG_DISCARD_MAX_RANGES);
    if (!mig_save_section_header(s, MIG_SECTION_POSTCOPY_DISCARD, 0, n * 16u, errp)) {
        return false;
    }
    for (unsigned i = 0; i < 2 * n; i++) {
        if (!mig_stream_write_be64(s, ranges[i], errp)) {
            return false;
        }
    }
    return true;
}

bool mig_load_postcopy_discard(MigStream *s, uint32_t length, MigDiscardFn fn,
                               void *opaque, GError **errp)
{
    g_autofree uint64_t *r = NULL;
    unsigned n = length / 16;

    if (length % 16 || n == 0 || n > MIG_DISCARD_MAX_RANGES) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section 'postcopy-discard' of %" PRIu32 " bytes: "
                    "not 1 to %u ranges of 16 bytes", length, MIG_DISCARD_MAX_RANGES);
        return false;
    }
    r = g_new(uint64_t, 2 * n);
    for (unsigned i = 0; i < 2 * n; i++) {
        if (!mig_stream_read_be64(s, &r[i], errp)) {
            return false;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t gpa = r[2 * i], len = r[2 * i + 1];

        if (!len || (gpa | len) % 4096 || gpa + len < gpa) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "migration stream: section 'postcopy-discard': range %u (gpa 0x%"
                        PRIx64 ", length 0x%" PRIx64 ") is empty, not 4 KiB aligned or "
                        "wraps", i, gpa, len);
            return false;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (!fn(r[2 * i], r[2 * i + 1], opaque, errp)) {
            g_prefix_error(errp, "migration stream: section 'postcopy-discard': ");
            return false;
        }
    }
    return true;
}
