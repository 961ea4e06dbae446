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
#   BENCH_SECONDS   seconds per run (default 3)
#   BENCH_DEPTHS    queue depths ("1 32")
#   BENCH_POLL      our workload's completion modes, poll=... ("off on"):
#                   off sleeps on the call eventfd, on busy-polls the used
#                   ring, adaptive polls a while before sleeping
#   BENCH_REPS      repetitions per figure (default 7); each pairs one run of
#                   ours with one of fio, in alternating order, and the
#                   figure is the median of the paired ratios
#   BENCH_QSD_POLL_NS  qsd's export in an iothread with this poll-max-ns
#                   (default 32768: QEMU's own default for an iothread);
#                   "main" keeps it in qsd's main loop (no polling)
#   BENCH_REF       1 (default): then, our reference back-end on a RAM disk
#                   (no disk, the vhost-user path alone) in each poll mode:
#                   IOPS and IOPS per core (CPU time of the VMM and the
#                   back-end over the run's wall time); 0 skips it
#   BENCH_JSON      also write the figures there (bench/report.py's format)
#   BENCH_IMG_SIZE  image size, a truncate(1) size (256M)
#   BENCH_DIR       directory on a real disk for the image (/var/tmp); a
#                   tmpfs would make O_DIRECT fail or measure RAM
#   BENCH_KEEP      1: keep the logs and JSON (the image is always removed)
#
# fio is installed with apt-get when it is missing (as root), since no
# other part of the project needs it.

set -euo pipefail

RUNTIME=${BENCH_SECONDS:-3}
DEPTHS=${BENCH_DEPTHS:-"1 32"}
POLLS=${BENCH_POLL:-"off on"}
IMG_SIZE=${BENCH_IMG_SIZE:-256M}
REPS=${BENCH_REPS:-7}
QSD_POLL_NS=${BENCH_QSD_POLL_NS:-32768}
REF_RUN=${BENCH_REF:-1}
DIR=${BENCH_DIR:-/var/tmp}

