"""How traffic reaches the VM once a strategy is set up: where its servers listen, where its clients run, what
the peer dials, and what is known about the path (typed facts, saved with every cell)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.guests.base import Guest, VmFacts
from harness.guests.netns import NetnsGuest
from harness.lab.bed import TestBed
from harness.lab.vocabulary import Direction


@dataclass
class AttachmentFacts:
    vm_ip: str | None = None
    """The VM's address on its own network behind the pod (routed strategies)."""
    guest_ip: str | None = None
    """The guest interface's address as configured (CIDR), where it differs from the routed case."""
    gateway: str | None = None
    bridge: str | None = None
    mtu: int | None = None
    caveat: str = ""
    """Why this cell's numbers do not stand for the real system (a path it lacks), or empty."""
    vm: VmFacts | None = None
    """A QEMU guest's facts (accel, vhost, boot time, command line); None for a namespace."""

    def record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Ends:
    """One direction of a test: the server's place, the client's place, and the address the client dials."""

    server: Guest
    client: Guest
    target: str


@dataclass
class Attachment:
    service: Guest  # where the VM's servers listen: the guest (the pod itself for `direct`)
    client: Guest  # where the VM's own clients run, for egress
    peer: Guest  # the rest of the cluster: client for ingress, server for egress
    ingress_address: str  # what the peer dials to reach the VM's servers
    peer_address: str  # what the VM dials to reach the peer's servers
    facts: AttachmentFacts = field(default_factory=AttachmentFacts)
    ingress_address6: str | None = None
    """The IPv6 address the peer dials (a dual-stack bed and a binding that carries IPv6), else None."""
    peer_address6: str | None = None

    @classmethod
    def of_guest(
        cls, bed: TestBed, guest: Guest, ingress_address: str, ingress_address6: str | None = None, **facts: object
    ) -> Attachment:
        """The usual case: the VM's servers and clients both run in `guest`; its own facts join the rest.
        `ingress_address6`: what the peer dials over IPv6, when the binding carries IPv6 on a dual-stack bed."""
        return cls(
            service=guest,
            client=guest,
            peer=NetnsGuest.of(bed, bed.peer),
            ingress_address=ingress_address,
            peer_address=bed.plan.peer_ip,
            facts=AttachmentFacts(**facts, vm=guest.facts()),
            ingress_address6=ingress_address6,
            peer_address6=bed.plan.peer_ip6 if bed.plan.ipv6 and ingress_address6 else None,
        )

    def ends(self, direction: Direction, family: str = "ipv4") -> Ends:
        """One direction's ends over IPv4 or (`family` ipv6) IPv6; ValueError when the binding's IPv6 path was not
        set up on this bed."""
        inbound = Direction(direction) is Direction.INGRESS
        if family == "ipv6":
            target = self.ingress_address6 if inbound else self.peer_address6
            if target is None:
                raise ValueError("this attachment carries no IPv6 (its binding's IPv6 path is not set up)")
        else:
            target = self.ingress_address if inbound else self.peer_address
        return Ends(self.service, self.peer, target) if inbound else Ends(self.peer, self.client, target)
