"""`passt-vhost-user`: KubeVirt 1.8's core passt binding. virt-launcher emits a libvirt
`<interface type='vhostuser'>` with `<backend type='passt'/>` (kubevirt/enhancements veps/sig-network/21-passt);
libvirt runs `passt --vhost-user --socket S` in the pod and starts QEMU with guest memory a vhost-user backend
can map (memory-backend-memfd, share=on, as the NUMA node's memory), `-chardev socket,path=S` and
`-netdev vhost-user` behind a virtio-net device: passt reads and writes the virtio rings itself, with no
stream socket and no copy through QEMU. Port forwards as KubeVirt computes them (kubevirt/kubevirt
pkg/virt-launcher/virtwrap/converter/network/passt.go; Istio's reserved ports from pkg/network/istio/ports.go).

Needs a VM: on the netns guest the cell fails and says why. Needs the 2025 passt (Debian 12's has no
--vhost-user).
"""

from __future__ import annotations

from typing import Literal

from harness.guests.driver import PASST_MTU
from harness.pod.kubevirt import BEFORE_1_8, PAST_PLUGIN, SINCE_1_8, InRelease, KubevirtBinding, Shipping
from strategies.base import Attachment, GuestDriver, Requirements, TestBed
from strategies.passt import Passt, PasstOptions


class PasstVhostUserOptions(PasstOptions):
    build: Literal["debian-13", "debian-13-backports"] = "debian-13"
    """Only the 2025 and later passt have vhost-user."""


class PasstVhostUser(Passt):
    name = "passt-vhost-user"
    kubevirt = KubevirtBinding.per_release(
        {
            BEFORE_1_8: InRelease(
                Shipping.PLUGIN, "passt plugin (vhost-user)", {"binding": {"name": "passt"}}, PAST_PLUGIN
            ),
            SINCE_1_8: InRelease(Shipping.CORE, "passtBinding", {"passtBinding": {}}),
        },
        InRelease(Shipping.ABSENT, "passt plugin (vhost-user)"),
        # the plugin declared `migration` (1.6-1.7), passtBinding is migratable in core (1.8+; VEP 21)
        live_migration="allowed (passt-repair carries the TCP connections: VEP 21)",
    )
    colour = "C8"
    summary = "passt in vhost-user mode: passt serves the VM's virtio-net rings in shared memory (KubeVirt 1.8)"
    faithful_to = "KubeVirt 1.8 passtBinding (libvirt vhostuser interface, passt backend)"
    requirements = Requirements(extra_processes=("passt",), binaries=("passt",))
    Options = PasstVhostUserOptions
    options: PasstVhostUserOptions
    needs_qemu = True
    ip_families = ("ipv4", "ipv6")  # passt serves both families; the guest takes the pod's IPv6 (QEMU driver)

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        net = self.passt_net(bed, guest)
        vm = guest.passt_vhost_user(bed, net)
        v6 = bed.plan.pod_ip6 if bed.plan.ipv6 else None
        return Attachment.of_guest(bed, vm, bed.plan.pod_ip, v6, guest_ip=bed.plan.pod, mtu=net.mtu or PASST_MTU)
