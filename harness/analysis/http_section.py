"""answer.md's HTTP sections (issue 30): Istio's own benchmark method reproduced on the plain pod (`direct`), set
beside Istio's published figures, then per mesh layout what each binding adds at each offered rate.

Istio's method (istio/tools perf/benchmark, istio.io "Performance and Scalability"): fortio at fixed request
rates, 1 KB payloads, 16 connections, 2 proxy worker threads; modes baseline (no proxy), server sidecar, client
sidecar, both (mTLS), ambient (ztunnel both ends); each mesh mode declares which of them its cells reproduce
(harness/pod/mesh.py `published_modes`: the server sidecar is the sidecar layout's ingress, the client outside
the mesh; the client sidecar its egress; both and ambient have a meshed client). The published figures are
Istio 1.24's: per 1000 rps with a 1 KB payload, a sidecar with 2 worker threads 0.20 vCPU and 60 MB, a waypoint
0.25 vCPU and 60 MB, ztunnel 0.06 vCPU and 12 MB (on the waypoint's line the vCPU is the waypoint's); added
latency is published as graphs only (the last text figure: Istio 1.12.3, both sidecars, +1.7 ms p90, +2.7 ms
p99)."""

from __future__ import annotations

import textwrap

import pandas as pd

from harness.analysis.costs import CostColumn, format_ratio, layout_heading, ratio_to_direct
from harness.analysis.stats import median_interval, welch_ratio_interval
from harness.lab.vocabulary import Status
from harness.pod.mesh import MESHES, Client, SidecarKind, layout_label
from harness.pod.mtls import PeerKind

ISTIO_VCPU_PER_1000_RPS = {"sidecar": 0.20, "waypoint": 0.25, "ztunnel": 0.06}  # Istio 1.24, istio.io performance page
ISTIO_MEMORY_MB = {"sidecar": 60, "waypoint": 60, "ztunnel": 12}
PROXY_VCPU_METRIC = {"waypoint": "waypoint_vcpu_per_1000_rps"}
"""Which row metric holds the published proxy's CPU (the pod's own proxy unless named here)."""
ISTIO_PAGE = "istio.io/latest/docs/ops/deployment/performance-and-scalability (Istio 1.24)"


def istio_modes() -> list[tuple[str, str, str, str]]:
    """(Istio's mode, layout, direction of the VM's pod, which proxy Istio's per-proxy figure is for), from the
    mesh modes' own declarations (harness/pod/mesh.py `published_modes`)."""
    return [
        (
            m.name,
            layout_label(kind, Client(PeerKind.MESHED if m.meshed_client else PeerKind.OUTSIDE)),
            m.direction,
            m.proxy,
        )
        for kind, cls in MESHES.items()
        for m in cls.published_modes
    ]


PROTOCOLS = {"http": "HTTP/1.1", "h2": "HTTP/2", "grpc": "gRPC"}
"""The http kind's protocols (HttpLoad.protocol, the part of the test label before `@`), in report order."""


def _http(samples: pd.DataFrame) -> pd.DataFrame:
    """The http kind's rows, with their protocol in `protocol`."""
    tests = samples.test.fillna("")
    protocol = tests.str.split("@").str[0]
    rows = samples[tests.str.contains("@") & protocol.isin(list(PROTOCOLS))].copy()
    rows["protocol"] = protocol[rows.index]
    return rows


def has_http(samples: pd.DataFrame) -> bool:
    return not _http(samples).empty


def _protocols(rows: pd.DataFrame) -> list[str]:
    return [p for p in PROTOCOLS if (rows.protocol == p).any()]


