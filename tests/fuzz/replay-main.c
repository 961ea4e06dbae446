/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A main() for a fuzz harness built without libFuzzer: runs
 * LLVMFuzzerTestOneInput once over each file named (or each file of each
 * directory named), as `TARGET -runs=0 DIR` would. meson builds the
 * harnesses with it so a normal `meson test` replays the seed corpus
 * (tests/fuzz/record-proxy-test.sh); a harness aborts on a broken oracle,
 * which fails the run. Prints how many inputs it ran.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a harness: weak, NULL when the harness has none. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned run_file(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    GError *err = NULL;

    if (!g_file_get_contents(path, &data, &len, &err)) {
        fprintf(stderr, "replay: %s\n", err->message);
        exit(1);
    }
    /* Exactly the input's bytes, as libFuzzer hands them over. */
    {
        g_autofree uint8_t *copy = g_memdup2(data, len ? len : 1);

        LLVMFuzzerTestOneInput(copy, len);
    }
    return 1;
}

int main(int argc, char **argv)
{
    unsigned n = 0;

    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    for (int i = 1; i < argc; i++) {
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            GDir *d = g_dir_open(argv[i], 0, NULL);
            const char *name;

            while (d && (name = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(argv[i], name, NULL);

                n += run_file(p);
            }
            if (d) {
                g_dir_close(d);
            }
        } else {
            n += run_file(argv[i]);
        }
    }
    printf("replay: %u inputs, no oracle broken\n", n);
    return 0;
}
