"""Where a measurement tool runs: a network namespace on this host (NetnsPlace) or a QEMU guest
(harness.qemu.QemuGuest). Both answer the same calls, so every measurement runs unchanged on either guest."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from harness.guest_image import compile_crr
from harness.listening import wait_listening
from harness.netns import Namespace
from harness.processes import Finished, ProcessTracker, TrackedProcess


class Place(Protocol):
    name: str

    def binary(self, tool: str) -> str: ...
    def start(self, argv: list[str], *, name: str) -> Any: ...
    def wait_listening(self, job: Any, port: int, proto: str = "tcp", timeout: float = 10.0) -> float: ...
    def run(self, argv: list[str], *, name: str, timeout: float) -> Finished: ...
    def stop(self, job: Any, grace: float = 1.0) -> None: ...
    def scratch(self, filename: str) -> Any: ...
    def read_text(self, path: str) -> str: ...


class NetnsPlace:
    """Tools run by the tracker inside a named network namespace (nsenter), tracked by PID."""

    def __init__(self, tracker: ProcessTracker, netns: str) -> None:
        self.tracker = tracker
        self.name = netns

    def binary(self, tool: str) -> str:
        return str(compile_crr()) if tool == "vmnb-crr" else tool

    def start(self, argv: list[str], *, name: str) -> TrackedProcess:
        return self.tracker.start(argv, name=name, netns=self.name)

    def wait_listening(self, job: TrackedProcess, port: int, proto: str = "tcp", timeout: float = 10.0) -> float:
        return wait_listening(job, port, proto=proto, timeout=timeout)

    def run(self, argv: list[str], *, name: str, timeout: float) -> Finished:
        return self.tracker.run(argv, name=name, netns=self.name, timeout=timeout)

    def stop(self, job: TrackedProcess, grace: float = 1.0) -> None:
        self.tracker.stop(job, grace=grace)

    @contextmanager
    def scratch(self, filename: str) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="vmnb-") as tmp:
            yield str(Path(tmp) / filename)

    def read_text(self, path: str) -> str:
        p = Path(path)
        return p.read_text() if p.exists() else ""


Where = str | Namespace | Place


def place_of(tracker: ProcessTracker, where: Where) -> Place:
    """A namespace (or its name) becomes a NetnsPlace; a guest is already a place."""
    if isinstance(where, str):
        return NetnsPlace(tracker, where)
    if isinstance(where, Namespace):
        return NetnsPlace(tracker, where.name)
    return where
