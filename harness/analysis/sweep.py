"""Sweeps: what changes with the pod MTU, the guest MTU, the message size, the number of streams, and RR under
load. Tables with the swept value as columns, figures with it on the x axis (one line per binding in its fixed
colour, the median's exact 95% order-statistic interval as a band where n >= 6, failures marked), and for every
value the bindings in tiers decided pairwise (harness/analysis/ranking.py), so a noisy difference is never
called a win."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from harness.analysis.ranking import rank_frame
from harness.analysis.stats import median_interval
from harness.lab.vocabulary import Status
from harness.metrics.registry import headline, spec

PARAMETERS = {
    "pod_mtu": "pod MTU",
    "guest_mtu": "guest MTU",
    "message_bytes": "message bytes",
    "streams": "streams",
    "load": "load",
}
LOAD_ORDER = {"idle": 0, "same": 1, "reverse": 2}


def test_family(test: str) -> str:
    """A test's name without what a sweep or a load added: `rr_tcp_closed+load_same/1400B` -> `rr_tcp_closed`."""
    return re.sub(r"(\+load_\w+)?(/\w+)*$", "", test)


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    rows = df[df["metric"].isin(list(headline())) & (df["test"] != "harness")].copy()
    rows["family"] = rows["test"].map(test_family)
    # A guest MTU that follows the pod's (KubeVirt's default for tap bindings) is one value across a pod-MTU
    # sweep: `pod`; a fixed one keeps its number.
    if "guest_mtu" in rows and "pod_mtu" in rows:
        same = (rows["guest_mtu"] == rows["pod_mtu"]).fillna(False) & (rows["pod_mtu"].nunique() > 1)
        label = rows["guest_mtu"].map(lambda v: None if pd.isna(v) else str(int(v)))
        rows["guest_mtu"] = label.where(~same, "pod")
    if "load" in rows:  # idle rows of a load comparison: `load` is set for every RR row
        rows["load"] = rows["load"].where(rows["load"].notna(), None)
    return rows


def swept(df: pd.DataFrame) -> list[str]:
    """The parameters that take more than one value for one binding, sidecar and test family: a sweep's. (A value
    that differs only between bindings, as slirp's guest MTU of 65520 next to a tap's 1500, is not a sweep.)"""
    rows = _rows(df)
    found = []
    for parameter in PARAMETERS:
        if parameter in rows and not rows.empty:
            per_cell = rows.groupby(["family", "direction", "strategy", "sidecar"])[parameter].nunique(dropna=True)
            if (per_cell > 1).any():
                found.append(parameter)
    return found


@dataclass(frozen=True)
class SweepPanel:
    """One (test family, direction, metric, sidecar, fixed other parameters): a line per binding over `parameter`."""

    parameter: str
    family: str
    direction: str
    metric: str
    sidecar: str
    fixed: tuple[tuple[str, object], ...]
    frame: pd.DataFrame  # the panel's rows (ok and failed)

    @property
    def title(self) -> str:
        fixed = ", ".join(f"{PARAMETERS[k]} {v}" for k, v in self.fixed)
        title = f"{self.family} {self.direction} {self.metric}, sidecar {self.sidecar}"
        return title + (f" ({fixed})" if fixed else "")


def panels(df: pd.DataFrame, parameter: str) -> list[SweepPanel]:
    rows = _rows(df)
    others = [p for p in swept(df) if p != parameter and p in PARAMETERS]
    result = []
    keys = ["family", "direction", "metric", "sidecar"]
    for key, g in rows.groupby(keys, sort=False, dropna=False):
        if g[parameter].nunique(dropna=True) < 2:
            continue
        split = [o for o in others if g[o].nunique(dropna=True) > 1]
        if not split:
            result.append(SweepPanel(parameter, *key, (), g))
            continue
        # A row without a value of a fixed parameter (direct has no guest MTU) belongs to every panel.
        free = g[split].isna().any(axis=1)
        for fixed, part in g[~free].groupby(split, sort=True):
            fixed = fixed if isinstance(fixed, tuple) else (fixed,)
            named = tuple((o, _plain(v)) for o, v in zip(split, fixed, strict=True))
            result.append(SweepPanel(parameter, *key, named, pd.concat([part, g[free]])))
    return result


