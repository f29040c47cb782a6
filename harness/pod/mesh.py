"""Mesh modes, one seam: each mode is one class that declares what it adds to a pod and does to it, the way
Mininet injects its node classes. A new mode is a subclass here (or in its own module of harness/pod/) plus its
name in SidecarKind; the runner, the claims probes, describe and the figures ask the class, never the name.

What a mode declares:
- `containers`: the pod containers it adds (role name -> privileges: istio-init's NET_ADMIN + NET_RAW, the
  proxy's uid or NET_ADMIN in TPROXY mode), which the docker runtime creates;
- `layout`: the proxy's uid and ports (harness/pod/sidecars.py Layout), `reserved_ports` the ports KubeVirt
  keeps out of a VM's forwards when this mode is injected (kubevirt/kubevirt pkg/network/istio ports.go);
- `kubevirt_istio`: whether KubeVirt's Istio adaptations apply (KubeVirt keys them on
  `sidecar.istio.io/inject`: the masquerade nft branch, passt's port exclusions, the bridge's
  kubevirtInterfaces); `reroutes_vm_interfaces`: whether the VM's interfaces are announced to the mesh;
- `install`: what the init container, the CNI agent and the proxy do, in order, for the pod and, for a meshed
  client (`Client`), for the peer too (its own sidecar, or its node's ztunnel); it returns the pod's Sidecar
  whose own counters (the proxy's admin stats) prove the path, with the peer's as `peer_proxy`, or None for
  `none`; `meshed_clients`: whether the mode has meshed clients (Istio's mTLS / HBONE), and `client_tunnel`
  what a meshed client's traffic crosses between the proxies;
- `style`: how figures draw it (line style, bar hatch)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from harness.lab.bed import TestBed
from harness.lab.rules import apply_iptables, apply_nft
from harness.lab.runtime import Role
from harness.pod import ambient, dns_proxy, mtls, waypoint
from harness.pod.identity import MeshCA, spiffe_id
from harness.pod.ip6 import INBOUND_PASSTHROUGH_BIND6, ip6tables_rules, with_ipv6_twins
from harness.pod.istio import DEFAULT_ISTIO, IstioBackend, IstioSetup, istio_release
from harness.pod.kubevirt import rerouted_interfaces
from harness.pod.mtls import MeshTls, PeerAuthentication, PeerKind
from harness.pod.sidecars import (
    ISTIO_UID,
    LINKERD_UID,
    TPROXY_TABLE,
    Layout,
    Sidecar,
    admin_socket,
    istio_nat_nft,
    istio_nat_rules,
    istio_tproxy_mangle_nft,
    istio_tproxy_mangle_rules,
    linkerd_nat_rules,
    start_sidecar_envoy,
)

ISTIO_RESERVED_PORTS = (15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090)
"""The ports KubeVirt excludes from a VM's forwards when Istio is injected (kubevirt/kubevirt
pkg/network/istio/ports.go: Envoy's admin, outbound, inbound, tunnel, health, telemetry, DNS ports)."""
ISTIO_INIT = Role(cap_add=("NET_ADMIN", "NET_RAW"))
ISTIO_PROXY = Role(user=None)  # Envoy drops to 1337 itself (setpriv), as the image's entrypoint user would be
ISTIO_PROXY_TPROXY = Role(cap_add=("NET_ADMIN",))


class SidecarKind(str):
    """A mesh mode's name as scenarios, options and rows spell it (`sidecars: [none, envoy-redirect]`): the `kind` of
    a registered Mesh class, so a new mode is its class and nothing else. `SidecarKind("x")` of an unregistered name
    is a ValueError naming the modes allowed."""

    NONE: ClassVar[SidecarKind]
    """The pod without a mesh: the reference every mesh layout is judged against."""

    def __new__(cls, value: object) -> SidecarKind:
        name = str(value)
        if name not in MESHES:
            raise ValueError(f"unknown mesh mode {name!r}; allowed: {', '.join(MESHES)}")
        return super().__new__(cls, name)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: object) -> object:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def all(cls) -> list[SidecarKind]:
        """Every registered mode, in the order the classes were defined."""
        return [cls(name) for name in MESHES]

    @property
    def istio(self) -> bool:
        """KubeVirt's Istio adaptations apply (an Istio sidecar is injected)."""
        return mesh_for(self).kubevirt_istio

    @property
    def ambient(self) -> bool:
        return mesh_for(self).node_proxy


