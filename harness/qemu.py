"""The QEMU guest: a virtio-net VM booted from harness.guest_image inside the pod's network namespace, as
virt-launcher runs QEMU; its servers and clients run through the guest agent (harness.agent).

Acceleration `auto` uses KVM only after a probe guest booted with it reached its ready marker (cached per host
boot in /run/vmnetbench/kvm-probe.json): on nested hypervisors /dev/kvm can exist while guests hang in early
boot or QEMU aborts setting MSRs, and then TCG is used.
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.agent import AgentError, GuestAgent
from harness.atomic import write_json
from harness.guest_image import GuestImage, build_image
from harness.listening import NotReady
from harness.processes import Finished, end_pid, proc_starttime
from harness.state import STATE_DIR

if TYPE_CHECKING:
    from harness.testbed import TestBed

QEMU = "qemu-system-x86_64"
READY_MARKER = "VMNB-READY"
KVM_PROBE_TIMEOUT_S = 20.0
KVM_PROBE_FILE = STATE_DIR / "host" / "kvm-probe.json"  # /run: forgotten at reboot, as it should be


class QemuOptions(BaseModel):
    """The scenario's `qemu:` section (used when `guest: qemu`)."""

    model_config = ConfigDict(extra="forbid")

    accel: Literal["auto", "kvm", "tcg"] = "auto"
    vcpus: int = Field(1, ge=1, le=64)
    memory_mb: int = Field(512, ge=128, le=65536)
    boot_timeout_s: float = Field(90.0, gt=0, le=900)


class GuestNotReady(RuntimeError):
    pass


@dataclass(frozen=True)
class Acceleration:
    accel: str  # "kvm" or "tcg"
    cpu: str
    reason: str  # why this one (the probe's verdict for auto)


def qemu_version() -> str:
    try:
        out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.split("version", 1)[1].split()[0] if "version" in out else ""


def kvm_acceleration() -> Acceleration:
    return Acceleration("kvm", "host", "")


def tcg_acceleration(reason: str) -> Acceleration:
    return Acceleration("tcg", "max", reason)


def resolve_acceleration(requested: str, image: GuestImage | None = None) -> Acceleration:
    """KVM or TCG for this run: forced by `requested`, or for `auto` by a probe guest (cached)."""
    if requested == "tcg":
        return tcg_acceleration("forced by the scenario (accel: tcg)")
    if requested == "kvm":
        if not os.path.exists("/dev/kvm"):
            raise GuestNotReady("field 'qemu.accel' is kvm but this host has no /dev/kvm; use auto or tcg")
        return Acceleration("kvm", "host", "forced by the scenario (accel: kvm)")
    usable, reason = probe_kvm(image)
    return Acceleration("kvm", "host", reason) if usable else tcg_acceleration(reason)


