"""Probes behind the claims table: each one is a real experiment on fresh beds of the claims run and returns
typed facts (harness.claims.facts) that the rules in claims.yaml read. Probes: connectivity,
setup inventory (processes, rules, kernel configuration), coexistence, performance (plus privilege, in
privilege.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.analysis.results import RunWriter, Sample
from harness.analysis.stats import median_interval
from harness.claims.facts import (
    CoexistenceFacts,
    ConnectivityFacts,
    Interval,
    InventoryFacts,
    PerformanceFacts,
    connectivity_facts_class,
    connectivity_sidecars,
    reach_key,
)
from harness.guests.choice import driver_for
from harness.guests.qemu.accel import QEMU
from harness.guests.spec import GuestSpec
from harness.kinds.measure import Cell, run_test
from harness.kinds.request_response import RequestResponse
from harness.kinds.throughput import TcpThroughput
from harness.lab.bed import TestBed
from harness.lab.rules import apply_iptables
from harness.lab.session import LabSession
from harness.lab.vocabulary import Direction, Protocol, Status, TrafficPath
from harness.pod.bindings import pod_annotations
from harness.pod.kubevirt import LATEST
from harness.pod.mesh import SidecarKind, install_sidecar
from strategies import strategy_class
from strategies.base import Services

RR_PORT, TPUT_PORT = 11111, 5201
SERVICES = Services(tcp_ports=(RR_PORT, TPUT_PORT), udp_ports=(RR_PORT,))


@dataclass
class ProbeContext:
    """What every probe shares: the run's session, its results folder and the guest the VMs are."""

    lab: LabSession
    writer: RunWriter
    guest: GuestSpec = field(default_factory=GuestSpec)


@contextmanager
def strategy_bed(
    ctx: ProbeContext, strategy: str, *, sidecar: SidecarKind = SidecarKind.NONE, before_setup=None
) -> Iterator[Cell]:
    """A fresh bed with the sidecar and strategy set up, as a Cell for run_test; torn down on exit."""
    cls = strategy_class(strategy)
    spec = ctx.guest.for_strategy(cls.has_vm)
    with ctx.lab.bed() as bed:
        side = install_sidecar(
            bed, sidecar, vm_interfaces=list(cls.vm_interfaces), annotations=pod_annotations(LATEST, cls.name)
        )  # the latest release's pod
        if before_setup:
            before_setup(bed)
        driver = driver_for(spec, f"claims-{strategy}-{sidecar}")
        with bed.strategy_setup():
            attachment = cls(services=SERVICES, sidecar=sidecar).setup(bed, driver)
        base = Sample(
            strategy=strategy, sidecar=str(sidecar), scenario="claims", repetition=1, **spec.columns(cls.has_vm)
        )
        yield Cell(bed, ctx.writer, attachment, side, base)


def rr_status(cell: Cell, protocol: Protocol, direction: Direction) -> tuple[str, str]:
    """works / bypassed / failed: <reason> for a 1 s request/response test."""
    # vmnb-rr: a path that does not answer is said within its 5 s connect limit (sockperf waits out its budget)
    test = RequestResponse(kind="rr", protocol=str(protocol), duration_s=1, port=RR_PORT, tool="vmnb-rr")
    first = run_test(test, direction, cell)[0]
    if first.status != Status.OK:
        return "failed", first.reason
    return ("bypassed" if first.path == TrafficPath.BYPASSED else "works"), ""


Paths = dict[SidecarKind, list[tuple[Protocol, Direction]]]


