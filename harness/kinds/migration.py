"""The `migration` kind: a live migration of the QEMU guest from its launcher pod to a second one while
established flows run through the binding, and what the flows made of it.

How KubeVirt migrates (kubevirt/kubevirt pkg/virt-controller/watch/migration, pkg/virt-handler/vm.go; for passt
kubevirt/enhancements veps/sig-network/passt/passt-migration-proposal.md): a target launcher pod is created,
its network set up by the binding before the domain starts there (`Cell.prepare_target`: the strategy's own
setup on a second pod, the mesh's too, QEMU waiting with `-incoming`); libvirt migrates pre-copy (KubeVirt's
defaults: no post-copy, no auto-converge) from the source QEMU to the target one over virt-handler's migration
proxy, never the pod network (here a unix socket: `QemuGuest.migrate_to`); for passt, virt-handler runs
passt-repair for the source pod before the migration starts and for the target before it finalizes (both are
started here before the migration, as one-off helpers waiting for passt's `.repair` socket). At the switch-over
the target's guest runs, the node routes the pod's address to the target pod when the CNI keeps it (OVN-K
user-defined networks; `TestBed.take_over_address`) and the source pod is deleted: its processes end (QEMU,
the sidecar, passt) and the CNI removes its link.

The flows, all established before the migration (ingress: the peer dials the VM; egress: the VM dials the
peer): a paced TCP probe and a paced UDP probe (vmnb-probe, one 64-byte request every `probe_interval_ms`;
the largest gap between answers is the downtime the flow saw) and an iperf3 stream at `stream_mbit` (bytes
delivered, retransmissions). A flow's fate: survived (answers resumed), stalled (no answer for `stall_s`), or
reset (the connection closed, with the error).

Differences from a cluster, on every row's caveat: one host and TCG (the stream crosses no network, so
migration time and downtime are QEMU's and the guest's, not a link's); no libvirt (QMP directly, QEMU's
default downtime limit of 300 ms); the target pod's setup is not timed against the flows (it is ready before
they start)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from harness.kinds.base import TestKind
from harness.kinds.outcome import HARNESS_ERROR, Metric, Outcome
from harness.lab.vocabulary import Direction, Status, TrafficPath
from harness.lab.waiting import wait_until
from harness.pod.bindings import migration_verdict

if TYPE_CHECKING:
    from harness.guests.attachment import Attachment
    from harness.kinds.measure import Cell
    from harness.lab.bed import TestBed
    from harness.pod.sidecars import Sidecar

PROBE_PORT = 7100
STREAM_IN_PORT = 5210  # iperf3 in the VM (ingress stream)
STREAM_OUT_PORT = 5211  # iperf3 at the peer (egress stream)
CAVEAT = (
    "live migration on one host under TCG, by QMP without libvirt: migration time and downtime are QEMU's and "
    "the guest's, no network carried the migration stream"
)


@dataclass
class MigrationTarget:
    """The second launcher pod, set up by the binding and the mesh, its QEMU waiting for the migration."""

    bed: TestBed
    attachment: Attachment
    sidecar: Sidecar | None = None


@dataclass
class FlowReport:
    """What one flow (a probe or a stream) made of the migration."""

    name: str
    fate: str  # survived / stalled / reset / no report
    detail: str = ""
    gap_s: float | None = None
    bytes: int | None = None
    retransmits: int | None = None

    def words(self) -> str:
        text = self.fate + (f" ({self.detail})" if self.detail else "")
        return f"{self.name} {text}"


@dataclass
class MigrationResult:
    status: Status
    reason: str = ""
    qemu: dict = field(default_factory=dict)
    flows: dict[str, dict[str, FlowReport]] = field(default_factory=dict)
    """Per direction (ingress, egress): the TCP probe, the UDP probe, the stream."""
    paths: dict[str, TrafficPath] = field(default_factory=dict)
    """Per direction, whether the source pod's proxy carried its flows before the migration (under a mesh)."""
    resets: dict[str, int | None] = field(default_factory=dict)
    """TCP resets each pod's stack sent while the flows ran (/proc/net/snmp Tcp OutRsts in its namespace): which
    side reset the connections that broke."""


