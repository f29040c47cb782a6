"""Which test length and CPU placement give the most precision per wall-clock second, measured (issue 25, item 4).

For each configuration (tcp_throughput duration and omit, `cpu_placement` none or split), one run of
`direct, masquerade, nat-proxy` in the paired block design, TCP both ways. Per configuration: the pooled spread s
of the per-block log ratios (masquerade and nat-proxy, both directions), the wall time of one block, and
s^2 x block seconds, which is proportional to the time a run needs for a given interval width (blocks needed
grow as s^2): the smaller, the better the default.

    .venv/bin/python benchmarks/noise_study.py [--blocks 5] [--results /tmp/vmnb-noise]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.analysis.blocks import block_log_ratios  # noqa: E402
from harness.analysis.results import load_samples  # noqa: E402

CONFIGS = [(1, 0, "none"), (1, 0, "split"), (3, 1, "none"), (3, 1, "split")]


def run_config(duration: int, omit: int, placement: str, blocks: int, results: Path) -> dict:
    folder = results / f"d{duration}o{omit}-{placement}"
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        f"name: noise\nstrategies: [direct, masquerade, nat-proxy]\nrepetitions: {blocks}\n"
        f"cpu_placement: {placement}\ntests:\n  - {{kind: tcp_throughput, duration_s: {duration}, "
        f"omit_s: {omit}}}\n"
    )
    (folder / "scenario.yaml").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(folder / "scenario.yaml"), "--results", str(folder)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "COLUMNS": "200"},
    )
    if done.returncode != 0:
        raise SystemExit(f"run failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    run_dir = max((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    meta = json.loads((run_dir / "run.json").read_text())
    seconds = (dt.datetime.fromisoformat(meta["finished"]) - dt.datetime.fromisoformat(meta["started"])).total_seconds()
    ratios = block_log_ratios(load_samples(run_dir))
    ratios = ratios[ratios.metric == "throughput"]
    groups = [g["log_ratio"].to_numpy() for _, g in ratios.groupby(["strategy", "direction"])]
    dof = sum(len(g) - 1 for g in groups)
    pooled = float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof)) if dof else float("nan")
    by_cell = ratios.groupby(["strategy", "direction"])
    per_group = {f"{s} {d}": float(g["log_ratio"].std(ddof=1)) for (s, d), g in by_cell}
    block_s = seconds / blocks
    return {
        "duration_s": duration,
        "omit_s": omit,
        "placement": placement,
        "run": run_dir.name,
        "pooled_sd": pooled,
        "dof": dof,
        "block_s": block_s,
        "cost": pooled**2 * block_s,
        "per_group": per_group,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--results", type=Path, default=Path("/tmp/vmnb-noise"))
    args = parser.parse_args()
    rows = []
    for duration, omit, placement in CONFIGS:
        rows.append(run_config(duration, omit, placement, args.blocks, args.results))
        r = rows[-1]
        print(
            f"d={duration} omit={omit} {placement}: s={r['pooled_sd']:.3f} ({r['dof']} df), "
            f"{r['block_s']:.0f} s/block, s^2 x s/block = {r['cost']:.4f}",
            flush=True,
        )
        (args.results / "noise.json").write_text(json.dumps(rows, indent=1))
    print("\n| duration s | omit s | placement | pooled s of log ratios (df) | s per block | s^2 x s/block | run |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['duration_s']} | {r['omit_s']} | {r['placement']} | {r['pooled_sd']:.3f} ({r['dof']}) | "
            f"{r['block_s']:.0f} | {r['cost']:.4f} | {r['run']} |"
        )


if __name__ == "__main__":
    main()
