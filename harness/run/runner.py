"""Runs a scenario's resolved plan (harness/run/plan.py): block after block, each bed fresh and torn down
whatever happens; with a precision target, blocks are added until every judged ratio is decided
(harness/run/precision.py) or the time budget ends."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.analysis.provenance import busy_host_warnings, cell_tools, git_sha, host_facts, machine_load, tool_versions
from harness.analysis.results import ResultsWriteError, RunWriter, Sample
from harness.analysis.summary import print_latency_summary, print_path_matrix, print_summary, print_sweep_summary
from harness.guests.attachment import Attachment
from harness.guests.choice import driver_for
from harness.guests.driver import GuestDriver, NotSupported
from harness.guests.facts import nic_mtu, qemu_facts
from harness.kinds.endpoints import is_tool_failure
from harness.kinds.measure import Cell, failed_row, run_test
from harness.kinds.migration import MigrationTarget
from harness.kinds.outcome import HARNESS_ERROR
from harness.lab.atomic import write_json, write_text
from harness.lab.bed import AddressPlan, TestBed
from harness.lab.names import new_run_id, resource_name
from harness.lab.session import LabSession
from harness.lab.signals import should_defer
from harness.lab.vocabulary import GuestKind, Status
from harness.pod.bindings import binding_status, pod_annotations, shipping
from harness.pod.istio import DEFAULT_ISTIO
from harness.pod.mesh import install_sidecar
from harness.pod.sidecars import Sidecar
from harness.run.plan import RunPlan, RunSettings, Slot, format_duration, plan_run
from harness.run.plants import plant
from harness.run.precision import PrecisionState, print_precision
from harness.runtime.registry import pod_runtime

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like KeyboardInterrupt so every bed is torn down on the way out. A subclass of it
    on purpose: pyroute2 0.9 runs its netlink calls on an asyncio loop in this thread, and asyncio re-raises only
    KeyboardInterrupt and SystemExit from a callback and logs and swallows any other BaseException (seen in
    tests/test_faults.py: a SIGTERM was lost and the run went on to complete with exit 0; reproduced with a bare
    asyncio loop)."""


