"""Istio's redirection backends and release dimension (issue 44), on real namespaces.

The finding measured here: KubeVirt's masquerade writes its own nat base chains (`table ip nat`, prerouting and
output at priority -100: kubevirt/kubevirt pkg/network/setup/netpod/masquerade) in the same pod as Istio's
(istio-cni's in-pod rules: iptables-nft's `ip nat` PREROUTING, or the nftables backend's `inet istio-ambient-nat`
prerouting, both at -100). Two rules of the kernel decide which one a connection meets:
- among base chains of one hook and priority, the one registered last runs first (net/netfilter/core.c
  nf_hook_entries_grow inserts a new hook before the existing hooks of equal priority);
- at a nat hook the first chain that sets a mapping ends the hook for that connection (net/netfilter/nf_nat_core.c
  nf_nat_inet_fn stops once nf_nat_initialized): the later chains never see it.
So the install order decides ambient ingress to a masquerade VM. In a real pod istio-cni writes its rules when
the pod joins the mesh and virt-handler wires masquerade afterwards: KubeVirt's chain runs first, DNATs the peer's
connection to the VM and the mesh's proxy never sees it (the "bypassed" the main job reports). Registered the
other way round (Istio's chains created after the VM is wired), Istio's REDIRECT to ztunnel's inbound port runs
first and ztunnel's connection to the pod address finds no listener: ingress fails. Both backends behave alike:
the rule is the kernel's, not the rule syntax's. The counters of the two rules are the evidence.
"""

from __future__ import annotations

import re

import pytest

from harness.guests.choice import driver_for
from harness.guests.spec import GuestSpec
from harness.kinds.measure import MeshSnapshot, traversal
from harness.kinds.outcome import Outcome
from harness.kinds.throughput import measure_tcp_throughput
from harness.lab.rules import list_nft
from harness.lab.vocabulary import Direction, Status, TrafficPath
from harness.pod.bindings import pod_annotations
from harness.pod.istio import IstioBackend, IstioRelease, IstioSetup
from harness.pod.mesh import install_sidecar
from strategies import strategy_class


def first_packets(ruleset: str, marker: str) -> int:
    """Packets counted by the rules whose text contains `marker` (`redirect to :15006`, `dnat to 198.19.0.2`)."""
    return sum(int(m[1]) for line in ruleset.splitlines() if marker in line
               for m in [re.search(r"counter packets (\d+)", line)] if m)  # fmt: skip


def ingress_in_order(lab, binding: str, mode: str, backend: IstioBackend, mesh_first: bool):
    """One bed: the mesh's rules and the binding's in the given order, one TCP ingress test, the path evidence and
    the pod's ruleset (with counters) afterwards."""
    cls = strategy_class(binding)
    with lab.bed() as bed:
        guest = driver_for(GuestSpec(), "order")
        istio = IstioSetup(IstioRelease.V1_30, backend)

        def mesh():
            return install_sidecar(
                bed,
                mode,
                vm_interfaces=list(cls.vm_interfaces),
                annotations=pod_annotations("1.9", binding),
                istio=istio,
            )

        sidecar = mesh() if mesh_first else None
        attachment = cls(cls.Options(), sidecar=mode).setup(bed, guest)
        sidecar = sidecar or mesh()
        before = MeshSnapshot.take(sidecar)
        sample = measure_tcp_throughput(
            attachment.ends(Direction.INGRESS), port=5201, duration_s=1, omit_s=0, streams=1, label="order"
        )
        outcome = Outcome(Status(sample.status), sample.reason, [], bytes_moved=sample.bytes or 0)
        evidence = traversal(outcome, Direction.INGRESS, sidecar, before)
        return sample, evidence, list_nft(bed.pod)


@pytest.mark.parametrize("backend", list(IstioBackend))
def test_the_nat_chain_registered_last_decides_ambient_ingress_to_masquerade(lab, backend):
    vm_ip = "198.19.0.2"  # masquerade's VM address (docs/design.md's address plan)
    sample, evidence, rules = ingress_in_order(lab, "masquerade", "ambient", backend, mesh_first=True)
    assert sample.status == "ok" and evidence.path == TrafficPath.BYPASSED
    assert first_packets(rules, f"dnat to {vm_ip}") >= 1 and first_packets(rules, "redirect to :15006") == 0

    sample, evidence, rules = ingress_in_order(lab, "masquerade", "ambient", backend, mesh_first=False)
    assert sample.status != "ok"
    assert first_packets(rules, "redirect to :15006") >= 1 and first_packets(rules, f"dnat to {vm_ip}") == 0


@pytest.mark.parametrize("backend", list(IstioBackend))
def test_under_the_sidecar_the_order_decides_nothing(lab, backend):
    """Istio's sidecar: KubeVirt's Istio adaptation DNATs only the ports Envoy does not proxy, so neither order puts
    two mappings in competition: the peer's connection reaches the VM through Envoy both ways round."""
    for mesh_first in (True, False):
        sample, evidence, _ = ingress_in_order(lab, "masquerade", "envoy-redirect", backend, mesh_first)
        assert sample.status == "ok" and evidence.path == TrafficPath.THROUGH_MESH, mesh_first


