"""`direct`: no VM at all; the service runs in the pod's own namespace. The ceiling every strategy is
measured against: whatever it loses next to this is the cost of putting a VM in the pod."""

from __future__ import annotations

from harness.pod.kubevirt import KubevirtBinding
from strategies.base import Attachment, GuestDriver, Strategy, TestBed


class Direct(Strategy):
    name = "direct"
    kubevirt = KubevirtBinding.plain_pod("plain pod (no VM)")
    colour = "C0"
    summary = "service in the pod itself, no VM: the reference ceiling"
    faithful_to = "a plain pod"
    has_vm = False
    ip_families = ("ipv4", "ipv6")

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        v6 = bed.plan.pod_ip6 if bed.plan.ipv6 else None  # a dual-stack pod: the CNI gives it both families
        return Attachment.of_guest(bed, guest.pod(bed), bed.plan.pod_ip, v6)
