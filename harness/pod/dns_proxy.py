"""ztunnel's DNS proxy for one ambient pod: the listener istio-cni's DNS capture rules send the pod's queries to.

Faithful (istio/ztunnel at 62d8265: src/dns/server.rs, src/dns/forwarder.rs, src/config.rs):
- Listens on localhost:15053, UDP and TCP (config.rs `DEFAULT_DNS_PORT`, `Address::Localhost`), with its sockets
  in the pod's network namespace and every socket carrying the in-pod mark 0x539 (ztunnel's in-pod socket
  factory), so istio-cni's rules do not capture the proxy's own upstream queries and its raw-table rules put them
  in conntrack zone 1 (istio/istio cni/pkg/iptables/iptables.go, issue istio/istio#33469).
- An A/AAAA query for a host the mesh knows (a Service, or a ServiceEntry host that has no DNS record anywhere)
  is answered by the proxy itself (server.rs `Store::lookup`, `find_server`); every other query is forwarded to
  the resolver in ztunnel's own resolv.conf, the cluster's DNS (forwarder.rs, `SystemForwarder`), over UDP,
  retried over TCP when the answer is truncated, from a socket in the pod marked 0x539; a forward that fails
  is SERVFAIL.
Not faithful (and why it does not change a verdict here): this is a small Python process (dnspython) started
inside the pod's namespace, where ztunnel (Rust, hickory-dns) runs in the node's and opens its sockets in the
pod's; the sockets, addresses and marks are the same, so the packets take the same path. Its CPU is not
ztunnel's. The mesh's hosts are a fixed table (the harness's two names) instead of what istiod sends; search
domains, wildcard ServiceEntries, the workload lookup of the client (`unknown source`) and DNS metrics labels
are left out. The counters are written to a JSON file after every query, read by the evidence.

Run: `python -m harness.pod.dns_proxy --upstream IP --host NAME=IP ... --stats FILE` inside the pod.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from harness.pod.inpod import DNS_CAPTURE_PORT, INPOD_MARK, SO_MARK

SERVICE_HOST = "peer.vmnb.svc.cluster.local"
"""The peer's Kubernetes Service: the cluster's resolver knows it, and so does the mesh."""
MESH_ONLY_HOST = "db.mesh-only.example"
"""A ServiceEntry host with no DNS record anywhere: only the mesh's DNS proxy answers it (Istio's DNS proxying, the
reason ambient captures DNS)."""
RESOLVER_ONLY_HOST = "legacy.corp.example"
"""A name only the cluster's resolver knows (an external name, a stub domain of kube-dns): the mesh's DNS proxy
forwards it."""
UPSTREAM_TIMEOUT_S = 2.0
TTL_S = 30  # ztunnel answers its hosts with a 30 s TTL (server.rs DEFAULT_TTL_SECONDS)


@dataclass
class DnsProxyCounters:
    udp: int = 0
    tcp: int = 0
    answered: int = 0
    """Queries for a host of the mesh, answered by the proxy itself."""
    forwarded: int = 0
    failed: int = 0
    """Forwards that got no answer (SERVFAIL to the client)."""

    @property
    def queries(self) -> int:
        return self.udp + self.tcp

    @classmethod
    def read(cls, path: Path) -> DnsProxyCounters:
        """The counters the proxy last wrote; all zero before its first query."""
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return cls()

    def minus(self, before: DnsProxyCounters) -> DnsProxyCounters:
        return DnsProxyCounters(**{k: v - getattr(before, k) for k, v in asdict(self).items()})


def mesh_hosts(peer_ip: str) -> dict[str, str]:
    """The hosts the mesh's DNS proxy answers itself: both names, at the peer's address."""
    return {SERVICE_HOST: peer_ip, MESH_ONLY_HOST: peer_ip}


def marked(family: int, kind: int) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, SO_MARK, INPOD_MARK)
    return sock


class DnsProxy:
    def __init__(self, upstream: str, hosts: dict[str, str], stats: Path) -> None:
        self.upstream = upstream
        self.hosts = {name.rstrip(".").lower() + ".": ip for name, ip in hosts.items()}
        self.stats = stats
        self.counters = DnsProxyCounters()
        self.lock = threading.Lock()

    def count(self, **increments: int) -> None:
        with self.lock:
            for name, by in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + by)
            tmp = self.stats.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self.counters)))
            tmp.replace(self.stats)

    def resolve(self, wire: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(wire)
        question = query.question[0] if query.question else None
        known = (
            question is not None
            and question.rdtype == dns.rdatatype.A
            and self.hosts.get(question.name.to_text().lower())
        )
        if known:
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            reply.answer.append(dns.rrset.from_text(question.name, TTL_S, "IN", "A", known))
            self.count(**{transport: 1, "answered": 1})
            return reply.to_wire()
        try:
            reply = self.forward(query)
            self.count(**{transport: 1, "forwarded": 1})
        except (OSError, dns.exception.DNSException):
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.SERVFAIL)
            self.count(**{transport: 1, "failed": 1})
        return reply.to_wire()

    def forward(self, query: dns.message.Message) -> dns.message.Message:
        with marked(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = dns.query.udp(query, self.upstream, timeout=UPSTREAM_TIMEOUT_S, sock=sock)
        if reply.flags & dns.flags.TC:
            with marked(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(UPSTREAM_TIMEOUT_S)
                sock.connect((self.upstream, 53))
                reply = dns.query.tcp(query, self.upstream, timeout=UPSTREAM_TIMEOUT_S, sock=sock)
        reply.id = query.id
        return reply


def serve(proxy: DnsProxy, port: int) -> None:
    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            sock.sendto(proxy.resolve(data, "udp"), self.client_address)

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while header := self.rfile.read(2):
                if len(header) < 2:
                    return
                wire = self.rfile.read(struct.unpack("!H", header)[0])
                answer = proxy.resolve(wire, "tcp")
                self.wfile.write(struct.pack("!H", len(answer)) + answer)

    class MarkedServer:
        allow_reuse_address = True
        daemon_threads = True

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.SOL_SOCKET, SO_MARK, INPOD_MARK)
            super().server_bind()

    class UdpServer(MarkedServer, socketserver.ThreadingUDPServer):
        pass

    class TcpServer(MarkedServer, socketserver.ThreadingTCPServer):
        pass

    udp, tcp = UdpServer(("127.0.0.1", port), Udp), TcpServer(("127.0.0.1", port), Tcp)
    proxy.count()  # the stats file exists once both sockets are bound: the harness waits for it
    threading.Thread(target=udp.serve_forever, daemon=True).start()
    tcp.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the cluster resolver's address")
    parser.add_argument("--host", action="append", default=[], help="NAME=IP, a host of the mesh")
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--port", type=int, default=DNS_CAPTURE_PORT)
    args = parser.parse_args()
    hosts = dict(h.split("=", 1) for h in args.host)
    os.umask(0o022)
    serve(DnsProxy(args.upstream, hosts, args.stats), args.port)


if __name__ == "__main__":
    main()
