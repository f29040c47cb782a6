"""`vmnetbench clean`: remove what a run left behind (a SIGKILLed harness cannot tear down its own bed)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import netns

from harness.lab.names import run_id_of
from harness.lab.netns import list_namespaces, remove_namespace
from harness.lab.paths import STATE_DIR
from harness.lab.processes import end_pid
from harness.lab.procfs import proc_starttime
from harness.lab.state import load_states


@dataclass
class CleanReport:
    runs: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    skipped_live_runs: list[str] = field(default_factory=list)


def _owner_alive(state: dict) -> bool:
    pid, starttime = state.get("owner_pid"), state.get("owner_starttime")
    return bool(pid) and proc_starttime(pid) is not None and proc_starttime(pid) == starttime


def clean(run_id: str | None = None) -> CleanReport:
    """Clean one run (even if its harness still runs), or, without a run id, every run whose harness is gone
    plus any `vmnb-` namespace that no live run owns."""
    report = CleanReport()
    live_runs: set[str] = set()
    for state in load_states():
        rid = state.get("run_id")
        if run_id is not None and rid != run_id:
            if _owner_alive(state):
                live_runs.add(rid)
            continue
        if run_id is None and _owner_alive(state):
            live_runs.add(rid)
            report.skipped_live_runs.append(rid)
            continue
        for proc in reversed(state.get("processes", [])):
            if end_pid(proc["pid"], proc.get("starttime") or None, grace=1.0):
                report.processes.append(proc["pid"])
        for name in reversed(state.get("namespaces", [])):
            _remove_with_processes(name, report)
        shutil.rmtree(STATE_DIR / rid, ignore_errors=True)  # the run's own folder (sockets, scratch files)
        Path(state["_path"]).unlink(missing_ok=True)
        report.runs.append(rid)
    for name in list_namespaces():
        rid = run_id_of(name)
        if rid is None or rid in live_runs:
            continue
        if run_id is None or rid == run_id:
            _remove_with_processes(name, report)
    return report


def _remove_with_processes(name: str, report: CleanReport) -> None:
    """A namespace lives on while a process is inside it: end those (found by PID from /proc) first."""
    if name not in list_namespaces():
        return
    for pid in netns.ns_pids().get(name, []):
        if end_pid(pid, proc_starttime(pid), grace=1.0):
            report.processes.append(pid)
    remove_namespace(name)
    report.namespaces.append(name)
