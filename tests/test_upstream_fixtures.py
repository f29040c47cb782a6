"""Our rules against upstream's own test fixtures, as the kernel reads them back (issue 28).

The fixtures are copied verbatim into tests/upstream/ (each file's header names the repository, path and commit):
Istio's istio-iptables golden files (sidecar REDIRECT, TPROXY, KubeVirt's virtual interfaces), istio-cni's
in-pod golden files (ambient), and KubeVirt's expected nft configurations of the masquerade binding. Each test
loads upstream's rules into one scratch namespace and ours into another with the same tool (iptables-restore,
nft), reads both back (iptables-save, nft list) and compares chain by chain. Every remaining difference is
listed in the test with the reason it changes nothing here; any other difference fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.lab.rules import apply_iptables, apply_nft
from harness.pod import ambient
from harness.pod.ip6 import IPV6_OF, ip6tables_rules, with_ipv6_twins
from harness.pod.mesh import IstioSidecar, IstioSidecarTproxy
from strategies.base import Services
from strategies.masquerade import Masquerade, MasqueradeOptions

UPSTREAM = Path(__file__).parent / "upstream"


def golden_ipv4(name: str) -> dict[str, list[str]]:
    """The IPv4 part of an Istio golden file: table -> its lines (`-N`, `-A`, `-I`) (golden_part below)."""
    return golden_part(name, 0)


def restore(ns, tables: dict[str, list[str]], *, ipv6: bool = False) -> None:
    for table, lines in tables.items():
        apply_iptables(ns, table, lines, ipv6=ipv6)


def read_back(ns, table: str, *, ipv6: bool = False) -> dict[str, list[str]]:
    """iptables-save (ip6tables-save with `ipv6`) of `table`: each chain's rules in order, without counters (empty
    chains included)."""
    chains: dict[str, list[str]] = {}
    for line in ns.run(["ip6tables-save" if ipv6 else "iptables-save", "-t", table]).splitlines():
        if line.startswith(":"):
            chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            _, chain, spec = line.split(" ", 2)
            chains.setdefault(chain, []).append(spec)
    return chains


def differences(ours: dict[str, list[str]], theirs: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """Per chain that differs: the rules only in ours, only in theirs, or `order` when both hold the same rules."""
    found = {}
    for chain in sorted(set(ours) | set(theirs)):
        a, b = ours.get(chain), theirs.get(chain)
        if a == b:
            continue
        if a is None or b is None:
            found[chain] = {"chain only in": ["ours" if b is None else "upstream"]}
            continue
        only_ours, only_theirs = [r for r in a if r not in b], [r for r in b if r not in a]
        found[chain] = {"ours": only_ours, "upstream": only_theirs} if only_ours or only_theirs else {"order": a}
    return found


@pytest.fixture
def scratch(bed):
    """Two fresh namespaces of the bed: upstream's rules go in one, ours in the other."""
    return bed.add_namespace("up"), bed.add_namespace("ours")


INJECTOR_EXCLUDES = [
    "-p tcp -m tcp --dport 15090 -j RETURN",
    "-p tcp -m tcp --dport 15021 -j RETURN",
    "-p tcp -m tcp --dport 15020 -j RETURN",
]
"""The injector runs istio-iptables with `-d 15090,15021,15020` (its default excludeInboundPorts); the golden
files' configurations exclude no inbound port. RETURNs for Envoy's own telemetry/health ports, which no test here
uses."""


def test_sidecar_redirect_rules_match_istio_iptables_inbound_ports_wildcard(scratch):
    """Our REDIRECT mode (no VM interface) against `inbound-ports-wildcard` (`-b *`)."""
    up, ours = scratch
    restore(up, golden_ipv4("istio-iptables-inbound-ports-wildcard.golden"))
    restore(ours, IstioSidecar().rules([]))
    assert differences(read_back(ours, "nat"), read_back(up, "nat")) == {
        "ISTIO_INBOUND": {"ours": INJECTOR_EXCLUDES, "upstream": []},
        # the injector passes `-i *` (all outbound captured); the golden's configuration leaves outbound empty, so
        # its ISTIO_OUTPUT ends without the jump every injected pod has (and that kube-virt-interfaces.golden has)
        "ISTIO_OUTPUT": {"ours": ["-j ISTIO_REDIRECT"], "upstream": []},
    }


