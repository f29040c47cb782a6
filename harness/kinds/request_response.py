"""The rr and crr kinds: ping-pong (closed or open loop, idle or beside a bulk stream) with sockperf, or with
vmnb-rr where sockperf cannot go (IPv6), and a new TCP connection per request (vmnb-crr), through the drivers in
latency.py and load.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from harness.guests.attachment import Ends
from harness.kinds.base import TOOL_OVERHEAD_S, TestKind, gbit
from harness.kinds.latency import (
    LatencySample,
    crr_client_argv,
    measure_crr,
    measure_rr,
    measure_vmnb_rr,
    parse_crr_output,
    parse_sockperf_output,
    parse_vmnb_rr_output,
    sockperf_client_argv,
    sockperf_server_argv,
    vmnb_rr_client_argv,
)
from harness.kinds.load import RAMP_S, TAIL_S, measure_rr_under_load
from harness.kinds.outcome import Metric, Outcome
from harness.lab.vocabulary import Protocol, Status

SOCKPERF_LOG = "/tmp/vmnb-sockperf.csv"
"""Where a cluster's rr client writes its full log (the Job prints it after sockperf's own output)."""


class RequestResponse(TestKind):
    """Ping-pong: one message in flight. `closed` sends the next request when the reply arrives; `open` schedules
    requests at `rate_per_s` and counts latency from the scheduled send time. `tool`: sockperf (Debian's 3.7,
    IPv4 only) or vmnb-rr (guest_files/rr.c, the same model over either family); unset, sockperf over IPv4 and
    vmnb-rr over IPv6. Rows say which (`test_tool`), and every ratio is to a direct measured with the same tool."""

    kind: Literal["rr"]
    protocol_name: Literal["tcp", "udp"] = Field("tcp", alias="protocol")
    mode: Literal["closed", "open"] = "closed"
    rate_per_s: int | None = Field(None, ge=1, le=1_000_000)
    duration_s: int = Field(3, ge=1, le=3600)  # whole seconds: sockperf reads -t as an integer (1.5 runs 1 s)
    message_bytes: int = Field(64, ge=14, le=65000)
    port: int = Field(11111, ge=1, le=65535)
    load: Literal["idle", "same", "reverse"] = "idle"
    """`same`/`reverse`: the round trips run while one bulk TCP stream (iperf3) crosses the same path with its
    data the same way as the requests (client to server) or the reverse way (server to client, iperf3 -R)."""
    load_port: int = Field(5202, ge=1, le=65535)
    tool: Literal["sockperf", "vmnb-rr"] | None = None
    primary_metric: ClassVar[str] = "rtt_p50"
    sweep_fields: ClassVar[dict[str, str]] = {"message_bytes": "message_bytes"}
    cluster_prints: ClassVar[tuple[str, ...]] = (SOCKPERF_LOG,)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def ipv6_missing(self) -> str:  # type: ignore[override]  # per test: only the sockperf it names lacks IPv6
        if self.tool == "sockperf":
            return (
                "sockperf 3.7, Debian 12's and 13's, takes IPv4 addresses only (IPv6 came in sockperf 3.8, which "
                "Debian does not ship); leave `tool` unset and vmnb-rr measures the IPv6 round trips"
            )
        return ""

    @model_validator(mode="after")
    def _rate_for_open_loop(self) -> RequestResponse:
        if self.mode == "open" and self.rate_per_s is None:
            raise ValueError("field 'rate_per_s': required when mode is open (requests per second to schedule)")
        if self.mode == "closed" and self.rate_per_s is not None:
            raise ValueError(
                "field 'rate_per_s': only for mode open; a closed loop sends the next request when the "
                "answer arrives (remove it, or set mode: open)"
            )
        if self.load != "idle" and self.load_port == self.port and self.protocol is Protocol.TCP:
            raise ValueError(f"field 'load_port': the bulk stream needs a port of its own, not {self.port}")
        if self.tool == "vmnb-rr" and self.message_bytes < 8:
            raise ValueError("field 'message_bytes': vmnb-rr carries its sequence number in 8 bytes (8 or more)")
        return self

    @property
    def test_tool(self) -> str:
        """The tool this test runs: the scenario's, else sockperf over IPv4 and vmnb-rr over IPv6."""
        return self.tool or ("vmnb-rr" if self.ip_family == "ipv6" else "sockperf")

    @property
    def protocol(self) -> Protocol:
        return Protocol(self.protocol_name)

    @property
    def base_label(self) -> str:
        label = f"rr_{self.protocol}_{self.mode}" + (f"@{self.rate_per_s}" if self.mode == "open" else "")
        label += "" if self.load == "idle" else f"+load_{self.load}"
        # vmnb-rr asked for over IPv4 (sockperf's family) is its own test: the two tools side by side
        return label + ("+vmnb-rr" if self.tool == "vmnb-rr" and self.ip_family == "ipv4" else "")

    def columns(self) -> dict:
        return {
            **super().columns(),
            "message_bytes": self.message_bytes,
            "load": self.load,
            "test_tool": self.test_tool,
        }

    def expected_seconds(self) -> float:
        loaded = 0.0 if self.load == "idle" else RAMP_S + TAIL_S
        return self.duration_s + loaded + TOOL_OVERHEAD_S  # sockperf's 0.4 s warm-up is inside its -t

    def ports(self) -> tuple[set[int], set[int]]:
        tcp, udp = ({self.port}, set()) if self.protocol is Protocol.TCP else (set(), {self.port})
        return (tcp | {self.load_port} if self.load != "idle" else tcp), udp

    def cluster_reason(self) -> str:
        if self.load != "idle":
            return "an rr test under load runs a bulk stream beside the round trips, which the cluster Jobs do not"
        return ""

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        if self.test_tool == "vmnb-rr":
            return vmnb_rr_client_argv(
                binary("vmnb-rr"),
                target,
                port=self.port,
                protocol=str(self.protocol),
                duration_s=self.duration_s,
                rate_per_s=self.rate_per_s if self.mode == "open" else None,
                message_bytes=self.message_bytes,
            )
        return sockperf_client_argv(
            target,
            port=self.port,
            protocol=str(self.protocol),
            duration_s=self.duration_s,
            rate_per_s=self.rate_per_s if self.mode == "open" else None,
            message_bytes=self.message_bytes,
            log=SOCKPERF_LOG,
        )

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        if self.test_tool == "vmnb-rr":
            return [[binary("vmnb-rr"), "server", "--port", str(self.port)]]
        return [sockperf_server_argv(self.port, str(self.protocol))]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        """stdout: sockperf's output followed by its full log (a cluster Job prints both), or vmnb-rr's JSON."""
        if self.test_tool == "vmnb-rr":
            return self._outcome(parse_vmnb_rr_output(stdout, stderr))
        s = parse_sockperf_output(
            stdout,
            stderr,
            returncode,
            rate_per_s=self.rate_per_s if self.mode == "open" else None,
            duration_s=self.duration_s,
        )
        return self._outcome(s)

    def _outcome(self, s: LatencySample) -> Outcome:
        outcome = latency_outcome(s, "rtt", self.message_bytes)
        if outcome.status is Status.OK:
            outcome.metrics.append(Metric("rr_rate", "req/s", s.rate_per_s))
        return outcome

    def measure(self, ends: Ends, label: str) -> Outcome:
        def round_trips() -> LatencySample:
            measure = measure_vmnb_rr if self.test_tool == "vmnb-rr" else measure_rr
            return measure(
                ends,
                port=self.port,
                protocol=str(self.protocol),
                duration_s=self.duration_s,
                rate_per_s=self.rate_per_s if self.mode == "open" else None,
                message_bytes=self.message_bytes,
                label=label,
            )

        if self.load == "idle":
            return self._outcome(round_trips())
        loaded = measure_rr_under_load(
            ends,
            round_trips,
            port=self.load_port,
            rr_duration_s=self.duration_s,
            reverse=self.load == "reverse",
            label=label,
        )
        s, bulk = loaded.rr, loaded.bulk
        if bulk.status != "ok":
            return Outcome(Status.FAILED, f"bulk stream failed: {bulk.reason}", [Metric("rtt_p50", "us", None)])
        outcome = self._outcome(s)
        if outcome.status is Status.OK:
            outcome.metrics.append(
                Metric("load_throughput", "Gbit/s", gbit(bulk.bits_per_second), retransmits=bulk.retransmits)
            )
            # CPU counts both flows: per GB of everything moved, not per request (the bulk stream dominates).
            outcome.bytes_moved += bulk.bytes or 0
            outcome.requests = 0
            outcome.raw = bulk.raw
        return outcome


