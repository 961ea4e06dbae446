/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory hotplug commands of the monitor. See vmm/vmm-hotplug.h.
 *
 * Every error names the object or device it is about and says what is
 * wrong, in the words an operator would look for (QEMU's where it has
 * them): the back-end's slot limit, share=off, a busy memdev, overlap.
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "vmm/vmm-hotplug.h"
#include "vmm/vmm-migrate.h"

typedef struct VmmDimm {
    char *id;
    RamBlock *block;            /* borrowed: the machine and guest RAM hold it */
    uint64_t addr;
    unsigned slot;
} VmmDimm;

struct VmmHotplug {
    VmmMachine *machine;
    VmmMonitor *mon;
    GPtrArray *dimms;           /* VmmDimm */
};

static void vmm_dimm_free(gpointer p)
{
    VmmDimm *d = p;

    g_free(d->id);
    g_free(d);
}

static VmmDimm *vmm_hotplug_find_dimm(VmmHotplug *hp, const char *id)
{
    for (guint i = 0; i < hp->dimms->len; i++) {
        VmmDimm *d = hp->dimms->pdata[i];

        if (!strcmp(d->id, id)) {
            return d;
        }
    }
    return NULL;
}

/* Whether rb is guest RAM now (boot RAM or a pc-dimm). */
static bool vmm_hotplug_block_mapped(VmmHotplug *hp, const RamBlock *rb)
{
    GuestMemory *mem = vmm_machine_memory(hp->machine);

    for (unsigned i = 0; i < guest_memory_nregions(mem); i++) {
        if (guest_memory_region(mem, i)->block == rb) {
            return true;
        }
    }
    return false;
}

/* QEMU's rule for ids: a letter, then letters, digits, '-', '.', '_'. */
static bool vmm_hotplug_check_id(const char *what, const char *id, GError **errp)
{
    bool ok = g_ascii_isalpha(id[0]);

    for (const char *p = id; ok && *p; p++) {
        ok = g_ascii_isalnum(*p) || *p == '-' || *p == '.' || *p == '_';
    }
    if (!ok) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "%s: id '%s' must start with a letter and hold only letters, "
                    "digits, '-', '.' and '_'", what, id);
    }
    return ok;
}

/* ---- object-add / object-del ------------------------------------------ */

static JsonNode *vmm_qmp_object_add(VmmMonitor *mon, JsonObject *args, void *opaque,
                                    GError **errp)
{
    static const char *const memfd_keys[] = { "qom-type", "id", "size", "share", NULL };
    static const char *const file_keys[] = {
        "qom-type", "id", "size", "share", "mem-path", NULL
    };
    VmmHotplug *hp = opaque;
    const char *type, *id, *path = NULL;
    uint64_t size = 0;
    bool file, share;
    RamBlock *rb;

    if (!vmm_qmp_arg_str(args, "qom-type", true, &type, errp)) {
        return NULL;
    }
    if (strcmp(type, "memory-backend-memfd") && strcmp(type, "memory-backend-file")) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "object-add: unknown qom-type '%s' (supported: "
                    "memory-backend-memfd, memory-backend-file)", type);
        return NULL;
    }
    file = !strcmp(type, "memory-backend-file");
    /* QEMU's defaults: a memfd is shared, a file is private. */
    share = !file;
    if (!vmm_qmp_check_args(args, file ? file_keys : memfd_keys, errp) ||
        !vmm_qmp_arg_str(args, "id", true, &id, errp) ||
        !vmm_hotplug_check_id(type, id, errp) ||
        !vmm_qmp_arg_size(args, "size", true, &size, errp) ||
        !vmm_qmp_arg_bool(args, "share", &share, errp) ||
        (file && !vmm_qmp_arg_str(args, "mem-path", true, &path, errp))) {
        g_prefix_error(errp, "object-add %s: ", type);
        return NULL;
    }
    if (vmm_machine_find_ram_block(hp->machine, id)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "object '%s' already exists", id);
        return NULL;
    }
    /* As -object does: share=off maps privately; device_add then refuses it. */
    rb = file ? ram_block_new_file(id, path, size, share, errp) :
                ram_block_new_memfd_share(id, size, share, errp);
    if (!rb) {
        return NULL;
    }
    vmm_machine_add_ram_block(hp->machine, rb);
    vmm_status("qmp: object %s added (%s, %" PRIu64 " bytes%s)", id, type, size,
               share ? "" : ", share=off");
    return NULL;
}

