"""`vmnetbench ingest DIR`: the outputs a cluster printed for `vmnetbench manifests DIR` (as `kubectl logs` saved
them under DIR/<cell>/logs/) read back into a run folder with the samples schema, so report, answer.md, compare
and the gate work on them unchanged.

Each test's block (harness/cluster/scripts.py) goes through the test kind's own `outcome_from_output`, the code
that turns the same tool's output into rows on the netns runtime. What a cluster run cannot have is left empty
and said: the harness's CPU accounting of the bed (another node's processes), and the mesh's own counters, so a
row's `path` under a mesh is `unverified`, not `through-mesh`. Node and cluster facts come from the objects the
docs/cluster.md procedure saves beside the logs (DIR/cluster/: `kubectl version -o json`, `kubectl get nodes -o json`,
`kubectl get kubevirt -A -o json`, `istioctl version -o json`; DIR/<cell>/vmi.json: `kubectl get vmi vm -o
json`), each optional."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.analysis.results import RunWriter, Sample
from harness.cluster.manifests import FORMAT, INDEX, ClusterCell
from harness.cluster.manifests import Block as TestBlock
from harness.cluster.scripts import VERSIONS_BLOCK
from harness.kinds import TestKind
from harness.lab.names import new_run_id
from harness.lab.vocabulary import Status, TrafficPath
from harness.run.plan import expanded_tests
from harness.run.scenario import ScenarioError, parse_scenario_text

RUNTIME = "kubernetes"
GUEST = "kubevirt"
_LINE = re.compile(r"vmnb\|([A-Za-z0-9._-]+)\|(o|e|rc)\|([^|\r\n]*)")


MAX_JSON_BYTES = 16 * 2**20
MAX_LOG_BYTES = 64 * 2**20
MAX_LOG_FILES = 5000
"""Bounds on what a cell's folder may hold: far above what docs/cluster.md's procedure saves (a few KB a log)."""


class IngestError(ValueError):
    """DIR is not what `vmnetbench manifests` wrote, or a file in it cannot be read: one sentence."""


class InputFolder:
    """The folder `ingest` reads, as untrusted input (logs a user copied from a cluster): only regular files and
    folders inside it are read, never through a symbolic link, never a FIFO or device (one could block the read
    forever or never end), each within a size bound. Anything else is one IngestError naming the file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def _walk_to(self, rel: str) -> Path | None:
        """The path of `rel` inside the root, every component checked with lstat; None if a component is
        missing. Absolute paths, `..` and symbolic links are refused."""
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts:
            raise IngestError(f"{rel!r} is not a path inside {self.root}: ingest reads only files inside DIR")
        path = self.root
        for i, part in enumerate(parts):
            path = path / part
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                return None
            except OSError as e:
                raise IngestError(f"{path} cannot be read ({e.strerror})") from None
            if stat.S_ISLNK(info.st_mode):
                raise IngestError(f"{path} is a symbolic link; ingest reads only files inside DIR (copy the file in)")
            if i < len(parts) - 1 and not stat.S_ISDIR(info.st_mode):
                raise IngestError(f"{path} is not a folder")
        return path

    def read(self, rel: str, limit: int) -> bytes | None:
        """A regular file's bytes (None when absent)."""
        path = self._walk_to(rel)
        return None if path is None else self._read(path, limit)

    def _read(self, path: Path, limit: int) -> bytes:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise IngestError(f"{path} cannot be read ({e.strerror})") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise IngestError(f"{path} is not a regular file (a FIFO, device or socket is never read)")
            if info.st_size > limit:
                raise IngestError(f"{path} holds {info.st_size} bytes, more than the {limit} ingest reads")
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise IngestError(f"{path} grew beyond the {limit} bytes ingest reads")
        return data

    def files_under(self, rel: str) -> list[tuple[tuple[str, ...], bytes]]:
        """(parts relative to `rel`, bytes) of every regular file below the folder `rel`, sorted; [] when absent."""
        top = self._walk_to(rel)
        if top is None:
            return []
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            raise IngestError(f"{top} is not a folder")
        found: list[Path] = []
        for folder, dirs, files in os.walk(top, followlinks=False):
            for name in dirs + files:
                path = Path(folder) / name
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode):
                    raise IngestError(
                        f"{path} is a symbolic link; ingest reads only files inside DIR (copy the file in)"
                    )
                if name in files:
                    if not stat.S_ISREG(mode):
                        raise IngestError(f"{path} is not a regular file (a FIFO, device or socket is never read)")
                    found.append(path)
            if len(found) > MAX_LOG_FILES:
                raise IngestError(f"{top} holds more than {MAX_LOG_FILES} files; ingest reads a cell's saved logs")
        return [(p.relative_to(top).parts, self._read(p, MAX_LOG_BYTES)) for p in sorted(found)]

    def json(self, rel: str) -> Any:
        """A JSON file's value, {} when absent."""
        data = self.read(rel, MAX_JSON_BYTES)
        if data is None:
            return {}
        try:
            return json.loads(data)
        except ValueError as e:
            raise IngestError(f"{self.root / rel} is not readable JSON ({e})") from None


