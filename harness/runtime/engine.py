"""The project's own Docker engine: a dockerd started with its data root, exec root, pidfile and socket under
`/run/vmnetbench/engine`, and with `--iptables=false --ip-masq=false --bridge=none`, so it adds nothing to the
root namespace (no docker0, no DOCKER chains): the harness plays the CNI for every pod it makes.

`make docker-up` starts it when none answers on that socket; `make test` stops the one it started. The engine's
own daemon is tracked by its pidfile (dockerd's own), never by name."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
    argv = ["dockerd", "--data-root", str(ENGINE_DIR / "data"), "--exec-root", str(ENGINE_DIR / "exec"),
            "--pidfile", str(PIDFILE), "-H", f"unix://{SOCKET}", *DOCKERD_FLAGS]  # fmt: skip
    with open(ENGINE_DIR / "dockerd.log", "ab") as log:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)  # fmt: skip
    try:
        wait_until(answers, timeout=timeout, what="the Docker engine answering", interval=0.2)
    except TimedOut:
        tail = (ENGINE_DIR / "dockerd.log").read_text(errors="replace").splitlines()[-3:]
        raise EngineUnavailable(f"dockerd did not answer on {SOCKET} within {timeout:g} s: "
                                f"{' / '.join(tail)}") from None  # fmt: skip
    STARTED_MARK.write_text(started_by)
    return True


def engine_down(only_if_started_by: str | None = None) -> bool:
    """Stop the project's dockerd (by its pidfile). With `only_if_started_by`, only an engine that caller
    started. True if one was stopped."""
    if only_if_started_by is not None and (not STARTED_MARK.exists() or STARTED_MARK.read_text() != only_if_started_by):
        return False
    users = live_runs_using(ENGINE_SERVICE)
    if users:  # stopping it would end their containers mid-cell (issue 27: a run ended `interrupted`, 0 samples)
        runs = ", ".join(f"{rid} (PID {pid})" for rid, pid in sorted(users.items()))
        raise EngineInUse(f"the engine serves live runs: {runs}; it stays up until they end (then `engine down` "
                          "again)")  # fmt: skip
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
        return (f"Docker {self.version} on {self.socket}: storage {self.storage_driver}, "
                f"cgroup v{self.cgroup_version}, seccomp {'on' if self.seccomp else 'off'}")  # fmt: skip


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
