# probes.sh: xenstore behaviours that may differ between Xen's C xenstored and the project's
# test daemon (tests/xenstored).  Sourced by busybox sh in dom0 (dom0-init) and by bash on the
# host (run.sh, against colo-test-xenstored); run.sh diffs the two outputs.  Each probe prints
# lines "PROBE <name>: ..." that are the same on both when the daemons behave the same.
# Also runs xsprobe (xsprobe.c) when it is in PATH.
# Needs: xenstore-{read,write,ls,list,rm,exists,chmod,watch}, sleep, kill, head, wc, tr.

# p NAME CMD...: runs CMD, prints its exit status and its stdout+stderr on one line each.
p() {
	_n=$1
	shift
	_o=$("$@" 2>&1)
	_rc=$?
	echo "PROBE $_n: rc=$_rc"
	printf '%s\n' "$_o" | while IFS= read -r _l; do echo "PROBE $_n: | $_l"; done
}

run_probes() {
	B=/local/domain/0/probe
	xenstore-rm $B 2>/dev/null
	# reads and removals of absent nodes
	p read-missing xenstore-read $B/nope
	p rm-missing xenstore-rm $B/nope/deeper
	p exists-missing xenstore-exists $B/nope
	p list-missing xenstore-list $B/nope
	# writing creates the parents; relative paths are below /local/domain/0
	p write-deep xenstore-write $B/a/b/c v1
	p ls-deep xenstore-ls $B
	p read-relative xenstore-read probe/a/b/c
	p read-dir xenstore-read $B/a
	p write-empty xenstore-write $B/e ""
	p read-empty xenstore-read $B/e
	# permissions: what block-colo does on D, and inheritance by new children
	p chmod-n0 xenstore-chmod $B/a n0
	p ls-perm xenstore-ls -p $B
	p write-child xenstore-write $B/a/new x
	p ls-perm-child xenstore-ls -p $B/a
	# permissions naming a domain that does not exist (libxl's backend dirs: n0 r<domid>)
	p chmod-absent-dom xenstore-chmod $B/a/new n0 r7
	p ls-perm-absent-dom xenstore-ls -p $B/a
	p chmod-bad xenstore-chmod $B/a/new z0
	p chmod-missing-node xenstore-chmod $B/nope n0
	# a large directory: xs_directory() falls back to DIRECTORY_PART when it is too big
	_i=0
	_args=""
	while [ $_i -lt 300 ]; do
		_args="$_args $B/big/child-with-a-rather-long-name-number-$_i x"
		_i=$((_i + 1))
	done
	# shellcheck disable=SC2086
	p write-300 xenstore-write $_args
	_c=$(xenstore-list $B/big 2>&1 | wc -l | tr -d ' ')
	echo "PROBE list-300: $_c children"
	_c=$(xenstore-ls $B/big 2>&1 | wc -c | tr -d ' ')
	echo "PROBE ls-300: $_c bytes"
	# value size: 4096 is the protocol's payload limit
	_v=$(head -c 3000 /dev/zero | tr '\0' a)
	p write-3000 xenstore-write $B/v3000 "$_v"
	_v=$(head -c 5000 /dev/zero | tr '\0' a)
	p write-5000 xenstore-write $B/v5000 "$_v"
	p path-bad xenstore-write "$B/bad path!" x
	p path-trailing-slash xenstore-write "$B/slash/" x
	p path-double-slash xenstore-read "$B//a/b/c"
	# watches: the event on registration, events for children, for removal
	xenstore-watch -n 4 $B/w >/tmp/probe-watch.out 2>&1 &
	_w=$!
	sleep 1
	xenstore-write $B/w/x 1
	sleep 0.3
	xenstore-write $B/w/x 2
	sleep 0.3
	xenstore-rm $B/w
	sleep 1
	kill $_w 2>/dev/null
	wait $_w 2>/dev/null
	while IFS= read -r _l; do echo "PROBE watch: | $_l"; done </tmp/probe-watch.out
	# a watch on a node that does not exist; then it is created
	xenstore-watch -n 2 $B/later >/tmp/probe-watch.out 2>&1 &
	_w=$!
	sleep 1
	xenstore-write $B/later y
	sleep 1
	kill $_w 2>/dev/null
	wait $_w 2>/dev/null
	while IFS= read -r _l; do echo "PROBE watch-absent: | $_l"; done </tmp/probe-watch.out
	p rm-tree xenstore-rm $B
	p read-after-rm xenstore-read $B/a/b/c
	# errno and watch details through libxenstore itself (xsprobe.c), when run.sh built it
	if command -v xsprobe >/dev/null 2>&1; then
		xsprobe 2>&1
	fi
}
