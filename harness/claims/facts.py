"""What the probes found, as typed facts. The rules in claims.yaml read them by attribute (`conn.tcp_ingress_none`,
`inv.extra_processes`, `perf.ingress_gbps`), and every attribute a rule or an evidence reference names is checked
against these classes when the file loads: a misspelt or renamed fact is an error there, not a silent
"not measurable here"."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, make_dataclass

from harness.lab.vocabulary import Direction, Protocol
from harness.pod.mesh import MESHES, SidecarKind


def connectivity_sidecars() -> tuple[SidecarKind, ...]:
    """The mesh layouts the connectivity probe tries, the no-mesh one first: the modes that declare
    `probed_by_claims` (none, Istio's sidecar, another mesh's sidecar, and Istio's ambient mode as a KubeVirt pod
    gets it, with no reroute annotation: the 'any sidecar' test)."""
    probed = [SidecarKind(name) for name, mesh in MESHES.items() if mesh.probed_by_claims]
    return tuple(sorted(probed, key=lambda kind: kind != SidecarKind.NONE))


def reach_key(protocol: Protocol, direction: Direction, sidecar: SidecarKind) -> str:
    """`tcp_ingress_envoy_redirect`: the fact holding works / bypassed / failed for one path."""
    return f"{protocol}_{direction}_{str(sidecar).replace('-', '_')}"


def _connectivity_fields(sidecars: tuple[SidecarKind, ...]) -> list[tuple]:
    out: list[tuple] = []
    for sidecar in sidecars:
        for protocol in Protocol:
            for direction in Direction:
                key = reach_key(protocol, direction, sidecar)
                out += [(key, str, field(default="failed")), (f"{key}_reason", str, field(default=""))]
    for sidecar in sidecars[1:]:
        out.append((f"tcp_through_{str(sidecar).replace('-', '_')}", bool, field(default=False)))
    return out


@functools.cache
def _facts_class(sidecars: tuple[SidecarKind, ...]) -> type:
    return make_dataclass("ConnectivityFacts", _connectivity_fields(sidecars))


def connectivity_facts_class() -> type:
    """The facts class for the modes registered now (a mode added after import brings its own fields)."""
    return _facts_class(connectivity_sidecars())


BUILT_IN = connectivity_sidecars()
ConnectivityFacts = _facts_class(BUILT_IN)
"""The class for the built-in modes, which claims.yaml's rules are checked against."""
ConnectivityFacts.__doc__ = """Per sidecar layout, protocol and direction: `works`, `bypassed` (the bytes did not cross
the sidecar) or `failed` (with `<key>_reason`); `tcp_through_<sidecar>`: TCP works both ways through it."""


@dataclass
class InventoryFacts:
    """What the strategy adds to the pod: processes, rules, policy routes, sysctls, netfilter features."""

    vm_netdev: str | None  # the QEMU guest's backend: user (libslirp in QEMU), stream (passt), tap; None: netns
    extra_processes: int
    process_names: list[str]
    rules: int
    ip_rules: int
    sysctls: dict[str, str]
    features: list[str]
    kernel_config_items: int
    uses_nat: bool
    uses_mangle: bool
    uses_tproxy: bool
    uses_socket: bool
    uses_owner: bool
    uses_conntrack: bool
    uses_bridge: bool
    uses_policy_routing: bool


@dataclass
class PrivilegeTrial:
    dropped: list[str]
    works: bool
    setup: str = "failed"
    ingress: str = ""
    egress: str = ""
    error: str = ""


@dataclass
class PrivilegeFacts:
    baseline_works: bool
    needs: list[str]  # capabilities without which it stops working (each dropped alone)
    works_without_net_caps: bool
    trials: list[PrivilegeTrial]


@dataclass
class CoexistenceFacts:
    works_before_iptables_flush: bool
    works_after_iptables_nat_flush: bool
    after_iptables_nat_flush: list[str]
    works_before_nft_flush: bool
    works_after_nft_nat_flush: bool
    after_nft_nat_flush: list[str]
    other_tool_rules_before: str
    other_tool_rules_after: str
    other_tool_rules_intact: bool
    works_with_other_tool_first: bool
    survives_nat_rewrite: bool


@dataclass(frozen=True)
class Interval:
    """A median with its exact 95% order-statistic interval (NaN bounds below n=6), over n samples."""

    median: float
    low: float
    high: float
    n: int
    values: tuple[float, ...] = ()


@dataclass
class PerformanceFacts:
    ingress_gbps: Interval
    egress_gbps: Interval
    cpu_s_per_gb: float
    userspace_bytes_per_byte: float


@dataclass
class StrategyFacts:
    conn: ConnectivityFacts
    inv: InventoryFacts
    priv: PrivilegeFacts
    coex: CoexistenceFacts
    perf: PerformanceFacts


SCOPES: dict[str, type] = {
    "conn": ConnectivityFacts,
    "inv": InventoryFacts,
    "priv": PrivilegeFacts,
    "coex": CoexistenceFacts,
    "perf": PerformanceFacts,
    "direct": PerformanceFacts,  # the reference strategies' performance
    "nat_proxy": PerformanceFacts,
}
"""The names a rule may use for facts, and the class each one is."""


def field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}
