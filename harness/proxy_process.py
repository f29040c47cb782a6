"""Starting the project's proxy (harness.proxy) as a tracked process in the pod, ready when it listens."""

from __future__ import annotations

import sys

from harness.listening import wait_listening
from harness.processes import TrackedProcess
from harness.proxy import Listener
from harness.testbed import TestBed


def start_proxy(bed: TestBed, listeners: list[str], *, name: str = "proxy") -> TrackedProcess:
    parsed = [Listener.parse(spec) for spec in listeners]
    proc = bed.start_process([sys.executable, "-m", "harness.proxy", *listeners], name=name, ns=bed.pod)
    for lst in parsed:
        wait_listening(proc, lst.port)
    return proc
