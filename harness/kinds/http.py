"""HTTP at a fixed offered rate: vmnb-http (guest_files/http.c, HTTP/1.1) or vmnb-h2 (guest_files/h2.c, HTTP/2
and unary gRPC on libnghttp2) as server and open-loop client, on both ends so netns-guest and QEMU-guest numbers
come from one implementation.

Why our own client: Debian 12's HTTP load generators do not schedule open loop. wrk 4.1 is closed loop (each
connection sends the next request when the answer arrives, so a stall shows as fewer requests, not as latency:
coordinated omission); wrk2's constant-rate fork is not packaged; h2load's `--rps` paces each client but waits
on its `-m` stream limit and times a request from when it was sent, not when it was due; hey and fortio are not in
Debian 12; ghz (gRPC) is not packaged either. vmnb-http and vmnb-h2 schedule request k at t0 + k/rate, as
fortio's and wrk2's constant-throughput mode do, and count latency from that time. vmnb-h2's gRPC is the wire
format of grpc/grpc doc/PROTOCOL-HTTP2.md; tests/test_http.py runs it against grpcio's client and server."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from harness.guests.attachment import Ends
from harness.kinds.base import TOOL_OVERHEAD_S, TestKind
from harness.kinds.endpoints import ToolReport, client_against_server, failure_reason, parse_tool_json
from harness.kinds.latency import LatencySample
from harness.kinds.outcome import Metric, Outcome
from harness.lab.vocabulary import Status
from harness.pod.protocols import GRPC_PORT, HTTP_PORT, http_ports

GRACE_S = 10.0
"""How long after the last request is due the client waits for answers; later ones count as errors."""


class HttpReport(ToolReport):
    """The JSON of vmnb-http's and vmnb-h2's clients."""

    offered_rps: float
    scheduled: int
    completed: int
    errors: int
    first_error: str | None = None
    seconds: float
    latency_us: list[float]


TOOLS = {"http": "vmnb-http", "h2": "vmnb-h2", "grpc": "vmnb-h2"}
"""The tool for each protocol (HttpLoad.protocol)."""


def server_argv(
    ends: Ends, port: int, *, protocol: str = "http", stall_after_s: float = 0, stall_ms: int = 0
) -> list[str]:
    argv = [ends.server.binary(TOOLS[protocol]), "server", "--port", str(port)]
    return argv + (["--stall-after", f"{stall_after_s:g}", "--stall-ms", str(stall_ms)] if stall_ms else [])


def measure_http(
    ends: Ends,
    *,
    port: int,
    rate_rps: int,
    duration_s: float,
    connections: int,
    payload_bytes: int,
    label: str,
    host: str = "server",
    protocol: str = "http",
    stall_after_s: float = 0,
    stall_ms: int = 0,
) -> LatencySample:
    """One open-loop run: `rate_rps` POSTs (or gRPC calls) of `payload_bytes`, answered with as many, for
    `duration_s` over `connections` keep-alive connections (`protocol`: http, h2 or grpc): latencies, answered
    requests, the seconds from the first due time to the last answer, and in `extra` the scheduled count, the
    errors and the tool's JSON without its latencies. A run where any request failed is `failed`, with the first
    error."""
    tool = TOOLS[protocol]
    client = client_argv(
        ends.client.binary(tool),
        ends.target,
        port=port,
        rate_rps=rate_rps,
        duration_s=duration_s,
        connections=connections,
        payload_bytes=payload_bytes,
        host=host,
        protocol=protocol,
    )
    run = client_against_server(
        ends,
        server_argv=server_argv(ends, port, protocol=protocol, stall_after_s=stall_after_s, stall_ms=stall_ms),
        port=port,
        client_argv=client,
        budget_s=duration_s + GRACE_S + 15,
        label=f"{label}-http",
    )
    if run.error:
        return LatencySample("failed", run.error)
    sample = parse_http_output(run.done.stdout, run.done.stderr, protocol=protocol)
    sample.transcript = run.transcript()
    return sample


def client_argv(
    binary: str,
    target: str,
    *,
    port: int,
    rate_rps: int,
    duration_s: float,
    connections: int,
    payload_bytes: int,
    host: str,
    protocol: str,
) -> list[str]:
    return [
        binary,
        "client",
        "--target",
        target,
        "--port",
        str(port),
        "--rate",
        str(rate_rps),
        "--duration",
        f"{duration_s:g}",
        "--connections",
        str(connections),
        "--bytes",
        str(payload_bytes),
        "--host",
        host,
        "--grace",
        f"{GRACE_S:g}",
        *(["--grpc", "1"] if protocol == "grpc" else []),
    ]


def parse_http_output(stdout: str, stderr: str = "", *, protocol: str = "http") -> LatencySample:
    tool = TOOLS[protocol]
    report, raw, error = parse_tool_json(tool, stdout, HttpReport, stderr=stderr)
    if error:
        return LatencySample("failed", error, extra={"raw": raw})
    sample = LatencySample(
        "ok",
        rtt_us=np.asarray(report.latency_us, dtype=float),
        requests=report.completed,
        seconds=report.seconds,
        extra={
            "scheduled": report.scheduled,
            "errors": report.errors,
            "raw": {k: v for k, v in raw.items() if k != "latency_us"},
        },
    )
    if report.completed == 0:
        sample.status, sample.reason = "failed", failure_reason(report.first_error or "no request answered")
    elif report.errors:
        sample.status = "failed"
        sample.reason = (
            f"{report.errors} of {report.scheduled} requests failed: {failure_reason(report.first_error or 'unknown')}"
        )
    return sample


class HttpLoad(TestKind):
    """HTTP at a fixed offered rate, open loop (harness/kinds/http.py): POSTs of `payload_bytes` answered
    with as many, over `connections` keep-alive connections, as Istio's benchmark drives fortio (1 KB payload, 16
    connections, fixed rps). HTTP/1.1 (vmnb-http) goes to the Service's `http-echo` port 8000; HTTP/2 (h2c) and
    unary gRPC (vmnb-h2) to its `grpc-echo` port 8001, where Istio's clusters speak HTTP/2 upstream. Istio's
    sidecars take both ports through their HTTP connection manager (harness/pod/protocols.py); ambient's ztunnel
    stays L4."""

    kind: Literal["http"]
    rate_rps: int = Field(1000, ge=1, le=100_000)
    duration_s: float = Field(10.0, gt=0, le=600)
    connections: int = Field(16, ge=1, le=1024)
    payload_bytes: int = Field(1024, ge=0, le=200_000)
    http_version: Literal["1.1", "2"] = "1.1"
    grpc: bool = False
    """Unary gRPC calls (needs http_version "2")."""
    port: int = Field(0, ge=0, le=65535)
    """0: the Service's port for the protocol (8000 for HTTP/1.1, 8001 for HTTP/2 and gRPC)."""
    primary_metric: ClassVar[str] = "http_latency_p50"
    ipv6_missing: ClassVar[str] = ""  # vmnb-http / vmnb-h2 dial either family and serve both (guest_files/inet.h)
    proxy_cost_per_request: ClassVar[bool] = True

    @model_validator(mode="after")
    def _http_port(self) -> HttpLoad:
        if self.grpc and self.http_version != "2":
            raise ValueError("field 'grpc': gRPC runs over HTTP/2; set http_version: \"2\"")
        if self.port == 0:
            self.port = GRPC_PORT if self.http_version == "2" else HTTP_PORT
        if self.port not in http_ports():
            raise ValueError(
                f"field 'port': {self.port} is not an HTTP port of the bed's Services; allowed: "
                f"{', '.join(map(str, http_ports()))} (harness/pod/protocols.py names them)"
            )
        return self

    @property
    def protocol(self) -> str:
        """`http` (HTTP/1.1), `h2` or `grpc`: the first part of the test's label."""
        return "grpc" if self.grpc else "h2" if self.http_version == "2" else "http"

    @property
    def base_label(self) -> str:
        return f"{self.protocol}@{self.rate_rps}"

    def columns(self) -> dict:
        return {**super().columns(), "message_bytes": self.payload_bytes, "offered_rps": self.rate_rps}

    def expected_seconds(self) -> float:
        return self.duration_s + TOOL_OVERHEAD_S

    def measure(self, ends: Ends, label: str) -> Outcome:
        return self._outcome(
            measure_http(
                ends,
                port=self.port,
                rate_rps=self.rate_rps,
                duration_s=self.duration_s,
                connections=self.connections,
                payload_bytes=self.payload_bytes,
                label=label,
                protocol=self.protocol,
            )
        )

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return client_argv(
            binary(TOOLS[self.protocol]),
            target,
            port=self.port,
            rate_rps=self.rate_rps,
            duration_s=self.duration_s,
            connections=self.connections,
            payload_bytes=self.payload_bytes,
            host=host,
            protocol=self.protocol,
        )

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [[binary(TOOLS[self.protocol]), "server", "--port", str(self.port)]]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        return self._outcome(parse_http_output(stdout, stderr, protocol=self.protocol))

    def _outcome(self, s: LatencySample) -> Outcome:
        raw = s.extra.get("raw", {})
        if s.rtt_us.size == 0:
            return Outcome(
                Status(s.status), s.reason, [Metric("http_latency_p50", "us", None)], raw=raw, transcript=s.transcript
            )
        p50, p90, p99, p999 = np.percentile(s.rtt_us, [50, 90, 99, 99.9])
        metrics = [
            Metric("http_latency_p50", "us", float(p50)),
            Metric("http_latency_p90", "us", float(p90)),
            Metric("http_latency_p99", "us", float(p99)),
            Metric("http_latency_p999", "us", float(p999)),
            Metric("http_achieved_rps", "req/s", s.rate_per_s),
            Metric("http_errors", "requests", float(s.extra["errors"])),
        ]
        return Outcome(
            Status(s.status),
            s.reason,
            metrics,
            bytes_moved=s.requests * self.payload_bytes * 2,
            requests=s.requests,
            rtt_us=s.rtt_us,
            raw=raw,
            transcript=s.transcript,
        )
