#!/bin/bash
# A VBD's xenstore state nodes never contradict its result (docs/xenstore.md, "State nodes"):
# whoever reads `result` and then the state nodes sees at least the state the result speaks
# of.  The test xenstored's trace lists every WRITE in the order xenstore took it; replayed,
# at each result the disk's nodes must already say: after "<id> 0 epoch=N" epoch N, after a
# start primary's "ok" state running, after a failover's "ok" state failed-over.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires xenstore-write
requires xenstore-read

log_tapdisks xenstore
xsd_start

CHECKPOINTS=40
disk_dir() { echo "/local/domain/0/colo/$1/disks/51712"; }

request() {
	xenstore-write -- "/local/domain/0/colo/$1/request" "$2" || fail "writing request '$2' in domain $1"
}

# wait_result DOMID VALUE
wait_result() {
	local got
	for _ in $(seq 1000); do
		got=$(xenstore-read "$(disk_dir "$1")/result" 2>/dev/null) || got="<absent>"
		[ "$got" = "$2" ] && return 0
		sleep 0.02
	done
	fail "domain $1: result is '$got', expected '$2'"
}

make_image "$TEST_DIR/p.img" 16M 5
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
xs_bind_disk P 1
xs_bind_disk S 2

step "start, $CHECKPOINTS checkpoints and a failover through xenstore"
request 2 "1 start secondary tls=none"
wait_result 2 "1 0 ok"
request 1 "1 start primary tls=none"
wait_result 1 "1 0 ok"
for i in $(seq 2 $((CHECKPOINTS + 1))); do
	request 1 "$i checkpoint"
	wait_result 1 "$i 0 epoch=$i"
	request 2 "$i checkpoint"
	wait_result 2 "$i 0 epoch=$i"
done
id=$((CHECKPOINTS + 2))
request 2 "$id failover"
wait_result 2 "$id 0 ok"

step "replaying xenstore's writes: the nodes at each result"
"$PY" - "$XSD_TRACE" "$(disk_dir 1)" "$(disk_dir 2)" <<'PYEOF' || fail "the state nodes contradicted a result"
import re, sys
trace, dirs = sys.argv[1], sys.argv[2:]
nodes = {d: {} for d in dirs}
requests = {d: {} for d in dirs}
bad = checked = 0
line_re = re.compile(r"^IN +c\d+ WRITE req=\d+ tx=\d+ len=\d+ \((\S+) ?(.*)\)$")
for line in open(trace, encoding="utf-8", errors="replace"):
    m = line_re.match(line.rstrip("\n"))
    if not m:
        continue
    path, value = m.group(1), m.group(2)
    if path.endswith("/request"):
        # Which verb each id was, per domain directory.
        for d in dirs:
            if d.startswith(path[: -len("request")]):
                rid, _, verb = value.partition(" ")
                requests[d][rid] = verb
        continue
    d, _, name = path.rpartition("/")
    if d not in nodes:
        continue
    if name != "result":
        nodes[d][name] = value
        continue
    rid, err, text = value.split(" ", 2)
    if err != "0":
        continue
    verb = requests[d].get(rid, "?")
    st = nodes[d]
    want = None
    if text.startswith("epoch="):
        want = ("epoch", text[len("epoch="):])
    elif verb == "failover":
        want = ("state", "failed-over")
    elif verb.startswith("start primary"):
        want = ("state", "running")
    if want is None:
        continue
    checked += 1
    if st.get(want[0]) != want[1]:
        bad += 1
        print("%s: result '%s' (%s) written while %s was '%s'"
              % (d, value, verb, want[0], st.get(want[0])))
print("%d results checked, %d contradicted by the state nodes" % (checked, bad))
sys.exit(1 if bad or checked < 2 else 0)
PYEOF
colo_pair_destroy
echo "xenstore state before results: ok"
