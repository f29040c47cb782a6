"""`vmnetbench manifests`: a scenario's cells as Kubernetes objects, so a cluster with KVM, KubeVirt and a mesh
measures what this machine can only stand in for.

Per cell, in its own namespace (labelled for the mesh mode as Istio's installation reads it):
- the VM: a VirtualMachineInstance with the binding's interface as the chosen KubeVirt release spells it, its
  ports, `logSerialConsole` (its egress clients print to the serial console, which KubeVirt's
  `guest-console-log` container streams to `kubectl logs`), a containerDisk and cloud-init (a Secret: KubeVirt
  refuses inline user data over 2048 bytes, pkg/virt-api/webhooks/validating-webhook/admitters/
  vmi-create-admitter.go); for `direct`, a plain Pod instead;
- a Service `vm` whose port names give Istio the same protocol per port as the harness's bed
  (harness/pod/protocols.py: `http-echo`, `grpc-echo`; `tcp-<port>`/`udp-<port>` for the others, which the bed
  leaves unnamed and Istio sniffs as TCP);
- the peer: a Pod running the servers the VM's egress clients dial, with its Service `peer`, in a namespace
  outside the mesh (`<namespace>-outside`) or, for a meshed client, in the cell's own namespace;
- one Job per ingress test, in the peer's namespace, running the test's client against the VM's Service.

Mesh modes, as upstream documents them: Istio sidecar injection by the namespace label `istio-injection:
enabled` and the VMI annotation `sidecar.istio.io/inject: "true"` (kubevirt/kubevirt tests/network/vmi_istio.go);
TPROXY interception by `sidecar.istio.io/interceptionMode: TPROXY`; ambient by `istio.io/dataplane-mode:
ambient`; Linkerd by the namespace annotation `linkerd.io/inject: enabled`. Meshed pods hold their start until
the proxy is ready (`proxy.istio.io/config` holdApplicationUntilProxyStarts) and Jobs use Istio's native sidecar
(`sidecar.istio.io/nativeSidecar`) so they complete. The launcher pod's own annotations
(`traffic.sidecar.istio.io/kubevirtInterfaces`, `istio.io/reroute-virtual-interfaces`) are virt-controller's to
write, as harness/pod/kubevirt.py models per release; only `ambient-reroute` sets the latter on the VMI itself.

Cells a cluster cannot reproduce are listed in index.json with the reason and get no objects: the research
bindings that never shipped, a binding the release does not ship, options with no KubeVirt API field, ambient
without DNS capture (an istio-cni installation setting), and test kinds that need the harness's own bed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from harness.analysis.provenance import git_sha
from harness.analysis.results import now
from harness.cluster import scripts
from harness.kinds import TestKind
from harness.lab.vocabulary import Direction
from harness.pod import waypoint
from harness.pod.bindings import binding_status, shipping, vmi_interface
from harness.pod.istio import istio_release
from harness.pod.kubevirt import REROUTE_ANNOTATION, KubevirtRelease, Shipping, release
from harness.pod.mesh import ClusterObjects, mesh_for
from harness.pod.protocols import SERVICE_PORTS
from harness.run.plan import CellSpec, cell_specs, expanded_tests
from harness.run.scenario import Scenario
from strategies import strategy_class

FORMAT = 1
INDEX = "index.json"
CELL_LABEL = "vmnetbench.io/cell"
ROLE_LABEL = "vmnetbench.io/role"
PART_OF = {"app.kubernetes.io/part-of": "vmnetbench"}
SCHEMA_TAGS = {
    KubevirtRelease.V1_6: "v1.6.0",
    KubevirtRelease.V1_7: "v1.7.0",
    KubevirtRelease.V1_8: "v1.8.0",
    KubevirtRelease.V1_9: "v1.9.0",
}
"""The KubeVirt tag whose API each release's manifests are written for (and validated against, in the tests)."""
CLUSTER_MEMORY_MB = 1024
"""The VM's memory floor: a Debian cloud image installing gcc and compiling the tools needs about this."""
OPTIONS_ON_A_CLUSTER = {
    "declare_ports": "the VMI's interface lists the test ports",
    "istio": "KubeVirt decides it from the VMI's sidecar.istio.io/inject, as the option's default does",
    "build": "the cluster's passt is the one its KubeVirt release ships",
}
"""Strategy options a cluster honours (or that describe what it does anyway); any other non-default option has no
KubeVirt API field, so its cell is skipped."""


