"""What every cost table shares: a cost column (test, direction, metric), the ratio of a binding to `direct`
measured beside it (harness/analysis/blocks.py) and how a table cell prints it, a mesh layout's heading, and the
judged cost table (`judged_costs`): every (sweep point, layout, binding, column) with its ratio, interval, method,
n and caveat, built once per page; the decision page's tables and the recommendation read it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from harness.analysis.blocks import CostKey, block_log_ratios, cost_interval, has_blocks, precision_plans
from harness.analysis.results import sweep_points
from harness.analysis.stats import MIN_N, Interval
from harness.metrics.registry import METRICS, STAGES, DecisionColumn, spec
from harness.pod.mesh import MESHES, mode_of

REFERENCE = "direct"


@dataclass(frozen=True)
class CostColumn:
    heading: str
    test: str  # a test label prefix: tcp_throughput, rr_tcp_closed, crr, ...
    direction: str
    metric: str

    @property
    def better(self) -> str:
        return str(spec(self.metric).better)


def _declared() -> list[tuple[CostColumn, DecisionColumn]]:
    return [(CostColumn(d.heading, d.test, d.direction, m.name), d) for m in METRICS.values() for d in m.decision]


def cost_columns() -> list[CostColumn]:
    """The cost columns of every decision-page table, as the metrics declare them (harness/metrics/registry.py),
    read when a page is built: a metric added to the registry is a column without touching this module."""
    return [c for c, _ in _declared()]


def ranked_columns() -> list[CostColumn]:
    """The columns ranked per layout on the page (throughput and connection rate)."""
    return [c for c, d in _declared() if d.ranked]


def judged_stages() -> list[tuple[str, list[CostColumn]]]:
    """The recommendation's cost criteria in turn (STAGES): a later stage only separates what the earlier left
    tied."""
    return [(stage, [c for c, d in _declared() if d.stage == stage]) for stage in STAGES]


def istio_of(samples: pd.DataFrame, layout: str) -> str:
    """`Istio 1.30, nftables`: the Istio release and backend a layout's rows were measured with ('' for a layout that
    is not Istio's, or rows from before releases were recorded)."""
    if "istio" not in samples:
        return ""
    rows = samples[(samples.sidecar == layout) & (samples.istio.fillna("") != "")]
    if rows.empty:
        return ""
    dual = rows.istio_dual_stack.iat[0] if "istio_dual_stack" in rows else None
    ipv4_only = dual is not None and not pd.isna(dual) and not bool(dual)
    return f"Istio {rows.istio.iat[0]}, {rows.istio_backend.iat[0]}" + (", IPv4 capture only" if ipv4_only else "")


def layout_title(sidecar: str, istio: str = "") -> str:
    """A mesh layout as its users name it (`Istio sidecar (REDIRECT), meshed client (mTLS)`), with the Istio
    release and backend (`istio_of`) when given: `Istio sidecar (REDIRECT), outside client [Istio 1.30, nftables]`."""
    return _title(sidecar) + (f" [{istio}]" if istio else ", nftables backend" if "+nftables" in sidecar else "")


def _title(sidecar: str) -> str:
    mode = mode_of(sidecar)
    title = MESHES[mode].title if mode in MESHES and MESHES[mode].title else mode
    if mode in MESHES and MESHES[mode].meshed_clients:
        title += f", meshed client ({MESHES[mode].client_tunnel})" if "+meshed" in sidecar else ", outside client"
    return (
        title
        + (", STRICT" if "+strict" in sidecar else "")
        + (", DNS capture off" if "+no-dns-capture" in sidecar else "")
    )


def layout_heading(sidecar: str) -> str:
    """A mesh layout as a column heading: the mode and, where the mode has meshed clients, the client kind and
    what its traffic crosses (`envoy-redirect, meshed client (mTLS)`)."""
    mode = mode_of(sidecar)
    nft = ", nftables" if "+nftables" in sidecar else ""
    if mode not in MESHES or not MESHES[mode].meshed_clients:
        return mode + nft
    client = f"meshed client ({MESHES[mode].client_tunnel})" if "+meshed" in sidecar else "outside client (plaintext)"
    return f"{mode}, {client}" + (", STRICT" if "+strict" in sidecar else "") + nft


def cost_test(samples: pd.DataFrame, family: str) -> str:
    """The test label a cost column reads: the family itself (`rr_tcp_closed`, never its `+load_*` runs), or
    when a sweep renamed it, its first swept value (`rr_tcp_closed/64B`, `tcp_throughput/P1`); the other
    values are in the page's sweep sections."""
    labels = samples.test.dropna().unique()
    if family in labels:
        return family
    swept = [t for t in labels if re.fullmatch(re.escape(family) + r"/\w+", t)]
    return min(swept, key=lambda t: int(re.sub(r"\D", "", t) or 0)) if swept else family


def cost_key(samples: pd.DataFrame, strategy: str, sidecar: str, col: CostColumn) -> CostKey:
    return CostKey(strategy, sidecar, cost_test(samples, col.test), col.direction, col.metric)


