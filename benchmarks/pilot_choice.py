"""Which pilot length decides the most ratios in the main job's budget (issue 41)?

Simulates the adaptive schedule (harness/run/precision.py) on the spreads of a real run: every ratio's true
per-block log sd is taken from the run's own blocks (default: tests/fixtures/run-mesh, a `make bench` run);
per simulated run, each ratio's pilot sd is drawn (chi-square, n0 - 1 df), Stein's N follows, the pilot costs
n0 full blocks and every later block holds only the cells with a ratio short of its N (each cell's bed plus a
direct, plus one direct per group). The run stops when the next block does not fit in the budget. Reports, per
pilot length: ratios decided (reached their N) and beds used, mean over simulated runs.

    .venv/bin/python benchmarks/pilot_choice.py [RUN_DIR] [--budget-beds 214] [--target 0.1] [--runs 2000]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy import stats

from harness.analysis.blocks import block_log_ratios
from harness.analysis.results import load_samples

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "run-mesh"


def spreads(run_dir: Path) -> tuple[list[tuple[str, str]], np.ndarray, int, int]:
    """(cell per ratio, true sd per ratio, beds per full block, groups) from a run's throughput blocks."""
    samples = load_samples(run_dir)
    ratios = block_log_ratios(samples)
    ratios = ratios[ratios.metric == "throughput"]
    cells, sds = [], []
    for (strategy, sidecar, _direction), g in ratios.groupby(["strategy", "sidecar", "direction"]):
        series = g.groupby("block")["log_ratio"].mean()
        if len(series) >= 3:
            cells.append((strategy, sidecar))
            sds.append(float(series.std(ddof=1)))
    beds = int(samples[samples.metric == "setup_time"].groupby("block").size().median())
    return cells, np.array(sds), beds, samples.sidecar.nunique()


def simulate(cells, sds, beds_per_block, groups, pilot, budget_beds, target, runs, rng) -> tuple[float, float]:
    d = math.log(1 + target)
    t = stats.t.ppf(0.975, pilot - 1)
    decided, used = [], []
    cell_ids = {c: i for i, c in enumerate(dict.fromkeys(cells))}
    index = np.array([cell_ids[c] for c in cells])
    for _ in range(runs):
        s0 = sds * np.sqrt(rng.chisquare(pilot - 1, size=sds.size) / (pilot - 1))
        need = np.maximum(pilot, np.ceil((t * s0 / d) ** 2)).astype(int)
        blocks = np.full(sds.size, pilot)
        beds = pilot * beds_per_block
        while beds <= budget_beds:
            open_ratios = blocks < need
            open_cells = np.unique(index[open_ratios])
            if not open_cells.size:
                break
            cost = 2 * open_cells.size + min(groups, open_cells.size)
            if beds + cost > budget_beds:
                break
            beds += cost
            blocks[np.isin(index, open_cells)] += 1
        decided.append(int(np.sum(blocks >= need)) if beds >= pilot * beds_per_block else 0)
        used.append(beds)
    return float(np.mean(decided)), float(np.mean(used))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=FIXTURE)
    parser.add_argument("--budget-beds", type=int, default=214, help="beds in the budget (10 min at 2.8 s a bed)")
    parser.add_argument("--target", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--drop-cells", default="", help="comma-separated strategy names left out of the run")
    args = parser.parse_args()
    cells, sds, beds, groups = spreads(args.run)
    dropped = set(filter(None, args.drop_cells.split(",")))
    beds -= 2 * len({c for c in cells if c[0] in dropped})
    keep = [i for i, c in enumerate(cells) if c[0] not in dropped]
    cells, sds = [cells[i] for i in keep], sds[keep]
    rng = np.random.default_rng(1)
    print(f"{len(sds)} ratios, {beds} beds a full block, budget {args.budget_beds} beds, target +-{args.target:.0%}")
    print("| pilot blocks | ratios decided (mean) | beds used (mean) |")
    print("|---|---|---|")
    for pilot in (3, 4, 5, 6):
        if pilot * beds > args.budget_beds:
            print(f"| {pilot} | pilot alone exceeds the budget ({pilot * beds} beds) | - |")
            continue
        got, used = simulate(cells, sds, beds, groups, pilot, args.budget_beds, args.target, args.runs, rng)
        print(f"| {pilot} | {got:.1f} of {len(sds)} | {used:.0f} |")


if __name__ == "__main__":
    main()