POD_SERVICE_ACCOUNT = "vm"  # the VM's launcher pod (spiffe://cluster.local/ns/vmnb/sa/vm)
PEER_SERVICE_ACCOUNT = "peer"


@dataclass(frozen=True)
class Client:
    """The other side of the pod: outside the mesh or meshed, and the PeerAuthentication mode of the pods."""

    peer: PeerKind = PeerKind.OUTSIDE
    authentication: PeerAuthentication = PeerAuthentication.PERMISSIVE

    @property
    def meshed(self) -> bool:
        return self.peer is PeerKind.MESHED

    @property
    def strict(self) -> bool:
        return self.authentication is PeerAuthentication.STRICT


def layout_label(
    kind: SidecarKind | str, client: Client, *, dns_capture: bool = True, backend: IstioBackend | str | None = None
) -> str:
    """The mesh layout's name in rows and tables: the mode, `+meshed` for a meshed client, `+strict` under STRICT,
    `+no-dns-capture` for ambient without its DNS capture, `+nftables` for Istio's nftables backend
    (`envoy-redirect`, `ambient+meshed+strict`, `envoy-redirect+nftables`)."""
    label = str(kind) + ("+meshed" if client.meshed else "") + ("+strict" if client.strict else "")
    label += "+no-dns-capture" if not dns_capture and mesh_for(kind).node_proxy else ""
    return label + ("+nftables" if backend is not None and str(backend) == IstioBackend.NFTABLES else "")


def mode_of(label: str) -> str:
    """The mesh mode of a layout label (`ambient+meshed` -> `ambient`)."""
    return str(label).split("+")[0]


def mesh_identities(
    bed: TestBed, client: Client, proxy_uid: int, ca: MeshCA | None = None
) -> tuple[MeshTls, MeshTls | None]:
    """A fresh mesh CA for the bed (or `ca`), the pod proxy's mTLS settings and, for a meshed client, the peer
    proxy's: each knows the other's address and SPIFFE id; access logs beside their admin sockets."""
    if ca is None:  # one istiod per cluster: a second pod of the bed (a migration's target) gets the same root
        ca = bed.cluster_state.get("mesh-ca") or MeshCA(bed.runtime_dir() / "mesh-ca")
        bed.cluster_state["mesh-ca"] = ca
    plan = bed.plan
    pod_id, peer_id = spiffe_id(POD_SERVICE_ACCOUNT), spiffe_id(PEER_SERVICE_ACCOUNT)
    pod = MeshTls(
        ca.issue(POD_SERVICE_ACCOUNT, owner_uid=proxy_uid),
        meshed={plan.peer_ip: peer_id} if client.meshed else {},
        strict=client.strict,
    )
    if not client.meshed:
        return pod, None
    peer = MeshTls(
        ca.issue(PEER_SERVICE_ACCOUNT, owner_uid=proxy_uid), meshed={plan.pod_ip: pod_id}, strict=client.strict
    )
    return pod, peer


def with_log(tls: MeshTls | None, admin: Path) -> MeshTls | None:
    return None if tls is None else replace(tls, access_log=admin.parent / "access.log")


@dataclass(frozen=True)
class ClusterObjects:
    """What a mode puts on a real cluster's objects (`vmnetbench manifests`): Istio's injection label, ambient's
    dataplane-mode label, Linkerd's inject annotation (istio.io and linkerd.io install docs)."""

    namespace_labels: dict[str, str] = field(default_factory=dict)
    namespace_annotations: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)
    """On every pod of the cell's namespace that the mesh should take (the VMI passes its own to the launcher)."""
    job_annotations: dict[str, str] = field(default_factory=dict)
    """On a meshed client's Jobs too (Istio's native sidecar, so a Job completes)."""
    reroute_vm_interfaces: bool = False
    """The VM's pod carries istio.io/reroute-virtual-interfaces with the binding's VM interfaces."""
    waypoint: bool = False
    """The namespace gets a waypoint: a Gateway of class istio-waypoint named by its istio.io/use-waypoint label."""


