"""`passt`: passt/pasta, the user-mode translation layer KubeVirt adopted after slirp (its passt binding).
Unlike slirp it keeps no TCP/IP stack of its own: it maps the VM's L2 frames onto the pod's sockets, copying
the pod's addressing into the guest (the guest gets the pod IP and the pod's gateway). Ingress through passt's
port forwards (`-t PORT`, `-u PORT`), egress through its sockets in the pod.

Faithful to passt/pasta (passt.1: --config-net, -t/-u/-T/-U, --netns, --runas, --socket) as KubeVirt's
passt binding ran it with QEMU's `-netdev stream` (the QEMU guest); for the netns guest it is pasta, the same
code driving a tap in a namespace. How each guest is attached: harness/guests/netns_driver.py and
harness/guests/qemu/driver.py. Not yet: KubeVirt 1.8's vhost-user mode (its own issue).
"""

from __future__ import annotations

from pydantic import Field

from harness.guests.driver import PASST_MTU, PasstNet
from strategies.base import Attachment, GuestDriver, Requirements, Strategy, StrategyOptions, TestBed


class PasstOptions(StrategyOptions):
    mtu: int | None = Field(None, ge=576, le=65520)
    """MTU passt/pasta gives the guest interface; None keeps their default (65520)."""


class Passt(Strategy):
    name = "passt"
    summary = "pasta/passt L2-to-L4 translation: guest shares the pod's address, traffic via pasta's sockets"
    faithful_to = "KubeVirt passt binding (passt/pasta)"
    requirements = Requirements(extra_processes=("pasta",), kernel_features=("tun",), binaries=("pasta",))
    Options = PasstOptions
    options: PasstOptions

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        net = PasstNet(self.services.tcp_ports, self.services.udp_ports, guest.nic_mtu(bed, self.options.mtu))
        vm = guest.passt(bed, net)
        return Attachment.of_guest(bed, vm, bed.plan.pod_ip, guest_ip=bed.plan.pod, mtu=net.mtu or PASST_MTU)
