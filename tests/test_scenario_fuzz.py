"""Property-based fuzzing of scenario files (Hypothesis): generated YAML documents, field values and raw bytes.
Every input is either accepted and valid (every address inside 198.18.0.0/15 and clear of the bed's networks)
or refused with one sentence naming the file; never a traceback. Through the CLI: exit 2, one line, and
nothing created (no results folder, no ledger)."""

from __future__ import annotations

import ipaddress
import string
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.kinds import TEST_KINDS
from harness.lab.addresses import BENCH_RANGE
from harness.lab.paths import REPO_ROOT, STATE_DIR
from harness.run.scenario import MAX_SCENARIO_NODES, Scenario, ScenarioError, load_scenario
from strategies import STRATEGIES

TEST_FIELDS = sorted({f for kind in TEST_KINDS.values() for f in kind.model_fields} - {"kind"} | {"protocol", "x"})
OPTION_FIELDS = sorted({f for s in STRATEGIES.values() for f in s.Options.model_fields} | {"vmcidr"})

addresses = st.one_of(
    st.builds(lambda a, p: f"{ipaddress.IPv4Address(a)}/{p}", st.integers(0, 2**32 - 1), st.integers(0, 32)),
    st.sampled_from(["198.19.0.0/24", "198.18.1.0/24", "10.0.2.0/24", "0.0.0.0/0", "banana", "198.19.7.0/25"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from([*STRATEGIES, "none", "envoy-redirect", "qemu", "netns", "ingress", "tcp", "open"]),
    addresses,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
valid_tests = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"kind": st.just("tcp_throughput")},
            optional={
                "duration_s": st.integers(1, 5),
                "streams": st.integers(1, 8),
                "directions": st.sampled_from([["ingress"], ["egress"], ["ingress", "egress"]]),
            },
        ),
        st.fixed_dictionaries(
            {"kind": st.just("rr")},
            optional={"protocol": st.sampled_from(["tcp", "udp"]), "message_bytes": st.integers(14, 99)},
        ),
        st.fixed_dictionaries({"kind": st.just("udp_throughput")}, optional={"rate_mbit": st.floats(1, 1000)}),
        st.fixed_dictionaries({"kind": st.just("crr")}, optional={"port": st.integers(1, 65535)}),
    ),
    min_size=1,
    max_size=2,
)
valid_options = st.fixed_dictionaries(
    {},
    optional={
        "masquerade": st.fixed_dictionaries({}, optional={"vm_cidr": addresses, "istio": st.booleans()}),
        "iptables-only": st.fixed_dictionaries({}, optional={"vm_cidr": addresses}),
        "tproxy": st.fixed_dictionaries({}, optional={"vm_cidr": addresses}),
        "slirp": st.fixed_dictionaries({}, optional={"cidr": addresses, "mtu": st.integers(500, 70000)}),
    },
)
valid_documents = st.fixed_dictionaries(
    {
        "name": st.text(string.ascii_letters, min_size=1, max_size=8),
        "strategies": st.lists(st.sampled_from(list(STRATEGIES)), min_size=1, max_size=3, unique=True),
        "tests": valid_tests,
    },
    optional={
        "sidecars": st.lists(
            st.sampled_from(["none", "envoy-redirect", "linkerd-style"]), min_size=1, max_size=2, unique=True
        ),
        "repetitions": st.integers(1, 5),
        "strategy_options": valid_options,
        "seed": st.integers(0, 2**31),
        "guest": st.sampled_from(["netns", "qemu"]),
    },
)
KEYS = [
    "name",
    "strategies",
    "tests",
    "sidecars",
    "repetitions",
    "strategy_options",
    "variants",
    "guest",
    "qemu",
    "seed",
    "runtime",
    "description",
    "repetitons",
]


@st.composite
def documents(draw) -> dict:
    """A valid scenario, then (mostly) one mutation: a field replaced by anything, an unknown key, a test's field
    replaced, or a strategy option replaced: so both acceptance and every kind of refusal are reached."""
    doc = draw(valid_documents)
    mutation = draw(st.sampled_from(["none", "field", "test", "option"]))
    if mutation == "field":
        doc[draw(st.sampled_from(KEYS))] = draw(values)
    elif mutation == "test":
        doc["tests"][0][draw(st.sampled_from(TEST_FIELDS))] = draw(values)
    elif mutation == "option":
        strategy = draw(st.sampled_from([*STRATEGIES, "nope"]))
        doc.setdefault("strategy_options", {}).setdefault(strategy, {})[draw(st.sampled_from(OPTION_FIELDS))] = draw(
            values | addresses
        )
    return doc


