"""Readiness of a server: wait until its socket listens, read from /proc/PID/net/* (which shows the
process's own network namespace), so no probe connection disturbs the measurement."""

from __future__ import annotations

import time
from pathlib import Path

from harness.processes import TrackedProcess

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def bound_ports(pid: int, proto: str = "tcp") -> set[int]:
    ports: set[int] = set()
    wanted_state = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    for table in (proto, f"{proto}6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == wanted_state:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class NotReady(RuntimeError):
    pass


def wait_listening(proc: TrackedProcess, port: int, proto: str = "tcp", timeout: float = 10.0) -> float:
    """Block until `proc` has a socket bound on `port`; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not proc.alive():
            raise NotReady(f"{proc.name} exited before listening on {proto}/{port}: {proc.log_tail(3)}")
        if port in bound_ports(proc.pid, proto):
            return time.monotonic() - t0
        time.sleep(0.02)
    raise NotReady(f"{proc.name} did not listen on {proto}/{port} within {timeout:g} s")
