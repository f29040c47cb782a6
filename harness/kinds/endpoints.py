"""The shape every measurement shares: a one-off server in one place, ready when its socket is bound, a client
in another with a hard time budget, and the server ended whatever happens. Places are Guests (the peer, the
pod, a netns or QEMU guest); `Ends` says which is which for a direction."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.guests.attachment import Ends
from harness.lab.processes import Finished
from harness.lab.waiting import NotReady

_REASONS = [
    (re.compile(r"connection refused", re.I), "connection refused"),
    (re.compile(r"no route to host", re.I), "no route"),
    (re.compile(r"network is unreachable", re.I), "network unreachable"),
    # "Operation now in progress": a connect() cut short by SO_SNDTIMEO (vmnb-crr) is a connect timeout too.
    (re.compile(r"connection timed out|timed out|operation now in progress", re.I), "connect timed out"),
    (re.compile(r"connection reset|forcibly closed by a peer", re.I), "connection reset"),
    (re.compile(r"closed unexpectedly|unable to receive|unable to read", re.I), "connection closed by the other side"),
]


TOOL_FAILURE = re.compile(r"^(\S+ printed (no JSON|unexpected JSON)|server not ready: \S+ exited before listening)")
"""A reason that says the tool itself misbehaved (crashed, missing, another version's output), not the path: the
tools print JSON with their own `error` for every network failure (harness/kinds/endpoints.py parse_tool_json),
and a server that exits before it listens never met the path (it binds on its own host)."""


def is_tool_failure(reason: str) -> bool:
    return bool(TOOL_FAILURE.match(reason or ""))


def known_reason(message: str) -> str:
    """The plain phrase for an error text we know, or empty."""
    return next((reason for pattern, reason in _REASONS if pattern.search(message)), "")


def failure_reason(message: str) -> str:
    """iperf3's error text shortened to one plain phrase; unknown texts are kept (first line)."""
    if known := known_reason(message):
        return known
    first = message.strip().splitlines()[0] if message.strip() else "no output"
    return first[:160]


@dataclass(frozen=True)
class Transcript:
    """What a client printed and how it ended: the input every test kind's `outcome_from_output` reads, kept
    (scenario `keep_outputs`) so a cluster's outputs can be checked against the netns runtime's."""

    stdout: str
    stderr: str = ""
    returncode: int = 0


@dataclass
class ClientRun:
    done: Finished | None
    error: str  # empty when the client ran to completion within its budget

    def transcript(self, extra_stdout: str = "") -> Transcript:
        """The client's output; `extra_stdout` follows it (a log file the tool wrote, read back)."""
        stdout = self.done.stdout + (f"\n{extra_stdout}" if extra_stdout else "")
        return Transcript(stdout, self.done.stderr, self.done.returncode)

    def json_result(self, tool: str, model: type[M]) -> tuple[M | None, dict, str]:
        """The client's JSON output validated as `model`, the raw document, and the failure as one plain
        phrase: the tool's own `error`, no JSON, or JSON of the wrong shape."""
        return parse_tool_json(tool, self.done.stdout, model, stderr=self.done.stderr)


class ToolReport(BaseModel):
    """What every tool's JSON may carry: an `error` it reports itself. Subclasses add what they read."""

    model_config = ConfigDict(extra="ignore")
    error: str | None = None


M = TypeVar("M", bound=ToolReport)


def parse_tool_json(tool: str, text: str, model: type[M], *, stderr: str = "") -> tuple[M | None, dict, str]:
    """Validate a tool's JSON output (strict types: a string where a number belongs is refused). Returns
    (report, raw document, failure phrase); the phrase is empty when the tool succeeded."""
    try:
        data = json.loads(text)
    except ValueError:
        known = known_reason(stderr)
        if known:  # the tool said why in words we know (a refused connection, an unreachable host)
            return None, {}, known
        said = " ".join((stderr.strip() or text.strip()).split())[:120]
        return None, {}, f"{tool} printed no JSON" + (f"; it said: {said!r}" if said else " and nothing else")
    if not isinstance(data, dict):
        return None, {}, f"{tool} printed unexpected JSON: a {type(data).__name__}, not an object"
    if isinstance(data.get("error"), str) and data["error"]:
        return None, data, failure_reason(data["error"])
    try:
        report = model.model_validate(data, strict=True)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return None, data, f"{tool} printed unexpected JSON: {where}: {err['msg']} (got {err.get('input')!r:.60})"
    return report, data, ""


def client_against_server(
    ends: Ends,
    *,
    server_argv: list[str],
    port: int,
    client_argv: list[str],
    budget_s: float,
    label: str,
    proto: str = "tcp",
) -> ClientRun:
    server = ends.server.start(server_argv, name=f"{label}-server")
    try:
        try:
            ends.server.wait_listening(server, port, proto=proto)
        except NotReady as e:
            return ClientRun(None, f"server not ready: {e}")
        done = ends.client.run(client_argv, name=f"{label}-client", timeout=budget_s)
        return ClientRun(done, f"timed out after {budget_s:g} s" if done.timed_out else "")
    finally:
        ends.server.stop(server, grace=1.0)
