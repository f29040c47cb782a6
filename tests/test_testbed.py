"""The bed comes up with real namespaces and routes, carries traffic, and goes down leaving nothing."""

from __future__ import annotations

from harness.kinds.throughput import measure_tcp_throughput
from harness.lab.netns import list_namespaces
from tests.conftest import assert_clean, ends


def test_bed_builds_routes_and_tears_down_completely(lab):
    run_id, state = lab.run_id, lab.state
    bed = lab.new_bed().build()
    try:
        names = {ns.name for ns in bed.namespaces.values()}
        assert names == {f"vmnb-{run_id}-{role}" for role in ("peer", "node", "pod")}
        assert names <= set(list_namespaces())
        assert bed.pod.addresses("eth0") == ["198.18.2.2/24"]
        assert bed.peer.addresses("eth0") == ["198.18.1.2/24"]
        # The peer reaches the pod through the node's routing: real traffic, one second of it.
        sample = measure_tcp_throughput(
            ends(bed, bed.pod, bed.peer, bed.plan.pod_ip),
            port=5201,
            duration_s=1,
            omit_s=0,
            streams=1,
            label=f"{run_id}-bed",
        )
        assert sample.status == "ok", sample.reason
        assert sample.bits_per_second > 0
        # A process that lives as long as the bed is ended with it.
        sleeper = bed.start_process(["sleep", "300"], name="sleeper", ns=bed.pod)
        assert sleeper.alive()
    finally:
        seconds = bed.close()
    assert seconds >= 0
    assert not sleeper.alive()
    assert state.namespaces == [] and state.processes == []
    assert_clean(run_id)


def test_failed_build_leaves_nothing(lab, monkeypatch):

    def broken_route(self, *a, **k):
        raise OSError("planted failure")

    from harness.lab import netns as netns_mod

    monkeypatch.setattr(netns_mod.Namespace, "add_route", broken_route)
    try:
        with lab.bed():
            raise AssertionError("build should have failed")
    except OSError as e:
        assert "planted failure" in str(e)
    assert_clean(lab.run_id)
