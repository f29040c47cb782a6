#!/usr/bin/env bash
# The hand-run baseline for `direct`: plain iperf3 over one bare veth pair between two namespaces, no
# router hop, no harness. Usage: benchmarks/bare_veth.sh [repetitions] [seconds]   (as root)
set -euo pipefail
reps=${1:-5}; secs=${2:-3}
id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
a=vmnb-$id-ha; b=vmnb-$id-hb
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip -n "$a" link add name veth0 type veth peer name veth0 netns "$b"
ip -n "$a" addr add 198.18.250.1/24 dev veth0; ip -n "$b" addr add 198.18.250.2/24 dev veth0
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done
for i in $(seq "$reps"); do
  ip netns exec "$b" iperf3 -s -1 >/dev/null & server=$!
  sleep 0.3
  ip netns exec "$a" iperf3 -c 198.18.250.2 -t "$secs" -O 1 --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f Gbit/s" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'
  wait "$server"
done
