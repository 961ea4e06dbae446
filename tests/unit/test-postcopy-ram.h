/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the postcopy unit tests share: test-postcopy-ram.c owns the guest
 * (memfd RAM), the request record, the MigPostcopy helpers and the guest
 * threads that fault; test-postcopy-ram-backend.c runs them against a
 * back-end in a child process.
 */
#ifndef TESTS_UNIT_TEST_POSTCOPY_RAM_H
#define TESTS_UNIT_TEST_POSTCOPY_RAM_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "migration/postcopy-ram.h"
#include "system/memory.h"

#define MiB (1024u * 1024u)
#define PAGE 4096u
#define RAM_SIZE (1 * MiB)
#define RAM1_GPA (4 * MiB)
#define DATA_PAGES 64               /* the first pages of each block hold data */
#define DEADLINE_US (20 * G_USEC_PER_SEC)

/* Waits for a condition, failing after the deadline with what it was. */
#define WAIT_FOR(cond, what)                                                   \
    do {                                                                       \
        gint64 end_ = g_get_monotonic_time() + DEADLINE_US;                    \
        while (!(cond)) {                                                      \
            ck_assert_msg(g_get_monotonic_time() < end_, "timed out: %s", what); \
            g_usleep(200);                                                     \
        }                                                                      \
    } while (0)

typedef struct Guest {
    GuestMemory *mem;
    RamBlock *block[2];
} Guest;

/* The request callback's record: how often each page was asked for. */
typedef struct Requests {
    GMutex lock;
    GHashTable *count;          /* gpa -> count */
    unsigned total;
} Requests;

/* A guest thread reading one byte of guest RAM. */
typedef struct Toucher {
    volatile uint8_t *addr;
    int tid;                    /* atomic */
    int done;                   /* atomic */
    uint8_t seen;
    GThread *thread;
} Toucher;

/* ram0 at GPA 0, ram1 at RAM1_GPA, each with DATA_PAGES of data, then holes. */
Guest *pr_guest_new(void);
uint8_t *pr_hva(Guest *g, uint64_t gpa);
/* Whether the page is allocated in its block's memfd. */
bool pr_in_file(Guest *g, uint64_t gpa);

unsigned pr_requests_for(Requests *rq, uint64_t gpa);
unsigned pr_requests_total(Requests *rq);

/* A MigPostcopy on g whose page requests go to rq; freed with both. */
MigPostcopy *pr_pc_new(Guest *g, Requests *rq);
void pr_pc_free(MigPostcopy *pc, Requests *rq, Guest *g);
void pr_discard(MigPostcopy *pc, uint64_t gpa, uint64_t len);
void pr_listen_ok(MigPostcopy *pc);
/* Places the page at gpa filled with byte; asserts it went in. */
void pr_place(MigPostcopy *pc, uint64_t gpa, uint8_t byte);
MigPostcopyStats pr_stats(MigPostcopy *pc);
void pr_assert_counts(const MigPostcopyStats *st, MigPostcopyStats want);
void pr_finish_ok(MigPostcopy *pc);

/* A guest thread reading the byte at addr; join returns what it read. */
void pr_toucher_start(Toucher *t, uint8_t *addr);
uint8_t pr_toucher_join(Toucher *t);
/* Asserts that thread tid of process pid sleeps (blocked on its fault). */
void pr_assert_asleep(int pid, int tid, const char *who);

/* test-postcopy-ram-backend.c: to the "core" TCase. */
void postcopy_ram_backend_add_tests(TCase *tc);

#endif
