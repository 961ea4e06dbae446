/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * QEMU-style option arguments for vhost-user-vmm: "type,key=value,key"
 * split once into key=value pairs (an optional implied first value, ",,"
 * for a literal comma), and typed getters that name the option, the key
 * and what was expected when a value is wrong. See vmm/vmm-kv.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "util/vhost-user-error.h"
#include "vmm/vmm-kv.h"


void vmm_kv_list_free(VmmKvList *kv)
{
    if (!kv) {
        return;
    }
    for (guint i = 0; i < kv->items->len; i++) {
        VmmKv *e = &g_array_index(kv->items, VmmKv, i);

        g_free(e->key);
        g_free(e->value);
    }
    g_array_free(kv->items, TRUE);
    g_free(kv->what);
    g_free(kv);
}

static GPtrArray *vmm_split_commas(const char *arg)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = arg; *p; p++) {
        if (*p == ',') {
            if (p[1] == ',') {
                /* ",," is a literal comma, as in QEMU (paths with commas). */
                g_string_append_c(cur, ',');
                p++;
                continue;
            }
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
            continue;
        }
        g_string_append_c(cur, *p);
    }
    g_ptr_array_add(parts, g_string_free(cur, FALSE));
    return parts;
}

/*
 * Splits arg. implied names the key a leading element without '=' stands
 * for ("-chardev socket,..." -> backend=socket), or is NULL.
 */
VmmKvList *vmm_kv_parse(const char *what, const char *arg,
                               const char *implied, GError **errp)
{
    g_autoptr(VmmKvList) kv = g_new0(VmmKvList, 1);
    g_autoptr(GPtrArray) parts = vmm_split_commas(arg);

    kv->what = g_strdup(what);
    kv->items = g_array_new(FALSE, TRUE, sizeof(VmmKv));
    for (guint i = 0; i < parts->len; i++) {
        const char *part = parts->pdata[i];
        const char *eq = strchr(part, '=');
        VmmKv e = { 0 };

        if (!*part) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: empty parameter in '%s'", what, arg);
            return NULL;
        }
        if (i == 0 && implied && !eq) {
            e.key = g_strdup(implied);
            e.value = g_strdup(part);
        } else if (eq) {
            e.key = g_strndup(part, eq - part);
            e.value = g_strdup(eq + 1);
        } else {
            e.key = g_strdup(part);
        }
        for (guint j = 0; j < kv->items->len; j++) {
            if (!strcmp(g_array_index(kv->items, VmmKv, j).key, e.key)) {
                g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                            "%s: parameter '%s' given twice", what, e.key);
                g_free(e.key);
                g_free(e.value);
                return NULL;
            }
        }
        g_array_append_val(kv->items, e);
    }
    return g_steal_pointer(&kv);
}

VmmKv *vmm_kv_find(VmmKvList *kv, const char *key)
{
    for (guint i = 0; i < kv->items->len; i++) {
        VmmKv *e = &g_array_index(kv->items, VmmKv, i);

        if (!strcmp(e->key, key)) {
            return e;
        }
    }
    return NULL;
}

/* Sets kv->what to "OPTION TYPE" once the type is known. */
void vmm_kv_set_what(VmmKvList *kv, const char *option, const char *type)
{
    g_free(kv->what);
    kv->what = g_strdup_printf("%s %s", option, type);
}

bool vmm_kv_check_keys(VmmKvList *kv, const char *const *keys,
                              const char *skip, GError **errp)
{
    for (guint i = 0; i < kv->items->len; i++) {
        const char *key = g_array_index(kv->items, VmmKv, i).key;
        bool known = skip && !strcmp(key, skip);

        for (const char *const *k = keys; !known && *k; k++) {
            known = !strcmp(*k, key);
        }
        if (!known) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: unknown parameter '%s'", kv->what, key);
            return false;
        }
    }
    return true;
}

bool vmm_kv_str(VmmKvList *kv, const char *key, bool required,
                       char **out, GError **errp)
{
    VmmKv *e = vmm_kv_find(kv, key);

    *out = NULL;
    if (!e) {
        if (required) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: parameter '%s' is required", kv->what, key);
            return false;
        }
        return true;
    }
    if (!e->value || !*e->value) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: parameter '%s' needs a value", kv->what, key);
        return false;
    }
    *out = g_strdup(e->value);
    return true;
}

bool vmm_kv_bool(VmmKvList *kv, const char *key, bool *out, GError **errp)
{
    VmmKv *e = vmm_kv_find(kv, key);
    const char *v;

    if (!e) {
        return true;            /* *out keeps its default */
    }
    v = e->value;
    /* A bare key means on, as QEMU still accepts ("server"). */
    if (!v || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
        *out = false;
    } else {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: parameter '%s' expects 'on' or 'off', got '%s'",
                    kv->what, key, v);
        return false;
    }
    return true;
}

bool vmm_kv_uint(VmmKvList *kv, const char *key, uint64_t min, uint64_t max,
                        uint64_t *out, GError **errp)
{
    VmmKv *e = vmm_kv_find(kv, key);
    guint64 v;

    if (!e) {
        return true;            /* *out keeps its default */
    }
    if (!e->value || !g_ascii_string_to_unsigned(e->value, 10, min, max, &v, NULL)) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: parameter '%s' expects a number in %" G_GUINT64_FORMAT
                    "..%" G_GUINT64_FORMAT ", got '%s'", kv->what, key, min, max,
                    e->value ? e->value : "");
        return false;
    }
    *out = v;
    return true;
}

bool vmm_kv_size(VmmKvList *kv, const char *key, uint64_t default_unit,
                        bool required, uint64_t *out, GError **errp)
{
    VmmKv *e = vmm_kv_find(kv, key);

    if (!e) {
        if (required) {
            g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                        "%s: parameter '%s' is required", kv->what, key);
            return false;
        }
        return true;
    }
    if (!e->value || !vmm_parse_size(e->value, default_unit, out) || *out == 0) {
        g_set_error(errp, VHOST_USER_ERROR, VHOST_USER_ERROR_CONFIG,
                    "%s: parameter '%s' expects a non-zero size (e.g. 256M, 1G), "
                    "got '%s'", kv->what, key, e->value ? e->value : "");
        return false;
    }
    return true;
}

bool vmm_parse_size(const char *str, uint64_t default_unit, uint64_t *out)
{
    uint64_t unit = default_unit;
    guint64 v;
    char *end;

    if (!g_ascii_isdigit(*str)) {
        return false;
    }
    errno = 0;
    v = g_ascii_strtoull(str, &end, 10);
    if (errno || end == str) {
        return false;
    }
    if (*end) {
        switch (g_ascii_toupper(*end)) {
        case 'B':
            unit = 1;
            break;
        case 'K':
            unit = 1ull << 10;
            break;
        case 'M':
            unit = 1ull << 20;
            break;
        case 'G':
            unit = 1ull << 30;
            break;
        case 'T':
            unit = 1ull << 40;
            break;
        default:
            return false;
        }
        if (end[1]) {
            return false;
        }
    }
    if (v > UINT64_MAX / unit) {
        return false;
    }
    *out = v * unit;
    return true;
}
