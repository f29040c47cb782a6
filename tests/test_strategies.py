"""Each strategy carries real TCP traffic both ways on the netns guest; masquerade's NAT rules really fire."""

from __future__ import annotations

import re

import pytest

from harness.kinds.throughput import measure_tcp_throughput
from harness.lab.rules import list_nft
from strategies import STRATEGIES, strategy_class
from strategies.masquerade import Masquerade, MasqueradeOptions
from tests.conftest import assert_this_process_left_nothing


def transfer(bed, attachment, direction: str):
    return measure_tcp_throughput(
        attachment.ends(direction),
        port=5201,
        duration_s=1,
        omit_s=0,
        streams=1,
        label=f"{bed.run_id}-{direction}",
    )


@pytest.mark.parametrize("name", sorted(n for n, cls in STRATEGIES.items() if not cls.needs_qemu))
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_strategy_carries_tcp(bed, netns_guest, name, direction):
    attachment = strategy_class(name)().setup(bed, netns_guest)
    sample = transfer(bed, attachment, direction)
    assert sample.status == "ok", sample.reason
    assert sample.bits_per_second > 0 and sample.bytes > 0


def _counter(ruleset: str, chain: str, rule_text: str) -> int:
    """Packets counted by the rule of `chain` containing `rule_text`, from `nft list ruleset` output."""
    block = re.search(rf"chain {chain} {{(.*?)\n\t}}", ruleset, re.S)
    assert block, f"chain {chain} missing:\n{ruleset}"
    for line in block.group(1).splitlines():
        if rule_text in line:
            m = re.search(r"counter packets (\d+)", line)
            return int(m.group(1)) if m else 0
    raise AssertionError(f"rule {rule_text!r} not in chain {chain}:\n{ruleset}")


def test_masquerade_traffic_crosses_the_nat_rules(bed, netns_guest):
    attachment = Masquerade().setup(bed, netns_guest)
    assert bed.namespaces["vm"].addresses("eth0") == ["198.19.0.2/24"]
    assert attachment.facts.vm_ip == "198.19.0.2" and attachment.facts.gateway == "198.19.0.1"
    assert bed.pod.addresses("k6t-eth0") == ["198.19.0.1/24"]
    assert transfer(bed, attachment, "ingress").status == "ok"
    assert transfer(bed, attachment, "egress").status == "ok"
    ruleset = list_nft(bed.pod)
    # Connections are NATed on their first packet: one per iperf3 control and one per data stream.
    assert _counter(ruleset, "KUBEVIRT_PREINBOUND", "dnat to 198.19.0.2") >= 2  # ingress
    assert _counter(ruleset, "postrouting", "masquerade") >= 2  # egress


def test_masquerade_istio_variant_matches_kubevirt_rules():
    rules = Masquerade(MasqueradeOptions(istio=True)).ruleset("198.19.0.1", "198.19.0.2", "198.18.2.2")
    assert "tcp dport { 15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090 }" in rules
    assert "ip saddr { 127.0.0.1, 127.0.0.6 } counter snat to 198.19.0.1" in rules
    assert "ip daddr { 127.0.0.1, 198.18.2.2 } counter dnat to 198.19.0.2" in rules
    assert "KUBEVIRT_PREINBOUND tcp dport { 22 } counter dnat to 198.19.0.2" in rules
    # Without Istio everything inbound goes to the VM.
    plain = Masquerade().ruleset("198.19.0.1", "198.19.0.2", "198.18.2.2")
    assert "add rule ip nat KUBEVIRT_PREINBOUND counter dnat to 198.19.0.2" in plain
    assert "15006" not in plain


def test_masquerade_rejects_a_bad_vm_cidr():
    with pytest.raises(ValueError, match="vm_cidr"):
        MasqueradeOptions(vm_cidr="198.19.0.1/24")


def test_describe_shows_rules_routes_and_processes():
    from harness.run.describe import describe_strategy

    text = describe_strategy("tproxy")
    assert "TPROXY --on-port 9401" in text
    assert "fwmark 0x8 lookup 100" in text
    assert "local default dev lo" in text
    assert "vmnb-relay tproxy:0.0.0.0:9401" in text
    masq = describe_strategy("masquerade")
    assert "KUBEVIRT_PREINBOUND" in masq and "k6t-eth0" in masq
    slirp = describe_strategy("slirp")
    assert "slirp4netns --configure" in slirp and "198.19.1.100/24" in slirp
    assert "nft ruleset: (empty)" in slirp  # the seed's claim: slirp installs no rules
    assert_this_process_left_nothing()  # describe tears its scratch bed down


def test_tproxy_established_match_option_selects_the_rule():
    from harness.run.describe import describe_strategy
    from strategies import strategy_class

    assert "-m socket -j KUBEVIRT_DIVERT" in describe_strategy("tproxy")
    conntrack = describe_strategy("tproxy", strategy_class("tproxy").Options(established_match="conntrack"))
    assert "--ctstate RELATED,ESTABLISHED -j KUBEVIRT_DIVERT" in conntrack
