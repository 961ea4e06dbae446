#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# 4 KiB random-read IOPS and latency of our front-end (vhost-user-vmm's
# virtio-blk guest driver, through qemu-storage-daemon's vhost-user-blk
# export) next to fio reading the same image file directly with io_uring.
# Both do O_DIRECT reads: the export opens the file with cache.direct=on
# and aio=io_uring, fio runs with --direct=1 --ioengine=io_uring, so the
# difference is the vhost-user path (guest ring, peer, completion) and
# not the page cache.
#
# Usage: bench/bench-blk.sh [BUILD_DIR]          (default: build)
# Environment:
#   BENCH_SECONDS   seconds per run (default 5)
#   BENCH_DEPTHS    queue depths ("1 32")
#   BENCH_REPS      repetitions per figure, best one kept (default 2)
#   BENCH_IMG_SIZE  image size, a truncate(1) size (256M)
#   BENCH_DIR       directory on a real disk for the image (/var/tmp); a
#                   tmpfs would make O_DIRECT fail or measure RAM
#   BENCH_KEEP      1: keep the logs and JSON (the image is always removed)
#
# fio is installed with apt-get when it is missing (as root), since no
# other part of the project needs it.

set -euo pipefail

RUNTIME=${BENCH_SECONDS:-5}
DEPTHS=${BENCH_DEPTHS:-"1 32"}
IMG_SIZE=${BENCH_IMG_SIZE:-256M}
REPS=${BENCH_REPS:-2}
DIR=${BENCH_DIR:-/var/tmp}

