"""What a run records about its guest and reads back from it: the guest decided once per run (the KVM probe for
QEMU), QEMU's facts for run.json, and the MTU the guest's interface really has."""

from __future__ import annotations

import os
import re

from rich.console import Console

from harness.guests.base import Guest
from harness.guests.spec import GuestSpec, QemuOptions
from harness.lab.vocabulary import GuestKind

MTU_IN_LINK = re.compile(r"\bmtu (\d+)")


def guest_spec(kind: GuestKind, qemu: QemuOptions, console: Console) -> GuestSpec:
    """The run's guest; for QEMU the acceleration is decided once, before the first cell (KVM probe)."""
    if kind != GuestKind.QEMU:
        return GuestSpec()
    from harness.guests.qemu.accel import resolve_acceleration
    from harness.guests.qemu.image import build_image

    image = build_image()
    acceleration = resolve_acceleration(qemu.accel, image, qemu.build)
    console.print(f"QEMU guest: accel [bold]{acceleration.accel}[/] ({acceleration.reason}); image {image.digest}")
    return GuestSpec(GuestKind.QEMU, qemu, acceleration)


def qemu_facts(guest: GuestSpec) -> dict:
    from harness.guests.qemu.accel import qemu_version
    from harness.guests.qemu.image import build_image

    image = build_image()
    return {
        "qemu": guest.qemu.model_dump(),
        "acceleration": guest.acceleration.record() if guest.acceleration else None,
        "qemu_version": qemu_version(guest.qemu.build),
        "kernel": image.kernel_version,
        "image": image.digest,
        "vhost_net": os.path.exists("/dev/vhost-net"),
    }


def nic_mtu(guest: Guest) -> int | None:
    """The MTU of the guest's network interface (its one link besides lo), from `ip -o link` there: busybox in
    the QEMU guest has no netlink library to ask, and prints the same `mtu N` as iproute2 in a namespace."""
    done = guest.run(["ip", "-o", "link", "show"], name="mtu-read-back", timeout=10)
    for line in done.stdout.splitlines():
        name = line.split(":", 2)[1].strip() if line.count(":") >= 2 else ""
        match = MTU_IN_LINK.search(line)
        if match and name != "lo" and "LOOPBACK" not in line:
            return int(match.group(1))
    return None
