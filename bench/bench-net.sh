#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Packet rate of our front-end (vhost-user-vmm's virtio-net guest driver)
# next to DPDK's own vhost-user front-end (net_virtio_user), both against
# the same echo peer: dpdk-testpmd with a net_vhost port in io forwarding,
# port looped onto itself. Everything runs in one invocation so the ratio
# compares runs made on the same machine minutes apart.
#
# Usage: bench/bench-net.sh [BUILD_DIR]          (default: build)
# Environment:
#   BENCH_SECONDS  measured seconds per run (default 3)
#   BENCH_SIZES    frame sizes, without the virtio-net header ("64 1518")
#   BENCH_WINDOW   packets in flight per side (default 64)
#   BENCH_REPS     repetitions per figure, best one kept (default 2)
#   BENCH_ONEWAY   1: also run the one-way anchor, txonly into rxonly (0)
#   BENCH_KEEP     1: keep the logs and JSON in the temporary directory
#
# CPU placement (2 cores here): the peer's forwarding lcore busy-polls
# core 1; the front-end under test gets core 0 (our VMM via taskset, the
# anchor's forwarding lcore via --main-lcore 1). The peer's main lcore
# shares core 0 but only wakes once a second to print statistics.
# See bench/README.md for what each side does per packet.

set -euo pipefail

SECONDS_PER_RUN=${BENCH_SECONDS:-3}
SIZES=${BENCH_SIZES:-"64 1518"}
WINDOW=${BENCH_WINDOW:-64}
REPS=${BENCH_REPS:-2}
ONEWAY=${BENCH_ONEWAY:-0}

