"""Meshed clients (issue 26): the peer as a pod with its own proxy, mTLS between sidecars, HBONE between ztunnels.

The real-path tests run the real Envoy on real namespaces: the destination proxy must see the peer's SPIFFE
identity, a plaintext client must be refused under STRICT, a certificate from another CA must be refused, and the
row-level evidence must tell mTLS from plaintext."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from cryptography import x509

from harness.kinds.measure import MeshSnapshot, traversal
from harness.kinds.outcome import Outcome
from harness.lab.vocabulary import Direction, Status, TrafficPath
from harness.lab.waiting import wait_listening
from harness.pod import mtls
from harness.pod.ambient import node_proxy_bootstrap
from harness.pod.envoy import sidecar_bootstrap
from harness.pod.identity import MeshCA, spiffe_id
from harness.pod.mesh import Client, install_sidecar, layout_label
from harness.pod.mtls import MeshTls, PeerAuthentication, PeerKind
from harness.pod.sidecars import SidecarCounters
from harness.run.plan import cell_specs
from harness.run.scenario import Scenario
from tests.conftest import run_scenario_text

MESHED = Client(PeerKind.MESHED)
STRICT = Client(PeerKind.OUTSIDE, PeerAuthentication.STRICT)


def test_workload_certificates_carry_the_spiffe_id_and_chain_to_the_bed_root(tmp_path):
    ca = MeshCA(tmp_path)
    cert = ca.issue("peer", owner_uid=0)
    parsed = x509.load_pem_x509_certificate(cert.cert.read_bytes())
    root = x509.load_pem_x509_certificate(cert.root.read_bytes())
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://cluster.local/ns/vmnb/sa/peer"]
    parsed.verify_directly_issued_by(root)
    other = MeshCA(tmp_path / "other")  # a fresh CA per bed: another bed's root does not sign this one
    with pytest.raises(Exception):  # noqa: B017,PT011 - cryptography raises InvalidSignature or ValueError
        parsed.verify_directly_issued_by(x509.load_pem_x509_certificate(other.root_path.read_bytes()))


def _tls(tmp_path, strict: bool = False) -> MeshTls:
    ca = MeshCA(tmp_path)
    return MeshTls(ca.issue("vm", owner_uid=0), {"198.18.1.2": spiffe_id("peer")}, strict, tmp_path / "access.log")


def test_sidecar_bootstrap_has_istios_mtls_chains_and_strict_drops_plaintext(tmp_path):
    def config(strict: bool) -> dict:
        return sidecar_bootstrap(
            inbound_port=15006,
            outbound_port=15001,
            admin_socket=tmp_path / "a.sock",
            inbound_bind="127.0.0.6",
            tls=_tls(tmp_path, strict),
        )

    listeners = {listener["name"]: listener for listener in config(False)["static_resources"]["listeners"]}
    inbound, outbound = listeners["virtualInbound"], listeners["virtualOutbound"]
    assert "envoy.filters.listener.tls_inspector" in [f["name"] for f in inbound["listener_filters"]]
    matches = [c["filter_chain_match"] for c in inbound["filter_chains"]]
    assert matches == [
        {"transport_protocol": "tls", "application_protocols": ["istio-peer-exchange", "istio"]},
        {"transport_protocol": "raw_buffer"},
    ]
    tls_context = inbound["filter_chains"][0]["transport_socket"]["typed_config"]
    assert tls_context["require_client_certificate"] is True
    # to the meshed peer: Istio's mTLS, and the peer's exact identity checked
    assert outbound["filter_chains"][0]["filter_chain_match"]["prefix_ranges"][0]["address_prefix"] == "198.18.1.2"
    cluster = next(c for c in config(False)["static_resources"]["clusters"] if c["name"] == mtls.MTLS_OUTBOUND)
    common = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    assert common["alpn_protocols"] == ["istio-peer-exchange", "istio"]
    assert common["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/vmnb/sa/peer"}}
    ]
    strict_inbound = next(c for c in config(True)["static_resources"]["listeners"] if c["name"] == "virtualInbound")
    assert [c["filter_chain_match"]["transport_protocol"] for c in strict_inbound["filter_chains"]] == ["tls"]


def test_node_proxy_bootstrap_terminates_and_originates_hbone(tmp_path):
    pod = SimpleNamespace(path="/run/netns/x")
    config = node_proxy_bootstrap(pod, ["198.18.2.2"], tmp_path / "a.sock", _tls(tmp_path))
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}
    terminate = listeners[mtls.CONNECT_TERMINATE]
    assert terminate["address"]["socket_address"]["port_value"] == 15008
    hcm = terminate["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["upgrade_configs"] == [{"upgrade_type": "CONNECT"}] and hcm["http2_protocol_options"]["allow_connect"]
    assert hcm["route_config"]["virtual_hosts"][0]["domains"] == ["198.18.2.2:*"]  # only the pod it serves
    tunnel = listeners["ztunnel-outbound"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert tunnel["tunneling_config"] == {"hostname": "%DOWNSTREAM_LOCAL_ADDRESS%"}
    originate = next(c for c in config["static_resources"]["clusters"] if c["name"] == mtls.CONNECT_ORIGINATE)
    assert originate["original_dst_lb_config"] == {"upstream_port_override": 15008}


def test_meshed_clients_exist_only_for_istio_modes_and_label_the_layout():
    scenario = Scenario.model_validate(
        {
            "name": "t",
            "strategies": ["direct"],
            "sidecars": ["none", "linkerd-style", "envoy-redirect", "ambient"],
            "peers": ["outside", "meshed"],
            "peer_authentication": ["permissive", "strict"],
            "tests": [{"kind": "tcp_throughput", "directions": ["ingress"]}],
        }
    )
    layouts = [c.layout for c in cell_specs(scenario)]
    assert layouts == [
        "none",
        "linkerd-style",
        "envoy-redirect",
        "envoy-redirect+strict",
        "envoy-redirect+meshed",
        "envoy-redirect+meshed+strict",
        "ambient",
        "ambient+strict",
        "ambient+meshed",
        "ambient+meshed+strict",
    ]
    assert layout_label("ambient", MESHED) == "ambient+meshed"
    with pytest.raises(ValueError, match="has no meshed clients"):
        install_sidecar(None, "linkerd-style", vm_interfaces=[], client=MESHED)


class _FakeProxy:
    def __init__(self, counters: list[SidecarCounters], identity: str, seen: list[str]) -> None:
        self._counters, self.spiffe_id, self._seen = iter(counters), identity, seen
        self.admin_socket = "fake"
        self.peer_proxy = None
        self.waypoint = None

    def counters(self) -> SidecarCounters:
        return next(self._counters)

    def identities_seen(self, since: int = 0) -> tuple[list[str], int]:
        return self._seen, 1


def _evidence(pod_after: SidecarCounters, peer_after: SidecarCounters, seen: list[str]):
    zero = SidecarCounters()
    pod = _FakeProxy([zero, pod_after], spiffe_id("vm"), seen)
    pod.peer_proxy = _FakeProxy([zero, peer_after], spiffe_id("peer"), [])
    before = MeshSnapshot.take(pod)
    return traversal(Outcome(Status.OK, "", [], bytes_moved=1000), Direction.INGRESS, pod, before)


def test_evidence_says_through_mesh_only_for_bytes_inside_mtls_with_the_clients_identity():
    mtls_in = SidecarCounters(inbound_bytes=1000, inbound_cx=1, mtls_inbound_bytes=1000, tls_inbound_handshakes=1)
    mtls_out = SidecarCounters(outbound_bytes=1000, outbound_cx=1, mtls_outbound_bytes=1000)
    good = _evidence(mtls_in, mtls_out, [spiffe_id("peer")])
    assert good.path is TrafficPath.THROUGH_MESH and good.peer_identity == spiffe_id("peer")
    assert good.tls_handshakes == 1 and good.peer_proxy_bytes == 1000
    # both proxies carried the bytes, but in plaintext (the passthrough chains): not through the mesh's mTLS
    plain = _evidence(
        SidecarCounters(inbound_bytes=1000, inbound_cx=1), SidecarCounters(outbound_bytes=1000, outbound_cx=1), []
    )
    assert plain.path is TrafficPath.MESH_PLAINTEXT
    # mTLS, but the destination saw another identity
    assert _evidence(mtls_in, mtls_out, [spiffe_id("other")]).path is TrafficPath.MESH_PLAINTEXT


def _throughput(samples):
    rows = samples[(samples.metric == "throughput")]
    return {(r.sidecar, r.direction): r for r in rows.itertuples()}


def test_direct_with_a_meshed_peer_crosses_mtls_and_hbone_and_strict_refuses_plaintext(tmp_path):
    """The plain pod under Istio's sidecar and ambient: the meshed peer's bytes cross mTLS (HBONE) between the
    two proxies, the destination saw the peer's (or the pod's) SPIFFE id; under STRICT the outside plaintext
    client is refused while the meshed one still passes; egress to an outside server is unaffected by STRICT."""
    samples, _ = run_scenario_text(
        tmp_path,
        """
