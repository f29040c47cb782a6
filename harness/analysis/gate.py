"""The regression gate (`vmnetbench gate`, `make gate`): a gate CI can trust on a noisy 2-core machine.

Absolute numbers from another sitting cannot gate here (measured: a stored pytest-benchmark baseline failed
unchanged code by +44% and +52%). So the gate judges each binding's throughput and connection rate as a
ratio to `direct` measured in the same run, paired by repetition (the cells are interleaved, so drift hits
both sides of a ratio alike), against a stored baseline of the same ratios (benchmarks/gate-baseline.json),
with compare's regressed / improved / unchanged / inconclusive logic and the thresholds of
benchmarks/gates.yaml. `make gate` runs side by side instead (`--against REV`, harness/run/sidebyside.py): two
revisions in the same blocks, paired per block (`judge_paired`). The A/B mode judges variant B against variant
A measured in the same blocks of one run (two rule sets, two relay builds, two passt or QEMU builds: the way to
gate an upgrade), with the same paired judge and no stored baseline. The paired gates judge each row's own metric
(not its ratio to direct: the two sides of a pair are seconds apart, and a ratio would add the direct beds' noise;
measured: per-block spread of the paired difference 0.15-0.21 raw against 0.16-0.28 as ratios), and only the
metrics benchmarks/gates.yaml lists under `paired`, so Holm's correction is spent on the rows that gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from harness.analysis.compare import DEFAULT_GATES, judge_frames, load_gates, settle, within_run_ratios
from harness.lab.paths import REPO_ROOT
from harness.lab.vocabulary import Status

DEFAULT_BASELINE = REPO_ROOT / "benchmarks" / "gate-baseline.json"
RATIO_KEYS = ["strategy", "sidecar", "test", "direction", "metric"]  # compare.KEYS


class GateError(ValueError):
    pass


def ok_rows(samples: pd.DataFrame) -> pd.DataFrame:
    df = samples[(samples["status"] == Status.OK) & samples["value"].notna()].copy()
    df["test"] = df["test"].fillna("")
    return df


def paired_metrics(gates_path: Path = DEFAULT_GATES) -> list[str]:
    """The metrics the paired gates judge (benchmarks/gates.yaml `paired`)."""
    return list((yaml.safe_load(gates_path.read_text()) or {}).get("paired") or [])


def own_metric_rows(samples: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """A run's samples of the metrics the paired gates judge, one per bed."""
    rows = ok_rows(samples)
    keep = rows["metric"].isin(paired_metrics(gates_path)) & (rows["test"] != "harness") & (rows["value"] > 0)
    return rows[keep][RATIO_KEYS + ["repetition", "value"]]


