"""The test kinds a scenario may list, each registered once with what the rest of the harness asks of it: its
scenario fields (validated), its protocol, its primary metric, the ports it needs forwarded, and how it runs
(`measure`, through the tool drivers iperf.py and latency.py)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.experiment.iperf import measure_tcp_throughput, measure_udp_throughput
from harness.experiment.latency import LatencySample, measure_crr, measure_rr
from harness.experiment.outcome import Metric, Outcome
from harness.guests.attachment import Ends
from harness.lab.kinds import Direction, Protocol, Status


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _both_directions() -> list[Direction]:
    return list(Direction)


Directions = Annotated[list[Direction], Field(default_factory=_both_directions, min_length=1)]


def gbit(bits_per_second: float | None) -> float | None:
    return bits_per_second / 1e9 if bits_per_second else None


class TestKind(Strict):
    """What every test kind has; subclasses add their fields and `measure`."""

    __test__ = False  # not a pytest class
    kind: str
    directions: Directions
    primary_metric: ClassVar[str]

    @property
    def protocol(self) -> Protocol:
        return Protocol.TCP

    @property
    def label(self) -> str:
        return self.kind

    def ports(self) -> tuple[set[int], set[int]]:
        """(TCP ports, UDP ports) the VM must serve for this test."""
        return {self.port}, set()

    def measure(self, ends: Ends, label: str) -> Outcome:
        raise NotImplementedError


class TcpThroughput(TestKind):
    kind: Literal["tcp_throughput"]
    duration_s: float = Field(3.0, gt=0, le=3600)
    omit_s: float = Field(1.0, ge=0, le=60)
    streams: int = Field(1, ge=1, le=128)
    port: int = Field(5201, ge=1, le=65535)
    primary_metric: ClassVar[str] = "throughput"

    def measure(self, ends: Ends, label: str) -> Outcome:
        s = measure_tcp_throughput(ends, port=self.port, duration_s=self.duration_s, omit_s=self.omit_s,
                                   streams=self.streams, label=label)  # fmt: skip
        metric = Metric("throughput", "Gbit/s", gbit(s.bits_per_second), retransmits=s.retransmits,
                        cpu_client_pct=s.cpu_client_pct, cpu_server_pct=s.cpu_server_pct)  # fmt: skip
        return Outcome(Status(s.status), s.reason, [metric], bytes_moved=s.bytes or 0, raw=s.raw)


class UdpThroughput(TestKind):
    """iperf3 -u at a set offered rate: delivered rate, loss and jitter."""

    kind: Literal["udp_throughput"]
    rate_mbit: float = Field(500, gt=0, le=100_000)
    datagram_bytes: int = Field(1400, ge=64, le=65000)
    duration_s: float = Field(3.0, gt=0, le=3600)
    port: int = Field(5201, ge=1, le=65535)
    primary_metric: ClassVar[str] = "udp_goodput"

    @property
    def protocol(self) -> Protocol:
        return Protocol.UDP

    @property
    def label(self) -> str:
        return f"udp_throughput@{self.rate_mbit:g}M"

    def ports(self) -> tuple[set[int], set[int]]:
        return {self.port}, {self.port}  # iperf3's control connection is TCP even with -u

    def measure(self, ends: Ends, label: str) -> Outcome:
        s = measure_udp_throughput(ends, port=self.port, rate_mbit=self.rate_mbit, datagram_bytes=self.datagram_bytes,
                                   duration_s=self.duration_s, label=label)  # fmt: skip
        metrics = [
            Metric("udp_goodput", "Gbit/s", gbit(s.bits_per_second)),
            Metric("udp_loss", "%", s.lost_percent),
            Metric("udp_jitter", "ms", s.jitter_ms),
        ]
        return Outcome(Status(s.status), s.reason, metrics, bytes_moved=s.bytes or 0, raw=s.raw)


class RequestResponse(TestKind):
    """sockperf ping-pong: one message in flight. `closed` sends the next request when the reply arrives;
    `open` schedules requests at `rate_per_s` and counts latency from the scheduled send time."""

    kind: Literal["rr"]
    protocol_name: Literal["tcp", "udp"] = Field("tcp", alias="protocol")
    mode: Literal["closed", "open"] = "closed"
    rate_per_s: int | None = Field(None, ge=1, le=1_000_000)
    duration_s: float = Field(3.0, gt=0, le=3600)
    message_bytes: int = Field(64, ge=14, le=65000)
    port: int = Field(11111, ge=1, le=65535)
    primary_metric: ClassVar[str] = "rtt_p50"
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _rate_for_open_loop(self) -> RequestResponse:
        if self.mode == "open" and self.rate_per_s is None:
            raise ValueError("field 'rate_per_s': required when mode is open (requests per second to schedule)")
        return self

    @property
    def protocol(self) -> Protocol:
        return Protocol(self.protocol_name)

    @property
    def label(self) -> str:
        return f"rr_{self.protocol}_{self.mode}" + (f"@{self.rate_per_s}" if self.mode == "open" else "")

    def ports(self) -> tuple[set[int], set[int]]:
        return ({self.port}, set()) if self.protocol is Protocol.TCP else (set(), {self.port})

    def measure(self, ends: Ends, label: str) -> Outcome:
        s = measure_rr(ends, port=self.port, protocol=str(self.protocol), duration_s=self.duration_s,
                       rate_per_s=self.rate_per_s if self.mode == "open" else None,
                       message_bytes=self.message_bytes, label=label)  # fmt: skip
        outcome = latency_outcome(s, "rtt", self.message_bytes)
        if outcome.status is Status.OK:
            outcome.metrics.append(Metric("rr_rate", "req/s", s.rate_per_s))
        return outcome


class ConnectRequestResponse(TestKind):
    """A new TCP connection per request (connect, request, response, close), closed loop."""

    kind: Literal["crr"]
    duration_s: float = Field(2.0, gt=0, le=600)
    message_bytes: int = Field(64, ge=1, le=65000)
    port: int = Field(11112, ge=1, le=65535)
    primary_metric: ClassVar[str] = "crr_rate"

    def measure(self, ends: Ends, label: str) -> Outcome:
        s = measure_crr(ends, port=self.port, duration_s=self.duration_s, message_bytes=self.message_bytes,
                        label=label)  # fmt: skip
        outcome = latency_outcome(s, "crr_latency", self.message_bytes)
        outcome.metrics.insert(0, Metric("crr_rate", "conn/s", s.rate_per_s))
        return outcome


def latency_outcome(s: LatencySample, prefix: str, message_bytes: int) -> Outcome:
    if s.status != "ok" or s.rtt_us.size == 0:
        return Outcome(Status(s.status), s.reason, [Metric(f"{prefix}_p50", "us", None)])
    p50, p99 = np.percentile(s.rtt_us, [50, 99])
    metrics = [Metric(f"{prefix}_p50", "us", float(p50)), Metric(f"{prefix}_p99", "us", float(p99))]
    return Outcome(Status.OK, "", metrics, bytes_moved=s.requests * message_bytes * 2, requests=s.requests,
                   rtt_us=s.rtt_us)  # fmt: skip


TEST_KINDS: dict[str, type[TestKind]] = {
    cls.model_fields["kind"].annotation.__args__[0]: cls
    for cls in (TcpThroughput, UdpThroughput, RequestResponse, ConnectRequestResponse)
}
Test = Annotated[TcpThroughput | UdpThroughput | RequestResponse | ConnectRequestResponse, Field(discriminator="kind")]
