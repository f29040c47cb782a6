"""Scenario validation: bad input gets one sentence naming the file, the field and what is allowed."""

from __future__ import annotations

import pytest

from harness.run.scenario import ScenarioError, load_scenario
from strategies import STRATEGIES
from tests.conftest import cli

GOOD = """
name: t
strategies: [direct, masquerade]
tests:
  - kind: tcp_throughput
    duration_s: 1
"""


def write(tmp_path, text: str):
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def error_for(tmp_path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_good_scenario_loads(tmp_path):
    scenario, text = load_scenario(write(tmp_path, GOOD))
    assert scenario.strategies == ["direct", "masquerade"]
    assert scenario.tests[0].directions == ["ingress", "egress"]
    assert text == GOOD


def test_committed_scenarios_load():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parent.parent.glob("scenarios/*.yaml")):
        load_scenario(path)


def test_unknown_strategy_lists_known_ones(tmp_path):
    msg = error_for(tmp_path, GOOD.replace("masquerade]", "masqurade]"))
    assert "field 'strategies'" in msg
    assert "'masqurade'" in msg and f"known strategies: {', '.join(STRATEGIES)}" in msg


def test_misspelled_field_names_allowed_fields(tmp_path):
    msg = error_for(tmp_path, GOOD.replace("duration_s", "duraton_s"))
    assert "field 'tests[0].duraton_s' is not a known field" in msg
    assert "duration_s" in msg and "omit_s" in msg


def test_bad_direction_names_allowed_values(tmp_path):
    msg = error_for(tmp_path, GOOD + "    directions: [ingres]\n")
    assert "field 'tests[0].directions[0]'" in msg and "'ingress' or 'egress'" in msg and "'ingres'" in msg


def test_bad_kind_and_top_level_field(tmp_path):
    assert "kind must be one of: tcp_throughput" in error_for(tmp_path, GOOD.replace("tcp_throughput", "tcp_thruput"))
    msg = error_for(tmp_path, GOOD + "repetitons: 3\n")
    assert "field 'repetitons' is not a known field" in msg and "repetitions" in msg


def test_bad_strategy_option(tmp_path):
    msg = error_for(tmp_path, GOOD + "strategy_options:\n  masquerade: {vm_cidr: nonsense}\n")
    assert "field 'strategy_options.masquerade.vm_cidr'" in msg


def test_variants(tmp_path):
    text = GOOD.replace("masquerade]", "masquerade, slirp-1500]") + (
        "variants:\n  slirp-1500: {strategy: slirp, options: {mtu: 1500}}\n"
    )
    scenario, _ = load_scenario(write(tmp_path, text))
    assert scenario.strategy_of("slirp-1500") == "slirp"
    assert scenario.options_for("slirp-1500").mtu == 1500
    assert scenario.options_for("masquerade").vm_cidr == "198.19.0.0/24"
    msg = error_for(tmp_path, text.replace("mtu: 1500", "mtu: 9"))
    assert "field 'variants.slirp-1500.options.mtu'" in msg and "576" in msg
    msg = error_for(tmp_path, text.replace("strategy: slirp", "strategy: slurp"))
    assert "field 'variants.slirp-1500.strategy': unknown strategy 'slurp'" in msg


def test_cli_rejects_typo_with_exit_2(tmp_path):
    path = write(tmp_path, GOOD.replace("direct,", "drect,"))
    proc = cli("run", str(path), "--results", str(tmp_path / "results"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "unknown strategy 'drect'" in out and f"known strategies: {', '.join(STRATEGIES)}" in out
    assert not (tmp_path / "results").exists()


def test_unknown_strategy_option_lists_that_strategys_options(tmp_path):
    msg = error_for(tmp_path, GOOD + "strategy_options:\n  masquerade: {vmcidr: 198.19.0.0/24}\n")
    assert "field 'strategy_options.masquerade.vmcidr' is not a known field" in msg
    assert "vm_cidr" in msg and "declare_ports" in msg and "repetitions" not in msg
    text = GOOD.replace("masquerade]", "masquerade, s2]") + "variants:\n  s2: {strategy: slirp, options: {mtuu: 1}}\n"
    msg = error_for(tmp_path, text)
    assert "field 'variants.s2.options.mtuu' is not a known field" in msg and "cidr" in msg


@pytest.mark.parametrize(
    "cidr, says",
    [
        ("10.0.0.0/24", "198.18.0.0/15"),
        ("8.8.8.0/24", "198.18.0.0/15"),
        ("0.0.0.0/0", "198.18.0.0/15"),
        ("127.0.0.0/24", "198.18.0.0/15"),
        ("198.18.1.0/24", "overlaps the peer network"),
        ("198.18.2.0/23", "overlaps the pod network"),
        ("banana", "IPv4 network"),
        ("198.19.0.1/24", "host bits"),
    ],
)
def test_every_address_option_stays_in_the_benchmarking_range(tmp_path, cidr, says):
    msg = error_for(tmp_path, GOOD + f"strategy_options:\n  masquerade: {{vm_cidr: '{cidr}'}}\n")
    assert "field 'strategy_options.masquerade.vm_cidr'" in msg and says in msg
    msg = error_for(
        tmp_path, GOOD.replace("masquerade]", "slirp]") + f"strategy_options:\n  slirp: {{cidr: '{cidr}'}}\n"
    )
    assert "field 'strategy_options.slirp.cidr'" in msg and says in msg


def test_duplicate_keys_non_utf8_strict_types_and_size_are_refused(tmp_path):
    msg = error_for(tmp_path, GOOD + "repetitions: 1\nrepetitions: 500\n")
    assert "'repetitions' appears twice" in msg
    msg = error_for(tmp_path, GOOD.replace("duration_s: 1", "duration_s: 1\n    port: true"))
    assert "field 'tests[0].port'" in msg
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.encode() + "description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ScenarioError, match=r"not UTF-8 text \(byte 0xe9"):
        load_scenario(path)
    big = tmp_path / "big.yaml"
    big.write_text(GOOD + "description: " + "x" * (1 << 20) + "\n")
    with pytest.raises(ScenarioError, match="at most 1048576 bytes"):
        load_scenario(big)


def test_a_key_with_a_control_character_still_gets_a_one_line_error(tmp_path):
    """Found by the fuzzer: `strategy_options: {"\\r": null}` printed the carriage return inside the message."""
    msg = error_for(
        tmp_path, 'name: t\nstrategies: [direct]\ntests: [{kind: tcp_throughput}]\nstrategy_options: {"\\r": null}\n'
    )
    assert "field 'strategy_options.'\\r''" in msg