def run_ratios(samples: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """Every binding's within-run ratio samples (`<metric>/direct`), one per repetition."""
    _, ratios = load_gates(gates_path)
    return within_run_ratios(ok_rows(samples), ratios)[RATIO_KEYS + ["repetition", "value"]]


MAX_SITTINGS = 8
"""A stored baseline keeps its latest sittings (`gate --save-baseline` adds one each time): their spread is the
shift between sittings the stored-baseline gate adds to its error."""


def save_baseline(ratios: pd.DataFrame, meta: dict, path: Path = DEFAULT_BASELINE) -> Path:
    """This run's ratios added to the stored baseline as one more sitting (the oldest dropped beyond
    MAX_SITTINGS); a file from before sittings is read as one sitting."""
    sitting = {
        "run_id": meta.get("run_id"),
        "host": meta.get("host"),
        "tools": meta.get("tools"),
        "git_sha": meta.get("git_sha"),
        "ratios": ratios.to_dict(orient="records"),
    }
    earlier = _sittings(json.loads(path.read_text())) if path.is_file() else []
    record = {"sittings": [*earlier, sitting][-MAX_SITTINGS:]}
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def _sittings(record: dict) -> list[dict]:
    return record.get("sittings", [record])


def load_baseline(path: Path = DEFAULT_BASELINE) -> pd.DataFrame:
    """The stored ratios, one row per repetition, with the sitting (its run id) they came from."""
    if not path.is_file():
        raise GateError(f"no gate baseline at {path}; record one with `vmnetbench gate --save-baseline`")
    try:
        sittings = _sittings(json.loads(path.read_text()))
        return pd.concat(
            [pd.DataFrame(s["ratios"]).assign(sitting=str(s.get("run_id") or i)) for i, s in enumerate(sittings)],
            ignore_index=True,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise GateError(f"{path} is not a gate baseline ({e})") from None


def judge(base: pd.DataFrame, new: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """compare's verdict for every (cell, metric) both frames hold."""
    gates, _ = load_gates(gates_path)
    return judge_frames(base, new, gates)


def judge_against_baseline(samples: pd.DataFrame, baseline: pd.DataFrame, gates_path: Path = DEFAULT_GATES):
    """This run's ratios against the stored sittings'. With 2 or more sittings each row's error holds the shift
    between sittings (`stats.shifted_difference`: a stored baseline's 5% false alarms become 12% at a shift of
    sd 0.03 without it); with one, compare's Welch t, and each verdict says the shift is not in its error."""
    ratios = run_ratios(samples, gates_path)
    sittings = baseline["sitting"].nunique() if "sitting" in baseline else 1
    if sittings < 2:
        verdicts = judge(baseline.drop(columns=["sitting"], errors="ignore"), ratios, gates_path)
        if verdicts.empty:
            raise GateError(NOTHING_SHARED)
        note = (
            "; 1 baseline sitting: the shift between sittings is not in this error (add sittings with "
            "`make gate-baseline`, or gate side by side with --against)"
        )
        gated = ~verdicts["verdict"].isin(["not gated"])
        verdicts.loc[gated, "why"] = verdicts.loc[gated, "why"] + note
        return verdicts
    return _judge_with_shift(baseline, ratios, gates_path)


NOTHING_SHARED = "the run and the baseline share no binding ratio; was the baseline made from this scenario?"


def _judge_with_shift(baseline: pd.DataFrame, ratios: pd.DataFrame, gates_path: Path) -> pd.DataFrame:
    import math

    from harness.analysis.stats import holm, shifted_difference

    gates, _ = load_gates(gates_path)
    base = baseline[baseline["value"] > 0].copy()
    base["test"] = base["test"].fillna("")
    new = ratios[ratios["value"] > 0].assign(sitting=None)
    both = pd.concat([base.assign(side="base"), new.assign(side="new")], ignore_index=True)
    rows = []
    for key, cell in both.groupby(RATIO_KEYS, sort=True, dropna=False):
        stored, group = cell[cell.side == "base"], cell[cell.side == "new"]
        if stored.empty or group.empty:
            continue
        gate = gates.get(key[-1]) or gates.get(key[-1].split("/")[0])
        logs = np.log(group["value"].to_numpy())
        per_sitting = [np.log(g["value"].to_numpy()) for _, g in stored.groupby("sitting")]
        row = {
            **dict(zip(RATIO_KEYS, key, strict=True)),
            "n_base": len(stored),
            "n_new": len(logs),
            "median_base": float(np.exp(np.mean([x.mean() for x in per_sitting]))),
            "median_new": float(np.exp(logs.mean())),
        }
        row["ratio"] = row["median_new"] / row["median_base"]
        if gate is None:
            rows.append({**row, "p_value": None, "verdict": "not gated", "why": "no gate for this metric"})
            continue
        row |= {"better": gate.better, "min_effect": gate.min_effect}
        shifted = shifted_difference(
            logs if gate.better == "higher" else -logs, [x if gate.better == "higher" else -x for x in per_sitting]
        )
        if shifted is None:
            why = f"{len(logs)} samples, {len(per_sitting)} sittings: the test needs 3 a side and 2 sittings"
            rows.append({**row, "p_value": None, "verdict": "inconclusive", "why": why})
            continue
        low, high = shifted.interval(0.90)
        if gate.better != "higher":
            low, high = 1 / high, 1 / low
        equivalent = 1 - gate.min_effect <= low and high <= 1 + gate.min_effect
        text = (
            f"ratio {row['ratio']:.2f}, 90% interval [{low:.2f}, {high:.2f}] with the shift between "
            f"{shifted.sittings} sittings (sd {shifted.shift_sd:.3f}) "
            f"{'within' if equivalent else 'not within'} +-{gate.min_effect:.0%}"
        )
        p_worse = shifted.p_lower()
        rows.append(
            {
                **row,
                "_p_worse": p_worse,
                "_p_better": 1 - p_worse,
                "_equivalent": equivalent,
                "_text": text,
                "_change": 1 - math.exp(shifted.difference),
                "_alpha": gate.alpha,
                "verdict": "pending",
            }
        )
    if not rows:
        raise GateError(NOTHING_SHARED)
    worse = holm([r.get("_p_worse") for r in rows])
    better = holm([r.get("_p_better") for r in rows])
    for row, p_worse, p_better in zip(rows, worse, better, strict=True):
        if row["verdict"] == "pending":
            test = "t with the sittings' shift"
            settle(row, p_worse, p_better, row["_alpha"], test, row["_change"], row["_text"], row["_equivalent"])
    out = pd.DataFrame(rows)
    return out.drop(columns=[c for c in out.columns if c.startswith("_")])


def judge_ab(samples: pd.DataFrame, a: str, b: str, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """Variant `b` judged against variant `a`, both measured in this run's blocks: their own metrics, paired per
    block as the side-by-side gate pairs two revisions (`judge_paired`). The block's drift is common to A and B
    and cancels; their ratios to direct would add only the direct beds' own noise (within a block B/direct over
    A/direct is B/A when they share a direct), so they are not judged twice."""
    rows = ok_rows(samples)
    present = set(rows["strategy"])
    for name in (a, b):
        if name not in present:
            raise GateError(
                f"option --ab: {name!r} has no successful samples in the run; it has: {', '.join(sorted(present))}"
            )
    frame = own_metric_rows(samples, gates_path)
    sides = [
        frame[frame.strategy == name].assign(strategy=f"{b} vs {a}", side=side, pair=lambda f: f["repetition"])
        for name, side in ((a, "base"), (b, "new"))
    ]
    return judge_paired(_per_pair(pd.concat(sides, ignore_index=True)), gates_path)


def judge_side_by_side(
    base_runs: list[pd.DataFrame], new_runs: list[pd.DataFrame], gates_path: Path = DEFAULT_GATES
) -> pd.DataFrame:
    """Two revisions measured in the same blocks (harness/run/sidebyside.py): block b of BASE and block b of
    NEW ran one after the other, their order alternating; each row's own metric, paired per block
    (`judge_paired`)."""
    frames = []
    for side, runs in (("base", base_runs), ("new", new_runs)):
        for pair, samples in enumerate(runs, 1):
            frames.append(own_metric_rows(samples, gates_path).assign(side=side, pair=pair))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        listed = ", ".join(paired_metrics(gates_path))
        raise GateError(f"neither side measured a metric the gate judges ({listed}: benchmarks/gates.yaml `paired`)")
    return judge_paired(_per_pair(frame), gates_path)


def _per_pair(frame: pd.DataFrame) -> pd.DataFrame:
    """One value per row key, side and block: the geometric mean of the block's samples."""
    grouped = frame.groupby(RATIO_KEYS + ["side", "pair"], dropna=False)["value"]
    return grouped.apply(lambda v: float(np.exp(np.log(v).mean()))).reset_index()


def judge_paired(frame: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """BASE and NEW measured in the same blocks (`frame`: RATIO_KEYS, side base/new, pair = block, value). Per
    gated row, the per-block log difference NEW - BASE: the exact one-sided Wilcoxon signed-rank test for worse
    and for better, Holm over the rows; the ratio is the Hodges-Lehmann estimate, and `unchanged` means its exact
    90% signed-rank interval lies within +-min_effect (benchmarks/gates.yaml), `inconclusive` otherwise. The
    gate's two revisions and `--ab`'s two variants alike.

    Why signed ranks and not the paired t: the blocks' order alternates, so an unchanged tree's differences are
    symmetric about 0 and the test is exact; and this machine's differences are mostly within a few percent
    with a few blocks 20-60% off (benchmarks/gate_power.py), where the mean and its t lose most of their power
    and ranks do not (docs/reports-and-gates.md has both measured). It needs 6 blocks (7 under Holm over 4
    rows) to reach a one-sided 5% at all."""
    import math

    from harness.analysis.stats import MIN_N, hodges_lehmann_interval, holm, signed_rank_p

    gates, _ = load_gates(gates_path)
    rows = []
    for key, group in frame.groupby(RATIO_KEYS, sort=True, dropna=False):
        wide = group.pivot_table(index="pair", columns="side", values="value").dropna()
        if not {"base", "new"} <= set(wide.columns):
            continue
        metric = key[-1]
        gate = gates.get(metric) or gates.get(metric.split("/")[0])
        d = (np.log(wide["new"]) - np.log(wide["base"])).to_numpy()
        row = {
            **dict(zip(RATIO_KEYS, key, strict=True)),
            "n_base": len(d),
            "n_new": len(d),
            "median_base": float(np.exp(np.log(wide["base"]).mean())),
            "median_new": float(np.exp(np.log(wide["new"]).mean())),
            "ratio": float(np.exp(d.mean())),
        }
        if gate is None:
            rows.append({**row, "p_value": None, "verdict": "not gated", "why": "no gate for this metric"})
            continue
        row |= {"better": gate.better, "min_effect": gate.min_effect}
        if len(d) < MIN_N["wilcoxon"]:
            why = f"{len(d)} paired blocks: the signed-rank test needs at least {MIN_N['wilcoxon']}"
            rows.append({**row, "p_value": None, "verdict": "inconclusive", "why": why})
            continue
        higher = gate.better == "higher"
        p_lower, p_higher = signed_rank_p(d)
        p_worse, p_better = (p_lower, p_higher) if higher else (p_higher, p_lower)
        shift = hodges_lehmann_interval(d, level=0.90)
        row["ratio"] = shift.estimate
        mean = math.log(shift.estimate)
        low, high = shift.low, shift.high
        equivalent = 1 - gate.min_effect <= low and high <= 1 + gate.min_effect
        text = (
            f"ratio {shift.estimate:.2f}, exact 90% signed-rank interval [{low:.2f}, {high:.2f}] "
            f"{'within' if equivalent else 'not within'} +-{gate.min_effect:.0%} (n={len(d)} blocks)"
        )
        change = (1 - math.exp(mean)) if higher else (math.exp(mean) - 1)
        rows.append(
            {
                **row,
                "_p_worse": p_worse,
                "_p_better": p_better,
                "_equivalent": equivalent,
                "_text": text,
                "_change": change,
                "_alpha": gate.alpha,
                "verdict": "pending",
            }
        )
    if not rows:
        raise GateError("BASE and NEW share no measured row to judge")
    worse = holm([r.get("_p_worse") for r in rows])
    better = holm([r.get("_p_better") for r in rows])
    for row, p_worse, p_better in zip(rows, worse, better, strict=True):
        if row["verdict"] != "pending":
            continue
        test = "paired signed-rank"
        settle(row, p_worse, p_better, row["_alpha"], test, row["_change"], row["_text"], row["_equivalent"])
    out = pd.DataFrame(rows)
    return out.drop(columns=[c for c in out.columns if c.startswith("_")])
