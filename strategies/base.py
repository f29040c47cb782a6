"""What every connectivity strategy declares and does. A strategy is small: claims, requirements, setup.

Teardown is the bed's: everything a strategy creates is registered on the TestBed (namespaces, processes)
or lives inside one of its namespaces (links, addresses, routes, rules, sysctls) and goes with it.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from harness.guest import Guest, guest_details
from harness.testbed import TestBed


class StrategyOptions(BaseModel):
    """Per-strategy knobs from the scenario's `strategy_options.<name>`; strategies subclass this."""

    model_config = ConfigDict(extra="forbid")


class VmNetworkOptions(StrategyOptions):
    """Options of strategies whose VM sits on its own network behind an in-pod bridge (gateway .1, VM .2)."""

    vm_cidr: str = "198.19.0.0/24"
    """The VM network (KubeVirt's masquerade default is 10.0.2.0/24; here the RFC 2544 range)."""

    @field_validator("vm_cidr")
    @classmethod
    def _network(cls, v: str) -> str:
        net = ipaddress.ip_network(v, strict=True)
        if net.version != 4 or net.prefixlen > 30:
            raise ValueError("must be an IPv4 network of /30 or larger, e.g. 198.19.0.0/24")
        return v


@dataclass(frozen=True)
class Requirements:
    """What a strategy needs from the pod and the host (declared; issue 7's probes test it by trying)."""

    capabilities: tuple[str, ...] = ()
    kernel_features: tuple[str, ...] = ()
    extra_processes: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeedClaims:
    """The pros and cons ../shared/seed/proxy-vm-conclusion.txt states for the way this strategy stands for."""

    pros: tuple[str, ...] = ()
    cons: tuple[str, ...] = ()


@dataclass
class Attachment:
    """How traffic reaches the VM once a strategy is set up."""

    service_ns: Guest  # where the VM's servers listen: the guest (the pod itself for `direct`)
    ingress_address: str  # what the peer dials to reach them
    client_ns: Guest  # where the VM's own clients run, for egress
    details: dict = field(default_factory=dict)

    @classmethod
    def of_guest(cls, guest: Guest, ingress_address: str, **details) -> Attachment:
        """The usual case: the VM's servers and clients both run in the guest; a QEMU guest's facts (accel,
        vhost, boot time) join the details."""
        details.update(guest_details(guest))
        return cls(service_ns=guest, ingress_address=ingress_address, client_ns=guest, details=details)


@dataclass(frozen=True)
class Services:
    """The VM's service ports the strategy must make reachable from the peer."""

    tcp_ports: tuple[int, ...] = (5201,)
    udp_ports: tuple[int, ...] = ()


class Strategy(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    faithful_to: ClassVar[str]
    seed_claims: ClassVar[SeedClaims] = SeedClaims()
    requirements: ClassVar[Requirements] = Requirements()
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    has_vm: ClassVar[bool] = True
    """False only for `direct`: its service runs in the pod, so the scenario's guest does not apply."""
    vm_interfaces: ClassVar[tuple[str, ...]] = ()
    """Pod interfaces the VM's traffic enters by, announced to an Istio sidecar the way KubeVirt does
    (annotation traffic.sidecar.istio.io/kubevirtInterfaces -> istio-iptables `-k`)."""

    def __init__(
        self, options: StrategyOptions | None = None, *, services: Services | None = None, sidecar: str = "none"
    ) -> None:
        self.options = options if options is not None else self.Options()
        self.services = services or Services()
        self.sidecar = sidecar

    @property
    def istio_sidecar(self) -> bool:
        """An Istio-style sidecar (REDIRECT or TPROXY mode) is injected in the pod."""
        return self.sidecar.startswith("envoy-")

    @abstractmethod
    def setup(self, bed: TestBed) -> Attachment:
        """Create the guest and whatever connects it to the pod network; return how to reach it."""
