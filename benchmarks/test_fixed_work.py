"""Fixed work through each strategy, timed by pytest-benchmark, so its own tooling gates regressions:

    pytest benchmarks/test_fixed_work.py --benchmark-autosave
    pytest-benchmark compare
    pytest benchmarks/test_fixed_work.py --benchmark-compare --benchmark-compare-fail=median:25%

A micro-benchmark for working on one strategy's speed by hand; it does not gate: absolute timings from another
sitting swing by more than any threshold on 2 shared cores (`make gate` judges within-run ratios to direct
instead, harness/analysis/gate.py). The pytest-benchmark baseline that used to live in benchmarks/baseline/
is gone for that reason. Work: a transfer of TRANSFER_MIB
through the strategy (iperf3 -n, peer -> VM) and ROUND_TRIPS request/response exchanges on one connection.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.guests.choice import driver_for  # noqa: E402
from harness.guests.spec import GuestSpec  # noqa: E402
from harness.lab.session import LabSession  # noqa: E402
from harness.lab.vocabulary import Direction  # noqa: E402
from strategies import STRATEGIES, strategy_class  # noqa: E402
from strategies.base import Services  # noqa: E402

TRANSFER_MIB = 1024
ROUND_TRIPS = 5000
IPERF_PORT, RR_PORT = 5201, 11113


@pytest.fixture(scope="module", params=list(STRATEGIES))
def path(request):
    """A bed with the strategy set up on the netns guest and a keep-alive vmnb-crr server in the VM."""
    with LabSession() as lab, lab.bed() as bed:
        strategy = strategy_class(request.param)(services=Services(tcp_ports=(IPERF_PORT, RR_PORT)))
        attachment = strategy.setup(bed, driver_for(GuestSpec(), f"gate-{request.param}"))
        ends = attachment.ends(Direction.INGRESS)
        rr = ends.server.start(
            [ends.server.binary("vmnb-crr"), "server", "--port", str(RR_PORT), "--keepalive"],
            name=f"{bed.run_id}-rr-server",
        )
        ends.server.wait_listening(rr, RR_PORT)
        yield ends


def transfer(ends) -> None:
    server = ends.server.start(["iperf3", "-s", "-1", "-p", str(IPERF_PORT)], name="gate-iperf3-server")
    try:
        ends.server.wait_listening(server, IPERF_PORT)
        done = ends.client.run(
            ["iperf3", "-c", ends.target, "-p", str(IPERF_PORT), "-n", f"{TRANSFER_MIB}M", "--json"],
            name="gate-iperf3-client",
            timeout=120,
        )
        result = json.loads(done.stdout)
        assert not result.get("error"), result.get("error")
        # iperf3 -n stops the test when the sender has written N bytes; the receiver's tally can trail by the
        # bytes still in flight at that instant (measured: up to ~3%).
        assert result["end"]["sum_sent"]["bytes"] >= TRANSFER_MIB * 2**20
        assert result["end"]["sum_received"]["bytes"] >= TRANSFER_MIB * 2**20 * 0.9
    finally:
        ends.server.stop(server)


def round_trips(ends) -> None:
    argv = [
        ends.client.binary("vmnb-crr"),
        "client",
        "--target",
        ends.target,
        "--port",
        str(RR_PORT),
        "--count",
        str(ROUND_TRIPS),
    ]
    done = ends.client.run(argv, name="gate-rr-client", timeout=120)
    result = json.loads(done.stdout)
    assert result.get("round_trips") == ROUND_TRIPS, result


def test_transfer(benchmark, path):
    benchmark.group = f"transfer {TRANSFER_MIB} MiB"
    benchmark.pedantic(transfer, args=(path,), rounds=7, iterations=1, warmup_rounds=1)


def test_round_trips(benchmark, path):
    benchmark.group = f"{ROUND_TRIPS} round trips"
    benchmark.pedantic(round_trips, args=(path,), rounds=7, iterations=1, warmup_rounds=1)
