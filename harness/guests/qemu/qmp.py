"""QEMU's machine protocol (QMP, docs/interop/qmp-spec.rst in QEMU's tree): JSON commands on the unix socket
`-qmp` opens, as libvirt drives QEMU. The harness uses it to migrate a guest and to read the migration's
statistics (`query-migrate`: status, total-time, downtime, ram transferred)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

from harness.lab.waiting import wait_until


class QmpError(RuntimeError):
    """QEMU answered a command with an error, or the socket closed."""


class Qmp:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        wait_until(path.exists, timeout=timeout, what=f"QEMU's QMP socket {path}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rw")
        self.events: list[dict] = []
        self._read()  # the greeting
        self.call("qmp_capabilities")

    def _read(self) -> dict:
        line = self.file.readline()
        if not line:
            raise QmpError("QEMU closed its QMP socket")
        return json.loads(line)

    def call(self, command: str, **arguments: object) -> object:
        self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QmpError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def wait_migration(self, timeout: float) -> dict:
        """`query-migrate` until the migration ends (completed, failed or cancelled); its last answer."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.call("query-migrate")
            assert isinstance(state, dict)
            if state.get("status") in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                return state
            time.sleep(0.01)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
