#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# scripts/record-corpus.sh BUILD_DIR [--keep DIR] [--no-seeds] [BACKEND...]
#
# Regenerates the recorded seeds of the fuzz corpus (tests/fuzz/corpus/
# TARGET/rec-*): starts each real back-end in a temporary directory,
# puts tests/fuzz/record-proxy between it and vhost-user-vmm, runs a short
# verifying workload through it, and turns the recordings into seeds with
# tests/fuzz/rec-to-seeds.py (which replaces the rec-* files of every
# target). The proxy relays the conversation unchanged: a run whose
# workload fails is an error, and nothing is written.
#
# BACKEND (default: all of them):
#   ref-net     our reference back-end (contrib/vhost-user-backend), net, 2 queue pairs
#   ref-blk     our reference back-end, blk, 2 queues (INFLIGHT_SHMFD)
#   qsd-blk     qemu-storage-daemon --export type=vhost-user-blk, 2 queues
#   dpdk-net    dpdk-testpmd --vdev net_vhost0, 2 queue pairs
#   dpdk-iommu  dpdk-testpmd with iommu-support=1, iommu_platform=on: its
#               IOTLB misses on the back-end channel
#   virtiofs    /usr/lib/qemu/virtiofsd (needs root), bring-up only
#   ref-postcopy  a postcopy migration between two VMMs (our back-end, blk,
#               on each side), the destination's conversation recorded:
#               POSTCOPY_ADVISE's userfaultfd, LISTEN, the listening
#               SET_MEM_TABLE reply (fuzz-postcopy-reply), POSTCOPY_END
# --keep DIR    keep the recordings (NAME.rec) and the logs in DIR
# --no-seeds    record only (with --keep), do not touch the corpus
set -u

die() {
    echo "record-corpus: $*" >&2
    exit 1
}

BUILD=${1:-}
[ -n "$BUILD" ] || die "usage: scripts/record-corpus.sh BUILD_DIR [--keep DIR] [--no-seeds] [BACKEND...]"
shift
KEEP=
SEEDS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) KEEP=$2; shift 2 ;;
    --no-seeds) SEEDS=; shift ;;
    *) break ;;
    esac
