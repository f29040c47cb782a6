"""Runs a scenario: every (strategy, sidecar) cell, repetitions interleaved in a shuffled order per round so
drift hits all cells alike; a fresh test bed per cell and repetition, torn down whatever happens."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.analysis.provenance import busy_host_warnings, cell_tools, git_sha, host_facts, machine_load, tool_versions
from harness.analysis.results import RunWriter, Sample
from harness.analysis.summary import print_latency_summary, print_path_matrix, print_summary, print_sweep_summary
from harness.experiment.kinds import TestKind
from harness.experiment.measure import Cell, failed_row, run_test
from harness.experiment.runtime import docker_runtime
from harness.experiment.scenario import CellSpec, Scenario
from harness.guests.attachment import Attachment
from harness.guests.base import Guest
from harness.guests.drivers import driver_for
from harness.guests.spec import GuestSpec
from harness.lab.bed import AddressPlan, TestBed
from harness.lab.kinds import Direction, GuestKind, Status
from harness.lab.names import new_run_id
from harness.lab.pods import ComputeSpec, explain_refusal
from harness.lab.session import LabSession
from harness.lab.signals import should_defer
from harness.pod.sidecars import Sidecar, install_sidecar
from strategies import strategy_class

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
    """Rows that failed because of the harness (a measurement's exception, an incomplete teardown), not the path."""


HARNESS_ERROR = "harness error: "


def run_scenario(
    scenario: Scenario,
    scenario_text: str,
    scenario_path: str,
    *,
    results_root: Path,
    run_id: str | None = None,
    console: Console | None = None,
) -> RunOutcome:
    console = console or Console()
    run_id = run_id or new_run_id()
    seed = scenario.seed if scenario.seed is not None else random.SystemRandom().randrange(2**32)
    writer = RunWriter(results_root, run_id)
    guest = guest_spec(scenario, console)
    writer.start(
        {
            "scenario_name": scenario.name,
            "scenario_path": scenario_path,
            "scenario": scenario_text,
            "scenario_parsed": scenario.model_dump(mode="json", by_alias=True),
            "shuffle_seed": seed,
            "host": host_facts(),
            "tools": tool_versions(),
            "load": {"start": machine_load(run_id)},
            "git_sha": git_sha(),
            "harness_pid": os.getpid(),
            "guest": {"kind": str(guest.kind), **(qemu_facts(guest) if guest.kind == GuestKind.QEMU else {})},
        }
    )
    cells = scenario.cells()
    tests = scenario.expanded_tests()
    per_cell = sum(len(t.directions) for t in tests)
    rng = random.Random(seed)
    status = "interrupted"
    console.print(f"run [bold]{run_id}[/] scenario {scenario.name}: {len(cells)} cells x {per_cell} tests x "
                  f"{scenario.repetitions} reps, about {format_duration(scenario.estimated_seconds())}")  # fmt: skip
    with LabSession(run_id, log_dir=writer.log_dir, results_dir=writer.dir) as lab:
        try:
            if scenario.runtime == "docker":
                lab.pod_runtime = docker_runtime(compute_spec(scenario), with_qemu=guest.kind == GuestKind.QEMU,
                                                 setup=scenario.docker.setup)  # fmt: skip
                console.print(f"docker runtime: image {lab.pod_runtime.image}, compute "
                              f"{lab.pod_runtime.compute.label()}")  # fmt: skip
            with signals_unwind() as pending, _progress(console) as progress:
                task = progress.add_task("starting", total=len(cells) * scenario.repetitions * per_cell)
                for rep in range(1, scenario.repetitions + 1):
                    order = cells[:]
                    rng.shuffle(order)
                    for cell in order:
                        pending.check()
                        order_of_tests = [(t, d) for t in tests for d in t.directions]
                        rng.shuffle(order_of_tests)
                        _run_cell(scenario, guest, cell, rep, order_of_tests, writer, lab, progress, task, pending)
                        writer.flush()
                pending.check()
            status = "complete"
        finally:
            lab.close()
            writer.finish(status, load={**writer.meta["load"], "end": machine_load(run_id)})
            if status == "complete":
                if not print_sweep_summary(writer.frame(), console, scenario.strategies):
                    print_summary(writer.frame(), console, scenario.strategies)
                    print_path_matrix(writer.frame(), console, scenario.strategies)
                    print_latency_summary(writer.frame(), writer.latency_frame(), console, scenario.strategies)
                for warning in busy_host_warnings(writer.meta):
                    console.print(f"[yellow]busy host: {warning}[/]")
            console.print(f"results: {writer.dir}")
    frame = writer.frame()
    harness_errors = int(frame.reason.fillna("").str.startswith(HARNESS_ERROR).sum())
    return RunOutcome(writer.dir, status, harness_errors)


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


def format_duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def guest_spec(scenario: Scenario, console: Console) -> GuestSpec:
    """The run's guest; for QEMU the acceleration is decided once, before the first cell (KVM probe)."""
    if scenario.guest != GuestKind.QEMU:
        return GuestSpec()
    from harness.guests.qemu.accel import resolve_acceleration
    from harness.guests.qemu.image import build_image

    image = build_image()
    acceleration = resolve_acceleration(scenario.qemu.accel, image)
    console.print(f"QEMU guest: accel [bold]{acceleration.accel}[/] ({acceleration.reason}); image {image.digest}")
    return GuestSpec(GuestKind.QEMU, scenario.qemu, acceleration)


def qemu_facts(guest: GuestSpec) -> dict:
    from harness.guests.qemu.accel import qemu_version
    from harness.guests.qemu.image import build_image

    image = build_image()
    return {
        "qemu": guest.qemu.model_dump(),
        "acceleration": guest.acceleration.record() if guest.acceleration else None,
        "qemu_version": qemu_version(guest.qemu.build),
        "kernel": image.kernel_version,
        "image": image.digest,
        "vhost_net": os.path.exists("/dev/vhost-net"),
    }


PLANT_SLOWDOWN = "VMNB_PLANT_SLOWDOWN"


def plant_slowdown(bed: TestBed, strategy: str) -> None:
    """Fault injection for the gate's own test: `VMNB_PLANT_SLOWDOWN=masquerade=200mbit` puts a tbf rate limit
    on every link of that strategy's pod, a slowdown the gate must catch. Never set in a real run."""
    target, _, rate = os.environ.get(PLANT_SLOWDOWN, "").partition("=")
    if target != strategy or not rate:
        return
    for link in bed.pod.ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        if name != "lo":
            bed.pod.run(["tc", "qdisc", "add", "dev", name, "root", "tbf", "rate", rate, "burst", "64kb",
                         "latency", "100ms"])  # fmt: skip


def cell_row(scenario: Scenario, guest: GuestSpec, cell: CellSpec, rep: int, has_vm: bool) -> Sample:
    """The columns every row of one cell and repetition shares (the MTUs as asked, until read back)."""
    guest_mtu = cell.guest_mtu if isinstance(cell.guest_mtu, int) else None
    if cell.guest_mtu == "pod":
        guest_mtu = cell.pod_mtu or AddressPlan.mtu
    return Sample(strategy=cell.strategy, options=scenario.options_for(cell.strategy).model_dump_json(),
                  sidecar=str(cell.sidecar), scenario=scenario.name, repetition=rep, runtime=scenario.runtime,
                  compute_caps=compute_label(scenario) if scenario.runtime == "docker" else None,
                  pod_mtu=cell.pod_mtu or AddressPlan.mtu, guest_mtu=guest_mtu if has_vm else None,
                  **guest.columns(has_vm))  # fmt: skip


def node_side_caveat(bed: TestBed) -> str:
    """Docker runtime: a binding's process that ran in the pod's namespace but outside its containers."""
    if bed.docker_pod is None:
        return ""
    names = sorted({p.argv[0].rsplit("/", 1)[-1] for p in bed.processes
                    if p.netns == bed.pod.name and p.container is None})  # fmt: skip
    if not names:
        return ""
    return (
        f"docker runtime with the netns guest: {', '.join(names)} entered the guest namespace from the node, "
        "not from compute (it stands for QEMU's own backend, which a QEMU guest runs in compute)"
    )


def compute_label(scenario: Scenario) -> str:
    """compute's privileges as rows record them, and who did the setup when it was the pod itself."""
    label = compute_spec(scenario).label()
    return f"{label}; in-pod setup" if scenario.docker.setup == "in-pod" else label


def compute_spec(scenario: Scenario) -> ComputeSpec:
    d = scenario.docker
    return ComputeSpec(tuple(d.compute_cap_add), tuple(d.compute_cap_drop), tuple(d.devices), d.seccomp)


def read_back_mtus(base: Sample, bed: TestBed, vm: Attachment | None) -> Sample:
    """The MTUs the cell really has, read from the links: the pod's veth (at its node end: a binding may rename
    or enslave the pod's eth0, as bridge does), and the VM's NIC inside the guest."""
    guest_mtu = nic_mtu(vm.service) if vm is not None else None
    return replace(base, pod_mtu=bed.node.mtu(bed.link("pd")),
                   guest_mtu=guest_mtu if guest_mtu is not None else base.guest_mtu)  # fmt: skip


def _run_cell(scenario: Scenario, guest: GuestSpec, cell: CellSpec, rep: int,
              tests: list[tuple[TestKind, Direction]], writer: RunWriter, lab: LabSession, progress: Progress, task,
              pending: PendingSignal) -> None:  # fmt: skip
    cls = strategy_class(scenario.strategy_of(cell.strategy))
    guest = guest.for_strategy(cls.has_vm)
    if guest.kind == GuestKind.QEMU and scenario.qemu_build_of(cell.strategy) != guest.qemu.build:
        guest = replace(guest, qemu=guest.qemu.model_copy(update={"build": scenario.qemu_build_of(cell.strategy)}))
    base = cell_row(scenario, guest, cell, rep, cls.has_vm)
    where = f"rep {rep}/{scenario.repetitions} {cell.label.replace('-', '/', 1)}"
    progress.update(task, description=f"{where} setup")
    strategy = cls(scenario.options_for(cell.strategy), services=scenario.services(), sidecar=cell.sidecar)
    label = f"{cell.label}-r{rep}"
    bed = lab.new_bed(AddressPlan(mtu=cell.pod_mtu) if cell.pod_mtu else None)
    attachment: Attachment | None = None
    sidecar: Sidecar | None = None
    setup_error = ""
    t0 = time.monotonic()
    try:
        try:
            bed.build()
            # istio-init / linkerd-init and the proxy start with the pod, before KubeVirt wires the VM.
            sidecar = install_sidecar(bed, cell.sidecar, vm_interfaces=list(cls.vm_interfaces))
            with bed.strategy_setup():
                attachment = strategy.setup(bed, driver_for(guest, label, mtu=cell.guest_mtu if cls.has_vm else None))
            plant_slowdown(bed, cell.strategy)
            base = read_back_mtus(base, bed, attachment if cls.has_vm else None)
            base = replace(
                base,
                caveat="; ".join(c for c in (attachment.facts.caveat, node_side_caveat(bed)) if c),
                tools=json.dumps(cell_tools([p.argv for p in bed.processes], writer.meta["tools"])),
            )
        except Exception as e:  # noqa: BLE001 - a strategy that cannot set up is a result, not a crash
            setup_error = f"setup failed: {e}"
            if bed.docker_pod is not None:  # the container boundary's refusals are results: name what was refused
                refusal = explain_refusal(str(e), bed.docker_pod.compute)
                setup_error = f"{refusal}; {setup_error}" if refusal else setup_error
        writer.add(_harness_row(base, "setup_time", time.monotonic() - t0, setup_error))
        if attachment is not None:
            # What the strategy set up (for a QEMU guest: accel, vhost, boot time, the exact QEMU command line).
            writer.save_raw(f"attachment-{label}.json", attachment.facts.record())
            if attachment.facts.vm and attachment.facts.vm.boot_s is not None:
                writer.add(_harness_row(base, "boot_time", attachment.facts.vm.boot_s, ""))
        cell_state = Cell(bed, writer, attachment, sidecar, base, setup_error, name=cell.label)
        for test, direction in tests:
            pending.check()
            progress.update(task, description=f"{where} {test.label} {direction}")
            try:
                rows = run_test(test, direction, cell_state)
            except Exception as e:  # noqa: BLE001 - one broken measurement must not end an hour-long run
                log.exception("measurement failed")
                rows = [failed_row(cell_state, test, direction, f"{HARNESS_ERROR}{type(e).__name__}: {e}")]
            for row in rows:
                writer.add(row)
            progress.advance(task)
    finally:
        progress.update(task, description=f"{where} teardown")
        teardown_error = ""
        t1 = time.monotonic()
        try:
            bed.close()
        except Exception as e:  # noqa: BLE001
            teardown_error = f"{HARNESS_ERROR}{e}"
        writer.add(_harness_row(base, "teardown_time", time.monotonic() - t1, teardown_error))


MTU_IN_LINK = re.compile(r"\bmtu (\d+)")


def nic_mtu(guest: Guest) -> int | None:
    """The MTU of the guest's network interface (its one link besides lo), from `ip -o link` there (iproute2 in
    a namespace, busybox in the QEMU guest print the same `mtu N`)."""
    done = guest.run(["ip", "-o", "link", "show"], name="mtu-read-back", timeout=10)
    for line in done.stdout.splitlines():
        name = line.split(":", 2)[1].strip() if line.count(":") >= 2 else ""
        match = MTU_IN_LINK.search(line)
        if match and name != "lo" and "LOOPBACK" not in line:
            return int(match.group(1))
    return None


def _harness_row(base: Sample, metric: str, seconds: float, error: str) -> Sample:
    return replace(base, test="harness", direction="n/a", protocol="n/a", metric=metric, value=seconds, unit="s",
                   status=Status.FAILED if error else Status.OK, reason=error)  # fmt: skip
