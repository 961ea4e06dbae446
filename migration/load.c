/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The destination's load loop.
 *
 * Untrusted input: the stream comes from another host. Section ids,
 * lengths and their order (postcopy's included: a section out of order
 * fails the load naming it) are checked here; each section's payload by
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

/* Where a load is in the postcopy sequence. */
typedef enum MigLoadPhase {
    MIG_LOAD_PRECOPY,           /* no ADVISE (yet) */
    MIG_LOAD_ADVISED,           /* ADVISE; pages and devices come as in precopy */
    MIG_LOAD_DISCARD,           /* the switch began: DISCARDs until LISTEN */
    MIG_LOAD_LISTEN,            /* LISTEN: devices, then RUN */
    MIG_LOAD_RUN,               /* RUN: placed pages until END */
} MigLoadPhase;

static const char *const mig_load_phase_after[] = {
    [MIG_LOAD_PRECOPY] = "'ram-setup'",
    [MIG_LOAD_ADVISED] = "'postcopy-advise'",
    [MIG_LOAD_DISCARD] = "'postcopy-discard'",
    [MIG_LOAD_LISTEN] = "'postcopy-listen'",
    [MIG_LOAD_RUN] = "'postcopy-run'",
};

/* Whether section id may come now; else an error naming it and where we are. */
static bool mig_load_order(uint16_t id, MigLoadPhase ph, bool have_setup,
                           bool have_content, bool have_device, bool postcopy_ok,
                           GError **errp)
{
    const char *why = NULL;

    switch (id) {
    case MIG_SECTION_END:
        if (ph == MIG_LOAD_DISCARD || ph == MIG_LOAD_LISTEN) {
            why = "the postcopy switch did not reach 'postcopy-run'";
        }
        break;
    case MIG_SECTION_RAM_SETUP:
        break;                  /* a second one is refused by the caller */
    case MIG_SECTION_RAM_PAGES:
        if (!have_setup) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "migration stream: 'ram-pages' before 'ram-setup'");
            return false;
        }
        if (ph == MIG_LOAD_DISCARD || ph == MIG_LOAD_LISTEN) {
            why = "between 'postcopy-discard'/'postcopy-listen' and 'postcopy-run'";
        }
        break;
    case MIG_SECTION_DEVICE:
        if (ph == MIG_LOAD_DISCARD) {
            why = "before 'postcopy-listen'";
        } else if (ph == MIG_LOAD_RUN) {
            why = "after 'postcopy-run'";
        }
        break;
    case MIG_SECTION_POSTCOPY_ADVISE:
        if (!postcopy_ok) {
            why = "this destination does not do postcopy";
        } else if (!have_setup) {
            why = "before 'ram-setup'";
        } else if (ph != MIG_LOAD_PRECOPY || have_content) {
            why = "not right after 'ram-setup'";
        }
        break;
    case MIG_SECTION_POSTCOPY_DISCARD:
    case MIG_SECTION_POSTCOPY_LISTEN:
        if (ph != MIG_LOAD_ADVISED && ph != MIG_LOAD_DISCARD) {
            why = ph == MIG_LOAD_PRECOPY ? "without 'postcopy-advise'" : "after 'postcopy-listen'";
        } else if (have_device) {
            why = "after a 'device' section";
        }
        break;
    case MIG_SECTION_POSTCOPY_RUN:
        if (ph != MIG_LOAD_LISTEN) {
            why = ph == MIG_LOAD_RUN ? "a second time" : "without 'postcopy-listen'";
        }
        break;
    case MIG_SECTION_POSTCOPY_RESUME:
        why = "only the first section of a recovery connection";
        break;
    case MIG_SECTION_POSTCOPY_PREEMPT:
        why = "only the first section of a postcopy-preempt connection";
        break;
    default:
        return true;
    }
    if (why) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section '%s' out of order (%s; last postcopy step: %s)",
                    mig_section_name(id), why, mig_load_phase_after[ph]);
        return false;
    }
    return true;
}

/* A section without payload (END, ADVISE, LISTEN, RUN). */
static bool mig_load_empty(const MigSectionHeader *h, GError **errp)
{
    if (h->length) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: section '%s' with a payload of %" PRIu32 " bytes",
                    mig_section_name(h->id), h->length);
        return false;
    }
    return true;
}

