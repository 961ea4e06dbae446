#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Live migration costs, each next to an anchor measured in the same run.
#
# Section 1: the dirty log and the guest-write tracking, in-process.
#   - dirty-log sync per GiB and per ring count (1, 4, 16 rings on one
#     device) at 0.1%, 1%, 10% dirty, against a raw bitmap fetch-and-clear
#     of the same size: BUILD/tests/bench-migrate-log (bench/bench-migrate-log.c).
#   - guest-write tracking scan per GiB (userfaultfd WP + PAGEMAP_SCAN)
#     against the same harvest: BUILD/tests/bench-ram-track.
#   Both print the medians of each side and of the paired ratios over
#   BENCH_REPS alternating repetitions (each repetition on stderr).
#
# Section 2: total time and downtime of a migration between two
#   vhost-user-vmm processes (QMP migrate on the source, -incoming on the
#   destination, query-migrate's total-time and downtime), for 256 MiB and
#   2 GiB guests, idle and under load, with two devices per side (blk and
#   net over our reference back-end; the blk back-ends share one image
#   file, as with shared storage). Needs a build with the migrate command;
#   without it the section stops with "migrate not supported by this build".
#
# Usage: bench/bench-migrate.sh [BUILD_DIR]    (default: build)
# Environment:
#   BENCH_REPS       repetitions of section 1, >= 7 (default 9)
#   BENCH_MIB        guest MiB for section 1 (default 4096 for the log,
#                    1024 for the tracking: it touches every page)
#   BENCH_SIZES      guest sizes of section 2 (default "256M 2G")
#   BENCH_MIGRATIONS migrations per case in section 2, median (default 3)
#   BENCH_SECTIONS   "1 2" (default), or just one of them

set -euo pipefail

die() {
    echo "bench-migrate: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
LOGBENCH=$BUILD/tests/bench-migrate-log
TRACKBENCH=$BUILD/tests/bench-ram-track
VMM=$BUILD/vhost-user-vmm
REF=$BUILD/contrib/vhost-user-backend
REPS=${BENCH_REPS:-9}
SECTIONS=${BENCH_SECTIONS:-1 2}
[[ -x $LOGBENCH && -x $TRACKBENCH && -x $VMM && -x $REF ]] ||
    die "build first: ninja -C $BUILD (need $LOGBENCH, $TRACKBENCH, $VMM, $REF)"
# Fewer only for run-all.sh's --quick and --smoke runs, which are looks, not figures.
(( REPS >= 7 )) || [[ ${BENCH_MODE:-full} != full ]] ||
    die "BENCH_REPS=$REPS: at least 7 repetitions for a median of ratios"
command -v python3 >/dev/null || die "python3 is needed for the QMP client of section 2"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-migrate-XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.3
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ ${BENCH_KEEP:-0} = 1 ]]; then
        echo "bench-migrate: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# ---- Section 1: dirty-log sync and guest-write tracking ----------------------
if [[ " $SECTIONS " = *" 1 "* ]]; then
    echo "== 1. dirty-log sync: vhost_user_base_log_sync against a raw fetch-and-clear"
    timeout 300 "$LOGBENCH" "${BENCH_MIB:-4096}" "$REPS" | grep -v '^#'
    echo
    echo "== 1. guest-write tracking: ram_track_sync (PAGEMAP_SCAN) against the same harvest"
    timeout 600 "$TRACKBENCH" "${BENCH_MIB:-1024}" "$REPS" | grep -v '^#'
    echo
fi

# ---- Section 2: total time and downtime, two VMM processes --------------------
# QMP: migrate on the source, poll query-migrate until completed or failed,
# print "TOTAL_MS DOWNTIME_MS". Exit 3 when the build has no migrate command.
QMP_MIGRATE=$(cat <<'PY'
import json, re, socket, sys, time
sock, uri, log = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX)
for _ in range(200):
    try:
        s.connect(sock)
        break
    except OSError:
        time.sleep(0.05)
f = s.makefile("rw")
def read():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
def cmd(name, args=None):
    f.write(json.dumps({"execute": name, "arguments": args or {}}) + "\n")
    f.flush()
    return read()
read()
cmd("qmp_capabilities")
r = cmd("migrate", {"uri": uri})
if r.get("error", {}).get("class") == "CommandNotFound":
    sys.exit(3)
if "error" in r:
    sys.exit("migrate: " + r["error"]["desc"])
def from_log():
    # A source whose workloads moved away exits right after completing.
    for _ in range(100):
        m = re.search(r"migration: completed in (\d+) ms, downtime (\d+) ms", open(log).read())
        if m:
            print(m.group(1), m.group(2))
            sys.exit(0)
        time.sleep(0.05)
    sys.exit("the source's monitor went away without a completed migration")
