"""Shared fixtures: a LabSession per test (run id, ledger, tracker), a bed in it, the netns guest driver, and a
check that nothing of the run is left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from harness.guests.attachment import Ends
from harness.guests.choice import driver_for
from harness.guests.driver import GuestDriver
from harness.guests.netns import NetnsGuest
from harness.guests.spec import GuestSpec
from harness.kinds.measure import MeshSnapshot, traversal
from harness.kinds.outcome import Outcome
from harness.kinds.throughput import measure_tcp_throughput
from harness.lab.bed import TestBed
from harness.lab.names import run_id_of
from harness.lab.netns import Namespace, list_namespaces
from harness.lab.paths import REPO_ROOT, STATE_DIR
from harness.lab.procfs import proc_starttime
from harness.lab.session import LabSession
from harness.lab.state import load_states
from harness.lab.vocabulary import Status
from harness.lab.waiting import TimedOut, wait_until
from harness.pod.mesh import install_sidecar
from strategies import strategy_class

REPO = REPO_ROOT


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


def free_port() -> int:
    """A TCP port on the root namespace's loopback nobody listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orphan_namespaces() -> set[str]:
    """`vmnb-` namespaces no ledger accounts for. Another xdist worker's beds come and go meanwhile, but a bed's
    ledger names a namespace before it exists and forgets it only after it is gone, so a namespace listed both
    before and after the ledgers are read, with no ledger of its run, is an orphan."""
    first = set(list_namespaces())
    ledgered = {state["run_id"] for state in load_states()}
    return {n for n in first & set(list_namespaces()) if n.startswith("vmnb-") and run_id_of(n) not in ledgered}


def assert_this_process_left_nothing() -> None:
    """No orphan namespace, and no ledger of this process (whose namespaces the orphan check would excuse)."""
    mine = [state["run_id"] for state in load_states() if state.get("owner_pid") == os.getpid()]
    assert not orphan_namespaces() and not mine, (orphan_namespaces(), mine)


def assert_clean(run_id: str) -> None:
    left = leftovers(run_id)
    assert left == {"namespaces": [], "processes": [], "root_links": []}, left


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=("parallel", "alone"),
        help="make test's passes: `parallel` (under xdist) leaves out the tests marked `alone`; `alone`: only them",
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """make test runs two passes. First two xdist workers (`--phase parallel -n 2 --dist loadgroup`): every bed has
    namespaces, ledger and results of its own run id, so two workers' beds never meet, but the tests that share
    something machine-wide (marked `serial` or `docker`: the root namespace's links and rules, which Docker's
    containers change and test_docker compares before and after; the repository's git worktrees) all go to one
    worker, one after another. Then the tests marked `alone` (`--phase alone`), with the machine to themselves:
    test_faults reads what is left machine-wide (processes in a dead run's namespace inodes, which the kernel hands
    to the next namespace made, another worker's included; files in /tmp) and a passt-repair migration's TCP
    stream was reset once beside the other worker's load."""
    phase = config.getoption("--phase")
    if phase:
        keep = [item for item in items if bool(item.get_closest_marker("alone")) == (phase == "alone")]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
    for item in items:
        if item.get_closest_marker("serial") or item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.xdist_group("serial"))


@pytest.fixture(scope="session", autouse=True)
def _runs_write_no_page():
    """`vmnetbench run` ends by writing report.html (seconds of matplotlib per run): the tests' many small runs skip
    it; test_plan's precision test unsets this and checks the terminal's answer and page path."""
    os.environ["VMNB_NO_REPORT"] = "1"
    yield
    os.environ.pop("VMNB_NO_REPORT", None)


@pytest.fixture(scope="session", autouse=True)
def _must_be_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("vmnetbench tests build network namespaces and must run as root", allow_module_level=True)


@pytest.fixture
def lab(tmp_path):
    """A LabSession of its own; afterwards, nothing of its run may remain."""
    with LabSession(log_dir=tmp_path / "logs") as session:
        yield session
    try:
        assert_clean(session.run_id)
    finally:
        session.state.remove_file()


@pytest.fixture
def bed(lab):
    with lab.bed() as b:
        yield b


@pytest.fixture
def netns_guest() -> GuestDriver:
    """The netns guest driver, as a run with `guest: netns` gets it."""
    return driver_for(GuestSpec(), "test")


def place(bed: TestBed, ns: Namespace) -> NetnsGuest:
    """A namespace of the bed as a place to run tools."""
    return NetnsGuest.of(bed, ns)


def ends(bed: TestBed, server: Namespace, client: Namespace, target: str) -> Ends:
    return Ends(place(bed, server), place(bed, client), target)


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
    """wait_until, failing the test (not erroring it) when the deadline passes."""
    try:
        return wait_until(predicate, timeout=timeout, what=what, interval=0.1)
    except TimedOut as e:
        raise AssertionError(str(e)) from None


def run_scenario_text(tmp_path, text: str):
    """Run a scenario given as YAML text in this process (no CLI); it must complete without a harness error and
    leave nothing behind. Returns (samples, run folder); no page is written (a test that reads it calls
    write_report, which is what the run would have called)."""
    from harness.analysis.results import load_samples
    from harness.run.runner import run_scenario
    from harness.run.scenario import load_scenario

    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    scenario, raw = load_scenario(path)
    outcome = run_scenario(scenario, raw, str(path), results_root=tmp_path / "results", write_page=False)
    assert outcome.status == "complete" and outcome.harness_errors == 0
    assert_clean(outcome.run_dir.name)
    return load_samples(outcome.run_dir), outcome.run_dir


def run_through(bed, guest, strategy: str, sidecar: str, direction: str, options: dict | None = None):
    """Sidecar (or ambient mode) first, then the strategy, then 1 s of iperf3 in `direction`: the sample, the
    path evidence from the mesh proxy's counters, and the installed sidecar."""
    cls = strategy_class(strategy)
    side = install_sidecar(bed, sidecar, vm_interfaces=list(cls.vm_interfaces))
    attachment = cls(cls.Options(**(options or {})), sidecar=sidecar).setup(bed, guest)
    before = MeshSnapshot.take(side) if side else None
    sample = measure_tcp_throughput(
        attachment.ends(direction),
        port=5201,
        duration_s=1,
        omit_s=0,
        streams=1,
        label=f"{bed.run_id}-{strategy}-{sidecar}-{direction}",
    )
    outcome = Outcome(Status(sample.status), sample.reason, [], bytes_moved=sample.bytes or 0)
    return sample, traversal(outcome, direction, side, before), side