name: meshed-direct
strategies: [direct]
sidecars: [envoy-redirect, ambient]
peers: [outside, meshed]
peer_authentication: [permissive, strict]
repetitions: 1
tests:
  - {kind: tcp_throughput, directions: [ingress, egress], duration_s: 1, omit_s: 0, streams: 1}
""",
    )
    rows = _throughput(samples)
    assert len(rows) == 16
    for mode in ("envoy-redirect", "ambient"):
        for layout in (f"{mode}+meshed", f"{mode}+meshed+strict"):
            for direction, source in (("ingress", "peer"), ("egress", "vm")):
                row = rows[(layout, direction)]
                assert row.status == "ok" and row.path == "through-mesh", (layout, direction, row.reason)
                assert row.peer == "meshed" and row.peer_identity == spiffe_id(source)
                assert row.tls_handshakes >= 1 and row.mtls_bytes >= row.sidecar_bytes / 2
                if mode == "ambient":  # HBONE: CONNECT streams terminated in the destination's 15008
                    assert row.hbone_streams >= 1
                else:
                    assert row.hbone_streams == 0
        refused = rows[(f"{mode}+strict", "ingress")]
        assert refused.status == "failed" and refused.peer == "outside", refused
        assert rows[(f"{mode}+strict", "egress")].status == "ok"
        assert rows[(mode, "ingress")].status == "ok" and pd_isna(rows[(mode, "ingress")].tls_handshakes)


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _handshake(bed, side, cert, key, root) -> dict[str, int]:
    """openssl as uid 1337 in the peer's namespace (the peer sidecar's own uid: its rules let it through
    uncaptured) opens TLS with Istio's ALPN to the pod's inbound, presenting `cert`; what the pod's proxy counted
    on its listeners (ssl.handshake, ssl.fail_verify_error, ...) is the verdict (under TLS 1.3 the client cannot
    tell: it finishes its side before the server has judged its certificate)."""
    before = side.stats(r"^listener\..*\.ssl\.")
    argv = [
        "ip",
        "netns",
        "exec",
        bed.peer.name,
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
        "openssl",
        "s_client",
        "-connect",
        f"{bed.plan.pod_ip}:5201",
        "-cert",
        str(cert),
        "-key",
        str(key),
        "-CAfile",
        str(root),
        "-alpn",
        "istio-peer-exchange,istio",
        "-brief",
    ]
    subprocess.run(argv, input="", capture_output=True, text=True, timeout=30)
    after = side.stats(r"^listener\..*\.ssl\.")
    totals: dict[str, int] = {}
    for name, value in after.items():
        stat = name.rsplit(".ssl.", 1)[1]
        totals[stat] = totals.get(stat, 0) + value - before.get(name, 0)
    return totals


def test_the_destination_refuses_a_client_certificate_from_another_ca(bed):
    side = install_sidecar(
        bed, "envoy-redirect", vm_interfaces=[], client=Client(PeerKind.MESHED, PeerAuthentication.STRICT)
    )
    # a server behind the proxy: tcp_proxy reads the client (and so completes the handshake) once upstream connects
    sink = bed.start_process(
        ["socat", "-u", "TCP-LISTEN:5201,reuseaddr,fork", "OPEN:/dev/null"], ns=bed.pod, name="sink"
    )
    wait_listening(sink, 5201, timeout=10)
    ca = side.admin_socket.parent.parent / "mesh-ca"
    good = _handshake(bed, side, ca / "peer-cert.pem", ca / "peer-key.pem", ca / "root-cert.pem")
    assert good.get("handshake") == 1 and not good.get("fail_verify_error"), good
    # the same SPIFFE id from another root (the folder readable by uid 1337, as the bed's own is)
    foreign = MeshCA(bed.runtime_dir() / "foreign-ca").issue("peer", owner_uid=1337)
    bad = _handshake(bed, side, foreign.cert, foreign.key, ca / "root-cert.pem")
    assert not bad.get("handshake") and bad.get("fail_verify_error") == 1, bad
