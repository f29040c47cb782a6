"""`vmnetbench claims`: every probe on every strategy, then the seed's claims judged by the rules in
claims.yaml (beside this file). Writes claims.json, claims.md and the raw probe facts into results/<run id>/."""

from __future__ import annotations

import ast
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import Progress

from harness.analysis.provenance import git_sha, host_facts, tool_versions
from harness.analysis.results import RunWriter
from harness.claims.facts import (
    SCOPES,
    Interval,
    PerformanceFacts,
    PrivilegeTrial,
    StrategyFacts,
    field_names,
)
from harness.claims.privilege import probe_container_privilege, probe_privilege
from harness.claims.probes import (
    ProbeContext,
    probe_coexistence,
    probe_connectivity,
    probe_setup_inventory,
    probe_throughput,
)
from harness.guests.spec import GuestSpec, QemuOptions
from harness.lab.atomic import write_json, write_text
from harness.lab.names import new_run_id
from harness.lab.session import LabSession
from harness.lab.vocabulary import Direction, GuestKind
from harness.runtime.registry import RUNTIMES
from strategies import STRATEGIES, strategy_class

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
CLAIM_SCOPE_NAMES = ("strategy", "guest")  # plain strings a rule may use besides the facts


class ClaimsFileError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    condition: str
    verdict: str
    why: str = ""


@dataclass(frozen=True)
class Claim:
    text: str
    seed: tuple[str, ...]  # the strategies the seed post makes this claim about
    kind: str  # pro or con
    rules: tuple[Rule, ...]
    evidence: tuple[str, ...]  # `scope.fact` references shown with the verdict


def load_claims(path: Path = CLAIMS_FILE) -> list[Claim]:
    """The claims and their rules; every fact a rule or evidence reference names must exist (facts.py)."""
    claims = []
    for raw in yaml.safe_load(path.read_text())["claims"]:
        claim = Claim(
            raw["text"],
            tuple(raw["seed"]),
            raw["kind"],
            tuple(Rule(r["if"], r["verdict"], r.get("why", "")) for r in raw["rules"]),
            tuple(raw.get("evidence", [])),
        )
        for rule in claim.rules:
            _check_condition(claim, rule.condition)
        for ref in claim.evidence:
            scope, _, name = ref.partition(".")
            _check_fact(claim, scope, name)
        claims.append(claim)
    return claims


