"""A pod as the kubelet makes one, on the project's Docker engine (harness.runtime.engine): a pause container created
with no network (`network_mode="none"`), whose network namespace the harness then wires as the CNI plugin does
(the bed moves the pod's veth into it, by the pause container's PID, and addresses it), and the pod's other
containers joining it with `network_mode="container:<pause>"`:

- `compute`: virt-launcher's compute container, where the VM (QEMU), slirp/passt and a strategy's own
  processes run, with the capabilities the scenario gives it (default: Docker's defaults, so no NET_ADMIN) and
  the devices KubeVirt's device plugins pass (/dev/kvm, /dev/net/tun, /dev/vhost-net) unless told otherwise;
- `istio-proxy`: Envoy, started as uid 1337 with no added capability (NET_ADMIN in Istio's TPROXY mode);
- `istio-init`: an init container with NET_ADMIN and NET_RAW only, that writes the interception rules and
  exits.

Docker's default seccomp profile applies to all of them and /proc/sys is read-only inside. Every container is
named `vmnb-<run id>-<cell>-<role>` and labelled with the run id, so teardown and `vmnetbench clean` find them
(also after a SIGKILL of the harness). Files the harness writes for a process (configurations, sockets, logs)
live in the run's folders, which are mounted at the same paths in every container."""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from harness.lab.names import resource_name
from harness.lab.netns import CommandFailed, Namespace
from harness.lab.paths import STATE_DIR
from harness.lab.processes import Finished
from harness.lab.procfs import proc_starttime
from harness.lab.runtime import PodRuntime, Role
from harness.lab.signals import critical_section
from harness.runtime.engine import LABEL_RUN

if TYPE_CHECKING:
    from harness.lab.bed import TestBed

DEVICES = ("/dev/kvm", "/dev/net/tun", "/dev/vhost-net")
"""What KubeVirt's device plugins give virt-launcher's compute container."""
PAUSE = ["/usr/bin/sleep", "infinity"]  # the pause container's job: hold the pod's namespaces


@dataclass(frozen=True)
class ComputeSpec:
    """The compute container's privileges: capabilities added to and dropped from Docker's defaults, devices."""

    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    devices: tuple[str, ...] = DEVICES
    seccomp: str = "default"
    """`default`: Docker's default profile (Kubernetes' RuntimeDefault); `unconfined`: no filter, what a
    virt-launcher pod gets when KubeVirt's SeccompConfiguration is unset and the kubelet has no --seccomp-default
    (kubevirt pkg/virt-controller/services/template.go leaves the pod's profile unset then)."""

    def label(self) -> str:
        """`docker-default`, or the change to it (`+NET_ADMIN -NET_RAW`), the devices missing, the seccomp."""
        parts = [f"+{c}" for c in self.cap_add] + [f"-{c}" for c in self.cap_drop]
        missing = [d for d in DEVICES if d not in self.devices]
        seccomp = " seccomp=unconfined" if self.seccomp == "unconfined" else ""
        return " ".join(parts or ["docker-default"]) + "".join(f" no {d}" for d in missing) + seccomp


# The mesh's containers (proxy, init) are declared by each mesh mode (harness/pod/mesh.py), not here.


class ExecHandle:
    """A process started with `docker exec`, seen by its host PID: the Popen-like face TrackedProcess needs."""

    def __init__(self, api, exec_id: str, pid: int) -> None:
        self.api, self.exec_id, self.pid = api, exec_id, pid
        self.starttime = proc_starttime(pid) if pid else None
        self.returncode: int | None = None
        if self.starttime is None:  # it ended before its PID could be read
            self.returncode = self._exit_code()

    def _exit_code(self) -> int:
        with contextlib.suppress(Exception):
            code = self.api.exec_inspect(self.exec_id).get("ExitCode")
            if code is not None:
                return int(code)
        return -1

    def poll(self) -> int | None:
        if self.returncode is None and proc_starttime(self.pid) != self.starttime:
            self.returncode = self._exit_code()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("docker exec", timeout)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]


