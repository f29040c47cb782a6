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

import numpy as np

from harness.experiment.endpoints import ToolReport, client_against_server, failure_reason, parse_tool_json
from harness.experiment.latency import LatencySample
from harness.guests.attachment import Ends

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


def server_argv(ends: Ends, port: int, *, protocol: str = "http", stall_after_s: float = 0,
                stall_ms: int = 0) -> list[str]:  # fmt: skip
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
    client = client_argv(ends.client.binary(tool), ends.target, port=port, rate_rps=rate_rps,
                         duration_s=duration_s, connections=connections, payload_bytes=payload_bytes, host=host,
                         protocol=protocol)  # fmt: skip
    run = client_against_server(ends, server_argv=server_argv(ends, port, protocol=protocol,
                                                              stall_after_s=stall_after_s, stall_ms=stall_ms),
                                port=port, client_argv=client, budget_s=duration_s + GRACE_S + 15,
                                label=f"{label}-http")  # fmt: skip
    if run.error:
        return LatencySample("failed", run.error)
    sample = parse_http_output(run.done.stdout, run.done.stderr, protocol=protocol)
    sample.transcript = run.transcript()
    return sample


def client_argv(binary: str, target: str, *, port: int, rate_rps: int, duration_s: float, connections: int,
                payload_bytes: int, host: str, protocol: str) -> list[str]:  # fmt: skip
    return [binary, "client", "--target", target, "--port", str(port), "--rate", str(rate_rps),
            "--duration", f"{duration_s:g}", "--connections", str(connections), "--bytes", str(payload_bytes),
            "--host", host, "--grace", f"{GRACE_S:g}", *(["--grpc", "1"] if protocol == "grpc" else [])]  # fmt: skip


def parse_http_output(stdout: str, stderr: str = "", *, protocol: str = "http") -> LatencySample:
    tool = TOOLS[protocol]
    report, raw, error = parse_tool_json(tool, stdout, HttpReport, stderr=stderr)
    if error:
        return LatencySample("failed", error, extra={"raw": raw})
    sample = LatencySample("ok", rtt_us=np.asarray(report.latency_us, dtype=float), requests=report.completed,
                           seconds=report.seconds, extra={"scheduled": report.scheduled, "errors": report.errors,
                           "raw": {k: v for k, v in raw.items() if k != "latency_us"}})  # fmt: skip
    if report.completed == 0:
        sample.status, sample.reason = "failed", failure_reason(report.first_error or "no request answered")
    elif report.errors:
        sample.status = "failed"
        sample.reason = (f"{report.errors} of {report.scheduled} requests failed: "
                         f"{failure_reason(report.first_error or 'unknown')}")  # fmt: skip
    return sample
