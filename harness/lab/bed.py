"""The test bed of one measurement cell: peer ── node ── pod (── guest), as in docs/design.md.

```
 peer ns ──veth── node ns ──veth── pod ns ──(strategy)── guest ns
 198.18.1.2       .1.1 / .2.1      eth0 198.18.2.2         198.19.0.0/16 or the pod IP (bridge)
```
The node routes between the peer's subnet and the pod's, like a node's CNI does; nothing is added to the
root namespace. One TestBed owns everything it and the strategy create and tears it down in reverse order.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from harness.lab.names import link_name, resource_name
from harness.lab.netns import Namespace, veth
from harness.lab.paths import STATE_DIR
from harness.lab.processes import ProcessTracker, TrackedProcess
from harness.lab.runtime import NetnsRuntime, PodRuntime, Role
from harness.lab.signals import critical_section
from harness.lab.state import RunState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddressPlan:
    """Addresses of one bed: IPv4 inside the RFC 2544 benchmarking range 198.18.0.0/15 and, when `ipv6`, IPv6
    beside them inside the RFC 5180 range 2001:2::/48 (one /64 per link, the same third group as the IPv4 subnet:
    198.18.2.0/24 and 2001:2:0:2::/64 are the pod's)."""

    peer_net: str = "198.18.1.0/24"
    node_peer_side: str = "198.18.1.1/24"
    peer: str = "198.18.1.2/24"
    pod_net: str = "198.18.2.0/24"
    node_pod_side: str = "198.18.2.1/24"
    pod: str = "198.18.2.2/24"
    proxy_pod_net: str = "198.18.3.0/24"
    """A second pod on the node that a mesh runs its own proxy in (add_proxy_pod), when it has one."""
    node_proxy_pod_side: str = "198.18.3.1/24"
    proxy_pod: str = "198.18.3.2/24"
    mtu: int = 1500
    ipv6: bool = False
    """Dual stack: every link of the bed also gets its IPv6 address and route (scenarios' `ip_families`)."""
    peer_net6: str = "2001:2:0:1::/64"
    node_peer_side6: str = "2001:2:0:1::1/64"
    peer6: str = "2001:2:0:1::2/64"
    pod_net6: str = "2001:2:0:2::/64"
    node_pod_side6: str = "2001:2:0:2::1/64"
    pod6: str = "2001:2:0:2::2/64"
    node_proxy_pod_side6: str = "2001:2:0:3::1/64"
    proxy_pod6: str = "2001:2:0:3::2/64"
    moved_pod_net: str = "198.18.4.0/24"
    """Where a launcher pod made for a live migration lands when the CNI gives it a new address
    (`second_pod(..., new_address=True)`); one that keeps the address takes `pod`."""
    node_moved_pod_side: str = "198.18.4.1/24"
    moved_pod: str = "198.18.4.2/24"
    node_moved_pod_side6: str = "2001:2:0:4::1/64"
    moved_pod6: str = "2001:2:0:4::2/64"

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

    @property
    def proxy_pod_ip(self) -> str:
        return self.ip(self.proxy_pod)

    def moved(self) -> AddressPlan:
        """The plan of a second launcher pod that got a new address: the moved pod's subnet in the pod's place."""
        return replace(
            self,
            pod_net=self.moved_pod_net,
            node_pod_side=self.node_moved_pod_side,
            pod=self.moved_pod,
            node_pod_side6=self.node_moved_pod_side6,
            pod6=self.moved_pod6,
            pod_net6=self.moved_pod6.rsplit("::", 1)[0] + "::/64",
        )

    @property
    def peer_ip6(self) -> str:
        return self.ip(self.peer6)

    @property
    def pod_ip6(self) -> str:
        return self.ip(self.pod6)

    @property
    def pod_gateway6(self) -> str:
        return self.ip(self.node_pod_side6)


class TestBed:
    """Peer, node and pod namespaces wired together; strategies add the guest and what lies between."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        run_id: str,
        state: RunState,
        tracker: ProcessTracker,
        plan: AddressPlan | None = None,
        runtime: PodRuntime | None = None,
    ):
        self.run_id = run_id
        self.runtime = runtime or NetnsRuntime()
        self.pod_handle: object | None = None
        """The runtime's own handle on this bed's pod (the docker runtime's DockerPod), None on netns."""
        self.state = state
        self.tracker = tracker
        self.plan = plan or AddressPlan()
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self.namespaces: dict[str, Namespace] = {}
        self.processes: list[TrackedProcess] = []
        self.closed = False
        self.role = ""
        """'' for the bed's own pod; a second pod's role for a view from second_pod()."""
        self.pod_link = self.link("pd")
        """The node's end of the pod's link."""
        self.cluster_state: dict[str, object] = {}
        """What belongs to the cluster rather than to one pod (the mesh's CA), shared with a second pod's view."""

    # -- building --------------------------------------------------------------------------------------
    def build(self) -> TestBed:
        p = self.plan
        peer, node = (self.add_namespace(role) for role in ("peer", "node"))
        pod = self.runtime.make_pod(self)
        self.without_dad(pod)  # a pod made by a container runtime, not add_namespace
        node.sysctl("net.ipv4.ip_forward", 1)
        veth(node, self.link("pr"), peer, "eth0", mtu=p.mtu)
        node.add_address(self.link("pr"), p.node_peer_side)
        peer.add_address("eth0", p.peer)
        peer.add_route("default", gateway=p.ip(p.node_peer_side))
        veth(node, self.link("pd"), pod, "eth0", mtu=p.mtu)
        node.add_address(self.link("pd"), p.node_pod_side)
        pod.add_address("eth0", p.pod)
        pod.add_route("default", gateway=p.pod_gateway)
        if p.ipv6:
            node.sysctl("net.ipv6.conf.all.forwarding", 1)
            node.add_address(self.link("pr"), p.node_peer_side6)
            peer.add_address("eth0", p.peer6)
            peer.add_route("default", gateway=p.ip(p.node_peer_side6))
            node.add_address(self.link("pd"), p.node_pod_side6)
            pod.add_address("eth0", p.pod6)
            pod.add_route("default", gateway=p.pod_gateway6)
        return self

    def add_proxy_pod(self, role: str) -> Namespace:
        """A second pod on the node, wired as the pod is (its own subnet, the node routing): where a mesh runs a
        proxy of its own that is neither the pod's nor the peer's. Torn down with the bed."""
        p = self.plan
        ns = self.add_namespace(role)
        veth(self.node, self.link("px"), ns, "eth0", mtu=p.mtu)
        self.node.add_address(self.link("px"), p.node_proxy_pod_side)
        ns.add_address("eth0", p.proxy_pod)
        ns.add_route("default", gateway=p.ip(p.node_proxy_pod_side))
        if p.ipv6:
            self.node.add_address(self.link("px"), p.node_proxy_pod_side6)
            ns.add_address("eth0", p.proxy_pod6)
            ns.add_route("default", gateway=p.ip(p.node_proxy_pod_side6))
        return ns

    def second_pod(self, role: str, *, new_address: bool) -> TestBed:
        """Another launcher pod on the node (live migration's target), wired by the node as the pod is, and this
        bed seen with it as `pod`: a strategy's and a mesh's setup run on the returned view unchanged. Its files
        go to their own folder and its processes carry `role` in their names; everything it creates is torn down
        with this bed (the view is never closed itself).

        `new_address`: the CNI gives it a new IP in its own subnet (the default CNI). Otherwise it gets the pod's IP
        (OVN-Kubernetes' user-defined networks keep it across a migration): the node then holds the gateway
        address on the new link as a /32, so the pod's subnet route stays on the first pod's link until
        `take_over_address` moves the pod's /32 there (as OVN moves the logical port at the switch-over)."""
        p = self.plan.moved() if new_address else self.plan
        ns = self.add_namespace(role)
        self.without_dad(ns)
        node_link = self.link(role[:2])
        veth(self.node, node_link, ns, "eth0", mtu=p.mtu)
        self.node.add_address(node_link, p.node_pod_side if new_address else f"{p.pod_gateway}/32")
        ns.add_address("eth0", p.pod)
        ns.add_route("default", gateway=p.pod_gateway)
        if p.ipv6:
            self.node.add_address(node_link, p.node_pod_side6 if new_address else f"{p.pod_gateway6}/128")
            ns.add_address("eth0", p.pod6)
            ns.add_route("default", gateway=p.pod_gateway6)
        view = copy.copy(self)  # shares the teardown list, the process list and the runtime
        view.namespaces = {**self.namespaces, "pod": ns}
        view.plan = p
        view.role = role
        view.pod_link = node_link
        return view

    def take_over_address(self, view: TestBed) -> None:
        """The switch-over at the node when the address is kept: the pod's IP routed to `view`'s link."""
        self.node.run(["ip", "route", "replace", f"{self.plan.pod_ip}/32", "dev", view.pod_link])
        if self.plan.ipv6:
            self.node.run(["ip", "-6", "route", "replace", f"{self.plan.pod_ip6}/128", "dev", view.pod_link])

    def remove_pod_link(self) -> None:
        """The CNI's DEL of this bed's pod: its link from the node goes (the pod's sockets can send nothing more)."""
        self.node.run(["ip", "link", "del", self.pod_link])

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
        self.without_dad(ns)
        return ns

    def without_dad(self, ns: Namespace) -> None:
        """On a dual-stack bed, links made in `ns` skip IPv6 duplicate address detection. With it, each new link's
        link-local address stays tentative for 1-2 s and neighbour discovery waits on it: the first connection
        of a fresh bed took 2 s (measured: a CRR test's first SYN), a setup delay no real pod shows once its
        traffic flows, long after its links came up. Global addresses are `nodad` anyway (Namespace.add_address)."""
        if self.plan.ipv6:
            for scope in ("all", "default"):
                ns.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)

    @contextmanager
    def strategy_setup(self) -> Iterator[None]:
        """Around a strategy's setup: where its privileged commands run is the runtime's decision (the node, as
        virt-handler; or, with the docker runtime's `in-pod` setup, the compute container)."""
        with self.runtime.setup_context(self):
            yield

    def pod_init(self, role: str, spec: Role):
        """Where an init container's commands run (`.run(argv, input=)`): the runtime's init container `role` with
        `spec`'s capabilities (a mesh's init, declared by the mesh), or the pod's namespace on netns."""
        return self.runtime.init_runner(self, role, spec)

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
        path = STATE_DIR / self.run_id / ("bed-" + self.role if self.role else "bed")
        if not path.exists():
            path.mkdir(parents=True)
            path.chmod(0o755)  # the sidecar's own uid reads its bootstrap here
            self.on_teardown(f"folder {path}", lambda: shutil.rmtree(path, ignore_errors=True))
        return path

    # -- processes -------------------------------------------------------------------------------------
    def start_process(
        self, argv: list[str], *, name: str, ns: Namespace | None, container: str | None = None, node_side: bool = False
    ) -> TrackedProcess:
        """Start a process that lives as long as the bed (a proxy, slirp4netns, a sidecar). In the pod on the docker
        runtime it runs in the pod's `container` (default compute) unless `node_side` (a node agent's step)."""
        name = f"{self.role}-{name}" if self.role else name
        proc = self.tracker.start(
            argv, name=f"{self.run_id}-{name}", netns=ns.name if ns else None, container=container, node_side=node_side
        )
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
