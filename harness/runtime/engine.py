"""The project's own Docker engine: a dockerd started with its data root, exec root, pidfile and socket under
`/run/vmnetbench/engine`, and with `--iptables=false --ip-masq=false --bridge=none`, so it adds nothing to the
root namespace (no docker0, no DOCKER chains): the harness plays the CNI for every pod it makes.

`make docker-up` starts it when none answers on that socket; `make test` stops the one it started. The engine's
own daemon is tracked by its pidfile (dockerd's own), never by name."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.lab.atomic import write_json
from harness.lab.cleanup import live_runs_using
from harness.lab.paths import STATE_DIR
from harness.lab.processes import end_pid
from harness.lab.procfs import proc_starttime
from harness.lab.waiting import TimedOut, wait_until

ENGINE_DIR = STATE_DIR / "engine"
SOCKET = ENGINE_DIR / "docker.sock"
PIDFILE = ENGINE_DIR / "dockerd.pid"
STARTED_MARK = ENGINE_DIR / "started-by"  # who started it: `make` stops only an engine it started itself
DOCKERD_FLAGS = ("--iptables=false", "--ip-masq=false", "--bridge=none", "--ip-forward=false")
LABEL_RUN = "vmnb.run"
"""Every container and image of a run carries this label with the run id: clean finds them by it."""


ENGINE_SERVICE = "docker"
"""What a run leases in its ledger while it lives when its pods need this engine: the runtime's name (the runner
leases `scenario.runtime`, claims on docker the same)."""


LEASES = ENGINE_DIR / "leases"
"""One file per process that uses the engine (`<pid>-<starttime>`), written before its first request: a run's
first seconds (its engine check, image build) come before its ledger exists, and `engine down` must see it."""
LEASE_LOCK = ENGINE_DIR / "leases.lock"
"""Held while a lease is taken and while `engine down` checks leases and stops the engine: a lease is either seen
by the check or taken after the engine is gone (then the run's own check finds no engine, in one sentence)."""


class EngineUnavailable(RuntimeError):
    pass


class EngineInUse(RuntimeError):
    """`engine down` while a live run leases the engine: one sentence naming the runs."""


def client():
    """A Docker SDK client on the project's engine; EngineUnavailable in one sentence if none answers."""
    import docker

    try:
        engine = docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=120)
        engine.ping()
    except Exception:  # noqa: BLE001 - the SDK raises several types for a missing or dead socket
        raise EngineUnavailable(
            f"no Docker engine answers on {SOCKET}: start the project's own with `make docker-up`"
        ) from None
    return engine


@contextlib.contextmanager
def _lease_lock() -> Iterator[None]:
    LEASES.mkdir(parents=True, exist_ok=True)
    with open(LEASE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def take_lease(holder: str) -> Path:
    """Lease the engine for this process until it ends (the file goes at exit; a dead holder's lease is void,
    so a SIGKILL leaves nothing that blocks `engine down`). Take it before the first request to the engine."""
    pid = os.getpid()
    path = LEASES / f"{pid}-{proc_starttime(pid)}"
    with _lease_lock():
        write_json(path, {"pid": pid, "starttime": proc_starttime(pid), "holder": holder})
    atexit.register(path.unlink, missing_ok=True)
    return path


def live_leases() -> list[dict]:
    """Leases whose holder still runs (the same PID and start time); a dead holder's file is removed."""
    held = []
    for path in sorted(LEASES.glob("*")) if LEASES.is_dir() else []:
        try:
            lease = json.loads(path.read_text())
            live = lease["starttime"] is not None and proc_starttime(int(lease["pid"])) == lease["starttime"]
        except (OSError, ValueError, KeyError, TypeError):
            live = False
        if live:
            held.append(lease)
        else:
            path.unlink(missing_ok=True)
    return held


def answers() -> bool:
    try:
        client().close()
    except EngineUnavailable:
        return False
    return True


def engine_up(started_by: str = "vmnetbench", timeout: float = 60) -> bool:
    """Start the project's dockerd unless one answers already; True if this call started it."""
    if answers():
        return False
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    argv = [
        "dockerd",
        "--data-root",
        str(ENGINE_DIR / "data"),
        "--exec-root",
        str(ENGINE_DIR / "exec"),
        "--pidfile",
        str(PIDFILE),
        "-H",
        f"unix://{SOCKET}",
        *DOCKERD_FLAGS,
    ]
    with open(ENGINE_DIR / "dockerd.log", "ab") as log:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(answers, timeout=timeout, what="the Docker engine answering", interval=0.2)
    except TimedOut:
        tail = (ENGINE_DIR / "dockerd.log").read_text(errors="replace").splitlines()[-3:]
        raise EngineUnavailable(
            f"dockerd did not answer on {SOCKET} within {timeout:g} s: {' / '.join(tail)}"
        ) from None
    STARTED_MARK.write_text(started_by)
    return True


def engine_down(only_if_started_by: str | None = None) -> bool:
    """Stop the project's dockerd (by its pidfile). With `only_if_started_by`, only an engine that caller
    started. True if one was stopped."""
    if only_if_started_by is not None and (not STARTED_MARK.exists() or STARTED_MARK.read_text() != only_if_started_by):
        return False
    with _lease_lock():  # no lease can be taken between the check and the stop
        users = [f"{rid} (PID {pid})" for rid, pid in sorted(live_runs_using(ENGINE_SERVICE).items())]
        users += [
            f"{lease['holder']} (PID {lease['pid']})"
            for lease in live_leases()
            if not any(f"(PID {lease['pid']})" in u for u in users)
        ]
        if users:  # stopping it would end their containers mid-cell (issue 27: a run ended `interrupted`, 0 samples)
            raise EngineInUse(
                f"the engine serves live runs: {', '.join(users)}; it stays up until they end (then "
                "`engine down` again)"
            )
        try:
            pid = int(PIDFILE.read_text().strip())
        except (OSError, ValueError):
            return False
        stopped = end_pid(pid, proc_starttime(pid), grace=20)
    with contextlib.suppress(OSError):
        STARTED_MARK.unlink()
    return stopped


@dataclass(frozen=True)
class EngineFacts:
    version: str
    storage_driver: str
    cgroup_version: str
    seccomp: bool
    socket: str

    def line(self) -> str:
        return (
            f"Docker {self.version} on {self.socket}: storage {self.storage_driver}, "
            f"cgroup v{self.cgroup_version}, seccomp {'on' if self.seccomp else 'off'}"
        )


def engine_facts() -> EngineFacts:
    engine = client()
    try:
        info = engine.info()
    finally:
        engine.close()
    return EngineFacts(
        version=info.get("ServerVersion", "?"),
        storage_driver=info.get("Driver", "?"),
        cgroup_version=str(info.get("CgroupVersion", "?")),
        seccomp=any("seccomp" in str(o) for o in info.get("SecurityOptions", [])),
        socket=str(SOCKET),
    )


def engine_dir() -> Path:
    return ENGINE_DIR