def _values(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows[(rows.metric == metric) & (rows.status == Status.OK)].value.dropna()


def _median(rows: pd.DataFrame, metric: str) -> tuple[float | None, int]:
    values = _values(rows, metric)
    return (float(values.median()), len(values)) if len(values) else (None, 0)


def _ms(us: float | None) -> str:
    return "–" if us is None else f"{us / 1000:.2f}"


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "–" if value is None else fmt.format(value)


def istio_method_lines(samples: pd.DataFrame) -> list[str]:
    """The plain pod under Istio's modes, per offered rate, beside Istio's published per-proxy figures."""
    http = _http(samples)
    direct = http[http.strategy == "direct"]
    if direct.empty:
        return []
    intro = (
        "Open loop (vmnb-http for HTTP/1.1, vmnb-h2 for HTTP/2 and unary gRPC: each request timed from when it was "
        "due), 1 KB POST echoed, 16 connections, 2 Envoy workers; HTTP/1.1 on the Service port `http-echo`, HTTP/2 "
        "and gRPC on `grpc-echo` (HTTP/2 upstream), so Istio's sidecars run both through their HTTP connection "
        "manager (istio.stats, metadata exchange and authn filters are not in upstream Envoy and are "
        "left out: Istio's own figures include their cost). Added latency is against the baseline of the same "
        "direction. vCPU per 1000 rps = the proxy process's CPU seconds x 1000 / requests; `pod proxy` is the VM "
        "pod's, `peer proxy` the meshed client's. Medians of the run's repetitions (n per cell); single "
        "measurements carry no interval. `p99 x baseline`: the mode's p99 over the baseline's in the same "
        "direction, exp(difference of mean logs) with Welch's t interval over the repetitions (unpaired: the "
        "cells are measured apart), printed from n=3 per side. The pod proxy's vCPU is the median with its exact "
        "order-statistic interval from n=6, below that the values themselves. "
        f"Istio's figures: {ISTIO_PAGE}. ambient's node proxy here is Envoy "
        "configured as ztunnel (harness/pod/ambient.py), not the Rust ztunnel: its CPU and memory are Envoy's, so "
        "`x Istio's` on that line compares the stand-in with ztunnel, not ztunnel with itself. Istio's published "
        "figures are for HTTP/1.1. The waypoint (ambient with a waypoint) is Envoy configured as istiod configures "
        "one (harness/pod/waypoint.py) without Istio's telemetry, metadata-exchange and authorization filters: its "
        "vCPU here is lower than a full waypoint's would be for that reason, not higher."
    )
    lines = [
        "## HTTP: Istio's benchmark method on the plain pod",
        "",
        *textwrap.wrap(intro, 110),
        "",
        "| protocol | rate (rps) | mode | p50 ms | p90 ms | p99 ms | added p90 ms | added p99 ms "
        "| p99 x baseline | pod proxy vCPU/1000 rps | x Istio's | peer proxy vCPU/1000 rps "
        "| pod proxy MiB (Istio's MB) | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol, rate in _protocol_rates(direct):
        at_rate = direct[(direct.protocol == protocol) & (direct.offered_rps == rate)]
        name = PROTOCOLS[protocol]
        for mode, layout, direction, proxy in istio_modes():
            rows = at_rate[(at_rate.sidecar == layout) & (at_rate.direction == direction)]
            if rows.empty:
                continue
            base = at_rate[(at_rate.sidecar == SidecarKind.NONE) & (at_rate.direction == direction)]
            (p50, n), (p90, _), (p99, _) = (_median(rows, f"http_latency_{p}") for p in ("p50", "p90", "p99"))
            b90, b99 = _median(base, "http_latency_p90")[0], _median(base, "http_latency_p99")[0]
            vcpu_metric = PROXY_VCPU_METRIC.get(proxy, "proxy_vcpu_per_1000_rps")
            vcpu = _median(rows, vcpu_metric)[0]
            vcpu_cell = median_interval(_values(rows, vcpu_metric)).format(".3f") if vcpu else "–"
            over_base = "–"
            if layout != SidecarKind.NONE:
                ratio = welch_ratio_interval(_values(rows, "http_latency_p99"), _values(base, "http_latency_p99"))
                over_base = ratio.format() if ratio.n else "–"
            peer = _median(rows, "peer_proxy_vcpu_per_1000_rps")[0]
            rss = _median(rows, "proxy_rss")[0]
            failed = rows[(rows.metric == "http_latency_p50") & (rows.status != Status.OK)]
            if p50 is None and not failed.empty:
                lines.append(f"| {name} | {rate:g} | {mode} | fails: {failed.reason.iloc[0][:80]} |" + " |" * 10)
                continue
            added90 = None if p90 is None or b90 is None or layout == SidecarKind.NONE else p90 - b90
            added99 = None if p99 is None or b99 is None or layout == SidecarKind.NONE else p99 - b99
            published = ISTIO_VCPU_PER_1000_RPS.get(proxy)
            times = f"{vcpu / published:.2f}" if vcpu is not None and published else "–"
            shown_rss = rss if proxy not in PROXY_VCPU_METRIC else None  # the pod proxy's RSS is not the waypoint's
            memory = f"{_num(shown_rss, '{:.0f}')} ({ISTIO_MEMORY_MB[proxy]})" if proxy else "–"
            lines.append(
                f"| {name} | {rate:g} | {mode} | {_ms(p50)} | {_ms(p90)} | {_ms(p99)} | {_ms(added90)} | "
                f"{_ms(added99)} | {over_base} | {vcpu_cell} | {times} | {_num(peer)} | {memory} "
                f"| {n} |"
            )
    return [*lines, ""]


def _protocol_rates(rows: pd.DataFrame) -> list[tuple[str, float]]:
    return [(p, r) for p in _protocols(rows) for r in sorted(rows[rows.protocol == p].offered_rps.dropna().unique())]


def binding_lines(samples: pd.DataFrame, bindings: list[str], sidecars: list[str], ratios=None) -> list[str]:
    """Per layout: each binding at each offered rate, p99 against direct under the same layout and rate (the
    run's ratio method and interval), and the pod proxy's vCPU per 1000 rps."""
    http = _http(samples)
    if http.empty:
        return []
    lines = [
        "## HTTP per mesh layout: what the VM adds at a fixed offered rate",
        "",
        "p99 as a ratio to `direct` under the same layout, rate and direction (below 1 is better); `works`:",
        "every scheduled request answered, and the path evidence of the row (`bypassed`: the mesh's proxy did",
        "not carry it). `L7`: requests the pod's proxy parsed as HTTP (its HTTP connection manager);",
        "ztunnel carries HTTP at L4.",
        "",
    ]
    family = http.ip_family.fillna("ipv4") if "ip_family" in http else pd.Series("ipv4", index=http.index)
    families = [f for f in ("ipv4", "ipv6") if (family == f).any()]
    for sidecar, fam in ((s, f) for s in sidecars for f in families):  # a dual-stack run: each family its own table
        rows = http[(http.sidecar == sidecar) & (family == fam)]
        if rows.empty:
            continue
        suffix = "/ipv6" if fam == "ipv6" else ""
        where = f" ({'IPv6' if suffix else 'IPv4'})" if len(families) > 1 else ""
        lines += [
            f"### {layout_heading(sidecar)}{where}",
            "",
            "| binding | protocol | rate | works in / out | p99 in (x direct) | p99 out (x direct) "
            "| achieved rps in / out | pod proxy vCPU/1000 rps in / out | L7 in / out |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for b in bindings:
            for protocol, rate in _protocol_rates(rows):
                mine = rows[(rows.strategy == b) & (rows.protocol == protocol) & (rows.offered_rps == rate)]
                if mine.empty:
                    continue
                test = f"{protocol}@{int(rate)}{suffix}"
                works, p99, achieved, vcpu, l7 = [], [], [], [], []
                for direction in ("ingress", "egress"):
                    d = mine[mine.direction == direction]
                    head = d[d.metric == "http_latency_p50"]
                    if head.empty:
                        works.append("–")
                        p99.append("–")
                        achieved.append("–")
                        vcpu.append("–")
                        l7.append("–")
                        continue
                    ok = (head.status == Status.OK).all()
                    paths = set(head.path.dropna())
                    works.append(("yes" if ok else "fails") + (" (bypassed)" if ok and "bypassed" in paths else ""))
                    col = CostColumn("p99", test, direction, "http_latency_p99")
                    if b == "direct":
                        p99.append(f"{_ms(_median(d, 'http_latency_p99')[0])} ms")
                    else:
                        p99.append(format_ratio(ratio_to_direct(samples, b, sidecar, col, None, ratios)))
                    achieved.append(_num(_median(d, "http_achieved_rps")[0], "{:.0f}"))
                    vcpu.append(_num(_median(d, "proxy_vcpu_per_1000_rps")[0]))
                    requests = head.proxy_http_requests.dropna() if "proxy_http_requests" in head else pd.Series()
                    l7.append(str(int(requests.median())) if len(requests) else "–")
                lines.append(
                    f"| {b} | {PROTOCOLS[protocol]} | {rate:g} | {' / '.join(works)} | {p99[0]} | {p99[1]} "
                    f"| {' / '.join(achieved)} "
                    f"| {' / '.join(vcpu)} | {' / '.join(l7)} |"
                )
        lines.append("")
    return lines
