"""Starting the project's proxy (harness.pod.proxy) as a tracked process in the pod, ready when it listens."""

from __future__ import annotations

import sys

from harness.lab.bed import TestBed
from harness.lab.processes import TrackedProcess
from harness.lab.waiting import wait_listening
from harness.pod.proxy import Listener


def start_proxy(
    bed: TestBed, listeners: list[str], *, name: str = "proxy", options: tuple[str, ...] = ()
) -> TrackedProcess:
    """`options`: the relay's own (e.g. --workers 2), before the listeners."""
    parsed = [Listener.parse(spec) for spec in listeners]
    argv = [sys.executable, "-m", "harness.pod.proxy", *options, *listeners]
    proc = bed.start_process(argv, name=name, ns=bed.pod)
    for lst in parsed:
        wait_listening(proc, lst.port)
    return proc
