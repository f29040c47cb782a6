"""Istio ambient mode (harness.pod.ambient): istio-cni's in-pod rules, a node proxy with its listeners in the
pod, real traffic through it for a plain pod and for a VM binding, the shape of the rules against istio's
golden files, and nothing left in the node's namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.lab.procfs import proc_starttime
from harness.lab.vocabulary import TrafficPath
from harness.pod import ambient
from harness.pod.mesh import install_sidecar
from tests.conftest import run_through

# CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_SYS_ADMIN (21): ztunnel's capabilities, nothing else.
ZTUNNEL_CAPS = (1 << 12) | (1 << 13) | (1 << 21)


def status_field(pid: int, field: str) -> list[str]:
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith(f"{field}:"))
    return line.split()[1:]


@pytest.mark.parametrize("strategy", ["direct", "slirp"])
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_ambient_carries_traffic_through_the_node_proxy(bed, netns_guest, strategy, direction):
    sample, evidence, side = run_through(bed, netns_guest, strategy, "ambient", direction)
    assert sample.status == "ok", sample.reason
    assert evidence.path is TrafficPath.THROUGH_MESH, evidence
    assert evidence.sidecar_bytes >= sample.bytes / 2
    assert evidence.sidecar_connections >= 1
    # The proxy is a node process (node namespace), with ztunnel's gid and capabilities, and its listeners
    # live in the pod's namespace, not the node's.
    pid = side.process.pid
    assert Path(f"/proc/{pid}/ns/net").stat().st_ino == Path(bed.node.path).stat().st_ino
    assert status_field(pid, "Gid")[0] == "1337"
    assert int(status_field(pid, "CapEff")[0], 16) == ZTUNNEL_CAPS
    assert {ambient.OUTBOUND_PORT, ambient.INBOUND_PLAINTEXT_PORT} <= bed.pod.listening_tcp_ports()
    assert not bed.node.listening_tcp_ports()


def chains(ns, table: str) -> dict[str, list[str]]:
    """iptables-save of `table`, normalised: the rules of each chain, in order, without counters."""
    rules: dict[str, list[str]] = {}
    for line in ns.run(["iptables-save", "-t", table]).splitlines():
        if line.startswith("-A "):
            _, chain, spec = line.split(" ", 2)
            rules.setdefault(chain, []).append(spec)
    return rules


# istio/istio cni/pkg/iptables/testdata/virtual_interfaces.golden (virtual interfaces fake1s0f0, fake1s0f1, no
# DNS capture), each rule as iptables-save prints it, per chain in the golden file's order.
GOLDEN_MANGLE = {
    "PREROUTING": ["-j ISTIO_PRERT"],
    "OUTPUT": ["-j ISTIO_OUTPUT"],
    "ISTIO_PRERT": ["-m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff"],
    "ISTIO_OUTPUT": [
        "-m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff"
    ],
}
GOLDEN_NAT = {
    "PREROUTING": ["-j ISTIO_PRERT"],
    "OUTPUT": ["-j ISTIO_OUTPUT"],
    "ISTIO_PRERT": [
        "-i fake1s0f0 -p tcp -j REDIRECT --to-ports 15001",
        "-i fake1s0f0 -p tcp -j RETURN",
        "-i fake1s0f1 -p tcp -j REDIRECT --to-ports 15001",
        "-i fake1s0f1 -p tcp -j RETURN",
        "-s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT",
        "! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006",
    ],
    "ISTIO_OUTPUT": [
        "-d 169.254.7.127/32 -p tcp -m tcp -j ACCEPT",
        "-p tcp -m mark --mark 0x111/0xfff -j ACCEPT",
        "! -d 127.0.0.1/32 -o lo -j ACCEPT",
        "! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001",
    ],
}


def test_inpod_rules_have_the_golden_shape(bed):
    # virtual_interfaces.golden's configuration has DNS capture off (tests/test_dns.py covers it on)
    install_sidecar(bed, "ambient-reroute", vm_interfaces=["fake1s0f0", "fake1s0f1"], dns_capture=False)
    assert chains(bed.pod, "mangle") == GOLDEN_MANGLE
    assert chains(bed.pod, "nat") == GOLDEN_NAT
    # cni/pkg/iptables/iptables_linux.go: the mark rule and the local route back to the proxy
    assert "32764:\tfrom all fwmark 0x111/0xfff lookup 100" in bed.pod.policy_rules()
    assert "local default dev lo" in bed.pod.run(["ip", "route", "show", "table", "100"])


def test_plain_ambient_reroutes_no_interface(bed):
    """Without the reroute annotation (what KubeVirt's pod gets) the virtual-interface rules are absent."""
    install_sidecar(bed, "ambient", vm_interfaces=["k6t-eth0"], dns_capture=False)
    assert chains(bed.pod, "nat")["ISTIO_PRERT"] == GOLDEN_NAT["ISTIO_PRERT"][4:]


def node_state(bed) -> dict[str, str]:
    node = bed.node
    return {
        "iptables": "\n".join(ln for ln in node.run(["iptables-save"]).splitlines() if not ln.startswith("#")),
        "nft": node.run(["nft", "list", "ruleset"]),
        "rules": node.run(["ip", "rule", "show"]),
        "routes": node.run(["ip", "route", "show", "table", "all"]),
        "sockets": node.run(["ss", "-Htuan"]),
    }


def test_node_proxy_adds_nothing_to_the_node_namespace_and_ends_with_the_bed(lab):
    bed = lab.new_bed().build()
    try:
        before = node_state(bed)
        side = install_sidecar(bed, "ambient", vm_interfaces=[])
        pid, start = side.process.pid, side.process.starttime
        # ztunnel's sockets are all in the pod: the node namespace has no rule, route or socket more.
        assert node_state(bed) == before
    finally:
        bed.close()
    assert proc_starttime(pid) != start


def test_masquerade_with_kubevirts_istio_branch_fails_inbound_under_ambient(bed, netns_guest):
    """kubevirt issue 18871: the VMI annotated sidecar.istio.io/inject while the mesh runs ambient. The node
    proxy's connection to the VM keeps the client's address, the VM's SYN/ACK is routed out of eth0 instead of
    back to the proxy (benchmarks/ambient_masquerade.py shows the counters), and the connection fails."""
    sample, evidence, _ = run_through(bed, netns_guest, "masquerade", "ambient", "ingress", {"istio": True})
    assert sample.status == "failed"
    assert evidence.path is TrafficPath.FAILED


def test_plain_masquerade_bypasses_the_node_proxy_inbound(bed, netns_guest):
    """KubeVirt's DNAT chain, added after istio-cni's at the same nat priority, runs first: the peer reaches the
    VM directly, the proxy sees none of it."""
    sample, evidence, _ = run_through(bed, netns_guest, "masquerade", "ambient", "ingress")
    assert sample.status == "ok", sample.reason
    assert evidence.path is TrafficPath.BYPASSED
