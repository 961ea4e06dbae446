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
#   BENCH_REPS     repetitions (default 7): ours in each mode and the anchor
#                  alternate; each mode's figure is the median of its
#                  paired ratios (ours / the anchor run of the same rep)
#   BENCH_RINGS    ring layouts, "split packed" (default both): packed runs
#                  ours with packed=on and the anchor with packed_vq=1
#   BENCH_MODES    our modes, NAME:KEYS separated by spaces; KEYS are
#                  workload keys, and the device properties in_order= and
#                  packed= (default "full:verify=full seq:verify=seq,poll=on";
#                  add "inorder:verify=full,in_order=on" for VIRTIO_F_IN_ORDER)
#   BENCH_STRACE   1: a short extra run per mode and size under strace -c -f
#                  for system calls per packet, all threads (default 1)
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
REPS=${BENCH_REPS:-7}
MODES=${BENCH_MODES:-"full:verify=full seq:verify=seq,poll=on"}
RINGS=${BENCH_RINGS:-"split packed"}
STRACE=${BENCH_STRACE:-1}
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
[[ "$STRACE" != 1 ]] || command -v strace >/dev/null ||
    die "'strace' is missing (apt-get install strace), or set BENCH_STRACE=0"
for tool in dpdk-testpmd taskset timeout jq awk; do
    command -v "$tool" >/dev/null ||
        die "'$tool' is missing (dpdk-testpmd: apt-get install dpdk; jq: apt-get install jq)"
done
[[ "$SECONDS_PER_RUN" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS: '$SECONDS_PER_RUN' is not a positive integer"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS: '$REPS' is not a positive integer"
[[ "$WINDOW" =~ ^[1-9][0-9]*$ ]] || die "BENCH_WINDOW: '$WINDOW' is not a positive integer"
for m in $MODES; do
    [[ "$m" =~ ^[a-z0-9_-]+:[a-z0-9_=,+-]+$ ]] ||
        die "BENCH_MODES: '$m' is not NAME:KEY=VALUE,... (like seq:verify=seq,poll=on)"
done
for r in $RINGS; do
    [[ "$r" == split || "$r" == packed ]] || die "BENCH_RINGS: '$r' is not split or packed"
done
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

# Ours: the VMM runs the net workload for $3 seconds against the peer,
# with the mode's keys $2. Sets RESULT to the Mpps of the JSON summary and
# JSON to its path. $4: a strace -c -f output file to run under (the
# system call count). (Not run in $(...): a subshell would hide its
# background pids from the cleanup trap.)
run_ours() {
    local size=$1 keys=$2 secs=$3 trace=${4:-} sock=$TMP/ours.sock
    local json=$TMP/ours-$1.json err=$TMP/ours-$1.err pre=() k wl="" dev=""
    # The mode's device properties go to -device, the rest to -workload.
    IFS=, read -ra k <<<"$keys"
    for k in "${k[@]}"; do
        case $k in
        in_order=*|packed=*) dev+=",$k" ;;
        *) wl+=",$k" ;;
        esac
    done
    start_peer "$sock" io "$TMP/peer-ours-$size.log"
    [[ -z "$trace" ]] || pre=(strace -c -f -o "$trace")
    # count is only a ceiling (the runtime ends the sending). drain=10s: on
    # a loaded machine the peer's lcore went without CPU for over the
    # default 1 s, and the run failed with its last window in flight.
    if ! timeout $((secs + 30)) taskset -c 0 "${pre[@]}" "$VMM" -m 256M \
            -chardev "socket,id=c0,path=$sock" \
            -netdev vhost-user,id=net0,chardev=c0,queues=1 \
            -device "virtio-net-pci,netdev=net0,id=net0$dev$([[ $RING == packed ]] && echo ,packed=on)" \
            -workload "net0:count=$((secs * 25000000)),size=$size,window=$WINDOW,runtime=${secs}s,drain=10s$wl" \
            -summary json >"$json" 2>"$err"; then
        stop_pid "$PEER"
        echo "bench-net: vhost-user-vmm failed at size $size, $keys; its stderr, then the peer's log:" >&2
        tail -n 6 "$err" >&2
        tail -n 12 "$TMP/peer-ours-$size.log" >&2
        return 1
    fi
    stop_pid "$PEER"
    [[ "$(jq -r .ok "$json")" == true ]] || die "size $size, $keys: workload not ok: $(cat "$json")"
    RESULT=$(jq -r '.mpps' "$json")
    JSON=$json
}

# run_ours, once more when a run fails (counted in FAILED and reported):
# a failure is shown, never hidden, but one does not end the bench.
FAILED=0
NOPAIR=0
run_ours_counted() {
    run_ours "$@" && return 0
    FAILED=$((FAILED + 1))
    run_ours "$@" || die "size $1, $2: failed twice in a row (logs above)"
}

