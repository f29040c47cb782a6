"""The table a run ends with: strategy x direction, the run's lead metric (median with min-max, ratio to direct),
and setup cost."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from harness.analysis.blocks import CostKey, cost_interval, has_blocks
from harness.analysis.costs import caveats, cost_test, sidecar_rank
from harness.analysis.findings import findings_for
from harness.lab.vocabulary import Status, TrafficPath
from harness.metrics.registry import METRICS, spec


def lead_metric(df: pd.DataFrame) -> str | None:
    """The metric the run's closing table shows: the first a test kind emits (not a cost every test gets) that the
    registry declares for the decision page, else the first headline one, that the rows hold (TCP throughput
    when the run measured it)."""
    present = set(df["metric"].dropna()) if "metric" in df else set()
    for wanted in (lambda m: bool(m.decision), lambda m: m.headline):
        for name, metric in METRICS.items():
            if wanted(metric) and name in present and metric.family not in ("cost", "harness"):
                return name
    return None


def throughput_summary(df: pd.DataFrame, metric: str = "throughput") -> pd.DataFrame:
    """One row per (strategy, sidecar, direction): median/min/max of `metric` over ok samples, ok/failed counts,
    and the most common failure reason."""
    tput = df[df["metric"] == metric]
    rows = []
    for (strategy, sidecar, direction), group in tput.groupby(["strategy", "sidecar", "direction"], sort=False):
        ok = group[group["status"] == Status.OK]["value"]
        failed = group[group["status"] != Status.OK]
        rows.append(
            {
                "strategy": strategy,
                "sidecar": sidecar,
                "direction": direction,
                "median": ok.median() if len(ok) else None,
                "min": ok.min() if len(ok) else None,
                "max": ok.max() if len(ok) else None,
                "ok": len(ok),
                "failed": len(failed),
                "reason": failed["reason"].mode().iat[0] if len(failed) else "",
            }
        )
    return pd.DataFrame(rows)


def binding_rank(strategy_order: list[str] | None) -> dict[str, int]:
    """direct first (the reference every ratio is to), then the scenario's order."""
    order = list(strategy_order or [])
    order = (["direct"] if "direct" in order else []) + [s for s in order if s != "direct"]
    return {name: i for i, name in enumerate(order)}


def print_summary(df: pd.DataFrame, console: Console, strategy_order: list[str] | None = None) -> None:
    """The lead metric (TCP throughput when measured) per binding and sidecar, with its ratio to `direct` under
    the same sidecar; failures as numbered notes under the table, so the table fits 100 columns. A dual-stack
    run gets one table per IP family (each binding judged against direct's same family)."""
    families = [f for f in ("ipv4", "ipv6") if "ip_family" in df and (df.ip_family == f).any()]
    if len(families) > 1:
        for family in families:
            _print_summary(df[df.ip_family == family], console, strategy_order, f" [{family}]")
        return
    _print_summary(df, console, strategy_order)


