"""How often the side-by-side gate (`vmnetbench gate --against REV`) flags a planted slowdown, and how often it
flags unchanged code: runs the gate R times per planted pause of masquerade's tools in the tree under test
(VMNB_PLANT_PAUSE, harness/run/plants.py; 0 = unchanged), the pauses alternating run by run, and counts the runs
with a `regressed` row; each run's verdict lines go to stderr.

    .venv/bin/python benchmarks/gate_power.py [--runs 4] [--blocks 30] [--pauses 0,0.12] [--against HEAD]
    .venv/bin/python benchmarks/gate_power.py --replay [runs.jsonl ...]

Each run's JSON line is appended to benchmarks/measured/gate-power.jsonl (`--out`), which is committed: 20 + 20
gates of 7 minutes are more than one session's machine time, so sittings add up there, each line naming its
sitting, commit and judge; `--replay` without files reads it.

A pause is a share of wall time, not a slowdown: what it realises is in the table (in earlier sittings a 10% pause
of masquerade's tools realised 0.86-0.96 of the base, 20% realised 0.71-0.89), so a 10% slowdown is planted as
the pause whose realised ratio is near 0.90.

Prints a markdown table: per pause, runs flagged, the planted binding's realised ratio NEW/BASE (mean over runs),
the per-block spread of the paired log difference (pooled over runs and rows, each row's own median removed), the
gate's power at 10% resampled from the unchanged runs' own differences (`resampled_power`: the gate's judge on
blocks drawn from them, one row shifted by log 0.9), and minutes a run. Each run's JSON line holds its rows'
per-block differences; `--replay` judges them again on non-overlapping windows of 10, 15 and 30 blocks with the
gate's judge (signed-rank) and with the paired t it replaced: more gates from the same sitting.
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
MEASURED = REPO / "benchmarks" / "measured" / "gate-power.jsonl"
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
    parser.add_argument("--out", type=Path, default=MEASURED, help="JSON lines appended here, one per gate run")
    parser.add_argument("--replay", nargs="*", help="judge earlier runs' JSON lines again on windows of blocks")
    args = parser.parse_args()
    if args.replay is not None:
        replay(args.replay or [str(MEASURED)])
        return
    sitting = {
        "sitting": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "against": args.against,
        "blocks": args.blocks,
        "scenario": args.scenario,
        "judge": "signed-rank",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
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
            line = {**sitting, **line, "d": differences}
            print(json.dumps(line), flush=True)
            with args.out.open("a") as out:
                out.write(json.dumps(line) + "\n")
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
        "per-block sd of the paired log difference (df) | power at 10%, resampled | minutes |"
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
    """The pooled per-block sd of the paired differences (each series' own median removed) and the gate's power
    against a 10% drop at `blocks` blocks resampled from these differences."""
    import numpy as np

    usable = [np.asarray(d) - np.median(d) for d in series if len(d) >= 2]
    if not usable:
        return {"sd": None, "df": 0, "power": None}
    df = sum(len(d) - 1 for d in usable)
    sd = float(np.sqrt(sum((d**2).sum() for d in usable) / df))
    return {"sd": sd, "df": df, "power": resampled_power(np.concatenate(usable), blocks, rows)}


def resampled_power(pooled, blocks: int, rows: int, draws: int = 2000, seed: int = 1) -> float:
    """How often the gate's judge (exact one-sided signed-rank test per row, Holm over `rows` rows) flags a gate
    whose rows' per-block differences are drawn from `pooled` (unchanged blocks, centred), one row shifted by a
    10% drop."""
    import numpy as np

    from harness.analysis.stats import holm, signed_rank_p

    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(draws):
        drawn = [rng.choice(pooled, blocks) for _ in range(rows)]
        drawn[0] = drawn[0] + np.log(0.9)
        flagged += any(p < 0.05 for p in holm([signed_rank_p(d)[0] for d in drawn]))
    return flagged / draws


def replay(paths: list[str]) -> None:
    """Each run's rows judged again on non-overlapping windows of its blocks: the gate's signed-rank judge and the
    paired t, Holm over the run's rows, one-sided 5%."""
    import math
    from collections import defaultdict

    import numpy as np
    from scipy import stats

    from harness.analysis.stats import holm, signed_rank_p

    def t_p(d):
        return float(stats.t.cdf(d.mean() / (d.std(ddof=1) / math.sqrt(d.size)), d.size - 1))

    runs = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.startswith("{")]
    tally = defaultdict(lambda: [0, 0, 0])
    for run in runs:
        rows = [np.asarray(v) for v in run["d"].values()]
        if not rows:
            continue
        n = min(len(v) for v in rows)
        for blocks in (10, 15, 30):
            for start in range(0, n - blocks + 1, blocks):
                window = [v[start : start + blocks] for v in rows]
                count = tally[(run["pause"], blocks)]
                count[0] += any(p < 0.05 for p in holm([signed_rank_p(d)[0] for d in window]))
                count[1] += any(p < 0.05 for p in holm([t_p(d) for d in window]))
                count[2] += 1
    sittings = sorted({run.get("sitting", "?") for run in runs})
    print(f"{len(runs)} runs of {', '.join(paths)} ({len(sittings)} sittings: {', '.join(sittings)})")
    as_run = defaultdict(lambda: [0, 0])
    for run in runs:
        if run["flagged"] is not None:
            as_run[(run["pause"], run.get("blocks", "?"))][0] += bool(run["flagged"])
            as_run[(run["pause"], run.get("blocks", "?"))][1] += 1
    for (pause, blocks), (flagged, gates) in sorted(as_run.items(), key=str):
        print(f"as run: planted pause {pause:.0%}, {blocks} blocks a side: {flagged} of {gates} gates flagged")
    print("\nreplayed on non-overlapping windows of blocks:")
    print("| planted pause | blocks a side | gates (windows) | flagged: signed-rank (the gate) | flagged: paired t |")
    print("|---|---|---|---|---|")
    for (pause, blocks), (rank, t, gates) in sorted(tally.items()):
        if gates:
            print(f"| {pause:.0%} | {blocks} | {gates} | {rank} | {t} |")


if __name__ == "__main__":
    main()