/* The sections from phase ph on, until END. */
static bool mig_load_sections(MigStream *s, GuestMemory *mem, const MigLoadOps *ops,
                              void *opaque, bool *postcopy, MigLoadPhase ph, GError **errp)
{
    bool have_setup = ph == MIG_LOAD_RUN, have_content = false, have_device = false;
    bool postcopy_ok = ops->advise && ops->discard && ops->listen && ops->run && ops->place;

    for (;;) {
        MigSectionHeader h;
        bool ok;

        if (!mig_load_section_header(s, &h, errp) ||
            !mig_load_order(h.id, ph, have_setup, have_content, have_device, postcopy_ok,
                            errp)) {
            return false;
        }
        switch (h.id) {
        case MIG_SECTION_END:
            return mig_load_empty(&h, errp);
        case MIG_SECTION_RAM_SETUP:
            if (have_setup) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                            "migration stream: a second 'ram-setup' section");
                return false;
            }
            ok = have_setup = mig_ram_load_setup(s, h.length, mem, errp);
            break;
        case MIG_SECTION_RAM_PAGES:
            have_content = true;
            ok = ph == MIG_LOAD_RUN ?
                 mig_ram_load_pages_placed(s, h.length, mem, ops->place, opaque, errp) :
                 mig_ram_load_pages(s, h.length, mem, errp);
            break;
        case MIG_SECTION_DEVICE:
            have_content = have_device = true;
            ok = mig_load_device_section(s, h.length, ops->device, opaque, errp);
            break;
        case MIG_SECTION_POSTCOPY_ADVISE:
            ok = mig_load_empty(&h, errp) && ops->advise(opaque, errp);
            ph = MIG_LOAD_ADVISED;
            break;
        case MIG_SECTION_POSTCOPY_DISCARD:
            ok = mig_load_postcopy_discard(s, h.length, ops->discard, opaque, errp);
            ph = MIG_LOAD_DISCARD;
            break;
        case MIG_SECTION_POSTCOPY_LISTEN:
            /* From here on the guest's RAM is split between the two sides. */
            *postcopy = true;
            ok = mig_load_empty(&h, errp) && ops->listen(opaque, errp);
            ph = MIG_LOAD_LISTEN;
            break;
        case MIG_SECTION_POSTCOPY_RUN:
            ok = mig_load_empty(&h, errp) && ops->run(opaque, errp);
            ph = MIG_LOAD_RUN;
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

bool mig_load_ops(MigStream *s, GuestMemory *mem, const MigLoadOps *ops, void *opaque,
                  bool *postcopy, GError **errp)
{
    bool dummy;

    postcopy = postcopy ? postcopy : &dummy;
    *postcopy = false;
    return mig_load_header(s, errp) &&
           mig_load_sections(s, mem, ops, opaque, postcopy, MIG_LOAD_PRECOPY, errp);
}

/* The header and the empty section id that opens a connection of kind what. */
static bool mig_load_opening(MigStream *s, MigSectionId id, const char *what, GError **errp)
{
    MigSectionHeader h;

    if (!mig_load_header(s, errp) || !mig_load_section_header(s, &h, errp)) {
        return false;
    }
    if (h.id != id) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                    "migration stream: %s starts with section %u (%s), not '%s'", what,
                    h.id, mig_section_name(h.id) ? mig_section_name(h.id) : "unknown",
                    mig_section_name(id));
        return false;
    }
    return mig_load_empty(&h, errp);
}

bool mig_load_postcopy_resume(MigStream *s, GuestMemory *mem, const MigLoadOps *ops,
                              void *opaque, GError **errp)
{
    bool postcopy = true;

    if (!ops->resume || !ops->place) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "migration stream: postcopy recovery without a resume callback");
        return false;
    }
    return mig_load_opening(s, MIG_SECTION_POSTCOPY_RESUME, "a recovery connection", errp) &&
           ops->resume(opaque, errp) &&
           mig_load_sections(s, mem, ops, opaque, &postcopy, MIG_LOAD_RUN, errp);
}

bool mig_load(MigStream *s, GuestMemory *mem, MigDeviceLoadFn device_fn,
              void *opaque, GError **errp)
{
    MigLoadOps ops = { .device = device_fn };

    return mig_load_ops(s, mem, &ops, opaque, NULL, errp);
}

bool mig_load_preempt(MigStream *s, GuestMemory *mem, MigRamPlaceFn place, void *opaque,
                      GError **errp)
{
    MigSectionHeader h;

    if (!mig_load_opening(s, MIG_SECTION_POSTCOPY_PREEMPT, "a postcopy-preempt connection",
                          errp)) {
        return false;
    }
    for (;;) {
        if (!mig_load_section_header(s, &h, errp)) {
            return false;
        }
        if (h.id != MIG_SECTION_RAM_PAGES) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID_MESSAGE,
                        "migration stream: section %u (%s) on the postcopy-preempt "
                        "connection, which carries 'ram-pages' only", h.id,
                        mig_section_name(h.id) ? mig_section_name(h.id) : "unknown");
            return false;
        }
        if (!mig_ram_load_pages_placed(s, h.length, mem, place, opaque, errp)) {
            return false;
        }
    }
}
