"""One test in one direction on a set-up bed: run it, prove the path (sidecar counters), account its CPU, and
turn it into Sample rows. Every test kind shares this frame; only the tool differs (harness.experiment.kinds)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from harness.analysis.results import RunWriter, Sample
from harness.experiment.cpu import CpuCost, cost, own_cpu_seconds, snapshot
from harness.experiment.kinds import TestKind
from harness.experiment.outcome import Metric, Outcome
from harness.guests.attachment import Attachment
from harness.lab.bed import TestBed
from harness.lab.kinds import Direction, Status, TrafficPath
from harness.pod.sidecars import Sidecar


@dataclass
class Cell:
    """A set-up bed and what is known about it while its tests run. `base`: the cell's columns."""

    bed: TestBed
    writer: RunWriter
    attachment: Attachment | None
    sidecar: Sidecar | None
    base: Sample
    setup_error: str = ""
    name: str = ""
    """The cell's label (strategy, sidecar and any swept MTU), naming its files."""

    def file_label(self, test: TestKind, direction: Direction) -> str:
        name = self.name or f"{self.base.strategy}-{self.base.sidecar}"
        return re.sub(r"[@/+]", "-", f"{name}-{test.label}-{direction}-r{self.base.repetition}"
                      + (f"s{self.base.slot}" if self.base.slot else ""))


def row_for_test(cell: Cell, test: TestKind, direction: Direction) -> Sample:
    """The columns every row of one test shares: the cell's, the test's label and parameters, the direction."""
    return replace(cell.base, test=test.label, direction=str(direction), protocol=str(test.protocol),
                   **test.columns())  # fmt: skip


def failed_row(cell: Cell, test: TestKind, direction: Direction, reason: str) -> Sample:
    return replace(row_for_test(cell, test, direction), metric=test.primary_metric, status=Status.FAILED, reason=reason)


def run_test(test: TestKind, direction: Direction, cell: Cell) -> list[Sample]:
    direction = Direction(direction)
    row = row_for_test(cell, test, direction)
    if cell.attachment is None:
        return [failed_row(cell, test, direction, cell.setup_error)]
    label = cell.file_label(test, direction)
    pids = [p.pid for p in cell.bed.processes]
    try:
        counters_before = cell.sidecar.counters() if cell.sidecar else None
    except OSError as e:
        counters_before = e
    cpu_before, harness_before = snapshot(pids), own_cpu_seconds()
    outcome = test.measure(cell.attachment.ends(direction), f"{cell.writer.run_id}-{label}")
    spent = cost(cpu_before, snapshot(pids))
    harness_s = own_cpu_seconds() - harness_before
    if outcome.raw:
        cell.writer.save_raw(f"iperf3-{label}.json", outcome.raw)
    evidence = traversal(outcome, direction, cell.sidecar, counters_before)
    rows = []
    for metric in outcome.metrics:
        r = replace(row, **metric.columns(), status=outcome.status, reason=outcome.reason, **evidence.columns())
        if evidence.path is TrafficPath.NO_EVIDENCE:
            # A with-sidecar number without the sidecar's own counters behind it is not reported.
            r = replace(r, value=None, status=Status.FAILED, reason=evidence.reason)
        rows.append(r)
    if outcome.status is Status.OK:
        for metric in [*cost_metrics(outcome, spent), Metric("harness_cpu", "s", harness_s)]:
            rows.append(replace(row, **metric.columns(), status=Status.OK, path=evidence.path))
        if outcome.rtt_us is not None:
            cell.writer.add_latency(row, outcome.rtt_us)
    return rows


def cost_metrics(outcome: Outcome, spent: CpuCost) -> list[Metric]:
    metrics = [Metric("cpu_process", "s", spent.process_s), Metric("cpu_kernel", "s", spent.kernel_s)]
    if outcome.requests:
        metrics.append(Metric("cpu_per_10k_req", "s", spent.total_s / outcome.requests * 1e4))
    elif outcome.bytes_moved:
        # cpu_per_gb: the bed's processes plus the machine-wide kernel time (forwarding, NAT and softirq land
        # there, but so does any other workload's); cpu_bed_per_gb: the bed's processes only, which another
        # workload on the host cannot inflate.
        metrics.append(Metric("cpu_per_gb", "s/GB", spent.total_s / (outcome.bytes_moved / 1e9)))
        metrics.append(Metric("cpu_bed_per_gb", "s/GB", spent.process_s / (outcome.bytes_moved / 1e9)))
    if outcome.bytes_moved:
        metrics.append(Metric("userspace_bytes_per_byte", "ratio", spent.userspace_bytes / outcome.bytes_moved))
    return metrics


@dataclass(frozen=True)
class Evidence:
    path: TrafficPath
    reason: str = ""
    sidecar_bytes: int | None = None
    sidecar_connections: int | None = None

    def columns(self) -> dict:
        return {"path": self.path, "sidecar_bytes": self.sidecar_bytes, "sidecar_connections": self.sidecar_connections}


def traversal(outcome: Outcome, direction: Direction, sidecar: Sidecar | None, before) -> Evidence:
    """Did the bytes cross the sidecar? Envoy's own counters before and after the test decide: at least half
    of the payload bytes the test moved must show in the passthrough cluster of that direction."""
    if sidecar is None:
        return Evidence(TrafficPath.NO_SIDECAR if outcome.status is Status.OK else TrafficPath.FAILED)
    try:
        if isinstance(before, OSError):
            raise before
        delta = sidecar.counters().minus(before)
    except OSError as e:
        return Evidence(TrafficPath.NO_EVIDENCE, f"sidecar admin {sidecar.admin_socket} unreadable ({e.strerror or e})")
    inbound = Direction(direction) is Direction.INGRESS
    crossed = delta.inbound_bytes if inbound else delta.outbound_bytes
    connections = delta.inbound_cx if inbound else delta.outbound_cx
    if outcome.status is not Status.OK:
        path = TrafficPath.FAILED
    elif outcome.bytes_moved and crossed >= outcome.bytes_moved / 2:
        path = TrafficPath.THROUGH_MESH
    else:
        path = TrafficPath.BYPASSED
    return Evidence(path, "", crossed, connections)
