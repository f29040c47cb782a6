"""Round trips under load: an RR test while one bulk TCP stream (iperf3) crosses the same path, as k8s-netperf's
users ask for (cloud-bulldozer/k8s-netperf issue 234) and as a VM's interactive traffic meets a backup or an
image pull in practice. The bulk stream runs between the same two ends as the round trips and is connected the
same way (client to server), so a binding that forwards only one way carries both; `reverse` makes the
stream's data flow server to client (iperf3 -R). No threads: the stream's client is a background job whose
JSON goes to a file, so the same code drives a namespace and a QEMU guest (whose agent serves one request at a
time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.guests.attachment import Ends
from harness.kinds.latency import LatencySample
from harness.kinds.throughput import CONNECT_TIMEOUT_S, IPERF_SERVER, ThroughputSample, parse_client_json
from harness.lab.waiting import NotReady, TimedOut, wait_until

RAMP_S = 1.0
"""The stream runs this long before the first round trip (and iperf3 omits it from its figure): slow start over."""
TAIL_S = 1.5
"""The stream outlasts the round trips by this much (sockperf starts in ~0.1 s; its 0.4 s warm-up is inside -t)."""


@dataclass
class LoadedRoundTrips:
    rr: LatencySample
    bulk: ThroughputSample


def measure_rr_under_load(
    ends: Ends,
    round_trips: Callable[[], LatencySample],
    *,
    port: int,
    rr_duration_s: float,
    reverse: bool,
    label: str,
) -> LoadedRoundTrips:
    """Start the bulk stream, let it ramp, run `round_trips` while it flows, then collect the stream's report.
    A stream that cannot start fails the test: round trips on an idle path are not 'under load'."""
    duration = RAMP_S + rr_duration_s + TAIL_S
    server = ends.server.start(IPERF_SERVER + ["-p", str(port)], name=f"{label}-bulk-server")
    try:
        try:
            ends.server.wait_listening(server, port)
        except NotReady as e:
            return LoadedRoundTrips(
                LatencySample("failed", "bulk stream not started"), ThroughputSample("failed", f"server not ready: {e}")
            )
        with ends.client.scratch(f"{label}-bulk.json") as log:
            argv = [
                "iperf3",
                "-c",
                ends.target,
                "-p",
                str(port),
                "--json",
                "--logfile",
                log,
                "-t",
                f"{duration:g}",
                "-O",
                f"{RAMP_S:g}",
                "--connect-timeout",
                str(CONNECT_TIMEOUT_S * 1000),
                *(["-R"] if reverse else []),
            ]
            client = ends.client.start(argv, name=f"{label}-bulk-client")
            try:
                time.sleep(RAMP_S)
                if not client.alive():
                    bulk = _stream_report(ends, log, client)
                    return LoadedRoundTrips(LatencySample("failed", "bulk stream ended early"), bulk)
                rr = round_trips()
                try:
                    wait_until(
                        lambda: not client.alive(),
                        timeout=duration + CONNECT_TIMEOUT_S + 10,
                        what="the bulk stream ending",
                        interval=0.2,
                    )
                except TimedOut:
                    return LoadedRoundTrips(rr, ThroughputSample("failed", "the bulk stream did not end in time"))
                return LoadedRoundTrips(rr, _stream_report(ends, log, client))
            finally:
                ends.client.stop(client, grace=1.0)
    finally:
        ends.server.stop(server, grace=1.0)


def _stream_report(ends: Ends, log: str, client) -> ThroughputSample:
    text = ends.client.read_text(log)
    sample = parse_client_json(text)
    if sample.status != "ok" and not sample.raw:
        sample.reason = client.last_words() or sample.reason
    return sample
