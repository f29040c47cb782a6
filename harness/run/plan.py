"""A run's resolved plan, built once from the scenario: every cell with its strategy class, validated options and
guest, the block schedule the runner walks, and the run's settings (RunSettings). Nothing downstream asks the
scenario again: the runner, the measurement and the stopping rule read the plan (tests/test_architecture.py).

The schedule is time-adjacent pairing (issue 25): noise here is local in time, so within every block each
reference group (sidecar, pod MTU) is measured as `direct, X1, direct, X2, ..., Xk, direct` with the X order
shuffled per block, and every X is judged against the two directs beside it (harness/analysis/blocks.py).
A scenario without `direct` (or `design: rounds`) keeps the earlier design: every cell once per round in a
shuffled order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from rich.console import Console

from harness.guests.facts import guest_spec
from harness.guests.spec import GuestSpec
from harness.kinds import TestKind
from harness.lab.vocabulary import Direction, GuestKind
from harness.run.scenario import NETNS_CELL_S, QEMU_CELL_S, CellSpec, Scenario
from strategies import strategy_class
from strategies.base import Services, Strategy, StrategyOptions

REFERENCE = "direct"


@dataclass(frozen=True)
class CellPlan:
    """One cell, resolved: what the runner needs to build its bed, set its strategy up and label its rows."""

    spec: CellSpec
    strategy_cls: type[Strategy]
    options: StrategyOptions
    guest: GuestSpec

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def has_vm(self) -> bool:
        return self.strategy_cls.has_vm

    @property
    def is_reference(self) -> bool:
        return self.spec.strategy == REFERENCE

    @property
    def group(self) -> tuple[str, int | None]:
        """The reference group: a binding is judged against the direct of its own mesh layout and pod MTU."""
        return self.spec.layout, self.spec.pod_mtu

    def strategy(self, services: Services) -> Strategy:
        return self.strategy_cls(self.options, services=services, sidecar=self.spec.sidecar)

    def bed_seconds(self) -> float:
        bed = QEMU_CELL_S if self.has_vm and self.guest.kind == GuestKind.QEMU else NETNS_CELL_S
        return bed + self.spec.mesh_seconds()


@dataclass(frozen=True)
class Slot:
    """One bed of one block: which cell, its position (adjacent slots are adjacent in time), its tests in order."""

    block: int
    slot: int
    cell: CellPlan
    tests: tuple[tuple[TestKind, Direction], ...]

    @property
    def label(self) -> str:
        return f"{self.cell.label}-b{self.block}s{self.slot}"


@dataclass(frozen=True)
class RunSettings:
    """Everything of the scenario the run reads besides its cells and tests, read once here (the runner, the
    measurement and the stopping rule never see the scenario model)."""

    name: str
    seed: int | None
    kubevirt: str
    runtime: str
    runtime_options: object
    """The scenario's options for its runtime (the runtime registry's `make` reads them)."""
    cpu_placement: str
    design: str
    precision: float | None
    pilot_blocks: int
    """Blocks run before a precision target is looked at (all of them without one)."""
    time_budget_s: float | None
    claims: bool
    strategies: tuple[str, ...]
    """The scenario's order of strategies and variants (tables list them so)."""
    keep_outputs: bool
    record: dict
    """The parsed scenario as run.json keeps it."""

    @classmethod
    def of(cls, scenario: Scenario) -> RunSettings:
        options = getattr(scenario, scenario.runtime, None)  # the runtime's own block (`docker:`), if it has one
        return cls(
            scenario.name,
            scenario.seed,
            str(scenario.kubevirt),
            scenario.runtime,
            options,
            scenario.cpu_placement,
            scenario.design,
            scenario.precision,
            scenario.blocks_planned(),
            scenario.time_budget_minutes * 60 if scenario.time_budget_minutes else None,
            scenario.claims,
            tuple(scenario.strategies),
            scenario.keep_outputs,
            scenario.model_dump(mode="json", by_alias=True),
        )


