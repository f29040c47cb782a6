"""Mutual TLS between the mesh's proxies, as Envoy configuration: the sidecar's ISTIO_MUTUAL chains and ambient's
HBONE (an HTTP/2 CONNECT tunnel inside mTLS to port 15008).

Followed (istio/istio master 86c9f01, 2026-08-22):
- Sidecar inbound (virtualInbound): the tls_inspector listener filter, a filter chain for TLS carrying Istio's
  ALPN values (pilot/pkg/networking/core/filterchain_options.go, "FCM 3: ALPN [istio-peer-exchange, istio]
  Transport protocol: tls") that terminates mTLS with the workload certificate, requires a client certificate and
  trusts the mesh root; under PERMISSIVE a second chain for raw_buffer (plaintext) to the same passthrough; under
  STRICT no plaintext chain, so Envoy closes a plaintext connection (no filter chain matches).
- Sidecar outbound: to a meshed destination, an ORIGINAL_DST cluster that originates TLS with ALPN
  `istio-peer-exchange, istio` (pilot/pkg/networking/util/util.go ALPNInMeshWithMxc) and checks the server's
  SPIFFE id exactly (the destination's service account, as Istio's auto-mTLS cluster does for ISTIO_MUTUAL);
  to anything else, the plaintext PassthroughCluster. The destination is chosen by its address here (a headless
  Service: the client dials the pod IP; Istio's cluster for one is ORIGINAL_DST too).
- HBONE origination (ztunnel's outbound to a meshed pod): tcp_proxy with `tunneling_config.hostname:
  %DOWNSTREAM_LOCAL_ADDRESS%` to an ORIGINAL_DST cluster with `upstream_port_override: 15008`, HTTP/2 with
  allow_connect, TLS with the source workload's certificate (pilot/pkg/networking/core/cluster_waypoint.go
  buildConnectOriginate, listener_waypoint.go buildConnectForwarder: Istio's own Envoy-based HBONE).
- HBONE termination (ztunnel's inbound, port 15008 in the destination pod): TLS requiring a client certificate,
  an HTTP connection manager with CONNECT upgrades and HTTP/2 allow_connect, a connect_matcher route to the
  CONNECT authority (listener_waypoint.go buildConnectTerminateListener / buildHCMConnectTerminateChain).
Measured consequence of the tls_inspector (as in Istio): a plaintext client that sends fewer bytes than a TLS
record header and then waits stalls in the listener filter until Envoy's default listener-filter timeout (15 s),
after which the connection goes on as plaintext (`continue_on_listener_filters_timeout`, set on Istio's inbound
listeners: pilot/pkg/networking/core/listener_inbound.go); the test tools here all send more at once.
Left out: the metadata exchange (the `istio-peer-exchange` ALPN is offered, no peer metadata filter runs),
authorization policy (the destination accepts any identity of the trust domain, and the access log records which
it saw), SDS (certificates are files), Istio's stats filters and access log format. ztunnel pools HBONE per
source/destination identity pair; Envoy's HTTP/2 pool here also multiplexes CONNECT streams over one mTLS
connection (measured: two iperf3 connections, one handshake, two CONNECT streams), without ztunnel's pool limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from harness.pod.identity import TRUST_DOMAIN, WorkloadCert

ALPN_IN_MESH = ["istio-peer-exchange", "istio"]  # util.ALPNInMeshWithMxc
ALPN_MTLS_TCP = ["istio-peer-exchange", "istio"]  # filterchain_options.go mtlsTCPWithMxcALPNs
ALPN_MTLS_HTTP = ["istio-http/1.0", "istio-http/1.1", "istio-h2"]  # filterchain_options.go mtlsHTTPALPNs
ALPN_HTTP11_IN_MESH = ["istio-http/1.1"]  # what Istio's ALPN filter sets for an HTTP/1.1 upstream in the mesh
ALPN_H2_IN_MESH = ["istio-h2"]  # ... for an HTTP/2 one (pilot/pkg/xds/filters/filters.go mtlsHTTP2ALPN, first entry)
HBONE_PORT = 15008
TLS_SOCKET = "envoy.transport_sockets.tls"
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
TLS_INSPECTOR = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HTTP_ORIGINAL_SRC = "type.googleapis.com/envoy.extensions.filters.http.original_src.v3.OriginalSrc"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"

# Stat names the evidence reads (harness/pod/sidecars.py Sidecar.counters).
MTLS_INBOUND = "inbound_mtls"  # tcp_proxy stat prefix of the sidecar's mTLS chain
MTLS_OUTBOUND = "outbound_mtls"  # the sidecar's mTLS-originating cluster
MTLS_INBOUND_HTTP = "inbound_mtls_http"  # HTTP connection manager stat prefix of the sidecar's mTLS HTTP chain
MTLS_OUTBOUND_HTTP = "outbound_mtls_http"  # the sidecar's mTLS-originating cluster for HTTP ports
MTLS_OUTBOUND_H2 = "outbound_mtls_h2"  # ... for HTTP/2 and gRPC ports
CONNECT_ORIGINATE = "connect_originate"  # ztunnel's HBONE-originating cluster (Istio's name)
CONNECT_TERMINATE = "connect_terminate"  # the HBONE terminator's HTTP stat prefix (Istio's name)
HBONE_INBOUND = "inbound_hbone"  # the terminator's cluster to the original port


class PeerKind(StrEnum):
    """Who the client (ingress) and server (egress) on the other side of the pod is."""

    OUTSIDE = "outside"  # a workload outside the mesh: plaintext, taken by the pod's passthrough chains
    MESHED = "meshed"  # a pod with its own proxy: mTLS between sidecars, HBONE between ztunnels


class PeerAuthentication(StrEnum):
    """Istio's PeerAuthentication mode for the pods of the bed."""

    PERMISSIVE = "permissive"  # mTLS and plaintext accepted (Istio's default)
    STRICT = "strict"  # plaintext refused