_ISTIO_SIDECAR = {
    "sidecar.istio.io/inject": "true",
    "proxy.istio.io/config": json.dumps({"holdApplicationUntilProxyStarts": True}),
}
_NATIVE_SIDECAR = {"sidecar.istio.io/nativeSidecar": "true"}
_AMBIENT = {"istio.io/dataplane-mode": "ambient"}


@dataclass(frozen=True)
class PublishedMode:
    """One of Istio's benchmark modes (istio/tools perf/benchmark; istio.io "Performance and Scalability") as a
    cell of this mode: the direction the VM's pod serves or calls in, whether the client is meshed, and which
    proxy Istio's per-proxy figure is for (`sidecar`, `ztunnel`, or '' for the baseline)."""

    name: str
    direction: str
    meshed_client: bool = False
    proxy: str = ""


MESHES: dict[str, type[Mesh]] = {}
"""Every mode's class by its name (`none`, `envoy-redirect`, ...), registered by subclassing Mesh."""


class Mesh:
    kind: ClassVar[str]
    """The mode's name in scenarios and rows (SidecarKind accepts exactly the registered ones)."""
    istio_component: ClassVar[str] = ""
    """Which part of Istio installs the mode (`sidecar`: istio-init or the CNI sidecar plugin; `ambient`: istio-cni's
    node agent): its redirection backend and release defaults come from harness/pod/istio.py; '' = not Istio."""
    probed_by_claims: ClassVar[bool] = False
    """The seed's 'works under any sidecar' claims probe this mode (claims/facts.py): one layout per kind of
    mesh (none, Istio's sidecar, another mesh's sidecar, Istio ambient as KubeVirt pods get it)."""
    layout: ClassVar[Layout | None] = None
    containers: ClassVar[dict[str, Role]] = {}
    reserved_ports: ClassVar[tuple[int, ...]] = ()
    kubevirt_istio: ClassVar[bool] = False
    reroutes_vm_interfaces: ClassVar[bool] = False
    node_proxy: ClassVar[bool] = False
    """The proxy runs on the node, its listeners in the pod (ambient's ztunnel), not as a container of the pod."""
    meshed_clients: ClassVar[bool] = False
    outside_clients: ClassVar[bool] = True
    """Clients outside the mesh are measured too (a waypoint only serves meshed ones)."""
    client_tunnel: ClassVar[str] = ""
    """What a meshed client's bytes cross between the two proxies (`mTLS`, `HBONE`)."""
    ip_families: ClassVar[tuple[str, ...]] = ("ipv4", "ipv6")
    """The families whose capture is built here (a dual-stack run measures the others' IPv6 not at all, and says
    so); IPv6 is measured with clients outside the mesh (the meshed tunnels' IPv6 is not built)."""
    style: ClassVar[tuple[object, str]] = ("-", "")
    title: ClassVar[str] = ""
    """The layout as KubeVirt and Istio users name it, on the decision page (`Istio sidecar (REDIRECT)`)."""
    cluster: ClassVar[ClusterObjects] = ClusterObjects()
    published_modes: ClassVar[tuple[PublishedMode, ...]] = ()
    """Istio's published benchmark modes this mode reproduces (answer.md's HTTP section sets them side by side)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            MESHES[str(cls.kind)] = cls

    def install(
        self,
        bed: TestBed,
        vm_interfaces: list[str],
        client: Client = Client(),
        annotations: dict[str, str] | None = None,
        dns_capture: bool = True,
        istio: IstioSetup = DEFAULT_ISTIO,
        peer_proxy: bool = True,
    ) -> Sidecar | None:
        """`annotations`: the pod's, as KubeVirt's release wrote them (harness/pod/kubevirt.py pod_annotations).
        `dns_capture`: istio-cni's ambient DNS capture (the chart's default); other modes have none. `istio`: the
        Istio release and redirection backend an Istio mode is installed from. `peer_proxy`: False when a meshed
        client's proxy already runs (a second pod of the same bed, a migration's target)."""
        return None

    def captures_ipv6(self, bed: TestBed, istio: IstioSetup) -> bool:
        """The mode writes its IPv6 rules and listens on IPv6: a dual-stack pod, a mode whose IPv6 capture is built,
        and Istio installed dual stack (harness/pod/ip6.py says what the real tools key it on)."""
        return bed.plan.ipv6 and "ipv6" in self.ip_families and istio.dual_stack

    def backends(self, istio: IstioSetup) -> tuple[IstioBackend, ...]:
        """The redirection backends this mode has in `istio`'s release (none for a mode that is not Istio)."""
        release = istio_release(istio.release)
        if self.istio_component == "sidecar":
            return release.sidecar_backends
        return release.ambient_backends if self.istio_component == "ambient" else ()


