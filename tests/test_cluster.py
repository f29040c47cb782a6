"""The cluster path (issue 31): `vmnetbench manifests` writes objects that validate against the APIs they are for,
and `vmnetbench ingest` of the outputs the same measurement code printed on the netns runtime gives that run's
rows.

Schemas (tests/data/schemas, vendored by vendor.py there with source and commit): KubeVirt's own
api/openapi-spec/swagger.json at v1.6.0-v1.9.0 for the VirtualMachineInstance; the strict JSON schemas of
Kubernetes 1.37's published OpenAPI (kubernetes-validate 1.37.0) for Namespace, ConfigMap, Secret, Service, Pod
and Job; Istio's PeerAuthentication CRD; the Gateway API's Gateway v1 (bundle v1.5.1, as Istio 1.30.3's tests
install it) for the waypoint. Every object type the swagger document leaves open (`type: object` with
properties) is closed here (additionalProperties false), as the API server's strict field validation refuses
unknown fields."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from harness.cluster import scripts
from harness.cluster.ingest import InputFolder, ingest, read_blocks, repetitions
from harness.cluster.manifests import SCHEMA_TAGS, dns_label, write_manifests
from harness.pod.kubevirt import KubevirtRelease
from harness.run.plan import cell_specs, expanded_tests
from harness.run.scenario import load_scenario, parse_scenario_text
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "tests" / "data" / "schemas"
VMNETBENCH = str(Path(sys.executable).with_name("vmnetbench"))

# Everything a cluster scenario can name: every mode, a meshed and a STRICT client, the bindings of every release,
# declared ports, a variant whose option has no API field, and every test kind (dns and rr under load are skipped).
WIDE = """
name: wide
strategies: [direct, bridge, masquerade, masquerade-ports, slirp, passt, passt-vhost-user, slirp-mtu1500, nat-proxy]
variants:
  masquerade-ports: {strategy: masquerade, options: {declare_ports: true}}
  slirp-mtu1500: {strategy: slirp, options: {mtu: 1500}}
sidecars: [none, envoy-redirect, envoy-tproxy, ambient, ambient-reroute, ambient-waypoint, linkerd-style]
peers: [outside, meshed]
peer_authentication: [permissive, strict]
tests:
  - {kind: tcp_throughput}
  - {kind: udp_throughput}
  - {kind: rr}
  - {kind: rr, protocol: udp}
  - {kind: rr, load: same}
  - {kind: crr}
  - {kind: dns}
  - {kind: http, rate_rps: 100}
  - {kind: http, rate_rps: 100, http_version: "2", grpc: true}