def _check_condition(claim: Claim, condition: str) -> None:
    try:
        tree = ast.parse(condition, mode="eval")
    except SyntaxError as e:
        where = f"claims.yaml, claim {claim.text!r}"
        raise ClaimsFileError(f"{where}: condition {condition!r} is not valid Python ({e.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in SCOPES:
            _check_fact(claim, node.value.id, node.attr)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in SCOPES:
            raise ClaimsFileError(
                f"claims.yaml, claim {claim.text!r}: read facts by attribute ({node.value.id}.name), "
                f"not by key, in {condition!r}"
            )
        elif isinstance(node, ast.Name) and node.id not in {*SCOPES, *HELPERS, *CLAIM_SCOPE_NAMES, "True", "False"}:
            raise ClaimsFileError(
                f"claims.yaml, claim {claim.text!r}: unknown name {node.id!r} in {condition!r}; "
                f"allowed: {', '.join([*SCOPES, *HELPERS, *CLAIM_SCOPE_NAMES])}"
            )


def _check_fact(claim: Claim, scope: str, name: str) -> None:
    if scope not in SCOPES:
        raise ClaimsFileError(
            f"claims.yaml, claim {claim.text!r}: unknown fact group {scope!r}; allowed: {', '.join(SCOPES)}"
        )
    if name not in field_names(SCOPES[scope]):
        raise ClaimsFileError(
            f"claims.yaml, claim {claim.text!r}: {scope}.{name} is not a fact the probes collect; "
            f"{scope} has: {', '.join(sorted(field_names(SCOPES[scope])))}"
        )


def _ci(perf: PerformanceFacts, direction: str) -> tuple[float, float, float]:
    d: Interval = getattr(perf, f"{direction}_gbps")
    return d.median, d.low, d.high


def below(a: PerformanceFacts, b: PerformanceFacts) -> bool:
    """a is slower than b both ways: one-sided Welch t on the logs, p < 0.05 per direction (Bonferroni over the
    two directions), not the overlap of two intervals."""
    from harness.analysis.stats import welch_p_worse

    for d in Direction:
        mine, theirs = getattr(a, f"{d}_gbps"), getattr(b, f"{d}_gbps")
        p = welch_p_worse(theirs.values, mine.values, higher_is_better=True)
        if p is None or p >= 0.025:
            return False
    return True


def above(a: PerformanceFacts, b: PerformanceFacts) -> bool:
    return below(b, a)


def overlap(a: PerformanceFacts, b: PerformanceFacts) -> bool:
    return not below(a, b) and not above(a, b)


def ratio(a: PerformanceFacts, b: PerformanceFacts) -> float:
    return min(_ci(a, d)[0] / _ci(b, d)[0] for d in Direction if _ci(b, d)[0])


HELPERS = {"below": below, "above": above, "overlap": overlap, "ratio": ratio, "set": set, "min": min, "max": max}


@dataclass
class ProbeFacts:
    """Everything the probes found in one claims run, per strategy."""

    strategies: dict[str, StrategyFacts] = field(default_factory=dict)
    performance: dict[str, PerformanceFacts] = field(default_factory=dict)

    def record(self) -> dict:
        return asdict(self)


def judge(claim: Claim, strategy: str, facts: ProbeFacts, guest: str = "netns") -> dict:
    """The verdict of one claim for one strategy: the first rule whose condition holds."""
    own = facts.strategies[strategy]
    scope = {
        "strategy": strategy,
        "guest": guest,
        "conn": own.conn,
        "inv": own.inv,
        "priv": own.priv,
        "coex": own.coex,
        "perf": own.perf,
        "direct": facts.performance["direct"],
        "nat_proxy": facts.performance["nat-proxy"],
    }
    verdict, why, rule_text = "no verdict", "no rule matched", ""
    for rule in claim.rules:
        try:
            holds = eval(rule.condition, {"__builtins__": {}}, {**HELPERS, **scope})  # noqa: S307 - our own data
        except (ZeroDivisionError, TypeError, ValueError) as e:
            verdict, why, rule_text = "not measurable here", f"a fact the rule needs is missing ({e})", rule.condition
            break
        if holds:
            verdict, why, rule_text = rule.verdict, rule.why, rule.condition
            break
    evidence = {}
    for ref in claim.evidence:
        group, _, name = ref.partition(".")
        evidence[ref] = _short(getattr(scope[group], name))
    return {
        "claim": claim.text,
        "kind": claim.kind,
        "strategy": strategy,
        "seed_says_it_of": ", ".join(claim.seed),
        "seed_claims_it_here": strategy in claim.seed,
        "seed_section": seed_sections().get(strategy, ""),
        "seed_order": list(seed_sections()).index(strategy) if strategy in seed_sections() else None,
        "verdict": verdict,
        "why": why,
        "rule": rule_text,
        "evidence": evidence,
    }


def _short(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    if isinstance(value, Interval):
        if math.isnan(value.low):
            return f"median of {value.n} (fewer than 6 for an exact 95% interval): {value.median:.2f} Gbit/s"
        return f"{value.median:.2f} [{value.low:.2f}, {value.high:.2f}] Gbit/s (median, exact 95%, n={value.n})"
    if isinstance(value, list) and value and isinstance(value[0], PrivilegeTrial):
        return "; ".join(
            f"-{','.join(t.dropped) or 'none'}: {'works' if t.works else t.error or 'fails'}" for t in value
        )
    return value


def run_probes(ctx: ProbeContext, strategies: list[str], console: Console, repetitions: int = 5) -> ProbeFacts:
    """Every probe on every strategy, then the interleaved performance repetitions."""
    facts = ProbeFacts()
    with Progress(console=console) as progress:
        task = progress.add_task("probes", total=len(strategies) * 4 + 1)

        def step(what: str, strategy: str, probe):
            progress.update(task, description=f"{what} {strategy}")
            value = probe()
            progress.advance(task)
            return value

        for s in strategies:
            facts.strategies[s] = StrategyFacts(
                conn=step("connectivity", s, lambda s=s: probe_connectivity(ctx, s)),
                inv=step("inventory", s, lambda s=s: probe_setup_inventory(ctx, s)),
                priv=step("privilege", s, lambda s=s: privilege_probe(ctx)(ctx.lab, s, ctx.guest)),
                coex=step("coexistence", s, lambda s=s: probe_coexistence(ctx, s)),
                perf=None,  # filled from the interleaved performance repetitions below
            )
        progress.update(task, description="performance (interleaved repetitions)")
        facts.performance = probe_throughput(ctx, strategies, repetitions=repetitions)
        for s in strategies:
            facts.strategies[s].perf = facts.performance[s]
        progress.advance(task)
    return facts


def privilege_probe(ctx: ProbeContext):
    """In-pod setup with reduced capabilities (netns runtime), or compute's privileges with a node agent doing
    the setup (docker runtime)."""
    return probe_container_privilege if ctx.lab.pod_runtime.containers else probe_privilege


def claims_table(facts: ProbeFacts, strategies: list[str], guest: str = "netns") -> list[dict]:
    return [judge(claim, s, facts, guest) for claim in load_claims() for s in strategies]


SCOPE_WORDS = {
    "conn": "connectivity",
    "inv": "setup",
    "priv": "privilege",
    "coex": "coexistence",
    "perf": "performance",
    "direct": "direct's performance",
    "nat_proxy": "nat-proxy's performance",
}


def evidence_text(evidence: dict) -> str:
    """`inv.process_names=['vmnb-relay']` as a sentence: "Setup: process names vmnb-relay." """
    parts = []
    for ref, value in evidence.items():
        scope, _, name = ref.partition(".")
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        if isinstance(value, list | tuple) and not value:
            shown = "none"
        parts.append(f"{SCOPE_WORDS.get(scope, scope)}: {name.replace('_', ' ')} {shown}")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:] if parts else ""


def markdown(rows: list[dict]) -> str:
    lines = ["| claim (seed) | strategy | verdict | why | evidence |", "|---|---|---|---|---|"]
    for r in rows:
        mark = "**" if r["seed_claims_it_here"] else ""
        evidence = evidence_text(r["evidence"]).replace("|", "/")
        lines.append(
            f"| {r['claim']} ({r['kind']}, of {r['seed_says_it_of']}) | {mark}{r['strategy']}{mark} | "
            f"{r['verdict']} | {r['why']} | {evidence} |"
        )
    return "\n".join(lines) + "\n\nBold strategy: the seed makes this claim about it.\n"


def run_claims(
    results_root: Path,
    console: Console,
    strategies: list[str] | None = None,
    repetitions: int = 5,
    guest: GuestSpec | None = None,
    runtime: str = "netns",
) -> Path:
    """`guest`: the QEMU guest (with its decided acceleration) instead of the netns guest. `runtime`: where pods
    live, from the runtime registry (the claims' compute as KubeVirt's launcher gets it by default)."""
    entry = RUNTIMES[runtime]
    guest = guest or GuestSpec()
    if not strategies and guest.kind == GuestKind.NETNS:  # a binding that serves a virtio device needs a VM
        strategies = [s for s in STRATEGIES if not strategy_class(s).needs_qemu]
        skipped = [s for s in STRATEGIES if s not in strategies]
        if skipped:
            console.print(f"{', '.join(skipped)} left out: it needs the QEMU guest (`vmnetbench claims --guest qemu`)")
    strategies = strategies or list(STRATEGIES)
    added = [needed for needed in ("direct", "nat-proxy") if needed not in strategies]
    strategies += added
    writer = RunWriter(results_root, new_run_id())
    console.print(
        f"claims run [bold]{writer.run_id}[/]: probing {', '.join(strategies)} on the {guest.kind} guest"
        + (
            f"; {' and '.join(added)} added: the performance claims are judged against them "
            "(direct: a plain pod; nat-proxy: the seed's reference for tproxy)"
            if added
            else ""
        )
    )
    writer.start(
        {
            "kind": "claims",
            "strategies": strategies,
            "guest": guest.columns(),
            "host": host_facts(),
            "tools": tool_versions(),
            "git_sha": git_sha(),
            "scenario_name": "claims",
            "runtime": entry.name,
        }
    )
    status = "interrupted"
    with LabSession(writer.run_id, log_dir=writer.log_dir, results_dir=writer.dir) as lab:  # clean marks it killed
        try:
            lab.lease(entry.name)  # before the runtime first asks its engine
            lab.pod_runtime = entry.for_claims(True)
            if lab.pod_runtime.containers:
                console.print(f"{entry.name} runtime: image {getattr(lab.pod_runtime, 'image', '?')}")
            facts = run_probes(ProbeContext(lab, writer, guest), strategies, console, repetitions)
            write_json(writer.dir / "probes.json", facts.record())
            rows = claims_table(facts, strategies, str(guest.kind))
            if guest.kind == GuestKind.NETNS:
                rows = decide_on_qemu(rows, facts, ProbeContext(lab, writer, guest), console)
            write_json(writer.dir / "claims.json", rows)
            write_text(
                writer.dir / "claims.md", "# Seed claims, measured\n\n" + entry.claims_note + "\n\n" + markdown(rows)
            )
            status = "complete"
        finally:
            lab.close()
            writer.finish(status)
    return writer.dir


NETNS_UNDECIDABLE = ("slirp", "passt")  # their pod-side stack is QEMU's own (-netdev user) or passt's


def decide_on_qemu(rows: list[dict], facts: ProbeFacts, ctx: ProbeContext, console: Console) -> list[dict]:
    """The claims the netns guest cannot decide for slirp and passt (no helper process, no privilege, no
    NET_ADMIN: on the netns guest a helper must create the VM's tap) decided in the same command on the QEMU
    guest, when this machine can run one: its inventory and privilege probes replace the netns ones for those
    rows, which say so. Without QEMU the rows stay "not measurable here" and say why."""
    undecided = {
        r["strategy"] for r in rows if r["verdict"] == "not measurable here" and r["strategy"] in NETNS_UNDECIDABLE
    }
    if not undecided:
        return rows
    try:
        from harness.guests.qemu.accel import resolve_acceleration
        from harness.guests.qemu.image import build_image

        build_image()
        qemu = GuestSpec(GuestKind.QEMU, QemuOptions(), resolve_acceleration("auto"))
    except Exception as e:  # noqa: BLE001 - no QEMU here is a recorded limit, not a crash
        console.print(f"[yellow]QEMU guest unavailable ({e}); slirp/passt claims stay undecided[/]")
        return rows
    console.print(
        f"deciding {', '.join(sorted(undecided))} on the QEMU guest ({qemu.acceleration.accel}: "
        f"{qemu.acceleration.reason}): the netns guest cannot"
    )
    qctx = ProbeContext(ctx.lab, ctx.writer, qemu)
    decided = {}
    for s in sorted(undecided):
        own = facts.strategies[s]
        try:
            priv = privilege_probe(ctx)(ctx.lab, s, qemu)
            decided[s] = StrategyFacts(
                conn=own.conn, inv=probe_setup_inventory(qctx, s), priv=priv, coex=own.coex, perf=own.perf
            )
        except Exception as e:  # noqa: BLE001 - a binding the QEMU guest cannot set up stays undecided, said why
            console.print(f"[yellow]{s} on the QEMU guest: {e}; its claims stay undecided[/]")
    qfacts = ProbeFacts(strategies={**facts.strategies, **decided}, performance=facts.performance)
    write_json(ctx.writer.dir / "probes-qemu.json", {s: asdict(f) for s, f in decided.items()})
    claims = {c.text: c for c in load_claims()}
    out = []
    for row in rows:
        if row["strategy"] in decided and row["verdict"] == "not measurable here":
            row = judge(claims[row["claim"]], row["strategy"], qfacts, "qemu")
            row["why"] = " ".join(filter(None, [f"Decided on the QEMU guest ({qemu.acceleration.accel}).", row["why"]]))
        out.append(row)
    return out


def print_claims(rows: list[dict], console: Console) -> None:
    from rich.table import Table

    table = Table(title="Seed claims, measured (bold: the seed makes the claim about this strategy)")
    for col in ("claim", "strategy", "verdict", "why / evidence"):
        table.add_column(col)
    style = {"confirmed": "green", "refuted": "red", "partly": "yellow"}
    for r in rows:
        name = f"[bold]{r['strategy']}[/]" if r["seed_claims_it_here"] else r["strategy"]
        v = f"[{style.get(r['verdict'], 'white')}]{r['verdict']}[/]"
        detail = r["why"] or evidence_text(r["evidence"])
        table.add_row(r["claim"], name, v, detail)
    console.print(table)


def print_seed_table(rows: list[dict], console: Console) -> None:
    """The post's pros and cons for the bindings it judges, each with its measured verdict, as on the page."""
    from rich.table import Table

    from harness.analysis.answer import VERDICT_WORDS as words

    style = {"confirmed": "green", "refuted": "red", "partly": "yellow"}
    table = Table(title="The seed post's pros and cons, measured")
    for col in ("the post's section", "", "the post says", "measured", "evidence"):
        table.add_column(col, overflow="fold")
    mine = sorted(
        [r for r in rows if r.get("seed_claims_it_here") and r.get("seed_section")],
        key=lambda r: (r.get("seed_order") or 0, r["kind"] != "pro"),
    )
    for r in mine:
        verdict = f"[{style.get(r['verdict'], 'white')}]{words.get(r['verdict'], r['verdict'])}[/]"
        detail = r["why"] or evidence_text(r["evidence"])
        table.add_row(r["seed_section"], r["kind"], r["claim"], verdict, detail[:140])
    console.print(table)


def load_claim_rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "claims.json").read_text())


