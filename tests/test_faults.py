"""Fault injection: the harness is killed at random moments, interrupted, handed hanging wrapper tools, asked to
clean a live run or to reuse a live run id; afterwards nothing of any run may remain and the root namespace must
be exactly as before. Real CLI runs, real namespaces, real Envoy and QEMU.

The random moments come from a seeded generator whose seed is in every assertion message, so a failing trial
can be replayed (VMNB_FAULT_SEED)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from harness.guests.qemu.image import build_image
from harness.lab.names import new_run_id
from harness.lab.netns import list_namespaces
from harness.lab.paths import STATE_DIR
from harness.lab.procfs import is_zombie, live_pids, pids_in_netns, proc_starttime
from tests.conftest import cli, wait_for

SEED = int(os.environ.get("VMNB_FAULT_SEED", random.SystemRandom().randrange(2**31)))
pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.alone]  # reads what is left machine-wide

NETNS = """
name: faults-netns
strategies: [direct, masquerade, nat-proxy, slirp, tproxy]
repetitions: 3
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}
  - {kind: rr, duration_s: 1, directions: [ingress]}
"""
SIDECAR = """
name: faults-sidecar
strategies: [masquerade, iptables-only]
sidecars: [envoy-redirect, envoy-tproxy, linkerd-style]
repetitions: 2
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}
"""
QEMU = """
name: faults-qemu
guest: qemu
qemu: {accel: tcg, boot_timeout_s: 120}
strategies: [slirp, masquerade]
repetitions: 2
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}
"""
DOCKER = """
name: faults-docker
runtime: docker
strategies: [masquerade, nat-proxy, slirp]
sidecars: [none, envoy-redirect]
repetitions: 2
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}
"""
# (scenario, trials, latest kill in seconds after the run's ledger appears)
TRIALS = int(os.environ.get("VMNB_FAULT_TRIALS", "1"))
"""How many times the default number of kill moments each kind gets (`VMNB_FAULT_TRIALS=3` for a deeper sweep);
the moments are drawn from a fresh seed every session, so CI runs add up to the same coverage over time."""
KILL_PLAN = {
    "netns": (NETNS, 2 * TRIALS, 12.0),
    "sidecar": (SIDECAR, 2 * TRIALS, 12.0),
    "qemu": (QEMU, 1 * TRIALS, 25.0),
    "docker": (DOCKER, 1 * TRIALS, 15.0),
}


def root_snapshot() -> dict[str, str]:
    """The root namespace as another tool sees it: links, addresses, rules, routes, iptables, nft, net sysctls."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout

    sysctls = run("sysctl", "-a", "-r", r"^net\.(ipv4|ipv6|core|bridge)\.")
    volatile = ("net.ipv4.tcp_mem", "net.ipv4.udp_mem", "net.core.netdev_rss_key")
    return {
        "links": run("ip", "-o", "link", "show"),
        "addresses": run("ip", "-o", "addr", "show"),
        "rules": run("ip", "rule", "show"),
        "routes": run("ip", "route", "show", "table", "all"),
        "iptables": "\n".join(ln for ln in run("iptables-save").splitlines() if not ln.startswith("#")),
        "nft": run("nft", "list", "ruleset"),
        "sysctls": "\n".join(ln for ln in sysctls.splitlines() if not ln.startswith(volatile)),
    }


@pytest.fixture(scope="module", autouse=True)
def root_namespace_unchanged():
    before = root_snapshot()
    yield
    after = root_snapshot()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"the root namespace changed: {list(changed)}"


@dataclass
class RunTrace:
    """What a run had while it lived, read from its ledgers just before it was killed."""

    run_id: str
    processes: set[tuple[int, int]] = field(default_factory=set)
    inodes: set[int] = field(default_factory=set)

    def read(self) -> None:
        for path in STATE_DIR.glob(f"{self.run_id}*.json"):
            try:
                ledger = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            self.processes |= {(p["pid"], p["starttime"]) for p in ledger.get("processes", [])}
            self.inodes |= set(ledger.get("netns_inodes", {}).values())


