/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Prints the message table as reStructuredText, exactly the block that
 * docs/interop/vhost-user.rst holds between its GENERATED markers;
 * scripts/check-docs.sh compares the two so the docs cannot drift from
 * the code.
 */
#include <stdio.h>

#include "util/vhost-user-msg.h"

int main(void)
{
    g_autofree char *rst = vhost_user_msg_table_rst();

    if (fputs(rst, stdout) == EOF || fflush(stdout) == EOF) {
        perror("vhost-user-msgtable: stdout");
        return 1;
    }
    return 0;
}
