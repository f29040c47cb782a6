"""A broken path gives a failed sample with a one-line reason, never a hang or a silent zero."""

from __future__ import annotations

import json

from harness.kinds.throughput import failure_reason, measure_tcp_throughput, parse_client_json
from tests.conftest import ends


def test_connection_refused_is_reported(bed):
    # The server listens on the peer; the client dials the pod, where nothing listens.
    sample = measure_tcp_throughput(
        ends(bed, bed.peer, bed.peer, bed.plan.pod_ip),
        port=5201,
        duration_s=1,
        omit_s=0,
        streams=1,
        label=f"{bed.run_id}-refused",
    )
    assert sample.status == "failed"
    assert sample.reason == "connection refused"
    assert sample.bits_per_second is None


def test_unreachable_host_is_reported(bed):
    sample = measure_tcp_throughput(
        ends(bed, bed.pod, bed.peer, "198.18.2.99"),
        port=5201,
        duration_s=1,
        omit_s=0,
        streams=1,
        label=f"{bed.run_id}-noroute",
    )
    assert sample.status == "failed"
    assert sample.reason in ("no route", "connect timed out")


def test_parse_client_json_fields():
    data = {
        "end": {
            "sum_sent": {"bytes": 10, "bits_per_second": 8e9, "retransmits": 3},
            "sum_received": {"bytes": 10, "seconds": 1.0, "bits_per_second": 7.5e9},
            "cpu_utilization_percent": {"host_total": 40.0, "remote_total": 55.0},
        }
    }
    s = parse_client_json(json.dumps(data))
    assert (s.status, s.bits_per_second, s.retransmits, s.cpu_client_pct, s.cpu_server_pct) == (
        "ok",
        7.5e9,
        3,
        40.0,
        55.0,
    )
    zero = parse_client_json(json.dumps({"end": {"sum_received": {"bits_per_second": 0}}}))
    assert zero.status == "failed" and zero.reason == "no bytes received"
    assert parse_client_json("").status == "failed"
    assert failure_reason("unable to connect to server: No route to host") == "no route"
