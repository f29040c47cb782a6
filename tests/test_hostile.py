"""Nothing a user points the harness at can make it damage what is not its own (issue 46): results roots inside
other software's state, output files in kernel views, a ledger that cannot prove a PID is the run's, a temporary
file a killed writer left, a private key readable by others for a moment, a tool that fails before the path is
ever tried. Each item's repro from the audit gives one `error:` line or the documented safe behaviour."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.lab.paths import STATE_DIR, results_root_problem
from tests.conftest import REPO, assert_clean

VMNETBENCH = str(Path(sys.executable).with_name("vmnetbench"))
ONE_BED = """
name: one
strategies: [direct]
repetitions: 1
design: rounds
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}
"""


def _vmnetbench(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VMNETBENCH, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


FOREIGN_ROOTS = [
    str(STATE_DIR),
    "/run/netns",
    "/var/run/netns",
    "/proc/x",
    "/sys",
    "/dev/shm/r",
    "/var/lib/docker/r",
    "/run/containerd/r",
    "/",
    "/run",
    "/etc",
]


def test_every_foreign_root_has_its_reason() -> None:
    for root in FOREIGN_ROOTS:
        assert results_root_problem(Path(root)), root


@pytest.mark.parametrize("root", [str(STATE_DIR), "/run/netns"])
def test_a_results_root_in_anyone_elses_folder_is_refused_before_anything_is_made(root: str, tmp_path: Path) -> None:
    """The audit's `--results /run/vmnetbench` (then `clean` removed the results with the run's state folder) and
    `--results /run/netns` (a folder among the namespaces broke every `ip netns` user). Every command that writes
    a run refuses them in one line, and nothing appears there."""
    (tmp_path / "one.yaml").write_text(ONE_BED)
    before = set(os.listdir(root)) if os.path.isdir(root) else None
    for args in (
        ["run", str(tmp_path / "one.yaml"), "--run-id", "fa0002"],
        ["ingest", str(tmp_path)],
        ["claims", "--strategy", "direct"],
        ["gate", "--scenario", str(tmp_path / "one.yaml")],
    ):
        done = _vmnetbench(*args, "--results", root)
        assert done.returncode == 2 and done.stderr.startswith("error: option --results: "), (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    if before is not None:  # other runs (a test running beside this one) may add their own namespaces and ledgers
        made = [
            name
            for name in set(os.listdir(root)) - before
            if (Path(root) / name / "run.json").exists() or name == "fa0002"
        ]
        assert not made, made


def test_a_folder_made_for_results_is_accepted(tmp_path: Path) -> None:
    assert results_root_problem(tmp_path / "results") is None and results_root_problem(tmp_path) is None
    assert results_root_problem(REPO / "results") is None


def test_clean_never_removes_a_folder_that_holds_results(tmp_path: Path) -> None:
    """Second lock: even a results folder that got into the state folder by other means (an older harness, a
    hand-made one) survives `clean` of its run id; the run's own scratch folder does not."""
    from harness.lab.cleanup import clean

    for run_id, holds_results in (("fa0004", True), ("fa0005", False)):
        folder = STATE_DIR / run_id
        folder.mkdir(parents=True)
        (folder / "scratch").mkdir()
        if holds_results:
            (folder / "run.json").write_text('{"status": "complete"}')
        (STATE_DIR / f"{run_id}.json").write_text(
            json.dumps({"run_id": run_id, "owner_pid": 999999999, "owner_starttime": 1, "processes": []})
        )
        try:
            report = clean(run_id)
            assert run_id in report.runs and not (STATE_DIR / f"{run_id}.json").exists()
            assert folder.exists() == holds_results
        finally:
            subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_a_ledger_entry_without_a_start_time_ends_no_process(tmp_path: Path) -> None:
    """A ledger names each process by PID and start time; an entry with start time 0 or none cannot prove the PID is
    still the run's, so `clean` leaves that process alone (here a live process of ours stands for any PID)."""
    from harness.lab.cleanup import clean

    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        for run_id, starttime in (("fa0006", 0), ("fa0007", None)):
            entry = {"pid": bystander.pid, "argv": ["sleep"], **({"starttime": starttime} if starttime == 0 else {})}
            (STATE_DIR / f"{run_id}.json").write_text(
                json.dumps({"run_id": run_id, "owner_pid": 999999999, "owner_starttime": 1, "processes": [entry]})
            )
            report = clean(run_id)
            assert bystander.pid not in report.processes and bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "tests/fixtures/run-bench", "tests/fixtures/run-bench", "--output", "/proc/x.json"],
        ["manifests", "scenarios/smoke.yaml", "--out", "/proc/x"],
        ["manifests", "scenarios/smoke.yaml", "--out", "/sys/x"],
    ],
)
def test_an_output_in_a_kernel_view_is_one_line(args: list[str]) -> None:
    done = _vmnetbench(*args)
    assert done.returncode == 2 and done.stderr.startswith("error: option --") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr + done.stdout


