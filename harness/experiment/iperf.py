"""TCP throughput with the iperf3 CLI, driven through its JSON output."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from harness.experiment.endpoints import client_against_server, failure_reason
from harness.guests.attachment import Ends

CONNECT_TIMEOUT_S = 5
IPERF_SERVER = ["iperf3", "-s", "-1"]  # one-off: a broken test never leaves a server stuck for the next


@dataclass
class ThroughputSample:
    status: str  # "ok" or "failed"
    reason: str = ""
    bits_per_second: float | None = None
    bytes: int | None = None
    seconds: float | None = None
    retransmits: int | None = None
    cpu_client_pct: float | None = None  # iperf3's host_total on the client
    cpu_server_pct: float | None = None  # iperf3's remote_total (the server)
    raw: dict = field(default_factory=dict)


def parse_client_json(text: str) -> ThroughputSample:
    try:
        data = json.loads(text)
    except ValueError:
        return ThroughputSample("failed", f"iperf3 printed no JSON: {text.strip()[:120] or 'empty output'}")
    if data.get("error"):
        return ThroughputSample("failed", failure_reason(data["error"]), raw=data)
    end = data.get("end", {})
    received = end.get("sum_received") or {}
    sent = end.get("sum_sent") or {}
    cpu = end.get("cpu_utilization_percent") or {}
    bps = received.get("bits_per_second")
    if not bps:
        return ThroughputSample("failed", "no bytes received", raw=data)
    return ThroughputSample(
        "ok",
        bits_per_second=float(bps),
        bytes=int(received.get("bytes", 0)),
        seconds=float(received.get("seconds", 0.0)),
        retransmits=sent.get("retransmits"),
        cpu_client_pct=cpu.get("host_total"),
        cpu_server_pct=cpu.get("remote_total"),
        raw=data,
    )


def measure_tcp_throughput(
    ends: Ends,
    *,
    port: int,
    duration_s: float,
    omit_s: float,
    streams: int,
    label: str,
) -> ThroughputSample:
    """One iperf3 test: a one-off server at `ends.server`, a client at `ends.client` sending to target:port."""
    argv = [
        "iperf3", "-c", ends.target, "-p", str(port), "--json",
        "-t", f"{duration_s:g}", "-O", f"{omit_s:g}", "-P", str(streams),
        "--connect-timeout", str(CONNECT_TIMEOUT_S * 1000),
    ]  # fmt: skip
    run = client_against_server(
        ends, server_argv=IPERF_SERVER + ["-p", str(port)], port=port, client_argv=argv,
        budget_s=duration_s + omit_s + CONNECT_TIMEOUT_S + 10, label=f"{label}-iperf3",
    )  # fmt: skip
    if run.error:
        return ThroughputSample("failed", run.error)
    sample = parse_client_json(run.done.stdout)
    if sample.status == "failed" and not sample.raw and run.done.stderr.strip():
        sample.reason = failure_reason(run.done.stderr)
    return sample


@dataclass
class UdpSample:
    status: str
    reason: str = ""
    bits_per_second: float | None = None
    lost_percent: float | None = None
    jitter_ms: float | None = None
    bytes: int | None = None
    raw: dict = field(default_factory=dict)


def measure_udp_throughput(
    ends: Ends,
    *,
    port: int,
    rate_mbit: float,
    datagram_bytes: int,
    duration_s: float,
    label: str,
) -> UdpSample:
    """iperf3 -u at an offered rate; delivered rate, loss and jitter as the receiving end reports them.
    (The server is ready when its TCP control socket listens: iperf3 uses TCP for control even with -u.)"""
    argv = [
        "iperf3", "-c", ends.target, "-p", str(port), "-u", "-b", f"{rate_mbit:g}M", "-l", str(datagram_bytes),
        "-t", f"{duration_s:g}", "--json", "--connect-timeout", str(CONNECT_TIMEOUT_S * 1000),
    ]  # fmt: skip
    run = client_against_server(
        ends, server_argv=IPERF_SERVER + ["-p", str(port)], port=port, client_argv=argv,
        budget_s=duration_s + CONNECT_TIMEOUT_S + 10, label=f"{label}-iperf3-udp",
    )  # fmt: skip
    if run.error:
        return UdpSample("failed", run.error)
    data, error = run.json_result()
    if error:
        return UdpSample("failed", error, raw=data or {})
    end = data.get("end", {})
    received = end.get("sum_received") or end.get("sum") or {}
    summary = end.get("sum") or {}
    bps = received.get("bits_per_second")
    lost = summary.get("lost_percent")
    if not bps or lost is None or lost >= 100:
        return UdpSample("failed", "no datagrams delivered", lost_percent=lost, raw=data)
    return UdpSample(
        "ok",
        # iperf3 3.12's client "sum" carries the sender's rate; the delivered share is 1 - loss.
        bits_per_second=float(bps) * (1 - lost / 100) if "sum_received" not in end else float(bps),
        lost_percent=float(lost),
        jitter_ms=summary.get("jitter_ms"),
        bytes=int(received.get("bytes", 0)),
        raw=data,
    )
