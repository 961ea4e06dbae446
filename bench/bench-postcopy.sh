#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Postcopy between two vhost-user-vmm processes: what serving a page fault
# costs the guest and the back-end once the destination runs, next to the
# raw anchor measured in the same run.
#
# Each repetition runs, in an order that alternates between repetitions:
#   - the anchor: BUILD/tests/bench-postcopy-fault PAGES 1 (a bare
#     userfaultfd read + one socket round trip + UFFDIO_COPY / UFFDIO_WAKE;
#     its "raw" median anchors the guest's faults, "raw-be" the
#     back-end's: see bench/README.md); with *-tcp cases a second one,
#     anchor-tcp, whose round trip is TCP between the two namespaces
#     (BENCH_PC_TCP), the anchor of those cases;
#   - one postcopy migration per case, each case a pair of fresh VMMs with
#     a blk device and a randrw workload (the source's RAM filled: no zero
#     page), capability postcopy-ram on both sides (and postcopy-preempt,
#     unless BENCH_PREEMPT=0), a downtime-limit of 0
#     (precopy never converges), migrate-start-postcopy once half of the
#     RAM went:
#       ours-unix  our reference back-end on both sides (one disk file),
#                  the destination's with --postcopy-touch=listen (it reads
#                  every page after LISTEN: back-end faults), over a unix
#                  socket
#       ours-tcp   the same over TCP between two network namespaces joined
#                  by a veth pair
#       ours-plain-unix, ours-plain-tcp
#                  our back-end without --postcopy-touch: it faults only
#                  where its I/O meets a missing page, as qsd does, so the
#                  guest's faults are not served beside a back-end that
#                  faults on every page (that storm shares the 2 cores)
#       qsd-unix   qemu-storage-daemon on both sides (one image, no lock)
#       qsd-tcp    the same over TCP between the namespaces
# From the destination's query-migrate at completion: faults of the guest
# and of the back-end, their blocktime p50/p90/p99, pages placed per second
# from the switch to completion (the background stream, requested pages
# included), and the total blocktime (guest + back-end) per GiB of RAM.
# Printed: the medians over the repetitions, and the median of the paired
# ratios (a case's p50 / the anchor's median of the same repetition).
#
# Usage: bench/bench-postcopy.sh [BUILD_DIR]    (default: build)
# Environment:
#   BENCH_REPS   repetitions, >= 7 (default 7)
#   BENCH_MIB    guest MiB (default 128)
#   BENCH_PAGES  faults per anchor run (default 256)
#   BENCH_CASES  cases to run (default "ours-unix ours-tcp ours-plain-unix
#                ours-plain-tcp qsd-unix qsd-tcp")
#   BENCH_PREEMPT 0: without capability postcopy-preempt (default 1: with)
#   BENCH_FAULT_SCHED  x-postcopy-fault-sched on both VMMs: auto (default),
#                fifo, slice or normal (the threads a fault waits for)
#   BENCH_KEEP=1 keep the logs (a failed migration keeps its own in WORK/failed)
#   BENCH_TRACE_DIR  a directory: trace mode (scripts/postcopy-fault-trace.sh):
#                the VMMs run with VHOST_USER_POSTCOPY_TRACE=1, no anchor, no
#                table, each case's logs copied to DIR/CASE-src, DIR/CASE-dst;
#                exit status 1 if a migration failed
# Needs root (ip netns, userfaultfd), python3, qemu-storage-daemon for qsd-*.

set -euo pipefail

die() {
    echo "bench-postcopy: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
ANCHOR=$BUILD/tests/bench-postcopy-fault
VMM=$BUILD/vhost-user-vmm
REF=$BUILD/contrib/vhost-user-backend
REPS=${BENCH_REPS:-7}
MIB=${BENCH_MIB:-128}
PAGES=${BENCH_PAGES:-256}
CASES=${BENCH_CASES:-ours-unix ours-tcp ours-plain-unix ours-plain-tcp qsd-unix qsd-tcp}
PREEMPT=${BENCH_PREEMPT:-1}
FAULT_SCHED=${BENCH_FAULT_SCHED:-auto}
TRACE_DIR=${BENCH_TRACE_DIR:-}
[[ -x $ANCHOR && -x $VMM && -x $REF ]] ||
    die "build first: ninja -C $BUILD (need $ANCHOR, $VMM, $REF)"
# Fewer only for run-all.sh's --quick and --smoke runs, which are looks, not figures.
if [[ -n $TRACE_DIR ]]; then
    mkdir -p "$TRACE_DIR" || die "cannot create $TRACE_DIR"
    export VHOST_USER_POSTCOPY_TRACE=1
fi
(( REPS >= 7 )) || [[ ${BENCH_MODE:-full} != full || -n $TRACE_DIR ]] ||
    die "BENCH_REPS=$REPS: at least 7 repetitions for a median of ratios"
command -v python3 >/dev/null || die "python3 is needed for the QMP client"
[[ " $CASES " != *" qsd-"* ]] || command -v qemu-storage-daemon >/dev/null ||
    die "qemu-storage-daemon is missing (Debian package qemu-system-common)"
[[ " $CASES " != *"-tcp "* ]] || command -v ip >/dev/null || die "ip is missing (iproute2)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-postcopy-XXXXXX")
NS_A=bpc-a-$$
NS_B=bpc-b-$$
ADDR_B=10.231.0.2
PIDS=()      # back-ends: SIGTERM
VPIDS=()     # VMMs: SIGKILL (the figures are taken; a VMM whose back-end
             # went away would wait for it to come back)