def probe_connectivity(
    ctx: ProbeContext, strategy: str, sidecars: tuple[SidecarKind, ...] | None = None, paths: Paths | None = None
) -> ConnectivityFacts:
    """TCP and UDP round trips both ways behind each sidecar layout (a layout left out stays `failed`). `paths`:
    per layout, only these (protocol, direction) pairs (the main job's claims phase probes only what its rows
    lack); the others are `not measured`."""
    sidecars = connectivity_sidecars() if sidecars is None else sidecars
    facts: dict = {}
    for sidecar in sidecars:
        wanted = (paths or {}).get(sidecar) or [(p, d) for p in Protocol for d in Direction]
        for protocol in Protocol:
            for direction in Direction:
                if (protocol, direction) not in wanted:
                    key = reach_key(protocol, direction, sidecar)
                    facts[key], facts[f"{key}_reason"] = "not measured", "no claim reads it"
        try:
            with strategy_bed(ctx, strategy, sidecar=sidecar) as cell:
                for protocol, direction in wanted:
                    key = reach_key(protocol, direction, sidecar)
                    facts[key], facts[f"{key}_reason"] = rr_status(cell, protocol, direction)
        except Exception as e:  # noqa: BLE001 - a setup this layout refuses is a fact (tproxy's table 100 under ambient)
            for protocol, direction in wanted:
                key = reach_key(protocol, direction, sidecar)
                facts[key], facts[f"{key}_reason"] = "failed", f"setup failed: {e}"
    for sidecar in sidecars:
        if sidecar == SidecarKind.NONE:
            continue
        through = all(facts[reach_key(Protocol.TCP, d, sidecar)] == "works" for d in Direction)
        facts[f"tcp_through_{str(sidecar).replace('-', '_')}"] = through
    return connectivity_facts_class()(**facts)


def link_kind(link) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else None


def is_vm_process(argv: list[str]) -> bool:
    """The QEMU guest's own QEMU is the VM, not a process the strategy adds next to it."""
    return argv[0].rsplit("/", 1)[-1] == QEMU


def vm_netdev(argv: list[str]) -> str | None:
    """The type of QEMU's -netdev (user, stream, tap), from its command line."""
    if "-netdev" not in argv:
        return None
    return argv[argv.index("-netdev") + 1].split(",", 1)[0]


def process_name(argv: list[str]) -> str:
    """`slirp4netns`, `envoy`, or `harness.pod.proxy` for the project's own Python modules."""
    module = next((a for a in argv if a.startswith("harness.")), None)
    return module or argv[0].rsplit("/", 1)[-1]


def probe_setup_inventory(ctx: ProbeContext, strategy: str) -> InventoryFacts:
    """Processes, rules, routes and sysctls the strategy adds to the pod, and the netfilter features used."""
    with strategy_bed(ctx, strategy) as cell:
        pod = cell.bed.pod
        ruleset = json.loads(pod.run(["nft", "-j", "list", "ruleset"]))["nftables"]
        rules = [item["rule"] for item in ruleset if "rule" in item]
        text = pod.run(["nft", "list", "ruleset"]) + pod.run(["iptables-save"], check=False)
        ip_rules = [r for r in pod.policy_rules() if not re.search(r"lookup (local|main|default)\s*$", r)]
        kinds = {link_kind(link) for link in pod.ipr.get_links()}
        processes = sorted({process_name(p.argv) for p in cell.bed.processes if not is_vm_process(p.argv)})
        vm_argv = next((p.argv for p in cell.bed.processes if is_vm_process(p.argv)), [])
        mangle = text.split("*mangle", 1)[1].split("COMMIT", 1)[0] if "*mangle" in text else ""
        features = {
            "nat": bool(re.search(r"\b(dnat|snat|masquerade|redirect|DNAT|SNAT|MASQUERADE|REDIRECT)\b", text)),
            "mangle": bool(re.search(r"^-A ", mangle, re.M)),
            "tproxy": "TPROXY" in text,
            "socket": "-m socket" in text,
            "owner": "owner" in text,
            "conntrack": "ctstate" in text or "conntrack" in text,
            "bridge": "bridge" in kinds,
            "policy_routing": bool(ip_rules),
        }
        return InventoryFacts(
            vm_netdev=vm_netdev(vm_argv),
            extra_processes=len(processes),
            process_names=processes,
            rules=len(rules),
            ip_rules=len(ip_rules),
            sysctls=dict(pod.sysctls_set),
            features=sorted(k for k, v in features.items() if v),
            kernel_config_items=len(rules) + len(ip_rules) + len(pod.sysctls_set),
            **{f"uses_{k}": v for k, v in features.items()},
        )


# Another tool's rules, shaped like the CNI portmap plugin's (a DNAT chain hooked from PREROUTING, and a mark).
OTHER_TOOL_NAT = [
    "-N CNI-HOSTPORT-DNAT",
    "-A CNI-HOSTPORT-DNAT -p tcp --dport 18080 -j DNAT --to-destination 198.18.2.2:80",
    "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
]
OTHER_TOOL_MANGLE = [
    "-N CNI-MARK",
    "-A CNI-MARK -j MARK --set-xmark 0x4000/0x4000",
    "-A PREROUTING -p tcp --dport 18080 -j CNI-MARK",
]


