"""One test in one direction on a set-up bed: run it, prove the path (sidecar counters), account its CPU, and
turn it into tidy rows. Every test kind shares this frame; only the tool differs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.cpu import CpuCost, cost, snapshot
from harness.iperf import measure_tcp_throughput, measure_udp_throughput
from harness.latency import measure_crr, measure_rr
from harness.processes import ProcessTracker
from harness.results import RunWriter
from harness.scenario import ConnectRequestResponse, RequestResponse, TcpThroughput, UdpThroughput
from harness.sidecars import Sidecar
from harness.testbed import TestBed
from strategies.base import Attachment


@dataclass
class Cell:
    """A set-up bed and what is known about it while its tests run."""

    bed: TestBed
    tracker: ProcessTracker
    writer: RunWriter
    attachment: Attachment | None
    sidecar: Sidecar | None
    base: dict
    setup_error: str = ""

    def endpoints(self, direction: str):
        a, bed = self.attachment, self.bed
        if direction == "ingress":
            return a.service_ns, bed.peer, a.ingress_address
        return bed.peer, a.client_ns, bed.plan.peer_ip


@dataclass
class Outcome:
    """What a tool reported, reduced to what the frame needs."""

    status: str
    reason: str
    rows: list[dict]  # metric rows (metric, value, unit, extra columns)
    bytes_moved: int = 0  # payload bytes that crossed the path, both directions counted once each
    requests: int = 0
    rtt_us: np.ndarray | None = None


def protocol_of(test) -> str:
    if isinstance(test, UdpThroughput) or (isinstance(test, RequestResponse) and test.protocol == "udp"):
        return "udp"
    return "tcp"


def run_test(test, direction: str, cell: Cell) -> list[dict]:
    row = {**cell.base, "test": test.label, "direction": direction, "protocol": protocol_of(test)}
    if cell.attachment is None:
        return [{**row, "metric": primary_metric(test), "status": "failed", "reason": cell.setup_error}]
    label = f"{cell.base['strategy']}-{cell.base['sidecar']}-{test.label}-{direction}-r{cell.base['repetition']}"
    label = label.replace("@", "-")
    pids = [p.pid for p in cell.bed.processes]
    try:
        counters_before = cell.sidecar.counters() if cell.sidecar else None
    except OSError as e:
        counters_before = e
    cpu_before = snapshot(pids)
    outcome = _dispatch(test, direction, cell, f"{cell.writer.run_id}-{label}", label)
    spent = cost(cpu_before, snapshot(pids))
    evidence = traversal(outcome, direction, cell.sidecar, counters_before)
    rows = []
    for metric_row in outcome.rows:
        r = {**row, **metric_row, "status": outcome.status, "reason": outcome.reason, **evidence}
        if evidence["path"] == "no-evidence":
            # A with-sidecar number without the sidecar's own counters behind it is not reported.
            r.update(value=None, status="failed", reason=evidence["reason"])
        rows.append(r)
    if outcome.status == "ok":
        path = evidence["path"]
        rows += [{**row, **m, "status": "ok", "reason": "", "path": path} for m in cost_rows(outcome, spent)]
        if outcome.rtt_us is not None:
            cell.writer.add_latency({**row}, outcome.rtt_us)
    return rows


def gbit(bits_per_second: float | None) -> float | None:
    return bits_per_second / 1e9 if bits_per_second else None


def primary_metric(test) -> str:
    return {
        TcpThroughput: "throughput",
        UdpThroughput: "udp_goodput",
        RequestResponse: "rtt_p50",
        ConnectRequestResponse: "crr_rate",
    }[type(test)]


def _dispatch(test, direction: str, cell: Cell, label: str, raw_name: str) -> Outcome:
    server, client, target = cell.endpoints(direction)
    tracker = cell.tracker
    if isinstance(test, TcpThroughput):
        s = measure_tcp_throughput(
            tracker, server_ns=server, client_ns=client, target=target, port=test.port,
            duration_s=test.duration_s, omit_s=test.omit_s, streams=test.streams, label=label,
        )  # fmt: skip
        if s.raw:
            cell.writer.save_raw(f"iperf3-{raw_name}.json", s.raw)
        metric = {
            "metric": "throughput", "unit": "Gbit/s", "value": gbit(s.bits_per_second), "retransmits": s.retransmits,
            "cpu_client_pct": s.cpu_client_pct, "cpu_server_pct": s.cpu_server_pct,
        }  # fmt: skip
        return Outcome(s.status, s.reason, [metric], bytes_moved=s.bytes or 0)
    if isinstance(test, UdpThroughput):
        s = measure_udp_throughput(
            tracker, server_ns=server, client_ns=client, target=target, port=test.port, rate_mbit=test.rate_mbit,
            datagram_bytes=test.datagram_bytes, duration_s=test.duration_s, label=label,
        )  # fmt: skip
        if s.raw:
            cell.writer.save_raw(f"iperf3-{raw_name}.json", s.raw)
        rows = [
            {"metric": "udp_goodput", "unit": "Gbit/s", "value": gbit(s.bits_per_second)},
            {"metric": "udp_loss", "unit": "%", "value": s.lost_percent},
            {"metric": "udp_jitter", "unit": "ms", "value": s.jitter_ms},
        ]
        return Outcome(s.status, s.reason, rows, bytes_moved=s.bytes or 0)
    if isinstance(test, RequestResponse):
        s = measure_rr(
            tracker, server_ns=server, client_ns=client, target=target, port=test.port, protocol=test.protocol,
            duration_s=test.duration_s, rate_per_s=test.rate_per_s if test.mode == "open" else None,
            message_bytes=test.message_bytes, label=label,
        )  # fmt: skip
        return _latency_outcome(s, "rtt", test.message_bytes)
    if isinstance(test, ConnectRequestResponse):
        s = measure_crr(
            tracker, server_ns=server, client_ns=client, target=target, port=test.port,
            duration_s=test.duration_s, message_bytes=test.message_bytes, label=label,
        )  # fmt: skip
        outcome = _latency_outcome(s, "crr_latency", test.message_bytes)
        outcome.rows.insert(0, {"metric": "crr_rate", "unit": "conn/s", "value": s.rate_per_s})
        return outcome
    raise TypeError(f"unknown test kind {type(test).__name__}")


def _latency_outcome(s, prefix: str, message_bytes: int) -> Outcome:
    if s.status != "ok" or s.rtt_us.size == 0:
        return Outcome(s.status, s.reason, [{"metric": f"{prefix}_p50", "unit": "us", "value": None}])
    p50, p99 = np.percentile(s.rtt_us, [50, 99])
    rows = [
        {"metric": f"{prefix}_p50", "unit": "us", "value": float(p50)},
        {"metric": f"{prefix}_p99", "unit": "us", "value": float(p99)},
    ]
    if prefix == "rtt":
        rows.append({"metric": "rr_rate", "unit": "req/s", "value": s.rate_per_s})
    return Outcome("ok", "", rows, bytes_moved=s.requests * message_bytes * 2, requests=s.requests, rtt_us=s.rtt_us)


def cost_rows(outcome: Outcome, spent: CpuCost) -> list[dict]:
    rows = [
        {"metric": "cpu_process", "unit": "s", "value": spent.process_s},
        {"metric": "cpu_kernel", "unit": "s", "value": spent.kernel_s},
    ]
    if outcome.requests:
        rows.append({"metric": "cpu_per_10k_req", "unit": "s", "value": spent.total_s / outcome.requests * 1e4})
    elif outcome.bytes_moved:
        rows.append({"metric": "cpu_per_gb", "unit": "s/GB", "value": spent.total_s / (outcome.bytes_moved / 1e9)})
    if outcome.bytes_moved:
        rows.append({"metric": "userspace_bytes_per_byte", "unit": "ratio",
                     "value": spent.userspace_bytes / outcome.bytes_moved})  # fmt: skip
    return rows


def traversal(outcome: Outcome, direction: str, sidecar: Sidecar | None, before) -> dict:
    """Did the bytes cross the sidecar? Envoy's own counters before and after the test decide: at least half
    of the payload bytes the test moved must show in the passthrough cluster of that direction."""
    if sidecar is None:
        return {"path": "no-sidecar" if outcome.status == "ok" else "failed"}
    try:
        if isinstance(before, OSError):
            raise before
        delta = sidecar.counters().minus(before)
    except OSError as e:
        where = f"127.0.0.1:{sidecar.layout.admin_port}"
        return {"path": "no-evidence", "reason": f"sidecar admin {where} unreachable from the pod ({e.strerror or e})"}
    inbound = direction == "ingress"
    crossed = delta.inbound_bytes if inbound else delta.outbound_bytes
    connections = delta.inbound_cx if inbound else delta.outbound_cx
    if outcome.status != "ok":
        path = "failed"
    elif outcome.bytes_moved and crossed >= outcome.bytes_moved / 2:
        path = "through-sidecar"
    else:
        path = "bypassed"
    return {"path": path, "sidecar_bytes": crossed, "sidecar_connections": connections}
