"""`slirp`: a user-mode TCP/IP stack between the VM and the pod. The VM's packets go to libslirp, which
terminates them and re-sends the payload through ordinary sockets of the process that runs it in the pod: the
VM "acts like a process". Egress through slirp's gateway (.2 of its network); ingress only through port
forwards of the pod's service ports to the guest (.100).

Faithful to QEMU `-netdev user` (the seed's slirp interface, KubeVirt's former slirp binding), with
`hostfwd=` per service port; for the netns guest it is slirp4netns, which runs the same libslirp
(rootless-containers/slirp4netns README and slirp4netns.1: --configure, --cidr, --mtu, --api-socket,
add_hostfwd). How each guest is attached: harness/guests/netns_driver.py and harness/guests/qemu/driver.py.
slirp4netns' default network is 10.0.2.0/24 (as QEMU's); here it is 198.19.1.0/24 (docs/design.md address plan).
MTU: slirp4netns recommends 65520; QEMU's default is 1500 (`mtu` option, netns guest only: QEMU 7.2's
`-netdev user` has no MTU option, so the QEMU guest runs at libslirp's 1500).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from harness.guests.driver import UserModeNet
from harness.lab.addresses import check_vm_network
from harness.pod.kubevirt import BEFORE_1_8, SINCE_1_8, InRelease, KubevirtBinding, KubevirtRelease, Shipping
from strategies.base import Attachment, GuestDriver, Requirements, Strategy, StrategyOptions, TestBed


class SlirpOptions(StrategyOptions):
    mtu: int = Field(65520, ge=576, le=65520)
    cidr: Annotated[str, AfterValidator(lambda v: check_vm_network(v, smallest_prefix=25))] = "198.19.1.0/24"
    """libslirp's network: gateway .2, guest .100 (so /25 or larger)."""


class Slirp(Strategy):
    name = "slirp"
    kubevirt = KubevirtBinding.per_release(
        {
            (KubevirtRelease.RESEARCH_2018, *BEFORE_1_8): InRelease(Shipping.CORE, "slirp", {"slirp": {}}),
            SINCE_1_8: InRelease(
                Shipping.PLUGIN, "slirp plugin", {"binding": {"name": "slirp"}}, "plugin only since 1.8"
            ),
        },
        InRelease(Shipping.ABSENT, "slirp"),
    )
    colour = "C1"
    summary = "libslirp user-mode stack (slirp4netns): VM traffic leaves as the slirp process's own sockets"
    faithful_to = "QEMU -netdev user / slirp4netns (same libslirp)"
    ipv6_missing = (
        "IPv6 not built: slirp4netns 1.2.0's IPv6 (`--enable-ipv6`, 'experimental') puts the guest in fd00::/64 "
        "with no option to move it, outside this lab's 2001:2::/48; QEMU's -netdev user has ipv6-prefix="
    )
    requirements = Requirements(extra_processes=("slirp4netns",), kernel_features=("tun",), binaries=("slirp4netns",))
    Options = SlirpOptions
    options: SlirpOptions

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        net = UserModeNet(
            self.options.cidr, self.services.tcp_ports, self.services.udp_ports, guest.nic_mtu(bed, self.options.mtu)
        )
        vm = guest.user_mode(bed, net)
        return Attachment.of_guest(
            bed, vm, bed.plan.pod_ip, guest_ip=net.guest_cidr, gateway=net.gateway, mtu=guest.user_mode_mtu(net)
        )