def marked_processes(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains `marker`."""
    found = []
    for pid in live_pids():
        if is_zombie(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(pid)
    return found


def leftovers(trace: RunTrace, results: Path, tmp_before: set[str]) -> dict[str, list]:
    rid = trace.run_id
    run_dir = results / rid
    left = {
        "namespaces": [n for n in list_namespaces() if n.startswith(f"vmnb-{rid}-")],
        # A zombie holds nothing (memory, sockets, namespaces are released at exit); init reaps it when it will.
        "ledger_processes": [
            pid for pid, start in trace.processes if proc_starttime(pid) == start and not is_zombie(pid)
        ],
        "in_run_namespaces": pids_in_netns(trace.inodes) if trace.inodes else [],
        "named_after_run": [p for p in marked_processes(f"vmnb-{rid}") if p != os.getpid() and not is_zombie(p)],
        "ledgers": [p.name for p in STATE_DIR.glob(f"{rid}*.json")],
        "run_folder": [str(STATE_DIR / rid)] if (STATE_DIR / rid).exists() else [],
        "tmp": sorted({p.name for p in Path("/tmp").glob("vmnb-*")} - tmp_before),
        "results_tmp": [p.name for p in run_dir.glob(".*.tmp")] if run_dir.exists() else [],
        "root_links": [
            ln
            for ln in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
            if f"vmnb-{rid}" in ln
        ],
        "containers": run_containers(rid),
    }
    return {k: v for k, v in left.items() if v}


def run_containers(rid: str) -> list[str]:
    """Containers of the run on the project's Docker engine (none if no engine answers)."""
    from harness.runtime.engine import LABEL_RUN, EngineUnavailable, client

    try:
        engine = client()
    except EngineUnavailable:
        return []
    try:
        return [c.name for c in engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={rid}"})]
    finally:
        engine.close()


def start(scenario: str, tmp_path: Path, *, env: dict | None = None, run_id: str | None = None):
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario)
    rid = run_id or new_run_id()
    proc = cli("run", str(path), "--results", str(tmp_path / "results"), "--run-id", rid, env=env)
    return proc, rid


def wait_ledger(proc, rid: str, timeout: float = 120) -> None:
    def started():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it started: {proc.communicate()[0][-2000:]}")
        return (STATE_DIR / f"{rid}.json").exists()

    try:
        wait_for(started, timeout, f"run {rid}'s ledger")
    except AssertionError:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
        clean(rid)
        raise AssertionError(f"run {rid} did not start: {out[-2000:]}") from None


def clean(rid: str, *extra: str) -> tuple[int, str]:
    proc = cli("clean", rid, *extra)
    out, _ = proc.communicate(timeout=180)
    return proc.returncode, out


def trials() -> list[tuple[str, int]]:
    return [(kind, i) for kind, (_, n, _) in KILL_PLAN.items() for i in range(n)]


def run_for(scenario: str, tmp_path: Path, seconds: float) -> tuple[subprocess.Popen, RunTrace, set[str]]:
    """Start a run and let it go on for `seconds` after its ledger appears, reading its ledgers meanwhile (so the
    trace knows every process and namespace it had). Returns the live process, the trace and /tmp before."""
    tmp_before = {p.name for p in Path("/tmp").glob("vmnb-*")}
    proc, rid = start(scenario, tmp_path)
    trace = RunTrace(rid)
    wait_ledger(proc, rid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        trace.read()
        time.sleep(0.05)
    trace.read()
    return proc, trace, tmp_before


@pytest.mark.parametrize("kind,trial", trials(), ids=[f"{k}-{i}" for k, i in trials()])
def test_sigkill_at_a_random_moment_then_clean_leaves_nothing(tmp_path, kind, trial):
    scenario, _, latest = KILL_PLAN[kind]
    if kind == "qemu":
        build_image()  # cached; built before the clock starts
    delay = random.Random(f"{SEED}-{kind}-{trial}").uniform(0.0, latest)
    proc, trace, tmp_before = run_for(scenario, tmp_path, delay)
    rid = trace.run_id
    proc.kill()
    proc.communicate(timeout=30)
    code, cleaned = clean(rid)
    where = f"seed {SEED}, {kind} trial {trial}, SIGKILL {delay:.2f} s after the ledger appeared"
    assert code == 0, f"{where}: clean failed: {cleaned}"
    left = leftovers(trace, tmp_path / "results", tmp_before)
    assert not left, f"{where}: left {left}\nclean said: {cleaned}"
    meta_path = tmp_path / "results" / rid / "run.json"
    if meta_path.exists():
        status = json.loads(meta_path.read_text())["status"]
        assert status in ("killed", "complete"), f"{where}: run.json says {status}"


SIGNAL_TRIALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]


@pytest.mark.parametrize("trial", range(len(SIGNAL_TRIALS)))
def test_sigint_and_sigterm_clean_up_by_themselves(tmp_path, trial):
    sig, code = SIGNAL_TRIALS[trial]
    delay = random.Random(f"{SEED}-signal-{trial}").uniform(0.5, 8.0)
    proc, trace, tmp_before = run_for(SIDECAR, tmp_path, delay)
    if proc.poll() is not None:
        pytest.skip("the run ended before the signal")  # cannot happen with 12 cells; says so if it did
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    where = f"seed {SEED}, {signal.Signals(sig).name} after {delay:.2f} s"
    assert proc.returncode == code, f"{where}: {out[-1500:]}"
    left = leftovers(trace, tmp_path / "results", tmp_before)
    assert not left, f"{where}: left {left}"
    folder = tmp_path / "results" / trace.run_id
    if folder.exists():  # a signal before run.json was written leaves no folder (issue 27: it blocked the id)
        assert json.loads((folder / "run.json").read_text())["status"] == "interrupted", where


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_the_run_starts_leaves_no_folder_and_the_id_is_free(tmp_path, sig):
    """Issue 27: a SIGINT 1.6 s into a run used to leave an empty results folder that blocked the id's reuse. A
    signal while the run is being prepared (before run.json exists) now unwinds (SIGTERM too: the handlers are
    installed from the results folder's creation on) and removes the folder. The window is held open by a
    PATH-front `socat` whose version probe hangs (the probe gives up after 5 s)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "socat").write_text('#!/bin/sh\n[ "$1" = -V ] && exec sleep 30\nexec /usr/bin/socat "$@"\n')
    (bin_dir / "socat").chmod(0o755)
    run_id = new_run_id()
    scenario = tmp_path / "s.yaml"
    scenario.write_text(NETNS)
    results = tmp_path / "results"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = cli("run", str(scenario), "--results", str(results), "--run-id", run_id, env=env)
    wait_for(lambda: (results / run_id).exists() or proc.poll() is not None, timeout=60, what="the results folder")
    time.sleep(1.0)  # inside the version probes
    assert not (results / run_id / "run.json").exists(), "run.json was written before the signal"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), out[-1500:]
    assert "Traceback" not in out
    assert not (results / run_id).exists(), f"left {list((results / run_id).rglob('*'))}"
    assert not (STATE_DIR / run_id).exists()


def test_a_full_results_disk_is_one_error_line_and_run_json_says_failed(tmp_path):
    """Issue 27: a full disk (a tiny tmpfs as --results) ended in an OSError traceback with run.json `running`.
    Now: exit 1, one `error:` line naming the folder and the cause, nothing of the run left behind."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "vmnb-test-tiny", str(mount)], check=True)
    try:
        scenario = tmp_path / "s.yaml"
        scenario.write_text(NETNS)
        run_id = new_run_id()
        proc = cli("run", str(scenario), "--results", str(mount), "--run-id", run_id)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 1, out[-2000:]
        assert "Traceback" not in out and "error: cannot write" in out and "No space left on device" in out, out
        assert run_id not in " ".join(list_namespaces())
        assert not (STATE_DIR / run_id).exists()
        meta = json.loads((mount / run_id / "run.json").read_text())
        assert meta["status"] == "failed" and "No space left on device" in meta["error"], meta
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_the_middle_of_a_teardown_still_removes_everything(tmp_path, sig):
    """The moment a cell's bed is coming down (its ledger lists fewer namespaces than at its peak) is the one
    where an unwinding exception used to cut the LIFO undo short."""
    tmp_before = {p.name for p in Path("/tmp").glob("vmnb-*")}
    proc, rid = start(SIDECAR, tmp_path)
    trace = RunTrace(rid)
    wait_ledger(proc, rid)
    peak = 0

    def tearing_down() -> bool:
        nonlocal peak
        try:
            count = len(json.loads((STATE_DIR / f"{rid}.json").read_text())["namespaces"])
        except (OSError, ValueError, KeyError):
            return False
        trace.read()
        peak = max(peak, count)
        return 0 < count < peak

    wait_for(tearing_down, 120, "a bed's teardown")
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode in (130, 143), out[-1500:]
    left = leftovers(trace, tmp_path / "results", tmp_before)
    assert not left, f"{signal.Signals(sig).name} mid-teardown left {left}"


WRAPPER = """#!/bin/sh
# A wrapper script in front of the real {tool}: it starts a helper that lingers (as vendor shims do) and, in the
# `escape` variant, one that leaves the process group with setsid; then it runs the real tool.
# (`sleep 600; true` keeps the shell, whose command line carries the marker, alive beside its sleep.)
sh -c 'sleep 600; true' {marker}-child &
[ "$VMNB_WRAPPER_ESCAPE" = 1 ] && setsid sh -c 'sleep 600; true' {marker}-escaped &
exec {real} "$@"
"""

SHORT = """
name: faults-wrapper
strategies: [masquerade, nat-proxy]
repetitions: 1
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}
"""


def wrapper_env(tmp_path: Path, marker: str, *, escape: bool) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "iperf3"
    wrapper.write_text(WRAPPER.format(tool="iperf3", real="/usr/bin/iperf3", marker=marker))
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "VMNB_WRAPPER_ESCAPE": "1" if escape else "0"}