_STRICT = ConfigDict(extra="forbid", strict=True)
_NAME = r"^[A-Za-z0-9._-]{1,200}$"


class BlockRecord(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=_NAME)
    test: int = Field(ge=0, le=1000)
    direction: str = Field(max_length=40)
    where: Literal["job", "vm"]


class CellRecord(BaseModel):
    """One cell as `vmnetbench manifests` lists it (harness/cluster/manifests.py ClusterCell, plus its folder)."""

    model_config = _STRICT
    label: str = Field(min_length=1, max_length=300)
    strategy: str = Field(max_length=300)
    binding: str = Field(max_length=100)
    layout: str = Field(max_length=100)
    sidecar: str = Field(max_length=100)
    peer: str = Field(max_length=100)
    peer_authentication: str = Field(max_length=100)
    namespace: str = Field(max_length=100)
    peer_namespace: str = Field(max_length=100)
    binding_status: str = Field(max_length=300)
    options: str = Field(max_length=2000)
    vcpus: int | None = Field(ge=1, le=1024)
    memory_mb: int | None = Field(ge=1, le=2**24)
    skipped: str = Field(default="", max_length=2000)
    blocks: list[BlockRecord] = Field(default_factory=list, max_length=1000)
    folder: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    """A DNS label (manifests names each cell's folder so): never a path."""
    istio: str = Field(default="", max_length=20)
    istio_backend: str = Field(default="", pattern=r"^(|iptables|nftables)$")


class IndexFile(BaseModel):
    """index.json as `vmnetbench manifests` writes it (format 1)."""

    model_config = _STRICT
    format: Literal[1]
    generated: str = Field(max_length=100)
    git_sha: str | None = Field(default=None, max_length=100)
    kubevirt: str = Field(max_length=40)
    kubevirt_api: str = Field(max_length=40)
    images: dict[str, str]
    scenario_name: str = Field(max_length=200)
    scenario: str = Field(max_length=2**20)
    tests: list[str] = Field(max_length=1000)
    tests_skipped: dict[str, str] = Field(default_factory=dict)
    cells: list[CellRecord] = Field(max_length=10000)


def _field_error(path: Path, error: ValidationError) -> IngestError:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(the whole file)"
    return IngestError(f"{path}: field {where}: {first['msg']} (it is not what `vmnetbench manifests` wrote)")


def _get(value: Any, *keys: Any) -> Any:
    """value[k1][k2]... where each step is a dict with that key (a list index for ints), else None: the saved
    cluster objects are optional and their shape is the user's."""
    for key in keys:
        if isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
            value = value[key]
        elif isinstance(key, str) and isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) else None


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
                code = value.strip()
                block.returncode = int(code) if re.fullmatch(r"-?[0-9]{1,6}", code) else -1  # a shell's status
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


def cluster_facts(folder: InputFolder) -> dict:
    """What the saved objects say about the cluster: Kubernetes, KubeVirt and Istio versions, the nodes."""
    version, kubevirt = folder.json("cluster/version.json"), folder.json("cluster/kubevirt.json")
    istio, nodes_json = folder.json("cluster/istio.json"), folder.json("cluster/nodes.json")
    nodes = []
    for node in (_get(nodes_json, "items") or [])[:1000] if isinstance(_get(nodes_json, "items"), list) else []:
        info, capacity = _get(node, "status", "nodeInfo"), _get(node, "status", "capacity")
        nodes.append(
            {
                "name": _text(_get(node, "metadata", "name")),
                "kernel": _text(_get(info, "kernelVersion")),
                "os": _text(_get(info, "osImage")),
                "kubelet": _text(_get(info, "kubeletVersion")),
                "container_runtime": _text(_get(info, "containerRuntimeVersion")),
                "cpu": _text(_get(capacity, "cpu")),
                "memory": _text(_get(capacity, "memory")),
                "kvm": _text(_get(capacity, "devices.kubevirt.io/kvm")),
            }
        )
    items = _get(kubevirt, "items")
    items = items if isinstance(items, list) else [kubevirt]
    observed = next(
        (
            _text(_get(i, "status", "observedKubeVirtVersion"))
            for i in items
            if _get(i, "status", "observedKubeVirtVersion")
        ),
        None,
    )
    # istioctl version -o json: the control plane's version in meshVersion, else the client's own
    istio_version = _text(_get(istio, "meshVersion", 0, "Info", "version")) or _text(
        _get(istio, "clientVersion", "version")
    )
    return {
        "kubernetes": _text(_get(version, "serverVersion", "gitVersion")),
        "kubevirt": observed,
        "istio": istio_version,
        "nodes": nodes,
    }


