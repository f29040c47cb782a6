"""Issue 43, first measurement: a masquerade VM (the QEMU guest) live-migrated between two launcher pods on one
node while the peer keeps established connections to it. Not yet a test kind: this script establishes what the
`migration` kind will have to measure and which pieces the harness needs (a second launcher pod, QMP, the
switch-over at the node), on the real pieces.

As KubeVirt does it (kubevirt/kubevirt pkg/virt-handler migration proxy, pkg/virt-launcher; VEP 21 for passt):
the target launcher pod is wired with the same binding before the switch-over (masquerade: its own k6t-eth0
bridge, tap, KubeVirt's nft table for the target pod's address), QEMU on the target waits with `-incoming` and
the source migrates pre-copy (`migrate` over QMP); the stream goes through a unix socket, as virt-handler's
migration proxy hands it to QEMU in each pod (never the pod network). One host, TCG, no libvirt: the stream does
not cross a network, so migration time and downtime here are QEMU's and the guest's, not a link's.

The pod's address across the move:
- kept (OVN-Kubernetes user-defined networks, which passt's seamless migration needs): the target pod gets the
  source pod's IP; at the switch-over the node's route to it moves to the target pod's veth (`ip route replace
  IP/32 dev <target veth>`), as OVN moves the logical port, and the source pod's veth goes (the pod is deleted);
- changed (the default CNI): the target pod has a new IP; the source pod is deleted at the switch-over.

Flows through the binding, all started before the migration: a TCP request-response probe from the peer to the
VM every 5 ms on one connection (its largest gap is the downtime the peer sees; a reset or a stall is the
connection's fate), and an iperf3 stream each way (peer -> VM, VM -> peer) paced at 20 Mbit/s.

Run as root from the repository: `.venv/bin/python benchmarks/migration_masquerade.py [kept|changed ...]`.

Measured 2026-12-07 (QEMU 10.0.2 TCG, 512 MB guest, masquerade, no mesh; three runs: kept twice, changed once):

| address | migration (QEMU total / downtime) | probe's largest gap | probe connection | stream in | stream out |
|---|---|---|---|---|---|
| kept | 0.78 s / 79 ms | 0.226 s | survived | 75 MB in 30 s (all) | 75 MB in 30 s (all) |
| kept | 0.78 s / 82 ms | 0.219 s | survived | 75 MB in 30 s | 75 MB in 30 s |
| changed | 0.77 s / 74 ms | - | stalled (no reply for 30 s) | stalled | reset (broken pipe) |

With the address kept the target pod's conntrack has never seen the flows: their next packets (mid-stream)
create new entries (nf_conntrack_tcp_loose) and KubeVirt's DNAT/masquerade rules, which match the pod address
and ports, map them exactly as the source pod did. With a new address the peer's packets go to the deleted pod's
address (stall) and the VM's own flows leave masqueraded behind the new address, which the peer resets.
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import time
from pathlib import Path

import strategies  # noqa: F401  registers the bindings
from harness.guests.choice import driver_for
from harness.guests.qemu import vm as qemu_vm
from harness.guests.qemu.agent import GuestAgent
from harness.guests.spec import GuestSpec
from harness.lab.netns import veth
from harness.lab.rules import apply_nft
from harness.lab.session import LabSession
from harness.lab.vocabulary import GuestKind
from harness.lab.waiting import wait_until
from strategies.base import Services
from strategies.masquerade import BRIDGE, Masquerade

PROBE_PORT, IN_PORT, OUT_PORT = 7000, 5201, 5202
FLOW_S = 30
MIGRATE_AT_S = 8

_qmp_paths: list[Path] = []
_original_argv = qemu_vm.qemu_argv


def _argv_with_qmp(*args, **kwargs):  # the source QEMU gets a QMP socket (the harness runs QEMU with -monitor none)
    argv = _original_argv(*args, **kwargs)
    return [*argv, "-qmp", f"unix:{_qmp_paths[-1]},server=on,wait=off"]


qemu_vm.qemu_argv = _argv_with_qmp


class Qmp:
    def __init__(self, path: Path) -> None:
        wait_until(path.exists, timeout=30, what=f"QMP socket {path}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())  # greeting
        self.call("qmp_capabilities")

    def call(self, command: str, **arguments) -> dict:
        self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")
            return reply["return"]


PROBE = textwrap.dedent(
    """
    import json, socket, sys, time
    host, port, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(30)
    done, fate, t0 = [], "survived", time.monotonic()
    while time.monotonic() - t0 < seconds:
        sent = time.monotonic()
        try:
            s.sendall(b"x" * 64)
            got = b""
            while len(got) < 64:
                chunk = s.recv(64 - len(got))
                if not chunk:
                    raise ConnectionResetError("closed by the other end")
                got += chunk
        except socket.timeout:
            fate = "stalled (no reply for 30 s)"
            break
        except OSError as e:
            fate = f"reset ({e.strerror or e})"
            break
        done.append(time.monotonic() - t0)
        time.sleep(max(0.0, 0.005 - (time.monotonic() - sent)))
    gaps = [b - a for a, b in zip(done, done[1:])]
    worst = max(range(len(gaps)), key=gaps.__getitem__) if gaps else None
    json.dump({"fate": fate, "round_trips": len(done), "largest_gap_s": gaps[worst] if gaps else None,
               "gap_at_s": done[worst] if gaps else None, "last_reply_s": done[-1] if done else None}, open(out, "w"))
    """
)


def migrate(mode: str) -> dict:
    services = Services(tcp_ports=(PROBE_PORT, IN_PORT))
    spec = GuestSpec(kind=GuestKind.QEMU)
    with LabSession() as lab, lab.bed() as bed:
        runtime = bed.runtime_dir()
        _qmp_paths.append(runtime / "qmp-source.sock")
        strategy = Masquerade(None, services=services, sidecar="none")
        attachment = strategy.setup(bed, driver_for(spec, "source"))
        guest = attachment.service
        source_qemu = next(p for p in bed.processes if p.name.endswith("-qemu"))
        source_argv = list(source_qemu.argv)

        # the target launcher pod, wired as virt-handler wires a masquerade pod before the switch-over
        node, plan = bed.node, bed.plan
        target = bed.add_namespace("target")
        veth(node, bed.link("pb"), target, "eth0", mtu=plan.mtu)
        pod_ip = plan.pod_ip if mode == "kept" else "198.18.4.2"
        node.add_address(bed.link("pb"), "198.18.2.1/32" if mode == "kept" else "198.18.4.1/24")
        target.add_address("eth0", f"{pod_ip}/24")
        target.add_route("default", gateway="198.18.2.1" if mode == "kept" else "198.18.4.1")
        target.sysctl("net.ipv4.ip_forward", 1)
        target.add_bridge(BRIDGE)
        target.add_address(BRIDGE, f"{attachment.facts.gateway}/24")
        target.sysctl(f"net.ipv4.conf.{BRIDGE}.route_localnet", 1)
        target.add_tap("tap0", mtu=plan.mtu)
        target.enslave("tap0", BRIDGE)
        apply_nft(target, strategy.ruleset(attachment.facts.gateway, attachment.facts.vm_ip, pod_ip))
        stream = runtime / "migration.sock"
        agent_t, qmp_t = runtime / "agent-target.sock", runtime / "qmp-target.sock"
        target_argv = [
            a.replace(str(runtime / "agent.sock"), str(agent_t))
            .replace(str(_qmp_paths[-1]), str(qmp_t))
            .replace("-source-console.log", "-target-console.log")
            for a in source_argv
        ] + ["-incoming", f"unix:{stream}"]
        bed.start_process(target_argv, name="qemu-target", ns=target)

        # the flows, from before the migration
        guest.start(["vmnb-crr", "server", "--port", str(PROBE_PORT), "--keepalive"], name="probe-server")
        guest.start(["iperf3", "-s", "-p", str(IN_PORT), "-1"], name="iperf-in")
        bed.start_process(["iperf3", "-s", "-p", str(OUT_PORT), "-1"], name="iperf-out-server", ns=bed.peer)
        time.sleep(1)
        probe_out = runtime / "probe.json"
        (runtime / "probe.py").write_text(PROBE)
        bed.start_process(
            [sys.executable, str(runtime / "probe.py"), plan.pod_ip, str(PROBE_PORT), str(FLOW_S), str(probe_out)],
            name="probe",
            ns=bed.peer,
        )
        in_log = runtime / "iperf-in.json"
        bed.start_process(
            ["sh", "-c", f"iperf3 -c {plan.pod_ip} -p {IN_PORT} -t {FLOW_S} -b 20M --json > {in_log}"],
            name="iperf-in-client",
            ns=bed.peer,
        )
        out_job = guest.start(
            ["iperf3", "-c", plan.peer_ip, "-p", str(OUT_PORT), "-t", str(FLOW_S), "-b", "20M", "--json"],
            name="iperf-out",
        )
        time.sleep(MIGRATE_AT_S)

        qmp = Qmp(_qmp_paths[-1])
        t0 = time.monotonic()
        qmp.call("migrate", uri=f"unix:{stream}")
        while (state := qmp.call("query-migrate"))["status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.01)
        migrated_at = time.monotonic() - t0
        # the switch-over at the node: the source pod goes; with the address kept its route moves to the target
        if mode == "kept":
            node.run(["ip", "route", "replace", f"{plan.pod_ip}/32", "dev", bed.link("pb")])
        node.run(["ip", "link", "del", bed.link("pd")])
        Qmp(qmp_t).call("query-status")
        agent = GuestAgent(agent_t)
        agent.connect(timeout=30)
        wait_until(probe_out.exists, timeout=FLOW_S + 60, what="the probe's report")
        time.sleep(2)
        probe = json.loads(probe_out.read_text())
        wait_until(lambda: agent.poll(out_job.job) is not None, timeout=60, what="the guest's iperf3")
        out_report = agent.output(out_job.job, "out")
        ingress = in_log.read_text() if in_log.exists() else ""

        def iperf_fate(text: str) -> str:
            try:
                report = json.loads(text)
            except ValueError:
                return "no report"
            if report.get("error"):
                return f"error: {report['error']}"
            end = report["end"]["sum_received"]
            return f"{end['bytes'] / 1e6:.0f} MB in {end['seconds']:.0f} s"

        agent.close()
        return {
            "mode": mode,
            "migration_s": round(migrated_at, 2),
            "qemu_downtime_ms": state.get("downtime"),
            "qemu_total_ms": state.get("total-time"),
            "status": state["status"],
            "probe": probe,
            "iperf_in": iperf_fate(ingress),
            "iperf_out": iperf_fate(out_report),
        }


if __name__ == "__main__":
    for m in sys.argv[1:] or ["kept", "changed"]:
        print(json.dumps(migrate(m)), flush=True)
