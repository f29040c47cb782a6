"""The QEMU guest: a virtio-net VM booted from harness.guests.qemu.image inside the pod's network namespace, as
virt-launcher runs QEMU. It is a Guest like any namespace: its servers and clients run through the guest agent
(harness.guests.qemu.agent on the guest's second serial port)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from harness.guests.base import VmFacts
from harness.guests.qemu.accel import GuestNotReady, qemu_argv, qemu_version, ready_marker_seen, resolve_acceleration
from harness.guests.qemu.agent import AgentError, GuestAgent
from harness.guests.qemu.image import build_image
from harness.guests.qemu.qmp import Qmp
from harness.guests.spec import GuestSpec
from harness.lab.bed import TestBed
from harness.lab.processes import Finished
from harness.lab.waiting import NotReady, TimedOut, wait_listening, wait_until


@dataclass
class GuestJob:
    """A process inside the guest, started through the agent."""

    job: str
    name: str
    argv: list[str]
    agent: GuestAgent

    def alive(self) -> bool:
        return self.agent.poll(self.job) is None

    def listens(self, port: int, proto: str = "tcp") -> bool:
        return self.agent.listening(port, proto)

    def last_words(self) -> str:
        return self.agent.output(self.job, "err").strip()[-200:]


class QemuGuest:
    """One VM. `boot()` starts QEMU in the pod's namespace and waits for its ready marker and agent."""

    def __init__(
        self,
        bed: TestBed,
        spec: GuestSpec,
        *,
        netdev: str,
        ip_cidr: str,
        gateway: str,
        mtu: int | None = None,
        mac: str | None = None,
        label: str = "guest",
        machine_args: tuple[str, ...] = (),
        extra_cmdline: str = "",
        incoming: bool = False,
    ) -> None:
        self.bed = bed
        self.options = spec.qemu
        self.acceleration = spec.acceleration or resolve_acceleration(spec.qemu.accel)
        self.image = build_image()
        self.netdev = netdev
        self.boot_s: float | None = None
        self.vhost = "vhost=on" in netdev
        self.name = f"qemu guest {ip_cidr.split('/')[0]} in {bed.pod.name}"
        # absolute: QEMU may run in a container (docker runtime) whose working folder is not ours
        self.console = (bed.tracker.log_dir / f"{bed.run_id}-{label}-console.log").resolve()
        self.agent = GuestAgent(bed.runtime_dir() / "agent.sock")
        self.qmp_path = bed.runtime_dir() / "qmp.sock"
        self.incoming = bed.runtime_dir() / "migration.sock" if incoming else None
        """Where this QEMU waits for a migration stream (a migration's target), or None: it boots."""
        self.mac = mac
        self.process = None
        cmdline = f"vmnb.ip={ip_cidr} vmnb.gw={gateway}" + (f" vmnb.mtu={mtu}" if mtu else "")
        cmdline = f"{cmdline} {extra_cmdline}".strip()  # e.g. vmnb.noready, a guest that never becomes ready
        self.argv = qemu_argv(
            self.image,
            self.acceleration,
            self.options,
            console=self.console,
            agent_socket=self.agent.path,
            netdev=netdev,
            cmdline=cmdline,
            mac=mac,
            name=f"vmnb-{bed.run_id}-vm",
            machine_args=machine_args,
            qmp_socket=self.qmp_path,
            incoming=self.incoming,
        )

    def boot(self) -> QemuGuest:
        self.bed.tracker.log_dir.mkdir(parents=True, exist_ok=True)
        self.console.write_text("")
        t0 = time.monotonic()
        proc = self.process = self.bed.start_process(self.argv, name="qemu", ns=self.bed.pod)
        self.bed.on_teardown("guest agent channel", self.agent.close)
        accel, timeout = self.acceleration.accel, self.options.boot_timeout_s

        def ready() -> bool:
            if not proc.alive():
                raise GuestNotReady(
                    f"QEMU exited before the guest was ready ({accel}): {proc.log_tail(2) or self.console_tail()}"
                )
            return ready_marker_seen(self.console)

        try:
            wait_until(ready, timeout=timeout, what="the guest's ready marker", interval=0.05)
        except TimedOut:
            raise GuestNotReady(
                f"the QEMU guest ({accel}) did not print its ready marker within {timeout:g} s; "
                f"console ends: {self.console_tail() or '(nothing)'}"
            ) from None
        self.boot_s = time.monotonic() - t0
        try:
            self.agent.connect()
        except AgentError as e:
            raise GuestNotReady(str(e)) from None
        return self

    def wait_for_migration(self) -> QemuGuest:
        """Start this QEMU as a migration's target: the same machine, waiting on its `-incoming` socket; the guest
        runs here once the stream has arrived (QEMU's autostart), with its agent on this QEMU's socket."""
        assert self.incoming is not None
        self.process = self.bed.start_process(self.argv, name="qemu", ns=self.bed.pod)
        self.bed.on_teardown("guest agent channel", self.agent.close)
        wait_until(self.incoming.exists, timeout=30, what="the target QEMU's migration socket")
        return self

    def migrate_to(self, target: QemuGuest, timeout: float = 120.0) -> dict:
        """Pre-copy live migration to `target` over its unix socket, as libvirt starts it for KubeVirt (no
        post-copy, no auto-converge: KubeVirt's defaults, pkg/virt-config/virt-config.go); QEMU's own limits
        (downtime-limit 300 ms). Returns `query-migrate`'s last answer (status, total-time, downtime in ms)."""
        assert target.incoming is not None
        qmp = Qmp(self.qmp_path)
        try:
            qmp.call("migrate", uri=f"unix:{target.incoming}")
            return qmp.wait_migration(timeout)
        finally:
            qmp.close()

    def cancel_migration(self) -> None:
        qmp = Qmp(self.qmp_path)
        try:
            qmp.call("migrate_cancel")
        finally:
            qmp.close()

    def console_tail(self, lines: int = 2) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.splitlines()[-lines:])

    # -- the Guest interface ---------------------------------------------------------------------------
    def facts(self) -> VmFacts:
        return VmFacts(
            accel=self.acceleration.accel,
            accel_reason=self.acceleration.reason,
            vcpus=self.options.vcpus,
            memory_mb=self.options.memory_mb,
            vhost=self.vhost,
            boot_s=self.boot_s,
            qemu=qemu_version(self.options.build),
            kernel=self.image.kernel_version,
            image=self.image.digest,
            qemu_argv=shlex.join(self.argv),
            netdev=self.netdev.split(",", 1)[0],
        )

    def binary(self, tool: str) -> str:
        return tool  # the initramfs puts every tool on PATH

    def start(self, argv: list[str], *, name: str) -> GuestJob:
        return GuestJob(self.agent.start(argv), name, argv, self.agent)

    def wait_listening(self, job: GuestJob, port: int, proto: str = "tcp", timeout: float = 10.0) -> float:
        try:
            return wait_listening(job, port, proto=proto, timeout=timeout)
        except NotReady as e:
            raise NotReady(f"{e} (in the guest)") from None

    def run(self, argv: list[str], *, name: str, timeout: float) -> Finished:
        t0 = time.monotonic()
        job = self.start(argv, name=name)
        rc = self.agent.wait(job.job, timeout)
        timed_out = rc is None
        if timed_out:
            self.agent.kill(job.job)
            rc = self.agent.poll(job.job)
        return Finished(
            argv,
            rc,
            self.agent.output(job.job, "out"),
            self.agent.output(job.job, "err"),
            timed_out,
            time.monotonic() - t0,
        )

    def stop(self, job: GuestJob, grace: float = 1.0) -> None:
        self.agent.kill(job.job, grace)

    @contextmanager
    def scratch(self, filename: str) -> Iterator[str]:
        path = f"/tmp/{filename}"
        try:
            yield path
        finally:
            self.run(["rm", "-f", path], name="rm", timeout=10)

    def read_text(self, path: str) -> str:
        return self.agent.read_file(path)