class ConnectRequestResponse(TestKind):
    """A new TCP connection per request (connect, request, response, close), closed loop."""

    kind: Literal["crr"]
    duration_s: float = Field(2.0, gt=0, le=600)
    message_bytes: int = Field(64, ge=1, le=65000)
    port: int = Field(11112, ge=1, le=65535)
    primary_metric: ClassVar[str] = "crr_rate"
    ipv6_missing: ClassVar[str] = ""  # vmnb-crr dials either family and serves both (guest_files/inet.h)

    def columns(self) -> dict:
        return {**super().columns(), "message_bytes": self.message_bytes}

    def measure(self, ends: Ends, label: str) -> Outcome:
        return self._outcome(
            measure_crr(ends, port=self.port, duration_s=self.duration_s, message_bytes=self.message_bytes, label=label)
        )

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return crr_client_argv(
            binary("vmnb-crr"), target, port=self.port, duration_s=self.duration_s, message_bytes=self.message_bytes
        )

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [[binary("vmnb-crr"), "server", "--port", str(self.port)]]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        return self._outcome(parse_crr_output(stdout, stderr))

    def _outcome(self, s: LatencySample) -> Outcome:
        outcome = latency_outcome(s, "crr_latency", self.message_bytes)
        outcome.metrics.insert(0, Metric("crr_rate", "conn/s", s.rate_per_s))
        return outcome


def latency_outcome(s: LatencySample, prefix: str, message_bytes: int) -> Outcome:
    if s.status != "ok" or s.rtt_us.size == 0:
        return Outcome(Status(s.status), s.reason, [Metric(f"{prefix}_p50", "us", None)], transcript=s.transcript)
    p50, p99 = np.percentile(s.rtt_us, [50, 99])
    metrics = [Metric(f"{prefix}_p50", "us", float(p50)), Metric(f"{prefix}_p99", "us", float(p99))]
    return Outcome(
        Status.OK,
        "",
        metrics,
        bytes_moved=s.requests * message_bytes * 2,
        requests=s.requests,
        rtt_us=s.rtt_us,
        transcript=s.transcript,
    )
