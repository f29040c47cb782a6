"""`nat-proxy`: iptables REDIRECT of the VM's TCP connections to a userspace proxy in the pod, which reads
SO_ORIGINAL_DST and re-originates each connection as the pod's own socket; ingress through the same proxy
listening on the service ports and connecting to the VM (the research used haproxy for that half).

Faithful to kubevirt/kubevirt.github.io _posts/2018-06-03-Research-run-VMs-with-istio-service-mesh.markdown
("Iptables with a nat-proxy process"): the three nat rules of its entry point (REDIRECT of TCP from the VM,
ACCEPT of pod -> VM in OUTPUT, MASQUERADE of the VM's UDP). The VM sits on an in-pod bridge with its own
private network, as the research's libvirt network did. UDP is not proxied; the MASQUERADE rule is the
research's own answer for UDP egress, and UDP ingress has no path at all (by design).
"""

from __future__ import annotations

from harness.lab.rules import apply_iptables
from harness.pod.kubevirt import KubevirtBinding
from harness.pod.proxy_process import start_proxy
from strategies.base import RESEARCH_IPV4_ONLY, Attachment, GuestDriver, RelayOptions, Requirements, Strategy, TestBed

BRIDGE = "virbr0"
REDIRECT_PORT = 8080  # the research's proxy port


class NatProxyOptions(RelayOptions):
    pass


class NatProxy(Strategy):
    name = "nat-proxy"
    kubevirt = KubevirtBinding.research("iptables + nat-proxy (2018 research)")
    colour = "C6"
    summary = "iptables REDIRECT of VM TCP to a splice proxy (SO_ORIGINAL_DST); ingress via the proxy"
    faithful_to = "2018 KubeVirt research: iptables with a nat-proxy process"
    ipv6_missing = RESEARCH_IPV4_ONLY
    requirements = Requirements(
        capabilities=("CAP_NET_ADMIN",),
        kernel_features=("iptables nat", "REDIRECT", "conntrack", "bridge", "tun"),
        extra_processes=("vmnb-relay",),
        binaries=("iptables-restore",),
    )
    Options = NatProxyOptions
    options: NatProxyOptions

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        vm = guest.routed(bed, bridge=BRIDGE, vm_cidr=self.options.vm_cidr)
        vm_ip = vm.vm_ip
        apply_iptables(
            bed.pod,
            "nat",
            [
                f'-I PREROUTING 1 -p tcp -s {vm_ip} -m comment --comment "nat-proxy redirect" '
                f"-j REDIRECT --to-ports {REDIRECT_PORT}",
                f"-I OUTPUT 1 -p tcp -d {vm_ip} -j ACCEPT",
                f'-I POSTROUTING 1 -s {vm_ip} -p udp -m comment --comment "nat udp connections" -j MASQUERADE',
            ],
        )
        ingress = [f"static:{bed.plan.pod_ip}:{p}={vm_ip}:{p}" for p in self.services.tcp_ports]
        start_proxy(
            bed,
            [f"original-dst:0.0.0.0:{REDIRECT_PORT}", *ingress],
            implementation=self.options.relay,
            workers=self.options.relay_workers,
        )
        return Attachment.of_guest(bed, vm.guest, bed.plan.pod_ip, vm_ip=vm_ip)
