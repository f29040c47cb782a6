"""Bad input that must be refused with one sentence, never a traceback: folders, damaged result files, runs with
nothing in common, tools printing JSON of the wrong shape or failing their --version."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from harness.analysis.provenance import tool_version
from harness.analysis.results import COLUMNS
from harness.kinds.endpoints import parse_tool_json
from harness.kinds.latency import CrrReport
from harness.kinds.throughput import parse_client_json
from harness.lab.procfs import is_zombie, live_pids
from tests.conftest import cli

SCENARIO = "name: t\nstrategies: [direct]\ntests:\n  - {kind: tcp_throughput, duration_s: 1}\n"


def run_cli(*args: str) -> tuple[int, str]:
    proc = cli(*args)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def one_line_error(code: int, out: str, *needles: str) -> None:
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out


def test_results_option_must_be_a_writable_folder(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    one_line_error(*run_cli("run", str(scenario), "--results", str(a_file)), "option --results", "not a folder")
    one_line_error(*run_cli("run", str(scenario), "--results", "/proc/vmnb"), "option --results")


def samples_frame(strategy: str, test: str = "tcp_throughput") -> pd.DataFrame:
    rows = [
        {c: None for c in COLUMNS}
        | {
            "strategy": strategy,
            "sidecar": "none",
            "test": test,
            "direction": "ingress",
            "metric": "throughput",
            "value": 1.0 + r / 10,
            "status": "ok",
            "repetition": r,
        }
        for r in range(3)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_report_and_compare_of_damaged_or_unrelated_runs_say_one_sentence(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "samples.parquet").write_bytes(b"PAR1 this is not parquet")
    one_line_error(*run_cli("report", str(damaged)), "cannot be read", "damaged")
    good_a, good_b = tmp_path / "a", tmp_path / "b"
    for folder, strategy in ((good_a, "direct"), (good_b, "slirp")):
        folder.mkdir()
        samples_frame(strategy).to_parquet(folder / "samples.parquet")
        (folder / "run.json").write_text(json.dumps({"run_id": folder.name, "status": "complete"}))
    one_line_error(*run_cli("compare", str(damaged), str(good_a)), "cannot be read")
    one_line_error(*run_cli("compare", str(good_a), str(good_b)), "share no measured cell")
    one_line_error(*run_cli("compare", str(tmp_path / "nope"), str(good_a)), "not a run folder")


def test_tool_json_of_the_wrong_shape_becomes_a_failed_row_reason():
    assert parse_client_json("[1, 2]").reason == "iperf3 printed unexpected JSON: a list, not an object"
    text = json.dumps({"end": {"sum_received": {"bits_per_second": "fast", "bytes": 10}}})
    reason = parse_client_json(text).reason
    assert reason.startswith("iperf3 printed unexpected JSON: end.sum_received.bits_per_second"), reason
    _, _, garbage = parse_tool_json("vmnb-crr", "", CrrReport, stderr="}}}{{{")
    assert garbage == "vmnb-crr printed no JSON; it said: '}}}{{{'", garbage  # says what failed, not just the bytes
    _, _, silent = parse_tool_json("vmnb-crr", "", CrrReport)
    assert silent == "vmnb-crr printed no JSON and nothing else", silent
    stderr = "iperf3: error - unable to connect: Connection refused"
    _, _, refused = parse_tool_json("iperf3", "", CrrReport, stderr=stderr)
    assert refused == "connection refused", refused
    _, _, crr = parse_tool_json("vmnb-crr", json.dumps({"latency_us": "many", "seconds": 1}), CrrReport)
    assert crr.startswith("vmnb-crr printed unexpected JSON: latency_us"), crr
    assert parse_client_json(json.dumps({"error": "unable to connect to server: Connection refused"})).reason == (
        "connection refused"
    )


def test_a_failing_or_hanging_version_probe_is_not_a_version_and_leaves_nothing(tmp_path):
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'tool 9.9: cannot open config'\nexit 3\n")
    hanging = tmp_path / "hanging"
    marker = f"vmnb-probe-{os.getpid()}"
    hanging.write_text(f"#!/bin/sh\nsetsid sh -c 'sleep 600; true' {marker} &\necho 'version 1.0'\nsleep 600\n")
    for tool in (failing, hanging):
        tool.chmod(0o755)
    assert tool_version([str(failing), "--version"]) is None
    assert tool_version([str(hanging), "--version"], timeout=1.0) is None
    left = []
    for pid in live_pids():
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and not is_zombie(pid):
                left.append(pid)
        except OSError:
            continue
    assert not left, f"the version probe left {left}"


def test_scenario_paths_that_are_not_regular_files_are_refused_without_reading(tmp_path):
    """/dev/zero never ends and a FIFO waits for a writer: both are refused from their file type, before a byte is
    read; so is a folder."""
    fifo = tmp_path / "scenario.fifo"
    os.mkfifo(fifo)
    one_line_error(*run_cli("run", "/dev/zero"), "/dev/zero", "is a device")
    one_line_error(*run_cli("run", str(fifo)), "is a FIFO")
    one_line_error(*run_cli("run", str(tmp_path)), "is a folder")


def test_scenario_values_that_contradict_each_other_are_refused(tmp_path):
    scenario = tmp_path / "rr.yaml"
    scenario.write_text("name: t\nstrategies: [direct]\ntests:\n  - {kind: rr, mode: closed, rate_per_s: 1000}\n")
    one_line_error(*run_cli("run", str(scenario)), "rate_per_s", "only for mode open")


def test_cli_misuse_is_one_sentence(tmp_path):
    """Every misuse the hostile tester found (issue 27, item 6) ends in one line and exit 2, never a traceback."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    runs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        samples_frame("direct").to_parquet(folder / "samples.parquet", index=False)
        (folder / "run.json").write_text(json.dumps({"run_id": name}))
        runs.append(str(folder))
    binary = tmp_path / "gates.bin"
    binary.write_bytes(bytes(range(256)))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (["compare", *runs, "--gates", str(tmp_path / "missing.yaml")], "option --gates"),
        (["compare", *runs, "--gates", str(binary)], "option --gates"),
        (["compare", *runs, "--gates", str(a_file)], "option --gates"),
        (["compare", *runs, "--output", "/proc/vmnb/x.json"], "option --output"),
        (["compare", *runs, "--markdown", str(tmp_path)], "option --markdown"),
        (["describe", "masquerade", "--option", "vm_cidr=[a"], "option --option"),
        (["describe", "masquerade", "--option", "novalue"], "option --option"),
        (["describe", "passt-vhost-user"], "needs a VM"),
        (["claims", "--results", str(a_file)], "option --results"),
        (["run", str(scenario), "--run-id", "abcdef\n"], "run id"),
        (["run", str(scenario), "--bogus"], "No such option"),
        (["run", str(scenario), "--repetitions", "many"], "--repetitions"),
        (["compare"], "Missing argument"),
        (["no-such-command"], "No such command"),
    ]
    for argv, needle in cases:
        one_line_error(*run_cli(*argv), needle)
    assert not (tmp_path / "results").exists() and not list(Path("results").glob("abcdef*"))


def test_a_binding_that_needs_a_vm_is_left_out_on_the_netns_guest_or_refused_alone(tmp_path):
    """passt-vhost-user has nothing to attach on the netns guest: like `claims`, a run leaves it out and says so
    (its rows would read as the binding failing); a scenario with nothing else to measure is refused."""
    from harness.run.scenario import load_scenario

    alone = tmp_path / "alone.yaml"
    alone.write_text("name: t\nstrategies: [direct, passt-vhost-user]\ntests:\n  - {kind: tcp_throughput}\n")
    one_line_error(*run_cli("run", str(alone)), "passt-vhost-user needs a VM", "--guest qemu")
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("name: t\nstrategies: [direct, passt-vhost-user, slirp]\ntests:\n  - {kind: tcp_throughput}\n")
    scenario, _ = load_scenario(mixed)
    kept, left_out = scenario.for_guest()
    assert kept.strategies == ["direct", "slirp"] and left_out == ["passt-vhost-user"]
    on_qemu = scenario.model_copy(update={"guest": "qemu"})
    assert on_qemu.for_guest() == (on_qemu, [])
