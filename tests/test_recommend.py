"""The recommendation rule (harness/analysis/recommend.py) on stored rows: a decided layout, an undecided tier
with what would decide it, a layout where nothing shipped qualifies (the closest shown), a bypass that
disqualifies, a binding not in the modelled release, and research designs shown beside but never chosen."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from harness.analysis.recommend import Answer, recommend, recommend_layout
from harness.analysis.results import COLUMNS, Sample

RNG_SEED = 7


def rows_for(
    cells: dict[tuple[str, str], dict], blocks: int = 8, sd: float = 0.03, release: str = "1.9", seed: int = RNG_SEED
) -> pd.DataFrame:
    """Paired blocks per layout: direct, X1, direct, X2, ..., direct. `cells[(binding, layout)]`: `ratio` (or a
    pair in/out), `fails` (a direction or 'both'), `path` (per direction, e.g. {'ingress': 'bypassed'})."""
    rng = np.random.default_rng(seed)
    out = []
    layouts = list(dict.fromkeys(layout for _, layout in cells))
    for block in range(1, blocks + 1):
        for layout in layouts:
            members = [b for b, lay in cells if lay == layout]
            order = ["direct"]
            for b in members:
                order += [b, "direct"]
            for slot, binding in enumerate(order, 1):
                spec = cells.get((binding, layout), {}) if binding != "direct" else {}
                for direction in ("ingress", "egress"):
                    ratio = spec.get("ratio", 1.0)
                    ratio = ratio[direction == "egress"] if isinstance(ratio, tuple) else ratio
                    base = 10.0 * np.exp(rng.normal(0, 0.02))
                    value = base * ratio * np.exp(rng.normal(0, sd))
                    failed = spec.get("fails") in (direction, "both")
                    path = spec.get("path", {}).get(direction, "through-mesh" if layout != "none" else "no-sidecar")
                    out.append(
                        asdict(
                            Sample(
                                strategy=binding,
                                sidecar=layout,
                                scenario="t",
                                repetition=block,
                                block=block,
                                slot=slot,
                                kubevirt=release,
                                test="tcp_throughput",
                                direction=direction,
                                protocol="tcp",
                                metric="throughput",
                                value=None if failed else float(value),
                                unit="Gbit/s",
                                status="failed" if failed else "ok",
                                reason="connect timed out" if failed else "",
                                path="failed" if failed else path,
                            )
                        )
                    )
    return pd.DataFrame(out, columns=COLUMNS)


def one(frame: pd.DataFrame, layout: str, bindings: list[str]):
    return recommend_layout(frame, layout, ["direct", *bindings], {})


def test_a_clearly_cheaper_shipped_binding_is_the_answer_with_its_cost():
    frame = rows_for({("masquerade", "envoy-redirect"): {"ratio": 0.9}, ("slirp", "envoy-redirect"): {"ratio": 0.3}})
    rec = one(frame, "envoy-redirect", ["slirp", "masquerade"])
    assert rec.answer is Answer.DECIDED and rec.chosen == ("masquerade",)
    assert rec.title.startswith("Istio sidecar (REDIRECT)")
    assert "use masquerade" in rec.line and "TCP in 0.8" in rec.line and "(t 95%, n=8)" in rec.line
    assert "slirp plugin" in " ".join(c.name for c in rec.candidates)  # the users' name in 1.9


def test_an_undecided_tier_says_so_and_names_what_would_decide_it():
    frame = rows_for({("masquerade", "none"): {"ratio": 0.90}, ("bridge", "none"): {"ratio": 0.86}}, blocks=4, sd=0.08)
    rec = one(frame, "none", ["bridge", "masquerade"])
    assert rec.answer is Answer.UNDECIDED and set(rec.chosen) == {"bridge", "masquerade"}
    assert "undecided between" in rec.line and rec.details[0].startswith("To decide:")
    assert "would separate a difference that size" in rec.details[0] or "within +-10%" in rec.details[0]


def test_equivalent_bindings_are_called_equivalent_not_merely_undecided():
    frame = rows_for({("masquerade", "none"): {"ratio": 0.90}, ("bridge", "none"): {"ratio": 0.90}}, blocks=12, sd=0.01)
    rec = one(frame, "none", ["bridge", "masquerade"])
    assert rec.answer is Answer.UNDECIDED
    assert "within +-10% of each other" in rec.details[0] and "choose on features" in rec.line


def test_nothing_shipped_qualifies_under_a_mesh_and_the_closest_is_shown():
    frame = rows_for(
        {
            ("bridge", "ambient"): {"fails": "both"},
            ("masquerade", "ambient"): {"path": {"ingress": "bypassed"}},
            ("tproxy", "ambient"): {"ratio": 0.7},
        }
    )
    rec = one(frame, "ambient", ["bridge", "masquerade", "tproxy"])
    assert rec.answer is Answer.NONE_QUALIFIES and rec.chosen == ()
    assert "no shipped binding works both ways through the mesh" in rec.line
    assert "Closest: masquerade (ingress bypasses the mesh" in rec.line
    # a research design that would qualify is shown beside, marked, never recommended
    assert any("never shipped" in d and "TPROXY" in d for d in rec.details)


def test_a_binding_not_in_the_modelled_release_is_never_recommended():
    # passt as a stream socket is not shipped from 1.8 on (passtBinding is vhost-user); in 1.7 it is a plugin
    frame = rows_for({("passt", "none"): {"ratio": 0.95}, ("slirp", "none"): {"ratio": 0.3}}, release="1.9")
    rec = one(frame, "none", ["passt", "slirp"])
    assert rec.chosen == ("slirp",) and rec.answer is Answer.DECIDED
    assert any("passt (stream socket): not shipped in KubeVirt 1.9 (core passt is vhost-user" in d for d in rec.details)
    frame = rows_for({("passt", "none"): {"ratio": 0.95}, ("slirp", "none"): {"ratio": 0.3}}, release="1.7")
    assert one(frame, "none", ["passt", "slirp"]).chosen == ("passt",)


def test_one_recommendation_per_layout_in_the_runs_order():
    frame = rows_for(
        {
            ("masquerade", "none"): {"ratio": 0.9},
            ("masquerade", "envoy-redirect"): {"ratio": 0.8},
            ("masquerade", "ambient"): {"path": {"ingress": "bypassed"}},
        }
    )
    recs = recommend(frame, {}, ["direct", "masquerade"], ["none", "envoy-redirect", "ambient"])
    assert [r.layout for r in recs] == ["none", "envoy-redirect", "ambient"]
    assert [r.answer for r in recs] == [Answer.DECIDED, Answer.DECIDED, Answer.NONE_QUALIFIES]


def test_a_swept_scenario_keys_every_cell_by_its_sweep_value():
    """slirp at guest MTU 1500 (0.5 x direct) and 65520 (0.98 x): each sweep point's table and answer shows its
    own ratio, never the two pooled (issue 41: 0.70 was printed in both cells)."""
    from harness.analysis.answer import decision_page

    rng = np.random.default_rng(3)
    out = []
    for block in range(1, 7):
        order = [
            ("direct", None, 1.0),
            ("slirp", 1500, 0.5),
            ("direct", None, 1.0),
            ("slirp", 65520, 0.98),
            ("direct", None, 1.0),
        ]
        for slot, (binding, mtu, ratio) in enumerate(order, 1):
            for direction in ("ingress", "egress"):
                value = 10.0 * ratio * np.exp(rng.normal(0, 0.02))
                out.append(
                    asdict(
                        Sample(
                            strategy=binding,
                            sidecar="none",
                            scenario="mtu",
                            repetition=block,
                            block=block,
                            slot=slot,
                            kubevirt="1.9",
                            guest_mtu=mtu,
                            pod_mtu=1500,
                            test="tcp_throughput",
                            direction=direction,
                            protocol="tcp",
                            metric="throughput",
                            value=float(value),
                            unit="Gbit/s",
                            path="no-sidecar",
                        )
                    )
                )
    frame = pd.DataFrame(out, columns=COLUMNS)
    page = decision_page(
        frame, {"scenario_parsed": {"strategies": ["direct", "slirp"], "sidecars": ["none"]}}, None, "Guest: netns."
    )
    tables = page.split("## Costs per layout", 1)[1]
    low = tables.split("### No mesh (guest MTU 1500)", 1)[1].split("###", 1)[0]
    high = tables.split("### No mesh (guest MTU 65520)", 1)[1].split("###", 1)[0]
    slirp_low = next(line for line in low.splitlines() if line.startswith("| slirp |"))
    slirp_high = next(line for line in high.splitlines() if line.startswith("| slirp |"))
    assert "| 0.50 [" in slirp_low and "| 0.98 [" in slirp_high, (slirp_low, slirp_high)
    recs = recommend(frame, {}, ["direct", "slirp"], ["none"])
    assert [r.where for r in recs] == ["guest MTU 1500", "guest MTU 65520"]
    assert "TCP in 0.50" in recs[0].line and "TCP in 0.98" in recs[1].line
    from harness.analysis.costs import judged_costs  # the one table both read (issue 42)

    table = judged_costs(frame, {}, ["direct", "slirp"], ["none"])
    tcp_in = table[table.heading == "TCP in"].set_index("where")["estimate"]
    assert list(tcp_in.index) == ["guest MTU 1500", "guest MTU 65520"]
    assert abs(tcp_in["guest MTU 1500"] - 0.50) < 0.03 and abs(tcp_in["guest MTU 65520"] - 0.98) < 0.03
