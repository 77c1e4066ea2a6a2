# shellcheck shell=bash
# Two hosts on one machine: two network namespaces joined by a veth pair.  Sourced after
# functions.sh.

# netns_pair NAME SUBNET: namespaces NAMEp (the Primary's host, SUBNET.1) and NAMEs (the
# Secondary's, SUBNET.2, e.g. 10.199.0), a veth pair vNAMEp / vNAMEs between them, both up,
# removed at exit.  Sets nsp, nss, devp, devs and netns_subnet.  Exits 77 (SKIP) without ip,
# root, network namespaces or veth.
netns_pair() {
	nsp=${1}p nss=${1}s devp=v${1}p devs=v${1}s netns_subnet=$2
	requires ip
	if ! ip netns add "$nsp" 2>/dev/null; then
		echo "SKIP: cannot create network namespaces (not root?)"
		exit 77
	fi
	cleanup_fn "ip netns del $nsp 2>/dev/null; ip netns del $nss 2>/dev/null"
	ip netns add "$nss" || fail "ip netns add $nss"
	if ! ip link add "$devp" netns "$nsp" type veth peer name "$devs" netns "$nss"; then
		echo "SKIP: this kernel cannot create veth pairs"
		exit 77
	fi
	ip -n "$nsp" addr add "$2.1/24" dev "$devp"
	ip -n "$nss" addr add "$2.2/24" dev "$devs"
	for n in "$nsp" "$nss"; do
		ip -n "$n" link set lo up
	done
	ip -n "$nsp" link set "$devp" up
	ip -n "$nss" link set "$devs" up
}

# netns_vbd NAME NS TYPE:PARAMS: a VBD created by tap-ctl inside namespace NS (its tapdisk lives
# there; its control and NBD sockets are files, reachable from here); sets NAME_MINOR,
# NAME_PID and NAME_URI.
netns_vbd() {
	local line minor pid
	line=$(ip netns exec "$2" "$TAPCTL" create -a "$3") || fail "create $1 in $2: $3"
	minor=${line##*-}
	pid=$("$TAPCTL" list -m "$minor" | sed -n 's/^pid=\([0-9]*\) .*/\1/p')
	printf -v "${1}_MINOR" %s "$minor"
	printf -v "${1}_PID" %s "$pid"
	printf -v "${1}_URI" %s "nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$pid.$minor"
}

# netns_colo_pair PIMG SIMG: a Secondary S in nss on SIMG and a Primary P in nsp on PIMG,
# replicating to netns_pair's SUBNET.2 on a free port once started.
netns_colo_pair() {
	local port
	port=$(free_port)
	netns_vbd S "$nss" "colo:$netns_subnet.2:$port:$2"
	netns_vbd P "$nsp" "colo:$netns_subnet.2:$port:$1"
}
