"""The seam between a strategy and its guest. A strategy says *how* its VM is connected (a tap in the pod, a
user-mode stack, a passt socket); the run's GuestDriver, chosen once by guest kind, knows how to do that for
a netns guest (harness.guests.netns_driver) or a QEMU guest (harness.guests.qemu.driver). No strategy asks
which kind of guest it has."""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.guests.base import Guest
from harness.guests.netns import NetnsGuest
from harness.guests.spec import GuestSpec
from harness.lab.bed import TestBed
from harness.lab.vocabulary import GuestKind
from harness.pod.mesh import ISTIO_RESERVED_PORTS

TAP = "tap0"  # virt-launcher's name for the primary interface's tap
PASST_MTU = 65520  # passt's and pasta's default


class NotSupported(RuntimeError):
    """This guest cannot be attached the way the strategy asks (a result for the cell, not a crash)."""


@dataclass(frozen=True)
class UserModeNet:
    """A libslirp network between the VM and the pod: gateway .2, guest .100 (slirp4netns' layout, QEMU's
    -netdev user with the same `net=`), and forwards of the pod's ports to the guest."""

    cidr: str
    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]
    mtu: int | None = None
    prefix6: str = ""
    """The guest's IPv6 /64 inside libslirp on a dual-stack pod (its router advertisements hand it out; '' on an
    IPv4-only pod)."""

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
    are forwarded to it as KubeVirt computes them (`forwards`)."""

    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]
    mtu: int | None = None
    binary_dir: Path | None = None
    """Folder holding this build's `passt` and `pasta`; None: Debian 12's on PATH."""
    version: str = ""
    declare_ports: bool = False
    """True: the VMI lists its ports (only those are forwarded); False: it lists none (everything is)."""
    istio: bool = False
    """An Istio sidecar is injected: its reserved ports are excluded from the forwards."""
    no_splice: bool = False
    """pasta only: `--no-splice`, so a connection from the pod's loopback (Envoy's inbound passthrough from
    127.0.0.6) crosses the tap like any other instead of being spliced into the namespace's loopback, a path
    passt with a VM does not have (passt >= 2024 has the option; Debian 12's does not)."""

    def binary(self, name: str) -> str:
        return str(self.binary_dir / name) if self.binary_dir else name

    def forwards(self) -> list[str]:
        """passt's -t/-u as KubeVirt's virt-launcher computes them (kubevirt/kubevirt
        pkg/virt-launcher/virtwrap/converter/network/passt.go generatePasstPortForward): with an Istio sidecar,
        TCP excludes Envoy's reserved ports (`~15000,...`); declared ports are forwarded as listed; a VMI that
        declares none gets every port (`all`), and with Istio's exclusions then no UDP forward at all."""
        tcp = [f"~{p}" for p in ISTIO_RESERVED_PORTS] if self.istio else []
        udp: list[str] = []
        if self.declare_ports:
            tcp += [str(p) for p in self.tcp_ports]
            udp += [str(p) for p in self.udp_ports]
        if not tcp and not udp:
            return ["-t", "all", "-u", "all"]
        return ["-t", ",".join(tcp) if tcp else "none", "-u", ",".join(udp) if udp else "none"]

    def effective_forwards(self) -> list[str]:
        """What the harness passes: forwards() restricted to the services' ports, the only ones a test uses
        (identical when ports are declared). pasta refuses `all` ("only allowed for passt"), and passt's
        `-t all -u all` opens a listening socket per port, 131k descriptors, which this machine's hard
        RLIMIT_NOFILE of 20000 refuses ("L4 socket: Too many open files"; raising it needs CAP_SYS_RESOURCE),
        where a kubelet's pod gets 1048576. Which protocols are forwarded at all still follows KubeVirt (with
        Istio and no declared ports: no UDP)."""
        spec = self.forwards()
        if self.declare_ports:
            return spec
        tcp = [str(p) for p in self.tcp_ports if p not in ISTIO_RESERVED_PORTS]
        udp = [str(p) for p in self.udp_ports] if spec[3] != "none" else []
        return ["-t", ",".join(tcp) or "none", "-u", ",".join(udp) or "none"]

    def listening_ports(self) -> tuple[int, ...]:
        """TCP ports passt will be listening on that a readiness wait may check (the services it forwards)."""
        forwarded = self.forwards()
        if forwarded[1] == "none":
            return ()
        return tuple(p for p in self.tcp_ports if p not in ISTIO_RESERVED_PORTS)


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

    def passt_vhost_user(self, bed: TestBed, net: PasstNet) -> Guest:
        """Connect the VM through passt in vhost-user mode (KubeVirt 1.8's passt binding)."""
        raise NotSupported(
            "passt's vhost-user mode serves a VM's virtio-net rings in shared guest memory; the netns guest is a "
            "namespace without a virtio device, so this binding needs guest: qemu"
        )

    def pod(self, bed: TestBed) -> Guest:
        """The pod's own namespace as a place for tools (a strategy without a VM serves from there)."""
        return NetnsGuest.of(bed, bed.pod)

    def static_ipv6(self, bed: TestBed, cidr: str, gateway: str) -> None:
        """The VM's NIC given `cidr` and a default route via `gateway`, as the guest's cloud-init would write them
        where a binding sends no router advertisement (KubeVirt's masquerade: kubevirt/kubevirt#19193)."""
        raise NotImplementedError(f"IPv6 inside the {self.kind} guest is not configured by the harness yet")

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