@dataclass(frozen=True)
class RunPlan:
    settings: RunSettings
    guest: GuestSpec
    cells: tuple[CellPlan, ...]
    tests: tuple[TestKind, ...]
    services: Services

    @property
    def paired(self) -> bool:
        """Blocks with direct beside every binding (the default whenever the scenario has direct)."""
        return self.settings.design == "blocks" and any(c.is_reference for c in self.cells)

    @property
    def tests_per_bed(self) -> int:
        return sum(len(t.directions) for t in self.tests)

    def block(self, index: int, rng: random.Random, only: frozenset[str] | None = None) -> list[Slot]:
        """Block `index`: the beds in the order they run. Each group's cells shuffled, with direct before, between
        and after them when paired; groups in a shuffled order; each bed's tests shuffled. `only`: the labels of the
        cells still measured (a precision run's later blocks); a group none of whose cells is left is skipped."""
        groups: dict[tuple, list[CellPlan]] = {}
        for cell in self.cells:
            if only is not None and not cell.is_reference and cell.label not in only:
                continue
            groups.setdefault(cell.group if self.paired else (), []).append(cell)
        if only is not None:
            groups = {k: v for k, v in groups.items() if any(not c.is_reference for c in v)}
        keys = list(groups)
        rng.shuffle(keys)
        order: list[CellPlan] = []
        for key in keys:
            members = groups[key]
            reference = next((c for c in members if c.is_reference), None) if self.paired else None
            others = [c for c in members if c is not reference]
            rng.shuffle(others)
            if reference is None:
                order += others
                continue
            order.append(reference)
            for cell in others:
                order += [cell, reference]
        slots = []
        for position, cell in enumerate(order, 1):
            tests = [(t, d) for t in self.tests for d in t.directions]
            rng.shuffle(tests)
            slots.append(Slot(index, position, cell, tuple(tests)))
        return slots

    def beds_per_block(self, only: frozenset[str] | None = None) -> int:
        return len(self.block(1, random.Random(0), only))

    def block_seconds(self) -> float:
        """About how long one block takes: every bed's set-up and tests."""
        per_bed = sum(t.expected_seconds() * len(t.directions) for t in self.tests)
        return sum(s.cell.bed_seconds() + per_bed for s in self.block(1, random.Random(0)))

    def estimated_seconds(self) -> float:
        """About how long the planned blocks take (the pilot's, with a precision target): what a time budget is
        checked against before anything is created."""
        return self.block_seconds() * self.settings.pilot_blocks

    def judged(self) -> list[tuple[CellPlan, TestKind, Direction]]:
        """The ratios a precision target applies to: every binding's primary metric per test and direction."""
        return [(c, t, d) for c in self.cells if not c.is_reference for t in self.tests for d in t.directions]


def resolve(scenario: Scenario, guest: GuestSpec) -> RunPlan:
    """The scenario's cells with their strategy class, options (validated once, here) and guest."""
    cells = []
    for spec in scenario.cells():
        cls = strategy_class(scenario.strategy_of(spec.strategy))
        cell_guest = guest.for_strategy(cls.has_vm)
        build = scenario.qemu_build_of(spec.strategy)
        if cell_guest.kind == GuestKind.QEMU and build != cell_guest.qemu.build:
            cell_guest = replace(cell_guest, qemu=cell_guest.qemu.model_copy(update={"build": build}))
        cells.append(CellPlan(spec, cls, scenario.options_for(spec.strategy), cell_guest))
    return RunPlan(RunSettings.of(scenario), guest, tuple(cells), tuple(scenario.expanded_tests()), scenario.services())


def plan_run(scenario: Scenario, console: Console) -> RunPlan:
    """The run's plan with its guest decided (for QEMU: the image built, the acceleration probed)."""
    return resolve(scenario, guest_spec(scenario.guest, scenario.qemu, console))


def blocks(plan: RunPlan, rng: random.Random, count: int, start: int = 1) -> Iterator[list[Slot]]:
    for index in range(start, start + count):
        yield plan.block(index, rng)
