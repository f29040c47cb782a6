"""Istio ambient mode for one pod: istio-cni's in-pod redirection rules, and a node-level proxy that opens its
listeners inside the pod's network namespace, as ztunnel does.

Faithful:
- The rules are what istio-cni's node agent writes into the pod's namespace (istio/istio
  cni/pkg/iptables/iptables.go AppendInpodRules; golden shapes cni/pkg/iptables/testdata/
  virtual_interfaces.golden, and default.golden without its DNS lines since DNS capture is off here):
  mangle `ISTIO_PRERT` sets connmark 0x111 on packets carrying the proxy's mark 0x539, `ISTIO_OUTPUT` restores
  it; nat `ISTIO_PRERT` REDIRECTs inbound TCP (except to 15008, except the proxy's own) to 15006 and ACCEPTs the
  kubelet's probe source 169.254.7.127, nat `ISTIO_OUTPUT` ACCEPTs connmarked and loopback traffic and REDIRECTs
  outbound TCP to 15001. With virtual interfaces (`istio.io/reroute-virtual-interfaces`, sidecar kind
  `ambient-reroute`), TCP entering by them goes to 15001 and RETURNs from ISTIO_PRERT.
- Routing (cni/pkg/iptables/iptables_linux.go): `ip rule fwmark 0x111/0xfff pref 32764 lookup 100` and a
  local default route via lo in table 100, so replies to a connection the proxy opened from a client's address
  come back to the proxy.
- The proxy: ztunnel runs once per node in the node's network namespace (uid 0, gid 1337, capabilities
  NET_ADMIN, SYS_ADMIN, NET_RAW only: manifests/charts/ztunnel/templates/daemonset.yaml) and, in in-pod mode,
  opens its sockets inside each pod's namespace: listeners 15001 (outbound), 15006 (inbound plaintext), 15008
  (inbound HBONE), and every upstream socket, all with mark 0x539. Inbound plaintext connects to the original
  destination from the client's own address (istio/ztunnel src/proxy/inbound_passthrough.rs: original source
  when its listener could be made transparent); outbound connects from the pod to the original destination.
  Here one Envoy (>= 1.35) in the bed's node namespace, with the same uid, gid and capabilities, does that:
  listeners and upstream sockets in the pod's namespace through `SocketAddress.network_namespace_filepath`,
  original_dst on both listeners, original_src (mark 0x539) on the inbound one, SO_MARK 0x539 on every upstream
  socket. Its admin socket is a unix socket in the bed's folder (evidence, as for the sidecars).
Not faithful (and why it does not change a path here):
- HBONE between two ambient pods (a meshed client, `peer: meshed`) is harness/pod/mtls.py: the 15008 terminator
  in the pod, HTTP/2 CONNECT in mTLS from the client's node proxy. A client outside the mesh is plaintext
  passthrough both ways, as ztunnel treats a workload outside the mesh.
- ztunnel's own code (Rust, tokio) is not run: Envoy's tcp_proxy copies the bytes, so CPU per byte measures
  the path (two extra socket hops through a node process), not ztunnel's implementation. Its L4 policy,
  workload lookup (inbound only to a known workload address: the pod IP is one) and metrics are left out.
- DNS capture (15053) is off (nothing here resolves names) and no kubelet probe runs (their ACCEPT rules are
  installed as the golden file has them).
- KubeVirt does not know ambient (kubevirt/kubevirt pkg/network/istio reads only `sidecar.istio.io/inject`), so
  under ambient its Istio adaptations are off: masquerade is the plain binding and passt excludes no reserved
  port. But since v1.7 virt-controller annotates every masquerade pod with `istio.io/reroute-virtual-interfaces:
  k6t-eth0`, which istio-cni reads (harness/pod/kubevirt.py): under `ambient` the pod carries the annotations the
  scenario's `kubevirt` release writes, so a 1.7+ masquerade pod is rerouted and a 1.6 one is not;
  `ambient-reroute` annotates any binding's VM interfaces, as a user would.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import replace
from pathlib import Path

from harness.lab.bed import TestBed
from harness.lab.netns import Namespace
from harness.lab.processes import TrackedProcess
from harness.lab.waiting import wait_until
from harness.pod import mtls
from harness.pod.envoy import (
    ORIGINAL_DST_FILTER,
    ORIGINAL_SRC_FILTER,
    admin_pipe_config,
    listener_filter,
    original_dst_cluster,
    start_envoy,
    static_cluster,
    tcp_proxy_filter,
)
from harness.pod.inpod import DNS_CAPTURE_PORT, INPOD_MARK, INPOD_MASK, SO_MARK
from harness.pod.mtls import MeshTls

RBAC_FILTER = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
INPOD_TPROXY_MARK = 0x111  # connmark of connections the proxy opened, restored on their replies
ROUTE_TABLE = 100  # RouteTableInbound
RULE_PRIORITY = 32764
OUTBOUND_PORT = 15001
INBOUND_PLAINTEXT_PORT = 15006
HBONE_PORT = 15008
HOST_PROBE_SNAT = "169.254.7.127"
ZTUNNEL_GID = 1337
ZTUNNEL_CAPABILITIES = ("net_admin", "sys_admin", "net_raw")


def inpod_rules(virtual_interfaces: list[str], *, dns_capture: bool = True) -> dict[str, list[str]]:
    """istio-cni's in-pod iptables rules, per table, in the order AppendInpodRules adds them. `dns_capture`: the
    chart's `ambient.dnsCapture` (default true): the pod's own DNS queries (UDP and TCP to port 53, not the
    proxy's) go to the DNS proxy on 15053, and the proxy's upstream queries and their answers get conntrack zone
    1. Queries a VM sends through the pod's forwarding path (PREROUTING) are not captured: only OUTPUT is."""
    mark = f"{INPOD_MARK:#x}/{INPOD_MASK:#x}"
    tproxy_mark = f"{INPOD_TPROXY_MARK:#x}/{INPOD_MASK:#x}"
    mangle = [
        "-N ISTIO_PRERT",
        "-N ISTIO_OUTPUT",
        "-A PREROUTING -j ISTIO_PRERT",
        "-A OUTPUT -j ISTIO_OUTPUT",
        f"-A ISTIO_PRERT -m mark --mark {mark} -j CONNMARK --set-xmark {tproxy_mark}",
        f"-A ISTIO_OUTPUT -m connmark --mark {tproxy_mark} -j CONNMARK --restore-mark --nfmask 0xffffffff "
        "--ctmask 0xffffffff",
    ]
    nat = ["-N ISTIO_PRERT", "-N ISTIO_OUTPUT", "-A OUTPUT -j ISTIO_OUTPUT", "-A PREROUTING -j ISTIO_PRERT"]
    for iface in virtual_interfaces:
        # "treat inbound as outbound traffic" for a VM's interface, then leave Istio's chain (not PREROUTING)
        nat += [
            f"-A ISTIO_PRERT -i {iface} -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}",
            f"-A ISTIO_PRERT -i {iface} -p tcp -j RETURN",
        ]
    nat += [
        f"-A ISTIO_PRERT -s {HOST_PROBE_SNAT} -p tcp -m tcp -j ACCEPT",
        f"-A ISTIO_OUTPUT -d {HOST_PROBE_SNAT} -p tcp -m tcp -j ACCEPT",
        f"-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport {HBONE_PORT} -m mark ! --mark {mark} "
        f"-j REDIRECT --to-ports {INBOUND_PLAINTEXT_PORT}",
    ]
    tables = {"mangle": mangle, "nat": nat}
    if dns_capture:
        nat += [
            f"-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark {mark} -m udp --dport 53 "
            f"-j REDIRECT --to-ports {DNS_CAPTURE_PORT}",
            f"-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp --dport 53 -m mark ! --mark {mark} "
            f"-j REDIRECT --to-ports {DNS_CAPTURE_PORT}",
        ]
        # istio/istio#33469: the proxy's query upstream and its answer in their own conntrack zone, apart from
        # the client's redirected flow that may share the 5-tuple
        tables["raw"] = [
            "-N ISTIO_OUTPUT",
            "-N ISTIO_PRERT",
            "-A PREROUTING -j ISTIO_PRERT",
            "-A OUTPUT -j ISTIO_OUTPUT",
            f"-A ISTIO_OUTPUT -p udp -m mark --mark {mark} -m udp --dport 53 -j CT --zone 1",
            f"-A ISTIO_PRERT -p udp -m mark ! --mark {mark} -m udp --sport 53 -j CT --zone 1",
        ]
    nat += [
        f"-A ISTIO_OUTPUT -p tcp -m mark --mark {tproxy_mark} -j ACCEPT",
        "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT",
        f"-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark {mark} -j REDIRECT --to-ports {OUTBOUND_PORT}",
    ]
    return tables


def inpod_nft(virtual_interfaces: list[str], *, dns_capture: bool = True) -> str:
    """istio-cni's in-pod rules with the native nftables backend (Istio 1.28+, cni/pkg/nftables: tables
    `inet istio-ambient-nat`, `-mangle`, `-raw`), the same rules as inpod_rules in nftables' words and in the order
    cni/pkg/nftables/nftables.go adds them (its golden files default.golden and virtual_interfaces.golden)."""
    mark, tproxy = f"{INPOD_MARK:#x}", f"{INPOD_TPROXY_MARK:#x}"
    masked = f"mark and {INPOD_MASK:#x}"

    def table(name: str, priority: int, output_type: str = "nat") -> list[str]:
        kind = "nat" if name == "nat" else "filter"
        return [
            f"add table inet istio-ambient-{name}",
            f"flush table inet istio-ambient-{name}",
            f"add chain inet istio-ambient-{name} prerouting {{ type {kind} hook prerouting priority {priority} ; }}",
            f"add chain inet istio-ambient-{name} output {{ type {output_type} hook output priority {priority} ; }}",
            f"add chain inet istio-ambient-{name} istio-prerouting",
            f"add chain inet istio-ambient-{name} istio-output",
        ]

    nat = "add rule inet istio-ambient-nat"
    lines = [*table("nat", -100), f"{nat} output jump istio-output", f"{nat} prerouting jump istio-prerouting"]
    for iface in virtual_interfaces:  # inbound from a VM's interface treated as outbound, then leave the chain
        lines += [
            f"{nat} istio-prerouting iifname {iface} meta l4proto tcp counter redirect to :{OUTBOUND_PORT}",
            f"{nat} istio-prerouting iifname {iface} meta l4proto tcp counter return",
        ]
    lines += [
        f"{nat} istio-prerouting meta l4proto tcp ip saddr {HOST_PROBE_SNAT} counter accept",
        f"{nat} istio-output meta l4proto tcp ip daddr {HOST_PROBE_SNAT} counter accept",
        f"{nat} istio-prerouting ip daddr != 127.0.0.1/32 tcp dport != {HBONE_PORT} {masked} != {mark} counter "
        f"redirect to :{INBOUND_PLAINTEXT_PORT}",
    ]
    if dns_capture:
        lines += [
            f"{nat} istio-output oifname != lo {masked} != {mark} udp dport 53 counter redirect to :{DNS_CAPTURE_PORT}",
            f"{nat} istio-output ip daddr != 127.0.0.1/32 tcp dport 53 {masked} != {mark} counter "
            f"redirect to :{DNS_CAPTURE_PORT}",
        ]
    lines += [
        f"{nat} istio-output meta l4proto tcp {masked} == {tproxy} counter accept",
        f"{nat} istio-output oifname lo ip daddr != 127.0.0.1/32 counter accept",
        f"{nat} istio-output meta l4proto tcp ip daddr != 127.0.0.1/32 {masked} != {mark} counter "
        f"redirect to :{OUTBOUND_PORT}",
    ]
    mangle = "add rule inet istio-ambient-mangle"
    lines += [
        *table("mangle", -150, output_type="route"),
        f"{mangle} prerouting jump istio-prerouting",
        f"{mangle} output jump istio-output",
        f"{mangle} istio-prerouting meta mark & {INPOD_MASK:#x} == {mark} counter ct mark set ct mark & 0xfffff000 | "
        f"{tproxy}",
        f"{mangle} istio-output ct mark and {INPOD_MASK:#x} == {tproxy} counter meta mark set ct mark",
    ]
    if dns_capture:  # the proxy's upstream query and its answer in conntrack zone 1 (istio/istio#33469)
        raw = "add rule inet istio-ambient-raw"
        lines += [
            *table("raw", -300, output_type="filter"),
            f"{raw} prerouting jump istio-prerouting",
            f"{raw} output jump istio-output",
            f"{raw} istio-output udp dport 53 meta {masked} == {mark} counter ct zone set 1",
            f"{raw} istio-prerouting udp sport 53 meta {masked} != {mark} counter ct zone set 1",
        ]
    return "\n".join(lines) + "\n"


def add_inpod_routing(pod: Namespace, *, ipv6: bool = False) -> None:
    """`ip rule add fwmark 0x111/0xfff pref 32764 lookup 100` + `ip route add local 0.0.0.0/0 dev lo table 100`,
    and with `ipv6` the same for IPv6 (`::/0`: cni/pkg/iptables/iptables_linux.go forEachLoopbackRoute)."""
    for family_v6 in (False, True) if ipv6 else (False,):
        pod.add_policy_rule(
            fwmark=INPOD_TPROXY_MARK, mask=INPOD_MASK, table=ROUTE_TABLE, priority=RULE_PRIORITY, ipv6=family_v6
        )
        pod.add_local_default_route(ROUTE_TABLE, ipv6=family_v6)


def node_proxy_bootstrap(
    pod: Namespace,
    pod_ips: list[str],
    admin_socket: Path,
    tls: MeshTls | None = None,
    via: tuple[str, str] | None = None,
) -> dict:
    """Envoy as ztunnel's L4 path for one pod: listeners and upstream sockets inside `pod`'s namespace (on `::` too
    when the pod has an IPv6 address among `pod_ips`: ztunnel binds both families, its listeners' `[::]`). The
    inbound listener serves only connections whose original destination is one of the pod's addresses: ztunnel looks
    the destination up among the workloads it serves and refuses any other (inbound_passthrough.rs,
    UnknownDestination); Envoy closes a connection no filter chain matches. The clusters keep the sidecar's names
    (PassthroughCluster, InboundPassthroughCluster), so one reader of the counters serves both modes.
    With `tls`: HBONE (harness/pod/mtls.py): outbound to a meshed destination through an HTTP/2 CONNECT tunnel in
    mTLS to its port 15008, and the pod's own 15008 terminator; under STRICT, plaintext inbound is refused by
    policy (an RBAC filter allowing nothing, where ztunnel's policy check closes the connection). `via` (address,
    SPIFFE id): the meshed destination's waypoint, which its HBONE goes to instead of the destination itself
    (ztunnel sends traffic for a service bound to a waypoint there, checking the waypoint's identity:
    harness/pod/waypoint.py)."""

    ipv6 = any(":" in ip for ip in pod_ips)

    def in_pod(port: int, address: str = "0.0.0.0") -> dict:  # a SocketAddress
        return {"address": address, "port_value": port, "network_namespace_filepath": pod.path}

    def in_pod_cluster(name: str) -> dict:
        cluster = original_dst_cluster(name)
        mark = {"level": socket.SOL_SOCKET, "name": SO_MARK, "int_value": INPOD_MARK, "state": "STATE_PREBIND"}
        cluster["upstream_bind_config"] = {"source_address": in_pod(0), "socket_options": [mark]}
        if ipv6:  # an IPv6 upstream needs an IPv6 source (Envoy picks the extra address of the upstream's family)
            cluster["upstream_bind_config"]["extra_source_addresses"] = [{"address": in_pod(0, "::")}]
        return cluster

    def listening(listener: dict, port: int) -> dict:
        if ipv6:
            listener["additional_addresses"] = [{"address": {"socket_address": in_pod(port, "::")}}]
        return listener

    outbound = {
        "name": "ztunnel-outbound",
        "address": {"socket_address": in_pod(OUTBOUND_PORT)},
        "listener_filters": [listener_filter("original_dst", ORIGINAL_DST_FILTER)],
        "filter_chains": [{"filters": [tcp_proxy_filter("outbound", "PassthroughCluster")]}],
    }
    listening(outbound, OUTBOUND_PORT)
    plaintext = [tcp_proxy_filter("inbound_plaintext", "InboundPassthroughCluster")]
    if tls is not None and tls.strict:
        plaintext.insert(
            0,
            {
                "name": "envoy.filters.network.rbac",
                "typed_config": {
                    "@type": RBAC_FILTER,
                    "stat_prefix": "strict",
                    "rules": {"action": "ALLOW", "policies": {}},
                },
            },
        )
    inbound = {
        "name": "ztunnel-inbound-plaintext",
        "address": {"socket_address": in_pod(INBOUND_PLAINTEXT_PORT)},
        "listener_filters": [
            listener_filter("original_dst", ORIGINAL_DST_FILTER),
            listener_filter("original_src", ORIGINAL_SRC_FILTER, {"mark": INPOD_MARK}),
        ],
        "filter_chains": [
            {"filter_chain_match": {"prefix_ranges": [mtls.host_prefix(ip) for ip in pod_ips]}, "filters": plaintext}
        ],
    }
    listening(inbound, INBOUND_PLAINTEXT_PORT)
    listeners = [outbound, inbound]
    clusters = [in_pod_cluster("PassthroughCluster"), in_pod_cluster("InboundPassthroughCluster")]
    if tls is not None:
        listeners.append(mtls.connect_terminate_listener(tls, in_pod(HBONE_PORT), pod_ips[0], mark=INPOD_MARK))
        clusters.append(mtls.hbone_inbound_cluster(in_pod_cluster(mtls.HBONE_INBOUND)))
        if tls.meshed:
            outbound["filter_chains"].insert(
                0,
                {
                    "filter_chain_match": mtls.meshed_match(tls),
                    "filters": [mtls.tcp_proxy(mtls.CONNECT_ORIGINATE, mtls.CONNECT_ORIGINATE, tunnel=True)],
                },
            )
            if via is None:
                clusters.append(mtls.connect_originate_cluster(tls, in_pod_cluster(mtls.CONNECT_ORIGINATE)))
            else:
                address, identity = via
                to_waypoint = static_cluster(mtls.CONNECT_ORIGINATE, address, HBONE_PORT)
                to_waypoint["upstream_bind_config"] = in_pod_cluster(mtls.CONNECT_ORIGINATE)["upstream_bind_config"]
                cluster = mtls.connect_originate_cluster(replace(tls, meshed={address: identity}), to_waypoint)
                cluster.pop("original_dst_lb_config")
                clusters.append(cluster)
    resources = {"listeners": listeners, "clusters": clusters}
    return {"admin": admin_pipe_config(admin_socket), "static_resources": resources}


def start_node_proxy(
    bed: TestBed,
    admin_socket: Path,
    *,
    pod: Namespace,
    pod_ips: list[str],
    tls: MeshTls | None,
    name: str = "ztunnel-envoy",
    via: tuple[str, str] | None = None,
) -> TrackedProcess:
    """The node proxy for `pod` in the bed's node namespace, with ztunnel's uid, gid and capabilities; ready when
    its listeners exist in the pod's namespace and its admin socket answers."""
    caps = ",".join(f"+{c}" for c in ZTUNNEL_CAPABILITIES)
    privileges = [
        "setpriv",
        f"--regid={ZTUNNEL_GID}",
        "--clear-groups",
        f"--bounding-set=-all,{caps}",
        f"--inh-caps=-all,{caps}",
    ]
    config = node_proxy_bootstrap(pod, pod_ips, admin_socket, tls, via)
    proc = start_envoy(bed, config, ns=bed.node, name=name, ports=[], prefix=privileges)
    wanted = {OUTBOUND_PORT, INBOUND_PLAINTEXT_PORT} | ({HBONE_PORT} if tls is not None else set())

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"the node proxy exited before listening in the pod: {proc.last_words()}")
        return wanted <= pod.listening_tcp_ports() and admin_socket.exists()

    wait_until(ready, timeout=30, what="the node proxy's listeners in the pod", interval=0.05)
    return proc


