/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * key=value lists of vhost-user-vmm's options (vmm/vmm-kv.c). Every key of
 * a list is checked against what the option accepts before any value is
 * read, so a misspelt key is reported by name, never silently ignored.
 */
#ifndef VMM_KV_H
#define VMM_KV_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct VmmKv {
    char *key;
    char *value;                /* NULL for a bare key ("server") */
} VmmKv;

typedef struct VmmKvList {
    char *what;                 /* "-chardev socket", for messages */
    GArray *items;              /* VmmKv */
} VmmKvList;

void vmm_kv_list_free(VmmKvList *kv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmmKvList, vmm_kv_list_free)

/*
 * Splits arg into pairs; a first item without '=' is the value of
 * `implied` (when given). what names the option in messages.
 */
VmmKvList *vmm_kv_parse(const char *what, const char *arg, const char *implied,
                        GError **errp);
VmmKv *vmm_kv_find(VmmKvList *kv, const char *key);
/* "-chardev socket": how messages name the list once its type is known. */
void vmm_kv_set_what(VmmKvList *kv, const char *option, const char *type);
/* Refuses any key not in the NULL-terminated keys (skip: one more allowed). */
bool vmm_kv_check_keys(VmmKvList *kv, const char *const *keys, const char *skip,
                       GError **errp);
bool vmm_kv_str(VmmKvList *kv, const char *key, bool required, char **out,
                GError **errp);
bool vmm_kv_bool(VmmKvList *kv, const char *key, bool *out, GError **errp);
bool vmm_kv_uint(VmmKvList *kv, const char *key, uint64_t min, uint64_t max,
                 uint64_t *out, GError **errp);
bool vmm_kv_size(VmmKvList *kv, const char *key, uint64_t default_unit,
                 bool required, uint64_t *out, GError **errp);

/* Parses "256M" style sizes; default_unit multiplies a bare number. */
bool vmm_parse_size(const char *str, uint64_t default_unit, uint64_t *out);

#endif
