#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# scripts/demo.sh BUILD_DIR [BACKEND]
#
# Moves real data through vhost-user: starts back-end(s) in a temporary
# directory, runs vhost-user-vmm with a virtio-net and/or a virtio-blk
# device and a verifying workload on each (progress lines as it goes),
# then shows the summaries and the first lines of the decoded message
# trace of the bring-up. Everything it started is stopped on exit.
#
# BACKEND: ref (default, also empty) our reference back-end for both
#          devices (contrib/vhost-user-backend); qsd qemu-storage-daemon
#          for blk; dpdk dpdk-testpmd for net; all both real back-ends;
#          crash: blk on our back-end, killed with SIGKILL twice during
#          the run and started again: its inflight area lets the new one
#          finish what the dead one had taken, and every block verifies.
# Exit status: 0 when every workload completed and verified.
set -u

BUILD=${1:-}
BACKEND=${2:-ref}
[ -n "$BACKEND" ] || BACKEND=ref

die() {
    echo "demo: $*" >&2
    exit 1
}

[ -n "$BUILD" ] || die "usage: scripts/demo.sh BUILD_DIR [ref|qsd|dpdk|all|crash]"
VMM=$BUILD/vhost-user-vmm
[ -x "$VMM" ] || die "$VMM not found: build first (make, or ninja -C $BUILD)"

case "$BACKEND" in
ref) want_net=ref; want_blk=ref ;;
qsd) want_net=; want_blk=qsd ;;
dpdk) want_net=dpdk; want_blk= ;;
all) want_net=dpdk; want_blk=qsd ;;
crash) want_net=; want_blk=ref ;;
*) die "unknown BACKEND '$BACKEND' (ref, qsd, dpdk, all or crash)" ;;
esac

need() {
    command -v "$1" >/dev/null 2>&1 ||
        die "$1 not found: install the Debian package '$2' (scripts/install-deps.sh does)"
}

REF=
if [ "$want_net" = ref ] || [ "$want_blk" = ref ]; then
    REF=$(find "$BUILD/contrib" -name vhost-user-backend -type f -perm -u+x 2>/dev/null | head -n 1)
    [ -n "$REF" ] ||
        die "the reference back-end is not built in $BUILD (meson target 'vhost-user-backend' under contrib/; it may not be part of the build yet). Try: make demo BACKEND=all (DPDK testpmd and qemu-storage-daemon)"
fi
[ "$want_net" = dpdk ] && need dpdk-testpmd dpdk
if [ "$want_blk" = qsd ]; then
    need qemu-storage-daemon qemu-system-common
    need qemu-img qemu-utils
fi

TMP=$(mktemp -d /tmp/vu-demo.XXXXXX) || die "cannot create a temporary directory"
DPDK_PREFIX=vudemo$$
BG_TAG=demo
# shellcheck source=scripts/bg-procs.sh
. "$(dirname "$0")/bg-procs.sh"

cleanup() {
    bg_stop_all
    rm -rf "$TMP" "/var/run/dpdk/$DPDK_PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a back-end in the background, its output to $TMP/NAME.log.
start() {
    echo "demo: starting $1: ${*:2}"
    bg_start "$@"
}

wait_socket() {
    bg_wait_socket "$@"
}

VMM_ARGS=(-m 512M -object memory-backend-memfd,id=mem,size=512M,share=on
          -machine memory-backend=mem)

case "$want_net" in
ref)
    start ref-net "$REF" --socket-path="$TMP/net.sock" --type=net --queues=2
    wait_socket ref-net "$TMP/net.sock" ;;
dpdk)
    start testpmd dpdk-testpmd -l 0,1 --no-huge -m 512 --no-pci \
        --file-prefix="$DPDK_PREFIX" --vdev "net_vhost0,iface=$TMP/net.sock,queues=2" \
        -- --forward-mode=io --port-topology=loop --nb-cores=1 --rxq=2 --txq=2 \
        --stats-period=0 --total-num-mbufs=8192
    wait_socket testpmd "$TMP/net.sock" ;;