end = time.time() + 120
while time.time() < end:
    try:
        q = cmd("query-migrate")["return"]
    except (OSError, ValueError):
        from_log()
    if q.get("status") == "completed":
        print(q["total-time"], q["downtime"])
        sys.exit(0)
    if q.get("status") in ("failed", "cancelled"):
        sys.exit("migration %s: %s" % (q["status"], q.get("error-desc", "")))
    time.sleep(0.02)
sys.exit("migration did not end within 120 s")
PY
)

# One side: a blk and a net reference back-end, a VMM; $1 side name, $2 size,
# $3 "load" or "idle", the rest extra VMM arguments.
start_side() {
    local side=$1 size=$2 load=$3
    shift 3
    local d=$WORK/$side
    mkdir -p "$d"
    "$REF" --socket-path="$d/blk.sock" --type=blk --blk-file="$WORK/disk.img" \
        >"$d/blk.log" 2>&1 &
    PIDS+=($!)
    "$REF" --socket-path="$d/net.sock" --type=net >"$d/net.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do
        [[ -S $d/blk.sock && -S $d/net.sock ]] && break
        sleep 0.05
    done
    [[ -S $d/blk.sock && -S $d/net.sock ]] || die "$side: back-ends did not start: $(cat "$d"/*.log)"
    local wl=()
    if [[ $load = load ]]; then
        wl=(-workload "blk0:rw=randrw,bs=4k,iodepth=16,runtime=600s"
            -workload "net0:count=1000000000,size=64+1518,runtime=600s")
    fi
    timeout 900 "$VMM" -m "$size" \
        -object "memory-backend-memfd,id=mem,size=$size,share=on" -machine memory-backend=mem \
        -chardev "socket,id=cb,path=$d/blk.sock" \
        -device vhost-user-blk-pci,chardev=cb,id=blk0,num-queues=1 \
        -chardev "socket,id=cn,path=$d/net.sock" \
        -netdev vhost-user,id=net0,chardev=cn,queues=1 \
        -device virtio-net-pci,netdev=net0,id=net0 \
        -qmp "unix:$d/qmp.sock,server=on,wait=off" "${wl[@]}" "$@" \
        >"$d/vmm.out" 2>"$d/vmm.log" &
    PIDS+=($!)
}

stop_all() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}

if [[ " $SECTIONS " = *" 2 "* ]]; then
    echo "== 2. migration between two vhost-user-vmm processes (unix socket)"
    truncate -s 256M "$WORK/disk.img"
    printf '%6s  %5s  %14s  %14s  %16s\n' size load "total ms (med)" "downtime ms" "goal downtime"
    for size in ${BENCH_SIZES:-256M 2G}; do
        for load in idle load; do
            totals=() downs=()
            for run in $(seq "${BENCH_MIGRATIONS:-3}"); do
                rm -rf "$WORK/src" "$WORK/dst"
                start_side src "$size" "$load"
                start_side dst "$size" "$load" -incoming "unix:$WORK/mig.sock"
                for _ in $(seq 100); do
                    [[ -S $WORK/src/qmp.sock ]] && break
                    sleep 0.05
                done
                [[ -S $WORK/src/qmp.sock ]] || die "source VMM did not start: $(cat "$WORK/src/vmm.log")"
                sleep 1
                rc=0
                out=$(python3 -c "$QMP_MIGRATE" "$WORK/src/qmp.sock" \
                      "unix:$WORK/mig.sock" "$WORK/src/vmm.log" 2>"$WORK/qmp.err") || rc=$?
                stop_all
                if (( rc == 3 )) || grep -q "invalid option\|unknown option\|-incoming" \
                        "$WORK/dst/vmm.log" 2>/dev/null && [[ -z $out ]]; then
                    die "migrate not supported by this build (QMP migrate or -incoming missing)"
                fi
                [[ -n $out ]] || die "$size $load: $(cat "$WORK/qmp.err") (BENCH_KEEP=1 keeps the logs)"
                read -r t d <<<"$out"
                echo "  $size $load run $run: total $t ms, downtime $d ms" >&2
                totals+=("$t") downs+=("$d")
            done
            med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
            goal=-
            [[ $size = 2G && $load = idle ]] && goal="< 50"
            printf '%6s  %5s  %14s  %14s  %16s\n' "$size" "$load" "$(med "${totals[@]}")" \
                "$(med "${downs[@]}")" "$goal"
        done
    done
fi
