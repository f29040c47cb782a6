"""Privilege probe: does a strategy's in-pod setup, and the processes it starts, still work when the pod's
capabilities are reduced? Found by trying: the bed (the node's and CNI's part) is built as root, then the
strategy's setup runs in a child process whose capability bounding set lacks the capabilities under test
(setpriv), followed by real traffic both ways from that child.

    python -m harness.privilege child --run-id ID --strategy NAME [--guest qemu --accel tcg|kvm]
        (internal: the reduced-capability side)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from pathlib import Path

from harness.guest import GuestSpec
from harness.latency import measure_rr
from harness.names import new_run_id
from harness.processes import ProcessTracker
from harness.qemu import QemuOptions, kvm_acceleration, tcg_acceleration
from harness.state import RunState
from harness.testbed import TestBed
from strategies import strategy_class
from strategies.base import Services

TRIALS: list[tuple[str, ...]] = [(), ("net_admin",), ("net_raw",), ("net_admin", "net_raw")]
PORT = 11111


def child(run_id: str, strategy: str, guest: GuestSpec | None = None) -> dict:
    state = RunState(run_id, suffix="-priv")
    state.save()
    result: dict = {"setup": "failed"}
    with tempfile.TemporaryDirectory() as logs:
        tracker = ProcessTracker(state, Path(logs))
        bed = TestBed.attach(run_id, state, tracker, guest=guest)
        try:
            attachment = strategy_class(strategy)(services=Services(tcp_ports=(PORT,))).setup(bed)
            result["setup"] = "ok"
            for direction in ("ingress", "egress"):
                if direction == "ingress":
                    ends = (attachment.service_ns, bed.peer, attachment.ingress_address)
                else:
                    ends = (bed.peer, attachment.client_ns, bed.plan.peer_ip)
                s = measure_rr(tracker, server_ns=ends[0], client_ns=ends[1], target=ends[2], port=PORT,
                               protocol="tcp", duration_s=1, rate_per_s=None, message_bytes=64,
                               label=f"{run_id}-priv-{direction}")  # fmt: skip
                result[direction] = s.status if s.status == "ok" else f"failed: {s.reason}"
        except Exception as e:  # noqa: BLE001 - the point of the probe is to see what breaks
            ours = [
                f
                for f in traceback.extract_tb(e.__traceback__)
                if "/harness/" in f.filename or "/strategies/" in f.filename
            ]
            where = f" (in {ours[-1].name}, {Path(ours[-1].filename).name}:{ours[-1].lineno})" if ours else ""
            result["error"] = f"{type(e).__name__}: {e}{where}"
        finally:
            try:
                bed.close()
            finally:
                tracker.stop_all()
                state.remove_file()
    return result


def trial(strategy: str, dropped: tuple[str, ...], tracker: ProcessTracker, guest: GuestSpec | None = None) -> dict:
    """Build a bed as root, run the strategy's setup and traffic with `dropped` capabilities removed."""
    run_id = new_run_id()
    state = RunState(run_id)
    state.save()
    bed = TestBed(run_id, state, tracker).build()
    try:
        argv = [sys.executable, "-m", "harness.privilege", "child", "--run-id", run_id, "--strategy", strategy]
        if guest is not None and guest.for_strategy(strategy_class(strategy).has_vm).kind == "qemu":
            argv += ["--guest", "qemu", "--accel", guest.acceleration.accel if guest.acceleration else "tcg"]
        if dropped:
            caps = ",".join(f"-{c}" for c in dropped)
            argv = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]
        done = tracker.run(argv, name=f"{run_id}-privilege", timeout=90 if guest is None else 240)
        try:
            outcome = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            outcome = {"setup": "failed", "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    finally:
        bed.close()
        state.remove_file()
    works = outcome.get("setup") == "ok" and outcome.get("ingress") == "ok" and outcome.get("egress") == "ok"
    return {"dropped": list(dropped), "works": works, **outcome}


def probe_privilege(strategy: str, tracker: ProcessTracker, guest: GuestSpec | None = None) -> dict:
    """Trials with each capability set; `needs` lists the capabilities without which it stops working."""
    trials = [trial(strategy, dropped, tracker, guest) for dropped in TRIALS]
    baseline = trials[0]["works"]
    needs = sorted({c for t in trials[1:] if not t["works"] and len(t["dropped"]) == 1 for c in t["dropped"]})
    return {"baseline_works": baseline, "needs": needs, "works_without_net_caps": trials[-1]["works"],
            "trials": trials}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.privilege")
    sub = parser.add_subparsers(dest="role", required=True)
    c = sub.add_parser("child")
    c.add_argument("--run-id", required=True)
    c.add_argument("--strategy", required=True)
    c.add_argument("--guest", choices=["netns", "qemu"], default="netns")
    c.add_argument("--accel", choices=["kvm", "tcg"], default="tcg", help="the parent's decision (no second probe)")
    args = parser.parse_args(argv)
    guest = None
    if args.guest == "qemu":
        accel = kvm_acceleration() if args.accel == "kvm" else tcg_acceleration("decided by the claims run")
        guest = GuestSpec("qemu", QemuOptions(), accel)
    print(json.dumps(child(args.run_id, args.strategy, guest)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