def seed_sections(path: Path = CLAIMS_FILE) -> dict[str, str]:
    """binding -> the post's section title, in the post's order (claims.yaml `sections`)."""
    return dict(yaml.safe_load(path.read_text()).get("sections") or {})


SEED_STRATEGIES = tuple(seed_sections())
"""The bindings the seed post judges (its four sections); the main job's claims phase probes these."""
CLAIMS_SECONDS_PER_STRATEGY = 40
"""The claims phase's time per seed binding on this project's 2-core machine (2026-12-07, `make bench` run
031e26, four bindings: connectivity 14 s, inventory 1 s, privilege trials 68 s, coexistence 60 s since its
round-trip probes use vmnb-rr (157 s with sockperf), 36 s a binding): what a run's time budget keeps for it."""
QEMU_DECIDE_SECONDS = 65
"""Booting the QEMU guest (TCG here) for slirp's process and privilege claims, measured likewise."""


def claims_seconds(strategies: list[str], netns_guest: bool) -> float:
    """About how long the claims phase takes for these seed bindings."""
    qemu = QEMU_DECIDE_SECONDS if netns_guest and any(s in NETNS_UNDECIDABLE for s in strategies) else 0
    return CLAIMS_SECONDS_PER_STRATEGY * len(strategies) + qemu


