#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# check-api.sh LIBRARY.so PUBLIC_API_TXT HEADER...
#
# The shared library exports exactly the public API. Three lists must be
# the same set of function names:
#   - what LIBRARY.so exports (nm -D --defined-only),
#   - PUBLIC_API_TXT (checked in; '#' lines are comments),
#   - the declarations marked VHOST_USER_API in the installed HEADERs.
# Any difference, either way, is printed and fails the check: a symbol
# that leaks out of the library, one that a public header promises but
# the library hides, or an API change made without updating the list.
set -eu

[ $# -ge 3 ] || { echo "usage: $0 LIBRARY.so PUBLIC_API_TXT HEADER..." >&2; exit 2; }
lib=$1
list=$2
shift 2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '{ print $NF }' | sort > "$tmp/exported"
grep -v '^#' "$list" | grep -v '^$' | sort > "$tmp/listed"
# The name before the first '(' of the declaration that follows each
# VHOST_USER_API (on the same line or the next).
cat "$@" | awk '
    pending && /\(/ { sub(/\(.*/, ""); n = split($0, w, /[ *]+/); print w[n]; pending = 0; next }
    /^VHOST_USER_API/ { sub(/^VHOST_USER_API[ ]*/, ""); pending = 1 }
    pending && /\(/ { sub(/\(.*/, ""); n = split($0, w, /[ *]+/); print w[n]; pending = 0 }
' | sort > "$tmp/declared"

status=0
compare() {
    # $1/$2: files; $3/$4: their names in the report
    if ! cmp -s "$1" "$2"; then
        comm -23 "$1" "$2" | while read -r sym; do echo "  in $3, not in $4: $sym"; done
        comm -13 "$1" "$2" | while read -r sym; do echo "  in $4, not in $3: $sym"; done
        status=1
    fi
}
compare "$tmp/exported" "$tmp/listed" "the library" "$list"
compare "$tmp/declared" "$tmp/listed" "the headers (VHOST_USER_API)" "$list"
if [ $status -ne 0 ]; then
    echo "check-api: the exported symbols differ from the public API (above)" >&2
else
    echo "check-api: $(wc -l < "$tmp/listed") public functions, exported and declared"
fi
exit $status