def test_a_killed_writers_temporary_file_goes_at_the_next_write(tmp_path: Path) -> None:
    """`report` killed mid-write left `.report.html.<random>.tmp` for good. Temporary files carry their writer's
    PID: the next write of the same file removes a dead writer's, never a live one's."""
    from harness.lab.atomic import write_text

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = tmp_path / f".report.html.{dead.pid}.abc.tmp", tmp_path / f".report.html.{os.getpid()}.def.tmp"
    stale.write_text("half")
    live.write_text("being written")
    write_text(tmp_path / "report.html", "<p>page</p>")
    assert not stale.exists() and live.exists() and (tmp_path / "report.html").read_text() == "<p>page</p>"


def test_a_mesh_key_is_never_readable_by_others(tmp_path: Path) -> None:
    """The audit saw vm-key.pem at 0644 in 0755 folders for a moment (written, then chmod). Keys are created 0600
    in a 0700 folder; a watcher polling the folder while keys are issued never sees a wider mode."""
    from harness.pod.identity import MeshCA

    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for path in (tmp_path / "ca").glob("*-key.pem"):
                with contextlib.suppress(FileNotFoundError):
                    seen.append(stat.S_IMODE(path.stat().st_mode))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ca = MeshCA(tmp_path / "ca")
        certs = [ca.issue(f"sa{i}", owner_uid=1337) for i in range(3)]
    finally:
        done.set()
        watcher.join()
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    for cert in certs:
        info = cert.key.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 1337
    assert all(mode == 0o600 for mode in seen), sorted(set(seen))


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="runs the netns runtime")
def test_a_tool_that_fails_before_the_path_is_tried_is_exit_3(tmp_path: Path) -> None:
    """The audit's iperf3 that exits 1: the server never listened, so the path was never tried. The run completes
    and says the tool failed (exit 3), instead of exit 0 with a failed row that reads like the path's verdict."""
    fake = tmp_path / "bin" / "iperf3"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'iperf3: error - this build is broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "one.yaml").write_text(ONE_BED)
    done = _vmnetbench(
        "run",
        str(tmp_path / "one.yaml"),
        "--results",
        str(tmp_path / "results"),
        "--run-id",
        "fa0008",
        env={"PATH": f"{fake.parent}:{os.environ['PATH']}"},
        timeout=300,
    )
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "not because of the network path" in done.stdout
    meta = json.loads((tmp_path / "results" / "fa0008" / "run.json").read_text())
    assert meta["status"] == "complete"
    assert_clean("fa0008")


def test_report_of_a_run_still_running_says_the_page_is_partial(tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run-small"
    shutil.copytree(REPO / "tests" / "fixtures" / "run-small", run)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "running"}))
    done = _vmnetbench("report", str(run))
    assert done.returncode == 0, done.stderr
    assert "partial: the run's status is 'running'" in " ".join(done.stdout.split())
    assert "Partial run:" in (run / "answer.md").read_text()