done
BACKENDS=("$@")
[ ${#BACKENDS[@]} -gt 0 ] ||
    BACKENDS=(ref-net ref-blk qsd-blk dpdk-net dpdk-iommu virtiofs ref-postcopy)

SRC=$(cd "$(dirname "$0")/.." && pwd)
VMM=$BUILD/vhost-user-vmm
REF=$BUILD/contrib/vhost-user-backend
PROXY=$BUILD/tests/record-proxy
for b in "$VMM" "$REF" "$PROXY"; do
    [ -x "$b" ] || die "$b not found: build first (ninja -C $BUILD)"
done

TMP=$(mktemp -d /tmp/vu-record.XXXXXX) || die "cannot create a temporary directory"
DPDK_PREFIX=vurecord$$
BG_TAG=record-corpus
# shellcheck source=scripts/bg-procs.sh
. "$SRC/scripts/bg-procs.sh"

cleanup() {
    bg_stop_all
    rm -rf "$TMP" "/var/run/dpdk/$DPDK_PREFIX" "/dev/shm/$DPDK_PREFIX"-*.ram
}
trap cleanup EXIT
trap 'exit 130' INT TERM

testpmd() {
    local name=$1 vdev=$2 q=$3
    bg_start "$name" dpdk-testpmd -l 0,1 --no-huge -m 512 --no-pci \
        --log-level=lib.eal:warning --file-prefix="$DPDK_PREFIX" --vdev "$vdev" \
        -- --forward-mode=io --port-topology=loop --nb-cores=1 --rxq="$q" --txq="$q" \
        --stats-period=0 --total-num-mbufs=8192
}

# Records one back-end: NAME.rec in $TMP.
# shellcheck disable=SC2054  # QEMU-style options: the commas are in the values
record() {
    local name=$1 be="$TMP/$1.sock" px="$TMP/$1-proxy.sock" status pxpid
    local chardev="socket,id=c0,path=$px"
    local args=(-m 256M -chardev "$chardev" -trace vhost_user)
    local net=(-netdev vhost-user,id=net0,chardev=c0,queues=2
               -device virtio-net-pci,netdev=net0,mq=on
               -workload "net0:count=2000,size=64+512+1518")
    local blk=(-device vhost-user-blk-pci,chardev=c0,num-queues=2
               -workload "blk0:rw=randrw,bs=4k,iodepth=16,ops=2000,verify=on")
    local fsd=(-device vhost-user-device-pci,chardev=c0,virtio-id=26,num_vqs=2)

    case "$name" in
    ref-net)
        bg_start "$name" "$REF" --socket-path="$be" --type=net --queues=2
        args+=("${net[@]}") ;;
    ref-blk)
        bg_start "$name" "$REF" --socket-path="$be" --type=blk --queues=2 \
            --blk-file="$TMP/ref.raw" --blk-size=16M
        args+=("${blk[@]}") ;;
    qsd-blk)
        command -v qemu-storage-daemon >/dev/null ||
            die "qemu-storage-daemon not found (Debian package qemu-system-common)"
        truncate -s 16M "$TMP/qsd.raw"
        bg_start "$name" qemu-storage-daemon \
            --blockdev "driver=file,node-name=f,filename=$TMP/qsd.raw,cache.direct=off" \
            --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$be,writable=on,num-queues=2"
        args+=("${blk[@]}") ;;
    dpdk-net)
        command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found (Debian package dpdk)"
        testpmd "$name" "net_vhost0,iface=$be,queues=2" 2
        args+=("${net[@]}") ;;
    dpdk-iommu)
        command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found (Debian package dpdk)"
        testpmd "$name" "net_vhost0,iface=$be,queues=1,iommu-support=1" 1
        args+=(-netdev vhost-user,id=net0,chardev=c0,queues=1
               -device virtio-net-pci,netdev=net0,iommu_platform=on
               -workload "net0:count=2000,size=64+512+1518") ;;
    virtiofs)
        [ -x /usr/lib/qemu/virtiofsd ] || die "/usr/lib/qemu/virtiofsd not found (qemu-system-common)"
        mkdir -p "$TMP/share"
        bg_start "$name" /usr/lib/qemu/virtiofsd --socket-path="$be" -o source="$TMP/share"
        args+=("${fsd[@]}") ;;
    *) die "unknown back-end '$name'" ;;
    esac
    bg_wait_socket "$name" "$be"
    "$PROXY" --listen "$px" --connect "$be" --out "$TMP/$name.rec" --once \
        2> "$TMP/$name-proxy.log" &
    pxpid=$!
    PIDS+=("$pxpid")
    bg_wait_socket "$name-proxy" "$px"
    echo "record-corpus: $name: vhost-user-vmm ${args[*]}" >&2
    if [ "$name" = virtiofs ]; then
        # No workload for a file system: the bring-up, then a stop (SIGTERM).
        "$VMM" "${args[@]}" > "$TMP/$name-vmm.out" 2> "$TMP/$name-vmm.log" &
        local vmm=$!
        for _ in $(seq 1 100); do
            grep -q "DRIVER_OK\|running" "$TMP/$name-vmm.log" 2>/dev/null && break
            sleep 0.1
        done
        sleep 0.5
        kill -TERM "$vmm"
        wait "$vmm"
        status=$?
    else
        timeout 120 "$VMM" "${args[@]}" > "$TMP/$name-vmm.out" 2> "$TMP/$name-vmm.log"
        status=$?
    fi
    if [ "$status" -ne 0 ]; then
        cat "$TMP/$name-vmm.log" "$TMP/$name-proxy.log" >&2
        die "$name: the VMM exited with $status through the proxy"
    fi
    # --once: the proxy ends with the VMM's connection.
    wait "$pxpid" || die "$name: the proxy failed: $(cat "$TMP/$name-proxy.log")"
    [ -s "$TMP/$name-proxy.log" ] && cat "$TMP/$name-proxy.log" >&2
    bg_stop_all
    rm -rf "/var/run/dpdk/$DPDK_PREFIX"
    grep -h "workload passed" "$TMP/$name-vmm.log" >&2
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        cp "$TMP/$name.rec" "$TMP/$name"*.log "$KEEP/"
    fi
}