class NoMesh(Mesh):
    kind = "none"
    probed_by_claims = True
    title = "No mesh"
    published_modes = (PublishedMode("baseline", "ingress"),)


SidecarKind.NONE = SidecarKind(NoMesh.kind)


class IstioSidecar(Mesh):
    """Istio's sidecar in REDIRECT mode: istio-init's nat rules (istio/istio tools/istio-iptables golden files),
    then Envoy as uid 1337 in the istio-proxy container (harness/pod/sidecars.py)."""

    kind = "envoy-redirect"
    istio_component = "sidecar"
    probed_by_claims = True
    title = "Istio sidecar (REDIRECT)"
    published_modes = (
        PublishedMode("server sidecar", "ingress", proxy="sidecar"),
        PublishedMode("client sidecar", "egress", proxy="sidecar"),
        PublishedMode("both sidecars (mTLS)", "ingress", meshed_client=True, proxy="sidecar"),
    )
    cluster = ClusterObjects({"istio-injection": "enabled"}, {}, _ISTIO_SIDECAR, _NATIVE_SIDECAR)
    layout = Layout("envoy-redirect", ISTIO_UID, 15006, 15001, 15000, istio=True)
    containers = {"istio-init": ISTIO_INIT, "istio-proxy": ISTIO_PROXY}
    reserved_ports = ISTIO_RESERVED_PORTS
    kubevirt_istio = True
    reroutes_vm_interfaces = True
    meshed_clients = True
    client_tunnel = "mTLS"
    style = ("--", "//")

    def rules(self, vm_interfaces: list[str]) -> dict[str, list[str]]:
        return {"nat": istio_nat_rules(self.layout, vm_interfaces, capture_inbound=not self.layout.tproxy)}

    def install(
        self,
        bed: TestBed,
        vm_interfaces: list[str],
        client: Client = Client(),
        annotations: dict[str, str] | None = None,
        dns_capture: bool = True,
        istio: IstioSetup = DEFAULT_ISTIO,
        peer_proxy: bool = True,
    ) -> Sidecar:
        """The pod's init container and proxy; for a meshed client, the peer pod's too (its init's rules in the
        peer's namespace, its Envoy there as uid 1337: the peer is the rest of the cluster, not a container here)."""
        pod_tls, peer_tls = mesh_identities(bed, client, self.layout.uid) if self.layout.istio else (None, None)
        init, spec = next((r, s) for r, s in self.containers.items() if r.endswith("-init"))
        proxy, proxy_spec = next((r, s) for r, s in self.containers.items() if r.endswith("-proxy"))
        init_runner = bed.pod_init(init, spec)
        sidecar = self._install_in(bed, bed.pod, "pod", vm_interfaces, pod_tls, init_runner, (proxy, proxy_spec), istio)
        if client.meshed and peer_proxy:
            sidecar.peer_proxy = self._install_in(bed, bed.peer, "peer", [], peer_tls, bed.peer, (None, None), istio)
        return sidecar

    def nft_rules(self, vm_interfaces: list[str]) -> str:
        """The same redirection with Istio's native nftables backend (harness/pod/istio.py says which releases)."""
        return istio_nat_nft(self.layout, vm_interfaces, capture_inbound=not self.layout.tproxy)

    def _install_in(
        self,
        bed: TestBed,
        ns,
        role: str,
        vm_interfaces: list[str],
        tls: MeshTls | None,
        init_runner,
        container: tuple,
        istio: IstioSetup = DEFAULT_ISTIO,
    ) -> Sidecar:
        layout = self.layout
        sidecar = Sidecar(layout, ns, admin_socket(bed, layout, role))
        tls = with_log(tls, sidecar.admin_socket)
        sidecar.access_log, sidecar.spiffe_id = (tls.access_log, tls.own.spiffe_id) if tls else (None, "")
        # the init container (NET_ADMIN, NET_RAW); istio-init --native-nftables on the nftables backend
        ipv6 = self.captures_ipv6(bed, istio)
        nft = self.nft_rules(vm_interfaces) if istio.nftables and self.istio_component else None
        nft = with_ipv6_twins(nft) if nft and ipv6 else nft
        install_redirection(init_runner, sidecar, nft, None if nft else self.rules(vm_interfaces), ipv6=ipv6)
        if ipv6 and layout.istio:  # istio-init's configureIPv6Addresses: the inbound passthrough's ::6 source
            ns.add_address("lo", f"{INBOUND_PASSTHROUGH_BIND6}/128")
        if layout.tproxy:
            for family_v6 in (False, True) if ipv6 else (False,):
                ns.add_policy_rule(fwmark=layout.uid, table=TPROXY_TABLE, ipv6=family_v6)
                ns.add_local_default_route(TPROXY_TABLE, ipv6=family_v6)
        name = layout.name if role == "pod" else f"{layout.name}-{role}"
        sidecar.process = start_sidecar_envoy(
            bed, layout, sidecar.admin_socket, *container, ns=ns, tls=tls, name=name, ipv6=ipv6
        )
        return sidecar


