#!/usr/bin/env bash
# nbdinfo: size, flags and block sizes the export advertises.
source "$(dirname "$0")/functions.sh"
requires nbdinfo

img=$TEST_DIR/disk.img
make_image "$img" 10M
vbd_create "$img"

expect_eq "$(nbdinfo --size "$VBD_URI")" 10485760 "size"
for can in flush fua trim zero multi-conn; do
	nbdinfo --can "$can" "$VBD_URI" || fail "export should advertise $can"
done
if nbdinfo --is read-only "$VBD_URI"; then fail "writable export reported read-only"; fi
if nbdinfo --can fast-zero "$VBD_URI"; then fail "fast-zero must not be advertised"; fi

json=$(nbdinfo --json "$VBD_URI")
"$PY" - "$json" <<'PYEOF'
import json, sys
d = json.loads(sys.argv[1])
e = d["exports"][0]
assert e["export-size"] == 10485760, e
assert e["block_size_minimum"] == 512, e
assert e["block_size_preferred"] == 4096, e
assert e["block_size_maximum"] == 64 << 20, e
assert d["protocol"] == "newstyle-fixed", d
assert d["TLS"] is False, d
PYEOF

# --list uses NBD_OPT_LIST.
nbdinfo --list "$VBD_URI" | grep -q 'export="tapdisk_client"' || fail "export list"

# A read-only VBD advertises READ_ONLY and refuses writes.
ro=$TEST_DIR/ro.img
make_image "$ro" 1M
save_pid=$VBD_PID save_minor=$VBD_MINOR
vbd_create "$ro" -R
nbdinfo --is read-only "$VBD_URI" || fail "read-only export not advertised as such"
if qemu-io -f raw "$VBD_URI" -c 'write 0 4k' >/dev/null 2>&1; then fail "write to read-only export succeeded"; fi
vbd_destroy "$VBD_PID" "$VBD_MINOR"
vbd_destroy "$save_pid" "$save_minor"
echo "PASS: nbdinfo size, flags, block sizes, list, read-only"
