#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# tests/fuzz/record-proxy-test.sh SRC_DIR BUILD_DIR
#
# The recording proxy (tests/fuzz/record-proxy.c) must relay a real
# conversation unchanged and record it whole:
#  - our reference back-end, blk (2 queues) and net (2 queue pairs), and
#    dpdk-testpmd with iommu-support=1 (IOTLB misses on the back-end
#    channel, which the proxy interposes) each run a verifying workload
#    through the proxy (scripts/record-corpus.sh), which must pass, and
#    the VMM's message trace must list exactly the recorded messages;
#  - each recording holds the bring-up in order (GET_FEATURES ...
#    SET_MEM_TABLE with its fd ... SET_VRING_KICK with its fd, once per
#    ring), every NEED_REPLY answered, and for testpmd its IOTLB misses on
#    the back-end channel followed by our IOTLB_MSG updates on the main
#    socket;
#  - the seeds tests/fuzz/rec-to-seeds.py makes of them, and the committed
#    corpus (the recorded seeds among it), replay clean through the fuzz
#    harnesses (built with a plain main: BUILD_DIR/tests/fuzz-*-replay).
set -u

SRC=$1
BUILD=$2
TMP=$(mktemp -d /tmp/record-proxy-test.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

"$SRC/scripts/record-corpus.sh" "$BUILD" --keep "$TMP/rec" --no-seeds \
    ref-blk ref-net dpdk-iommu || fail "recording through the proxy failed"
for name in ref-blk ref-net dpdk-iommu; do
    grep -q "workload passed" "$TMP/rec/$name-vmm.log" ||
        fail "$name: no passed workload through the proxy: $(cat "$TMP/rec/$name-vmm.log")"
    python3 "$SRC/tests/fuzz/rec-to-seeds.py" --dump "$TMP/rec/$name.rec" > "$TMP/$name.txt" ||
        fail "$name: the recording does not parse"
done

# Nothing lost, added or altered: the messages the VMM traced (-trace
# vhost_user), each with its flags, size and fd count, are the recorded ones.
same_as_trace() {
    local name=$1
    grep '^vhost-user: ' "$TMP/rec/$name-vmm.log" | awk '{
        if ($4 == "backend-chan") print "chan", $3, $5, $6, $7, $8
        else print "main", $3, $4, $5, $6, $7 }' | sort > "$TMP/$name.traced"
    awk '{
        if ($2 == "backend-chan") print "chan", $3, $4, $5, $6, $7
        else print "main", $2, $3, $4, $5, $6 }' "$TMP/$name.txt" | sort > "$TMP/$name.recorded"
    [ -s "$TMP/$name.traced" ] || fail "$name: the VMM traced no message"
    diff "$TMP/$name.traced" "$TMP/$name.recorded" > "$TMP/$name.diff" ||
        fail "$name: the VMM's trace (<) and the recording (>) differ: $(cat "$TMP/$name.diff")"
}

# The front-end requests in the order they must come (a subsequence).
expect_order() {
    local name=$1
    shift
    awk -v want="$*" '
        BEGIN { n = split(want, w, " "); i = 1 }
        $2 == "F>B" && i <= n && $3 == w[i] { i++ }
        END { if (i <= n) { print "missing or out of order: " w[i]; exit 1 } }
    ' "$TMP/$name.txt" || fail "$name: the bring-up recorded: $(cat "$TMP/$name.txt")"
}
# Every request with NEED_REPLY (flags 0x9) has its reply (0x5) on the same channel.
expect_replies() {
    local name=$1 asked answered
    asked=$(grep -c '^0 F>B .* flags=0x9 ' "$TMP/$name.txt")
    answered=$(grep -cE '^0 B>F [A-Z_]+ flags=0x5 size=8 ' "$TMP/$name.txt")
    if [ "$asked" -eq 0 ] || [ "$asked" -gt "$answered" ]; then
        fail "$name: $asked requests with NEED_REPLY, $answered acks recorded"
    fi
}
expect_count() {
    local name=$1 pattern=$2 want=$3 got
    got=$(grep -cE "$pattern" "$TMP/$name.txt")
    [ "$got" -eq "$want" ] || fail "$name: $got lines match '$pattern', want $want"
}

