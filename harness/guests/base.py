"""The Guest interface: every place a measurement tool runs answers the same calls, so every measurement runs
unchanged on the peer, in the pod, in the netns guest or in a QEMU guest.

- `start` a server (a job), `wait_listening` for it, `stop` it;
- `run` a client to completion with a hard timeout;
- `scratch` a path for a tool's output file there, `read_text` it back (fetch a file);
- `binary` the name or path of a tool there; `facts` what is known about the place (a VM's acceleration,
  boot time, ...; None for a namespace).
Implementations: harness.guests.netns.NetnsGuest, harness.guests.qemu.vm.QemuGuest.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from harness.lab.processes import Finished
from harness.lab.waiting import Listener


@dataclass(frozen=True)
class VmFacts:
    """A QEMU guest's facts, kept with each cell's attachment and in the run's rows."""

    accel: str
    accel_reason: str
    vcpus: int
    memory_mb: int
    vhost: bool
    boot_s: float | None
    qemu: str
    kernel: str
    image: str
    qemu_argv: str
    netdev: str


class Guest(Protocol):
    name: str

    def binary(self, tool: str) -> str: ...
    def start(self, argv: list[str], *, name: str) -> Listener: ...
    def wait_listening(self, job: Listener, port: int, proto: str = "tcp", timeout: float = 10.0) -> float: ...
    def run(self, argv: list[str], *, name: str, timeout: float) -> Finished: ...
    def stop(self, job: Listener, grace: float = 1.0) -> None: ...
    def scratch(self, filename: str) -> AbstractContextManager[str]: ...
    def read_text(self, path: str) -> str: ...
    def facts(self) -> VmFacts | None: ...
