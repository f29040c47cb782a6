"""The runtimes a scenario may name (`runtime:`), each registered once with everything the commands ask of it: how
it is made ready for a run, what it needs checked before anything is created, the pods the seed's claims are
probed in, and what those claims are then about. A new runtime is its module in harness/runtime/ (a PodRuntime
subclass) plus its entry here; the scenario schema, `run`, `claims` and the runner read this table and never
name a runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.lab.runtime import NetnsRuntime, PodRuntime


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot serve pods on this machine now: one sentence."""


@dataclass(frozen=True)
class RuntimeEntry:
    name: str
    make: Callable[[object, bool], PodRuntime]
    """(the run's settings, with_qemu) -> the runtime, ready (for a docker runtime: the engine answering, its
    image); the settings carry the scenario's options for the runtime (`runtime_options`)."""
    for_claims: Callable[[bool], PodRuntime]
    """with_qemu -> the runtime the claims are probed in, its compute as KubeVirt's launcher gets it by default."""
    claims_note: str
    """What the privilege claims are about on this runtime (claims.md says it)."""
    preflight: Callable[[str], None] = lambda holder: None
    """Before anything is created: take what the runtime must hold for the command (`holder` names it) and check
    it answers; RuntimeUnavailable in one sentence if not."""
    remove_leftovers: Callable[[str], list[str]] = lambda run_id: []
    """What `clean` removes for a dead run besides namespaces and processes (the docker runtime's containers)."""


def _docker(settings, with_qemu: bool) -> PodRuntime:
    from harness.runtime.image import compute_spec, docker_runtime

    options = settings.runtime_options  # the scenario's `docker:` block
    return docker_runtime(compute_spec(options), with_qemu=with_qemu, setup=options.setup)


def _docker_for_claims(with_qemu: bool) -> PodRuntime:
    from harness.runtime.docker import ComputeSpec
    from harness.runtime.image import docker_runtime

    # compute as virt-launcher gets it by default: Docker's default capabilities, no seccomp filter
    # (SeccompConfiguration unset); the privilege trials vary both
    return docker_runtime(ComputeSpec(seccomp="unconfined"), with_qemu=with_qemu)


def _docker_preflight(holder: str) -> None:
    from harness.runtime.engine import EngineUnavailable, client, take_lease

    take_lease(holder)  # before the first request: `engine down` now waits for this process
    try:
        client().close()
    except EngineUnavailable as e:
        raise RuntimeUnavailable(str(e)) from None


def _docker_leftovers(run_id: str) -> list[str]:
    from harness.runtime.docker import remove_run_containers

    return remove_run_containers(run_id)


_ENTRIES = [
    RuntimeEntry(
        "netns",
        lambda scenario, with_qemu: NetnsRuntime(),
        lambda with_qemu: NetnsRuntime(),
        "Runtime: netns (the privilege claims are about in-pod setup, the 2018 design).",
    ),
    RuntimeEntry(
        "docker",
        _docker,
        _docker_for_claims,
        "Runtime: docker (pods are containers; a node agent does the privileged setup, the pod's compute "
        "container gets Docker's default capabilities: the privilege claims are about it).",
        _docker_preflight,
        _docker_leftovers,
    ),
]
RUNTIMES: dict[str, RuntimeEntry] = {entry.name: entry for entry in _ENTRIES}


def pod_runtime(settings, *, with_qemu: bool, console=None) -> PodRuntime:
    """The runtime the run's settings name (harness/run/plan.py RunSettings), ready; a runtime with
    containers says which image and privileges."""
    runtime = RUNTIMES[settings.runtime].make(settings, with_qemu)
    if console is not None and runtime.containers:
        console.print(f"{runtime.name} runtime: image {getattr(runtime, 'image', '?')}, compute {runtime.row_label()}")
    return runtime