def test_sidecar_rules_with_the_vms_interfaces_match_istio_iptables_kube_virt_interfaces(scratch):
    """Our REDIRECT mode with the VM's interfaces against `kube-virt-interfaces` (`-k eth1,eth2`, outbound `*`)."""
    up, ours = scratch
    restore(up, golden_ipv4("istio-iptables-kube-virt-interfaces.golden"))
    restore(ours, IstioSidecar().rules(["eth1", "eth2"]))
    assert differences(read_back(ours, "nat"), read_back(up, "nat")) == {
        # The golden's configuration captures no inbound port (no `-b`), the injector's captures all (`-b *`):
        # ours jumps to ISTIO_INBOUND (compared with its own golden in the test above). Upstream's `-i ethX -j
        # RETURN` after the ISTIO_REDIRECT jumps: ISTIO_REDIRECT REDIRECTs all TCP (terminal), and for anything
        # else ours falls through to `-p tcp -j ISTIO_INBOUND`, which only takes TCP: the same packets end the same.
        "PREROUTING": {"ours": ["-p tcp -j ISTIO_INBOUND"], "upstream": ["-i eth2 -j RETURN", "-i eth1 -j RETURN"]},
        "ISTIO_INBOUND": {"ours": [*INJECTOR_EXCLUDES, "-p tcp -j ISTIO_IN_REDIRECT"], "upstream": []},
    }


def test_sidecar_tproxy_rules_match_istio_iptables_inbound_ports_wildcard_tproxy(scratch):
    """Our TPROXY mode against `inbound-ports-wildcard-tproxy` (`-m TPROXY -b *`), mangle and nat."""
    up, ours = scratch
    restore(up, golden_ipv4("istio-iptables-inbound-ports-wildcard-tproxy.golden"))
    restore(ours, IstioSidecarTproxy().rules([]))
    assert differences(read_back(ours, "mangle"), read_back(up, "mangle")) == {
        "ISTIO_INBOUND": {"ours": INJECTOR_EXCLUDES, "upstream": []},
    }
    assert differences(read_back(ours, "nat"), read_back(up, "nat")) == {
        "ISTIO_OUTPUT": {"ours": ["-j ISTIO_REDIRECT"], "upstream": []},  # `-i *`, as above
    }


@pytest.mark.parametrize(
    ("golden", "interfaces", "dns_capture"),
    [
        ("cni-default.golden", [], True),  # the test's configuration: RedirectDNS on, as the chart's default
        ("cni-virtual_interfaces.golden", ["fake1s0f0", "fake1s0f1"], False),  # RedirectDNS off there
    ],
)
def test_ambient_inpod_rules_match_istio_cni(scratch, golden, interfaces, dns_capture):
    """istio-cni's in-pod rules (ambient, ambient-reroute) against its golden files, DNS capture included: every
    table (mangle, nat, raw) the same, rule for rule."""
    up, ours = scratch
    restore(up, golden_ipv4(golden))
    restore(ours, ambient.inpod_rules(interfaces, dns_capture=dns_capture))
    for table in ("mangle", "nat", "raw"):
        assert differences(read_back(ours, table), read_back(up, table)) == {}, table


def nft_golden(name: str) -> str:
    """An Istio nftables golden file: the nft script istio-nftables or istio-cni applies (its header comments kept)."""
    return (UPSTREAM / "istio" / name).read_text()


def nft_chains(ns, table: str) -> dict[str, list[str]]:
    """`nft list table inet TABLE`: each chain's lines (its hook line first for a base chain) in order, counters'
    values dropped (`counter packets 3 bytes 180` -> `counter`)."""
    chains: dict[str, list[str]] = {}
    current = None
    for line in ns.run(["nft", "list", "table", "inet", table]).splitlines():
        line = re.sub(r"counter packets \d+ bytes \d+", "counter", line.strip())
        if m := re.fullmatch(r"chain (\S+) \{", line):
            current = chains.setdefault(m[1], [])
        elif line == "}":
            current = None
        elif current is not None and line:
            current.append(line)
    return chains


