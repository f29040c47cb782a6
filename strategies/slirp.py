"""`slirp`: a user-mode TCP/IP stack between the VM and the pod. The VM's packets go to libslirp, which
terminates them and re-sends the payload through ordinary sockets of the slirp process in the pod: the VM
"acts like a process". Egress through slirp's gateway (.2 of its network); ingress only through port
forwards, added on slirp4netns' API socket (`add_hostfwd`), the way QEMU's `-netdev user,hostfwd=` works.

Faithful to QEMU `-netdev user` (the seed's slirp interface, KubeVirt's former slirp binding); for the netns
guest it is slirp4netns, which runs the same libslirp (rootless-containers/slirp4netns README and
slirp4netns.1: --configure, --cidr, --mtu, --api-socket, add_hostfwd). slirp4netns' default network is
10.0.2.0/24 (as QEMU's); here it is 198.19.1.0/24 (DESIGN.md address plan), guest .100, gateway .2.
MTU: slirp4netns recommends 65520; QEMU's default is 1500. Both are options (`mtu`) for the netns guest.

With the QEMU guest (`guest: qemu`) it is QEMU's own `-netdev user` with `hostfwd=` rules, as the seed ran it:
no tap, no helper process. QEMU 7.2's `-netdev user` has no MTU option, so libslirp runs at its 1500 there.
"""

from __future__ import annotations

import ipaddress
import json
import socket

from pydantic import Field

from harness.qemu import QemuGuest
from harness.testbed import TestBed
from harness.waiting import wait_until
from strategies.base import Attachment, Requirements, SeedClaims, Strategy, StrategyOptions

SEED = SeedClaims(
    pros=(
        "vm ack like a process",
        "No external modules needed",
        "No external process needed",
        "Works with any sidecar solution",
        "no rely on any specific Kernel configurations",
        "pod can run without privilege",
    ),
    cons=("poor performance", "use userspace network stack"),
)


class SlirpOptions(StrategyOptions):
    mtu: int = Field(65520, ge=576, le=65520)
    cidr: str = "198.19.1.0/24"


class Slirp(Strategy):
    name = "slirp"
    summary = "libslirp user-mode stack (slirp4netns): VM traffic leaves as the slirp process's own sockets"
    faithful_to = "QEMU -netdev user / slirp4netns (same libslirp)"
    seed_claims = SEED
    requirements = Requirements(extra_processes=("slirp4netns",), kernel_features=("tun",), binaries=("slirp4netns",))
    Options = SlirpOptions
    options: SlirpOptions

    def setup(self, bed: TestBed) -> Attachment:
        if bed.guest.kind == "qemu":
            return self.setup_qemu(bed)
        guest = bed.add_namespace("vm")
        api = bed.runtime_dir() / "slirp4netns.sock"
        proc = bed.start_process(
            [
                "slirp4netns",
                "--configure",
                f"--mtu={self.options.mtu}",
                f"--cidr={self.options.cidr}",
                f"--api-socket={api}",
                "--netns-type=path",
                f"/run/netns/{guest.name}",
                "eth0",
            ],  # fmt: skip
            name="slirp4netns",
            ns=bed.pod,
        )
        wait_until(
            lambda: (
                (not proc.alive() and _raise(f"slirp4netns exited: {proc.log_tail(3)}"))
                or (api.exists() and guest.has_link("eth0") and guest.addresses("eth0"))
            ),
            timeout=10,
            what="slirp4netns configuring the guest",
        )
        for port in self.services.tcp_ports:
            add_hostfwd(str(api), "tcp", port)
        for port in self.services.udp_ports:
            add_hostfwd(str(api), "udp", port)
        return Attachment(
            service_ns=guest,
            ingress_address=bed.plan.pod_ip,
            client_ns=guest,
            details={"guest_ip": guest.addresses("eth0")[0], "mtu": self.options.mtu},
        )

    def setup_qemu(self, bed: TestBed) -> Attachment:
        """QEMU -netdev user: gateway .2, the guest at .100 (slirp4netns' layout), a hostfwd per service port
        from the pod's 0.0.0.0 (QEMU runs in the pod's namespace) to the guest."""
        net = ipaddress.ip_network(self.options.cidr, strict=True)
        gateway, guest_ip = net[2], net[100]
        forwards = [f"hostfwd=tcp::{p}-{guest_ip}:{p}" for p in self.services.tcp_ports]
        forwards += [f"hostfwd=udp::{p}-{guest_ip}:{p}" for p in self.services.udp_ports]
        netdev = ",".join([f"user,net={net},host={gateway},dhcpstart={guest_ip},restrict=off", *forwards])
        guest = QemuGuest(bed, netdev=netdev, ip_cidr=f"{guest_ip}/{net.prefixlen}", gateway=str(gateway), mtu=1500)
        guest.boot()
        return Attachment.of_guest(guest, bed.plan.pod_ip, guest_ip=f"{guest_ip}/{net.prefixlen}", mtu=1500)


def add_hostfwd(api_socket: str, proto: str, port: int) -> None:
    """slirp4netns API: forward pod port -> the same guest port (slirp4netns.1, "API SOCKET")."""
    request = {"execute": "add_hostfwd", "arguments": {"proto": proto, "host_addr": "0.0.0.0",
                                                       "host_port": port, "guest_port": port}}  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(api_socket)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        reply = json.loads(s.recv(65536).decode() or "{}")
    if "error" in reply or "return" not in reply:
        raise RuntimeError(f"slirp4netns add_hostfwd {proto}/{port} failed: {reply}")


def _raise(message: str):
    raise RuntimeError(message)
