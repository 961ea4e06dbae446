#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# One postcopy fault through both VMMs, step by step, with timestamps.
#
# Runs one postcopy migration (postcopy-ram + postcopy-preempt) between two
# vhost-user-vmm processes with our reference back-end on both sides, the
# destination's touching every page after LISTEN (back-end faults) and a
# blk randrw workload in the guest (guest faults): bench/bench-postcopy.sh,
# case ours-unix (or those of BENCH_CASES), in its trace mode, which sets
# VHOST_USER_POSTCOPY_TRACE=1 in both VMMs. Both VMMs log each step of a
# requested page through the library's log handler with a CLOCK_MONOTONIC
# stamp (mig_pc_trace, include/migration/postcopy-ram.h), so the two logs
# merge on one clock. For one back-end fault and one guest fault (the one
# whose total is the median of the faults traced whole) it prints:
#
#   dst fault         the fault read from a userfaultfd: who, its address,
#                     GPA, RAM block and offset
#   dst request-sent  the request written on the return path (conn=main)
#   src request-recv  read by the source's return-path reader
#   src request-taken only without preempt: the sender thread took it
#   src page-sent     the page flushed (conn=preempt or main)
#   dst page-recv     the page read (conn=)
#   dst placed        UFFDIO_COPY returned (it woke the guest's threads)
#   dst woken         UFFDIO_WAKE on the back-end's ufd at its address, or
#                     (guest) the copy's own wake, with the blocked time
#
# then the median of each step's delta over every fault traced whole.
#
# Usage: scripts/postcopy-fault-trace.sh [--check] [BUILD_DIR]
#   --check  exit 1 unless at least one back-end fault and one guest fault
#            have every step, in order (the postcopy-fault-trace test)
# Environment: TRACE_KEEP=DIR keep the logs in DIR; BENCH_PREEMPT=0 requests
# on the main connection (then request-taken appears).
# Needs root (userfaultfd) and python3, as bench/bench-postcopy.sh.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHECK=0
if [[ ${1:-} = --check ]]; then
    CHECK=1
    shift
fi
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
CASES=${BENCH_CASES:-ours-unix}
if [[ -n ${TRACE_KEEP:-} ]]; then
    DIR=$TRACE_KEEP
    mkdir -p "$DIR"
else
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/postcopy-fault-trace-XXXXXX")
    trap 'rm -rf "$DIR"' EXIT
fi

BENCH_TRACE_DIR=$DIR BENCH_REPS=1 BENCH_CASES=$CASES "$ROOT/bench/bench-postcopy.sh" "$BUILD" ||
    { echo "postcopy-fault-trace: the migration failed" >&2; exit 1; }

rc=0
for c in $CASES; do
    echo "== $c"
    python3 - "$DIR/$c-src/vmm.log" "$DIR/$c-dst/vmm.log" "$CHECK" <<'PY' || rc=1
import re, statistics, sys

src_log, dst_log, check = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
LINE = re.compile(r"^vhost-user: postcopy t=(\d+) (\S+)(.*)$")
events = []                 # (t, side, step, {key: value})
for side, path in (("src", src_log), ("dst", dst_log)):
    for line in open(path, errors="replace"):
        m = LINE.match(line.rstrip("\n"))
        if m:
            kv = dict(w.split("=", 1) for w in m.group(3).split() if "=" in w)
            events.append((int(m.group(1)), side, m.group(2), kv))
events.sort(key=lambda e: e[0])
by_gpa = {}
for e in events:
    if "gpa" in e[3]:
        by_gpa.setdefault(e[3]["gpa"], []).append(e)

# The steps of one fault, in the order they must happen.
CHAIN = [("dst", "fault"), ("dst", "request-sent"), ("src", "request-recv"),
         ("src", "request-taken"), ("src", "page-sent"), ("dst", "page-recv"),
         ("dst", "placed"), ("dst", "woken")]
OPTIONAL = {"request-taken"}    # only when the request went to the sender thread

def chain_of(fault):
    """The fault's steps, each the first after the previous one; None if one is missing."""
    who, addr = fault[3]["who"], fault[3]["addr"]
    evs = by_gpa[fault[3]["gpa"]]
    steps, t = [fault], fault[0]
    for side, step in CHAIN[1:]:
        nxt = next((e for e in evs if e[0] >= t and e[1] == side and e[2] == step and
                    (step != "woken" or (e[3].get("who") == who and
                                         e[3].get("addr") == addr))), None)
        if nxt is None:
            if step in OPTIONAL:
                continue
            return None
        steps.append(nxt)
        t = nxt[0]
    return steps

faults = [e for e in events if e[1] == "dst" and e[2] == "fault" and "asked" not in e[3]]
result = {}
for kind, pick in (("back-end", lambda f: f[3]["who"] != "guest"),
                   ("guest", lambda f: f[3]["who"] == "guest")):
    mine = [f for f in faults if pick(f)]
    whole = [c for c in (chain_of(f) for f in mine) if c]
    result[kind] = whole
    print("%s faults: %d requested, %d traced whole (every step, in order)"
          % (kind, len(mine), len(whole)))
    if not whole:
        continue
    whole.sort(key=lambda c: c[-1][0] - c[0][0])
    c = whole[len(whole) // 2]
    f = c[0][3]
    print("  the median one: %s addr=%s gpa=%s (block %s offset %s), %d us fault to wake"
          % (f["who"], f["addr"], f["gpa"], f.get("block"), f.get("off"), c[-1][0] - c[0][0]))
    print("  %14s %7s %7s  %-4s %-13s %s" % ("t (us)", "+us", "step", "vmm", "step", "detail"))
    for i, e in enumerate(c):
        detail = " ".join("%s=%s" % kv for kv in e[3].items() if kv[0] != "gpa")
        print("  %14d %7d %7d  %-4s %-13s %s" % (e[0], e[0] - c[0][0],
              e[0] - c[i - 1][0] if i else 0, e[1], e[2], detail))
    # Where the time goes over all of them: the median delta of each step.
    deltas = {}
    for c2 in whole:
        for k in range(1, len(c2)):
            deltas.setdefault(c2[k][2], []).append(c2[k][0] - c2[k - 1][0])
    print("  median us over %d: " % len(whole) +
          ", ".join("%s %.0f" % (s, statistics.median(deltas[s]))
                    for _, s in CHAIN if s in deltas) +
          "; total %.0f" % statistics.median(c2[-1][0] - c2[0][0] for c2 in whole))
if check and not (result["back-end"] and result["guest"]):
    sys.exit("postcopy-fault-trace: no back-end fault and guest fault traced whole")
PY
done
exit $rc
