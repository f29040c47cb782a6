"""HTTP at fixed offered rates (issue 30): Istio's protocol selection, the HTTP connection manager the sidecars
put on HTTP ports (validated by the real Envoy), the open-loop clients' coordinated-omission safety (a pause
planted in the real server), vmnb-h2's gRPC against grpcio's own client and server, and real runs through Envoy
sidecars and ambient's L4 proxy."""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from harness.guests.tools import compile_guest_tool
from harness.lab.waiting import wait_until
from harness.pod import mtls
from harness.pod.envoy import INBOUND_H2, OUTBOUND_H2, envoy_binary, sidecar_bootstrap
from harness.pod.identity import MeshCA, spiffe_id
from harness.pod.mtls import MeshTls
from harness.pod.protocols import ServicePort, http2_ports, http_ports, istio_protocol
from tests.conftest import free_port, run_scenario_text


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (ServicePort(80, "http"), "http"),
        (ServicePort(8080, "http-web"), "http"),
        (ServicePort(8080, "HTTP2-api"), "http2"),
        (ServicePort(9090, "grpc-web-ui"), "grpc-web"),
        (ServicePort(9090, "grpc-api"), "grpc"),
        (ServicePort(8080, "web"), "unsupported"),  # Istio sniffs it
        (ServicePort(8080, "http-web", app_protocol="tcp"), "tcp"),  # appProtocol wins over the name
        (ServicePort(8080, "", app_protocol="kubernetes.io/h2c"), "http2"),
        (ServicePort(8080, "http", udp=True), "udp"),
    ],
)
def test_istio_protocol_follows_convert_protocol(port, expected):
    assert istio_protocol(port) == expected


def test_the_beds_http_ports_are_8000_and_8001_not_the_nat_proxys_8080():
    assert http_ports() == (8000, 8001)
    assert http2_ports() == (8001,)  # grpc-echo: Istio speaks HTTP/2 upstream


def _bootstrap(tmp_path, *, tls: bool) -> dict:
    mesh = None
    if tls:
        ca = MeshCA(tmp_path / "ca")
        mesh = MeshTls(ca.issue("vm", owner_uid=0), {"198.18.1.2": spiffe_id("peer")}, False, tmp_path / "log")
    return sidecar_bootstrap(
        inbound_port=15006,
        outbound_port=15001,
        admin_socket=tmp_path / "a.sock",
        inbound_bind="127.0.0.6",
        tls=mesh,
        http_ports=(8000, 8001),
        http2_ports=(8001,),
    )


@pytest.mark.parametrize("tls", [False, True])
def test_sidecar_http_chains_are_istios_and_envoy_accepts_them(tmp_path, tls):
    config = _bootstrap(tmp_path, tls=tls)
    listeners = {x["name"]: x for x in config["static_resources"]["listeners"]}
    inbound = [
        c
        for c in listeners["virtualInbound"]["filter_chains"]
        if c.get("filter_chain_match", {}).get("destination_port") == 8000
    ]
    # every kind of client on the HTTP port has a chain: Envoy matches the port before anything else
    kinds = [
        (c["filter_chain_match"]["transport_protocol"], tuple(c["filter_chain_match"].get("application_protocols", ())))
        for c in inbound
    ]
    expected = [("raw_buffer", ())]
    if tls:
        expected = [("tls", tuple(mtls.ALPN_MTLS_HTTP)), ("tls", tuple(mtls.ALPN_MTLS_TCP)), *expected]
    assert kinds == expected
    hcm = next(c for c in inbound if c["filter_chain_match"]["transport_protocol"] == "raw_buffer")["filters"][0]
    assert hcm["name"] == "envoy.filters.network.http_connection_manager"
    filters = [f["name"] for f in hcm["typed_config"]["http_filters"]]
    assert filters == [
        "envoy.filters.http.grpc_stats",
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "envoy.filters.http.router",
    ]  # listener_builder.go's order, Istio-only filters left out
    assert hcm["typed_config"]["codec_type"] == "AUTO" and hcm["typed_config"]["stream_idle_timeout"] == "0s"
    outbound = [
        c
        for c in listeners["virtualOutbound"]["filter_chains"]
        if c.get("filter_chain_match", {}).get("destination_port") == 8000
    ]
    assert len(outbound) == (2 if tls else 1)  # a meshed destination gets the mTLS HTTP cluster first
    # the gRPC port's chains leave by clusters that speak HTTP/2 upstream (Istio's setH2Options), 8000's do not
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}

    def upstream(listener: str, port: int) -> list[str]:
        return [
            c["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"]
            for c in listeners[listener]["filter_chains"]
            if c.get("filter_chain_match", {}).get("destination_port") == port
            and c["filters"][0]["name"].endswith("http_connection_manager")
        ]

    def speaks_h2(name: str) -> bool:
        options = clusters[name].get("typed_extension_protocol_options", {})
        return any("http2_protocol_options" in o.get("explicit_http_config", {}) for o in options.values())

    assert set(upstream("virtualInbound", 8001)) == {INBOUND_H2}
    assert set(upstream("virtualOutbound", 8001)) == {OUTBOUND_H2, *([mtls.MTLS_OUTBOUND_H2] if tls else [])}
    assert all(speaks_h2(c) for c in upstream("virtualInbound", 8001) + upstream("virtualOutbound", 8001))
    assert not any(speaks_h2(c) for c in upstream("virtualInbound", 8000) + upstream("virtualOutbound", 8000))
    if tls:
        alpn = clusters[mtls.MTLS_OUTBOUND_H2]["transport_socket"]["typed_config"]["common_tls_context"]
        assert alpn["alpn_protocols"] == ["istio-h2"]
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(path), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


