#!/usr/bin/env bash
# Hand-run baselines for `direct`, no harness involved: plain iperf3 (1) over one bare veth pair and (2) over
# the bed's own topology built by hand, peer -> router namespace -> pod (two veth pairs and IP forwarding).
# Usage: benchmarks/bare_veth.sh [repetitions] [seconds]   (as root)
set -euo pipefail
reps=${1:-5}; secs=${2:-3}
id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
a=vmnb-$id-ha; b=vmnb-$id-hb; r=vmnb-$id-hr
# Registered like any run: a ledger in /run/vmnetbench naming this shell as its owner, so `vmnetbench clean`
# leaves these namespaces alone while the script runs and removes them if it was killed.
state_dir=${VMNB_STATE_DIR:-/run/vmnetbench}; ledger=$state_dir/$id.json
mkdir -p "$state_dir"
owner_start=$(cut -d' ' -f22 "/proc/$$/stat")
printf '{"run_id": "%s", "owner_pid": %d, "owner_starttime": %d, "namespaces": ["%s", "%s", "%s"], "processes": []}\n' \
  "$id" "$$" "$owner_start" "$a" "$b" "$r" > "$ledger.tmp" && mv "$ledger.tmp" "$ledger"
cleanup() { for ns in "$a" "$b" "$r"; do ip netns del "$ns" 2>/dev/null || true; done; rm -f "$ledger"; }
trap cleanup EXIT
measure() {  # server namespace, client namespace, target
  for _ in $(seq "$reps"); do
    ip netns exec "$1" iperf3 -s -1 >/dev/null & server=$!
    sleep 0.3
    ip netns exec "$2" iperf3 -c "$3" -t "$secs" -O 1 --json \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'
    wait "$server"
  done | sort -n | awk '{v[NR]=$1} END {printf "%s Gbit/s median of %d: %s\n", label, NR, v[int((NR+1)/2)]}' label="$4"
}
ip netns add "$a"; ip netns add "$b"; ip netns add "$r"
for ns in "$a" "$b" "$r"; do ip -n "$ns" link set lo up; done
ip -n "$a" link add name veth0 type veth peer name veth0 netns "$b"
ip -n "$a" addr add 198.18.250.1/24 dev veth0; ip -n "$b" addr add 198.18.250.2/24 dev veth0
ip -n "$a" link set veth0 up; ip -n "$b" link set veth0 up
measure "$b" "$a" 198.18.250.2 "bare veth pair:"
# The bed's shape: a = peer (198.18.251.2), r = node/router, b = pod (198.18.252.2).
ip -n "$a" link add name veth1 type veth peer name p netns "$r"
ip -n "$b" link add name veth1 type veth peer name q netns "$r"
ip -n "$a" addr add 198.18.251.2/24 dev veth1; ip -n "$r" addr add 198.18.251.1/24 dev p
ip -n "$b" addr add 198.18.252.2/24 dev veth1; ip -n "$r" addr add 198.18.252.1/24 dev q
for l in "$a veth1" "$b veth1" "$r p" "$r q"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$a" route add 198.18.252.0/24 via 198.18.251.1; ip -n "$b" route add 198.18.251.0/24 via 198.18.252.1
ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
measure "$b" "$a" 198.18.252.2 "peer -> router -> pod by hand:"
