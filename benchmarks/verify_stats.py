"""What this machine can detect, measured: A/A twins and planted proportional slowdowns over many real runs.

Each run measures, in the paired block design, `direct` against `direct-twin` (the same binding under another
name: the A/A pair) and against `direct-slow5/10/20`: the same binding whose measurement tools in the pod are
paused for 5% / 10% / 20% of every 20 ms (VMNB_PLANT_PAUSE, harness/run/plants.py; the egress sender is
the bottleneck of direct, so the slowdown is proportional whatever the load; the realised effect is printed
beside the planted one). Then, over all runs:
- coverage: the share of the twin's 95% intervals that contain 1 (target 95%);
- false alarm: the share of runs whose ranking puts the twin in another tier than direct (target <= 5%);
- detection: per planted size, the share of runs whose 95% interval lies below 1, and the realised effect.

    .venv/bin/python benchmarks/verify_stats.py --runs 20 --blocks 5 [--results /tmp/vmnb-verify]

Prints the table (markdown) and writes verify.json beside the runs."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.analysis.blocks import CostKey, block_log_ratios, cost_interval  # noqa: E402
from harness.analysis.ranking import rank_frame  # noqa: E402
from harness.analysis.results import load_samples  # noqa: E402

PLANTS = {"direct-slow5": 0.05, "direct-slow10": 0.10, "direct-slow20": 0.20}
TEST = "{kind: tcp_throughput, duration_s: %d, omit_s: %d, directions: [egress]}"


def scenario(name: str, strategies: list[str], blocks: int, duration: int, omit: int) -> str:
    variants = {v: "{strategy: direct}" for v in strategies if v != "direct"}
    lines = [f"name: {name}", f"strategies: [{', '.join(strategies)}]", f"repetitions: {blocks}"]
    if variants:
        lines.append("variants:")
        lines += [f"  {v}: {spec}" for v, spec in variants.items()]
    lines += ["tests:", "  - " + TEST % (duration, omit)]
    return "\n".join(lines) + "\n"


def run(text: str, results: Path, env: dict | None = None) -> Path:
    path = results / "scenario.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(path), "--results", str(results)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return max((p for p in results.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


def judge(run_dir: Path) -> dict:
    samples = load_samples(run_dir)
    samples["test"] = samples["test"].fillna("")
    ratios = block_log_ratios(samples)
    out = {}
    for variant in ("direct-twin", *PLANTS):
        key = CostKey(variant, "none", "tcp_throughput", "egress", "throughput")
        interval = cost_interval(samples, ratios, key)
        out[variant] = {"estimate": interval.estimate, "low": interval.low, "high": interval.high, "n": interval.n}
    frame = samples[(samples.metric == "throughput") & (samples.direction == "egress")]
    twins = frame[frame.strategy.isin(["direct", "direct-twin"])]
    ranking = rank_frame(twins, higher_is_better=True)
    out["twins_apart"] = ranking is not None and len(ranking.tiers) > 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--duration", type=int, default=1)
    parser.add_argument("--omit", type=int, default=0)
    parser.add_argument("--results", type=Path, default=Path("/tmp/vmnb-verify"))
    parser.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        help="verify.json of an earlier series of the same design, counted in the table",
    )
    args = parser.parse_args()
    earlier = [run for path in args.also for run in json.loads(path.read_text())["runs"]]
    args.results.mkdir(parents=True, exist_ok=True)
    plant = ",".join(f"{v}={x}" for v, x in PLANTS.items())
    strategies = ["direct", "direct-twin", *PLANTS]
    judged = []
    for i in range(1, args.runs + 1):
        folder = args.results / f"run{i:02d}"
        folder.mkdir(exist_ok=True)
        run_dir = run(
            scenario("verify", strategies, args.blocks, args.duration, args.omit), folder, {"VMNB_PLANT_PAUSE": plant}
        )
        judged.append(judge(run_dir))
        twin = judged[-1]["direct-twin"]
        print(
            f"run {i}: twin {twin['estimate']:.3f} [{twin['low']}, {twin['high']}]; "
            + "; ".join(f"{v} {judged[-1][v]['estimate']:.3f}" for v in PLANTS),
            flush=True,
        )
        (args.results / "verify.json").write_text(json.dumps({"plant": plant, "runs": judged}, indent=1))
    print(table(earlier + judged, args))


def table(judged: list[dict], args) -> str:
    n = len(judged)
    twin = [j["direct-twin"] for j in judged if j["direct-twin"]["low"] is not None]
    covered = sum(1 for t in twin if t["low"] <= 1 <= t["high"])
    apart = sum(1 for j in judged if j["twins_apart"])
    rows = [
        f"Runs: {n}, {args.blocks} blocks each, tcp_throughput egress {args.duration} s (omit {args.omit} s); "
        "intervals: exp(mean log ratio), t, 95%.",
        "",
        "| check | planted | realised (median ratio) | result |",
        "|---|---|---|---|",
        f"| A/A twin: interval contains 1 | 0% | {np.median([t['estimate'] for t in twin]):.3f} | "
        f"{covered}/{len(twin)} = {covered / max(len(twin), 1):.0%} (target 95%) |",
        f"| A/A twin: ranked apart | 0% | | {apart}/{n} = {apart / max(n, 1):.0%} (target <= 5%) |",
    ]
    for variant, size in PLANTS.items():
        values = [j[variant] for j in judged if j[variant]["low"] is not None]
        detected = sum(1 for v in values if v["high"] < 1)  # the 95% interval (paired t, two-sided) lies below 1
        realised = np.median([v["estimate"] for v in values]) if values else float("nan")
        rows.append(
            f"| detected below direct | {size:.0%} | {1 - realised:+.1%} slower | "
            f"{detected}/{len(values)} = {detected / max(len(values), 1):.0%} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
