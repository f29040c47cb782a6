"""Where a pod lives, as one seam: a PodRuntime makes a bed's pod, adds the containers a mesh mode declares,
runs init commands, decides what the pod itself runs during a binding's setup, names what a container boundary
refused, and removes what a killed run left. The bed and the runner ask the runtime, never its name (the way
Mininet injects its Host class).

`NetnsRuntime` (this module) is the embedded one: the pod is a network namespace, no container boundary, the
node does the privileged setup. The docker runtime (harness/runtime/docker.py DockerRuntime) makes the pod as the
kubelet does. A Kubernetes runtime would be one more subclass: `make_pod` waits for the kubelet's pod and
opens its namespace through the node agent (a privileged DaemonSet running the harness, as virt-handler does),
`add_container` is the pod spec's, `remove_leftovers` deletes the run's labelled objects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from harness.lab.bed import TestBed
    from harness.lab.netns import Namespace


@dataclass(frozen=True)
class Role:
    """A container's privileges: capabilities added to and dropped from the runtime's defaults, devices, user,
    seccomp profile."""

    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    user: str | None = None
    seccomp: str = "default"


class PodRuntime:
    name: ClassVar[str] = "netns"
    containers: ClassVar[bool] = False
    """Processes of the pod run inside containers with their own privileges (a boundary that can refuse)."""
    setup: str = "node-agent"

    def make_pod(self, bed: TestBed) -> Namespace:
        """The bed's pod, its network namespace registered in the bed as `pod`."""
        return bed.add_namespace("pod")

    def add_container(self, bed: TestBed, role: str, spec: Role) -> None:
        """A long-lived container of the pod (a mesh's proxy); on netns the proxy is just a process of the pod."""

    def init_runner(self, bed: TestBed, role: str, spec: Role):
        """Where an init container's commands run (`.run(argv, input=)`): here, the pod's namespace itself."""
        return bed.pod

    @contextmanager
    def setup_context(self, bed: TestBed) -> Iterator[None]:
        """Around a binding's setup: where its privileged commands run (here: from the node, as virt-handler)."""
        yield

    def explain_refusal(self, bed: TestBed, error: str) -> str:
        """What a container boundary refused, named from a tool's last words; empty without a boundary."""
        return ""

    def caveat(self, bed: TestBed) -> str:
        """Why this bed's rows do not stand for the real pod (a process outside the containers), or empty."""
        return ""

    def privilege_trials(self) -> list[tuple[str, PodRuntime]]:
        """The claims' privilege trials around this runtime's pod: (label, the same runtime with other privileges),
        the runtime as it is first, the one with the network capability added second, every capability dropped
        fourth; empty where the pod has no boundary (the claims then try reduced capabilities in a child)."""
        return []

    def row_label(self) -> str | None:
        """What rows record of the pod's privileges (`compute_caps`), or None."""
        return None

    def remove_leftovers(self, run_id: str) -> list[str]:
        """Whatever this runtime keeps outside namespaces and processes for `run_id` (containers), removed."""
        return []


class NetnsRuntime(PodRuntime):
    """Pods as named network namespaces (pyroute2); capabilities limited with setpriv where a probe asks."""