def last_json(text: str) -> dict | None:
    """The last JSON object a tool printed (iperf3's multi-line report, vmnb-probe's line)."""
    decoder, found = json.JSONDecoder(), None
    for i, ch in enumerate(text):
        if ch == "{" and (i == 0 or text[i - 1] == "\n"):
            try:
                found, _ = decoder.raw_decode(text[i:])
            except ValueError:
                continue
    return found


def probe_report(name: str, text: str) -> FlowReport:
    report = last_json(text)
    if report is None:
        return FlowReport(name, "no report", " ".join(text.split())[-120:])
    fate, last = report["fate"], report["last_answer_s"]
    if fate == "never connected":
        return FlowReport(name, "never connected", report["error"])
    if not report["answers"]:  # the path never carried it, before the migration too: not the migration's doing
        return FlowReport(name, "never answered", f"{report['sent']} requests, no answer")
    detail = f"largest gap {report['largest_gap_s']:.3f} s at {report['gap_at_s']:.1f} s"
    if fate == "reset":
        detail = f"{report['error']} after its last answer at {last:.1f} s"
    elif fate == "stalled":
        detail = f"no answer since {last:.1f} s"
    return FlowReport(name, fate, detail, gap_s=report["largest_gap_s"] if fate == "survived" else None)


def stream_report(name: str, text: str, finished: bool, offered_bps: float) -> FlowReport:
    """An iperf3 client's report: reset (its error), stalled (it never ended), or survived, with the bytes the
    receiver got of those offered and the longest run of seconds below a tenth of the offered rate."""
    report = last_json(text) if finished else None
    if report is None:
        return FlowReport(name, "no report") if finished else FlowReport(name, "stalled", "iperf3 never ended")
    if report.get("error"):
        if not report.get("intervals"):  # it never connected: the path did not carry it before the migration
            return FlowReport(name, "never connected", report["error"])
        received = report.get("end", {}).get("sum_received", {}).get("bytes")
        return FlowReport(name, "reset", report["error"], bytes=received)
    end = report["end"]
    slow = longest_slow_run(report.get("intervals", []), offered_bps)
    offered = offered_bps / 8 * end["sum_received"]["seconds"]
    detail = f"{end['sum_received']['bytes'] / 1e6:.0f} MB of {offered / 1e6:.0f} MB offered"
    if slow:
        detail += f", {slow:.0f} s below a tenth of the offered rate"
    retransmits = end["sum_sent"].get("retransmits")
    if retransmits is not None:
        detail += f", {retransmits} retransmitted segments"
    return FlowReport(
        name,
        "survived",
        detail,
        gap_s=slow,
        bytes=end["sum_received"]["bytes"],
        retransmits=retransmits,
    )


def longest_slow_run(intervals: list[dict], offered_bps: float) -> float:
    """Seconds in the longest run of iperf3 intervals that carried under a tenth of the offered rate."""
    longest = run = 0.0
    for interval in intervals:
        total = interval.get("sum", {})
        seconds = float(total.get("seconds") or 0)
        if seconds and float(total.get("bits_per_second") or 0) < offered_bps / 10:
            run += seconds
            longest = max(longest, run)
        else:
            run = 0.0
    return longest