@dataclass(frozen=True)
class Images:
    """The images the objects name; nothing here pulls them. `tools`: any Debian 12 image (the tools are installed
    at start unless already there); `vm_disk`: a containerDisk with cloud-init whose serial console is ttyS0."""

    tools: str = "docker.io/library/debian:12"
    vm_disk: str = "quay.io/containerdisks/debian:12"


@dataclass(frozen=True)
class Block:
    """One test in one direction: what the client prints under `name`, where it runs."""

    name: str
    test: int
    """Its index in the scenario's expanded tests."""
    direction: str
    where: str
    """`job` (ingress: a Job in the peer's namespace) or `vm` (egress: the VM's own program)."""


@dataclass(frozen=True)
class ClusterCell:
    label: str
    strategy: str
    """The strategy or variant, as rows name it."""
    binding: str
    """The strategy class's name."""
    layout: str
    sidecar: str
    peer: str
    peer_authentication: str
    namespace: str
    peer_namespace: str
    binding_status: str
    options: str
    vcpus: int | None
    memory_mb: int | None
    skipped: str = ""
    blocks: tuple[Block, ...] = ()
    istio: str = ""
    """The Istio release an Istio mode's cell models (the cluster's Istio should be it), else empty."""
    istio_backend: str = ""
    """Its redirection backend: the cluster's Istio installed with values.global.nativeNftables for nftables."""

    def record(self) -> dict:
        return asdict(self)


