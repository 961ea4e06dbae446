#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Control-plane cost: per-message time of GET_FEATURES, SET_VRING_NUM,
# SET_VRING_ADDR and GET_VRING_BASE through the library against a raw
# unix-socket request/reply in the same run (median of paired ratios over
# alternating repetitions), bring-up time of 1, 4, 16 and 64 rings
# (pipelined and one round trip per ack), and syscalls per message of each
# client (counted under strace, per thread). The measuring program is
# bench/bench-ctl.c (built as BUILD_DIR/tests/bench-ctl); its header says
# what exactly is timed.
#
# Usage: bench/bench-ctl.sh [BUILD_DIR]    (default: build)
# Environment:
#   BENCH_REPS   alternating repetitions, the medians are printed (default 9)
#   BENCH_MSGS   messages per repetition (default 2000)

set -euo pipefail

die() {
    echo "bench-ctl: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
PROG=$BUILD/tests/bench-ctl
[[ -x $PROG ]] || die "build first: ninja -C $BUILD (need $PROG)"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
timeout 600 "$PROG"

if ! command -v strace >/dev/null; then
    echo "syscalls/message: strace not found (Debian: strace), not counted"
    exit 0
fi
MSGS=${BENCH_MSGS:-2000}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-ctl-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
BENCH_MSGS=$MSGS timeout 600 strace -f -qq -o "$TMP/trace" "$PROG" --count 2>"$TMP/tids"
# Each client thread ran MSGS messages of each of the 4 kinds. A call that
# strace split in two (<unfinished ...> / <... resumed>) counts once.
for side in lib raw; do
    tid=$(sed -n "s/^$side-tid=//p" "$TMP/tids")
    [[ -n $tid ]] || die "no $side thread id"
    n=$(grep -c "^$tid " "$TMP/trace" | head -1)
    resumed=$(grep "^$tid " "$TMP/trace" | grep -c "resumed>" || true)
    echo "$side: $(awk -v n="$n" -v r="$resumed" -v m="$MSGS" \
        'BEGIN { printf "%.2f", (n - r) / (4 * m) }') syscalls/message" \
        "($(grep "^$tid " "$TMP/trace" | grep -v "resumed>" |
            sed -E 's/^[0-9]+ +([a-z_0-9]+)\(.*/\1/' | sort | uniq -c | sort -rn |
            awk -v m="$MSGS" '$1 >= m { printf "%s%s %.2f", sep, $2, $1 / (4 * m); sep = ", " }'))"
done
