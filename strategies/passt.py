"""`passt`: pasta, the user-mode translation layer KubeVirt adopted after slirp (its passt binding). Unlike
slirp it keeps no TCP/IP stack of its own: it maps the VM's L2 frames onto the pod's sockets, copying the
pod's addressing into the guest (the guest gets the pod IP and the pod's gateway). Ingress through pasta's
port forwards (`-t PORT`), egress through its sockets in the pod.

Faithful to passt/pasta (passt.1: --config-net, -t/-u/-T/-U, --netns, --runas) as KubeVirt's passt binding
uses passt with QEMU's `-netdev stream`; for the netns guest it is pasta, the same code driving a tap in a
namespace. As root pasta must be told `--runas 0` (it otherwise drops to nobody and cannot reach the netns);
`--foreground` keeps the PID the harness started, so it is tracked and ended by PID.

With the QEMU guest (`guest: qemu`) it is `passt` itself, as KubeVirt's passt binding runs it: a passt
process in the pod serving a unix socket and QEMU's `-netdev stream` connected to it. The guest takes the
pod's address, gateway and passt's MTU (65520, what passt's DHCP would hand out) from the command line.
"""

from __future__ import annotations

from pydantic import Field

from harness.listening import wait_listening
from harness.qemu import QemuGuest
from harness.testbed import TestBed
from harness.waiting import wait_until
from strategies.base import Attachment, Requirements, SeedClaims, Strategy, StrategyOptions
from strategies.slirp import SEED

PASST_MTU = 65520  # passt's and pasta's default


class PasstOptions(StrategyOptions):
    mtu: int | None = Field(None, ge=576, le=65520)
    """MTU pasta assigns to the guest interface; None keeps pasta's default (65520)."""


class Passt(Strategy):
    name = "passt"
    summary = "pasta/passt L2-to-L4 translation: guest shares the pod's address, traffic via pasta's sockets"
    faithful_to = "KubeVirt passt binding (passt/pasta)"
    seed_claims = SeedClaims()  # not in the seed; probed with slirp's claims as its successor (issue 7)
    slirp_claims = SEED
    requirements = Requirements(extra_processes=("pasta",), kernel_features=("tun",), binaries=("pasta",))
    Options = PasstOptions
    options: PasstOptions

    def setup(self, bed: TestBed) -> Attachment:
        if bed.guest.kind == "qemu":
            return self.setup_qemu(bed)
        guest = bed.add_namespace("vm")
        pasta = ["pasta", "--runas", "0", "--foreground", "--quiet", "--ipv4-only", "--config-net",
                 "--ns-ifname", "eth0", *self.forwarded_ports(), "-T", "none", "-U", "none"]  # fmt: skip
        if self.options.mtu:
            pasta += ["--mtu", str(self.options.mtu)]
        proc = bed.start_process(
            [*pasta, "--netns", f"/run/netns/{guest.name}"],
            name="pasta",
            ns=bed.pod,
        )
        for port in self.services.tcp_ports:
            wait_listening(proc, port)
        wait_until(
            lambda: guest.has_link("eth0") and guest.addresses("eth0"), timeout=10, what="pasta configuring the guest"
        )
        return Attachment(
            service_ns=guest,
            ingress_address=bed.plan.pod_ip,
            client_ns=guest,
            details={"guest_ip": guest.addresses("eth0")[0]},
        )

    def forwarded_ports(self) -> list[str]:
        tcp = ",".join(map(str, self.services.tcp_ports)) or "none"
        udp = ",".join(map(str, self.services.udp_ports)) or "none"
        return ["-t", tcp, "-u", udp]

    def setup_qemu(self, bed: TestBed) -> Attachment:
        socket_path = bed.runtime_dir() / "passt.sock"
        mtu = self.options.mtu or PASST_MTU
        proc = bed.start_process(
            [
                "passt",
                "--runas",
                "0",
                "--foreground",
                "--quiet",
                "--ipv4-only",
                "--socket",
                str(socket_path),
                "--mtu",
                str(mtu),
                *self.forwarded_ports(),
            ],  # fmt: skip
            name="passt",
            ns=bed.pod,
        )
        for port in self.services.tcp_ports:
            wait_listening(proc, port)
        wait_until(socket_path.exists, timeout=10, what="passt creating its socket")
        netdev = f"stream,server=off,addr.type=unix,addr.path={socket_path}"
        guest = QemuGuest(bed, netdev=netdev, ip_cidr=bed.plan.pod, gateway=bed.plan.pod_gateway, mtu=mtu).boot()
        return Attachment.of_guest(guest, bed.plan.pod_ip, guest_ip=bed.plan.pod, mtu=mtu)
