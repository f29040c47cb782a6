"""KVM or TCG for the QEMU guest. Acceleration `auto` uses KVM only after a probe guest booted with it reached
its ready marker (cached per host boot in /run/vmnetbench/host/kvm-probe.json): on nested hypervisors /dev/kvm
can exist while guests hang in early boot or QEMU aborts setting MSRs, and then TCG is used."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness.guests.qemu.image import GuestImage, build_image
from harness.guests.spec import (
    DEFAULT_QEMU_BUILD,
    Acceleration,
    QemuOptions,
    kvm_acceleration,
    tcg_acceleration,
)
from harness.lab.atomic import write_json
from harness.lab.paths import STATE_DIR
from harness.lab.processes import end_pid
from harness.lab.procfs import proc_starttime
from harness.lab.waiting import TimedOut, wait_until

QEMU = "qemu-system-x86_64"
READY_MARKER = "VMNB-READY"
KVM_PROBE_TIMEOUT_S = 20.0
KVM_PROBE_FILE = STATE_DIR / "host" / "kvm-probe.json"  # /run: forgotten at reboot, as it should be


class GuestNotReady(RuntimeError):
    pass


def qemu_command(build: str = DEFAULT_QEMU_BUILD) -> list[str]:
    """The QEMU program of a build, with the firmware folders an unpacked one needs (Debian's QEMU looks in
    /usr/share/qemu, /usr/share/seabios and /usr/lib/ipxe/qemu: its configure --firmwarepath)."""
    if build != "backports-10":
        return [QEMU]
    from harness.tools.debian import unpack_qemu

    install = unpack_qemu()
    share = install.binary.parent.parent / "share"
    return [str(install.binary), "-L", str(share / "seabios"), "-L", str(share / "qemu"), "-L", "/usr/lib/ipxe/qemu"]


def qemu_version(build: str = DEFAULT_QEMU_BUILD) -> str:
    try:
        out = subprocess.run([qemu_command(build)[0], "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.split("version", 1)[1].split()[0] if "version" in out else ""


def resolve_acceleration(
    requested: str, image: GuestImage | None = None, build: str = DEFAULT_QEMU_BUILD
) -> Acceleration:
    """KVM or TCG for this run: forced by `requested`, or for `auto` by a probe guest (cached) of QEMU `build`."""
    if requested == "tcg":
        return tcg_acceleration("forced by the scenario (accel: tcg)")
    if requested == "kvm":
        if not os.path.exists("/dev/kvm"):
            raise GuestNotReady("field 'qemu.accel' is kvm but this host has no /dev/kvm; use auto or tcg")
        return kvm_acceleration("forced by the scenario (accel: kvm)")
    usable, reason = probe_kvm(image, build=build)
    return kvm_acceleration(reason) if usable else tcg_acceleration(reason)


def probe_kvm(
    image: GuestImage | None = None, timeout: float = KVM_PROBE_TIMEOUT_S, build: str = DEFAULT_QEMU_BUILD
) -> tuple[bool, str]:
    """Does a guest boot to its ready marker under KVM here, with QEMU `build`? Cached per host boot, QEMU version
    and image."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    image = image or build_image()
    key = {"qemu": qemu_version(build), "image": image.digest}
    try:
        cached = json.loads(KVM_PROBE_FILE.read_text())
        if cached.get("key") == key:
            return cached["usable"], cached["reason"]
    except (OSError, ValueError, KeyError):
        pass
    usable, reason = _boot_probe(image, timeout, build)
    write_json(KVM_PROBE_FILE, {"key": key, "usable": usable, "reason": reason})
    return usable, reason


def _die_with_parent() -> None:
    """preexec: the probe QEMU gets SIGKILL if the harness dies first (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _boot_probe(image: GuestImage, timeout: float, build: str) -> tuple[bool, str]:
    KVM_PROBE_FILE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvm-probe-", dir=KVM_PROBE_FILE.parent) as tmp:
        console = Path(tmp) / "console.log"
        argv = qemu_argv(
            image,
            kvm_acceleration(),
            QemuOptions(build=build),
            console=console,
            agent_socket=None,
            netdev=None,
            cmdline="",
        )
        t0 = time.monotonic()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        starttime = proc_starttime(popen.pid)
        try:
            try:
                wait_until(
                    lambda: ready_marker_seen(console) or popen.poll() is not None,
                    timeout=timeout,
                    what="the KVM probe guest's ready marker",
                    interval=0.1,
                )
            except TimedOut:
                return False, f"/dev/kvm exists but a KVM probe guest did not become ready within {timeout:g} s"
            if ready_marker_seen(console):
                return True, f"a KVM probe guest became ready in {time.monotonic() - t0:.1f} s"
            err = (popen.stderr.read() or "").strip().splitlines()
            return False, f"QEMU exited under KVM ({err[-1] if err else f'status {popen.returncode}'})"
        finally:
            if popen.poll() is None:
                end_pid(popen.pid, starttime, grace=1.0)
            popen.wait()


def ready_marker_seen(console: Path) -> bool:
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
    qmp_socket: Path | None = None,
    incoming: Path | None = None,
    cmdline: str,
    mac: str | None = None,
    name: str = "vmnb-guest",
    machine_args: tuple[str, ...] = (),
) -> list[str]:
    """QEMU's command line: the guest image, serial console to a file, the agent on a second serial port, and
    one virtio-net NIC on `netdev`; `machine_args` adds machine-level options (memory backends). `qmp_socket`: QMP
    there (what libvirt drives QEMU through; the harness uses it to migrate); `incoming`: wait for a migration
    stream on that unix socket instead of booting (libvirt's `-incoming` on a migration's target)."""
    argv = [
        *qemu_command(options.build),
        "-name",
        name,
        "-accel",
        acceleration.accel,
        "-cpu",
        acceleration.cpu,
        "-m",
        str(options.memory_mb),
        "-smp",
        str(options.vcpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        f"console=ttyS0 quiet panic=-1 {cmdline}".strip(),
        "-serial",
        f"file:{console}",
    ]
    argv += list(machine_args)
    if agent_socket is not None:
        argv += ["-serial", f"unix:{agent_socket},server=on,wait=off"]
    if qmp_socket is not None:
        argv += ["-qmp", f"unix:{qmp_socket},server=on,wait=off"]
    if incoming is not None:
        argv += ["-incoming", f"unix:{incoming}"]
    if netdev is not None:
        device = "virtio-net-pci,netdev=net0" + (f",mac={mac}" if mac else "")
        argv += ["-netdev", f"{netdev},id=net0", "-device", device]
    return argv
