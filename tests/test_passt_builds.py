"""Today's passt next to Debian 12's (issue 15): the 2025 build from Debian's archive, KubeVirt's port
forwards, pasta without the loopback splice, the vhost-user binding, and the versions each row ran with."""

from __future__ import annotations

import json

import pytest

from harness.guests.driver import ISTIO_RESERVED_PORTS, NotSupported, PasstNet
from harness.tools.debian import PASST_2025, passt_build
from strategies.base import Services
from strategies.passt import Passt, PasstOptions
from strategies.passt_vhost_user import PasstVhostUser
from tests.conftest import run_scenario_text
from tests.test_strategies import transfer


def test_forwards_follow_kubevirts_rules():
    # No declared ports: everything, both protocols (virt-launcher's portForward without ranges).
    assert PasstNet((5201,), (5201,)).forwards() == ["-t", "all", "-u", "all"]
    # Declared: exactly those.
    assert PasstNet((5201, 11111), (5201,), declare_ports=True).forwards() == ["-t", "5201,11111", "-u", "5201"]
    # Istio: every TCP port but Envoy's reserved ones, and (with none declared) no UDP at all.
    tcp = ",".join(f"~{p}" for p in ISTIO_RESERVED_PORTS)
    assert PasstNet((5201,), (5201,), istio=True).forwards() == ["-t", tcp, "-u", "none"]
    assert PasstNet((5201,), (), istio=True, declare_ports=True).forwards() == ["-t", f"{tcp},5201", "-u", "none"]
    # What is passed: that set narrowed to the services' ports (pasta refuses `all`; passt's needs 131k fds).
    assert PasstNet((5201,), (5201,)).effective_forwards() == ["-t", "5201", "-u", "5201"]
    assert PasstNet((5201,), (5201,), istio=True).effective_forwards() == ["-t", "5201", "-u", "none"]


def test_the_2025_build_is_the_pinned_one_and_knows_its_new_options():
    build = passt_build("debian-13")
    assert PASST_2025 in (build.binary_dir / "VERSION").read_text() and PASST_2025 in build.version
    binary = (build.binary_dir / "passt").read_bytes()
    assert b"no-splice" in binary and b"vhost-user" in binary
    assert (build.binary_dir / "pasta").read_bytes() == binary  # one program, its mode taken from its name
    old = passt_build("debian-12")
    assert old.binary_dir is None and old.version.startswith("0.0~git2023") and not old.no_splice


@pytest.mark.parametrize("build", ["debian-12", "debian-13"])
def test_both_passt_builds_carry_tcp_on_the_netns_guest(bed, netns_guest, build):
    attachment = Passt(PasstOptions(build=build)).setup(bed, netns_guest)
    for direction in ("ingress", "egress"):
        sample = transfer(bed, attachment, direction)
        assert sample.status == "ok", (build, direction, sample.reason)
    pasta = next(p for p in bed.processes if p.name.endswith("pasta"))
    assert ("--no-splice" in pasta.argv) == (build == "debian-13")


def test_vhost_user_needs_a_vm(bed, netns_guest):
    with pytest.raises(NotSupported, match="needs guest: qemu"):
        PasstVhostUser().setup(bed, netns_guest)


@pytest.mark.slow
def test_rows_carry_the_versions_and_the_splice_caveat(tmp_path):
    df, _ = run_scenario_text(
        tmp_path,
        """
name: builds
strategies: [passt-2023, passt]
variants:
  passt-2023: {strategy: passt, options: {build: debian-12}}
sidecars: [envoy-redirect]
repetitions: 1
tests:
  - {kind: tcp_throughput, duration_s: 1, omit_s: 0, directions: [ingress]}
""",
    )
    rows = df[df.metric == "throughput"].set_index("strategy")
    old, new = (json.loads(rows.loc[name, "tools"]) for name in ("passt-2023", "passt"))
    assert old["pasta"].startswith("passt 0.0~git2023") and PASST_2025 in new["pasta"]
    assert "envoy" in old and old["iperf3"]
    assert rows.loc["passt-2023", "caveat"].startswith("not representative")
    assert rows.loc["passt", "caveat"] == ""


PEER_OF_FIRST_CONNECTION = (
    "import socket, sys\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(1)\n"
    "c, peer = s.accept(); print(peer[0], flush=True); c.recv(1)\n"
)


@pytest.mark.parametrize(("build", "loopback"), [("debian-12", True), ("debian-13", False)])
def test_with_envoy_the_2025_pasta_delivers_inbound_through_the_tap(bed, netns_guest, build, loopback):
    """Envoy's inbound passthrough connects from 127.0.0.6. Debian 12's pasta splices that into the guest's
    loopback (the guest sees a loopback peer, as no VM could); the 2025 build with --no-splice sends it through
    the tap like any other connection (the guest sees the pod's gateway, passt's mapped host address)."""
    import sys

    from harness.lab.waiting import wait_listening, wait_until
    from harness.pod.mesh import install_sidecar

    port = 5201
    install_sidecar(bed, "envoy-redirect", vm_interfaces=[])
    Passt(PasstOptions(build=build), services=Services(tcp_ports=(port,)), sidecar="envoy-redirect").setup(
        bed, netns_guest
    )
    server = bed.start_process(
        [sys.executable, "-c", PEER_OF_FIRST_CONNECTION, str(port)], name="peer-of", ns=bed.namespaces["vm"]
    )
    wait_listening(server, port)
    # more than a TLS record header: Istio's inbound tls_inspector waits for that much before it picks the
    # plaintext chain (a 2-byte line stalls in the listener filter until the client gives up)
    bed.peer.run(["bash", "-c", f"exec 3<>/dev/tcp/{bed.plan.pod_ip}/{port}; echo hello-vmnetbench >&3; sleep 0.5"])
    wait_until(lambda: server.log_path.read_text().strip(), timeout=10, what="the guest's server reporting its peer")
    peer = server.log_path.read_text().split()[0]
    assert peer.startswith("127.") == loopback, peer
