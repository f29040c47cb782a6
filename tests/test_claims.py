"""The claims probes, each against a strategy whose answer is known from the design, and the rules that turn
probe facts into verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.claims import judge, load_claims
from harness.privilege import probe_privilege
from harness.probes import probe_coexistence, probe_setup_inventory
from harness.results import RunWriter


@pytest.fixture
def writer(tmp_path, run_env):
    run_id, _, _ = run_env
    return RunWriter(tmp_path / "results", run_id)


def test_slirp_installs_no_rules_and_masquerade_does(run_env, writer):
    _, _, tracker = run_env
    slirp = probe_setup_inventory("slirp", tracker, writer)
    assert slirp["rules"] == 0 and slirp["ip_rules"] == 0 and slirp["sysctls"] == {}
    assert slirp["process_names"] == ["slirp4netns"]
    masq = probe_setup_inventory("masquerade", tracker, writer)
    assert masq["rules"] >= 5 and masq["uses_nat"] and masq["uses_bridge"]
    assert masq["extra_processes"] == 0
    tproxy = probe_setup_inventory("tproxy", tracker, writer)
    assert tproxy["uses_tproxy"] and tproxy["uses_socket"] and tproxy["uses_policy_routing"]
    assert tproxy["process_names"] == ["harness.proxy"]


def test_tproxy_needs_net_admin_and_not_net_raw(run_env):
    _, _, tracker = run_env
    result = probe_privilege("tproxy", tracker)
    assert result["baseline_works"]
    assert result["needs"] == ["net_admin"]
    assert not result["works_without_net_caps"]
    failed = next(t for t in result["trials"] if t["dropped"] == ["net_admin"])
    assert "Operation not permitted" in failed["error"]


@pytest.mark.slow
def test_a_nat_flush_breaks_iptables_only_but_not_tproxy(run_env, writer):
    _, _, tracker = run_env
    nat = probe_coexistence("iptables-only", tracker, writer)
    assert nat["works_before_iptables_flush"]
    assert not nat["works_after_iptables_nat_flush"]
    assert nat["other_tool_rules_intact"]
    mangle = probe_coexistence("tproxy", tracker, writer)
    assert mangle["works_after_iptables_nat_flush"] and mangle["works_after_nft_nat_flush"]


def facts_for(strategy: str, **overrides) -> dict:
    perf = {"ingress_gbps": {"median": 10, "low": 9, "high": 11, "n": 5},
            "egress_gbps": {"median": 10, "low": 9, "high": 11, "n": 5},
            "userspace_bytes_per_byte": 0.0, "cpu_s_per_gb": 1.0}  # fmt: skip
    facts = {
        "connectivity": {strategy: {"tcp_through_envoy_redirect": True, "tcp_through_linkerd_style": False,
                                    "tcp_ingress_none": "works", "udp_ingress_none": "failed"}},
        "inventory": {strategy: {"rules": 3, "extra_processes": 0, "features": ["nat"], "kernel_config_items": 3,
                                 "process_names": []}},
        "privilege": {strategy: {"needs": ["net_admin"], "works_without_net_caps": False}},
        "coexistence": {strategy: {"works_before_iptables_flush": True, "survives_nat_rewrite": False,
                                   "other_tool_rules_intact": True}},
        "performance": {strategy: perf, "direct": {**perf, "ingress_gbps": {"median": 20, "low": 19, "high": 21},
                                                   "egress_gbps": {"median": 20, "low": 19, "high": 21}},
                        "nat-proxy": perf},
    }  # fmt: skip
    for key, value in overrides.items():
        group, _, fact = key.partition("__")
        facts[group][strategy][fact] = value
    return facts


def claim(text: str) -> dict:
    return next(c for c in load_claims() if c["text"] == text)


def test_rules_decide_verdicts_from_facts():
    f = facts_for("iptables-only")
    assert judge(claim("Istio dedicated solution!"), "iptables-only", f)["verdict"] == "confirmed"
    assert judge(claim("Not other process can change the iptables rules"), "iptables-only", f)["verdict"] == "confirmed"
    assert judge(claim("Works with any sidecar solution"), "iptables-only", f)["verdict"] == "partly"
    assert judge(claim("poor performance"), "iptables-only", f)["verdict"] == "partly"  # 0.5x direct, CIs apart
    slow = facts_for("slirp")
    slow["performance"]["slirp"]["ingress_gbps"] = {"median": 2, "low": 1.5, "high": 2.5}
    slow["performance"]["slirp"]["egress_gbps"] = {"median": 2, "low": 1.5, "high": 2.5}
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
    texts = {c["text"] for c in load_claims()}
    bullets = {ln.strip().lstrip("•").strip() for ln in seed.read_text().splitlines() if ln.strip().startswith("•")}
    assert len(bullets) >= 15
    assert bullets <= texts, bullets - texts


def test_connectivity_probe_sees_nat_proxy_tcp_only_ingress(run_env, writer):
    from harness.probes import probe_connectivity

    _, _, tracker = run_env
    facts = probe_connectivity("nat-proxy", tracker, writer, sidecars=("none",))
    assert facts["tcp_ingress_none"] == "works" and facts["tcp_egress_none"] == "works"
    assert facts["udp_ingress_none"] == "failed" and facts["udp_ingress_none_reason"] == "no replies"
    assert facts["udp_egress_none"] == "works"  # the research's MASQUERADE rule carries the VM's UDP out


def test_slirp_process_and_privilege_claims_are_decided_only_with_the_qemu_guest():
    f = facts_for("slirp", privilege__works_without_net_caps=True, privilege__needs=[])
    for text in ("No external process needed", "pod can run without privilege"):
        assert judge(claim(text), "slirp", f, guest="netns")["verdict"] == "not measurable here"
        assert judge(claim(text), "slirp", f, guest="qemu")["verdict"] == "confirmed"


def test_slirp_in_qemu_is_a_userspace_stack_even_though_its_socket_bytes_are_not_counted():
    f = facts_for("slirp", inventory__vm_netdev="user", inventory__process_names=[])
    assert judge(claim("use userspace network stack"), "slirp", f, guest="qemu")["verdict"] == "confirmed"
    assert judge(claim("All the traffic is handled by the kernel user space not involved"), "slirp", f,
                 guest="qemu")["verdict"] == "refuted"  # fmt: skip
