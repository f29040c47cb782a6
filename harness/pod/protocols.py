"""Which of the bed's ports Istio treats as HTTP, decided as Istio decides it from the Kubernetes Service.

Followed: istio/istio pkg/config/kube/conversion.go `ConvertProtocol` (86c9f01): UDP ports are UDP; otherwise the
Service port's `appProtocol` when set (with Kubernetes' `kubernetes.io/h2c` and `kubernetes.io/ws`), else its
name, up to the first `-` (`grpc-web` whole), parsed by pkg/config/protocol/instance.go `Parse`; HTTP, HTTP2,
HTTP_PROXY, gRPC and gRPC-Web are HTTP (`IsHTTP`). A port whose name says nothing is sniffed by Istio's sidecar
(the http_inspector listener filter, then HTTP or TCP); the harness names the ports it serves HTTP on, and the
other test tools (iperf3, sockperf, vmnb-crr, dig) speak no HTTP, which sniffing would classify as TCP, so their
ports go to tcp_proxy as they would in Istio.
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP_PROTOCOLS = {"http", "http2", "http_proxy", "grpc", "grpc-web"}
KNOWN = {"tcp", "udp", "https", "tls", "mongo", "redis", "mysql", *HTTP_PROTOCOLS}
APP_PROTOCOL_ALIASES = {"kubernetes.io/h2c": "http2", "kubernetes.io/ws": "http", "kubernetes.io/wss": "https"}


@dataclass(frozen=True)
class ServicePort:
    """One port of a Kubernetes Service (core/v1 ServicePort): number, name, appProtocol, protocol."""

    port: int
    name: str = ""
    app_protocol: str | None = None
    udp: bool = False


def istio_protocol(port: ServicePort) -> str:
    """Istio's protocol for a Service port (lower case; `unsupported`: Istio sniffs it)."""
    if port.udp:
        return "udp"
    name = port.name
    if port.app_protocol is not None:
        name = port.app_protocol
        if name in APP_PROTOCOL_ALIASES:
            return APP_PROTOCOL_ALIASES[name]
    if name.lower().startswith("grpc-web"):
        return "grpc-web"
    prefix = name.split("-", 1)[0].lower()
    return prefix if prefix in KNOWN else "unsupported"


def is_http(port: ServicePort) -> bool:
    return istio_protocol(port) in HTTP_PROTOCOLS


def is_http2(port: ServicePort) -> bool:
    """Istio sends HTTP/2 upstream on this port (pkg/config/protocol/instance.go `IsHTTP2`: HTTP2, gRPC,
    gRPC-Web); on other HTTP ports its clusters speak HTTP/1.1 whatever the client spoke
    (pilot/pkg/networking/core/cluster_builder.go `setUpstreamProtocol`)."""
    return istio_protocol(port) in {"http2", "grpc", "grpc-web"}


HTTP_PORT = 8000  # not 8080: the research's NAT proxy (strategies/nat_proxy.py) listens there in the pod
GRPC_PORT = 8001
SERVICE_PORTS = (ServicePort(HTTP_PORT, "http-echo"), ServicePort(GRPC_PORT, "grpc-echo"))
"""The ports the bed's Services (the VM's and the peer's) name; every other port the tests use is unnamed. The
HTTP/2 and gRPC tests use `grpc-echo`: a gRPC port, so Istio's clusters speak HTTP/2 to the server as they do
for gRPC services (a plain HTTP/2 request on it takes the same filters; grpc_stats only counts gRPC calls)."""


def http_ports(ports: tuple[ServicePort, ...] = SERVICE_PORTS) -> tuple[int, ...]:
    return tuple(sorted(p.port for p in ports if is_http(p)))


def http2_ports(ports: tuple[ServicePort, ...] = SERVICE_PORTS) -> tuple[int, ...]:
    """The HTTP ports whose upstream Istio speaks HTTP/2 to."""
    return tuple(sorted(p.port for p in ports if is_http2(p)))
