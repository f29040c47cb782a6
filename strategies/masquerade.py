"""`masquerade`: KubeVirt's masquerade binding. The VM sits behind an in-pod bridge `k6t-eth0` on a private
network (gateway .1, VM .2); nftables in the pod's `ip nat` table DNATs inbound traffic to the VM, SNATs
loopback sources to the gateway, and masquerades the VM's egress behind the pod IP.

Faithful to kubevirt/kubevirt pkg/network/setup/netpod/masquerade/masquerade.go (chains, priorities and
rule shapes) and pkg/network/istio/ports.go + proxy.go (reserved ports, non-proxied port 22, 127.0.0.6).
Differences: KubeVirt's default VM network is 10.0.2.0/24; here it is 198.19.0.0/24 (docs/design.md address
plan), with `vm_cidr` to choose another. The VM's address is static instead of via KubeVirt's DHCP server.
"""

from __future__ import annotations

from harness.lab.rules import apply_nft
from harness.pod.kubevirt import RELEASED, InRelease, KubevirtBinding, Shipping
from harness.pod.mesh import ISTIO_RESERVED_PORTS
from strategies.base import Attachment, GuestDriver, Requirements, Strategy, TestBed, VmNetworkOptions

BRIDGE = "k6t-eth0"
POD_IFACE = "eth0"
ISTIO_NON_PROXIED_PORTS = (22,)
ISTIO_LOOPBACK = "127.0.0.6"
VM_NET6 = ("2001:2:0:ff::1", "2001:2:0:ff::2", 120)
"""The VM's IPv6 network (gateway, VM, prefix): KubeVirt's fd10:0:2::/120 moved into the RFC 5180 range."""


class MasqueradeOptions(VmNetworkOptions):
    istio: bool | None = None
    """KubeVirt's Istio variant (reserved Envoy ports skipped, 127.0.0.6 SNATed, pod IP DNATed); None: on
    exactly when an Istio sidecar is injected, as KubeVirt decides from the VMI's sidecar.istio.io/inject."""
    declare_ports: bool = False
    """Forward only the declared service ports (a VMI with `ports:`) instead of everything."""