def _other_tool_rules(bed: TestBed) -> str:
    lines = []
    for table in ("nat", "mangle"):
        lines += [ln for ln in bed.pod.run(["iptables-save", "-t", table]).splitlines() if "CNI-" in ln]
    return "\n".join(lines)


def probe_coexistence(ctx: ProbeContext, strategy: str) -> CoexistenceFacts:
    """Both ways round: (1) after setup, another tool flushes and rebuilds the nat table (iptables, as CNI
    plugins and init containers do; and nft's own `flush table ip nat`) - does the VM still carry traffic?
    (2) another tool's rules exist first - are they intact after the strategy's setup?"""
    facts: dict = {}
    flushes = {
        "iptables": "iptables -t nat -F && iptables -t nat -X",
        "nft": "nft list table ip nat >/dev/null 2>&1 && nft flush table ip nat || true",
    }
    for flush, command in flushes.items():
        with strategy_bed(ctx, strategy) as cell:
            before = [rr_status(cell, Protocol.TCP, d)[0] for d in Direction]
            cell.bed.pod.run(["sh", "-c", command])
            apply_iptables(cell.bed.pod, "nat", OTHER_TOOL_NAT)  # the other tool rebuilds its own rules only
            after = [rr_status(cell, Protocol.TCP, d) for d in Direction]
            facts[f"works_before_{flush}_flush"] = before == ["works", "works"]
            facts[f"works_after_{flush}_nat_flush"] = all(s == "works" for s, _ in after)
            facts[f"after_{flush}_nat_flush"] = [s if not r else f"{s}: {r}" for s, r in after]

    def install_other_tool(bed: TestBed) -> None:
        apply_iptables(bed.pod, "nat", OTHER_TOOL_NAT)
        apply_iptables(bed.pod, "mangle", OTHER_TOOL_MANGLE)
        facts["other_tool_rules_before"] = _other_tool_rules(bed)

    with strategy_bed(ctx, strategy, before_setup=install_other_tool) as cell:
        facts["other_tool_rules_after"] = _other_tool_rules(cell.bed)
        facts["other_tool_rules_intact"] = facts["other_tool_rules_after"] == facts["other_tool_rules_before"]
        facts["works_with_other_tool_first"] = all(rr_status(cell, Protocol.TCP, d)[0] == "works" for d in Direction)
    facts["survives_nat_rewrite"] = facts["works_after_iptables_nat_flush"] and facts["works_after_nft_nat_flush"]
    return CoexistenceFacts(**facts)


def probe_throughput(ctx: ProbeContext, strategies: list[str], repetitions: int = 5) -> dict[str, PerformanceFacts]:
    """TCP throughput both ways, repetitions interleaved across strategies, with CPU and userspace bytes; per
    strategy: median and bootstrap 95% CI of each direction, CPU per GB, userspace bytes per byte."""
    rows: list[Sample] = []
    test = TcpThroughput(kind="tcp_throughput", duration_s=2, omit_s=0, port=TPUT_PORT)
    for rep in range(repetitions):
        for strategy in strategies[rep % len(strategies) :] + strategies[: rep % len(strategies)]:
            with strategy_bed(ctx, strategy) as cell:
                for direction in Direction:
                    rows += run_test(test, direction, cell)
    ok = [r for r in rows if r.status == Status.OK]

    def values(strategy: str, metric: str, direction: Direction | None = None) -> list[float]:
        return [
            r.value for r in ok if r.strategy == strategy and r.metric == metric and direction in (None, r.direction)
        ]

    def interval(strategy: str, direction: Direction) -> Interval:
        samples = values(strategy, "throughput", direction)
        ci = median_interval(samples)
        nan = float("nan")
        return Interval(
            ci.estimate, nan if ci.low is None else ci.low, nan if ci.high is None else ci.high, ci.n, tuple(samples)
        )

    return {
        strategy: PerformanceFacts(
            ingress_gbps=interval(strategy, Direction.INGRESS),
            egress_gbps=interval(strategy, Direction.EGRESS),
            cpu_s_per_gb=median_interval(values(strategy, "cpu_per_gb")).estimate,
            userspace_bytes_per_byte=median_interval(values(strategy, "userspace_bytes_per_byte")).estimate,
        )
        for strategy in strategies
    }
