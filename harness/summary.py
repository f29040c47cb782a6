"""The table a run ends with: strategy x direction, median Gbit/s with min-max, and setup cost."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table


def throughput_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy, sidecar, direction): median/min/max Gbit/s over ok samples, ok/failed counts,
    and the most common failure reason."""
    tput = df[df["metric"] == "throughput"]
    rows = []
    for (strategy, sidecar, direction), group in tput.groupby(["strategy", "sidecar", "direction"], sort=False):
        ok = group[group["status"] == "ok"]["value"]
        failed = group[group["status"] != "ok"]
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


def print_summary(df: pd.DataFrame, console: Console, strategy_order: list[str] | None = None) -> None:
    summary = throughput_summary(df)
    if summary.empty:
        console.print("no throughput samples")
        return
    directions = list(dict.fromkeys(summary["direction"]))
    table = Table(title="TCP throughput, Gbit/s: median (min-max) over repetitions")
    table.add_column("strategy")
    table.add_column("sidecar")
    for d in directions:
        table.add_column(d, justify="right")
    table.add_column("setup s (median)", justify="right")
    setup = df[df["metric"] == "setup_time"].groupby(["strategy", "sidecar"])["value"].median()
    order = {name: i for i, name in enumerate(strategy_order or [])}
    rank = summary["strategy"].map(lambda s: order.get(s, len(order)))
    summary = summary.assign(_rank=rank).sort_values("_rank", kind="stable")
    for (strategy, sidecar), group in summary.groupby(["strategy", "sidecar"], sort=False):
        cells = []
        for d in directions:
            row = group[group["direction"] == d]
            if row.empty:
                cells.append("-")
                continue
            r = row.iloc[0]
            text = f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})" if r["ok"] else "failed"
            if r["failed"]:
                text += f" [red]{r['failed']} failed: {r['reason']}[/]"
            cells.append(text)
        table.add_row(strategy, sidecar, *cells, f"{setup.get((strategy, sidecar), float('nan')):.3f}")
    console.print(table)
