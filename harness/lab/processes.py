"""Processes the harness starts: each one tracked by PID (and start time) and ended by PID, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.lab.procfs import bound_ports, is_zombie, proc_starttime
from harness.lab.state import ProcessRecord, RunState
from harness.lab.waiting import TimedOut, wait_until


def netns_argv(netns: str | None, argv: list[str]) -> list[str]:
    """Prefix `argv` so it runs inside the named network namespace (nsenter execs, so the PID is argv's)."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


def end_pid(pid: int, starttime: int | None, grace: float = 2.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds, the process `pid` if it is still the one that started
    at `starttime`. Returns True if it was ours and is gone."""
    if starttime is not None and proc_starttime(pid) != starttime:
        return False

    def gone() -> bool:
        _reap(pid)
        now = proc_starttime(pid)
        return now is None or (starttime is not None and now != starttime) or is_zombie(pid)

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        try:
            wait_until(gone, timeout=wait, what=f"process {pid} ending")
            _reap(pid)
            return True
        except TimedOut:
            continue
    return proc_starttime(pid) is None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class TrackedProcess:
    name: str
    argv: list[str]
    netns: str | None
    popen: subprocess.Popen
    starttime: int | None
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def listens(self, port: int, proto: str = "tcp") -> bool:
        return port in bound_ports(self.pid, proto)

    def last_words(self) -> str:
        return self.log_tail(3)

    def log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Finished:
    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


class ProcessTracker:
    """Starts processes (optionally inside a namespace), records them in the run's state file, ends them."""

    def __init__(self, state: RunState, log_dir: Path) -> None:
        self.state = state
        self.log_dir = log_dir
        self._live: dict[int, TrackedProcess] = {}
        self._lock = threading.Lock()

    def start(self, argv: list[str], *, name: str, netns: str | None = None, env: dict | None = None) -> TrackedProcess:
        """Start a long-running process whose output goes to a log file in the run's log folder."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                netns_argv(netns, argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's SIGINT reaches the harness, which ends it by PID
                env=env,
            )
        return self._track(TrackedProcess(name, argv, netns, popen, proc_starttime(popen.pid), log_path))

    def run(self, argv: list[str], *, name: str, netns: str | None = None, timeout: float) -> Finished:
        """Run a process to completion with a hard timeout; it is tracked (and killable) while it runs."""
        t0 = time.monotonic()
        popen = subprocess.Popen(
            netns_argv(netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        proc = self._track(TrackedProcess(name, argv, netns, popen, proc_starttime(popen.pid)))
        timed_out = False
        try:
            out, err = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.stop(proc)
            out, err = popen.communicate()
        finally:
            if popen.poll() is None:
                self.stop(proc)
            self._untrack(proc)
        return Finished(argv, popen.returncode, out, err, timed_out, time.monotonic() - t0)

    def stop(self, proc: TrackedProcess, grace: float = 2.0) -> None:
        if proc.popen.poll() is None:
            end_pid(proc.pid, proc.starttime, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=5)
        self._untrack(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._live.values())):
            self.stop(proc)

    def live(self) -> list[TrackedProcess]:
        return list(self._live.values())

    def _track(self, proc: TrackedProcess) -> TrackedProcess:
        with self._lock:
            self._live[proc.pid] = proc
        self.state.add_process(ProcessRecord(proc.pid, proc.starttime or 0, proc.argv))
        return proc

    def _untrack(self, proc: TrackedProcess) -> None:
        with self._lock:
            known = self._live.pop(proc.pid, None)
        if known is not None:
            self.state.drop_process(proc.pid)
