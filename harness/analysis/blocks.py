"""A binding's cost as the run measured it: against the `direct` measured right next to it.

Noise on this machine is local in time (ingress and egress of one bed correlate 0.73, cells a minute apart
barely), so the runner measures blocks: per sidecar (and pod MTU), `direct, X1, direct, X2, ..., direct` with
the X order shuffled per block (harness/run/plan.py). Each X sample is divided by the geometric mean
of the direct samples in the slots on either side of it (linear drift cancels); one log ratio per block.

Runs from before blocks (no `slot` column) have no neighbours to pair with: their ratios are unpaired
(Welch's t on the logs of every sample) and say so."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.stats import Interval, SteinPlan, log_ratio_interval, stein_plan, welch_ratio_interval
from harness.lab.vocabulary import Status

REFERENCE = "direct"
GROUP = ["sidecar", "pod_mtu"]
"""What a reference is shared within: the same sidecar and pod MTU (direct has no guest MTU)."""
MEASURE = ["test", "direction", "metric"]


def has_blocks(samples: pd.DataFrame) -> bool:
    return "slot" in samples.columns and samples["slot"].notna().any()


def _ok(samples: pd.DataFrame) -> pd.DataFrame:
    df = samples[(samples["status"] == Status.OK) & samples["value"].notna() & (samples["value"] > 0)]
    df = df[df["test"].fillna("") != "harness"].copy()
    df["test"] = df["test"].fillna("")
    for column in ("pod_mtu", "guest_mtu"):
        if column not in df:
            df[column] = np.nan
    df["log_value"] = np.log(df["value"].astype(float))
    return df


def block_log_ratios(samples: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """One row per non-reference sample that has a reference neighbour: its cell, test, direction, metric,
    block and `log_ratio` = log(value) - mean(log of the neighbouring reference samples)."""
    columns = ["strategy", *GROUP, "guest_mtu", *MEASURE, "block", "log_ratio"]
    if not has_blocks(samples):
        return pd.DataFrame(columns=columns)
    df = _ok(samples)
    ref = df[df["strategy"] == reference][[*GROUP, *MEASURE, "block", "slot", "log_value"]]
    mine = df[df["strategy"] != reference]
    if ref.empty or mine.empty:
        return pd.DataFrame(columns=columns)
    keys = [*GROUP, *MEASURE, "block"]
    neighbours = []
    for offset in (-1, 1):
        shifted = ref.assign(slot=ref["slot"] - offset).rename(columns={"log_value": f"ref{offset}"})
        neighbours.append(mine.merge(shifted, on=[*keys, "slot"], how="left")[f"ref{offset}"].to_numpy())
    both = np.vstack(neighbours)
    counts = np.sum(~np.isnan(both), axis=0)
    with np.errstate(invalid="ignore"):
        reference_log = np.nansum(both, axis=0) / np.where(counts, counts, np.nan)
    out = mine.assign(log_ratio=mine["log_value"].to_numpy() - reference_log)
    return out[out["log_ratio"].notna()][columns].reset_index(drop=True)


@dataclass(frozen=True)
class CostKey:
    """One judged ratio: a binding's metric in one test and direction, under one sidecar (and pod MTU)."""

    strategy: str
    sidecar: str
    test: str
    direction: str
    metric: str
    pod_mtu: float | None = None
    guest_mtu: float | None = None


def _select(frame: pd.DataFrame, key: CostKey, *, with_strategy: bool = True) -> pd.DataFrame:
    mask = (frame["sidecar"] == key.sidecar) & (frame["test"] == key.test) & (frame["metric"] == key.metric)
    mask &= frame["direction"] == key.direction
    if with_strategy:
        mask &= frame["strategy"] == key.strategy
    for column in ("pod_mtu", "guest_mtu") if with_strategy else ("pod_mtu",):  # direct has no guest MTU
        value = getattr(key, column)
        if value is not None and column in frame:
            mask &= frame[column] == value
    return frame[mask]


def log_ratios_of(ratios: pd.DataFrame, key: CostKey) -> pd.Series:
    """The per-block log ratios of one key, indexed by block (a block's samples averaged if it has several)."""
    return _select(ratios, key).groupby("block")["log_ratio"].mean()


def precision_plans(meta: dict) -> tuple[int, float] | None:
    """(pilot blocks, target) of a run that stopped on precision (run.json's `precision`), else None."""
    precision = (meta or {}).get("precision") or {}
    if not precision.get("target") or not precision.get("pilot_blocks"):
        return None
    # runs since issue 41 record each ratio's Stein pilot apart from the shared pilot
    return int(precision.get("stein_pilot_blocks") or precision["pilot_blocks"]), float(precision["target"])


def stein_for(log_ratios: pd.Series, precision: tuple[int, float] | None) -> SteinPlan | None:
    if precision is None:
        return None
    pilot_blocks, target = precision
    return stein_plan(log_ratios[log_ratios.index <= pilot_blocks].to_numpy(), target)


def paired_interval(log_ratios: pd.Series, precision: tuple[int, float] | None = None) -> Interval:
    """A ratio's interval over its blocks: the t interval, or in a precision run Stein's over the ratio's own first
    N blocks (N fixed by its pilot): a cell kept running for another ratio's sake (its other direction) adds
    blocks this ratio's stopping rule did not ask for, and those would break its coverage under heavy tails."""
    plan = stein_for(log_ratios, precision)
    if plan is None:
        return log_ratio_interval(log_ratios.to_numpy())
    return plan.interval(log_ratios.sort_index().iloc[: plan.blocks_needed()].to_numpy())


def cost_interval(
    samples: pd.DataFrame, ratios: pd.DataFrame | None, key: CostKey, precision: tuple[int, float] | None = None
) -> Interval | None:
    """The binding's ratio to direct: paired over blocks (Stein's interval when the run stopped on precision),
    or unpaired (Welch) for a run without blocks; None when either side has no sample."""
    if has_blocks(samples):
        ratios = block_log_ratios(samples) if ratios is None else ratios
        series = log_ratios_of(ratios, key)
        if series.empty:
            return None
        return paired_interval(series, precision)
    df = _ok(samples)
    mine = _select(df, key)["value"]
    reference = _select(df[df["strategy"] == REFERENCE], key, with_strategy=False)["value"]
    if mine.empty or reference.empty:
        return None
    return welch_ratio_interval(mine, reference)


def reference_median(samples: pd.DataFrame, key: CostKey) -> float | None:
    df = _ok(samples)
    values = _select(df[df["strategy"] == REFERENCE], key, with_strategy=False)["value"]
    return float(values.median()) if len(values) else None


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
