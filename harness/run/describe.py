"""`vmnetbench describe NAME`: build a scratch bed, set the strategy up, and report what exists."""

from __future__ import annotations

import socket

from harness.guests.choice import driver_for
from harness.guests.spec import GuestSpec
from harness.lab.bed import AddressPlan
from harness.lab.rules import iptables_save, list_nft
from harness.lab.session import LabSession
from harness.pod.bindings import binding_status, pod_annotations
from harness.pod.istio import DEFAULT_ISTIO, IstioSetup
from harness.pod.kubevirt import LATEST, KubevirtRelease
from harness.pod.mesh import SidecarKind, install_sidecar, mesh_for
from strategies import strategy_class
from strategies.base import StrategyOptions


def describe_strategy(
    name: str,
    options: StrategyOptions | None = None,
    sidecar: SidecarKind = SidecarKind.NONE,
    kubevirt: KubevirtRelease = LATEST,
    istio: IstioSetup = DEFAULT_ISTIO,
    *,
    ipv6: bool = False,
) -> str:
    """`sidecar`: installed first, as istio-init and the injected proxy precede KubeVirt's wiring, from `istio`'s
    release and backend; the pod carries the annotations `kubevirt`'s release writes for this binding. `ipv6`: a
    dual-stack bed (the binding's and the mesh's IPv6 addresses and rules, where they are built)."""
    cls = strategy_class(name)
    strategy = cls(options, sidecar=sidecar)
    lines = [
        f"strategy {name}: {cls.summary}",
        f"faithful to: {cls.faithful_to}",
        f"options: {strategy.options.model_dump_json()}; sidecar: {sidecar}"
        + (f" (Istio {istio.release}, {istio.backend} backend)" if mesh_for(sidecar).istio_component else ""),
        f"KubeVirt {kubevirt}: {binding_status(kubevirt, name)}; pod annotations: "
        f"{pod_annotations(kubevirt, name) or 'none'}",
    ]
    req = cls.requirements
    lines.append(
        f"requirements: capabilities={list(req.capabilities)} kernel={list(req.kernel_features)} "
        f"processes={list(req.extra_processes)} binaries={list(req.binaries)}"
    )
    with LabSession() as lab, lab.bed(AddressPlan(ipv6=True) if ipv6 else None) as bed:
        install_sidecar(
            bed,
            sidecar,
            vm_interfaces=list(cls.vm_interfaces),
            annotations=pod_annotations(kubevirt, name),
            istio=istio,
        )
        attachment = strategy.setup(bed, driver_for(GuestSpec(), f"describe-{name}"))
        lines.append(
            f"ingress: peer dials {attachment.ingress_address}"
            + (f" or {attachment.ingress_address6}" if attachment.ingress_address6 else "")
            + f"; service runs in "
            f"{attachment.service.name}; egress clients run in {attachment.client.name}"
        )
        for role, ns in bed.namespaces.items():
            lines.append(f"\n== namespace {ns.name} ({role})")
            for link in ns.link_names():
                addrs = ", ".join(ns.addresses(link) + ns.addresses(link, socket.AF_INET6)) or "-"
                lines.append(f"  link {link:<16} mtu {ns.mtu(link):<6} {addrs}")
            if role == "pod":
                for family in ("-4", "-6") if ipv6 else ("-4",):
                    rules = ns.run(["ip", family, "rule", "show"]).splitlines()
                    if len(rules) > 3 - (family == "-6"):  # more than the kernel's local/main(/default)
                        lines.append(f"  ip {family} rule:\n    " + "\n    ".join(rules))
                        routes = ns.run(["ip", family, "route", "show", "table", "all"]).strip().splitlines()
                        custom = [r for r in routes if " table " in r and " table local" not in r]
                        lines.append(f"  {family} routes outside main:\n    " + "\n    ".join(custom))
                nft = list_nft(ns).strip()
                lines.append("  nft ruleset:" + ("\n    " + nft.replace("\n", "\n    ") if nft else " (empty)"))
                lines += [f"  {line}" for line in shared_hooks(nft)]
                for ipv6, tool in ((False, "iptables-save"), (True, "ip6tables-save")):
                    ipt = "\n".join(ln for ln in iptables_save(ns, ipv6=ipv6).splitlines() if not ln.startswith("#"))
                    if ipt.strip():
                        lines.append(f"  {tool}:\n    " + ipt.replace("\n", "\n    "))
        lines.append("\n== processes")
        for proc in bed.processes:
            lines.append(f"  {proc.pid} in {proc.netns}: {' '.join(proc.argv)}")
        if not bed.processes:
            lines.append("  none")
    return "\n".join(lines)


def shared_hooks(ruleset: str) -> list[str]:
    """Base chains that share a hook and priority, in the order they were created (`nft list ruleset` lists tables
    and chains in creation order), with which one the kernel runs first: the one registered last
    (net/netfilter/core.c nf_hook_entries_grow); at a nat hook the first mapping ends the hook for the connection
    (tests/test_istio_backends.py measures what that does to ambient ingress to masquerade)."""
    import re

    chains: dict[tuple[str, str, str], list[str]] = {}
    table = ""
    for line in ruleset.splitlines():
        line = line.strip()
        if m := re.fullmatch(r"table (\S+) (\S+) \{", line):
            table = f"{m[1]} {m[2]}"
        elif m := re.match(r"chain (\S+) \{", line):
            chain = m[1]
        elif m := re.match(r"type (\S+) hook (\S+) priority ([^;]+);", line):
            chains.setdefault((m[1], m[2], m[3].strip()), []).append(f"{table} {chain}")
    out = []
    for (kind, hook, priority), names in chains.items():
        if len(names) > 1:
            out.append(
                f"{kind} hook {hook} priority {priority}: {', '.join(names)} (created in this order; the kernel runs "
                f"the last created first{', and the first NAT mapping ends the hook' if kind == 'nat' else ''})"
            )
    return out
