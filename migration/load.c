/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The destination's load loop.
 *
 * Untrusted input: the stream comes from another host. Section ids,
 * lengths and their order are checked here; each section's payload by
 * its reader (migration/format.c, migration/ram-stream.c).
 */
#include <inttypes.h>

#include "migration/format.h"
#include "migration/load.h"
#include "migration/ram-stream.h"
#include "util/vhost-user-error.h"

static bool mig_load_device_section(MigStream *s, uint32_t length,
                                    MigDeviceLoadFn device_fn, void *opaque,
                                    GError **errp)
{
    g_autofree char *name = NULL;
    g_autofree void *data = NULL;
    size_t len;

    if (!mig_load_device(s, length, &name, &data, &len, errp)) {
        return false;
    }
    if (!device_fn) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration stream: device '%s': no device loader", name);
        return false;
    }
    if (!device_fn(name, data, len, opaque, errp)) {
        g_prefix_error(errp, "migration stream: device '%s': ", name);
        return false;
    }
    return true;
}

/* Reads and drops an optional section this reader does not know. */
static bool mig_load_skip(MigStream *s, uint32_t length, GError **errp)
{
    uint8_t buf[4096];

    while (length) {
        uint32_t n = MIN(length, sizeof(buf));

        if (!mig_stream_read(s, buf, n, errp)) {
            return false;
        }
        length -= n;
    }
    return true;
}

bool mig_load(MigStream *s, GuestMemory *mem, MigDeviceLoadFn device_fn,
              void *opaque, GError **errp)
{
    bool have_setup = false;

    if (!mig_load_header(s, errp)) {
        return false;
    }
    for (;;) {
        MigSectionHeader h;
        bool ok;

        if (!mig_load_section_header(s, &h, errp)) {
            return false;
        }
        switch (h.id) {
        case MIG_SECTION_END:
            if (h.length) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                            "migration stream: section 'end' with a payload of %"
                            PRIu32 " bytes", h.length);
                return false;
            }
            return true;
        case MIG_SECTION_RAM_SETUP:
            if (have_setup) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                            "migration stream: a second 'ram-setup' section");
                return false;
            }
            ok = have_setup = mig_ram_load_setup(s, h.length, mem, errp);
            break;
        case MIG_SECTION_RAM_PAGES:
            if (!have_setup) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                            "migration stream: 'ram-pages' before 'ram-setup'");
                return false;
            }
            ok = mig_ram_load_pages(s, h.length, mem, errp);
            break;
        case MIG_SECTION_DEVICE:
            ok = mig_load_device_section(s, h.length, device_fn, opaque, errp);
            break;
        default:
            if (!(h.flags & MIG_SECTION_F_OPTIONAL)) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                            "migration stream: unknown section id %u (%" PRIu32
                            " bytes, not optional)", h.id, h.length);
                return false;
            }
            ok = mig_load_skip(s, h.length, errp);
            break;
        }
        if (!ok) {
            return false;
        }
    }
}
