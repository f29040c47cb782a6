"""The test kinds a scenario may list, each registered once with what the rest of the harness asks of it: its
scenario fields (validated), its protocol, its primary metric, the ports it needs forwarded, and how it runs
(`measure`, through the tool drivers iperf.py and latency.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from harness.experiment.dns import measure_dns
from harness.experiment.http import TOOLS as HTTP_TOOLS
from harness.experiment.http import client_argv as http_client_argv
from harness.experiment.http import measure_http, parse_http_output
from harness.experiment.iperf import (
    ThroughputSample,
    UdpSample,
    measure_tcp_throughput,
    measure_udp_throughput,
    parse_tcp_output,
    parse_udp_output,
    tcp_client_argv,
    udp_client_argv,
)
from harness.experiment.latency import (
    LatencySample,
    crr_client_argv,
    measure_crr,
    measure_rr,
    parse_crr_output,
    parse_sockperf_output,
    sockperf_client_argv,
    sockperf_server_argv,
)
from harness.experiment.load import RAMP_S, TAIL_S, measure_rr_under_load
from harness.experiment.outcome import Metric, Outcome
from harness.guests.attachment import Ends
from harness.lab.vocabulary import Direction, Protocol, Status
from harness.pod.dns_proxy import MESH_ONLY_HOST, RESOLVER_ONLY_HOST, SERVICE_HOST
from harness.pod.protocols import GRPC_PORT, HTTP_PORT, http_ports


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _both_directions() -> list[Direction]:
    return list(Direction)


Directions = Annotated[list[Direction], Field(default_factory=_both_directions, min_length=1)]


SOCKPERF_LOG = "/tmp/vmnb-sockperf.csv"
"""Where a cluster's rr client writes its full log (the Job prints it after sockperf's own output)."""

TOOL_OVERHEAD_S = 0.4  # starting a server, waiting for it to listen, the client's start-up, reading its output
# (an mtu.yaml run here: 144 cells of two 1-s iperf3 tests took 410 s, 2.85 s per cell)


def gbit(bits_per_second: float | None) -> float | None:
    return bits_per_second / 1e9 if bits_per_second else None


class TestKind(Strict):
    """What every test kind has; subclasses add their fields and `measure`."""

    __test__ = False  # not a pytest class
    kind: str
    directions: Directions
    primary_metric: ClassVar[str]
    proxy_cost_per_request: ClassVar[bool] = False
    """Rows get each mesh proxy's CPU per 1000 requests per second and its resident memory (Istio's own units)."""
    sweep_fields: ClassVar[dict[str, str]] = {}
    """Which of a scenario's test-level sweeps (message_bytes, streams) this kind takes, and into which field."""
    _swept: str = PrivateAttr("")

    @property
    def protocol(self) -> Protocol:
        return Protocol.TCP

    @property
    def base_label(self) -> str:
        return self.kind

    @property
    def label(self) -> str:
        """The test's name in rows; a value a sweep set is part of it (`rr_tcp_closed/1400B`), so every analysis
        keyed on the test keeps the swept values apart."""
        return self.base_label + self._swept

    def swept(self, parameter: str, value: int) -> TestKind:
        """A copy with a sweep's value set (`parameter` one of sweep_fields)."""
        copy = self.model_copy(update={self.sweep_fields[parameter]: value})
        copy._swept = self._swept + ("/" + (f"{value}B" if parameter == "message_bytes" else f"P{value}"))
        return copy

    def columns(self) -> dict:
        """The test's parameters that rows carry as columns (message size, streams, load)."""
        return {"message_bytes": None, "streams": None, "load": None, "offered_rps": None}

    def expected_seconds(self) -> float:
        """Wall time of one direction, for a sweep's time estimate: the tool's run plus starting its server."""
        return self.duration_s + TOOL_OVERHEAD_S

    def ports(self) -> tuple[set[int], set[int]]:
        """(TCP ports, UDP ports) the VM must serve for this test."""
        return {self.port}, set()

    def measure(self, ends: Ends, label: str) -> Outcome:
        raise NotImplementedError

    # What a cluster runs instead (harness/cluster): the same client with the same arguments, long-lived servers,
    # and the same parsing of the client's output into an Outcome.
    netns_only: ClassVar[str] = ""
    """Why the kind runs only on the netns runtime with the netns guest ('' = it runs anywhere)."""
    cluster_unsupported: ClassVar[str] = ""
    """Why a kind has no cluster Job (it needs the harness's own bed), or empty."""

    def cluster_reason(self) -> str:
        """Empty when this test can run on a cluster; else why not, in one sentence."""
        return self.cluster_unsupported

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        """The client's command line (`binary` finds a project tool; on a cluster it is on PATH)."""
        raise NotImplementedError

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        """The long-lived servers a cluster's far end runs for this test."""
        raise NotImplementedError

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        """The client's output (as the harness reads it, or as a cluster's Job printed it) as an Outcome."""
        raise NotImplementedError


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

    def columns(self) -> dict:
        return {**super().columns(), "streams": self.streams}

    def expected_seconds(self) -> float:
        return self.duration_s + self.omit_s + TOOL_OVERHEAD_S

    def measure(self, ends: Ends, label: str) -> Outcome:
        return self._outcome(measure_tcp_throughput(ends, port=self.port, duration_s=self.duration_s,
                                                    omit_s=self.omit_s, streams=self.streams, label=label))  # fmt: skip

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return tcp_client_argv(target, port=self.port, duration_s=self.duration_s, omit_s=self.omit_s,
                               streams=self.streams)  # fmt: skip

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [["iperf3", "-s", "-p", str(self.port)]]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        return self._outcome(parse_tcp_output(stdout, stderr))

    @staticmethod
    def _outcome(s: ThroughputSample) -> Outcome:
        metric = Metric("throughput", "Gbit/s", gbit(s.bits_per_second), retransmits=s.retransmits,
                        cpu_client_pct=s.cpu_client_pct, cpu_server_pct=s.cpu_server_pct)  # fmt: skip
        return Outcome(Status(s.status), s.reason, [metric], bytes_moved=s.bytes or 0, raw=s.raw,
                       transcript=s.transcript)  # fmt: skip


