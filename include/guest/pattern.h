/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Verifiable data patterns. Every block a workload writes, and every
 * packet it sends, carries a header naming what it is (which block or
 * which packet, which generation) followed by bytes derived from that
 * header, so a read or a received packet can be checked on its own:
 * data from the wrong place, a stale generation, a torn or shifted buffer
 * are all told apart in the mismatch report.
 */
#ifndef GUEST_PATTERN_H
#define GUEST_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PATTERN_MAGIC   0x7674737470617474ull   /* "ttapstsv" */

typedef struct __attribute__((packed)) PatternHeader {
    uint64_t magic;
    uint64_t id;                /* block number, or stream:sequence for packets */
    uint64_t generation;        /* bumps each time the same id is rewritten */
    uint32_t len;               /* bytes covered, header included */
    uint32_t seed;              /* run seed: two runs never match by accident */
} PatternHeader;

_Static_assert(sizeof(PatternHeader) == 32, "pattern header");

/*
 * Fills buf (len >= sizeof(PatternHeader)) for (id, generation, seed).
 * For block I/O call it per block so each block is checkable alone.
 */
void pattern_fill(void *buf, size_t len, uint64_t id, uint64_t generation, uint32_t seed);

typedef struct PatternMismatch {
    size_t offset;              /* first differing byte */
    uint64_t found_id;          /* header found in the buffer, if it had one */
    uint64_t found_generation;
    bool header_ok;             /* magic present */
} PatternMismatch;

/* True when buf is exactly what pattern_fill wrote for these arguments. */
bool pattern_check(const void *buf, size_t len, uint64_t id, uint64_t generation,
                   uint32_t seed, PatternMismatch *mm);

/*
 * The header alone (net verify=seq): what names the packet or block, and
 * its length; the bytes after it are neither written nor read.
 */
void pattern_fill_header(void *buf, size_t len, uint64_t id, uint64_t generation,
                         uint32_t seed);
bool pattern_check_header(const void *buf, size_t len, uint64_t id, uint64_t generation,
                          uint32_t seed, PatternMismatch *mm);

/*
 * The cheap variant (net verify=sample): the header and
 * PATTERN_SAMPLE_WORDS words of the full pattern spread over the buffer,
 * the last one included; nothing else is written or read. A buffer
 * pattern_fill() wrote passes pattern_check_sample() too.
 */
#define PATTERN_SAMPLE_WORDS    8
void pattern_fill_sample(void *buf, size_t len, uint64_t id, uint64_t generation,
                         uint32_t seed);
bool pattern_check_sample(const void *buf, size_t len, uint64_t id, uint64_t generation,
                          uint32_t seed, PatternMismatch *mm);

/* All zeroes (what discard/write-zeroes leave), with the offset of the first non-zero. */
bool pattern_is_zero(const void *buf, size_t len, size_t *offset);

#endif
