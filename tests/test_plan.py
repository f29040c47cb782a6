"""The resolved plan and its block schedule: every binding once per block with direct right before and after it,
each pairing read back from real rows; a precision run that stops by Stein's rule or says why it did not."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.analysis.blocks import block_log_ratios
from harness.guests.spec import GuestSpec
from harness.run.plan import resolve
from harness.run.scenario import Scenario
from tests.conftest import REPO, assert_clean


def scenario(**extra) -> Scenario:
    data = {
        "name": "plan",
        "strategies": ["direct", "masquerade", "nat-proxy", "bridge"],
        "sidecars": ["none", "envoy-redirect"],
        "tests": [{"kind": "tcp_throughput"}],
        **extra,
    }
    return Scenario.model_validate(data)


def test_every_binding_is_flanked_by_direct_in_every_block():
    plan = resolve(scenario(), GuestSpec())
    rng = random.Random(1)
    orders = []
    for index in (1, 2, 3):
        block = plan.block(index, rng)
        assert [s.slot for s in block] == list(range(1, len(block) + 1))
        assert len(block) == plan.beds_per_block() == 2 * (2 * 3 + 1)  # per sidecar: D X D Y D Z D
        for i, s in enumerate(block):
            if not s.cell.is_reference:
                before, after = block[i - 1].cell, block[i + 1].cell
                assert before.is_reference and after.is_reference
                assert before.group == after.group == s.cell.group
        others = [(s.cell.label) for s in block if not s.cell.is_reference]
        assert sorted(others) == sorted(c.label for c in plan.cells if not c.is_reference)
        orders.append(others)
    assert len({tuple(o) for o in orders}) > 1  # shuffled per block


def test_without_direct_or_with_rounds_every_cell_runs_once_per_block():
    for plan in (
        resolve(scenario(strategies=["masquerade", "bridge"]), GuestSpec()),
        resolve(scenario(design="rounds"), GuestSpec()),
    ):
        assert not plan.paired
        block = plan.block(1, random.Random(0))
        assert sorted(s.cell.label for s in block) == sorted(c.label for c in plan.cells)


def test_the_plan_resolves_options_once_and_the_estimate_counts_the_directs():
    s = scenario(strategy_options={"nat-proxy": {"relay": "python"}}, repetitions=2)
    plan = resolve(s, GuestSpec())
    proxy = next(c for c in plan.cells if c.spec.strategy == "nat-proxy")
    assert proxy.options.relay == "python"
    assert plan.estimated_seconds() == pytest.approx(2 * plan.block_seconds())
    assert not hasattr(s, "estimated_seconds")  # one estimate: the plan's (issue 42)


def test_block_log_ratios_pair_each_sample_with_the_directs_beside_it():
    rows = []
    for block, values in ((1, [10, 5, 12, 6, 14]), (2, [8, 4, 8, 2, 8])):
        for slot, value in enumerate(values, 1):
            rows.append(
                {
                    "strategy": "direct" if slot % 2 else ("masquerade" if slot == 2 else "bridge"),
                    "sidecar": "none",
                    "pod_mtu": 1500,
                    "guest_mtu": None,
                    "test": "tcp_throughput",
                    "direction": "ingress",
                    "metric": "throughput",
                    "value": float(value),
                    "status": "ok",
                    "block": block,
                    "slot": slot,
                }
            )
    ratios = block_log_ratios(pd.DataFrame(rows)).set_index(["strategy", "block"])["log_ratio"]
    assert ratios[("masquerade", 1)] == pytest.approx(np.log(5) - (np.log(10) + np.log(12)) / 2)
    assert ratios[("bridge", 1)] == pytest.approx(np.log(6) - (np.log(12) + np.log(14)) / 2)
    assert ratios[("bridge", 2)] == pytest.approx(np.log(2 / 8))


@pytest.mark.slow
def without_no_report() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "VMNB_NO_REPORT"}


def test_a_precision_run_stops_by_steins_rule_or_says_why(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "name: precision\nstrategies: [direct, masquerade]\nrepetitions: 3\npilot_blocks: 3\n"
        "tests:\n  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            str(tmp_path / "p.yaml"),
            "--results",
            str(tmp_path / "results"),
            "--precision",
            "15%",
            "--time-budget",
            "30s",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**without_no_report(), "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    run_dir = next((tmp_path / "results").iterdir())
    # the run ends as its page begins: the answer per layout, then where the page is (written by the run)
    tail = done.stdout[done.stdout.index("The answer") :]
    assert "No mesh: " in tail and f"page: {run_dir / 'report.html'}" in tail.replace("\n", "")
    assert (run_dir / "report.html").is_file() and (run_dir / "answer.md").is_file()
    assert_clean(run_dir.name)
    record = json.loads((run_dir / "run.json").read_text())["precision"]
    assert record["target"] == 0.15 and record["pilot_blocks"] == 3 and record["blocks_run"] >= 3
    (ratio,) = record["ratios"]
    assert ratio["ratio"].startswith("masquerade/none") and ratio["blocks"] == record["blocks_run"]
    if ratio["reached"]:
        assert ratio["half_width"] <= 0.15 and ratio["blocks"] >= ratio["blocks_needed"]
    else:  # the budget ended it: the summary names the ratio and why
        assert record["stopped_by"] == "budget" and "budget" in ratio["why"]
        assert "not reached" in done.stdout and "masquerade/none" in done.stdout
    assert "ratios reached it" in done.stdout
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert samples.block.max() == record["blocks_run"]
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(run_dir)], check=True, cwd=REPO, capture_output=True
    )
    answer = (run_dir / "answer.md").read_text()
    assert "stein 95% n=" in answer and "stopped on precision +-15%" in answer
    lines = answer.splitlines()
    row = next(line for line in lines if line.startswith("| masquerade |"))
    header = next(line for line in reversed(lines[: lines.index(row)]) if line.startswith("| binding |"))
    cells = dict(
        zip(
            [c.strip() for c in header.strip("|").split("|")],
            [c.strip() for c in row.strip("|").split("|")],
            strict=True,
        )
    )  # the table shows only the cost columns the run measured
    assert "(stein 95% n=" in cells["TCP in"]  # the judged metric
    assert "(t 95% n=" in cells["CPU/GB in"] or "no interval" in cells["CPU/GB in"]  # not judged: its blocks were not
    # chosen for it


@pytest.mark.parametrize(
    ("scenario_text", "option", "expected"),
    [
        ("strategies: [direct, masquerade]", "150%", "option --precision: '150%' is not a precision"),
        ("strategies: [direct, masquerade]", "abc", "option --precision: 'abc' is not a precision"),
        ("strategies: [masquerade]", "10%", "needs direct in its strategies and design: blocks"),
        (
            "strategies: [direct, masquerade]\ndesign: rounds",
            "10%",
            "needs direct in its strategies and design: blocks",
        ),
    ],
)
def test_a_bad_precision_is_one_sentence_and_creates_nothing(tmp_path, scenario_text, option, expected):
    (tmp_path / "s.yaml").write_text(f"name: p\n{scenario_text}\ntests:\n  - {{kind: tcp_throughput}}\n")
    argv = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(tmp_path / "s.yaml"),
        "--precision",
        option,
        "--results",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_precision_in_a_scenario_without_direct_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="field 'precision'"):
        scenario(strategies=["masquerade"], precision=0.1)


def test_a_new_runtime_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    """A runtime the harness did not know: a PodRuntime subclass registered in harness/runtime/registry.py. The
    scenario names it, the runner uses it for every bed, rows are labelled by it, and nothing else changes."""
    from harness.lab.runtime import NetnsRuntime
    from harness.runtime import registry
    from tests.conftest import run_scenario_text

    made = []

    class CountingRuntime(NetnsRuntime):
        name = "counting"

        def make_pod(self, bed):
            made.append(bed)
            return super().make_pod(bed)

        def row_label(self) -> str:
            return "counted"

    entry = registry.RuntimeEntry(
        "counting",
        lambda scenario, with_qemu: CountingRuntime(),
        lambda with_qemu: CountingRuntime(),
        "Runtime: counting.",
    )
    monkeypatch.setitem(registry.RUNTIMES, "counting", entry)
    samples, run_dir = run_scenario_text(
        tmp_path,
        "name: counting\nruntime: counting\nstrategies: [direct, masquerade]\n"
        "repetitions: 1\ntests:\n  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, "
        "directions: [ingress]}\n",
    )
    assert len(made) == 3  # direct, masquerade, direct: one block
    tput = samples[samples.metric == "throughput"]
    assert (tput.status == "ok").all() and set(tput.compute_caps) == {"counted"}
    assert set(samples.runtime) == {"counting"}
    # the page names it; the claims take their pods from its entry and read its rows like any run's
    from harness.analysis.report import write_report
    from harness.claims.verdicts import facts_from_rows

    write_report(run_dir)
    assert "Runtime: counting" in (run_dir / "answer.md").read_text()
    assert isinstance(registry.RUNTIMES["counting"].for_claims(False), CountingRuntime)
    conn, perf = facts_from_rows(samples, "masquerade")
    assert conn["tcp_ingress_none"] == "works" and perf is not None


def test_the_time_left_goes_to_the_ratios_closest_to_their_n():
    """Issue 41: with the budget for only one of two ratios that would each fit alone, the one needing fewer blocks
    keeps its blocks and the other stops at once with the reason, instead of both running until neither can
    finish. The choice reads the pilot's N only (no observed value)."""
    from harness.analysis.stats import SteinPlan
    from harness.run.precision import PrecisionState, RatioState

    state = PrecisionState(0.10, 3, 600.0, {}, bed_s=10.0)
    near = RatioState(("bridge", "none", 1500, None, "tcp_throughput", "egress", "throughput"), SteinPlan(3, 0.06, 0.1))
    far = RatioState(
        ("masquerade", "none", 1500, None, "tcp_throughput", "egress", "throughput"), SteinPlan(3, 0.09, 0.1)
    )
    near.blocks = far.blocks = 3
    state.ratios = {near.key: near, far.key: far}
    more_near, more_far = near.need - 3, far.need - 3
    left = 600.0 - 250.0
    assert 0 < more_near < more_far and more_far * 2 * 10.0 <= left < (more_near + more_far) * 2 * 10.0
    assert state.open_ratios(250.0) == [near]
    assert far.stopped.startswith("budget:") and "beside the ratios closer to their N" in far.stopped