REFERENCES = ("direct", "nat-proxy")
"""Whose performance the claims' rules compare with (a plain pod; nat-proxy for tproxy's claim)."""


def facts_from_rows(frame, strategy: str) -> tuple[dict, PerformanceFacts | None]:
    """What the run's own throughput rows already decide for one strategy: TCP connectivity per mesh layout the
    run measured (works / bypassed / failed, from every attempt and the proxy's counters) and its performance under
    no mesh (median with its exact interval, CPU per GB, userspace bytes per byte). Only the outside-client
    layouts: the seed's claims are about a pod's own sidecar."""
    from harness.analysis.stats import median_interval
    from harness.claims.facts import connectivity_sidecars, reach_key
    from harness.lab.vocabulary import Protocol, Status, TrafficPath

    mine = frame[(frame.strategy == strategy) & (frame.test == "tcp_throughput")]
    conn: dict = {}
    for sidecar in connectivity_sidecars():  # the rows' layout label is the mode's name for an outside client
        rows = mine[mine.sidecar == str(sidecar)]
        if rows.empty:
            continue
        for direction in Direction:
            d = rows[rows.direction == str(direction)]
            d = d[d.metric.isin(["throughput", ""]) | (d.status != Status.OK)]
            if d.empty:
                continue
            failed = d[d.status != Status.OK]
            key = reach_key(Protocol.TCP, direction, sidecar)
            if not failed.empty:
                conn[key], conn[f"{key}_reason"] = "failed", str(failed.reason.fillna("").mode().iat[0])
            else:
                conn[key] = "bypassed" if (d.path == TrafficPath.BYPASSED).any() else "works"
                conn[f"{key}_reason"] = ""
    none = mine[(mine.sidecar == "none") & (mine.status == Status.OK)]
    if none.empty:
        return conn, None
    nan = float("nan")

    def interval(direction: Direction) -> Interval:
        values = none[(none.metric == "throughput") & (none.direction == str(direction))]["value"].dropna().tolist()
        ci = median_interval(values)
        return Interval(
            ci.estimate, nan if ci.low is None else ci.low, nan if ci.high is None else ci.high, ci.n, tuple(values)
        )

    def median(metric: str) -> float:
        return median_interval(none[none.metric == metric]["value"].dropna().tolist()).estimate

    perf = PerformanceFacts(
        interval(Direction.INGRESS),
        interval(Direction.EGRESS),
        median("cpu_per_gb"),
        median("userspace_bytes_per_byte"),
    )
    return conn, perf