"""


def _closed(node):
    """Swagger's object types with the unknown fields refused, as `kubectl apply --validate=strict` does."""
    if isinstance(node, dict):
        node = {k: _closed(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


def kubevirt_validator(tag: str) -> jsonschema.Validator:
    spec = json.loads((SCHEMAS / f"kubevirt-{tag}.json").read_text())
    schema = {"$ref": "#/definitions/v1.VirtualMachineInstance", "definitions": _closed(spec["definitions"])}
    return jsonschema.Draft4Validator(schema)


def kubernetes_validators() -> dict[str, jsonschema.Validator]:
    vendored = json.loads((SCHEMAS / "kubernetes-1.37.0-strict.json").read_text())
    defs = {"$id": "/api/_definitions.json", "$defs": vendored["$defs"]}
    registry = Registry().with_resource("/api/_definitions.json", Resource.from_contents(defs, DRAFT7))
    kinds = {
        "namespace-v1": "Namespace",
        "pod-v1": "Pod",
        "service-v1": "Service",
        "configmap-v1": "ConfigMap",
        "secret-v1": "Secret",
        "job-batch-v1": "Job",
    }
    out = {}
    for name, kind in kinds.items():
        schema = dict(vendored["kinds"][name], **{"$id": f"/api/{name}.json"})
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        out[kind] = cls(schema, registry=registry)
    return out


def peer_authentication_validator() -> jsonschema.Validator:
    schema = json.loads((SCHEMAS / "istio-peerauthentication-v1.json").read_text())["schema"]
    return jsonschema.Draft7Validator(_closed(schema))


def gateway_validator() -> jsonschema.Validator:
    """The Gateway API's Gateway v1, as Istio's tests install it (the waypoint of ambient-waypoint cells)."""
    schema = json.loads((SCHEMAS / "gateway-api-gateway-v1.json").read_text())["schema"]
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Validator, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("release", [r for r in SCHEMA_TAGS])
def test_every_object_validates_against_its_api(tmp_path: Path, release: KubevirtRelease) -> None:
    scenario = parse_scenario_text(WIDE)
    written = write_manifests(scenario, WIDE, tmp_path, kubevirt=release)
    kubernetes = kubernetes_validators()
    vmi = kubevirt_validator(SCHEMA_TAGS[release])
    peer_auth = peer_authentication_validator()
    gateway = gateway_validator()
    kinds: dict[str, int] = {}
    for doc in written.objects():
        kind = doc["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "VirtualMachineInstance":
            errors = _errors(vmi, doc)
            cloud_init = next(v["cloudInitNoCloud"] for v in doc["spec"]["volumes"] if "cloudInitNoCloud" in v)
            assert set(cloud_init) == {"secretRef"}, "inline user data: KubeVirt refuses over 2048 bytes"
        elif kind == "PeerAuthentication":
            assert doc["apiVersion"] == "security.istio.io/v1"
            errors = _errors(peer_auth, {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")})
        elif kind == "Gateway":
            assert doc["apiVersion"] == "gateway.networking.k8s.io/v1"
            assert doc["spec"]["gatewayClassName"] == "istio-waypoint"
            errors = _errors(gateway, doc)
        else:
            errors = _errors(kubernetes[kind], doc)
        assert not errors, f"{kind} {doc['metadata'].get('namespace')}/{doc['metadata']['name']}: {errors[:3]}"
        assert len(doc["metadata"]["name"]) <= 63
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "Pod",
        "Job",
        "VirtualMachineInstance",
        "PeerAuthentication",
        "Gateway",
    } <= set(kinds)


def test_the_default_scenario_on_a_cluster(tmp_path: Path) -> None:
    """`vmnetbench manifests scenarios/smoke.yaml --out DIR`: a folder per cell a release can run, each object
    valid, every other cell skipped with its reason."""
    done = _cli("manifests", "scenarios/smoke.yaml", "--out", str(tmp_path), cwd=REPO)
    index = json.loads((tmp_path / "index.json").read_text())
    scenario, _ = load_scenario(REPO / "scenarios" / "smoke.yaml")
    assert len(index["cells"]) == len(cell_specs(scenario))
    validators = {**kubernetes_validators(), "VirtualMachineInstance": kubevirt_validator(index["kubevirt_api"])}
    for cell in index["cells"]:
        folder = tmp_path / cell["folder"]
        if cell["skipped"]:
            assert not folder.exists() and f"skipped {cell['label']}: {cell['skipped']}" in done.stdout
            continue
        docs = [
            d
            for f in [folder / "setup.yaml", *sorted((folder / "jobs").iterdir())]
            for d in yaml.safe_load_all(f.read_text())
            if d
        ]
        for doc in docs:
            assert not _errors(validators[doc["kind"]], doc), (cell["label"], doc["kind"])
        assert (folder / "procedure.md").read_text().count("kubectl apply -f $C/jobs/") == len(
            [b for b in cell["blocks"] if b["where"] == "job"]
        )
    assert {c["binding"] for c in index["cells"] if not c["skipped"]} == {"direct", "slirp", "bridge", "masquerade"}


def test_the_validators_refuse_what_the_apis_refuse() -> None:
    """The checks above can fail: a misspelt binding, an unknown Pod field, a bad mTLS mode are each refused."""
    vmi = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm"},
        "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "passtBinding": {}}]}}},
    }
    assert _errors(kubevirt_validator("v1.7.0"), vmi), "passtBinding is not in KubeVirt 1.7's API"
    assert not _errors(kubevirt_validator("v1.8.0"), vmi)
    bad = copy.deepcopy(vmi)
    bad["spec"]["domain"]["devices"]["interfaces"][0] = {"name": "default", "masquerad": {}}
    assert _errors(kubevirt_validator("v1.9.0"), bad)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "comand": ["x"]}]},
    }
    assert _errors(kubernetes_validators()["Pod"], pod)
    assert _errors(peer_authentication_validator(), {"spec": {"mtls": {"mode": "STRIC"}}})


