"""A network namespace on this host as a Guest: the peer, the pod, and the netns guest (the VM's network stack
as a namespace inside the pod, docs/design.md "Guests"). Tools run through the run's process tracker (nsenter),
tracked and ended by PID; scratch files live in the run's own folder, so `clean` finds them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.guests.base import VmFacts
from harness.guests.tools import GUEST_C_TOOLS, compile_guest_tool
from harness.lab.bed import TestBed
from harness.lab.netns import Namespace
from harness.lab.processes import Finished, ProcessTracker, TrackedProcess
from harness.lab.waiting import wait_listening


class NetnsGuest:
    def __init__(self, tracker: ProcessTracker, netns: str, scratch_dir: Path) -> None:
        self.tracker = tracker
        self.name = netns
        self.scratch_dir = scratch_dir

    @classmethod
    def of(cls, bed: TestBed, ns: Namespace) -> NetnsGuest:
        """Namespace `ns` of `bed` as a place to run tools."""
        return cls(bed.tracker, ns.name, bed.runtime_dir())

    def binary(self, tool: str) -> str:
        return str(compile_guest_tool(tool)) if tool in GUEST_C_TOOLS else tool

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
        path = self.scratch_dir / filename
        try:
            yield str(path)
        finally:
            path.unlink(missing_ok=True)

    def read_text(self, path: str) -> str:
        p = Path(path)
        return p.read_text() if p.exists() else ""

    def facts(self) -> VmFacts | None:
        return None

    def __repr__(self) -> str:
        return f"NetnsGuest({self.name!r})"
