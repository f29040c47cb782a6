"""A live migration's target, wired by the binding's own setup: the strategy sets up the second launcher pod
exactly as it set up the first (its bridge, tap, NAT rules, passt), and where it would boot a VM this driver
starts QEMU waiting for the migration stream instead (`-incoming`), as libvirt does on the target of a KubeVirt
migration (kubevirt/kubevirt pkg/virt-handler prepares the target pod's network before the domain is started
there; VEP 21, kubevirt/enhancements veps/sig-network/passt/passt-migration-proposal.md, "Support live
migration"). The machine is the source's: same memory, devices and NIC MAC address (libvirt sends the domain
XML); only the sockets are the target pod's.

Nothing inside the guest is configured here: the guest that arrives keeps its addresses, routes and
processes."""

from __future__ import annotations

from harness.guests.driver import PasstNet
from harness.guests.qemu.driver import QemuDriver
from harness.guests.qemu.vm import QemuGuest
from harness.lab.bed import TestBed


class IncomingDriver(QemuDriver):
    """A QemuDriver whose `boot` starts the target QEMU of a migration of `source`."""

    def __init__(self, source: QemuGuest, driver: QemuDriver) -> None:
        super().__init__(driver.spec, f"{driver.label}-target", mtu=driver.mtu)
        self.source = source
        self.passt_socket = None

    def boot(self, bed: TestBed, **kwargs) -> QemuGuest:
        kwargs["mac"] = self.source.mac  # the machine's NIC as libvirt defines it on both ends
        self.booted = QemuGuest(bed, self.spec, label=self.label, incoming=True, **kwargs).wait_for_migration()
        return self.booted

    def static_ipv6(self, bed: TestBed, cidr: str, gateway: str) -> None:
        """The arriving guest keeps the IPv6 configuration it had (cloud-init ran once, on the source)."""

    def passt_ipv6(self, bed: TestBed) -> None:
        """As static_ipv6: nothing to configure in an arriving guest."""

    def _start_passt(self, bed: TestBed, net: PasstNet, *mode: str):
        socket_path, mtu = super()._start_passt(bed, net, *mode)
        self.passt_socket = socket_path
        return socket_path, mtu
