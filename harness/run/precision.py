"""Runs that stop when the answer is decided: `--precision 10%` (or the scenario's `precision`).

The stopping rule is Stein's two-stage procedure, which keeps the stated coverage (stats.SteinPlan): a ratio's
first m blocks (its Stein pilot) give its spread s0 of per-block log ratios; that ratio needs
N = max(m, (t_{m-1} * s0 / d)^2) blocks for a half-width of d = log(1 + target), and its final interval uses s0
with m - 1 degrees of freedom over its own first N blocks.

m is chosen after the shared pilot (the scenario's `pilot_blocks`, every cell) from the spread of the run's ratios
together (stats.pooled_sd: the median pilot s), as the length that minimises Stein's expected total blocks at
that spread (stats.stein_pilot_length; issue 41 item 2): a 3-block Stein pilot's t(2) = 4.30 inflates N about
threefold at this machine's s of 0.10-0.13. With a time budget m is at most the blocks every open cell could
get in the time left (a longer Stein pilot would leave the cells scheduled last with none). m is one number for
the run, fixed before any ratio's blocks past the shared pilot exist; a ratio's own pilot enters it only as one of
the ~20-30 spreads under a median, and tests/test_stats.py checks the coverage by simulation (heterogeneous
spreads, heavy tails, skew).

After the shared pilot the allocation is adaptive (issue 41): a block holds only the cells that still have a ratio
short of its N (each beside its direct, as in every block), so each ratio stops at its own N instead of running
until the largest; a cell's ratio that its other direction keeps measuring is judged on its own first N blocks
only (harness/analysis/blocks.py `paired_interval`). A ratio stops early, with the reason in run.json, when its
path is one a tool makes erratic (harness/analysis/findings.py), when its N is beyond the cap, or when its
remaining blocks could not fit in the time left; a cell whose every pilot bed bypassed the mesh stops too (its
verdict is decided). Widths are not checked after every block for stopping: stopping on an observed width would
bias coverage low."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from rich.console import Console

from harness.analysis.blocks import block_log_ratios
from harness.analysis.stats import MIN_N, SteinPlan, pooled_sd, stein_pilot_length, stein_plan
from harness.pod.mesh import mode_of

MAX_BLOCKS = 1000  # the scenario's repetitions limit
KEY = ["strategy", "sidecar", "pod_mtu", "guest_mtu", "test", "direction", "metric"]


@dataclass
class RatioState:
    key: tuple
    plan: SteinPlan | None
    stein_pilot: int = 0
    """The blocks of this ratio's Stein pilot (the run's m); its plan is read once it has them."""
    blocks: int = 0
    half_width: float | None = None
    estimate: float | None = None
    stopped: str = ""
    """Why it stopped before its N (erratic path, cap, budget, bypass); '' while it may go on."""

    @property
    def need(self) -> int | None:
        """The blocks this ratio needs: its N once its Stein pilot is in, until then the pilot's length."""
        if self.plan is not None:
            return self.plan.blocks_needed()
        return self.stein_pilot or None

    @property
    def spread(self) -> str:
        """The spread its need comes from, for the reasons run.json gives."""
        if self.plan is not None:
            return f"Stein pilot s={self.plan.pilot_sd:.3f} over {self.plan.pilot_n} blocks"
        return f"its {self.stein_pilot}-block Stein pilot not in yet"

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
    bed_s: float = 0.0
    beds_done: int = 0
    stopped_by: str = ""
    shipped: dict[str, bool] = field(default_factory=dict)
    """Cell strategy (variant) -> its binding ships in the modelled KubeVirt release (or is the plain pod). Under a
    mesh, a ratio of a binding users cannot deploy decides no recommendation: it stops after the pilot, which gave
    its path verdict. Under no mesh the research designs go on (the seed's performance claims read them)."""
    closed_cells: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(strategy, sidecar, direction) -> why that path left the schedule after the pilot (every pilot bed bypassed
    the mesh)."""
    stein_pilot: int = 0
    """m: every ratio's Stein pilot length, fixed after the shared pilot from the ratios' pooled spread."""
    pooled_sd: float | None = None
    affordable_pilot: int | None = None
    """The most blocks every open cell could get in the time left after the shared pilot: m's upper bound."""
    pooled_pilot: bool = True
    """False: the Stein pilot is the shared pilot (the rule before issue 41, for benchmarks/decisiveness.py)."""

    def update(self, frame: pd.DataFrame, blocks_done: int, elapsed_s: float, beds_done: int = 0) -> None:
        ratios = block_log_ratios(frame)
        ratios = ratios[ratios["metric"] == ratios["test"].map(self.primary)]
        first = not self.ratios
        series_of = {
            # NaN (no MTU read) as None: NaN keys never compare equal from one update to the next
            tuple(None if pd.isna(k) else k for k in key): group.groupby("block")["log_ratio"].mean().sort_index()
            for key, group in ratios.groupby(KEY, dropna=False, sort=True)
        }
        self.beds_done = beds_done or self.beds_done
        self.bed_s = elapsed_s / self.beds_done if self.beds_done else self.bed_s
        if first:
            self.closed_cells = _bypassing_cells(frame)
            for key in series_of:
                self.ratios[key] = RatioState(key, None, stopped=_erratic(frame, key))
            self._choose_stein_pilot(series_of.values(), elapsed_s)
            for state in self.ratios.values():
                state.stein_pilot = self.stein_pilot
        for key, series in series_of.items():
            state = self.ratios.get(key)
            if state is None:
                # a ratio first seen after the shared pilot has no Stein pilot of its own: it is reported, not run
                state = self.ratios[key] = RatioState(key, None, 0)
            state.blocks = len(series)
            if state.plan is None and state.stein_pilot and state.blocks >= state.stein_pilot:
                state.plan = stein_plan(series[series.index <= state.stein_pilot].to_numpy(), self.target)
            plan = state.plan
            if plan is None and state.stein_pilot and state.blocks >= MIN_N["stein"]:
                # short of its Stein pilot so far: its blocks as a Stein pilot of that length, which is what the
                # page reads if the budget ends here (the length is the schedule's, never its values')
                plan = stein_plan(series.to_numpy(), self.target)
            if plan is not None and state.blocks:
                interval = plan.interval(series.iloc[: plan.blocks_needed()].to_numpy())
                state.half_width, state.estimate = interval.half_width(), interval.estimate
        self.blocks_done = blocks_done
        self.block_s = elapsed_s / max(blocks_done, 1)

    def _choose_stein_pilot(self, pilots, elapsed_s: float) -> None:
        """m from the shared pilot's spreads (each ratio's s over the pilot's blocks, pooled by their median): the
        length with the fewest expected blocks, but no longer than every open cell could get in the time left. A
        Stein pilot the budget cannot give every open ratio leaves the ones scheduled last with no plan at all:
        in a 10-minute run the fewest-blocks m of 12 (pooled s 0.17) let 6 of 10 open cells finish it, 7 of 28
        ratios decided (benchmarks/decisiveness.py)."""
        sds = [float(p.std(ddof=1)) for p in pilots if len(p) >= 2]
        df = max(self.pilot_blocks - 1, 1)
        self.pooled_sd = pooled_sd(sds, df) if len(sds) >= 3 else None
        if not self.pooled_pilot:
            self.stein_pilot = self.pilot_blocks
            return
        self.affordable_pilot = self._affordable_blocks(elapsed_s)
        self.stein_pilot = stein_pilot_length(
            self.pooled_sd, self.target, shortest=self.pilot_blocks, cap=min(MAX_BLOCKS, self.affordable_pilot)
        )

    def _affordable_blocks(self, elapsed_s: float) -> int:
        """The blocks each ratio can have if every cell with an open ratio gets the same number: the shared pilot's
        plus as many more blocks of all those cells as fit in the time left (no budget: the cap)."""
        if self.budget_s is None or not self.bed_s:
            return MAX_BLOCKS
        cells = {r.key[:4]: 1 for r in self.ratios.values() if not r.stopped and not self._closed(r)}
        per_block = _beds(cells) * self.bed_s
        more = int(max(self.budget_s - elapsed_s, 0) // per_block) if per_block else MAX_BLOCKS
        return self.pilot_blocks + more

    def needed(self) -> int:
        """The most blocks an open ratio needs, among those the cap allows: a ratio whose spread asks for more than
        MAX_BLOCKS cannot be decided by adding blocks and does not keep the run going (it is reported)."""
        needs = [r.need for r in self.ratios.values() if r.need is not None and not r.stopped]
        return max([n for n in needs if n <= MAX_BLOCKS], default=self.pilot_blocks)

    def _closed(self, r: RatioState) -> str:
        """Why a ratio gets no blocks after the pilot whatever its spread ('' when it may): its path bypassed the
        mesh in every pilot bed, or it is a binding users cannot deploy, measured under a mesh."""
        if (r.key[0], r.key[1], r.key[5]) in self.closed_cells:
            return self.closed_cells[(r.key[0], r.key[1], r.key[5])]
        if not self.shipped.get(r.key[0], True) and mode_of(r.key[1]) != "none":
            return (
                "decides nothing: not shipped in the modelled KubeVirt release, so its cost under a mesh "
                "changes no recommendation (the pilot gave its path verdict)"
            )
        return ""

    def open_ratios(self, elapsed_s: float) -> list[RatioState]:
        """The ratios that still get blocks: short of their N, not stopped. With a budget, the time left goes to the
        ratios closest to their N first (fewest remaining blocks; a cell's bed serves all its ratios, each with a
        direct beside it): a ratio that would not fit beside those stops here with that reason, instead of taking
        blocks it could never complete. The order depends on the pilot's N only, never on observed values."""
        left = None if self.budget_s is None else self.budget_s - elapsed_s
        out = []
        for r in self.ratios.values():
            if r.need is None or r.stopped or r.blocks >= r.need:
                continue
            r.stopped = self._closed(r)
            if not r.stopped and r.need > MAX_BLOCKS:
                r.stopped = f"spread: {r.spread} needs {r.need} blocks, above the {MAX_BLOCKS} cap"
            if not r.stopped:
                out.append(r)
        if left is None or not self.bed_s:
            return out
        kept: list[RatioState] = []
        cells: dict[tuple, int] = {}  # cell -> the most blocks a kept ratio of it still needs
        per_cell: dict[tuple, int] = {}
        for r in out:
            per_cell[r.key[:4]] = per_cell.get(r.key[:4], 0) + 1

        # fewest blocks to go first; at a tie, the bindings users can deploy (the research designs' costs only
        # feed the seed's claims), then cells whose one bed serves both open directions
        def order(r: RatioState) -> tuple:
            return (r.need - r.blocks, not self.shipped.get(r.key[0], True), -per_cell[r.key[:4]], r.name)

        for r in sorted(out, key=order):
            more = r.need - r.blocks
            trial = {**cells, r.key[:4]: max(cells.get(r.key[:4], 0), more)}
            if _beds(trial) * self.bed_s <= left:
                kept.append(r)
                cells = trial
                continue
            alone = more * 2 * self.bed_s
            r.stopped = (
                f"budget: needs {r.need} blocks ({r.spread}); {more} more would take "
                f"{alone:.0f} s"
                + (" even alone" if alone > left else " beside the ratios closer to their N")
                + f", {max(left, 0):.0f} s were left"
            )
        return kept

    def open_cells(self, elapsed_s: float, cells) -> frozenset[str]:
        """The labels of the plan's cells with an open ratio (`cells`: the plan's CellPlans)."""
        keys = {(r.key[0], r.key[1], r.key[2], r.key[3]) for r in self.open_ratios(elapsed_s)}
        return frozenset(c.label for c in cells if not c.is_reference and any(_matches(c, k) for k in keys))

    def wants_more(self, elapsed_s: float, plan=None) -> bool:
        """Another block when some ratio is open and the block (only the open cells' beds) fits in the budget."""
        if plan is None:  # every cell in every block (the schedule before issue 41)
            if self.blocks_done >= self.needed():
                return False
            if self.budget_s is not None and elapsed_s + self.block_s > self.budget_s:
                self.stopped_by = "budget"
                return False
            return True
        only = self.open_cells(elapsed_s, plan.cells)
        if not only:
            # the run ends; when the time left is what closed the last open ratios, the budget stopped it
            if any(r.stopped.startswith("budget") for r in self.ratios.values()):
                self.stopped_by = "budget"
            return False
        if self.budget_s is not None and elapsed_s + plan.beds_per_block(only) * self.bed_s > self.budget_s:
            self.stopped_by = "budget"
            return False
        return True

    def widest(self) -> float | None:
        widths = [r.half_width for r in self.ratios.values() if r.half_width is not None]
        return max(widths) if widths else None

    def progress_text(self) -> str:
        widest = self.widest()
        shown = f"+-{widest:.1%}" if widest is not None else "?"
        left = sum(1 for r in self.ratios.values() if r.need and not r.stopped and r.blocks < r.need)
        return (
            f"precision: {left} ratio(s) still short of their N, widest interval {shown} (target "
            f"+-{self.target:.0%}), block {self.blocks_done + 1}"
        )

    def outcome(self, state: RatioState) -> tuple[bool, str]:
        """(reached, why not)."""
        if state.plan is None:
            # the budget (or another ratio's stop) ended it inside its Stein pilot: the blocks it got are a Stein
            # pilot of that length, fixed by the schedule; its half-width is within the target or not
            if state.half_width is not None and state.half_width <= self.target + 1e-12:
                return True, ""
            if state.stopped:
                return False, state.stopped
            if self.stopped_by == "budget" and state.stein_pilot:
                return False, (
                    f"budget: {state.blocks} of its {state.stein_pilot}-block Stein pilot, the time budget allowed "
                    f"no more ({self.block_s:.0f} s a block)"
                )
            return False, "fewer than 3 pilot blocks with a successful sample and its direct (spread unknown)"
        need = state.plan.blocks_needed()
        if state.half_width is not None and state.half_width <= self.target + 1e-12:
            return True, ""
        if state.stopped:
            return False, state.stopped
        if need >= MAX_BLOCKS:
            return False, f"spread: {state.spread} needs {need} blocks, above the {MAX_BLOCKS} cap"
        if self.stopped_by == "budget":
            return False, (
                f"budget: needs {need} blocks ({state.spread}), the time budget allowed "
                f"{state.blocks} ({self.block_s:.0f} s a block)"
            )
        return False, f"has {state.blocks} of the {need} blocks it needs (failed samples in some blocks)"

    def record(self) -> dict:
        rows = []
        for state in self.ratios.values():
            reached, why = self.outcome(state)
            rows.append(
                {
                    "ratio": state.name,
                    "blocks": state.blocks,
                    "estimate": state.estimate,
                    "half_width": state.half_width,
                    "reached": reached,
                    "why": why,
                    "blocks_needed": state.plan.blocks_needed() if state.plan else None,
                    "pilot_sd": state.plan.pilot_sd if state.plan else None,
                }
            )
        return {
            "target": self.target,
            "pilot_blocks": self.pilot_blocks,
            "stein_pilot_blocks": self.stein_pilot,
            "affordable_blocks": self.affordable_pilot,
            "pooled_sd": self.pooled_sd,
            "blocks_run": self.blocks_done,
            "beds_run": self.beds_done,
            "bed_s": round(self.bed_s, 2),
            "block_s": round(self.block_s, 1),
            "blocks_needed": self.needed(),
            "stopped_by": self.stopped_by or "every open ratio reached its N",
            "schedule": "adaptive: after the pilot a block holds only cells with a ratio short of its own N",
            "method": f"Stein two-stage (each ratio's first {self.stein_pilot} blocks fix its n; final t interval "
            "with that pilot's s over the ratio's own first n blocks)"
            + (
                f"; the pilot length from the shared {self.pilot_blocks}-block pilot's median spread "
                f"{self.pooled_sd:.3f} (the length with the fewest expected blocks"
                + (
                    f", at most the {self.affordable_pilot} blocks every open cell could have in the time left)"
                    if self.affordable_pilot is not None and self.affordable_pilot < MAX_BLOCKS
                    else ")"
                )
                if self.pooled_sd is not None and self.pooled_pilot
                else ""
            ),
            "closed_paths": {f"{s}/{c} {d}": why for (s, c, d), why in self.closed_cells.items()},
            "ratios": rows,
        }


def _beds(cells: dict[tuple, int]) -> int:
    """Beds the cells (strategy, sidecar, pod MTU, guest MTU) -> blocks still take: each cell and a direct after it
    per block, and per block of a group (layout, pod MTU) the direct that opens it (plan.block: direct, X1, direct,
    X2, ..., direct)."""
    groups: dict[tuple, int] = {}
    for (_, sidecar, pod_mtu, _), more in cells.items():
        groups[(sidecar, pod_mtu)] = max(groups.get((sidecar, pod_mtu), 0), more)
    return 2 * sum(cells.values()) + sum(groups.values())


def _matches(cell, key: tuple) -> bool:
    """A plan's cell and a ratio's (strategy, sidecar, pod MTU, guest MTU): MTUs compared only where the cell
    sets them (rows carry the MTUs read back from the links)."""
    strategy, sidecar, pod_mtu, guest_mtu = key
    spec = cell.spec
    if spec.strategy != strategy or spec.layout != sidecar:
        return False
    if spec.pod_mtu and pd.notna(pod_mtu) and int(pod_mtu) != spec.pod_mtu:
        return False
    return not (isinstance(spec.guest_mtu, int) and pd.notna(guest_mtu) and int(guest_mtu) != spec.guest_mtu)


def _erratic(frame: pd.DataFrame, key: tuple) -> str:
    """A tool's known erratic behaviour on this ratio's path (harness/analysis/findings.py), as a stop reason."""
    from harness.analysis.findings import findings_for

    strategy, sidecar, _, _, test, direction, metric = key
    rows = frame[
        (frame.strategy == strategy)
        & (frame.sidecar == sidecar)
        & (frame.test == test)
        & (frame.direction == direction)
        & (frame.metric == metric)
    ]
    found = [f for f in findings_for(rows) if getattr(f, "erratic", False)]
    return f"erratic: {found[0].title}" if found else ""


def _bypassing_cells(frame: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """Paths (cell and direction) whose every successful pilot measurement bypassed the mesh: their verdict
    (disqualified under a mesh) is decided, more blocks would only refine the cost of a path users should not
    take."""
    ok = frame[(frame.status == "ok") & frame.path.notna() & (frame.test.fillna("") != "harness")]
    out = {}
    for (strategy, sidecar, direction), rows in ok.groupby(["strategy", "sidecar", "direction"]):
        if strategy != "direct" and (rows.path == "bypassed").all():
            out[(strategy, sidecar, direction)] = "bypasses the mesh in every pilot bed: its verdict is decided"
    return out


def print_precision(state: PrecisionState, console: Console) -> None:
    record = state.record()
    reached = [r for r in record["ratios"] if r["reached"]]
    missed = [r for r in record["ratios"] if not r["reached"]]
    console.print(
        f"precision +-{state.target:.0%} (Stein two-stage, 95%): {len(reached)} of {len(record['ratios'])} "
        f"ratios reached it in {state.blocks_done} blocks ({record['stopped_by']})"
    )
    causes: dict[str, list[dict]] = {}
    for r in missed:  # one line per cause; every ratio with its reason is in run.json and on the page
        causes.setdefault(r["why"].split(":", 1)[0] or "unknown", []).append(r)
    for cause, rows in causes.items():
        example = rows[0]["ratio"] + (f" and {len(rows) - 1} more" if len(rows) > 1 else "")
        console.print(f"  [yellow]not reached ({cause})[/]: {len(rows)} ratio(s), e.g. {example}")