static JsonNode *vmm_qmp_object_del(VmmMonitor *mon, JsonObject *args, void *opaque,
                                    GError **errp)
{
    static const char *const keys[] = { "id", NULL };
    VmmHotplug *hp = opaque;
    const char *id;
    RamBlock *rb;

    if (!vmm_qmp_check_args(args, keys, errp) ||
        !vmm_qmp_arg_str(args, "id", true, &id, errp)) {
        return NULL;
    }
    rb = vmm_machine_find_ram_block(hp->machine, id);
    if (!rb) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "object '%s' not found", id);
        return NULL;
    }
    if (vmm_hotplug_block_mapped(hp, rb)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "object '%s' is in use (it is guest RAM: device_del its "
                    "pc-dimm first), can not be deleted", id);
        return NULL;
    }
    vmm_machine_del_ram_block(hp->machine, rb);
    vmm_status("qmp: object %s deleted", id);
    return NULL;
}

/* ---- device_add / device_del ------------------------------------------ */

static uint64_t vmm_align_up(uint64_t v, uint64_t align, bool *overflow)
{
    if (v > UINT64_MAX - (align - 1)) {
        *overflow = true;
        return 0;
    }
    return (v + align - 1) & ~(align - 1);
}

/*
 * The lowest VMM_DIMM_ALIGN-aligned GPA above the boot RAM where size
 * bytes fit between the regions (a removed dimm's hole is reused).
 */
static bool vmm_hotplug_pick_addr(VmmHotplug *hp, uint64_t size, uint64_t *addr,
                                  GError **errp)
{
    GuestMemory *mem = vmm_machine_memory(hp->machine);
    const MemoryRegionMap *boot = guest_memory_find(mem, 0);
    bool overflow = false;
    uint64_t cand = vmm_align_up(boot ? boot->size : 0, VMM_DIMM_ALIGN, &overflow);

    for (unsigned i = 0; i < guest_memory_nregions(mem) && !overflow; i++) {
        const MemoryRegionMap *r = guest_memory_region(mem, i);

        if (r->gpa + r->size <= cand) {
            continue;
        }
        if (cand <= UINT64_MAX - size && r->gpa >= cand + size) {
            break;
        }
        cand = vmm_align_up(r->gpa + r->size, VMM_DIMM_ALIGN, &overflow);
    }
    if (overflow || cand > UINT64_MAX - size) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "no free guest address range of %" PRIu64 " bytes", size);
        return false;
    }
    *addr = cand;
    return true;
}

static unsigned vmm_hotplug_free_slot(VmmHotplug *hp)
{
    for (unsigned slot = 0;; slot++) {
        bool used = false;

        for (guint i = 0; i < hp->dimms->len && !used; i++) {
            used = ((VmmDimm *)hp->dimms->pdata[i])->slot == slot;
        }
        if (!used) {
            return slot;
        }
    }
}

/*
 * The migration stream's RAM layout is fixed at its start and the
 * destination must have the same: guest RAM may not change meanwhile.
 */
static bool vmm_hotplug_check_migration(const char *what, const char *id, GError **errp)
{
    const char *why = vmm_migration_blocks_hotplug();

    if (why) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "%s pc-dimm '%s': guest RAM cannot change while %s; try again "
                    "once it has ended", what, id, why);
        return false;
    }
    return true;
}

