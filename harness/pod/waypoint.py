"""Istio ambient's waypoint: the Envoy that istiod configures for a namespace's waypoint (L7 for the services bound
to it), run in a pod of its own on the node (harness/lab/bed.py add_proxy_pod).

Followed (istio/istio 1.30.3, pilot/pkg/networking/core/listener_waypoint.go and cluster_waypoint.go,
pilot/pkg/xds/filters/filters.go):
- `connect_terminate` on port 15008: mTLS with the waypoint's workload certificate requiring the client's, an HTTP
  connection manager with CONNECT upgrades and HTTP/2 allow_connect (100 concurrent streams), the
  `connect_authority` set_filter_state filter (the CONNECT authority into
  `envoy.filters.listener.original_dst.local_ip`, shared with the upstream once), and a connect_matcher route to
  the `main_internal` cluster (buildWaypointInboundConnectTerminate).
- `main_internal`, an internal listener: the original_dst listener filter restores the tunnel's destination from
  that filter state, and a filter chain per destination port: the service's HTTP ports get Istio's HTTP connection
  manager (the sidecar's, harness/pod/envoy.py http_connection_manager: L7 routing, the router) to the service's
  cluster; other ports a tcp_proxy (L4) (buildWaypointInternal).
- Upstream: HBONE to the destination pod's ztunnel, `connect_originate`: HTTP/2 CONNECT inside mTLS with the
  waypoint's certificate, checking the destination's SPIFFE id (cluster_waypoint.go buildConnectOriginate). Istio
  reaches it through an internal `connect_originate` listener whose endpoint metadata names the destination; the
  bed has one destination pod, so each HTTP port's cluster goes to an internal listener that tunnels to that
  pod's address and port, and the L4 chain tunnels to the restored destination (the same bytes on the wire).

Left out, as for the sidecars: Istio's telemetry and metadata-exchange filters, authorization policies (none are
configured), the access log format, SDS, connection balancing (`exact_balance` on connect_terminate: one HBONE
connection here). What a waypoint costs in the published numbers is Istio's full filter chain; the difference
moves the per-request CPU here down, not up.
"""

from __future__ import annotations

from pathlib import Path

from harness.lab.bed import TestBed
from harness.lab.netns import Namespace
from harness.lab.processes import TrackedProcess
from harness.lab.waiting import wait_until
from harness.pod import mtls
from harness.pod.envoy import admin_pipe_config, http2_upstream, http_connection_manager, start_envoy
from harness.pod.protocols import http2_ports, http_ports

SERVICE_ACCOUNT = "waypoint"
HBONE_PORT = mtls.HBONE_PORT
MAIN_INTERNAL = "main_internal"
ORIGINAL_DST_LOCAL_IP = "envoy.filters.listener.original_dst.local_ip"  # filters.go OriginalDstFilterStateKey
INTERNAL_UPSTREAM = (
    "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport"
)
RAW_BUFFER = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
SET_FILTER_STATE = "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config"
ORIGINAL_DST = "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
INTERNAL_LISTENER = "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"


def internal_cluster(name: str, listener: str) -> dict:
    """A cluster whose one endpoint is the internal listener `listener` (Envoy's internal_upstream socket)."""
    endpoint = {"endpoint": {"address": {"envoy_internal_address": {"server_listener_name": listener}}}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
        "transport_socket": {
            "name": "envoy.transport_sockets.internal_upstream",
            "typed_config": {
                "@type": INTERNAL_UPSTREAM,
                "transport_socket": {
                    "name": "envoy.transport_sockets.raw_buffer",
                    "typed_config": {"@type": RAW_BUFFER},
                },
            },
        },
    }


def connect_authority_filter() -> dict:
    """filters.go ConnectAuthorityFilterPre1_29_2's core: the CONNECT authority as the inner connection's original
    destination, shared with the upstream (main_internal) once."""
    return {
        "name": "connect_authority",
        "typed_config": {
            "@type": SET_FILTER_STATE,
            "on_request_headers": [
                {
                    "object_key": ORIGINAL_DST_LOCAL_IP,
                    "format_string": {"text_format_source": {"inline_string": "%REQ(:AUTHORITY)%"}},
                    "shared_with_upstream": "ONCE",
                }
            ],
        },
    }


