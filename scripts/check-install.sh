#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# check-install.sh BUILD_DIR EXAMPLE_C BACKEND_BINARY
#
# A VMM can embed the library from what `meson install` puts on disk, and
# from nothing else. Installs BUILD_DIR into a temporary directory, then:
#   1. each installed header compiles on its own (no include of a header
#      that is not installed);
#   2. EXAMPLE_C (examples/minimal-vmm.c) compiles and links with
#      `cc $(pkg-config --cflags --libs vhost-user-frontend)` against that
#      prefix only;
#   3. it runs, with the installed shared library, against BACKEND_BINARY
#      serving a disk file filled with a known pattern, and must print the
#      sector it was asked for.
# A missing header, a hidden symbol or a broken data path fails the check.
set -eu

[ $# -eq 3 ] || { echo "usage: $0 BUILD_DIR EXAMPLE_C BACKEND_BINARY" >&2; exit 2; }
build=$1
example=$2
backend=$3
: "${CC:=cc}"
: "${MESON:=meson}"

tmp=$(mktemp -d)
be_pid=
cleanup() {
    [ -n "$be_pid" ] && kill "$be_pid" 2>/dev/null && wait "$be_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "check-install: $*" >&2
    exit 1
}

"$MESON" install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install failed"; }

pc=$(find "$tmp/root" -name vhost-user-frontend.pc)
[ -n "$pc" ] || fail "no vhost-user-frontend.pc installed"
lib=$(find "$tmp/root" -name 'libvhost-user-frontend.so.*' -type f)
[ -n "$lib" ] || fail "no libvhost-user-frontend.so installed"
# The .pc names the configured prefix; a DESTDIR install lives below
# $tmp/root, so point a copy at it (includedir and libdir follow prefix).
mkdir "$tmp/pkgconfig"
prefix=$(sed -n 's/^prefix=//p' "$pc")
sed "s|^prefix=.*|prefix=$tmp/root$prefix|" "$pc" > "$tmp/pkgconfig/vhost-user-frontend.pc"
export PKG_CONFIG_PATH="$tmp/pkgconfig"
cflags=$(pkg-config --cflags vhost-user-frontend) || fail "pkg-config --cflags failed"
libs=$(pkg-config --libs vhost-user-frontend) || fail "pkg-config --libs failed"
incdir=$(pkg-config --variable=includedir vhost-user-frontend)/vhost-user-frontend
[ -d "$incdir" ] || fail "Cflags point at $incdir, which was not installed"

# A sanitizer build's library needs the example built the same way to run.
san=
if nm -D --undefined-only "$lib" | grep -q '__asan_'; then
    san=-fsanitize=address,undefined
fi
warn="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror"

nheaders=0
for h in $(cd "$incdir" && find . -name '*.h' | sed 's|^\./||' | sort); do
    printf '#include "%s"\n' "$h" > "$tmp/hdr.c"
    # shellcheck disable=SC2086
    $CC $warn $cflags -fsyntax-only "$tmp/hdr.c" 2>"$tmp/hdr.log" ||
        { cat "$tmp/hdr.log" >&2; fail "installed header $h does not compile on its own"; }
    nheaders=$((nheaders + 1))
done

# shellcheck disable=SC2086
$CC $warn $san $cflags -o "$tmp/minimal-vmm" "$example" $libs 2>"$tmp/cc.log" ||
    { cat "$tmp/cc.log" >&2; fail "the example does not build from the installed files"; }

# A 1 MiB disk whose sectors 0..7 each start with their own marker.
disk="$tmp/disk.img"
truncate -s 1M "$disk"
for s in 0 1 2 3 4 5 6 7; do
    printf 'sector %s of the check-install disk' "$s" |
        dd of="$disk" bs=512 seek="$s" conv=notrunc status=none
done

sock="$tmp/blk.sock"
"$backend" --socket-path="$sock" --type=blk --blk-file="$disk" >"$tmp/backend.log" 2>&1 &
be_pid=$!

libdir=$(dirname "$lib")
LD_LIBRARY_PATH="$libdir" timeout 60 "$tmp/minimal-vmm" "$sock" 5 >"$tmp/out" 2>"$tmp/err" ||
    { cat "$tmp/err" "$tmp/backend.log" >&2; fail "minimal-vmm failed"; }
grep -q 'sector 5: sector 5 of the check-install disk' "$tmp/out" ||
    { cat "$tmp/out" "$tmp/err" >&2; fail "minimal-vmm did not read sector 5"; }
# It ran on the installed library, not on one from the build tree.
LD_LIBRARY_PATH="$libdir" ldd "$tmp/minimal-vmm" | grep -q "$libdir/libvhost-user-frontend" ||
    fail "minimal-vmm did not resolve the installed library"

echo "check-install: $nheaders headers compile alone; minimal-vmm built from the install and read: $(cat "$tmp/out")"
