"""`tproxy`: the VM's TCP diverted to a transparent proxy in the pod by a mangle-table TPROXY rule and fwmark
policy routing (`ip rule fwmark 8 lookup 100`, `ip route add local 0/0 dev lo table 100`), rp_filter off;
the proxy's IP_TRANSPARENT listener sees the original destination as its socket's local address and
re-originates the connection as the pod's own socket. Ingress goes through the same proxy listening on the
service ports (the research's haproxy half).

Faithful to kubevirt/kubevirt.github.io _posts/2018-06-03-Research-run-VMs-with-istio-service-mesh.markdown
("Iptables with a trasperent-proxy process"): chains KUBEVIRT_DIVERT / KUBEVIRT_INBOUND / KUBEVIRT_TPROXY,
mark 8, proxy port 9401, `-m socket` for established flows, nat ACCEPT exemptions and UDP MASQUERADE.
Difference: the research matched `-i vnet0` (libvirt's tap) and used ebtables broute rules so the VM's
frames skip bridge-level netfilter and reach L3. Here the VM's gateway is the bridge's own address, so its
traffic arrives routed on `virbr0`; but with br_netfilter active (bridge-nf-call-iptables=1, the per-netns
default wherever br_netfilter is loaded, as on Kubernetes nodes) the TPROXY verdict taken at bridge level
is lost on the way up and every SYN is answered with a RST (measured: TcpOutRsts rises, the listener never
sees it). Turning bridge-nf-call-iptables off in the pod plays the part of the broute rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from harness.lab.rules import apply_iptables
from harness.pod.kubevirt import KubevirtBinding
from harness.pod.proxy_process import start_proxy
from strategies.base import RESEARCH_IPV4_ONLY, Attachment, GuestDriver, RelayOptions, Requirements, Strategy, TestBed

BRIDGE = "virbr0"
BR_NETFILTER_SYSCTL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
ESTABLISHED = {"socket": "-m socket", "conntrack": "-m conntrack --ctstate ESTABLISHED,RELATED"}
TPROXY_PORT = 9401
MARK = 8
ROUTE_TABLE = 100


class TproxyOptions(RelayOptions):
    established_match: Literal["socket", "conntrack"] = "socket"
    """How packets of flows the relay already owns skip TPROXY: `socket` is the research's `-m socket`, which
    also matches a TIME_WAIT socket, so a VM SYN that reuses a recent 4-tuple is delivered to that TIME_WAIT
    socket (no listener on the original destination: ACK, client RST, SYN retransmitted; measured in issue
    17); `conntrack` matches `--ctstate ESTABLISHED,RELATED`, as Istio's TPROXY mode does, so such a SYN
    (ctstate NEW) reaches TPROXY, which hands a TIME_WAIT hit to the listener."""
    route_table: int = Field(ROUTE_TABLE, ge=1, le=252)
    """The policy-routing table of `ip rule fwmark 8 lookup TABLE`: the research's 100. Istio's ambient mode
    (istio-cni's in-pod rules) takes table 100 too, with the same local default route, so under ambient the
    research's `ip route add` fails with File exists; another number lets both live."""


class Tproxy(Strategy):
    name = "tproxy"
    kubevirt = KubevirtBinding.research("iptables + TPROXY (2018 research)")
    colour = "C7"
    summary = "mangle TPROXY + fwmark policy routing to an IP_TRANSPARENT splice proxy; ingress via the proxy"
    faithful_to = "2018 KubeVirt research: iptables with a transparent-proxy process"
    ipv6_missing = RESEARCH_IPV4_ONLY
    requirements = Requirements(
        capabilities=("CAP_NET_ADMIN",),
        kernel_features=("iptables mangle", "TPROXY", "socket match", "policy routing", "bridge", "tun"),
        extra_processes=("vmnb-relay",),
        binaries=("iptables-restore",),
    )
    Options = TproxyOptions
    options: TproxyOptions

    def setup(self, bed: TestBed, guest: GuestDriver) -> Attachment:
        pod = bed.pod
        vm = guest.routed(bed, bridge=BRIDGE, vm_cidr=self.options.vm_cidr)
        vm_ip = vm.vm_ip
        for iface in ("all", "default", BRIDGE, "tap0"):
            pod.sysctl(f"net.ipv4.conf.{iface}.rp_filter", 0)
        if BR_NETFILTER_SYSCTL.exists():
            pod.sysctl("net.bridge.bridge-nf-call-iptables", 0)
        apply_iptables(
            pod,
            "mangle",
            [
                "-N KUBEVIRT_DIVERT",
                "-N KUBEVIRT_INBOUND",
                "-N KUBEVIRT_TPROXY",
                f"-A KUBEVIRT_DIVERT -j MARK --set-mark {MARK}",
                "-A KUBEVIRT_DIVERT -j ACCEPT",
                f"-A PREROUTING -p tcp -i {BRIDGE} -j KUBEVIRT_INBOUND",
                f"-A KUBEVIRT_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark {MARK}/0xffffffff "
                f"--on-port {TPROXY_PORT}",
                f"-A KUBEVIRT_INBOUND -p tcp {ESTABLISHED[self.options.established_match]} -j KUBEVIRT_DIVERT",
                "-A KUBEVIRT_INBOUND -p tcp -j KUBEVIRT_TPROXY",
                f"-I OUTPUT 1 -d {vm_ip} -j ACCEPT",
            ],
        )
        apply_iptables(
            pod,
            "nat",
            [
                f"-I PREROUTING 1 -s {vm_ip} -j ACCEPT",
                f"-I OUTPUT 1 -d {vm_ip} -j ACCEPT",
                f"-I POSTROUTING 1 -s {vm_ip} -p udp -j MASQUERADE",
            ],
        )
        pod.add_policy_rule(fwmark=MARK, table=self.options.route_table)
        pod.add_local_default_route(self.options.route_table)
        ingress = [f"static:{bed.plan.pod_ip}:{p}={vm_ip}:{p}" for p in self.services.tcp_ports]
        start_proxy(
            bed,
            [f"tproxy:0.0.0.0:{TPROXY_PORT}", *ingress],
            implementation=self.options.relay,
            workers=self.options.relay_workers,
        )
        return Attachment.of_guest(bed, vm.guest, bed.plan.pod_ip, vm_ip=vm_ip)
