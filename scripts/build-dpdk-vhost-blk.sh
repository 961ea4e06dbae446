#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# scripts/build-dpdk-vhost-blk.sh [--packed-fix] OUT_DIR [SRC_DIR]
#
# Builds DPDK's vhost_blk example, a vhost-user-blk back-end we did not
# write, into OUT_DIR/vhost-blk. Its source comes with the Debian package
# dpdk-doc (SRC_DIR, default /usr/share/dpdk/examples/vhost_blk), the
# headers and libraries with dpdk-dev; no network is used. The source is
# copied first: the example's Makefile builds in place, and /usr/share
# is not ours to write. Rebuilds only when the source or libdpdk's
# pkg-config file is newer than the binary.
#
# --packed-fix builds OUT_DIR/vhost-blk-packed-fix instead: the same
# source with two of its bugs fixed, one token each (DPDK 22.11):
#  1. new_device() computes
#       inflight_shmfd = !!(features & (1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD));
#     from the *virtio* features, where bit 12 is VIRTIO_BLK_F_MQ (never
#     offered), not from the protocol features it fetched just above. So
#     it never maps the inflight area, and on a packed ring the only code
#     that takes the wrap counters out of bit 15 of the bases
#     rte_vhost_get_vring_base() returns never runs: the worker polls
#     desc_packed[0x8000], past the ring, with both wrap counters 0, and
#     no request ever completes. Fixed: protocol_features.
#  2. submit_inflight_vq(), reachable only once 1 is fixed, releases the
#     resubmit list DPDK's vhost library allocated with
#     rte_zmalloc_socket() by free(): glibc aborts ("free(): invalid
#     pointer") when a restarted example had a request to resubmit.
#     Fixed: rte_free.
# tests/qtest/real-packed-test.c says more.
set -eu

FIX=0
if [ "${1:-}" = "--packed-fix" ]; then
    FIX=1
    shift
fi
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

if [ "$FIX" = 1 ]; then
    BUILD="$OUT/src-packed-fix"
    BIN="$OUT/vhost-blk-packed-fix"
else
    BUILD="$OUT/src"
    BIN="$OUT/vhost-blk"
fi
mkdir -p "$BUILD"
PC=$(pkg-config --path libdpdk)
if [ -x "$BIN" ] && [ -z "$(find "$SRC" "$PC" "$0" -newer "$BIN" -print 2>/dev/null)" ]; then
    exit 0
fi
cp -f "$SRC"/*.c "$SRC"/*.h "$SRC"/Makefile "$BUILD/"
if [ "$FIX" = 1 ]; then
    # Each exactly once, or the source is not the one these fixes are for.
    fix() {
        [ "$(grep -cF "$1" "$BUILD/vhost_blk.c")" = 1 ] ||
            die "--packed-fix: '$1' not found once in $SRC/vhost_blk.c (another DPDK?)"
        sed -i "s/$2/$3/" "$BUILD/vhost_blk.c"
        grep -qF "$4" "$BUILD/vhost_blk.c" || die "--packed-fix: '$4' did not apply"
    }
    fix 'inflight_shmfd = !!(features &' 'inflight_shmfd = !!(features &' \
        'inflight_shmfd = !!(protocol_features \&' 'inflight_shmfd = !!(protocol_features &'
    fix '	free(resubmit_inflight->resubmit_list);' \
        '^\(\t*\)free(resubmit_inflight->resubmit_list);' \
        '\1rte_free(resubmit_inflight->resubmit_list);' 'rte_free(resubmit_inflight->resubmit_list);'
fi
# The example's own Makefile and pkg-config flags. CFLAGS from the
# environment is appended to (on the command line it would replace them);
# -w: the example's warnings are not ours to fix.
CFLAGS="-w" make -s -C "$BUILD" shared >"$BUILD/build.log" 2>&1 || {
    cat "$BUILD/build.log" >&2
    die "make failed (log above, also in $BUILD/build.log)"
}
cp -f "$BUILD/build/vhost-blk-shared" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
