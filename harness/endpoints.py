"""The shape every measurement shares: a one-off server in one namespace, ready when its socket is bound, a
client in another with a hard time budget, and the server ended by PID whatever happens."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from harness.listening import NotReady
from harness.places import Where, place_of
from harness.processes import Finished, ProcessTracker

_REASONS = [
    (re.compile(r"connection refused", re.I), "connection refused"),
    (re.compile(r"no route to host", re.I), "no route"),
    (re.compile(r"network is unreachable", re.I), "network unreachable"),
    # "Operation now in progress": a connect() cut short by SO_SNDTIMEO (vmnb-crr) is a connect timeout too.
    (re.compile(r"connection timed out|timed out|operation now in progress", re.I), "connect timed out"),
    (re.compile(r"connection reset|forcibly closed by a peer", re.I), "connection reset"),
    (re.compile(r"closed unexpectedly|unable to receive|unable to read", re.I), "connection closed by the other side"),
]


def failure_reason(message: str) -> str:
    """iperf3's error text shortened to one plain phrase; unknown texts are kept (first line)."""
    for pattern, reason in _REASONS:
        if pattern.search(message):
            return reason
    first = message.strip().splitlines()[0] if message.strip() else "no output"
    return first[:160]


@dataclass
class ClientRun:
    done: Finished | None
    error: str  # empty when the client ran to completion within its budget

    def json_result(self) -> tuple[dict | None, str]:
        """The client's JSON output and, if the tool reported one (an `error` field) or printed no JSON, the
        failure as one plain phrase."""
        try:
            data = json.loads(self.done.stdout)
        except ValueError:
            return None, failure_reason(self.done.stderr or "the client printed no JSON")
        if data.get("error"):
            return data, failure_reason(data["error"])
        return data, ""


def client_against_server(
    tracker: ProcessTracker,
    *,
    server_argv: list[str],
    server_ns: Where,
    port: int,
    client_argv: list[str],
    client_ns: Where,
    budget_s: float,
    label: str,
    proto: str = "tcp",
) -> ClientRun:
    """`server_ns`/`client_ns`: a namespace (or its name) on this host, or a QEMU guest."""
    server_place, client_place = place_of(tracker, server_ns), place_of(tracker, client_ns)
    server = server_place.start(server_argv, name=f"{label}-server")
    try:
        try:
            server_place.wait_listening(server, port, proto=proto)
        except NotReady as e:
            return ClientRun(None, f"server not ready: {e}")
        done = client_place.run(client_argv, name=f"{label}-client", timeout=budget_s)
        return ClientRun(done, f"timed out after {budget_s:g} s" if done.timed_out else "")
    finally:
        server_place.stop(server, grace=1.0)
