#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# check-docs.sh MSGTABLE_BINARY RST_FILE [--update]
#
# The message table in the docs is generated from the code's table. This
# checks that RST_FILE holds the binary's output verbatim between the lines
#   .. BEGIN GENERATED MESSAGE TABLE
#   .. END GENERATED MESSAGE TABLE
# and exits 1 with a diff when it does not. With --update the block is
# rewritten in place instead.
set -eu

usage() {
    echo "usage: $0 MSGTABLE_BINARY RST_FILE [--update]" >&2
    exit 2
}

[ $# -eq 2 ] || [ $# -eq 3 ] || usage
bin=$1
rst=$2
update=0
if [ $# -eq 3 ]; then
    [ "$3" = "--update" ] || usage
    update=1
fi

begin='.. BEGIN GENERATED MESSAGE TABLE'
end='.. END GENERATED MESSAGE TABLE'

[ -x "$bin" ] || { echo "$0: $bin: not an executable" >&2; exit 2; }
[ -f "$rst" ] || { echo "$0: $rst: no such file" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-docs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$bin" > "$tmp/generated"

# Exactly one of each marker, begin before end: otherwise the rewrite
# below could eat the wrong part of the document.
nb=$(grep -c -x -F -e "$begin" "$rst" || true)
ne=$(grep -c -x -F -e "$end" "$rst" || true)
lb=$(grep -n -x -F -e "$begin" "$rst" | head -n 1 | cut -d: -f1)
le=$(grep -n -x -F -e "$end" "$rst" | head -n 1 | cut -d: -f1)
if [ "$nb" != 1 ] || [ "$ne" != 1 ] || [ "$lb" -ge "$le" ]; then
    echo "$0: $rst: needs exactly one '$begin' line followed by one '$end' line" >&2
    exit 1
fi

# The lines strictly between the markers.
# (sed with a range whose end precedes its start would print one line.)
if [ $((lb + 1)) -lt "$le" ]; then
    sed -n "$((lb + 1)),$((le - 1))p" "$rst" > "$tmp/current"
else
    : > "$tmp/current"
fi

if [ "$update" -eq 1 ]; then
    if cmp -s "$tmp/generated" "$tmp/current"; then
        echo "$rst: message table already up to date"
        exit 0
    fi
    {
        head -n "$lb" "$rst"
        cat "$tmp/generated"
        tail -n "+$le" "$rst"
    } > "$tmp/new"
    # Keep the file (and its permissions) in place rather than renaming.
    cat "$tmp/new" > "$rst"
    echo "$rst: message table updated"
    exit 0
fi

if cmp -s "$tmp/generated" "$tmp/current"; then
    echo "$rst: message table matches $bin"
    exit 0
fi

echo "$rst: the generated message table is out of date:" >&2
diff -u "$tmp/current" "$tmp/generated" | sed \
    -e "1s|^--- .*|--- $rst (between the markers)|" \
    -e "2s|^+++ .*|+++ output of $bin|" >&2 || true
echo "Regenerate it with:" >&2
echo "    $0 $bin $rst --update" >&2
exit 1