NFT_INJECTOR_EXCLUDES = [f"tcp dport {p} counter return" for p in (15090, 15021, 15020)]
"""The injector's `-d 15090,15021,15020` as nft lists them back (`meta l4proto tcp tcp dport` reads as `tcp dport`)."""


def test_sidecar_nftables_rules_match_istio_nftables_inbound_ports_wildcard(scratch):
    """Istio 1.27+'s native nftables backend (`--native-nftables`) for our REDIRECT mode, no VM interface, against
    tools/istio-nftables `inbound-ports-wildcard` (`-b *`); the same two differences as the iptables backend's."""
    up, ours = scratch
    apply_nft(up, nft_golden("istio-nftables-inbound-ports-wildcard.golden"))
    apply_nft(ours, IstioSidecar().nft_rules([]))
    assert differences(nft_chains(ours, "istio-proxy-nat"), nft_chains(up, "istio-proxy-nat")) == {
        "istio-inbound": {"ours": NFT_INJECTOR_EXCLUDES, "upstream": []},
        "istio-output": {"ours": ["counter jump istio-redirect"], "upstream": []},  # `-i *`, as with iptables
    }


def test_sidecar_nftables_rules_with_the_vms_interfaces_match_istio_nftables_kube_virt_interfaces(scratch):
    """The nftables backend with the VM's interfaces against `kube-virt-interfaces` (`-k eth1,eth2`, outbound `*`):
    unlike the iptables comparison, the `iifname ethX return` rules are Istio's in both (run.go
    shortCircuitKubeInternalInterface writes them with this backend, and ours does too)."""
    up, ours = scratch
    apply_nft(up, nft_golden("istio-nftables-kube-virt-interfaces.golden"))
    apply_nft(ours, IstioSidecar().nft_rules(["eth1", "eth2"]))
    assert differences(nft_chains(ours, "istio-proxy-nat"), nft_chains(up, "istio-proxy-nat")) == {
        # the golden's configuration captures no inbound port (no `-b`), the injector's captures all (`-b *`)
        "prerouting": {"ours": ["meta l4proto tcp counter jump istio-inbound"], "upstream": []},
        "istio-inbound": {"ours": [*NFT_INJECTOR_EXCLUDES, "meta l4proto tcp counter jump istio-in-redirect"],
                          "upstream": []},
    }  # fmt: skip


def test_sidecar_tproxy_nftables_rules_match_istio_nftables_inbound_ports_wildcard_tproxy(scratch):
    """The nftables backend in TPROXY mode against `inbound-ports-wildcard-tproxy`: mangle and nat."""
    up, ours = scratch
    apply_nft(up, nft_golden("istio-nftables-inbound-ports-wildcard-tproxy.golden"))
    apply_nft(ours, IstioSidecarTproxy().nft_rules([]))
    assert differences(nft_chains(ours, "istio-proxy-mangle"), nft_chains(up, "istio-proxy-mangle")) == {
        "istio-inbound": {"ours": NFT_INJECTOR_EXCLUDES, "upstream": []},
    }
    assert differences(nft_chains(ours, "istio-proxy-nat"), nft_chains(up, "istio-proxy-nat")) == {
        "istio-output": {"ours": ["counter jump istio-redirect"], "upstream": []},  # `-i *`, as above
    }


@pytest.mark.parametrize(
    ("golden", "interfaces", "dns_capture"),
    [
        ("cni-nftables-default.golden", [], True),  # RedirectDNS on, as the chart's default
        ("cni-nftables-virtual_interfaces.golden", ["fake1s0f0", "fake1s0f1"], False),  # RedirectDNS off there
    ],
)
def test_ambient_inpod_nftables_rules_match_istio_cni(scratch, golden, interfaces, dns_capture):
    """istio-cni's in-pod rules with the nftables backend (Istio 1.28+, cni/pkg/nftables) against its golden
    files: every table the same, rule for rule."""
    up, ours = scratch
    apply_nft(up, nft_golden(golden))
    apply_nft(ours, ambient.inpod_nft(interfaces, dns_capture=dns_capture))
    tables = ["istio-ambient-nat", "istio-ambient-mangle"] + (["istio-ambient-raw"] if dns_capture else [])
    listed = ours.run(["nft", "list", "tables"]).split()
    assert sorted(t for t in listed if t.startswith("istio-")) == sorted(tables)
    for table in tables:
        assert differences(nft_chains(ours, table), nft_chains(up, table)) == {}, table


