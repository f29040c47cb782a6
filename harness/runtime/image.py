"""The docker runtime of a run: the project's engine (harness.runtime.engine), the runtime image assembled from this
machine's files (harness.runtime.rootfs), and the compute container's privileges, as one DockerRuntime the lab's
beds make their pods from (harness.runtime.docker)."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.lab.paths import CACHE_DIR
from harness.runtime.docker import ComputeSpec, DockerRuntime
from harness.runtime.engine import client
from harness.runtime.rootfs import import_image
from harness.tools.inventory import runtime_image_programs

IMAGE_REPOSITORY = "vmnb-runtime"
PROGRAMS = runtime_image_programs()
"""Programs a pod's containers run, taken from this machine with their libraries (harness/tools/inventory.py)."""
TREES = (
    Path("/usr/share/qemu"),
    Path("/usr/share/seabios"),
    Path("/usr/lib/ipxe/qemu"),
    Path("/usr/lib/x86_64-linux-gnu/qemu"),  # Debian QEMU's loadable modules
    Path("/usr/lib/x86_64-linux-gnu/xtables"),  # iptables' extensions (dlopen'ed: ldd does not list them)
    CACHE_DIR / "guest",
    CACHE_DIR / "passt",
    CACHE_DIR / "tools",  # the QEMU guest, today's passt, C tools
)
ETC = {
    # root and the proxy's user, so tools that look names up (setpriv, Envoy) find them
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nistio-proxy:x:1337:1337::/:/bin/sh\n",
    "etc/group": b"root:x:0:\nistio-proxy:x:1337:\n",
    "run/.vmnb": b"",  # /run (iptables' lock) and /tmp exist, as in any distribution image
    "tmp/.vmnb": b"",
}


def runtime_image(engine, *, with_qemu: bool) -> str:
    """`vmnb-runtime:<content hash>`, built now unless that exact content is already imported. Builds the C
    tools (and the QEMU guest's image and today's QEMU when `with_qemu`) first, so they are in it."""
    from harness.guests.tools import compile_guest_tools
    from harness.pod.envoy import envoy_binary
    from harness.pod.proxy_process import relay_binary

    compile_guest_tools()
    relay_binary()
    trees = list(TREES)
    if with_qemu:
        from harness.guests.qemu.image import build_image
        from harness.tools.debian import unpack_qemu

        build_image()
        trees.append(unpack_qemu().binary.parent.parent.parent)  # the unpacked QEMU 10 tree
    files = [Path(p) for name in PROGRAMS if (p := shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin"))]
    files.append(envoy_binary())
    return import_image(
        engine, repository=IMAGE_REPOSITORY, files=files, trees=trees, extra=ETC, labels={"vmnb.cache": "runtime"}
    )


def docker_runtime(compute: ComputeSpec, *, with_qemu: bool, setup: str = "node-agent") -> DockerRuntime:
    """The engine (EngineUnavailable in one sentence if none answers) with the runtime image ready."""
    engine = client()
    return DockerRuntime(engine, runtime_image(engine, with_qemu=with_qemu), compute, setup)


def compute_spec(docker) -> ComputeSpec:
    """The scenario's `docker:` section as compute's privileges."""
    return ComputeSpec(
        tuple(docker.compute_cap_add), tuple(docker.compute_cap_drop), tuple(docker.devices), docker.seccomp
    )
