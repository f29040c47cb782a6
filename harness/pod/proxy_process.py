"""Starting the relay of the nat-proxy and tproxy strategies as a tracked process in the pod, ready when it
listens on every listener's port. Two implementations with one command line and one behaviour:
`c` (vmnb-relay, harness/pod/relay.c, built by the harness: the default, what an operator would deploy) and
`python` (harness/pod/proxy.py, the readable reference)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

from harness.lab.bed import TestBed
from harness.lab.processes import TrackedProcess
from harness.lab.waiting import wait_listening
from harness.pod.proxy import Listener
from harness.tools.build import compile_c

RELAY_SOURCE = Path(__file__).parent / "relay.c"


class RelayImplementation(StrEnum):
    C = "c"
    PYTHON = "python"


def relay_binary() -> Path:
    return compile_c(RELAY_SOURCE, "vmnb-relay", what="the nat-proxy/tproxy relay")


def relay_argv(implementation: RelayImplementation = RelayImplementation.C, *, workers: int = 1) -> list[str]:
    program = (
        [str(relay_binary())]
        if implementation is RelayImplementation.C
        else [sys.executable, "-m", "harness.pod.proxy"]
    )
    return [*program, *(["--workers", str(workers)] if workers > 1 else [])]


def start_proxy(
    bed: TestBed,
    listeners: list[str],
    *,
    name: str = "proxy",
    implementation: RelayImplementation = RelayImplementation.C,
    workers: int = 1,
) -> TrackedProcess:
    parsed = [Listener.parse(spec) for spec in listeners]
    argv = [*relay_argv(RelayImplementation(implementation), workers=workers), *listeners]
    proc = bed.start_process(argv, name=name, ns=bed.pod)
    for lst in parsed:
        wait_listening(proc, lst.port)
    return proc
