"""The claims probes, each against a strategy whose answer is known from the design, and the rules that turn
probe facts into verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.analysis.results import RunWriter
from harness.claims.facts import (
    CoexistenceFacts,
    ConnectivityFacts,
    Interval,
    InventoryFacts,
    PerformanceFacts,
    PrivilegeFacts,
    StrategyFacts,
)
from harness.claims.privilege import probe_privilege
from harness.claims.probes import ProbeContext, probe_coexistence, probe_setup_inventory
from harness.claims.verdicts import ClaimsFileError, ProbeFacts, judge, load_claims


@pytest.fixture
def ctx(tmp_path, lab):
    return ProbeContext(lab, RunWriter(tmp_path / "results", lab.run_id))


def test_slirp_installs_no_rules_and_masquerade_does(ctx):
    slirp = probe_setup_inventory(ctx, "slirp")
    assert slirp.rules == 0 and slirp.ip_rules == 0 and slirp.sysctls == {}
    assert slirp.process_names == ["slirp4netns"]
    masq = probe_setup_inventory(ctx, "masquerade")
    assert masq.rules >= 5 and masq.uses_nat and masq.uses_bridge
    assert masq.extra_processes == 0
    tproxy = probe_setup_inventory(ctx, "tproxy")
    assert tproxy.uses_tproxy and tproxy.uses_socket and tproxy.uses_policy_routing
    assert tproxy.process_names == ["vmnb-relay"]


def test_tproxy_needs_net_admin_and_not_net_raw(lab):
    result = probe_privilege(lab, "tproxy")
    assert result.baseline_works
    assert result.needs == ["net_admin"]
    assert not result.works_without_net_caps
    failed = next(t for t in result.trials if t.dropped == ["net_admin"])
    assert "Operation not permitted" in failed.error


@pytest.mark.slow
def test_a_nat_flush_breaks_iptables_only_but_not_tproxy(ctx):
    nat = probe_coexistence(ctx, "iptables-only")
    assert nat.works_before_iptables_flush
    assert not nat.works_after_iptables_nat_flush
    assert nat.other_tool_rules_intact
    mangle = probe_coexistence(ctx, "tproxy")
    assert mangle.works_after_iptables_nat_flush and mangle.works_after_nft_nat_flush


def perf(median: float, half_width: float = 1) -> PerformanceFacts:
    """Five samples spread evenly over median +- half_width (what the claims' Welch test reads)."""
    values = tuple(median + half_width * k for k in (-1, -0.5, 0, 0.5, 1))
    ci = Interval(median, float("nan"), float("nan"), 5, values)
    return PerformanceFacts(ingress_gbps=ci, egress_gbps=ci, cpu_s_per_gb=1.0, userspace_bytes_per_byte=0.0)


def facts_for(strategy: str, **overrides) -> ProbeFacts:
    """Typical facts of a kernel-NAT strategy; `group__fact=value` overrides one (group: conn, inv, priv, coex,
    perf)."""
    own = StrategyFacts(
        conn=ConnectivityFacts(
            tcp_through_envoy_redirect=True,
            tcp_through_linkerd_style=False,
            tcp_ingress_none="works",
            udp_ingress_none="failed",
        ),
        inv=InventoryFacts(
            vm_netdev=None,
            extra_processes=0,
            process_names=[],
            rules=3,
            ip_rules=0,
            sysctls={},
            features=["nat"],
            kernel_config_items=3,
            uses_nat=True,
            uses_mangle=False,
            uses_tproxy=False,
            uses_socket=False,
            uses_owner=False,
            uses_conntrack=False,
            uses_bridge=True,
            uses_policy_routing=False,
        ),
        priv=PrivilegeFacts(baseline_works=True, needs=["net_admin"], works_without_net_caps=False, trials=[]),
        coex=CoexistenceFacts(
            works_before_iptables_flush=True,
            works_after_iptables_nat_flush=False,
            after_iptables_nat_flush=[],
            works_before_nft_flush=True,
            works_after_nft_nat_flush=False,
            after_nft_nat_flush=[],
            other_tool_rules_before="",
            other_tool_rules_after="",
            other_tool_rules_intact=True,
            works_with_other_tool_first=True,
            survives_nat_rewrite=False,
        ),
        perf=perf(10),
    )
    for key, value in overrides.items():
        group, _, fact = key.partition("__")
        setattr(getattr(own, group), fact, value) if group != "perf" else setattr(own, "perf", value)
    return ProbeFacts(
        strategies={strategy: own}, performance={strategy: own.perf, "direct": perf(20), "nat-proxy": perf(10)}
    )


def claim(text: str):
    return next(c for c in load_claims() if c.text == text)


def test_rules_decide_verdicts_from_facts():
    f = facts_for("iptables-only")
    assert judge(claim("Istio dedicated solution!"), "iptables-only", f)["verdict"] == "confirmed"
    assert judge(claim("Not other process can change the iptables rules"), "iptables-only", f)["verdict"] == "confirmed"
    assert judge(claim("Works with any sidecar solution"), "iptables-only", f)["verdict"] == "partly"
    assert judge(claim("poor performance"), "iptables-only", f)["verdict"] == "partly"  # 0.5x direct, CIs apart
    slow = facts_for("slirp", perf__=perf(2, 0.5))
    assert judge(claim("poor performance"), "slirp", slow)["verdict"] == "confirmed"
    # Overlapping intervals give no verdict, never a guess.
    same = facts_for("tproxy")
    row = judge(claim("better preformance comparing to nat-proxy"), "tproxy", same)
    assert row["verdict"] == "no verdict" and "overlap" in row["why"]
    assert row["evidence"]["perf.ingress_gbps"].endswith("Gbit/s")


def test_every_claim_of_the_seed_is_in_the_table():
    seed = Path(__file__).resolve().parents[2] / "shared" / "seed" / "proxy-vm-conclusion.txt"
    if not seed.exists():
        pytest.skip(f"the seed post is not beside this checkout ({seed})")
    texts = {c.text for c in load_claims()}
    bullets = {ln.strip().lstrip("•").strip() for ln in seed.read_text().splitlines() if ln.strip().startswith("•")}
    assert len(bullets) >= 15
    assert bullets <= texts, bullets - texts


def test_connectivity_probe_sees_nat_proxy_tcp_only_ingress(ctx):
    from harness.claims.probes import probe_connectivity
    from harness.pod.mesh import SidecarKind

    facts = probe_connectivity(ctx, "nat-proxy", sidecars=(SidecarKind.NONE,))
    assert facts.tcp_ingress_none == "works" and facts.tcp_egress_none == "works"
    assert facts.udp_ingress_none == "failed" and facts.udp_ingress_none_reason == "no replies"
    assert facts.udp_egress_none == "works"  # the research's MASQUERADE rule carries the VM's UDP out


def test_connectivity_probe_takes_ambient_into_account(ctx):
    """slirp's TCP crosses ambient's node proxy both ways; its UDP is not redirected by ambient (TCP only), so
    it works but bypasses the mesh."""
    from harness.claims.probes import probe_connectivity
    from harness.pod.mesh import SidecarKind

    facts = probe_connectivity(ctx, "slirp", sidecars=(SidecarKind("ambient"),))
    assert facts.tcp_ingress_ambient == "works" and facts.tcp_egress_ambient == "works"
    assert facts.tcp_through_ambient
    assert facts.udp_egress_ambient == "bypassed"


def test_any_sidecar_claim_needs_ambient_too():
    any_sidecar = claim("Works with any sidecar solution")
    sidecars_only = facts_for("slirp", conn__tcp_through_linkerd_style=True)
    assert judge(any_sidecar, "slirp", sidecars_only)["verdict"] == "partly"
    every_layout = facts_for("slirp", conn__tcp_through_linkerd_style=True, conn__tcp_through_ambient=True)
    assert judge(any_sidecar, "slirp", every_layout)["verdict"] == "confirmed"


def test_slirp_process_and_privilege_claims_are_decided_only_with_the_qemu_guest():
    f = facts_for("slirp", priv__works_without_net_caps=True, priv__needs=[])
    for text in ("No external process needed", "pod can run without privilege"):
        assert judge(claim(text), "slirp", f, guest="netns")["verdict"] == "not measurable here"
        assert judge(claim(text), "slirp", f, guest="qemu")["verdict"] == "confirmed"


def test_slirp_in_qemu_is_a_userspace_stack_even_though_its_socket_bytes_are_not_counted():
    f = facts_for("slirp", inv__vm_netdev="user", inv__process_names=[])
    assert judge(claim("use userspace network stack"), "slirp", f, guest="qemu")["verdict"] == "confirmed"
    assert (
        judge(claim("All the traffic is handled by the kernel user space not involved"), "slirp", f, guest="qemu")[
            "verdict"
        ]
        == "refuted"
    )


def test_a_misspelt_fact_in_the_rules_fails_when_the_file_loads(tmp_path):
    good = (Path(__file__).resolve().parents[1] / "harness/claims/claims.yaml").read_text()
    for wrong, says in (
        ("conn.tcp_through_envoy_redirect", "conn.tcp_thru_envoy_redirect"),
        ("inv.extra_processes", "inv.extra_process"),
        ("coex.survives_nat_rewrite", "coex.survives"),
    ):
        bad = tmp_path / "claims.yaml"
        bad.write_text(good.replace(wrong, says, 1))
        with pytest.raises(ClaimsFileError, match=says.replace(".", r"\.")):
            load_claims(bad)