class IstioSidecarTproxy(IstioSidecar):
    """Istio's sidecar in TPROXY mode: mangle ISTIO_DIVERT/ISTIO_TPROXY, mark 1337, `ip rule ... lookup 133`."""

    kind = "envoy-tproxy"
    probed_by_claims = False
    title = "Istio sidecar (TPROXY)"
    published_modes = ()  # Istio benchmarks its default layout only
    cluster = ClusterObjects(
        {"istio-injection": "enabled"},
        {},
        {**_ISTIO_SIDECAR, "sidecar.istio.io/interceptionMode": "TPROXY"},
        _NATIVE_SIDECAR,
    )
    layout = Layout("envoy-tproxy", ISTIO_UID, 15006, 15001, 15000, istio=True, tproxy=True)
    containers = {"istio-init": ISTIO_INIT, "istio-proxy": ISTIO_PROXY_TPROXY}
    style = (":", "..")

    def rules(self, vm_interfaces: list[str]) -> dict[str, list[str]]:
        return {**super().rules(vm_interfaces), "mangle": istio_tproxy_mangle_rules(self.layout)}

    def nft_rules(self, vm_interfaces: list[str]) -> str:
        return super().nft_rules(vm_interfaces) + istio_tproxy_mangle_nft(self.layout)


class LinkerdStyle(IstioSidecar):
    """The same proxy binary behind Linkerd's proxy-init layout (linkerd/linkerd2-proxy-init): the test of
    "works with any sidecar". KubeVirt knows no Linkerd: none of its Istio adaptations apply."""

    kind = "linkerd-style"
    istio_component = ""  # another mesh's init container: iptables only
    probed_by_claims = True
    ip_families = ("ipv4",)  # linkerd2-proxy-init's ip6tables rules (its `--ipv6`) are not modelled
    title = "Linkerd-style sidecar"
    published_modes = ()  # Istio benchmarks its default layout only
    cluster = ClusterObjects({}, {"linkerd.io/inject": "enabled"})
    layout = Layout("linkerd-style", LINKERD_UID, 4143, 4140, 4191, istio=False)
    containers = {"linkerd-init": ISTIO_INIT, "linkerd-proxy": ISTIO_PROXY}
    reserved_ports = ()
    kubevirt_istio = False
    reroutes_vm_interfaces = False
    meshed_clients = False  # Linkerd's mTLS between its proxies is not modelled: an outside client only
    client_tunnel = ""
    style = ("-.", "xx")

    def rules(self, vm_interfaces: list[str]) -> dict[str, list[str]]:
        return {"nat": linkerd_nat_rules(self.layout)}


