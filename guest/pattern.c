/* SPDX-License-Identifier: BSD-3-Clause */
/* Verifiable data patterns; see include/guest/pattern.h. */
#include <string.h>

#include "guest/pattern.h"

/*
 * xorshift64*: cheap, and the byte stream depends on every header field,
 * so a buffer from another block or generation differs almost everywhere.
 */
static uint64_t pattern_state(uint64_t id, uint64_t generation, uint32_t seed)
{
    uint64_t x = id * 0x9e3779b97f4a7c15ull ^ generation * 0xbf58476d1ce4e5b9ull ^
                 ((uint64_t)seed << 32 | seed) ^ PATTERN_MAGIC;
    return x ? x : 1;
}

static uint64_t pattern_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dull;
}

static void pattern_header(PatternHeader *h, size_t len, uint64_t id,
                           uint64_t generation, uint32_t seed)
{
    h->magic = PATTERN_MAGIC;
    h->id = id;
    h->generation = generation;
    h->len = (uint32_t)len;
    h->seed = seed;
}

void pattern_fill(void *buf, size_t len, uint64_t id, uint64_t generation, uint32_t seed)
{
    uint8_t *p = buf;
    uint64_t x = pattern_state(id, generation, seed);
    PatternHeader h;
    size_t off = sizeof(h);

    pattern_header(&h, len, id, generation, seed);
    memcpy(p, &h, sizeof(h));
    while (off + 8 <= len) {
        uint64_t v = pattern_next(&x);
        memcpy(p + off, &v, 8);
        off += 8;
    }
    if (off < len) {
        uint64_t v = pattern_next(&x);
        memcpy(p + off, &v, len - off);
    }
}

/* Index of the first differing byte of two n-byte runs known to differ. */
static size_t pattern_first_diff(const uint8_t *got, const void *want, size_t n)
{
    const uint8_t *e = want;
    size_t k = 0;

    while (k < n - 1 && got[k] == e[k]) {
        k++;
    }
    return k;
}

bool pattern_check(const void *buf, size_t len, uint64_t id, uint64_t generation,
                   uint32_t seed, PatternMismatch *mm)
{
    const uint8_t *p = buf;
    uint64_t x = pattern_state(id, generation, seed);
    PatternHeader want, got;
    size_t off;

    memset(mm, 0, sizeof(*mm));
    if (len < sizeof(want)) {
        return false;
    }
    pattern_header(&want, len, id, generation, seed);
    memcpy(&got, p, sizeof(got));
    mm->header_ok = got.magic == PATTERN_MAGIC;
    mm->found_id = got.id;
    mm->found_generation = got.generation;
    if (memcmp(&want, &got, sizeof(want)) != 0) {
        const uint8_t *a = (const uint8_t *)&want, *b = (const uint8_t *)&got;
        for (off = 0; a[off] == b[off]; off++) {
        }
        mm->offset = off;
        return false;
    }
    /*
     * Whole words compared as integers (memcpy keeps the loads aliasing-
     * and alignment-safe and compiles to one load); the bytes are looked
     * at only once a word differs, to name the first bad one.
     */
    for (off = sizeof(want); off + 8 <= len; off += 8) {
        uint64_t v = pattern_next(&x), w;
        memcpy(&w, p + off, 8);
        if (w != v) {
            mm->offset = off + pattern_first_diff(p + off, &v, 8);
            return false;
        }
    }
    if (off < len) {
        uint64_t v = pattern_next(&x);
        if (memcmp(p + off, &v, len - off) != 0) {
            mm->offset = off + pattern_first_diff(p + off, &v, len - off);
            return false;
        }
    }
    return true;
}

bool pattern_is_zero(const void *buf, size_t len, size_t *offset)
{
    const uint8_t *p = buf;

    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            if (offset) {
                *offset = i;
            }
            return false;
        }
    }
    return true;
}