die() {
    echo "bench-blk: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
VMM=$BUILD/vhost-user-vmm

[[ -x "$VMM" ]] || die "$VMM not found: build it first (meson setup $BUILD && ninja -C $BUILD)"
[[ "$RUNTIME" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS: '$RUNTIME' is not a positive integer"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS: '$REPS' is not a positive integer"
for d in $DEPTHS; do
    if ! [[ "$d" =~ ^[1-9][0-9]*$ ]] || (( d > 256 )); then
        die "BENCH_DEPTHS: '$d' is not a queue depth in [1, 256]"
    fi
done
if ! command -v fio >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "bench-blk: fio is missing, installing it: apt-get install -y fio" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y fio >/dev/null ||
            die "apt-get install -y fio failed; install fio and run again"
    else
        die "fio is missing: install it (apt-get install fio) and run again"
    fi
fi
for tool in qemu-storage-daemon fio jq awk timeout truncate; do
    command -v "$tool" >/dev/null ||
        die "'$tool' is missing (qemu-storage-daemon: apt-get install qemu-system-common; jq: apt-get install jq)"
done
[[ -d "$DIR" && -w "$DIR" ]] || die "BENCH_DIR: '$DIR' is not a writable directory"
[[ "$(stat -f -c %T "$DIR")" != tmpfs ]] ||
    die "BENCH_DIR: '$DIR' is a tmpfs; O_DIRECT needs a disk-backed directory"

TMP=$(mktemp -d /tmp/bench-blk.XXXXXX)
IMGDIR=$(mktemp -d "$DIR/bench-blk-img.XXXXXX")
IMG=$IMGDIR/disk.raw
SOCK=$TMP/blk.sock
QSD=

cleanup() {
    if [[ -n "$QSD" ]]; then
        kill -TERM "$QSD" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$QSD" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$QSD" 2>/dev/null || true
        wait "$QSD" 2>/dev/null || true
    fi
    rm -rf "$IMGDIR"
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        echo "bench-blk: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_qsd() {
    rm -f "$SOCK"
    # The outer timeout only bounds a run that went wrong; stop_qsd ends it.
    timeout 300 qemu-storage-daemon \
        --blockdev "driver=file,node-name=file0,filename=$IMG,cache.direct=on,aio=io_uring" \
        --blockdev driver=raw,node-name=disk0,file=file0 \
        --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$SOCK,writable=on,num-queues=1" \
        >"$TMP/qsd.log" 2>&1 </dev/null &
    QSD=$!
    for _ in $(seq 100); do
        [[ -S "$SOCK" ]] && return 0
        kill -0 "$QSD" 2>/dev/null || break
        sleep 0.1
    done
    cat "$TMP/qsd.log" >&2
    die "qemu-storage-daemon did not create $SOCK within 10 s; log above"
}

stop_qsd() {
    kill -TERM "$QSD" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$QSD" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$QSD" 2>/dev/null || true
    wait "$QSD" 2>/dev/null || true
    QSD=
}

# One VMM run against the export. $1: tag, $2: workload options.
# Leaves the JSON summary in $TMP/ours-TAG.json.
run_vmm() {
    local tag=$1 opts=$2
    if ! timeout $((RUNTIME + 60)) "$VMM" -m 256M \
            -chardev "socket,id=c0,path=$SOCK" \
            -device vhost-user-blk-pci,chardev=c0,id=blk0,num-queues=1 \
            -workload "blk0:$opts" -summary json \
            >"$TMP/ours-$tag.json" 2>"$TMP/ours-$tag.err"; then
        tail -n 20 "$TMP/ours-$tag.err" >&2
        die "vhost-user-vmm failed ($tag: $opts); stderr above"
    fi
    [[ "$(jq -r .ok "$TMP/ours-$tag.json")" == true ]] ||
        die "$tag: workload not ok: $(cat "$TMP/ours-$tag.json")"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'
}

echo "bench-blk: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
     "$(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $VMM"
echo "bench-blk: load average $(cut -d' ' -f1-3 /proc/loadavg) before the run" \
     "(anything else running on these cores shows up in the figures)"
FSTYPE=$(findmnt -no FSTYPE -T "$DIR" 2>/dev/null || stat -f -c %T "$DIR")
echo "bench-blk: $IMG_SIZE raw image in $DIR ($(df -P "$DIR" | awk 'NR == 2 { print $1 }'), $FSTYPE)," \
     "4k randread, ${RUNTIME}s per run, best of $REPS, O_DIRECT + io_uring on both sides"

truncate -s "$IMG_SIZE" "$IMG"
start_qsd
# The fill pass writes every block once, so neither side reads holes
# (which the file system answers without touching the disk).
echo "bench-blk: fill pass ..." >&2
run_vmm fill "rw=fill,bs=256k,iodepth=8,verify=off"

run_fio() {
    local tag=$1 d=$2
    if ! timeout $((RUNTIME + 60)) fio --name=anchor --filename="$IMG" \
            --ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth="$d" \
            --runtime="$RUNTIME" --time_based --norandommap --randrepeat=0 \
            --lat_percentiles=1 --output-format=json \
            --output="$TMP/fio-$tag.json" >"$TMP/fio-$tag.err" 2>&1; then
        cat "$TMP/fio-$tag.err" >&2
        die "fio failed at iodepth $d; output above"
    fi
}

# Ours and fio alternate so a burst of load from elsewhere on the machine
# hits both; each keeps its best repetition (by IOPS, with that run's
# latencies). The export stays up, idle, while fio runs.
for d in $DEPTHS; do
    best_ours=0 best_fio=0
    for rep in $(seq "$REPS"); do
        run_vmm "qd$d-$rep" "rw=randread,bs=4k,iodepth=$d,runtime=${RUNTIME}s,verify=off,flush=off"
        iops=$(jq -r .ops_per_sec "$TMP/ours-qd$d-$rep.json")
        echo "bench-blk: iodepth $d rep $rep: ours $iops IOPS" >&2
        if awk -v a="$iops" -v b="$best_ours" 'BEGIN { exit !(a + 0 > b + 0) }'; then
            best_ours=$iops
            cp "$TMP/ours-qd$d-$rep.json" "$TMP/ours-qd$d.json"
        fi
        run_fio "qd$d-$rep" "$d"
        iops=$(jq -r '.jobs[0].read.iops' "$TMP/fio-qd$d-$rep.json")
        echo "bench-blk: iodepth $d rep $rep: fio $iops IOPS" >&2
        if awk -v a="$iops" -v b="$best_fio" 'BEGIN { exit !(a + 0 > b + 0) }'; then
            best_fio=$iops
            cp "$TMP/fio-qd$d-$rep.json" "$TMP/fio-qd$d.json"
        fi
    done
done
stop_qsd

echo
printf '%7s  %10s  %10s  %6s  %9s  %9s  %9s  %9s\n' iodepth "ours IOPS" "fio IOPS" ratio \
    "ours avg" "fio avg" "ours p99" "fio p99"
for d in $DEPTHS; do
    read -r oi oa op < <(jq -r '"\(.ops_per_sec) \(.latency_us.avg) \(.latency_us.p99)"' \
                           "$TMP/ours-qd$d.json")
    # fio's lat_ns is submission to completion, like our per-request
    # latency (added to the ring until its used entry is seen).
    read -r xi xa xp < <(jq -r '.jobs[0].read |
        "\(.iops) \(.lat_ns.mean / 1000) \(.lat_ns.percentile["99.000000"] / 1000)"' \
                           "$TMP/fio-qd$d.json")
    printf '%7s  %10.0f  %10.0f  %6s  %7.1fus  %7.1fus  %7.1fus  %7.1fus\n' "$d" "$oi" "$xi" \
        "$(ratio "$oi" "$xi")" "$oa" "$xa" "$op" "$xp"
done
echo
echo "Best of $REPS runs per figure; ratio = ours IOPS / fio IOPS."
echo "ours: guest virtio-blk driver -> vring -> qemu-storage-daemon (vhost-user-blk, 1 queue) -> io_uring O_DIRECT."
echo "anchor: fio, io_uring O_DIRECT on the same file, no virtualization: the floor for this disk."
