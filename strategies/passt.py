"""`passt`: passt/pasta, the user-mode translation layer KubeVirt adopted after slirp (its passt binding).
Unlike slirp it keeps no TCP/IP stack of its own: it maps the VM's L2 frames onto the pod's sockets, copying
the pod's addressing into the guest (the guest gets the pod IP and the pod's gateway). Ingress through passt's
port forwards, computed as KubeVirt's virt-launcher does (kubevirt/kubevirt
pkg/virt-launcher/virtwrap/converter/network/passt.go: every port unless the VMI declares some, Istio's
reserved ports excluded when a sidecar is injected), egress through its sockets in the pod.

Faithful to passt/pasta (passt.1: --config-net, -t/-u/-T/-U, --netns, --runas, --socket) as KubeVirt's passt
binding ran it with QEMU's `-netdev stream` (the QEMU guest) before 1.8; for the netns guest it is pasta, the
same code driving a tap in a namespace. `build` picks Debian 12's passt (git 2023-03-09) or Debian 13's
(git 2025-05-03, built by harness/tools/debian.py), so both can be measured in one run. With the 2025 build the
netns guest runs pasta with --no-splice: otherwise a connection from the pod's loopback (Envoy's inbound
passthrough, from 127.0.0.6) is spliced into the namespace's own loopback, skipping the guest interface, a path
passt with a VM does not have. Debian 12's pasta lacks the option; those cells say so in their `caveat`.
KubeVirt 1.8's vhost-user mode is strategies/passt_vhost_user.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.guests.driver import PASST_MTU, PasstNet
from harness.pod.kubevirt import BEFORE_1_8, PAST_PLUGIN, SINCE_1_8, InRelease, KubevirtBinding, Shipping
from harness.tools.debian import passt_build
from strategies.base import Attachment, GuestDriver, Requirements, Strategy, StrategyOptions, TestBed


class PasstOptions(StrategyOptions):
    mtu: int | None = Field(None, ge=576, le=65520)
    """MTU passt/pasta gives the guest interface; None keeps their default (65520)."""
    build: Literal["debian-12", "debian-13", "debian-13-backports"] = "debian-13"
    """Which passt: Debian 12's 0.0~git20230309, Debian 13's 0.0~git20250503.587980c (what KubeVirt 1.8 pairs
    with vhost-user) or trixie-backports' 0.0~git20260728.f8df3f1 (its migration source keeps the TCP sockets:
    harness/tools/debian.py PASST_SOURCES)."""
    declare_ports: bool = False
    """True: the VMI declares the services' ports and only those are forwarded; False (KubeVirt's behaviour for a
    VMI that declares none): every port is."""


class Passt(Strategy):
    name = "passt"
    kubevirt = KubevirtBinding.per_release(
        {
            BEFORE_1_8: InRelease(Shipping.PLUGIN, "passt plugin", {"binding": {"name": "passt"}}, PAST_PLUGIN),
            SINCE_1_8: InRelease(
                Shipping.ABSENT,
                "passt (stream socket)",
                None,
                "core passt is vhost-user since 1.8 (passt-vhost-user); a stream-socket passt is not shipped",
            ),
        },
        InRelease(Shipping.ABSENT, "passt plugin"),
    )
    colour = "C2"
    summary = "pasta/passt L2-to-L4 translation: guest shares the pod's address, traffic via pasta's sockets"
    faithful_to = "KubeVirt passt binding (passt/pasta)"
    requirements = Requirements(extra_processes=("pasta",), kernel_features=("tun",), binaries=("pasta",))
    Options = PasstOptions
    options: PasstOptions
    ip_families = ("ipv4", "ipv6")  # passt takes the pod's IPv6 as it takes its IPv4 (passt.top: dual stack)

    def passt_net(self, bed: TestBed, guest: GuestDriver) -> PasstNet:
        build = passt_build(self.options.build)
        return PasstNet(
            self.services.tcp_ports,
            self.services.udp_ports,
            guest.nic_mtu(bed, self.options.mtu),
            binary_dir=build.binary_dir,
            version=build.version,
            declare_ports=self.options.declare_ports,
            istio=self.istio_sidecar,
            no_splice=build.no_splice,
        )

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        net = self.passt_net(bed, guest)
        vm = guest.passt(bed, net)
        caveat = ""
        if not net.no_splice and self.sidecar.istio and vm.facts() is None:
            caveat = (
                "not representative: Debian 12's pasta splices Envoy's inbound connections (from 127.0.0.6) "
                "into the netns guest's loopback, skipping the guest interface; passt with a VM has no such "
                "path (use build debian-13, which runs pasta --no-splice)"
            )
        v6 = bed.plan.pod_ip6 if bed.plan.ipv6 else None  # pasta forwards the pod's ports of both families
        return Attachment.of_guest(
            bed, vm, bed.plan.pod_ip, v6, guest_ip=bed.plan.pod, mtu=net.mtu or PASST_MTU, caveat=caveat
        )
