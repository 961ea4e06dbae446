/* SPDX-License-Identifier: BSD-3-Clause */
/* Verifiable data patterns; see include/guest/pattern.h. */
#include <string.h>

#include "guest/pattern.h"

#define MIN_SIZE(a, b)  ((a) < (b) ? (a) : (b))

/*
 * The run's key: every header field goes in, so a buffer from another
 * block, packet or generation differs almost everywhere.
 */
static uint64_t pattern_state(uint64_t id, uint64_t generation, uint32_t seed)
{
    uint64_t x = id * 0x9e3779b97f4a7c15ull ^ generation * 0xbf58476d1ce4e5b9ull ^
                 ((uint64_t)seed << 32 | seed) ^ PATTERN_MAGIC;
    return x ? x : 1;
}

/*
 * The word at byte offset off: a function of (key, offset) alone, not of
 * the word before it. A serial generator (xorshift) made every word wait
 * for the previous one; here the words of a buffer are independent, so
 * the CPU computes several at once (the loops are vectorisable; with
 * SSE2's emulated 64-bit multiply the compiler rightly keeps them
 * scalar), and any word can be produced alone (pattern_check_sample()). One multiply per word: a
 * checker needs sensitivity to every bit, not a statistical generator.
 */
static inline uint64_t pattern_word(uint64_t x, uint64_t off)
{
    uint64_t z = x ^ (off * 0xd6e8feb86659fd93ull);

    z ^= z >> 32;
    z *= 0x9fb21c651e98df25ull;
    return z ^ (z >> 29);
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

/* The header, then the word at each offset from off (a partial one last). */
static void pattern_put_words(uint8_t *p, size_t off, size_t len, uint64_t x)
{
    for (; off + 8 <= len; off += 8) {
        uint64_t v = pattern_word(x, off);
        memcpy(p + off, &v, 8);
    }
    if (off < len) {
        uint64_t v = pattern_word(x, off);
        memcpy(p + off, &v, len - off);
    }
}

void pattern_fill(void *buf, size_t len, uint64_t id, uint64_t generation, uint32_t seed)
{
    pattern_fill_header(buf, len, id, generation, seed);
    pattern_put_words(buf, sizeof(PatternHeader), len, pattern_state(id, generation, seed));
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

void pattern_fill_header(void *buf, size_t len, uint64_t id, uint64_t generation,
                         uint32_t seed)
{
    PatternHeader h;

    pattern_header(&h, len, id, generation, seed);
    memcpy(buf, &h, sizeof(h));
}

bool pattern_check_header(const void *buf, size_t len, uint64_t id,
                                 uint64_t generation, uint32_t seed, PatternMismatch *mm)
{
    const uint8_t *p = buf;
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
    return true;
}

/* The word (or the partial last one) at off, against the pattern. */
static bool pattern_check_word(const uint8_t *p, size_t off, size_t len, uint64_t x,
                               PatternMismatch *mm)
{
    uint64_t v = pattern_word(x, off), w = 0;
    size_t n = len - off < 8 ? len - off : 8;

    memcpy(&w, p + off, n);
    if (n < 8) {
        /* Only the bytes that are there: the rest of v is not in the buffer. */
        v &= ~0ull >> (64 - 8 * n);
    }
    if (w != v) {
        mm->offset = off + pattern_first_diff(p + off, &v, n);
        return false;
    }
    return true;
}

bool pattern_check(const void *buf, size_t len, uint64_t id, uint64_t generation,
                   uint32_t seed, PatternMismatch *mm)
{
    const uint8_t *p = buf;
    uint64_t x = pattern_state(id, generation, seed);
    size_t off;

    if (!pattern_check_header(p, len, id, generation, seed, mm)) {
        return false;
    }
    /*
     * Whole words compared as integers (memcpy keeps the loads aliasing-
     * and alignment-safe); the word that differs is then looked at byte
     * by byte, to name the first bad one.
     */
    for (off = sizeof(PatternHeader); off + 8 <= len; off += 8) {
        uint64_t w;

        memcpy(&w, p + off, 8);
        if (w != pattern_word(x, off)) {
            break;
        }
    }
    for (; off < len; off += 8) {
        if (!pattern_check_word(p, off, len, x, mm)) {
            return false;
        }
    }
    return true;
}

/*
 * Offset of sample word k (of PATTERN_SAMPLE_WORDS) in a buffer of len:
 * words of the full pattern's grid spread from the first after the
 * header to the last (which may be partial); with fewer words than
 * samples some repeat.
 */
static size_t pattern_sample_off(size_t len, unsigned k)
{
    size_t words = (len - sizeof(PatternHeader) + 7) / 8;

    if (words == 0) {
        return len;
    }
    return sizeof(PatternHeader) + 8 * ((words - 1) * k / (PATTERN_SAMPLE_WORDS - 1));
}

void pattern_fill_sample(void *buf, size_t len, uint64_t id, uint64_t generation,
                         uint32_t seed)
{
    uint8_t *p = buf;
    uint64_t x = pattern_state(id, generation, seed);

    pattern_fill_header(p, len, id, generation, seed);
    for (unsigned k = 0; k < PATTERN_SAMPLE_WORDS; k++) {
        size_t off = pattern_sample_off(len, k);

        pattern_put_words(p, off, MIN_SIZE(off + 8, len), x);
    }
}

bool pattern_check_sample(const void *buf, size_t len, uint64_t id, uint64_t generation,
                          uint32_t seed, PatternMismatch *mm)
{
    const uint8_t *p = buf;
    uint64_t x = pattern_state(id, generation, seed);

    if (!pattern_check_header(p, len, id, generation, seed, mm)) {
        return false;
    }
    for (unsigned k = 0; k < PATTERN_SAMPLE_WORDS; k++) {
        size_t off = pattern_sample_off(len, k);

        if (off < len && !pattern_check_word(p, off, len, x, mm)) {
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
