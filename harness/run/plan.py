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
from typing import Literal

from rich.console import Console

from harness.guests.facts import guest_spec
from harness.guests.spec import GuestSpec
from harness.kinds import TestKind
from harness.lab.vocabulary import Direction, GuestKind
from harness.pod.istio import IstioSetup, istio_release
from harness.pod.mesh import Client, SidecarKind, layout_label, mesh_for
from harness.run.scenario import Scenario
from strategies import STRATEGIES, strategy_class
from strategies.base import Services, Strategy, StrategyOptions

REFERENCE = "direct"


# Set-up and teardown of one cell, measured on this 2-core machine (setup_time + teardown_time rows of an mtu.yaml
# run): a netns bed 0.15 s, with an Envoy sidecar 0.25 s; a QEMU guest's boot under TCG adds several seconds.
NETNS_CELL_S = 0.3
QEMU_CELL_S = 8.0
SIDECAR_S = 0.2


@dataclass(frozen=True)
class CellSpec:
    """One cell: a strategy (or variant) under a sidecar mode, at a sweep's pod and guest MTU (None: not swept)."""

    strategy: str
    sidecar: SidecarKind
    pod_mtu: int | None = None
    guest_mtu: int | Literal["pod"] | None = None
    client: Client = Client()
    """The peer: outside the mesh or meshed, and the pods' PeerAuthentication."""
    dns_capture: bool = True
    """Ambient's DNS capture (istio-cni's `ambient.dnsCapture`); other modes have none."""
    istio: IstioSetup | None = None
    """The Istio release and redirection backend of an Istio mode's cell; None for a mode that is not Istio."""

    def mesh_seconds(self) -> float:
        """About what the mesh adds to a bed's setup: the pod's proxy, and a meshed peer's."""
        proxies = (self.sidecar != SidecarKind.NONE) + self.client.meshed
        return SIDECAR_S * proxies

    @property
    def layout(self) -> str:
        """The mesh layout's label (the rows' `sidecar` column): mode and client kind."""
        backend = self.istio.backend if self.istio else None
        return layout_label(self.sidecar, self.client, dns_capture=self.dns_capture, backend=backend)

    @property
    def label(self) -> str:
        """Names the cell's files and progress line: `masquerade-none` or `masquerade-none-mtu1450-gpod`."""
        text = f"{self.strategy}-{self.layout}"
        text += f"-mtu{self.pod_mtu}" if self.pod_mtu else ""
        return text + (f"-g{self.guest_mtu}" if self.guest_mtu else "")


def cell_specs(scenario: Scenario) -> list[CellSpec]:
    """Every (strategy, sidecar, pod MTU, guest MTU) cell; a strategy without a VM has no guest MTU."""
    pod_mtus = scenario.sweep.pod_mtu or [None]
    cells = []
    for label in scenario.strategies:
        has_vm = STRATEGIES[scenario.strategy_of(label)].has_vm
        chosen = not scenario.sweep.guest_mtu_strategies or label in scenario.sweep.guest_mtu_strategies
        guest_mtus = (scenario.sweep.guest_mtu or [None]) if has_vm and chosen else [None]
        for sidecar in scenario.sidecars:
            istios = istio_setups(scenario, sidecar)
            for client in clients_of(scenario, sidecar):
                cells += [
                    CellSpec(label, sidecar, pod, guest, client, dns_capture_of(scenario), istio)
                    for istio in istios
                    for pod in pod_mtus
                    for guest in guest_mtus
                ]
    return cells


def istio_setups(scenario: Scenario, sidecar: SidecarKind) -> list[IstioSetup | None]:
    """One per redirection backend the scenario lists for an Istio mode; [None] for a mode that is not Istio."""
    if not mesh_for(sidecar).istio_component:
        return [None]
    return [IstioSetup(scenario.istio, backend, scenario.istio_dual_stack) for backend in scenario.istio_backends]


def dns_capture_of(scenario: Scenario) -> bool:
    """Ambient's DNS capture: the scenario's, else the modelled Istio release's chart default."""
    if scenario.dns_capture is not None:
        return scenario.dns_capture
    return istio_release(scenario.istio).ambient_dns_capture


def clients_of(scenario: Scenario, sidecar: SidecarKind) -> list[Client]:
    """The peers and PeerAuthentication modes a mesh mode is measured with (Istio's modes only have them)."""
    mesh = mesh_for(sidecar)
    if not mesh.meshed_clients:
        return [Client()]
    clients = [Client(peer, authn) for peer in scenario.peers for authn in scenario.peer_authentication]
    return clients if mesh.outside_clients else [c for c in clients if c.meshed]


