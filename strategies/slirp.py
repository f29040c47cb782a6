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

IPv6 (QEMU guest): KubeVirt's slirp plugin (kubevirt/kubevirt cmd/sidecars/network-slirp-binding/domain/domain.go,
`generateBackendDeviceQemuArg`) writes `-netdev user,id=..,net=<cidr>,hostfwd=tcp::P-:P` and no IPv6 option, so
QEMU's default `ipv6=on` holds: libslirp's router advertisements give the guest a SLAAC address in its /64 and a
default route, and the VM's IPv6 egress leaves through the pod's own IPv6 sockets; the forwards name no host
address, which QEMU binds as IPv4 (0.0.0.0), so nothing listens on the pod's IPv6 for ingress. Here the /64 is
2001:2:0:fe::/64 instead of libslirp's fec0::/64 (the lab's range; the address never leaves libslirp). The netns
guest's slirp4netns has no such option (fd00::/64 fixed), so slirp's IPv6 rows come from the QEMU guest only.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from harness.guests.driver import UserModeNet
from harness.lab.addresses import check_vm_network
from harness.lab.vocabulary import GuestKind
from harness.pod.kubevirt import BEFORE_1_8, SINCE_1_8, InRelease, KubevirtBinding, KubevirtRelease, Shipping
from strategies.base import Attachment, GuestDriver, Requirements, Strategy, StrategyOptions, TestBed


class SlirpOptions(StrategyOptions):
    mtu: int = Field(65520, ge=576, le=65520)
    cidr: Annotated[str, AfterValidator(lambda v: check_vm_network(v, smallest_prefix=25))] = "198.19.1.0/24"
    """libslirp's network: gateway .2, guest .100 (so /25 or larger)."""
    prefix6: str = Field("2001:2:0:fe::", pattern=r"^2001:2:0:[0-9a-f]{1,4}::$")
    """libslirp's IPv6 /64 on a dual-stack pod (QEMU guest): libslirp's default is fec0::, moved into this lab's
    2001:2::/48; the guest's address never leaves libslirp, which opens the pod's own sockets."""


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
    ip_families = ("ipv4", "ipv6")
    ipv6_missing = (
        "IPv6 not built on the netns guest: slirp4netns 1.2.0's IPv6 (`--enable-ipv6`, 'experimental') puts the "
        "guest in fd00::/64 with no option to move it, outside this lab's 2001:2::/48 (the QEMU guest has it)"
    )
    requirements = Requirements(extra_processes=("slirp4netns",), kernel_features=("tun",), binaries=("slirp4netns",))
    Options = SlirpOptions
    options: SlirpOptions

    @classmethod
    def ipv6_missing_on(cls, guest: GuestKind) -> str:
        return cls.ipv6_missing if guest is GuestKind.NETNS else ""

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        net = UserModeNet(
            self.options.cidr,
            self.services.tcp_ports,
            self.services.udp_ports,
            guest.nic_mtu(bed, self.options.mtu),
            prefix6=self.options.prefix6 if bed.plan.ipv6 and not self.ipv6_missing_on(guest.kind) else "",
        )
        vm = guest.user_mode(bed, net)
        return Attachment.of_guest(
            bed,
            vm,
            bed.plan.pod_ip,
            bed.plan.pod_ip6 if net.prefix6 else None,  # the peer dials the pod's IPv6, as for IPv4
            guest_ip=net.guest_cidr,
            gateway=net.gateway,
            mtu=guest.user_mode_mtu(net),
        )
