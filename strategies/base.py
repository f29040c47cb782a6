"""What every connectivity strategy declares and does. A strategy is small: requirements, options, setup.

Setup receives the bed and the run's GuestDriver: the strategy says how its VM is connected (a tap it
bridges, routes or NATs; a user-mode stack; a passt socket) and the driver does it for whichever guest the run
has. Teardown is the bed's: everything a strategy creates is registered on the TestBed (namespaces,
processes) or lives inside one of its namespaces (links, addresses, routes, rules, sysctls) and goes with it.
The seed's claims about each strategy are data, in harness/claims/claims.yaml.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from harness.guests.attachment import Attachment
from harness.guests.driver import GuestDriver
from harness.lab.addresses import check_vm_network
from harness.lab.bed import TestBed
from harness.lab.vocabulary import GuestKind
from harness.pod.bindings import PALETTE, register_binding
from harness.pod.kubevirt import KubevirtBinding
from harness.pod.mesh import SidecarKind
from harness.pod.proxy_process import RelayImplementation

__all__ = [
    "Attachment",
    "GuestDriver",
    "Requirements",
    "Services",
    "Strategy",
    "StrategyOptions",
    "TestBed",
    "VmNetworkOptions",
]


class StrategyOptions(BaseModel):
    """Per-strategy knobs from the scenario's `strategy_options.<name>`; strategies subclass this."""

    model_config = ConfigDict(extra="forbid")


VmNetwork = Annotated[str, AfterValidator(check_vm_network)]
"""A VM network a user may choose: inside 198.18.0.0/15, clear of the bed's peer and pod networks."""


class VmNetworkOptions(StrategyOptions):
    """Options of strategies whose VM sits on its own network behind an in-pod bridge (gateway .1, VM .2)."""

    vm_cidr: VmNetwork = "198.19.0.0/24"
    """The VM network (KubeVirt's masquerade default is 10.0.2.0/24; here the RFC 2544 range)."""


class RelayOptions(VmNetworkOptions):
    """Options of strategies whose VM traffic crosses the userspace relay (nat-proxy, tproxy)."""

    relay: RelayImplementation = RelayImplementation.C
    """`c`: vmnb-relay (harness/pod/relay.c), `python`: the reference harness/pod/proxy.py; same behaviour."""
    relay_workers: int = Field(1, ge=1, le=16)
    """Relay processes sharing the ports with SO_REUSEPORT (one per core spreads connections over cores)."""


@dataclass(frozen=True)
class Requirements:
    """What a strategy needs from the pod and the host (declared; issue 7's probes test it by trying)."""

    capabilities: tuple[str, ...] = ()
    kernel_features: tuple[str, ...] = ()
    extra_processes: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()


@dataclass(frozen=True)
class Services:
    """The VM's service ports the strategy must make reachable from the peer."""

    tcp_ports: tuple[int, ...] = (5201,)
    udp_ports: tuple[int, ...] = ()


RESEARCH_IPV4_ONLY = (
    "IPv4 only, as the research design writes it: iptables (IPv4) rules and an IPv4 VM network, no ip6tables "
    "equivalent; on a dual-stack pod its VM has no IPv6 address"
)
"""The research designs' IPv6 verdict (the seed post's iptables-only, NAT-proxy and TPROXY designs)."""


class Strategy(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    faithful_to: ClassVar[str]
    requirements: ClassVar[Requirements] = Requirements()
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    ip_families: ClassVar[tuple[str, ...]] = ("ipv4",)
    """The families whose path this binding's setup builds here (a dual-stack run measures the others over IPv4
    only and says so); the real binding's IPv6 story is in its docstring."""
    ipv6_missing: ClassVar[str] = "the binding's IPv6 path is not built here (IPv4 only)"
    """Its IPv6 verdict when `ip_families` has no ipv6: why (the real design is IPv4 only, or what is missing here)."""

    @classmethod
    def ipv6_missing_on(cls, guest: GuestKind) -> str:
        """Why this binding has no IPv6 path on `guest` ('' when it has one); a binding whose IPv6 depends on the
        guest (slirp: QEMU's libslirp, not slirp4netns) overrides it."""
        return "" if "ipv6" in cls.ip_families else cls.ipv6_missing

    has_vm: ClassVar[bool] = True
    """False only for `direct`: its service runs in the pod, so the scenario's guest does not apply."""
    needs_qemu: ClassVar[bool] = False
    """True when the binding cannot attach a namespace (vhost-user serves a virtio device's rings)."""
    vm_interfaces: ClassVar[tuple[str, ...]] = ()
    """Pod interfaces the VM's traffic enters by, announced to an Istio sidecar the way KubeVirt does
    (annotation traffic.sidecar.istio.io/kubevirtInterfaces -> istio-iptables `-k`)."""
    kubevirt: ClassVar[KubevirtBinding | None] = None
    """How KubeVirt ships this binding, release by release (core, plugin, research design; its user-facing name;
    the VMI interface field): rows, the recommendation, the manifests and the page read it by the strategy's
    name (harness/pod/bindings.py). None: in no release."""
    colour: ClassVar[str] = ""
    """Its colour in every figure (matplotlib's cycle, harness/pod/bindings.PALETTE)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a concrete binding: its declarations are what every layer asks about it
            register_binding(cls.name, cls.kubevirt or KubevirtBinding.unknown(cls.name), cls.colour or PALETTE[-1])

    def __init__(
        self,
        options: StrategyOptions | None = None,
        *,
        services: Services | None = None,
        sidecar: SidecarKind = SidecarKind.NONE,
    ) -> None:
        self.options = options if options is not None else self.Options()
        self.services = services or Services()
        self.sidecar = SidecarKind(sidecar)

    @property
    def istio_sidecar(self) -> bool:
        """An Istio-style sidecar (REDIRECT or TPROXY mode) is injected in the pod."""
        return self.sidecar.istio

    @abstractmethod
    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        """Create the guest (through `guest`) and whatever connects it to the pod network; return how to
        reach it."""