def _print_summary(df: pd.DataFrame, console: Console, strategy_order: list[str] | None, title: str = "") -> None:
    metric = lead_metric(df)
    summary = throughput_summary(df, metric) if metric else pd.DataFrame()
    if summary.empty:
        console.print("no samples of a metric the registry declares for the decision page or as a headline")
        return
    lead = spec(metric)
    directions = list(dict.fromkeys(summary["direction"]))
    paired = has_blocks(df)
    how = (
        "x direct = exp(mean per-block log ratio) to the direct beside it, t 95% interval from 3 blocks"
        if paired
        else "x direct = ratio of medians (no blocks: unpaired)"
    )
    table = Table(title=f"{lead.label}{title}, {lead.unit}: median (min-max); {how}, same sidecar")
    table.add_column("binding", overflow="fold")
    table.add_column("sidecar", overflow="fold")
    for d in directions:
        table.add_column(d, justify="right", overflow="fold")
        table.add_column("x direct", justify="right")
    table.add_column("setup s", justify="right")
    setup = df[df["metric"] == "setup_time"].groupby(["strategy", "sidecar"])["value"].median()
    boot = df[df["metric"] == "boot_time"].groupby(["strategy", "sidecar"])["value"].median()
    if not boot.empty:
        table.add_column("boot s", justify="right")
    rank = binding_rank(strategy_order)
    summary = summary.assign(
        _rank=summary["strategy"].map(lambda s: rank.get(s, len(rank))), _side=summary["sidecar"].map(sidecar_rank)
    )
    summary = summary.sort_values(["_rank", "_side"], kind="stable")
    reference = summary[summary.strategy == "direct"].set_index(["sidecar", "direction"])["median"]
    notes: list[str] = []
    marks: set[str] = set()
    for (strategy, sidecar), group in summary.groupby(["strategy", "sidecar"], sort=False):
        cells = []
        for d in directions:
            row = group[group["direction"] == d]
            if row.empty:
                cells += ["-", ""]
                continue
            r = row.iloc[0]
            text = f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})" if r["ok"] else "failed"
            if r["failed"]:
                notes.append(f"{strategy}/{sidecar} {d}: {r['failed']} failed: {r['reason']}")
                text += f" [red]({len(notes)})[/]"
            ref = reference.get((sidecar, d))
            ratio = f"{r['median'] / ref:.2f}" if r["ok"] and ref and ref == ref else "-"
            if paired and r["ok"] and strategy != "direct":
                family_test = lead.decision[0].test if lead.decision else lead.family
                key = CostKey(strategy, sidecar, cost_test(df, family_test), d, metric)
                interval = cost_interval(df[df["test"] == key.test], None, key)
                ratio = _compact(interval) if interval is not None else "-"
            for finding in findings_for(
                df[(df.strategy == strategy) & (df.sidecar == sidecar) & (df.metric == metric) & (df.direction == d)]
            ):
                # a tool's known behaviour explains this number: marked as answer.md marks it
                if finding.text not in notes:
                    notes.append(finding.text)
                text += f" [yellow]‡ ({notes.index(finding.text) + 1})[/]"
                marks.add("‡")
            cells += [text, ratio]
        extra = [f"{boot.get((strategy, sidecar), float('nan')):.1f}"] if not boot.empty else []
        caveat = caveats(df).get((strategy, sidecar))
        label = strategy
        if caveat:
            notes.append(f"{strategy}/{sidecar}: {caveat}")
            label = f"{strategy} [yellow]† ({len(notes)})[/]"
            marks.add("†")
        table.add_row(label, sidecar, *cells, f"{setup.get((strategy, sidecar), float('nan')):.2f}", *extra)
    console.print(table)
    for i, note in enumerate(notes, 1):
        console.print(f"  ({i}) {note}", overflow="fold")
    legend = {
        "†": "the rows do not stand for the real binding (its note says why)",
        "‡": "a tool's known behaviour explains the number (its note, as in answer.md)",
    }
    for mark in sorted(marks):
        console.print(f"  {mark} {legend[mark]}")


def _compact(interval) -> str:
    if interval.has_interval:
        return f"{interval.estimate:.2f} [{interval.low:.2f}-{interval.high:.2f}] n={interval.n}"
    return f"{interval.estimate:.2f} (n={interval.n})"


def path_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """strategy x sidecar x direction: the path the bytes took (most frequent over repetitions), how many
    repetitions agreed, the median Gbit/s of the ok ones and the most common failure reason."""
    tput = df[(df["metric"] == "throughput") & (df["sidecar"] != "none")]
    rows = []
    for (strategy, sidecar, direction), g in tput.groupby(["strategy", "sidecar", "direction"], sort=False):
        paths = g["path"].fillna("failed")
        ok = g[g["status"] == Status.OK]["value"]
        failed = g[g["status"] != Status.OK]
        rows.append(
            {
                "strategy": strategy,
                "sidecar": sidecar,
                "direction": direction,
                "path": paths.mode().iat[0],
                "agree": f"{(paths == paths.mode().iat[0]).sum()}/{len(paths)}",
                "median": ok.median() if len(ok) else None,
                "reason": failed["reason"].mode().iat[0] if len(failed) else "",
            }
        )
    return pd.DataFrame(rows)


PATH_STYLE = {
    TrafficPath.THROUGH_MESH: "green",
    TrafficPath.BYPASSED: "yellow",
    TrafficPath.FAILED: "red",
    TrafficPath.NO_EVIDENCE: "red",
}


def print_path_matrix(df: pd.DataFrame, console: Console, strategy_order: list[str] | None = None) -> None:
    matrix = path_matrix(df)
    if matrix.empty:
        return
    columns = list(dict.fromkeys(zip(matrix["sidecar"], matrix["direction"], strict=True)))
    table = Table(
        title="Mesh traversal: path (repetitions agreeing) median Gbit/s, from the mesh proxy's own "
        "counters (the sidecar, or the node proxy in ambient)"
    )
    table.add_column("binding", overflow="fold")
    for sidecar, direction in columns:
        table.add_column(f"{sidecar}\n{direction}", overflow="fold")
    order = binding_rank(strategy_order)
    for strategy in sorted(dict.fromkeys(matrix["strategy"]), key=lambda s: order.get(s, len(order))):
        cells = []
        for sidecar, direction in columns:
            row = matrix[(matrix.strategy == strategy) & (matrix.sidecar == sidecar) & (matrix.direction == direction)]
            if row.empty:
                cells.append("-")
                continue
            r = row.iloc[0]
            style = PATH_STYLE.get(r["path"], "white")
            text = f"[{style}]{r['path']}[/] ({r['agree']})"
            text += f"\n{r['median']:.2f}" if r["median"] == r["median"] and r["median"] is not None else ""
            if r["reason"]:
                text += f"\n{r['reason']}"
            cells.append(text)
        table.add_row(strategy, *cells)
    console.print(table)