stop_all() {
    local p
    for p in "${VPIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${VPIDS[@]}" "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    PIDS=() VPIDS=()
}
cleanup() {
    stop_all
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    if [[ ${BENCH_KEEP:-0} = 1 || -d $WORK/failed ]]; then
        echo "bench-postcopy: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

if [[ " $CASES " = *"-tcp "* ]]; then
    ip netns add "$NS_A" && ip netns add "$NS_B" &&
        ip link add pc0 netns "$NS_A" type veth peer name pc0 netns "$NS_B" &&
        ip -n "$NS_A" addr add 10.231.0.1/24 dev pc0 &&
        ip -n "$NS_B" addr add $ADDR_B/24 dev pc0 &&
        ip -n "$NS_A" link set pc0 up && ip -n "$NS_B" link set pc0 up &&
        ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up ||
        die "cannot set up the network namespaces (root needed)"
fi

# QMP: postcopy-ram on both sides, migrate-incoming on the destination,
# migrate with a downtime-limit of 0, migrate-start-postcopy once half the
# RAM went, then the destination's query-migrate until completed. Prints
# one JSON line: its postcopy figures, and ms from the switch to completion.
QMP_POSTCOPY=$(cat <<'PY'
import json, socket, sys, time
src_sock, dst_sock, uri, src_log = sys.argv[1:5]
ram, preempt, fault_sched = int(sys.argv[5]), sys.argv[6] == "1", sys.argv[7]
def connect(path):
    end = time.time() + 20
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            if time.time() > end:
                sys.exit("no monitor at " + path)
            time.sleep(0.02)
    f = s.makefile("rw")
    def cmd(name, args=None):
        f.write(json.dumps({"execute": name, "arguments": args or {}}) + "\n")
        f.flush()
        while True:
            m = json.loads(f.readline())
            if "event" not in m:
                if "error" in m:
                    sys.exit("%s: %s" % (name, m["error"]["desc"]))
                return m["return"]
    json.loads(f.readline())
    cmd("qmp_capabilities")
    return cmd
src, dst = connect(src_sock), connect(dst_sock)
caps = {"capabilities": [{"capability": c, "state": True} for c in
                         ["postcopy-ram"] + (["postcopy-preempt"] if preempt else [])]}
src("migrate-set-capabilities", caps)
dst("migrate-set-capabilities", caps)
src("migrate-set-parameters", {"x-postcopy-fault-sched": fault_sched})
dst("migrate-set-parameters", {"x-postcopy-fault-sched": fault_sched})
dst("migrate-incoming", {"uri": uri})
end = time.time() + 20
while "workload started" not in open(src_log).read():
    if time.time() > end:
        sys.exit("the source's workload did not start")
    time.sleep(0.02)
src("migrate-set-parameters", {"downtime-limit": 0})
src("migrate", {"uri": uri})
end = time.time() + 60
while True:
    q = src("query-migrate")
    if q.get("status") in ("failed", "cancelled", "completed"):
        sys.exit("migration %s before the switch" % q["status"])
    if q.get("ram", {}).get("transferred", 0) >= ram // 2:
        break
    if time.time() > end:
        sys.exit("half of the RAM did not go in 60 s")
    time.sleep(0.002)
src("migrate-start-postcopy")
t_switch = time.monotonic()
end = time.time() + 120
while True:
    q = dst("query-migrate")
    if q.get("status") == "completed":
        t_done = time.monotonic()
        break
    if q.get("status") in ("failed", "cancelled") or time.time() > end:
        sys.exit("destination: migration %s" % q.get("status"))
    time.sleep(0.005)
pc = q.get("postcopy", {})
pc["switch-to-done-ms"] = (t_done - t_switch) * 1000
pc["preempt-pages"] = q.get("ram", {}).get("postcopy-preempt-pages", 0)
print(json.dumps(pc))
PY
)

# One side: $1 side, $2 case, $3 "src" or "dst", then extra VMM arguments.
start_side() {
    local side=$1 case=$2 role=$3
    shift 3
    local d=$WORK/$side ns=() fill=()
    mkdir -p "$d"
    if [[ $case = *-tcp ]]; then
        [[ $role = src ]] && ns=(ip netns exec "$NS_A") || ns=(ip netns exec "$NS_B")
    fi
    if [[ $case = ours-* ]]; then
        local touch=()
        [[ $role = dst && $case != ours-plain-* ]] && touch=(--postcopy-touch=listen)
        "$REF" --socket-path="$d/blk.sock" --type=blk --blk-file="$WORK/disk.img" \
            "${touch[@]}" >"$d/be.log" 2>&1 &
    else
        qemu-storage-daemon \
            --blockdev "driver=file,node-name=f,filename=$WORK/disk.img,cache.direct=off,locking=off" \
            --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$d/blk.sock,writable=on,num-queues=1" \
            >"$d/be.log" 2>&1 &
    fi
    PIDS+=($!)
    for _ in $(seq 400); do
        [[ -S $d/blk.sock ]] && break
        sleep 0.05
    done
    [[ -S $d/blk.sock ]] || die "$side: back-end did not start: $(cat "$d/be.log")"
    [[ $role = src ]] && fill=(-x-fill-pattern)
    # ip netns exec execs the VMM: $! is the VMM's pid.
    "${ns[@]}" "$VMM" -m "${MIB}M" \
        -object "memory-backend-memfd,id=mem,size=${MIB}M,share=on" -machine memory-backend=mem \
        -chardev "socket,id=cb,path=$d/blk.sock" \
        -device vhost-user-blk-pci,chardev=cb,id=blk0,num-queues=1 \
        -qmp "unix:$d/qmp.sock,server=on,wait=off" \
        -workload "blk0:rw=randrw,bs=4k,iodepth=16,runtime=600s" "${fill[@]}" "$@" \
        >"$d/vmm.out" 2>"$d/vmm.log" &
    VPIDS+=($!)
}

# One migration of case $1, repetition $2; appends its JSON line to $WORK/$1.json.
run_case() {
    local case=$1 rep=$2 uri out rc=0
    rm -rf "$WORK/src" "$WORK/dst"
    if [[ $case = *-tcp ]]; then
        uri=tcp:$ADDR_B:$((4440 + rep))
    else
        uri=unix:$WORK/mig-$rep.sock
    fi
    start_side src "$case" src
    start_side dst "$case" dst -incoming defer
    out=$(python3 -c "$QMP_POSTCOPY" "$WORK/src/qmp.sock" "$WORK/dst/qmp.sock" "$uri" \
          "$WORK/src/vmm.log" $((MIB << 20)) "$PREEMPT" "$FAULT_SCHED" 2>"$WORK/qmp.err") || rc=$?
    stop_all
    if (( rc != 0 )) || [[ -z $out ]]; then
        # Counted and shown in the table, not retried: a failure is a finding.
        echo "  rep $rep $case: FAILED: $(cat "$WORK/qmp.err"); destination:" >&2
        grep -v '^$' "$WORK/dst/vmm.log" | head -12 | sed 's/^/    /' >&2
        mkdir -p "$WORK/failed"
        cp -r "$WORK/dst" "$WORK/failed/$case-$rep-dst"
        cp -r "$WORK/src" "$WORK/failed/$case-$rep-src"
        echo '{"failed": true}' >>"$WORK/$case.json"
        return
    fi
    echo "  rep $rep $case: $out" >&2
    echo "$out" >>"$WORK/$case.json"
}

# The anchor, repetition $1: "raw-median raw-be-median" appended to
# $WORK/anchor; with *-tcp cases also to $WORK/anchor-tcp, the same with
# its round trip over TCP between the namespaces (BENCH_PC_TCP), as theirs.
anchor_once() {
    local out
    out=$(timeout 300 "$@" "$ANCHOR" "$PAGES" 1) || die "bench-postcopy-fault failed"
    echo "$out" | awk '$1 == "raw" && NF == 5 { r = $2 } $1 == "raw-be" && NF == 5 { b = $2 }
                       END { print r, b }'
}
run_anchor() {
    anchor_once >>"$WORK/anchor"
    echo "  rep $1 anchor: $(tail -1 "$WORK/anchor") (raw, raw-be median us)" >&2
    if [[ " $CASES " = *"-tcp "* ]]; then
        anchor_once ip netns exec "$NS_B" env BENCH_PC_TCP="$ADDR_B $NS_A" >>"$WORK/anchor-tcp"
        echo "  rep $1 anchor-tcp: $(tail -1 "$WORK/anchor-tcp") (raw, raw-be median us)" >&2
    fi
}

truncate -s 256M "$WORK/disk.img"
: >"$WORK/anchor"
: >"$WORK/anchor-tcp"
if [[ -n $TRACE_DIR ]]; then
    for c in $CASES; do
        run_case "$c" 0
        cp -r "$WORK/src" "$TRACE_DIR/$c-src" && cp -r "$WORK/dst" "$TRACE_DIR/$c-dst"
    done
    [[ ! -d $WORK/failed ]]
    exit
fi
for rep in $(seq 0 $((REPS - 1))); do
    (( rep % 2 == 0 )) && run_anchor "$rep"
    for c in $CASES; do
        run_case "$c" "$rep"
    done
    (( rep % 2 == 1 )) && run_anchor "$rep"
done

echo "postcopy between two vhost-user-vmm processes, ${MIB} MiB guest, blk randrw, $REPS repetitions,"
echo "postcopy-preempt $( ((PREEMPT)) && echo on || echo off), x-postcopy-fault-sched $FAULT_SCHED;"
echo "medians over the repetitions; fault figures (us) from the destination's query-migrate;"
echo "percentiles and ratios over the repetitions where that side had a fault that waited"
echo "ratio = median of (case p50 / anchor median of the same repetition): guest against raw,"
echo "back-end against raw-be (bench-postcopy-fault, $PAGES faults per run); *-tcp cases"
echo "against anchor-tcp, whose round trip crosses the namespaces over TCP as theirs does"
python3 - "$WORK" $MIB $CASES <<'PY'
import json, statistics, sys
work, mib, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
anchors = {k: [tuple(map(float, l.split())) for l in open("%s/%s" % (work, k))]
           for k in ("anchor", "anchor-tcp")}
med = statistics.median
fmt = "%-15s %7s %7s %21s %21s %9s %12s %6s %6s %6s"
print(fmt % ("case", "f.guest", "f.be", "guest p50/p90/p99", "back-end p50/p90/p99",
             "pages/s", "block ms/GiB", "r.gst", "r.be", "failed"))
for k, anchor in anchors.items():
    if anchor:
        print(fmt % (k, "-", "-", "%.0f" % med(a[0] for a in anchor),
                     "%.0f" % med(a[1] for a in anchor), "-", "-", "1.00", "1.00", "-"))
for c in cases:
    anchor = anchors["anchor-tcp" if c.endswith("-tcp") else "anchor"]
    lines = [json.loads(l) for l in open("%s/%s.json" % (work, c))]
    # Paired with the anchor of the same repetition; failed runs drop out.
    pairs = [(r, a) for r, a in zip(lines, anchor) if not r.get("failed")]
    failed = len(lines) - len(pairs)
    if not pairs:
        print("%-15s all %d runs failed" % (c, failed))
        continue
    runs = [r for r, _ in pairs]
    m = lambda k: med(r.get(k, 0) for r in runs)
    # A side's percentiles over the runs where it had a fault that waited
    # (one on a page already there is only woken: not timed).
    timed = lambda side: [r for r in runs if r[side + "-max-us"] > 0]
    mt = lambda side, k: ("%.0f" % med(r[k] for r in timed(side))) if timed(side) else "-"
    pps = med(r["pages-placed"] / (r["switch-to-done-ms"] / 1000) for r in runs)
    block = med((r["blocktime-guest-us"] + r["blocktime-backend-us"]) / 1000 / (mib / 1024)
                for r in runs)
    rg = [r["guest-p50-us"] / a[0] for r, a in pairs if r["guest-max-us"] > 0]
    rb = [r["backend-p50-us"] / a[1] for r, a in pairs if r["backend-max-us"] > 0]
    print(fmt % (
        c, "%.0f" % m("faults-guest"), "%.0f" % m("faults-backend"),
        "/".join(mt("guest", "guest-%s-us" % p) for p in ("p50", "p90", "p99")),
        "/".join(mt("backend", "backend-%s-us" % p) for p in ("p50", "p90", "p99")),
        "%.0f" % pps, "%.0f" % block, "%.2f" % med(rg) if rg else "-",
        "%.2f" % med(rb) if rb else "-", "%d/%d" % (failed, len(lines))))
PY