def test_wrapper_tool_children_end_with_the_tool(tmp_path):
    """A wrapper's lingering child is in the tool's process group and ends with it: a completed run leaves no
    process behind without any clean."""
    marker = f"vmnb-wrap-{new_run_id()}"
    proc, rid = start(SHORT, tmp_path, env=wrapper_env(tmp_path, marker, escape=False))
    seen = []
    while proc.poll() is None:
        seen = seen or marked_processes(f"{marker}-child")
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-2000:]
    assert seen, "the wrapper's child was never seen running: the test would prove nothing"
    assert not marked_processes(marker), f"wrapper children left: {marked_processes(marker)}"


def test_escaped_wrapper_child_is_found_by_its_namespace(tmp_path):
    """A child that left the process group (setsid) while the harness was SIGKILLed is still inside a namespace
    of the run: `clean` finds it by the namespace's inode and ends it."""
    marker = f"vmnb-wrap-{new_run_id()}"
    tmp_before = {p.name for p in Path("/tmp").glob("vmnb-*")}
    proc, rid = start(SHORT, tmp_path, env=wrapper_env(tmp_path, marker, escape=True))
    trace = RunTrace(rid)
    wait_ledger(proc, rid)
    wait_for(lambda: (trace.read(), marked_processes(f"{marker}-escaped"))[1], 120, "the escaped child")
    trace.read()
    proc.kill()
    proc.communicate(timeout=30)
    code, cleaned = clean(rid)
    assert code == 0, cleaned
    assert not marked_processes(marker), f"wrapper children left: {marked_processes(marker)}"
    assert not leftovers(trace, tmp_path / "results", tmp_before)


