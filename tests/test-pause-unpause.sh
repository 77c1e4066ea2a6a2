#!/usr/bin/env bash
# Pause and unpause repeatedly while nbdcopy writes: the client only stalls, and every
# byte lands.  Requests that arrive during a pause wait for the unpause.
source "$(dirname "$0")/functions.sh"
requires nbdcopy

img=$TEST_DIR/disk.img
src=$TEST_DIR/src.img
make_image "$img" 128M
make_image "$src" 128M 99
vbd_create "$img"

# The copy starts against a paused VBD: its requests wait until the unpause.
"$TAPCTL" pause -p "$VBD_PID" -m "$VBD_MINOR" || fail "pause"
nbdcopy --flush --request-size=1048576 "$src" "$VBD_URI" &
copier=$!
sleep 0.3
kill -0 "$copier" 2>/dev/null || fail "the copy finished while the VBD was paused"
cmp -s -n 1048576 "$src" "$img" && fail "data landed while the VBD was paused"
"$TAPCTL" unpause -p "$VBD_PID" -m "$VBD_MINOR" || fail "unpause"
paused=1
for _ in $(seq 10); do
	sleep 0.05
	kill -0 "$copier" 2>/dev/null || break
	"$TAPCTL" pause -p "$VBD_PID" -m "$VBD_MINOR" || fail "pause"
	state=$("$TAPCTL" list -m "$VBD_MINOR" | sed -n 's/.* state=\(0x[0-9a-f]*\) .*/\1/p')
	expect_eq "$state" 0x2a "state while paused"
	sleep 0.05
	"$TAPCTL" unpause -p "$VBD_PID" -m "$VBD_MINOR" || fail "unpause"
	paused=$((paused + 1))
done
wait "$copier" || fail "nbdcopy failed across pauses"

# Unpause with a new image: the VBD switches to it.
other=$TEST_DIR/other.img
make_image "$other" 128M 5
"$TAPCTL" pause -p "$VBD_PID" -m "$VBD_MINOR"
"$TAPCTL" unpause -p "$VBD_PID" -m "$VBD_MINOR" -a "aio:$other" || fail "unpause onto a new image"
nbdcopy "$VBD_URI" "$TEST_DIR/out.img"
cmp "$other" "$TEST_DIR/out.img" || fail "after unpause -a the VBD does not serve the new image"

vbd_destroy "$VBD_PID" "$VBD_MINOR"
cmp "$src" "$img" || fail "image differs after $paused pauses"
echo "PASS: $paused pause/unpause cycles during a 128 MiB copy, image exact"
