"""KubeVirt releases (issue 28): the launcher pod a release makes, and what it ships in core."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.lab.paths import REPO_ROOT
from harness.pod.bindings import binding_status, pod_annotations
from harness.pod.kubevirt import KUBEVIRT_INTERFACES_ANNOTATION, LATEST, REROUTE_ANNOTATION, rerouted_interfaces
from harness.run.scenario import Scenario


def test_masquerade_pods_are_annotated_for_the_reroute_since_1_7():
    """generator.go: every masquerade pod gets kubevirtInterfaces; since v1.7.0 also the reroute annotation that
    istio-cni's ambient agent reads. Other bindings get neither, and the 2018 research had no such annotation."""
    assert pod_annotations("1.6", "masquerade") == {KUBEVIRT_INTERFACES_ANNOTATION: "k6t-eth0"}
    for release in ("1.7", "1.8", "1.9"):
        assert rerouted_interfaces(pod_annotations(release, "masquerade")) == ["k6t-eth0"]
        assert pod_annotations(release, "masquerade")[KUBEVIRT_INTERFACES_ANNOTATION] == "k6t-eth0"
    assert pod_annotations("1.9", "bridge") == {} and pod_annotations("research-2018", "masquerade") == {}
    assert rerouted_interfaces({REROUTE_ANNOTATION: "k6t-eth0, net1"}) == ["k6t-eth0", "net1"]


def test_bindings_outside_a_releases_core_say_so():
    assert binding_status("1.9", "slirp") == "plugin only since 1.8"
    assert binding_status("1.6", "slirp") == "core"
    assert binding_status("1.9", "passt-vhost-user") == "core"
    assert "plugin" in binding_status("1.6", "passt-vhost-user")
    assert binding_status("1.9", "tproxy").startswith("research design")
    assert binding_status("research-2018", "tproxy") == "core"
    assert binding_status(LATEST, "direct") == "plain pod"


def test_a_scenario_models_the_latest_release_unless_told_and_reads_a_yaml_number():
    base = {"name": "t", "strategies": ["direct"], "tests": [{"kind": "tcp_throughput", "directions": ["ingress"]}]}
    assert Scenario.model_validate(base).kubevirt == LATEST
    assert Scenario.model_validate({**base, "kubevirt": 1.6}).kubevirt == "1.6"  # YAML's `kubevirt: 1.6`
    with pytest.raises(ValueError, match="kubevirt"):
        Scenario.model_validate({**base, "kubevirt": "2.0"})


def _describe(release: str) -> str:
    argv = [
        sys.executable,
        "-m",
        "harness.cli",
        "describe",
        "masquerade",
        "--sidecar",
        "ambient",
        "--kubevirt",
        release,
    ]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_describe_shows_the_releases_reroute_under_ambient():
    """The 1.9 masquerade pod under ambient has istio-cni's virtual-interface rule (TCP from k6t-eth0 to 15001);
    the 1.6 pod does not."""
    rule = 'iifname "k6t-eth0" meta l4proto tcp counter packets 0 bytes 0 redirect to :15001'
    latest, old = _describe("1.9"), _describe("1.6")
    assert rule in latest and "KubeVirt 1.9: core" in latest
    assert rule not in old and "KubeVirt 1.6: core" in old
