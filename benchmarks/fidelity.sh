#!/usr/bin/env bash
# Does the harness perturb what it measures? Interleaves, in a shuffled order per round, a plain iperf3 test
# on the `direct` path built by hand (benchmarks/hand_path.sh: no harness code) and the same test run by
# `vmnetbench run` (strategy direct, one repetition), ingress and egress, and prints the harness/hand
# throughput ratio per direction with its 95% bootstrap CI, plus the harness process's own CPU seconds per
# test (the `harness_cpu` rows). Target (issue 17): ratio >= 0.97, i.e. a CI that does not exclude it.
# Usage: benchmarks/fidelity.sh [rounds] [seconds]   (as root, after `make deps`)
set -euo pipefail
rounds=${1:-10}; secs=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/benchmarks/hand_path.sh"
work=$(mktemp -d /tmp/vmnb-fidelity-XXXXXX)
trap 'hand_cleanup; rm -rf "$work"' EXIT
cat > "$work/scenario.yaml" <<YAML
name: fidelity
strategies: [direct]
repetitions: 1
tests:
  - {kind: tcp_throughput, duration_s: $secs, omit_s: 1}
YAML
echo "round,who,direction,metric,value" > "$work/samples.csv"
for round in $(seq "$rounds"); do
  for who in $(printf 'hand\nharness\n' | shuf); do
    if [ "$who" = hand ]; then
      echo "$round,hand,ingress,throughput,$(hand_iperf "$b" "$a" 198.18.252.2 "$secs")" >> "$work/samples.csv"
      echo "$round,hand,egress,throughput,$(hand_iperf "$a" "$b" 198.18.251.2 "$secs")" >> "$work/samples.csv"
    else
      "$repo/.venv/bin/vmnetbench" run "$work/scenario.yaml" --results "$work/runs" >/dev/null
      "$repo/.venv/bin/python" - "$work" "$round" <<'PY'
import sys
from pathlib import Path
import pandas as pd
work, round_ = Path(sys.argv[1]), sys.argv[2]
run = sorted((work / "runs").iterdir(), key=lambda p: p.stat().st_mtime)[-1]
df = pd.read_parquet(run / "samples.parquet")
rows = df[df.metric.isin(["throughput", "harness_cpu"]) & (df.status == "ok")]
with open(work / "samples.csv", "a") as out:
    for r in rows.itertuples():
        out.write(f"{round_},harness,{r.direction},{r.metric},{r.value}\n")
PY
    fi
  done
  echo "round $round/$rounds done"
done
"$repo/.venv/bin/python" - "$work/samples.csv" <<'PY'
import sys
import pandas as pd
sys.path.insert(0, ".")
from harness.analysis.stats import median_interval, welch_ratio_interval
df = pd.read_csv(sys.argv[1])
print(f"harness vs hand on the direct path, {df['round'].max()} interleaved rounds")
print(f"{'direction':<9} {'hand Gbit/s':>22} {'harness Gbit/s':>22} {'harness/hand [95% CI]':>26}  harness CPU s/test")
for direction in ("ingress", "egress"):
    t = df[(df.metric == "throughput") & (df.direction == direction)]
    hand, harness = t[t.who == "hand"].value, t[t.who == "harness"].value
    cpu = median_interval(df[(df.metric == "harness_cpu") & (df.direction == direction)].value)
    ratio = welch_ratio_interval(harness, hand)  # interleaved but separate processes: unpaired
    if not ratio.has_interval:
        verdict = "too few rounds for a 95% interval"
    else:
        verdict = "ok (interval reaches 0.97)" if ratio.high >= 0.97 else "harness slower (interval excludes 0.97)"
    print(f"{direction:<9} {median_interval(hand)}  {median_interval(harness)}  {ratio}  {cpu}  {verdict}")
PY
cp "$work/samples.csv" "${FIDELITY_OUT:-/tmp/vmnb-fidelity-samples.csv}"