class Ambient(Mesh):
    """Istio ambient: istio-cni's in-pod rules and routing, the node's proxy with listeners in the pod
    (harness/pod/ambient.py). No container is added to the pod; KubeVirt's Istio adaptations keyed on
    sidecar.istio.io/inject do not apply, but the annotations its release writes on every masquerade pod do."""

    kind = "ambient"
    istio_component = "ambient"
    probed_by_claims = True
    title = "Istio ambient"
    published_modes = (PublishedMode("ambient (ztunnel both ends)", "ingress", meshed_client=True, proxy="ztunnel"),)
    cluster = ClusterObjects(_AMBIENT)
    # uid 0 is the node proxy's (ztunnel runs as root); its mark does the exclusion.
    layout = Layout("ambient", 0, ambient.INBOUND_PLAINTEXT_PORT, ambient.OUTBOUND_PORT, 15000, istio=False)
    node_proxy = True
    meshed_clients = True
    client_tunnel = "HBONE"
    style = ((0, (5, 1, 1, 1)), "\\\\")

    def install(
        self,
        bed: TestBed,
        vm_interfaces: list[str],
        client: Client = Client(),
        annotations: dict[str, str] | None = None,
        dns_capture: bool = True,
        istio: IstioSetup = DEFAULT_ISTIO,
        peer_proxy: bool = True,
    ) -> Sidecar:
        """istio-cni's rules and the node proxy for the pod and, for a meshed client, for the peer pod (its own
        ztunnel: the peer is on another node). The interfaces rerouted are those of the pod's
        istio.io/reroute-virtual-interfaces annotation (KubeVirt >= 1.7 writes it for a masquerade pod), or with
        `ambient-reroute` the binding's VM interfaces, as a user annotating the pod would; an Istio release whose
        node agent does not read the annotation (1.24) reroutes none."""
        pod_tls, peer_tls = mesh_identities(bed, client, self.layout.uid)
        rerouted = self.rerouted(vm_interfaces, annotations, istio)
        sidecar = self._install_in(bed, bed.pod, "pod", bed.plan.pod_ip, rerouted, pod_tls, dns_capture, istio)
        if client.meshed and peer_proxy:
            peer_ip = bed.plan.peer_ip
            sidecar.peer_proxy = self._install_in(bed, bed.peer, "peer", peer_ip, [], peer_tls, dns_capture, istio)
        return sidecar

    def rerouted(self, vm_interfaces: list[str], annotations: dict[str, str] | None, istio: IstioSetup) -> list[str]:
        """The VM interfaces istio-cni reroutes: those of the pod's istio.io/reroute-virtual-interfaces annotation,
        or with `ambient-reroute` the binding's; none where the release's node agent does not read it."""
        if not istio_release(istio.release).ambient_reroutes_virtual_interfaces:
            return []
        return vm_interfaces if self.reroutes_vm_interfaces else rerouted_interfaces(annotations or {})

    def _install_in(
        self,
        bed: TestBed,
        ns,
        role: str,
        ip: str,
        vm_interfaces: list[str],
        tls: MeshTls | None,
        dns_capture: bool,
        istio: IstioSetup = DEFAULT_ISTIO,
        via: tuple[str, str] | None = None,
    ) -> Sidecar:
        sidecar = Sidecar(self.layout, ns, admin_socket(bed, self.layout, role))
        tls = with_log(tls, sidecar.admin_socket)
        sidecar.access_log, sidecar.spiffe_id = (tls.access_log, tls.own.spiffe_id) if tls else (None, "")
        # istio-cni's node agent, in the pod's namespace; NATIVE_NFTABLES on the nftables backend
        ipv6 = self.captures_ipv6(bed, istio)
        nft = ambient.inpod_nft(vm_interfaces, dns_capture=dns_capture) if istio.nftables else None
        nft = with_ipv6_twins(nft) if nft and ipv6 else nft
        tables = None if nft else ambient.inpod_rules(vm_interfaces, dns_capture=dns_capture)
        install_redirection(ns, sidecar, nft, tables, ipv6=ipv6)
        ambient.add_inpod_routing(ns, ipv6=ipv6)
        suffix = "" if role == "pod" else f"-{role}"
        served = [ip] + ([bed.plan.pod_ip6] if ipv6 and role == "pod" else [])
        sidecar.process = ambient.start_node_proxy(
            bed, sidecar.admin_socket, pod=ns, pod_ips=served, tls=tls, name=f"ztunnel-envoy{suffix}", via=via
        )
        if dns_capture:
            sidecar.dns_stats = sidecar.admin_socket.parent / "dns-proxy.json"
            # the cluster's resolver stands on the peer's side (ztunnel forwards to its own resolv.conf's)
            hosts = dns_proxy.mesh_hosts(bed.plan.peer_ip)
            ambient.start_dns_proxy(
                bed,
                pod=ns,
                stats=sidecar.dns_stats,
                upstream=bed.plan.peer_ip,
                hosts=hosts,
                name=f"ztunnel-dns{suffix}",
            )
        return sidecar


