"""The answer: for each mesh layout the run measured, which binding to use and what it costs against a plain pod.

One rule, applied to the run's own rows, in this order (each step keeps the bindings that pass it):
1. **Shipped**: the binding is in the modelled KubeVirt release, in core or as a plugin
   (harness/pod/kubevirt.py `shipping`). Research designs that never shipped are judged too and shown beside the
   answer, marked as such, but never recommended.
2. **Works both ways**: every protocol and direction the run measured succeeded in every attempt.
3. **Through the mesh both ways** (under a mesh): the mesh proxy's own counters carried every direction's bytes,
   and for a meshed client inside mTLS/HBONE. A bypass disqualifies: no mesh policy, telemetry or mTLS applies.
   Where the run measured live migrations (the migration kind), also: the release migrates it, and established
   connections survived a migration with the pod address kept (migration_section.migration_disqualifier).
4. **Best tier by cost**, decided pairwise with the page's own rankings (paired t on per-block log differences,
   Holm over the line's pairs, harness/analysis/ranking.py): a binding leaves the tier when another qualifying
   binding is decided better in a column of the stage. Stages in turn (costs.judged_stages()): TCP throughput
   both ways, then CPU per GB, then latency and connection rate; a later stage only separates what the earlier
   left tied. One binding left: the answer. Several: "undecided", with the blocks that would separate them.
5. None qualifies: said plainly, with the closest shipped binding (works but bypasses, then one way only).

The cost stated is the binding's ratio to `direct` under the same layout, with its interval (method, level, n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd
from scipy import stats

from harness.analysis.blocks import precision_plans
from harness.analysis.costs import (
    REFERENCE,
    CostColumn,
    cost_columns,
    cost_of,
    cost_test,
    istio_of,
    judged_costs,
    judged_stages,
    layout_title,
)
from harness.analysis.migration_section import migration_disqualifier
from harness.analysis.paths import Works, _clip, works
from harness.analysis.ranking import ALPHA, Ranking, costs_in, rank
from harness.analysis.stats import Interval
from harness.pod.bindings import binding_status, shipped_bindings, shipping, user_name
from harness.pod.kubevirt import Shipping
from harness.pod.mesh import mode_of

POWER = 0.8


class Answer(StrEnum):
    DECIDED = "decided"
    UNDECIDED = "undecided"
    NONE_QUALIFIES = "none qualifies"
    NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Candidate:
    """One binding under one layout, as the rule sees it."""

    binding: str
    base: str
    """The strategy it runs (a variant's base)."""
    name: str
    """The users' name (`passtBinding`, `slirp plugin`), with the variant when it is one."""
    shipping: Shipping | None
    """None when the run does not say which KubeVirt release it models."""
    works: Works
    costs: dict[str, Interval | None] = field(default_factory=dict)
    """Cost column heading -> ratio to direct."""
    migration: str = ""
    """Why its live migrations disqualify it (the run measured migrations): refused, or connections broke."""

    @property
    def shipped(self) -> bool:
        return self.shipping is None or self.shipping.shipped

    @property
    def disqualified_by(self) -> str:
        """Why the rule's steps 2-3 drop it ('' when it qualifies)."""
        w = self.works
        if not w.both_ways:
            return w.verdict + (f": {w.reason}" if w.reason else "")
        if w.bypassed:
            return f"{' and '.join(w.bypassed)} bypasses the mesh (its proxy's counters did not carry the bytes)"
        if w.plaintext:
            return f"{' and '.join(w.plaintext)} not inside mTLS/HBONE between the proxies"
        return self.migration

    def closeness(self) -> int:
        """For 'none qualifies': works but around the mesh, then one way only, then fails."""
        w = self.works
        return 0 if w.both_ways else 1 if w.verdict not in ("fails", "not measured") else 2


@dataclass(frozen=True)
class Recommendation:
    layout: str
    title: str
    where: str
    """The sweep point (`pod MTU 9000`) or ''."""
    answer: Answer
    chosen: tuple[str, ...]
    """The best tier's bindings (one when decided)."""
    line: str
    """The answer in one sentence (terminal, page, answer.md)."""
    details: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    stage: str = ""
    """The cost stage that decided it ('' when one binding qualified or none did)."""


def base_strategies(meta: dict) -> dict[str, str]:
    """A scenario variant's name -> the strategy it runs (`slirp-mtu1500` -> `slirp`)."""
    variants = ((meta or {}).get("scenario_parsed") or {}).get("variants") or {}
    return {name: str(v.get("strategy", name)) for name, v in variants.items() if isinstance(v, dict)}


def release_of(samples: pd.DataFrame) -> str | None:
    releases = [r for r in samples.get("kubevirt", pd.Series(dtype=object)).dropna().unique() if r]
    return str(releases[0]) if len(releases) == 1 else None


def binding_name(binding: str, base: str, release: str | None) -> str:
    name = user_name(release, base)
    return name if binding == base else f"{name} [{binding}]"


def _not_shipped(c: Candidate, release: str | None) -> str:
    if c.shipping is Shipping.RESEARCH:
        return "a research design, never shipped" + (f"; and {c.disqualified_by}" if c.disqualified_by else "")
    return f"not shipped in KubeVirt {release}" + (f" ({binding_status(release, c.base)})" if release else "")


def _compact(ci: Interval | None) -> str:
    if ci is None or not ci.n:
        return "no ok sample"
    if ci.has_interval:
        return f"{ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}]"
    return f"{ci.estimate:.2f} (n={ci.n}, no interval)"


def _cost_text(c: Candidate, columns: list[CostColumn]) -> str:
    """`TCP in 0.90 [0.79, 1.03], out 0.87 [0.82, 0.93] x a plain pod (t 95%, n=8)`: the method said once when the
    columns share it."""
    shown = [(col, c.costs[col.heading]) for col in columns if c.costs.get(col.heading) is not None]
    if not shown:
        return "no cost against a plain pod measured in this run"
    labels = {f"{ci.method} {ci.level:.0%}, n={ci.n}" for _, ci in shown if ci.has_interval}
    parts, family = [], ""
    for col, ci in shown:
        head, _, tail = col.heading.rpartition(" ")
        label = col.heading if head != family else tail
        family = head
        own = f" ({ci.method} {ci.level:.0%}, n={ci.n})" if len(labels) > 1 and ci.has_interval else ""
        parts.append(f"{label} {_compact(ci)}{own}")
    return ", ".join(parts) + " x a plain pod" + (f" ({labels.pop()})" if len(labels) == 1 else "")


def _rankings(
    samples: pd.DataFrame, layout: str, bindings: list[str], columns: list[CostColumn], precision
) -> dict[str, tuple[Ranking | None, dict[str, pd.Series]]]:
    """Per column, the ranking line over the qualifying bindings (ranking.rank, as the page's lines: Holm over
    these bindings' pairs, the family the question is about) and each binding's per-block log ratios."""
    out = {}
    for col in columns:
        frame = samples[
            (samples.sidecar == layout)
            & (samples.metric == col.metric)
            & (samples.direction == col.direction)
            & (samples.test == cost_test(samples, col.test))
            & samples.strategy.isin([REFERENCE, *bindings])
        ]
        intervals, series = costs_in(frame, precision)
        ranking = rank(intervals, series, higher_is_better=col.better == "higher") if intervals else None
        out[col.heading] = (ranking, series)
    return out


EQUIVALENCE = 0.10
"""Two bindings whose paired 90% interval of the ratio lies within +-10% are equivalent (two one-sided tests at
5%): cost cannot and need not separate them."""


def equivalent(a: pd.Series, b: pd.Series, margin: float = EQUIVALENCE) -> tuple[float, float] | None:
    """The paired 90% interval of a/b when it lies within +-margin (TOST at 5%), else None."""
    d = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(d) < 3:
        return None
    diffs = (d.iloc[:, 0] - d.iloc[:, 1]).to_numpy()
    h = float(stats.t.ppf(0.95, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs)))
    low, high = math.exp(diffs.mean() - h), math.exp(diffs.mean() + h)
    return (low, high) if 1 / (1 + margin) <= low and high <= 1 + margin else None


