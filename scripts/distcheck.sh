#!/usr/bin/env bash
# make distcheck in BUILD_DIR (default build-dist/, made fresh; give a used tree to check that
# one): the tarball builds, passes its unit tests and quick integration tests, installs only
# under its prefix and uninstalls clean.  Then the tarball's list is checked: every file git
# tracks is in it, and nothing else but what autoreconf generates.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$src/build-dist}
[ -n "${BUILD_DIR:-}" ] || rm -rf "$build"
BUILD_DIR=$build "$src/scripts/build.sh"
make -C "$build" -s distcheck >"$build/distcheck.log" 2>&1 || {
	tail -n 60 "$build/distcheck.log"
	find "$build" -path "*/_build/*" -name "*.log" -path "*tests*" -exec tail -n 30 {} + 2>/dev/null
	exit 1
}
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$build/Makefile")
tarball=$build/blktap-colo-$version.tar.gz
[ -f "$tarball" ] || { echo "distcheck made no $tarball" >&2; exit 1; }

if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	tar tzf "$tarball" | sed -n "s|^blktap-colo-$version/||p" | grep -v '/$' | sort >"$build/dist.list"
	git -C "$src" ls-files | sort >"$build/git.list"
	missing=$(comm -23 "$build/git.list" "$build/dist.list")
	# Beyond git's files: what autoreconf and configure's distribution need, nothing built.
	extra=$(comm -13 "$build/git.list" "$build/dist.list" |
		grep -Ev '^(configure|Makefile\.in|aclocal\.m4|config\.h\.in|build-aux/[a-z-]+)$' || true)
	[ -z "$missing" ] || { echo "tracked files missing from the tarball (add them to Makefile.am's EXTRA_DIST lists):" $missing >&2; exit 1; }
	[ -z "$extra" ] || { echo "files in the tarball that git does not track:" $extra >&2; exit 1; }
fi
echo "distcheck: $(basename "$tarball") from $build: ok"
