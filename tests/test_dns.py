"""DNS under ambient (issue 28): istio-cni's DNS capture sends the pod's own lookups to ztunnel's DNS proxy
(harness/pod/dns_proxy.py), and a VM's lookups reach it only through a binding whose packets leave by the pod's
own sockets. Real namespaces, a real resolver (dnsmasq) on the peer's side, real dig from the VM."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.pod import ambient
from tests.conftest import cli

SCENARIO = """
name: dns-test
runtime: netns
guest: netns
strategies: [direct, passt, masquerade]
sidecars: [none, ambient]
design: rounds
repetitions: 1
tests:
  - {kind: dns, transport: udp, queries: 2}
  - {kind: dns, transport: tcp, queries: 2}
"""


def run(tmp_path, *extra: str) -> pd.DataFrame:
    path = tmp_path / "dns.yaml"
    path.write_text(SCENARIO)
    proc = cli("run", str(path), "--results", str(tmp_path / "results"), *extra)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    (folder,) = (tmp_path / "results").iterdir()
    rows = pd.read_parquet(folder / "samples.parquet")
    return rows[rows.metric.str.startswith("dns_")]


def table(rows: pd.DataFrame) -> dict:
    """(strategy, sidecar, test) -> {metric: value, path, proxy queries}"""
    out: dict = {}
    for (strategy, sidecar, test), group in rows.groupby(["strategy", "sidecar", "test"]):
        values = dict(zip(group.metric, group.value, strict=True))
        first = group.iloc[0]
        out[(strategy, sidecar, test)] = {
            **values,
            "path": first.path,
            "proxy": first.dns_proxy_queries,
            "zone1": first.dns_zone1_flows,
        }
    return out


def test_dns_capture_rules_are_istio_cnis_and_off_removes_them():
    on, off = ambient.inpod_rules([], dns_capture=True), ambient.inpod_rules([], dns_capture=False)
    assert "raw" in on and "raw" not in off
    assert sum("--to-ports 15053" in r for r in on["nat"]) == 2
    assert not any("15053" in r for r in off["nat"])


@pytest.mark.slow
def test_ambient_dns_capture_takes_the_pods_lookups_and_a_masquerade_vms_bypass_it(tmp_path):
    got = table(run(tmp_path))
    for transport in ("dns_udp", "dns_tcp"):
        # no mesh: the cluster's resolver answers the Service and the external name, not the ServiceEntry host
        for strategy in ("direct", "passt", "masquerade"):
            plain = got[(strategy, "none", transport)]
            assert plain["dns_service_resolved"] == 1 and plain["dns_external_resolved"] == 1
            assert plain["dns_mesh_only_resolved"] == 0 and plain["path"] == "no-sidecar"
        # the pod's own lookups, and passt's (its sockets are the pod's), go through the proxy: all three names
        # resolve, the proxy took every lookup, the resolver saw only the forwarded external ones, and the
        # proxy's upstream flows sit in conntrack zone 1
        for strategy in ("direct", "passt"):
            meshed = got[(strategy, "ambient", transport)]
            assert meshed["dns_mesh_only_resolved"] == 1 and meshed["dns_external_resolved"] == 1, (strategy, meshed)
            assert meshed["path"] == "through-mesh" and meshed["proxy"] == 6
            assert meshed["dns_resolver_queries"] == 2 and meshed["zone1"] >= 1
        # masquerade forwards the VM's packets (PREROUTING, not OUTPUT): the capture never sees them
        vm = got[("masquerade", "ambient", transport)]
        assert vm["dns_service_resolved"] == 1 and vm["dns_mesh_only_resolved"] == 0
        assert vm["path"] == "bypassed" and vm["proxy"] == 0 and vm["dns_resolver_queries"] == 6


@pytest.mark.slow
def test_without_dns_capture_the_pods_lookups_go_to_the_resolver(tmp_path):
    rows = run(tmp_path, "--no-dns-capture")
    assert set(rows.sidecar) == {"none", "ambient+no-dns-capture"}
    got = table(rows)
    direct = got[("direct", "ambient+no-dns-capture", "dns_udp")]
    assert direct["dns_service_resolved"] == 1 and direct["dns_mesh_only_resolved"] == 0
    assert direct["path"] == "bypassed" and pd.isna(direct["proxy"])