def _plain(value: object) -> object:
    return int(value) if isinstance(value, float) and value == int(value) else value


def values_of(panel: SweepPanel) -> list:
    values = panel.frame[panel.parameter].dropna().unique().tolist()
    key = (lambda v: LOAD_ORDER.get(v, 9)) if panel.parameter == "load" else (lambda v: v)
    return sorted((_plain(v) for v in values), key=key)


def series(panel: SweepPanel, order: list[str]) -> pd.DataFrame:
    """Per binding and value: median, CI, n, failed count and the first failure reason. Rows of a binding
    without a VM (direct) carry no guest MTU; for a guest-MTU sweep they are the same at every value."""
    out = []
    frame = panel.frame
    values = values_of(panel)
    for strategy in order:
        mine = frame[frame["strategy"] == strategy]
        if mine.empty:
            continue
        for value in values:
            at = mine[mine[panel.parameter] == value] if mine[panel.parameter].notna().any() else mine
            ok = at[at["status"] == Status.OK]["value"].dropna().to_numpy()
            failed = at[at["status"] != Status.OK]
            ci = median_interval(ok)
            out.append(
                {
                    "strategy": strategy,
                    "value": value,
                    "n": len(ok),
                    "median": float(pd.Series(ok).median()) if len(ok) else None,
                    "low": ci.low,
                    "high": ci.high,
                    "failed": len(failed),
                    "reason": failed["reason"].iloc[0] if len(failed) else "",
                }
            )
    return pd.DataFrame(out)


def table(df: pd.DataFrame, parameter: str, order: list[str]) -> pd.DataFrame:
    """Rows: test, direction, metric, sidecar, fixed parameters, binding; columns: the swept values (median
    [exact 95% interval of the median] when n >= 6, `failed` when no repetition succeeded)."""
    rows = []
    for panel in panels(df, parameter):
        data = series(panel, order)
        for strategy, g in data.groupby("strategy", sort=False):
            fixed = {PARAMETERS[k]: str(v) for k, v in panel.fixed}
            row = {
                "test": panel.family,
                "direction": panel.direction,
                "metric": panel.metric,
                "sidecar": panel.sidecar,
                **fixed,
                "binding": strategy,
            }
            for r in g.itertuples():
                row[f"{PARAMETERS[parameter]} {r.value}"] = _cell(r)
            rows.append(row)
    return pd.DataFrame(rows).fillna("")


def _cell(r) -> str:
    if r.median is None or r.median != r.median:
        return f"failed ({r.reason[:40]})" if r.failed else ""
    text = f"{r.median:.3g}"
    if r.low is not None:
        text += f" [{r.low:.3g}-{r.high:.3g}]"
    return text + (f" ({r.failed} failed)" if r.failed else "")


def winners(df: pd.DataFrame, parameter: str, order: list[str]) -> list[str]:
    """One line per panel and value: the bindings in tiers decided pairwise against direct and each other
    (ranking.rank_frame), each with its median; failed bindings named last."""
    lines = []
    for panel in panels(df, panel_parameter := parameter):
        higher = spec(panel.metric).higher_is_better
        data = series(panel, order)
        ranks = []
        for value in values_of(panel):
            at = panel.frame[(panel.frame[panel.parameter] == value) | panel.frame[panel.parameter].isna()]
            medians = {
                r.strategy: r.median for r in data[(data["value"] == value) & data["median"].notna()].itertuples()
            }
            ranking = rank_frame(at, higher_is_better=higher)
            if ranking is not None:
                text = " > ".join(
                    ", ".join(f"{b} {medians[b]:.3g}" for b in tier if b in medians) for tier in ranking.tiers
                )
            else:  # no direct at this value: medians only, nothing claimed
                text = "; ".join(f"{b} {m:.3g}" for b, m in medians.items()) + " (no direct: not ranked)"
            failed = data[(data["value"] == value) & data["median"].isna() & (data["failed"] > 0)]["strategy"].tolist()
            if failed:
                text += f"; failed: {', '.join(failed)}"
            ranks.append(f"{PARAMETERS[panel_parameter]} {value}: {text}")
        lines.append(f"{panel.title}: " + " | ".join(ranks))
    return lines