die() {
    echo "bench-blk: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
VMM=$BUILD/vhost-user-vmm
REFBE=$BUILD/contrib/vhost-user-backend

[[ -x "$VMM" ]] || die "$VMM not found: build it first (meson setup $BUILD && ninja -C $BUILD)"
[[ "$RUNTIME" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS: '$RUNTIME' is not a positive integer"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS: '$REPS' is not a positive integer"
for p in $POLLS; do
    [[ $p = off || $p = on || $p = adaptive ]] || die "BENCH_POLL: '$p' is not off, on or adaptive"
done
[[ $QSD_POLL_NS = main || $QSD_POLL_NS =~ ^[0-9]+$ ]] ||
    die "BENCH_QSD_POLL_NS: '$QSD_POLL_NS' is not a number of ns or 'main'"
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
QSD_PID=
REF=

cleanup() {
    if [[ -n "$REF" ]]; then
        kill -KILL "$REF" 2>/dev/null || true
        wait "$REF" 2>/dev/null || true
    fi
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
    local iothread=() on=
    rm -f "$SOCK"
    if [[ $QSD_POLL_NS != main ]]; then
        iothread=(--object "iothread,id=io0,poll-max-ns=$QSD_POLL_NS")
        on=,iothread=io0
    fi
    # The outer timeout only bounds a run that went wrong; stop_qsd ends it.
    timeout 1800 qemu-storage-daemon "${iothread[@]}" \
        --blockdev "driver=file,node-name=file0,filename=$IMG,cache.direct=on,aio=io_uring" \
        --blockdev driver=raw,node-name=disk0,file=file0 \
        --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$SOCK,writable=on,num-queues=1$on" \
        >"$TMP/qsd.log" 2>&1 </dev/null &
    QSD=$!
    for _ in $(seq 100); do
        if [[ -S "$SOCK" ]]; then
            # $QSD is timeout(1)'s pid; the CPU time is qsd's own.
            QSD_PID=$(pgrep -P "$QSD" -n) || die "qemu-storage-daemon: no process under timeout(1)"
            return 0
        fi
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
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench-blk: load average $LOAD0 before the run" \
     "(anything else running on these cores shows up in the figures)"
FSTYPE=$(findmnt -no FSTYPE -T "$DIR" 2>/dev/null || stat -f -c %T "$DIR")
echo "bench-blk: $IMG_SIZE raw image in $DIR ($(df -P "$DIR" | awk 'NR == 2 { print $1 }'), $FSTYPE)," \
     "4k randread, ${RUNTIME}s per run, $REPS paired repetitions, O_DIRECT + io_uring on both sides," \
     "qsd $([[ $QSD_POLL_NS = main ]] && echo "main loop" || echo "iothread poll-max-ns=$QSD_POLL_NS")"

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

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# One measured read run of ours ($1 tag, $2 iodepth, $3 poll mode); leaves
# "wall-s user-s sys-s" of the VMM process in $TMP/TAG.time.
run_read_timed() {
    local TIMEFORMAT='%R %U %S'
    { time run_vmm "$1" "rw=randread,bs=4k,iodepth=$2,runtime=${RUNTIME}s,verify=off,flush=off,poll=$3" \
          2>&3; } 3>&2 2>"$TMP/$1.time"
}

# One repetition: ours and fio back to back, the order alternating between
# repetitions so a burst of load from elsewhere on the machine hits both.
# The export stays up, idle, while fio runs. Appends "ours-IOPS ours-avg
# ours-p99 fio-IOPS fio-avg fio-p99 vmm-us/op qsd-us/op fio-us/op" to
# $TMP/reps-qdD-POLL. The CPU time per request says which side is the
# limit: qsd serves every request on one thread (its iothread), so 1e6 /
# its us/op is the most IOPS it can reach, whatever the guest does.
run_pair() {
    local d=$1 poll=$2 rep=$3 tag=qd$1-$2-$3 side line=() q0 q1 wall u s
    for side in $( ((rep % 2)) && echo "ours fio" || echo "fio ours"); do
        if [[ $side = ours ]]; then
            q0=$(cpu_ticks "$QSD_PID")
            run_read_timed "$tag" "$d" "$poll"
            q1=$(cpu_ticks "$QSD_PID")
            read -r wall u s <"$TMP/$tag.time"
        else
            run_fio "$tag" "$d"
        fi
    done
    read -r -a line < <(jq -r '"\(.ops_per_sec) \(.latency_us.avg) \(.latency_us.p99)"' \
                         "$TMP/ours-$tag.json")
    # fio's lat_ns is submission to completion, like our per-request
    # latency (added to the ring until its used entry is seen).
    read -r -a fline < <(jq -r '.jobs[0].read |
        "\(.iops) \(.lat_ns.mean / 1000) \(.lat_ns.percentile["99.000000"] / 1000)"' \
                          "$TMP/fio-$tag.json")
    # CPU time per request: the VMM's (all its threads, start-up included:
    # a few ms of the run), qsd's over the VMM's run, fio's own (usr_cpu
    # and sys_cpu are percentages of its job's runtime).
    local ops cpu=()
    ops=$(jq -r .ops "$TMP/ours-$tag.json")
    read -r -a cpu < <(awk -v u="$u" -v s="$s" -v t="$((q1 - q0))" -v hz="$HZ" -v n="$ops" \
                           'BEGIN { printf "%.2f %.2f\n", (u + s) * 1e6 / n, t / hz * 1e6 / n }')
    cpu+=("$(jq -r '.jobs[0] | ((.usr_cpu + .sys_cpu) / 100 * .job_runtime * 1000 /
                    .read.total_ios * 100 | round) / 100' "$TMP/fio-$tag.json")")
    echo "bench-blk: iodepth $d poll=$poll rep $rep: ours ${line[0]} IOPS, fio ${fline[0]} IOPS," \
         "ratio $(ratio "${line[0]}" "${fline[0]}"), CPU us/request VMM ${cpu[0]} qsd ${cpu[1]}" \
         "fio ${cpu[2]}, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    echo "${line[*]} ${fline[*]} ${cpu[*]}" >>"$TMP/reps-qd$d-$poll"
}

# Medians of a reps file: "ours fio ratio ours-avg fio-avg ours-p99 fio-p99
# vmm-us/op qsd-us/op fio-us/op".
medians() {
    awk 'function med(a, n,   i, j, t) {
             for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
             return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
         { n++; oi[n] = $1; oa[n] = $2; op[n] = $3; fi_[n] = $4; fa[n] = $5; fp[n] = $6
           r[n] = $4 > 0 ? $1 / $4 : 0; cv[n] = $7; cq[n] = $8; cf[n] = $9 }
         END { printf "%.0f %.0f %.3f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", med(oi, n), med(fi_, n),
                      med(r, n), med(oa, n), med(fa, n), med(op, n), med(fp, n), med(cv, n),
                      med(cq, n), med(cf, n) }' "$1"
}

for d in $DEPTHS; do
    for poll in $POLLS; do
        for rep in $(seq "$REPS"); do
            run_pair "$d" "$poll" "$rep"
        done
    done
done
stop_qsd

# Our reference back-end on a RAM disk: the cost of the vhost-user path
# itself, as IOPS per core of CPU time (VMM + back-end). No anchor.
if [[ $REF_RUN = 1 ]]; then
    [[ -x $REFBE ]] || die "$REFBE not found: build it first (ninja -C $BUILD)"
    SOCK=$TMP/ref.sock
    "$REFBE" --socket-path="$SOCK" --type=blk --blk-size=256M >"$TMP/ref.log" 2>&1 </dev/null &
    REF=$!
    for _ in $(seq 100); do
        [[ -S $SOCK ]] && break
        sleep 0.1
    done
    [[ -S $SOCK ]] || die "the reference back-end did not create $SOCK: $(cat "$TMP/ref.log")"
    for d in $DEPTHS; do
        for poll in $POLLS; do
            for rep in $(seq "$REPS"); do
                tag=ref-qd$d-$poll-$rep
                t0=$(cpu_ticks "$REF")
                run_read_timed "$tag" "$d" "$poll"
                t1=$(cpu_ticks "$REF")
                read -r wall u s <"$TMP/$tag.time"
                iops=$(jq -r .ops_per_sec "$TMP/ours-$tag.json")
                # Cores busy over the VMM's life (start-up included, which
                # favours nobody: a few ms of a 3 s run).
                cores=$(awk -v u="$u" -v s="$s" -v t="$((t1 - t0))" -v hz="$HZ" -v w="$wall" \
                        'BEGIN { printf "%.3f", (u + s + t / hz) / w }')
                echo "bench-blk: ref iodepth $d poll=$poll rep $rep: $iops IOPS, $cores cores" >&2
                echo "$iops $cores" >>"$TMP/ref-qd$d-$poll"
            done
        done
    done
    kill -TERM "$REF" 2>/dev/null || true
    wait "$REF" 2>/dev/null || true
    REF=
fi

echo
printf '%7s  %8s  %10s  %10s  %6s  %9s  %9s  %9s  %9s  %7s  %7s  %7s\n' iodepth poll "ours IOPS" \
    "fio IOPS" ratio "ours avg" "fio avg" "ours p99" "fio p99" "VMM cpu" "qsd cpu" "fio cpu"
: >"$TMP/rows"
for d in $DEPTHS; do
    for poll in $POLLS; do
        read -r oi xi r oa xa op xp cv cq cf < <(medians "$TMP/reps-qd$d-$poll")
        printf '%7s  %8s  %10.0f  %10.0f  %6.2f  %7.1fus  %7.1fus  %7.1fus  %7.1fus  %7.1f  %7.1f  %7.1f\n' \
            "$d" "$poll" "$oi" "$xi" "$r" "$oa" "$xa" "$op" "$xp" "$cv" "$cq" "$cf"
        jq -n --arg s "poll=$poll" --argjson x "$d" --argjson o "$oi" --argjson a "$xi" \
            --argjson r "$r" --argjson oa "$oa" --argjson xa "$xa" --argjson op "$op" \
            --argjson xp "$xp" --argjson cv "$cv" --argjson cq "$cq" --argjson cf "$cf" \
            '{series: $s, x: $x, ours: $o, anchor: $a, ratio: $r, ours_avg_us: $oa,
              anchor_avg_us: $xa, ours_p99_us: $op, anchor_p99_us: $xp, vmm_cpu_us_per_op: $cv,
              qsd_cpu_us_per_op: $cq, anchor_cpu_us_per_op: $cf}' >>"$TMP/rows"
    done
done
if [[ $REF_RUN = 1 ]]; then
    echo
    printf '%7s  %8s  %10s  %7s  %14s\n' iodepth poll "ref IOPS" cores "IOPS per core"
    for d in $DEPTHS; do
        for poll in $POLLS; do
            # Medians of IOPS, of cores and of each run's IOPS per core.
            read -r ri rc rpc < <(awk '
                function med(a, n,   i, j, t) {
                    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
                { n++; i[n] = $1; c[n] = $2; p[n] = $2 > 0 ? $1 / $2 : 0 }
                END { printf "%.0f %.2f %.0f\n", med(i, n), med(c, n), med(p, n) }' "$TMP/ref-qd$d-$poll")
            printf '%7s  %8s  %10.0f  %7.2f  %14.0f\n' "$d" "$poll" "$ri" "$rc" "$rpc"
            jq -n --arg s "ref poll=$poll" --argjson x "$d" --argjson o "$ri" --argjson c "$rc" \
                --argjson p "$rpc" \
                '{series: $s, x: $x, ours: $o, anchor: null, ratio: null, cores: $c,
                  iops_per_core: $p}' >>"$TMP/rows"
        done
    done
    echo "ref: our reference back-end, RAM disk (no I/O below it): the vhost-user path's cost;"
    echo "     cores = CPU time of the VMM and the back-end / wall time, both medians over $REPS runs."
fi
echo
echo "Medians over $REPS alternating repetitions; ratio = median of the paired ratios ours IOPS / fio IOPS."
echo "ours: guest virtio-blk driver -> vring -> qemu-storage-daemon (vhost-user-blk, 1 queue) -> io_uring O_DIRECT;"
echo "      poll=off sleeps on the call eventfd, poll=on busy-polls the used ring (one core spinning)."
echo "anchor: fio, io_uring O_DIRECT on the same file, no virtualization: the floor for this disk."
echo "cpu: CPU time per request in us (medians): the VMM (guest driver, all threads), qsd, fio;"
echo "     qsd serves the export on one thread, so it cannot pass 1e6 / (qsd cpu) IOPS."
if [[ -n ${BENCH_JSON:-} ]]; then
    jq -s --arg l "$LOAD0" --argjson reps "$REPS" --argjson secs "$RUNTIME" \
        --arg qsd "$QSD_POLL_NS" \
        '{bench: "blk", title: "4 KiB random read through qemu-storage-daemon vs fio",
          unit: "IOPS", better: "higher", xlabel: "iodepth", plot: "IOPS vs queue depth",
          anchor: "fio io_uring O_DIRECT, same file", reps: $reps, seconds: $secs,
          load_avg: $l, qsd_poll_max_ns: $qsd, rows: .}' "$TMP/rows" >"$BENCH_JSON"
fi
