"""`bridge`: KubeVirt's bridge binding. The pod's interface is renamed `eth0-nic`, loses its IP and gets a new
MAC, and becomes a port of the in-pod bridge `k6t-eth0` together with the VM's tap; the VM takes the pod's
original MAC, IP and routes (KubeVirt hands them over with its in-pod DHCP server). No NAT: the pod keeps no
IP of its own, the VM *is* the pod on the network.

Faithful to kubevirt/kubevirt docs/devel/networking.md ("Bridge binding mechanism").
Differences: KubeVirt creates a dummy `eth0` that keeps the original identity for its DHCP server; the
`dummy` link type does not exist on this project's kernels, and the VM's address is configured statically,
so the dummy is not needed and not created.
"""

from __future__ import annotations

import secrets

from harness.pod.kubevirt import ALLOW_BRIDGE_MIGRATION, RELEASED, InRelease, KubevirtBinding, KubevirtRelease, Shipping
from strategies.base import Attachment, GuestDriver, Requirements, Strategy, TestBed

BRIDGE = "k6t-eth0"
POD_IFACE = "eth0"
POD_NIC = "eth0-nic"


def random_local_mac() -> str:
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{b:02x}" for b in octets)


class Bridge(Strategy):
    name = "bridge"
    kubevirt = KubevirtBinding.per_release(
        {(KubevirtRelease.RESEARCH_2018, *RELEASED): InRelease(Shipping.CORE, "bridge", {"bridge": {}})},
        InRelease(Shipping.ABSENT, "bridge"),
        live_migration=f"allowed with the VMI annotation {ALLOW_BRIDGE_MIGRATION}",  # interface.go
    )
    colour = "C3"
    summary = "pod IP and MAC moved to the VM behind in-pod bridge k6t-eth0, no NAT (KubeVirt bridge binding)"
    faithful_to = "KubeVirt bridge binding (docs/devel/networking.md)"
    requirements = Requirements(capabilities=("CAP_NET_ADMIN",), kernel_features=("bridge", "tun"))
    vm_interfaces = (BRIDGE,)
    ip_families = ("ipv4", "ipv6")

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        pod, plan = bed.pod, bed.plan
        original_mac = pod.mac(POD_IFACE)
        pod.flush_addresses(POD_IFACE)  # also drops the routes through it
        pod.rename(POD_IFACE, POD_NIC)
        pod.set_mac(POD_NIC, random_local_mac())
        pod.add_bridge(BRIDGE)
        pod.enslave(POD_NIC, BRIDGE)
        tap = guest.tap(bed)
        pod.enslave(tap.name, BRIDGE)
        vm = tap.start(plan.pod, plan.pod_gateway, mac=original_mac)
        v6 = None
        if plan.ipv6:  # the pod's IPv6 handed to the VM too; no DHCPv6 or RA from KubeVirt: cloud-init's static one
            guest.static_ipv6(bed, plan.pod6, plan.pod_gateway6)
            v6 = plan.pod_ip6
        return Attachment.of_guest(bed, vm, plan.pod_ip, v6, vm_ip=plan.pod_ip)