def test_what_a_cluster_cannot_reproduce_is_skipped_with_the_reason(tmp_path: Path) -> None:
    scenario = parse_scenario_text(WIDE)
    written = write_manifests(scenario, WIDE, tmp_path, kubevirt=KubevirtRelease.V1_9)
    skipped = {c.label: c.skipped for c in written.cells if c.skipped}
    assert "never shipped" in skipped["nat-proxy-none"]
    assert "mtu" in skipped["slirp-mtu1500-ambient"]
    assert "core passt is vhost-user" in skipped["passt-envoy-redirect"]
    assert not any(c.skipped for c in written.cells if c.strategy in ("masquerade-ports", "passt-vhost-user"))
    index = json.loads((tmp_path / "index.json").read_text())
    assert set(index["tests_skipped"]) == {"rr_tcp_closed+load_same", "dns_udp"}
    # The 1.7 release spells passt as the network binding plugin, 1.9 as the core passtBinding.
    older = write_manifests(scenario, WIDE, tmp_path / "old", kubevirt=KubevirtRelease.V1_7)
    interfaces = {
        d["metadata"]["namespace"]: d["spec"]["domain"]["devices"]["interfaces"][0]
        for d in older.objects()
        if d["kind"] == "VirtualMachineInstance"
    }
    assert interfaces["vmnb-wide-passt-vhost-user-none"]["binding"] == {"name": "passt"}
    assert interfaces["vmnb-wide-slirp-none"] == {"name": "default", "slirp": {}}
    declared = interfaces["vmnb-wide-masquerade-ports-none"]["ports"]
    assert {p["port"] for p in declared} >= {5201, 11111, 11112, 8000, 8001}


def test_mesh_modes_label_and_annotate_as_upstream_documents(tmp_path: Path) -> None:
    scenario = parse_scenario_text(WIDE)
    written = write_manifests(scenario, WIDE, tmp_path, kubevirt=KubevirtRelease.V1_9)
    docs = list(written.objects())
    namespaces = {d["metadata"]["name"]: d["metadata"] for d in docs if d["kind"] == "Namespace"}
    assert namespaces["vmnb-wide-masquerade-envoy-redirect"]["labels"]["istio-injection"] == "enabled"
    assert namespaces["vmnb-wide-masquerade-ambient"]["labels"]["istio.io/dataplane-mode"] == "ambient"
    assert "istio-injection" not in namespaces["vmnb-wide-masquerade-envoy-redirect-outside"]["labels"]
    assert namespaces["vmnb-wide-masquerade-linkerd-style"]["annotations"] == {"linkerd.io/inject": "enabled"}
    vmis = {d["metadata"]["namespace"]: d["metadata"] for d in docs if d["kind"] == "VirtualMachineInstance"}
    assert vmis["vmnb-wide-masquerade-envoy-redirect"]["annotations"]["sidecar.istio.io/inject"] == "true"
    assert vmis["vmnb-wide-masquerade-envoy-tproxy"]["annotations"]["sidecar.istio.io/interceptionMode"] == "TPROXY"
    assert vmis["vmnb-wide-masquerade-ambient-reroute"]["annotations"] == {
        "istio.io/reroute-virtual-interfaces": "k6t-eth0"
    }
    # A meshed client is in the cell's own namespace; its Jobs use Istio's native sidecar so they complete.
    meshed = "vmnb-wide-bridge-envoy-redirect-meshed"
    jobs = [d for d in docs if d["kind"] == "Job" and d["metadata"]["namespace"] == meshed]
    assert jobs and all(
        j["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true" for j in jobs
    )
    services = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "vm"}
    names = {(p["port"], p["protocol"]): p["name"] for p in services["vmnb-wide-direct-none"]["spec"]["ports"]}
    assert names[8000, "TCP"] == "http-echo" and names[8001, "TCP"] == "grpc-echo"
    assert names[5201, "TCP"] == "tcp-5201" and names[5201, "UDP"] == "udp-5201"