@dataclass
class DockerPod:
    """The containers of one pod. `mounts`: host folders mounted at the same path in every container."""

    engine: object
    run_id: str
    name: str  # vmnb-<run id>-<cell>
    image: str
    compute: ComputeSpec
    mounts: list[Path]
    containers: dict[str, object] = field(default_factory=dict)
    default_role: str = "compute"  # where a process started in the pod's namespace runs
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    """This bed's own part of its containers' names: a run's beds share the pod's namespace name, and a bed whose
    containers outlived it (an engine stopped mid-teardown) must not block the next bed's names (Docker 409)."""

    def container_name(self, role: str) -> str:
        return f"{self.name}-{self.tag}-{role}"

    def _create(self, role: str, command: list[str], spec: Role, network_mode: str, *, start: bool = True):
        volumes = {str(m): {"bind": str(m), "mode": "rw"} for m in self.mounts}
        devices = [f"{d}:{d}:rwm" for d in spec.devices if Path(d).exists()]
        container = self.engine.containers.create(
            self.image,
            command,
            name=self.container_name(role),
            labels={LABEL_RUN: self.run_id, "vmnb.role": role},
            network_mode=network_mode,
            cap_add=list(spec.cap_add) or None,
            cap_drop=list(spec.cap_drop) or None,
            devices=devices or None,
            volumes=volumes,
            user=spec.user,
            detach=True,
            init=False,
            security_opt=["seccomp=unconfined"] if spec.seccomp == "unconfined" else None,
        )
        self.containers[role] = container
        if start:
            container.start()
            container.reload()
        return container

    def start_pause(self) -> int:
        """The pause container; returns its PID (its network namespace is the pod's)."""
        pause = self._create("pause", PAUSE, Role(), "none")
        return int(pause.attrs["State"]["Pid"])

    def join(self, role: str, spec: Role) -> object:
        """A long-lived container of the pod (compute, istio-proxy) sharing the pause container's network."""
        if role in self.containers:
            return self.containers[role]
        return self._create(role, PAUSE, spec, f"container:{self.containers['pause'].id}")

    def compute_role(self) -> Role:
        c = self.compute
        return Role(cap_add=c.cap_add, cap_drop=c.cap_drop, devices=c.devices, seccomp=c.seccomp)

    def exec_start(self, role: str, argv: list[str], *, log_path: Path, env: dict[str, str]) -> ExecHandle:
        """Start `argv` in the role's container, output appended to `log_path`; its host PID is returned."""
        container = self.containers[role]
        wrapped = ["/bin/sh", "-c", 'exec "$@" >>"$VMNB_LOG" 2>&1', "sh", *argv]
        created = self.engine.api.exec_create(container.id, wrapped, environment={**env, "VMNB_LOG": str(log_path)})
        self.engine.api.exec_start(created["Id"], detach=True)
        pid = 0
        for _ in range(500):  # until it has a PID, or has already finished (ExitCode is null until then)
            info = self.engine.api.exec_inspect(created["Id"])
            pid = int(info.get("Pid") or 0)
            if pid or (info.get("ExitCode") is not None and not info.get("Running")):
                break
            time.sleep(0.01)
        return ExecHandle(self.engine.api, created["Id"], pid)

    def exec_run(
        self, role: str, argv: list[str], *, timeout: float, env: dict[str, str], input: str | None = None
    ) -> Finished:
        """Run `argv` to completion in the role's container (killed after `timeout` by coreutils timeout)."""
        t0 = time.monotonic()
        command = ["/usr/bin/timeout", "-s", "KILL", f"{timeout:g}", *argv]
        done = self._run_cli(
            ["exec", *([] if input is None else ["-i"]), *_env_args(env), self.containers[role].id, *command],
            input,
            timeout + 10,
        )
        timed_out = done.returncode == 137
        return Finished(argv, done.returncode, done.stdout, done.stderr, timed_out, time.monotonic() - t0)

    def run_init(self, argv: list[str], *, input: str | None, spec: Role, timeout: float = 60) -> Finished:
        """An init container of the pod: runs `argv` once (stdin from `input`) and is removed."""
        t0 = time.monotonic()
        name = self.container_name(f"init-{len(self.containers)}")
        caps = [a for c in spec.cap_add for a in ("--cap-add", c)]
        done = self._run_cli(
            [
                "run",
                "--rm",
                "-i",
                "--name",
                name,
                "--label",
                f"{LABEL_RUN}={self.run_id}",
                "--network",
                f"container:{self.containers['pause'].id}",
                *caps,
                self.image,
                *argv,
            ],
            input,
            timeout,
        )
        return Finished(argv, done.returncode, done.stdout, done.stderr, False, time.monotonic() - t0)

    def _run_cli(self, args: list[str], input: str | None, timeout: float) -> subprocess.CompletedProcess:
        from harness.runtime.engine import SOCKET

        # The docker CLI for stdin-fed and timed runs (the SDK's exec has neither); any docker client on the
        # machine speaks to the project's engine by its socket.
        return subprocess.run(
            ["docker", "-H", f"unix://{SOCKET}", *args], input=input, capture_output=True, text=True, timeout=timeout
        )

    def remove(self) -> None:
        for role in reversed(list(self.containers)):
            with contextlib.suppress(Exception):
                self.containers[role].remove(force=True)
        self.containers.clear()


