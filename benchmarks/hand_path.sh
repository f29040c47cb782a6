# Sourced by the hand-run benchmarks (bare_veth.sh, fidelity.sh): the bed's `direct` path built by hand with
# ip(8), no harness code involved. a = peer (198.18.251.2), r = node/router, b = pod (198.18.252.2); plus a
# bare veth pair a <-> b (198.18.250.0/24). Registered like any run: a ledger in /run/vmnetbench naming this
# shell as its owner, so `vmnetbench clean` leaves the namespaces alone while the script runs and removes
# them if it was killed. Sets: hand_id, a, b, r; `hand_cleanup` runs on EXIT.
hand_id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
a=vmnb-$hand_id-ha; b=vmnb-$hand_id-hb; r=vmnb-$hand_id-hr
hand_state_dir=${VMNB_STATE_DIR:-/run/vmnetbench}; hand_ledger=$hand_state_dir/$hand_id.json
mkdir -p "$hand_state_dir"
printf '{"run_id": "%s", "owner_pid": %d, "owner_starttime": %d, "namespaces": ["%s", "%s", "%s"], "processes": []}\n' \
  "$hand_id" "$$" "$(cut -d' ' -f22 "/proc/$$/stat")" "$a" "$b" "$r" > "$hand_ledger.tmp" && mv "$hand_ledger.tmp" "$hand_ledger"
hand_cleanup() { for ns in "$a" "$b" "$r"; do ip netns del "$ns" 2>/dev/null || true; done; rm -f "$hand_ledger"; }
trap hand_cleanup EXIT
ip netns add "$a"; ip netns add "$b"; ip netns add "$r"
for ns in "$a" "$b" "$r"; do ip -n "$ns" link set lo up; done
ip -n "$a" link add name veth0 type veth peer name veth0 netns "$b"
ip -n "$a" addr add 198.18.250.1/24 dev veth0; ip -n "$b" addr add 198.18.250.2/24 dev veth0
ip -n "$a" link set veth0 up; ip -n "$b" link set veth0 up
ip -n "$a" link add name veth1 type veth peer name p netns "$r"
ip -n "$b" link add name veth1 type veth peer name q netns "$r"
ip -n "$a" addr add 198.18.251.2/24 dev veth1; ip -n "$r" addr add 198.18.251.1/24 dev p
ip -n "$b" addr add 198.18.252.2/24 dev veth1; ip -n "$r" addr add 198.18.252.1/24 dev q
for l in "$a veth1" "$b veth1" "$r p" "$r q"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$a" route add 198.18.252.0/24 via 198.18.251.1; ip -n "$b" route add 198.18.251.0/24 via 198.18.252.1
ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1

# hand_iperf SERVER_NS CLIENT_NS TARGET SECONDS: one plain iperf3 test; prints Gbit/s.
hand_iperf() {
  ip netns exec "$1" iperf3 -s -1 >/dev/null & local server=$!
  sleep 0.3
  ip netns exec "$2" iperf3 -c "$3" -t "$4" -O 1 --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.4f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'
  wait "$server"
}