class Migration(TestKind):
    """A live migration of the VM between two launcher pods under established flows (module docstring)."""

    kind: Literal["migration"]
    pod_address: Literal["kept", "changed"] = "kept"
    """The pod's IP across the move: kept (OVN-Kubernetes user-defined networks, which passt's seamless
    migration requires) or changed (the default CNI: the target pod has a new IP)."""
    migrate_after_s: float = Field(4.0, gt=0, le=60)
    """Seconds of flow before the migration starts."""
    after_s: float = Field(10.0, gt=0, le=120)
    """Seconds the flows run on after the migration started: how long a flow has to come back."""
    stall_s: float = Field(6.0, gt=0, le=60)
    """A probe with no answer for this long is `stalled`."""
    probe_interval_ms: float = Field(5.0, gt=0, le=1000)
    stream_mbit: int = Field(20, gt=0, le=10000)
    primary_metric: ClassVar[str] = "migration_gap_tcp"
    ipv6_missing: ClassVar[str] = (
        "the migration kind's IPv6 run is not enabled: tried, masquerade's IPv6 streams stalled after the move while "
        "its probes came back (not explained yet); passt-vhost-user's survived"
    )
    consumes_bed: ClassVar[bool] = True
    cluster_unsupported: ClassVar[str] = (
        "the harness migrates its own QEMU between two pods it makes; on a cluster, `virtctl migrate` the VMI while "
        "the flows run (no Job generated for it yet)"
    )
    qemu_only: ClassVar[str] = "a live migration moves a VM between two launcher pods the harness makes"

    @property
    def base_label(self) -> str:
        return f"migration/{self.pod_address}"

    def columns(self) -> dict:
        return {**super().columns(), "pod_address": self.pod_address}

    def expected_seconds(self) -> float:
        """Per direction (both share one migration): the flows, the target pod, QEMU's migration, reading back."""
        return (self.migrate_after_s + self.after_s + 15) / 2

    def ports(self) -> tuple[set[int], set[int]]:
        return {PROBE_PORT, STREAM_IN_PORT}, {PROBE_PORT}

    @property
    def duration_s(self) -> float:
        return self.migrate_after_s + self.after_s

    def measure_in(self, cell: Cell, direction: Direction, label: str) -> Outcome:
        """Both directions' flows cross one migration: the first direction migrates, the second reads its result."""
        key = ("migration", self.label)
        if key not in cell.memo:
            try:
                cell.memo[key] = self.migrate(cell, label)
            except Exception as e:  # the second direction reads the same failure: one migration per bed
                cell.memo[key] = MigrationResult(Status.FAILED, f"{HARNESS_ERROR}{type(e).__name__}: {e}")
        verdict = migration_verdict(cell.base.kubevirt, cell.binding) if cell.base.kubevirt else ""
        outcome = self.outcome(cell.memo[key], Direction(direction), verdict)
        outcome.row_columns["caveat"] = "; ".join(c for c in (cell.base.caveat, CAVEAT) if c)
        return outcome

    def outcome(self, result: MigrationResult, direction: Direction, verdict: str) -> Outcome:
        if result.status is not Status.OK:
            return self.failed(result.reason, verdict)
        flows = result.flows[str(direction)]
        tcp, udp, stream = flows["tcp probe"], flows["udp probe"], flows["stream"]
        if tcp.fate in ("never answered", "never connected"):  # the path did not work before the migration
            return self.failed(
                f"no TCP flow worked {direction} before the migration ({tcp.words()}; {stream.words()})", verdict
            )
        survived = all(f.fate == "survived" for f in (tcp, stream))
        metrics = [
            Metric("migration_gap_tcp", "s", tcp.gap_s),
            Metric("migration_gap_udp", "s", udp.gap_s),
            Metric("migration_connections_kept", "fraction", 1.0 if survived else 0.0),
            Metric(
                "migration_stream_mbytes",
                "MB",
                stream.bytes / 1e6 if stream.bytes is not None else None,
                retransmits=stream.retransmits,
            ),  # fmt: skip
            Metric("migration_time", "s", result.qemu.get("total-time", 0) / 1000 or None),
            Metric("migration_downtime", "ms", result.qemu.get("downtime")),
        ]
        fate = "; ".join(f.words() for f in (tcp, udp, stream))
        sent = [f"the {pod} {n}" for pod, n in result.resets.items() if n is not None]
        fate += f"; TCP resets sent by {', '.join(sent)}" if sent else ""
        columns = {"migration_fate": fate, "migration_allowed": verdict}
        path = result.paths.get(str(direction))
        return Outcome(Status.OK, "", metrics, evidence_path=path, row_columns=columns)

    def failed(self, reason: str, verdict: str) -> Outcome:
        """A row for a migration that could not be judged; its path is `failed` by its own account (the source
        pod's proxy, which the traversal evidence would read, is gone with the source pod)."""
        metrics = [Metric(self.primary_metric, "s", None)]
        columns = {"migration_allowed": verdict}
        return Outcome(Status.FAILED, reason, metrics, evidence_path=TrafficPath.FAILED, row_columns=columns)

    # -- the migration -----------------------------------------------------------------------------------------
    def migrate(self, cell: Cell, label: str) -> MigrationResult:
        from harness.guests.qemu.qmp import QmpError  # the guests layer's QEMU, only where a VM migrates
        from harness.guests.qemu.vm import QemuGuest

        attachment, bed = cell.attachment, cell.bed
        assert attachment is not None
        guest = attachment.service
        if not isinstance(guest, QemuGuest):
            return MigrationResult(Status.FAILED, f"skipped: {self.qemu_only}; this cell has no VM")
        if cell.prepare_target is None:
            return MigrationResult(Status.FAILED, "the run gave this cell no second launcher pod")
        try:
            target = cell.prepare_target(self.pod_address == "changed")
        except Exception as e:  # noqa: BLE001 - a target the binding cannot set up is the row's result
            return MigrationResult(Status.FAILED, f"the target launcher pod's setup failed: {e}")
        arrived = target.attachment.service
        assert isinstance(arrived, QemuGuest)
        helpers = _repair_helpers(bed, target.bed)
        flows = FlowSet(self, cell, guest, label)
        # the family's addresses: an IPv6 flow crosses the binding's IPv6 path (the same ends any kind dials)
        flows.start(
            attachment.ends(Direction.INGRESS, self.ip_family).target,
            attachment.ends(Direction.EGRESS, self.ip_family).target,
        )
        # the peer's stack too: a meshed client's own proxy (its sidecar or ztunnel) resets from there
        resets_before = {
            "source pod": tcp_resets_sent(bed.pod),
            "target pod": tcp_resets_sent(target.bed.pod),
            "peer": tcp_resets_sent(bed.peer),
        }
        before = _proxy_bytes(cell.sidecar)
        time.sleep(self.migrate_after_s)
        try:
            state = guest.migrate_to(arrived, timeout=120)
        except (OSError, QmpError) as e:  # the target's QEMU is gone, or refused the migration
            state = {"status": "failed", "error": str(e)}
        crossed = _proxy_bytes(cell.sidecar)
        if state.get("status") != "completed":
            for helper in helpers:
                bed.tracker.stop(helper)
            flows.stop()
            said = state.get("error-desc") or state.get("error") or state
            return MigrationResult(
                Status.FAILED, f"QEMU's migration ended {state.get('status')} ({said}); the VM ran on in the source pod"
            )
        switch_over(bed, target.bed, cell.sidecar, kept=self.pod_address == "kept")
        source_resets = tcp_resets_sent(bed.pod)  # its stack's last words: the pod's namespace outlives its link
        arrived.agent.connect(timeout=30)
        flows.moved_to(arrived)
        # a flow still running this long after the flows started is stalled (iperf3 never ends on a dead path)
        reports = flows.finish(until=flows.started + self.duration_s + self.stall_s + 3)
        paths = {}
        if before is not None and crossed is not None:
            for direction, was, now in zip(("ingress", "egress"), before, crossed, strict=True):
                paths[direction] = TrafficPath.THROUGH_MESH if now > was else TrafficPath.BYPASSED
        after = {
            "source pod": source_resets,
            "target pod": tcp_resets_sent(target.bed.pod),
            "peer": tcp_resets_sent(bed.peer),
        }
        resets = {
            pod: after[pod] - resets_before[pod] if after[pod] is not None and resets_before[pod] is not None else None
            for pod in after
        }
        return MigrationResult(Status.OK, qemu=state, flows=reports, paths=paths, resets=resets)


