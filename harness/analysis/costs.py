"""What every cost table shares: a cost column (test, direction, metric), the ratio of a binding to `direct`
measured beside it (harness/analysis/blocks.py) and how a table cell prints it, and a mesh layout's heading."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from harness.analysis.blocks import CostKey, cost_interval
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


def layout_title(sidecar: str) -> str:
    """A mesh layout as its users name it (`Istio sidecar (REDIRECT), meshed client (mTLS)`)."""
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
    if mode not in MESHES or not MESHES[mode].meshed_clients:
        return mode
    client = f"meshed client ({MESHES[mode].client_tunnel})" if "+meshed" in sidecar else "outside client (plaintext)"
    return f"{mode}, {client}" + (", STRICT" if "+strict" in sidecar else "")


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