@dataclass(frozen=True)
class MeshTls:
    """One proxy's mTLS settings: its identity, the meshed destinations it originates mTLS to (address -> the
    SPIFFE id it expects there), whether plaintext inbound is refused, where its access log goes."""

    own: WorkloadCert
    meshed: dict[str, str] = field(default_factory=dict)
    strict: bool = False
    access_log: Path | None = None


def _common_tls(tls: MeshTls, alpn: list[str], peer_ids: list[str] | None) -> dict:
    """The certificate, the mesh root, and which SPIFFE ids are acceptable: `peer_ids` exactly, or any of the trust
    domain (`None`)."""
    if peer_ids is None:
        sans = [{"san_type": "URI", "matcher": {"prefix": f"spiffe://{TRUST_DOMAIN}/"}}]
    else:
        sans = [{"san_type": "URI", "matcher": {"exact": identity}} for identity in peer_ids]
    return {
        "tls_certificates": [
            {"certificate_chain": {"filename": str(tls.own.cert)}, "private_key": {"filename": str(tls.own.key)}}
        ],
        "validation_context": {"trusted_ca": {"filename": str(tls.own.root)}, "match_typed_subject_alt_names": sans},
        "alpn_protocols": alpn,
    }


def upstream_tls(tls: MeshTls, alpn: list[str]) -> dict:
    context = {"@type": UPSTREAM_TLS, "common_tls_context": _common_tls(tls, alpn, sorted(set(tls.meshed.values())))}
    return {"name": TLS_SOCKET, "typed_config": context}


def downstream_tls(tls: MeshTls, alpn: list[str]) -> dict:
    context = {
        "@type": DOWNSTREAM_TLS,
        "require_client_certificate": True,
        "common_tls_context": _common_tls(tls, alpn, None),
    }
    return {"name": TLS_SOCKET, "typed_config": context}


def access_log(path: Path | None) -> list[dict]:
    """A JSON line per connection (tcp_proxy) or CONNECT stream (HCM): the identity the proxy saw and the bytes."""
    if path is None:
        return []
    fmt = {
        "peer_identity": "%DOWNSTREAM_PEER_URI_SAN%",
        "authority": "%REQ(:AUTHORITY)%",
        "upstream": "%UPSTREAM_HOST%",
        "received": "%BYTES_RECEIVED%",
        "sent": "%BYTES_SENT%",
    }
    return [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {"@type": FILE_LOG, "path": str(path), "log_format": {"json_format": fmt}},
        }
    ]


def tls_inspector() -> dict:
    return {"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": TLS_INSPECTOR}}


