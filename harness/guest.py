"""The VM a strategy connects: either the netns guest (the VM's network stack as a namespace inside the pod,
DESIGN.md "Guests") or a QEMU guest (harness.qemu). Strategies wire the pod side the same way for both:
a `tap0` in the pod (virt-launcher's name for the primary interface's tap) that they enslave, route or NAT,
then start the guest with its address."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Literal

from harness.netns import Namespace, veth
from harness.qemu import Acceleration, QemuGuest, QemuOptions
from harness.testbed import TestBed

GUEST_IFNAME = "eth0"
TAP = "tap0"
GuestKind = Literal["netns", "qemu"]


@dataclass(frozen=True)
class GuestSpec:
    """Which guest a bed's strategies attach: `netns` or `qemu` (with its options and the run's accel)."""

    kind: GuestKind = "netns"
    qemu: QemuOptions = field(default_factory=QemuOptions)
    acceleration: Acceleration | None = None

    def for_strategy(self, has_vm: bool) -> GuestSpec:
        """The guest a strategy's bed gets: this one, or none for a strategy without a VM (`direct`)."""
        return self if has_vm else GuestSpec()

    def columns(self) -> dict:
        """What every result row of a VM cell carries about the guest."""
        if self.kind != "qemu":
            return {"guest": self.kind}
        accel = self.acceleration.accel if self.acceleration else self.qemu.accel
        return {"guest": "qemu", "accel": accel, "vcpus": self.qemu.vcpus, "memory_mb": self.qemu.memory_mb}


Guest = Namespace | QemuGuest


class TapGuest:
    """The VM's NIC seen from the pod: `tap0`. For the netns guest it is one end of a veth pair whose other end
    is the guest's eth0; for QEMU it is a real tap device QEMU opens (`-netdev tap,ifname=tap0`)."""

    def __init__(self, bed: TestBed, *, mtu: int | None = None) -> None:
        self.bed = bed
        self.mtu = mtu or bed.plan.mtu
        self.mac: str | None = None
        self.namespace: Namespace | None = None
        if bed.guest.kind == "qemu":
            bed.pod.add_tap(TAP, mtu=self.mtu)
        else:
            self.namespace = bed.add_namespace("vm")
            veth(bed.pod, TAP, self.namespace, GUEST_IFNAME, mtu=self.mtu)

    def start(self, cidr: str, gateway: str) -> Guest:
        """Give the guest its address (static, standing in for KubeVirt's in-pod DHCP) and bring it up."""
        if self.namespace is not None:
            if self.mac:
                self.namespace.set_mac(GUEST_IFNAME, self.mac)
            self.namespace.add_address(GUEST_IFNAME, cidr)
            self.namespace.add_route("default", gateway=gateway)
            return self.namespace
        # vhost-net where the host has it, as virt-launcher asks for; recorded in the guest's details.
        vhost = "on" if os.path.exists("/dev/vhost-net") else "off"
        netdev = f"tap,ifname={TAP},script=no,downscript=no,vhost={vhost}"
        return QemuGuest(self.bed, netdev=netdev, ip_cidr=cidr, gateway=gateway, mtu=self.mtu, mac=self.mac).boot()


def first_hosts(cidr: str) -> tuple[str, str, int]:
    """Gateway (.1) and VM (.2) addresses of a VM network and its prefix length, as KubeVirt assigns them."""
    net = ipaddress.ip_network(cidr, strict=True)
    hosts = net.hosts()
    return str(next(hosts)), str(next(hosts)), net.prefixlen


def routed_guest(bed: TestBed, *, bridge: str, vm_cidr: str) -> tuple[Guest, str, str]:
    """The layout KubeVirt masquerade and the 2018 research's libvirt network share: an in-pod bridge holding
    the gateway address (.1), the VM's tap on it, the VM at .2 with its default route via the gateway, and
    forwarding on in the pod. Returns (guest, gateway, vm_ip)."""
    gateway, vm_ip, prefix = first_hosts(vm_cidr)
    pod = bed.pod
    pod.sysctl("net.ipv4.ip_forward", 1)
    pod.add_bridge(bridge)
    pod.add_address(bridge, f"{gateway}/{prefix}")
    tap = TapGuest(bed)
    pod.enslave(TAP, bridge)
    return tap.start(f"{vm_ip}/{prefix}", gateway), gateway, vm_ip


def guest_details(guest: Guest) -> dict:
    """The QEMU guest's facts (accel, vhost, boot time, ...) for an Attachment's details; nothing for netns."""
    return guest.details() if isinstance(guest, QemuGuest) else {}