def tcp_resets_sent(ns: Any) -> int | None:
    """The TCP resets a namespace's stack has sent (`/proc/net/snmp`, Tcp OutRsts, read from inside it)."""
    try:
        text = ns.run(["cat", "/proc/net/snmp"])
    except Exception:  # noqa: BLE001 - evidence, not the measurement: missing is said as missing
        return None
    tcp = [line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:")]
    if len(tcp) != 2 or "OutRsts" not in tcp[0]:
        return None
    return int(tcp[1][tcp[0].index("OutRsts")])


def _proxy_bytes(sidecar: Sidecar | None) -> tuple[int, int] | None:
    """Bytes the source pod's proxy carried so far (inbound, outbound), read before the source pod is deleted."""
    if sidecar is None:
        return None
    try:
        counters = sidecar.counters()
    except OSError:
        return None
    return counters.inbound_bytes, counters.outbound_bytes


def _repair_helpers(source: TestBed, target: TestBed) -> list[Any]:
    """passt-repair for each pod whose passt opened a `.repair` socket (passt in vhost-user mode), as virt-handler
    runs it: privileged, one-off, connected to passt before the migration starts (VEP 21: the source's before
    the migration, the target's before it finalizes; here both before the flows start, so passt has accepted
    them when QEMU asks for the device state). passt-repair is given the socket itself: given a folder it waits
    for a new file to appear there (passt-repair.c, inotify), and passt made its socket long before."""
    helpers = []
    for bed in (source, target):
        passt = next((p for p in bed.processes if p.netns == bed.pod.name and p.name.endswith("-passt")), None)
        for socket_path in sorted(bed.runtime_dir().glob("*.repair")) if passt else []:
            # the helper of the passt build running there (its protocol is passt-repair.1's, stable across builds)
            argv = [str(Path(passt.argv[0]).parent / "passt-repair"), str(socket_path)]
            helper = bed.start_process(argv, name="passt-repair", ns=None)
            wait_until(lambda h=helper: _has_socket(h.pid), timeout=5, what="passt-repair connecting to passt")
            helpers.append(helper)
    return helpers


def _has_socket(pid: int) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd).startswith("socket:") for fd in fds.iterdir())
    except OSError:
        return False


