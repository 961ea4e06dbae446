/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where a back-end mapped a region, from its /proc/PID/maps, for back-ends
 * whose postcopy-listening memory-table reply gives back the front-end's
 * addresses instead of their own: libvhost-user (qemu-storage-daemon 7.2)
 * fills its addresses into a copy of the message and replies with the
 * original. Without its real base none of its faults could be translated.
 *
 * Untrusted input: the peer's pid comes from the kernel (SO_PEERCRED), the
 * maps lines from procfs; a line that does not parse is skipped, a region
 * mapped more than once is ambiguous and not guessed at.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hw/virtio/vhost-user-postcopy.h"

typedef struct MapsLine {
    uint64_t start, end, offset, inode;
    unsigned major, minor;
} MapsLine;

static bool maps_parse(const char *line, MapsLine *m)
{
    return sscanf(line, "%" SCNx64 "-%" SCNx64 " %*4s %" SCNx64 " %x:%x %" SCNu64,
                  &m->start, &m->end, &m->offset, &m->major, &m->minor, &m->inode) == 6 &&
           m->start < m->end && m->inode != 0;
}

/* The file mapping of path's maps that contains addr (want_addr) or, else, matches key. */
static int maps_scan(const char *path, bool by_addr, uint64_t addr, const MapsLine *key,
                     uint64_t file_off, uint64_t size, MapsLine *found)
{
    char line[512];
    FILE *fp = fopen(path, "re");
    int n = 0;

    if (!fp) {
        return 0;
    }
    while (fgets(line, sizeof(line), fp)) {
        MapsLine m;

        if (!maps_parse(line, &m)) {
            continue;
        }
        if (by_addr ? (addr >= m.start && addr < m.end)
                    : (m.inode == key->inode && m.major == key->major &&
                       m.minor == key->minor && file_off >= m.offset &&
                       size <= m.end - m.start &&
                       file_off - m.offset <= m.end - m.start - size)) {
            *found = m;
            n++;
        }
    }
    fclose(fp);
    return n;
}

bool vhost_user_postcopy_peer_base(int sock_fd, uint64_t our_uaddr, uint64_t mmap_offset,
                                   uint64_t size, uint64_t *base)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    char path[64];
    MapsLine ours, theirs;

    if (sock_fd < 0 || getsockopt(sock_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        cred.pid <= 0 || cred.pid == getpid()) {
        return false;
    }
    /* The file behind our mapping of the region (its fd went to the back-end). */
    if (maps_scan("/proc/self/maps", true, our_uaddr, NULL, 0, 0, &ours) != 1) {
        return false;
    }
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)cred.pid);
    if (maps_scan(path, false, 0, &ours, mmap_offset, size, &theirs) != 1) {
        return false;
    }
    *base = theirs.start + (mmap_offset - theirs.offset);
    return true;
}