def latency_percentiles(latency: pd.DataFrame) -> pd.DataFrame:
    """Percentiles per strategy x sidecar x test x direction from *all* samples of all repetitions merged."""
    rows = []
    for key, g in latency.groupby(["strategy", "sidecar", "test", "direction"], sort=False):
        values = g["rtt_us"].to_numpy()
        p = np.percentile(values, [50, 90, 99, 99.9])
        rows.append(
            dict(
                zip(["strategy", "sidecar", "test", "direction"], key, strict=True),
                p50=p[0],
                p90=p[1],
                p99=p[2],
                p999=p[3],
                max=values.max(),
                samples=len(values),
            )
        )
    return pd.DataFrame(rows)


def print_latency_summary(df: pd.DataFrame, latency: pd.DataFrame | None, console: Console, order=None) -> None:
    if latency is not None and not latency.empty:
        table = Table(title="Latency, microseconds, all repetitions merged (open loop: from the scheduled send)")
        for col in ("strategy", "sidecar", "test", "direction", "p50", "p90", "p99", "p99.9", "max", "samples"):
            right = col[0] in "pms" and col not in ("strategy", "sidecar")
            table.add_column(col, justify="right" if right else "left", overflow="fold")
        rank = binding_rank(order)
        lat = latency_percentiles(latency)
        lat = lat.assign(_r=lat["strategy"].map(lambda s: rank.get(s, len(rank))), _s=lat["sidecar"].map(sidecar_rank))
        lat = lat.sort_values(["_r", "_s", "test"], kind="stable")
        for r in lat.itertuples():
            table.add_row(
                r.strategy,
                r.sidecar,
                r.test,
                r.direction,
                f"{r.p50:.0f}",
                f"{r.p90:.0f}",
                f"{r.p99:.0f}",
                f"{r.p999:.0f}",
                f"{r.max:.0f}",
                str(r.samples),
            )
        console.print(table)
    headline = df[
        df["metric"].isin(
            [
                "crr_rate",
                "rr_rate",
                "udp_goodput",
                "udp_loss",
                "cpu_per_gb",
                "cpu_per_10k_req",
                "userspace_bytes_per_byte",
            ]
        )
    ]
    failed = df[(df["status"] != Status.OK) & (df["metric"] != "throughput") & (df["test"] != "harness")]
    if headline.empty and failed.empty:
        return
    table = Table(title="Rates, UDP loss and CPU cost: median over repetitions (failed: reason)")
    for col in ("strategy", "sidecar", "test", "direction", "metric", "median", "unit"):
        table.add_column(col, overflow="fold")
    keys = ["strategy", "sidecar", "test", "direction", "metric", "unit"]
    grouped = headline[headline["status"] == Status.OK].groupby(keys, sort=False)["value"].median()
    for (strategy, sidecar, test, direction, metric, unit), value in grouped.items():
        table.add_row(strategy, sidecar, test, direction, metric, f"{value:.3g}", unit)
    for r in failed.drop_duplicates(["strategy", "sidecar", "test", "direction"]).itertuples():
        table.add_row(r.strategy, r.sidecar, r.test, r.direction, "[red]failed[/]", str(r.reason), "")
    console.print(table)


def print_sweep_summary(df: pd.DataFrame, console: Console, order: list[str] | None = None) -> bool:
    """For a sweep run, one table per swept parameter (the values as columns) instead of the per-binding
    summaries, which would merge the swept values; False when the run swept nothing."""
    from harness.analysis import sweep

    parameters = sweep.swept(df)
    bindings = list(binding_rank(order)) or list(dict.fromkeys(df["strategy"]))
    for parameter in parameters:
        frame = sweep.table(df, parameter, bindings)
        if frame.empty:
            continue
        table = Table(title=f"Against the {sweep.PARAMETERS[parameter]}: median [95% CI when n >= 3]")
        for col in frame.columns:
            table.add_column(str(col), overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(*["" if v is None or v != v else str(v) for v in row])
        console.print(table)
    return bool(parameters)
