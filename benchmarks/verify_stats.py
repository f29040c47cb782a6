"""What this machine can detect, measured: A/A twins and planted proportional slowdowns over many real runs.

Each run measures, in the paired block design, `direct` against `direct-twin` (the same binding under another
name: the A/A pair), and `direct-tbf` (direct with a tbf qdisc in its pod at a rate it never reaches: a tbf on
a veth costs throughput by itself, 25% here) against `direct-slow5/10/20`, the same tbf at 95% / 90% / 80% of
direct-tbf's median egress rate from a pilot run (VMNB_PLANT_SLOWDOWN). A rate limit caps the fast samples
only, so the realised slowdown (slow vs direct-tbf, in the same blocks) is measured and printed beside the
planted one. Then, over all runs:
- coverage: the share of the twin's 95% intervals that contain 1 (target 95%);
- false alarm: the share of runs whose ranking puts the twin in another tier than direct (target <= 5%);
- detection: per planted size, the share of runs where the paired t-test of slow against direct-tbf (the
  ranking's own test) finds it slower at 5%, and the realised effect.

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
from harness.analysis.stats import log_ratio_interval  # noqa: E402

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
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--results", str(results)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return max((p for p in results.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


def judge(run_dir: Path) -> dict:
    samples = load_samples(run_dir)
    samples["test"] = samples["test"].fillna("")
    ratios = block_log_ratios(samples)
    out = {}
    key = CostKey("direct-twin", "none", "tcp_throughput", "egress", "throughput")
    interval = cost_interval(samples, ratios, key)
    out["direct-twin"] = {"estimate": interval.estimate, "low": interval.low, "high": interval.high, "n": interval.n}
    per_block = ratios.groupby(["strategy", "block"])["log_ratio"].mean()
    for variant in PLANTS:  # against direct-tbf, block by block (both are judged against the same directs)
        diff = (per_block[variant] - per_block["direct-tbf"]).dropna()
        interval = log_ratio_interval(diff.to_numpy())
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
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    pilot_dir = args.results / "pilot"
    pilot_dir.mkdir(exist_ok=True)
    never = "direct-tbf=1000000mbit"
    pilot_text = scenario("verify-pilot", ["direct", "direct-tbf"], 6, args.duration, args.omit)
    pilot = load_samples(run(pilot_text, pilot_dir, {"VMNB_PLANT_SLOWDOWN": never}))
    ok = pilot[(pilot.metric == "throughput") & (pilot.status == "ok")]
    rate = float(ok[ok.strategy == "direct-tbf"]["value"].median())
    plant = ",".join([never, *(f"{v}={rate * (1 - x) * 1000:.0f}mbit" for v, x in PLANTS.items())])
    print(f"pilot: direct {ok[ok.strategy == 'direct']['value'].median():.2f}, direct-tbf {rate:.2f} Gbit/s egress; "
          f"planted: {plant}", flush=True)  # fmt: skip
    strategies = ["direct", "direct-twin", "direct-tbf", *PLANTS]
    judged = []
    for i in range(1, args.runs + 1):
        folder = args.results / f"run{i:02d}"
        folder.mkdir(exist_ok=True)
        run_dir = run(scenario("verify", strategies, args.blocks, args.duration, args.omit), folder,
                      {"VMNB_PLANT_SLOWDOWN": plant})  # fmt: skip
        judged.append(judge(run_dir))
        twin = judged[-1]["direct-twin"]
        print(f"run {i}: twin {twin['estimate']:.3f} [{twin['low']}, {twin['high']}]; "
              + "; ".join(f"{v} {judged[-1][v]['estimate']:.3f}" for v in PLANTS), flush=True)  # fmt: skip
        (args.results / "verify.json").write_text(json.dumps({"rate_gbps": rate, "plant": plant, "runs": judged},
                                                             indent=1))  # fmt: skip
    print(table(judged, args))


def table(judged: list[dict], args) -> str:
    n = len(judged)
    twin = [j["direct-twin"] for j in judged if j["direct-twin"]["low"] is not None]
    covered = sum(1 for t in twin if t["low"] <= 1 <= t["high"])
    apart = sum(1 for j in judged if j["twins_apart"])
    rows = [f"Runs: {n}, {args.blocks} blocks each, tcp_throughput egress {args.duration} s (omit {args.omit} s); "
            "intervals: exp(mean log ratio), t, 95%.", "",
            "| check | planted | realised (median ratio) | result |", "|---|---|---|---|",
            f"| A/A twin: interval contains 1 | 0% | {np.median([t['estimate'] for t in twin]):.3f} | "
            f"{covered}/{len(twin)} = {covered / max(len(twin), 1):.0%} (target 95%) |",
            f"| A/A twin: ranked apart | 0% | | {apart}/{n} = {apart / max(n, 1):.0%} (target <= 5%) |"]  # fmt: skip
    for variant, size in PLANTS.items():
        values = [j[variant] for j in judged if j[variant]["low"] is not None]
        detected = sum(1 for v in values if v["high"] < 1)  # the paired t-test at 5%, two-sided, finds it slower
        realised = np.median([v["estimate"] for v in values]) if values else float("nan")
        rows.append(f"| detected below direct-tbf | {size:.0%} | {1 - realised:+.1%} slower | "
                    f"{detected}/{len(values)} = {detected / max(len(values), 1):.0%} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