class PendingSignal:
    """The signal a run received, kept after the handler raised: CPython drops an exception raised inside an
    at-fork callback ("Exception ignored in: <function _releaseLock>", seen when SIGTERM landed during one of
    pyroute2's forks), so the runner also checks here between steps and a signal is never lost, at worst
    delayed to the next step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def check(self) -> None:
        if self.signum is not None:
            raise _exception_for(self.signum)


def _exception_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(signal.Signals(signum).name)


@contextmanager
def signals_unwind() -> Iterator[PendingSignal]:
    """SIGINT and SIGTERM raise in the harness, so every bed is torn down on the way out.

    pyroute2 runs short-lived forked helpers for namespace work; a signal landing in one of those must end
    that helper only, never unwind the parent's copied stack there (which would tear down the live bed).
    """
    owner = os.getpid()
    pending = PendingSignal()

    def handler(signum, frame):
        if os.getpid() != owner:
            os._exit(128 + signum)
        pending.signum = signum
        if should_defer(signum):  # a namespace being made or removed: re-delivered when that step ends
            return
        raise _exception_for(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pending
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    harness_errors: int = 0
    """Rows that failed because of the harness (a measurement's exception, an incomplete teardown) or of a tool
    (it printed no JSON, or JSON of another shape), not because of the path."""


def run_scenario(
    scenario: Any,
    scenario_text: str,
    scenario_path: str,
    *,
    results_root: Path,
    run_id: str | None = None,
    console: Console | None = None,
    time_budget_s: float | None = None,
    write_page: bool = True,
) -> RunOutcome:
    """Run `scenario` (the parsed scenario model; only plan_run reads it): its plan is resolved once, and
    everything after reads the plan. `write_page`: end with the answer and report.html (False: a gate's run, a
    test; `vmnetbench report` writes it later)."""
    console = console or Console()
    run_id = run_id or new_run_id()
    writer = RunWriter(results_root, run_id)
    # Until run.json exists an interruption (SIGINT or SIGTERM, the handlers installed from here) leaves nothing:
    # an empty folder would only block the id's reuse.
    try:
        with signals_unwind():
            plan = plan_run(scenario, console)
            settings, guest = plan.settings, plan.guest
            if time_budget_s is None:
                time_budget_s = settings.time_budget_s
            seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**32)
            writer.start(
                {
                    "scenario_name": settings.name,
                    "scenario_path": scenario_path,
                    "scenario": scenario_text,
                    "scenario_parsed": settings.record,
                    "shuffle_seed": seed,
                    "design": "blocks" if plan.paired else "rounds",
                    "host": host_facts(),
                    "tools": tool_versions(),
                    "load": {"start": machine_load(run_id)},
                    "git_sha": git_sha(),
                    "harness_pid": os.getpid(),
                    "kubevirt": settings.kubevirt,
                    "ipv6_left_out": plan.without_ipv6(),
                    "guest": {"kind": str(guest.kind), **(qemu_facts(guest) if guest.kind == GuestKind.QEMU else {})},
                }
            )
    except BaseException:
        writer.discard_unstarted()
        raise
    rng = random.Random(seed)
    status = "interrupted"
    claims_reserve_s = 0.0
    if settings.claims and time_budget_s is not None:  # the budget is the whole job's: keep the claims' share
        from harness.claims.verdicts import claims_seconds

        claims_reserve_s = claims_seconds(seed_strategies_in(plan), guest.kind == GuestKind.NETNS)
    blocks_budget_s = None if time_budget_s is None else max(time_budget_s - claims_reserve_s, 0.0)
    pilot = settings.pilot_blocks
    design = (
        f"blocks of {plan.beds_per_block()} beds (direct beside every binding)"
        if plan.paired
        else f"rounds of {len(plan.cells)} cells"
    )
    console.print(
        f"run [bold]{run_id}[/] scenario {settings.name}: {len(plan.cells)} cells x {plan.tests_per_bed} "
        f"tests, {pilot} {design}, about {format_duration(pilot * plan.block_seconds())}"
        + (f", then blocks until every ratio is within +-{settings.precision:.0%}" if settings.precision else "")
    )
    for reason, labels in plan.without_ipv6().items():
        console.print(f"IPv6 left out for {', '.join(labels)}: {reason}")
    precision: PrecisionState | None = None
    claims_info: dict | None = None
    cells: CellRunner | None = None
    with LabSession(run_id, log_dir=writer.log_dir, results_dir=writer.dir) as lab:
        if settings.cpu_placement == "split":
            peer = resource_name(run_id, "peer")
            lab.tracker.cpus_for = lambda netns: "0" if netns == peer else "1"
        try:
            # handlers first: a signal while the runtime is prepared (an image built, an engine asked) unwinds too
            with signals_unwind() as pending:
                lab.lease(settings.runtime)  # before the runtime first asks its engine
                lab.pod_runtime = pod_runtime(settings, with_qemu=guest.kind == GuestKind.QEMU, console=console)
                with _progress(console) as progress:
                    steps = Steps(
                        progress,
                        progress.add_task("starting", total=pilot * plan.beds_per_block() * plan.tests_per_bed),
                        pending,
                    )
                    cells = CellRunner(plan, writer, lab, steps)
                    started = time.monotonic()
                    for index in range(1, pilot + 1):
                        cells.run_block(plan.block(index, rng))
                    if settings.precision and plan.paired:
                        # the schedule before issue 41 (every cell until the largest N, Stein's pilot = the shared
                        # pilot), for benchmarks/decisiveness.py
                        every_cell = os.environ.get("VMNB_SCHEDULE") == "every-cell"
                        precision = PrecisionState(
                            settings.precision,
                            pilot,
                            blocks_budget_s,
                            {t.label: t.primary_metric for t in plan.tests},
                            shipped={
                                c.spec.strategy: shipping(settings.kubevirt, c.strategy_cls.name).runnable
                                for c in plan.cells
                            },
                            pooled_pilot=not every_cell,
                        )
                        beds = pilot * plan.beds_per_block()
                        precision.update(writer.frame(), index, time.monotonic() - started, beds)
                        while precision.wants_more(time.monotonic() - started, None if every_cell else plan):
                            index += 1
                            only = None if every_cell else precision.open_cells(time.monotonic() - started, plan.cells)
                            block = plan.block(index, rng, only)
                            steps.grow(len(block) * plan.tests_per_bed, precision.progress_text())
                            cells.run_block(block)
                            beds += len(block)
                            precision.update(writer.frame(), index, time.monotonic() - started, beds)
                    pending.check()
                    if settings.claims:
                        claims_info = run_claims_phase(plan, lab, writer, guest, console)
                    pending.check()
            status = "complete"
        finally:
            lab.close()
            extra = {"precision": precision.record()} if precision else {}
            if claims_info is not None:
                extra["claims"] = claims_info
            if cells is not None and cells.seconds:
                extra["bed_seconds"] = {k: round(v, 1) for k, v in cells.seconds.items()}
            try:
                writer.finish(status, load={**writer.meta["load"], "end": machine_load(run_id)}, **extra)
            except ResultsWriteError as e:  # a full or read-only results disk: one sentence, never a traceback
                writer.record_failure(str(e))
                raise
            if status == "complete":
                order = list(settings.strategies)
                if not print_sweep_summary(writer.frame(), console, order):
                    print_summary(writer.frame(), console, order)
                    print_path_matrix(writer.frame(), console, order)
                    print_latency_summary(writer.frame(), writer.latency_frame(), console, order)
                if precision:
                    print_precision(precision, console)
                for warning in busy_host_warnings(writer.meta):
                    console.print(f"[yellow]busy host: {warning}[/]")
            console.print(f"results: {writer.dir}")
            if status == "complete" and write_page and not os.environ.get("VMNB_NO_REPORT"):  # gate --against's runs
                print_answer(writer.dir, console)
    frame = writer.frame()
    reasons = frame.reason.fillna("")
    harness_errors = int((reasons.str.startswith(HARNESS_ERROR) | reasons.map(is_tool_failure)).sum())
    return RunOutcome(writer.dir, status, harness_errors)


def print_answer(run_dir: Path, console: Console) -> None:
    """The run ends as its page begins: the seed's table (when the run judged it), the recommendation per mesh
    layout, and where the page is (report.html, written here)."""
    from harness.analysis.report import load_run, run_recommendations, write_report
    from harness.claims.verdicts import print_seed_table

    _, page = write_report(run_dir)
    run = load_run(run_dir)
    if run.claims:
        print_seed_table(run.claims, console)
    console.print("[bold]The answer[/] (rule and evidence on the page):")
    for rec in run_recommendations(run):
        head, _, rest = rec.line.partition(": ")
        # a variant's name in brackets (`passtBinding [passt-2026]`) is text, not a console style
        console.print(f"  [bold]{escape(head)}[/]: {escape(rest)}", highlight=False)
    console.print(f"page: {page}  (answer.md beside it)")


def seed_strategies_in(plan: RunPlan) -> list[str]:
    """The seed post's bindings among the run's cells (as themselves, not as variants), in the post's order."""
    from harness.claims.verdicts import SEED_STRATEGIES

    present = {c.strategy_cls.name for c in plan.cells if c.spec.strategy == c.strategy_cls.name}
    return [s for s in SEED_STRATEGIES if s in present]


def run_claims_phase(plan: RunPlan, lab: LabSession, writer: RunWriter, guest, console: Console) -> dict:
    """The seed's claims for the seed's bindings this run measured, in the run's own folder (claims.json,
    claims.md); returns what run.json records (time of each part, what was reused)."""
    from harness.claims.probes import ProbeContext
    from harness.claims.verdicts import claims_phase, markdown

    strategies = seed_strategies_in(plan)
    if not strategies:
        return {"skipped": "none of the seed's bindings is in the run"}
    started = time.monotonic()
    console.print(f"claims: judging the seed's table for {', '.join(strategies)} (reusing the blocks' rows)")
    rows, info = claims_phase(ProbeContext(lab, writer, guest), writer.frame(), console, strategies)
    write_json(writer.dir / "claims.json", rows)
    write_text(writer.dir / "claims.md", "# Seed claims, measured in the main job\n\n" + markdown(rows))
    return {**info, "strategies": strategies, "total_seconds": round(time.monotonic() - started, 1)}


@dataclass
class Steps:
    """Progress and signals, outside the cell: every step of a cell reports here, and a pending signal raises
    here, between steps."""

    progress: Progress
    task: object
    pending: PendingSignal
    note: str = ""
    """Shown after every step's text: with a precision target, the widest interval and the blocks needed."""

    def __call__(self, text: str, *, advance: bool = False, check: bool = True) -> None:
        if check:
            self.pending.check()
        self.progress.update(self.task, description=f"{text} | {self.note}" if self.note else text)
        if advance:
            self.progress.advance(self.task)

    def grow(self, steps: int, note: str) -> None:
        total = self.progress.tasks[0].total or 0
        self.note = note
        self.progress.update(self.task, total=total + steps, description=note)


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield progress


def cell_row(settings: RunSettings, slot: Slot, paired: bool, runtime_label: str | None) -> Sample:
    """The columns every row of one bed shares (the MTUs as asked, until read back). `slot` only in the paired
    design: there adjacent slots are a binding and its direct; in rounds they are neighbours by chance."""
    cell, plan = slot.cell.spec, slot.cell
    guest_mtu = cell.guest_mtu if isinstance(cell.guest_mtu, int) else None
    if cell.guest_mtu == "pod":
        guest_mtu = cell.pod_mtu or AddressPlan.mtu
    return Sample(
        strategy=cell.strategy,
        options=plan.options.model_dump_json(),
        sidecar=cell.layout,
        peer=str(cell.client.peer),
        peer_authentication=str(cell.client.authentication),
        kubevirt=settings.kubevirt,
        binding_status=binding_status(settings.kubevirt, plan.strategy_cls.name),
        istio=str(cell.istio.release) if cell.istio else "",
        istio_backend=str(cell.istio.backend) if cell.istio else "",
        istio_dual_stack=cell.istio.dual_stack if cell.istio and settings.ipv6 else None,
        scenario=settings.name,
        repetition=slot.block,
        block=slot.block,
        slot=slot.slot if paired else None,
        runtime=settings.runtime,
        compute_caps=runtime_label,
        pod_mtu=cell.pod_mtu or AddressPlan.mtu,
        guest_mtu=guest_mtu if plan.has_vm else None,
        **plan.guest.columns(plan.has_vm),
    )


def read_back_mtus(base: Sample, bed: TestBed, vm: Attachment | None) -> Sample:
    """The MTUs the cell really has, read from the links: the pod's veth (at its node end: a binding may rename
    or enslave the pod's eth0, as bridge does), and the VM's NIC inside the guest."""
    guest_mtu = nic_mtu(vm.service) if vm is not None else None
    return replace(
        base, pod_mtu=bed.node.mtu(bed.link("pd")), guest_mtu=guest_mtu if guest_mtu is not None else base.guest_mtu
    )


@dataclass
class CellRunner:
    """Runs one slot of the schedule: a fresh bed, the sidecar, the strategy, its tests, teardown whatever
    happens; every row labelled from the resolved plan."""

    plan: RunPlan
    writer: RunWriter
    lab: LabSession
    step: Steps
    seconds: dict[str, float] = field(default_factory=dict)
    """Where each bed's wall time went, summed over the run (run.json `bed_seconds`): setup (bed, sidecar, binding),
    each test (server start, traffic, the proxy's counters), teardown, the samples table's rewrite, the rest."""

    def _spent(self, what: str, since: float) -> float:
        now = time.monotonic()
        self.seconds[what] = self.seconds.get(what, 0.0) + now - since
        return now

    def run_block(self, block: list[Slot]) -> None:
        for slot in block:
            t0 = time.monotonic()
            self.step(f"block {slot.block} {slot.cell.label.replace('-', '/', 1)}")
            self.run(slot)
            t1 = time.monotonic()
            self.writer.flush()
            self._spent("results table rewrite", t1)
            self._spent("bed (all)", t0)
            self.seconds["beds"] = self.seconds.get("beds", 0) + 1

    def run(self, slot: Slot) -> None:
        plan, cell, writer = self.plan, slot.cell, self.writer
        settings = plan.settings
        base = cell_row(settings, slot, plan.paired, self.lab.pod_runtime.row_label())
        where = f"block {slot.block} {cell.label.replace('-', '/', 1)}"
        self.step(f"{where} setup")
        strategy = cell.strategy(plan.services)
        pod_mtu, ipv6 = cell.spec.pod_mtu, settings.ipv6
        addresses = AddressPlan(mtu=pod_mtu or AddressPlan.mtu, ipv6=ipv6) if pod_mtu or ipv6 else None
        bed = self.lab.new_bed(addresses)
        attachment: Attachment | None = None
        sidecar: Sidecar | None = None
        prepare_target = None
        setup_error = ""
        t0 = time.monotonic()
        try:
            try:
                bed.build()
                # istio-init / linkerd-init and the proxy start with the pod, before KubeVirt wires the VM.
                # the pod as the scenario's KubeVirt release writes it: its annotations decide ambient's reroute
                annotations = pod_annotations(settings.kubevirt, cell.strategy_cls.name)

                def mesh_in(pod_bed: TestBed, peer_proxy: bool = True) -> Sidecar | None:
                    return install_sidecar(
                        pod_bed,
                        cell.spec.sidecar,
                        vm_interfaces=list(cell.strategy_cls.vm_interfaces),
                        client=cell.spec.client,
                        annotations=annotations,
                        dns_capture=cell.spec.dns_capture,
                        istio=cell.spec.istio or DEFAULT_ISTIO,
                        peer_proxy=peer_proxy,
                    )

                sidecar = mesh_in(bed)
                guest_mtu = cell.spec.guest_mtu if cell.has_vm else None
                driver = driver_for(cell.guest, slot.label, mtu=guest_mtu)
                with bed.strategy_setup():
                    attachment = strategy.setup(bed, driver)
                new_strategy = lambda: cell.strategy(plan.services)  # noqa: E731 - the target pod's own instance
                prepare_target = migration_target(bed, attachment, driver, new_strategy, mesh_in)
                plant(bed, cell.spec.strategy)
                base = read_back_mtus(base, bed, attachment if cell.has_vm else None)
                base = replace(
                    base,
                    caveat="; ".join(c for c in (attachment.facts.caveat, bed.runtime.caveat(bed)) if c),
                    tools=json.dumps(cell_tools([p.argv for p in bed.processes], writer.meta["tools"])),
                )
            except Exception as e:  # noqa: BLE001 - a strategy that cannot set up is a result, not a crash
                setup_error = f"setup failed: {e}"
                refusal = bed.runtime.explain_refusal(bed, str(e))  # a container boundary's refusals are results
                setup_error = f"{refusal}; {setup_error}" if refusal else setup_error
            writer.add(_harness_row(base, "setup_time", time.monotonic() - t0, setup_error))
            self._spent("setup (bed, sidecar, binding)", t0)
            if attachment is not None:
                # What the strategy set up (for a QEMU guest: accel, vhost, boot time, the exact QEMU command line).
                writer.save_raw(f"attachment-{slot.label}.json", attachment.facts.record())
                if attachment.facts.vm and attachment.facts.vm.boot_s is not None:
                    writer.add(_harness_row(base, "boot_time", attachment.facts.vm.boot_s, ""))
            cell_state = Cell(
                bed,
                writer,
                attachment,
                sidecar,
                base,
                setup_error,
                name=cell.label,
                keep_outputs=settings.keep_outputs,
                prepare_target=prepare_target,
                binding=cell.strategy_cls.name,
            )
            for test, direction in slot.tests:
                self.step(f"{where} {test.label} {direction}")
                t_test = time.monotonic()
                try:
                    rows = run_test(test, direction, cell_state)
                except ResultsWriteError:
                    raise  # the results disk is full: no later cell could be kept either
                except Exception as e:  # noqa: BLE001 - one broken measurement must not end an hour-long run
                    log.exception("measurement failed")
                    rows = [failed_row(cell_state, test, direction, f"{HARNESS_ERROR}{type(e).__name__}: {e}")]
                for row in rows:
                    writer.add(row)
                self._spent("tests (servers, traffic, counters)", t_test)
                self.step(f"{where} {test.label} {direction}", advance=True, check=False)
        finally:
            self.step(f"{where} teardown", check=False)
            teardown_error = ""
            t1 = time.monotonic()
            try:
                bed.close()
            except Exception as e:  # noqa: BLE001
                teardown_error = f"{HARNESS_ERROR}{e}"
            writer.add(_harness_row(base, "teardown_time", time.monotonic() - t1, teardown_error))
            self._spent("teardown", t1)


def migration_target(
    bed: TestBed,
    attachment: Attachment,
    driver: GuestDriver,
    new_strategy: Callable[[], Any],
    mesh_in: Callable[..., Sidecar | None],
) -> Callable[[bool], MigrationTarget]:
    """How this cell makes a live migration's target: a second launcher pod on the node, the mesh installed in it as
    in any new pod (same mesh CA; a meshed client keeps the proxy it has), the binding set up by the strategy's own
    code, and QEMU there waiting for the migration."""

    def prepare(new_address: bool) -> MigrationTarget:
        from harness.guests.qemu.driver import QemuDriver
        from harness.guests.qemu.incoming import IncomingDriver

        if not isinstance(driver, QemuDriver) or not hasattr(driver, "booted"):
            raise NotSupported("only a QEMU guest migrates (guest: qemu)")
        view = bed.second_pod("target", new_address=new_address)
        target_sidecar = mesh_in(view, peer_proxy=False)
        with view.strategy_setup():
            arrived = new_strategy().setup(view, IncomingDriver(driver.booted, driver))
        return MigrationTarget(view, arrived, target_sidecar)

    return prepare


def _harness_row(base: Sample, metric: str, seconds: float, error: str) -> Sample:
    return replace(
        base,
        test="harness",
        direction="n/a",
        protocol="n/a",
        metric=metric,
        value=seconds,
        unit="s",
        status=Status.FAILED if error else Status.OK,
        reason=error,
    )
