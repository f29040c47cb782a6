"""Issue 43: live migration of the QEMU guest between two launcher pods under established flows
(harness/kinds/migration.py), on the real pieces: QEMU 10 migrating a TCG guest, the binding set up twice by its
own code, the node's switch-over, vmnb-probe and iperf3 through the binding."""

from __future__ import annotations

import random

import pytest

from tests.conftest import run_scenario_text

SCENARIO = """
name: migration-test
runtime: netns
guest: qemu
kubevirt: "1.9"
qemu: {{accel: tcg, vcpus: 1, memory_mb: 256}}
strategies: [{strategies}]
sidecars: [{sidecars}]
repetitions: 1
tests:
{tests}
"""


def _test(address: str) -> str:
    return f"  - {{kind: migration, pod_address: {address}, migrate_after_s: 2, after_s: 6, stall_s: 4}}"


def _cell(samples, strategy: str, address: str, direction: str):
    rows = samples[
        (samples.strategy == strategy)
        & (samples.pod_address == address)
        & (samples.direction == direction)
        & samples.test.str.startswith("migration/")
    ]
    return {r.metric: r for r in rows.itertuples()}


@pytest.mark.vm
@pytest.mark.slow
def test_a_masquerade_vm_keeps_its_connections_when_the_address_is_kept_and_loses_them_when_it_changes(tmp_path):
    text = SCENARIO.format(strategies="masquerade", sidecars="none", tests=_test("kept") + "\n" + _test("changed"))
    samples, run_dir = run_scenario_text(tmp_path, text)
    for direction in ("ingress", "egress"):
        kept = _cell(samples, "masquerade", "kept", direction)
        assert kept["migration_connections_kept"].value == 1.0, kept["migration_connections_kept"].migration_fate
        assert kept["migration_gap_tcp"].value is not None and kept["migration_gap_tcp"].value > 0
        assert kept["migration_time"].value > 0 and kept["migration_downtime"].value > 0
        assert kept["migration_gap_tcp"].migration_allowed == "allowed"
        assert "tcp probe survived" in kept["migration_gap_tcp"].migration_fate
        changed = _cell(samples, "masquerade", "changed", direction)
        assert changed["migration_connections_kept"].value == 0.0
        fate = changed["migration_gap_tcp"].migration_fate
        assert "tcp probe stalled" in fate or "tcp probe reset" in fate, fate
    from harness.analysis.answer import decision_page
    from harness.analysis.report import load_run

    run = load_run(run_dir)
    page = decision_page(run.samples, run.meta, None, "")
    assert "## Live migration" in page and "| masquerade | no mesh | kept | allowed |" in page.replace(
        "No mesh", "no mesh"
    )


@pytest.mark.vm
@pytest.mark.slow
def test_a_passt_vhost_user_vm_migrates_with_passt_repair_and_the_release_verdicts_are_recorded(tmp_path):
    text = SCENARIO.format(strategies="passt-vhost-user, bridge", sidecars="none", tests=_test("kept"))
    samples, _ = run_scenario_text(tmp_path, text)
    passt = _cell(samples, "passt-vhost-user", "kept", "ingress")
    assert passt["migration_time"].value > 0, passt["migration_gap_tcp"].reason
    assert passt["migration_gap_tcp"].migration_fate
    assert passt["migration_gap_tcp"].migration_allowed.startswith("allowed (passt-repair")
    bridge = _cell(samples, "bridge", "kept", "egress")
    assert "kubevirt.io/allow-pod-bridge-network-live-migration" in bridge["migration_gap_tcp"].migration_allowed


def test_a_migration_needs_the_qemu_guest_and_gets_a_bed_of_its_own():
    from harness.guests.spec import GuestSpec
    from harness.lab.vocabulary import GuestKind
    from harness.run.plan import resolve
    from harness.run.scenario import ScenarioError, parse_scenario_text

    netns = SCENARIO.format(strategies="masquerade", sidecars="none", tests=_test("kept")).replace(
        "guest: qemu", "guest: netns"
    )
    with pytest.raises(ScenarioError, match="a migration test runs on the netns runtime with guest: qemu only"):
        parse_scenario_text(netns)
    both = SCENARIO.format(
        strategies="masquerade",
        sidecars="none",
        tests=_test("kept") + "\n" + _test("changed") + "\n  - {kind: tcp_throughput, duration_s: 1}",
    )
    slots = resolve(parse_scenario_text(both), GuestSpec(kind=GuestKind.QEMU)).block(1, random.Random(0))
    kinds = sorted(tuple(sorted({t.label for t, _ in s.tests})) for s in slots)
    assert kinds == [("migration/changed",), ("migration/kept",), ("tcp_throughput",)]
    assert all(len(s.tests) == 2 for s in slots)  # both directions in the bed