esac
if [ -n "$want_net" ]; then
    VMM_ARGS+=(-chardev "socket,id=cn,path=$TMP/net.sock,reconnect-ms=100"
               -netdev vhost-user,id=net0,chardev=cn,queues=2
               -device virtio-net-pci,netdev=net0,mq=on
               -workload "net0:count=300000,size=64+512+1518,window=128")
fi

REF_BLK_ARGS=("$REF" --socket-path="$TMP/blk.sock" --type=blk --queues=2
              --blk-file="$TMP/disk.raw" --blk-size=64M)
case "$want_blk" in
ref)
    start ref-blk "${REF_BLK_ARGS[@]}"
    REF_BLK_PID=${PIDS[-1]}
    wait_socket ref-blk "$TMP/blk.sock" ;;
qsd)
    qemu-img create -q -f raw "$TMP/disk.raw" 64M || die "qemu-img create failed"
    start qsd qemu-storage-daemon \
        --blockdev "driver=file,node-name=f,filename=$TMP/disk.raw,cache.direct=off" \
        --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$TMP/blk.sock,writable=on,num-queues=2"
    wait_socket qsd "$TMP/blk.sock" ;;
esac
blk_runtime=3s
[ "$BACKEND" = crash ] && blk_runtime=8s
if [ -n "$want_blk" ]; then
    VMM_ARGS+=(-chardev "socket,id=cb,path=$TMP/blk.sock,reconnect-ms=100"
               -device vhost-user-blk-pci,chardev=cb,num-queues=2
               -workload "blk0:rw=randrw,bs=4k,iodepth=32,runtime=$blk_runtime")
fi

# BACKEND=crash: twice, SIGKILL the blk back-end mid-run and start a new one.
crash_backend() {
    local n
    for n in 1 2; do
        sleep 2.5
        kill -0 "$1" 2>/dev/null || return
        echo "demo: kill -9 the blk back-end (pid $REF_BLK_PID) in the middle of the I/O" >&2
        kill -KILL "$REF_BLK_PID"
        wait "$REF_BLK_PID" 2>/dev/null
        start "ref-blk-$n" "${REF_BLK_ARGS[@]}"
        REF_BLK_PID=${PIDS[-1]}
        wait_socket "ref-blk-$n" "$TMP/blk.sock"
        echo "demo: a new blk back-end (pid $REF_BLK_PID) listens; the VMM reconnects" >&2
    done
}

echo "demo: $VMM ${VMM_ARGS[*]} -trace vhost_user -summary json"
echo
# The message trace goes to the log only; status and progress lines show live.
"$VMM" "${VMM_ARGS[@]}" -trace vhost_user -summary json > "$TMP/summary.json" \
    2> >(tee "$TMP/vmm.log" | grep --line-buffered -v '^vhost-user: ' >&2) &
vmm_pid=$!
[ "$BACKEND" = crash ] && crash_backend "$vmm_pid"
wait "$vmm_pid"
status=$?
# Let the filtered stderr drain before printing below it.
sleep 0.2

echo
echo "demo: the bring-up as the message trace saw it (first 25 of $(grep -c '^vhost-user: ' "$TMP/vmm.log") messages):"
grep '^vhost-user: ' "$TMP/vmm.log" | head -n 25 | sed 's/^/    /'
echo
if [ "$BACKEND" = crash ]; then
    echo "demo: what each new blk back-end found in the inflight area the VMM handed it:"
    found=$(cat "$TMP"/ref-blk-*.log | grep "in flight at the last disconnect")
    if [ -n "$found" ]; then
        echo "$found" | sed 's/^/    /'
    else
        # Our back-end holds a request for microseconds: a kill rarely hits one.
        echo "    no request was in flight at the moments of the kills (tests/qtest/inflight-test.c"
        echo "    stops the back-end in the middle of requests to cover that case)"
    fi
    echo
fi
echo "demo: summaries (-summary json, on the VMM's stdout):"
sed 's/^/    /' "$TMP/summary.json"
echo
if [ "$status" -eq 0 ]; then
    echo "demo: PASSED: every workload completed and verified (back-end: $BACKEND)"
else
    echo "demo: FAILED: vhost-user-vmm exited with $status (back-end: $BACKEND); see the lines above" >&2
fi
exit "$status"