CLUSTER_SCENARIO = """
name: cluster-ingest
runtime: netns
guest: netns
strategies: [direct, masquerade]
sidecars: [none]
repetitions: 1
design: rounds
keep_outputs: true
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}
  - {kind: udp_throughput, duration_s: 1, rate_mbit: 100}
  - {kind: rr, duration_s: 1}
  - {kind: crr, duration_s: 0.5}
  - {kind: http, rate_rps: 200, duration_s: 1}
"""
NETNS_ONLY = {
    # What the harness measures around the tool on its own bed, which a cluster's Job cannot: the bed's CPU, the
    # harness's own CPU, the bed's setup and teardown.
    "cpu_process",
    "cpu_kernel",
    "cpu_per_gb",
    "cpu_bed_per_gb",
    "cpu_per_10k_req",
    "userspace_bytes_per_byte",
    "harness_cpu",
    "setup_time",
    "teardown_time",
}
SAME = [
    "status",
    "reason",
    "value",
    "unit",
    "retransmits",
    "cpu_client_pct",
    "cpu_server_pct",
    "message_bytes",
    "streams",
    "offered_rps",
    "protocol",
]
"""The columns a test's rows must have alike on both; the rest say where the row came from (runtime, guest,
path, tools) or are the netns bed's (MTUs, slot)."""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([VMNETBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def _log_blocks(lib: Path, blocks: list[tuple[str, dict]]) -> str:
    """The blocks as the cluster prints them: the generated lib.sh's own vmnb_block, run by bash, around a
    command that replays each saved output."""
    lines = [f". {lib}"]
    for name, transcript in blocks:
        folder = Path(tempfile.mkdtemp(dir=lib.parent))
        (folder / "out").write_text(transcript["stdout"])
        (folder / "err").write_text(transcript["stderr"])
        lines.append(
            f"vmnb_block {name} bash -c 'cat {folder}/out; cat {folder}/err >&2; exit {transcript['returncode']}'"
        )
    lines.append("vmnb_versions")
    done = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="runs the netns runtime")
def test_ingest_of_the_same_outputs_gives_the_netns_rows(tmp_path: Path) -> None:
    scenario_path = tmp_path / "cluster-ingest.yaml"
    scenario_path.write_text(CLUSTER_SCENARIO)
    results = tmp_path / "results"
    _cli("run", str(scenario_path), "--results", str(results), "--run-id", "c1a5e1", cwd=REPO)
    netns_dir = results / "c1a5e1"
    manifests = tmp_path / "manifests"
    _cli("manifests", str(scenario_path), "--out", str(manifests), "--kubevirt", "1.9", cwd=REPO)
    index = json.loads((manifests / "index.json").read_text())
    scenario, _ = load_scenario(scenario_path)
    tests = list(expanded_tests(scenario))
    lib = tmp_path / "lib" / "lib.sh"
    lib.parent.mkdir()
    lib.write_text(scripts.lib_sh())
    for cell in index["cells"]:
        assert not cell["skipped"], cell
        per_place: dict[str, list] = {"vm": [], "job": []}
        for block in cell["blocks"]:
            label = f"{cell['label']}-{tests[block['test']].label}-{block['direction']}-r1".replace("@", "-")
            transcript = json.loads((netns_dir / "raw" / f"output-{label}.json").read_text())
            per_place[block["where"]].append((block["name"], transcript))
        logs = manifests / cell["folder"] / "logs"
        # The VM's serial console: carriage returns, and the kernel's and getty's own lines between the blocks.
        console = _log_blocks(lib, per_place["vm"]).replace("\n", "\r\n")
        noise = "[   12.345678] cloud-init[612]: Cloud-init v. 22.4.2 running 'modules:final'\r\nvm login: \r\n"
        (logs / "guest-console-log.log").write_text(noise + console + noise)
        for name, transcript in per_place["job"]:
            (logs / f"{name}.log").write_text(_log_blocks(lib, [(name, transcript)]))
    # What the README's procedure saves about the cluster, in kubectl's and istioctl's JSON shapes.
    facts = manifests / "cluster"
    facts.mkdir()
    (facts / "version.json").write_text(json.dumps({"serverVersion": {"gitVersion": "v1.34.2"}}))
    (facts / "kubevirt.json").write_text(json.dumps({"items": [{"status": {"observedKubeVirtVersion": "v1.9.0"}}]}))
    (facts / "istio.json").write_text(
        json.dumps(
            {
                "clientVersion": {"version": "1.28.1"},
                "meshVersion": [{"Component": "pilot", "Info": {"version": "1.28.0"}}],
            }
        )
    )
    _cli("ingest", str(manifests), "--results", str(results), "--run-id", "c1a5e2", cwd=REPO)
    cluster_dir = results / "c1a5e2"

    netns = pd.read_parquet(netns_dir / "samples.parquet")
    cluster = pd.read_parquet(cluster_dir / "samples.parquet")
    netns = netns[~netns.metric.isin(NETNS_ONLY)]
    key = ["strategy", "sidecar", "test", "direction", "metric"]
    a = netns.set_index(key).sort_index()
    b = cluster.set_index(key).sort_index()
    assert list(a.index) == list(b.index)
    assert len(a) >= 2 * 5 * 2 * 2  # 2 cells, 5 tests, 2 directions, at least 2 metrics each
    assert (a.status == "ok").all(), a[a.status != "ok"].reason.to_dict()
    pd.testing.assert_frame_equal(a[SAME], b[SAME], check_dtype=False)
    assert set(cluster.runtime) == {"kubernetes"}
    assert set(cluster.guest) == {"pod", "kubevirt"}
    assert set(cluster.path) == {"no-sidecar"}
    tools = json.loads(cluster.tools.iat[0])
    assert tools["iperf3"].startswith("3.") and "kernel" in tools
    # Every latency, not only the percentiles: the merged distributions are the same.
    lat_a = pd.read_parquet(netns_dir / "latency.parquet").sort_values(key[:4] + ["rtt_us"])
    lat_b = pd.read_parquet(cluster_dir / "latency.parquet").sort_values(key[:4] + ["rtt_us"])
    assert len(lat_a) == len(lat_b) > 0
    assert list(lat_a.rtt_us) == list(lat_b.rtt_us)

    _cli("report", str(cluster_dir), cwd=REPO)
    answer = (cluster_dir / "answer.md").read_text()
    assert "Kubernetes v1.34.2, KubeVirt v1.9.0, Istio 1.28.0" in answer
    assert "masquerade" in answer


PROGRAMS = """
name: programs
strategies: [direct]
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0}
  - {kind: udp_throughput, duration_s: 1, rate_mbit: 50}
  - {kind: rr, duration_s: 1}
  - {kind: rr, duration_s: 1, protocol: udp}
  - {kind: crr, duration_s: 0.5}
  - {kind: http, rate_rps: 200, duration_s: 1}
  - {kind: http, rate_rps: 200, duration_s: 1, http_version: "2", grpc: true}
"""


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="builds network namespaces")
def test_the_generated_programs_measure(tmp_path: Path, bed) -> None:
    """The programs a cluster runs, run here: the peer's peer.sh in one namespace, the VM side's side.sh (a plain
    pod's, for `direct`) in another, then each ingress Job's command; their printed blocks, ingested, are ok rows
    for every test both ways. Only the Services' names are replaced by the namespaces' addresses and /opt/vmnb by
    a folder here; the tools are already on PATH, so the programs skip their install, as on a prepared image."""
    from harness.guests.tools import compile_guest_tools

    scenario = parse_scenario_text(PROGRAMS)
    manifests = tmp_path / "m"
    written = write_manifests(scenario, PROGRAMS, manifests, kubevirt=KubevirtRelease.V1_9)
    cell = next(c for c in written.cells if not c.skipped)
    docs = list(written.objects())
    tools = tmp_path / "opt"
    bin_dir = tmp_path / "bin"
    tools.mkdir()
    bin_dir.mkdir()
    for name, path in compile_guest_tools().items():
        (bin_dir / name).symlink_to(path)
    vm_service = f"vm.{cell.namespace}.svc.cluster.local"
    peer_service = f"peer.{cell.peer_namespace}.svc.cluster.local"

    def here(text: str) -> str:
        return (
            text.replace(scripts.TOOLS_DIR, str(tools))
            .replace(vm_service, bed.plan.pod_ip)
            .replace(peer_service, bed.plan.peer_ip)
        )

    for doc in docs:
        if doc["kind"] == "ConfigMap":
            for name, text in doc["data"].items():
                (tools / name).write_text(here(text))
    jobs = [d for d in docs if d["kind"] == "Job"]
    assert len(jobs) == 7

    def start(program: str, ns, name: str):
        argv = ["bash", "-c", f"PATH={bin_dir}:$PATH exec bash {tools}/{program}"]
        proc = bed.tracker.start(argv, name=f"{bed.run_id}-{name}", netns=ns.name)
        bed.on_teardown(name, lambda: bed.tracker.stop(proc))
        return proc

    start("peer.sh", bed.peer, "peer")
    side = start("side.sh", bed.pod, "side")
    wait_for(lambda: "vmnb|egress|done" in side.log_path.read_text(), 120, "the VM side's egress clients")
    logs = manifests / dns_label(cell.label) / "logs"
    (logs / "side.log").write_text(side.log_path.read_text())
    for job in jobs:
        command = [here(a) for a in job["spec"]["template"]["spec"]["containers"][0]["command"]]
        command = ["bash", "-c", f'PATH={bin_dir}:$PATH exec "$@"', "job", *command]
        done = bed.tracker.run(command, name=f"{bed.run_id}-{job['metadata']['name']}", netns=bed.peer.name, timeout=60)
        assert done.returncode == 0, done.stderr
        (logs / f"{job['metadata']['name']}.log").write_text(done.stdout)
    run_dir = ingest(manifests, tmp_path / "results", "c1a5e3")
    rows = pd.read_parquet(run_dir / "samples.parquet")
    primary = rows[rows.metric.isin(["throughput", "udp_goodput", "rtt_p50", "crr_rate", "http_latency_p50"])]
    assert len(primary) == 14, primary[["test", "direction", "metric"]]
    assert (primary.status == "ok").all(), primary[primary.status != "ok"][["test", "direction", "reason"]]
    assert (primary.value > 0).all()
    assert set(primary.test) == {
        "tcp_throughput",
        "udp_throughput@50M",
        "rr_tcp_closed",
        "rr_udp_closed",
        "crr",
        "http@200",
        "grpc@200",
    }


