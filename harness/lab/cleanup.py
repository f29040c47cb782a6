"""`vmnetbench clean`: remove what a run left behind (a SIGKILLed harness cannot tear down its own bed).

A run is handled as one unit: its main ledger and any helper's (`<id>-priv.json`). It is live while the
process that owns any of its ledgers still runs; a live run is left alone, and `clean RUN_ID` refuses it unless
forced (then its harness is stopped first, as by Ctrl-C). For a dead run: its processes and their process groups
are ended, then every process still inside one of its namespaces (by inode, checked against the namespace's
name at that moment: a freed inode may already be another run's) or carrying the run's tag in its environment
(VMNB_RUN=<id>, inherited by every descendant), then the namespaces, the run's own folder under
/run/vmnetbench, and in its results folder the half-written temporary files; a results folder that still says
`running` is marked `killed` and its samples.csv rebuilt from samples.parquet (the authoritative table).
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import netns

from harness.lab.atomic import write_json, write_via_temp
from harness.lab.names import run_id_of
from harness.lab.netns import list_namespaces, remove_namespace
from harness.lab.paths import STATE_DIR
from harness.lab.processes import end_netns_processes, end_pid, end_tagged
from harness.lab.procfs import pinned_inodes, proc_starttime
from harness.lab.state import load_states


class RunIsLive(RuntimeError):
    pass


@dataclass
class CleanReport:
    runs: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    skipped_live_runs: list[str] = field(default_factory=list)
    killed_results: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)


def _owner_alive(state: dict) -> bool:
    pid, starttime = state.get("owner_pid"), state.get("owner_starttime")
    return bool(pid) and proc_starttime(pid) is not None and proc_starttime(pid) == starttime


def live_runs_using(service: str) -> dict[str, int]:
    """run id -> owner PID of every live run whose ledger leases `service`."""
    return {s["run_id"]: s["owner_pid"] for s in load_states() if service in (s.get("uses") or []) and _owner_alive(s)}


def live_owner(ledgers: list[dict]) -> int | None:
    """The PID of a live process holding one of a run's ledgers, or None when the run is dead."""
    return next((s["owner_pid"] for s in ledgers if _owner_alive(s)), None)


def clean(
    run_id: str | None = None, *, force: bool = False, leftovers: Sequence[Callable[[str], list[str]]] = ()
) -> CleanReport:
    """Clean one run (refusing a live one unless `force`), or, without a run id, every dead run plus any
    `vmnb-` namespace of a run that has no ledger at all."""
    report = CleanReport()
    runs: dict[str, list[dict]] = defaultdict(list)
    for state in load_states():
        runs[state["run_id"]].append(state)
    if run_id is not None:
        owner = live_owner(runs.get(run_id, []))
        if owner is not None and not force:
            raise RunIsLive(
                f"run {run_id} is live: its harness (PID {owner}) still holds it; stop that run, or "
                f"give --force to stop it and remove what it leaves"
            )
        if owner is not None:
            stop_owners(runs[run_id])
    for rid, ledgers in runs.items():
        if run_id is not None and rid != run_id:
            continue
        if run_id is None and live_owner(ledgers) is not None:
            report.skipped_live_runs.append(rid)
            continue
        _clean_run(rid, ledgers, report, leftovers)
    if run_id is not None and run_id not in runs:
        # no ledger (a run killed before it wrote one, or a ledger already removed): what the runtimes still hold
        # under the run's label is all that is left of it, and no live harness can own it
        for remove in leftovers:
            found = remove(run_id)
            report.containers += found
            if found and run_id not in report.runs:
                report.runs.append(run_id)
    ledgered = set(runs)
    for name in list_namespaces():
        rid = run_id_of(name)
        if rid is None or (run_id is not None and rid != run_id):
            continue
        if rid in ledgered and rid not in report.runs:
            continue  # a live run's, or a run skipped above
        _remove_with_processes(name, report)
    return report


def stop_owners(ledgers: list[dict], grace: float = 30.0) -> None:
    """--force: SIGTERM the processes holding a run's ledgers (the harness unwinds and tears its bed down, as on
    Ctrl-C), SIGKILL after `grace` seconds; what they leave is then cleaned like any dead run's."""
    for state in ledgers:
        if _owner_alive(state):
            end_pid(state["owner_pid"], state["owner_starttime"], grace=grace)


def _clean_run(
    rid: str, ledgers: list[dict], report: CleanReport, leftovers: Sequence[Callable[[str], list[str]]]
) -> None:
    inodes: set[int] = set()
    for state in ledgers:
        inodes |= pinned_inodes(state.get("netns_inodes", {}))  # only those the run's names still hold
        for proc in reversed(state.get("processes", [])):
            if not _provable(proc):
                continue  # an entry that cannot prove the PID is still the process the run started: not ours to end
            if end_pid(proc["pid"], proc["starttime"], grace=1.0):
                report.processes.append(proc["pid"])
    for remove in leftovers:  # each runtime's own objects (the docker runtime's containers, their processes)
        report.containers += remove(rid)
    report.processes += end_netns_processes(inodes)
    report.processes += end_tagged(rid)
    for state in ledgers:
        for name in reversed(state.get("namespaces", [])):
            _remove_with_processes(name, report)
    _remove_state_folder(STATE_DIR / rid)
    for state in ledgers:
        if state.get("results_dir") and mark_killed(Path(state["results_dir"])):
            report.killed_results.append(state["results_dir"])
        Path(state["_path"]).unlink(missing_ok=True)
    report.runs.append(rid)


def _provable(proc: dict) -> bool:
    """A ledger entry names its process by PID and start time (clock ticks since boot, never 0 for a process
    started after boot): without both, the PID may be anyone's now."""
    pid, starttime = proc.get("pid"), proc.get("starttime")
    return isinstance(pid, int) and pid > 0 and isinstance(starttime, int) and starttime > 0


def _remove_state_folder(folder: Path) -> None:
    """The run's own folder under the state folder (sockets, scratch files, its bed's configuration). A folder
    holding results is never removed, whoever put it there (results roots inside the state folder are refused,
    harness/lab/paths.py; this is the second lock)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    if any((folder / name).exists() for name in ("run.json", "samples.parquet", "samples.csv")):
        return
    shutil.rmtree(folder, ignore_errors=True)


def mark_killed(results_dir: Path) -> bool:
    """A results folder whose run died: temporary files removed, samples.csv rebuilt from samples.parquet, and
    run.json's status `running` turned into `killed`. Returns True if it was marked."""
    if not results_dir.is_dir():
        return False
    for tmp in results_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    meta_path = results_dir / "run.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("status") != "running":
        return False
    parquet = results_dir / "samples.parquet"
    if parquet.exists():
        import pandas as pd  # only a killed run's folder needs it

        frame = pd.read_parquet(parquet)
        write_via_temp(results_dir / "samples.csv", lambda tmp: frame.to_csv(tmp, index=False))
    meta.update(status="killed", finished=None, killed_note="the harness died; `vmnetbench clean` removed what it left")
    write_json(meta_path, meta)
    return True


def _remove_with_processes(name: str, report: CleanReport) -> None:
    """A namespace lives on while a process is inside it: end those (found by PID from /proc) first."""
    if name not in list_namespaces():
        return
    for pid in netns.ns_pids().get(name, []):
        if end_pid(pid, proc_starttime(pid), grace=1.0):
            report.processes.append(pid)
    remove_namespace(name)
    report.namespaces.append(name)
