"""Probes behind the claims table: each one is a real experiment on fresh beds and returns facts (a flat dict)
that harness/claims.yaml's rules read. Probes: connectivity, processes, kernel_config, coexistence,
userspace, performance (plus privilege, in harness/privilege.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

from harness.guest import GuestSpec
from harness.measure import Cell, run_test
from harness.names import new_run_id
from harness.processes import ProcessTracker
from harness.qemu import QEMU
from harness.results import RunWriter
from harness.rules import apply_iptables
from harness.scenario import RequestResponse, TcpThroughput
from harness.sidecars import install_sidecar
from harness.state import RunState
from harness.stats import median_ci
from harness.testbed import TestBed
from strategies import strategy_class
from strategies.base import Services

RR_PORT, TPUT_PORT = 11111, 5201
SERVICES = Services(tcp_ports=(RR_PORT, TPUT_PORT), udp_ports=(RR_PORT,))


@contextmanager
def strategy_bed(strategy: str, tracker: ProcessTracker, writer: RunWriter, *, sidecar: str = "none",
                 before_setup=None, guest: GuestSpec | None = None) -> Iterator[Cell]:  # fmt: skip
    """A fresh bed with the sidecar and strategy set up, as a Cell for run_test; torn down on exit."""
    run_id = new_run_id()
    state = RunState(run_id)
    state.save()
    cls = strategy_class(strategy)
    spec = (guest or GuestSpec()).for_strategy(cls.has_vm)
    bed = TestBed(run_id, state, tracker, guest=spec, label=f"claims-{strategy}-{sidecar}").build()
    try:
        side = install_sidecar(bed, sidecar, vm_interfaces=list(cls.vm_interfaces))
        if before_setup:
            before_setup(bed)
        attachment = cls(services=SERVICES, sidecar=sidecar).setup(bed)
        base = {"strategy": strategy, "sidecar": sidecar, "repetition": 1, "scenario": "claims", **spec.columns()}
        yield Cell(bed, tracker, writer, attachment, side, base)
    finally:
        bed.close()
        state.remove_file()


def rr_status(cell: Cell, protocol: str, direction: str) -> tuple[str, str]:
    """works / bypassed / failed: <reason> for a 1 s request/response test."""
    rows = run_test(RequestResponse(kind="rr", protocol=protocol, duration_s=1, port=RR_PORT), direction, cell)
    first = rows[0]
    if first["status"] != "ok":
        return "failed", first["reason"]
    return ("bypassed" if first.get("path") == "bypassed" else "works"), ""


def probe_connectivity(strategy: str, tracker, writer, sidecars=("none", "envoy-redirect", "linkerd-style"),
                       guest: GuestSpec | None = None) -> dict:  # fmt: skip
    facts: dict = {}
    for sidecar in sidecars:
        with strategy_bed(strategy, tracker, writer, sidecar=sidecar, guest=guest) as cell:
            for protocol in ("tcp", "udp"):
                for direction in ("ingress", "egress"):
                    status, reason = rr_status(cell, protocol, direction)
                    key = f"{protocol}_{direction}_{sidecar.replace('-', '_')}"
                    facts[key] = status
                    if reason:
                        facts[f"{key}_reason"] = reason
    for sidecar in sidecars[1:]:
        s = sidecar.replace("-", "_")
        facts[f"tcp_through_{s}"] = all(facts[f"tcp_{d}_{s}"] == "works" for d in ("ingress", "egress"))
    return facts


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
    """`slirp4netns`, `envoy`, or `harness.proxy` for the project's own Python modules."""
    module = next((a for a in argv if a.startswith("harness.")), None)
    return module or argv[0].rsplit("/", 1)[-1]


def probe_setup_inventory(strategy: str, tracker, writer, guest: GuestSpec | None = None) -> dict:
    """Processes, rules, routes and sysctls the strategy adds to the pod, and the netfilter features used."""
    with strategy_bed(strategy, tracker, writer, guest=guest) as cell:
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
        return {
            # The QEMU guest's backend: `user` (libslirp inside QEMU), `stream` (passt), `tap`; None for netns.
            "vm_netdev": vm_netdev(vm_argv),
            "extra_processes": len(processes),
            "process_names": processes,
            "rules": len(rules),
            "ip_rules": len(ip_rules),
            "sysctls": dict(pod.sysctls_set),
            "features": sorted(k for k, v in features.items() if v),
            "kernel_config_items": len(rules) + len(ip_rules) + len(pod.sysctls_set),
            **{f"uses_{k}": v for k, v in features.items()},
        }


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