def test_blocks_survive_a_serial_console() -> None:
    """Base64 lines between the kernel's: read back whole; a re-run replaces the first; a cut-off one has no
    exit status; garbage is not a block."""
    text = (
        "boot noise vmnb|not-a-block\r\n"
        "vmnb|t01-a|o|aGVsbG8K\r\n[  1.0] kernel line\r\nvmnb|t01-a|rc|0\r\n"
        "vmnb|t02-b|o|Zmlyc3QK\nvmnb|t02-b|rc|1\nvmnb|t02-b|o|c2Vjb25kCg==\nvmnb|t02-b|rc|0\n"
        "vmnb|t03-c|o|Y3V0\n"
    )
    blocks = read_blocks([text])
    assert blocks["t01-a"].text(blocks["t01-a"].stdout) == "hello\n" and blocks["t01-a"].returncode == 0
    assert blocks["t02-b"].text(blocks["t02-b"].stdout) == "second\n" and blocks["t02-b"].returncode == 0
    assert blocks["t03-c"].returncode is None
    assert "not-a-block" not in blocks


def test_each_saved_repetition_is_its_own(tmp_path: Path) -> None:
    """logs/ holds the first run of a cell's procedure, logs/rN/ the N-th; other subfolders are the first's."""
    (tmp_path / "logs" / "r2").mkdir(parents=True)
    (tmp_path / "logs" / "jobs").mkdir()
    (tmp_path / "logs" / "console.log").write_text("a")
    (tmp_path / "logs" / "jobs" / "t01.log").write_text("b")
    (tmp_path / "logs" / "r2" / "console.log").write_text("c")
    assert repetitions(InputFolder(tmp_path), ".") == {1: ["a", "b"], 2: ["c"]}
    assert repetitions(InputFolder(tmp_path), "nothing") == {1: []}


def test_bad_input_is_one_sentence(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(yaml.safe_load(WIDE)))
    done = subprocess.run(
        [VMNETBENCH, "manifests", str(scenario), "--kubevirt", "2.0", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: option --kubevirt:") and "1.9" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "o").exists()
    done = subprocess.run([VMNETBENCH, "ingest", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "index.json" in done.stderr and "Traceback" not in done.stderr
