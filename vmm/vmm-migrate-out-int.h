/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the source's two files share: vmm-migrate-out.c (blockers, the
 * precopy rounds, the stop-and-copy switchover) and
 * vmm-migrate-postcopy-out.c (the postcopy switch, the page requests and
 * the background stream). All of it runs on the source's migration thread
 * unless marked otherwise.
 */
#ifndef VMM_MIGRATE_OUT_INT_H
#define VMM_MIGRATE_OUT_INT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/ram-track.h"
#include "migration/stream.h"
#include "vmm/vmm-migrate-int.h"
#include "vmm/vmm-runstate.h"

/* Source's postcopy: vmm-migrate-postcopy-out.c, its recovery in -recover.c. */
typedef struct MigOutPostcopy {
    /*
     * Pages the destination still lacks: a bit is claimed (atomically
     * cleared) by whoever sends the page, so each goes on one connection
     * only. nowed (atomic) counts them until they are on their way: a
     * page claimed for the preempt connection counts until it is written.
     */
    uint64_t *owed;
    uint64_t nowed;
    /*
     * postcopy-preempt: the second connection, written by the reader
     * thread (requested pages only). NULL: none, or it broke (pre_broken:
     * requests are served on the main connection, even for pages no
     * longer owed, since one sent on the broken connection may be lost).
     */
    MigStream *pre;
    bool pre_broken;
    GThread *reader;
    GMutex lock;                /* below */
    GCond cond;
    GArray *queue;              /* MigRpMsg requests, not served yet */
    bool acked;                 /* "VUOK" */
    bool stopping;              /* the sender is done: the reader must not wait */
    GError *err;                /* the reader's end other than the ack */
    bool dest_failed;           /* "VUFL": the destination gave up, no recovery */
    /*
     * Atomic: 1 + the bitmap word of the latest request, 0 when none came
     * since the background took it; the background's next window starts
     * there (see mig_out_background_run). follow: whether it does.
     */
    uint64_t follow_word;
    bool follow;
    GArray *rings;              /* uint64_t: page numbers of the devices' rings */
} MigOutPostcopy;

typedef struct MigOut {
    VmmMigrate *mm;
    VmmMachine *m;
    GuestMemory *mem;
    char *uri;
    int fd;                     /* the stream's, for the acknowledgement */
    MigStream *s;
    RamTrack *track;            /* NULL: stop-and-copy */
    unsigned nlogging;          /* devices [0, nlogging) log */
    uint64_t *bitmap;
    uint64_t *window;           /* the part of a round being sent */
    uint64_t npages;
    uint64_t nwords;
    bool stopped;               /* we stopped the guest */
    bool was_running;
    VmmRunState prev_state;
    GPtrArray *blobs;           /* GByteArray per device, at switchover */
    uint64_t bw_applied;        /* max-bandwidth the stream has, UINT64_MAX: none yet */
    /* postcopy */
    bool postcopy_cap;          /* postcopy-ram at migrate: ADVISE was sent */
    bool preempt_cap;           /* postcopy-preempt at migrate */
    bool postcopy_now;          /* switch: the round stopped at switch_word */
    bool switch_all;            /* ... of the first round (every page from there owed) */
    uint64_t switch_word;
    bool postcopy_switched;     /* LISTEN went out: the guest can no longer resume here */
    uint64_t bytes_prev;        /* written on the connections before a recovery */
    MigStream *pre;             /* postcopy-preempt's connection until the switch takes it */
    MigOutPostcopy *pc;
} MigOut;

/* vmm-migrate-out.c */
/* Connects to uri: o->fd, o->s (cancel can shut it down), the stream's header. */
bool mig_out_connect(MigOut *o, const char *uri, GError **errp);
bool mig_out_sync(MigOut *o, uint64_t *dirty, GError **errp);
bool mig_out_cancelled(MigOut *o, GError **errp);
uint64_t mig_out_params(MigOut *o, uint64_t *limit_ms);
/* Loop (vmm_loop_call): every device's state into o->blobs. */
bool mig_out_save_cb(void *opaque, GError **errp);
/*
 * The point from which migrate_cancel can no longer undo the migration:
 * under VmmMigrate.lock, fails ("cancelled") if a cancel came first, else
 * sets *flag (end_sent, postcopy: fields of VmmMigrate).
 */
bool mig_out_no_return(MigOut *o, bool *flag, GError **errp);
/* Each device's state section, from o->blobs. */
bool mig_out_send_devices(MigOut *o, GError **errp);

/* vmm-migrate-postcopy-out.c */
/* Loop, at migrate: each device's back-end can do postcopy (PAGEFAULT). */
bool mig_out_postcopy_check(VmmMigrate *mm, GError **errp);
/*
 * postcopy-preempt, right after ADVISE: a second connection to the
 * destination's address (o->pre), for requested pages only. Made at the
 * start, not at the switch: neither side then connects, accepts or warms
 * a thread while the guest is stopped and the first faults wait. Without
 * it (the destination does not take it) requests go on the main
 * connection, as without the capability; a status line says so.
 */
void mig_out_pc_preempt_connect(MigOut *o);
/*
 * Whether to switch to postcopy here: migrate-start-postcopy was asked,
 * or (round_end: a round did not converge) x-postcopy-auto says so.
 */
bool mig_out_postcopy_wanted(MigOut *o, bool round_end);
/*
 * The switch (guest stopped, owed pages discarded, devices, RUN), the
 * background stream with the requests first, END and the
 * acknowledgement. The guest stays stopped here whatever happens.
 */
bool mig_out_postcopy(MigOut *o, GError **errp);
/* The return path's reader ended and freed (any outcome). */
void mig_out_postcopy_cleanup(MigOut *o);
/* The return path's reader thread (o->fd). */
gpointer mig_out_rp_thread(gpointer opaque);
/* Tells the reader to stop and joins it (its socket must be shut down or done). */
void mig_out_pc_stop_reader(MigOutPostcopy *pc);

/* vmm-migrate-postcopy-recover.c */
/*
 * Past POSTCOPY_RUN, err (taken) ended the connection: postcopy-paused
 * until migrate resume=true connects again and the destination said
 * which pages it lacks (o->pc->owed becomes that set). True: postcopy
 * goes on on the new connection; false (errp): the VMM exits.
 */
bool mig_out_pc_recover(MigOut *o, GError *err, GError **errp);

#endif