def kubevirt_expected(section: str) -> str:
    """One expectedConfig block of KubeVirt's masquerade_test.go, by its `## <name>` heading."""
    text = (UPSTREAM / "kubevirt" / "masquerade_test-expected.txt").read_text()
    body = text.split(f"## {section} (", 1)[1].split("\n", 1)[1]
    return body.split("\n## ", 1)[0]


def stub_to_nft(expected: str, addresses: dict[str, str], family: str = "ip") -> str:
    """KubeVirt's nftable stub listing (tables, chains with chainspec, rules with rulespec) of one family (`ip`
    or `ip6`) as an nft script, with its test addresses replaced by ours."""
    lines = []
    for line in expected.splitlines():
        for theirs, mine in addresses.items():
            line = line.replace(theirs, mine)
        if m := re.fullmatch(rf"family {family} name (\S+)", line):
            lines.append(f"add table {family} {m[1]}")
        elif m := re.fullmatch(rf"family {family} table (\S+) name (\S+) chainspec \[(.*)\]", line):
            lines.append(f"add chain {family} {m[1]} {m[2]} {m[3]}".rstrip())
        elif m := re.fullmatch(rf"family {family} table (\S+) chain (\S+) rulespec \[(.*)\]", line):
            lines.append(f"add rule {family} {m[1]} {m[2]} {m[3]}")
    return "\n".join(lines) + "\n"


def nft_table(ns, family: str = "ip") -> str:
    return ns.run(["nft", "list", "table", family, "nat"])


VM, GATEWAY, POD = "198.19.0.2", "198.19.0.1", "198.18.2.2"


@pytest.mark.parametrize(
    ("section", "istio", "declare_ports"),
    [
        ("setup with IPv4, no ports", False, False),
        ("setup with IPv4 and IPv6, including ports", False, True),
        ("with ISTIO / setup with IPv4 and IPv6, no ports", True, False),
        ("with ISTIO / setup with IPv4 and IPv6, including ports", True, True),
    ],
)
def test_masquerade_rules_match_kubevirts_expected_nft_configuration(scratch, section, istio, declare_ports):
    """KubeVirt's masquerade binding with and without Istio, with and without declared ports (80, 8080): the same
    table, chain for chain, as nft lists it. Our VM network is 198.19.0.0/24 instead of 10.0.2.0/24 (docs/design.md's
    address plan) and the pod's address ours; nothing else differs."""
    up, ours = scratch
    addresses = {"10.0.2.2": VM, "10.0.2.1": GATEWAY, "10.222.222.1": POD}
    up.run(["nft", "-f", "-"], input=stub_to_nft(kubevirt_expected(section), addresses))
    strategy = Masquerade(
        MasqueradeOptions(istio=istio, declare_ports=declare_ports),
        services=Services(tcp_ports=(80, 8080)),
        sidecar="none",
    )
    ours.run(["nft", "-f", "-"], input=strategy.ruleset(GATEWAY, VM, POD))
    assert nft_table(ours) == nft_table(up)


VM6, GATEWAY6, POD6 = "2001:2:0:ff::2", "2001:2:0:ff::1", "2001:2:0:2::2"


@pytest.mark.parametrize(
    ("section", "istio", "declare_ports"),
    [
        ("setup with IPv6, no ports", False, False),
        ("setup with IPv4 and IPv6, including ports", False, True),
        ("with ISTIO / setup with IPv4 and IPv6, no ports", True, False),
        ("with ISTIO / setup with IPv4 and IPv6, including ports", True, True),
    ],
)
def test_masquerade_ipv6_rules_match_kubevirts_expected_nft_configuration(scratch, section, istio, declare_ports):
    """Issue 45: the ip6 nat table of KubeVirt's masquerade, Istio's IPv4-only adaptation included (`{ ::1 }` where
    IPv4 has the pod's address and 127.0.0.6). Our VM network is 2001:2:0:ff::/120 (RFC 5180) instead of
    fd10:0:2::/120; nothing else differs."""
    up, ours = scratch
    addresses = {"fd10:0:2::2": VM6, "fd10:0:2::1": GATEWAY6}
    up.run(["nft", "-f", "-"], input=stub_to_nft(kubevirt_expected(section), addresses, "ip6"))
    strategy = Masquerade(
        MasqueradeOptions(istio=istio, declare_ports=declare_ports),
        services=Services(tcp_ports=(80, 8080)),
        sidecar="none",
    )
    ours.run(["nft", "-f", "-"], input=strategy.ruleset(GATEWAY6, VM6, POD6, family="ip6"))
    assert nft_table(ours, "ip6") == nft_table(up, "ip6")