class UdpThroughput(TestKind):
    """iperf3 -u at a set offered rate: delivered rate, loss and jitter."""

    kind: Literal["udp_throughput"]
    rate_mbit: float = Field(500, gt=0, le=100_000)
    datagram_bytes: int = Field(1400, ge=64, le=65000)
    duration_s: int = Field(3, ge=1, le=3600)  # whole seconds, as for tcp_throughput (iperf3's -t)
    port: int = Field(5201, ge=1, le=65535)
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
        return self._outcome(measure_udp_throughput(ends, port=self.port, rate_mbit=self.rate_mbit,
                                                    datagram_bytes=self.datagram_bytes, duration_s=self.duration_s,
                                                    label=label))  # fmt: skip

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return udp_client_argv(target, port=self.port, rate_mbit=self.rate_mbit, datagram_bytes=self.datagram_bytes,
                               duration_s=self.duration_s)  # fmt: skip

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
        return Outcome(Status(s.status), s.reason, metrics, bytes_moved=s.bytes or 0, raw=s.raw,
                       transcript=s.transcript)  # fmt: skip


class RequestResponse(TestKind):
    """sockperf ping-pong: one message in flight. `closed` sends the next request when the reply arrives;
    `open` schedules requests at `rate_per_s` and counts latency from the scheduled send time."""

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
    primary_metric: ClassVar[str] = "rtt_p50"
    sweep_fields: ClassVar[dict[str, str]] = {"message_bytes": "message_bytes"}
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _rate_for_open_loop(self) -> RequestResponse:
        if self.mode == "open" and self.rate_per_s is None:
            raise ValueError("field 'rate_per_s': required when mode is open (requests per second to schedule)")
        if self.mode == "closed" and self.rate_per_s is not None:
            raise ValueError("field 'rate_per_s': only for mode open; a closed loop sends the next request when the "
                             "answer arrives (remove it, or set mode: open)")  # fmt: skip
        if self.load != "idle" and self.load_port == self.port and self.protocol is Protocol.TCP:
            raise ValueError(f"field 'load_port': the bulk stream needs a port of its own, not {self.port}")
        return self

    @property
    def protocol(self) -> Protocol:
        return Protocol(self.protocol_name)

    @property
    def base_label(self) -> str:
        label = f"rr_{self.protocol}_{self.mode}" + (f"@{self.rate_per_s}" if self.mode == "open" else "")
        return label + ("" if self.load == "idle" else f"+load_{self.load}")

    def columns(self) -> dict:
        return {**super().columns(), "message_bytes": self.message_bytes, "load": self.load}

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
        return sockperf_client_argv(target, port=self.port, protocol=str(self.protocol), duration_s=self.duration_s,
                                    rate_per_s=self.rate_per_s if self.mode == "open" else None,
                                    message_bytes=self.message_bytes, log=SOCKPERF_LOG)  # fmt: skip

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [sockperf_server_argv(self.port, str(self.protocol))]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        """stdout: sockperf's output followed by its full log (a cluster Job prints both)."""
        s = parse_sockperf_output(stdout, stderr, returncode, rate_per_s=self.rate_per_s if self.mode == "open"
                                  else None, duration_s=self.duration_s)  # fmt: skip
        return self._outcome(s)

    def _outcome(self, s: LatencySample) -> Outcome:
        outcome = latency_outcome(s, "rtt", self.message_bytes)
        if outcome.status is Status.OK:
            outcome.metrics.append(Metric("rr_rate", "req/s", s.rate_per_s))
        return outcome

    def measure(self, ends: Ends, label: str) -> Outcome:
        def round_trips() -> LatencySample:
            return measure_rr(ends, port=self.port, protocol=str(self.protocol), duration_s=self.duration_s,
                              rate_per_s=self.rate_per_s if self.mode == "open" else None,
                              message_bytes=self.message_bytes, label=label)  # fmt: skip

        if self.load == "idle":
            return self._outcome(round_trips())
        loaded = measure_rr_under_load(ends, round_trips, port=self.load_port, rr_duration_s=self.duration_s,
                                       reverse=self.load == "reverse", label=label)  # fmt: skip
        s, bulk = loaded.rr, loaded.bulk
        if bulk.status != "ok":
            return Outcome(Status.FAILED, f"bulk stream failed: {bulk.reason}", [Metric("rtt_p50", "us", None)])
        outcome = self._outcome(s)
        if outcome.status is Status.OK:
            outcome.metrics.append(Metric("load_throughput", "Gbit/s", gbit(bulk.bits_per_second),
                                          retransmits=bulk.retransmits))  # fmt: skip
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

    def columns(self) -> dict:
        return {**super().columns(), "message_bytes": self.message_bytes}

    def measure(self, ends: Ends, label: str) -> Outcome:
        return self._outcome(measure_crr(ends, port=self.port, duration_s=self.duration_s,
                                         message_bytes=self.message_bytes, label=label))  # fmt: skip

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return crr_client_argv(binary("vmnb-crr"), target, port=self.port, duration_s=self.duration_s,
                               message_bytes=self.message_bytes)  # fmt: skip

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [[binary("vmnb-crr"), "server", "--port", str(self.port)]]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        return self._outcome(parse_crr_output(stdout, stderr))

    def _outcome(self, s: LatencySample) -> Outcome:
        outcome = latency_outcome(s, "crr_latency", self.message_bytes)
        outcome.metrics.insert(0, Metric("crr_rate", "conn/s", s.rate_per_s))
        return outcome


