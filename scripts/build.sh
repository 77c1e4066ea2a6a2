#!/usr/bin/env bash
# Builds into BUILD_DIR (default build/), with any extra configure flags given.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$src/build}
cd "$src"
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi >/dev/null
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$src/configure" -q "$@"
make -s -j"$(nproc)"