def probe_kvm(image: GuestImage | None = None, timeout: float = KVM_PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Does a guest boot to its ready marker under KVM here? Cached per host boot, QEMU version and image."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    image = image or build_image()
    key = {"qemu": qemu_version(), "image": image.digest}
    try:
        cached = json.loads(KVM_PROBE_FILE.read_text())
        if cached.get("key") == key:
            return cached["usable"], cached["reason"]
    except (OSError, ValueError, KeyError):
        pass
    usable, reason = _boot_probe(image, timeout)
    write_json(KVM_PROBE_FILE, {"key": key, "usable": usable, "reason": reason})
    return usable, reason


def _die_with_parent() -> None:
    """preexec: the probe QEMU gets SIGKILL if the harness dies first (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _boot_probe(image: GuestImage, timeout: float) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="vmnb-kvm-probe-") as tmp:
        console = Path(tmp) / "console.log"
        argv = qemu_argv(image, kvm_acceleration(), QemuOptions(), console=console, agent_socket=None,
                         netdev=None, cmdline="")  # fmt: skip
        t0 = time.monotonic()
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)  # fmt: skip
        starttime = proc_starttime(popen.pid)
        try:
            while time.monotonic() - t0 < timeout:
                if _marker(console):
                    return True, f"a KVM probe guest became ready in {time.monotonic() - t0:.1f} s"
                if popen.poll() is not None:
                    err = (popen.stderr.read() or "").strip().splitlines()
                    return False, f"QEMU exited under KVM ({err[-1] if err else f'status {popen.returncode}'})"
                time.sleep(0.1)
            return False, f"/dev/kvm exists but a KVM probe guest did not become ready within {timeout:g} s"
        finally:
            if popen.poll() is None:
                end_pid(popen.pid, starttime, grace=1.0)
            popen.wait()


def _marker(console: Path) -> bool:
    try:
        return READY_MARKER.encode() in console.read_bytes()
    except OSError:
        return False


def qemu_argv(
    image: GuestImage,
    acceleration: Acceleration,
    options: QemuOptions,
    *,
    console: Path,
    agent_socket: Path | None,
    netdev: str | None,
    cmdline: str,
    mac: str | None = None,
    name: str = "vmnb-guest",
) -> list[str]:
    argv = [
        QEMU, "-name", name, "-accel", acceleration.accel, "-cpu", acceleration.cpu,
        "-m", str(options.memory_mb), "-smp", str(options.vcpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", f"console=ttyS0 quiet panic=-1 {cmdline}".strip(),
        "-serial", f"file:{console}",
    ]  # fmt: skip
    if agent_socket is not None:
        argv += ["-serial", f"unix:{agent_socket},server=on,wait=off"]
    if netdev is not None:
        device = "virtio-net-pci,netdev=net0" + (f",mac={mac}" if mac else "")
        argv += ["-netdev", f"{netdev},id=net0", "-device", device]
    return argv


@dataclass
class GuestJob:
    """A process inside the guest, started through the agent."""

    job: str
    name: str
    argv: list[str]


class QemuGuest:
    """One booted VM. It is also where the measurement tools run (the same calls as a namespace: start, run,
    stop, wait_listening), through the guest agent."""

    def __init__(self, bed: TestBed, *, netdev: str, ip_cidr: str, gateway: str, mtu: int | None = None,
                 mac: str | None = None, extra_cmdline: str = "") -> None:  # fmt: skip
        spec = bed.guest
        self.bed = bed
        self.options = spec.qemu
        self.acceleration = spec.acceleration or resolve_acceleration(spec.qemu.accel)
        self.image = build_image()
        self.netdev = netdev
        self.ip_cidr = ip_cidr
        self.boot_s: float | None = None
        self.vhost = "vhost=on" in netdev
        self.name = f"qemu guest {ip_cidr.split('/')[0]} in {bed.pod.name}"
        run_dir = bed.runtime_dir()
        label = bed.label or "guest"
        self.console = bed.tracker.log_dir / f"{bed.run_id}-{label}-console.log"
        self.agent = GuestAgent(run_dir / "agent.sock")
        cmdline = f"vmnb.ip={ip_cidr} vmnb.gw={gateway}" + (f" vmnb.mtu={mtu}" if mtu else "")
        self.argv = qemu_argv(self.image, self.acceleration, self.options, console=self.console,
                              agent_socket=self.agent.path, netdev=netdev, cmdline=f"{cmdline} {extra_cmdline}",
                              mac=mac, name=f"vmnb-{bed.run_id}-vm")  # fmt: skip

    def boot(self) -> QemuGuest:
        """Start QEMU in the pod's namespace and wait for the ready marker and the agent."""
        self.bed.tracker.log_dir.mkdir(parents=True, exist_ok=True)
        self.console.write_text("")
        t0 = time.monotonic()
        proc = self.bed.start_process(self.argv, name="qemu", ns=self.bed.pod)
        self.bed.on_teardown("guest agent channel", self.agent.close)
        self.process = proc
        timeout = self.options.boot_timeout_s
        accel = self.acceleration.accel
        while not _marker(self.console):
            if not proc.alive():
                raise GuestNotReady(f"QEMU exited before the guest was ready ({accel}): "
                                    f"{proc.log_tail(2) or self.console_tail()}")  # fmt: skip
            if time.monotonic() - t0 > timeout:
                raise GuestNotReady(f"the QEMU guest ({accel}) did not print its ready marker within {timeout:g} s; "
                                    f"console ends: {self.console_tail() or '(nothing)'}")  # fmt: skip
            time.sleep(0.05)
        self.boot_s = time.monotonic() - t0
        try:
            self.agent.connect()
        except AgentError as e:
            raise GuestNotReady(str(e)) from None
        return self

    def console_tail(self, lines: int = 2) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.splitlines()[-lines:])

    def details(self) -> dict:
        return {"accel": self.acceleration.accel, "accel_reason": self.acceleration.reason,
                "vcpus": self.options.vcpus, "memory_mb": self.options.memory_mb, "vhost": self.vhost,
                "boot_s": self.boot_s, "qemu": qemu_version(), "kernel": self.image.kernel_version,
                "image": self.image.digest, "qemu_argv": shlex.join(self.argv)}  # fmt: skip

    # -- where tools run (the same calls harness.places.NetnsPlace answers) --------------------------------
    def binary(self, tool: str) -> str:
        return tool  # the initramfs puts every tool on PATH

    def start(self, argv: list[str], *, name: str) -> GuestJob:
        return GuestJob(self.agent.start(argv), name, argv)

    def alive(self, job: GuestJob) -> bool:
        return self.agent.poll(job.job) is None

    def wait_listening(self, job: GuestJob, port: int, proto: str = "tcp", timeout: float = 10.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.agent.listening(port, proto):
                return time.monotonic() - t0
            if not self.alive(job):
                raise NotReady(f"{job.name} exited in the guest before listening on {proto}/{port}: "
                               f"{self.agent.output(job.job, 'err').strip()[-200:]}")  # fmt: skip
            time.sleep(0.05)
        raise NotReady(f"{job.name} did not listen on {proto}/{port} in the guest within {timeout:g} s")

    def run(self, argv: list[str], *, name: str, timeout: float) -> Finished:
        t0 = time.monotonic()
        job = self.start(argv, name=name)
        rc = self.agent.wait(job.job, timeout)
        timed_out = rc is None
        if timed_out:
            self.agent.kill(job.job)
            rc = self.agent.poll(job.job)
        return Finished(argv, rc, self.agent.output(job.job, "out"), self.agent.output(job.job, "err"), timed_out,
                        time.monotonic() - t0)  # fmt: skip

    def stop(self, job: GuestJob, grace: float = 1.0) -> None:
        self.agent.kill(job.job, grace)

    @contextmanager
    def scratch(self, filename: str):
        """A path inside the guest for a tool's output file."""
        path = f"/tmp/{filename}"
        yield path
        self.run(["rm", "-f", path], name="rm", timeout=10)

    def read_text(self, path: str) -> str:
        return self.agent.read_file(path)


def acceleration_record(acceleration: Acceleration) -> dict:
    return asdict(acceleration)
