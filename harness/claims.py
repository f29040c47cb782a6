"""`vmnetbench claims`: every probe on every strategy, then the seed's claims judged by the rules in
harness/claims.yaml. Writes claims.json, claims.md and the raw probe facts into results/<run id>/."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import Progress

from harness.atomic import write_json, write_text
from harness.guest import GuestSpec
from harness.names import new_run_id
from harness.privilege import probe_privilege
from harness.probes import probe_coexistence, probe_connectivity, probe_setup_inventory, probe_throughput
from harness.processes import ProcessTracker
from harness.results import RunWriter, git_sha, host_facts, tool_versions
from harness.state import RunState
from strategies import STRATEGIES

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")


def load_claims(path: Path = CLAIMS_FILE) -> list[dict]:
    return yaml.safe_load(path.read_text())["claims"]


def _ci(perf: dict, direction: str) -> tuple[float, float, float]:
    d = perf[f"{direction}_gbps"]
    return d["median"], d["low"], d["high"]


def below(a: dict, b: dict) -> bool:
    return all(_ci(a, d)[2] < _ci(b, d)[1] for d in ("ingress", "egress"))


def above(a: dict, b: dict) -> bool:
    return all(_ci(a, d)[1] > _ci(b, d)[2] for d in ("ingress", "egress"))


def overlap(a: dict, b: dict) -> bool:
    return not below(a, b) and not above(a, b)


def ratio(a: dict, b: dict) -> float:
    return min(_ci(a, d)[0] / _ci(b, d)[0] for d in ("ingress", "egress") if _ci(b, d)[0])


HELPERS = {"below": below, "above": above, "overlap": overlap, "ratio": ratio, "set": set, "min": min, "max": max}


def judge(claim: dict, strategy: str, facts: dict[str, dict], guest: str = "netns") -> dict:
    """The verdict of one claim for one strategy: the first rule whose condition holds."""
    scope = {
        "strategy": strategy, "guest": guest,
        "conn": facts["connectivity"][strategy], "inv": facts["inventory"][strategy],
        "priv": facts["privilege"][strategy], "coex": facts["coexistence"][strategy],
        "perf": facts["performance"][strategy], "direct": facts["performance"]["direct"],
        "nat_proxy": facts["performance"]["nat-proxy"],
    }  # fmt: skip
    verdict, why, rule_text = "no verdict", "no rule matched", ""
    for rule in claim["rules"]:
        try:
            holds = eval(rule["if"], {"__builtins__": {}}, {**HELPERS, **scope})  # noqa: S307 - rules are our data
        except (KeyError, ZeroDivisionError, TypeError) as e:
            verdict, why, rule_text = "not measurable here", f"a fact the rule needs is missing ({e})", rule["if"]
            break
        if holds:
            verdict, why, rule_text = rule["verdict"], rule.get("why", ""), rule["if"]
            break
    evidence = {}
    for ref in claim.get("evidence", []):
        group, _, key = ref.partition(".")
        value = scope.get(group, {}).get(key) if isinstance(scope.get(group), dict) else None
        evidence[ref] = _short(value)
    return {
        "claim": claim["text"], "kind": claim["kind"], "strategy": strategy,
        "seed_says_it_of": ", ".join(claim["seed"]), "seed_claims_it_here": strategy in claim["seed"],
        "verdict": verdict, "why": why, "rule": rule_text, "evidence": evidence,
    }  # fmt: skip


def _short(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    if isinstance(value, dict) and {"median", "low", "high"} <= set(value):
        return f"{value['median']:.2f} [{value['low']:.2f}, {value['high']:.2f}] Gbit/s"
    if isinstance(value, list) and value and isinstance(value[0], dict):  # privilege trials
        return "; ".join(f"-{','.join(t['dropped']) or 'none'}: {'works' if t['works'] else t.get('error', 'fails')}"
                         for t in value)  # fmt: skip
    return value


def run_probes(strategies: list[str], tracker: ProcessTracker, writer: RunWriter, console: Console,
               repetitions: int = 5, guest: GuestSpec | None = None) -> dict:  # fmt: skip
    facts: dict[str, dict] = {k: {} for k in ("connectivity", "inventory", "privilege", "coexistence")}
    steps = [(name, s) for s in strategies for name in ("connectivity", "inventory", "privilege", "coexistence")]
    with Progress(console=console) as progress:
        task = progress.add_task("probes", total=len(steps) + 1)
        for name, strategy in steps:
            progress.update(task, description=f"{name} {strategy}")
            if name == "connectivity":
                facts[name][strategy] = probe_connectivity(strategy, tracker, writer, guest=guest)
            elif name == "inventory":
                facts[name][strategy] = probe_setup_inventory(strategy, tracker, writer, guest=guest)
            elif name == "privilege":
                facts[name][strategy] = probe_privilege(strategy, tracker, guest=guest)
            else:
                facts[name][strategy] = probe_coexistence(strategy, tracker, writer, guest=guest)
            progress.advance(task)
        progress.update(task, description="performance (interleaved repetitions)")
        facts["performance"] = probe_throughput(strategies, tracker, writer, repetitions=repetitions, guest=guest)
        progress.advance(task)
    return facts


def claims_table(facts: dict, strategies: list[str], guest: str = "netns") -> list[dict]:
    return [judge(claim, s, facts, guest) for claim in load_claims() for s in strategies]


def markdown(rows: list[dict]) -> str:
    lines = ["| claim (seed) | strategy | verdict | why | evidence |", "|---|---|---|---|---|"]
    for r in rows:
        mark = "**" if r["seed_claims_it_here"] else ""
        evidence = "; ".join(f"{k}={v}" for k, v in r["evidence"].items()).replace("|", "/")
        lines.append(f"| {r['claim']} ({r['kind']}, of {r['seed_says_it_of']}) | {mark}{r['strategy']}{mark} | "
                     f"{r['verdict']} | {r['why']} | {evidence} |")  # fmt: skip
    return "\n".join(lines) + "\n\nBold strategy: the seed makes this claim about it.\n"


def run_claims(results_root: Path, console: Console, strategies: list[str] | None = None, repetitions: int = 5,
               guest: GuestSpec | None = None) -> Path:  # fmt: skip
    """`guest`: the QEMU guest (with its decided acceleration) instead of the netns guest."""
    guest = guest or GuestSpec()
    strategies = strategies or list(STRATEGIES)
    for needed in ("direct", "nat-proxy"):  # the references of the performance claims
        if needed not in strategies:
            strategies.append(needed)
    run_id = new_run_id()
    writer = RunWriter(results_root, run_id)
    writer.start({"kind": "claims", "strategies": strategies, "guest": guest.columns(), "host": host_facts(),
                  "tools": tool_versions(), "git_sha": git_sha(Path(__file__).resolve().parent.parent),
                  "scenario_name": "claims"})  # fmt: skip
    state = RunState(run_id)
    state.save()
    tracker = ProcessTracker(state, writer.log_dir)
    status = "interrupted"
    try:
        facts = run_probes(strategies, tracker, writer, console, repetitions, guest)
        write_json(writer.dir / "probes.json", facts)
        rows = claims_table(facts, strategies, guest.kind)
        write_json(writer.dir / "claims.json", rows)
        write_text(writer.dir / "claims.md", "# Seed claims, measured\n\n" + markdown(rows))
        status = "complete"
    finally:
        tracker.stop_all()
        state.remove_file()
        writer.finish(status)
    return writer.dir


def print_claims(rows: list[dict], console: Console) -> None:
    from rich.table import Table

    table = Table(title="Seed claims, measured (bold: the seed makes the claim about this strategy)")
    for col in ("claim", "strategy", "verdict", "why / evidence"):
        table.add_column(col)
    style = {"confirmed": "green", "refuted": "red", "partly": "yellow"}
    for r in rows:
        name = f"[bold]{r['strategy']}[/]" if r["seed_claims_it_here"] else r["strategy"]
        v = f"[{style.get(r['verdict'], 'white')}]{r['verdict']}[/]"
        detail = r["why"] or "; ".join(f"{k}={v}" for k, v in r["evidence"].items())
        table.add_row(r["claim"], name, v, detail)
    console.print(table)


def load_claim_rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "claims.json").read_text())
