"""One test in one direction on a set-up bed: run it, prove the path (sidecar counters), account its CPU, and
turn it into Sample rows. Every test kind shares this frame; only the tool differs (harness/kinds/)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from harness.analysis.results import RunWriter, Sample
from harness.guests.attachment import Attachment
from harness.kinds.base import TestKind
from harness.kinds.cpu import CLK_TCK, CpuCost, CpuSnapshot, cost, own_cpu_seconds, resident_mib, snapshot
from harness.kinds.outcome import Metric, Outcome
from harness.lab.bed import TestBed
from harness.lab.vocabulary import Direction, Status, TrafficPath
from harness.lab.waiting import TimedOut, wait_until
from harness.pod.sidecars import Sidecar, SidecarCounters

if TYPE_CHECKING:
    from harness.kinds.migration import MigrationTarget


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
    keep_outputs: bool = False
    """Save every client's output in raw/output-<label>.json (the scenario's keep_outputs)."""
    prepare_target: Callable[[bool], MigrationTarget] | None = None
    """Sets up a second launcher pod with this cell's binding and mesh, its QEMU waiting for a migration
    (argument: whether the CNI gives it a new address); from the runner, which knows how the cell was set up."""
    binding: str = ""
    """The strategy the cell runs (a scenario variant's base strategy; its `strategy` column is the variant)."""
    memo: dict = field(default_factory=dict)
    """What a test measured once for both its directions (a migration moves both directions' flows at once)."""

    def file_label(self, test: TestKind, direction: Direction) -> str:
        name = self.name or f"{self.base.strategy}-{self.base.sidecar}"
        return re.sub(
            r"[@/+]",
            "-",
            f"{name}-{test.label}-{direction}-r{self.base.repetition}"
            + (f"s{self.base.slot}" if self.base.slot else ""),
        )


def row_for_test(cell: Cell, test: TestKind, direction: Direction) -> Sample:
    """The columns every row of one test shares: the cell's, the test's label and parameters, the direction."""
    return replace(
        cell.base,
        test=test.label,
        direction=str(direction),
        protocol=str(test.protocol),
        ip_family=test.ip_family,
        **test.columns(),
    )


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
        counters_before = MeshSnapshot.take(cell.sidecar) if cell.sidecar else None
    except OSError as e:
        counters_before = e
    cpu_before, harness_before = snapshot(pids), own_cpu_seconds()
    outcome = test.measure_in(cell, direction, f"{cell.writer.run_id}-{label}")
    cpu_after = snapshot(pids)
    spent = cost(cpu_before, cpu_after)
    harness_s = own_cpu_seconds() - harness_before
    if outcome.raw:
        cell.writer.save_raw(f"iperf3-{label}.json", outcome.raw)
    if cell.keep_outputs and outcome.transcript is not None:
        cell.writer.save_raw(f"output-{label}.json", asdict(outcome.transcript))
    if outcome.evidence_path is not None:
        evidence = Evidence(outcome.evidence_path)
    else:
        evidence = traversal(outcome, direction, cell.sidecar, counters_before)
    rows = []
    for metric in outcome.metrics:
        r = replace(row, **metric.columns(), status=outcome.status, reason=outcome.reason, **evidence.columns())
        r = replace(r, **outcome.row_columns)
        if evidence.path is TrafficPath.NO_EVIDENCE:
            # A with-sidecar number without the sidecar's own counters behind it is not reported.
            r = replace(r, value=None, status=Status.FAILED, reason=evidence.reason)
        rows.append(r)
    if outcome.status is Status.OK:
        proxy = proxy_metrics(cell.sidecar, outcome, cpu_before, cpu_after) if test.proxy_cost_per_request else []
        for metric in [*cost_metrics(outcome, spent), *proxy, Metric("harness_cpu", "s", harness_s)]:
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


def proxy_metrics(sidecar: Sidecar | None, outcome: Outcome, before: CpuSnapshot, after: CpuSnapshot) -> list[Metric]:
    """Istio's units for a proxy's cost: vCPU per 1000 requests per second (CPU seconds x 1000 / requests, the
    same ratio at any duration) of the pod's proxy and of a meshed peer's, and the pod proxy's resident memory
    after the test. Nothing without a proxy or without answered requests."""
    if sidecar is None or sidecar.process is None or not outcome.requests:
        return []

    def vcpu_per_1000_rps(pid: int) -> float | None:
        if pid not in before.process_ticks or pid not in after.process_ticks:
            return None
        return (after.process_ticks[pid] - before.process_ticks[pid]) / CLK_TCK * 1000 / outcome.requests

    metrics = [
        Metric("proxy_vcpu_per_1000_rps", "vCPU", vcpu_per_1000_rps(sidecar.process.pid)),
        Metric("proxy_rss", "MiB", resident_mib(sidecar.process.pid)),
    ]
    peer = sidecar.peer_proxy
    if peer is not None and peer.process is not None:
        metrics.append(Metric("peer_proxy_vcpu_per_1000_rps", "vCPU", vcpu_per_1000_rps(peer.process.pid)))
    waypoint = sidecar.waypoint
    if waypoint is not None and waypoint.process is not None:
        metrics.append(Metric("waypoint_vcpu_per_1000_rps", "vCPU", vcpu_per_1000_rps(waypoint.process.pid)))
    return metrics


@dataclass(frozen=True)
class MeshSnapshot:
    """The mesh's counters at one moment: the pod's proxy, a meshed peer's proxy, and how long their access logs
    (the identities they saw) were."""

    pod: SidecarCounters
    peer: SidecarCounters | None
    pod_log: int
    peer_log: int
    waypoint: SidecarCounters | None = None

    @classmethod
    def take(cls, sidecar: Sidecar) -> MeshSnapshot:
        peer, waypoint = sidecar.peer_proxy, sidecar.waypoint
        return cls(
            sidecar.counters(),
            peer.counters() if peer else None,
            sidecar.identities_seen()[1],
            peer.identities_seen()[1] if peer else 0,
            waypoint.counters() if waypoint else None,
        )


@dataclass(frozen=True)
class Evidence:
    path: TrafficPath
    reason: str = ""
    sidecar_bytes: int | None = None
    sidecar_connections: int | None = None
    mtls_bytes: int | None = None
    tls_handshakes: int | None = None
    hbone_streams: int | None = None
    peer_identity: str = ""
    peer_proxy_bytes: int | None = None
    dns_proxy_queries: int | None = None
    dns_zone1_flows: int | None = None
    proxy_http_requests: int | None = None
    waypoint_bytes: int | None = None
    waypoint_http_requests: int | None = None

    def columns(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "reason"}


def traversal(outcome: Outcome, direction: Direction, sidecar: Sidecar | None, before) -> Evidence:
    """Did the bytes cross the mesh? The proxies' own counters before and after the test decide: at least half of
    the payload bytes the test moved must show in the pod proxy's clusters of that direction. With a meshed peer,
    `through-mesh` also needs them inside mTLS (or HBONE) between the two proxies: at least half of them leaving
    the source's proxy in its mTLS cluster and arriving in the destination's mTLS chain (or HBONE terminator),
    and the destination having seen the source's SPIFFE id; bytes both proxies carried in plaintext are
    `mesh-plaintext`. Through a waypoint (ingress to a service bound to one), `through-mesh` also needs at least
    half of the bytes in the waypoint's HBONE to the pod, and the destination to have seen the waypoint's identity
    (the hop before it); `waypoint_http_requests` counts the requests it handled at L7."""
    if sidecar is None:
        return Evidence(TrafficPath.NO_SIDECAR if outcome.status is Status.OK else TrafficPath.FAILED)
    try:
        if isinstance(before, OSError):
            raise before
        after = MeshSnapshot.take(sidecar)
    except OSError as e:
        return Evidence(TrafficPath.NO_EVIDENCE, f"sidecar admin {sidecar.admin_socket} unreadable ({e.strerror or e})")
    delta = after.pod.minus(before.pod)
    if outcome.dns_queries:
        return dns_traversal(outcome, sidecar, delta)
    inbound = Direction(direction) is Direction.INGRESS
    crossed = delta.inbound_bytes if inbound else delta.outbound_bytes
    connections = delta.inbound_cx if inbound else delta.outbound_cx
    half = outcome.bytes_moved / 2
    if outcome.status is not Status.OK:
        path = TrafficPath.FAILED
    elif outcome.bytes_moved and crossed >= half:
        path = TrafficPath.THROUGH_MESH
    else:
        path = TrafficPath.BYPASSED
    peer = sidecar.peer_proxy
    l7 = delta.http_requests or None  # requests the pod's proxy handled at L7 (its HTTP connection managers)
    if peer is None or after.peer is None or before.peer is None:
        return Evidence(path, "", crossed, connections, proxy_http_requests=l7)
    peer_delta = after.peer.minus(before.peer)
    source, destination = (peer_delta, delta) if inbound else (delta, peer_delta)
    receiver, since = (sidecar, before.pod_log) if inbound else (peer, before.peer_log)
    expected = peer.spiffe_id if inbound else sidecar.spiffe_id
    hop = {}
    if inbound and sidecar.waypoint is not None and after.waypoint is not None and before.waypoint is not None:
        waypoint_delta = after.waypoint.minus(before.waypoint)
        hop = {"waypoint_bytes": waypoint_delta.outbound_bytes, "waypoint_http_requests": waypoint_delta.http_requests}
        expected = sidecar.waypoint.spiffe_id  # the destination's ztunnel sees the waypoint, the hop before it
        if path is TrafficPath.THROUGH_MESH and waypoint_delta.outbound_bytes < half:
            path = TrafficPath.BYPASSED
    seen: list[str] = []
    if destination.mtls_inbound_bytes:
        # tcp_proxy writes its access log line when a connection closes; Envoy flushes the file every 100 ms
        try:
            seen = wait_until(
                lambda: receiver.identities_seen(since)[0], timeout=3, what="the access log", interval=0.05
            )
        except TimedOut:
            seen = []
    over_mtls = (
        outcome.bytes_moved
        and source.mtls_outbound_bytes >= half
        and destination.mtls_inbound_bytes >= half
        and expected in seen
    )
    if path is TrafficPath.THROUGH_MESH and not over_mtls:
        path = TrafficPath.MESH_PLAINTEXT
    return Evidence(
        path,
        "",
        crossed,
        connections,
        mtls_bytes=destination.mtls_inbound_bytes,
        tls_handshakes=destination.tls_inbound_handshakes,
        hbone_streams=destination.hbone_inbound,
        peer_identity=" ".join(seen),
        peer_proxy_bytes=peer_delta.outbound_bytes if inbound else peer_delta.inbound_bytes,
        proxy_http_requests=l7,
        **hop,
    )


def dns_traversal(outcome: Outcome, sidecar: Sidecar, delta: SidecarCounters) -> Evidence:
    """A dns test's path: through the mesh when the pod's DNS proxy took at least half of the lookups, bypassed
    when it took fewer (or the mode has no DNS proxy). The conntrack zone-1 flows in the pod say whether the
    proxy's own queries upstream were kept apart as istio-cni's raw rules mean them to be."""
    if outcome.status is not Status.OK:
        path = TrafficPath.FAILED
    else:
        path = TrafficPath.THROUGH_MESH if delta.dns_queries >= outcome.dns_queries / 2 else TrafficPath.BYPASSED
    zone1 = None
    if sidecar.dns_stats is not None:
        flows = sidecar.pod.run(["conntrack", "-L", "-p", "udp", "--dport", "53", "-w", "1"], check=False)
        zone1 = sum(1 for line in flows.splitlines() if line.startswith("udp"))
    return Evidence(
        path, "", None, None, dns_proxy_queries=delta.dns_queries if sidecar.dns_stats else None, dns_zone1_flows=zone1
    )