def switch_over(source: TestBed, target: TestBed, mesh: Sidecar | None, *, kept: bool) -> None:
    """The node's side of the switch-over: the address moves to the target pod (kept), then the source pod is
    deleted: its processes end (SIGTERM, as the kubelet stops containers; a sidecar's Envoy closes its
    connections as it exits), ambient's node proxy drops the pod (ztunnel removes a deleted pod's in-pod proxy:
    here the source pod's node proxy process ends), and only then the CNI removes the pod's link."""
    if kept:
        source.take_over_address(target)
    ending = [p for p in source.processes if p.netns == source.pod.name]
    if mesh is not None and mesh.process is not None and mesh.process not in ending:
        ending.append(mesh.process)
    for proc in ending:
        source.tracker.stop(proc)
    source.remove_pod_link()


class FlowSet:
    """The flows of one migration: servers and clients on both ends, started before it and read after it."""

    def __init__(self, test: Migration, cell: Cell, guest: Any, label: str) -> None:
        self.test, self.cell, self.guest, self.label = test, cell, guest, label
        self.started = 0.0
        self.peer_jobs: dict[tuple[str, str], Any] = {}
        self.guest_jobs: dict[tuple[str, str], Any] = {}

    def _probe(self, binary: str, target: str, proto: str) -> list[str]:
        t = self.test
        return [binary, "client", "--target", target, "--port", str(PROBE_PORT), "--proto", proto,
                "--interval-ms", str(t.probe_interval_ms), "--duration", str(t.duration_s),
                "--stall-s", str(t.stall_s)]  # fmt: skip

    def _stream(self, target: str, port: int) -> list[str]:
        return ["iperf3", "-c", target, "-p", str(port), "-t", str(int(self.test.duration_s)), "-b",
                f"{self.test.stream_mbit}M", "--json"]  # fmt: skip

    def start(self, vm_address: str, peer_address: str) -> None:
        bed, guest = self.cell.bed, self.guest
        peer = self.cell.attachment.peer
        probe = peer.binary("vmnb-probe")
        servers = [
            guest.start([guest.binary("vmnb-probe"), "server", "--port", str(PROBE_PORT)], name="probe-server"),
            guest.start(["iperf3", "-s", "-p", str(STREAM_IN_PORT)], name="stream-server"),
        ]
        for job, port in zip(servers, (PROBE_PORT, STREAM_IN_PORT), strict=True):
            guest.wait_listening(job, port)
        for argv, port, name in (
            ([probe, "server", "--port", str(PROBE_PORT)], PROBE_PORT, "probe-server"),
            (["iperf3", "-s", "-p", str(STREAM_OUT_PORT)], STREAM_OUT_PORT, "stream-server"),
        ):
            proc = bed.start_process(argv, name=f"{self.label}-peer-{name}", ns=bed.peer)
            peer.wait_listening(proc, port)
        self.started = time.monotonic()
        for proto in ("tcp", "udp"):
            self.peer_jobs[("ingress", proto)] = bed.start_process(
                self._probe(probe, vm_address, proto), name=f"{self.label}-in-{proto}", ns=bed.peer
            )
            self.guest_jobs[("egress", proto)] = guest.start(
                self._probe(guest.binary("vmnb-probe"), peer_address, proto), name=f"out-{proto}"
            )
        self.peer_jobs[("ingress", "stream")] = bed.start_process(
            self._stream(vm_address, STREAM_IN_PORT), name=f"{self.label}-in-stream", ns=bed.peer
        )
        self.guest_jobs[("egress", "stream")] = guest.start(self._stream(peer_address, STREAM_OUT_PORT), name="out")

    def moved_to(self, arrived: Any) -> None:
        """The guest's jobs live on in the guest; from now on they are asked about through the target's agent."""
        self.guest = arrived
        self.guest_jobs = {k: replace(job, agent=arrived.agent) for k, job in self.guest_jobs.items()}

    def finish(self, until: float) -> dict[str, dict[str, FlowReport]]:
        deadline = until
        jobs = [*self.peer_jobs.values(), *self.guest_jobs.values()]
        while time.monotonic() < deadline and any(job.alive() for job in jobs):
            time.sleep(0.2)
        reports: dict[str, dict[str, FlowReport]] = {"ingress": {}, "egress": {}}
        texts = []
        for key, proc in self.peer_jobs.items():
            finished = not proc.alive()
            if not finished:
                self.cell.bed.tracker.stop(proc)
            texts.append((key, proc.log_path.read_text(errors="replace") if proc.log_path else "", finished))
        for key, job in self.guest_jobs.items():
            finished = not job.alive()
            if not finished:
                self.guest.stop(job)
            texts.append((key, job.agent.output(job.job, "out"), finished))
        for (direction, what), text, finished in texts:
            name = "stream" if what == "stream" else f"{what} probe"
            reports[direction][name] = (
                stream_report(name, text, finished, self.test.stream_mbit * 1e6)
                if what == "stream"
                else probe_report(name, text)
            )
        return reports

    def stop(self) -> None:
        for job in self.peer_jobs.values():
            self.cell.bed.tracker.stop(job)
        for job in self.guest_jobs.values():
            self.guest.stop(job)