def blocks_to_separate(a: pd.Series, b: pd.Series, pairs: int) -> tuple[float, float, int, int | None] | None:
    """For two bindings' per-block log ratios: (observed difference as a ratio, its sd, blocks now, blocks a paired
    t-test would need to separate a difference that size with 80% power at Holm's first step over `pairs`)."""
    d = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(d) < 3:
        return None
    diffs = (d.iloc[:, 0] - d.iloc[:, 1]).to_numpy()
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if sd == 0 or abs(mean) < 1e-9:
        return math.exp(mean), sd, len(diffs), None
    z = stats.norm.ppf(1 - ALPHA / (2 * max(pairs, 1))) + stats.norm.ppf(POWER)
    return math.exp(mean), sd, len(diffs), max(len(diffs) + 1, math.ceil((z * sd / abs(mean)) ** 2))


def _score(c: Candidate, columns: list[CostColumn]) -> float:
    """The tier's order: mean log ratio over the stage's columns, signed so that higher is better."""
    logs = [
        math.log(c.costs[col.heading].estimate) * (1 if col.better == "higher" else -1)
        for col in columns
        if c.costs.get(col.heading) is not None and c.costs[col.heading].estimate > 0
    ]
    return sum(logs) / len(logs) if logs else -math.inf


def _what_would_decide(tier: list[Candidate], ranks: dict, columns: list[CostColumn], bed_s: float | None) -> str:
    """What separates the tier's leader (by estimate) from the others: for each other binding the cheapest column
    to separate it in, then the dearest of those (every other must leave the tier for one answer)."""
    leader = max(tier, key=lambda c: _score(c, columns))
    same = []
    for other in tier:
        if other is leader:
            continue
        found = [
            (col, equivalent(ranks[col.heading][1][leader.binding], ranks[col.heading][1][other.binding]))
            for col in columns
            if col.heading in ranks and {leader.binding, other.binding} <= set(ranks[col.heading][1])
        ]
        if found and all(interval is not None for _, interval in found):
            same.append(f"{other.name} ({', '.join(f'{col.heading} {lo:.2f}-{hi:.2f}' for col, (lo, hi) in found)})")
    if same and len(same) == len(tier) - 1:
        return (
            f"{leader.name} and {'; '.join(same)} are within +-{EQUIVALENCE:.0%} of each other (paired 90% "
            "intervals of the ratio, two one-sided tests): cost does not separate them; choose on features"
        )
    worst = None
    for other in tier:
        if other is leader:
            continue
        best = None
        for col in columns:
            _, series = ranks.get(col.heading, (None, {}))
            if leader.binding not in series or other.binding not in series:
                continue
            n_pairs = max(1, len(series) * (len(series) - 1) // 2)
            found = blocks_to_separate(series[leader.binding], series[other.binding], n_pairs)
            if found is None:
                continue
            need = found[3] if found[3] is not None else 10**9
            if best is None or need < best[0]:
                best = (need, col, other, *found)
        if best is not None and (worst is None or best[0] > worst[0]):
            worst = best
    if worst is None:
        return "fewer than 3 blocks with both measured: run more blocks (`--repetitions 6` or `--precision 10%`)"
    need, col, other, ratio, _, n, _ = worst
    diff = f"{leader.name} / {other.name} = {ratio:.2f} in {col.heading} over {n} blocks"
    # a block of only the tier's cells: each with a direct before it, and one after the last
    more = max(need - n, 0)
    seconds = more * (2 * len(tier) + 1) * (bed_s or 0)
    more_time = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    pace = (
        f", about {more_time} more at this run's {bed_s:.1f} s a bed with only these cells in the blocks"
        if bed_s
        else ""
    )
    return f"{diff}: about {need} blocks in all would separate a difference that size (80% power, paired t, Holm){pace}"


def recommend_layout(
    samples: pd.DataFrame,
    layout: str,
    bindings: list[str],
    meta: dict,
    where: str = "",
    table: pd.DataFrame | None = None,
) -> Recommendation:
    """The rule (module docstring) for one layout of one sweep point; its costs are the judged cost table's
    (costs.judged_costs, built from these rows when not given), the same numbers the page's tables print."""
    release = release_of(samples)
    bases = base_strategies(meta)
    precision = precision_plans(meta)
    if table is None:
        table = judged_costs(samples, meta, bindings, [layout])
    candidates = []
    for b in bindings:
        if b == REFERENCE:
            continue
        w = works(samples, b, layout)
        if w.verdict == "not measured":
            continue
        base = bases.get(b, b)
        costs = {col.heading: cost_of(table, where, layout, b, col) for col in cost_columns()}
        candidates.append(
            Candidate(
                b,
                base,
                binding_name(b, base, release),
                shipping(release, base) if release else None,
                w,
                costs,
                migration_disqualifier(samples, b, layout),
            )
        )
    title = layout_title(layout, istio_of(samples, layout))
    prefix = f"{title}" + (f" ({where})" if where else "")
    if not candidates:
        return Recommendation(layout, title, where, Answer.NOT_MEASURED, (), f"{prefix}: no binding was measured.")
    qualified = [c for c in candidates if c.shipped and not c.disqualified_by]
    research = [c for c in candidates if c.shipping is Shipping.RESEARCH and not c.disqualified_by]
    beside = (
        [
            f"Research designs that would qualify (never shipped in KubeVirt {release}): "
            + "; ".join(f"{c.name}: {_cost_text(c, judged_stages()[0][1])}" for c in research)
        ]
        if research
        else []
    )
    dropped = [
        f"{c.name}: {c.disqualified_by if c.shipped else _not_shipped(c, release)}"
        for c in candidates
        if c not in qualified and c not in research
    ]
    measured = {c.base for c in candidates}
    unmeasured = (
        [f"{user_name(release, b)} ({shipping(release, b)})" for b in shipped_bindings(release) if b not in measured]
        if release
        else []
    )
    details = [
        *beside,
        *([f"Disqualified: {'; '.join(dropped)}"] if dropped else []),
        *(
            [
                f"Shipped in KubeVirt {release} but not measured in this run: {', '.join(unmeasured)} (another "
                "scenario or guest measures it: `vmnetbench strategies`)"
            ]
            if unmeasured
            else []
        ),
    ]
    if not qualified:
        shipped = sorted([c for c in candidates if c.shipped], key=Candidate.closeness)
        closest = f" Closest: {shipped[0].name} ({_clip(shipped[0].disqualified_by, 80)})." if shipped else ""
        migrating = any(c.migration for c in candidates)
        line = (
            f"{prefix}: no shipped binding works both ways"
            + (" through the mesh" if mode_of(layout) != "none" else "")
            + (" and keeps its connections across a live migration" if migrating else "")
            + f".{closest}"
        )
        details = [
            *([f"Closest in full: {shipped[0].name}: {_cost_text(shipped[0], cost_columns()[:2])}"] if shipped else []),
            *details,
        ]
        return Recommendation(layout, title, where, Answer.NONE_QUALIFIES, (), line, tuple(details), tuple(candidates))
    tier, stage_name, undecided_stage = list(qualified), "", None
    bed_s = ((meta or {}).get("precision") or {}).get("bed_s")
    for name, columns in judged_stages():
        if len(tier) <= 1:
            break
        ranks = _rankings(samples, layout, [c.binding for c in qualified], columns, precision)
        beaten = {
            c.binding
            for c in tier
            for ranking, _ in ranks.values()
            if ranking is not None
            for other in tier
            if ranking.better.get((other.binding, c.binding))
        }
        survivors = [c for c in tier if c.binding not in beaten]
        if survivors and len(survivors) < len(tier):
            tier, stage_name = survivors, name
        if undecided_stage is None and len(tier) > 1 and any(r is not None for r, _ in ranks.values()):
            undecided_stage = (ranks, columns)
    if len(tier) == 1:
        c = tier[0]
        kind = f"{c.shipping} in KubeVirt {release}; " if c.shipping is not None and release else ""
        how = (
            f" ({kind}best by {stage_name}, pairwise)"
            if stage_name
            else f" ({kind}the only shipped binding that qualifies)"
        )
        cost = _cost_text(c, judged_stages()[0][1])
        cost = cost if cost.startswith("no cost") else f"it costs {cost}"
        line = f"{prefix}: use {c.name}{how}; {cost}."
        return Recommendation(
            layout, title, where, Answer.DECIDED, (c.binding,), line, tuple(details), tuple(candidates), stage_name
        )
    names = ", ".join(c.name for c in tier[:-1]) + f" or {tier[-1].name}"
    decide = (
        _what_would_decide(tier, *undecided_stage, bed_s)
        if undecided_stage
        else "the run measured no cost column to compare them on"
    )
    short = (
        "cost does not separate them (within +-10%): choose on features"
        if "choose on features" in decide
        else "not separated by the run's pairwise tests"
    )
    line = f"{prefix}: undecided between {names}: {short}."
    costs = [f"{c.name}: {_cost_text(c, judged_stages()[0][1])}" for c in tier]
    return Recommendation(
        layout,
        title,
        where,
        Answer.UNDECIDED,
        tuple(c.binding for c in tier),
        line,
        tuple([f"To decide: {decide}.", *costs, *details]),
        tuple(candidates),
        stage_name,
    )


def recommend(
    samples: pd.DataFrame, meta: dict, bindings: list[str], layouts: list[str], table: pd.DataFrame | None = None
) -> list[Recommendation]:
    """One recommendation per layout (and sweep point) the run measured, from the judged cost table."""
    from harness.analysis.results import sweep_points

    table = judged_costs(samples, meta, bindings, layouts) if table is None else table
    out = []
    for where, point in sweep_points(samples):
        for layout in layouts:
            if point[(point.sidecar == layout) & (point.strategy != REFERENCE)].empty:
                continue
            out.append(recommend_layout(point, layout, bindings, meta, where, table))
    return out


RULE_TEXT = (
    "The rule: among the bindings the modelled KubeVirt release ships (core or plugin), keep those that work "
    "both ways, and under a mesh through its proxy both ways (a bypass disqualifies); then the best tier by cost, "
    "decided pairwise (paired t on per-block log ratios, Holm, 5%): TCP throughput both ways, then CPU per GB, "
    "then latency. Costs are ratios to a plain pod under the same layout with their intervals."
)


def summary_record(recs: list[Recommendation]) -> list[dict]:
    """The recommendations as run.json stores them."""
    return [
        {
            "layout": r.layout,
            "title": r.title,
            "where": r.where,
            "answer": str(r.answer),
            "chosen": list(r.chosen),
            "line": r.line,
            "details": list(r.details),
        }
        for r in recs
    ]
