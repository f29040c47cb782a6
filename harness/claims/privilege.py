"""Privilege probe: does a strategy's in-pod setup, and the processes it starts, still work when the pod's
capabilities are reduced? Found by trying: the bed (the node's and CNI's part) is built as root by the claims
run, then the strategy's setup runs in a child process whose capability bounding set lacks the capabilities
under test (setpriv), followed by real traffic both ways from that child. The child is a helper session of
the same run (its own ledger, `<run id>-priv.json`), so `clean` finds whatever it leaves.

    python -m harness.claims.privilege child --run-id ID --strategy NAME [--guest qemu --accel tcg|kvm]
        (internal: the reduced-capability side)

On the docker runtime the question is the other design's (a node agent does the privileged setup, as
KubeVirt's virt-handler): what the pod's compute container needs, from trials with real `cap_add`/`cap_drop`,
Docker's default seccomp profile, and the devices passed or not (probe_container_privilege).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from harness.claims.facts import PrivilegeFacts, PrivilegeTrial
from harness.guests.choice import driver_for
from harness.guests.spec import GuestSpec, QemuOptions, kvm_acceleration, tcg_acceleration
from harness.kinds.latency import measure_rr
from harness.lab.session import LabSession
from harness.lab.vocabulary import Direction, GuestKind
from strategies import strategy_class
from strategies.base import Services

TRIALS: list[tuple[str, ...]] = [(), ("net_admin",), ("net_raw",), ("net_admin", "net_raw")]
PORT = 11111


def set_up_and_round_trip(
    bed, strategy: str, guest: GuestSpec, run_id: str, result: dict, *, in_setup_context: bool = False
) -> None:
    """The trial itself: the strategy set up on `bed` (inside the runtime's setup context when asked), then one
    second of TCP round trips each way; `result` gets `setup` and one status per direction."""
    binding = strategy_class(strategy)(services=Services(tcp_ports=(PORT,)))
    if in_setup_context:
        with bed.strategy_setup():
            attachment = binding.setup(bed, driver_for(guest, f"priv-{strategy}"))
    else:
        attachment = binding.setup(bed, driver_for(guest, f"priv-{strategy}"))
    result["setup"] = "ok"
    for direction in Direction:
        s = measure_rr(
            attachment.ends(direction),
            port=PORT,
            protocol="tcp",
            duration_s=1,
            rate_per_s=None,
            message_bytes=64,
            label=f"{run_id}-priv-{direction}",
        )
        result[str(direction)] = s.status if s.status == "ok" else f"failed: {s.reason}"


def child(run_id: str, strategy: str, guest: GuestSpec) -> dict:
    result: dict = {"setup": "failed"}
    with LabSession(run_id, helper="priv") as lab:
        bed = lab.attach_bed()
        try:
            set_up_and_round_trip(bed, strategy, guest, run_id, result)
        except Exception as e:  # noqa: BLE001 - the point of the probe is to see what breaks
            ours = [
                f
                for f in traceback.extract_tb(e.__traceback__)
                if "/harness/" in f.filename or "/strategies/" in f.filename
            ]
            where = f" (in {ours[-1].name}, {Path(ours[-1].filename).name}:{ours[-1].lineno})" if ours else ""
            result["error"] = f"{type(e).__name__}: {e}{where}"
        finally:
            bed.close()
    return result


def trial(lab: LabSession, strategy: str, dropped: tuple[str, ...], guest: GuestSpec) -> PrivilegeTrial:
    """Build a bed as root, run the strategy's setup and traffic with `dropped` capabilities removed."""
    with lab.bed():
        argv = [
            sys.executable,
            "-m",
            "harness.claims.privilege",
            "child",
            "--run-id",
            lab.run_id,
            "--strategy",
            strategy,
        ]
        qemu = guest.for_strategy(strategy_class(strategy).has_vm).kind == GuestKind.QEMU
        if qemu:
            argv += ["--guest", "qemu", "--accel", guest.acceleration.accel if guest.acceleration else "tcg"]
        if dropped:
            caps = ",".join(f"-{c}" for c in dropped)
            argv = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]
        done = lab.tracker.run(argv, name=f"{lab.run_id}-privilege", timeout=240 if qemu else 90)
        try:
            outcome = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            outcome = {"setup": "failed", "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    works = outcome.get("setup") == "ok" and all(outcome.get(str(d)) == "ok" for d in Direction)
    return PrivilegeTrial(dropped=list(dropped), works=works, **outcome)


def probe_privilege(lab: LabSession, strategy: str, guest: GuestSpec | None = None) -> PrivilegeFacts:
    """Trials with each capability set; `needs` lists the capabilities without which it stops working."""
    trials = [trial(lab, strategy, dropped, guest or GuestSpec()) for dropped in TRIALS]
    needs = sorted({c for t in trials[1:] if not t.works and len(t.dropped) == 1 for c in t.dropped})
    return PrivilegeFacts(
        baseline_works=trials[0].works, needs=needs, works_without_net_caps=trials[-1].works, trials=trials
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.claims.privilege")
    sub = parser.add_subparsers(dest="role", required=True)
    c = sub.add_parser("child")
    c.add_argument("--run-id", required=True)
    c.add_argument("--strategy", required=True)
    c.add_argument("--guest", choices=[str(k) for k in GuestKind], default="netns")
    c.add_argument("--accel", choices=["kvm", "tcg"], default="tcg", help="the parent's decision (no second probe)")
    args = parser.parse_args(argv)
    guest = GuestSpec()
    if args.guest == GuestKind.QEMU:
        accel = kvm_acceleration() if args.accel == "kvm" else tcg_acceleration("decided by the claims run")
        guest = GuestSpec(GuestKind.QEMU, QemuOptions(), accel)
    print(json.dumps(child(args.run_id, args.strategy, guest)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def container_trial(lab: LabSession, strategy: str, label: str, variant, guest: GuestSpec) -> PrivilegeTrial:
    """The node's part (bed, rules, taps) as root, the pod's part (the strategy's processes, QEMU, the servers
    of a plain pod) in the pod's containers with `variant`'s privileges (a runtime from its privilege_trials)."""
    runtime = lab.pod_runtime
    lab.pod_runtime = variant
    result: dict = {"setup": "failed"}
    try:
        with lab.bed() as bed:
            try:
                set_up_and_round_trip(bed, strategy, guest, lab.run_id, result, in_setup_context=True)
            except Exception as e:  # noqa: BLE001 - the point of the probe is to see what breaks
                refusal = variant.explain_refusal(bed, str(e))
                result["error"] = f"{refusal + '; ' if refusal else ''}{type(e).__name__}: {e}"
    finally:
        lab.pod_runtime = runtime
    works = result.get("setup") == "ok" and all(result.get(str(d)) == "ok" for d in Direction)
    return PrivilegeTrial(dropped=[label], works=works, **result)


def probe_container_privilege(lab: LabSession, strategy: str, guest: GuestSpec | None = None) -> PrivilegeFacts:
    """On a runtime with a container boundary (the docker runtime; a node agent does the privileged setup, as
    virt-handler): what compute needs, from the runtime's own privilege_trials. `needs`: capabilities that must
    be added to the runtime's defaults ("net_admin" when the default fails and the network capability added
    works); `works_without_net_caps`: works with every capability dropped."""
    spec = (guest or GuestSpec()).for_strategy(strategy_class(strategy).has_vm)
    trials = [
        container_trial(lab, strategy, label, variant, spec) for label, variant in lab.pod_runtime.privilege_trials()
    ]
    base_works, net_admin_works = trials[0].works, trials[1].works
    needs = ["net_admin"] if not base_works and net_admin_works else []
    return PrivilegeFacts(baseline_works=base_works, needs=needs, works_without_net_caps=trials[3].works, trials=trials)
