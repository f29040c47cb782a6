"""How often the side-by-side gate (`vmnetbench gate --against REV`) flags a planted slowdown, and how often it
flags unchanged code: runs the gate R times per planted pause of masquerade's tools in the tree under test
(VMNB_PLANT_PAUSE, harness/run/plants.py; 0 = unchanged), the pauses alternating run by run, and counts the runs
with a `regressed` row; each run's verdict lines go to stderr.

    .venv/bin/python benchmarks/gate_power.py [--runs 4] [--blocks 30] [--pauses 0,0.12] [--against HEAD]

A pause is a share of wall time, not a slowdown: what it realises is in the table (in earlier sittings a 10% pause
of masquerade's tools realised 0.86-0.96 of the base, 20% realised 0.71-0.89), so a 10% slowdown is planted as
the pause whose realised ratio is near 0.90.

Prints a markdown table: per pause, runs flagged, the planted binding's realised ratio NEW/BASE (mean over runs),
the per-block spread of the paired log difference (pooled over runs and rows, each row's own mean removed) and the
power at 10% that spread gives the gate's paired t at the run's block count (noncentral t, Holm's first step over
the run's rows): what the flagged counts estimate, with fewer runs' binomial noise; and minutes a run.
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
sys.path.insert(0, str(REPO))
PLANTED = "masquerade"


def block_differences(folder: Path) -> dict[str, list[float]]:
    """Per gated row, the per-block log difference NEW - BASE of a side-by-side gate's runs (as the judge pairs)."""
    import numpy as np
    import pandas as pd

    from harness.analysis.gate import RATIO_KEYS, _per_pair, own_metric_rows
    from harness.analysis.results import load_samples

    frames = []
    for side in ("base", "new"):
        runs = sorted(folder.glob(f"gate-*/{side}/*/run.json"), key=lambda f: json.loads(f.read_text())["started"])
        for pair, run in enumerate(runs, 1):
            frames.append(own_metric_rows(load_samples(run.parent)).assign(side=side, pair=pair))
    if not frames:
        return {}
    per = _per_pair(pd.concat(frames, ignore_index=True))
    out = {}
    for key, group in per.groupby(RATIO_KEYS, dropna=False):
        wide = group.pivot_table(index="pair", columns="side", values="value").dropna()
        if {"base", "new"} <= set(wide.columns):
            out[" ".join(str(k) for k in key)] = [round(float(x), 4) for x in np.log(wide["new"] / wide["base"])]
    return out


def one_gate(against: str, blocks: int, pause: float, scenario: str) -> tuple[bool | None, list[float], dict, float]:
    """One gate run: flagged (None: the gate itself failed, printed to stderr), the planted binding's realised
    ratios, every row's per-block differences, minutes."""
    with tempfile.TemporaryDirectory(prefix="vmnb-gate-power-") as tmp:
        env = {**os.environ, "COLUMNS": "200"}
        if pause:
            env["VMNB_PLANT_PAUSE"] = f"{PLANTED}={pause}"
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
            return None, [], {}, minutes
        # the table's rows (a row's first line names its binding): the planted binding's ratio column, NEW/BASE
        rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
        cells = [[c.strip() for c in line.split("│")[1:-1]] for line in rows]
        ratios = [float(c[8]) for c in cells if len(c) == 11 and c[0] == PLANTED and c[8]]
        return done.returncode == 1, ratios, block_differences(Path(tmp) / "results"), minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--pauses", default="0,0.12")
    parser.add_argument("--against", default="HEAD")
    parser.add_argument("--scenario", default="scenarios/gate-side-by-side.yaml")
    args = parser.parse_args()
    pauses = [float(p) for p in args.pauses.split(",")]
    tallies = {pause: {"flagged": 0, "failed": 0, "ratios": [], "minutes": [], "d": [], "rows": 1} for pause in pauses}
    # Run r of every pause before run r+1 of any, so the sitting's drift reaches every pause alike.
    for run in range(1, args.runs + 1):
        for pause in pauses:
            hit, ratios, differences, minutes = one_gate(args.against, args.blocks, pause, args.scenario)
            tally = tallies[pause]
            tally["flagged"] += bool(hit)
            tally["failed"] += hit is None
            tally["ratios"] += ratios
            tally["minutes"].append(minutes)
            tally["d"] += list(differences.values())
            tally["rows"] = max(tally["rows"], len(differences))
            line = {"run": run, "pause": pause, "flagged": hit, "ratios": ratios, "minutes": round(minutes, 2)}
            line["d"] = differences
            print(json.dumps(line), flush=True)
    rows = [
        {
            "pause": pause,
            "flagged": t["flagged"],
            "failed": t["failed"],
            "runs": args.runs,
            "ratio": sum(t["ratios"]) / len(t["ratios"]) if t["ratios"] else None,
            "minutes": sum(t["minutes"]) / len(t["minutes"]),
            **spread_and_power(t["d"], args.blocks, t["rows"]),
        }
        for pause, t in tallies.items()
    ]
    print(f"\n{args.blocks} blocks a side of {args.scenario}, against {args.against}")
    print(
        f"| planted pause of {PLANTED} | runs flagged regressed | gate runs failed | realised NEW/BASE | "
        "per-block sd of the paired log difference (df) | power at 10% from that sd | minutes |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        sd = f"{r['sd']:.3f} ({r['df']})" if r["sd"] is not None else "-"
        power = f"{r['power']:.2f}" if r["power"] is not None else "-"
        print(
            f"| {r['pause']:.0%} | {r['flagged']} of {r['runs']} | {r['failed']} | {ratio} | {sd} | {power} | "
            f"{r['minutes']:.1f} |"
        )


def spread_and_power(series: list[list[float]], blocks: int, rows: int) -> dict:
    """The pooled per-block sd of the paired differences (each series' own mean removed) and the one-sided
    paired t's power against a 10% drop at `blocks` blocks, at Holm's first step over `rows` rows."""
    import numpy as np
    from scipy import stats

    usable = [np.asarray(d) for d in series if len(d) >= 2]
    if not usable:
        return {"sd": None, "df": 0, "power": None}
    df = sum(len(d) - 1 for d in usable)
    sd = float(np.sqrt(sum(((d - d.mean()) ** 2).sum() for d in usable) / df))
    shift = -np.log(0.9) / (sd / np.sqrt(blocks))
    critical = stats.t.ppf(1 - 0.05 / rows, blocks - 1)
    return {"sd": sd, "df": df, "power": float(stats.nct.sf(critical, blocks - 1, shift))}


if __name__ == "__main__":
    main()
