"""answer.md's HTTP sections (harness/analysis/http_section.py) on rows shaped as the http kind writes them: one
line per protocol, rate and Istio mode; intervals only where their method reaches 95% (Welch from n=3 per side,
the order-statistic median from n=6), the values themselves below; failures said as failures."""

from __future__ import annotations

import pandas as pd

from harness.analysis.http_section import binding_lines, has_http, istio_method_lines

LAYOUT_DIRECTIONS = [
    ("none", "ingress"),
    ("none", "egress"),
    ("envoy-redirect", "ingress"),
    ("envoy-redirect", "egress"),
    ("envoy-redirect+meshed", "ingress"),
    ("ambient+meshed", "ingress"),
]


def _rows(tests: dict[str, int], n: int, *, failing: tuple[str, str] | None = None) -> pd.DataFrame:
    """`n` repetitions of direct (and masquerade) under each layout; p99 = 200 us without a proxy, 500 us with."""
    rows = []
    for test, rate in tests.items():
        for strategy in ("direct", "masquerade"):
            for sidecar, direction in LAYOUT_DIRECTIONS:
                for k in range(n):
                    status = "failed" if (strategy == "direct" and (test, sidecar) == failing) else "ok"
                    base = dict(
                        strategy=strategy,
                        sidecar=sidecar,
                        direction=direction,
                        test=test,
                        offered_rps=rate,
                        status=status,
                        reason="connection closed" if status != "ok" else "",
                        path="no-sidecar" if sidecar == "none" else "through-mesh",
                        proxy_http_requests=None if sidecar == "none" else 5000.0,
                    )
                    proxy = sidecar != "none"
                    values = {
                        "http_latency_p50": 100 + 100 * proxy,
                        "http_latency_p90": 150 + 150 * proxy,
                        "http_latency_p99": (200 + 300 * proxy) * (1 + 0.05 * k),
                        "http_achieved_rps": rate,
                    }
                    if proxy:
                        values |= {"proxy_vcpu_per_1000_rps": 0.15 + 0.01 * k, "proxy_rss": 66.0}
                    for metric, value in values.items():
                        rows.append({**base, "metric": metric, "value": None if status != "ok" else float(value)})
    return pd.DataFrame(rows)


def test_every_protocol_gets_its_istio_method_lines_with_intervals_from_n3():
    samples = _rows({"http@1000": 1000, "h2@1000": 1000, "grpc@1000": 1000}, n=3)
    assert has_http(samples) and not has_http(samples.assign(test="tcp_throughput"))
    lines = istio_method_lines(samples)
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| protocol")]
    assert [line.split(" | ")[0] for line in table] == ["| HTTP/1.1"] * 5 + ["| HTTP/2"] * 5 + ["| gRPC"] * 5
    server = next(line for line in table if line.startswith("| gRPC | 1000 | server sidecar"))
    assert "(welch, 95%, n=3)" in server  # p99 x baseline: 2.5 x, with its interval
    assert "2.50 [" in server
    assert "(n=3 < 6 for a 95% interval: 0.150, 0.160, 0.170)" in server  # vCPU: no order interval below n=6


def test_below_the_methods_n_no_interval_is_printed():
    lines = istio_method_lines(_rows({"http@500": 500}, n=2))
    server = next(line for line in lines if "server sidecar" in line)
    assert "[" not in server and "(n=2 < 3 for a 95% interval)" in server


def test_a_failed_mode_is_said_to_fail():
    lines = istio_method_lines(_rows({"h2@1000": 1000}, n=3, failing=("h2@1000", "envoy-redirect+meshed")))
    assert any(line.startswith("| HTTP/2 | 1000 | both sidecars (mTLS) | fails: connection closed") for line in lines)


def test_binding_lines_name_the_protocol_of_each_row():
    samples = _rows({"http@1000": 1000, "grpc@1000": 1000}, n=1)
    lines = binding_lines(samples, ["direct", "masquerade"], ["envoy-redirect"])
    rows = [line for line in lines if line.startswith("| masquerade")]
    assert [line.split(" | ")[1] for line in rows] == ["HTTP/1.1", "gRPC"]
    assert all("yes / yes" in line for line in rows)
