"""`iptables-only`: in-kernel DNAT/SNAT in the pod's iptables nat table, no extra process. Without a sidecar:
DNAT of the service ports arriving on eth0 to the VM, SNAT of the VM's egress to the pod IP.

Faithful to kubevirt/kubevirt.github.io _posts/2018-06-03-Research-run-VMs-with-istio-service-mesh.markdown
("Iptables only with dnat and source nat configuration") and the `kubevirtInterfaces` option of
istio/istio tools/istio-iptables. The research's rules are written against Istio's chains (DNAT of what
Envoy sends from 127.0.0.1 to the VM, SNAT to the pod IP, VM interface -> ISTIO_REDIRECT); those pieces are
applied when an Istio-style sidecar is present: route_localnet on the VM bridge, OUTPUT DNAT to the VM of
what Envoy sends to the service ports (from 127.0.0.6 to the pod IP, as today's Envoy does; to 127.0.0.1,
as the research's 2018 Envoy did), SNAT of those loopback sources to the pod IP, and the VM interface
announced to istio-iptables (`-i virbr0 -j ISTIO_REDIRECT`). Without a sidecar the same nat-table idea
reduces to a DNAT of the service ports arriving on eth0 and an SNAT of the VM's egress. The VM sits on an
in-pod bridge with its own private network, as in the research's libvirt setup.
"""

from __future__ import annotations

from harness.lab.rules import apply_iptables
from harness.pod.kubevirt import KubevirtBinding
from strategies.base import (
    RESEARCH_IPV4_ONLY,
    Attachment,
    GuestDriver,
    Requirements,
    Strategy,
    TestBed,
    VmNetworkOptions,
)

BRIDGE = "virbr0"


class IptablesOnlyOptions(VmNetworkOptions):
    pass


class IptablesOnly(Strategy):
    name = "iptables-only"
    kubevirt = KubevirtBinding.research("iptables only (2018 research)")
    colour = "C5"
    summary = "kernel DNAT of service ports to the VM and SNAT of its egress in the iptables nat table"
    faithful_to = "2018 KubeVirt research: iptables only with dnat and source nat"
    ipv6_missing = RESEARCH_IPV4_ONLY
    requirements = Requirements(
        capabilities=("CAP_NET_ADMIN",),
        kernel_features=("iptables nat", "conntrack", "bridge", "tun"),
        binaries=("iptables-restore",),
    )
    Options = IptablesOnlyOptions
    vm_interfaces = (BRIDGE,)
    options: IptablesOnlyOptions

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        vm = guest.routed(bed, bridge=BRIDGE, vm_cidr=self.options.vm_cidr)
        vm_ip = vm.vm_ip
        pod_ip = bed.plan.pod_ip
        services = [("tcp", p) for p in self.services.tcp_ports] + [("udp", p) for p in self.services.udp_ports]
        if self.istio_sidecar:
            bed.pod.sysctl(f"net.ipv4.conf.{BRIDGE}.route_localnet", 1)
            rules = []
            for proto, port in services:
                to_vm = f'-p {proto} --dport {port} -m comment --comment "Kubevirt mesh application port" -j DNAT'
                rules += [
                    f"-I OUTPUT 1 -s 127.0.0.6/32 -d {pod_ip}/32 {to_vm} --to-destination {vm_ip}",
                    f"-I OUTPUT 1 -d 127.0.0.1/32 {to_vm} --to-destination {vm_ip}",
                ]
            rules.append(
                f'-A POSTROUTING -s 127.0.0.0/8 -d {vm_ip}/32 -m comment --comment "Kubevirt VM Forward" '
                f"-j SNAT --to-source {pod_ip}"
            )
        else:
            rules = [
                f'-A PREROUTING -i eth0 -p {proto} --dport {port} -m comment --comment "Kubevirt VM service" '
                f"-j DNAT --to-destination {vm_ip}"
                for proto, port in services
            ]
        egress = '-m comment --comment "Kubevirt VM egress"'
        rules.append(f"-A POSTROUTING -s {vm_ip}/32 -o eth0 {egress} -j SNAT --to-source {pod_ip}")
        apply_iptables(bed.pod, "nat", rules)
        return Attachment.of_guest(bed, vm.guest, pod_ip, vm_ip=vm_ip)