def test_a_ratio_no_number_of_blocks_can_decide_does_not_keep_the_run_going():
    from harness.analysis.stats import SteinPlan
    from harness.run.precision import MAX_BLOCKS, PrecisionState, RatioState

    state = PrecisionState(0.10, 5, None, {})
    hopeless = RatioState(
        ("passt", "none", 1500, None, "tcp_throughput", "egress", "throughput"), SteinPlan(5, 1.5, 0.1)
    )
    decidable = RatioState(
        ("bridge", "none", 1500, None, "tcp_throughput", "egress", "throughput"), SteinPlan(5, 0.1, 0.1)
    )
    state.ratios = {hopeless.key: hopeless, decidable.key: decidable}
    assert hopeless.plan.blocks_needed() > MAX_BLOCKS
    assert state.needed() == decidable.plan.blocks_needed()
    reached, why = state.outcome(hopeless)
    assert not reached and why.startswith("spread:")


def test_after_the_pilot_a_block_holds_only_the_cells_that_still_decide_something():
    """Adaptive allocation (issue 41): from stored pilot rows, a quiet ratio is done at the pilot, a noisy one gets
    more blocks, a cell that bypassed the mesh in every pilot bed and a research design under a mesh stop with
    their reasons, and the next block holds only the open cell with a direct before and after it. Each ratio's
    interval is judged on its own first N blocks."""
    from harness.run.precision import PrecisionState
    from tests.test_recommend import rows_for

    frame = pd.concat(
        [
            rows_for({("masquerade", "none"): {"ratio": 0.9}}, blocks=3, sd=0.01, seed=1),
            rows_for({("bridge", "none"): {"ratio": 0.9}}, blocks=3, sd=0.05, seed=2).assign(
                slot=lambda f: f.slot + 10
            ),
            rows_for(
                {
                    ("masquerade", "envoy-redirect"): {"path": {"ingress": "bypassed", "egress": "bypassed"}},
                    ("nat-proxy", "envoy-redirect"): {"ratio": 0.7},
                },
                blocks=3,
                sd=0.2,
                seed=3,
            ),
        ],
        ignore_index=True,
    )
    plan = resolve(scenario(), GuestSpec())
    shipped = {"direct": True, "masquerade": True, "bridge": True, "nat-proxy": False}
    # the shared pilot as every ratio's Stein pilot (pooled_pilot=False): the quiet ratio is decided at it
    state = PrecisionState(0.10, 3, 600.0, {"tcp_throughput": "throughput"}, shipped=shipped, pooled_pilot=False)
    state.update(frame, 3, 90.0, 42)
    only = state.open_cells(90.0, plan.cells)
    assert only == {"bridge-none"}, only
    stopped = {r.key[:2]: r.stopped for r in state.ratios.values() if r.stopped}
    assert stopped[("masquerade", "envoy-redirect")].startswith("bypasses the mesh")
    assert stopped[("nat-proxy", "envoy-redirect")].startswith("decides nothing")
    quiet = next(r for r in state.ratios.values() if r.key[:2] == ("masquerade", "none"))
    assert quiet.need == 3 and not quiet.stopped and quiet.half_width <= 0.10
    block = plan.block(4, random.Random(0), only)
    assert [s.cell.label for s in block] == ["direct-none", "bridge-none", "direct-none"]
    assert state.wants_more(90.0, plan)
    assert not state.wants_more(599.0, plan)  # the next block does not fit in what is left
    # the time left closed the last open ratio: the run says the budget stopped it, as the ratio's reason does
    record = state.record()
    bridge = next(r for r in record["ratios"] if r["ratio"].startswith("bridge/none"))
    assert record["stopped_by"] == "budget" and bridge["why"].startswith("budget") and not bridge["reached"]


