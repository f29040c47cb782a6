"""The structure stays: harness/ is layered (lab < pod < guests < strategies, analysis < experiment < cli), every
import points down a layer or within its own package, and no module imports itself back through a cycle. Walks
the source with ast, so imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

from harness.lab.paths import REPO_ROOT

LAYERS = {
    "harness.metrics": 0,
    "harness.lab": 0,
    "harness.tools": 0.5,
    "harness.pod": 1,
    "harness.guests": 2,
    "strategies": 3,
    "harness.runtime": 3,
    "harness.analysis": 3,
    "harness.kinds": 3.5,
    "harness.claims": 4,
    "harness.run": 4.2,
    "harness.cluster": 4.5,
    "harness.cli": 5,
}
"""Rank of each package: a module may import from its own package or from a package of lower rank only.
strategies and analysis share a rank and may not import each other; so do lab and metrics (the metric
registry imports nothing of the project)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    matches = [layer for layer in LAYERS if module == layer or module.startswith(layer + ".")]
    return max(matches, key=len) if matches else None


def project_imports(path: Path) -> set[str]:
    """Every module of harness/ or strategies/ that `path` imports, at any depth of the file."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # `if TYPE_CHECKING:` imports are annotations only, never run
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in ("harness", "strategies") and _exists(n)}
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _exists(module: str) -> bool:
    base = REPO_ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    files = [*REPO_ROOT.glob("harness/**/*.py"), *REPO_ROOT.glob("strategies/**/*.py")]
    return {module_name(f): project_imports(f) for f in files}


def test_every_module_belongs_to_a_layer():
    unplaced = [m for m in graph() if m != "harness" and layer_of(m) is None]
    assert not unplaced, f"modules outside every layer: {unplaced}; place them in a package of LAYERS"


def test_imports_point_down_the_layers():
    upward = []
    for module, imports in graph().items():
        own = layer_of(module)
        if own is None:
            continue
        for imported in imports:
            theirs = layer_of(imported)
            if theirs is None or theirs == own:
                continue
            if LAYERS[theirs] >= LAYERS[own]:
                upward.append(f"{module} imports {imported} ({theirs} is not below {own})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    g = graph()
    # Importing a package's module imports the package too; package __init__ files import nothing here.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for dep in sorted(g.get(module, ())):
            dep = dep if dep in g else dep.rsplit(".", 1)[0]  # `from pkg import name` where name is not a module
            if dep == module or dep not in g:
                continue
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep] if dep in stack else [module, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[module] = 2

    for module in sorted(g):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_parsing_a_scenario_does_not_load_the_qemu_code():
    import subprocess
    import sys

    code = (
        "import sys; from harness.run.scenario import load_scenario; load_scenario('scenarios/vm.yaml'); "
        "print(sorted(m for m in sys.modules if m.startswith('harness.guests.qemu')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


MESH_WORDS = ("istio", "linkerd", "ambient", "envoy", "ztunnel")


def _names_and_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Identifiers and string literals of a module, documentation left out (docstrings and the bare strings that
    document an attribute: prose may name what it models)."""
    docstrings = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            found.append((node.lineno, node.name))
        elif isinstance(node, ast.alias):
            found.append((node.lineno, node.asname or node.name))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
    return found


def test_no_mesh_names_in_the_lab():
    """Mesh modes are a seam (harness/pod/mesh.py): the lab's code names no mesh, its proxy or its containers."""
    offending = []
    for path in sorted(REPO_ROOT.glob("harness/lab/*.py")):
        for line, text in _names_and_strings(ast.parse(path.read_text())):
            if any(word in text.lower() for word in MESH_WORDS):
                offending.append(f"{path.relative_to(REPO_ROOT)}:{line}: {text!r}")
    assert not offending, "\n".join(offending)


def test_a_new_mesh_mode_is_one_class_the_harness_asks():
    """A dummy mode registered by subclassing Mesh: the registry, the figures' styles and the mode's KubeVirt
    adaptation come from the class, with no other file touched (the enum value aside, which scenarios parse)."""
    from harness.pod import mesh

    dummy_kind = "dummy"

    class Dummy(mesh.Mesh):
        kind = dummy_kind
        reserved_ports = (15999,)
        kubevirt_istio = True
        style = ("--", "oo")

    try:
        assert mesh.MESHES[dummy_kind] is Dummy
        assert mesh.mesh_for(dummy_kind).reserved_ports == (15999,)
        assert mesh.install_sidecar(None, dummy_kind, vm_interfaces=[]) is None  # the base install adds nothing
        from harness.analysis import report

        assert report.style_of("dummy") == ("--", "oo")
    finally:
        del mesh.MESHES[dummy_kind]


