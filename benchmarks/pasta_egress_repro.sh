#!/bin/sh
# Standalone reproducer: TCP from a namespace behind pasta to a peer, the direction that stalls (issue 28).
#
# Needs only root, iproute2, pasta (passt) and iperf3; nothing of vmnetbench. Three namespaces:
#   peer (198.18.0.1 gateway, 198.18.0.3 server) --veth-- pod (198.18.0.2/24); pasta runs in "pod" and gives
#   "guest" a tap with the pod's address and route (--config-net), the way a VM behind passt shares the pod's
#   address. The server is not the gateway: pasta maps the gateway address to the pod's own loopback.
# Then iperf3 from guest to peer (egress, through pasta's tap reader), and peer to guest (ingress) for
# comparison; after each, the guest's TCP counters (nstat) for timeouts, retransmissions and recoveries.
#
#   sh benchmarks/pasta_egress_repro.sh [PASTA_BINARY] [SECONDS] [EXTRA PASTA OPTIONS...]
#
# e.g. PASTA_BINARY=/usr/bin/pasta, or a build of a newer release; extra options such as --trace
# --log-file /tmp/pasta.log --log-size 100000000 (pasta's per-flow log) or --no-splice are passed through.
# STRACE=FILE runs the egress pasta under `strace -e trace=sendmsg` (writes to the peer's socket) into FILE.
# PCAP=FILE captures the guest's interface (the tap pasta reads and writes) during egress, headers only.
# POD_WMEM="min default max" sets net.ipv4.tcp_wmem in the pod (pasta's sockets' send buffer), to test
# whether stalls follow the socket's send buffer filling.
# EGRESS_ONLY=1 skips the ingress comparison (so a log holds the egress run only).
set -eu
PASTA=${1:-pasta}
SECONDS_=${2:-5}
[ $# -ge 2 ] && shift 2 || shift $#
tag=pr$$
peer=$tag-peer pod=$tag-pod guest=$tag-guest
pasta_pid= server_pid= dump_pid=

cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
	[ -n "$dump_pid" ] && kill "$dump_pid" 2>/dev/null || true
	[ -n "$pasta_pid" ] && kill "$pasta_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	for ns in $guest $pod $peer; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

for ns in $peer $pod $guest; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "$tag-a" netns "$peer" type veth peer name "$tag-b" netns "$pod"
ip -n "$peer" link set "$tag-a" name eth0 up
ip -n "$pod" link set "$tag-b" name eth0 up
ip -n "$peer" addr add 198.18.0.1/24 dev eth0
ip -n "$peer" addr add 198.18.0.3/24 dev eth0
ip -n "$pod" addr add 198.18.0.2/24 dev eth0
ip -n "$pod" route add default via 198.18.0.1
[ -n "${POD_WMEM:-}" ] && ip netns exec "$pod" sysctl -q -w net.ipv4.tcp_wmem="$POD_WMEM"

echo "pasta: $("$PASTA" --version 2>&1 | head -1) ($PASTA)"
echo "kernel: $(uname -r)"
ip netns exec "$pod" ${STRACE:+strace -f -tt -qq -o "$STRACE" -e trace=sendmsg} "$PASTA" --runas 0 --foreground \
	--quiet --ipv4-only --config-net --ns-ifname eth0 -t none -u none -T none -U none "$@" --netns "/run/netns/$guest" &
pasta_pid=$!
i=0
until ip -n "$guest" -4 addr show dev eth0 2>/dev/null | grep -q inet; do
	i=$((i + 1)); [ $i -gt 100 ] && { echo "pasta did not configure the guest" >&2; exit 1; }; sleep 0.1
done
echo "guest: $(ip -n "$guest" -4 -br addr show dev eth0)"

ip netns exec "$peer" iperf3 -s -1 -p 5201 >/dev/null &
server_pid=$!
sleep 0.5
ip netns exec "$guest" nstat -n
if [ -n "${PCAP:-}" ]; then
	ip netns exec "$guest" tcpdump -q -n -s 96 -i eth0 -w "$PCAP" tcp port 5201 2>/dev/null &
	dump_pid=$!; sleep 0.5
fi
echo "== egress: guest -> peer, $SECONDS_ s"
ip netns exec "$guest" iperf3 -c 198.18.0.3 -p 5201 -t "$SECONDS_" -i 1 -f g | grep -E "sec|error"
wait "$server_pid" || true
server_pid=
[ -n "$dump_pid" ] && { sleep 0.3; kill "$dump_pid" 2>/dev/null || true; wait "$dump_pid" 2>/dev/null || true; dump_pid=; }
echo "guest TCP counters during egress:"
ip netns exec "$guest" nstat TcpRetransSegs TcpExtTCPTimeouts TcpExtTCPSackRecovery TcpExtTCPRenoRecovery \
	TcpExtTCPLossProbes TcpExtTCPSACKReneging TcpExtTCPDSACKRecv 2>/dev/null | tail -n +2

[ "${EGRESS_ONLY:-0}" = 1 ] && exit 0
# Ingress: pasta has no -t forward here, so the peer reaches the guest through a forward set up now.
kill "$pasta_pid"; wait "$pasta_pid" 2>/dev/null || true
ip netns exec "$pod" "$PASTA" --runas 0 --foreground --quiet --ipv4-only --config-net --ns-ifname eth0 \
	-t 5202 -u none -T none -U none "$@" --netns "/run/netns/$guest" &
pasta_pid=$!
sleep 1
ip netns exec "$guest" iperf3 -s -1 -p 5202 >/dev/null &
server_pid=$!
sleep 0.5
echo "== ingress: peer -> guest, $SECONDS_ s"
ip netns exec "$peer" iperf3 -c 198.18.0.2 -p 5202 -t "$SECONDS_" -i 1 -f g | grep -E "sec|error"
wait "$server_pid" || true
server_pid=