def start_dns_proxy(
    bed: TestBed, *, pod: Namespace, stats: Path, upstream: str, hosts: dict[str, str], name: str = "ztunnel-dns"
) -> TrackedProcess:
    """ztunnel's DNS proxy for `pod` (harness/pod/dns_proxy.py): started from the node into the pod's namespace
    with ztunnel's gid and capabilities; ready when it has bound 15053 (UDP and TCP) and written its counters.
    `upstream`: the cluster's resolver (ztunnel's own resolv.conf); `hosts`: the names the mesh knows."""
    caps = ",".join(f"+{c}" for c in ZTUNNEL_CAPABILITIES)
    argv = [
        "setpriv",
        f"--regid={ZTUNNEL_GID}",
        "--clear-groups",
        f"--bounding-set=-all,{caps}",
        f"--inh-caps=-all,{caps}",
        sys.executable,
        "-m",
        "harness.pod.dns_proxy",
        "--upstream",
        upstream,
        "--stats",
        str(stats),
        *(f"--host={n}={ip}" for n, ip in hosts.items()),
    ]
    proc = bed.tracker.start(argv, name=name, netns=pod.name, node_side=True)

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"the DNS proxy exited before listening in the pod: {proc.last_words()}")
        return stats.exists() and DNS_CAPTURE_PORT in pod.listening_tcp_ports()

    wait_until(ready, timeout=30, what="the DNS proxy's listeners in the pod", interval=0.05)
    return proc