RUNTIME_WORDS = ("docker", "container_pod", "kubelet")
ENGINE_CORE = [
    "harness/lab/*.py",
    "harness/pod/*.py",
    "harness/guests/**/*.py",
    "strategies/*.py",
    "harness/analysis/*.py",
    "harness/run/runner.py",
    "harness/run/plan.py",
    "harness/kinds/measure.py",
    "harness/run/precision.py",
    "harness/claims/*.py",
]


FOREIGN_STATE_PATHS = {("paths.py", "/run/docker"), ("paths.py", "/var/lib/docker")}
"""Allowed: the folders another engine's daemon owns, where results must never go (harness/lab/paths.py); a fact
of the machine, not a runtime of ours."""


def test_no_runtime_names_outside_the_runtime_package():
    """Runtimes are a seam (harness/lab/runtime.py PodRuntime, implementations in harness/runtime/): the bed, the
    mesh modes, guests, strategies, analysis and the runner never name or branch on one. The CLI and the
    scenario schema parse the user's word for it; the claims' container trials are about the docker runtime."""
    offending = []
    for pattern in ENGINE_CORE:
        for path in sorted(REPO_ROOT.glob(pattern)):
            for line, text in _names_and_strings(ast.parse(path.read_text())):
                if (path.name, text) in FOREIGN_STATE_PATHS:
                    continue
                if any(word in text.lower() for word in RUNTIME_WORDS):
                    offending.append(f"{path.relative_to(REPO_ROOT)}:{line}: {text!r}")
    assert not offending, "\n".join(offending)


def test_every_tool_of_the_inventory_is_installed_by_the_makefile():
    """One tool inventory (harness/tools/inventory.py): its Debian packages are the ones `make deps` installs."""
    import re

    from harness.tools.inventory import debian_packages

    makefile = (REPO_ROOT / "Makefile").read_text().replace("\\\n", " ")
    listed = set()
    for variable in ("DEB_PACKAGES", "VM_PACKAGES", "DOCKER_PACKAGES", "TEST_PACKAGES"):
        listed |= set(re.search(rf"^{variable} := (.*)$", makefile, re.M).group(1).split())
    missing = debian_packages() - listed
    assert not missing, f"the inventory's packages not in the Makefile's deps: {sorted(missing)}"


