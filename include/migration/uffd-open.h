/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Opening a userfaultfd, for write tracking (ram-track.c) and postcopy
 * (postcopy-ram.c). Internal to the library.
 */
#ifndef MIGRATION_UFFD_OPEN_H
#define MIGRATION_UFFD_OPEN_H

/*
 * userfaultfd(flags), or when the syscall is refused (EPERM: no
 * CAP_SYS_PTRACE and vm.unprivileged_userfaultfd=0) the same through
 * /dev/userfaultfd's USERFAULTFD_IOC_NEW. -1 with errno set when neither
 * works (EPERM when both were refused).
 */
int mig_uffd_open(int flags);

#endif
