"""Attaching the netns guest (the VM's network stack as a namespace `vmnb-<id>-vm` inside the pod):

- tap: a veth pair, `tap0` in the pod and `eth0` in the guest (a tap device needs a reader; the veth's other
  end is the guest's NIC);
- user-mode: slirp4netns, which runs the same libslirp as QEMU's `-netdev user`, with port forwards added on
  its API socket (`add_hostfwd`) (rootless-containers/slirp4netns README and slirp4netns.1: --configure,
  --cidr, --mtu, --api-socket);
- passt: pasta, the same code as passt driving a tap in a namespace (passt.1: --config-net, -t/-u, --netns,
  --runas). As root pasta must be told `--runas 0` (it otherwise drops to nobody and cannot reach the netns);
  `--foreground` keeps the PID the harness started, so it is tracked and ended by PID.
"""

from __future__ import annotations

import json
import socket

from harness.guests.base import Guest
from harness.guests.driver import GuestDriver, PasstNet, TapPort, UserModeNet
from harness.guests.netns import NetnsGuest
from harness.lab.bed import TestBed
from harness.lab.netns import Namespace, veth
from harness.lab.vocabulary import GuestKind
from harness.lab.waiting import wait_listening, wait_until

GUEST_IFNAME = "eth0"


class VethTap(TapPort):
    def __init__(self, bed: TestBed, mtu: int | None) -> None:
        self.bed = bed
        self.namespace = bed.add_namespace("vm")
        veth(bed.pod, self.name, self.namespace, GUEST_IFNAME, mtu=mtu or bed.plan.mtu)

    def start(self, cidr: str, gateway: str, *, mac: str | None = None) -> Guest:
        if mac:
            self.namespace.set_mac(GUEST_IFNAME, mac)
        self.namespace.add_address(GUEST_IFNAME, cidr)
        self.namespace.add_route("default", gateway=gateway)
        return NetnsGuest.of(self.bed, self.namespace)


class NetnsDriver(GuestDriver):
    kind = GuestKind.NETNS

    def tap(self, bed: TestBed, *, mtu: int | None = None) -> TapPort:
        return VethTap(bed, self.nic_mtu(bed, mtu))

    def static_ipv6(self, bed: TestBed, cidr: str, gateway: str) -> None:
        guest = bed.namespaces["vm"]
        guest.add_address(GUEST_IFNAME, cidr)
        guest.add_route("default", gateway=gateway)

    def user_mode(self, bed: TestBed, net: UserModeNet) -> Guest:
        guest = bed.add_namespace("vm")
        api = bed.runtime_dir() / "slirp4netns.sock"
        argv = ["slirp4netns", "--configure", f"--cidr={net.cidr}", f"--api-socket={api}"]
        if net.mtu:
            argv.append(f"--mtu={net.mtu}")
        # node_side: it stands for QEMU's own user-mode stack, which needs no privilege; entering the guest
        # namespace (setns) is the netns guest's artefact, so on the docker runtime it is not charged to compute.
        proc = bed.start_process(
            [*argv, "--netns-type=path", f"/run/netns/{guest.name}", GUEST_IFNAME],
            name="slirp4netns",
            ns=bed.pod,
            node_side=True,
        )

        def configured() -> bool:
            if not proc.alive():
                raise RuntimeError(f"slirp4netns exited: {proc.log_tail(3)}")
            return api.exists() and _addressed(guest)

        wait_until(configured, timeout=10, what="slirp4netns configuring the guest")
        for proto, ports in (("tcp", net.tcp_ports), ("udp", net.udp_ports)):
            for port in ports:
                add_hostfwd(str(api), proto, port)
        return NetnsGuest.of(bed, guest)

    def passt(self, bed: TestBed, net: PasstNet) -> Guest:
        guest = bed.add_namespace("vm")
        argv = [
            net.binary("pasta"),
            "--runas",
            "0",
            "--foreground",
            "--quiet",
            *([] if bed.plan.ipv6 else ["--ipv4-only"]),  # a dual-stack pod: passt's default, both families
            "--config-net",
            "--ns-ifname",
            GUEST_IFNAME,
            *net.effective_forwards(),
            "-T",
            "none",
            "-U",
            "none",
        ]
        if net.mtu:
            argv += ["--mtu", str(net.mtu)]
        if net.no_splice:
            argv.append("--no-splice")
        proc = bed.start_process(
            [*argv, "--netns", f"/run/netns/{guest.name}"], name="pasta", ns=bed.pod, node_side=True
        )  # as slirp4netns above: pasta stands for passt serving a VM
        for port in net.listening_ports():
            wait_listening(proc, port)
        wait_until(lambda: _addressed(guest), timeout=10, what="pasta configuring the guest")
        return NetnsGuest.of(bed, guest)


def _addressed(ns: Namespace) -> bool:
    return ns.has_link(GUEST_IFNAME) and bool(ns.addresses(GUEST_IFNAME))


def add_hostfwd(api_socket: str, proto: str, port: int) -> None:
    """slirp4netns API: forward pod port -> the same guest port (slirp4netns.1, "API SOCKET")."""
    request = {
        "execute": "add_hostfwd",
        "arguments": {"proto": proto, "host_addr": "0.0.0.0", "host_port": port, "guest_port": port},
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(api_socket)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        reply = json.loads(s.recv(65536).decode() or "{}")
    if "error" in reply or "return" not in reply:
        raise RuntimeError(f"slirp4netns add_hostfwd {proto}/{port} failed: {reply}")