# System calls per packet of one mode: a 1-second run under strace -c -f
# (every thread of the VMM: the vCPU's kicks and sleeps and the main loop's
# wakeups), its total divided by the packets sent. strace slows each call,
# so the rate of that run is not used. Sets RESULT.
syscalls_per_packet() {
    local size=$1 keys=$2 trace=$TMP/strace-$1.txt total
    run_ours_counted "$size" "$keys" 1 "$trace"
    total=$(awk '$NF == "total" { print $4 }' "$trace")
    RESULT=$(awk -v c="${total:-0}" -v p="$(jq -r .sent "$JSON")" \
        'BEGIN { if (p > 0) printf "%.4f", c / p; else print "n/a" }')
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
        --vdev "net_virtio_user0,path=$sock,queues=1$([[ $RING == packed ]] && echo ,packed_vq=1)" -- \
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
echo "bench-net: ${SECONDS_PER_RUN}s per run, $REPS alternating repetitions, window $WINDOW, 1 queue pair, peer: dpdk-testpmd net_vhost io loop"
echo "bench-net: our modes: $MODES; ring layouts: $RINGS"
(( REPS >= 7 )) || echo "bench-net: note: $REPS repetitions; the project's figures use at least 7"

# Median of the numbers given.
median() {
    (( $# > 0 )) || { echo nan; return; }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ROWS=()
for RING in $RINGS; do
for size in $SIZES; do
    declare -A ratios=() mpps=() kicks=() sleeps=()
    anchors=() oneways=()
    # Each repetition runs every mode of ours and the anchor in turn
    # (alternating, so a burst of load from elsewhere hits all sides);
    # each of our runs is paired with the anchor run of its repetition.
    for rep in $(seq "$REPS"); do
        declare -A this=()
        for m in $MODES; do
            name=${m%%:*}
            run_ours_counted "$size" "${m#*:}" "$SECONDS_PER_RUN"
            this[$name]=$RESULT
            echo "bench-net: $RING size $size rep $rep: ours $name $RESULT Mpps" \
                 "(kicks $(jq -r .kicks "$JSON"), sleeps $(jq -r .sleeps "$JSON")," \
                 "sent $(jq -r .sent "$JSON"))" >&2
            mpps[$name]+=" $RESULT"
            kicks[$name]+=" $(awk -v k="$(jq -r .kicks "$JSON")" -v p="$(jq -r .sent "$JSON")" \
                'BEGIN { printf "%.5f", (p > 0 ? k / p : 0) }')"
            sleeps[$name]+=" $(awk -v k="$(jq -r .sleeps "$JSON")" -v p="$(jq -r .sent "$JSON")" \
                'BEGIN { printf "%.5f", (p > 0 ? k / p : 0) }')"
        done
        run_anchor "$size" io io Rx-pps
        echo "bench-net: $RING size $size rep $rep: anchor (io loop) $RESULT Mpps" >&2
        anchors+=("$RESULT")
        for m in $MODES; do
            name=${m%%:*}
            r=$(ratio "${this[$name]}" "$RESULT")
            # An anchor run that moved nothing pairs with nothing.
            if [[ "$r" == n/a ]]; then
                NOPAIR=$((NOPAIR + 1))
            else
                ratios[$name]+=" $r"
            fi
        done
        if [[ "$ONEWAY" == 1 ]]; then
            run_anchor "$size" txonly rxonly Tx-pps
            echo "bench-net: size $size rep $rep: anchor (txonly -> rxonly) $RESULT Mpps" >&2
            oneways+=("$RESULT")
        fi
        unset this
    done
    oneway=-
    [[ "$ONEWAY" != 1 ]] || oneway=$(median "${oneways[@]}")
    for m in $MODES; do
        name=${m%%:*}
        sys=-
        if [[ "$STRACE" == 1 ]]; then
            syscalls_per_packet "$size" "${m#*:}"
            sys=$RESULT
        fi
        # shellcheck disable=SC2086 # the lists are space-separated numbers
        ROWS+=("$(printf '%6s  %-6s  %-6s  %10.3f  %12.3f  %6.2f  %11s  %9.4f  %10.4f  %12s  %12s' \
                  "$size" "$RING" "$name" "$(median ${mpps[$name]})" "$(median "${anchors[@]}")" \
                  "$(median ${ratios[$name]-})" \
                  "$(printf '%s\n' ${ratios[$name]-} | sort -g | sed -n '1p;$p' | paste -sd- -)" \
                  "$(median ${kicks[$name]})" "$(median ${sleeps[$name]})" "$sys" "$oneway")")
        # Every anchor run of this size moved nothing (a starved machine): no pair.
        echo "bench-net: $RING size $size $name: paired ratios${ratios[$name]- none}" >&2
    done
    unset ratios mpps kicks sleeps
done
done

echo
echo "bench-net: load average $(cut -d' ' -f1-3 /proc/loadavg) after the run"
(( NOPAIR == 0 )) || echo "bench-net: $NOPAIR pairs left out: their anchor run measured 0 Mpps"
(( FAILED == 0 )) || echo "bench-net: $FAILED of our runs failed and were run again (stderr)"
printf '%6s  %-6s  %-6s  %10s  %12s  %6s  %11s  %9s  %10s  %12s  %12s\n' size ring mode "ours Mpps" \
       "anchor Mpps" ratio "min-max" "kicks/pkt" "sleeps/pkt" "syscalls/pkt" "anchor 1-way"
for row in "${ROWS[@]}"; do
    echo "$row"
done
echo
echo "Mpps: medians of $REPS runs; ratio: median of the $REPS paired ratios (ours / the"
echo "anchor run of the same repetition), min-max their range."
echo "ours: send + echo + receive + check as the mode says, window $WINDOW (round trips/s):"
for m in $MODES; do
    echo "  ${m%%:*}: ${m#*:}"
done
echo "kicks/pkt, sleeps/pkt: the driver's eventfd writes and poll() sleeps per packet sent."
echo "syscalls/pkt: a separate 1 s run under strace -c -f, all threads of the VMM."
echo "anchor: DPDK net_virtio_user io loop, $WINDOW packets circulating, no data touched (round trips/s)."
if [[ "$ONEWAY" == 1 ]]; then
    echo "anchor 1-way: net_virtio_user txonly into an rxonly peer (packets/s, nothing comes back)."
fi
