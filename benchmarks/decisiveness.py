"""Ratios decided per minute: the default scenario's blocks with the schedule before issue 41 (every cell in every
block until the largest N) and with today's (after the pilot a block holds only the cells with an open ratio),
run alternately in one sitting so the machine's drift hits both (issue 41, item 6).

Each run is scenarios/smoke.yaml without its claims phase, with the same time budget for the blocks (the share
`make bench` leaves them: 14 minutes less the claims' reserve, 10.25 minutes); the old schedule is selected by
VMNB_SCHEDULE=every-cell (harness/run/runner.py) with the old scenario's 3-block pilot as every ratio's Stein
pilot; the new one is smoke.yaml as it is (a 2-block shared pilot, each ratio's Stein pilot from the pooled
spread, shipped bindings first).
A ratio is decided when its Stein interval reached the +-10% target (run.json `precision.ratios[].reached`).

    .venv/bin/python benchmarks/decisiveness.py [--pairs 3] [--minutes 10.25] [--results /tmp/vmnb-decisiveness]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEDULES = {"before (every cell)": "every-cell", "adaptive (issue 41)": "adaptive"}


def one_run(schedule: str, minutes: float, folder: Path) -> dict:
    scenario = yaml.safe_load((REPO / "scenarios" / "smoke.yaml").read_text())
    scenario.update(claims=False, time_budget_minutes=minutes, name="decisiveness")
    if schedule == "every-cell":  # the scenario before issue 41: a 3-block pilot, each ratio's Stein pilot
        scenario.update(repetitions=3, pilot_blocks=3)
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    t0 = time.monotonic()
    env = {**os.environ, "VMNB_SCHEDULE": schedule, "VMNB_NO_REPORT": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(path), "--results", str(folder)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    wall = time.monotonic() - t0
    if done.returncode not in (0, 3):
        raise SystemExit(f"run failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
    run_dir = next(p for p in folder.iterdir() if (p / "run.json").exists())
    record = json.loads((run_dir / "run.json").read_text())["precision"]
    ratios = record["ratios"]
    decided = sum(r["reached"] for r in ratios)
    return {
        "schedule": schedule,
        "wall_s": wall,
        "blocks": record["blocks_run"],
        "beds": record["beds_run"],
        "ratios": len(ratios),
        "decided": decided,
        "run": run_dir.name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=10.25)
    parser.add_argument("--results", type=Path, default=Path("/tmp/vmnb-decisiveness"))
    args = parser.parse_args()
    rows = []
    for pair in range(args.pairs):
        order = list(SCHEDULES.items()) if pair % 2 == 0 else list(reversed(SCHEDULES.items()))
        for name, schedule in order:
            folder = args.results / f"pair{pair + 1}-{schedule}"
            folder.mkdir(parents=True, exist_ok=True)
            row = {"name": name, "pair": pair + 1, **one_run(schedule, args.minutes, folder)}
            rows.append(row)
            print(
                f"pair {row['pair']} {name:<22} {row['decided']:>2} of {row['ratios']} decided in "
                f"{row['blocks']} blocks, {row['beds']} beds, {row['wall_s'] / 60:.1f} min ({row['run']})",
                flush=True,
            )
    print("\n| schedule | runs | ratios decided (each run) | mean | per minute of run |\n|---|---|---|---|---|")
    for name in SCHEDULES:
        mine = [r for r in rows if r["name"] == name]
        decided = [r["decided"] for r in mine]
        per_min = sum(r["decided"] for r in mine) / (sum(r["wall_s"] for r in mine) / 60)
        print(
            f"| {name} | {len(mine)} | {', '.join(map(str, decided))} of {mine[0]['ratios']} | "
            f"{sum(decided) / len(decided):.1f} | {per_min:.2f} |"
        )
    (args.results / "decisiveness.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
