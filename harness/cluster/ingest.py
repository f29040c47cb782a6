"""`vmnetbench ingest DIR`: the outputs a cluster printed for `vmnetbench manifests DIR` (as `kubectl logs` saved
them under DIR/<cell>/logs/) read back into a run folder with the samples schema, so report, answer.md, compare
and the gate work on them unchanged.

Each test's block (harness/cluster/scripts.py) goes through the test kind's own `outcome_from_output`, the code
that turns the same tool's output into rows on the netns runtime. What a cluster run cannot have is left empty
and said: the harness's CPU accounting of the bed (another node's processes), and the mesh's own counters, so a
row's `path` under a mesh is `unverified`, not `through-mesh`. Node and cluster facts come from the objects the
README's procedure saves beside the logs (DIR/cluster/: `kubectl version -o json`, `kubectl get nodes -o json`,
`kubectl get kubevirt -A -o json`, `istioctl version -o json`; DIR/<cell>/vmi.json: `kubectl get vmi vm -o
json`), each optional."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.analysis.results import RunWriter, Sample
from harness.cluster.manifests import FORMAT, INDEX, ClusterCell
from harness.cluster.manifests import Block as TestBlock
from harness.cluster.scripts import VERSIONS_BLOCK
from harness.experiment.kinds import TestKind
from harness.experiment.scenario import parse_scenario_text
from harness.lab.kinds import Status, TrafficPath
from harness.lab.names import new_run_id

RUNTIME = "kubernetes"
GUEST = "kubevirt"
_LINE = re.compile(r"vmnb\|([A-Za-z0-9._-]+)\|(o|e|rc)\|([^|\r\n]*)")


class IngestError(ValueError):
    """DIR is not what `vmnetbench manifests` wrote, or a file in it cannot be read: one sentence."""


@dataclass
class Block:
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    returncode: int | None = None

    def text(self, chunks: list[str]) -> str:
        try:
            return base64.b64decode("".join(chunks), validate=True).decode(errors="replace")
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"its base64 is garbled ({e})") from e


def read_blocks(texts: list[str]) -> dict[str, Block]:
    """Every block in these logs, by name; a block printed again (a Job re-run) replaces the earlier one."""
    blocks: dict[str, Block] = {}
    for text in texts:
        for line in text.splitlines():
            m = _LINE.search(line)
            if not m:
                continue
            name, part, value = m.groups()
            block = blocks.get(name)
            if block is None or block.returncode is not None and part != "rc":
                block = blocks[name] = Block()
            if part == "o":
                block.stdout.append(value.strip())
            elif part == "e":
                block.stderr.append(value.strip())
            else:
                block.returncode = int(value) if value.strip().lstrip("-").isdigit() else -1
    return blocks


def tool_versions(block: Block | None) -> dict[str, str]:
    """The `versions` block: dpkg-query's `package version` lines and the kernel."""
    if block is None:
        return {}
    try:
        text = block.text(block.stdout)
    except ValueError:
        return {}
    versions = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            versions[parts[0]] = parts[1]
    return versions


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        raise IngestError(f"{path} is not readable JSON ({e})") from e


def cluster_facts(directory: Path) -> dict:
    """What the saved objects say about the cluster: Kubernetes, KubeVirt and Istio versions, the nodes."""
    cluster = directory / "cluster"
    version = _json(cluster / "version.json")
    kubevirt = _json(cluster / "kubevirt.json")
    istio = _json(cluster / "istio.json")
    nodes = []
    for node in _json(cluster / "nodes.json").get("items", []):
        info = node.get("status", {}).get("nodeInfo", {})
        capacity = node.get("status", {}).get("capacity", {})
        nodes.append({"name": node.get("metadata", {}).get("name"), "kernel": info.get("kernelVersion"),
                      "os": info.get("osImage"), "kubelet": info.get("kubeletVersion"),
                      "container_runtime": info.get("containerRuntimeVersion"), "cpu": capacity.get("cpu"),
                      "memory": capacity.get("memory"), "kvm": capacity.get("devices.kubevirt.io/kvm")})  # fmt: skip
    items = kubevirt.get("items", [kubevirt] if kubevirt else [])
    observed = next((i.get("status", {}).get("observedKubeVirtVersion") for i in items if i.get("status")), None)
    # istioctl version -o json: the control plane's version in meshVersion, else the client's own
    mesh = istio.get("meshVersion") or []
    istio_version = (mesh[0].get("Info", {}).get("version") if mesh else None) or istio.get("clientVersion", {}).get(
        "version"
    )
    return {"kubernetes": version.get("serverVersion", {}).get("gitVersion"), "kubevirt": observed,
            "istio": istio_version, "nodes": nodes}  # fmt: skip


def vmi_facts(folder: Path) -> dict:
    vmi = _json(folder / "vmi.json")
    status = vmi.get("status", {})
    return {"node": status.get("nodeName"), "guest_os": status.get("guestOSInfo", {}).get("prettyName"),
            "launcher_image": status.get("launcherContainerImageVersion"), "phase": status.get("phase")}  # fmt: skip


def _cell(record: dict) -> ClusterCell:
    data = {k: v for k, v in record.items() if k != "folder"}
    data["blocks"] = tuple(TestBlock(**b) for b in data.get("blocks", ()))
    return ClusterCell(**data)


def load_index(directory: Path) -> dict:
    path = directory / INDEX
    if not path.is_file():
        raise IngestError(f"{directory} has no {INDEX}: point ingest at the folder `vmnetbench manifests --out` wrote")
    index = _json(path)
    if index.get("format") != FORMAT:
        raise IngestError(f"{path} has format {index.get('format')!r}; this vmnetbench reads format {FORMAT}")
    return index