static JsonNode *vmm_qmp_device_add(VmmMonitor *mon, JsonObject *args, void *opaque,
                                    GError **errp)
{
    static const char *const keys[] = { "driver", "id", "memdev", "addr", NULL };
    VmmHotplug *hp = opaque;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const char *driver, *id, *memdev;
    uint64_t addr = 0;
    RamBlock *rb;
    VmmDimm *d;

    if (!vmm_qmp_arg_str(args, "driver", true, &driver, errp)) {
        return NULL;
    }
    if (strcmp(driver, "pc-dimm")) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "device_add: driver '%s' cannot be hot-plugged here (only "
                    "pc-dimm can)", driver);
        return NULL;
    }
    if (!vmm_qmp_check_args(args, keys, errp) ||
        /* Required here: without one the dimm could never be device_del'd. */
        !vmm_qmp_arg_str(args, "id", true, &id, errp) ||
        !vmm_hotplug_check_id("pc-dimm", id, errp) ||
        !vmm_qmp_arg_str(args, "memdev", true, &memdev, errp) ||
        !vmm_qmp_arg_size(args, "addr", false, &addr, errp)) {
        g_prefix_error(errp, "device_add pc-dimm: ");
        return NULL;
    }
    if (!vmm_hotplug_check_migration("device_add", id, errp)) {
        return NULL;
    }
    if (vmm_hotplug_find_dimm(hp, id)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "Duplicate device ID '%s'", id);
        return NULL;
    }
    rb = vmm_machine_find_ram_block(hp->machine, memdev);
    if (!rb) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "pc-dimm '%s': memdev '%s' not found (object-add it first)",
                    id, memdev);
        return NULL;
    }
    if (vmm_hotplug_block_mapped(hp, rb)) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "pc-dimm '%s': memdev '%s' is already in use (guest RAM)",
                    id, memdev);
        return NULL;
    }
    if (json_object_has_member(args, "addr")) {
        if (addr % page) {
            g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                        "pc-dimm '%s': addr 0x%" PRIx64 " is not aligned to the "
                        "page size 0x%" PRIx64, id, addr, page);
            return NULL;
        }
    } else if (!vmm_hotplug_pick_addr(hp, rb->size, &addr, errp)) {
        g_prefix_error(errp, "pc-dimm '%s': ", id);
        return NULL;
    }
    if (!vmm_machine_plug_ram(hp->machine, addr, rb, errp)) {
        g_prefix_error(errp, "pc-dimm '%s': ", id);
        return NULL;
    }
    d = g_new0(VmmDimm, 1);
    d->id = g_strdup(id);
    d->block = rb;
    d->addr = addr;
    d->slot = vmm_hotplug_free_slot(hp);
    g_ptr_array_add(hp->dimms, d);
    vmm_status("qmp: %s plugged: %s at 0x%" PRIx64 " (%" PRIu64 " bytes)", id, memdev,
               addr, rb->size);
    return NULL;
}

static JsonNode *vmm_qmp_device_del(VmmMonitor *mon, JsonObject *args, void *opaque,
                                    GError **errp)
{
    static const char *const keys[] = { "id", NULL };
    VmmHotplug *hp = opaque;
    g_autoptr(GError) err = NULL;
    g_autofree char *id = NULL;
    JsonObject *data;
    const char *arg;
    VmmDimm *d;

    if (!vmm_qmp_check_args(args, keys, errp) ||
        !vmm_qmp_arg_str(args, "id", true, &arg, errp)) {
        return NULL;
    }
    d = vmm_hotplug_find_dimm(hp, arg);
    if (!d) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_DEVICE_NOT_FOUND,
                    "Device '%s' not found (only pc-dimms added with device_add "
                    "can be removed)", arg);
        return NULL;
    }
    if (!vmm_hotplug_check_migration("device_del", arg, errp)) {
        return NULL;
    }
    id = g_strdup(d->id);
    /* The region exists (we placed it), so it goes whatever a back-end says. */
    vmm_machine_unplug_ram(hp->machine, d->addr, &err);
    vmm_status("qmp: %s unplugged from 0x%" PRIx64, id, d->addr);
    g_ptr_array_remove(hp->dimms, d);

    data = json_object_new();
    json_object_set_string_member(data, "device", id);
    {
        g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);

        json_object_set_string_member(data, "path", path);
    }
    vmm_monitor_event(mon, "DEVICE_DELETED", data);
    if (err) {
        g_set_error(errp, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                    "pc-dimm '%s' was removed, but telling a back-end failed: %s "
                    "(it was disconnected and gets the new table when it "
                    "reconnects)", id, err->message);
    }
    return NULL;
}