def ratio_to_direct(
    samples: pd.DataFrame,
    strategy: str,
    sidecar: str,
    col: CostColumn,
    precision: tuple[int, float] | None = None,
    ratios: pd.DataFrame | None = None,
) -> Interval | None:
    return cost_interval(samples, ratios, cost_key(samples, strategy, sidecar, col), precision)


def format_ratio(ci: Interval | None) -> str:
    """A table cell: the ratio, its interval with (method level n), or below the method's n the samples."""
    if ci is None or not ci.n:
        return "no ok sample"
    if ci.has_interval:
        return f"{ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}] ({ci.method} {ci.level:.0%} n={ci.n})"
    shown = ", ".join(f"{v:.2f}" for v in sorted(ci.values))
    return f"{ci.estimate:.2f} (n={ci.n} < {MIN_N[ci.method]}, no interval" + (f": {shown})" if shown else ")")


def caveats(df: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(strategy, sidecar) -> why its rows do not stand for the real system (the first caveat its rows carry)."""
    if "caveat" not in df:
        return {}
    marked = df[df["caveat"].fillna("") != ""]
    return {(r.strategy, r.sidecar): r.caveat for r in marked.drop_duplicates(["strategy", "sidecar"]).itertuples()}


def sidecar_rank(sidecar: str) -> int:
    """none first, then the sidecar kinds in their declared order; within a mode the outside client, then the
    meshed one, each permissive before strict."""
    kinds = list(MESHES)
    mode = mode_of(sidecar)
    within = 2 * ("+meshed" in str(sidecar)) + ("+strict" in str(sidecar))
    return 4 * (kinds.index(mode) if mode in kinds else len(kinds)) + within


def judged_metrics(meta: dict) -> set[str]:
    """The metrics a precision run's stopping rule judged (its blocks were chosen for them): only their intervals
    are Stein's; every other metric of the run keeps the t interval."""
    return {r["ratio"].rsplit(" ", 1)[-1] for r in ((meta or {}).get("precision") or {}).get("ratios", [])}


COST_TABLE_COLUMNS = ["where", "layout", "binding", "heading", "test", "direction", "metric", "interval",
                      "estimate", "low", "high", "method", "level", "n", "caveat"]  # fmt: skip


def judged_costs(samples: pd.DataFrame, meta: dict, bindings: list[str], layouts: list[str]) -> pd.DataFrame:
    """The judged cost table: one row per (sweep point `where`, layout, binding, cost column) the run measured,
    with the binding's ratio to the direct beside it (`interval`, an Interval or None, and its parts flattened for
    reading), computed once from that point's own blocks (a swept run never pools its points), Stein's interval
    for the metrics a precision run judged, and the caveat of rows that do not stand for the real binding."""
    stein, judged = precision_plans(meta), judged_metrics(meta)
    rows = []
    for where, point in sweep_points(samples):
        ratios = block_log_ratios(point) if has_blocks(point) else None
        marked = caveats(point)
        for layout in layouts:
            for col in cost_columns():
                if _column_rows(point, layout, col).empty:
                    continue
                for binding in bindings:
                    if binding == REFERENCE:
                        continue
                    ci = ratio_to_direct(point, binding, layout, col, stein if col.metric in judged else None, ratios)
                    rows.append({"where": where, "layout": layout, "binding": binding, "heading": col.heading,
                                 "test": col.test, "direction": col.direction, "metric": col.metric, "interval": ci,
                                 "estimate": ci.estimate if ci else None, "low": ci.low if ci else None,
                                 "high": ci.high if ci else None, "method": ci.method if ci else "",
                                 "level": ci.level if ci else None, "n": ci.n if ci else 0,
                                 "caveat": marked.get((binding, layout), "")})  # fmt: skip
    return pd.DataFrame(rows, columns=COST_TABLE_COLUMNS)


def cost_of(table: pd.DataFrame, where: str, layout: str, binding: str, col: CostColumn) -> Interval | None:
    """One cell of the judged cost table (None: not measured)."""
    hit = table[
        (table["where"] == where)
        & (table.layout == layout)
        & (table.binding == binding)
        & (table.heading == col.heading)
        & (table.metric == col.metric)
    ]
    return None if hit.empty else hit["interval"].iat[0]


def measured_columns(table: pd.DataFrame, where: str, layout: str) -> list[CostColumn]:
    """The cost columns the run measured at one point and layout, in the registry's order."""
    mine = table[(table["where"] == where) & (table.layout == layout)]
    present = set(zip(mine.heading, mine.metric, strict=True))
    return [c for c in cost_columns() if (c.heading, c.metric) in present]


def _column_rows(samples: pd.DataFrame, sidecar: str, col: CostColumn) -> pd.DataFrame:
    """Every binding's rows of one cost column under one layout."""
    return samples[
        (samples.sidecar == sidecar)
        & (samples.metric == col.metric)
        & (samples.direction == col.direction)
        & (samples.test == cost_test(samples, col.test))
    ]