def claims_phase(ctx: ProbeContext, frame, console: Console, strategies: list[str]) -> tuple[list[dict], dict]:
    """The seed's table in the main job: every claim judged for `strategies` (the seed's bindings the run
    measured), reusing what the run's blocks measured (TCP connectivity under its layouts, throughput, CPU and
    userspace bytes under no mesh) and running only the probes it lacks: UDP and the layouts it did not measure
    (Linkerd-style), the setup inventory, the privilege trials and coexistence. Times each part (run.json)."""
    import time

    from harness.claims.facts import connectivity_facts_class, connectivity_sidecars, reach_key
    from harness.lab.vocabulary import Protocol
    from harness.pod.mesh import SidecarKind

    facts = ProbeFacts()
    timings: dict[str, float] = {}
    reused: dict[str, list[str]] = {}
    names = list(dict.fromkeys([*strategies, *REFERENCES]))
    for s in names:
        conn, perf = facts_from_rows(frame, s)
        if perf is None:  # not in the run's rows: measured here, interleaved with nothing (said in run.json)
            t0 = time.monotonic()
            perf = probe_throughput(ctx, [s], repetitions=3)[s]
            what = "throughput (not in the run)"
            timings[what] = timings.get(what, 0) + time.monotonic() - t0
        facts.performance[s] = perf
        if s not in strategies:
            continue
        measured = {sc for sc in connectivity_sidecars() if reach_key(Protocol.TCP, Direction.INGRESS, sc) in conn}
        # only what a claim reads and the rows lack: UDP ingress with no mesh ("Only support ingress TCP"), TCP
        # both ways under the layouts the run did not measure ("any sidecar", "Istio dedicated")
        paths = {
            sc: ([(Protocol.UDP, Direction.INGRESS)] if sc in measured else [(Protocol.TCP, d) for d in Direction])
            for sc in connectivity_sidecars()
        }
        probe = tuple(sc for sc in connectivity_sidecars() if sc not in measured or sc == SidecarKind.NONE)
        t0 = time.monotonic()
        probed = probe_connectivity(ctx, s, probe, paths).__dict__
        timings["connectivity"] = timings.get("connectivity", 0) + time.monotonic() - t0
        merged = {**probed}
        for sc in measured:
            for protocol in Protocol:
                for direction in Direction:
                    key = reach_key(protocol, direction, sc)
                    if protocol == Protocol.TCP:
                        merged[key], merged[f"{key}_reason"] = conn[key], conn[f"{key}_reason"]
                    elif sc != SidecarKind.NONE:
                        merged[key], merged[f"{key}_reason"] = "not measured", "the run measured TCP only"
            if sc != SidecarKind.NONE:
                merged[f"tcp_through_{str(sc).replace('-', '_')}"] = all(
                    merged[reach_key(Protocol.TCP, d, sc)] == "works" for d in Direction
                )
        reused[s] = sorted(str(sc) for sc in measured)
        parts = {}
        for what, probe_fn in (
            ("inventory", lambda s=s: probe_setup_inventory(ctx, s)),
            ("privilege", lambda s=s: privilege_probe(ctx)(ctx.lab, s, ctx.guest)),
            ("coexistence", lambda s=s: probe_coexistence(ctx, s)),
        ):
            console.print(f"claims: {what} {s}")
            t0 = time.monotonic()
            parts[what] = probe_fn()
            timings[what] = timings.get(what, 0) + time.monotonic() - t0
        facts.strategies[s] = StrategyFacts(
            conn=connectivity_facts_class()(**merged),
            inv=parts["inventory"],
            priv=parts["privilege"],
            coex=parts["coexistence"],
            perf=perf,
        )
    write_json(
        ctx.writer.dir / "probes.json",
        {**facts.record(), "reused_from_the_run": reused, "seconds": {k: round(v, 1) for k, v in timings.items()}},
    )
    rows = claims_table(facts, strategies, str(ctx.guest.kind))
    if ctx.guest.kind == GuestKind.NETNS:  # slirp's process and privilege claims need QEMU's -netdev user
        t0 = time.monotonic()
        rows = decide_on_qemu(rows, facts, ctx, console)
        timings["QEMU guest (slirp's process and privilege claims)"] = time.monotonic() - t0
    return rows, {"seconds": {k: round(v, 1) for k, v in timings.items()}, "reused_from_the_run": reused}