def expanded_tests(scenario: Scenario) -> list[TestKind]:
    """The tests with the test-level sweeps applied: each test once per swept value it takes, and once per IP
    family of a dual-stack scenario."""
    tests: list[TestKind] = []
    for test in scenario.tests:  # a kind without an IPv6 run runs over IPv4 only (RunPlan.without_ipv6 says why)
        families = [f for f in scenario.ip_families if f == "ipv4" or not test.ipv6_missing]
        expanded = [test.for_family(family) for family in families]
        for parameter in ("message_bytes", "streams"):
            values = getattr(scenario.sweep, parameter)
            if values and parameter in test.sweep_fields:
                expanded = [t.swept(parameter, v) for t in expanded for v in values]
        tests.extend(expanded)
    return tests


def services_of(scenario: Scenario) -> Services:
    """The VM's service ports the tests use: strategies forward exactly these (slirp, passt, proxies)."""
    tcp: set[int] = set()
    udp: set[int] = set()
    for test in expanded_tests(scenario):
        test_tcp, test_udp = test.ports()
        tcp |= test_tcp
        udp |= test_udp
    return Services(tcp_ports=tuple(sorted(tcp)), udp_ports=tuple(sorted(udp)))


def blocks_planned(scenario: Scenario) -> int:
    """Blocks run before any precision target is looked at (the pilot when there is one)."""
    return max(scenario.repetitions, scenario.pilot_blocks) if scenario.precision else scenario.repetitions


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

    def ipv6_left_out(self) -> str | None:
        """Why this cell has no IPv6 run (None: it has one): the binding's IPv6 path or the mesh mode's IPv6 capture
        is not built here, or the client is meshed (the meshes' tunnels are IPv4 here)."""
        if reason := self.strategy_cls.ipv6_missing_on(self.guest.kind):
            return reason
        if "ipv6" not in mesh_for(self.spec.sidecar).ip_families:
            return "the mesh mode's IPv6 capture is not built here"
        if self.spec.client.meshed:
            return "a meshed client's mTLS/HBONE over IPv6 is not built here"
        return None

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
    ipv6: bool = False
    """The beds are dual stack (an IPv6 family in the scenario)."""
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
            blocks_planned(scenario),
            scenario.time_budget_minutes * 60 if scenario.time_budget_minutes else None,
            scenario.claims,
            tuple(scenario.strategies),
            scenario.keep_outputs,
            scenario.model_dump(mode="json", by_alias=True),
            "ipv6" in scenario.ip_families,
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

    def tests_of(self, cell: CellPlan) -> list[TestKind]:
        """The tests a cell runs: all of them, but the IPv6 ones only where the cell's IPv6 path is built."""
        return [t for t in self.tests if t.ip_family == "ipv4" or cell.ipv6_left_out() is None]

    def without_ipv6(self) -> dict[str, list[str]]:
        """The cells a dual-stack run measures over IPv4 only, by the reason (what of their IPv6 path is not built)."""
        if not self.settings.ipv6:
            return {}
        reasons: dict[str, list[str]] = {}
        for test in self.tests:
            if test.ip_family == "ipv4" and test.ipv6_missing:
                reasons.setdefault(test.ipv6_missing, []).append(test.label)
        for cell in self.cells:
            if (reason := cell.ipv6_left_out()) is not None:
                reasons.setdefault(reason, []).append(cell.label)
        return reasons

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
        slots: list[Slot] = []
        for cell in order:
            tests = [(t, d) for t in self.tests_of(cell) if not t.consumes_bed for d in t.directions]
            rng.shuffle(tests)
            # a test that leaves its bed unusable (a migration moves the VM away) gets a bed of its own
            beds = [tests] if tests else []
            beds += [[(t, d) for d in t.directions] for t in self.tests_of(cell) if t.consumes_bed]
            slots += [Slot(index, len(slots) + 1, cell, tuple(bed)) for bed in beds]
        return slots

    def beds_per_block(self, only: frozenset[str] | None = None) -> int:
        return len(self.block(1, random.Random(0), only))

    def block_seconds(self) -> float:
        """About how long one block takes: every bed's set-up and tests."""
        slots = self.block(1, random.Random(0))
        return sum(s.cell.bed_seconds() + sum(t.expected_seconds() for t, _ in s.tests) for s in slots)

    def estimated_seconds(self) -> float:
        """About how long the planned blocks take (the pilot's, with a precision target): what a time budget is
        checked against before anything is created."""
        return self.block_seconds() * self.settings.pilot_blocks

    def judged(self) -> list[tuple[CellPlan, TestKind, Direction]]:
        """The ratios a precision target applies to: every binding's primary metric per test and direction."""
        return [(c, t, d) for c in self.cells if not c.is_reference for t in self.tests_of(c) for d in t.directions]


