/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Opening a userfaultfd: the syscall, else the device node.
 */
#include "migration/uffd-open.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "migration/uffd-compat.h"

int mig_uffd_open(int flags)
{
    int fd = syscall(SYS_userfaultfd, flags);
    int dev;

    if (fd >= 0 || errno != EPERM) {
        return fd;
    }
    /* Refused to us, the device node may not be (it is 0600 by default). */
    dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
        close(dev);
        if (fd >= 0) {
            return fd;
        }
    }
    errno = EPERM;
    return -1;
}
