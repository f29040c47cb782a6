"""The run's guest driver, chosen once by the guest's kind (the GuestDriver seam is harness/guests/driver.py)."""

from __future__ import annotations

from harness.guests.driver import GuestDriver
from harness.guests.netns_driver import NetnsDriver
from harness.guests.spec import GuestSpec
from harness.lab.vocabulary import GuestKind


def driver_for(spec: GuestSpec, label: str = "guest", *, mtu: int | str | None = None) -> GuestDriver:
    """`label` names the cell's files (a QEMU guest's console log); `mtu` is a sweep's guest MTU (a number or
    `pod`), None to leave the NIC's MTU to the strategy."""
    if spec.kind == GuestKind.QEMU:
        from harness.guests.qemu.driver import QemuDriver  # only a QEMU run loads the QEMU code

        return QemuDriver(spec, label, mtu=mtu)
    return NetnsDriver(spec, label, mtu=mtu)