def dns_label(text: str, limit: int = 63) -> str:
    """`text` as a DNS-1123 label (lower case, digits, `-`), shortened with a hash of the whole if too long."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if len(label) <= limit:
        return label
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{label[: limit - 9].rstrip('-')}-{digest}"


def block_name(index: int, test: TestKind, direction: Direction) -> str:
    return dns_label(f"t{index + 1:02d}-{test.label}-{direction}", 52)  # a Job's pods add a suffix to its name


def cell_skip_reason(scenario: Scenario, spec: CellSpec, kubevirt: KubevirtRelease) -> str:
    cls = strategy_class(scenario.strategy_of(spec.strategy))
    status = binding_status(kubevirt, cls.name)
    if not shipping(kubevirt, cls.name).runnable:
        return f"{cls.name} in KubeVirt {kubevirt}: {status}"
    options = scenario.options_for(spec.strategy)
    default = cls.Options().model_dump()
    changed = [k for k, v in options.model_dump().items() if v != default.get(k) and k not in OPTIONS_ON_A_CLUSTER]
    if changed:
        return f"option {', '.join(changed)} of {cls.name} has no KubeVirt API field"
    release = istio_release(scenario.istio)
    if mesh_for(spec.sidecar).node_proxy and spec.dns_capture != release.ambient_dns_capture:
        state = "on" if spec.dns_capture else "off"
        return (
            f"ambient with DNS capture {state} is an istio-cni installation setting (ambient.dnsCapture, "
            f"{'on' if release.ambient_dns_capture else 'off'} by default in Istio {release.name}), not per cell"
        )
    if spec.istio and spec.istio.backend != scenario.istio_backends[0]:
        return (
            f"Istio's redirection backend is an installation setting (values.global.nativeNftables), not per cell: "
            f"these manifests are for a cluster installed with the {scenario.istio_backends[0]} backend"
        )
    if spec.pod_mtu or spec.guest_mtu:
        return "an MTU sweep sets the CNI's MTU, which is the cluster's"
    return ""


def cluster_cells(scenario: Scenario, kubevirt: KubevirtRelease, tests: list[TestKind]) -> list[ClusterCell]:
    prefix = dns_label(f"vmnb-{scenario.name}", 30)
    cells = []
    for spec in cell_specs(scenario):
        cls = strategy_class(scenario.strategy_of(spec.strategy))
        namespace = dns_label(f"{prefix}-{spec.label}", 54)  # room for "-outside"
        blocks = tuple(
            Block(block_name(i, t, d), i, str(d), "job" if d is Direction.INGRESS else "vm")
            for i, t in enumerate(tests)
            if not t.cluster_reason()
            for d in map(Direction, t.directions)
        )
        qemu = scenario.qemu
        cells.append(
            ClusterCell(
                label=spec.label,
                strategy=spec.strategy,
                binding=cls.name,
                layout=spec.layout,
                sidecar=str(spec.sidecar),
                peer=str(spec.client.peer),
                peer_authentication=str(spec.client.authentication),
                namespace=namespace,
                peer_namespace=namespace if spec.client.meshed else f"{namespace}-outside",
                binding_status=binding_status(kubevirt, cls.name),
                options=scenario.options_for(spec.strategy).model_dump_json(),
                istio=str(spec.istio.release) if spec.istio else "",
                istio_backend=str(spec.istio.backend) if spec.istio else "",
                vcpus=qemu.vcpus if cls.has_vm else None,
                memory_mb=max(qemu.memory_mb, CLUSTER_MEMORY_MB) if cls.has_vm else None,
                skipped=cell_skip_reason(scenario, spec, kubevirt),
                blocks=blocks,
            )
        )
    return cells


def service_ports(tests: list[TestKind]) -> list[dict]:
    """The Service's ports: the bed's names where it names them, `tcp-<port>` / `udp-<port>` otherwise."""
    named = {p.port: p.name for p in SERVICE_PORTS}
    tcp = sorted({p for t in tests for p in t.ports()[0]})
    udp = sorted({p for t in tests for p in t.ports()[1]})
    ports = [{"name": named.get(p, f"tcp-{p}"), "port": p, "targetPort": p, "protocol": "TCP"} for p in tcp]
    return ports + [{"name": f"udp-{p}", "port": p, "targetPort": p, "protocol": "UDP"} for p in udp]


def interface(cell: ClusterCell, kubevirt: KubevirtRelease, tests: list[TestKind]) -> dict:
    """The VMI's pod-network interface for the binding, as the release spells it (api v1.Interface): the binding
    field is the strategy's own declaration (harness/pod/bindings.py)."""
    options = json.loads(cell.options)
    field = vmi_interface(kubevirt, cell.binding)
    if field is None:
        raise ValueError(f"no KubeVirt {kubevirt} interface for {cell.binding}")
    iface: dict = {"name": "default", **field}
    if options.get("declare_ports"):
        iface["ports"] = [
            {"name": p["name"][:15], "port": p["port"], "protocol": p["protocol"]} for p in service_ports(tests)
        ]
    return iface


def _plain_pod(cell: ClusterCell) -> bool:
    """The reference cell: the service in the pod itself, no VM."""
    return cell.binding_status == Shipping.PLAIN_POD


def _meta(name: str, namespace: str | None, cell: ClusterCell, role: str, annotations: dict | None = None) -> dict:
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {**PART_OF, CELL_LABEL: dns_label(cell.label), ROLE_LABEL: role}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _pod_spec(command: list[str], images: Images) -> dict:
    """A pod running one of the project's programs from the `vmnb-tools` ConfigMap."""
    return {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "vmnb", "configMap": {"name": "vmnb-tools", "defaultMode": 0o755}}],
        "containers": [
            {
                "name": "tools",
                "image": images.tools,
                "command": command,
                "volumeMounts": [{"name": "vmnb", "mountPath": scripts.TOOLS_DIR}],
            }
        ],
    }


