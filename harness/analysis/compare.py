"""`vmnetbench compare BASE NEW`: per metric, medians, ratio, a one-sided Mann-Whitney U test and a minimum
effect size, each metric knowing which direction is better; plus ratios to a reference strategy measured
within each run (machine-independent). Thresholds live in benchmarks/gates.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import mannwhitneyu

from harness.analysis.results import load_samples
from harness.lab.paths import REPO_ROOT

KEYS = ["strategy", "sidecar", "test", "direction", "metric"]
DEFAULT_GATES = REPO_ROOT / "benchmarks" / "gates.yaml"


class NothingInCommon(ValueError):
    pass


@dataclass(frozen=True)
class Gate:
    better: str  # "higher" | "lower"
    min_effect: float
    alpha: float


def load_gates(path: Path = DEFAULT_GATES) -> tuple[dict[str, Gate], list[dict]]:
    config = yaml.safe_load(path.read_text())
    defaults = config.get("defaults", {})
    gates = {}
    for metric, spec in config.get("metrics", {}).items():
        if spec.get("better") not in ("higher", "lower"):
            raise ValueError(f"{path}: metrics.{metric}.better must be higher or lower.")
        gates[metric] = Gate(
            spec["better"], float(spec.get("min_effect", defaults.get("min_effect", 0.1))),
            float(spec.get("alpha", defaults.get("alpha", 0.05))),
        )  # fmt: skip
    return gates, config.get("ratios", [])


def ok_samples(run_dir: Path) -> pd.DataFrame:
    df = load_samples(run_dir)
    df = df[(df["status"] == "ok") & df["value"].notna()].copy()
    df["test"] = df["test"].fillna("")
    return df


def within_run_ratios(df: pd.DataFrame, ratios: list[dict]) -> pd.DataFrame:
    """strategy / reference for the same sidecar, test, direction and repetition, as metric `<m>/<ref>`."""
    out = []
    for spec in ratios:
        metric, ref = spec["metric"], spec["reference"]
        m = df[df["metric"] == metric]
        reference = m[m["strategy"] == ref].set_index(["sidecar", "test", "direction", "repetition"])["value"]
        for _, row in m[m["strategy"] != ref].iterrows():
            key = (row["sidecar"], row["test"], row["direction"], row["repetition"])
            if key in reference.index and reference.loc[key]:
                out.append({**row.to_dict(), "metric": f"{metric}/{ref}", "value": row["value"] / reference.loc[key]})
    return pd.DataFrame(out, columns=df.columns) if out else df.iloc[0:0]


def compare_runs(base_dir: Path, new_dir: Path, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    gates, ratios = load_gates(gates_path)
    frames = []
    for run_dir in (base_dir, new_dir):
        df = ok_samples(run_dir)
        frames.append(pd.concat([df, within_run_ratios(df, ratios)], ignore_index=True))
    base, new = frames
    cell = ["strategy", "sidecar", "test", "direction"]
    shared = base[base.test != "harness"][cell].drop_duplicates().merge(new[cell].drop_duplicates())
    if shared.empty:
        raise NothingInCommon(f"{base_dir} and {new_dir} share no measured cell (strategy, sidecar, test, direction "
                              "with successful samples in both); nothing to compare")  # fmt: skip
    rows = []
    for key, b in base.groupby(KEYS, sort=True):
        n = new
        for k, v in zip(KEYS, key, strict=True):
            n = n[n[k] == v]
        if n.empty:
            continue
        metric = key[-1]
        gate = gates.get(metric) or gates.get(metric.split("/")[0])
        rows.append(_verdict(dict(zip(KEYS, key, strict=True)), b["value"].to_numpy(), n["value"].to_numpy(), gate))
    return pd.DataFrame(rows)


def _verdict(key: dict, base: np.ndarray, new: np.ndarray, gate: Gate | None) -> dict:
    mb, mn = float(np.median(base)), float(np.median(new))
    ratio = mn / mb if mb else float("nan")
    row = {**key, "n_base": len(base), "n_new": len(new), "median_base": mb, "median_new": mn, "ratio": ratio}
    if gate is None:
        return {**row, "p_value": None, "verdict": "not gated"}
    worse = "less" if gate.better == "higher" else "greater"  # alternative: NEW is worse than BASE
    better = "greater" if gate.better == "higher" else "less"
    if len(base) < 2 or len(new) < 2:
        return {**row, "p_value": None, "verdict": "too few samples"}
    p_worse = float(mannwhitneyu(new, base, alternative=worse).pvalue)
    p_better = float(mannwhitneyu(new, base, alternative=better).pvalue)
    change = (mn - mb) / abs(mb) if mb else 0.0
    worse_by = -change if gate.better == "higher" else change
    if p_worse < gate.alpha and worse_by > gate.min_effect:
        verdict = "regressed"
    elif p_better < gate.alpha and -worse_by > gate.min_effect:
        verdict = "improved"
    else:
        verdict = "unchanged"
    return {**row, "p_value": min(p_worse, p_better), "better": gate.better, "min_effect": gate.min_effect,
            "verdict": verdict}  # fmt: skip
