"""Service-mesh sidecars in the pod: the real Envoy binary behind the interception rules of Istio (REDIRECT or
TPROXY mode) or of Linkerd's proxy-init, and the evidence of whether traffic crossed it (Envoy admin stats).

Rules mirror what the real init containers write:
- Istio REDIRECT: istio/istio tools/istio-iptables/pkg/capture/testdata/inbound-ports-wildcard.golden and
  kube-virt-interfaces.golden (ISTIO_INBOUND/ISTIO_IN_REDIRECT -> 15006, ISTIO_OUTPUT/ISTIO_REDIRECT -> 15001,
  owner 1337 and 127.0.0.6 exclusions, `-I PREROUTING 1 -i <vm iface> -j ISTIO_REDIRECT` for KubeVirt), with
  the injector's defaults: all inbound ports captured except 15090, 15021, 15020; all outbound captured.
  The VM's interfaces: Istio >= 1.25 takes them from `istio.io/reroute-virtual-interfaces` (the deprecated
  `traffic.sidecar.istio.io/kubevirtInterfaces` still works; with both, the injector passes the new one's value
  as `-k`: pkg/kube/inject/testdata/inject/reroute-virtual-interfaces.yaml.injected). In sidecar mode both give
  the same rule, `-I PREROUTING 1 -i <iface> -j ISTIO_REDIRECT` (tools/istio-iptables/pkg/capture/run.go
  handleOutboundIncludeRules), so there is nothing to choose between here; in ambient mode istio-cni writes a
  different one (cni/pkg/iptables/testdata/virtual_interfaces.golden: REDIRECT to 15001 in ISTIO_PRERT).
- Istio TPROXY: tproxy.golden (mangle ISTIO_DIVERT/ISTIO_TPROXY, mark 1337, connmark save/restore, nat
  REDIRECT to 15001 for outbound) plus `ip rule fwmark 1337 lookup 133` and a local default route in 133.
  ORIGINAL_SRC note: Istio's listener builder also puts the original_src listener filter (mark 1337) on
  virtualInbound in TPROXY mode. Reproduced here, Envoy's upstream SYN then carries the client's address,
  ISTIO_OUTPUT's `-o lo ... --uid-owner 1337 -j ISTIO_IN_REDIRECT` sends it back to 15006 and the SYN-ACK has
  no route (nstat: TcpExtListenDrops, IpOutNoRoutes): every inbound connection is reset. The filter is left
  off (`sidecar_bootstrap(mark=None)`), so inbound upstreams leave from 127.0.0.6 as in REDIRECT mode.
- Linkerd: linkerd/linkerd2-proxy-init iptables (PROXY_INIT_REDIRECT -> 4143 inbound, PROXY_INIT_OUTPUT ->
  4140 outbound, proxy uid 2102, admin/tap ports 4190/4191 skipped, `-o lo` returned).

Evidence: the harness reads Envoy's admin /stats over a unix socket in the bed's folder, not over the admin TCP
port (15000 for Istio, 4191 for Linkerd). No measured path uses the admin port, and a TCP read would cross the
pod's NAT rules: KubeVirt's masquerade (without its Istio variant) DNATs every connection to 127.0.0.1 in the
pod to the VM (nat output chain), so a Linkerd proxy's admin at 127.0.0.1:4191 is unreachable from inside such a
pod; measured, it turned every masquerade x linkerd-style row into "admin unreachable" with no path verdict.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from harness.lab.bed import TestBed
from harness.lab.netns import Namespace
from harness.lab.processes import TrackedProcess
from harness.lab.runtime import Role
from harness.lab.waiting import wait_until
from harness.pod import mtls
from harness.pod.dns_proxy import DnsProxyCounters
from harness.pod.envoy import INBOUND_CLUSTERS, OUTBOUND_CLUSTERS, sidecar_bootstrap, start_envoy
from harness.pod.mtls import MeshTls
from harness.pod.protocols import http2_ports, http_ports

ISTIO_UID = 1337
LINKERD_UID = 2102
TPROXY_TABLE = 133


@dataclass(frozen=True)
class Layout:
    name: str
    uid: int
    inbound_port: int
    outbound_port: int
    admin_port: int
    istio: bool  # Istio's conventions: 127.0.0.6 inbound source, kubevirtInterfaces, reserved 150xx ports
    tproxy: bool = False


def istio_nat_rules(layout: Layout, vm_interfaces: list[str], *, capture_inbound: bool) -> list[str]:
    u = layout.uid
    rules = [
        "-N ISTIO_INBOUND",
        "-N ISTIO_REDIRECT",
        "-N ISTIO_IN_REDIRECT",
        "-N ISTIO_OUTPUT",
        "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN",
        f"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {layout.outbound_port}",
        f"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {layout.inbound_port}",
    ]
    if capture_inbound:
        rules += [
            "-A PREROUTING -p tcp -j ISTIO_INBOUND",
            "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN",
            "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN",
            "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN",
            "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        ]
    rules += [
        "-A OUTPUT -j ISTIO_OUTPUT",
        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
        f"-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner {u} -j ISTIO_IN_REDIRECT",
        f"-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner {u} -j RETURN",
        f"-A ISTIO_OUTPUT -m owner --uid-owner {u} -j RETURN",
        f"-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner {u} -j ISTIO_IN_REDIRECT",
        f"-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner {u} -j RETURN",
        f"-A ISTIO_OUTPUT -m owner --gid-owner {u} -j RETURN",
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
    ]
    rules += [f"-I PREROUTING 1 -i {iface} -j ISTIO_REDIRECT" for iface in vm_interfaces]
    return rules


def istio_tproxy_mangle_rules(layout: Layout) -> list[str]:
    m = layout.uid  # Istio uses the proxy uid as its mark
    return [
        "-N ISTIO_DIVERT",
        "-N ISTIO_TPROXY",
        "-N ISTIO_INBOUND",
        f"-A ISTIO_DIVERT -j MARK --set-mark {m}",
        "-A ISTIO_DIVERT -j ACCEPT",
        f"-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark {m}/0xffffffff "
        f"--on-port {layout.inbound_port}",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        # no 15008 RETURN here: istio-iptables adds it to nat's ISTIO_INBOUND only (tproxy.golden's mangle has
        # none; tests/test_upstream_fixtures.py compares)
        "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY",
        f"-A PREROUTING -p tcp -m mark --mark {m} -j CONNMARK --save-mark",
        f"-A OUTPUT -p tcp -o lo -m mark --mark {m} -j RETURN",
        f"-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --uid-owner {m} -j MARK --set-mark {m + 1}",
        f"-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --gid-owner {m} -j MARK --set-mark {m + 1}",
        f"-A OUTPUT -p tcp -m connmark --mark {m} -j CONNMARK --restore-mark",
        f"-I ISTIO_INBOUND 1 -p tcp -m mark --mark {m} -j RETURN",
        "-I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN",
        f"-I ISTIO_INBOUND 3 -p tcp -i lo -m mark ! --mark {m + 1} -j RETURN",
    ]


INJECTOR_INBOUND_EXCLUDES = (15090, 15021, 15020)
"""The injector's default excludeInboundPorts (istio-init `-d 15090,15021,15020`): Envoy's telemetry and health."""


def istio_nat_nft(layout: Layout, vm_interfaces: list[str], *, capture_inbound: bool) -> str:
    """istio-init's rules with the native nftables backend (`--native-nftables`, Istio 1.27+), as
    tools/istio-nftables/pkg/capture/run.go writes them for the injector's arguments (`-b *`, `-i *`,
    `-d 15090,15021,15020`, `-k <the VM's interfaces>`): the `inet istio-proxy-nat` table with base chains at the
    nat priority dstnat (-100). The rules are the iptables backend's (istio_nat_rules) in nftables' words, plus
    what run.go adds that the iptables backend does not: a `return` per VM interface after its jump (a no-op:
    istio-redirect's redirect is terminal for TCP and the rest falls through anyway). Rules are listed in their
    final order (Istio inserts some at index 0; the readback is what tests/test_upstream_fixtures.py compares)."""
    table, u = "inet istio-proxy-nat", layout.uid
    lines = [f"add table {table}", f"flush table {table}"]
    if capture_inbound or vm_interfaces:
        lines.append(f"add chain {table} prerouting {{ type nat hook prerouting priority -100 ; }}")
    lines.append(f"add chain {table} output {{ type nat hook output priority -100 ; }}")
    lines += [
        f"add chain {table} {c}" for c in ("istio-inbound", "istio-redirect", "istio-in-redirect", "istio-output")
    ]
    rule = f"add rule {table}"
    lines += [f"{rule} prerouting iifname {i} counter jump istio-redirect" for i in reversed(vm_interfaces)]
    lines += [f"{rule} prerouting iifname {i} counter return" for i in reversed(vm_interfaces)]
    lines += [
        f"{rule} istio-inbound meta l4proto tcp tcp dport 15008 counter return",
        f"{rule} istio-redirect meta l4proto tcp counter redirect to :{layout.outbound_port}",
        f"{rule} istio-in-redirect meta l4proto tcp counter redirect to :{layout.inbound_port}",
    ]
    if capture_inbound:
        lines.append(f"{rule} prerouting meta l4proto tcp counter jump istio-inbound")
        lines += [
            f"{rule} istio-inbound meta l4proto tcp tcp dport {p} counter return" for p in INJECTOR_INBOUND_EXCLUDES
        ]
        lines.append(f"{rule} istio-inbound meta l4proto tcp counter jump istio-in-redirect")
    loop_to_inbound = "meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != 15008"
    lines += [
        f"{rule} output counter jump istio-output",
        f"{rule} istio-output oifname lo ip saddr 127.0.0.6/32 counter return",
        f"{rule} istio-output oifname lo {loop_to_inbound} skuid {u} counter jump istio-in-redirect",
        f"{rule} istio-output oifname lo skuid != {u} counter return",
        f"{rule} istio-output skuid {u} counter return",
        f"{rule} istio-output oifname lo {loop_to_inbound} skgid {u} counter jump istio-in-redirect",
        f"{rule} istio-output oifname lo skgid != {u} counter return",
        f"{rule} istio-output skgid {u} counter return",
        f"{rule} istio-output ip daddr 127.0.0.1/32 counter return",
        f"{rule} istio-output counter jump istio-redirect",
    ]
    return "\n".join(lines) + "\n"


def istio_tproxy_mangle_nft(layout: Layout) -> str:
    """The TPROXY mode's `inet istio-proxy-mangle` table with the nftables backend, as run.go writes it for
    `-m TPROXY -b * -d 15090,15021,15020` (tools/istio-nftables testdata inbound-ports-wildcard-tproxy.golden):
    istio_tproxy_mangle_rules in nftables' words."""
    table, m = "inet istio-proxy-mangle", layout.uid
    rule = f"add rule {table}"
    lines = [
        f"add table {table}",
        f"flush table {table}",
        f"add chain {table} prerouting {{ type filter hook prerouting priority -150 ; }}",
        f"add chain {table} output {{ type route hook output priority -150 ; }}",
        *[f"add chain {table} {c}" for c in ("istio-divert", "istio-tproxy", "istio-inbound")],
        f"{rule} istio-divert counter meta mark set {m}",
        f"{rule} istio-divert counter accept",
        f"{rule} istio-tproxy meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to :{layout.inbound_port} "
        f"meta mark set {m} counter accept",
        f"{rule} prerouting meta l4proto tcp counter jump istio-inbound",
        f"{rule} istio-inbound meta l4proto tcp mark {m} counter return",
        f"{rule} istio-inbound iifname lo meta l4proto tcp ip saddr 127.0.0.6/32 counter return",
        f"{rule} istio-inbound iifname lo meta l4proto tcp mark != {m + 1} counter return",
        *[f"{rule} istio-inbound meta l4proto tcp tcp dport {p} counter return" for p in INJECTOR_INBOUND_EXCLUDES],
        f"{rule} istio-inbound meta l4proto tcp ct state related,established counter jump istio-divert",
        f"{rule} istio-inbound meta l4proto tcp counter jump istio-tproxy",
        f"{rule} prerouting meta l4proto tcp mark {m} counter ct mark set mark",
        f"{rule} output oifname lo meta l4proto tcp mark {m} counter return",
        f"{rule} output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 skuid {m} counter meta mark set {m + 1}",
        f"{rule} output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 skgid {m} counter meta mark set {m + 1}",
        f"{rule} output meta l4proto tcp ct mark {m} counter meta mark set ct mark",
    ]
    return "\n".join(lines) + "\n"


def linkerd_nat_rules(layout: Layout) -> list[str]:
    return [
        "-N PROXY_INIT_REDIRECT",
        "-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190,4191 -j RETURN",
        f"-A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-ports {layout.inbound_port}",
        "-A PREROUTING -j PROXY_INIT_REDIRECT",
        "-N PROXY_INIT_OUTPUT",
        f"-A PROXY_INIT_OUTPUT -m owner --uid-owner {layout.uid} -j RETURN",
        "-A PROXY_INIT_OUTPUT -o lo -j RETURN",
        f"-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-ports {layout.outbound_port}",
        "-A OUTPUT -j PROXY_INIT_OUTPUT",
    ]


@dataclass
class SidecarCounters:
    """What one proxy's own stats say it carried: bytes and connections inbound (to the pod's apps) and outbound
    (from them), of which the bytes inside mTLS (a sidecar's mTLS chain or cluster, ztunnel's HBONE), the TLS
    handshakes it completed as server (inbound) and as client (outbound), and HBONE CONNECT streams it
    terminated (inbound) and opened (outbound)."""

    inbound_bytes: int = 0
    inbound_cx: int = 0
    outbound_bytes: int = 0
    outbound_cx: int = 0
    mtls_inbound_bytes: int = 0
    mtls_outbound_bytes: int = 0
    tls_inbound_handshakes: int = 0
    tls_outbound_handshakes: int = 0
    hbone_inbound: int = 0
    hbone_outbound: int = 0
    dns_queries: int = 0
    """Queries the mesh's DNS proxy took (ambient's DNS capture; zero without one)."""
    dns_answered: int = 0
    """Of those, answered by the proxy itself (a host of the mesh), not forwarded."""
    http_requests: int = 0
    """Requests the proxy's HTTP connection managers (its HTTP ports' chains) parsed and routed: L7 handling."""

    def minus(self, before: SidecarCounters) -> SidecarCounters:
        return SidecarCounters(**{k: v - getattr(before, k) for k, v in self.__dict__.items()})


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (Envoy's admin pipe)."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


@dataclass
class Sidecar:
    layout: Layout
    pod: Namespace
    admin_socket: Path
    process: TrackedProcess | None = None
    rules: dict[str, list[str]] = field(default_factory=dict)

    peer_proxy: Sidecar | None = None
    """A meshed peer's own proxy (its sidecar, or its node's ztunnel), None when the peer is outside the mesh."""
    waypoint: Sidecar | None = None
    """The waypoint the pod's service is bound to (ambient with a waypoint), None without one."""
    spiffe_id: str = ""
    """The identity in this proxy's workload certificate (empty without mTLS)."""
    access_log: Path | None = None
    """The proxy's access log of mTLS connections and HBONE streams: the identities it saw."""
    dns_stats: Path | None = None
    """The counters file of the mesh's DNS proxy for this pod (ambient with DNS capture), None without one."""

    def stats(self, pattern: str = "") -> dict[str, int]:
        """Envoy admin /stats (counters) whose names match `pattern` (default: those the evidence reads), over the
        admin unix socket."""
        conn = UnixHTTPConnection(self.admin_socket, timeout=5)
        try:
            query = urllib.parse.urlencode({"format": "json", "filter": pattern or STATS_FILTER})
            conn.request("GET", f"/stats?{query}")
            raw = json.loads(conn.getresponse().read())["stats"]
        finally:
            conn.close()
        return {s["name"]: int(s.get("value", 0)) for s in raw if "value" in s}

    def counters(self) -> SidecarCounters:
        """Upstream bytes both ways and connections of the clusters each direction leaves by, and the mTLS and
        HBONE evidence (harness/pod/mtls.py names)."""
        stats = self.stats()

        def cluster_bytes(*names: str) -> int:
            return sum(stats.get(f"cluster.{n}.upstream_cx_{d}_bytes_total", 0) for n in names for d in ("rx", "tx"))

        def cluster_cx(*names: str) -> int:
            return sum(stats.get(f"cluster.{n}.upstream_cx_total", 0) for n in names)

        inbound, outbound = INBOUND_CLUSTERS, OUTBOUND_CLUSTERS
        mtls_in = sum(
            stats.get(f"{kind}.{prefix}.downstream_cx_{d}_bytes_total", 0)
            for d in ("rx", "tx")
            for kind, prefix in (("tcp", mtls.MTLS_INBOUND), ("http", mtls.MTLS_INBOUND_HTTP))
        )
        return SidecarCounters(
            inbound_bytes=cluster_bytes(*inbound),
            inbound_cx=cluster_cx(*inbound),
            outbound_bytes=cluster_bytes(*outbound),
            outbound_cx=cluster_cx(*outbound),
            mtls_inbound_bytes=mtls_in + cluster_bytes(mtls.HBONE_INBOUND),
            mtls_outbound_bytes=cluster_bytes(
                mtls.MTLS_OUTBOUND, mtls.MTLS_OUTBOUND_HTTP, mtls.MTLS_OUTBOUND_H2, mtls.CONNECT_ORIGINATE
            ),
            tls_inbound_handshakes=sum(
                v for k, v in stats.items() if k.startswith("listener.") and k.endswith(".ssl.handshake")
            ),
            tls_outbound_handshakes=sum(stats.get(f"cluster.{n}.ssl.handshake", 0) for n in outbound),
            hbone_inbound=stats.get(f"http.{mtls.CONNECT_TERMINATE}.downstream_rq_total", 0),
            hbone_outbound=stats.get(f"cluster.{mtls.CONNECT_ORIGINATE}.upstream_rq_total", 0),
            http_requests=sum(
                v
                for k, v in stats.items()
                if k.startswith("http.")
                and k.endswith(".downstream_rq_total")
                and k.split(".")[1] not in (mtls.CONNECT_TERMINATE, "admin")  # HBONE's and the admin API's
            ),
            **self.dns_counters(),
        )

    def dns_counters(self) -> dict[str, int]:
        if self.dns_stats is None:
            return {}
        dns = DnsProxyCounters.read(self.dns_stats)
        return {"dns_queries": dns.queries, "dns_answered": dns.answered}

    def identities_seen(self, since: int = 0) -> tuple[list[str], int]:
        """The SPIFFE ids of the clients in the access log from line `since` on, and the log's line count."""
        if self.access_log is None or not self.access_log.exists():
            return [], since
        lines = self.access_log.read_text().splitlines()
        seen = []
        for line in lines[since:]:
            try:
                identity = json.loads(line).get("peer_identity")
            except ValueError:
                continue
            if identity and identity != "-":
                seen.append(identity)
        return sorted(set(seen)), len(lines)


STATS_FILTER = (
    rf"^(cluster\.({'|'.join(re.escape(c) for c in (*INBOUND_CLUSTERS, *OUTBOUND_CLUSTERS))})\."
    r"|tcp\.inbound_mtls\.|http\.inbound_mtls_http\.downstream_cx_|http\..*\.downstream_rq_total$"
    r"|listener\..*\.ssl\.handshake$)"
)
"""The Envoy stats the evidence reads: every cluster a direction leaves by, the mTLS listeners, L7 requests."""


def admin_socket(bed: TestBed, layout: Layout, role: str = "pod") -> Path:
    """The admin socket's path, in a folder of the bed owned by the proxy's uid (which creates the socket and its
    access log there). `role`: whose proxy (`pod`, or `peer` for a meshed peer's)."""
    folder = bed.runtime_dir() / (f"{layout.name}-admin" if role == "pod" else f"{layout.name}-{role}-admin")
    folder.mkdir(exist_ok=True)
    os.chown(folder, layout.uid, layout.uid)
    return folder / "admin.sock"


def start_sidecar_envoy(
    bed: TestBed,
    layout: Layout,
    admin: Path,
    container: str | None,
    spec: Role | None,
    *,
    ns: Namespace,
    tls: MeshTls | None,
    name: str,
    ipv6: bool = False,
) -> TrackedProcess:
    """Envoy as the mesh's proxy container in `ns` (`container`, with `spec`'s privileges on the docker runtime;
    None: a meshed peer's proxy, a process in the peer's namespace); listening on both families with `ipv6`."""
    config = sidecar_bootstrap(
        inbound_port=layout.inbound_port,
        outbound_port=layout.outbound_port,
        admin_socket=admin,
        # Istio binds inbound upstream connections to 127.0.0.6 in both modes: "iptables will redirect our own
        # traffic ... back to us if we do not use the magic upstream bind config" (istio/istio
        # pilot/pkg/networking/core cluster builder); TPROXY mode adds original_src on virtualInbound.
        inbound_bind="127.0.0.6" if layout.istio else None,
        transparent_inbound=layout.tproxy,
        mark=None,  # see ORIGINAL_SRC note in the module docstring
        tls=tls,
        # Istio's sidecars run the Service's HTTP ports through HTTP connection managers; the Linkerd-style layout
        # reuses Envoy only as an L4 proxy (Linkerd's own HTTP detection is not modelled).
        http_ports=http_ports() if layout.istio else (),
        http2_ports=http2_ports() if layout.istio else (),
        ipv6=ipv6,
    )
    # As the injected proxy container: its own uid/gid, and in TPROXY mode CAP_NET_ADMIN for transparent sockets
    # (Istio adds NET_ADMIN in that mode): the mesh mode declares the container's privileges.
    if container is not None and spec is not None:
        bed.runtime.add_container(bed, container, spec)
    proc = start_envoy(
        bed,
        config,
        ns=ns,
        name=name,
        uid=layout.uid,
        net_admin=layout.tproxy,
        ports=[layout.inbound_port, layout.outbound_port],
        container=container,
    )
    wait_until(admin.exists, timeout=30, what=f"{name}'s admin socket")
    return proc
