/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The return path: what a destination writes back to its source on the
 * stream's own socket. Messages start with a 4-byte big-endian tag:
 *
 *   "VURQ" be64 gpa, be32 npages   postcopy: send these pages first
 *   "VUOK"                         the destination runs the guest (the
 *                                  final acknowledgement, also precopy's)
 *   "VURR" be64 gpa, be64 len      postcopy recovery: the destination
 *                                  still lacks these pages
 *   "VURE" be64 npages             ... and that was all of them (npages
 *                                  in all, as a check)
 *   "VUFL"                         the destination failed for good (not a
 *                                  broken connection): do not wait for it
 *
 * Writers on the destination (the postcopy fault thread's requests, the
 * load thread's acknowledgement) share one MigReturnPath, which keeps each
 * message whole. The source reads with mig_rp_read (one thread).
 */
#ifndef MIGRATION_RETURN_PATH_H
#define MIGRATION_RETURN_PATH_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "system/memory.h"
#include "util/vhost-user-api.h"

#define MIG_RP_TAG_REQUEST          0x56555251u     /* "VURQ" */
#define MIG_RP_TAG_ACK              0x56554f4bu     /* "VUOK" */
#define MIG_RP_TAG_LACKING          0x56555252u     /* "VURR" */
#define MIG_RP_TAG_LACKING_END      0x56555245u     /* "VURE" */
#define MIG_RP_TAG_FAILED           0x5655464cu     /* "VUFL" */
/* Pages in one request, at most (1 MiB). */
#define MIG_RP_MAX_PAGES            256

typedef struct MigReturnPath MigReturnPath;

/* Writes to fd, which stays the caller's (it must outlive the return path). */
VHOST_USER_API
MigReturnPath *mig_rp_new(int fd);
VHOST_USER_API
void mig_rp_free(MigReturnPath *rp);

/*
 * A page request (1..MIG_RP_MAX_PAGES pages from gpa). Blocks until the
 * message is on the socket; safe from any thread. After a failed write
 * every later one fails the same way.
 */
VHOST_USER_API
bool mig_rp_send_request(MigReturnPath *rp, uint64_t gpa, uint32_t npages, GError **errp);
VHOST_USER_API
bool mig_rp_send_ack(MigReturnPath *rp, GError **errp);
/*
 * Postcopy recovery, on a new connection: the pages of [gpa, gpa + len)
 * (4 KiB aligned, len > 0) are still missing here; then, after the last
 * range, how many pages they were in all.
 */
VHOST_USER_API
bool mig_rp_send_lacking(MigReturnPath *rp, uint64_t gpa, uint64_t len, GError **errp);
VHOST_USER_API
bool mig_rp_send_lacking_end(MigReturnPath *rp, uint64_t npages, GError **errp);
/* The destination gives up: the migration cannot be recovered. */
VHOST_USER_API
bool mig_rp_send_failed(MigReturnPath *rp, GError **errp);

typedef struct MigRpMsg {
    uint32_t tag;               /* MIG_RP_TAG_* */
    uint64_t gpa;               /* requests, lacking ranges */
    uint32_t npages;            /* requests */
    uint64_t len;               /* lacking ranges: bytes; LACKING_END: pages */
} MigRpMsg;

/*
 * Reads one message from fd (blocking; timeout_ms < 0: no limit). A
 * request is checked against mem: gpa 4 KiB aligned, 1..MIG_RP_MAX_PAGES
 * pages, all inside one RAM region; a lacking range too: aligned, not
 * empty, inside one RAM region. An unknown tag, a bad request, the
 * peer closing or the timeout is an error saying which.
 */
VHOST_USER_API
bool mig_rp_read(int fd, const GuestMemory *mem, int timeout_ms, MigRpMsg *msg,
                 GError **errp);

#endif