class Masquerade(Strategy):
    name = "masquerade"
    kubevirt = KubevirtBinding.per_release(
        {RELEASED: InRelease(Shipping.CORE, "masquerade", {"masquerade": {}})},
        InRelease(Shipping.ABSENT, "masquerade"),
        annotated_for_istio=True,  # generator.go: every launcher pod with a masquerade interface
        istio_ipv4_only=True,  # pkg/network/setup/netpod/masquerade/masquerade.go: the IPv4 pod address only
        live_migration="allowed",  # pkg/network/vmispec/interface.go VerifyVMIMigratable
    )
    colour = "C4"
    summary = "bridge k6t-eth0, VM behind gateway .1, nftables NAT in the pod (KubeVirt masquerade binding)"
    faithful_to = "KubeVirt masquerade binding (pkg/network/setup/netpod/masquerade)"
    requirements = Requirements(
        capabilities=("CAP_NET_ADMIN",),
        kernel_features=("nf_tables", "nat", "bridge", "tun"),
        binaries=("nft",),
    )
    Options = MasqueradeOptions
    vm_interfaces = (BRIDGE,)
    ip_families = ("ipv4", "ipv6")
    options: MasqueradeOptions

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        vm = guest.routed(bed, bridge=BRIDGE, vm_cidr=self.options.vm_cidr)
        # KubeVirt turns route_localnet on for the bridge (pkg/network/driver/procsys, allowRouteLocalNet):
        # loopback-sourced connections DNATed to the VM (127.0.0.1, and Envoy's 127.0.0.6) must leave by it.
        # Measured: without it Envoy's inbound connection to the VM is dropped and the peer sees a reset.
        bed.pod.sysctl(f"net.ipv4.conf.{BRIDGE}.route_localnet", 1)
        ruleset = self.ruleset(vm.gateway, vm.vm_ip, bed.plan.pod_ip)
        v6 = None
        if bed.plan.ipv6:  # a dual-stack pod: KubeVirt's ip6 nat table beside the ip one (setupNATByFamily)
            gateway6, vm6, prefix6 = VM_NET6
            bed.pod.sysctl("net.ipv6.conf.all.forwarding", 1)
            bed.pod.add_address(BRIDGE, f"{gateway6}/{prefix6}")
            guest.static_ipv6(bed, f"{vm6}/{prefix6}", gateway6)  # no RA from KubeVirt: cloud-init's job
            ruleset += self.ruleset(gateway6, vm6, bed.plan.pod_ip6, family="ip6")
            v6 = bed.plan.pod_ip6
        apply_nft(bed.pod, ruleset)
        return Attachment.of_guest(
            bed, vm.guest, bed.plan.pod_ip, v6, vm_ip=vm.vm_ip, gateway=vm.gateway, bridge=BRIDGE
        )

    def ruleset(self, gateway: str, vm_ip: str, pod_ip: str, family: str = "ip") -> str:
        """The nft script KubeVirt's MasqPod.setupNATByFamily would issue for this VMI, for `family` ip or ip6.
        KubeVirt's Istio adaptation is IPv4 only: under Istio the IPv4 rules DNAT the pod's address and SNAT
        127.0.0.6, the IPv6 ones neither (pkg/network/setup/netpod/masquerade/masquerade.go adds only the IPv4 pod
        address to the set; its masquerade_test.go expects `{ ::1 }`)."""
        o = self.options
        istio = self.istio_sidecar if o.istio is None else o.istio
        v4 = family == "ip"
        loopback = "127.0.0.1" if v4 else "::1"
        dnat_sources = [loopback] + ([pod_ip] if istio and v4 else [])
        snat_sources = [loopback] + ([ISTIO_LOOPBACK] if istio and v4 else [])
        daddrs, saddrs = _set(dnat_sources), _set(snat_sources)
        lines = [
            f"table {family} nat {{",
            "  chain prerouting { type nat hook prerouting priority -100; }",
            "  chain input { type nat hook input priority 100; }",
            "  chain output { type nat hook output priority -100; }",
            "  chain postrouting { type nat hook postrouting priority 100; }",
            "  chain KUBEVIRT_PREINBOUND { }",
            "  chain KUBEVIRT_POSTINBOUND { }",
            "}",
        ]

        def rule(chain: str, spec: str) -> None:
            lines.append(f"add rule {family} nat {chain} {spec}")

        pre, post = "KUBEVIRT_PREINBOUND", "KUBEVIRT_POSTINBOUND"
        rule("postrouting", f"{family} saddr {vm_ip} counter masquerade")
        rule("prerouting", f"iifname {POD_IFACE} counter jump {pre}")
        rule("postrouting", f"oifname {BRIDGE} counter jump {post}")
        if o.declare_ports:
            ports = [("tcp", p) for p in self.services.tcp_ports] + [("udp", p) for p in self.services.udp_ports]
            for proto, port in ports:
                if not istio:
                    rule(pre, f"{proto} dport {{ {port} }} counter dnat to {vm_ip}")
                elif port in ISTIO_NON_PROXIED_PORTS:
                    rule(pre, f"tcp dport {{ {port} }} counter dnat to {vm_ip}")
                rule(post, f"{proto} dport {port} {family} saddr {saddrs} counter snat to {gateway}")
                rule("output", f"{family} daddr {daddrs} {proto} dport {port} counter dnat to {vm_ip}")
        else:
            if istio:
                reserved = _set(ISTIO_RESERVED_PORTS)
                rule("output", f"tcp dport {reserved} {family} saddr {loopback} counter return")
                rule(post, f"tcp dport {reserved} {family} saddr {loopback} counter return")
                rule(pre, f"tcp dport {_set(ISTIO_NON_PROXIED_PORTS)} counter dnat to {vm_ip}")
            else:
                rule(pre, f"counter dnat to {vm_ip}")
            rule(post, f"{family} saddr {saddrs} counter snat to {gateway}")
            rule("output", f"{family} daddr {daddrs} counter dnat to {vm_ip}")
        return "\n".join(lines) + "\n"


def _set(items) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"
