"""Rankings decided pairwise, never by chains of overlapping intervals.

Bindings are sorted by their estimate (ratio to direct; direct is 1) and cut into tiers. A cut between two
neighbours in that order is made only when every binding above it is significantly better than every binding
below it, so each `>` on the page holds for every pair it separates:
- a binding against direct: its own printed interval (the row beside the ranking) excludes 1;
- two bindings: a paired t-test on their per-block log differences (both were measured in the same blocks,
  each next to its direct), Holm-adjusted over all binding pairs of the line at family-wise 5%.
A binding whose own interval excludes 1 but which shares direct's tier (a neighbour is not separated from it
after Holm's adjustment) is marked, so the tier never silently says it equals direct: `*` when its difference from
direct also holds after Holm's adjustment over the line's bindings (a paired t against direct), `(*)` when only
its own 95% interval says so (with k bindings on a line, k x 5% of identical ones do by chance)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.analysis.blocks import block_log_ratios, has_blocks, paired_interval
from harness.analysis.stats import Interval, holm, paired_p, welch_ratio_interval
from harness.lab.vocabulary import Status

REFERENCE = "direct"
ALPHA = 0.05


@dataclass(frozen=True)
class Ranking:
    tiers: list[list[str]]
    marked: list[str] = field(default_factory=list)
    """Bindings in direct's tier whose own interval excludes 1."""
    adjusted: list[str] = field(default_factory=list)
    """Those of `marked` whose difference from direct survives Holm over the line's bindings."""
    better: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(a, b) -> True where the line claims a is better than b (every pair a `>` separates)."""

    def text(self) -> str:
        def mark(b: str) -> str:
            return "*" if b in self.adjusted else "(*)" if b in self.marked else ""

        return " > ".join(", ".join(b + mark(b) for b in tier) for tier in self.tiers)


def rank(
    intervals: dict[str, Interval], log_ratios: dict[str, pd.Series], *, higher_is_better: bool, alpha: float = ALPHA
) -> Ranking | None:
    """`intervals`: each binding's ratio to direct (direct itself absent); `log_ratios`: its per-block log
    ratios indexed by block. None with fewer than two bindings besides nothing to rank."""
    names = [REFERENCE, *[b for b in intervals if b != REFERENCE]]
    if len(names) < 2:
        return None
    sign = 1 if higher_is_better else -1
    estimate = {REFERENCE: 1.0, **{b: i.estimate for b, i in intervals.items()}}
    order = sorted(names, key=lambda b: -sign * np.log(estimate[b]) if estimate[b] > 0 else np.inf)

    # Which of each pair is significantly better (+1: first, -1: second, 0: undecided).
    decided: dict[tuple[str, str], int] = {}
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1 :] if REFERENCE not in (a, b)]
    raw = []
    for a, b in pairs:
        d = pd.concat(
            [log_ratios.get(a, pd.Series(dtype=float)), log_ratios.get(b, pd.Series(dtype=float))], axis=1, join="inner"
        ).dropna()
        diffs = (d.iloc[:, 0] - d.iloc[:, 1]).to_numpy() if not d.empty else np.array([])
        raw.append((paired_p(diffs), float(diffs.mean()) if diffs.size else 0.0))
    for (a, b), p_adj, (_, mean) in zip(pairs, holm([p for p, _ in raw]), raw, strict=True):
        decided[(a, b)] = int(np.sign(sign * mean)) if p_adj is not None and p_adj < alpha else 0
    for b, interval in intervals.items():
        verdict = sign * interval.excludes(1.0)  # +1: b better than direct
        decided[(b, REFERENCE)] = verdict
        decided[(REFERENCE, b)] = -verdict
    for (a, b), v in list(decided.items()):
        decided.setdefault((b, a), -v)

    def cut_valid(i: int) -> bool:
        return all(decided.get((u, v), 0) == 1 for u in order[: i + 1] for v in order[i + 1 :])

    tiers, current = [], [order[0]]
    for i in range(len(order) - 1):
        if cut_valid(i):
            tiers.append(current)
            current = []
        current.append(order[i + 1])
    tiers.append(current)
    claims = {}
    for t, tier in enumerate(tiers):
        for u in tier:
            for lower in tiers[t + 1 :]:
                for v in lower:
                    claims[(u, v)] = True
    direct_tier = next(t for t in tiers if REFERENCE in t)
    # `*` only where the difference from direct survives Holm over the line's bindings (unadjusted, a line of
    # identical bindings would carry a star in 17-35% of cases)
    against_direct = holm([paired_p(log_ratios[b].to_numpy()) if b in log_ratios else None for b in intervals])
    adjusted = dict(zip(intervals, against_direct, strict=True))
    marked = [b for b in direct_tier if b != REFERENCE and intervals[b].excludes(1.0) != 0]
    survive = [b for b in marked if adjusted.get(b) is not None and adjusted[b] < alpha]
    return Ranking(tiers, marked=marked, adjusted=survive, better=claims)


def costs_in(
    frame: pd.DataFrame, precision: tuple[int, float] | None = None
) -> tuple[dict[str, Interval], dict[str, pd.Series]]:
    """Every binding's ratio to direct and its per-block log ratios, from rows of ONE measure (one test,
    direction, metric, sidecar and sweep point); unpaired (Welch) intervals and no series without blocks."""
    intervals: dict[str, Interval] = {}
    series: dict[str, pd.Series] = {}
    ok = frame[(frame["status"] == Status.OK) & frame["value"].notna()]
    if ok.empty or REFERENCE not in set(ok["strategy"]):
        return intervals, series
    if has_blocks(frame):
        ratios = block_log_ratios(frame)
        for strategy, group in ratios.groupby("strategy", sort=False):
            s = group.groupby("block")["log_ratio"].mean()
            intervals[strategy] = paired_interval(s, precision)
            series[strategy] = s
        return intervals, series
    reference = ok[ok["strategy"] == REFERENCE]["value"]
    for strategy, group in ok[ok["strategy"] != REFERENCE].groupby("strategy", sort=False):
        intervals[strategy] = welch_ratio_interval(group["value"], reference)
    return intervals, series


def rank_frame(
    frame: pd.DataFrame, *, higher_is_better: bool, precision: tuple[int, float] | None = None
) -> Ranking | None:
    intervals, series = costs_in(frame, precision)
    return rank(intervals, series, higher_is_better=higher_is_better) if intervals else None