die() {
    echo "bench-net: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
VMM=$BUILD/vhost-user-vmm

[[ -x "$VMM" ]] || die "$VMM not found: build it first (meson setup $BUILD && ninja -C $BUILD)"
for tool in dpdk-testpmd taskset timeout jq awk; do
    command -v "$tool" >/dev/null ||
        die "'$tool' is missing (dpdk-testpmd: apt-get install dpdk; jq: apt-get install jq)"
done
[[ "$SECONDS_PER_RUN" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS: '$SECONDS_PER_RUN' is not a positive integer"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS: '$REPS' is not a positive integer"
[[ "$WINDOW" =~ ^[1-9][0-9]*$ ]] || die "BENCH_WINDOW: '$WINDOW' is not a positive integer"
for s in $SIZES; do
    if ! [[ "$s" =~ ^[0-9]+$ ]] || (( s < 46 || s > 1518 )); then
        die "BENCH_SIZES: '$s' is not a frame size in [46, 1518]"
    fi
done

TMP=$(mktemp -d /tmp/bench-net.XXXXXX)
# DPDK keeps per-process runtime files under /var/run/dpdk/PREFIX (root)
# or $XDG_RUNTIME_DIR/dpdk/PREFIX; unique prefixes keep parallel runs apart.
PREFIX=bench-net-$$
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        echo "bench-net: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    rm -rf /var/run/dpdk/"$PREFIX"-* "${XDG_RUNTIME_DIR:-/nonexistent}"/dpdk/"$PREFIX"-* 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one background process started here: SIGINT (testpmd prints its
# final statistics and closes its ports), then SIGKILL after 5 s.
stop_pid() {
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local keep=()
    for i in "${PIDS[@]}"; do
        [[ "$i" == "$pid" ]] || keep+=("$i")
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# The echo peer: a net_vhost port served by a fresh testpmd, forwarding
# lcore on core 1. $1: socket path, $2: forward mode, $3: log. Sets PEER.
start_peer() {
    local sock=$1 mode=$2 log=$3 i
    rm -f "$sock"
    # The outer timeout only bounds a run that went wrong; stop_pid ends it.
    timeout -s INT 120 dpdk-testpmd -l 0,1 --main-lcore 0 --no-huge -m 512 --no-pci \
        --file-prefix="$PREFIX-peer" \
        --vdev "net_vhost0,iface=$sock,queues=1" -- \
        --forward-mode="$mode" --port-topology=loop -a \
        --total-num-mbufs=16384 --stats-period=1 >"$log" 2>&1 </dev/null &
    PEER=$!
    PIDS+=("$PEER")
    for i in $(seq 150); do
        [[ -S "$sock" ]] && return 0
        kill -0 "$PEER" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "the echo peer (dpdk-testpmd net_vhost) did not create $sock within 15 s; log above"
}

# Mean of a testpmd statistic ("Rx-pps", "Tx-pps") over the samples of a
# log, leaving out the first two (link up, ramp) so the figure is steady state.
mean_pps() {
    local key=$1 log=$2
    grep -a -o "$key: *[0-9]*" "$log" | awk '{ v[NR] = $2 }
        END { n = 0; s = 0
              for (i = 3; i <= NR; i++) { s += v[i]; n++ }
              if (n == 0) { print "nan"; exit }
              printf "%.3f\n", s / n / 1e6 }'
}

# Ours: the VMM runs the net workload for SECONDS_PER_RUN against the peer.
# Sets RESULT to the Mpps of the JSON summary. (Not run in $(...): a
# subshell would hide its background pids from the cleanup trap.)
run_ours() {
    local size=$1 sock=$TMP/ours.sock json=$TMP/ours-$1.json err=$TMP/ours-$1.err
    start_peer "$sock" io "$TMP/peer-ours-$size.log"
    # count is only a ceiling: the runtime ends the sending.
    if ! timeout $((SECONDS_PER_RUN + 30)) taskset -c 0 "$VMM" -m 256M \
            -chardev "socket,id=c0,path=$sock" \
            -netdev vhost-user,id=net0,chardev=c0,queues=1 \
            -device virtio-net-pci,netdev=net0,id=net0 \
            -workload "net0:count=1000000000,size=$size,window=$WINDOW,runtime=${SECONDS_PER_RUN}s" \
            -summary json >"$json" 2>"$err"; then
        tail -n 20 "$err" >&2
        die "vhost-user-vmm failed at size $size (stderr above)"
    fi
    stop_pid "$PEER"
    [[ "$(jq -r .ok "$json")" == true ]] || die "size $size: workload not ok: $(cat "$json")"
    RESULT=$(jq -r '.mpps' "$json")
}

# The anchor: a second testpmd whose port is net_virtio_user (DPDK's
# vhost-user front-end) on the peer's socket, forwarding lcore on core 0.
# $1: size, $2: anchor forward mode, $3: peer forward mode, $4: statistic.
# Sets RESULT to the mean Mpps.
run_anchor() {
    local size=$1 mode=$2 peer_mode=$3 key=$4 sock=$TMP/anchor.sock
    local log=$TMP/anchor-$mode-$size.log pid i n
    local extra=()

    start_peer "$sock" "$peer_mode" "$TMP/peer-$mode-$size.log"
    # io with --tx-first: one burst of WINDOW packets is sent, then every
    # packet received is sent again, so WINDOW packets circulate through
    # the echo, like our closed-loop window.
    [[ "$mode" == io ]] && extra=(--tx-first)
    timeout -s INT 120 dpdk-testpmd -l 0,1 --main-lcore 1 --no-huge -m 512 --no-pci \
        --single-file-segments --file-prefix="$PREFIX-anchor" \
        --vdev "net_virtio_user0,path=$sock,queues=1" -- \
        --forward-mode="$mode" --port-topology=loop "${extra[@]}" \
        --burst="$WINDOW" --txpkts="$size" -a \
        --total-num-mbufs=16384 --stats-period=1 >"$log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    # Two warm-up samples plus SECONDS_PER_RUN measured ones, bounded.
    for i in $(seq $(((SECONDS_PER_RUN + 20) * 10))); do
        n=$(grep -a -c "$key:" "$log" || true)
        (( n >= SECONDS_PER_RUN + 2 )) && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$pid"
    stop_pid "$PEER"
    n=$(grep -a -c "$key:" "$log" || true)
    if (( n < SECONDS_PER_RUN + 2 )); then
        tail -n 20 "$log" >&2
        die "anchor testpmd ($mode, size $size) gave $n statistics samples, wanted $((SECONDS_PER_RUN + 2)); log above"
    fi
    RESULT=$(mean_pps "$key" "$log")
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'
}

echo "bench-net: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
     "$(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $VMM"
echo "bench-net: load average $(cut -d' ' -f1-3 /proc/loadavg) before the run" \
     "(anything else running on these cores shows up in the figures)"
echo "bench-net: ${SECONDS_PER_RUN}s per run, best of $REPS, window $WINDOW, 1 queue pair, peer: dpdk-testpmd net_vhost io loop"

max() {
    awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'
}

ROWS=()
for size in $SIZES; do
    ours=0 anchor=0 oneway=0
    # Ours and the anchor alternate so a burst of load from elsewhere on
    # the machine hits both; each keeps its best repetition.
    for rep in $(seq "$REPS"); do
        run_ours "$size"
        echo "bench-net: size $size rep $rep: ours $RESULT Mpps" >&2
        ours=$(max "$ours" "$RESULT")
        run_anchor "$size" io io Rx-pps
        echo "bench-net: size $size rep $rep: anchor (io loop) $RESULT Mpps" >&2
        anchor=$(max "$anchor" "$RESULT")
        if [[ "$ONEWAY" == 1 ]]; then
            run_anchor "$size" txonly rxonly Tx-pps
            echo "bench-net: size $size rep $rep: anchor (txonly -> rxonly) $RESULT Mpps" >&2
            oneway=$(max "$oneway" "$RESULT")
        fi
    done
    [[ "$ONEWAY" == 1 ]] || oneway=-
    ROWS+=("$(printf '%6s  %10.3f  %12.3f  %6s  %14s' "$size" "$ours" "$anchor" \
              "$(ratio "$ours" "$anchor")" "$oneway")")
done

echo
printf '%6s  %10s  %12s  %6s  %14s\n' size "ours Mpps" "anchor Mpps" ratio "anchor 1-way"
for row in "${ROWS[@]}"; do
    echo "$row"
done
echo
echo "Best of $REPS runs per figure; ratio = ours / anchor."
echo "ours: send + echo + receive + verify, window $WINDOW (round trips/s)."
echo "anchor: DPDK net_virtio_user io loop, $WINDOW packets circulating, no data touched (round trips/s)."
if [[ "$ONEWAY" == 1 ]]; then
    echo "anchor 1-way: net_virtio_user txonly into an rxonly peer (packets/s, nothing comes back)."
fi