def test_a_release_without_the_nftables_backend_refuses_it(bed):
    with pytest.raises(ValueError, match="Istio 1.26 has no nftables backend for sidecar mode"):
        install_sidecar(bed, "envoy-redirect", vm_interfaces=[], istio=IstioSetup(IstioRelease.V1_26, "nftables"))
    with pytest.raises(ValueError, match="Istio 1.27 has no nftables backend for ambient mode"):
        install_sidecar(bed, "ambient", vm_interfaces=[], istio=IstioSetup(IstioRelease.V1_27, "nftables"))


def test_istio_1_24_ambient_ignores_the_reroute_annotation(lab):
    """KubeVirt 1.9 annotates a masquerade pod with istio.io/reroute-virtual-interfaces; Istio 1.24's node agent
    does not read it (harness/pod/istio.py), so the VM's interface gets no rerouting rule: the in-pod rules are
    those of a pod without a VM."""
    with lab.bed() as bed:
        side = install_sidecar(
            bed,
            "ambient",
            vm_interfaces=["k6t-eth0"],
            annotations=pod_annotations("1.9", "masquerade"),
            istio=IstioSetup(IstioRelease.V1_24),
        )
        assert not any("k6t-eth0" in rule for rules in side.rules.values() for rule in rules)
    with lab.bed() as bed:
        side = install_sidecar(
            bed,
            "ambient",
            vm_interfaces=["k6t-eth0"],
            annotations=pod_annotations("1.9", "masquerade"),
            istio=IstioSetup(IstioRelease.V1_25),
        )
        assert any("k6t-eth0" in rule for rules in side.rules.values() for rule in rules)


def test_describe_prints_the_tables_istio_and_kubevirt_both_install_and_which_runs_first():
    """`describe masquerade --sidecar ambient --istio 1.30 --istio-backend nftables` (issue 44's first check)."""
    from harness.pod.kubevirt import KubevirtRelease
    from harness.pod.mesh import SidecarKind
    from harness.run.describe import describe_strategy

    text = describe_strategy(
        "masquerade", None, SidecarKind("ambient"), KubevirtRelease.V1_9, IstioSetup(IstioRelease.V1_30, "nftables")
    )
    assert "sidecar: ambient (Istio 1.30, nftables backend)" in text
    assert "table inet istio-ambient-nat {" in text and "table ip nat {" in text
    assert "nat hook prerouting priority dstnat: inet istio-ambient-nat prerouting, ip nat prerouting" in text


def test_ambient_with_a_waypoint_handles_http_at_l7_and_tcp_at_l4(tmp_path):
    """Issue 44: a meshed client's HTTP to the VM's service crosses the waypoint (its HTTP connection manager
    counts every request) and reaches the pod's ztunnel as HBONE from the waypoint's identity; TCP crosses it at
    L4 (bytes, no request); the VM's egress does not cross it. Its vCPU per 1000 rps stands beside Istio's 0.25 on
    the page."""
    from harness.analysis.report import write_report
    from tests.conftest import run_scenario_text

    text = (
        "name: waypoint\nstrategies: [direct, slirp]\nsidecars: [ambient-waypoint]\npeers: [meshed]\n"
        "repetitions: 1\ntests:\n  - {kind: http, rate_rps: 200, duration_s: 2, directions: [ingress]}\n"
        "  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}\n"
    )
    samples, run_dir = run_scenario_text(tmp_path, text)
    http = samples[samples.metric == "http_latency_p50"]
    assert len(http) == 3 and (http.status == "ok").all() and set(http.path) == {"through-mesh"}
    assert (http.waypoint_http_requests >= 400).all() and (http.waypoint_bytes > 0).all()
    assert set(http.peer_identity) == {"spiffe://cluster.local/ns/vmnb/sa/waypoint"}
    tcp_in = samples[(samples.metric == "throughput") & (samples.direction == "ingress")]
    assert set(tcp_in.path) == {"through-mesh"} and (tcp_in.waypoint_http_requests == 0).all()
    assert (tcp_in.waypoint_bytes > 0).all()
    tcp_out = samples[(samples.metric == "throughput") & (samples.direction == "egress")]
    assert set(tcp_out.path) == {"through-mesh"} and tcp_out.waypoint_bytes.isna().all()
    vcpu = samples[samples.metric == "waypoint_vcpu_per_1000_rps"]
    assert len(vcpu) == 3 and (vcpu.value > 0).all()
    write_report(run_dir)
    assert "ambient with a waypoint (L7)" in (run_dir / "answer.md").read_text()


def test_a_waypoint_mode_without_meshed_clients_is_refused():
    from harness.run.scenario import ScenarioError, parse_scenario_text

    with pytest.raises(ScenarioError, match="ambient-waypoint serves meshed clients only"):
        parse_scenario_text(
            "name: w\nstrategies: [direct]\nsidecars: [ambient-waypoint]\ntests: [{kind: tcp_throughput}]\n"
        )