def ingest(directory: Path, results_root: Path, run_id: str | None = None) -> Path:
    """Write a run folder from DIR's logs; returns it."""
    index = load_index(directory)
    scenario = parse_scenario_text(index["scenario"])
    tests: list[TestKind] = list(scenario.expanded_tests())
    if [t.label for t in tests] != index["tests"]:
        raise IngestError(f"{directory / INDEX}: its scenario's tests are not the ones it lists; it was edited")
    facts = cluster_facts(directory)
    writer = RunWriter(results_root, run_id or new_run_id())
    cells = [_cell(c) for c in index["cells"]]
    writer.start({
        "scenario_name": index["scenario_name"], "scenario_path": str(directory / INDEX),
        "scenario": index["scenario"], "scenario_parsed": scenario.model_dump(mode="json", by_alias=True),
        "design": "rounds", "host": {"cluster": facts}, "tools": {}, "load": {},
        "git_sha": index.get("git_sha"), "kubevirt": index["kubevirt"], "guest": {"kind": GUEST},
        "runtime": RUNTIME, "ingested_from": str(directory.resolve()), "manifests_generated": index["generated"],
        "images": index["images"], "skipped": {c.label: c.skipped for c in cells if c.skipped},
        "tests_skipped": index.get("tests_skipped", {}),
    })  # fmt: skip
    for cell in cells:
        if cell.skipped:
            continue
        folder = directory / next(c["folder"] for c in index["cells"] if c["label"] == cell.label)
        for row in cell_rows(cell, tests, folder, facts, scenario=index["scenario_name"], kubevirt=index["kubevirt"]):
            writer.add(row[0])
            if row[1] is not None:
                writer.add_latency(row[0], row[1])
        writer.flush()
    writer.finish("complete")
    return writer.dir


REPEAT = re.compile(r"r([1-9][0-9]*)")


def repetitions(folder: Path) -> dict[int, list[str]]:
    """The cell's saved logs by repetition: the files in logs/ are the first, those in logs/rN/ the N-th (the
    README's procedure run again for the same cell)."""
    logs = folder / "logs"
    out: dict[int, list[str]] = {}
    if not logs.is_dir():
        return {1: []}
    for path in sorted(logs.rglob("*")):
        if not path.is_file():
            continue
        top = path.relative_to(logs).parts[0] if len(path.relative_to(logs).parts) > 1 else ""
        m = REPEAT.fullmatch(top)
        out.setdefault(int(m.group(1)) if m else 1, []).append(path.read_text(errors="replace"))
    return out or {1: []}


def cell_rows(cell: ClusterCell, tests: list[TestKind], folder: Path, facts: dict, *, scenario: str,
              kubevirt: str) -> list[tuple[Sample, object]]:  # fmt: skip
    """(row, latencies or None) for every block of the cell, in every repetition saved."""
    rows: list[tuple[Sample, object]] = []
    for repetition, texts in sorted(repetitions(folder).items()):
        rows += repetition_rows(cell, tests, folder, facts, read_blocks(texts), scenario=scenario, kubevirt=kubevirt,
                                repetition=repetition)  # fmt: skip
    return rows


def repetition_rows(cell: ClusterCell, tests: list[TestKind], folder: Path, facts: dict, blocks: dict[str, Block], *,
                    scenario: str, kubevirt: str, repetition: int) -> list[tuple[Sample, object]]:  # fmt: skip
    versions = tool_versions(blocks.get(VERSIONS_BLOCK))
    tools = {**versions, **{k: facts.get(k) for k in ("kubevirt", "istio", "kubernetes")}, **vmi_facts(folder)}
    base = Sample(strategy=cell.strategy, sidecar=cell.layout, scenario=scenario, repetition=repetition,
                  peer=cell.peer, peer_authentication=cell.peer_authentication, kubevirt=kubevirt,
                  binding_status=cell.binding_status, runtime=RUNTIME,
                  guest=GUEST if cell.binding != "direct" else "pod", vcpus=cell.vcpus, memory_mb=cell.memory_mb,
                  options=cell.options, tools=json.dumps({k: v for k, v in tools.items() if v}, sort_keys=True),
                  caveat="")  # fmt: skip
    rows: list[tuple[Sample, object]] = []
    for b in cell.blocks:
        test = tests[b.test]
        row = replace(base, test=test.label, direction=b.direction, protocol=str(test.protocol), **test.columns())
        block = blocks.get(b.name)
        reason = ""
        if block is None:
            where = "the VM's serial console log" if b.where == "vm" else f"the log of Job {b.name}"
            reason = f"no output of {b.name} in {folder.name}/logs/ (save {where} there)"
        elif block.returncode is None:
            reason = f"the output of {b.name} was cut off (no exit status)"
        if reason:
            rows.append((replace(row, metric=test.primary_metric, status=Status.FAILED, reason=reason), None))
            continue
        try:
            stdout, stderr = block.text(block.stdout), block.text(block.stderr)
        except ValueError as e:
            rows.append((replace(row, metric=test.primary_metric, status=Status.FAILED,
                                 reason=f"the output of {b.name} is unreadable: {e}"), None))  # fmt: skip
            continue
        outcome = test.outcome_from_output(stdout, stderr, block.returncode)
        path = (TrafficPath.NO_SIDECAR if cell.sidecar == "none" else TrafficPath.UNVERIFIED) \
            if outcome.status is Status.OK else TrafficPath.FAILED  # fmt: skip
        for i, metric in enumerate(outcome.metrics):
            r = replace(row, **metric.columns(), status=outcome.status, reason=outcome.reason, path=path)
            latencies = outcome.rtt_us if i == 0 and outcome.status is Status.OK else None
            rows.append((r, latencies))
    return rows