def resolve(scenario: Scenario, guest: GuestSpec) -> RunPlan:
    """The scenario's cells with their strategy class, options (validated once, here) and guest."""
    cells = []
    for spec in cell_specs(scenario):
        cls = strategy_class(scenario.strategy_of(spec.strategy))
        cell_guest = guest.for_strategy(cls.has_vm)
        build = scenario.qemu_build_of(spec.strategy)
        if cell_guest.kind == GuestKind.QEMU and build != cell_guest.qemu.build:
            cell_guest = replace(cell_guest, qemu=cell_guest.qemu.model_copy(update={"build": build}))
        cells.append(CellPlan(spec, cls, scenario.options_for(spec.strategy), cell_guest))
    return RunPlan(
        RunSettings.of(scenario), guest, tuple(cells), tuple(expanded_tests(scenario)), services_of(scenario)
    )


def plan_run(scenario: Scenario, console: Console) -> RunPlan:
    """The run's plan with its guest decided (for QEMU: the image built, the acceleration probed)."""
    return resolve(scenario, guest_spec(scenario.guest, scenario.qemu, console))


def blocks(plan: RunPlan, rng: random.Random, count: int, start: int = 1) -> Iterator[list[Slot]]:
    for index in range(start, start + count):
        yield plan.block(index, rng)


def format_duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class Overrides:
    """What `vmnetbench run`'s options change in the scenario (None: the scenario's own value)."""

    guest: str | None = None
    runtime: str | None = None
    dns_capture: bool | None = None
    repetitions: int | None = None
    precision: float | None = None


def with_overrides(scenario: Scenario, overrides: Overrides) -> Scenario:
    """The scenario with the command line's values; ValueError, one sentence naming the option, for a bad one."""
    from harness.runtime.registry import RUNTIMES

    update: dict = {}
    if overrides.guest is not None:
        kinds = [str(k) for k in GuestKind]
        if overrides.guest not in kinds:
            raise ValueError(f"option --guest must be one of: {', '.join(kinds)} (got {overrides.guest!r})")
        update["guest"] = GuestKind(overrides.guest)
    if overrides.runtime is not None:
        if overrides.runtime not in RUNTIMES:
            raise ValueError(f"option --runtime must be one of: {', '.join(RUNTIMES)} (got {overrides.runtime!r})")
        update["runtime"] = overrides.runtime
    if overrides.repetitions is not None and not 1 <= overrides.repetitions <= 1000:
        raise ValueError(f"option --repetitions must be between 1 and 1000 (got {overrides.repetitions})")
    update |= {
        name: value
        for name in ("dns_capture", "repetitions", "precision")
        if (value := getattr(overrides, name)) is not None
    }
    changed = scenario.model_copy(update=update)
    if changed.precision and (REFERENCE not in changed.strategies or changed.design != "blocks"):
        raise ValueError(
            "option --precision judges each binding's ratio to the direct beside it: the scenario "
            "needs direct in its strategies and design: blocks"
        )
    return changed


def time_budget_problem(scenario: Scenario, budget_s: float, given: str) -> str:
    """Why the run cannot start within `budget_s` (its estimate, with the claims phase's share), or ''."""
    from harness.claims.verdicts import SEED_STRATEGIES, claims_seconds

    plan = resolve(scenario, GuestSpec(GuestKind(scenario.guest), scenario.qemu))  # no guest built or probed yet
    estimate = plan.estimated_seconds()
    if scenario.claims:  # the claims phase shares the budget (harness/claims/verdicts.py)
        estimate += claims_seconds([s for s in SEED_STRATEGIES if s in scenario.strategies], scenario.guest == "netns")
    if estimate <= budget_s:
        return ""
    return (
        f"the run would take about {format_duration(estimate)} ({len(plan.cells)} cells x {plan.tests_per_bed} "
        f"tests x {plan.settings.pilot_blocks} blocks), more than the time budget {given} "
        f"({format_duration(budget_s)}); drop sweep values, strategies or repetitions"
    )