@dataclass(frozen=True)
class DockerRuntime(PodRuntime):
    """What every pod of a docker-runtime run is made of: the engine, the runtime image, compute's privileges.
    Each bed's DockerPod is kept in `bed.pod_handle`."""

    name: ClassVar[str] = "docker"
    containers: ClassVar[bool] = True
    engine: object = None
    image: str = ""
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    setup: str = "node-agent"
    """`node-agent`: the binding's privileged setup runs from the node (virt-handler's design, KubeVirt today);
    `in-pod`: its rule and sysctl commands run in compute (the 2018 research's design)."""

    def new_pod(self, run_id: str, name: str, mounts: list[Path]) -> DockerPod:
        return DockerPod(self.engine, run_id, name, self.image, self.compute, mounts)

    def make_pod(self, bed: TestBed) -> Namespace:
        """A pause container with no network, its namespace given the pod's name (the CNI's view of it, by the
        container's PID), then the compute container joining it; processes started in the pod run in compute
        from here on."""
        name = resource_name(bed.run_id, "pod")
        bed.tracker.log_dir.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / bed.run_id).mkdir(parents=True, exist_ok=True)
        mounts = [(STATE_DIR / bed.run_id).resolve(), bed.tracker.log_dir.resolve()]  # same paths inside
        bed.pod_handle = pod = self.new_pod(bed.run_id, name, mounts)
        with critical_section():
            bed.state.add_namespace(name)
            bed.on_teardown(f"namespace {name}", lambda: bed._remove_namespace(bed.namespaces["pod"]))
            bed.on_teardown(f"containers of {name}", pod.remove)
            pid = pod.start_pause()
            subprocess.run(["ip", "netns", "attach", name, str(pid)], check=True, capture_output=True)
            ns = Namespace(name, existing=True)
            bed.state.set_namespace_inode(name, ns.inode)
            bed.namespaces["pod"] = ns
        pod.join("compute", pod.compute_role())
        bed.tracker.route(name, pod)
        bed.on_teardown(f"process routing of {name}", lambda: bed.tracker.unroute(name))
        return ns

    def add_container(self, bed: TestBed, role: str, spec: Role) -> None:
        bed.pod_handle.join(role, spec)

    def init_runner(self, bed: TestBed, role: str, spec: Role) -> PodInit:
        return PodInit(bed.pod_handle, role, spec)

    @contextlib.contextmanager
    def setup_context(self, bed: TestBed) -> Iterator[None]:
        """With `in-pod` setup, a binding's rule and sysctl commands in the pod (nft, iptables-restore, /proc/sys)
        run in the compute container, with compute's capabilities; its links (bridge, tap, addresses) are still
        made over netlink from the node. With `node-agent` nothing changes: the node does it, as virt-handler."""
        if self.setup != "in-pod":
            yield
            return
        pod = bed.pod_handle
        bed.pod.runs_in = lambda argv, stdin: pod.exec_run("compute", argv, timeout=30, env={}, input=stdin)
        try:
            yield
        finally:
            bed.pod.runs_in = None

    def explain_refusal(self, bed: TestBed, error: str) -> str:
        return explain_refusal(error, self.compute)

    def privilege_trials(self) -> list[tuple[str, PodRuntime]]:
        """Compute as it is, with NET_ADMIN added, NET_RAW or every capability dropped, without the devices
        KubeVirt's device plugins pass (/dev/kvm, /dev/net/tun, /dev/vhost-net), and with the other seccomp setting
        (Docker's default profile / none)."""
        base = self.compute
        other = "default" if base.seccomp == "unconfined" else "unconfined"
        variants = [
            ("base", base),
            ("+NET_ADMIN", replace(base, cap_add=("NET_ADMIN",))),
            ("-NET_RAW", replace(base, cap_drop=("NET_RAW",))),
            ("-ALL", replace(base, cap_drop=("ALL",))),
            ("no devices", replace(base, devices=())),
            (f"seccomp={other}", replace(base, seccomp=other)),
        ]
        return [(f"{label} ({compute.label()})", replace(self, compute=compute)) for label, compute in variants]

    def caveat(self, bed: TestBed) -> str:
        """With the netns guest: a binding's process that ran in the pod's namespace but outside its containers."""
        names = sorted(
            {p.argv[0].rsplit("/", 1)[-1] for p in bed.processes if p.netns == bed.pod.name and p.container is None}
        )
        if not names:
            return ""
        return (
            f"docker runtime with the netns guest: {', '.join(names)} entered the guest namespace from the node, "
            "not from compute (it stands for QEMU's own backend, which a QEMU guest runs in compute)"
        )

    def row_label(self) -> str:
        """compute's privileges as rows record them, and who did the setup when it was the pod itself."""
        label = self.compute.label()
        return f"{label}; in-pod setup" if self.setup == "in-pod" else label

    def remove_leftovers(self, run_id: str) -> list[str]:
        return remove_run_containers(run_id)


