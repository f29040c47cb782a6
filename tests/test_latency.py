"""Latency, connection rate, UDP loss and CPU cost: real sockperf, iperf3 -u and the CRR client through
real strategies, plus the arithmetic that turns samples into percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.analysis.results import RunWriter, Sample
from harness.analysis.summary import latency_percentiles
from harness.kinds.latency import measure_crr, measure_rr, parse_full_log
from harness.kinds.measure import Cell, run_test
from harness.kinds.request_response import ConnectRequestResponse, RequestResponse
from harness.kinds.throughput import TcpThroughput, UdpThroughput
from strategies import strategy_class
from strategies.base import Services
from tests.conftest import ends


def full_log(rows: list[tuple[int, float, float]]) -> str:
    body = "\n".join(f"{i}, {tx:.9f}, {rx:.9f}, {(rx - tx) * 1e6:.3f}" for i, tx, rx in rows)
    return "sockperf: summary...\npacket, txTime(sec), rxTime(sec), rtt(usec)\n" + body + "\n-----\n"


def test_open_loop_counts_from_the_scheduled_send():
    # 1000 req/s; request 2 stalls 5 ms, so requests 3 and 4 are sent late. Closed-loop RTTs hide it.
    rows = [(0, 1.000, 1.0001), (1, 1.001, 1.0011), (2, 1.002, 1.0071), (3, 1.0071, 1.0072), (4, 1.0072, 1.0073)]
    closed = parse_full_log(full_log(rows), rate_per_s=None)
    opened = parse_full_log(full_log(rows), rate_per_s=1000)
    assert closed == pytest.approx([100, 100, 5100, 100, 100], abs=1)
    assert opened == pytest.approx([100, 100, 5100, 4200, 3300], abs=1)
    assert (opened >= closed - 1e-6).all()


def test_percentiles_come_from_merged_samples():
    rep1 = pd.DataFrame({"rtt_us": np.full(99, 10.0)})
    rep2 = pd.DataFrame({"rtt_us": np.array([1000.0])})
    merged = pd.concat([rep1, rep2]).assign(strategy="s", sidecar="none", test="rr", direction="ingress")
    p = latency_percentiles(merged).iloc[0]
    assert p["p50"] == 10 and p["max"] == 1000 and p["samples"] == 100
    # Averaging per-repetition p50s would have said 505: the merged distribution says 10.


@pytest.fixture
def cell(bed, netns_guest, tmp_path):
    def make(strategy: str, services: Services) -> Cell:
        attachment = strategy_class(strategy)(services=services).setup(bed, netns_guest)
        writer = RunWriter(tmp_path / "results", bed.run_id)
        base = Sample(strategy=strategy, sidecar="none", repetition=1, scenario="t")
        return Cell(bed, writer, attachment, None, base)

    return make


def by_metric(rows: list[Sample]) -> dict[str, Sample]:
    return {r.metric: r for r in rows}


@pytest.mark.parametrize("strategy", ["direct", "masquerade"])
def test_rr_crr_udp_rows_have_sane_values_and_units(cell, strategy):
    c = cell(strategy, Services(tcp_ports=(11111, 11112, 5201), udp_ports=(11111, 5201)))
    for test in (
        RequestResponse(kind="rr", protocol="tcp", duration_s=1),
        RequestResponse(kind="rr", protocol="udp", duration_s=1),
    ):
        rows = by_metric(run_test(test, "ingress", c))
        assert rows["rtt_p50"].status == "ok", rows["rtt_p50"].reason
        assert rows["rtt_p50"].unit == "us" and 1 < rows["rtt_p50"].value < 1e6
        assert rows["rtt_p99"].value >= rows["rtt_p50"].value
        assert rows["rr_rate"].unit == "req/s" and rows["rr_rate"].value > 100
        assert rows["cpu_per_10k_req"].unit == "s" and rows["cpu_per_10k_req"].value >= 0
    crr = by_metric(run_test(ConnectRequestResponse(kind="crr", duration_s=1), "egress", c))
    assert crr["crr_rate"].status == "ok", crr["crr_rate"].reason
    assert crr["crr_rate"].unit == "conn/s" and crr["crr_rate"].value > 10
    assert crr["crr_latency_p50"].unit == "us" and crr["crr_latency_p50"].value > 1
    udp = by_metric(run_test(UdpThroughput(kind="udp_throughput", rate_mbit=100, duration_s=1), "egress", c))
    assert udp["udp_goodput"].status == "ok", udp["udp_goodput"].reason
    assert 0 < udp["udp_goodput"].value <= 0.11  # Gbit/s, offered 100 Mbit/s
    assert 0 <= udp["udp_loss"].value <= 100 and udp["udp_loss"].unit == "%"
    assert len(c.writer.latency) == 3  # two RR runs and one CRR run kept every sample


def test_cpu_cost_of_the_splice_proxy(cell):
    c = cell("nat-proxy", Services(tcp_ports=(5201,)))
    rows = by_metric(run_test(TcpThroughput(kind="tcp_throughput", duration_s=1, omit_s=0), "ingress", c))
    assert rows["throughput"].status == "ok"
    assert rows["cpu_process"].value > 0  # the proxy process worked...
    assert rows["cpu_per_gb"].unit == "s/GB" and rows["cpu_per_gb"].value > 0
    assert rows["userspace_bytes_per_byte"].value < 0.01  # ...but splice copied nothing into it


def test_udp_ingress_through_nat_proxy_fails_with_a_reason(cell):
    """The seed: nat-proxy supports ingress TCP only. A UDP server that never sees the requests gives a
    failed row with the reason, not a hang."""
    c = cell("nat-proxy", Services(tcp_ports=(5201,), udp_ports=(11111,)))
    rows = run_test(RequestResponse(kind="rr", protocol="udp", duration_s=1), "ingress", c)
    assert rows[0].status == "failed" and rows[0].reason == "no replies"


def test_unreachable_rr_server_fails_fast(bed):
    common = {"port": 11111, "protocol": "tcp", "duration_s": 1, "rate_per_s": None, "message_bytes": 64}
    assert measure_rr(ends(bed, bed.pod, bed.peer, bed.plan.pod_ip), label=f"{bed.run_id}-x", **common).status == "ok"
    s = measure_rr(ends(bed, bed.pod, bed.peer, "198.18.2.99"), label=f"{bed.run_id}-y", **common)
    assert s.status == "failed" and s.reason
    # CRR whose every connect times out: a failed sample with the reason, never an empty "ok".
    crr = measure_crr(
        ends(bed, bed.pod, bed.peer, "198.18.2.99"), port=11112, duration_s=1, message_bytes=64, label=f"{bed.run_id}-z"
    )
    assert crr.status == "failed" and crr.reason in ("connect timed out", "no route")


def test_vmnb_rr_measures_both_loops_and_says_why_a_dead_path_failed(bed):
    """vmnb-rr (rr over IPv6, where sockperf 3.7 cannot go) through the bed's routed path: TCP closed loop and UDP
    open loop give latencies and the open loop holds its rate; a dead address fails with the reason."""
    from harness.kinds.latency import measure_vmnb_rr

    live = ends(bed, bed.pod, bed.peer, bed.plan.pod_ip)
    common = {"port": 11111, "duration_s": 1, "message_bytes": 64}
    tcp = measure_vmnb_rr(live, protocol="tcp", rate_per_s=None, label=f"{bed.run_id}-t", **common)
    assert tcp.status == "ok" and tcp.rtt_us.min() > 0 and tcp.rate_per_s > 100
    udp = measure_vmnb_rr(live, protocol="udp", rate_per_s=500, label=f"{bed.run_id}-u", **common)
    assert udp.status == "ok" and 400 < udp.rate_per_s < 520 and udp.extra["lost"] == 0
    dead = ends(bed, bed.pod, bed.peer, "198.18.2.99")
    s = measure_vmnb_rr(dead, protocol="tcp", rate_per_s=None, label=f"{bed.run_id}-d", **common)
    assert s.status == "failed" and s.reason in ("connect timed out", "no route"), s.reason
