"""`vmnetbench compare BASE NEW`: per metric, medians, ratio, a one-sided test and an equivalence interval, each
metric knowing which direction is better (harness/metrics/registry.py); plus each binding's ratio to `direct`
measured within each run, one per block (machine-independent). Thresholds live in benchmarks/gates.yaml.

Two runs are separate sittings, so the test is unpaired: Welch's t on the logs (Mann-Whitney U for a metric
with zeros, e.g. UDP loss). Verdicts: `regressed` / `improved` when the one-sided test says NEW is worse /
better with Holm's adjustment over every gated row of the comparison (so an unchanged tree fails the whole
comparison at most alpha of the time); `unchanged` only when the ratio's 90% interval lies inside +-min_effect
(equivalence, two one-sided tests at 5%), not the mere absence of a significant difference; `inconclusive`
otherwise, e.g. below the test's minimum n (3 a side)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import mannwhitneyu

from harness.analysis.blocks import block_log_ratios, has_blocks
from harness.analysis.results import load_meta, load_samples, varying_sweep_columns
from harness.analysis.stats import MIN_N, holm, welch_p_worse, welch_ratio_interval
from harness.lab.paths import REPO_ROOT
from harness.lab.vocabulary import Status
from harness.metrics.registry import spec

KEYS = ["strategy", "sidecar", "test", "direction", "metric"]
DEFAULT_GATES = REPO_ROOT / "benchmarks" / "gates.yaml"


class NothingInCommon(ValueError):
    pass


@dataclass(frozen=True)
class Gate:
    better: str  # "higher" | "lower"
    min_effect: float
    alpha: float


class GatesError(ValueError):
    """A gates file that cannot be read or is not one: one sentence naming the file."""


def load_gates(path: Path = DEFAULT_GATES) -> tuple[dict[str, Gate], list[dict]]:
    try:
        if not path.is_file():
            raise GatesError(f"option --gates: {path} is not a file; give a gates YAML file like benchmarks/gates.yaml")
        config = yaml.safe_load(path.read_bytes()[: 1 << 20].decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise GatesError(
            f"option --gates: {path} is not a readable gates YAML file ({' '.join(str(e).split())[:120]})"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("metrics") or {}, dict):
        raise GatesError(f"option --gates: {path} is not a gates file (a mapping with defaults, metrics and ratios)")
    defaults = config.get("defaults", {})
    gates = {}
    for metric, override in (config.get("metrics") or {}).items():
        declared = spec(metric)
        if declared is None:
            raise ValueError(f"{path}: metrics.{metric} is not a metric of harness/metrics/registry.py.")
        gates[metric] = Gate(
            str(declared.better),
            float((override or {}).get("min_effect", declared.min_effect)),
            float((override or {}).get("alpha", defaults.get("alpha", 0.05))),
        )
    return gates, config.get("ratios", [])


def ok_samples(run_dir: Path) -> pd.DataFrame:
    df = load_samples(run_dir)
    df = df[(df["status"] == Status.OK) & df["value"].notna()].copy()
    df["test"] = df["test"].fillna("")
    return df


def within_run_ratios(df: pd.DataFrame, ratios: list[dict]) -> pd.DataFrame:
    """strategy / reference as metric `<m>/<ref>`: one per block, against the reference beside it (blocks.py);
    for a run without blocks, paired by repetition."""
    if has_blocks(df):
        return _block_ratios(df, ratios)
    out = []
    for ratio in ratios:
        metric, ref = ratio["metric"], ratio["reference"]
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


def _block_ratios(df: pd.DataFrame, ratios: list[dict]) -> pd.DataFrame:
    out = []
    for ratio in ratios:
        metric, ref = ratio["metric"], ratio["reference"]
        found = block_log_ratios(df[df["metric"] == metric], reference=ref)
        if found.empty:
            continue
        keys = ["strategy", "sidecar", "pod_mtu", "guest_mtu", "test", "direction", "block"]
        per_block = found.groupby(keys, dropna=False, sort=False)["log_ratio"].mean().reset_index()
        per_block["value"] = np.exp(per_block.pop("log_ratio"))
        per_block["metric"] = f"{metric}/{ref}"
        per_block["repetition"] = per_block["block"]
        per_block["status"] = str(Status.OK)
        out.append(per_block)
    if not out:
        return df.iloc[0:0]
    return pd.concat(out, ignore_index=True).reindex(columns=df.columns)


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
        raise NothingInCommon(
            f"{base_dir} and {new_dir} share no measured cell (strategy, sidecar, test, direction "
            "with successful samples in both); nothing to compare"
        )
    environment = environment_differences(load_meta(base_dir), load_meta(new_dir))
    environment += tool_differences(base, new)
    return Comparison(
        judge_frames(base, new, gates), sorted(cells_base - cells_new), sorted(cells_new - cells_base), environment
    )


def judge_frames(base: pd.DataFrame, new: pd.DataFrame, gates: dict[str, Gate]) -> pd.DataFrame:
    """A verdict for every (strategy, sidecar, test, direction, metric) both frames hold; a ratio metric
    `<m>/<ref>` takes its own gate if it has one, else `<m>`'s. Regressions and improvements are Holm-adjusted
    over every gated row."""
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
    worse = holm([r.pop("_p_worse", None) for r in rows])
    better = holm([r.pop("_p_better", None) for r in rows])
    for row, p_worse, p_better in zip(rows, worse, better, strict=True):
        if row["verdict"] != "pending":
            continue
        gate = gates.get(row["metric"]) or gates.get(row["metric"].split("/")[0])
        settle(
            row,
            p_worse,
            p_better,
            gate.alpha,
            row["test_name"],
            row["worse_by"],
            row["_interval_text"],
            row["_equivalent"],
        )
    frame = pd.DataFrame(rows)
    return frame.drop(columns=[c for c in frame.columns if c.startswith("_") or c in ("test_name", "worse_by")])


def settle(
    row: dict,
    p_worse: float | None,
    p_better: float | None,
    alpha: float,
    test_name: str,
    worse_by: float,
    interval_text: str,
    equivalent: bool,
) -> None:
    """A pending row's verdict once its p-values are Holm-adjusted: regressed, improved, unchanged (its interval
    within the margin) or inconclusive, with the reason; compare's and the side-by-side gate's alike."""
    if p_worse is not None and p_worse < alpha:
        why = f"{test_name}: Holm-adjusted p={p_worse:.3g} < {alpha:g}, worse by {worse_by:.0%}"
        row |= {"p_value": p_worse, "verdict": "regressed", "why": why}
    elif p_better is not None and p_better < alpha:
        why = f"{test_name}: Holm-adjusted p={p_better:.3g} < {alpha:g}, better by {-worse_by:.0%}"
        row |= {"p_value": p_better, "verdict": "improved", "why": why}
    elif equivalent:
        row |= {"p_value": p_worse, "verdict": "unchanged", "why": interval_text}
    else:
        row |= {
            "p_value": p_worse,
            "verdict": "inconclusive",
            "why": f"{interval_text}; no significant change after Holm",
        }


def _verdict(key: dict, base: np.ndarray, new: np.ndarray, gate: Gate | None) -> dict:
    mb, mn = float(np.median(base)), float(np.median(new))
    ratio = mn / mb if mb else float("nan")
    row = {**key, "n_base": len(base), "n_new": len(new), "median_base": mb, "median_new": mn, "ratio": ratio}
    if gate is None:
        return {**row, "p_value": None, "verdict": "not gated", "why": "no gate for this metric"}
    row |= {"better": gate.better, "min_effect": gate.min_effect}
    if min(len(base), len(new)) < MIN_N["welch"]:
        return {
            **row,
            "p_value": None,
            "verdict": "inconclusive",
            "why": f"n={len(base)} vs {len(new)}: the test needs at least {MIN_N['welch']} a side; "
            "more repetitions needed",
        }
    if not np.any(base) and not np.any(new):
        return {**row, "p_value": None, "verdict": "unchanged", "why": "zero in every sample of both runs"}
    higher = gate.better == "higher"
    change = (mn - mb) / abs(mb) if mb else 0.0
    row["worse_by"] = -change if higher else change
    if np.all(base > 0) and np.all(new > 0):
        # the change the text states comes from the estimator the test judges: the ratio of geometric means
        geometric = float(np.exp(np.log(new).mean() - np.log(base).mean()))
        row["worse_by"] = (1 - geometric) if higher else (geometric - 1)
        row["test_name"] = "Welch t on logs"
        row["_p_worse"] = welch_p_worse(base, new, higher_is_better=higher)
        row["_p_better"] = welch_p_worse(base, new, higher_is_better=not higher)
        interval = welch_ratio_interval(new, base, level=0.90)
        equivalent = 1 - gate.min_effect <= interval.low and interval.high <= 1 + gate.min_effect
        text = (
            f"ratio {interval.estimate:.2f}, 90% Welch interval [{interval.low:.2f}, {interval.high:.2f}] "
            + ("within" if equivalent else "not within")
            + f" +-{gate.min_effect:.0%}"
        )
    else:  # zeros (UDP loss): ranks, no ratio interval
        row["test_name"] = "Mann-Whitney U"
        row["_p_worse"] = float(mannwhitneyu(new, base, alternative="less" if higher else "greater").pvalue)
        row["_p_better"] = float(mannwhitneyu(new, base, alternative="greater" if higher else "less").pvalue)
        equivalent, text = False, "samples with zeros: no ratio interval for equivalence"
    return {**row, "p_value": None, "verdict": "pending", "_equivalent": equivalent, "_interval_text": text}


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
        out |= {
            "kernel": host.get("kernel"),
            "cpu": host.get("cpu_model"),
            "cpus": host.get("cpus"),
            "guest": guest.get("kind", "netns"),
            "qemu": guest.get("qemu_version"),
            "accel": (guest.get("acceleration") or {}).get("accel"),
            "runtime": (meta.get("scenario_parsed") or {}).get("runtime"),
            "git": meta.get("git_sha"),
        }
        load = meta.get("load") or {}
        out |= {
            "load at start": (load.get("start") or {}).get("loadavg_1m"),
            "other runs": ", ".join((load.get("start") or {}).get("other_runs", [])) or None,
        }
        return out

    fb, fn = facts(base), facts(new)
    return [(k, fb.get(k), fn.get(k)) for k in dict.fromkeys([*fb, *fn]) if fb.get(k) != fn.get(k)]
