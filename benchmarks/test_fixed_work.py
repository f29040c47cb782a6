"""Fixed work through each strategy, timed by pytest-benchmark, so its own tooling gates regressions:

    pytest benchmarks/test_fixed_work.py --benchmark-autosave
    pytest-benchmark compare
    pytest benchmarks/test_fixed_work.py --benchmark-compare --benchmark-compare-fail=median:25%

`make gate` runs it against the baseline stored in benchmarks/baseline/. Work: a transfer of TRANSFER_MIB
through the strategy (iperf3 -n, peer -> VM) and ROUND_TRIPS request/response exchanges on one connection.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.guest_image import compile_crr  # noqa: E402
from harness.listening import wait_listening  # noqa: E402
from harness.names import new_run_id  # noqa: E402
from harness.processes import ProcessTracker  # noqa: E402
from harness.state import RunState  # noqa: E402
from harness.testbed import TestBed  # noqa: E402
from strategies import STRATEGIES, strategy_class  # noqa: E402
from strategies.base import Services  # noqa: E402

TRANSFER_MIB = 1024
ROUND_TRIPS = 5000
IPERF_PORT, RR_PORT = 5201, 11113


@pytest.fixture(scope="module", params=list(STRATEGIES))
def path(request):
    run_id = new_run_id()
    state = RunState(run_id)
    state.save()
    with tempfile.TemporaryDirectory() as logs:
        tracker = ProcessTracker(state, Path(logs))
        bed = TestBed(run_id, state, tracker).build()
        try:
            strategy = strategy_class(request.param)(services=Services(tcp_ports=(IPERF_PORT, RR_PORT)))
            attachment = strategy.setup(bed)
            rr = tracker.start([str(compile_crr()), "server", "--port", str(RR_PORT), "--keepalive"],
                               name=f"{run_id}-rr-server", netns=attachment.service_ns.name)  # fmt: skip
            wait_listening(rr, RR_PORT)
            yield tracker, bed, attachment
        finally:
            bed.close()
            tracker.stop_all()
            state.remove_file()


def transfer(tracker, bed, attachment) -> None:
    server = tracker.start(["iperf3", "-s", "-1", "-p", str(IPERF_PORT)], name=f"{bed.run_id}-srv",
                           netns=attachment.service_ns.name)  # fmt: skip
    try:
        wait_listening(server, IPERF_PORT)
        done = tracker.run(["iperf3", "-c", attachment.ingress_address, "-p", str(IPERF_PORT), "-n", f"{TRANSFER_MIB}M",
                            "--json"], name=f"{bed.run_id}-cli", netns=bed.peer.name, timeout=120)  # fmt: skip
        result = json.loads(done.stdout)
        assert not result.get("error"), result.get("error")
        # iperf3 -n stops the test when the sender has written N bytes; the receiver's tally can trail by the
        # bytes still in flight at that instant (measured: up to ~3%).
        assert result["end"]["sum_sent"]["bytes"] >= TRANSFER_MIB * 2**20
        assert result["end"]["sum_received"]["bytes"] >= TRANSFER_MIB * 2**20 * 0.9
    finally:
        tracker.stop(server)


def round_trips(tracker, bed, attachment) -> None:
    argv = [str(compile_crr()), "client", "--target", attachment.ingress_address,
            "--port", str(RR_PORT), "--count", str(ROUND_TRIPS)]  # fmt: skip
    done = tracker.run(argv, name=f"{bed.run_id}-rr", netns=bed.peer.name, timeout=120)
    result = json.loads(done.stdout)
    assert result.get("round_trips") == ROUND_TRIPS, result


def test_transfer(benchmark, path):
    benchmark.group = f"transfer {TRANSFER_MIB} MiB"
    benchmark.pedantic(transfer, args=path, rounds=7, iterations=1, warmup_rounds=1)


def test_round_trips(benchmark, path):
    benchmark.group = f"{ROUND_TRIPS} round trips"
    benchmark.pedantic(round_trips, args=path, rounds=7, iterations=1, warmup_rounds=1)