class AmbientReroute(Ambient):
    """Ambient with the pod annotated istio.io/reroute-virtual-interfaces (the VM's interfaces rerouted)."""

    kind = "ambient-reroute"
    probed_by_claims = False
    title = "Istio ambient, VM interfaces rerouted (annotation)"
    published_modes = ()  # Istio benchmarks its default layout only
    cluster = ClusterObjects(_AMBIENT, reroute_vm_interfaces=True)
    layout = Layout("ambient-reroute", 0, ambient.INBOUND_PLAINTEXT_PORT, ambient.OUTBOUND_PORT, 15000, istio=False)
    reroutes_vm_interfaces = True
    style = ((0, (3, 1, 1, 1, 1, 1)), "++")


class AmbientWaypoint(Ambient):
    """Istio ambient with a waypoint for the VM's service (`istio.io/use-waypoint` on its namespace, the waypoint a
    Gateway of class istio-waypoint): a meshed client's ztunnel sends its HBONE to the waypoint, which terminates
    it, handles HTTP at L7 and opens HBONE to the VM pod's ztunnel (harness/pod/waypoint.py). Outside clients
    reach the pod's ztunnel directly, as without a waypoint, so only meshed clients are measured here; the VM's
    own egress does not cross its namespace's waypoint (a waypoint serves traffic to its services)."""

    kind = "ambient-waypoint"
    probed_by_claims = False
    title = "Istio ambient with a waypoint"
    published_modes = (PublishedMode("ambient with a waypoint (L7)", "ingress", meshed_client=True, proxy="waypoint"),)
    cluster = ClusterObjects({**_AMBIENT, "istio.io/use-waypoint": waypoint.SERVICE_ACCOUNT}, waypoint=True)
    layout = Layout("ambient-waypoint", 0, ambient.INBOUND_PLAINTEXT_PORT, ambient.OUTBOUND_PORT, 15000, istio=False)
    outside_clients = False
    ip_families = ("ipv4",)  # the waypoint's IPv6 listeners and meshed clients' IPv6 HBONE are not built
    style = ((0, (1, 1)), "oo")

    def install(
        self,
        bed: TestBed,
        vm_interfaces: list[str],
        client: Client = Client(),
        annotations: dict[str, str] | None = None,
        dns_capture: bool = True,
        istio: IstioSetup = DEFAULT_ISTIO,
        peer_proxy: bool = True,
    ) -> Sidecar:
        """The waypoint's pod and Envoy, then the pod's ztunnel and the meshed peer's, whose HBONE to the VM's
        service goes to the waypoint; the three identities from one mesh CA."""
        if not client.meshed:
            raise ValueError("ambient with a waypoint is measured with meshed clients only (peers: [meshed])")
        if not peer_proxy:
            raise ValueError("a second pod behind the same waypoint (a migration's target) is not built")
        ca = MeshCA(bed.runtime_dir() / "mesh-ca")
        pod_tls, peer_tls = mesh_identities(bed, client, self.layout.uid, ca)
        plan = bed.plan
        waypoint_layout = Layout("waypoint", ISTIO_UID, mtls.HBONE_PORT, mtls.HBONE_PORT, 15000, istio=True)
        waypoint_ns = bed.add_proxy_pod("waypoint")
        waypoint_sidecar = Sidecar(waypoint_layout, waypoint_ns, admin_socket(bed, waypoint_layout, "waypoint"))
        waypoint_id = spiffe_id(waypoint.SERVICE_ACCOUNT)
        waypoint_tls = with_log(
            MeshTls(
                ca.issue(waypoint.SERVICE_ACCOUNT, owner_uid=ISTIO_UID, folder=bed.runtime_dir() / "waypoint-ca"),
                meshed={plan.pod_ip: spiffe_id(POD_SERVICE_ACCOUNT)},
                strict=client.strict,
            ),
            waypoint_sidecar.admin_socket,
        )
        waypoint_sidecar.access_log, waypoint_sidecar.spiffe_id = waypoint_tls.access_log, waypoint_id
        waypoint_sidecar.process = waypoint.start_waypoint(
            bed, waypoint_ns, waypoint_tls, plan.pod_ip, waypoint_sidecar.admin_socket, ISTIO_UID
        )
        rerouted = self.rerouted(vm_interfaces, annotations, istio)
        sidecar = self._install_in(bed, bed.pod, "pod", plan.pod_ip, rerouted, pod_tls, dns_capture, istio)
        via = (plan.proxy_pod_ip, waypoint_id)
        sidecar.peer_proxy = self._install_in(
            bed, bed.peer, "peer", plan.peer_ip, [], peer_tls, dns_capture, istio, via=via
        )
        sidecar.waypoint = waypoint_sidecar
        return sidecar


