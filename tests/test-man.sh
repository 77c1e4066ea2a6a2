#!/usr/bin/env bash
# The man pages: each renders without a single groff warning (man --warnings, as lintian
# checks them), has a NAME line lexgrog can index, and names every option its tool accepts
# (tests/man_options.py takes them from the code and the usage output).
source "$(dirname "$0")/functions.sh"
requires man
requires lexgrog
requires scdoc

PAGES="tapdisk.8 tap-ctl.8 colo-controller.8 block-colo.8 blktap-colo.7"
fail=0
for p in $PAGES; do
	f=$top_builddir/man/$p
	if [ ! -s "$f" ]; then
		echo "FAIL: $f was not built"
		fail=1
		continue
	fi
	warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$f" 2>&1 >/dev/null)
	if [ -n "$warnings" ]; then
		echo "FAIL: $p: man --warnings:"
		echo "$warnings"
		fail=1
	fi
	if ! lexgrog "$f" >"$TEST_DIR/lexgrog" 2>&1; then
		echo "FAIL: $p: lexgrog: $(cat "$TEST_DIR/lexgrog")"
		fail=1
	fi
done
[ $fail = 0 ] || exit 1
if ! $PY "$top_srcdir/tests/man_options.py" "$top_srcdir" "$top_builddir"; then
	echo "FAIL: options the code accepts are missing from their man pages"
	exit 1
fi
echo "PASS: $PAGES render cleanly and name every option"