PROTOCOLS = [("vmnb-http", ()), ("vmnb-h2", ()), ("vmnb-h2", ("--grpc", "1"))]
"""(tool, client options): HTTP/1.1, HTTP/2, gRPC."""


def _serve(tmp_path, *server_args: str, tool: str = "vmnb-http") -> tuple[subprocess.Popen, int]:
    port = free_port()  # two xdist workers may serve at once
    server = subprocess.Popen([str(compile_guest_tool(tool)), "server", "--port", str(port), *server_args])
    wait_until(
        lambda: subprocess.run(["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True).stdout,
        timeout=10,
        what=f"{tool} server",
    )
    return server, port


def _client(
    port: int, rate: int, duration: float, connections: int, tool: str = "vmnb-http", options: tuple[str, ...] = ()
) -> dict:
    done = subprocess.run(
        [
            str(compile_guest_tool(tool)),
            "client",
            "--target",
            "127.0.0.1",
            "--port",
            str(port),
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--connections",
            str(connections),
            "--bytes",
            "1024",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize(("tool", "options"), PROTOCOLS, ids=["http1.1", "h2", "grpc"])
def test_open_loop_latency_is_coordinated_omission_safe(tmp_path, tool, options):
    """A 500 ms pause planted in the server: the requests due during it are not dropped or postponed out of the
    count; they are all answered, each late by as long as it waited, so the pause shows in the tail. Requests
    due while the server stalls: rate x pause = 100; those due in its first half waited more than 250 ms.
    A closed-loop client would have sent only its 4 in-flight requests during the pause and reported one slow
    request per connection."""
    rate, duration, pause_ms = 200, 4.0, 500
    server, port = _serve(tmp_path, "--stall-after", "1", "--stall-ms", str(pause_ms), tool=tool)
    try:
        report = _client(port, rate, duration, connections=4, tool=tool, options=options)
    finally:
        server.kill()
        server.wait()
    latency_ms = np.asarray(report["latency_us"]) / 1000
    assert report["errors"] == 0 and report["completed"] == report["scheduled"] == rate * duration
    late = int((latency_ms >= pause_ms / 2).sum())
    # about rate x pause / 2 = 50 requests waited more than half the pause (a noisy machine only adds lateness)
    assert late >= 40, late
    assert np.percentile(latency_ms, 99) >= pause_ms / 2
    assert latency_ms.max() >= pause_ms * 0.9  # the first request due in the pause waited nearly all of it


@pytest.mark.slow
@pytest.mark.parametrize(("tool", "options"), PROTOCOLS, ids=["http1.1", "h2", "grpc"])
def test_open_loop_client_counts_every_scheduled_request_without_a_pause(tmp_path, tool, options):
    server, port = _serve(tmp_path, tool=tool)
    try:
        report = _client(port, 300, 1.0, connections=4, tool=tool, options=options)
    finally:
        server.kill()
        server.wait()
    assert report["errors"] == 0 and report["completed"] == report["scheduled"] == 300
    assert len(report["latency_us"]) == 300 and min(report["latency_us"]) > 0


@pytest.mark.slow
@pytest.mark.parametrize(("tool", "options"), PROTOCOLS, ids=["http1.1", "h2", "grpc"])
def test_a_server_gone_mid_run_is_counted_as_errors_not_waited_for(tmp_path, tool, options):
    """The server dies after about 1 s of a 3 s run: the requests open on its connections and every later one
    are errors (with the first error named), the ones before are answered, and the client ends within its grace."""
    server, port = _serve(tmp_path, tool=tool)
    client = subprocess.Popen(
        [
            str(compile_guest_tool(tool)),
            "client",
            "--target",
            "127.0.0.1",
            "--port",
            str(port),
            "--rate",
            "200",
            "--duration",
            "3",
            "--connections",
            "4",
            "--bytes",
            "1024",
            "--grace",
            "1",
            *options,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.2)  # about a second of answered traffic first
        server.kill()
        server.wait()
        out, _ = client.communicate(timeout=20)
    finally:
        for proc in (server, client):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    report = json.loads(out)
    assert report["scheduled"] == 600
    assert 150 <= report["completed"] < 600 and report["errors"] == 600 - report["completed"]
    assert report["first_error"]


def _echo_message(payload: bytes) -> bytes:
    """protobuf `message Echo { bytes payload = 1; }` (what vmnb-h2 sends), encoded here independently."""
    if not payload:
        return b""
    length, varint = len(payload), bytearray()
    while True:
        varint.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return b"\x0a" + bytes(varint) + payload


def test_vmnb_h2_speaks_grpc_with_grpcios_own_client_and_server(tmp_path):
    """vmnb-h2's gRPC is the real wire format: its client's calls are served by grpcio's server (a generic
    handler that sees the raw message), and grpcio's client gets well-formed answers and statuses from its
    server. Both ends of every gRPC number are thereby checked against gRPC's reference implementation."""
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    seen: list[bytes] = []

    def echo(request: bytes, context) -> bytes:
        seen.append(request)
        return request

    handler = grpc.method_handlers_generic_handler("vmnb.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        report = _client(port, 100, 1.0, connections=2, tool="vmnb-h2", options=("--grpc", "1"))
    finally:
        server.stop(0)
    assert report["errors"] == 0 and report["completed"] == 100
    assert len(seen) == 100 and {len(m) for m in seen} == {len(_echo_message(b"x" * 1024))}
    assert seen[0] == _echo_message(b"x" * 1024)  # vmnb-h2 fills payloads with x

    ours, port = _serve(tmp_path, tool="vmnb-h2")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/vmnb.Echo/Echo")
            for size in (0, 1, 1024, 150_000):
                assert call(_echo_message(b"z" * size), timeout=5) == _echo_message(b"x" * size)
            with pytest.raises(grpc.RpcError) as refused:
                call(b"\x08\x01", timeout=5)  # not an Echo message: field 1 as a varint
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        ours.kill()
        ours.wait()


SCENARIO = """
name: http-test
runtime: netns
guest: netns
strategies: [direct, masquerade]
sidecars: [none, envoy-redirect, ambient]
peers: [outside, meshed]
design: rounds
repetitions: 1
tests:
  - {kind: http, rate_rps: 300, duration_s: 1}
"""


@pytest.mark.slow
def test_http_through_sidecars_is_parsed_at_l7_and_through_ztunnel_stays_l4(tmp_path):
    rows, _ = run_scenario_text(tmp_path, SCENARIO)
    p50 = rows[rows.metric == "http_latency_p50"].set_index(["strategy", "sidecar", "direction"])
    assert (p50.status == "ok").all() or set(p50[p50.status != "ok"].index) <= {
        ("masquerade", "ambient+meshed", "ingress")
    }  # masquerade's meshed ingress under ambient fails (issue 26)
    assert (p50.offered_rps == 300).all()
    for (strategy, sidecar, direction), row in p50[p50.status == "ok"].iterrows():
        if sidecar == "none":
            assert row.path == "no-sidecar" and pd.isna(row.proxy_http_requests)
            continue
        if sidecar.startswith("envoy-redirect"):
            # every request parsed and routed by the pod's sidecar's HTTP connection manager
            assert row.proxy_http_requests >= 300, (strategy, sidecar, direction, row.proxy_http_requests)
        else:
            assert pd.isna(row.proxy_http_requests)  # ztunnel is L4: no HTTP connection manager
        if not (strategy == "masquerade" and sidecar == "ambient" and direction == "ingress"):
            assert row.path == "through-mesh", (strategy, sidecar, direction, row.path)
        if sidecar.endswith("+meshed"):
            assert row.mtls_bytes > 0 and "spiffe://" in row.peer_identity
    costs = rows[rows.metric == "proxy_vcpu_per_1000_rps"]
    assert set(costs.sidecar) == {"envoy-redirect", "envoy-redirect+meshed", "ambient", "ambient+meshed"}
    assert (costs.value >= 0).all()
    peer = rows[rows.metric == "peer_proxy_vcpu_per_1000_rps"]
    assert set(peer.sidecar) == {"envoy-redirect+meshed", "ambient+meshed"}


H2_SCENARIO = """
name: h2-test
runtime: netns
guest: netns
strategies: [direct]
sidecars: [envoy-redirect, ambient]
peers: [outside, meshed]
design: rounds
repetitions: 1
tests:
  - {kind: http, http_version: "2", rate_rps: 300, duration_s: 1}
  - {kind: http, http_version: "2", grpc: true, rate_rps: 300, duration_s: 1}
"""


@pytest.mark.slow
def test_http2_and_grpc_through_sidecars_reach_an_http2_only_server(tmp_path):
    """vmnb-h2's server speaks only HTTP/2 (prior knowledge): every answered request proves the sidecars' clusters
    for the grpc-echo port spoke HTTP/2 upstream, as Istio's do for gRPC ports; each was parsed at L7."""
    rows, _ = run_scenario_text(tmp_path, H2_SCENARIO)
    p50 = rows[rows.metric == "http_latency_p50"]
    assert set(p50.test) == {"h2@300", "grpc@300"}
    assert (p50.status == "ok").all(), p50[p50.status != "ok"][["sidecar", "test", "direction", "reason"]]
    assert (p50.path == "through-mesh").all()
    sidecar_rows = p50[p50.sidecar.str.startswith("envoy-redirect")]
    assert len(sidecar_rows) == 8 and (sidecar_rows.proxy_http_requests >= 300).all()
    assert p50[p50.sidecar.str.startswith("ambient")].proxy_http_requests.isna().all()
