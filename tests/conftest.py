"""Shared fixtures: a run state and process tracker per test, and a check that nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.names import new_run_id
from harness.netns import list_namespaces
from harness.processes import ProcessTracker, proc_starttime
from harness.state import STATE_DIR, RunState
from harness.testbed import TestBed

REPO = Path(__file__).resolve().parent.parent


def leftovers(run_id: str) -> dict[str, list]:
    """What a run left on this machine: namespaces named after it, live processes its state file lists, and
    links carrying its id in the root namespace."""
    namespaces = [n for n in list_namespaces() if n.startswith(f"vmnb-{run_id}-")]
    processes = []
    state_file = STATE_DIR / f"{run_id}.json"
    if state_file.exists():
        for proc in json.loads(state_file.read_text()).get("processes", []):
            if proc_starttime(proc["pid"]) == proc["starttime"]:
                processes.append(proc["pid"])
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    root_links = [ln for ln in links.splitlines() if f"vmnb-{run_id}" in ln]
    return {"namespaces": namespaces, "processes": processes, "root_links": root_links}


def assert_clean(run_id: str) -> None:
    left = leftovers(run_id)
    assert left == {"namespaces": [], "processes": [], "root_links": []}, left


@pytest.fixture(scope="session", autouse=True)
def _must_be_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("vmnetbench tests build network namespaces and must run as root", allow_module_level=True)


@pytest.fixture
def run_env(tmp_path):
    """A fresh run id, its state file and a process tracker; afterwards, nothing of it may remain."""
    run_id = new_run_id()
    state = RunState(run_id)
    state.save()
    tracker = ProcessTracker(state, tmp_path / "logs")
    yield run_id, state, tracker
    tracker.stop_all()
    try:
        assert_clean(run_id)
    finally:
        state.remove_file()


@pytest.fixture
def bed(run_env):
    run_id, state, tracker = run_env
    with TestBed(run_id, state, tracker) as b:
        yield b


def cli(*args: str, **kwargs) -> subprocess.Popen:
    """Start the vmnetbench CLI as a separate process (for signal tests)."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
