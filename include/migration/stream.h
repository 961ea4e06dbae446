/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The byte transport under a migration stream: one connected fd (a unix or
 * TCP socket, or any fd that reads and writes, such as a file), with
 * buffered writes, an optional bandwidth limit (max-bandwidth) and byte
 * counters, and exact reads that fail with a clear error when the peer
 * stops early. Calls block: a VMM runs the sender and the receiver in a
 * migration thread of their own, never in its event loop.

 * The sockets themselves: migration/socket.h.
 */
#ifndef MIGRATION_STREAM_H
#define MIGRATION_STREAM_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/vhost-user-api.h"

typedef struct MigStream MigStream;

/* Takes ownership of fd (closed by mig_stream_free). Never fails. */
VHOST_USER_API
MigStream *mig_stream_new(int fd);
/* Closes the fd; unflushed writes are dropped (flush first to keep them). */
VHOST_USER_API
void mig_stream_free(MigStream *s);

/*
 * Cancels the migration from another thread (QMP migrate_cancel): shuts
 * the socket down, so a read or write blocked in the migration thread
 * returns with an error. The stream must still be freed by its owner.
 */
VHOST_USER_API
void mig_stream_shutdown(MigStream *s);

/*
 * For a connection the peer never writes on (postcopy-preempt's, before
 * its first page): true when the peer hung up or the socket has an error
 * or unread data, none of which such a peer would leave. Does not block.
 * Over TCP a write to a peer that closed can still succeed once, so this
 * is the way to know before writing.
 */
VHOST_USER_API
bool mig_stream_peer_gone(const MigStream *s);

/*
 * bytes_per_sec 0: unlimited. Writes then sleep so that the bytes put on
 * the fd since the limit was set never run ahead of the limit by more than
 * a short burst.
 */
VHOST_USER_API
void mig_stream_set_max_bandwidth(MigStream *s, uint64_t bytes_per_sec);

/* Buffered; the error of an earlier failed write sticks. */
bool mig_stream_write(MigStream *s, const void *buf, size_t len, GError **errp);
bool mig_stream_write_u8(MigStream *s, uint8_t v, GError **errp);
bool mig_stream_write_be16(MigStream *s, uint16_t v, GError **errp);
bool mig_stream_write_be32(MigStream *s, uint32_t v, GError **errp);
bool mig_stream_write_be64(MigStream *s, uint64_t v, GError **errp);
VHOST_USER_API
bool mig_stream_flush(MigStream *s, GError **errp);

/*
 * Reads exactly len bytes. EOF before that is an error naming the current
 * section and how far into it the stream ended.
 */
bool mig_stream_read(MigStream *s, void *buf, size_t len, GError **errp);
bool mig_stream_read_u8(MigStream *s, uint8_t *v, GError **errp);
bool mig_stream_read_be16(MigStream *s, uint16_t *v, GError **errp);
bool mig_stream_read_be32(MigStream *s, uint32_t *v, GError **errp);
bool mig_stream_read_be64(MigStream *s, uint64_t *v, GError **errp);

/*
 * What the reader is in, for error messages ("header", "ram-pages"):
 * marks the start of a section; the string must outlive the section.
 */
void mig_stream_begin_section(MigStream *s, const char *name);
const char *mig_stream_section_name(const MigStream *s);
/* Bytes read since mig_stream_begin_section. */
uint64_t mig_stream_section_offset(const MigStream *s);

/* Bytes accepted for writing (buffered ones included), and bytes consumed. */
VHOST_USER_API
uint64_t mig_stream_bytes_written(const MigStream *s);
VHOST_USER_API
uint64_t mig_stream_bytes_read(const MigStream *s);

#endif