class DnsLookup(TestKind):
    """The VM resolving names through its binding (egress only): the peer's Service name, which the cluster's
    resolver and the mesh both know, a ServiceEntry host only the mesh's DNS proxy answers, and an external name
    only the resolver knows (harness/experiment/dns.py). Under ambient with DNS capture, lookups that reach the
    proxy resolve all three (the external one forwarded); lookups that bypass it miss the ServiceEntry host."""

    kind: Literal["dns"]
    transport: Literal["udp", "tcp"] = "udp"
    queries: int = Field(5, ge=1, le=200)
    """Lookups of each name."""
    directions: Annotated[list[Direction], Field(default_factory=lambda: [Direction.EGRESS], min_length=1)]
    primary_metric: ClassVar[str] = "dns_service_resolved"
    netns_only: ClassVar[str] = "dig and dnsmasq are not in the docker image or the QEMU guest"
    cluster_unsupported: ClassVar[str] = ("a dns test needs the bed's resolver, ServiceEntry host and external name "
                                          "(harness/pod/dns_proxy.py), which a cluster names differently")  # fmt: skip

    @model_validator(mode="after")
    def _egress_only(self) -> DnsLookup:
        if self.directions != [Direction.EGRESS]:
            raise ValueError("field 'directions': a dns test runs egress only (the VM resolving names)")
        return self

    @property
    def protocol(self) -> Protocol:
        return Protocol(self.transport)

    @property
    def base_label(self) -> str:
        return f"dns_{self.transport}"

    def expected_seconds(self) -> float:
        return 0.05 * 3 * self.queries + TOOL_OVERHEAD_S

    def ports(self) -> tuple[set[int], set[int]]:
        return set(), set()  # the VM serves nothing: it is the client

    def measure(self, ends: Ends, label: str) -> Outcome:
        s = measure_dns(ends, transport=self.transport, queries=self.queries, label=label)
        if s.status != "ok":
            return Outcome(Status(s.status), s.reason, [Metric("dns_service_resolved", "fraction", None)], raw=s.raw)
        metrics = [
            Metric("dns_service_resolved", "fraction", s.resolved.get(SERVICE_HOST, 0) / s.queries),
            Metric("dns_mesh_only_resolved", "fraction", s.resolved.get(MESH_ONLY_HOST, 0) / s.queries),
            Metric("dns_external_resolved", "fraction", s.resolved.get(RESOLVER_ONLY_HOST, 0) / s.queries),
            Metric("dns_resolver_queries", "queries", float(s.resolver_queries)),
        ]
        return Outcome(Status.OK, "", metrics, raw=s.raw, dns_queries=3 * s.queries)