@dataclass
class PodInit:
    """An init container of a docker-runtime pod, with the capabilities its mesh declares, answering `.run` as a
    Namespace does (so iptables-restore runs there instead of from the host)."""

    pod: DockerPod
    role: str
    spec: Role

    @property
    def name(self) -> str:
        return self.pod.container_name(self.role)

    def run(self, argv: list[str], *, input: str | None = None, check: bool = True) -> str:
        done = self.pod.run_init(argv, input=input, spec=self.spec)
        if check and done.returncode != 0:
            raise CommandFailed(
                f"{' '.join(argv)} in the {self.role} container failed: {done.stderr.strip() or done.stdout.strip()}"
            )
        return done.stdout


DOCKER_DEFAULT_CAPS = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    }
)
"""Docker's default capability set (moby oci/caps/defaults.go)."""
REFUSALS = (
    # (what a tool printed, what the container refused, the capability it needs or None for a device or path)
    # IP_TRANSPARENT takes CAP_NET_RAW or CAP_NET_ADMIN (net/ipv4/ip_sockglue.c); Docker's default has NET_RAW
    (re.compile(r"tproxy:[^\n]*Operation not permitted|IP_TRANSPARENT"), "IP_TRANSPARENT", "NET_RAW|NET_ADMIN"),
    (
        re.compile(r"TUNSETIFF[^\n]*(not permitted|EPERM)|could not configure /dev/net/tun[^\n]*not permitted"),
        "attaching the tap (TUNSETIFF)",
        "NET_ADMIN",
    ),
    (
        re.compile(
            r"can't initialize iptables|(Permission denied|not permitted) \(you must be root\)|"
            r"Could not process rule: Operation not permitted|Netlink: Operation not permitted"
        ),
        "changing netfilter rules",
        "NET_ADMIN",
    ),
    (re.compile(r"setns[^\n]*(not permitted|EPERM)"), "entering another namespace (setns)", "SYS_ADMIN"),
    # passt sandboxes itself in a user namespace; Docker's default seccomp profile allows unshare(CLONE_NEWUSER)
    # only to a process holding CAP_SYS_ADMIN
    (
        re.compile(r"(Couldn't|could not) create user namespace"),
        "creating a user namespace (Docker's default seccomp profile allows it only with CAP_SYS_ADMIN)",
        "SYS_ADMIN",
    ),
    (re.compile(r"/dev/net/tun[^\n]*No such file"), "the device /dev/net/tun (not passed)", None),
    (
        re.compile(r"/dev/kvm[^\n]*No such file|Could not access KVM kernel module"),
        "the device /dev/kvm (not passed)",
        None,
    ),
    (re.compile(r"/dev/vhost-net[^\n]*No such file"), "the device /dev/vhost-net (not passed)", None),
    (re.compile(r"Read-only file system"), "a write to a read-only path (/proc/sys is read-only in a container)", None),
)


def explain_refusal(message: str, compute: ComputeSpec) -> str:
    """`refused by the container: ...` naming what compute was refused (a capability it lacks, a device, a
    read-only path), when `message` (a tool's last words) shows one; empty otherwise."""
    held = (DOCKER_DEFAULT_CAPS | set(compute.cap_add)) - set(compute.cap_drop)
    for pattern, what, capability in REFUSALS:
        if not pattern.search(message):
            continue
        if capability is None:
            return f"refused by the container: {what}"
        alternatives = capability.split("|")
        if not held & set(alternatives):
            needed = " or ".join(f"CAP_{c}" for c in alternatives)
            return f"refused by the container: {what} needs {needed}, which compute lacks ({compute.label()})"
    return ""


def _env_args(env: dict[str, str]) -> list[str]:
    return [a for k, v in env.items() for a in ("-e", f"{k}={v}")]


def remove_run_containers(run_id: str) -> list[str]:
    """Every container labelled with `run_id` on the project's engine, removed (force); names returned. Nothing
    if no engine answers (then there is none of its containers either)."""
    from harness.runtime.engine import EngineUnavailable, client

    try:
        engine = client()
    except EngineUnavailable:
        return []
    removed = []
    try:
        for container in engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}):
            with contextlib.suppress(Exception):
                container.remove(force=True)
                removed.append(container.name)
    finally:
        engine.close()
    return removed