def install_redirection(
    runner, sidecar: Sidecar, nft: str | None, tables: dict[str, list[str]] | None, *, ipv6: bool = False
) -> None:
    """A mode's redirection rules where `runner` runs commands: an nft script in one atomic transaction (Istio's
    nftables backend, both families in its `inet` tables), or iptables rules per table and, with `ipv6`, the same
    tables' IPv6 rules through ip6tables (`ip6 nat`); the sidecar keeps what was installed (`describe`, claims)."""
    if nft is not None:
        sidecar.rules = {"nft": nft.splitlines()}
        apply_nft(runner, nft)
        return
    tables = tables or {}
    sidecar.rules = {**tables, **{f"ip6 {t}": r for t, r in ip6tables_rules(tables).items()}} if ipv6 else tables
    for table, rules in sidecar.rules.items():
        apply_iptables(runner, table.removeprefix("ip6 "), rules, ipv6=table.startswith("ip6 "))


def mesh_for(kind: SidecarKind | str) -> Mesh:
    """The mode's class, instantiated; ValueError naming the known modes for an unknown one."""
    if str(kind) not in MESHES:
        raise ValueError(f"unknown mesh mode {str(kind)!r}; known: {', '.join(MESHES)}")
    return MESHES[str(kind)]()


def install_sidecar(
    bed: TestBed,
    kind: SidecarKind | str,
    *,
    vm_interfaces: list[str],
    client: Client = Client(),
    annotations: dict[str, str] | None = None,
    dns_capture: bool = True,
    istio: IstioSetup = DEFAULT_ISTIO,
    peer_proxy: bool = True,
) -> Sidecar | None:
    """What the mode's init container / CNI agent and proxy do, in that order; None for `none`. A meshed `client`
    gets its own proxy (the returned Sidecar's `peer_proxy`) unless `peer_proxy` is False (it already runs: a
    second pod of the same bed); a mode without meshed clients refuses one; a backend the mode's Istio release
    does not have is refused."""
    mesh = mesh_for(kind)
    if client.meshed and not mesh.meshed_clients:
        raise ValueError(
            f"mesh mode {str(kind)!r} has no meshed clients; modes with them: "
            f"{', '.join(k for k, m in MESHES.items() if m.meshed_clients)}"
        )
    if istio.nftables and mesh.istio_component and istio.backend not in mesh.backends(istio):
        raise ValueError(f"Istio {istio.release} has no {istio.backend} backend for {mesh.istio_component} mode")
    return mesh.install(bed, list(vm_interfaces), client, annotations, dns_capture, istio, peer_proxy)
