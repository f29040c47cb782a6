"""`vmnetbench compare BASE NEW`: per metric, medians, ratio, a one-sided Mann-Whitney U test and a minimum
effect size, each metric knowing which direction is better; plus ratios to a reference strategy measured
within each run (machine-independent). Thresholds live in benchmarks/gates.yaml.

Verdicts: `regressed` / `improved` when the test says NEW is worse / better (p < alpha) by more than the
minimum effect; `unchanged` only when the ratio's 95% bootstrap CI lies inside +-min_effect (equivalence,
not the mere absence of a significant difference); `inconclusive` otherwise, e.g. when the sample sizes
cannot reach p < alpha at all (2 vs 2 repetitions: the smallest one-sided p is 1/6)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import mannwhitneyu

from harness.analysis.results import load_meta, load_samples, varying_sweep_columns
from harness.analysis.stats import ratio_ci
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
        # In a pod-MTU sweep a binding is divided by direct at the same pod MTU (direct has no guest MTU).
        point = [c for c in varying_sweep_columns(df) if c == "pod_mtu"]
        index = ["sidecar", *point, "test", "direction", "repetition"]
        reference = m[m["strategy"] == ref].set_index(index)["value"]
        for _, row in m[m["strategy"] != ref].iterrows():
            key = tuple(row[k] for k in index)
            if key in reference.index and reference.loc[key]:
                out.append({**row.to_dict(), "metric": f"{metric}/{ref}", "value": row["value"] / reference.loc[key]})
    return pd.DataFrame(out, columns=df.columns) if out else df.iloc[0:0]


@dataclass
class Comparison:
    verdicts: pd.DataFrame
    only_base: list[tuple] = field(default_factory=list)  # cells (strategy, sidecar, test, direction) in BASE only
    only_new: list[tuple] = field(default_factory=list)
    environment: list[tuple[str, object, object]] = field(default_factory=list)  # (what, base, new) that differ

    @property
    def regressed(self) -> int:
        return int((self.verdicts.verdict == "regressed").sum()) if not self.verdicts.empty else 0

    @property
    def inconclusive(self) -> int:
        return int((self.verdicts.verdict == "inconclusive").sum()) if not self.verdicts.empty else 0


CELL = ["strategy", "sidecar", "test", "direction"]


def compare_runs(base_dir: Path, new_dir: Path, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    return compare(base_dir, new_dir, gates_path).verdicts


def compare(base_dir: Path, new_dir: Path, gates_path: Path = DEFAULT_GATES) -> Comparison:
    gates, ratios = load_gates(gates_path)
    frames = []
    for run_dir in (base_dir, new_dir):
        df = ok_samples(run_dir)
        frames.append(pd.concat([df, within_run_ratios(df, ratios)], ignore_index=True))
    base, new = frames
    cells_base = {tuple(r) for r in base[base.test != "harness"][CELL].drop_duplicates().itertuples(index=False)}
    cells_new = {tuple(r) for r in new[new.test != "harness"][CELL].drop_duplicates().itertuples(index=False)}
    if not cells_base & cells_new:
        raise NothingInCommon(f"{base_dir} and {new_dir} share no measured cell (strategy, sidecar, test, direction "
                              "with successful samples in both); nothing to compare")  # fmt: skip
    environment = environment_differences(load_meta(base_dir), load_meta(new_dir))
    environment += tool_differences(base, new)
    return Comparison(judge_frames(base, new, gates), sorted(cells_base - cells_new), sorted(cells_new - cells_base),
                      environment)  # fmt: skip


def judge_frames(base: pd.DataFrame, new: pd.DataFrame, gates: dict[str, Gate]) -> pd.DataFrame:
    """A verdict for every (strategy, sidecar, test, direction, metric) both frames hold; a ratio metric
    `<m>/<ref>` takes its own gate if it has one, else `<m>`'s."""
    rows = []
    keys = [*KEYS[:-1], *varying_sweep_columns(base, new), KEYS[-1]]  # swept cells are kept apart
    for key, b in base.groupby(keys, sort=True, dropna=False):
        n = new
        for k, v in zip(keys, key, strict=True):
            n = n[n[k].isna()] if pd.isna(v) else n[n[k] == v]
        if n.empty:
            continue
        metric = key[-1]
        gate = gates.get(metric) or gates.get(metric.split("/")[0])
        rows.append(_verdict(dict(zip(keys, key, strict=True)), b["value"].to_numpy(), n["value"].to_numpy(), gate))
    return pd.DataFrame(rows)


def smallest_p(n_base: int, n_new: int) -> float:
    """The smallest one-sided p-value Mann-Whitney U can give for these sample sizes (complete separation)."""
    return 1 / math.comb(n_base + n_new, n_base)


