"""Name lookups from the VM: the cluster's resolver on the peer's side (dnsmasq, standing for kube-dns: it knows the
peer's Service and an external name), queried with dig (its YAML output) for three names: the peer's Service
(both the resolver and the mesh's DNS proxy know it), a ServiceEntry host only the mesh's DNS proxy knows
(harness/pod/dns_proxy.py), and the external name only the resolver knows (the proxy must forward it). Which
names resolve, and how many queries reached the resolver, tell where the VM's queries went."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import Field, model_validator

from harness.guests.attachment import Ends
from harness.kinds.base import TOOL_OVERHEAD_S, TestKind
from harness.kinds.endpoints import client_against_server, failure_reason
from harness.kinds.outcome import Metric, Outcome
from harness.lab.vocabulary import Direction, Protocol, Status
from harness.pod.dns_proxy import MESH_ONLY_HOST, RESOLVER_ONLY_HOST, SERVICE_HOST

DNS_PORT = 53
QUERY_TIMEOUT_S = 2  # dig's +time: a query dropped on the way costs this much, and counts as unanswered


@dataclass
class DnsSample:
    status: str
    reason: str = ""
    queries: int = 0
    """Queries sent per name."""
    resolved: dict[str, int] = field(default_factory=dict)
    """Per name, the queries answered with the peer's address."""
    rcodes: dict[str, list[str]] = field(default_factory=dict)
    """Per name, each query's outcome: NOERROR, NXDOMAIN, SERVFAIL, ... or the dig error."""
    resolver_queries: int = 0
    """Queries the cluster's resolver logged (the mesh's DNS proxy forwards only what it does not know)."""
    raw: dict = field(default_factory=dict)


def resolver_argv(address: str, log: str) -> list[str]:
    """dnsmasq as the cluster's resolver: authoritative for the peer's Service and the external name, NXDOMAIN for
    every other name (`--local=/#/`: no upstream, as kube-dns with no route to the internet), UDP and TCP, every
    query logged."""
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--user=root",  # the log file is in the harness's scratch folder
        f"--port={DNS_PORT}",
        f"--listen-address={address}",
        "--bind-interfaces",
        "--local=/#/",
        f"--host-record={SERVICE_HOST},{address}",
        f"--host-record={RESOLVER_ONLY_HOST},{address}",
        "--log-queries",
        f"--log-facility={log}",
    ]


def dig_argv(server: str, names: list[str], *, tcp: bool) -> list[str]:
    return [
        "dig",
        f"@{server}",
        "-p",
        str(DNS_PORT),
        "+yaml",
        "+tries=1",
        f"+time={QUERY_TIMEOUT_S}",
        *(["+tcp"] if tcp else []),
        *names,
    ]


def parse_dig_yaml(text: str, expected: str) -> list[tuple[str, str]]:
    """Each query's (name, outcome) in dig's +yaml output: `resolved` when the answer holds `expected`, else the
    response code (NXDOMAIN, SERVFAIL, NOERROR without the address) or dig's error."""
    outcomes = []
    for doc in yaml.safe_load(text) or []:
        if doc.get("type") == "DIG_ERROR":
            outcomes.append(("", " ".join(str(doc.get("message", "")).split())))
            continue
        data = doc.get("message", {}).get("response_message_data", {})
        question = (data.get("QUESTION_SECTION") or [""])[0].split(" ")[0].rstrip(".")
        answers = data.get("ANSWER_SECTION") or []
        found = any(a.split()[-1] == expected for a in answers)
        outcomes.append((question, "resolved" if found else str(data.get("status", "no status"))))
    return outcomes


def measure_dns(ends: Ends, *, transport: str, queries: int, label: str) -> DnsSample:
    """`queries` lookups of each name from the client (the VM) to the resolver at `ends.target`."""
    names = [SERVICE_HOST, MESH_ONLY_HOST, RESOLVER_ONLY_HOST]
    with ends.server.scratch(f"{label}-resolver.log") as log:
        run = client_against_server(
            ends,
            server_argv=resolver_argv(ends.target, log),
            port=DNS_PORT,
            proto="udp",
            client_argv=dig_argv(ends.target, names * queries, tcp=transport == "tcp"),
            budget_s=len(names) * queries * (QUERY_TIMEOUT_S + 1) + 5,
            label=label,
        )
        logged = ends.server.read_text(log)
    if run.done is None or run.error:
        return DnsSample("failed", run.error or "the resolver did not start")
    try:
        outcomes = parse_dig_yaml(run.done.stdout, ends.target)
    except yaml.YAMLError:
        said = " ".join((run.done.stderr or run.done.stdout).split())[:120]
        return DnsSample("failed", f"dig printed no YAML; it said: {said!r}")
    sample = DnsSample("ok", queries=queries, resolver_queries=len(re.findall(r"\bquery\[", logged)))
    # dig's error documents name no query: they belong to the names in the order asked
    asked = iter(names * queries)
    for question, outcome in outcomes:
        name = question or next(asked)
        if question:
            next(asked, None)
        sample.rcodes.setdefault(name, []).append(outcome)
        sample.resolved[name] = sample.resolved.get(name, 0) + (outcome == "resolved")
    sample.raw = {"rcodes": sample.rcodes, "resolver_queries": sample.resolver_queries}
    if not sample.resolved.get(SERVICE_HOST):
        sample.status = "failed"
        sample.reason = failure_reason(" ".join(sorted(set(sample.rcodes.get(SERVICE_HOST, ["no answer"])))))
    return sample


class DnsLookup(TestKind):
    """The VM resolving names through its binding (egress only): the peer's Service name, which the cluster's
    resolver and the mesh both know, a ServiceEntry host only the mesh's DNS proxy answers, and an external name
    only the resolver knows (harness/kinds/dns.py). Under ambient with DNS capture, lookups that reach the
    proxy resolve all three (the external one forwarded); lookups that bypass it miss the ServiceEntry host."""

    kind: Literal["dns"]
    transport: Literal["udp", "tcp"] = "udp"
    queries: int = Field(5, ge=1, le=200)
    """Lookups of each name."""
    directions: Annotated[list[Direction], Field(default_factory=lambda: [Direction.EGRESS], min_length=1)]
    primary_metric: ClassVar[str] = "dns_service_resolved"
    netns_only: ClassVar[str] = "dig and dnsmasq are not in the docker image or the QEMU guest"
    cluster_unsupported: ClassVar[str] = (
        "a dns test needs the bed's resolver, ServiceEntry host and external name "
        "(harness/pod/dns_proxy.py), which a cluster names differently"
    )

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
