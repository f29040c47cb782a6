"""Processes the harness starts: each one tracked by PID (and start time) and ended by PID, never by name."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.lab.procfs import (
    bound_ports,
    group_members,
    is_zombie,
    pids_in_netns,
    pids_with_env,
    proc_starttime,
    process_group,
)
from harness.lab.state import ProcessRecord, RunState
from harness.lab.waiting import TimedOut, wait_until


def netns_argv(netns: str | None, argv: list[str]) -> list[str]:
    """Prefix `argv` so it runs inside the named network namespace (nsenter execs, so the PID is argv's)."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


def end_pid(pid: int, starttime: int | None, grace: float = 2.0) -> bool:
    """End the process `pid` if it is still the one that started at `starttime`, and every process of its
    process group: each tracked process leads a group of its own (start_new_session), so a wrapper script's
    children go with it. SIGTERM, then SIGKILL after `grace` seconds. Returns True if it was ours and is gone."""
    if pid <= 0:  # never a process: kill(0) and killpg(0) would signal our own process group
        return True
    now = proc_starttime(pid)
    if now is not None and starttime is not None and now != starttime:
        return False  # the PID is someone else's now; a group our process led cannot outlive its number's reuse
    group = process_group(pid) == pid or bool(group_members(pid))

    def gone() -> bool:
        _reap(pid)
        leader = proc_starttime(pid)
        leader_gone = leader is None or (starttime is not None and leader != starttime) or is_zombie(pid)
        return leader_gone and (not group or not group_members(pid))

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            _reap(pid)
            return True
        try:
            wait_until(gone, timeout=wait, what=f"process group {pid} ending")
            return True
        except TimedOut:
            continue
    return gone()


def end_netns_processes(inodes: set[int], grace: float = 1.0) -> list[int]:
    """End every process still inside these network namespaces (a straggler that left its group keeps a
    namespace alive even after its name is gone). Returns the PIDs ended."""
    ended = []
    for pid in pids_in_netns(inodes):
        if end_pid(pid, proc_starttime(pid), grace=grace):
            ended.append(pid)
    return ended


RUN_TAG = "VMNB_RUN"
"""Environment variable every process the harness starts carries (its run id, or a probe's token), so the
stragglers of a run are found even when they left both their process group and the run's namespaces."""


def end_tagged(value: str, grace: float = 1.0) -> list[int]:
    """End every process started with VMNB_RUN=`value` in its environment. Returns the PIDs ended."""
    return [pid for pid in pids_with_env(RUN_TAG, value) if end_pid(pid, proc_starttime(pid), grace=grace)]


def run_detached(argv: list[str], timeout: float) -> Finished:
    """Run a short command (a tool's --version) in a process group of its own, its output in files (a child it
    leaves behind cannot hold a pipe open), and end whatever it started, however it tried to linger."""
    t0 = time.monotonic()
    token = f"probe-{os.getpid()}-{secrets.token_hex(4)}"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                env={**os.environ, RUN_TAG: token},
            )
        except OSError as e:
            return Finished(argv, None, "", str(e), False, 0.0)
        starttime = proc_starttime(popen.pid)
        try:
            popen.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        end_pid(popen.pid, starttime, grace=0.5)
        popen.wait()
        end_tagged(token, grace=0.5)
        out.seek(0)
        err.seek(0)
        text = (out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    return Finished(argv, popen.returncode, *text, timed_out, time.monotonic() - t0)


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
    container: str | None = None  # the pod container it runs in (docker runtime), None: a host process

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
        self.cpus_for: Callable[[str | None], str | None] | None = None
        """CPU placement: the CPU list (taskset -c) a process in this namespace is pinned to, or None: unpinned."""
        self._live: dict[int, TrackedProcess] = {}
        self._lock = threading.Lock()
        self._pods: dict[str, object] = {}

    def placed(self, netns: str | None, argv: list[str]) -> list[str]:
        """`argv` inside `netns`, pinned with taskset when a CPU placement is set (taskset execs: same PID)."""
        cpus = self.cpus_for(netns) if self.cpus_for else None
        return netns_argv(netns, ["taskset", "-c", cpus, *argv] if cpus else argv)

    def environment(self, env: dict | None) -> dict:
        """The environment of a process of this run: tagged with the run id (VMNB_RUN), inherited by every
        descendant, so `clean` finds a straggler that left its process group and the run's namespaces."""
        return {**(env if env is not None else os.environ), RUN_TAG: self.state.run_id}

    def route(self, netns: str, pod) -> None:
        """Processes started in `netns` run in `pod`'s containers from now on (docker runtime): `pod` answers
        exec_start(role, argv, log_path=, env=) and exec_run(role, argv, timeout=, env=), its default role is
        `pod.default_role`."""
        self._pods[netns] = pod

    def unroute(self, netns: str) -> None:
        self._pods.pop(netns, None)

    def _pod_for(self, netns: str | None, node_side: bool):
        return None if netns is None or node_side else self._pods.get(netns)

    def start(
        self,
        argv: list[str],
        *,
        name: str,
        netns: str | None = None,
        env: dict | None = None,
        container: str | None = None,
        node_side: bool = False,
    ) -> TrackedProcess:
        """Start a long-running process whose output goes to a log file in the run's log folder. In a namespace
        routed to a pod's containers, it runs in the `container` role of that pod (default: its compute
        container) unless `node_side` (a node agent's step, entering the namespace from the host)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        pod = self._pod_for(netns, node_side)
        if pod is not None:
            role = container or pod.default_role
            handle = pod.exec_start(role, argv, log_path=log_path.resolve(), env={RUN_TAG: self.state.run_id})
            proc = TrackedProcess(name, argv, netns, handle, handle.starttime, log_path, container=role)  # type: ignore[arg-type]
            return self._track(proc)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                self.placed(netns, argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended as one; a terminal's SIGINT reaches only us
                env=self.environment(env),
            )
        return self._track(TrackedProcess(name, argv, netns, popen, proc_starttime(popen.pid), log_path))

    def run(
        self, argv: list[str], *, name: str, netns: str | None = None, timeout: float, node_side: bool = False
    ) -> Finished:
        """Run a process to completion with a hard timeout; it is tracked (and killable) while it runs. Its output
        goes to unlinked files, not pipes: a child it leaves behind cannot keep the harness waiting."""
        pod = self._pod_for(netns, node_side)
        if pod is not None:
            return pod.exec_run(pod.default_role, argv, timeout=timeout, env={RUN_TAG: self.state.run_id})
        t0 = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            popen = subprocess.Popen(
                self.placed(netns, argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                env=self.environment(None),
            )
            proc = self._track(TrackedProcess(name, argv, netns, popen, proc_starttime(popen.pid)))
            timed_out = False
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                self.stop(proc)  # the process if it still runs, and whatever it left in its process group
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return Finished(argv, popen.returncode, stdout, stderr, timed_out, time.monotonic() - t0)

    def stop(self, proc: TrackedProcess, grace: float = 2.0) -> None:
        """End the process and its whole process group; a leader that already exited may have left children."""
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