def probe_coexistence(strategy: str, tracker, writer, guest: GuestSpec | None = None) -> dict:
    """Both ways round: (1) after setup, another tool flushes and rebuilds the nat table (iptables, as CNI
    plugins and init containers do; and nft's own `flush table ip nat`) - does the VM still carry traffic?
    (2) another tool's rules exist first - are they intact after the strategy's setup?"""
    facts: dict = {}
    flushes = {
        "iptables": "iptables -t nat -F && iptables -t nat -X",
        "nft": "nft list table ip nat >/dev/null 2>&1 && nft flush table ip nat || true",
    }
    for flush, command in flushes.items():
        with strategy_bed(strategy, tracker, writer, guest=guest) as cell:
            before = [rr_status(cell, "tcp", d)[0] for d in ("ingress", "egress")]
            cell.bed.pod.run(["sh", "-c", command])
            apply_iptables(cell.bed.pod, "nat", OTHER_TOOL_NAT)  # the other tool rebuilds its own rules only
            after = [rr_status(cell, "tcp", d) for d in ("ingress", "egress")]
            facts[f"works_before_{flush}_flush"] = before == ["works", "works"]
            facts[f"works_after_{flush}_nat_flush"] = all(s == "works" for s, _ in after)
            facts[f"after_{flush}_nat_flush"] = [s if not r else f"{s}: {r}" for s, r in after]

    def install_other_tool(bed: TestBed) -> None:
        apply_iptables(bed.pod, "nat", OTHER_TOOL_NAT)
        apply_iptables(bed.pod, "mangle", OTHER_TOOL_MANGLE)
        facts["other_tool_rules_before"] = _other_tool_rules(bed)

    with strategy_bed(strategy, tracker, writer, before_setup=install_other_tool, guest=guest) as cell:
        facts["other_tool_rules_after"] = _other_tool_rules(cell.bed)
        facts["other_tool_rules_intact"] = facts["other_tool_rules_after"] == facts["other_tool_rules_before"]
        facts["works_with_other_tool_first"] = all(
            rr_status(cell, "tcp", d)[0] == "works" for d in ("ingress", "egress")
        )
    facts["survives_nat_rewrite"] = facts["works_after_iptables_nat_flush"] and facts["works_after_nft_nat_flush"]
    return facts


def probe_throughput(strategies: list[str], tracker, writer, repetitions: int = 5,
                     guest: GuestSpec | None = None) -> dict[str, dict]:  # fmt: skip
    """TCP throughput both ways, repetitions interleaved across strategies, with CPU and userspace bytes; per
    strategy: median and bootstrap 95% CI of each direction, CPU per GB, userspace bytes per byte."""
    rows: list[dict] = []
    for rep in range(repetitions):
        for strategy in strategies[rep % len(strategies) :] + strategies[: rep % len(strategies)]:
            with strategy_bed(strategy, tracker, writer, guest=guest) as cell:
                for direction in ("ingress", "egress"):
                    rows += run_test(TcpThroughput(kind="tcp_throughput", duration_s=2, omit_s=0.5, port=TPUT_PORT),
                                     direction, cell)  # fmt: skip
    ok = [r for r in rows if r["status"] == "ok"]

    def values(strategy: str, metric: str, direction: str | None = None) -> list[float]:
        return [r["value"] for r in ok if r["strategy"] == strategy and r["metric"] == metric
                and direction in (None, r["direction"])]  # fmt: skip

    facts: dict[str, dict] = {}
    for strategy in strategies:
        f: dict = {}
        for direction in ("ingress", "egress"):
            ci = median_ci(values(strategy, "throughput", direction))
            f[f"{direction}_gbps"] = {"median": ci.median, "low": ci.low, "high": ci.high, "n": ci.n}
        f["cpu_s_per_gb"] = median_ci(values(strategy, "cpu_per_gb")).median
        f["userspace_bytes_per_byte"] = median_ci(values(strategy, "userspace_bytes_per_byte")).median
        facts[strategy] = f
    return facts