def test_the_stein_pilot_is_no_longer_than_the_time_left_gives_every_open_cell():
    """Issue 41: a Stein pilot the budget cannot give every open cell leaves the cells scheduled last without a plan
    (a 10-minute run chose m = 12 and decided 7 of 28 ratios). With the time for one more block of the open cells
    after a 3-block pilot, m is 4 where without a budget it is the longer fewest-blocks length; run.json says
    which bound applied."""
    from harness.run.precision import MAX_BLOCKS, PrecisionState
    from tests.test_recommend import rows_for

    frame = rows_for({("masquerade", "none"): {"ratio": 0.9}, ("bridge", "none"): {"ratio": 0.95}}, blocks=3, sd=0.12)
    free = PrecisionState(0.10, 3, None, {"tcp_throughput": "throughput"})
    free.update(frame, 3, 90.0, 15)
    # 15 beds in 90 s: 6 s a bed; a block of the 2 open cells is direct, X1, direct, X2, direct = 30 s
    tight = PrecisionState(0.10, 3, 90.0 + 30.0 + 10.0, {"tcp_throughput": "throughput"})
    tight.update(frame, 3, 90.0, 15)
    assert free.stein_pilot > 4 and free.affordable_pilot == MAX_BLOCKS
    assert tight.affordable_pilot == 4 and tight.stein_pilot == 4
    assert all(r.need == 4 for r in tight.ratios.values())
    record = tight.record()
    assert record["affordable_blocks"] == 4 and "at most the 4 blocks every open cell" in record["method"]