# Issue 45: the meshes' IPv6 rules against Istio's IPv6 golden files (ip6tables and the nftables `inet` twins).

PROBE6_IN_GOLDEN = "e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164"
"""The host probe's IPv6 address istio-cni's tests configure (cni/pkg/iptables/iptables_test.go probeSNATipv6);
a cluster's node agent uses its default fd16:9254:7127:1337:ffff:ffff:ffff:ffff (cni/pkg/nodeagent/options.go),
which ours writes: the golden's is swapped for it before comparing, nothing else."""


def golden_part(name: str, part: int) -> dict[str, list[str]]:
    """One part of an Istio iptables golden file (0: the IPv4 tables, 1: the IPv6 ones after them)."""
    parts: list[dict[str, list[str]]] = [{}]
    current = None
    for line in (
        (UPSTREAM / "istio" / name).read_text().replace(PROBE6_IN_GOLDEN, IPV6_OF["169.254.7.127"]).splitlines()
    ):
        if line.startswith("#") or line in ("iptables-save", "ip6tables-save"):
            continue
        if line.startswith("* "):
            current = line[2:].strip()
            if current in parts[-1]:
                parts.append({})
            parts[-1][current] = []
        elif line == "COMMIT":
            current = None
        elif current:
            parts[-1][current].append(line)
    return parts[part] if part < len(parts) else {}


@pytest.mark.parametrize(
    ("golden", "tables"),
    [
        ("istio-iptables-ipv6-virt-interfaces.golden", ("nat",)),
        # tproxy's configuration also sets IPv4-only DNS servers (127.0.0.53) and IPv4 outbound ranges, whose nat
        # and raw rules have no IPv6 form; our modes set neither, so its mangle table (TPROXY itself) is compared
        ("istio-iptables-tproxy.golden", ("mangle",)),
        ("cni-default_ipv6.golden", ("mangle", "nat", "raw")),
        ("cni-virtual_interfaces_ipv6.golden", ("mangle", "nat")),
    ],
)
def test_istios_ipv6_rules_are_its_ipv4_rules_in_ipv6_words(golden, tables):
    """What harness/pod/ip6.py rests on: in Istio's IPv6 golden files, the ip6tables part is the iptables part with
    each address swapped by IPV6_OF, rule for rule and in order."""
    v4, v6 = golden_part(golden, 0), golden_part(golden, 1)
    converted = ip6tables_rules(v4)
    for table in tables:
        assert converted[table] == v6[table], table
    assert set(v6) == set(v4)


def test_sidecar_ipv6_rules_match_istio_iptables_ipv6_virt_interfaces(scratch):
    """Our REDIRECT mode's ip6tables rules, with the VM's interfaces, against `ipv6-virt-interfaces` (`-b 4000,5000
    -k eth0,eth1`, IPv6 on, no outbound capture) as ip6tables reads both back. The differences are the
    configurations' (the same ones the IPv4 kube-virt-interfaces comparison lists), none the families'."""
    up, ours = scratch
    restore(up, golden_part("istio-iptables-ipv6-virt-interfaces.golden", 1), ipv6=True)
    restore(ours, ip6tables_rules(IstioSidecar().rules(["eth0", "eth1"])), ipv6=True)
    assert differences(read_back(ours, "nat", ipv6=True), read_back(up, "nat", ipv6=True)) == {
        # the injector captures every inbound port (`-b *`, excluding Envoy's own), the golden only 4000 and 5000;
        # the injector captures outbound (`-i *`), so the VM's interfaces jump to ISTIO_REDIRECT where the golden,
        # with no outbound capture, RETURNs them
        "PREROUTING": {
            "ours": ["-i eth1 -j ISTIO_REDIRECT", "-i eth0 -j ISTIO_REDIRECT"],
            "upstream": ["-i eth1 -j RETURN", "-i eth0 -j RETURN"],
        },
        "ISTIO_INBOUND": {
            "ours": [*INJECTOR_EXCLUDES, "-p tcp -j ISTIO_IN_REDIRECT"],
            "upstream": [
                "-p tcp -m tcp --dport 4000 -j ISTIO_IN_REDIRECT",
                "-p tcp -m tcp --dport 5000 -j ISTIO_IN_REDIRECT",
            ],
        },
        "ISTIO_OUTPUT": {"ours": ["-j ISTIO_REDIRECT"], "upstream": []},
    }