def _pod(
    name: str, namespace: str, cell: ClusterCell, role: str, annotations: dict, program: str, images: Images
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(name, namespace, cell, role, annotations),
        "spec": _pod_spec(["bash", f"{scripts.TOOLS_DIR}/{program}"], images),
    }


def _service(name: str, namespace: str, cell: ClusterCell, ports: list[dict]) -> dict:
    """A Service selecting the cell's pod of role `name` (the VM's launcher pod carries the VMI's labels)."""
    selector = {CELL_LABEL: dns_label(cell.label), ROLE_LABEL: name}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, cell, name),
        "spec": {"selector": selector, "ports": ports},
    }


def _waypoint(cell: ClusterCell) -> dict:
    """The namespace's waypoint as `istioctl waypoint apply --for service` writes it: a Gateway of class
    istio-waypoint listening for HBONE on 15008, named by the namespace's istio.io/use-waypoint label."""
    meta = _meta(waypoint.SERVICE_ACCOUNT, cell.namespace, cell, "waypoint")
    meta["labels"]["istio.io/waypoint-for"] = "service"
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": meta,
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": waypoint.HBONE_PORT, "protocol": "HBONE"}],
        },
    }


def _namespace(name: str, mode: ClusterObjects) -> dict:
    metadata: dict = {"name": name, "labels": {**PART_OF, **mode.namespace_labels}}
    if mode.namespace_annotations:
        metadata["annotations"] = dict(mode.namespace_annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def _cloud_config(files: dict[str, str]) -> str:
    config = {
        "write_files": [
            {
                "path": f"{scripts.TOOLS_DIR}/{name}",
                "encoding": "b64",
                "permissions": "0755",
                "content": base64.b64encode(text.encode()).decode(),
            }
            for name, text in files.items()
        ],
        # The serial console is what KubeVirt's guest-console-log container streams (logSerialConsole).
        "runcmd": [["bash", "-c", f"bash {scripts.TOOLS_DIR}/side.sh > /dev/ttyS0 2>&1"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, width=10_000)


def _job(block: Block, cell: ClusterCell, test: TestKind, vm_service: str, annotations: dict, images: Images) -> dict:
    argv = scripts.job_argv(
        block.name, vm_service, scripts.probe_port([test]), scripts.client_command(test, vm_service)
    )
    template_meta: dict = {"labels": {**PART_OF, CELL_LABEL: dns_label(cell.label), ROLE_LABEL: "client"}}
    if annotations:
        template_meta["annotations"] = annotations
    template = {"metadata": template_meta, "spec": _pod_spec(argv, images)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(block.name, cell.peer_namespace, cell, "client"),
        "spec": {"backoffLimit": 0, "template": template},
    }


def cell_objects(
    cell: ClusterCell, kubevirt: KubevirtRelease, tests: list[TestKind], images: Images
) -> tuple[list[dict], list[tuple[str, dict]]]:
    """(the cell's objects, its Jobs by block name)."""
    mode = mesh_for(cell.sidecar).cluster
    meshed_peer = cell.peer == "meshed"
    vm_service = f"vm.{cell.namespace}.svc.cluster.local"
    peer_service = f"peer.{cell.peer_namespace}.svc.cluster.local"
    egress = [(b.name, scripts.client_command(tests[b.test], peer_service)) for b in cell.blocks if b.where == "vm"]
    used = [tests[i] for i in sorted({b.test for b in cell.blocks})]
    side = scripts.side_sh(used, egress, peer_service, stay=_plain_pod(cell))
    objects = [_namespace(cell.namespace, mode)]
    if mode.waypoint:
        objects.append(_waypoint(cell))
    if not meshed_peer:
        objects.append(_namespace(cell.peer_namespace, ClusterObjects()))
    for namespace in dict.fromkeys([cell.namespace, cell.peer_namespace]):
        data = scripts.files(
            side=side if namespace == cell.namespace else None,
            peer=scripts.peer_sh(used) if namespace == cell.peer_namespace else None,
        )
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "data": data,
                "metadata": _meta("vmnb-tools", namespace, cell, "tools"),
            }
        )
    if cell.peer_authentication == "strict":
        objects.append(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": _meta("default", cell.namespace, cell, "mesh"),
                "spec": {"mtls": {"mode": "STRICT"}},
            }
        )
    vm_annotations = dict(mode.pod_annotations)
    if mode.reroute_vm_interfaces:
        vm_annotations[REROUTE_ANNOTATION] = ",".join(strategy_class(cell.binding).vm_interfaces)
    if _plain_pod(cell):
        objects.append(_pod("vm", cell.namespace, cell, "vm", vm_annotations, "side.sh", images))
    else:
        userdata = _cloud_config(scripts.files(side=side))
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "stringData": {"userdata": userdata},
                "metadata": _meta("vm-cloud-init", cell.namespace, cell, "vm"),
            }
        )
        objects.append(_vmi(cell, kubevirt, used, images, vm_annotations))
    ports = service_ports(used)
    objects.append(_service("vm", cell.namespace, cell, ports))
    peer_annotations = mode.pod_annotations if meshed_peer else {}
    objects.append(_pod("peer", cell.peer_namespace, cell, "peer", peer_annotations, "peer.sh", images))
    objects.append(_service("peer", cell.peer_namespace, cell, ports))
    job_annotations = {**mode.pod_annotations, **mode.job_annotations} if meshed_peer else {}
    jobs = [
        (b.name, _job(b, cell, tests[b.test], vm_service, job_annotations, images))
        for b in cell.blocks
        if b.where == "job"
    ]
    return objects, jobs


