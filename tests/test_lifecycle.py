"""A run interrupted by SIGINT or SIGTERM cleans up after itself; `vmnetbench clean` removes what a SIGKILLed
run left. Real runs of the CLI, real namespaces and real iperf3 processes."""

from __future__ import annotations

import json
import signal

import pytest

from harness.lab.names import new_run_id
from harness.lab.netns import list_namespaces
from harness.lab.paths import STATE_DIR
from tests.conftest import assert_clean, cli, leftovers, wait_for

LONG = """
name: long
strategies: [masquerade]
repetitions: 1
tests:
  - kind: tcp_throughput
    directions: [ingress]
    duration_s: 60
    omit_s: 0
"""


def start_long_run(tmp_path):
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG)
    run_id = new_run_id()
    proc = cli("run", str(scenario), "--results", str(tmp_path / "results"), "--run-id", run_id)

    def iperf_client_running():
        path = STATE_DIR / f"{run_id}.json"
        if not path.exists():
            return False
        state = json.loads(path.read_text())
        return any("-c" in p["argv"] for p in state.get("processes", []))

    try:
        wait_for(iperf_client_running, 60, "the iperf3 client of the run to start")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[0]) from None
    return proc, run_id


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_test_cleans_up(tmp_path, sig, code):
    proc, run_id = start_long_run(tmp_path)
    assert any(n.startswith(f"vmnb-{run_id}-") for n in list_namespaces())
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert "interrupted" in out
    assert_clean(run_id)
    assert not (STATE_DIR / f"{run_id}.json").exists()
    run_json = json.loads((tmp_path / "results" / run_id / "run.json").read_text())
    assert run_json["status"] == "interrupted"


@pytest.mark.slow
def test_clean_removes_what_a_sigkilled_run_left(tmp_path):
    proc, run_id = start_long_run(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    left = leftovers(run_id)
    assert left["namespaces"] and left["processes"], left
    # Another run's clean leaves this one alone while its harness lives; this one's harness is dead.
    done = cli("clean")
    out, _ = done.communicate(timeout=120)
    assert done.returncode == 0, out
    assert run_id in out
    assert_clean(run_id)
    assert not (STATE_DIR / f"{run_id}.json").exists()