def vmi_facts(folder: InputFolder, cell_folder: str) -> dict:
    status = _get(folder.json(f"{cell_folder}/vmi.json"), "status")
    return {
        "node": _text(_get(status, "nodeName")),
        "guest_os": _text(_get(status, "guestOSInfo", "prettyName")),
        "launcher_image": _text(_get(status, "launcherContainerImageVersion")),
        "phase": _text(_get(status, "phase")),
    }


def _cell(record: CellRecord) -> ClusterCell:
    data = record.model_dump(exclude={"folder"})
    data["blocks"] = tuple(TestBlock(**b) for b in data["blocks"])
    return ClusterCell(**data)


def load_index(folder: InputFolder) -> IndexFile:
    path = folder.root / INDEX
    raw = folder.read(INDEX, MAX_JSON_BYTES)
    if raw is None:
        raise IngestError(
            f"{folder.root} has no {INDEX}: point ingest at the folder `vmnetbench manifests --out` wrote"
        )
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise IngestError(f"{path} is not readable JSON ({e})") from None
    if isinstance(data, dict) and data.get("format") != FORMAT:
        raise IngestError(f"{path} has format {str(data.get('format'))[:40]!r}; this vmnetbench reads format {FORMAT}")
    try:
        return IndexFile.model_validate(data)
    except ValidationError as e:
        raise _field_error(path, e) from None


def ingest(directory: Path, results_root: Path, run_id: str | None = None) -> Path:
    """Write a run folder from DIR's logs; returns it. Everything is read and checked before the run folder
    exists, and a failure after that removes it: no `running` run.json, no folder blocking the id."""
    folder = InputFolder(directory)
    index = load_index(folder)
    try:
        scenario = parse_scenario_text(index.scenario, folder.root / INDEX)
    except ScenarioError as e:
        raise IngestError(f"{folder.root / INDEX}: field scenario: {e}") from None
    tests: list[TestKind] = list(expanded_tests(scenario))
    if [t.label for t in tests] != index.tests:
        raise IngestError(f"{folder.root / INDEX}: its scenario's tests are not the ones it lists; it was edited")
    cells = [(_cell(c), c.folder) for c in index.cells]
    for cell, _ in cells:
        if any(b.test >= len(tests) for b in cell.blocks):
            raise IngestError(
                f"{folder.root / INDEX}: field cells.{cell.label}.blocks: a test index beyond the "
                f"{len(tests)} tests it lists"
            )
    facts = cluster_facts(folder)
    rows = [
        row
        for cell, name in cells
        if not cell.skipped
        for row in cell_rows(cell, tests, folder, name, facts, scenario=index.scenario_name, kubevirt=index.kubevirt)
    ]
    writer = RunWriter(results_root, run_id or new_run_id())
    try:
        writer.start(
            {
                "scenario_name": index.scenario_name,
                "scenario_path": str(folder.root / INDEX),
                "scenario": index.scenario,
                "scenario_parsed": scenario.model_dump(mode="json", by_alias=True),
                "design": "rounds",
                "host": {"cluster": facts},
                "tools": {},
                "load": {},
                "git_sha": index.git_sha,
                "kubevirt": index.kubevirt,
                "guest": {"kind": GUEST},
                "runtime": RUNTIME,
                "ingested_from": str(folder.root),
                "manifests_generated": index.generated,
                "images": index.images,
                "skipped": {c.label: c.skipped for c, _ in cells if c.skipped},
                "tests_skipped": index.tests_skipped,
            }
        )
        for sample, latencies in rows:
            writer.add(sample)
            if latencies is not None:
                writer.add_latency(sample, latencies)
        writer.flush()
        writer.finish("complete")
    except BaseException:
        shutil.rmtree(writer.dir, ignore_errors=True)
        raise
    return writer.dir