def _vmi(
    cell: ClusterCell, kubevirt: KubevirtRelease, used: list[TestKind], images: Images, annotations: dict[str, str]
) -> dict:
    cloud_init = {"secretRef": {"name": "vm-cloud-init"}}  # the user data (Go: UserDataSecretRef)
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": _meta("vm", cell.namespace, cell, "vm", annotations),
        "spec": {
            "domain": {
                "cpu": {"cores": cell.vcpus},
                "memory": {"guest": f"{cell.memory_mb}Mi"},
                "devices": {
                    "disks": [
                        {"name": "containerdisk", "disk": {"bus": "virtio"}},
                        {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                    ],
                    "interfaces": [interface(cell, kubevirt, used)],
                    "logSerialConsole": True,
                },
            },
            "networks": [{"name": "default", "pod": {}}],
            "terminationGracePeriodSeconds": 0,
            "volumes": [
                {"name": "containerdisk", "containerDisk": {"image": images.vm_disk}},
                {"name": "cloudinitdisk", "cloudInitNoCloud": cloud_init},
            ],
        },
    }


@dataclass
class Written:
    directory: Path
    cells: list[ClusterCell]
    files: list[Path]

    def objects(self) -> Iterator[dict]:
        for path in self.files:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            yield from (d for d in yaml.load_all(path.read_text(), Loader=loader) if d)  # noqa: S506 - a safe loader


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml's when PyYAML has it: 10x faster
    """Multi-line strings (the scripts, the sources, cloud-config) as literal blocks, readable in the files."""


_Dumper.add_representer(
    str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None)
)


def dump(documents: list[dict]) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=10_000)


