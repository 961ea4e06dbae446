#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Every bench in one command (`make bench`): each script of the list below
# runs with BENCH_JSON=FILE and writes its figures there (bench/report.py
# says the format); a script that does not (yet) is read from its printed
# table instead (report.py table). Then bench/report.py merges them into
# OUT/DATE.json, draws OUT/DATE-*.svg with gnuplot and writes the summary
# OUT/DATE.md that embeds them. Figures are never asserted here.
#
# Usage: bench/run-all.sh [--quick | --smoke] [--out DIR] [--only "NAME..."] [BUILD_DIR]
#   (default)  each script's own defaults: 7+ alternating repetitions, the
#              median of the paired ratios
#   --quick    3 repetitions, shorter runs: a look, not a figure to quote
#   --smoke    1 repetition of 1 s at the smallest sizes: checks that every
#              bench runs and the results are well formed (the bench-smoke
#              test of `make check` runs this)
#   --out DIR  results directory (default bench/results)
#   --only     just these benches (names of the list below)
#
# Each bench runs alone (nothing else of ours in the background), with the
# load average printed before it: 6 helpers share 2 cores here, and the
# anchor of each bench runs in the same invocation, alternating with ours.
#
# gnuplot (gnuplot-nox) and fio are the benches' own tools, installed by
# scripts/install-deps.sh --bench when missing.

set -euo pipefail

die() {
    echo "run-all: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=full
OUT=$ROOT/bench/results
ONLY=
BUILD=
while (( $# )); do
    case $1 in
    --quick) MODE=quick ;;
    --smoke) MODE=smoke ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    --only) ONLY=${2:?--only needs bench names}; shift ;;
    -h|--help) sed -n '3,26p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (--quick, --smoke, --out DIR, --only NAMES)" ;;
    *) BUILD=$1 ;;
    esac
    shift
done
BUILD=${BUILD:-$ROOT/build}
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD
[[ -x $BUILD/vhost-user-vmm ]] || die "$BUILD/vhost-user-vmm not found: build first (make, or ninja -C $BUILD)"

# ---- the benches: one line each -----------------------------------------------
# bench NAME SCRIPT QUICK_ENV SMOKE_ENV   (env: "K=V;K=V", values may hold spaces)
NAMES=() SCRIPTS=() QUICK_ENVS=() SMOKE_ENVS=()
bench() { NAMES+=("$1") SCRIPTS+=("$2") QUICK_ENVS+=("$3") SMOKE_ENVS+=("$4"); }
bench net       bench-net.sh       "BENCH_REPS=3;BENCH_SECONDS=2" \
                                   "BENCH_REPS=1;BENCH_SECONDS=1;BENCH_SIZES=64"
bench blk       bench-blk.sh       "BENCH_REPS=3;BENCH_SECONDS=2" \
                                   "BENCH_REPS=1;BENCH_SECONDS=1;BENCH_DEPTHS=1;BENCH_IMG_SIZE=16M"
bench ctl       bench-ctl.sh       "BENCH_REPS=3" \
                                   "BENCH_REPS=1"
bench reconnect bench-reconnect.sh "BENCH_RUNS=5;BENCH_DOWNTIMES=0 100" \
                                   "BENCH_RUNS=1;BENCH_DOWNTIMES=0;BENCH_QEMU=none"
bench migrate   bench-migrate.sh   "BENCH_REPS=3;BENCH_SIZES=256M;BENCH_MIGRATIONS=1" \
                                   "BENCH_REPS=1;BENCH_MIB=256;BENCH_SIZES=256M;BENCH_MIGRATIONS=1"
bench postcopy  bench-postcopy.sh  "BENCH_REPS=3" \
                                   "BENCH_REPS=1;BENCH_MIB=32;BENCH_CASES=ours-unix ours-tcp"