def _verdict(key: dict, base: np.ndarray, new: np.ndarray, gate: Gate | None) -> dict:
    mb, mn = float(np.median(base)), float(np.median(new))
    ratio = mn / mb if mb else float("nan")
    row = {**key, "n_base": len(base), "n_new": len(new), "median_base": mb, "median_new": mn, "ratio": ratio}
    if gate is None:
        return {**row, "p_value": None, "verdict": "not gated", "why": "no gate for this metric"}
    row |= {"better": gate.better, "min_effect": gate.min_effect}
    floor = smallest_p(len(base), len(new)) if len(base) and len(new) else 1.0
    if floor >= gate.alpha:
        return {**row, "p_value": None, "verdict": "inconclusive",
                "why": f"n={len(base)} vs {len(new)}: the smallest possible p is {floor:.2g} >= alpha {gate.alpha:g}; "
                       "more repetitions needed"}  # fmt: skip
    if not np.any(base) and not np.any(new):
        return {**row, "p_value": None, "verdict": "unchanged", "why": "zero in every sample of both runs"}
    worse = "less" if gate.better == "higher" else "greater"  # alternative: NEW is worse than BASE
    better = "greater" if gate.better == "higher" else "less"
    p_worse = float(mannwhitneyu(new, base, alternative=worse).pvalue)
    p_better = float(mannwhitneyu(new, base, alternative=better).pvalue)
    change = (mn - mb) / abs(mb) if mb else 0.0
    worse_by = -change if gate.better == "higher" else change
    ci = ratio_ci(new, base) if mb else None
    if p_worse < gate.alpha and worse_by > gate.min_effect:
        verdict, why = "regressed", f"p={p_worse:.3g} < {gate.alpha:g} and worse by {worse_by:.0%}"
    elif p_better < gate.alpha and -worse_by > gate.min_effect:
        verdict, why = "improved", f"p={p_better:.3g} < {gate.alpha:g} and better by {-worse_by:.0%}"
    elif ci is not None and 1 - gate.min_effect <= ci.low and ci.high <= 1 + gate.min_effect:
        verdict, why = "unchanged", f"ratio CI [{ci.low:.2f}, {ci.high:.2f}] within +-{gate.min_effect:.0%}"
    else:
        bounds = f"[{ci.low:.2f}, {ci.high:.2f}]" if ci is not None else "undefined"
        verdict, why = "inconclusive", f"ratio CI {bounds} not within +-{gate.min_effect:.0%} and no significant change"
    return {**row, "p_value": min(p_worse, p_better), "verdict": verdict, "why": why}


def tool_differences(base: pd.DataFrame, new: pd.DataFrame) -> list[tuple[str, object, object]]:
    """Per binding, the tools its rows ran with (the `tools` column: pasta, passt, QEMU, Envoy, the relay) where
    the two runs differ: a passt or QEMU upgrade shows beside the numbers it changed."""

    def used(frame: pd.DataFrame) -> dict[str, str]:
        out: dict[str, set[str]] = {}
        if "tools" not in frame:
            return {}
        for strategy, text in frame[["strategy", "tools"]].dropna().drop_duplicates().itertuples(index=False):
            for tool, version in (json.loads(text) if text else {}).items():
                out.setdefault(f"{strategy}: {tool}", set()).add(str(version))
        return {k: ", ".join(sorted(v)) for k, v in out.items()}

    ub, un = used(base), used(new)
    return [(k, ub.get(k), un.get(k)) for k in sorted(set(ub) & set(un)) if ub[k] != un[k]]


def environment_differences(base: dict, new: dict) -> list[tuple[str, object, object]]:
    """What differs between two runs' environments: tool versions, kernel, CPU, guest (QEMU, accel), load."""

    def facts(meta: dict) -> dict[str, object]:
        host, guest = meta.get("host", {}), meta.get("guest") or {}
        out = {f"tool {k}": v for k, v in (meta.get("tools") or {}).items()}
        out |= {"kernel": host.get("kernel"), "cpu": host.get("cpu_model"), "cpus": host.get("cpus"),
                "guest": guest.get("kind", "netns"), "qemu": guest.get("qemu_version"),
                "accel": (guest.get("acceleration") or {}).get("accel"),
                "runtime": (meta.get("scenario_parsed") or {}).get("runtime"),
                "git": meta.get("git_sha")}  # fmt: skip
        load = meta.get("load") or {}
        out |= {
            "load at start": (load.get("start") or {}).get("loadavg_1m"),
            "other runs": ", ".join((load.get("start") or {}).get("other_runs", [])) or None,
        }
        return out

    fb, fn = facts(base), facts(new)
    return [(k, fb.get(k), fn.get(k)) for k in dict.fromkeys([*fb, *fn]) if fb.get(k) != fn.get(k)]
