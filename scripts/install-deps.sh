#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Installs what the build and the tests need from Debian, when missing.
#   --build-only   only the toolchain and libraries (meson, ninja, GLib, json-glib, Check)
#   --bench        only the benches' own tools: gnuplot-nox (bench/run-all.sh's
#                  plots) and fio (bench-blk.sh's anchor); `make check` asks for
#                  them too, since its bench-smoke test runs bench/run-all.sh
# Real back-ends used by the tests come from Debian packages too:
# dpdk-testpmd (package dpdk-dev, not dpdk) and qemu-storage-daemon and
# virtiofsd (qemu-system-common); qemu-img comes with qemu-utils; ip
# (network namespaces, the migration tests) with iproute2; the
# source of DPDK's vhost_blk example (dpdk-doc), built by the tests with
# make and scripts/build-dpdk-vhost-blk.sh; clang 14 and its runtime
# (libFuzzer, sanitizers) for the fuzz targets run by scripts/run-fuzz.sh.
set -e
build_pkgs="meson ninja-build pkg-config gcc libglib2.0-dev libjson-glib-dev check"
bench_pkgs="gnuplot-nox fio"
test_pkgs="dpdk dpdk-dev dpdk-doc make qemu-system-common qemu-utils iproute2 clang-14 libclang-rt-14-dev"

missing=""
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" || missing="$missing $1"; }
if [ "$1" = "--bench" ]; then
    for p in $bench_pkgs; do need "$p"; done
else
    for p in $build_pkgs; do need "$p"; done
fi
if [ "$1" != "--build-only" ] && [ "$1" != "--bench" ]; then
    for p in $test_pkgs; do need "$p"; done
fi
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
