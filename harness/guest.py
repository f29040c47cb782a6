"""The netns guest: the VM's network stack as a namespace inside the pod (DESIGN.md, Guests)."""

from __future__ import annotations

import ipaddress

from harness.netns import Namespace, veth
from harness.testbed import TestBed

GUEST_IFNAME = "eth0"


def add_netns_guest(bed: TestBed, *, pod_side: str = "tap0", mtu: int | None = None) -> Namespace:
    """A guest namespace whose eth0 is wired to `pod_side` in the pod, where a QEMU guest's tap would be
    (virt-launcher names the primary interface's tap `tap0`)."""
    guest = bed.add_namespace("vm")
    veth(bed.pod, pod_side, guest, GUEST_IFNAME, mtu=mtu or bed.plan.mtu)
    return guest


def configure_guest_ip(guest: Namespace, cidr: str, gateway: str) -> None:
    """Static stand-in for the DHCP lease KubeVirt's in-pod DHCP server hands the VM."""
    guest.add_address(GUEST_IFNAME, cidr)
    guest.add_route("default", gateway=gateway)


def first_hosts(cidr: str) -> tuple[str, str, int]:
    """Gateway (.1) and VM (.2) addresses of a VM network and its prefix length, as KubeVirt assigns them."""
    net = ipaddress.ip_network(cidr, strict=True)
    hosts = net.hosts()
    return str(next(hosts)), str(next(hosts)), net.prefixlen


def routed_guest(bed: TestBed, *, bridge: str, vm_cidr: str) -> tuple[Namespace, str, str]:
    """The layout KubeVirt masquerade and the 2018 research's libvirt network share: an in-pod bridge holding
    the gateway address (.1), the VM's tap on it, the VM at .2 with its default route via the gateway, and
    forwarding on in the pod. Returns (guest, gateway, vm_ip)."""
    gateway, vm_ip, prefix = first_hosts(vm_cidr)
    pod = bed.pod
    pod.sysctl("net.ipv4.ip_forward", 1)
    pod.add_bridge(bridge)
    pod.add_address(bridge, f"{gateway}/{prefix}")
    guest = add_netns_guest(bed)
    pod.enslave("tap0", bridge)
    configure_guest_ip(guest, f"{vm_ip}/{prefix}", gateway)
    return guest, gateway, vm_ip