def connect_terminate(tls: mtls.MeshTls) -> dict:
    hcm = {
        "@type": mtls.HCM,
        "stat_prefix": mtls.CONNECT_TERMINATE,
        "codec_type": "HTTP2",
        "http2_protocol_options": {"allow_connect": True, "max_concurrent_streams": 100},
        "upgrade_configs": [{"upgrade_type": "CONNECT"}],
        "stream_idle_timeout": "0s",
        "access_log": mtls.access_log(tls.access_log),
        "route_config": {
            "name": "connect_terminate",
            "virtual_hosts": [
                {
                    "name": "connect",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"connect_matcher": {}},
                            "route": {
                                "cluster": MAIN_INTERNAL,
                                "upgrade_configs": [{"upgrade_type": "CONNECT", "connect_config": {}}],
                            },
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            connect_authority_filter(),
            {"name": "envoy.filters.http.router", "typed_config": {"@type": mtls.ROUTER}},
        ],
    }
    return {
        "name": mtls.CONNECT_TERMINATE,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": mtls.HBONE_PORT}},
        "filter_chains": [
            {
                "transport_socket": mtls.downstream_tls(tls, ["h2"]),
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
            }
        ],
    }


def service_cluster(port: int) -> str:
    """The cluster of the VM's service on an HTTP port (Istio's inbound-vip|PORT|http|HOST, host left out)."""
    return f"inbound-vip|{port}|http"


def waypoint_bootstrap(tls: mtls.MeshTls, destination: str, admin_socket: Path) -> dict:
    """The waypoint for the one destination pod of the bed (`destination`: its address)."""
    main_chains = []
    listeners = [connect_terminate(tls)]
    clusters = [internal_cluster(MAIN_INTERNAL, MAIN_INTERNAL)]
    h2 = set(http2_ports())
    for port in http_ports():
        stat = f"waypoint_{port}"
        main_chains.append(
            {
                "filter_chain_match": {"destination_port": port},
                "filters": [http_connection_manager(stat, service_cluster(port), inbound=False)],
            }
        )
        originate = f"connect_originate_{port}"
        cluster = internal_cluster(service_cluster(port), originate)
        clusters.append(http2_upstream(cluster) if port in h2 else cluster)
        listeners.append(
            {
                "name": originate,
                "internal_listener": {},
                "filter_chains": [{"filters": [tunnel(f"{destination}:{port}")]}],
            }
        )
    main_chains.append({"filters": [tunnel("%DOWNSTREAM_LOCAL_ADDRESS%", stat="waypoint_tcp")]})  # L4 ports
    listeners.append(
        {
            "name": MAIN_INTERNAL,
            "internal_listener": {},
            "listener_filters": [
                {"name": "envoy.filters.listener.original_dst", "typed_config": {"@type": ORIGINAL_DST}}
            ],
            "filter_chains": main_chains,
        }
    )
    base = {
        "name": mtls.CONNECT_ORIGINATE,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": mtls.CONNECT_ORIGINATE,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": destination, "port_value": mtls.HBONE_PORT}}
                            }
                        }
                    ]
                }
            ],
        },
    }
    originate = mtls.connect_originate_cluster(tls, base)
    originate.pop("original_dst_lb_config")
    clusters.append(originate)
    return {
        "admin": admin_pipe_config(admin_socket),
        "bootstrap_extensions": [
            {"name": "envoy.bootstrap.internal_listener", "typed_config": {"@type": INTERNAL_LISTENER}}
        ],
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def tunnel(hostname: str, stat: str = mtls.CONNECT_ORIGINATE) -> dict:
    """tcp_proxy through HBONE to the destination pod's ztunnel, CONNECT to `hostname`."""
    config = mtls.tcp_proxy(stat, mtls.CONNECT_ORIGINATE, tunnel=True)
    config["typed_config"]["tunneling_config"] = {"hostname": hostname}
    return config


def start_waypoint(
    bed: TestBed, ns: Namespace, tls: mtls.MeshTls, destination: str, admin_socket: Path, uid: int
) -> TrackedProcess:
    """The waypoint's Envoy in its own pod `ns`, as the proxy's uid (Istio's waypoint runs as 1337)."""
    config = waypoint_bootstrap(tls, destination, admin_socket)
    proc = start_envoy(bed, config, ns=ns, name="waypoint", ports=[mtls.HBONE_PORT], uid=uid)
    wait_until(admin_socket.exists, timeout=30, what="the waypoint's admin socket", interval=0.05)
    return proc
