/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Untrusted input: the bytes are the reference VMM's command line (a user
 * or a management layer writes it; a bad one must be refused with a clear
 * error, never crash the VMM).
 *
 * libFuzzer target: vmm_options_parse (vmm/vmm-options.c, the key=value
 * splitter vmm/vmm-kv.c and the guest driver's -workload parsers), with
 * no VMM started: parsing and resolution touch no file or socket.
 *
 * Input layout: arguments separated by NUL bytes. The first byte of each
 * argument picks the option (1 + index into options[] below; past the end:
 * the whole argument is passed as it is, so unknown options and stray
 * words are reached too); the rest up to the next NUL is the option's
 * value (dropped for a flag). Each
 * string is a heap block of exactly its length + 1, so reading past its
 * terminator is an ASan error.
 *
 * Accepted (and not a request for help): every device names a chardev
 * that exists, and every workload a device. Refused: a GError that says why (VHOST_USER_ERROR, or the
 * guest driver's domain for a -workload the driver's parser refuses; the
 * VMM prints the message either way).
 */
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "vmm/vmm-options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Byte 1 is options[0] (0 separates arguments); flags take no value. */
static const struct {
    const char *name;
    bool flag;
} options[] = {
    { "-m" }, { "-object" }, { "-machine" }, { "-chardev" }, { "-netdev" },
    { "-device" }, { "-workload" }, { "-trace" }, { "-qmp" }, { "-incoming" },
    { "-summary" }, { "-S", true }, { "-x-fill-pattern", true }, { "--device" },
};

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[MAX_ARGS * 2 + 2];
    int argc = 0;
    size_t pos = 0;
    g_autoptr(VmmConfig) cfg = vmm_config_new();
    GError *err = NULL;
    bool ok;

    argv[argc++] = g_strdup("vhost-user-vmm");
    while (pos < size && argc < MAX_ARGS * 2) {
        const uint8_t *end = memchr(data + pos, 0, size - pos);
        size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
        unsigned pick = len ? data[pos] - 1u : G_N_ELEMENTS(options);

        if (pick < G_N_ELEMENTS(options)) {
            argv[argc++] = g_strdup(options[pick].name);
            if (!options[pick].flag) {
                argv[argc++] = g_strndup((const char *)data + pos + 1, len - 1);
            }
        } else {
            argv[argc++] = g_strndup((const char *)data + pos, len);
        }
        pos += len + 1;
    }
    argv[argc] = NULL;

    /*
     * -h/--help ends parsing where it stands (the VMM prints the help and
     * exits, as QEMU does): what came before it is not a resolved config.
     */
    ok = vmm_options_parse(cfg, argc, argv, &err);
    if (ok && !cfg->help) {
        for (guint i = 0; i < cfg->devices->len; i++) {
            const VmmDeviceOpts *d = cfg->devices->pdata[i];

            if (!d->id || !d->chardev || !vmm_config_find_chardev(cfg, d->chardev)) {
                abort();
            }
        }
        for (guint i = 0; i < cfg->workloads->len; i++) {
            const VmmWorkloadOpts *w = cfg->workloads->pdata[i];
            bool found = false;

            for (guint j = 0; j < cfg->devices->len; j++) {
                found |= !strcmp(((VmmDeviceOpts *)cfg->devices->pdata[j])->id, w->devid);
            }
            if (!found) {
                abort();
            }
        }
    } else if (!ok && (!err || !err->message[0])) {
        abort();
    } else if (!ok) {
        g_error_free(err);
    }
    for (int i = 0; i < argc; i++) {
        g_free(argv[i]);
    }
    return 0;
}