class HttpLoad(TestKind):
    """HTTP at a fixed offered rate, open loop (harness/experiment/http.py): POSTs of `payload_bytes` answered
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
    proxy_cost_per_request: ClassVar[bool] = True

    @model_validator(mode="after")
    def _http_port(self) -> HttpLoad:
        if self.grpc and self.http_version != "2":
            raise ValueError("field 'grpc': gRPC runs over HTTP/2; set http_version: \"2\"")
        if self.port == 0:
            self.port = GRPC_PORT if self.http_version == "2" else HTTP_PORT
        if self.port not in http_ports():
            raise ValueError(f"field 'port': {self.port} is not an HTTP port of the bed's Services; allowed: "
                             f"{', '.join(map(str, http_ports()))} (harness/pod/protocols.py names them)")  # fmt: skip
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
        return self._outcome(measure_http(ends, port=self.port, rate_rps=self.rate_rps, duration_s=self.duration_s,
                                          connections=self.connections, payload_bytes=self.payload_bytes,
                                          label=label, protocol=self.protocol))  # fmt: skip

    def client_argv(self, target: str, binary: Callable[[str], str] = str, *, host: str = "server") -> list[str]:
        return http_client_argv(binary(HTTP_TOOLS[self.protocol]), target, port=self.port, rate_rps=self.rate_rps,
                                duration_s=self.duration_s, connections=self.connections,
                                payload_bytes=self.payload_bytes, host=host, protocol=self.protocol)  # fmt: skip

    def server_argvs(self, binary: Callable[[str], str] = str) -> list[list[str]]:
        return [[binary(HTTP_TOOLS[self.protocol]), "server", "--port", str(self.port)]]

    def outcome_from_output(self, stdout: str, stderr: str = "", returncode: int = 0) -> Outcome:
        return self._outcome(parse_http_output(stdout, stderr, protocol=self.protocol))

    def _outcome(self, s: LatencySample) -> Outcome:
        raw = s.extra.get("raw", {})
        if s.rtt_us.size == 0:
            return Outcome(Status(s.status), s.reason, [Metric("http_latency_p50", "us", None)], raw=raw,
                           transcript=s.transcript)  # fmt: skip
        p50, p90, p99, p999 = np.percentile(s.rtt_us, [50, 90, 99, 99.9])
        metrics = [Metric("http_latency_p50", "us", float(p50)), Metric("http_latency_p90", "us", float(p90)),
                   Metric("http_latency_p99", "us", float(p99)), Metric("http_latency_p999", "us", float(p999)),
                   Metric("http_achieved_rps", "req/s", s.rate_per_s),
                   Metric("http_errors", "requests", float(s.extra["errors"]))]  # fmt: skip
        return Outcome(Status(s.status), s.reason, metrics, bytes_moved=s.requests * self.payload_bytes * 2,
                       requests=s.requests, rtt_us=s.rtt_us, raw=raw, transcript=s.transcript)  # fmt: skip


def latency_outcome(s: LatencySample, prefix: str, message_bytes: int) -> Outcome:
    if s.status != "ok" or s.rtt_us.size == 0:
        return Outcome(Status(s.status), s.reason, [Metric(f"{prefix}_p50", "us", None)], transcript=s.transcript)
    p50, p99 = np.percentile(s.rtt_us, [50, 99])
    metrics = [Metric(f"{prefix}_p50", "us", float(p50)), Metric(f"{prefix}_p99", "us", float(p99))]
    return Outcome(Status.OK, "", metrics, bytes_moved=s.requests * message_bytes * 2, requests=s.requests,
                   rtt_us=s.rtt_us, transcript=s.transcript)  # fmt: skip


TEST_KINDS: dict[str, type[TestKind]] = {
    cls.model_fields["kind"].annotation.__args__[0]: cls
    for cls in (TcpThroughput, UdpThroughput, RequestResponse, ConnectRequestResponse, DnsLookup, HttpLoad)
}
Test = Annotated[TcpThroughput | UdpThroughput | RequestResponse | ConnectRequestResponse | DnsLookup | HttpLoad,
                 Field(discriminator="kind")]  # fmt: skip
