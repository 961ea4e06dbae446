# shellcheck shell=bash
# SPDX-License-Identifier: BSD-3-Clause
# Sourced by scripts/demo.sh and scripts/record-corpus.sh: background
# processes (back-ends, proxies) run in $TMP, each logging to $TMP/NAME.log,
# their pids in PIDS; bg_stop_all stops them all. BG_TAG names the script
# in its messages.

PIDS=()

# Stops every process in PIDS (SIGTERM; bounded: 5 s, then SIGKILL) and
# reaps it; PIDS is empty after.
bg_stop_all() {
    local pid _
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS=()
}

# bg_start NAME CMD...: CMD in the background, its output to $TMP/NAME.log.
# Its stdin is a FIFO whose writer (a sleep of our own, in PIDS) stays:
# testpmd exits at EOF on stdin.
bg_start() {
    local name=$1
    shift
    mkfifo "$TMP/$name.stdin"
    # shellcheck disable=SC2217  # its stdin closed, so it holds nothing of ours
    sleep 3600 > "$TMP/$name.stdin" 2>/dev/null < /dev/null &
    PIDS+=($!)
    "$@" < "$TMP/$name.stdin" > "$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}

# bg_wait_socket NAME SOCK: exits (with NAME's log) when no unix socket
# SOCK appears within 20 s.
bg_wait_socket() {
    local name=$1 sock=$2 _
    for _ in $(seq 1 200); do
        [ -S "$sock" ] && return 0
        sleep 0.1
    done
    echo "$BG_TAG: $name did not create $sock in 20 s; its output:" >&2
    cat "$TMP/$name.log" >&2
    exit 1
}