def write_manifests(
    scenario: Scenario,
    scenario_text: str,
    out: Path,
    *,
    kubevirt: KubevirtRelease | str | None = None,
    images: Images = Images(),
) -> Written:
    """Every cell's objects under `out/<cell>/` (setup.yaml, jobs/NN-*.yaml), and out/index.json: what ingest
    needs to read the outputs back (the scenario, the cells, each test's block name)."""
    release_name = release(kubevirt or scenario.kubevirt).name
    if release_name not in SCHEMA_TAGS:
        raise ValueError(
            f"option '--kubevirt': {release_name} is not a KubeVirt release; allowed: "
            f"{', '.join(map(str, SCHEMA_TAGS))}"
        )
    tests: list[TestKind] = list(expanded_tests(scenario))
    cells = cluster_cells(scenario, release_name, tests)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for cell in cells:
        if cell.skipped:
            continue
        folder = out / dns_label(cell.label)
        (folder / "jobs").mkdir(parents=True, exist_ok=True)
        (folder / "logs").mkdir(exist_ok=True)
        objects, jobs = cell_objects(cell, release_name, tests, images)
        setup = folder / "setup.yaml"
        setup.write_text(dump(objects))
        written.append(setup)
        job_files = []
        for number, (name, job) in enumerate(jobs, 1):
            path = folder / "jobs" / f"{number:02d}-{name}.yaml"
            path.write_text(dump([job]))
            written.append(path)
            job_files.append((path.name, name))
        (folder / "procedure.md").write_text(procedure(cell, folder, job_files, release_name))
    index = {
        "format": FORMAT,
        "generated": now(),
        "git_sha": git_sha(),
        "kubevirt": str(release_name),
        "kubevirt_api": SCHEMA_TAGS[release_name],
        "images": asdict(images),
        "scenario_name": scenario.name,
        "scenario": scenario_text,
        "tests": [t.label for t in tests],
        "tests_skipped": {t.label: t.cluster_reason() for t in tests if t.cluster_reason()},
        "cells": [dict(c.record(), folder=dns_label(c.label)) for c in cells],
    }
    (out / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return Written(out, cells, written)


def procedure(cell: ClusterCell, folder: Path, jobs: list[tuple[str, str]], kubevirt: KubevirtRelease) -> str:
    """The kubectl commands that run one cell and save what ingest reads (folder/procedure.md)."""
    ns, peer = cell.namespace, cell.peer_namespace
    if _plain_pod(cell):
        console = f"kubectl -n {ns} logs pod/vm"
        ready = f"kubectl -n {ns} wait pod/vm --for=condition=Ready --timeout=15m"
    else:
        launcher = f"$(kubectl -n {ns} get pod -l kubevirt.io/domain=vm -o name)"
        console = f"kubectl -n {ns} logs {launcher} -c guest-console-log"
        ready = f"kubectl -n {ns} wait vmi/vm --for=condition=Ready --timeout=15m"
    lines = [
        f"# Cell {cell.label}: {cell.binding} ({cell.binding_status} in KubeVirt {kubevirt}) under {cell.layout}",
        "",
        "Run from the folder that holds index.json; one cell at a time (cells share nothing, but the numbers",
        "should not share the nodes either). Logs of a second run of this cell go to logs/r2/ (and r3/, ...).",
        "",
        "```sh",
        f"C={folder.name}",
        "kubectl apply -f $C/setup.yaml",
        ready,
        "# the VM installs its tools, starts its servers, runs the egress clients, then says so:",
        f"until {console} | grep -q 'vmnb|egress|done'; do sleep 10; done",
    ]
    if cell.istio:  # the mesh this cell models is an installation's, not an object's
        native = "true" if cell.istio_backend == "nftables" else "false"
        lines[5:5] = [
            f"Istio {cell.istio}, {cell.istio_backend} backend: the cluster's Istio is that release, installed with",
            f"`--set values.global.nativeNftables={native}`; `vmnetbench ingest` records the version it finds.",
            "",
        ]
    for file, job in jobs:
        lines += [
            f"kubectl apply -f $C/jobs/{file}",
            f"kubectl -n {peer} wait job/{job} --for=condition=complete --timeout=20m",
            f"kubectl -n {peer} logs job/{job} > $C/logs/{job}.log",
        ]
    lines += [
        f"{console} > $C/logs/console.log",
        *([f"kubectl -n {ns} get vmi vm -o json > $C/vmi.json"] if not _plain_pod(cell) else []),
        "kubectl delete -f $C/setup.yaml",
        "```",
        "",
    ]
    return "\n".join(lines)