def test_clean_refuses_a_live_run_and_a_live_run_id_is_not_reused(tmp_path):
    # one round of the sidecar scenario (about 15 s) outlasts the two refusals, and the run then ends by itself
    proc, rid = start(SIDECAR.replace("repetitions: 2", "repetitions: 1"), tmp_path)
    try:
        wait_ledger(proc, rid)
        code, out = clean(rid)
        assert code == 2 and "is live" in out and "--force" in out, out
        again = cli("run", str(tmp_path / "scenario.yaml"), "--results", str(tmp_path / "other"), "--run-id", rid)
        second, _ = again.communicate(timeout=60)
        assert again.returncode == 2 and f"run id {rid} is in use" in second, second
        assert not (tmp_path / "other" / rid).exists()
        # The live run was not disturbed: it goes on to finish every cell by itself.
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-2000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=120)
    # Finished: the same id is still refused, now because its results folder exists.
    again = cli("run", str(tmp_path / "scenario.yaml"), "--results", str(tmp_path / "results"), "--run-id", rid)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 2 and "exists already" in out, out


def test_clean_force_tears_a_live_run_down(tmp_path):
    proc, rid = start(NETNS, tmp_path)
    trace = RunTrace(rid)
    try:
        wait_ledger(proc, rid)
        trace.read()
        code, out = clean(rid, "--force")
        assert code == 0, out
        assert proc.wait(timeout=60) == 143  # the harness was stopped as by SIGTERM, and unwound itself
        assert not [n for n in list_namespaces() if n.startswith(f"vmnb-{rid}-")]
    finally:
        proc.kill()
        proc.communicate(timeout=60)
        clean(rid)
    assert not leftovers(trace, tmp_path / "results", {p.name for p in Path("/tmp").glob("vmnb-*")})


