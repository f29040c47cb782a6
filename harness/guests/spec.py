"""What a run's guest is, as the scenario states it: a light module (pydantic only), so parsing a scenario
never loads the QEMU code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.lab.vocabulary import GuestKind

QemuBuild = Literal["debian-12", "backports-10"]
DEFAULT_QEMU_BUILD: QemuBuild = "backports-10"
"""Today's QEMU (10.0, bookworm-backports, what current distributions and KubeVirt's virt-launcher ship) for every
cell unless a scenario asks for Debian 12's 7.2 (`qemu: {build: debian-12}` or a variant's `qemu_build`)."""


class QemuOptions(BaseModel):
    """The scenario's `qemu:` section (used when `guest: qemu`)."""

    model_config = ConfigDict(extra="forbid")

    accel: Literal["auto", "kvm", "tcg"] = "auto"
    vcpus: int = Field(1, ge=1, le=64)
    memory_mb: int = Field(512, ge=128, le=65536)
    boot_timeout_s: float = Field(90.0, gt=0, le=900)
    build: QemuBuild = DEFAULT_QEMU_BUILD
    """Which QEMU: bookworm-backports' 10.0.2 (the default; unpacked in the cache by `vmnetbench fetch-tools`) or
    Debian 12's 7.2 (installed), so one run can measure both."""


@dataclass(frozen=True)
class Acceleration:
    accel: str  # "kvm" or "tcg"
    cpu: str
    reason: str  # why this one (the probe's verdict for auto)

    def record(self) -> dict:
        return asdict(self)


def kvm_acceleration(reason: str = "") -> Acceleration:
    return Acceleration("kvm", "host", reason)


def tcg_acceleration(reason: str) -> Acceleration:
    return Acceleration("tcg", "max", reason)


@dataclass(frozen=True)
class GuestSpec:
    """Which guest a run's strategies attach: `netns` or `qemu` (with its options and the run's accel)."""

    kind: GuestKind = GuestKind.NETNS
    qemu: QemuOptions = field(default_factory=QemuOptions)
    acceleration: Acceleration | None = None

    def for_strategy(self, has_vm: bool) -> GuestSpec:
        """The guest a strategy's bed gets: this one, or the netns default for a strategy without a VM."""
        return self if has_vm else GuestSpec()

    def columns(self, has_vm: bool = True) -> dict:
        """What every result row of a cell carries about the guest (`none` for a strategy without a VM)."""
        if not has_vm:
            return {"guest": "none"}
        if self.kind != GuestKind.QEMU:
            return {"guest": str(self.kind)}
        accel = self.acceleration.accel if self.acceleration else self.qemu.accel
        return {"guest": "qemu", "accel": accel, "vcpus": self.qemu.vcpus, "memory_mb": self.qemu.memory_mb}
