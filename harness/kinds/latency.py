"""Request/response latency with sockperf ping-pong (closed or open loop), or the project's vmnb-rr where sockperf
cannot go (IPv6), and connect-request-response with the project's CRR tool (vmnb-crr), all keeping every sample so
percentiles come from merged distributions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.guests.attachment import Ends
from harness.kinds.endpoints import ToolReport, Transcript, client_against_server, failure_reason, parse_tool_json


@dataclass
class LatencySample:
    status: str
    reason: str = ""
    rtt_us: np.ndarray = field(default_factory=lambda: np.empty(0))
    requests: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    transcript: Transcript | None = None

    @property
    def rate_per_s(self) -> float | None:
        return self.requests / self.seconds if self.seconds else None


def parse_full_log(text: str, *, rate_per_s: int | None) -> np.ndarray:
    """sockperf --full-log rows `packet, txTime(sec), rxTime(sec), rtt(usec)`. Closed loop: the RTTs as measured.
    Open loop: latency counts from each request's *scheduled* send time (first send + i / rate), so a stall
    that delays later sends is charged to them instead of hidden (coordinated omission)."""
    rows = []
    started = False
    for line in text.splitlines():
        if line.startswith("packet,"):
            started = True
            continue
        if started and line and line[0].isdigit():
            parts = [p.strip() for p in line.split(",")]
            rows.append((int(parts[0]), float(parts[1]), float(parts[2])))
    if not rows:
        return np.empty(0)
    data = np.array(rows)
    index, tx, rx = data[:, 0], data[:, 1], data[:, 2]
    if rate_per_s is None:
        return (rx - tx) * 1e6  # sockperf's --full-rtt times are the round trip already
    # The schedule is a fixed grid of period 1/rate, anchored as early as the sends allow (no request is
    # scheduled after it was actually sent), so latency >= the measured RTT and stalls are not forgiven.
    grid = (index - index[0]) / rate_per_s
    scheduled = (tx - grid).min() + grid
    return (rx - scheduled) * 1e6


def sockperf_client_argv(
    target: str, *, port: int, protocol: str, duration_s: float, rate_per_s: int | None, message_bytes: int, log: str
) -> list[str]:
    """sockperf's ping-pong client, writing every round trip to `log` (--full-log)."""
    mps = str(rate_per_s) if rate_per_s else "max"
    return [
        "sockperf",
        "ping-pong",
        "-i",
        target,
        "-p",
        str(port),
        *(["--tcp"] if protocol == "tcp" else []),
        "-t",
        f"{duration_s:g}",
        f"--mps={mps}",
        "-m",
        str(message_bytes),
        "--full-rtt",
        "--full-log",
        log,
    ]


def sockperf_server_argv(port: int, protocol: str) -> list[str]:
    # --uc-reuseaddr: a connection of the previous test on this port may sit in TIME_WAIT on the server's side
    # (seen behind slirp: "Can't bind socket ... Address already in use" for the next RR test).
    tcp = ["--tcp"] if protocol == "tcp" else []
    return ["sockperf", "server", "-i", "0.0.0.0", "-p", str(port), *tcp, "--uc-reuseaddr"]


def measure_rr(
    ends: Ends,
    *,
    port: int,
    protocol: str,
    duration_s: float,
    rate_per_s: int | None,
    message_bytes: int,
    label: str,
) -> LatencySample:
    # The full log is written where the client runs (a guest's /tmp for a QEMU guest) and read back from there.
    with ends.client.scratch(f"{label}-sockperf.csv") as log:
        argv = sockperf_client_argv(
            ends.target,
            port=port,
            protocol=protocol,
            duration_s=duration_s,
            rate_per_s=rate_per_s,
            message_bytes=message_bytes,
            log=log,
        )
        run = client_against_server(
            ends,
            server_argv=sockperf_server_argv(port, protocol),
            port=port,
            proto=protocol,
            client_argv=argv,
            budget_s=duration_s + 8,
            label=f"{label}-sockperf",  # sockperf's warm-up and start-up take ~1 s
        )
        if run.error:
            return LatencySample("failed", run.error)
        text = ends.client.read_text(log)
    transcript = run.transcript(text)
    sample = parse_sockperf_output(
        transcript.stdout, transcript.stderr, transcript.returncode, rate_per_s=rate_per_s, duration_s=duration_s
    )
    sample.transcript = transcript
    return sample


def parse_sockperf_output(
    text: str, stderr: str, returncode: int, *, rate_per_s: int | None, duration_s: float
) -> LatencySample:
    """sockperf's output followed by its full log (what the harness reads back, and what a cluster's Job prints:
    the client's stdout, then `cat` of the log)."""
    rtt = parse_full_log(text, rate_per_s=rate_per_s)
    if returncode != 0 or rtt.size == 0:
        message = (stderr + text).strip()
        lost = "ReceivedMessages=0" in message or "no messages" in message.lower()
        reason = "no replies" if lost else failure_reason(_sockperf_error(message))
        return LatencySample("failed", reason)
    return LatencySample("ok", rtt_us=rtt, requests=int(rtt.size), seconds=_valid_seconds(text, duration_s))