def test_every_metric_a_test_kind_emits_is_declared_once_in_the_registry():
    """The metric registry is the vocabulary: every `Metric("name", "unit", ...)` the test kinds and the
    measurement frame write names a declared metric with the registry's unit, so a new metric that is not
    declared (or a unit written differently) fails here instead of silently in a table."""
    from harness.metrics.registry import METRICS

    found = []
    for path in sorted(str(f.relative_to(REPO_ROOT)) for f in (REPO_ROOT / "harness/kinds").glob("*.py")):
        for node in ast.walk(ast.parse((REPO_ROOT / path).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Metric" and len(node.args) >= 2:
                name, unit = node.args[0], node.args[1]
                if isinstance(unit, ast.Constant):
                    found.append((path, node.lineno, name, unit.value))
    assert found
    wrong = []
    for path, line, name, unit in found:
        names = [name.value] if isinstance(name, ast.Constant) else []
        if isinstance(name, ast.JoinedStr):  # f"{prefix}_p50": every prefix the kinds use
            tail = "".join(v.value for v in name.values if isinstance(v, ast.Constant))
            names = [m for m in METRICS if m.endswith(tail)]
        for metric in names:
            if metric not in METRICS or METRICS[metric].unit != unit:
                wrong.append(f"{path}:{line}: {metric} in {unit!r}")
    assert not wrong, "\n".join(wrong)


def test_the_readme_is_a_door_and_every_doc_link_resolves():
    """Issue 42: README.md says what the tool answers, the two commands and where to go next, under 10 KB; the
    reference lives in docs/. Every relative link in them points at a file of the checkout."""
    import re

    readme = REPO_ROOT / "README.md"
    assert readme.stat().st_size < 10_000, f"README.md is {readme.stat().st_size} bytes; move reference to docs/"
    assert readme.read_text().startswith("# vmnetbench\n\n```sh\nmake bench") and "make test" in readme.read_text()
    broken = []
    for page in [readme, *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO_ROOT)} -> {target}")
    assert not broken, broken


def test_a_new_binding_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    """A binding the harness did not know: a Strategy subclass declaring its KubeVirt story and colour, and its
    entry in strategies.STRATEGIES (the two files docs/extending.md lists). `run` measures it and records what the
    modelled release calls it, the decision page names it, and `manifests` writes its VMI interface from the
    declaration; nothing else names it."""
    import pandas as pd
    import yaml

    import strategies
    from harness.analysis.report import write_report
    from harness.cluster.manifests import write_manifests
    from harness.pod import bindings
    from harness.pod.kubevirt import InRelease, KubevirtBinding, KubevirtRelease, Shipping
    from harness.run.scenario import load_scenario
    from strategies.masquerade import Masquerade
    from tests.conftest import run_scenario_text

    class DummyNat(Masquerade):
        name = "dummy-nat"
        kubevirt = KubevirtBinding.per_release(
            {
                (KubevirtRelease.V1_9,): InRelease(
                    Shipping.PLUGIN, "dummyBinding", {"binding": {"name": "dummy"}}, "a network binding plugin (dummy)"
                )
            },
            InRelease(Shipping.ABSENT, "dummyBinding"),
        )
        colour = "C9"
        summary = "masquerade's setup under another name: a binding added by a test"

    monkeypatch.setitem(strategies.STRATEGIES, DummyNat.name, DummyNat)
    try:
        text = (
            "name: dummy\nstrategies: [direct, dummy-nat]\nrepetitions: 1\nkubevirt: '1.9'\ntests:\n"
            "  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress, egress]}\n"
        )
        samples, run_dir = run_scenario_text(tmp_path, text)
        rows = samples[samples.strategy == "dummy-nat"]
        assert (rows[rows.metric == "throughput"].status == "ok").all() and len(rows)
        assert set(rows.binding_status) == {"a network binding plugin (dummy)"}
        write_report(run_dir)
        answer = (run_dir / "answer.md").read_text()
        assert "dummyBinding" in answer
        scenario, raw = load_scenario(tmp_path / "scenario.yaml")
        written = write_manifests(scenario, raw, tmp_path / "m", kubevirt="1.9")
        vmis = [
            d
            for f in written.files
            if f.name == "setup.yaml"
            for d in yaml.safe_load_all(f.read_text())
            if d and d.get("kind") == "VirtualMachineInstance"
        ]
        (vmi,) = vmis
        assert vmi["spec"]["domain"]["devices"]["interfaces"][0]["binding"] == {"name": "dummy"}
        assert bindings.colour("dummy-nat") == "C9" and not pd.isna(rows.kubevirt).all()
    finally:
        bindings.unregister_binding(DummyNat.name)


REFERENCE_NAMES = {"direct", "none"}
"""Allowed everywhere: the plain pod and the no-mesh layout are the references every ratio and verdict is judged
against (the method names them), not additions a contributor makes."""
NAMES_ALLOWED = {
    # file: (names, why they stay)
    "harness/claims/verdicts.py": (
        {"nat-proxy", "passt", "slirp", "tcp_throughput"},
        "the seed post's claims are about named bindings (claims.yaml)",
    ),
    "harness/claims/probes.py": (
        {"bridge", "tproxy", "rr", "tcp_throughput"},
        "the probes the seed's claims name, in the kinds they run",
    ),
    "harness/analysis/findings.py": (
        {"passt", "passt-vhost-user"},
        "findings about the passt program's behaviour on the bindings that run it",
    ),
    "harness/tools/debian.py": ({"passt"}, "the passt program's Debian package"),
    "harness/tools/inventory.py": ({"passt"}, "the passt program in the tool inventory"),
    "harness/runtime/image.py": ({"passt"}, "the passt program in the docker image"),
    "harness/guests/qemu/driver.py": ({"passt"}, "QEMU's netdev type for the passt program"),
    "harness/lab/netns.py": ({"bridge"}, "the Linux link kind"),
    "harness/pod/proxy.py": ({"tproxy"}, "the relay's listener type (IP_TRANSPARENT)"),
    "harness/pod/envoy.py": ({"dns"}, "Envoy's certificate-details field"),
    "harness/pod/protocols.py": ({"http"}, "a protocol's name"),
    "harness/pod/sidecars.py": ({"http"}, "a protocol's name"),
    "harness/kinds/http.py": ({"http"}, "a protocol's name (HTTP/1.1)"),
    "harness/analysis/http_section.py": ({"http"}, "a protocol's name (HTTP/1.1)"),
}


def test_no_binding_mesh_or_test_kind_name_is_spelled_outside_its_home():
    """Issue 42: a binding's name lives in its strategies/ module, a mesh mode's in harness/pod/mesh.py, a test
    kind's in harness/kinds/ and the metric registry; every other module asks the registries. What
    must stay is allow-listed above with the reason (the plain pod and no-mesh references; the seed's claims; the
    passt *program*, the Linux *bridge* link kind, protocol words that a kind shares its name with)."""
    import strategies
    from harness.kinds import TEST_KINDS
    from harness.pod.mesh import MESHES

    kind_names = set(TEST_KINDS)
    assert {"tcp_throughput", "rr", "crr", "http"} <= kind_names
    homes = {"harness/pod/mesh.py", "harness/metrics/registry.py"} | {
        f"harness/kinds/{module}.py"
        for module in ("base", "throughput", "request_response", "dns", "http", "migration")
    }
    names = (set(strategies.STRATEGIES) | set(MESHES) | kind_names) - REFERENCE_NAMES
    offending = []
    for path in sorted(REPO_ROOT.glob("harness/**/*.py")):
        rel = str(path.relative_to(REPO_ROOT))
        if rel in homes:
            continue
        allowed = NAMES_ALLOWED.get(rel, (set(), ""))[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names and node.value not in allowed:
                offending.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not offending, "\n".join(offending)


def test_the_run_reads_only_its_plan():
    """Issue 42: the scenario is read once, into the plan (harness/run/plan.py RunPlan with its RunSettings): no
    module below the plan imports the scenario model (only the plan, the commands and the cluster's manifests and
    ingest, which translate a scenario for a cluster, do), and the runner, the measurement frame and the stopping
    rule never read a field of a `scenario` object."""
    readers = {"harness/run/plan.py", "harness/cli.py", "harness/cluster/manifests.py", "harness/cluster/ingest.py"}
    offending = []
    for path in sorted([*REPO_ROOT.glob("harness/**/*.py"), *REPO_ROOT.glob("strategies/*.py")]):
        rel = str(path.relative_to(REPO_ROOT))
        if rel in readers or rel == "harness/run/scenario.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "harness.run.scenario":
                offending.append(f"{rel}:{node.lineno}: imports the scenario model")
            if rel.startswith(("harness/run/", "harness/kinds/")) and (
                isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "scenario"
            ):
                offending.append(f"{rel}:{node.lineno}: reads scenario.{node.attr}")
    assert not offending, "\n".join(offending)


def test_a_new_mesh_mode_goes_through_run_report_manifests_and_claims(tmp_path):
    """Issue 42: a mesh mode added as one Mesh subclass (here Istio's sidecar under another name, with its own
    title and namespace label) is a scenario's `sidecars:` value, runs with traffic through its proxy, is named on
    the decision page, labels its namespace in `manifests`, and is one of the layouts the claims read from the
    run's rows; no other file names it."""
    import yaml

    from harness.analysis.report import write_report
    from harness.claims.facts import connectivity_facts_class, reach_key
    from harness.claims.verdicts import facts_from_rows
    from harness.cluster.manifests import write_manifests
    from harness.lab.vocabulary import Direction, Protocol, TrafficPath
    from harness.pod import mesh
    from harness.run.scenario import load_scenario
    from tests.conftest import run_scenario_text

    class DummySidecar(mesh.IstioSidecar):
        kind = "dummy-sidecar"
        title = "Dummy sidecar"
        probed_by_claims = True
        cluster = mesh.ClusterObjects({"dummy.example/inject": "enabled"})

    try:
        text = (
            "name: dummy-mesh\nstrategies: [direct, masquerade]\nsidecars: [none, dummy-sidecar]\n"
            "repetitions: 1\ntests:\n  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}\n"
        )
        samples, run_dir = run_scenario_text(tmp_path, text)
        rows = samples[(samples.sidecar == "dummy-sidecar") & (samples.metric == "throughput")]
        assert len(rows) and (rows.status == "ok").all()
        assert set(rows[rows.strategy == "masquerade"].path) == {str(TrafficPath.THROUGH_MESH)}
        write_report(run_dir)
        assert "Dummy sidecar" in (run_dir / "answer.md").read_text()
        scenario, raw = load_scenario(tmp_path / "scenario.yaml")
        written = write_manifests(scenario, raw, tmp_path / "m", kubevirt="1.9")
        labels = [
            d["metadata"].get("labels", {})
            for f in written.files
            if f.name == "setup.yaml"
            for d in yaml.safe_load_all(f.read_text())
            if d and d.get("kind") == "Namespace"
        ]
        assert any(label.get("dummy.example/inject") == "enabled" for label in labels)
        conn, _ = facts_from_rows(samples, "masquerade")
        for direction in Direction:
            assert conn[reach_key(Protocol.TCP, direction, mesh.SidecarKind("dummy-sidecar"))] == "works"
        facts = connectivity_facts_class()(**conn)
        assert facts.tcp_ingress_dummy_sidecar == "works"
    finally:
        del mesh.MESHES["dummy-sidecar"]


def test_a_new_test_kind_goes_through_run_report_manifests_and_claims(tmp_path, monkeypatch):
    """Issue 42: a test kind added as one TestKind subclass (here iperf3's stream under another name, emitting a
    metric of its own) plus its metric in the registry (the two places docs/extending.md lists): a scenario lists
    it, `run` measures it, the decision page has the column the metric declares, `manifests` writes its Job from
    the kind's own client and server, and the claims' reading of the run's rows passes it by."""
    from typing import ClassVar, Literal

    import yaml

    from harness.analysis.report import write_report
    from harness.claims.verdicts import facts_from_rows
    from harness.cluster.manifests import write_manifests
    from harness.kinds.base import unregister_kind
    from harness.kinds.outcome import Metric
    from harness.kinds.throughput import TcpThroughput
    from harness.metrics import registry
    from harness.run.scenario import load_scenario
    from tests.conftest import run_scenario_text

    class DummyStream(TcpThroughput):
        kind: Literal["dummy_stream"]
        primary_metric: ClassVar[str] = "dummy_goodput"

        def measure(self, ends, label):
            outcome = super().measure(ends, label)
            outcome.metrics = [Metric("dummy_goodput", "Gbit/s", m.value) for m in outcome.metrics]
            return outcome

    column = registry.DecisionColumn("Dummy stream in", "dummy_stream", "ingress")
    spec = registry.MetricSpec(
        "dummy_goodput", "Gbit/s", registry.Better.HIGHER, "dummy_stream", "dummy goodput", decision=(column,)
    )
    monkeypatch.setitem(registry.METRICS, spec.name, spec)
    try:
        text = (
            "name: dummy-kind\nstrategies: [direct, masquerade]\nrepetitions: 1\ntests:\n"
            "  - {kind: dummy_stream, duration_s: 1, omit_s: 0, directions: [ingress]}\n"
        )
        samples, run_dir = run_scenario_text(tmp_path, text)
        rows = samples[samples.metric == "dummy_goodput"]
        assert len(rows) == 3 and (rows.status == "ok").all() and set(rows.test) == {"dummy_stream"}
        write_report(run_dir)
        assert "Dummy stream in" in (run_dir / "answer.md").read_text()
        scenario, raw = load_scenario(tmp_path / "scenario.yaml")
        written = write_manifests(scenario, raw, tmp_path / "m", kubevirt="1.9")
        jobs = [f for f in written.files if "dummy-stream" in f.name]
        assert jobs and all(yaml.safe_load(f.read_text())["kind"] == "Job" for f in jobs)
        conn, perf = facts_from_rows(samples, "masquerade")
        assert conn == {} and perf is None  # the seed's claims read TCP throughput rows only
    finally:
        unregister_kind("dummy_stream")
