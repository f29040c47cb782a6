"""The harness's end of the QEMU guest's command channel (guest_files/agent on the guest's ttyS1, a unix
socket on this side): start a command in the guest, wait for it, read its output, end it, and ask whether a
port listens. One request at a time; every reply ends with `SEQ .end STATUS`."""

from __future__ import annotations

import base64
import itertools
import shlex
import socket
import threading
import time
from pathlib import Path

from harness.lab.waiting import TimedOut, wait_until


class AgentError(RuntimeError):
    pass


class GuestAgent:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def connect(self, timeout: float = 10.0) -> None:
        """Connect and wait for the agent to answer a ping (it starts right after the ready marker)."""
        last = ""

        def answers() -> bool:
            nonlocal last
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self._sock.settimeout(2.0)  # a QEMU that never accepts (stuck in a migration) must not hang us
                    self._sock.connect(str(self.path))
                    self._sock.settimeout(None)
                return self.request("ping", timeout=1.0)[1] == "pong"
            except (OSError, AgentError) as e:
                last = str(e)
                self.close()
                return False

        try:
            wait_until(answers, timeout=timeout, what="the guest agent answering", interval=0.2)
        except TimedOut:
            raise AgentError(
                f"the guest agent on {self.path} did not answer within {timeout:g} s ({last or 'silent'})"
            ) from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buffer = b""

    def request(self, op: str, *args: str | int, timeout: float = 10.0) -> tuple[list[str], str]:
        """Send one request; returns the reply's lines before the end line, and its status."""
        with self._lock:
            if self._sock is None:
                raise AgentError("not connected to the guest agent")
            seq = str(next(self._seq))
            self._sock.sendall(" ".join([seq, op, *map(str, args)]).encode() + b"\n")
            lines: list[str] = []
            deadline = time.monotonic() + timeout
            while True:
                line = self._readline(deadline)
                if line.startswith(f"{seq} .end"):
                    return lines, line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
                if line.split(" ", 1)[0].isdigit() and " .end" in line:
                    continue  # the late end of an earlier request that timed out on this side
                lines.append(line)

    def _readline(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentError("the guest agent did not reply in time")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise AgentError("the guest agent did not reply in time") from None
            if not chunk:
                raise AgentError("the guest agent's channel closed (QEMU gone?)")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    # -- jobs ------------------------------------------------------------------------------------------
    def start(self, argv: list[str]) -> str:
        """Start argv in the background in the guest (exec'd by sh, so the job's PID is argv's own)."""
        command = base64.b64encode(("exec " + shlex.join(argv)).encode()).decode()
        _, job = self.request("start", command)
        if not job.isdigit():
            raise AgentError(f"the guest agent could not start {argv[0]}: {job}")
        return job

    def poll(self, job: str) -> int | None:
        _, status = self.request("poll", job)
        return int(status.split()[1]) if status.startswith("exit") else None

    def wait(self, job: str, timeout: float) -> int | None:
        """Block (in the guest, without polling over the channel) until the job ends or `timeout` passes."""
        tenths = max(1, int(timeout * 10))
        _, status = self.request("wait", job, tenths, timeout=timeout + 10)
        return int(status.split()[1]) if status.startswith("exit") else None

    def kill(self, job: str, grace: float = 1.0) -> None:
        self.request("kill", job, max(1, int(grace * 10)), timeout=grace + 10)

    def output(self, job: str, stream: str = "out") -> str:
        return self._fetch(job, stream)

    def read_file(self, path: str) -> str:
        return self._fetch(path, "-")

    def _fetch(self, what: str, stream: str) -> str:
        lines, status = self.request("fetch", what, stream, timeout=60)
        if status != "ok":
            return ""
        return base64.b64decode("".join(lines)).decode(errors="replace")

    def listening(self, port: int, proto: str = "tcp") -> bool:
        return self.request("listening", port, proto)[1] == "yes"
