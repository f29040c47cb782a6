"""Istio's IPv6 rules as its tools write them: the IPv4 rule again with the IPv6 form of each address it names.

- iptables backend: istio-iptables builds every rule once per family and writes the IPv6 set with
  `ip6tables-restore` (istio/istio 86c9f01 tools/istio-iptables/pkg/builder/iptables_builder_impl.go BuildV6,
  `AppendVersionedRule("127.0.0.6/32", "::6/128", ...)` in tools/istio-iptables/pkg/capture/run.go); istio-cni's
  in-pod rules likewise (cni/pkg/iptables/iptables.go, the host probe address per family). Golden files:
  tools/istio-iptables testdata ipv6-*.golden, cni/pkg/iptables/testdata/*_ipv6.golden.
- nftables backend: one `inet` table carries both families; a rule naming an IPv4 address (`ip daddr ...`) gets
  its IPv6 twin (`ip6 daddr ...`) right after it (tools/istio-nftables/pkg/builder AppendV6RuleIfSupported;
  cni/pkg/nftables). A rule naming no address matches both families already, so without IPv6 enabled such a
  rule still takes IPv6 packets (the IPv4-only rules of an `inet` table are not IPv4-only: what they do to an
  IPv6 flow is measured, not assumed).
- Routes and addresses: `ip -6 addr add ::6/128 dev lo` for the inbound passthrough's source
  (tools/common/tproxy/run_linux.go configureIPv6Addresses: IPv6's loopback is ::1/128 only), and the TPROXY /
  in-pod `ip -6 rule fwmark ...` with a local `::/0` route (run_linux.go configureTProxyRoutes,
  cni/pkg/iptables/iptables_linux.go forEachLoopbackRoute).

Which pods get them: istio-init enables IPv6 when the pod has an IPv6 address and ISTIO_DUAL_STACK is set
(tools/common/config/config.go getLocalIP; without dual stack it takes the first address, IPv4 on a dual-stack
pod); istio-cni's `ambient.ipv6` (chart default true) for ambient."""

from __future__ import annotations

import re

IPV6_OF = {
    "127.0.0.6/32": "::6/128",  # InboundPassthroughBindIpv4 -> InboundPassthroughBindIpv6
    "127.0.0.1/32": "::1/128",
    "169.254.7.127": "fd16:9254:7127:1337:ffff:ffff:ffff:ffff",  # cni/pkg/nodeagent/options.go DefaultHostProbeSNAT*
}
"""Every IPv4 address the modelled rules name, and the one Istio writes in its IPv6 rule."""
INBOUND_PASSTHROUGH_BIND6 = "::6"
LOOPBACK_ALL6 = "::"


def ip6_words(rule: str) -> str:
    """An iptables rule (or nft rule) with each IPv4 address Istio names swapped for its IPv6 one."""
    for v4, v6 in IPV6_OF.items():
        rule = rule.replace(v4, v6)
    return rule


def ip6tables_rules(tables: dict[str, list[str]]) -> dict[str, list[str]]:
    """The ip6tables tables istio-iptables / istio-cni write beside `tables` (the IPv4 ones)."""
    return {table: [ip6_words(r) for r in rules] for table, rules in tables.items()}


_FAMILY_MATCH = re.compile(r"\bip (saddr|daddr)\b|\btproxy ip to\b")


def with_ipv6_twins(script: str) -> str:
    """An nft script for an `inet` table with IPv6 enabled: each rule that names an IPv4 address followed by its
    IPv6 twin (`ip daddr != 127.0.0.1/32` -> `ip6 daddr != ::1/128`, `tproxy ip to` -> `tproxy ip6 to`)."""
    lines = []
    for line in script.splitlines():
        lines.append(line)
        if line.startswith(("add rule ", "insert rule ")) and _FAMILY_MATCH.search(line):
            twin = _FAMILY_MATCH.sub(lambda m: m[0].replace("ip ", "ip6 "), line)
            lines.append(ip6_words(twin))
    return "\n".join(lines) + "\n"