def test_sidecar_ipv6_nftables_rules_match_istio_nftables_ipv6_virt_interfaces(scratch):
    """The nftables backend with IPv6 on: each rule naming an IPv4 address followed by its `ip6` twin in the same
    `inet` table, against `ipv6-virt-interfaces`; the same configuration differences as above."""
    up, ours = scratch
    apply_nft(up, nft_golden("istio-nftables-ipv6-virt-interfaces.golden"))
    apply_nft(ours, with_ipv6_twins(IstioSidecar().nft_rules(["eth0", "eth1"])))
    assert differences(nft_chains(ours, "istio-proxy-nat"), nft_chains(up, "istio-proxy-nat")) == {
        "prerouting": {
            "ours": [
                'iifname "eth1" counter jump istio-redirect',
                'iifname "eth0" counter jump istio-redirect',
            ],
            "upstream": [],
        },
        "istio-inbound": {
            "ours": [*NFT_INJECTOR_EXCLUDES, "meta l4proto tcp counter jump istio-in-redirect"],
            "upstream": [
                "tcp dport 4000 counter jump istio-in-redirect",
                "tcp dport 5000 counter jump istio-in-redirect",
            ],
        },
        "istio-output": {"ours": ["counter jump istio-redirect"], "upstream": []},
    }


@pytest.mark.parametrize(
    ("golden", "interfaces", "dns_capture"),
    [("cni-default_ipv6.golden", [], True), ("cni-virtual_interfaces_ipv6.golden", ["fake1s0f0", "fake1s0f1"], False)],
)
def test_ambient_ipv6_inpod_rules_match_istio_cni(scratch, golden, interfaces, dns_capture):
    """istio-cni's in-pod ip6tables rules (ambient with `ambient.ipv6`) against its IPv6 golden files: every table
    the same, rule for rule (the host probe's address as a cluster's node agent has it)."""
    up, ours = scratch
    restore(up, golden_part(golden, 1), ipv6=True)
    restore(ours, ip6tables_rules(ambient.inpod_rules(interfaces, dns_capture=dns_capture)), ipv6=True)
    for table in ("mangle", "nat", "raw"):
        assert differences(read_back(ours, table, ipv6=True), read_back(up, table, ipv6=True)) == {}, table


@pytest.mark.parametrize(
    ("golden", "interfaces", "dns_capture"),
    [
        ("cni-nftables-default_ipv6.golden", [], True),
        ("cni-nftables-virtual_interfaces_ipv6.golden", ["fake1s0f0", "fake1s0f1"], False),
    ],
)
def test_ambient_ipv6_inpod_nftables_rules_match_istio_cni(scratch, golden, interfaces, dns_capture):
    """istio-cni's nftables backend with IPv6 on against its IPv6 golden files: every table the same."""
    up, ours = scratch
    apply_nft(up, nft_golden(golden).replace(PROBE6_IN_GOLDEN, IPV6_OF["169.254.7.127"]))
    apply_nft(ours, with_ipv6_twins(ambient.inpod_nft(interfaces, dns_capture=dns_capture)))
    tables = ["istio-ambient-nat", "istio-ambient-mangle"] + (["istio-ambient-raw"] if dns_capture else [])
    for table in tables:
        assert differences(nft_chains(ours, table), nft_chains(up, table)) == {}, table