for tool in gnuplot fio python3 jq; do
    command -v "$tool" >/dev/null && continue
    [[ $tool = gnuplot || $tool = fio ]] || die "'$tool' is missing"
    echo "run-all: $tool is missing: scripts/install-deps.sh --bench" >&2
    "$ROOT/scripts/install-deps.sh" --bench || die "scripts/install-deps.sh --bench failed"
    command -v "$tool" >/dev/null || die "'$tool' is still missing"
done

DATE=$(date -u +%Y-%m-%d-%H%M%S)
mkdir -p "$OUT"
PREFIX=$OUT/$DATE
WORK=$(mktemp -d "${TMPDIR:-/tmp}/run-all.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD0=$(loadavg)
echo "run-all: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), mode $MODE, load average $LOAD0, $BUILD"

FILES=() FAILED=()
for i in "${!NAMES[@]}"; do
    name=${NAMES[$i]} script=$ROOT/bench/${SCRIPTS[$i]} json=$WORK/$name.json
    [[ -z $ONLY || " $ONLY " = *" $name "* ]] || continue
    if [[ ! -f $script ]]; then
        echo "run-all: $name: bench/${SCRIPTS[$i]} is not in this tree, left out"
        jq -n --arg b "$name" --arg w "bench/${SCRIPTS[$i]} is not in this tree yet" \
            '{bench: $b, skipped: $w, rows: []}' >"$json"
        FILES+=("$json")
        continue
    fi
    envs=()
    case $MODE in
    quick) IFS=';' read -ra envs <<<"${QUICK_ENVS[$i]}" ;;
    smoke) IFS=';' read -ra envs <<<"${SMOKE_ENVS[$i]}" ;;
    esac
    load=$(loadavg)
    echo "run-all: == $name (load average $load) ${envs[*]+${envs[*]}}"
    rc=0
    env ${envs[@]+"${envs[@]}"} BENCH_MODE=$MODE BENCH_JSON="$json" \
        bash "$script" "$BUILD" 2>"$WORK/$name.err" | tee "$WORK/$name.out" || rc=$?
    if (( rc != 0 )); then
        echo "run-all: $name failed (exit $rc); its stderr ends with:" >&2
        tail -n 15 "$WORK/$name.err" >&2
        jq -n --arg b "$name" --arg w "failed (exit $rc): $(tail -n 1 "$WORK/$name.err")" \
            '{bench: $b, skipped: $w, rows: []}' >"$json"
        FAILED+=("$name")
    elif [[ ! -s $json ]]; then
        # A script without BENCH_JSON support: its printed table.
        python3 "$ROOT/bench/report.py" table "$name" "$WORK/$name.out" >"$json" ||
            die "$name: could not read its table (report.py table $name)"
        jq --arg l "$load" '.load_avg //= $l' "$json" >"$json.tmp" && mv "$json.tmp" "$json"
    fi
    [[ $(jq -r '.rows | length' "$json") -gt 0 || $(jq -r '.skipped // ""' "$json") ]] ||
        echo "run-all: $name: no figures in its output" >&2
    FILES+=("$json")
done
(( ${#FILES[@]} )) || die "--only '$ONLY' names no bench (${NAMES[*]})"

jq -n --arg date "$DATE" --arg mode "$MODE" --arg build "$BUILD" \
    --arg commit "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    --arg machine "$(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), kernel $(uname -r)" \
    --arg l0 "$LOAD0" --arg l1 "$(loadavg)" \
    '{date: $date, mode: $mode, build: $build, commit: $commit, machine: $machine,
      load_avg_start: $l0, load_avg_end: $l1}' >"$PREFIX.meta.json"
python3 "$ROOT/bench/report.py" merge "$PREFIX" "${FILES[@]}"
rm -f "$PREFIX.meta.json"
echo "run-all: $PREFIX.json, $PREFIX.md, $(ls "$PREFIX"-*.svg | wc -l) plots ($PREFIX-*.svg)"
if (( ${#FILES[@]} && ${#FAILED[@]} )); then
    die "failed: ${FAILED[*]} (their entries say so in $PREFIX.md)"
fi