def tcp_proxy(stat_prefix: str, cluster: str, *, log: Path | None = None, tunnel: bool = False) -> dict:
    config = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": stat_prefix,
        "cluster": cluster,
        "access_log": access_log(log),
    }
    if tunnel:
        config["tunneling_config"] = {"hostname": "%DOWNSTREAM_LOCAL_ADDRESS%"}
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": config}


def inbound_chains(tls: MeshTls, passthrough: str) -> list[dict]:
    """virtualInbound's filter chains: mTLS (Istio's ALPN) always, plaintext unless STRICT."""
    chains = [
        {
            "name": "inbound-mtls",
            "filter_chain_match": {"transport_protocol": "tls", "application_protocols": ALPN_MTLS_TCP},
            "transport_socket": downstream_tls(tls, ["istio-peer-exchange", "h2", "http/1.1"]),
            "filters": [tcp_proxy(MTLS_INBOUND, passthrough, log=tls.access_log)],
        }
    ]
    if not tls.strict:
        chains.append(
            {
                "name": "inbound-plaintext",
                "filter_chain_match": {"transport_protocol": "raw_buffer"},
                "filters": [tcp_proxy(passthrough, passthrough)],
            }
        )
    return chains


def host_prefix(ip: str) -> dict:
    """One address as a filter chain's prefix range (/32, or /128 for IPv6)."""
    return {"address_prefix": ip, "prefix_len": 128 if ":" in ip else 32}


def meshed_match(tls: MeshTls) -> dict:
    return {"prefix_ranges": [host_prefix(ip) for ip in sorted(tls.meshed)]}


def outbound_mtls_cluster(tls: MeshTls, base: dict) -> dict:
    """`base` (an ORIGINAL_DST cluster) originating Istio mTLS."""
    return {**base, "name": MTLS_OUTBOUND, "transport_socket": upstream_tls(tls, ALPN_IN_MESH)}


def connect_originate_cluster(tls: MeshTls, base: dict) -> dict:
    """`base` (an ORIGINAL_DST cluster) as Istio's connect_originate: port 15008, HTTP/2 CONNECT over mTLS."""
    return {
        **base,
        "name": CONNECT_ORIGINATE,
        "original_dst_lb_config": {"upstream_port_override": HBONE_PORT},
        "typed_extension_protocol_options": {
            HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {"allow_connect": True}},
            }
        },
        "transport_socket": upstream_tls(tls, ["h2"]),
    }


def connect_terminate_listener(tls: MeshTls, address: dict, served_ip: str, *, mark: int | None) -> dict:
    """Port 15008: mTLS, then CONNECT to `served_ip`'s ports only (ztunnel refuses a CONNECT to an address it does
    not serve), each stream to its authority through HBONE_INBOUND (from the client's address when `mark`: the
    HTTP original_src filter, as ztunnel keeps the source in in-pod mode)."""
    filters = [{"name": "envoy.filters.http.original_src", "typed_config": {"@type": HTTP_ORIGINAL_SRC, "mark": mark}}]
    hcm = {
        "@type": HCM,
        "stat_prefix": CONNECT_TERMINATE,
        "codec_type": "HTTP2",
        "http2_protocol_options": {"allow_connect": True, "max_concurrent_streams": 100},
        "upgrade_configs": [{"upgrade_type": "CONNECT"}],
        "stream_idle_timeout": "0s",
        "access_log": access_log(tls.access_log),
        "route_config": {
            "name": "default",
            "virtual_hosts": [
                {
                    "name": "served",
                    "domains": [f"{served_ip}:*"],
                    "routes": [
                        {
                            "match": {"connect_matcher": {}},
                            "route": {
                                "cluster": HBONE_INBOUND,
                                "upgrade_configs": [{"upgrade_type": "CONNECT", "connect_config": {}}],
                            },
                        }
                    ],
                }
            ],
        },
        "http_filters": [
            *(filters if mark is not None else []),
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
        ],
    }
    return {
        "name": CONNECT_TERMINATE,
        "address": {"socket_address": address},
        "filter_chains": [
            {
                "transport_socket": downstream_tls(tls, ["h2"]),
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
            }
        ],
    }


def hbone_inbound_cluster(base: dict) -> dict:
    """`base` (an ORIGINAL_DST cluster) sending each CONNECT stream to the address in its authority."""
    return {
        **base,
        "name": HBONE_INBOUND,
        "original_dst_lb_config": {"use_http_header": True, "http_header_name": ":authority"},
    }
