"""The state file a run keeps, so `vmnetbench clean` can undo what a SIGKILLed run left behind.

Only two kinds of thing are ever recorded: network namespaces (every link, address, route, rule and
sysctl the harness makes lives inside one and dies with it) and processes (by PID plus the kernel's
start time, so a recycled PID is never mistaken for ours).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.lab.atomic import write_json
from harness.lab.paths import STATE_DIR
from harness.lab.procfs import proc_starttime


@dataclass
class ProcessRecord:
    pid: int
    starttime: int
    argv: list[str]


@dataclass
class RunState:
    run_id: str
    owner_pid: int = field(default_factory=os.getpid)
    suffix: str = ""  # a second state file for the same run (a helper process with its own resources)
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    netns_inodes: dict[str, int] = field(default_factory=dict)
    """Inode of each namespace (by name), so `clean` finds processes left in it even once its name is gone."""
    results_dir: str | None = None
    """The run's results folder, so `clean` can mark a killed run and remove its half-written files."""
    uses: list[str] = field(default_factory=list)
    """Shared services outside the run that it needs while it lives (a container engine): what stops such a
    service asks the live ledgers first (a lease held as long as the run's owner lives)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.run_id}{self.suffix}.json"

    def save(self) -> None:
        data = {
            "run_id": self.run_id,
            "owner_pid": self.owner_pid,
            "owner_starttime": proc_starttime(self.owner_pid),
            "namespaces": self.namespaces,
            "netns_inodes": self.netns_inodes,
            "processes": [asdict(p) for p in self.processes],
            "results_dir": self.results_dir,
            "uses": self.uses,
        }
        write_json(self.path, data)

    def add_namespace(self, name: str) -> None:
        """Record a namespace before it is created, so no moment exists in which it is there and unrecorded."""
        with self._lock:
            self.namespaces.append(name)
            self.save()

    def add_use(self, service: str) -> None:
        with self._lock:
            if service not in self.uses:
                self.uses.append(service)
                self.save()

    def set_namespace_inode(self, name: str, inode: int) -> None:
        with self._lock:
            self.netns_inodes[name] = inode
            self.save()

    def drop_namespace(self, name: str) -> None:
        with self._lock:
            self.namespaces = [n for n in self.namespaces if n != name]
            self.netns_inodes.pop(name, None)
            self.save()

    def add_process(self, record: ProcessRecord) -> None:
        with self._lock:
            self.processes.append(record)
            self.save()

    def drop_process(self, pid: int) -> None:
        with self._lock:
            self.processes = [p for p in self.processes if p.pid != pid]
            self.save()

    @property
    def empty(self) -> bool:
        """Nothing recorded is left: the ledger may go."""
        return not self.namespaces and not self.processes

    def remove_file(self) -> None:
        self.path.unlink(missing_ok=True)


def ledger_exists(run_id: str) -> bool:
    """Any ledger of this run (the main one or a helper's) on this machine."""
    return any(STATE_DIR.glob(f"{run_id}.json")) or any(STATE_DIR.glob(f"{run_id}-*.json"))


def load_states() -> list[dict]:
    """Every run's state file on this machine, parsed; unreadable ones and other files are skipped."""
    states = []
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not data.get("run_id"):
            continue
        data["_path"] = str(path)
        states.append(data)
    return states
