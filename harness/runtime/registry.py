"""The runtimes a scenario may name (`runtime:`), each registered once with how it is made ready for a run. A new
runtime is its module in harness/runtime/ (a PodRuntime subclass) plus its line here; the scenario schema, the CLI
and the runner read this table."""

from __future__ import annotations

from collections.abc import Callable

from harness.lab.runtime import NetnsRuntime, PodRuntime


def _docker(scenario, with_qemu: bool) -> PodRuntime:
    from harness.runtime.image import compute_spec, docker_runtime

    return docker_runtime(compute_spec(scenario.docker), with_qemu=with_qemu, setup=scenario.docker.setup)


RUNTIMES: dict[str, Callable[[object, bool], PodRuntime]] = {
    "netns": lambda scenario, with_qemu: NetnsRuntime(),
    "docker": _docker,
}
"""name -> (scenario, with_qemu) -> the runtime, ready (the docker engine answering, its image imported)."""


def pod_runtime(scenario, *, with_qemu: bool, console=None) -> PodRuntime:
    """The runtime the scenario names, ready; a runtime with containers says which image and privileges."""
    runtime = RUNTIMES[scenario.runtime](scenario, with_qemu)
    if console is not None and runtime.containers:
        console.print(f"{runtime.name} runtime: image {getattr(runtime, 'image', '?')}, compute {runtime.row_label()}")
    return runtime
