#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# scripts/build-dpdk-vhost-blk.sh OUT_DIR [SRC_DIR]
#
# Builds DPDK's vhost_blk example, a vhost-user-blk back-end we did not
# write, into OUT_DIR/vhost-blk. Its source comes with the Debian package
# dpdk-doc (SRC_DIR, default /usr/share/dpdk/examples/vhost_blk), the
# headers and libraries with dpdk-dev; no network is used. The source is
# copied first: the example's Makefile builds in place, and /usr/share
# is not ours to write. Rebuilds only when the source or libdpdk's
# pkg-config file is newer than the binary.
set -eu

OUT=${1:-}
SRC=${2:-/usr/share/dpdk/examples/vhost_blk}

die() {
    echo "build-dpdk-vhost-blk: $*" >&2
    exit 1
}

[ -n "$OUT" ] || die "usage: scripts/build-dpdk-vhost-blk.sh OUT_DIR [SRC_DIR]"
[ -f "$SRC/vhost_blk.c" ] ||
    die "$SRC/vhost_blk.c not found: install the Debian package dpdk-doc"
command -v pkg-config >/dev/null 2>&1 || die "pkg-config not found: install pkg-config"
pkg-config --exists libdpdk ||
    die "libdpdk.pc not found: install the Debian package libdpdk-dev (dpdk-dev)"
command -v make >/dev/null 2>&1 || die "make not found: install the Debian package make"

mkdir -p "$OUT/src"
BIN="$OUT/vhost-blk"
PC=$(pkg-config --path libdpdk)
if [ -x "$BIN" ] && [ -z "$(find "$SRC" "$PC" -newer "$BIN" -print 2>/dev/null)" ]; then
    exit 0
fi
cp -f "$SRC"/*.c "$SRC"/*.h "$SRC"/Makefile "$OUT/src/"
# The example's own Makefile and pkg-config flags. CFLAGS from the
# environment is appended to (on the command line it would replace them);
# -w: the example's warnings are not ours to fix.
CFLAGS="-w" make -s -C "$OUT/src" shared >"$OUT/build.log" 2>&1 || {
    cat "$OUT/build.log" >&2
    die "make failed (log above, also in $OUT/build.log)"
}
cp -f "$OUT/src/build/vhost-blk-shared" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
