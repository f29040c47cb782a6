"""Runs that stop when the answer is decided: `--precision 10%` (or the scenario's `precision`).

The stopping rule is Stein's two-stage procedure, which keeps the stated coverage (stats.SteinPlan): the pilot's
blocks give each judged ratio's spread s0 of per-block log ratios; that ratio needs N = max(n0, (t * s0 / d)^2)
blocks for a half-width of d = log(1 + target); the run adds blocks until the largest N is reached or the time
budget ends. The final interval of each ratio uses s0 with n0 - 1 degrees of freedom over all its blocks, so
its half-width is within the target once it has its N blocks, and its 95% holds however many blocks the budget
allowed (the number of blocks depends on the pilot only, never on the later blocks' values). Widths are not
checked after every block for stopping: stopping on an observed width would bias coverage low."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from rich.console import Console

from harness.analysis.blocks import block_log_ratios
from harness.analysis.stats import SteinPlan, stein_plan

MAX_BLOCKS = 1000  # the scenario's repetitions limit
KEY = ["strategy", "sidecar", "pod_mtu", "guest_mtu", "test", "direction", "metric"]


@dataclass
class RatioState:
    key: tuple
    plan: SteinPlan | None
    blocks: int = 0
    half_width: float | None = None
    estimate: float | None = None

    @property
    def name(self) -> str:
        strategy, sidecar, _, guest_mtu, test, direction, metric = self.key
        extra = f" guest MTU {int(guest_mtu)}" if pd.notna(guest_mtu) else ""
        return f"{strategy}/{sidecar}{extra} {test} {direction} {metric}"


@dataclass
class PrecisionState:
    target: float
    pilot_blocks: int
    budget_s: float | None
    primary: dict[str, str]
    """test label -> the metric judged for it (the test kind's primary metric)."""
    ratios: dict[tuple, RatioState] = field(default_factory=dict)
    blocks_done: int = 0
    block_s: float = 0.0
    stopped_by: str = ""

    def update(self, frame: pd.DataFrame, blocks_done: int, elapsed_s: float) -> None:
        ratios = block_log_ratios(frame)
        ratios = ratios[ratios["metric"] == ratios["test"].map(self.primary)]
        first = not self.ratios
        for key, group in ratios.groupby(KEY, dropna=False, sort=True):
            series = group.groupby("block")["log_ratio"].mean()
            state = self.ratios.get(key)
            if state is None:
                plan = stein_plan(series[series.index <= self.pilot_blocks].to_numpy(), self.target) if first else None
                state = self.ratios[key] = RatioState(key, plan)
            state.blocks = len(series)
            if state.plan is not None and state.blocks:
                interval = state.plan.interval(series.to_numpy())
                state.half_width, state.estimate = interval.half_width(), interval.estimate
        self.blocks_done = blocks_done
        self.block_s = elapsed_s / max(blocks_done, 1)

    def needed(self) -> int:
        """The most blocks a ratio needs, among those the cap allows: a ratio whose spread asks for more than
        MAX_BLOCKS cannot be decided by adding blocks and does not keep the run going (it is reported)."""
        needs = [r.plan.blocks_needed() for r in self.ratios.values() if r.plan is not None]
        return max([n for n in needs if n <= MAX_BLOCKS], default=self.pilot_blocks)

    def wants_more(self, elapsed_s: float) -> bool:
        if self.blocks_done >= self.needed():
            return False
        if self.budget_s is not None and elapsed_s + self.block_s > self.budget_s:
            self.stopped_by = "budget"
            return False
        return True

    def widest(self) -> float | None:
        widths = [r.half_width for r in self.ratios.values() if r.half_width is not None]
        return max(widths) if widths else None

    def progress_text(self) -> str:
        widest = self.widest()
        shown = f"+-{widest:.1%}" if widest is not None else "?"
        return (f"precision: widest interval {shown} (target +-{self.target:.0%}), block {self.blocks_done + 1} "
                f"of {self.needed()} needed")  # fmt: skip

    def outcome(self, state: RatioState) -> tuple[bool, str]:
        """(reached, why not)."""
        if state.plan is None:
            return False, "fewer than 3 pilot blocks with a successful sample and its direct (spread unknown)"
        need = state.plan.blocks_needed()
        if state.half_width is not None and state.half_width <= self.target + 1e-12:
            return True, ""
        if need >= MAX_BLOCKS:
            return False, f"spread: pilot s={state.plan.pilot_sd:.3f} needs {need} blocks, above the {MAX_BLOCKS} cap"
        if self.stopped_by == "budget":
            return False, (f"budget: needs {need} blocks (pilot s={state.plan.pilot_sd:.3f}), the time budget allowed "
                           f"{state.blocks} ({self.block_s:.0f} s a block)")  # fmt: skip
        return False, f"has {state.blocks} of the {need} blocks it needs (failed samples in some blocks)"

    def record(self) -> dict:
        rows = []
        for state in self.ratios.values():
            reached, why = self.outcome(state)
            rows.append({"ratio": state.name, "blocks": state.blocks, "estimate": state.estimate,
                         "half_width": state.half_width, "reached": reached, "why": why,
                         "blocks_needed": state.plan.blocks_needed() if state.plan else None,
                         "pilot_sd": state.plan.pilot_sd if state.plan else None})  # fmt: skip
        return {"target": self.target, "pilot_blocks": self.pilot_blocks, "blocks_run": self.blocks_done,
                "blocks_needed": self.needed(), "stopped_by": self.stopped_by or "target reached",
                "method": "Stein two-stage (pilot fixes n; final t interval with the pilot's s)",
                "ratios": rows}  # fmt: skip


def print_precision(state: PrecisionState, console: Console) -> None:
    record = state.record()
    reached = [r for r in record["ratios"] if r["reached"]]
    missed = [r for r in record["ratios"] if not r["reached"]]
    console.print(f"precision +-{state.target:.0%} (Stein two-stage, 95%): {len(reached)} of {len(record['ratios'])} "
                  f"ratios reached it in {state.blocks_done} blocks ({record['stopped_by']})")  # fmt: skip
    for r in missed:
        width = f"+-{r['half_width']:.1%}" if r["half_width"] is not None else "no interval"
        console.print(f"  [yellow]not reached[/] {r['ratio']}: {width}; {r['why']}")