def _sockperf_error(output: str) -> str:
    for line in output.splitlines():
        if "ERROR" in line or "errno" in line.lower() or "refused" in line.lower():
            return line
    return output.splitlines()[-1] if output else "no output"


def _valid_seconds(stdout: str, default: float) -> float:
    """sockperf measures over its 'Valid Duration' (after warm-up); use it for rates."""
    for line in stdout.splitlines():
        if "[Valid Duration]" in line and "RunTime=" in line:
            return float(line.split("RunTime=")[1].split()[0])
    return default


def vmnb_rr_client_argv(
    binary: str, target: str, *, port: int, protocol: str, duration_s: float, rate_per_s: int | None, message_bytes: int
) -> list[str]:
    """vmnb-rr's ping-pong client; its 0.4 s warm-up is inside `duration_s`, as sockperf's is inside -t."""
    rate = ["--rate", str(rate_per_s)] if rate_per_s else []
    return [binary, "client", "--target", target, "--port", str(port), "--proto", protocol] + [
        "--duration",
        f"{duration_s:g}",
        "--bytes",
        str(message_bytes),
        *rate,
    ]


def measure_vmnb_rr(
    ends: Ends, *, port: int, protocol: str, duration_s: float, rate_per_s: int | None, message_bytes: int, label: str
) -> LatencySample:
    client = vmnb_rr_client_argv(
        ends.client.binary("vmnb-rr"),
        ends.target,
        port=port,
        protocol=protocol,
        duration_s=duration_s,
        rate_per_s=rate_per_s,
        message_bytes=message_bytes,
    )
    return own_tool_sample(ends, "vmnb-rr", client, port, protocol, duration_s + 8, f"{label}-rr", parse_vmnb_rr_output)


def own_tool_sample(
    ends: Ends,
    tool: str,
    client: list[str],
    port: int,
    protocol: str,
    budget_s: float,
    label: str,
    parse: Callable[[str, str], LatencySample],
) -> LatencySample:
    """One of the project's C tools (`tool server --port P` at the server end, `client` at the other), its JSON
    read by `parse`, with the run's transcript."""
    server = [ends.server.binary(tool), "server", "--port", str(port)]
    run = client_against_server(
        ends, server_argv=server, port=port, proto=protocol, client_argv=client, budget_s=budget_s, label=label
    )
    if run.error:
        return LatencySample("failed", run.error)
    sample = parse(run.done.stdout, run.done.stderr)
    sample.transcript = run.transcript()
    return sample


def parse_vmnb_rr_output(stdout: str, stderr: str = "") -> LatencySample:
    report, _, error = parse_tool_json("vmnb-rr", stdout, RrReport, stderr=stderr)
    if error:
        return LatencySample("failed", error)
    rtt = np.asarray(report.latency_us, dtype=float)
    if rtt.size == 0:
        said = report.first_error or ""
        return LatencySample(
            "failed", failure_reason(said) if said and not said.startswith("no reply") else "no replies"
        )
    return LatencySample("ok", rtt_us=rtt, requests=int(rtt.size), seconds=report.seconds, extra={"lost": report.lost})


class RrReport(ToolReport):
    """vmnb-rr client's JSON (guest_files/rr.c): the counted round trips' latencies, the time after the warm-up,
    requests sent and lost (UDP replies not back within 1 s), the first error."""

    latency_us: list[float]
    seconds: float
    sent: int = 0
    lost: int = 0
    first_error: str | None = None


def crr_client_argv(binary: str, target: str, *, port: int, duration_s: float, message_bytes: int) -> list[str]:
    return [
        binary,
        "client",
        "--target",
        target,
        "--port",
        str(port),
        "--duration",
        f"{duration_s:g}",
        "--bytes",
        str(message_bytes),
    ]


def measure_crr(
    ends: Ends,
    *,
    port: int,
    duration_s: float,
    message_bytes: int,
    label: str,
) -> LatencySample:
    # vmnb-crr (guest_files/crr.c) on both ends: the QEMU guest has no Python, and one implementation keeps
    # netns-guest and QEMU-guest numbers comparable.
    client = crr_client_argv(
        ends.client.binary("vmnb-crr"), ends.target, port=port, duration_s=duration_s, message_bytes=message_bytes
    )
    return own_tool_sample(ends, "vmnb-crr", client, port, "tcp", duration_s + 15, f"{label}-crr", parse_crr_output)


def parse_crr_output(stdout: str, stderr: str = "") -> LatencySample:
    report, _, error = parse_tool_json("vmnb-crr", stdout, CrrReport, stderr=stderr)
    if error:
        return LatencySample("failed", error)
    rtt = np.asarray(report.latency_us, dtype=float)
    if rtt.size == 0:
        return LatencySample("failed", failure_reason(report.first_error or "no request completed"))
    return LatencySample(
        "ok", rtt_us=rtt, requests=int(rtt.size), seconds=report.seconds, extra={"errors": report.errors}
    )


class CrrReport(ToolReport):
    """vmnb-crr client's JSON (guest_files/crr.c): per-request latencies, the run's length, connect errors."""

    latency_us: list[float]
    seconds: float
    errors: int = 0
    first_error: str | None = None
