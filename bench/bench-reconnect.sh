#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Recovery time after a back-end crash or upgrade: from the back-end
# listening again to every ring of the device running again, for our VMM
# with reconnect-ms=1, next to QEMU 7.2, whose minimum is reconnect=1
# (seconds, a fixed 1 s retry timer). The measuring program is
# bench/bench-reconnect.c (built as BUILD_DIR/tests/bench-reconnect); its
# header says what exactly is timed.
#
# Usage: bench/bench-reconnect.sh [BUILD_DIR]    (default: build)
# Environment:
#   BENCH_RUNS       runs per downtime, the median is printed (default 15)
#   BENCH_DOWNTIMES  how long the back-end is gone, ms ("0 10 100 500 1500";
#                    0 = only the connection drops, the listener stays)
#   BENCH_QEMU       qemu-system-x86_64 to measure as well (default: the one
#                    on PATH, if any; "none" to skip). Debian: qemu-system-x86.

set -euo pipefail

die() {
    echo "bench-reconnect: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
PROG=$BUILD/tests/bench-reconnect
VMM=$BUILD/vhost-user-vmm
[[ -x $PROG && -x $VMM ]] || die "build first: ninja -C $BUILD (need $PROG and $VMM)"

QEMU=${BENCH_QEMU:-$(command -v qemu-system-x86_64 || true)}
[[ $QEMU = none ]] && QEMU=
if [[ -n $QEMU ]]; then
    [[ -x $QEMU ]] || die "BENCH_QEMU=$QEMU is not executable"
    echo "anchor: $("$QEMU" --version | head -1)" >&2
else
    echo "anchor: QEMU not found, only its 1 s timer is printed" >&2
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# Its VMMs die with the program (PR_SET_PDEATHSIG); the socket's directory
# goes here even when it is interrupted. The timeout bounds a hung run.
SOCK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-reconnect-XXXXXX")
trap 'rm -rf "$SOCK_DIR"' EXIT
VMM_BINARY=$VMM BENCH_QEMU=$QEMU BENCH_SOCK_DIR=$SOCK_DIR timeout 600 "$PROG"
