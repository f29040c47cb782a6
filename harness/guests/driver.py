"""The seam between a strategy and its guest. A strategy says *how* its VM is connected (a tap in the pod, a
user-mode stack, a passt socket); the run's GuestDriver, chosen once by guest kind, knows how to do that for
a netns guest (harness.guests.netns_driver) or a QEMU guest (harness.guests.qemu.driver). No strategy asks
which kind of guest it has."""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from harness.guests.base import Guest
from harness.guests.netns import NetnsGuest
from harness.guests.spec import GuestSpec
from harness.lab.bed import TestBed
from harness.lab.kinds import GuestKind

TAP = "tap0"  # virt-launcher's name for the primary interface's tap
PASST_MTU = 65520  # passt's and pasta's default


@dataclass(frozen=True)
class UserModeNet:
    """A libslirp network between the VM and the pod: gateway .2, guest .100 (slirp4netns' layout, QEMU's
    -netdev user with the same `net=`), and forwards of the pod's ports to the guest."""

    cidr: str
    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]
    mtu: int | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr, strict=True)

    @property
    def gateway(self) -> str:
        return str(self.network[2])

    @property
    def guest_cidr(self) -> str:
        return f"{self.network[100]}/{self.network.prefixlen}"


@dataclass(frozen=True)
class PasstNet:
    """passt/pasta between the VM and the pod: the guest takes the pod's address and gateway; the pod's ports
    are forwarded to it (`-t`/`-u`)."""

    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]
    mtu: int | None = None

    def forwards(self) -> list[str]:
        tcp = ",".join(map(str, self.tcp_ports)) or "none"
        udp = ",".join(map(str, self.udp_ports)) or "none"
        return ["-t", tcp, "-u", udp]


@dataclass(frozen=True)
class RoutedVm:
    guest: Guest
    gateway: str
    vm_ip: str


class TapPort(ABC):
    """The VM's NIC seen from the pod: `tap0`, ready for the strategy to enslave, route or NAT."""

    name = TAP

    @abstractmethod
    def start(self, cidr: str, gateway: str, *, mac: str | None = None) -> Guest:
        """Give the guest its address (static, standing in for KubeVirt's in-pod DHCP) and bring it up."""


class GuestDriver(ABC):
    kind: ClassVar[GuestKind]

    def __init__(self, spec: GuestSpec, label: str = "guest", *, mtu: int | str | None = None) -> None:
        self.spec = spec
        self.label = label  # names this cell's files (a QEMU guest's console log)
        self.mtu = mtu
        """A sweep's guest MTU for this cell: a number, `pod` (the pod interface's), or None (the strategy's)."""

    def nic_mtu(self, bed: TestBed, requested: int | None) -> int | None:
        """The MTU the VM's NIC gets: the sweep's when the scenario sweeps it, else what the strategy asked for
        (None: the binding's default)."""
        if self.mtu == "pod":
            return bed.plan.mtu
        return int(self.mtu) if self.mtu is not None else requested

    @abstractmethod
    def tap(self, bed: TestBed, *, mtu: int | None = None) -> TapPort:
        """Create the pod-side `tap0` of the VM's NIC."""

    @abstractmethod
    def user_mode(self, bed: TestBed, net: UserModeNet) -> Guest:
        """Connect the VM through a libslirp user-mode stack in the pod; return it booted and addressed."""

    def user_mode_mtu(self, net: UserModeNet) -> int | None:
        """The MTU the guest gets on a user-mode network (QEMU 7.2 cannot change libslirp's)."""
        return net.mtu

    @abstractmethod
    def passt(self, bed: TestBed, net: PasstNet) -> Guest:
        """Connect the VM through passt (pasta for a namespace) in the pod; return it booted and addressed."""

    def pod(self, bed: TestBed) -> Guest:
        """The pod's own namespace as a place for tools (a strategy without a VM serves from there)."""
        return NetnsGuest.of(bed, bed.pod)

    def routed(self, bed: TestBed, *, bridge: str, vm_cidr: str) -> RoutedVm:
        """The layout KubeVirt masquerade and the 2018 research's libvirt network share: an in-pod bridge
        holding the gateway address (.1), the VM's tap on it, the VM at .2 with its default route via the
        gateway, and forwarding on in the pod."""
        gateway, vm_ip, prefix = first_hosts(vm_cidr)
        pod = bed.pod
        pod.sysctl("net.ipv4.ip_forward", 1)
        pod.add_bridge(bridge)
        pod.add_address(bridge, f"{gateway}/{prefix}")
        tap = self.tap(bed)
        pod.enslave(tap.name, bridge)
        return RoutedVm(tap.start(f"{vm_ip}/{prefix}", gateway), gateway, vm_ip)


def first_hosts(cidr: str) -> tuple[str, str, int]:
    """Gateway (.1) and VM (.2) addresses of a VM network and its prefix length, as KubeVirt assigns them."""
    net = ipaddress.ip_network(cidr, strict=True)
    hosts = net.hosts()
    return str(next(hosts)), str(next(hosts)), net.prefixlen
