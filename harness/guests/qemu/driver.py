"""Attaching the QEMU guest as KubeVirt's virt-launcher does, with QEMU inside the pod's namespace:

- tap: a real tap `tap0` in the pod and `-netdev tap,ifname=tap0,vhost=on|off` (vhost where /dev/vhost-net
  exists, as virt-launcher asks for);
- user-mode: QEMU's own `-netdev user` with a `hostfwd=` per service port (the seed's slirp interface: no
  helper process, no tap). QEMU 7.2's `-netdev user` has no MTU option, so libslirp runs at its 1500;
- passt: a `passt` process in the pod serving a unix socket and QEMU's `-netdev stream` connected to it
  (KubeVirt's passt binding before vhost-user); the guest takes the pod's address, gateway and passt's MTU
  (65520, what passt's DHCP would hand out) from the command line.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from harness.guests.base import Guest
from harness.guests.driver import PASST_MTU, GuestDriver, PasstNet, TapPort, UserModeNet
from harness.guests.qemu.vm import QemuGuest
from harness.lab.bed import TestBed
from harness.lab.vocabulary import GuestKind
from harness.lab.waiting import wait_listening, wait_until

SLIRP_MTU = 1500  # libslirp's, fixed in QEMU 7.2's -netdev user


class QemuTap(TapPort):
    def __init__(self, driver: QemuDriver, bed: TestBed, mtu: int | None) -> None:
        self.driver, self.bed = driver, bed
        self.mtu = mtu or bed.plan.mtu
        bed.pod.add_tap(self.name, mtu=self.mtu)

    def start(self, cidr: str, gateway: str, *, mac: str | None = None) -> Guest:
        vhost = "on" if os.path.exists("/dev/vhost-net") else "off"
        netdev = f"tap,ifname={self.name},script=no,downscript=no,vhost={vhost}"
        return self.driver.boot(self.bed, netdev=netdev, ip_cidr=cidr, gateway=gateway, mtu=self.mtu, mac=mac)


class QemuDriver(GuestDriver):
    kind = GuestKind.QEMU

    def boot(self, bed: TestBed, **kwargs) -> QemuGuest:
        self.booted = QemuGuest(bed, self.spec, label=self.label, **kwargs).boot()
        return self.booted

    def static_ipv6(self, bed: TestBed, cidr: str, gateway: str) -> None:
        """What the VM's cloud-init would do once it runs: the NIC's IPv6 address and default route, set through the
        guest agent after boot (no duplicate address detection: a fresh address usable at once, as the beds')."""
        script = (
            "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad && "
            f"ip -6 addr add {cidr} dev eth0 && ip -6 route add default via {gateway} dev eth0"
        )
        done = self.booted.run(["sh", "-c", script], name="ipv6 address", timeout=20)
        if done.returncode != 0:
            raise RuntimeError(f"configuring IPv6 in the QEMU guest failed: {(done.stderr or done.stdout).strip()}")

    def passt_ipv6(self, bed: TestBed) -> None:
        """On a dual-stack pod, the guest takes the pod's IPv6 address and gateway, as passt's DHCPv6 and NDP hand
        them out (passt.1: the guest gets the host's addresses), set from here as its IPv4 is from the command
        line."""
        if bed.plan.ipv6:
            self.static_ipv6(bed, bed.plan.pod6, bed.plan.pod_gateway6)

    def tap(self, bed: TestBed, *, mtu: int | None = None) -> TapPort:
        return QemuTap(self, bed, self.nic_mtu(bed, mtu))

    def user_mode(self, bed: TestBed, net: UserModeNet) -> Guest:
        guest_ip = net.guest_cidr.split("/")[0]
        forwards = [f"hostfwd=tcp::{p}-{guest_ip}:{p}" for p in net.tcp_ports]
        forwards += [f"hostfwd=udp::{p}-{guest_ip}:{p}" for p in net.udp_ports]
        # IPv6 as KubeVirt leaves it: QEMU's default ipv6=on, only the /64 moved into the lab's range (slirp.py)
        ipv6 = [f"ipv6-prefix={net.prefix6},ipv6-prefixlen=64"] if net.prefix6 else []
        netdev = ",".join(
            [f"user,net={net.network},host={net.gateway},dhcpstart={guest_ip},restrict=off", *ipv6, *forwards]
        )
        guest = self.boot(bed, netdev=netdev, ip_cidr=net.guest_cidr, gateway=net.gateway, mtu=SLIRP_MTU)
        if net.prefix6:
            self.wait_for_slaac(net.prefix6)
        return guest

    def wait_for_slaac(self, prefix6: str, timeout: float = 15.0) -> None:
        """Until the guest's kernel has taken an address in `prefix6` from libslirp's router advertisement (its
        own SLAAC, nothing set from here) and left duplicate address detection."""
        in_prefix = "inet6 " + prefix6.rstrip(":") + ":"  # 2001:2:0:fe:: -> an address 2001:2:0:fe:...
        script = (
            f"for i in $(seq {int(timeout * 5)}); do ip -6 addr show dev eth0 | grep -v tentative | "
            f"grep -q '{in_prefix}' && ip -6 route | grep -q '^default via' && exit 0; sleep 0.2; done; "
            "ip -6 addr show dev eth0; ip -6 route; exit 1"
        )
        done = self.booted.run(["sh", "-c", script], name="slaac", timeout=timeout + 5)
        if done.returncode != 0:
            raise RuntimeError(
                f"the QEMU guest took no IPv6 address in {prefix6}/64 from libslirp's router advertisement within "
                f"{timeout:g} s: {' '.join(done.stdout.split())[:300]}"
            )

    def user_mode_mtu(self, net: UserModeNet) -> int | None:
        return SLIRP_MTU

    def _start_passt(self, bed: TestBed, net: PasstNet, *mode: str) -> tuple[Path, int]:
        socket_path = bed.runtime_dir() / "passt.sock"
        mtu = net.mtu or PASST_MTU
        argv = [
            net.binary("passt"),
            "--runas",
            "0",
            "--foreground",
            "--quiet",
            *([] if bed.plan.ipv6 else ["--ipv4-only"]),  # a dual-stack pod: passt's default, both families
            *mode,
            "--socket",
            str(socket_path),
            "--mtu",
            str(mtu),
            *net.effective_forwards(),
        ]
        proc = bed.start_process(argv, name="passt", ns=bed.pod)
        for port in net.listening_ports():
            wait_listening(proc, port)
        wait_until(socket_path.exists, timeout=10, what="passt creating its socket")
        if not proc.alive():  # it made its socket, then ended (its sandbox refused, say): not a backend
            raise RuntimeError(f"passt exited after creating its socket: {proc.log_tail(3)}")
        return socket_path, mtu

    def passt(self, bed: TestBed, net: PasstNet) -> Guest:
        socket_path, mtu = self._start_passt(bed, net)
        netdev = f"stream,server=off,addr.type=unix,addr.path={socket_path}"
        guest = self.boot(bed, netdev=netdev, ip_cidr=bed.plan.pod, gateway=bed.plan.pod_gateway, mtu=mtu)
        self.passt_ipv6(bed)
        return guest

    def passt_vhost_user(self, bed: TestBed, net: PasstNet) -> Guest:
        """KubeVirt 1.8: libvirt's `<interface type='vhostuser'><backend type='passt'/>` runs `passt --vhost-user
        --socket S` and gives QEMU guest memory a vhost-user backend can map (a shared memfd backend as the NUMA
        node's memory), a `-chardev socket` to S and `-netdev vhost-user` behind the virtio-net device
        (libvirt docs formatdomain "vhost-user connection with passt backend"; passt.1 --vhost-user)."""
        socket_path, mtu = self._start_passt(bed, net, "--vhost-user")
        # QEMU 10 (bookworm-backports), what KubeVirt 1.8's virt-launcher ships a generation of: Debian 12's QEMU
        # 7.2.22 segfaults (exit 139) as soon as the guest starts with this vhost-user backend under TCG here.
        self.spec = replace(self.spec, qemu=self.spec.qemu.model_copy(update={"build": "backports-10"}))
        memory = f"{self.spec.qemu.memory_mb}M"
        machine = (
            "-object",
            f"memory-backend-memfd,id=mem0,size={memory},share=on",
            "-numa",
            "node,memdev=mem0",
            "-chardev",
            f"socket,id=vhostuser0,path={socket_path}",
        )
        guest = self.boot(
            bed,
            netdev="vhost-user,chardev=vhostuser0",
            ip_cidr=bed.plan.pod,
            gateway=bed.plan.pod_gateway,
            mtu=mtu,
            machine_args=machine,
        )
        self.passt_ipv6(bed)
        return guest