def test_two_concurrent_runs_do_not_interfere(tmp_path):
    runs = []
    for i in range(2):
        folder = tmp_path / f"r{i}"
        folder.mkdir()
        runs.append((start(SHORT, folder), folder))
    for (proc, rid), folder in runs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-2000:]
        frame = pd.read_parquet(folder / "results" / rid / "samples.parquet")
        bad = frame[(frame.status != "ok")]
        assert bad.empty, bad[["strategy", "test", "direction", "reason"]].to_string()


def test_clean_of_a_dead_run_never_signals_a_namespace_inode_another_run_now_holds():
    """Issue 27, item 1: the kernel recycles a freed namespace's inode within seconds. A dead run's ledger whose
    namespace is gone but whose recorded inode now belongs to a live run's namespace (simulated: the live
    namespace's inode written into the dead ledger) must not make `clean` end the live run's process."""
    dead, live = new_run_id(), new_run_id()
    live_ns = f"vmnb-{live}-pod"
    subprocess.run(["ip", "netns", "add", live_ns], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", live_ns, "sleep", "300"], start_new_session=True)
    try:
        wait_for(lambda: pids_in_netns({Path(f"/run/netns/{live_ns}").stat().st_ino}), 10, "the live process")
        inode = Path(f"/run/netns/{live_ns}").stat().st_ino
        gone = subprocess.Popen(["true"])
        gone.wait()  # a dead owner: a PID no process holds any more
        ledger = STATE_DIR / f"{dead}.json"
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        ledger.write_text(
            json.dumps(
                {
                    "run_id": dead,
                    "owner_pid": gone.pid,
                    "owner_starttime": 1,
                    "namespaces": [f"vmnb-{dead}-pod"],
                    "netns_inodes": {f"vmnb-{dead}-pod": inode},
                    "processes": [],
                    "results_dir": None,
                }
            )
        )
        code, out = clean(dead)
        assert code == 0, out
        assert sleeper.poll() is None, "clean of a dead run ended a process of another run's namespace"
        assert not ledger.exists() and dead in out
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["ip", "netns", "del", live_ns], check=False)


def test_a_run_whose_tool_fails_exits_3_not_0(tmp_path):
    """Issue 27: a run whose rows all failed because the tool misbehaved (here a PATH-front iperf3 client that
    prints no JSON) is not a verdict on the path: exit 3, and the rows say which tool."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = subprocess.run(["sh", "-c", "command -v iperf3"], capture_output=True, text=True).stdout.strip()
    (bin_dir / "iperf3").write_text(
        f'#!/bin/sh\ncase " $* " in *" -s "*) exec {real} "$@";; esac\necho "segfault in the client"; exit 139\n'
    )
    (bin_dir / "iperf3").chmod(0o755)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: tool\nstrategies: [direct]\nrepetitions: 1\n"
        "tests:\n  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}\n"
    )
    run_id = new_run_id()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = cli("run", str(scenario), "--results", str(tmp_path / "results"), "--run-id", run_id, env=env)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out[-2000:]
    rows = pd.read_parquet(tmp_path / "results" / run_id / "samples.parquet")
    failed = rows[(rows.metric == "throughput")]
    assert (failed.status == "failed").all() and failed.reason.str.startswith("iperf3 printed no JSON").all()


DOCKER_PHASES = [(signal.SIGTERM, d) for d in (0.0, 0.4, 1.0, 2.0, 3.5)] + [(signal.SIGINT, d) for d in (0.4, 2.0)]


@pytest.mark.docker
@pytest.mark.parametrize(("sig", "delay"), DOCKER_PHASES, ids=[f"{s.name}-{d}" for s, d in DOCKER_PHASES])
def test_a_signal_in_every_phase_of_a_docker_run_unwinds(tmp_path, sig, delay):
    """Issue 27: SIGTERM while the docker runtime was being prepared killed the harness outright (exit -15): the
    handlers came after the runtime. Now a signal at any moment from the ledger's creation on (the lease, the
    runtime image, the engine's first answer, the first pod) unwinds: exit 130/143, nothing of the run left,
    no container of it in the engine."""
    proc, trace, tmp_before = run_for(DOCKER, tmp_path, delay)
    if proc.poll() is not None:
        pytest.skip("the run ended before the signal")
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=180)
    where = f"{signal.Signals(sig).name} {delay:.1f} s after the ledger"
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), f"{where}: {out[-1500:]}"
    assert "Traceback" not in out, f"{where}: {out[-2000:]}"
    left = leftovers(trace, tmp_path / "results", tmp_before)
    assert not left, f"{where}: left {left}"