def check(path, data_or_text) -> Scenario | None:
    """Load; a refusal must be one line naming the file. Returns the scenario when accepted."""
    try:
        scenario, _ = load_scenario(path)
    except ScenarioError as e:
        message = str(e)
        assert "\n" not in message and str(path) in message, message
        return None
    for name in scenario.strategies:  # accepted: every address really is inside the plan
        options = scenario.options_for(name)
        for field in ("vm_cidr", "cidr"):
            if hasattr(options, field):
                net = ipaddress.IPv4Network(getattr(options, field))
                assert net.subnet_of(BENCH_RANGE), (field, net)
                assert not net.overlaps(ipaddress.IPv4Network("198.18.1.0/24"))
                assert not net.overlaps(ipaddress.IPv4Network("198.18.2.0/24"))
    return scenario


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents())
def test_generated_documents_are_accepted_valid_or_refused_in_one_line(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("fuzz") / "scenario.yaml"
    try:
        path.write_text(yaml.safe_dump(document, allow_unicode=True))
    except yaml.YAMLError:
        return
    check(path, document)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300), prefix=st.sampled_from([b"", b"name: x\nstrategies: [direct]\ntests:\n"]))
def test_raw_bytes_never_give_a_traceback(tmp_path_factory, raw, prefix):
    path = tmp_path_factory.mktemp("fuzz") / "scenario.yaml"
    path.write_bytes(prefix + raw)
    check(path, raw)


@settings(max_examples=8, deadline=None)
@given(document=documents())
def test_the_cli_refuses_with_exit_2_and_creates_nothing(tmp_path_factory, document):
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    if check(path, document) is not None:
        return  # accepted documents would start a real run; the property above covers their validity
    run_id = "f" + format(abs(hash(path)) % 16**5, "05x")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            str(path),
            "--results",
            str(folder / "results"),
            "--run-id",
            run_id,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (folder / "results").exists() and not (STATE_DIR / f"{run_id}.json").exists()


KEY_NODES = {
    "scalar": "strategies",
    "null": "~",
    "integer": "7",
    "boolean": "true",
    "list": "? [a, b]\n",
    "mapping": "? {a: 1}\n",
    "nested list": "? [[a], {b: [c]}]\n",
    "anchored mapping": "? &k {a: 1}\n",
}


@settings(max_examples=120, deadline=None)
@given(
    kind=st.sampled_from(sorted(KEY_NODES)),
    where=st.sampled_from(["top", "test", "options"]),
    value=st.sampled_from(["1", "[direct]", "{a: 1}", "*k", "~"]),
)
def test_keys_of_every_yaml_node_type_are_accepted_or_refused_in_one_line(tmp_path_factory, kind, where, value):
    """A key that is a list or a mapping (and aliases of them) was an unhashable-type traceback (issue 27)."""
    key = KEY_NODES[kind]
    if value == "*k" and "&k" not in key:
        value = "1"  # an alias needs its anchor, which only the anchored key defines
    entry = f"{key}: {value}"  # a complex key (`? [a, b]`) ends in a newline: its value follows on the next line
    head = "name: x\nstrategies: [direct]\n"
    body = {
        "top": lambda: f"{head}tests: [{{kind: crr}}]\n{entry}\n",
        "test": lambda: head + "tests:\n  - kind: crr\n" + "".join(f"    {ln}\n" for ln in entry.splitlines()),
        "options": lambda: (
            head
            + "tests: [{kind: crr}]\nstrategy_options:\n  slirp:\n"
            + "".join(f"    {ln}\n" for ln in entry.splitlines())
        ),
    }[where]()
    path = tmp_path_factory.mktemp("keys") / "scenario.yaml"
    path.write_text(body)
    check(path, body)


@pytest.mark.timeout(120)  # a hang guard, not a timing threshold: an alias bomb used to never return
@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 14), width=st.integers(2, 12), where=st.sampled_from(["name", "tests", "options"]))
def test_alias_bombs_are_refused_before_they_expand(tmp_path_factory, depth, width, where):
    """A kilobyte of anchors whose expansion doubles per level: refused in one sentence when it expands past
    the node limit, handled as any other document below it; never expanded in memory."""
    levels = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth + 1)]
    target = {
        "name": f"name: *l{depth}\nstrategies: [direct]\ntests: [{{kind: crr}}]",
        "tests": f"name: x\nstrategies: [direct]\ntests: *l{depth}",
        "options": f"name: x\nstrategies: [direct]\ntests: [{{kind: crr}}]\nstrategy_options: {{slirp: "
        f"{{mtu: *l{depth}}}}}",
    }[where]
    text = "bombs:\n" + "\n".join("  " + line for line in levels) + "\n" + target + "\n"
    path = tmp_path_factory.mktemp("bomb") / "scenario.yaml"
    path.write_text(text)
    expanded = sum(2 * width**i for i in range(depth + 1))
    try:
        load_scenario(path)
    except ScenarioError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        if expanded > MAX_SCENARIO_NODES:
            assert "alias bomb" in str(e)
        return
    raise AssertionError("a document with an unknown key `bombs` cannot be accepted")
