"""The regression gate (`vmnetbench gate`, `make gate`): a gate CI can trust on a noisy 2-core machine.

Absolute numbers from another sitting cannot gate here (measured: a stored pytest-benchmark baseline failed
unchanged code by +44% and +52%). So the gate judges each binding's throughput and connection rate as a
ratio to `direct` measured in the same run, paired by repetition (the cells are interleaved, so drift hits
both sides of a ratio alike), against a stored baseline of the same ratios (benchmarks/gate-baseline.json),
with compare's regressed / improved / unchanged / inconclusive logic and the thresholds of
benchmarks/gates.yaml. The A/B mode judges variant B against variant A measured interleaved in one run
(two rule sets, two relay builds, two passt builds), with the same logic and no stored baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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


def run_ratios(samples: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """Every binding's within-run ratio samples (`<metric>/direct`), one per repetition."""
    _, ratios = load_gates(gates_path)
    return within_run_ratios(ok_rows(samples), ratios)[RATIO_KEYS + ["repetition", "value"]]


def save_baseline(ratios: pd.DataFrame, meta: dict, path: Path = DEFAULT_BASELINE) -> Path:
    record = {
        "run_id": meta.get("run_id"),
        "host": meta.get("host"),
        "tools": meta.get("tools"),
        "git_sha": meta.get("git_sha"),
        "ratios": ratios.to_dict(orient="records"),
    }
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def load_baseline(path: Path = DEFAULT_BASELINE) -> pd.DataFrame:
    if not path.is_file():
        raise GateError(f"no gate baseline at {path}; record one with `vmnetbench gate --save-baseline`")
    try:
        return pd.DataFrame(json.loads(path.read_text())["ratios"])
    except (ValueError, KeyError) as e:
        raise GateError(f"{path} is not a gate baseline ({e})") from None


def judge(base: pd.DataFrame, new: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """compare's verdict for every (cell, metric) both frames hold."""
    gates, _ = load_gates(gates_path)
    return judge_frames(base, new, gates)


def judge_against_baseline(samples: pd.DataFrame, baseline: pd.DataFrame, gates_path: Path = DEFAULT_GATES):
    ratios = run_ratios(samples, gates_path)
    verdicts = judge(baseline, ratios, gates_path)
    if verdicts.empty:
        raise GateError("the run and the baseline share no binding ratio; was the baseline made from this scenario?")
    return verdicts


def judge_ab(samples: pd.DataFrame, a: str, b: str, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """Variant `b` judged against variant `a`, both measured in this run: their own metrics and their ratios
    to direct (when the run has direct)."""
    rows = ok_rows(samples)
    present = set(rows["strategy"])
    for name in (a, b):
        if name not in present:
            raise GateError(
                f"option --ab: {name!r} has no successful samples in the run; it has: {', '.join(sorted(present))}"
            )
    frame = pd.concat([rows[RATIO_KEYS + ["repetition", "value"]], run_ratios(samples, gates_path)], ignore_index=True)
    frame = frame[frame["test"] != "harness"]
    base = frame[frame.strategy == a].assign(strategy=f"{b} vs {a}")
    new = frame[frame.strategy == b].assign(strategy=f"{b} vs {a}")
    return judge(base, new, gates_path)


def judge_side_by_side(
    base_runs: list[pd.DataFrame], new_runs: list[pd.DataFrame], gates_path: Path = DEFAULT_GATES
) -> pd.DataFrame:
    """Two revisions measured in the same blocks (harness/run/sidebyside.py): block b of BASE and block b of
    NEW ran one after the other, their order alternating. Per gated row, the per-block log difference of the
    within-run ratio to direct (NEW - BASE): the shift between sittings is common to both and cancels. One-sided
    paired t for worse and for better, Holm over the rows; `unchanged` when the paired 90% interval of the ratio
    lies within +-min_effect (benchmarks/gates.yaml), `inconclusive` otherwise."""
    import math

    from scipy import stats

    from harness.analysis.stats import holm

    gates, _ = load_gates(gates_path)
    frames = []
    for side, runs in (("base", base_runs), ("new", new_runs)):
        for pair, samples in enumerate(runs, 1):
            ratios = run_ratios(samples, gates_path)
            if ratios.empty:
                continue
            ratios = ratios[ratios["value"] > 0]
            geometric = ratios.groupby(RATIO_KEYS)["value"].apply(lambda v: float(np.exp(np.log(v).mean())))
            frames.append(geometric.reset_index().assign(side=side, pair=pair))
    if not frames:
        raise GateError("neither side measured a binding's ratio to direct: is direct in the gate's scenario?")
    frame = pd.concat(frames, ignore_index=True)
    rows = []
    for key, group in frame.groupby(RATIO_KEYS, sort=True):
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
        if len(d) < 3:
            rows.append(
                {
                    **row,
                    "p_value": None,
                    "verdict": "inconclusive",
                    "why": f"{len(d)} paired blocks: the paired t needs at least 3",
                }
            )
            continue
        se = float(d.std(ddof=1) / math.sqrt(len(d)))
        mean = float(d.mean())
        higher = gate.better == "higher"
        if se == 0:
            p_worse = 0.0 if (mean < 0) == higher and mean != 0 else 1.0
            p_better = 0.0 if (mean > 0) == higher and mean != 0 else 1.0
        else:
            t = mean / se
            p_worse = float(stats.t.cdf(t, len(d) - 1) if higher else stats.t.sf(t, len(d) - 1))
            p_better = float(stats.t.sf(t, len(d) - 1) if higher else stats.t.cdf(t, len(d) - 1))
        h = float(stats.t.ppf(0.95, len(d) - 1) * se)
        low, high = math.exp(mean - h), math.exp(mean + h)
        equivalent = 1 - gate.min_effect <= low and high <= 1 + gate.min_effect
        text = (
            f"ratio {math.exp(mean):.2f}, paired 90% interval [{low:.2f}, {high:.2f}] "
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
    worse = holm([r.get("_p_worse") for r in rows])
    better = holm([r.get("_p_better") for r in rows])
    for row, p_worse, p_better in zip(rows, worse, better, strict=True):
        if row["verdict"] != "pending":
            continue
        settle(row, p_worse, p_better, row["_alpha"], "paired t", row["_change"], row["_text"], row["_equivalent"])
    out = pd.DataFrame(rows)
    return out.drop(columns=[c for c in out.columns if c.startswith("_")])