REPEAT = re.compile(r"r([1-9][0-9]*)")


def repetitions(folder: InputFolder, cell_folder: str) -> dict[int, list[str]]:
    """The cell's saved logs by repetition: the files in logs/ are the first, those in logs/rN/ the N-th (the
    procedure of docs/cluster.md run again for the same cell)."""
    out: dict[int, list[str]] = {}
    for parts, data in folder.files_under(f"{cell_folder}/logs"):
        m = REPEAT.fullmatch(parts[0]) if len(parts) > 1 else None
        out.setdefault(int(m.group(1)) if m else 1, []).append(data.decode(errors="replace"))
    return out or {1: []}


def cell_rows(
    cell: ClusterCell,
    tests: list[TestKind],
    folder: InputFolder,
    cell_folder: str,
    facts: dict,
    *,
    scenario: str,
    kubevirt: str,
) -> list[tuple[Sample, object]]:
    """(row, latencies or None) for every block of the cell, in every repetition saved."""
    rows: list[tuple[Sample, object]] = []
    vmi = vmi_facts(folder, cell_folder)
    for repetition, texts in sorted(repetitions(folder, cell_folder).items()):
        rows += repetition_rows(
            cell,
            tests,
            cell_folder,
            facts,
            vmi,
            read_blocks(texts),
            scenario=scenario,
            kubevirt=kubevirt,
            repetition=repetition,
        )
    return rows


def repetition_rows(
    cell: ClusterCell,
    tests: list[TestKind],
    cell_folder: str,
    facts: dict,
    vmi: dict,
    blocks: dict[str, Block],
    *,
    scenario: str,
    kubevirt: str,
    repetition: int,
) -> list[tuple[Sample, object]]:
    versions = tool_versions(blocks.get(VERSIONS_BLOCK))
    tools = {**versions, **{k: facts.get(k) for k in ("kubevirt", "istio", "kubernetes")}, **vmi}
    base = Sample(
        strategy=cell.strategy,
        sidecar=cell.layout,
        scenario=scenario,
        repetition=repetition,
        peer=cell.peer,
        peer_authentication=cell.peer_authentication,
        kubevirt=kubevirt,
        binding_status=cell.binding_status,
        istio=cell.istio,
        istio_backend=cell.istio_backend,
        runtime=RUNTIME,
        guest=GUEST if cell.binding != "direct" else "pod",
        vcpus=cell.vcpus,
        memory_mb=cell.memory_mb,
        options=cell.options,
        tools=json.dumps({k: v for k, v in tools.items() if v}, sort_keys=True),
        caveat="",
    )
    rows: list[tuple[Sample, object]] = []
    for b in cell.blocks:
        test = tests[b.test]
        row = replace(base, test=test.label, direction=b.direction, protocol=str(test.protocol), **test.columns())
        block = blocks.get(b.name)
        reason = ""
        if block is None:
            where = "the VM's serial console log" if b.where == "vm" else f"the log of Job {b.name}"
            reason = f"no output of {b.name} in {cell_folder}/logs/ (save {where} there)"
        elif block.returncode is None:
            reason = f"the output of {b.name} was cut off (no exit status)"
        if reason:
            rows.append((replace(row, metric=test.primary_metric, status=Status.FAILED, reason=reason), None))
            continue
        try:
            stdout, stderr = block.text(block.stdout), block.text(block.stderr)
        except ValueError as e:
            rows.append(
                (
                    replace(
                        row,
                        metric=test.primary_metric,
                        status=Status.FAILED,
                        reason=f"the output of {b.name} is unreadable: {e}",
                    ),
                    None,
                )
            )
            continue
        outcome = test.outcome_from_output(stdout, stderr, block.returncode)
        path = (
            (TrafficPath.NO_SIDECAR if cell.sidecar == "none" else TrafficPath.UNVERIFIED)
            if outcome.status is Status.OK
            else TrafficPath.FAILED
        )
        for i, metric in enumerate(outcome.metrics):
            r = replace(row, **metric.columns(), status=outcome.status, reason=outcome.reason, path=path)
            latencies = outcome.rtt_us if i == 0 and outcome.status is Status.OK else None
            rows.append((r, latencies))
    return rows
