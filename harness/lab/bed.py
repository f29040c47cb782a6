"""The test bed of one measurement cell: peer ── node ── pod (── guest), as in DESIGN.md.

```
 peer ns ──veth── node ns ──veth── pod ns ──(strategy)── guest ns
 198.18.1.2       .1.1 / .2.1      eth0 198.18.2.2         198.19.0.0/16 or the pod IP (bridge)
```
The node routes between the peer's subnet and the pod's, like a node's CNI does; nothing is added to the
root namespace. One TestBed owns everything it and the strategy create and tears it down in reverse order.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.lab.names import link_name, resource_name
from harness.lab.netns import CommandFailed, Namespace, veth
from harness.lab.paths import STATE_DIR
from harness.lab.pods import DockerPod, DockerRuntime, Role
from harness.lab.processes import ProcessTracker, TrackedProcess
from harness.lab.signals import critical_section
from harness.lab.state import RunState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddressPlan:
    """Addresses of one bed, all inside the RFC 2544 benchmarking range 198.18.0.0/15."""

    peer_net: str = "198.18.1.0/24"
    node_peer_side: str = "198.18.1.1/24"
    peer: str = "198.18.1.2/24"
    pod_net: str = "198.18.2.0/24"
    node_pod_side: str = "198.18.2.1/24"
    pod: str = "198.18.2.2/24"
    mtu: int = 1500

    @staticmethod
    def ip(cidr: str) -> str:
        return cidr.split("/")[0]

    @property
    def peer_ip(self) -> str:
        return self.ip(self.peer)

    @property
    def pod_ip(self) -> str:
        return self.ip(self.pod)

    @property
    def pod_gateway(self) -> str:
        return self.ip(self.node_pod_side)


class TestBed:
    """Peer, node and pod namespaces wired together; strategies add the guest and what lies between."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        run_id: str,
        state: RunState,
        tracker: ProcessTracker,
        plan: AddressPlan | None = None,
        pod_runtime: DockerRuntime | None = None,
    ):
        self.run_id = run_id
        self.pod_runtime = pod_runtime
        self.docker_pod: DockerPod | None = None
        self.state = state
        self.tracker = tracker
        self.plan = plan or AddressPlan()
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self.namespaces: dict[str, Namespace] = {}
        self.processes: list[TrackedProcess] = []
        self.closed = False

    # -- building --------------------------------------------------------------------------------------
    def build(self) -> TestBed:
        p = self.plan
        peer, node = (self.add_namespace(role) for role in ("peer", "node"))
        pod = self.add_namespace("pod") if self.pod_runtime is None else self.add_container_pod()
        node.sysctl("net.ipv4.ip_forward", 1)
        veth(node, self.link("pr"), peer, "eth0", mtu=p.mtu)
        node.add_address(self.link("pr"), p.node_peer_side)
        peer.add_address("eth0", p.peer)
        peer.add_route("default", gateway=p.ip(p.node_peer_side))
        veth(node, self.link("pd"), pod, "eth0", mtu=p.mtu)
        node.add_address(self.link("pd"), p.node_pod_side)
        pod.add_address("eth0", p.pod)
        pod.add_route("default", gateway=p.pod_gateway)
        return self

    @classmethod
    def attach(
        cls,
        run_id: str,
        state: RunState,
        tracker: ProcessTracker,
        plan: AddressPlan | None = None,
    ) -> TestBed:
        """Handles on the peer, node and pod of a bed another process built; close() undoes only what is added
        through this object (a guest namespace, processes)."""
        bed = cls(run_id, state, tracker, plan)
        for role in ("peer", "node", "pod"):
            ns = Namespace.open(resource_name(run_id, role))
            bed.namespaces[role] = ns
            bed.on_teardown(f"handle {ns.name}", ns.close)
        return bed

    def link(self, role: str) -> str:
        return link_name(self.run_id, role)

    def add_namespace(self, role: str) -> Namespace:
        """A namespace of this bed: in the ledger before it exists, torn down with the bed."""
        name = resource_name(self.run_id, role)
        with critical_section():  # ledger, namespace and inode as one step, never half done by a signal
            self.state.add_namespace(name)
            try:
                ns = Namespace(name)  # removes what it created if it cannot finish
            except BaseException:
                self.state.drop_namespace(name)
                raise
            self.state.set_namespace_inode(name, ns.inode)
            self.namespaces[role] = ns
            self.on_teardown(f"namespace {name}", lambda: self._remove_namespace(ns))
        return ns

    def add_container_pod(self) -> Namespace:
        """The docker runtime's pod: a pause container with no network, its namespace given the pod's name (the
        CNI's view of it, by the container's PID), then the compute container joining it; processes started in
        the pod run in compute from here on."""
        name = resource_name(self.run_id, "pod")
        self.tracker.log_dir.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / self.run_id).mkdir(parents=True, exist_ok=True)
        mounts = [(STATE_DIR / self.run_id).resolve(), self.tracker.log_dir.resolve()]  # same paths inside
        self.docker_pod = pod = self.pod_runtime.new_pod(self.run_id, name, mounts)
        with critical_section():
            self.state.add_namespace(name)
            self.on_teardown(f"namespace {name}", lambda: self._remove_namespace(self.namespaces["pod"]))
            self.on_teardown(f"containers of {name}", pod.remove)
            pid = pod.start_pause()
            subprocess.run(["ip", "netns", "attach", name, str(pid)], check=True, capture_output=True)
            ns = Namespace(name, existing=True)
            self.state.set_namespace_inode(name, ns.inode)
            self.namespaces["pod"] = ns
        pod.join("compute", pod.compute_role())
        self.tracker.route(name, pod)
        self.on_teardown(f"process routing of {name}", lambda: self.tracker.unroute(name))
        return ns

    @contextmanager
    def strategy_setup(self) -> Iterator[None]:
        """Around a strategy's setup: on the docker runtime with `in-pod` setup, its rule and sysctl commands in
        the pod (nft, iptables-restore, /proc/sys) run in the compute container, with compute's capabilities;
        its links (bridge, tap, addresses) are still made over netlink from the node. Otherwise nothing changes:
        the node does the privileged setup, as virt-handler does."""
        pod = self.docker_pod
        if pod is None or self.pod_runtime is None or self.pod_runtime.setup != "in-pod":
            yield
            return
        self.pod.runs_in = lambda argv, stdin: pod.exec_run("compute", argv, timeout=30, env={}, input=stdin)
        try:
            yield
        finally:
            self.pod.runs_in = None

    def pod_init(self, role: str, spec: Role) -> Namespace | PodInit:
        """Where an init container's commands run (`.run(argv, input=)`): on the docker runtime an init container
        `role` with `spec`'s capabilities (a mesh's init, declared by the mesh), on the netns runtime the pod's
        namespace itself."""
        return PodInit(self.docker_pod, role, spec) if self.docker_pod is not None else self.pod

    def _remove_namespace(self, ns: Namespace) -> None:
        with critical_section():
            ns.remove()
            self.state.drop_namespace(ns.name)

    @property
    def peer(self) -> Namespace:
        return self.namespaces["peer"]

    @property
    def node(self) -> Namespace:
        return self.namespaces["node"]

    @property
    def pod(self) -> Namespace:
        return self.namespaces["pod"]

    def runtime_dir(self) -> Path:
        """A folder for this bed's sockets and configuration files (`/run/vmnetbench/<run id>/bed/`), removed at
        teardown."""
        path = STATE_DIR / self.run_id / "bed"
        if not path.exists():
            path.mkdir(parents=True)
            path.chmod(0o755)  # the sidecar's own uid reads its bootstrap here
            self.on_teardown(f"folder {path}", lambda: shutil.rmtree(path, ignore_errors=True))
        return path

    # -- processes -------------------------------------------------------------------------------------
    def start_process(self, argv: list[str], *, name: str, ns: Namespace | None, container: str | None = None,
                      node_side: bool = False) -> TrackedProcess:  # fmt: skip
        """Start a process that lives as long as the bed (a proxy, slirp4netns, a sidecar). In the pod on the docker
        runtime it runs in the pod's `container` (default compute) unless `node_side` (a node agent's step)."""
        proc = self.tracker.start(argv, name=f"{self.run_id}-{name}", netns=ns.name if ns else None,
                                  container=container, node_side=node_side)  # fmt: skip
        self.processes.append(proc)
        self.on_teardown(f"process {name} ({proc.pid})", lambda: self.tracker.stop(proc))
        return proc

    # -- teardown --------------------------------------------------------------------------------------
    def on_teardown(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def close(self) -> float:
        """Undo everything in reverse order; every step is attempted even if one fails, and even if SIGINT or
        SIGTERM arrives meanwhile (re-raised once the bed is down). Returns seconds."""
        t0 = time.monotonic()
        errors = []
        interrupted: BaseException | None = None
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as e:  # noqa: BLE001 - keep tearing down, report at the end
                errors.append(f"{what}: {e}")
            except BaseException as e:  # noqa: BLE001 - a signal mid-teardown: finish first, then unwind
                interrupted = interrupted or e
        self.closed = True
        if interrupted is not None:
            raise interrupted
        if errors:
            raise RuntimeError("teardown incomplete: " + "; ".join(errors))
        return time.monotonic() - t0

    def __enter__(self) -> TestBed:
        try:
            return self.build()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        if not self.closed:
            self.close()


@dataclass
class PodInit:
    """An init container of a docker-runtime pod, with the capabilities its mesh declares, answering `.run` as a
    Namespace does (so iptables-restore runs there instead of from the host)."""

    pod: DockerPod
    role: str
    spec: Role

    @property
    def name(self) -> str:
        return f"{self.pod.name}-{self.role}"

    def run(self, argv: list[str], *, input: str | None = None, check: bool = True) -> str:
        done = self.pod.run_init(argv, input=input, spec=self.spec)
        if check and done.returncode != 0:
            raise CommandFailed(f"{' '.join(argv)} in the {self.role} container failed: "
                                f"{done.stderr.strip() or done.stdout.strip()}")  # fmt: skip
        return done.stdout
