#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Builds the libFuzzer targets of tests/fuzz/ with clang 14 (libFuzzer +
# ASan + UBSan) against the sources they exercise, and runs each over its
# committed seed corpus (tests/fuzz/corpus/TARGET/).
#   scripts/run-fuzz.sh [--runs N | --time SECONDS] [BUILD_DIR]
# Default: --runs 200000 (a bounded run for `make check`, a few seconds per
# target; the library targets get a fraction of it, see run_divisor). `make fuzz` uses --time 600. New inputs libFuzzer finds go to
# BUILD_DIR/corpus-TARGET, never into the committed corpus; crashes are
# written to BUILD_DIR/ as crash-* and make the script fail.
set -e
mode="-runs=200000"
case "$1" in
--runs) mode="-runs=$2"; shift 2 ;;
--time) mode="-max_total_time=$2"; shift 2 ;;
esac
# The library targets set up a connection per input (thousands of
# executions a second, not the tens of thousands of the message targets):
# a bounded run gives them a fraction of the executions, so `make check`'s
# fuzz run stays under a minute. Rates per CPU second, ASan build:
# docs/devel/fuzzing.rst.
run_divisor() {
    case "$1" in
    fuzz-backend-chan) echo 50 ;;       # a bring-up (negotiation, channel) per input
    fuzz-reply-path|fuzz-postcopy-reply) echo 10 ;;   # one connect per input
    fuzz-vmm-options) echo 4 ;;         # allocation-heavy parsing
    fuzz-qmp) echo 50 ;;                # a client connection per input
    *) echo 1 ;;
    esac
}
target_mode() {
    case "$mode" in
    -runs=*) echo "-runs=$(( ${mode#-runs=} / $(run_divisor "$1") ))" ;;
    *) echo "$mode" ;;
    esac
}
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-build-fuzz}
CC=${FUZZ_CC:-clang-14}
targets="fuzz-msg-request fuzz-msg-reply fuzz-inflight-take fuzz-backend-chan
         fuzz-reply-path fuzz-postcopy-reply fuzz-vmm-options fuzz-qmp"
# Targets that drive a real VhostUserState link the whole library, built by
# meson with the same compiler and sanitizers into BUILD_DIR/lib; the VMM
# targets link the VMM's sources they drive (and the guest driver).
lib_targets="fuzz-backend-chan fuzz-reply-path fuzz-postcopy-reply fuzz-vmm-options fuzz-qmp"
util_srcs="util/vhost-user-error.c util/vhost-user-log.c util/vhost-user-msg.c util/vhost-user-trace.c"
# What each target needs besides util/.
extra_srcs() {
    case "$1" in
    fuzz-inflight-take) echo hw/virtio/vhost-inflight.c ;;
    esac
}
# Longest useful input: a header and a full payload, or the fixed layout.
max_len() {
    case "$1" in
    fuzz-inflight-take) echo 33 ;;
    fuzz-backend-chan) echo 1024 ;;
    fuzz-reply-path|fuzz-postcopy-reply) echo 600 ;;
    fuzz-vmm-options) echo 1024 ;;
    fuzz-qmp) echo 4096 ;;
    *) echo 4200 ;;
    esac
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
lib="$out/lib"
# The library, the guest driver (the VMM's -workload parsers) and the
# message table, with the fuzz sanitizers. clang warns (-Werror) of the
# guest driver's atomics on packed ring fields, which gcc does not: the
# access is what the ring layout dictates, not a fuzzing concern.
lib_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -Wno-atomic-alignment'
if [ ! -f "$lib/build.ninja" ]; then
    CC=$CC meson setup "$lib" "$src" -Dtests=false -Db_lundef=false \
        -Db_sanitize=address,undefined -Dc_args="$lib_args" >"$out/lib-setup.log"
elif [ "$(cat "$lib/fuzz-c-args" 2>/dev/null)" != "$lib_args" ]; then
    meson configure "$lib" -Dc_args="$lib_args" >"$out/lib-setup.log"
fi
echo "$lib_args" >"$lib/fuzz-c-args"
ninja -C "$lib" -j2 libvhost-user-frontend-static.a libvhost-user-util.a libguest.a \
    >"$out/lib-build.log" || {
    cat "$out/lib-build.log" >&2
    exit 1
}
for t in $targets; do
    srcs="$src/tests/fuzz/$t.c"
    case " $lib_targets " in
    *" $t "*)
        case "$t" in
        fuzz-backend-chan)
            # The unit tests' ut_recv_full (reading a message with its fds).
            srcs="$srcs -I$src/tests/unit $src/tests/unit/unit-sock.c
                  $(pkg-config --cflags --libs check)" ;;
        fuzz-vmm-options)
            srcs="$srcs -I$src $src/vmm/vmm-options.c $src/vmm/vmm-kv.c $lib/libguest.a" ;;
        fuzz-qmp)
            srcs="$srcs -I$src -DVMM_VERSION=\"fuzz\" $src/vmm/vmm-monitor.c
                  $src/vmm/vmm-kv.c $(pkg-config --cflags --libs json-glib-1.0)" ;;
        esac
        srcs="$srcs $lib/libvhost-user-frontend-static.a $lib/libvhost-user-util.a -lpthread" ;;
    *) for s in $util_srcs $(extra_srcs "$t"); do srcs="$srcs $src/$s"; done ;;
    esac
    # shellcheck disable=SC2046,SC2086
    $CC -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
        -Wno-unused-parameter -Wno-missing-field-initializers \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$src/include" $(pkg-config --cflags glib-2.0) \
        $srcs $(pkg-config --libs glib-2.0) -o "$out/$t"
done

# ASan's defaults cost the harnesses here most of their time in the
# kernel: every malloc is filled with 0xbe (up to 4 KiB) and 256 MiB of
# quarantine keeps handing out fresh pages (page faults, clear_page), and
# each malloc unwinds 30 frames. No check depends on those: the fill only
# makes uninitialised reads easier to spot in a debugger, 16 MiB of
# quarantine is thousands of inputs' frees, and a crash is re-run with the
# full context when it is minimised. fuzz-qmp 1.6x, fuzz-backend-chan 1.2x
# fewer CPU seconds per execution (docs/devel/fuzzing.rst).
FUZZ_ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-max_malloc_fill_size=0:quarantine_size_mb=16:malloc_context_size=5}
status=0
for t in $targets; do
    mkdir -p "$out/corpus-$t"
    echo "run-fuzz: $t $(target_mode "$t")" >&2
    # The first directory receives new inputs; the committed corpus is read only.
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:$FUZZ_ASAN_OPTIONS \
         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
         "$out/$t" "$(target_mode "$t")" -max_len="$(max_len "$t")" -print_final_stats=1 \
             -artifact_prefix="$out/$t-" \
             "$out/corpus-$t" "$src/tests/fuzz/corpus/$t" 2>"$out/$t.log"; then
        cat "$out/$t.log" >&2
        echo "run-fuzz: $t FAILED (log $out/$t.log)" >&2
        status=1
    else
        grep -E '^(stat::number_of_executed_units|#[0-9]+ *DONE)' "$out/$t.log" >&2 || true
    fi
done
exit $status
