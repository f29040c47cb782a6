"""The tcp_throughput and udp_throughput kinds and their driver, the iperf3 CLI through its JSON output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.guests.attachment import Ends
from harness.kinds.base import TOOL_OVERHEAD_S, TestKind, gbit
from harness.kinds.endpoints import ToolReport, Transcript, client_against_server, failure_reason, parse_tool_json
from harness.kinds.outcome import Metric, Outcome
from harness.lab.vocabulary import Protocol, Status

CONNECT_TIMEOUT_S = 5
IPERF_SERVER = ["iperf3", "-s", "-1"]  # one-off: a broken test never leaves a server stuck for the next
"""On a cluster the server is long-lived instead (`iperf3 -s`, harness/cluster): the tests run one after another."""


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
    transcript: Transcript | None = None


class IperfSum(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bytes: int = 0
    seconds: float = 0.0
    bits_per_second: float | None = None
    retransmits: int | None = None
    lost_percent: float | None = None
    jitter_ms: float | None = None


class IperfCpu(BaseModel):
    model_config = ConfigDict(extra="ignore")
    host_total: float | None = None
    remote_total: float | None = None


class IperfEnd(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sum_received: IperfSum | None = None
    sum_sent: IperfSum | None = None
    sum: IperfSum | None = None
    cpu_utilization_percent: IperfCpu | None = None


class IperfReport(ToolReport):
    """The part of `iperf3 --json` the harness reads (iperf3's JSON layout: `end.sum_received` etc.)."""

    end: IperfEnd = IperfEnd()


def parse_client_json(text: str) -> ThroughputSample:
    report, data, error = parse_tool_json("iperf3", text, IperfReport)
    if error:
        return ThroughputSample("failed", error, raw=data)
    received = report.end.sum_received or IperfSum()
    sent = report.end.sum_sent or IperfSum()
    cpu = report.end.cpu_utilization_percent or IperfCpu()
    if not received.bits_per_second:
        return ThroughputSample("failed", "no bytes received", raw=data)
    return ThroughputSample(
        "ok",
        bits_per_second=received.bits_per_second,
        bytes=received.bytes,
        seconds=received.seconds,
        retransmits=sent.retransmits,
        cpu_client_pct=cpu.host_total,
        cpu_server_pct=cpu.remote_total,
        raw=data,
    )


def tcp_client_argv(
    target: str, *, port: int, duration_s: float, omit_s: float, streams: int, reverse: bool = False
) -> list[str]:
    """iperf3's client for a TCP test, as the harness runs it and as a cluster's Job does (harness/cluster)."""
    return [
        "iperf3",
        "-c",
        target,
        "-p",
        str(port),
        "--json",
        "-t",
        f"{duration_s:g}",
        "-O",
        f"{omit_s:g}",
        "-P",
        str(streams),
        "--connect-timeout",
        str(CONNECT_TIMEOUT_S * 1000),
        *(["-R"] if reverse else []),
    ]


def measure_tcp_throughput(
    ends: Ends,
    *,
    port: int,
    duration_s: float,
    omit_s: float,
    streams: int,
    label: str,
    reverse: bool = False,
) -> ThroughputSample:
    """One iperf3 test: a one-off server at `ends.server`, a client at `ends.client` sending to target:port
    (`reverse`: the server sends, over the connection the client opened: iperf3 -R)."""
    argv = tcp_client_argv(
        ends.target, port=port, duration_s=duration_s, omit_s=omit_s, streams=streams, reverse=reverse
    )
    run = client_against_server(
        ends,
        server_argv=IPERF_SERVER + ["-p", str(port)],
        port=port,
        client_argv=argv,
        budget_s=duration_s + omit_s + CONNECT_TIMEOUT_S + 10,
        label=f"{label}-iperf3",
    )
    if run.error:
        return ThroughputSample("failed", run.error)
    sample = parse_tcp_output(run.done.stdout, run.done.stderr)
    sample.transcript = run.transcript()
    return sample


def parse_tcp_output(stdout: str, stderr: str = "") -> ThroughputSample:
    sample = parse_client_json(stdout)
    if sample.status == "failed" and not sample.raw and stderr.strip():
        sample.reason = failure_reason(stderr)
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
    transcript: Transcript | None = None


def udp_client_argv(target: str, *, port: int, rate_mbit: float, datagram_bytes: int, duration_s: float) -> list[str]:
    return [
        "iperf3",
        "-c",
        target,
        "-p",
        str(port),
        "-u",
        "-b",
        f"{rate_mbit:g}M",
        "-l",
        str(datagram_bytes),
        "-t",
        f"{duration_s:g}",
        "--json",
        "--connect-timeout",
        str(CONNECT_TIMEOUT_S * 1000),
    ]


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
    argv = udp_client_argv(
        ends.target, port=port, rate_mbit=rate_mbit, datagram_bytes=datagram_bytes, duration_s=duration_s
    )
    run = client_against_server(
        ends,
        server_argv=IPERF_SERVER + ["-p", str(port)],
        port=port,
        client_argv=argv,
        budget_s=duration_s + CONNECT_TIMEOUT_S + 10,
        label=f"{label}-iperf3-udp",
    )
    if run.error:
        return UdpSample("failed", run.error)
    sample = parse_udp_output(run.done.stdout, run.done.stderr)
    sample.transcript = run.transcript()
    return sample


def parse_udp_output(stdout: str, stderr: str = "") -> UdpSample:
    report, data, error = parse_tool_json("iperf3", stdout, IperfReport, stderr=stderr)
    if error:
        return UdpSample("failed", error, raw=data)
    end = report.end
    received = end.sum_received or end.sum or IperfSum()
    summary = end.sum or IperfSum()
    bps, lost = received.bits_per_second, summary.lost_percent
    if not bps or lost is None or lost >= 100:
        return UdpSample("failed", "no datagrams delivered", lost_percent=lost, raw=data)
    return UdpSample(
        "ok",
        # iperf3 3.12's client "sum" carries the sender's rate; the delivered share is 1 - loss.
        bits_per_second=bps * (1 - lost / 100) if end.sum_received is None else bps,
        lost_percent=lost,
        jitter_ms=summary.jitter_ms,
        bytes=received.bytes,
        raw=data,
    )


class TcpThroughput(TestKind):
    kind: Literal["tcp_throughput"]
    # Whole seconds: iperf3 3.12 reads -t and -O with atoi(), so a 0.5 would silently become 0 (seen: a scenario's
    # omit_s 0.5 measured with no omit at all).
    duration_s: int = Field(3, ge=1, le=3600)
    omit_s: int = Field(1, ge=0, le=60)
    streams: int = Field(1, ge=1, le=128)
    port: int = Field(5201, ge=1, le=65535)
    primary_metric: ClassVar[str] = "throughput"
    sweep_fields: ClassVar[dict[str, str]] = {"streams": "streams"}
    ipv6_missing: ClassVar[str] = ""  # iperf3 -s listens on both families; the client dials either

    def columns(self) -> dict:
        return {**super().columns(), "streams": self.streams}

    def expected_seconds(self) -> float:
        return self.duration_s + self.omit_s + TOOL_OVERHEAD_S

    def measure(self, ends: Ends, label: str) -> Outcome:
        return self._outcome(
            measure_tcp_throughput(
                ends, port=self.port, duration_s=self.duration_s, omit_s=self.omit_s, streams=self.streams, label=label
            )
        )

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return tcp_client_argv(
            target, port=self.port, duration_s=self.duration_s, omit_s=self.omit_s, streams=self.streams
        )

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [["iperf3", "-s", "-p", str(self.port)]]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        return self._outcome(parse_tcp_output(stdout, stderr))

    @staticmethod
    def _outcome(s: ThroughputSample) -> Outcome:
        metric = Metric(
            "throughput",
            "Gbit/s",
            gbit(s.bits_per_second),
            retransmits=s.retransmits,
            cpu_client_pct=s.cpu_client_pct,
            cpu_server_pct=s.cpu_server_pct,
        )
        return Outcome(
            Status(s.status), s.reason, [metric], bytes_moved=s.bytes or 0, raw=s.raw, transcript=s.transcript
        )


class UdpThroughput(TestKind):
    """iperf3 -u at a set offered rate: delivered rate, loss and jitter."""

    kind: Literal["udp_throughput"]
    rate_mbit: float = Field(500, gt=0, le=100_000)
    datagram_bytes: int = Field(1400, ge=64, le=65000)
    duration_s: int = Field(3, ge=1, le=3600)  # whole seconds, as for tcp_throughput (iperf3's -t)
    port: int = Field(5201, ge=1, le=65535)
    ipv6_missing: ClassVar[str] = ""  # iperf3 -u as above
    primary_metric: ClassVar[str] = "udp_goodput"
    sweep_fields: ClassVar[dict[str, str]] = {"message_bytes": "datagram_bytes"}

    @property
    def protocol(self) -> Protocol:
        return Protocol.UDP

    @property
    def base_label(self) -> str:
        return f"udp_throughput@{self.rate_mbit:g}M"

    def columns(self) -> dict:
        return {**super().columns(), "message_bytes": self.datagram_bytes}

    def ports(self) -> tuple[set[int], set[int]]:
        return {self.port}, {self.port}  # iperf3's control connection is TCP even with -u

    def measure(self, ends: Ends, label: str) -> Outcome:
        return self._outcome(
            measure_udp_throughput(
                ends,
                port=self.port,
                rate_mbit=self.rate_mbit,
                datagram_bytes=self.datagram_bytes,
                duration_s=self.duration_s,
                label=label,
            )
        )

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return udp_client_argv(
            target,
            port=self.port,
            rate_mbit=self.rate_mbit,
            datagram_bytes=self.datagram_bytes,
            duration_s=self.duration_s,
        )

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [["iperf3", "-s", "-p", str(self.port)]]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        return self._outcome(parse_udp_output(stdout, stderr))

    @staticmethod
    def _outcome(s: UdpSample) -> Outcome:
        metrics = [
            Metric("udp_goodput", "Gbit/s", gbit(s.bits_per_second)),
            Metric("udp_loss", "%", s.lost_percent),
            Metric("udp_jitter", "ms", s.jitter_ms),
        ]
        return Outcome(
            Status(s.status), s.reason, metrics, bytes_moved=s.bytes or 0, raw=s.raw, transcript=s.transcript
        )
