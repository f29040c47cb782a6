"""Regenerates the vendored schemas in this folder (run by hand; tests only read the JSON files).

- kubevirt-<tag>.json: kubevirt/kubevirt api/openapi-spec/swagger.json at the release tag (Swagger 2.0), cut to
  the definitions reachable from v1.VirtualMachineInstance, without `description` texts (they do not validate).
  Source: a checkout of kubevirt/kubevirt (`git show <tag>:api/openapi-spec/swagger.json`).
- istio-peerauthentication-v1.json: the `v1` openAPIV3Schema of PeerAuthentication in istio/istio
  manifests/charts/base/files/crd-all.gen.yaml (the CRD Istio installs).
- gateway-api-gateway-v1.json: the `v1` openAPIV3Schema of the Gateway API's Gateway as Istio's own tests install
  it (istio/istio tests/integration/pilot/testdata/gateway-api-crd.yaml at tag 1.30.3), for the waypoint.
- kubernetes-<version>-strict.json: the strict JSON schemas kubernetes-validate (PyPI, Apache-2.0) generates from
  Kubernetes' published OpenAPI spec for that release (`kubernetes-json-schema/v<version>-local-strict`), cut to
  the kinds the manifests use and the definitions they reach, without descriptions.

Usage: python vendor.py KUBEVIRT_REPO KUBERNETES_VALIDATE_DIR ISTIO_REPO
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
KUBEVIRT_TAGS = ("v1.6.0", "v1.7.0", "v1.8.0", "v1.9.0")
KUBERNETES = "1.37.0"
KUBERNETES_KINDS = ("namespace-v1", "pod-v1", "service-v1", "configmap-v1", "secret-v1", "job-batch-v1")


def strip_descriptions(node):
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def reachable(defs: dict, roots: list[str], *prefixes: str) -> dict:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for prefix in prefixes:
            todo += re.findall(r'"\$ref": "' + re.escape(prefix) + r'([^"]+)"', json.dumps(defs[name]))
    return {k: defs[k] for k in sorted(seen)}


def kubevirt(repo: str) -> None:
    for tag in KUBEVIRT_TAGS:
        commit = subprocess.run(
            ["git", "-C", repo, "rev-list", "-n1", tag], capture_output=True, text=True, check=True
        ).stdout.strip()
        spec = json.loads(
            subprocess.run(
                ["git", "-C", repo, "show", f"{tag}:api/openapi-spec/swagger.json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        out = {
            "x-vendored-from": {
                "repo": "kubevirt/kubevirt",
                "path": "api/openapi-spec/swagger.json",
                "tag": tag,
                "commit": commit,
                "cut": "definitions reachable from v1.VirtualMachineInstance, descriptions removed",
            },
            "swagger": spec["swagger"],
            "info": spec["info"],
            "definitions": strip_descriptions(
                reachable(spec["definitions"], ["v1.VirtualMachineInstance"], "#/definitions/")
            ),
        }
        (HERE / f"kubevirt-{tag}.json").write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")


def kubernetes(package_dir: str) -> None:
    base = Path(package_dir) / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict"
    defs = json.loads((base / "_definitions.json").read_text())["$defs"]
    kinds = {k: json.loads((base / f"{k}.json").read_text()) for k in KUBERNETES_KINDS}
    prefix = "/api/_definitions.json#/$defs/"
    roots = [
        r for k in kinds.values() for r in re.findall(r'"\$ref": "' + re.escape(prefix) + r'([^"]+)"', json.dumps(k))
    ]
    out = {
        "x-vendored-from": {
            "package": f"kubernetes-validate=={KUBERNETES}",
            "pypi": "kubernetes-validate",
            "path": f"kubernetes_validate/kubernetes-json-schema/v{KUBERNETES}-local-strict",
            "license": "Apache-2.0",
            "cut": f"kinds {', '.join(KUBERNETES_KINDS)} and the definitions they reach, descriptions removed",
        },
        "kinds": strip_descriptions(kinds),
        "$defs": strip_descriptions(reachable(defs, roots, prefix, "#/$defs/")),
    }
    (HERE / f"kubernetes-{KUBERNETES}-strict.json").write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")


def istio(repo: str) -> None:
    import yaml

    path = "manifests/charts/base/files/crd-all.gen.yaml"
    commit = subprocess.run(
        ["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    text = subprocess.run(
        ["git", "-C", repo, "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    ).stdout
    crd = next(d for d in yaml.safe_load_all(text) if d and d["spec"]["names"]["kind"] == "PeerAuthentication")
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    out = {
        "x-vendored-from": {
            "repo": "istio/istio",
            "path": path,
            "commit": commit,
            "cut": "PeerAuthentication v1 openAPIV3Schema, descriptions removed",
        },
        "schema": strip_descriptions(version["schema"]["openAPIV3Schema"]),
    }
    (HERE / "istio-peerauthentication-v1.json").write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")


def gateway_api(repo: str, tag: str = "1.30.3") -> None:
    import yaml

    path = "tests/integration/pilot/testdata/gateway-api-crd.yaml"
    commit = subprocess.run(
        ["git", "-C", repo, "rev-list", "-n1", tag], capture_output=True, text=True, check=True
    ).stdout.strip()
    text = subprocess.run(
        ["git", "-C", repo, "show", f"{tag}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    crd = next(
        d
        for d in yaml.safe_load_all(text)
        if d
        and d.get("kind") == "CustomResourceDefinition"
        and d["metadata"]["name"] == "gateways.gateway.networking.k8s.io"
    )
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    out = {
        "x-vendored-from": {
            "repo": "istio/istio",
            "path": path,
            "tag": tag,
            "commit": commit,
            "bundle-version": crd["metadata"]
            .get("annotations", {})
            .get("gateway.networking.k8s.io/bundle-version", ""),
            "cut": "Gateway v1 openAPIV3Schema, descriptions removed",
        },
        "schema": strip_descriptions(version["schema"]["openAPIV3Schema"]),
    }
    (HERE / "gateway-api-gateway-v1.json").write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    kubevirt(sys.argv[1])
    kubernetes(sys.argv[2])
    istio(sys.argv[3])
    gateway_api(sys.argv[3])
