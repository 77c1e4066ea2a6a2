#!/usr/bin/env bash
# Every tool, and every tap-ctl command, answers -h and --help with its full usage on stdout
# and exit 0; `tap-ctl colo -h` lists every command and every start option of
# docs/tap-ctl.md's table, and colo-controller --help the same options.
source "$(dirname "$0")/functions.sh"

# help WHAT CMD...: CMD must print its usage on stdout, nothing on stderr, and exit 0; the
# output is left in HELP.
help() {
	local what=$1 rc=0
	shift
	"$@" >"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?
	HELP=$(cat "$TEST_DIR/out")
	[ "$rc" = 0 ] || fail "$what: exit $rc: $(head -n 3 "$TEST_DIR/err")"
	[ ! -s "$TEST_DIR/err" ] || fail "$what: stderr: $(head -n 3 "$TEST_DIR/err")"
	[ "${HELP#usage: }" != "$HELP" ] || fail "$what: stdout does not start with 'usage: ': $HELP"
}

# same_help WHAT FLAG... -- CMD...: each FLAG appended to CMD prints the same usage.
same_help() {
	local what=$1 first="" flag
	shift
	local flags=()
	while [ "$1" != -- ]; do
		flags+=("$1")
		shift
	done
	shift
	for flag in "${flags[@]}"; do
		help "$what $flag" "$@" "$flag"
		[ -n "$first" ] || first=$HELP
		expect_eq "$HELP" "$first" "$what $flag: the same usage as ${flags[0]}"
	done
}

step "tapdisk"
same_help tapdisk -h --help -- "$TAPDISK"
for flag in -D -c -h; do
	grep -q -- "^  $flag" <<<"$HELP" || fail "tapdisk --help does not explain $flag: $HELP"
done

step "tap-ctl and each of its commands"
same_help tap-ctl -h --help help -- "$TAPCTL"
commands=$(sed -n '/^commands:$/,/^$/s/^  \([a-z-]*\) .*/\1/p' <<<"$HELP")
expect_eq "$(echo $commands)" \
	"list allocate free create destroy spawn attach detach open close pause unpause stats nbd-tcp colo" \
	"tap-ctl's commands"
for cmd in $commands; do
	same_help "tap-ctl $cmd" -h --help -- "$TAPCTL" "$cmd"
	expect_eq "$(head -n 1 <<<"$HELP" | cut -d' ' -f1-2)" "usage: $cmd" "tap-ctl $cmd --help"
done

step "tap-ctl colo -h: every command and every start option"
help "tap-ctl colo -h" "$TAPCTL" colo -h
for c in "start primary" "start secondary" checkpoint failover stop status "xenstore PATH|off"; do
	grep -q "^  $c " <<<"$HELP" || fail "tap-ctl colo -h does not list '$c': $HELP"
done
grep -q "| xenstore PATH|off>$" <<<"$(head -n 1 <<<"$HELP")" ||
	fail "the usage line lacks xenstore: $(head -n 1 <<<"$HELP")"
# The options of docs/tap-ctl.md's table, and those tap-ctl lists, are the same set.
doc_opts=$(sed -n 's/^  | `\([a-z_]*\)` | .*/\1/p' "$top_srcdir/docs/tap-ctl.md" | sort)
[ -n "$doc_opts" ] || fail "no start options found in docs/tap-ctl.md"
colo_opts() { sed -n '/^start options/,$s/^  \([a-z_]*\)=[^ ]* .*/\1/p' | sort; }
expect_eq "$(colo_opts <<<"$HELP" | tr '\n' ' ')" "$(tr '\n' ' ' <<<"$doc_opts")" \
	"start options of tap-ctl colo -h against docs/tap-ctl.md"

step "colo-controller"
same_help colo-controller -h --help -- "$top_builddir/colo-controller"
expect_eq "$(colo_opts <<<"$HELP" | tr '\n' ' ')" "$(tr '\n' ' ' <<<"$doc_opts")" \
	"start options of colo-controller --help against docs/tap-ctl.md"
for opt in primary secondary primary-xs secondary-xs primary-args secondary-args threshold \
	timeout interval count duration failover-on-error verbose help; do
	grep -q -- "--$opt\b" <<<"$HELP" || fail "colo-controller --help lacks --$opt"
done

step "block-colo"
# Without XENBUS_PATH: help needs no backend.
same_help block-colo -h --help -- env -u XENBUS_PATH "$top_srcdir/hotplug/block-colo"
grep -q "^  remove " <<<"$HELP" || fail "block-colo --help lacks remove: $HELP"
echo PASS