/* ---- query-memory-devices ---------------------------------------------- */

static gint vmm_dimm_cmp_addr(gconstpointer a, gconstpointer b)
{
    const VmmDimm *x = *(VmmDimm *const *)a;
    const VmmDimm *y = *(VmmDimm *const *)b;

    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static JsonNode *vmm_qmp_query_memory_devices(VmmMonitor *mon, JsonObject *args,
                                              void *opaque, GError **errp)
{
    VmmHotplug *hp = opaque;
    g_autoptr(GPtrArray) sorted = NULL;
    JsonArray *list;

    if (!vmm_qmp_no_args(args, errp)) {
        return NULL;
    }
    /* Not g_ptr_array_copy: the copy would inherit the free function. */
    sorted = g_ptr_array_sized_new(hp->dimms->len);
    for (guint i = 0; i < hp->dimms->len; i++) {
        g_ptr_array_add(sorted, hp->dimms->pdata[i]);
    }
    g_ptr_array_sort(sorted, vmm_dimm_cmp_addr);
    list = json_array_new();
    for (guint i = 0; i < sorted->len; i++) {
        const VmmDimm *d = sorted->pdata[i];
        JsonObject *info = json_object_new();
        JsonObject *data = json_object_new();
        g_autofree char *memdev = g_strdup_printf("/objects/%s", d->block->id);

        /* QEMU's MemoryDeviceInfo for a dimm. */
        json_object_set_string_member(data, "id", d->id);
        json_object_set_int_member(data, "addr", (gint64)d->addr);
        json_object_set_int_member(data, "size", (gint64)d->block->size);
        json_object_set_int_member(data, "slot", d->slot);
        json_object_set_int_member(data, "node", 0);
        json_object_set_string_member(data, "memdev", memdev);
        json_object_set_boolean_member(data, "hotplugged", TRUE);
        json_object_set_boolean_member(data, "hotpluggable", TRUE);
        json_object_set_string_member(info, "type", "dimm");
        json_object_set_object_member(info, "data", data);
        json_array_add_object_element(list, info);
    }
    return vmm_qmp_array_node(list);
}

/* ---- setup -------------------------------------------------------------- */

VmmHotplug *vmm_hotplug_new(VmmMachine *m, VmmMonitor *mon)
{
    VmmHotplug *hp = g_new0(VmmHotplug, 1);

    hp->machine = m;
    hp->mon = mon;
    hp->dimms = g_ptr_array_new_with_free_func(vmm_dimm_free);
    vmm_monitor_register(mon, "object-add", vmm_qmp_object_add, hp);
    vmm_monitor_register(mon, "object-del", vmm_qmp_object_del, hp);
    vmm_monitor_register(mon, "device_add", vmm_qmp_device_add, hp);
    vmm_monitor_register(mon, "device_del", vmm_qmp_device_del, hp);
    vmm_monitor_register(mon, "query-memory-devices", vmm_qmp_query_memory_devices, hp);
    return hp;
}

void vmm_hotplug_free(VmmHotplug *hp)
{
    if (!hp) {
        return;
    }
    g_ptr_array_unref(hp->dimms);
    g_free(hp);
}
