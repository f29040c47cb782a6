"""The shape every measurement shares: a one-off server in one namespace, ready when its socket is bound, a
client in another with a hard time budget, and the server ended by PID whatever happens."""

from __future__ import annotations

from dataclasses import dataclass

from harness.listening import NotReady, wait_listening
from harness.processes import Finished, ProcessTracker


@dataclass
class ClientRun:
    done: Finished | None
    error: str  # empty when the client ran to completion within its budget


def client_against_server(
    tracker: ProcessTracker,
    *,
    server_argv: list[str],
    server_ns: str,
    port: int,
    client_argv: list[str],
    client_ns: str,
    budget_s: float,
    label: str,
    proto: str = "tcp",
) -> ClientRun:
    server = tracker.start(server_argv, name=f"{label}-server", netns=server_ns)
    try:
        try:
            wait_listening(server, port, proto=proto)
        except NotReady as e:
            return ClientRun(None, f"server not ready: {e}")
        done = tracker.run(client_argv, name=f"{label}-client", netns=client_ns, timeout=budget_s)
        return ClientRun(done, f"timed out after {budget_s:g} s" if done.timed_out else "")
    finally:
        tracker.stop(server, grace=1.0)