# QMP: each argument a command (JSON) for the monitor at $1, in order;
# the first error fails the run.
qmp() {
    python3 - "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()                        # the greeting
for cmd in ['{"execute":"qmp_capabilities"}'] + sys.argv[2:]:
    f.write(cmd + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            break
    if "error" in r:
        sys.exit("qmp %s: %s" % (cmd, r["error"]))
PY
}

# wait_log FILE TEXT: TEXT appears in FILE within 30 s, or the run fails.
wait_log() {
    local _
    for _ in $(seq 1 300); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "'$2' not in $1 within 30 s: $(cat "$1")"
}

# ref-postcopy: a postcopy migration between two VMMs, each with our
# back-end (blk, one image); the destination's conversation goes through
# the proxy: POSTCOPY_ADVISE, LISTEN, the listening SET_MEM_TABLE reply.
record_postcopy() {
    local name=ref-postcopy src dst pxpid st dt
    local ref=("$REF" --type=blk --queues=1 --blk-file="$TMP/pc.raw" --blk-size=16M)
    local vmm=(-trace vhost_user -summary json
               -workload "blk0:rw=randrw,bs=4k,iodepth=8,runtime=12s,seed=7")
    bg_start "$name-src-be" "${ref[@]}" --socket-path="$TMP/pc-src.sock"
    bg_start "$name" "${ref[@]}" --socket-path="$TMP/pc-dst.sock"
    bg_wait_socket "$name-src-be" "$TMP/pc-src.sock"
    bg_wait_socket "$name" "$TMP/pc-dst.sock"
    "$PROXY" --listen "$TMP/pc-proxy.sock" --connect "$TMP/pc-dst.sock" \
        --out "$TMP/$name.rec" --once 2> "$TMP/$name-proxy.log" &
    pxpid=$!
    PIDS+=("$pxpid")
    bg_wait_socket "$name-proxy" "$TMP/pc-proxy.sock"
    for side in dst src; do
        local ram=(-m 64M -object "memory-backend-file,id=ram0,size=64M,mem-path=/dev/shm/$DPDK_PREFIX-$side.ram,share=on"
                   -machine memory-backend=ram0 -qmp "unix:$TMP/$side.qmp,server=on,wait=off")
        if [ "$side" = src ]; then
            "$VMM" "${ram[@]}" -x-fill-pattern -chardev "socket,id=cb,path=$TMP/pc-src.sock" \
                -device vhost-user-blk-pci,chardev=cb,num-queues=1 "${vmm[@]}" \
                > "$TMP/$name-src-vmm.out" 2> "$TMP/$name-src-vmm.log" &
            src=$!
            PIDS+=("$src")
        else
            "$VMM" "${ram[@]}" -incoming defer -chardev "socket,id=cb,path=$TMP/pc-proxy.sock" \
                -device vhost-user-blk-pci,chardev=cb,num-queues=1 "${vmm[@]}" \
                > "$TMP/$name-vmm.out" 2> "$TMP/$name-vmm.log" &
            dst=$!
            PIDS+=("$dst")
        fi
        bg_wait_socket "$name" "$TMP/$side.qmp"
    done
    local cap='{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"postcopy-ram","state":true}]}}'
    qmp "$TMP/dst.qmp" "$cap" \
        "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"unix:$TMP/mig.sock\"}}" ||
        die "$name: the destination refused"
    wait_log "$TMP/$name-vmm.log" "migration: incoming from"
    wait_log "$TMP/$name-src-vmm.log" "blk0: workload started"
    # Slow rounds that never converge (downtime-limit 0): it switches to postcopy by itself.
    qmp "$TMP/src.qmp" "$cap" \
        '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":33554432,"downtime-limit":0,"x-postcopy-auto":true}}' \
        "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$TMP/mig.sock\"}}" ||
        die "$name: the source refused: $(cat "$TMP/$name-src-vmm.log")"
    wait "$src"
    st=$?
    wait "$dst"
    dt=$?
    rm -f "/dev/shm/$DPDK_PREFIX-src.ram" "/dev/shm/$DPDK_PREFIX-dst.ram"
    if [ "$st" -ne 0 ] || [ "$dt" -ne 0 ]; then
        cat "$TMP/$name-src-vmm.log" "$TMP/$name-vmm.log" >&2
        die "$name: source exited $st, destination $dt"
    fi
    grep -q "migration: postcopy" "$TMP/$name-vmm.log" ||
        die "$name: no postcopy on the destination: $(grep -v "^vhost-user: " "$TMP/$name-vmm.log" "$TMP/$name-src-vmm.log")"
    wait "$pxpid" || die "$name: the proxy failed: $(cat "$TMP/$name-proxy.log")"
    bg_stop_all
    grep -h "workload passed" "$TMP/$name-vmm.log" >&2
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        cp "$TMP/$name.rec" "$TMP/$name"*.log "$KEEP/"
    fi
}

RECS=()
for b in "${BACKENDS[@]}"; do
    if [ "$b" = ref-postcopy ]; then
        record_postcopy
    else
        record "$b"
    fi
    RECS+=("$b=$TMP/$b.rec")
done
if [ -n "$SEEDS" ]; then
    python3 "$SRC/tests/fuzz/rec-to-seeds.py" --corpus "$SRC/tests/fuzz/corpus" "${RECS[@]}"
fi