def test_every_ratios_stein_pilot_is_the_length_the_runs_pooled_spread_asks_for():
    """Issue 41 item 2: after the shared 3-block pilot every ratio's Stein pilot is m blocks, m chosen from the
    median spread of the run's ratios; a ratio has no plan (and no interval) until its m blocks are in, and its
    need until then is m; run.json and the page's method line say m and the spread it came from."""
    from harness.run.precision import PrecisionState
    from tests.test_recommend import rows_for

    cells = {("masquerade", "none"): {"ratio": 0.9}, ("bridge", "none"): {"ratio": 0.95}}
    frame = rows_for(cells, blocks=3, sd=0.12)
    state = PrecisionState(0.10, 3, None, {"tcp_throughput": "throughput"})
    state.update(frame, 3, 90.0, 15)
    assert state.pooled_sd is not None and state.stein_pilot > 3
    for ratio in state.ratios.values():
        assert ratio.plan is None and ratio.need == state.stein_pilot
        # what the page would read if the budget ended here: its 3 blocks as a Stein pilot of 3, not within 10%
        assert ratio.half_width is not None and not state.outcome(ratio)[0]
    record = state.record()
    assert record["stein_pilot_blocks"] == state.stein_pilot and record["pilot_blocks"] == 3
    assert f"first {state.stein_pilot} blocks" in record["method"]
    # more blocks of the same spread: at m blocks each ratio's plan is read from its own first m
    more = rows_for(cells, blocks=state.stein_pilot, sd=0.12)
    state.update(more, state.stein_pilot, 300.0, 5 * state.stein_pilot)
    for ratio in state.ratios.values():
        assert ratio.plan is not None and ratio.plan.pilot_n == state.stein_pilot
        assert ratio.need >= state.stein_pilot and ratio.half_width is not None