expect_order ref-blk GET_FEATURES GET_PROTOCOL_FEATURES SET_PROTOCOL_FEATURES GET_QUEUE_NUM \
    SET_OWNER GET_CONFIG SET_FEATURES SET_MEM_TABLE GET_INFLIGHT_FD SET_INFLIGHT_FD \
    SET_VRING_BASE SET_VRING_ADDR SET_VRING_KICK SET_VRING_CALL GET_VRING_BASE
expect_order ref-net GET_FEATURES GET_PROTOCOL_FEATURES SET_PROTOCOL_FEATURES SET_OWNER \
    SET_FEATURES SET_MEM_TABLE SET_VRING_NUM SET_VRING_BASE SET_VRING_ADDR SET_VRING_KICK \
    SET_VRING_CALL SET_VRING_ENABLE GET_VRING_BASE
expect_order dpdk-iommu GET_FEATURES GET_PROTOCOL_FEATURES SET_PROTOCOL_FEATURES \
    SET_OWNER SET_BACKEND_REQ_FD SET_FEATURES SET_MEM_TABLE SET_VRING_KICK IOTLB_MSG \
    GET_VRING_BASE
for name in ref-blk ref-net dpdk-iommu; do
    same_as_trace "$name"
    expect_replies "$name"
    expect_count "$name" '^0 F>B SET_MEM_TABLE .* fds=1 \(f\)' 1
done
# One kick (an eventfd) per ring: 2 blk queues, 2 queue pairs, 1 pair.
expect_count ref-blk '^0 F>B SET_VRING_KICK .* fds=1 \(e\)' 2
expect_count ref-net '^0 F>B SET_VRING_KICK .* fds=1 \(e\)' 4
expect_count dpdk-iommu '^0 F>B SET_VRING_KICK .* fds=1 \(e\)' 2
expect_count ref-blk '^0 B>F GET_INFLIGHT_FD .* fds=1 \(f\)' 1
# The channel: handed over (a socket: ours), testpmd's misses came through it
# and each got an update on the main socket (the workload passing says the
# translations were right).
expect_count dpdk-iommu '^0 F>B SET_BACKEND_REQ_FD .* fds=1 \(s\)' 1
misses=$(grep -c '^0 backend-chan B>F IOTLB_MSG' "$TMP/dpdk-iommu.txt")
updates=$(grep -c '^0 F>B IOTLB_MSG' "$TMP/dpdk-iommu.txt")
if [ "$misses" -eq 0 ] || [ "$updates" -lt "$misses" ]; then
    fail "dpdk-iommu: $misses IOTLB misses on the back-end channel, $updates updates"
fi

# Seeds from the fresh recordings, in a corpus of their own.
mkdir -p "$TMP/corpus"
python3 "$SRC/tests/fuzz/rec-to-seeds.py" --corpus "$TMP/corpus" \
    "ref-blk=$TMP/rec/ref-blk.rec" "ref-net=$TMP/rec/ref-net.rec" \
    "dpdk-iommu=$TMP/rec/dpdk-iommu.rec" || fail "rec-to-seeds failed"
for t in fuzz-msg-request fuzz-msg-reply fuzz-reply-path fuzz-backend-chan \
         fuzz-inflight-take; do
    [ -n "$(ls "$TMP/corpus/$t")" ] || fail "no $t seed made of the recordings"
done
# Replayed, fresh and committed: a broken oracle aborts the harness.
for t in fuzz-msg-request fuzz-msg-reply fuzz-reply-path fuzz-backend-chan \
         fuzz-inflight-take fuzz-postcopy-reply; do
    recorded=("$SRC/tests/fuzz/corpus/$t"/rec-*)
    [ -e "${recorded[0]}" ] ||
        fail "no recorded seed committed for $t (scripts/record-corpus.sh)"
    "$BUILD/tests/$t-replay" "$TMP/corpus/$t" "$SRC/tests/fuzz/corpus/$t" ||
        fail "$t: replaying the seeds failed"
done
echo "record-proxy-test: passed"
