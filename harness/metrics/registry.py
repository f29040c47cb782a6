"""Every metric the harness writes, declared once: its unit, which way is better, the test family it comes
from, the label tables print, and the gate's default minimum effect. Test kinds emit metrics by these names;
tables, figures, answer.md, sweeps, compare and the gate read them from here (benchmarks/gates.yaml only
overrides thresholds)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True)
class DecisionColumn:
    """A column of the decision page's cost tables: the metric's ratio to a plain pod in one test and direction."""

    heading: str
    test: str
    """The test label its rows carry (the kind's label at its defaults: `rr_tcp_closed`)."""
    direction: str
    stage: str = ""
    """The recommendation's criterion it is judged in (STAGES, in turn); '' = shown, not judged."""
    ranked: bool = False
    """Ranked per layout on the page (the throughput and connection-rate columns)."""


STAGES = ("throughput", "CPU per GB", "latency and connection rate")
"""The recommendation's cost criteria in turn: a later stage only separates what the earlier left tied."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    better: Better
    family: str
    """The test family (kinds' base label) that measures it, or `harness`/`cost` for rows every test gets."""
    label: str
    min_effect: float = 0.10
    """The smallest relative change the gate and compare care about (a default; gates.yaml may override)."""
    headline: bool = False
    """Shown in sweep tables and figures."""
    decision: tuple[DecisionColumn, ...] = ()
    """Its columns on the decision page (answer.md), declared with the metric a test kind emits."""

    @property
    def higher_is_better(self) -> bool:
        return self.better is Better.HIGHER


_H, _L = Better.HIGHER, Better.LOWER
METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec(
            "throughput",
            "Gbit/s",
            _H,
            "tcp_throughput",
            "TCP throughput",
            0.10,
            headline=True,
            decision=(
                DecisionColumn("TCP in", "tcp_throughput", "ingress", STAGES[0], ranked=True),
                DecisionColumn("TCP out", "tcp_throughput", "egress", STAGES[0], ranked=True),
            ),
        ),
        MetricSpec("udp_goodput", "Gbit/s", _H, "udp_throughput", "UDP goodput", headline=True),
        MetricSpec("udp_loss", "%", _L, "udp_throughput", "UDP loss", 0.50),
        MetricSpec("udp_jitter", "ms", _L, "udp_throughput", "UDP jitter", 0.50),
        MetricSpec(
            "rtt_p50",
            "us",
            _L,
            "rr",
            "RR p50",
            0.15,
            headline=True,
            decision=(DecisionColumn("RR p50", "rr_tcp_closed", "ingress", STAGES[2]),),
        ),
        MetricSpec(
            "rtt_p99",
            "us",
            _L,
            "rr",
            "RR p99",
            0.25,
            headline=True,
            decision=(DecisionColumn("RR p99", "rr_tcp_closed", "ingress"),),
        ),
        MetricSpec("rr_rate", "req/s", _H, "rr", "RR rate", 0.15),
        MetricSpec("load_throughput", "Gbit/s", _H, "rr", "bulk stream under RR", headline=True),
        MetricSpec(
            "crr_rate",
            "conn/s",
            _H,
            "crr",
            "CRR rate",
            0.15,
            headline=True,
            decision=(
                DecisionColumn("CRR in", "crr", "ingress", STAGES[2], ranked=True),
                DecisionColumn("CRR out", "crr", "egress", STAGES[2], ranked=True),
            ),
        ),
        MetricSpec("crr_latency_p50", "us", _L, "crr", "CRR p50", 0.15),
        MetricSpec("crr_latency_p99", "us", _L, "crr", "CRR p99", 0.25),
        MetricSpec("dns_service_resolved", "fraction", _H, "dns", "DNS: Service resolved", 0.10),
        MetricSpec("dns_mesh_only_resolved", "fraction", _H, "dns", "DNS: ServiceEntry host resolved", 0.10),
        MetricSpec("dns_external_resolved", "fraction", _H, "dns", "DNS: external name resolved", 0.10),
        MetricSpec("dns_resolver_queries", "queries", _L, "dns", "DNS: queries at the resolver", 0.50),
        MetricSpec("http_latency_p50", "us", _L, "http", "HTTP p50", 0.15, headline=True),
        MetricSpec("http_latency_p90", "us", _L, "http", "HTTP p90", 0.20),
        MetricSpec("http_latency_p99", "us", _L, "http", "HTTP p99", 0.25, headline=True),
        MetricSpec("http_latency_p999", "us", _L, "http", "HTTP p99.9", 0.50),
        MetricSpec("http_achieved_rps", "req/s", _H, "http", "HTTP achieved rate", 0.05),
        MetricSpec("http_errors", "requests", _L, "http", "HTTP errors", 0.50),
        MetricSpec("migration_gap_tcp", "s", _L, "migration", "migration: TCP probe's largest gap", 0.50),
        MetricSpec("migration_gap_udp", "s", _L, "migration", "migration: UDP probe's largest gap", 0.50),
        MetricSpec("migration_connections_kept", "fraction", _H, "migration", "migration: connections kept", 0.50),
        MetricSpec("migration_stream_mbytes", "MB", _H, "migration", "migration: stream bytes delivered", 0.20),
        MetricSpec("migration_time", "s", _L, "migration", "migration: QEMU's total time", 0.50),
        MetricSpec("migration_downtime", "ms", _L, "migration", "migration: QEMU's downtime", 0.50),
        MetricSpec("proxy_vcpu_per_1000_rps", "vCPU", _L, "cost", "pod proxy vCPU per 1000 rps", 0.20),
        MetricSpec("peer_proxy_vcpu_per_1000_rps", "vCPU", _L, "cost", "peer proxy vCPU per 1000 rps", 0.20),
        MetricSpec("waypoint_vcpu_per_1000_rps", "vCPU", _L, "cost", "waypoint vCPU per 1000 rps", 0.20),
        MetricSpec("proxy_rss", "MiB", _L, "cost", "pod proxy resident memory", 0.20),
        MetricSpec(
            "cpu_per_gb",
            "s/GB",
            _L,
            "cost",
            "CPU/GB",
            0.20,
            decision=(DecisionColumn("CPU/GB in", "tcp_throughput", "ingress", STAGES[1]),),
        ),
        MetricSpec("cpu_bed_per_gb", "s/GB", _L, "cost", "bed CPU/GB", 0.20),
        MetricSpec("cpu_per_10k_req", "s", _L, "cost", "CPU/10k req", 0.20),
        MetricSpec("cpu_process", "s", _L, "cost", "process CPU", 0.30),
        MetricSpec("cpu_kernel", "s", _L, "cost", "kernel CPU", 0.30),
        MetricSpec("harness_cpu", "s", _L, "cost", "harness CPU", 0.50),
        MetricSpec("userspace_bytes_per_byte", "ratio", _L, "cost", "userspace bytes/byte", 0.20),
        MetricSpec("setup_time", "s", _L, "harness", "setup", 0.50),
        MetricSpec("teardown_time", "s", _L, "harness", "teardown", 0.50),
        MetricSpec("boot_time", "s", _L, "harness", "boot", 0.50),
    )
}


def spec(name: str) -> MetricSpec | None:
    """The spec of `name`, or of its base metric for a within-run ratio `<metric>/<reference>`."""
    return METRICS.get(name) or METRICS.get(name.split("/")[0])


def better(name: str) -> Better:
    found = spec(name)
    if found is None:
        raise KeyError(f"metric {name!r} is not declared in harness/metrics/registry.py")
    return found.better


def unit(name: str) -> str:
    found = spec(name)
    return found.unit if found else ""


def headline() -> dict[str, MetricSpec]:
    return {n: m for n, m in METRICS.items() if m.headline}
