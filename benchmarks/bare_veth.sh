#!/usr/bin/env bash
# Hand-run baselines for `direct`, no harness involved: plain iperf3 (1) over one bare veth pair and (2) over
# the bed's own topology built by hand, peer -> router namespace -> pod (two veth pairs and IP forwarding).
# Usage: benchmarks/bare_veth.sh [repetitions] [seconds]   (as root)
set -euo pipefail
reps=${1:-5}; secs=${2:-3}
source "$(dirname "$0")/hand_path.sh"
measure() {  # server namespace, client namespace, target, label
  for _ in $(seq "$reps"); do hand_iperf "$1" "$2" "$3" "$secs"; done \
    | sort -n | awk '{v[NR]=$1} END {printf "%s Gbit/s median of %d: %.2f\n", label, NR, v[int((NR+1)/2)]}' label="$4"
}
measure "$b" "$a" 198.18.250.2 "bare veth pair:"
measure "$b" "$a" 198.18.252.2 "peer -> router -> pod by hand:"
