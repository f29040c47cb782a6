"""How often the side-by-side gate (`vmnetbench gate --against REV`) flags a planted slowdown, and how often it
flags unchanged code: runs the gate R times per planted pause of masquerade's tools in the tree under test
(VMNB_PLANT_PAUSE, harness/run/plants.py; 0 = unchanged), the pauses alternating run by run, and counts the runs
with a `regressed` row; each run's verdict lines go to stderr.

    .venv/bin/python benchmarks/gate_power.py [--runs 4] [--blocks 6] [--pauses 0,0.1,0.2] [--against HEAD]

A pause is a share of wall time, not a slowdown: what it realises is in the table (in earlier sittings a 10% pause
of masquerade's tools realised 0.86-0.96 of the base, 20% realised 0.71-0.89), so a 10% slowdown is planted as
the pause whose realised ratio is near 0.90.

Prints a markdown table: per pause, runs flagged, the realised ratio NEW/BASE (mean over runs) and minutes a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_gate(against: str, blocks: int, pause: float, scenario: str) -> tuple[bool | None, list[float], float]:
    """One gate run: flagged (None: the gate itself failed, printed to stderr), its rows' ratios, minutes."""
    with tempfile.TemporaryDirectory(prefix="vmnb-gate-power-") as tmp:
        env = {**os.environ, "COLUMNS": "200"}
        if pause:
            env["VMNB_PLANT_PAUSE"] = f"masquerade={pause}"
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "gate",
                "--against",
                against,
                "--scenario",
                scenario,
                "--blocks",
                str(blocks),
                "--results",
                f"{tmp}/results",
                "--junit",
                f"{tmp}/gate.xml",
                "--markdown",
                f"{tmp}/gate.md",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        minutes = (time.monotonic() - started) / 60
        print("\n".join(line for line in done.stdout.splitlines() if line.startswith("│")), file=sys.stderr)
        if done.returncode not in (0, 1):
            print(f"gate failed (exit {done.returncode}): {done.stderr[-500:]}", file=sys.stderr)
            return None, [], minutes
        # the table's rows (a row's first line names its binding): the ratio column, NEW/BASE
        rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
        cells = [[c.strip() for c in line.split("│")[1:-1]] for line in rows]
        ratios = [float(c[8]) for c in cells if len(c) == 11 and c[0] and c[4].endswith("/direct")]
        return done.returncode == 1, ratios, minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--pauses", default="0,0.1,0.2")
    parser.add_argument("--against", default="HEAD")
    parser.add_argument("--scenario", default="scenarios/gate-quick.yaml")
    args = parser.parse_args()
    pauses = [float(p) for p in args.pauses.split(",")]
    tallies = {pause: {"flagged": 0, "failed": 0, "ratios": [], "minutes": []} for pause in pauses}
    # Run r of every pause before run r+1 of any, so the sitting's drift reaches every pause alike.
    for run in range(1, args.runs + 1):
        for pause in pauses:
            hit, ratios, minutes = one_gate(args.against, args.blocks, pause, args.scenario)
            tally = tallies[pause]
            tally["flagged"] += bool(hit)
            tally["failed"] += hit is None
            tally["ratios"] += ratios
            tally["minutes"].append(minutes)
            line = {"run": run, "pause": pause, "flagged": hit, "ratios": ratios, "minutes": round(minutes, 2)}
            print(json.dumps(line), flush=True)
    rows = [
        {
            "pause": pause,
            "flagged": t["flagged"],
            "failed": t["failed"],
            "runs": args.runs,
            "ratio": sum(t["ratios"]) / len(t["ratios"]) if t["ratios"] else None,
            "minutes": sum(t["minutes"]) / len(t["minutes"]),
        }
        for pause, t in tallies.items()
    ]
    print(f"\n{args.blocks} blocks a side of {args.scenario}, against {args.against}")
    print("| planted pause | runs flagged regressed | gate runs failed | realised NEW/BASE (mean of rows) | minutes |")
    print("|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        print(f"| {r['pause']:.0%} | {r['flagged']} of {r['runs']} | {r['failed']} | {ratio} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
