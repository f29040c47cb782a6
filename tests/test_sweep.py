"""Sweeps and RR under load (issue 18): a sweep expands into cells and tests whose values are columns in every
row, the MTUs in the rows are the ones read back from the links, an RR under load has the bulk stream's rows
beside its own, and a run that would exceed its time budget is refused before it starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.analysis.report import write_report
from harness.guests.facts import nic_mtu
from harness.guests.netns import NetnsGuest
from harness.lab.netns import veth
from harness.run.plan import cell_specs, expanded_tests
from harness.run.scenario import load_scenario
from tests.conftest import REPO, run_scenario_text

SWEEP = """
name: sweep-test
strategies: [direct, masquerade, slirp]
repetitions: 1
seed: 7
sweep:
  pod_mtu: [1400, 9000]
  guest_mtu: [pod, 65520]
  guest_mtu_strategies: [slirp]
  streams: [1, 2]
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}
"""

LOAD = """
name: load-test
strategies: [masquerade]
repetitions: 1
tests:
  - {kind: rr, load: idle, duration_s: 1, directions: [ingress]}
  - {kind: rr, load: reverse, duration_s: 1, directions: [ingress]}
"""


def test_a_sweep_expands_into_cells_and_tests_with_its_values_in_columns():
    scenario, _ = load_scenario_text(SWEEP)
    cells = cell_specs(scenario)
    # direct: no VM, so no guest MTU; masquerade: not in guest_mtu_strategies; slirp: both guest MTUs.
    assert len(cells) == 2 + 2 + 4
    assert {c.guest_mtu for c in cells if c.strategy == "slirp"} == {"pod", 65520}
    assert {c.guest_mtu for c in cells if c.strategy != "slirp"} == {None}
    assert [t.label for t in expanded_tests(scenario)] == ["tcp_throughput/P1", "tcp_throughput/P2"]


def load_scenario_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yaml"
        path.write_text(text)
        return load_scenario(path)


@pytest.mark.slow
def test_sweep_rows_carry_each_value_and_the_mtus_read_back_from_the_links(tmp_path):
    df, run_dir = run_scenario_text(tmp_path, SWEEP)
    tput = df[df.metric == "throughput"]
    assert (tput.status == "ok").all(), tput[["strategy", "reason"]]
    # Both values of every swept parameter, each in its column, for every binding.
    for strategy in ("direct", "masquerade", "slirp"):
        mine = tput[tput.strategy == strategy]
        assert set(mine.pod_mtu) == {1400, 9000}
        assert set(mine.streams) == {1, 2}
        assert {t: set(g.streams) for t, g in mine.groupby("test")} == {
            "tcp_throughput/P1": {1},
            "tcp_throughput/P2": {2},
        }
    # The guest MTU read back in the guest: a tap follows the pod's; slirp at `pod` and at 65520.
    masq = tput[tput.strategy == "masquerade"]
    assert (masq.guest_mtu == masq.pod_mtu).all()
    slirp = tput[tput.strategy == "slirp"]
    assert set(zip(slirp.pod_mtu, slirp.guest_mtu, strict=True)) == {
        (1400, 1400),
        (1400, 65520),
        (9000, 9000),
        (9000, 65520),
    }
    assert tput[tput.strategy == "direct"].guest_mtu.isna().all()
    # iperf3 ran with as many streams as the row says (its own JSON counts them).
    for streams in (1, 2):
        raws = list((run_dir / "raw").glob(f"iperf3-*-tcp_throughput-P{streams}-ingress-r1s*.json"))
        # One block: per pod MTU, direct before, between and after masquerade and slirp at two guest MTUs.
        assert len(raws) == 2 * (2 * 3 + 1)
        assert {json.loads(p.read_text())["start"]["test_start"]["num_streams"] for p in raws} == {streams}
    md, _ = write_report(run_dir)
    assert "What changes with the pod MTU" in (run_dir / "answer.md").read_text()
    figures = {p.name for p in (run_dir / "figures").glob("sweep-*.png")}
    assert any(n.startswith("sweep-pod_mtu-tcp_throughput-throughput") for n in figures), figures
    assert any(n.startswith("sweep-streams-tcp_throughput-throughput") for n in figures), figures
    assert "Against the pod MTU" in md.read_text()


def test_the_mtu_is_read_from_the_link(bed):
    """nic_mtu reads the interface in the guest itself, not what was asked for."""
    guest_ns = bed.add_namespace("vm")
    veth(bed.pod, "tap0", guest_ns, "eth0", mtu=4321)
    assert nic_mtu(NetnsGuest.of(bed, guest_ns)) == 4321
    assert bed.pod.mtu("eth0") == 1500


@pytest.mark.slow
def test_rr_under_load_has_the_bulk_streams_rows_beside_the_round_trips(tmp_path):
    df, _ = run_scenario_text(tmp_path, LOAD)
    loaded = df[df.test == "rr_tcp_closed+load_reverse"]
    idle = df[df.test == "rr_tcp_closed"]
    assert set(loaded.load) == {"reverse"} and set(idle.load) == {"idle"}
    by_metric = {m: g for m, g in loaded.groupby("metric")}
    assert {"rtt_p50", "rtt_p99", "rr_rate", "load_throughput", "cpu_kernel"} <= set(by_metric)
    stream = by_metric["load_throughput"].iloc[0]
    assert stream.status == "ok" and stream.value > 0.1 and stream.unit == "Gbit/s"
    assert by_metric["rtt_p50"].iloc[0].status == "ok"
    # The same cell and repetition: the stream's row and the round trips' rows share every cell column.
    cell = ["strategy", "sidecar", "repetition", "pod_mtu", "guest_mtu"]
    assert by_metric["load_throughput"][cell].to_dict("records") == by_metric["rtt_p50"][cell].to_dict("records")
    assert "load_throughput" not in set(idle.metric)


def test_a_run_over_its_time_budget_is_refused_before_it_starts(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(SWEEP.replace("repetitions: 1", "repetitions: 50"))
    argv = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(path),
        "--time-budget",
        "2m",
        "--results",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    message = done.stderr.strip()
    assert "\n" not in message and "--time-budget" in message and "would take about" in message
    assert "8 cells x 2 tests x 50 blocks" in message
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.parametrize(
    ("sweep", "says"),
    [
        ("  pod_mtu: [1500, 1500]\n", "field 'sweep.pod_mtu': lists a value twice"),
        ("  pod_mtu: [100]\n", "sweep.pod_mtu[0]"),
        ("  guest_mtu: [auto]\n", "sweep.guest_mtu[0]"),
        ("  guest_mtu_strategies: [passt]\n", "'passt' is not in 'strategies'"),
        ("  mtu: [1500]\n", "allowed fields: pod_mtu, guest_mtu"),
    ],
)
def test_bad_sweeps_are_refused_in_one_sentence(tmp_path, sweep, says):
    from harness.run.scenario import ScenarioError

    path = tmp_path / "scenario.yaml"
    path.write_text("name: t\nstrategies: [direct, masquerade]\ntests:\n  - {kind: tcp_throughput}\nsweep:\n" + sweep)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert says in str(info.value) and "\n" not in str(info.value)
